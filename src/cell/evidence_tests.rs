//! The counter rules with their company, through the engine: readings of both counters of one
//! device as a driver hands them on, with the device's session reports between them.

use super::{CellModel, CellState, CounterRules, Engine, Evidence, MachineState, Role, Rule};
use crate::event::{Counted, CounterKind, EventBody, NewEvent};
use mes_edge_drivers::{DeviceEvent, DeviceId, DeviceStatus, Quality, Sample, TagId, Value};
use std::collections::HashMap;

pub(super) const GOOD: TagId = TagId(0);
pub(super) const SCRAP: TagId = TagId(1);

fn rules(bits: u32, tag: &str) -> CounterRules {
    CounterRules {
        bits,
        rollover_window: 1_000,
        confirm_readings: 3,
        confirm_ms: 5_000,
        max_correction: 5,
        max_step: None,
        tag: tag.into(),
        device: 0,
    }
}

/// An oven: a UInt32 good counter and a UInt16 reject counter on one OPC UA server.
pub(super) fn oven() -> Engine {
    let model = CellModel {
        cell_path: "a/b/c/d/e".into(),
        tag_names: vec!["good".into(), "reject".into()],
        device_names: vec!["oven".into()],
        roles: HashMap::from([
            (GOOD, Role::Counter(CounterKind::Good)),
            (SCRAP, Role::Counter(CounterKind::Scrap)),
        ]),
        counters: HashMap::from([
            (CounterKind::Good, rules(32, "oven/ns=2;s=Good/u32")),
            (CounterKind::Scrap, rules(16, "oven/ns=2;s=Reject/u16")),
        ]),
        clock_tolerance_ms: vec![10_000],
        states: HashMap::new(),
        unmapped: MachineState::Unknown,
        orders: super::OrderModel {
            reasons: HashMap::new(),
            products: HashMap::new(),
            calendar: None,
            auto_complete: false,
            oee_interval_ms: 60_000,
        },
        reject: None,
        material: None,
        statistics: HashMap::new(),
        part_record: None,
        writable: HashMap::new(),
        policy: super::CommandPolicy::from_config(&Default::default()),
        write_back: [None, None],
        written_tags: Default::default(),
    };
    Engine::new(model, CellState::default())
}

pub(super) fn read(e: &mut Engine, ts_ms: i64, values: &[(TagId, u64)]) -> Vec<NewEvent> {
    let samples = values
        .iter()
        .map(|&(tag, v)| Sample {
            tag,
            value: Some(Value::UInt(v)),
            quality: Quality::Good,
            ts_ms,
            source_ts_ms: None,
        })
        .collect();
    let mut out = Vec::new();
    e.apply(
        &DeviceEvent::Samples {
            device: DeviceId(0),
            samples,
        },
        &mut out,
    );
    out
}

pub(super) fn status(e: &mut Engine, ts_ms: i64, online: bool) {
    let status = if online {
        DeviceStatus::Online
    } else {
        DeviceStatus::Offline {
            reason: mes_edge_drivers::DriverError::transient("connection reset"),
        }
    };
    let ev = DeviceEvent::Status {
        device: DeviceId(0),
        status,
        ts_ms,
    };
    e.apply(&ev, &mut Vec::new());
}

/// MOM's net of a counter over `events`: part counts plus (negative) corrections.
pub(crate) fn net(events: &[NewEvent], kind: CounterKind) -> i64 {
    events
        .iter()
        .map(|e| match e.body {
            EventBody::PartCount {
                counter, quantity, ..
            } if counter == kind => quantity as i64,
            EventBody::CountCorrection {
                counter, quantity, ..
            } if counter == kind => quantity,
            _ => 0,
        })
        .sum()
}

#[test]
fn a_reject_counter_stepping_back_as_the_good_counter_restarts_is_a_restart() {
    // The oven shows its reset only with the next part: good 559 -> 2, reject 5 -> 1 in one
    // read. Alone, the reject counter's step back is a correction of -4 and its part is lost.
    let mut e = oven();
    let mut events = read(&mut e, 1_000, &[(GOOD, 559), (SCRAP, 5)]);
    events.extend(read(&mut e, 2_000, &[(GOOD, 2), (SCRAP, 1)]));
    events.extend(read(&mut e, 2_500, &[(GOOD, 3)]));
    events.extend(read(&mut e, 3_000, &[(GOOD, 4)]));
    let mut t = 3_000;
    while t < 9_000 {
        t += 1_000;
        e.tick(t, &mut events);
    }
    events.extend(read(&mut e, 9_500, &[(SCRAP, 2)]));
    assert_eq!(net(&events, CounterKind::Good), 4, "2, 3, 4 since zero");
    assert_eq!(net(&events, CounterKind::Scrap), 2, "1 and 2 since zero");
    assert!(!events
        .iter()
        .any(|e| matches!(e.body, EventBody::CountCorrection { .. })));
    let scrap_reset = events
        .iter()
        .find_map(|e| match &e.body {
            EventBody::CounterReset {
                counter: CounterKind::Scrap,
                rule,
                evidence,
                counted,
                ..
            } => Some((*rule, *evidence, *counted)),
            _ => None,
        })
        .expect("a counter_reset of the reject counter");
    assert_eq!(
        scrap_reset,
        (
            Some(Rule::RestartedFromZero),
            Some(Evidence::SiblingRestarted),
            1
        )
    );
}

#[test]
fn a_step_back_while_the_sibling_only_glitched_is_a_correction() {
    let mut e = oven();
    let mut events = read(&mut e, 1_000, &[(GOOD, 559), (SCRAP, 5)]);
    // The good counter reads 0 for a moment while the PLC takes a reject back.
    events.extend(read(&mut e, 2_000, &[(GOOD, 0), (SCRAP, 4)]));
    events.extend(read(&mut e, 2_300, &[(GOOD, 560)]));
    let mut t = 2_300;
    while t < 9_000 {
        t += 1_000;
        e.tick(t, &mut events);
    }
    assert_eq!(net(&events, CounterKind::Good), 1);
    assert_eq!(net(&events, CounterKind::Scrap), -1);
    assert!(events.iter().any(|e| matches!(
        e.body,
        EventBody::CountCorrection {
            counter: CounterKind::Scrap,
            quantity: -1,
            ..
        }
    )));
}

#[test]
fn one_to_zero_to_one_across_a_reconnect_counts_the_part() {
    let mut e = oven();
    let mut events = read(&mut e, 1_000, &[(GOOD, 100), (SCRAP, 1)]);
    status(&mut e, 2_000, false);
    status(&mut e, 4_000, true);
    // The PLC came back from a restart with its counters at zero, then made one reject.
    events.extend(read(&mut e, 4_100, &[(GOOD, 0), (SCRAP, 0)]));
    events.extend(read(&mut e, 4_600, &[(SCRAP, 1)]));
    let mut t = 4_600;
    while t < 12_000 {
        t += 1_000;
        e.tick(t, &mut events);
    }
    assert_eq!(net(&events, CounterKind::Scrap), 1);
    assert_eq!(net(&events, CounterKind::Good), 0);
    let part = events
        .iter()
        .find_map(|e| match &e.body {
            EventBody::PartCount {
                counter: CounterKind::Scrap,
                rule,
                ..
            } => *rule,
            _ => None,
        })
        .expect("the scrap part");
    assert_eq!(
        part,
        Counted {
            rule: Rule::RestartedFromZero,
            evidence: Some(Evidence::SessionRestarted)
        }
    );
    // The payload names both.
    let body = &events
        .iter()
        .find(|e| matches!(e.body, EventBody::PartCount { .. }))
        .unwrap()
        .body;
    let json = serde_json::to_value(body).unwrap();
    assert_eq!(json["data"]["rule"], "restarted_from_zero");
    assert_eq!(json["data"]["evidence"], "session_restarted");
    assert_eq!(&serde_json::from_value::<EventBody>(json).unwrap(), body);
    // A plain step forward names neither, and reads back as such.
    let plain: EventBody = serde_json::from_str(
        r#"{"type":"part_count","data":{"counter":"good","quantity":1,"counter_value":1,
            "previous_value":0,"rolled_over":false,"order_id":null}}"#,
    )
    .unwrap();
    assert!(matches!(plain, EventBody::PartCount { rule: None, .. }));
}

#[test]
fn without_a_reconnect_one_to_zero_to_one_stays_a_glitch() {
    let mut e = oven();
    let mut events = read(&mut e, 1_000, &[(SCRAP, 1)]);
    // Online reported again without an offline first (a runtime restart): no new session.
    status(&mut e, 1_500, true);
    events.extend(read(&mut e, 2_000, &[(SCRAP, 0)]));
    events.extend(read(&mut e, 2_300, &[(SCRAP, 1)]));
    assert_eq!(net(&events, CounterKind::Scrap), 0);
    assert!(events
        .iter()
        .any(|e| matches!(e.body, EventBody::CounterGlitch { .. })));
}

const RESETS: TagId = TagId(2);

/// The oven with a reset tag for its reject counter.
fn oven_with_reset_tag() -> Engine {
    let mut e = oven();
    e.model.tag_names.push("reject_resets".into());
    e.model
        .roles
        .insert(RESETS, Role::ResetTag(CounterKind::Scrap));
    e
}

#[test]
fn a_reset_flag_makes_the_next_reading_a_count_from_zero() {
    let mut e = oven_with_reset_tag();
    let mut events = read(&mut e, 1_000, &[(SCRAP, 1), (RESETS, 0)]);
    // The PLC resets the counter and makes one reject before the next poll: the counter reads
    // 1 as before (no change, so no reading), the flag rises.
    events.extend(read(&mut e, 2_000, &[(RESETS, 1)]));
    events.extend(read(&mut e, 3_000, &[(SCRAP, 2)]));
    assert_eq!(
        net(&events, CounterKind::Scrap),
        2,
        "1 and 2 since the reset"
    );
    // Again, the flag and the drop in one read (the flag is taken first): 0, then a part.
    events.extend(read(&mut e, 4_000, &[(RESETS, 0)]));
    events.extend(read(&mut e, 5_000, &[(SCRAP, 0), (RESETS, 1)]));
    events.extend(read(&mut e, 5_100, &[(SCRAP, 1)]));
    assert_eq!(net(&events, CounterKind::Scrap), 3);
    let evidence: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::CounterReset { evidence, .. } => *evidence,
            _ => None,
        })
        .collect();
    assert_eq!(evidence, [Evidence::ResetTag, Evidence::ResetTag]);
    assert!(!events
        .iter()
        .any(|e| matches!(e.body, EventBody::CounterGlitch { .. })));
}

#[test]
fn a_count_of_resets_that_goes_up_confirms_a_held_drop_at_once() {
    let mut e = oven_with_reset_tag();
    let mut events = read(&mut e, 1_000, &[(SCRAP, 500), (RESETS, 7)]);
    events.extend(read(&mut e, 2_000, &[(SCRAP, 3)]));
    assert_eq!(net(&events, CounterKind::Scrap), 0, "held");
    events.extend(read(&mut e, 2_100, &[(RESETS, 8)]));
    assert_eq!(
        net(&events, CounterKind::Scrap),
        3,
        "confirmed by the count of resets"
    );
    // Read again unchanged: no edge, nothing more.
    events.extend(read(&mut e, 2_200, &[(RESETS, 8)]));
    events.extend(read(&mut e, 2_300, &[(SCRAP, 4)]));
    assert_eq!(net(&events, CounterKind::Scrap), 4);
}

#[test]
fn a_reset_tag_read_for_the_first_time_tells_nothing() {
    let mut e = oven_with_reset_tag();
    let mut events = read(&mut e, 1_000, &[(SCRAP, 10)]);
    events.extend(read(&mut e, 2_000, &[(RESETS, 1)]));
    events.extend(read(&mut e, 3_000, &[(SCRAP, 12)]));
    assert_eq!(net(&events, CounterKind::Scrap), 2);
}
