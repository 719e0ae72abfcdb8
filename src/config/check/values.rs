//! Checks of process values: each tag's `publish` settings and the `[[process_values]]`
//! groups; resolves them into the plan the engine reports by.

use super::super::locate::{Problem, Seg};
use super::super::values::{PublishSettings, ValuePlan, ValueRule};
use super::CellFile;
use std::collections::HashMap;

/// The engine's loop wakes at least once a second: a shorter heartbeat could not be kept.
const MIN_HEARTBEAT_MS: u64 = 1_000;

fn check_settings(at: &[Seg], s: &PublishSettings, p: &mut Vec<Problem>) {
    let key = |k: &str| {
        let mut path = at.to_vec();
        path.push(Seg::from(k));
        path
    };
    if s.deadband.is_some() && s.deadband_percent.is_some() {
        p.push(Problem::at(
            key("deadband_percent"),
            "expected one of deadband and deadband_percent, not both",
        ));
    }
    if let Some(d) = s.deadband {
        if !(d.is_finite() && d >= 0.0) {
            p.push(Problem::at(
                key("deadband"),
                format!("expected a deadband of 0 or more (in the tag's units), found {d}"),
            ));
        }
    }
    if let Some(d) = s.deadband_percent {
        if !(d.is_finite() && d > 0.0 && d <= 100.0) {
            p.push(Problem::at(
                key("deadband_percent"),
                format!("expected a percentage above 0 and at most 100, found {d}"),
            ));
        }
    }
    if let Some(m) = s.max_interval_ms {
        if m < MIN_HEARTBEAT_MS {
            p.push(Problem::at(
                key("max_interval_ms"),
                format!("expected a heartbeat of at least {MIN_HEARTBEAT_MS} ms (leave it out for none), found {m}"),
            ));
        } else if let Some(min) = s.min_interval_ms.filter(|&min| min > m) {
            p.push(Problem::at(
                key("min_interval_ms"),
                format!(
                    "expected a minimum interval of at most max_interval_ms ({m}), found {min}"
                ),
            ));
        }
    }
}

/// Checks every publish setting and group, and gives back the published tags with their rules.
pub(super) fn check(c: &CellFile, p: &mut Vec<Problem>) -> ValuePlan {
    let numbered = c.numbered_tags();
    let by_name: HashMap<&str, usize> = numbered
        .iter()
        .enumerate()
        .map(|(i, (_, _, t))| (t.name(), i))
        .collect();
    // The group settings of each tag (by its index in `numbered`), with the group's index.
    let mut grouped: HashMap<usize, (usize, PublishSettings)> = HashMap::new();
    for (g, group) in c.process_values.iter().enumerate() {
        let at = vec![Seg::from("process_values"), Seg::from(g)];
        check_settings(&at, &group.settings(), p);
        let members: Vec<(usize, Vec<Seg>)> = match (&group.tags, &group.device) {
            (Some(_), Some(_)) | (None, None) => {
                p.push(Problem::at(
                    at.clone(),
                    "expected either `tags = [...]` or `device = \"...\"` in [[process_values]]",
                ));
                continue;
            }
            (Some(tags), None) => {
                if tags.is_empty() {
                    p.push(Problem::at(
                        path!["process_values", g, "tags"],
                        "expected at least one tag name",
                    ));
                }
                let mut members = Vec::new();
                for (k, name) in tags.iter().enumerate() {
                    let here = path!["process_values", g, "tags", k];
                    match by_name.get(name.as_str()) {
                        Some(&i) => members.push((i, here)),
                        None => p.push(Problem::at(
                            here,
                            format!(
                                "expected the name of a tag or node of the cell, found {name:?}"
                            ),
                        )),
                    }
                }
                members
            }
            (None, Some(device)) => match c.devices.iter().position(|d| &d.name == device) {
                Some(d) => numbered
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, dev, _))| *dev == d)
                    .map(|(i, _)| (i, path!["process_values", g, "device"]))
                    .collect(),
                None => {
                    p.push(Problem::at(
                        path!["process_values", g, "device"],
                        format!("expected the name of a device of the cell, found {device:?}"),
                    ));
                    continue;
                }
            },
        };
        for (i, here) in members {
            if let Some((first, _)) = grouped.get(&i) {
                p.push(Problem::at(
                    here,
                    format!(
                        "tag {:?} is already in [[process_values]] #{}; expected each tag in one group at most \
                         (give it its own settings with `publish = {{ ... }}` on the tag)",
                        numbered[i].2.name(),
                        first + 1
                    ),
                ));
            } else {
                grouped.insert(i, (g, group.settings()));
            }
        }
    }
    let mut plan = ValuePlan::new();
    for (i, (id, d, tag)) in numbered.iter().enumerate() {
        let publish = &tag.publish;
        let at = path!["devices", *d, tag.list, tag.index, "publish"];
        if let Some(own) = &publish.own {
            check_settings(&at, own, p);
        }
        let settings = match (&publish.own, publish.on, grouped.get(&i)) {
            (Some(own), _, _) => own.clone(),
            (None, Some(false), _) | (None, None, None) => continue,
            (None, _, Some((_, group))) => group.clone(),
            (None, Some(true), None) => PublishSettings::default(),
        };
        plan.insert(
            *id,
            ValueRule::new(tag.name(), &c.devices[*d].name, &settings),
        );
    }
    // A device's values go to `.../values/{device}`: its name is one topic level.
    let mut named: Vec<usize> = plan
        .values()
        .filter_map(|r| c.devices.iter().position(|d| d.name == r.device))
        .collect();
    named.sort_unstable();
    named.dedup();
    for d in named {
        if let Some(expected) = super::topic_level_problem(&c.devices[d].name) {
            p.push(Problem::at(
                path!["devices", d, "name"],
                format!("expected {expected}: the device publishes process values"),
            ));
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use crate::config::values::{Deadband, ValueRule};
    use std::path::Path;

    const CELL: &str = r#"
[cell]
enterprise = "e"
site = "s"
area = "a"
line = "l"
cell = "c"

[[devices]]
name = "press"
protocol = "modbus-tcp"
host = "127.0.0.1"

[[devices.tags]]
name = "die_temp"
table = "holding"
address = 0
type = "i16"
publish = { deadband = 0.5, max_interval_ms = 60000 }

[[devices.tags]]
name = "oil"
table = "holding"
address = 1
type = "u16"

[[devices.tags]]
name = "recipe"
table = "holding"
address = 2
type = "string"
length = 4

[[devices.tags]]
name = "spare"
table = "holding"
address = 6
type = "u16"
publish = false

[[devices]]
name = "oven"
protocol = "opcua"
endpoint = "opc.tcp://127.0.0.1:4840"

[[devices.nodes]]
name = "zone1"
node_id = "ns=2;s=Zone1"
publish = true

[[process_values]]
device = "press"
deadband_percent = 2.0
min_interval_ms = 1000

[store]
path = "cell.db"

[mqtt]
url = "mqtt://127.0.0.1"
"#;

    /// A tag's own table wins over its group, `publish = false` takes it out, `true` alone
    /// publishes every change; the ids are the cell's tag numbering.
    #[test]
    fn own_settings_win_over_the_group_and_false_takes_a_tag_out() {
        let config = crate::config::parse(Path::new("cell.toml"), CELL).unwrap();
        let mut rules: Vec<(u32, ValueRule)> = config
            .values
            .iter()
            .map(|(id, r)| (id.0, r.clone()))
            .collect();
        rules.sort_by_key(|(id, _)| *id);
        let rule = |id: u32, tag: &str, device: &str, deadband, max, min| {
            let r = ValueRule {
                tag: tag.into(),
                device: device.into(),
                deadband,
                max_interval_ms: max,
                min_interval_ms: min,
            };
            (id, r)
        };
        let group = Deadband::Percent(2.0);
        assert_eq!(
            rules,
            vec![
                rule(
                    0,
                    "die_temp",
                    "press",
                    Deadband::Absolute(0.5),
                    Some(60_000),
                    0
                ),
                rule(1, "oil", "press", group, None, 1_000),
                rule(2, "recipe", "press", group, None, 1_000),
                rule(4, "zone1", "oven", Deadband::None, None, 0),
            ]
        );
    }
}
