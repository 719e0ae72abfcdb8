//! The lab press (`config/press-lab.toml`): one cell config for the demo, the integration
//! tests and the benchmark, each changing only what differs (ports, the store, timings) with
//! toml_edit, which keeps the file's layout, so a test's config reads like the example.

use std::path::Path;
use toml_edit::{value, DocumentMut};

const PRESS_LAB: &str = include_str!("../../config/press-lab.toml");

/// The lab press with its PLC on 127.0.0.1:`plc_port`, its broker on 127.0.0.1:`broker_port`
/// and its store at `store`.
pub fn press(plc_port: u16, broker_port: u16, store: &Path) -> DocumentMut {
    let mut doc: DocumentMut = PRESS_LAB
        .parse()
        .unwrap_or_else(|e| panic!("config/press-lab.toml: {e}"));
    doc["devices"][0]["port"] = value(i64::from(plc_port));
    doc["mqtt"]["url"] = value(format!("mqtt://127.0.0.1:{broker_port}"));
    doc["store"]["path"] = value(store.to_string_lossy().as_ref());
    doc
}

/// Takes the tags named in `names` off the first device (a simulator without those registers).
pub fn drop_tags(doc: &mut DocumentMut, names: &[&str]) {
    if let Some(tags) = doc["devices"][0]["tags"].as_array_of_tables_mut() {
        tags.retain(|t| {
            t.get("name")
                .and_then(|n| n.as_str())
                .is_none_or(|n| !names.contains(&n))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The overrides land where the runtime reads them, and the result still checks.
    #[test]
    fn the_lab_press_takes_its_ports_and_store() {
        let mut doc = press(1502, 11883, Path::new("/tmp/lab.db"));
        drop_tags(&mut doc, &["order_start", "order_end"]);
        let config = crate::config::parse(Path::new("lab.toml"), &doc.to_string()).unwrap();
        assert_eq!(config.devices[0].port(), 1502);
        assert_eq!(config.primary().url.port, 11883);
        assert_eq!(config.store.path, Path::new("/tmp/lab.db"));
        let numbered = config.numbered_tags();
        let names: Vec<&str> = numbered.iter().map(|(_, _, t)| t.name()).collect();
        assert!(!names.contains(&"order_start") && names.contains(&"order_number"));
    }
}
