//! Restarts told by the device besides its connection (docs/EVENTS.md rule 7): its OPC UA
//! server's start time, its uptime tag, its restart-count tag. They matter most where no
//! connection of this run saw the restart: the runtime was down while the device restarted.

use super::evidence_tests::{net, oven, read, status, SCRAP};
use super::{Engine, Evidence, RestartSign, Role};
use crate::event::{CounterKind, EventBody, NewEvent};
use mes_edge_drivers::{DeviceEvent, DeviceId, DeviceStatus, TagId};

const UPTIME: TagId = TagId(2);
const RESTARTS: TagId = TagId(3);

fn oven_with_restart_tags() -> Engine {
    let mut e = oven();
    e.model
        .tag_names
        .extend(["uptime".into(), "restarts".into()]);
    e.model
        .roles
        .insert(UPTIME, Role::Restarts(0, RestartSign::Uptime));
    e.model
        .roles
        .insert(RESTARTS, Role::Restarts(0, RestartSign::RestartCount));
    e
}

fn started(e: &mut Engine, ts_ms: i64, at_ms: i64) {
    let ev = DeviceEvent::Status {
        device: DeviceId(0),
        status: DeviceStatus::Started { at_ms },
        ts_ms,
    };
    let mut out = Vec::new();
    e.apply(&ev, &mut out);
    assert!(out.is_empty(), "a start time is no event of its own");
}

/// The runtime killed and started again on its committed state: the device reported online
/// again without an offline first.
fn runtime_restarted(e: &Engine, ts_ms: i64) -> Engine {
    let mut e = Engine::new(e.model.clone(), e.state.clone());
    status(&mut e, ts_ms, true);
    e
}

fn tick_until(e: &mut Engine, from: i64, to: i64, events: &mut Vec<NewEvent>) {
    let mut t = from;
    while t < to {
        t += 1_000;
        e.tick(t, events);
    }
}

fn reset_evidence(events: &[NewEvent]) -> Vec<Evidence> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::CounterReset { evidence, .. } => *evidence,
            _ => None,
        })
        .collect()
}

#[test]
fn a_server_that_started_again_while_the_runtime_was_down_makes_a_step_back_a_restart() {
    // The reject counter at 5; the runtime is down while the oven's server restarts and the
    // oven makes 4 rejects. Alone, 5 -> 4 is a part taken back.
    let mut e = oven();
    status(&mut e, 500, true);
    started(&mut e, 500, 1_000);
    let mut events = read(&mut e, 1_000, &[(SCRAP, 5)]);
    let mut e = runtime_restarted(&e, 60_000);
    started(&mut e, 60_000, 50_000);
    events.extend(read(&mut e, 60_100, &[(SCRAP, 4)]));
    tick_until(&mut e, 60_100, 66_000, &mut events);
    assert_eq!(
        net(&events, CounterKind::Scrap),
        4,
        "4 made since the restart"
    );
    assert_eq!(reset_evidence(&events), [Evidence::ServerRestarted]);
    let json = serde_json::to_value(&events.last().unwrap().body).unwrap();
    assert_eq!(json["data"]["evidence"], "server_restarted");
}

#[test]
fn the_same_start_time_after_a_runtime_restart_leaves_a_step_back_a_correction() {
    let mut e = oven();
    status(&mut e, 500, true);
    started(&mut e, 500, 1_000);
    let mut events = read(&mut e, 1_000, &[(SCRAP, 5)]);
    let mut e = runtime_restarted(&e, 60_000);
    started(&mut e, 60_000, 1_000);
    events.extend(read(&mut e, 60_100, &[(SCRAP, 4)]));
    assert_eq!(net(&events, CounterKind::Scrap), -1);
    assert!(events
        .iter()
        .any(|e| matches!(e.body, EventBody::CountCorrection { .. })));
}

#[test]
fn an_uptime_that_went_back_makes_one_to_zero_to_one_a_part() {
    // Read in one block with the counter (taken first): the PLC restarted between two polls.
    let mut e = oven_with_restart_tags();
    let mut events = read(&mut e, 1_000, &[(SCRAP, 1), (UPTIME, 86_400)]);
    events.extend(read(&mut e, 2_000, &[(SCRAP, 0), (UPTIME, 3)]));
    events.extend(read(&mut e, 2_500, &[(SCRAP, 1), (UPTIME, 4)]));
    tick_until(&mut e, 2_500, 9_000, &mut events);
    assert_eq!(net(&events, CounterKind::Scrap), 1);
    assert_eq!(reset_evidence(&events), [Evidence::UptimeWentBack]);
}

#[test]
fn a_restart_count_that_rose_after_the_drop_was_read_still_explains_it() {
    let mut e = oven_with_restart_tags();
    let mut events = read(&mut e, 1_000, &[(SCRAP, 1), (RESTARTS, 2)]);
    events.extend(read(&mut e, 2_000, &[(SCRAP, 0)]));
    events.extend(read(&mut e, 2_100, &[(RESTARTS, 3)]));
    events.extend(read(&mut e, 2_500, &[(SCRAP, 1)]));
    tick_until(&mut e, 2_500, 9_000, &mut events);
    assert_eq!(net(&events, CounterKind::Scrap), 1);
    assert_eq!(reset_evidence(&events), [Evidence::RestartCountRose]);
}

#[test]
fn an_uptime_kept_over_a_runtime_restart_tells_a_restart_the_runtime_did_not_see() {
    let mut e = oven_with_restart_tags();
    let mut events = read(&mut e, 1_000, &[(SCRAP, 3), (UPTIME, 5_000)]);
    let mut e = runtime_restarted(&e, 60_000);
    // The PLC restarted meanwhile: its uptime is lower, its counter near zero again.
    events.extend(read(&mut e, 60_100, &[(SCRAP, 2), (UPTIME, 40)]));
    tick_until(&mut e, 60_100, 66_000, &mut events);
    assert_eq!(net(&events, CounterKind::Scrap), 2);
    assert_eq!(reset_evidence(&events), [Evidence::UptimeWentBack]);
}

#[test]
fn a_rising_uptime_and_an_unchanged_restart_count_tell_nothing() {
    let mut e = oven_with_restart_tags();
    let mut events = read(&mut e, 1_000, &[(SCRAP, 1), (UPTIME, 10), (RESTARTS, 4)]);
    events.extend(read(
        &mut e,
        2_000,
        &[(SCRAP, 0), (UPTIME, 11), (RESTARTS, 4)],
    ));
    events.extend(read(&mut e, 2_300, &[(SCRAP, 1), (UPTIME, 12)]));
    assert_eq!(
        net(&events, CounterKind::Scrap),
        0,
        "a glitch, as without the tags"
    );
    assert!(events
        .iter()
        .any(|e| matches!(e.body, EventBody::CounterGlitch { .. })));
}
