//! The PLC (pymodbus) killed and restarted: once with its counters retained (restored from the
//! last values, as a PLC with retentive memory does), once with everything back at zero.

use crate::common::cell::GOOD;
use crate::plant::{Options, Plant};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plc_killed_and_restarted_with_counters_kept_or_reset() {
    let mut plant = Plant::start("PLC restart", Options::default()).await;
    plant.order_step().await;
    plant.wait_replied().await;

    // Retentive counters: the PLC comes back with the values it had.
    plant.machine().pause().await;
    let r = plant.machine().registers();
    plant.peer.kill9();
    plant.faults += 1;
    // The PLC's outage, both times: 2 s away.
    tokio::time::sleep(Duration::from_secs(2)).await;
    plant.peer.start_again_with_init(json!({
        "holding": { GOOD.to_string(): [(r.good >> 16) as u16, r.good as u16, r.scrap, r.state, r.fault] }
    }));
    plant.wait_online(2).await;
    plant.machine().resume();
    // The machine runs 3 s on the restored counters: parts to count across the restart.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Everything back at zero: the runtime reports a reset and counts what was made since.
    plant.pause_and_settle().await;
    plant.peer.kill9();
    plant.faults += 1;
    tokio::time::sleep(Duration::from_secs(2)).await;
    plant.peer.start_again_with_init(json!({}));
    plant.machine().jump_to(0, 0).await;
    plant.wait_online(3).await;
    plant.machine().resume();
    plant.order_step().await;
    // And 3 s from zero: with the first run, the 100 parts and more checked below.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let report = plant.finish(2, None).await;
    assert!(report.good > 100, "the machine ran: {} parts", report.good);
    let resets: Vec<_> = report.of_type("counter_reset").collect();
    assert_eq!(
        resets.len(),
        2,
        "one reset per counter, at the restart without retained counters: {resets:?}"
    );
}
