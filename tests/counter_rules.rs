//! The counter rules (docs/EVENTS.md "How counts are derived") against a pymodbus PLC whose
//! registers the test scripts the way field faults look on the wire: a gateway answering 0, a
//! part taken back, a real reset, a link loss, a 16-bit counter wrapping while the PLC is
//! unreachable, a reset while the runtime is down. The truth is what the PLC served; the
//! figure checked is the net MOM computes from what Mosquitto delivered.

mod common;

use common::cell::{write_config_with, Delivery, GOOD, SCRAP, TOPIC_FILTER};
use common::{Collector, ModbusPeer, Mosquitto, Plc, RuntimeProcess};
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_mes-edge");

struct Rig {
    _broker: Mosquitto,
    peer: ModbusPeer,
    plc: Plc,
    collector: Collector,
    _config: PathBuf,
    rt: RuntimeProcess,
    _dir: tempfile::TempDir,
}

impl Rig {
    /// A cell reading a PLC that starts with the good counter (u32) at `good` and the scrap
    /// counter (u16) at `scrap`; `scrap_settings` are more keys of `[signals.scrap_count]`.
    /// Returns once the runtime has taken its baseline.
    async fn start(good: u32, scrap: u16, scrap_settings: &str) -> Rig {
        let broker = Mosquitto::start();
        let peer = ModbusPeer::start_with_init(init(good, scrap));
        let plc = Plc::connect(peer.port(), 1).await;
        let collector = Collector::start(broker.port(), TOPIC_FILTER).await;
        let dir = tempfile::tempdir().unwrap();
        let config = write_config_with(dir.path(), peer.port(), broker.port(), "");
        let signal = "[signals.scrap_count]\ntag = \"scrap_count\"\n";
        let text = std::fs::read_to_string(&config).unwrap();
        assert!(text.contains(signal), "the press config's scrap signal");
        let text = text.replace(signal, &format!("{signal}{scrap_settings}"));
        std::fs::write(&config, text).unwrap();
        let rt = RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()]);
        let rig = Rig {
            _broker: broker,
            peer,
            plc,
            collector,
            _config: config,
            rt,
            _dir: dir,
        };
        rig.wait_events("device_status", 1).await;
        // A few polls (100 ms) more: the baseline is taken.
        tokio::time::sleep(Duration::from_millis(500)).await;
        rig
    }

    fn delivered(&self) -> Delivery {
        Delivery::of(&self.collector.snapshot())
    }

    async fn wait_events(&self, kind: &str, n: usize) {
        let ok = self
            .collector
            .wait_for(
                |m| Delivery::of(m).of_type(kind).count() >= n,
                Duration::from_secs(30),
            )
            .await;
        assert!(
            ok,
            "{n} {kind} events expected; runtime log:\n{}",
            self.rt.stderr()
        );
    }

    /// Waits until MOM's net count of `counter` is `n`, then a while longer to see that it
    /// stays there (nothing counted twice arrives late).
    async fn expect_net(&self, counter: &str, n: u64) -> Delivery {
        let ok = self
            .collector
            .wait_for(
                |m| Delivery::of(m).parts(counter) >= n,
                Duration::from_secs(30),
            )
            .await;
        let d = self.delivered();
        assert!(ok, "{counter}: net {} of {n}", d.parts(counter));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let d = self.delivered();
        assert_eq!(d.parts(counter), n, "{counter}: the net MOM computes");
        d.assert_gap_free();
        d
    }

    fn stop(&mut self) {
        assert!(self.rt.terminate().success(), "clean exit");
    }
}

fn init(good: u32, scrap: u16) -> serde_json::Value {
    json!({ "holding": { "0": [good >> 16, good & 0xFFFF, scrap, 1, 0] } })
}

fn rules_of(d: &Delivery, kind: &str) -> Vec<String> {
    d.of_type(kind)
        .map(|e| e["data"]["rule"].as_str().unwrap_or("-").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_reading_zero_for_half_a_second_is_a_glitch() {
    let mut rig = Rig::start(5_000, 0, "").await;
    rig.plc.write_u32(GOOD, 0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    rig.plc.write_u32(GOOD, 5_003).await;
    let d = rig.expect_net("good", 3).await;
    assert_eq!(d.of_type("counter_reset").count(), 0);
    let glitch = d
        .of_type("counter_glitch")
        .next()
        .expect("a counter_glitch event");
    assert_eq!(glitch["data"]["value"], 5_000);
    assert_eq!(glitch["data"]["low"], 0);
    rig.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_taken_back_and_made_again_nets_zero() {
    let mut rig = Rig::start(5_003, 0, "").await;
    rig.plc.write_u32(GOOD, 5_002).await;
    rig.wait_events("count_correction", 1).await;
    rig.plc.write_u32(GOOD, 5_003).await;
    rig.wait_events("part_count", 1).await;
    let d = rig.expect_net("good", 0).await;
    let c = d.of_type("count_correction").next().unwrap();
    assert_eq!(c["data"]["quantity"], -1);
    assert_eq!(c["data"]["previous_value"], 5_003);
    assert_eq!(d.of_type("counter_reset").count(), 0);
    rig.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_reset_that_stays_counts_every_part_after_it() {
    let mut rig = Rig::start(5_000, 0, "").await;
    // The PLC restarts its count: 0, then a part every 150 ms.
    rig.plc.write_u32(GOOD, 0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for n in 1..=20 {
        rig.plc.write_u32(GOOD, n).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let d = rig.expect_net("good", 20).await;
    assert_eq!(rules_of(&d, "counter_reset"), ["restarted_from_zero"]);
    assert_eq!(d.of_type("counter_glitch").count(), 0);
    rig.stop();
}

/// Reset to zero while the machine stands still: the PLC reports nothing more (the driver sends
/// changes only), and the drop is confirmed by time; the parts after it are counted from zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_while_the_machine_stands_still_is_confirmed_by_time() {
    let mut rig = Rig::start(5_000, 0, "").await;
    rig.plc.write_u32(GOOD, 0).await;
    rig.wait_events("counter_reset", 1).await;
    let d = rig.delivered();
    let reset = d.of_type("counter_reset").next().unwrap();
    assert_eq!(reset["data"]["rule"], "restarted_from_zero");
    assert_eq!(
        (reset["data"]["from"].as_u64(), reset["data"]["to"].as_u64()),
        (Some(5_000), Some(0))
    );
    for n in 1..=3 {
        rig.plc.write_u32(GOOD, n).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    rig.expect_net("good", 3).await;
    rig.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_returning_zeros_for_3_s_on_a_link_loss_counts_what_the_plc_made() {
    let mut rig = Rig::start(5_000, 100, "").await;
    // The gateway's downstream link is lost: it answers 0 for both counters for 3 s while the
    // machine makes 12 good and 2 scrap parts; then the PLC's real counters are back.
    rig.plc.write_u32(GOOD, 0).await;
    rig.plc.write_u16(SCRAP, 0).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    rig.plc.write_u32(GOOD, 5_012).await;
    rig.plc.write_u16(SCRAP, 102).await;
    let d = rig.expect_net("good", 12).await;
    assert_eq!(d.parts("scrap"), 2);
    assert_eq!(d.of_type("counter_reset").count(), 0);
    assert_eq!(d.of_type("counter_glitch").count(), 2);
    rig.stop();
}

/// A 16-bit scrap counter near its top, a steady rate, then 8 s with the PLC unreachable:
/// the counter wraps meanwhile by more parts than the rollover window (about 40 against 20).
/// The cell's rate over the unread time tells the wrap from a restart, and the reconnect
/// (evidence of a restart, rule 7) does not make the wrap one. Longer outages are the unit
/// test's (`a_u16_wrap_during_an_outage_is_told_from_a_restart_by_the_rate`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_u16_counter_wrapping_during_an_outage_is_counted_as_a_wrap() {
    let start: u16 = u16::MAX - 80;
    let mut rig = Rig::start(0, start, "rollover_window = 20\n").await;

    // 5 parts a second for 12 s: a rate window and more.
    let period = Duration::from_millis(200);
    let mut made: u64 = 0;
    let mut scrap = start;
    for _ in 0..60 {
        scrap = scrap.wrapping_add(1);
        made += 1;
        rig.plc.write_u16(SCRAP, scrap).await;
        tokio::time::sleep(period).await;
    }
    // Unreachable for 8 s, making parts at the same rate all along.
    rig.peer.stop();
    let outage = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let during = (outage.elapsed().as_millis() / period.as_millis()) as u64;
    made += during;
    scrap = scrap.wrapping_add(during as u16);
    assert!(scrap < start, "the counter wrapped during the outage");
    rig.peer
        .start_again_with_init(json!({ "holding": { "0": [0, 0, scrap, 1, 0] } }));
    rig.plc = Plc::connect(rig.peer.port(), 1).await;
    for _ in 0..15 {
        tokio::time::sleep(period).await;
        scrap = scrap.wrapping_add(1);
        made += 1;
        rig.plc.write_u16(SCRAP, scrap).await;
    }
    let d = rig.expect_net("scrap", made).await;
    assert!(
        d.of_type("part_count")
            .any(|e| e["data"]["rule"] == "rollover_while_unread"
                && e["data"]["rolled_over"] == true),
        "the wrap is counted by the rate rule: {:?}",
        rules_of(&d, "part_count")
    );
    assert_eq!(d.of_type("counter_reset").count(), 0);
    rig.stop();
}

/// The runtime is down while the PLC makes 7 parts and then restarts its counter from zero and
/// makes 4 more. What the runtime can know: the 4 (and everything after). The 7 made between
/// its last reading and the reset are lost; docs/EVENTS.md says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_while_the_runtime_is_down_loses_only_the_parts_before_the_reset() {
    let mut rig = Rig::start(5_000, 0, "").await;
    rig.rt.kill9();
    rig.plc.write_u32(GOOD, 5_007).await;
    rig.plc.write_u32(GOOD, 0).await;
    rig.plc.write_u32(GOOD, 4).await;
    rig.rt.start_again();
    tokio::time::sleep(Duration::from_secs(2)).await;
    for n in 5..=10 {
        rig.plc.write_u32(GOOD, n).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let d = rig.expect_net("good", 10).await;
    assert_eq!(rules_of(&d, "counter_reset"), ["restarted_from_zero"]);
    rig.stop();
}

/// A scrap counter at 1; the PLC restarts (kill -9, back with its scrap counter at zero) and
/// makes one scrap part within the confirmation window: the runtime reads 1, 0, 1. Alone, those
/// readings are a gateway's glitch; but the device went offline and came back between the 1 and
/// the 0, which a glitch does not do (docs/EVENTS.md rule 7): MOM gets the part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_to_zero_to_one_across_a_plc_restart_counts_the_part() {
    let mut rig = Rig::start(5_000, 1, "").await;
    rig.peer.kill9();
    rig.wait_events("device_status", 2).await;
    // The good counter is retentive; the scrap counter is not.
    rig.peer.start_again_with_init(init(5_000, 0));
    rig.wait_events("device_status", 3).await;
    let held = rig
        .rt
        .wait_for_output("held until confirmed", Duration::from_secs(10))
        .await;
    assert!(held, "the runtime read the 0\n{}", rig.rt.logs());
    rig.plc.write_u16(SCRAP, 1).await;
    let d = rig.expect_net("scrap", 1).await;
    assert_eq!(d.parts("good"), 0);
    assert_eq!(d.of_type("counter_glitch").count(), 0);
    let reset = d.of_type("counter_reset").next().expect("a counter_reset");
    assert_eq!(reset["data"]["counter"], "scrap");
    assert_eq!(reset["data"]["rule"], "restarted_from_zero");
    assert_eq!(reset["data"]["evidence"], "session_restarted");
    // Counted with the reset, within its window: the 1 was the part, not a reading after a
    // reset confirmed by time.
    assert_eq!(reset["data"]["counted"], 1);
    let part = d.of_type("part_count").next().unwrap();
    assert_eq!(part["data"]["evidence"], "session_restarted");
    rig.stop();
}
