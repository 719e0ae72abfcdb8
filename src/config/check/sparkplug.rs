//! `[sparkplug]`: its ids are single topic levels, its QoS one Sparkplug knows, and every
//! device's name a valid Sparkplug device id.

use super::{CellFile, Problem, Seg};

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
