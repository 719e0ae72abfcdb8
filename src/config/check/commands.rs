//! Checks of `[commands]` (docs/COMMANDS.md); the write limits on a protocol's tags are
//! checked in its folder.

use super::super::commands::{expand, COMMAND_NAMES};
use super::super::locate::{Problem, Seg};
use super::CellFile;

pub(super) fn check(c: &CellFile, p: &mut Vec<Problem>) {
    for (source, list) in c.commands.allow.lists() {
        let Some(list) = list else { continue };
        if let Err(bad) = expand(list) {
            p.push(Problem::at(
                path!["commands", "allow", source],
                format!("expected command names, \"orders\" or \"all\", found {bad:?}"),
            ));
        }
    }
    if let Some(plc) = &c.commands.allow.plc {
        if let Some(bad) = expand(plc)
            .unwrap_or_default()
            .into_iter()
            .find(|n| !super::super::commands::ORDER_COMMANDS.contains(n))
        {
            p.push(Problem::at(
                path!["commands", "allow", "plc"],
                format!("the PLC's order signals send order commands only, found {bad:?}"),
            ));
        }
    }
    for (name, &secs) in &c.commands.max_age_s {
        if name != "default" && !COMMAND_NAMES.contains(&name.as_str()) {
            p.push(Problem::at(
                path!["commands", "max_age_s", name.as_str()],
                format!("expected a command name or \"default\", found {name:?}"),
            ));
        } else if secs == 0 {
            p.push(Problem::at(
                path!["commands", "max_age_s", name.as_str()],
                "expected at least 1 s (leave it out for the default)",
            ));
        }
    }
}
