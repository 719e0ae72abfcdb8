//! The counter rules that need no real PLC, in virtual time: a Modbus press (a u32 good counter,
//! a u16 scrap counter) polled every 100 ms as the driver does (changes only, bad tags and
//! device status while it is unreachable), the engine ticking every second as its loop does.
//! Seconds of confirmation windows, rate windows and outages pass without sleeping; the PLC
//! tests (tests/plc/counter_rules.rs) keep what only a PLC on the wire shows.

use crate::cell::{CellModel, CellState, Engine};
use crate::event::{CounterKind, NewEvent};
use mes_edge_drivers::{DeviceEvent, DeviceId, DeviceStatus, Quality, Sample, TagId, Value};

const GOOD: CounterKind = CounterKind::Good;
const SCRAP: CounterKind = CounterKind::Scrap;

/// The scrap counter, a u16 read in the same poll as the good counter (config::test_cell's).
const SCRAP_TAG: &str = r#"
[[devices.tags]]
name = "scrap"
table = "holding"
address = 2
type = "u16"
"#;

const POLL_MS: i64 = 100;
const TICK_MS: i64 = 1_000;

/// The press, its PLC's registers, and the cell reading them on a clock the test moves.
struct Press {
    engine: Engine,
    now: i64,
    /// What the PLC's registers hold: good, scrap.
    plc: [u64; 2],
    /// What the driver last handed on (changes only); None while unreachable.
    sent: [Option<u64>; 2],
    reachable: bool,
    events: Vec<NewEvent>,
}

impl Press {
    /// Read once at `good` and `scrap` (the baselines); `scrap_settings` are more keys of
    /// `[signals.scrap_count]`.
    fn start(good: u64, scrap: u64, scrap_settings: &str) -> Press {
        let signal = format!("\n[signals.scrap_count]\ntag = \"scrap\"\n{scrap_settings}\n");
        let config = crate::config::test_cell(SCRAP_TAG, &signal);
        let engine = Engine::new(CellModel::from_config(&config), CellState::default());
        let mut p = Press {
            engine,
            now: 1_800_000_000_000,
            plc: [good, scrap],
            sent: [None, None],
            reachable: true,
            events: Vec::new(),
        };
        p.status(DeviceStatus::Online);
        p.poll();
        p
    }

    fn status(&mut self, status: DeviceStatus) {
        let ev = DeviceEvent::Status {
            device: DeviceId(0),
            status,
            ts_ms: self.now,
        };
        self.engine.apply(&ev, &mut self.events);
    }

    /// One poll: the registers that changed since the driver last handed them on.
    fn poll(&mut self) {
        let changed: Vec<usize> = (0..2)
            .filter(|&i| self.sent[i] != Some(self.plc[i]))
            .collect();
        let mut samples = Vec::new();
        for i in changed {
            self.sent[i] = Some(self.plc[i]);
            samples.push(Sample {
                tag: TagId(i as u32),
                value: Some(Value::UInt(self.plc[i])),
                quality: Quality::Good,
                ts_ms: self.now,
                source_ts_ms: None,
            });
        }
        if !samples.is_empty() {
            let ev = DeviceEvent::Samples {
                device: DeviceId(0),
                samples,
            };
            self.engine.apply(&ev, &mut self.events);
        }
    }

    /// `ms` of virtual time: a poll every 100 ms while reachable, a tick every second.
    fn pass(&mut self, ms: i64) {
        let end = self.now + ms;
        while self.now < end {
            self.now += POLL_MS;
            if self.reachable {
                self.poll();
            }
            if self.now % TICK_MS == 0 {
                self.engine.set_now(self.now);
                self.engine.tick(self.now, &mut self.events);
            }
        }
    }

    /// The PLC becomes unreachable: the device goes offline, its tags bad.
    fn unreachable(&mut self) {
        self.reachable = false;
        self.status(DeviceStatus::Offline {
            reason: mes_edge_drivers::DriverError::transient(
                "connect to 127.0.0.1:502: Connection refused",
            ),
        });
        let samples = (0..2)
            .map(|i| Sample {
                tag: TagId(i),
                value: None,
                quality: Quality::Bad,
                ts_ms: self.now,
                source_ts_ms: None,
            })
            .collect();
        let ev = DeviceEvent::Samples {
            device: DeviceId(0),
            samples,
        };
        self.engine.apply(&ev, &mut self.events);
        self.sent = [None, None];
    }

    fn reachable_again(&mut self) {
        self.reachable = true;
        self.poll();
        self.status(DeviceStatus::Online);
    }

    /// MOM's net of a counter.
    fn net(&self, kind: CounterKind) -> i64 {
        crate::cell::net(&self.events, kind)
    }

    fn count(&self, kind: &str) -> usize {
        self.events.iter().filter(|e| e.body.kind() == kind).count()
    }

    fn rules(&self, kind: &str) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e.body.kind() == kind)
            .filter_map(|e| serde_json::to_value(&e.body).ok())
            .map(|v| v["data"]["rule"].as_str().unwrap_or("-").to_string())
            .collect()
    }
}

#[test]
fn a_counter_reading_zero_for_half_a_second_is_a_glitch() {
    let mut p = Press::start(5_000, 0, "");
    p.plc[0] = 0;
    p.pass(500);
    p.plc[0] = 5_003;
    p.pass(2_000);
    assert_eq!(p.net(GOOD), 3);
    assert_eq!(p.count("counter_glitch"), 1);
    assert_eq!(p.count("counter_reset"), 0);
}

#[test]
fn a_gateway_returning_zeros_for_3_s_on_a_link_loss_counts_what_the_plc_made() {
    let mut p = Press::start(5_000, 100, "");
    p.plc = [0, 0];
    p.pass(3_000);
    p.plc = [5_012, 102];
    p.pass(2_000);
    assert_eq!((p.net(GOOD), p.net(SCRAP)), (12, 2));
    assert_eq!(p.count("counter_glitch"), 2);
    assert_eq!(p.count("counter_reset"), 0);
}

#[test]
fn a_real_reset_that_stays_counts_every_part_after_it() {
    let mut p = Press::start(5_000, 0, "");
    p.plc[0] = 0;
    p.pass(300);
    for n in 1..=20 {
        p.plc[0] = n;
        p.pass(150);
    }
    p.pass(6_000);
    assert_eq!(p.net(GOOD), 20);
    assert_eq!(p.rules("counter_reset"), ["restarted_from_zero"]);
    assert_eq!(p.count("counter_glitch"), 0);
}

/// The PLC reports nothing more after the drop (changes only): it is confirmed by time, at
/// the engine's tick once `confirm_ms` (5 s) has passed, and the parts after it count from 0.
#[test]
fn a_reset_while_the_machine_stands_still_is_confirmed_by_time() {
    let mut p = Press::start(5_000, 0, "");
    p.plc[0] = 0;
    p.pass(5_000);
    assert_eq!(
        p.count("counter_reset"),
        0,
        "not before confirm_ms since it was read"
    );
    p.pass(1_000);
    assert_eq!(p.rules("counter_reset"), ["restarted_from_zero"]);
    for n in 1..=3 {
        p.plc[0] = n;
        p.pass(150);
    }
    assert_eq!(p.net(GOOD), 3);
}

/// A 16-bit scrap counter near its top, 5 parts a second, then the PLC unreachable while the
/// counter wraps by more parts than the rollover window: the cell's rate over the unread time
/// tells the wrap from a restart, and the reconnect (evidence of a restart, rule 7) does not
/// make the wrap one. The PLC test used to sleep through 12 s of production and 8 s away.
#[test]
fn a_u16_counter_wrapping_during_an_outage_is_counted_as_a_wrap() {
    for outage_ms in [8_000, 30_000] {
        let start = u16::MAX as u64 - 80;
        let mut p = Press::start(0, start, "rollover_window = 20");
        let mut made = 0;
        let mut part = |p: &mut Press| {
            p.plc[1] = (p.plc[1] + 1) % 65_536;
            made += 1;
            p.pass(200);
        };
        for _ in 0..60 {
            part(&mut p);
        }
        p.unreachable();
        for _ in 0..outage_ms / 200 {
            part(&mut p);
        }
        assert!(p.plc[1] < start, "the counter wrapped during the outage");
        p.reachable_again();
        for _ in 0..15 {
            part(&mut p);
        }
        p.pass(6_000);
        assert_eq!(p.net(SCRAP), made as i64, "after {outage_ms} ms away");
        assert!(p
            .rules("part_count")
            .contains(&"rollover_while_unread".into()));
        assert_eq!(p.count("counter_reset"), 0);
    }
}
