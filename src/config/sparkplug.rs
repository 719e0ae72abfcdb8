//! `[sparkplug]`: the cell as a Sparkplug B edge node beside (or instead of) its JSON events.

use super::locate::Problem;
use super::locate::Seg;
use super::types::{CellFile, CellPath};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparkplugConfig {
    /// Publish the cell as a Sparkplug B edge node (its own MQTT session on `[mqtt] url`).
    #[serde(default)]
    pub enabled: bool,
    /// Keep publishing the JSON events too; false: Sparkplug B only.
    #[serde(default = "yes")]
    pub json: bool,
    /// Default: the cell's enterprise, site, area and line joined by `:`.
    pub group_id: Option<String>,
    /// Default: the cell's name.
    pub edge_node_id: Option<String>,
    /// The host application whose `spBv1.0/STATE/{id}` the edge node follows: data waits in the
    /// store while it is offline. None: publish whenever the broker is there.
    pub primary_host_id: Option<String>,
    /// QoS of births and data: 1 (default) keeps the outbox's at-least-once; 0 is what the
    /// specification asks for (docs/SPARKPLUG.md, "QoS").
    #[serde(default = "one")]
    pub qos: u8,
}

fn yes() -> bool {
    true
}
fn one() -> u8 {
    1
}

impl SparkplugConfig {
    pub fn group_id(&self, cell: &CellPath) -> String {
        self.group_id
            .clone()
            .unwrap_or_else(|| cell.levels()[..4].join(":"))
    }

    pub fn edge_node_id(&self, cell: &CellPath) -> String {
        self.edge_node_id
            .clone()
            .unwrap_or_else(|| cell.cell.clone())
    }
}

/// Sparkplug ids are topic levels: no `/`, `+` or `#`, not empty.
fn bad_id(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("expected a Sparkplug id, found an empty one".into());
    }
    // U+0000 is not allowed anywhere in an MQTT topic.
    id.chars()
        .find(|c| matches!(c, '/' | '+' | '#' | '\0'))
        .map(|c| format!("a Sparkplug id is one topic level and cannot contain {c:?}: {id:?}"))
}

pub(super) fn check(c: &CellFile, p: &mut Vec<Problem>) {
    let Some(s) = c.sparkplug.as_ref().filter(|s| s.enabled) else {
        return;
    };
    let at = |key: &str| vec![Seg::from("sparkplug"), Seg::from(key)];
    let ids = [
        ("group_id", s.group_id(&c.cell)),
        ("edge_node_id", s.edge_node_id(&c.cell)),
    ];
    for (key, id) in ids {
        if let Some(why) = bad_id(&id) {
            let place = if key == "group_id" && s.group_id.is_none()
                || key == "edge_node_id" && s.edge_node_id.is_none()
            {
                vec![Seg::from("cell")]
            } else {
                at(key)
            };
            p.push(Problem::at(place, format!("[sparkplug] {key}: {why}")));
        }
    }
    if let Some(why) = s.primary_host_id.as_deref().and_then(bad_id) {
        p.push(Problem::at(at("primary_host_id"), why));
    }
    if s.qos > 1 {
        p.push(Problem::at(
            at("qos"),
            format!(
                "expected 0 or 1 (Sparkplug has no QoS 2 data), found {}",
                s.qos
            ),
        ));
    }
    for (i, d) in c.devices.iter().enumerate() {
        if let Some(why) = bad_id(&d.name) {
            p.push(Problem::at(
                vec![Seg::from("devices"), Seg::from(i), Seg::from("name")],
                format!("the device is a Sparkplug device: {why}"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_id_is_one_topic_level_of_legal_characters() {
        assert_eq!(super::bad_id("press4"), None);
        assert_eq!(super::bad_id("acme:plant1:pressing:line2"), None);
        for bad in ["", "a/b", "a+", "#", "a\0b"] {
            assert!(super::bad_id(bad).is_some(), "{bad:?}");
        }
    }
}
