//! Checks of the tags that tell a device's restarts to the counter rules (`[[devices]]
//! uptime_tag`, `restart_count_tag`; docs/EVENTS.md rule 7).

use crate::config::need::{signal_tag, Need};
use crate::config::{CellFile, Problem, Seg};

/// Each names an unscaled integer tag of its own device: another device's uptime says nothing
/// of this one's restarts.
pub fn check_restart_tags(c: &CellFile, p: &mut Vec<Problem>) {
    let tags = c.numbered_tags();
    for (d, dev) in c.devices.iter().enumerate() {
        for (key, tag) in [
            ("uptime_tag", &dev.uptime_tag),
            ("restart_count_tag", &dev.restart_count_tag),
        ] {
            let Some(name) = tag else { continue };
            let at = path!["devices", d, key];
            match tags.iter().find(|(_, _, t)| t.name() == name) {
                Some((_, other, _)) if *other != d => p.push(Problem::at(
                    at,
                    format!(
                        "expected a tag of device {:?}; {name:?} is read from {:?}",
                        dev.name, c.devices[*other].name
                    ),
                )),
                _ => signal_tag(&tags, at, name, Need::Integer, p),
            }
        }
    }
}
