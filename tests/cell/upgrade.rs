//! An upgrade counts nothing twice: a store written by the previous release's binary
//! (tests/fixtures/previous-release: mid-order, down with an open stop, 36 events undelivered,
//! killed with SIGKILL) opened by this build against the same pymodbus PLC and Mosquitto. The
//! counters carry on from their baselines under the new rules, the order keeps its counts, the
//! open stop its reason, and every undelivered event is sent.

use crate::common;

use common::cell::{write_config, Delivery, GOOD, SCRAP, STATE, TOPIC_FILTER};
use common::{Collector, ModbusPeer, Mosquitto, Plc, RuntimeProcess};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_mes-edge");
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/previous-release"
);

fn orders(config: &Path, args: &[&str]) {
    common::runtime::orders_cli(BIN, config, args);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_of_the_previous_release_counts_on_exactly() {
    let plc_then: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{FIXTURE}/plc.json")).unwrap())
            .unwrap();
    let (good0, scrap0) = (
        plc_then["good"].as_u64().unwrap() as u32,
        plc_then["scrap"].as_u64().unwrap() as u16,
    );
    let broker = Mosquitto::start();
    // The PLC as the old binary last read it: counters where they were, down with fault 17.
    let peer = ModbusPeer::start_with_init(json!({
        "holding": { "0": [good0 >> 16, good0 & 0xFFFF, scrap0, 2, 17] }
    }));
    let mut plc = Plc::connect(peer.port(), 1).await;
    let collector = Collector::start(broker.port(), TOPIC_FILTER).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(format!("{FIXTURE}/store.db"), dir.path().join("cell.db")).unwrap();
    let config = write_config(dir.path(), peer.port(), broker.port());
    let mut rt = RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()]);

    // Everything the old binary committed and never delivered arrives.
    let old = collector
        .wait_for(
            |m| Delivery::of(m).of_type("part_count").count() >= 30,
            Duration::from_secs(30),
        )
        .await;
    assert!(old, "the old store's undelivered events\n{}", rt.logs());
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The machine runs again and makes 10 good and 2 scrap parts.
    plc.write_u16s(STATE, &[1, 0]).await;
    let (mut good, mut scrap) = (good0, scrap0);
    for i in 0..10 {
        good += 1;
        plc.write_u32(GOOD, good).await;
        if i % 5 == 4 {
            scrap += 1;
            plc.write_u16(SCRAP, scrap).await;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let made = plc_then["made_in_order"].clone();
    let (good_in_order, scrap_in_order) = (
        made["good"].as_u64().unwrap() + 10,
        made["scrap"].as_u64().unwrap() + 2,
    );
    let counted = collector
        .wait_for(
            |m| Delivery::of(m).parts("good") >= good_in_order,
            Duration::from_secs(20),
        )
        .await;
    assert!(counted, "{}", rt.logs());
    orders(&config, &["stop", "WO-OLD"]);
    let ended = collector
        .wait_for(
            |m| Delivery::of(m).of_type("job_response").count() >= 1,
            Duration::from_secs(20),
        )
        .await;
    assert!(ended, "the job response of WO-OLD\n{}", rt.logs());

    let d = Delivery::of(&collector.snapshot());
    d.assert_gap_free();

    assert_eq!(d.parts("good"), good_in_order);
    assert_eq!(d.parts("scrap"), scrap_in_order);
    assert_eq!(
        d.of_type("counter_reset").count(),
        0,
        "the baselines carried on"
    );
    let response = d.of_type("job_response").next().unwrap();
    assert_eq!(response["data"]["order_id"], "WO-OLD");
    assert_eq!(response["data"]["good"], good_in_order);
    assert_eq!(response["data"]["scrap"], scrap_in_order);
    assert!(
        response["data"]["downtime_ms"]["die jam"]
            .as_i64()
            .unwrap_or(0)
            > 0,
        "the open stop kept its reason: {}",
        response["data"]
    );
    let back = d
        .of_type("machine_state")
        .filter(|e| e["data"]["state"] == "running")
        .last()
        .expect("running again");
    assert_eq!(back["data"]["previous_reason"], "die jam");
    assert!(rt.terminate().success());
}
