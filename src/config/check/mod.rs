//! Checks that need the whole file: names, cross-references and combinations. Types and unknown
//! keys are already checked by the parser.

use super::locate::{Problem, Seg};
use super::parsed::Parsed;
use super::protocol::SignalTag;
use super::types::*;
use std::collections::HashMap;

mod brokers;
mod commands;
mod counters;
mod health;
mod mqtt;
mod orders;
mod secrets;
mod sparkplug;
mod values;

/// A tag in two roles would be overwritten in the cell's role map: a counter that is also the
/// state word would silently stop counting.
fn check_one_role_per_tag<'a>(c: &'a CellFile, p: &mut Vec<Problem>) {
    let s = &c.signals;
    let mut roles: Vec<(&str, &str, &str)> = Vec::new();
    let mut add = |signal: &'static str, key: &'static str, tag: Option<&'a String>| {
        if let Some(tag) = tag {
            roles.push((signal, key, tag.as_str()));
        }
    };
    add("good_count", "tag", s.good_count.as_ref().map(|c| &c.tag));
    add("scrap_count", "tag", s.scrap_count.as_ref().map(|c| &c.tag));
    if let Some(m) = &s.machine_state {
        add("machine_state", "tag", Some(&m.tag));
        add("machine_state", "fault_tag", m.fault_tag.as_ref());
    }
    if let Some(c) = &s.scrap_count {
        add("scrap_count", "reason_tag", c.reason_tag.as_ref());
        add("scrap_count", "reset_tag", c.reset_tag.as_ref());
    }
    if let Some(c) = &s.good_count {
        add("good_count", "reset_tag", c.reset_tag.as_ref());
    }
    if let Some(m) = &s.material {
        add("material", "lot_tag", Some(&m.lot_tag));
    }
    if let Some(o) = &s.orders {
        add("orders", "start_tag", Some(&o.start_tag));
        add("orders", "number_tag", Some(&o.number_tag));
        add("orders", "end_tag", o.end_tag.as_ref());
    }
    if let Some(r) = c.part_record.as_ref() {
        if !matches!(r.trigger.as_str(), "good_count" | "scrap_count") {
            roles.push(("part_record", "trigger", r.trigger.as_str()));
        }
    }
    for (d, dev) in c.devices.iter().enumerate() {
        for (key, tag) in [
            ("uptime_tag", &dev.uptime_tag),
            ("restart_count_tag", &dev.restart_count_tag),
        ] {
            let Some((first, first_key, tag)) = roles.iter().find(|r| Some(r.2) == tag.as_deref())
            else {
                continue;
            };
            p.push(Problem::at(
                path!["devices", d, key],
                format!(
                    "tag {tag:?} is already [signals.{first}] {first_key}; a tag can have one role only"
                ),
            ));
        }
    }
    for (i, (signal, key, tag)) in roles.iter().enumerate() {
        if let Some((first, first_key, _)) = roles[..i].iter().find(|(_, _, t)| t == tag) {
            let at = match *signal {
                "part_record" => path!["part_record", *key],
                _ => path!["signals", *signal, *key],
            };
            p.push(Problem::at(
                at,
                format!(
                    "tag {tag:?} is already [signals.{first}] {first_key}; a tag can have one \
                     role only (read the same address twice under two names if you must)"
                ),
            ));
        }
    }
}

/// The counter rules' own settings (docs/EVENTS.md "How counts are derived").
fn check_counter_rules(key: &'static str, c: &CounterSignal, p: &mut Vec<Problem>) {
    if c.confirm_readings == 0 {
        p.push(Problem::at(
            path!["signals", key, "confirm_readings"],
            "expected at least 1 reading (1 with confirm_ms = 0 believes every drop at once)",
        ));
    }
    if c.confirm_ms > 3_600_000 {
        p.push(Problem::at(
            path!["signals", key, "confirm_ms"],
            format!("expected at most 3600000 (an hour), found {}", c.confirm_ms),
        ));
    }
    if c.max_step == Some(0) {
        p.push(Problem::at(
            path!["signals", key, "max_step"],
            "expected at least 1 part per reading (leave it out for no limit)",
        ));
    }
    if c.max_correction >= c.rollover_window {
        p.push(Problem::at(
            path!["signals", key, "max_correction"],
            format!(
                "expected less than rollover_window ({}), found {}",
                c.rollover_window, c.max_correction
            ),
        ));
    }
}

/// Every problem of the file, or what the checks parsed on their way (each value is parsed
/// here once, and kept: see [`super::CellConfig`]).
pub(super) fn check(c: &CellFile) -> Result<Parsed, Vec<Problem>> {
    let mut p = Vec::new();
    let mut parsed = Parsed::default();
    check_cell(c, &mut p);
    check_devices(c, &mut parsed, &mut p);
    check_signals(c, &mut parsed, &mut p);
    for protocol in crate::protocols::ALL {
        protocol.check_cell(c, &mut p);
    }
    orders::check(c, &mut parsed, &mut p);
    counters::check_restart_tags(c, &mut p);
    parsed.values = values::check(c, &mut p);
    check_store(c, &mut p);
    parsed.brokers = mqtt::check(c, &mut p);
    health::check(c, &mut p);
    sparkplug::check(c, &mut p);
    commands::check(c, &mut p);
    if p.is_empty() {
        Ok(parsed)
    } else {
        Err(p)
    }
}

/// A name used as one MQTT topic level.
fn topic_level_problem(s: &str) -> Option<&'static str> {
    if s.trim().is_empty() {
        Some("a non-empty name")
    } else if s.contains(['/', '+', '#', '\0']) {
        Some("a name without '/', '+', '#' (it becomes one MQTT topic level)")
    } else {
        None
    }
}

fn check_cell(c: &CellFile, p: &mut Vec<Problem>) {
    let names = ["enterprise", "site", "area", "line", "cell"];
    for (key, value) in names.iter().zip(c.cell.levels()) {
        if let Some(expected) = topic_level_problem(value) {
            p.push(Problem::at(
                path!["cell", *key],
                format!("expected {expected}, found {value:?}"),
            ));
        }
    }
}

fn check_devices(c: &CellFile, parsed: &mut Parsed, p: &mut Vec<Problem>) {
    let mut devices: HashMap<&str, usize> = HashMap::new();
    for (d, dev) in c.devices.iter().enumerate() {
        if dev.name.trim().is_empty() {
            p.push(Problem::at(
                path!["devices", d, "name"],
                "expected a non-empty device name",
            ));
        } else if let Some(first) = devices.insert(&dev.name, d) {
            p.push(Problem::at(
                path!["devices", d, "name"],
                format!(
                    "device name {:?} is already used by device #{}; expected a unique name",
                    dev.name,
                    first + 1
                ),
            ));
        }
        for protocol in crate::protocols::ALL {
            protocol.check_device(d, dev, parsed, p);
        }
        if dev.poll_interval_ms == 0 {
            p.push(Problem::at(
                path!["devices", d, "poll_interval_ms"],
                "expected a poll interval of at least 1 ms, found 0",
            ));
        }
        if dev.timeout_ms == 0 {
            p.push(Problem::at(
                path!["devices", d, "timeout_ms"],
                "expected a timeout of at least 1 ms, found 0",
            ));
        }
    }
}

fn check_signals(c: &CellFile, parsed: &mut Parsed, p: &mut Vec<Problem>) {
    // Each protocol's names once (the first definition is the one a signal reads).
    let mut all_names: Vec<&str> = Vec::new();
    for protocol in crate::protocols::ALL {
        let mut names = protocol.tag_names(c);
        names.sort_unstable();
        names.dedup();
        all_names.extend(names);
    }
    let known = || {
        let mut names = all_names.clone();
        names.sort_unstable();
        if names.is_empty() {
            "no tags are defined under [[devices.tags]]".to_string()
        } else {
            format!("expected one of: {}", names.join(", "))
        }
    };
    // Whether a known tag suits the signal is its protocol's to say (`check_signal_tag`).
    let lookup = |key: &str, sub: &str, name: &str, p: &mut Vec<Problem>| -> bool {
        let found = all_names.contains(&name);
        if !found {
            p.push(Problem::at(
                path!["signals", key, sub],
                format!("unknown tag {name:?}; {}", known()),
            ));
        }
        found
    };
    let check_tag = |signal: SignalTag, p: &mut Vec<Problem>| {
        for protocol in crate::protocols::ALL {
            protocol.check_signal_tag(c, signal, p);
        }
    };
    for (key, counter) in [
        ("good_count", &c.signals.good_count),
        ("scrap_count", &c.signals.scrap_count),
    ] {
        let Some(counter) = counter else { continue };
        check_counter_rules(key, counter, p);
        if lookup(key, "tag", &counter.tag, p) {
            check_tag(SignalTag::Counter { key, counter }, p);
        }
    }
    check_one_role_per_tag(c, p);
    if let Some(state) = &c.signals.machine_state {
        for (sub, name) in [
            ("tag", Some(&state.tag)),
            ("fault_tag", state.fault_tag.as_ref()),
        ] {
            let Some(name) = name else { continue };
            if lookup("machine_state", sub, name, p) {
                check_tag(SignalTag::MachineState { sub, name }, p);
            }
        }
        if state.unmapped == crate::vocabulary::MachineState::Unobserved {
            p.push(Problem::at(
                path!["signals", "machine_state", "unmapped"],
                "\"unobserved\" is the runtime's own (time it did not see), not a state a PLC reports",
            ));
        }
        for (word, state) in &state.states {
            if *state == crate::vocabulary::MachineState::Unobserved {
                p.push(Problem::at(
                    path!["signals", "machine_state", "states", word.as_str()],
                    "\"unobserved\" is the runtime's own (time it did not see), not a state a PLC reports",
                ));
            }
            match word.parse::<i64>() {
                Ok(w) => {
                    parsed.states.insert(w, *state);
                }
                Err(_) => p.push(Problem::at(
                    path!["signals", "machine_state", "states", word.as_str()],
                    format!("expected an integer state word as the key, found {word:?}"),
                )),
            }
        }
    }
}

fn check_store(c: &CellFile, p: &mut Vec<Problem>) {
    if c.store.path.as_os_str().is_empty() {
        p.push(Problem::at(
            path!["store", "path"],
            "expected the path of the store's SQLite file",
        ));
    }
    // The control socket, the lock and the identity file sit next to the store with these
    // extensions (press4.db → press4.sock, press4.lock, press4.identity): the store must be none
    // of them, or the runtime would replace the open database with a socket.
    if let Some(ext) = c.store.path.extension().and_then(|e| e.to_str()) {
        if ["sock", "lock", "identity"].contains(&ext) {
            p.push(Problem::at(
                path!["store", "path"],
                format!(
                    "expected a store path not ending in .{ext}: the runtime keeps its control socket, lock and identity file next to the store as .sock, .lock and .identity (use e.g. \"press4.db\")"
                ),
            ));
        }
    }
    if c.store.values_retention_hours == 0 {
        p.push(Problem::at(
            path!["store", "values_retention_hours"],
            "expected at least 1 hour (undelivered values older than this are dropped)",
        ));
    }
    if c.store.values_max_count == 0 {
        p.push(Problem::at(
            path!["store", "values_max_count"],
            "expected room for at least 1 process value",
        ));
    }
    if c.store.max_size_mb == 0 {
        p.push(Problem::at(
            path!["store", "max_size_mb"],
            "expected a size cap of at least 1 MB",
        ));
    }
}

/// What is allowed but probably a mistake: `check` prints these and still passes.
pub(super) fn warnings(c: &super::CellConfig, file: &std::path::Path) -> Vec<Problem> {
    let mut w = Vec::new();
    brokers::warnings(c, &mut w);
    for protocol in crate::protocols::ALL {
        protocol.warnings(c, &mut w);
    }
    health::warnings(c, &mut w);
    secrets::warnings(c, file, &mut w);
    w
}
