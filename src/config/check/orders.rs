//! Checks of the work-order parts of a cell config: order signals, fault reasons, the product
//! table and the shift calendar.

use crate::config::parsed::Parsed;
use crate::config::*;
use crate::config::{Problem, Seg};
use mes_edge_drivers::TagId;
use std::collections::HashSet;

use crate::config::need::{signal_tag, Need};

/// The scrap counter's reject codes, the loaded material lot, and the tags summarized per order.
fn check_actuals(
    c: &CellFile,
    tags: &[(TagId, usize, TagDescription)],
    parsed: &mut Parsed,
    p: &mut Vec<Problem>,
) {
    let signal = |at: Vec<Seg>, name: &str, need: Need, p: &mut Vec<Problem>| {
        signal_tag(tags, at, name, need, p)
    };
    for (key, counter) in [
        ("good_count", &c.signals.good_count),
        ("scrap_count", &c.signals.scrap_count),
    ] {
        if let Some(tag) = counter.as_ref().and_then(|c| c.reset_tag.as_ref()) {
            signal(path!["signals", key, "reset_tag"], tag, Need::Flag, p);
        }
    }
    if let Some(good) = &c.signals.good_count {
        if good.reason_tag.is_some() || !good.reasons.is_empty() {
            p.push(Problem::at(
                path!["signals", "good_count", "reason_tag"],
                "reject codes belong to [signals.scrap_count] (good parts have no scrap reason)",
            ));
        }
    }
    if let Some(scrap) = &c.signals.scrap_count {
        if let Some(tag) = &scrap.reason_tag {
            signal(
                path!["signals", "scrap_count", "reason_tag"],
                tag,
                Need::Integer,
                p,
            );
        } else if !scrap.reasons.is_empty() {
            p.push(Problem::at(
                path!["signals", "scrap_count", "reasons"],
                "reject code reasons need `reason_tag`, the tag holding the PLC's reject code",
            ));
        }
        for (code, reason) in &scrap.reasons {
            let at = || path!["signals", "scrap_count", "reasons", code.as_str()];
            match code.parse::<i64>() {
                Err(_) => p.push(Problem::at(
                    at(),
                    format!("expected an integer reject code as the key, found {code:?}"),
                )),
                Ok(_) if reason.trim().is_empty() || reason.len() > 64 => {
                    p.push(Problem::at(at(), "expected a reason of 1 to 64 characters"))
                }
                Ok(code) => {
                    parsed.reject_reasons.insert(code, reason.clone());
                }
            }
        }
    }
    if let Some(m) = &c.signals.material {
        signal(
            path!["signals", "material", "lot_tag"],
            &m.lot_tag,
            Need::Lot,
            p,
        );
        for (key, value) in [("material", &m.material), ("unit", &m.unit)] {
            if value.trim().is_empty() || value.len() > 64 {
                p.push(Problem::at(
                    path!["signals", "material", key],
                    "expected 1 to 64 characters",
                ));
            }
        }
        if !(m.quantity_per_part > 0.0 && m.quantity_per_part.is_finite()) {
            p.push(Problem::at(
                path!["signals", "material", "quantity_per_part"],
                format!(
                    "expected the quantity each part consumes, above 0, found {}",
                    m.quantity_per_part
                ),
            ));
        }
    }
    if let Some(r) = &c.part_record {
        if !matches!(r.trigger.as_str(), "good_count" | "scrap_count") {
            signal(path!["part_record", "trigger"], &r.trigger, Need::Bool, p);
        } else if (r.trigger == "good_count" && c.signals.good_count.is_none())
            || (r.trigger == "scrap_count" && c.signals.scrap_count.is_none())
        {
            p.push(Problem::at(
                path!["part_record", "trigger"],
                format!(
                    "expected a counter the cell has ([signals.{}] is not defined) or a bool tag",
                    r.trigger
                ),
            ));
        }
        if let Some(serial) = &r.serial_tag {
            signal(path!["part_record", "serial_tag"], serial, Need::Lot, p);
        }
        if r.tags.len() > 100 {
            p.push(Problem::at(
                path!["part_record", "tags"],
                "expected at most 100 tags per part record",
            ));
        }
        for (i, tag) in r.tags.iter().enumerate() {
            signal(path!["part_record", "tags", i], tag, Need::Any, p);
        }
    }
    let mut seen = HashSet::new();
    for (i, tag) in c.orders.statistics.iter().enumerate() {
        if !seen.insert(tag.as_str()) {
            p.push(Problem::at(
                path!["orders", "statistics", i],
                format!("tag {tag:?} is listed twice"),
            ));
        } else {
            signal(path!["orders", "statistics", i], tag, Need::Number, p);
        }
    }
}

pub fn check(c: &CellFile, parsed: &mut Parsed, p: &mut Vec<Problem>) {
    let tags = c.numbered_tags();
    let signal = |at: Vec<Seg>, name: &str, need: Need, p: &mut Vec<Problem>| {
        signal_tag(&tags, at, name, need, p)
    };
    if let Some(o) = &c.signals.orders {
        signal(
            path!["signals", "orders", "start_tag"],
            &o.start_tag,
            Need::Bool,
            p,
        );
        signal(
            path!["signals", "orders", "number_tag"],
            &o.number_tag,
            Need::Integer,
            p,
        );
        if let Some(end) = &o.end_tag {
            signal(path!["signals", "orders", "end_tag"], end, Need::Bool, p);
        }
    }
    check_actuals(c, &tags, parsed, p);
    let wb = &c.orders.write_back;
    for (key, name) in [
        ("order_number_tag", &wb.order_number_tag),
        ("target_tag", &wb.target_tag),
    ] {
        if let Some(name) = name {
            signal(
                path!["orders", "write_back", key],
                name,
                Need::WritableInteger,
                p,
            );
        }
    }
    if let Some(s) = &c.signals.machine_state {
        for (code, reason) in &s.reasons {
            let at = || path!["signals", "machine_state", "reasons", code.as_str()];
            match code.parse::<i64>() {
                Err(_) => p.push(Problem::at(
                    at(),
                    format!("expected an integer fault code as the key, found {code:?}"),
                )),
                Ok(_) if reason.trim().is_empty() => {
                    p.push(Problem::at(at(), "expected a non-empty reason"))
                }
                Ok(code) => {
                    parsed.reasons.insert(code, reason.clone());
                }
            }
        }
    }
    if c.orders.oee_interval_s == 0 {
        p.push(Problem::at(
            path!["orders", "oee_interval_s"],
            "expected an interval of at least 1 s",
        ));
    }
    let mut materials = HashSet::new();
    for (i, prod) in c.products.iter().enumerate() {
        if !materials.insert(prod.material.as_str()) {
            p.push(Problem::at(
                path!["products", i, "material"],
                format!("material {:?} is listed twice", prod.material),
            ));
        }
        if !(prod.ideal_cycle_s > 0.0 && prod.ideal_cycle_s <= 86_400.0) {
            p.push(Problem::at(
                path!["products", i, "ideal_cycle_s"],
                format!(
                    "expected an ideal cycle time above 0 and at most 86400 s, found {}",
                    prod.ideal_cycle_s
                ),
            ));
        }
    }
    if let Some(shifts) = &c.shifts {
        match crate::config::parse_zone(shifts.timezone.as_deref()) {
            Ok(zone) => parsed.zone = Some(zone),
            Err(e) => p.push(Problem::at(path!["shifts", "timezone"], e)),
        }
        let mut names = HashSet::new();
        for (i, s) in shifts.shift.iter().enumerate() {
            if s.name.trim().is_empty() || !names.insert(s.name.as_str()) {
                p.push(Problem::at(
                    path!["shifts", "shift", i, "name"],
                    "expected a non-empty shift name, unique",
                ));
            }
            let mut time = |key: &str, value: &str| {
                crate::config::parse_time(value)
                    .map_err(|e| p.push(Problem::at(path!["shifts", "shift", i, key], e)))
                    .ok()
            };
            if let (Some(start), Some(end)) = (time("start", &s.start), time("end", &s.end)) {
                parsed.shifts.push((s.name.clone(), start, end));
            }
            if s.start == s.end {
                p.push(Problem::at(
                    path!["shifts", "shift", i, "end"],
                    "a shift must end at another time than it starts",
                ));
            }
        }
    }
}
