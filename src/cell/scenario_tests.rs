//! Work orders through the engine with a clock the test controls: every figure is exact.

use super::{CellModel, CellState, Engine};
use crate::event::{EventBody, NewEvent};
use crate::orders::{CommandSource, JobState, SubState};
use mes_edge_drivers::{DeviceEvent, DeviceId, Quality, Sample, TagId, Value};

const CONFIG: &str = r#"
[cell]
enterprise = "acme"
site = "plant1"
area = "pressing"
line = "line2"
cell = "press4"

[[devices]]
name = "plc"
protocol = "modbus-tcp"
host = "127.0.0.1"

[[devices.tags]]
name = "good"
table = "holding"
address = 0
type = "u32"

[[devices.tags]]
name = "scrap"
table = "holding"
address = 2
type = "u16"

[[devices.tags]]
name = "state"
table = "holding"
address = 3
type = "u16"

[[devices.tags]]
name = "fault"
table = "holding"
address = 4
type = "u16"

[signals.good_count]
tag = "good"

[signals.scrap_count]
tag = "scrap"

[signals.machine_state]
tag = "state"
fault_tag = "fault"
states = { 1 = "running", 2 = "down", 6 = "planned_stop" }
reasons = { 17 = "die jam" }

[[products]]
material = "BRK-220"
ideal_cycle_s = 2.0

[store]
path = "cell.db"

[mqtt]
url = "mqtt://127.0.0.1"
"#;

const GOOD: TagId = TagId(0);
const SCRAP: TagId = TagId(1);
const STATE: TagId = TagId(2);
const FAULT: TagId = TagId(3);
const T0: i64 = 1_800_000_000_000;
const S: i64 = 1000;

struct Cell {
    engine: Engine,
    events: Vec<NewEvent>,
}

impl Cell {
    fn new() -> Cell {
        Cell::with("")
    }

    fn with(extra: &str) -> Cell {
        let text = format!("{CONFIG}\n{extra}");
        let config = crate::config::parse(std::path::Path::new("cell.toml"), &text).unwrap();
        Cell {
            engine: Engine::new(CellModel::from_config(&config), CellState::default()),
            events: Vec::new(),
        }
    }

    fn read(&mut self, at: i64, values: &[(TagId, u64)]) {
        let samples = values
            .iter()
            .map(|&(tag, v)| Sample {
                tag,
                value: Some(Value::UInt(v)),
                quality: Quality::Good,
                ts_ms: at,
                source_ts_ms: None,
            })
            .collect();
        self.engine.apply(
            &DeviceEvent::Samples {
                device: DeviceId(0),
                samples,
            },
            &mut self.events,
        );
    }

    fn command(&mut self, at: i64, json: &str) -> crate::orders::Reply {
        self.engine
            .command(json.as_bytes(), CommandSource::Mqtt, at, &mut self.events)
    }

    fn job_response(&self) -> crate::orders::JobResponse {
        self.events
            .iter()
            .find_map(|e| match &e.body {
                EventBody::JobResponse(r) => Some(r.clone()),
                _ => None,
            })
            .expect("a job response")
    }
}

/// The order's OEE worked out by hand.
///
/// Ideal cycle time 2 s (product table). The order starts at T0 and is stopped at T0 + 1200 s:
///   T0 +    0 s .. +  600 s  running       good 0 → 270, scrap 0 → 15
///   T0 +  600 s .. +  720 s  down          fault 17 = "die jam"
///   T0 +  720 s .. +  780 s  planned stop  reason "break" given by the operator during it
///   T0 +  780 s .. + 1200 s  running       good 270 → 420, scrap 15 → 20
/// Planned busy time  = 1200 - 60                   = 1140 s
/// Actual production  = 600 + 420                   = 1020 s
/// Availability       = 1020 / 1140                 = 0.894736…
/// Ideal time         = (420 + 20) parts × 2 s      = 880 s
/// Performance        = 880 / 1020                  = 0.862745…
/// Quality            = 420 / 440                   = 0.954545…
/// OEE                = (1020/1140)(880/1020)(420/440) = 880·420 / (1140·440) = 14/19 = 0.736842…
#[test]
fn an_order_computed_by_hand() {
    let mut c = Cell::new();
    c.read(
        T0 - 10 * S,
        &[(GOOD, 0), (SCRAP, 0), (STATE, 1), (FAULT, 0)],
    );
    let r = c.command(T0, r#"{"correlation_id":"1","command":"store_and_start","order":{"id":"WO-1","material":"BRK-220","quantity":1000}}"#);
    assert!(r.accepted, "{r:?}");
    assert_eq!(r.state, Some(JobState::Running));
    for i in 1..=10 {
        c.read(
            T0 + i * 60 * S,
            &[(GOOD, 27 * i as u64), (SCRAP, (15 * i / 10) as u64)],
        );
    }
    c.read(T0 + 600 * S, &[(STATE, 2), (FAULT, 17)]);
    c.read(T0 + 720 * S, &[(STATE, 6), (FAULT, 0)]);
    let r = c.command(
        T0 + 730 * S,
        r#"{"correlation_id":"2","command":"downtime_reason","reason":"break"}"#,
    );
    assert!(r.accepted, "{r:?}");
    c.read(T0 + 780 * S, &[(STATE, 1)]);
    c.read(T0 + 1000 * S, &[(GOOD, 350), (SCRAP, 18)]);
    c.read(T0 + 1200 * S, &[(GOOD, 420), (SCRAP, 20)]);
    let r = c.command(
        T0 + 1200 * S,
        r#"{"correlation_id":"3","command":"stop","order_id":"WO-1"}"#,
    );
    assert!(r.accepted, "{r:?}");

    let jr = c.job_response();
    assert_eq!(
        (jr.state, jr.substate),
        (JobState::Ended, Some(SubState::Closed))
    );
    assert_eq!((jr.good, jr.scrap), (420, 20));
    assert_eq!((jr.started, jr.ended), (Some(T0), Some(T0 + 1200 * S)));
    use crate::cell::MachineState::*;
    let times: Vec<_> = jr.time_in_state_ms.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(
        times,
        vec![(Running, 1_020_000), (Down, 120_000), (PlannedStop, 60_000)]
    );
    let downtime: Vec<_> = jr
        .downtime_ms
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(downtime, vec![("break", 60_000), ("die jam", 120_000)]);
    let o = &jr.oee;
    assert_eq!(
        (o.planned_busy_ms, o.actual_production_ms),
        (1_140_000, 1_020_000)
    );
    assert_eq!(o.ideal_production_ms, 880_000.0);
    assert!((o.availability.unwrap() - 1020.0 / 1140.0).abs() < 1e-12);
    assert!((o.performance.unwrap() - 880.0 / 1020.0).abs() < 1e-12);
    assert!((o.quality.unwrap() - 420.0 / 440.0).abs() < 1e-12);
    assert!((o.oee.unwrap() - 14.0 / 19.0).abs() < 1e-12, "{:?}", o.oee);
}

#[test]
fn parts_with_no_order_running_go_to_the_no_order_bucket() {
    let mut c = Cell::new();
    c.read(T0, &[(GOOD, 0), (SCRAP, 0), (STATE, 1)]);
    c.read(T0 + S, &[(GOOD, 5), (SCRAP, 1)]);
    c.command(
        T0 + 2 * S,
        r#"{"correlation_id":"a","command":"store_and_start","order":{"id":"A","material":"x"}}"#,
    );
    c.read(T0 + 3 * S, &[(GOOD, 8)]);
    c.command(
        T0 + 4 * S,
        r#"{"correlation_id":"b","command":"pause","order_id":"A"}"#,
    );
    c.read(T0 + 5 * S, &[(GOOD, 10)]);
    let st = &c.engine.state;
    assert_eq!((st.orders.no_order_good, st.orders.no_order_scrap), (7, 1));
    assert_eq!(st.orders.get("A").unwrap().good, 3);
    assert_eq!(
        st.good_total, 10,
        "every part counted once, in one bucket or the other"
    );
}

#[test]
fn a_duplicate_is_answered_not_applied_and_an_invalid_command_changes_nothing() {
    let mut c = Cell::new();
    let store = r#"{"correlation_id":"x1","command":"store","order":{"id":"A","material":"x"}}"#;
    assert!(c.command(T0, store).accepted);
    let before = c.engine.state.orders.orders.clone();
    let again = c.command(T0 + S, store);
    assert!(again.accepted && again.duplicate);
    assert_eq!(c.engine.state.orders.orders, before);
    let r = c.command(
        T0 + 2 * S,
        r#"{"correlation_id":"x2","command":"resume","order_id":"A"}"#,
    );
    assert!(!r.accepted);
    assert_eq!(r.reason.as_deref(), Some("Resume is not allowed in state NotAllowedToStart (allowed: Update, Start, Abort, Cancel)"));
    assert_eq!(c.engine.state.orders.orders, before);
}

#[test]
fn auto_completion_at_the_target_starts_the_next_order() {
    let mut c = Cell::new();
    c.engine.model.orders.auto_complete = true;
    c.read(T0, &[(GOOD, 0), (STATE, 1)]);
    c.command(T0, r#"{"correlation_id":"1","command":"store_and_start","order":{"id":"A","material":"x","quantity":10}}"#);
    c.command(T0, r#"{"correlation_id":"2","command":"store_and_start","order":{"id":"B","material":"x","quantity":10}}"#);
    c.command(T0, r#"{"correlation_id":"3","command":"store_and_start","order":{"id":"C","material":"x","quantity":10}}"#);
    c.read(T0 + S, &[(GOOD, 12)]);
    let a = c.engine.state.orders.get("A").unwrap();
    assert_eq!(
        (a.state, a.substate, a.good),
        (JobState::Ended, Some(SubState::Completed), 12)
    );
    assert_eq!(
        c.engine.state.orders.get("B").unwrap().state,
        JobState::Running,
        "stored in the same ms: first come, first run"
    );
    assert_eq!(
        c.engine.state.orders.get("C").unwrap().state,
        JobState::AllowedToStart
    );
}

#[test]
fn a_shift_ends_with_its_final_oee_and_the_next_one_starts() {
    let shifts = "[shifts]\ntimezone = \"UTC\"\n[[shifts.shift]]\nname = \"early\"\nstart = \"06:00\"\nend = \"14:00\"\n\
                  [[shifts.shift]]\nname = \"late\"\nstart = \"14:00\"\nend = \"22:00\"\n";
    let mut c = Cell::with(shifts);
    let at = |s: &str| s.parse::<jiff::Timestamp>().unwrap().as_millisecond();
    c.read(at("2026-07-01T13:00:00Z"), &[(GOOD, 0), (STATE, 1)]);
    c.engine.tick(at("2026-07-01T13:00:00Z"), &mut c.events);
    c.command(at("2026-07-01T13:00:00Z"), r#"{"correlation_id":"1","command":"store_and_start","order":{"id":"A","material":"BRK-220"}}"#);
    c.read(at("2026-07-01T13:50:00Z"), &[(GOOD, 1000)]);
    c.engine.tick(at("2026-07-01T14:00:00Z"), &mut c.events);
    let finals: Vec<_> = c
        .events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Oee {
                id,
                is_final: true,
                figures,
                time_in_state_ms,
                ..
            } => Some((id.clone(), figures.clone(), time_in_state_ms.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(finals.len(), 1);
    let (name, figures, times) = &finals[0];
    assert_eq!(name, "early");
    // The order ran 13:00 to 14:00, all of it running; 1000 parts at an ideal 2 s = 2000 s of 3600.
    assert_eq!(
        times.get(&crate::cell::MachineState::Running),
        Some(&3_600_000)
    );
    assert_eq!(figures.good, 1000);
    assert!((figures.performance.unwrap() - 2000.0 / 3600.0).abs() < 1e-12);
    assert_eq!(c.engine.state.shift.as_ref().unwrap().shift.name, "late");
}

#[test]
fn late_readings_and_clock_steps_never_count_time_twice() {
    let mut c = Cell::new();
    c.read(T0, &[(GOOD, 0), (STATE, 1)]);
    c.command(
        T0,
        r#"{"correlation_id":"1","command":"store_and_start","order":{"id":"A","material":"x"}}"#,
    );
    c.command(
        T0 + 10 * S,
        r#"{"correlation_id":"2","command":"update","order":{"id":"A","material":"x"}}"#,
    );
    // A reading stamped before the last command: nothing is credited twice.
    c.read(T0 + 9 * S, &[(GOOD, 1)]);
    c.read(T0 + 20 * S, &[(GOOD, 2)]);
    // The clock steps back an hour: the hour is not credited again, accounting goes on from there.
    c.read(T0 - 3600 * S, &[(GOOD, 3)]);
    c.read(T0 - 3595 * S, &[(GOOD, 4)]);
    let running =
        c.engine.state.orders.get("A").unwrap().times[&crate::cell::MachineState::Running];
    assert_eq!(running, 25_000, "20 s before the step, 5 s after it");
}

/// The runtime is down for ten minutes while the order runs: those ten minutes are unobserved,
/// not running, in the machine_state intervals, the job response and OEE's inputs.
///   T0 -  10 s .. + 300 s  running (seen)
///   T0 + 300 s .. + 901 s  unobserved (the runtime stopped after its turn at +300 s, started
///                          again at +900 s, read the state word at +901 s)
///   T0 + 901 s .. +1200 s  running (seen)
/// Planned busy time = 1200 - 601 = 599 s, all of it running: availability 1.
#[test]
fn ten_minutes_with_the_runtime_down_are_unobserved_not_running() {
    let mut c = Cell::new();
    c.read(
        T0 - 10 * S,
        &[(GOOD, 0), (SCRAP, 0), (STATE, 1), (FAULT, 0)],
    );
    let r = c.command(T0, r#"{"correlation_id":"1","command":"store_and_start","order":{"id":"WO-1","material":"BRK-220","quantity":1000}}"#);
    assert!(r.accepted, "{r:?}");
    c.read(T0 + 300 * S, &[(GOOD, 135)]);
    c.engine.tick(T0 + 300 * S, &mut c.events);
    // Stopped here; started again from the committed state ten minutes later.
    let state = c.engine.state.clone();
    c.engine = Engine::new(c.engine.model.clone(), state);
    c.engine.resume_at(T0 + 900 * S, &mut c.events);
    c.read(T0 + 901 * S, &[(GOOD, 405), (STATE, 1)]);
    c.read(T0 + 1200 * S, &[(GOOD, 540)]);
    let r = c.command(
        T0 + 1200 * S,
        r#"{"correlation_id":"2","command":"stop","order_id":"WO-1"}"#,
    );
    assert!(r.accepted, "{r:?}");

    use crate::cell::MachineState::*;
    let intervals: Vec<_> = c
        .events
        .iter()
        .filter_map(|e| match e.body {
            EventBody::MachineState {
                state,
                previous,
                previous_duration_ms,
                ..
            } => Some((e.ts_ms - T0, previous, previous_duration_ms, state)),
            _ => None,
        })
        .collect();
    assert_eq!(
        intervals,
        vec![
            (-10 * S, Unknown, 0, Running),
            (300 * S, Running, 310 * S, Unobserved),
            (901 * S, Unobserved, 601 * S, Running),
        ]
    );
    let jr = c.job_response();
    assert_eq!(jr.good, 540, "the parts made while unobserved are counted");
    let times: Vec<_> = jr.time_in_state_ms.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(times, vec![(Running, 599_000), (Unobserved, 601_000)]);
    assert!(jr.downtime_ms.is_empty(), "{:?}", jr.downtime_ms);
    let o = &jr.oee;
    assert_eq!(
        (o.planned_busy_ms, o.actual_production_ms, o.unobserved_ms),
        (599_000, 599_000, 601_000)
    );
    assert_eq!(o.availability, Some(1.0));
}
