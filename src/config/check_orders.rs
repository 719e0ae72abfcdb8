//! Checks of the work-order parts of a cell config: order signals, fault reasons, the product
//! table and the shift calendar.

use super::locate::{Problem, Seg};
use super::types::*;
use mes_edge_drivers::modbus::DataType;
use std::collections::HashSet;

macro_rules! path {
    ($($seg:expr),* $(,)?) => { vec![$(Seg::from($seg)),*] };
}

pub fn check<'a>(c: &'a CellConfig, tag: &dyn Fn(&str) -> Option<&'a TagConfig>, p: &mut Vec<Problem>) {
    if let Some(o) = &c.signals.orders {
        let bool_tag = |t: &TagConfig| t.data_type == DataType::Bool;
        let int_tag = |t: &TagConfig| {
            !matches!(t.data_type, DataType::Bool | DataType::F32 | DataType::F64) && t.scale.is_none() && t.offset.is_none()
        };
        let tags = [("start_tag", Some(&o.start_tag), true), ("number_tag", Some(&o.number_tag), false), ("end_tag", o.end_tag.as_ref(), true)];
        for (key, name, want_bool) in tags {
            let Some(name) = name else { continue };
            match tag(name) {
                None => p.push(Problem::at(path!["signals", "orders", key], format!("unknown tag {name:?}"))),
                Some(t) if want_bool && !bool_tag(t) => {
                    p.push(Problem::at(path!["signals", "orders", key], format!("expected a bool tag, {name:?} is not")))
                }
                Some(t) if !want_bool && !int_tag(t) => p.push(Problem::at(
                    path!["signals", "orders", key],
                    format!("expected an unscaled integer tag holding the order number, {name:?} is not"),
                )),
                _ => {}
            }
        }
    }
    if let Some(s) = &c.signals.machine_state {
        for (code, reason) in &s.reasons {
            if code.parse::<i64>().is_err() {
                let at = path!["signals", "machine_state", "reasons", code.as_str()];
                p.push(Problem::at(at, format!("expected an integer fault code as the key, found {code:?}")));
            } else if reason.trim().is_empty() {
                let at = path!["signals", "machine_state", "reasons", code.as_str()];
                p.push(Problem::at(at, "expected a non-empty reason"));
            }
        }
    }
    if c.orders.oee_interval_s == 0 {
        p.push(Problem::at(path!["orders", "oee_interval_s"], "expected an interval of at least 1 s"));
    }
    let mut materials = HashSet::new();
    for (i, prod) in c.products.iter().enumerate() {
        if !materials.insert(prod.material.as_str()) {
            p.push(Problem::at(path!["products", i, "material"], format!("material {:?} is listed twice", prod.material)));
        }
        if !(prod.ideal_cycle_s > 0.0 && prod.ideal_cycle_s <= 86_400.0) {
            p.push(Problem::at(
                path!["products", i, "ideal_cycle_s"],
                format!("expected an ideal cycle time above 0 and at most 86400 s, found {}", prod.ideal_cycle_s),
            ));
        }
    }
    if let Some(shifts) = &c.shifts {
        if let Err(e) = crate::orders::parse_zone(shifts.timezone.as_deref()) {
            p.push(Problem::at(path!["shifts", "timezone"], e));
        }
        let mut names = HashSet::new();
        for (i, s) in shifts.shift.iter().enumerate() {
            if s.name.trim().is_empty() || !names.insert(s.name.as_str()) {
                p.push(Problem::at(path!["shifts", "shift", i, "name"], "expected a non-empty shift name, unique"));
            }
            for (key, value) in [("start", &s.start), ("end", &s.end)] {
                if let Err(e) = crate::orders::parse_time(value) {
                    p.push(Problem::at(path!["shifts", "shift", i, key], e));
                }
            }
            if s.start == s.end {
                p.push(Problem::at(path!["shifts", "shift", i, "end"], "a shift must end at another time than it starts"));
            }
        }
    }
}
