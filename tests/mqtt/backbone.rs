//! The backbone end to end, against peers we did not write: a pymodbus server as the PLC and
//! Mosquitto as the plant's broker. The runtime is the real binary, killed and restarted the way
//! a line-side PC would do it to it. The kill -9 and broker-restart scenarios run against
//! RabbitMQ's MQTT plugin as well (MQTT 3.1.1 only, so the cell is set to `protocol_version =
//! "3.1.1"` there).

use crate::common;

use common::cell::{
    write_config, write_config_with, Delivery, FAULT, GOOD, SCRAP, STATE, TOPIC_FILTER,
};
use common::{Broker, Collector, ModbusPeer, Mosquitto, Plc, RabbitMq, Received, RuntimeProcess};

/// The cell's setting for RabbitMQ: its MQTT plugin speaks 3.1.1 only.
const FOR_RABBITMQ: &str = "protocol_version = \"3.1.1\"";
use std::path::Path;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_mes-edge");

fn run_cell(config: &Path) -> RuntimeProcess {
    RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()])
}

fn device_statuses(msgs: &[Received]) -> Vec<bool> {
    let d = Delivery::of(msgs);
    d.of_type("device_status")
        .map(|e| e["data"]["online"].as_bool().unwrap())
        .collect()
}

/// Waits for the cell's device to be online `n` times: from then on the runtime has read the
/// counters, so parts made afterwards are counted from that baseline.
async fn wait_online(c: &Collector, n: usize) {
    let ok = c
        .wait_for(
            |m| device_statuses(m).iter().filter(|o| **o).count() >= n,
            Duration::from_secs(20),
        )
        .await;
    assert!(
        ok,
        "device not online (#{n}); got {:?}",
        device_statuses(&c.snapshot())
    );
}

async fn wait_parts(c: &Collector, good: u64, scrap: u64, timeout: Duration) -> Delivery {
    c.wait_for(
        |m| {
            let d = Delivery::of(m);
            d.parts("good") >= good && d.parts("scrap") >= scrap
        },
        timeout,
    )
    .await;
    Delivery::of(&c.snapshot())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_counted_end_to_end_equal_the_plc_across_counter_rollover() {
    let broker = Mosquitto::start();
    let peer = ModbusPeer::start();
    let mut plc = Plc::connect(peer.port(), 1).await;
    // Both counters start just below the top of their range.
    let (mut good, mut scrap) = (u32::MAX - 20, 65_500u16);
    plc.write_u32(GOOD, good).await;
    plc.write_u16(SCRAP, scrap).await;
    let collector = Collector::start(broker.port(), TOPIC_FILTER).await;
    let dir = tempfile::tempdir().unwrap();
    let mut rt = run_cell(&write_config(dir.path(), peer.port(), broker.port()));
    wait_online(&collector, 1).await;

    for i in 0..60 {
        scrap = scrap.wrapping_add(1);
        plc.write_u16(SCRAP, scrap).await;
        if i < 50 {
            good = good.wrapping_add(1);
            plc.write_u32(GOOD, good).await;
        }
        tokio::time::sleep(Duration::from_millis(37)).await;
    }
    let d = wait_parts(&collector, 50, 60, Duration::from_secs(30)).await;
    d.assert_gap_free();
    assert_eq!(
        (d.parts("good"), d.parts("scrap")),
        (50, 60),
        "counted what the PLC counted"
    );
    for counter in ["good", "scrap"] {
        assert!(
            d.of_type("part_count")
                .any(|e| e["data"]["counter"] == counter && e["data"]["rolled_over"] == true),
            "{counter} rolled over"
        );
    }
    assert_eq!(
        d.of_type("counter_reset").count(),
        0,
        "a rollover is not a reset"
    );
    // Nothing more arrives once the PLC stops counting.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let after = Delivery::of(&collector.snapshot());
    assert_eq!((after.parts("good"), after.parts("scrap")), (50, 60));
    assert!(rt.terminate().success(), "clean exit on SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_down_for_30_s_loses_nothing_and_delivers_in_sequence_order() {
    let state = tempfile::tempdir().unwrap();
    // The broker keeps sessions across its restart, so the MOM-side collector misses nothing
    // while it reconnects; the runtime must not rely on that (it re-publishes from its store).
    let broker_conf = format!(
        "persistence true\npersistence_location {}/\n",
        state.path().display()
    );
    let broker = Mosquitto::start_with_config(&broker_conf);
    broker_down_for_30_s(broker, "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_down_for_30_s_loses_nothing_and_delivers_in_sequence_order() {
    // RabbitMQ keeps durable sessions (queues) in its database across a restart.
    broker_down_for_30_s(RabbitMq::start(), FOR_RABBITMQ).await;
}

async fn broker_down_for_30_s(mut broker: impl Broker, mqtt_extra: &str) {
    let peer = ModbusPeer::start();
    let mut plc = Plc::connect(peer.port(), 1).await;
    let collector = Collector::start_persistent(broker.port(), TOPIC_FILTER, "mom-collector").await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_with(dir.path(), peer.port(), broker.port(), mqtt_extra);
    let mut rt = run_cell(&config);
    wait_online(&collector, 1).await;

    let (mut good, mut scrap) = (0u32, 0u16);
    for _ in 0..20 {
        good += 1;
        plc.write_u32(GOOD, good).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    broker.stop();
    let outage = tokio::time::Instant::now();
    while outage.elapsed() < Duration::from_secs(30) {
        good += 1;
        plc.write_u32(GOOD, good).await;
        if good % 10 == 0 {
            scrap += 1;
            plc.write_u16(SCRAP, scrap).await;
            plc.write_u16(STATE, if scrap % 2 == 0 { 1 } else { 2 })
                .await;
        }
        tokio::time::sleep(Duration::from_millis(110)).await;
    }
    // The backlog is in the store, undelivered.
    let stats = std::process::Command::new(BIN)
        .args(["outbox", "stats", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let stats = String::from_utf8_lossy(&stats.stdout).to_string();
    let depth: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("depth (undelivered):"))
        .unwrap_or_else(|| panic!("no depth in {stats}"))
        .trim()
        .parse()
        .unwrap();
    assert!(
        depth >= 200,
        "expected the outage's events waiting in the store, got {depth}:\n{stats}"
    );

    broker.start_again();
    let d = wait_parts(
        &collector,
        good as u64,
        scrap as u64,
        Duration::from_secs(90),
    )
    .await;
    if d.parts("good") != good as u64 {
        eprintln!("{}\n{}", rt.logs(), broker.logs());
    }
    d.assert_gap_free();
    assert_eq!(
        (d.parts("good"), d.parts("scrap")),
        (good as u64, scrap as u64)
    );
    let mut sorted = d.first_arrivals.clone();
    sorted.sort_unstable();
    assert_eq!(
        d.first_arrivals, sorted,
        "events first arrived in sequence order"
    );
    assert!(rt.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_parts_are_made_neither_loses_nor_double_counts() {
    kill_9_while_parts_are_made(Mosquitto::start(), "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_rabbitmq_neither_loses_nor_double_counts() {
    kill_9_while_parts_are_made(RabbitMq::start(), FOR_RABBITMQ).await;
}

async fn kill_9_while_parts_are_made(broker: impl Broker, mqtt_extra: &str) {
    let peer = ModbusPeer::start();
    let collector = Collector::start(broker.port(), TOPIC_FILTER).await;
    let dir = tempfile::tempdir().unwrap();
    let mut rt = run_cell(&write_config_with(
        dir.path(),
        peer.port(),
        broker.port(),
        mqtt_extra,
    ));
    wait_online(&collector, 1).await;

    // The machine: a part every 15 ms, every seventh one scrap, until told to stop.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let machine = {
        let (stop, port) = (stop.clone(), peer.port());
        tokio::spawn(async move {
            let mut plc = Plc::connect(port, 1).await;
            let (mut good, mut scrap) = (0u32, 0u16);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if (good + scrap as u32) % 7 == 6 {
                    scrap += 1;
                    plc.write_u16(SCRAP, scrap).await;
                } else {
                    good += 1;
                    plc.write_u32(GOOD, good).await;
                }
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            (good as u64, scrap as u64)
        })
    };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("kill -9 schedule seed: {seed}");
    let mut rng = seed | 1;
    let mut next = |lo: u64, hi: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        lo + rng % (hi - lo)
    };
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(next(200, 1500))).await;
        rt.kill9();
        tokio::time::sleep(Duration::from_millis(next(0, 500))).await;
        rt.start_again();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (good, scrap) = machine.await.unwrap();
    assert!(good > 100, "the machine ran");

    let d = wait_parts(&collector, good, scrap, Duration::from_secs(30)).await;
    if (d.parts("good"), d.parts("scrap")) != (good, scrap) {
        eprintln!("{}\n{}", rt.logs(), broker.logs());
    }
    d.assert_gap_free();
    assert_eq!(
        (d.parts("good"), d.parts("scrap")),
        (good, scrap),
        "exact counts after 6 kills"
    );
    assert_eq!(d.of_type("counter_reset").count(), 0);
    println!(
        "{} events, {} re-sent duplicates",
        d.by_seq.len(),
        d.duplicates
    );
    assert!(rt.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plc_restart_is_an_offline_event_then_recovery_without_phantom_counts() {
    let broker = Mosquitto::start();
    let mut peer = ModbusPeer::start();
    let mut plc = Plc::connect(peer.port(), 1).await;
    plc.write_u16(STATE, 1).await;
    let collector = Collector::start(broker.port(), TOPIC_FILTER).await;
    let dir = tempfile::tempdir().unwrap();
    let mut rt = run_cell(&write_config(dir.path(), peer.port(), broker.port()));
    wait_online(&collector, 1).await;

    for good in 1..=10 {
        plc.write_u32(GOOD, good).await;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    wait_parts(&collector, 10, 0, Duration::from_secs(10)).await;

    // The PLC restarts: its registers come back as zero.
    peer.stop();
    let offline = collector
        .wait_for(
            |m| device_statuses(m).contains(&false),
            Duration::from_secs(10),
        )
        .await;
    assert!(offline, "an offline event while the PLC is down");
    tokio::time::sleep(Duration::from_secs(1)).await;
    peer.start_again();
    wait_online(&collector, 2).await;
    let mut plc = Plc::connect(peer.port(), 1).await;
    plc.write_u16(STATE, 2).await;
    plc.write_u16(FAULT, 17).await;
    for good in 1..=5 {
        plc.write_u32(GOOD, good).await;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    wait_parts(&collector, 15, 0, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;

    let d = Delivery::of(&collector.snapshot());
    d.assert_gap_free();
    assert_eq!(
        d.parts("good"),
        15,
        "10 before the restart and 5 after, nothing phantom"
    );
    assert_eq!(
        device_statuses(&collector.snapshot()),
        vec![true, false, true]
    );
    let resets: Vec<_> = d
        .of_type("counter_reset")
        .map(|e| (e["data"]["from"].as_u64(), e["data"]["to"].as_u64()))
        .collect();
    assert_eq!(
        resets,
        vec![(Some(10), Some(0))],
        "the PLC's counter went back to zero: a reset, not a count"
    );
    let states: Vec<_> = d
        .of_type("machine_state")
        .map(|e| e["data"]["state"].as_str().unwrap().to_string())
        .collect();
    assert!(
        states.ends_with(&["unknown".into(), "idle".into(), "down".into()]),
        "unknown while offline, then the state word again: {states:?}"
    );
    let down = d.of_type("machine_state").last().unwrap();
    assert_eq!(down["data"]["fault_code"], 17);
    assert!(rt.terminate().success());
}
