//! A clean stop (SIGTERM, what systemd sends): polling stops, what is in flight is committed,
//! the broker gets a bounded time to acknowledge, and the process exits 0 well inside the unit's
//! TimeoutStopSec (30 s). No committed event is lost: what the broker did not acknowledge is
//! delivered after the next start. The real binary against Mosquitto and a pymodbus PLC; a TCP
//! relay in front of the broker can freeze so that acknowledgements never come.

use crate::common;
use crate::ops_support;

use common::cell::{write_config, Delivery, GOOD, TOPIC_FILTER};
use common::{eventually, Collector, ModbusPeer, Mosquitto, Plc, RuntimeProcess};
use ops_support::{outbox_stats, wait_online, Relay, BIN};
use std::path::Path;
use std::time::{Duration, Instant};

/// The unit's TimeoutStopSec; a stop must end well inside it.
const TIMEOUT_STOP: Duration = Duration::from_secs(30);

/// Waits until the store's last sequence number has stopped moving for a while.
async fn committed_and_settled(config: &Path) -> (u64, u64) {
    let mut last = outbox_stats(config);
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = outbox_stats(config);
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() > Duration::from_millis(700) {
            return last;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_with_events_in_flight_exits_0_in_time_and_loses_none() {
    let broker = Mosquitto::start();
    let relay = Relay::start(broker.port()).await;
    let peer = ModbusPeer::start();
    let mut plc = Plc::connect(peer.port(), 1).await;
    let collector = Collector::start(broker.port(), TOPIC_FILTER).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), peer.port(), relay.port());
    let mut rt = RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()]);
    wait_online(&collector, 1).await;

    // 1. The broker stops acknowledging (connection open, nothing comes back). Parts are made
    //    and committed; their publishes are in flight when SIGTERM comes.
    relay.freeze(true);
    let mut good = 0u32;
    for _ in 0..30 {
        good += 1;
        plc.write_u32(GOOD, good).await;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (depth, last_seq) = committed_and_settled(&config).await;
    assert!(
        depth > 0,
        "events committed and not acknowledged: depth {depth}"
    );
    let started = Instant::now();
    let status = rt.terminate();
    let took = started.elapsed();
    assert!(
        status.success(),
        "exit 0 on SIGTERM: {status}\n{}",
        rt.logs()
    );
    assert!(
        took < Duration::from_secs(10),
        "stopped in {took:?}, well inside {TIMEOUT_STOP:?}"
    );
    assert!(rt.stderr().contains("stopped"), "{}", rt.logs());
    assert_eq!(
        outbox_stats(&config),
        (depth, last_seq),
        "nothing unacknowledged was marked delivered"
    );

    // 2. The broker is back; the next start delivers everything, in order, once per seq.
    relay.freeze(false);
    rt.start_again();
    let all = collector
        .wait_for(
            |m| Delivery::of(m).by_seq.len() as u64 >= last_seq,
            Duration::from_secs(20),
        )
        .await;
    assert!(
        all,
        "all {last_seq} committed events delivered after the restart\n{}",
        rt.logs()
    );
    let d = Delivery::of(&collector.snapshot());
    d.assert_gap_free();
    assert_eq!(d.parts("good"), good as u64, "every part, once");

    // 3. SIGTERM in the middle of production, broker answering: what was committed is
    //    acknowledged before the exit; parts not yet read are counted at the next start.
    let writer = {
        let mut plc = Plc::connect(peer.port(), 1).await;
        tokio::spawn(async move {
            for _ in 0..40 {
                good += 1;
                plc.write_u32(GOOD, good).await;
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            good
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    assert!(rt.terminate().success(), "exit 0\n{}", rt.logs());
    assert!(started.elapsed() < Duration::from_secs(10));
    let good = writer.await.unwrap();
    let (depth, _) = outbox_stats(&config);
    assert_eq!(
        depth, 0,
        "the live broker acknowledged every committed event before the exit"
    );
    rt.start_again();
    let counted = collector
        .wait_for(
            |m| Delivery::of(m).parts("good") >= good as u64,
            Duration::from_secs(20),
        )
        .await;
    assert!(
        counted,
        "parts made around the stop counted after the start\n{}",
        rt.logs()
    );
    let settled = eventually(Duration::from_secs(5), || outbox_stats(&config).0 == 0).await;
    assert!(settled);
    let d = Delivery::of(&collector.snapshot());
    d.assert_gap_free();
    assert_eq!(d.parts("good"), good as u64, "every part, once");
    assert!(rt.terminate().success());
}
