//! A controller whose clock is wrong, against the asyncua peer (it stamps values with the
//! source timestamps the test asks for) and Mosquitto: an hour ahead (set to local time), an
//! hour behind, and the last second of year 9999. Time in state is accounted on the runtime's
//! clock, so an order's time matches the time that passed on the PC (within 5% of the span
//! between the command round trips); the device's timestamp
//! is kept as information and its skew raises one `clock_skew` warning; the runtime runs on.

use crate::common;
use crate::ops_support;

use common::cell::{Delivery, TOPIC_FILTER};
use common::opcua::{device_section, write_cell_config, OpcUaOptions, OpcUaPeer};
use common::{Collector, Mosquitto, RuntimeProcess};
use ops_support::{sample, scrape, with_health};
use std::path::Path;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mes-edge");

fn orders(config: &Path, args: &[&str]) {
    common::runtime::orders_cli(BIN, config, args);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_in_state_follows_the_runtimes_clock_whatever_the_controllers_clock_says() {
    let broker = Mosquitto::start();
    let mut peer = OpcUaPeer::start(OpcUaOptions::default());
    peer.set("State", 1);
    let collector = Collector::start(broker.port(), TOPIC_FILTER).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_cell_config(
        dir.path(),
        &device_section(&peer.endpoint(), "clock_tolerance_ms = 5000"),
        2,
        broker.port(),
    );
    let health = with_health(&config);
    let mut rt = RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()]);
    let online = collector
        .wait_for(
            |m| Delivery::of(m).of_type("device_status").count() >= 1,
            Duration::from_secs(30),
        )
        .await;
    assert!(online, "device online\n{}", rt.logs());

    let mut good = 0u32;
    for (i, clock) in ["3600", "-3600", "max"].into_iter().enumerate() {
        peer.clock(clock);
        let id = format!("WO-{i}");
        // The order's time lies between the command round trips: at least from the start's
        // reply to the stop's request, at most from the start's request to the stop's reply.
        let t0 = Instant::now();
        orders(&config, &["store", &id, "--material", "M", "--start"]);
        let t1 = Instant::now();
        // 6 s: running, down for 2 s, running again; a part every 200 ms while running.
        for step in 0..30 {
            peer.set("State", if (10..20).contains(&step) { 2 } else { 1 });
            if !(10..20).contains(&step) {
                good += 1;
                peer.set("GoodCount", good);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let t2 = Instant::now();
        orders(&config, &["stop", &id]);
        let (least, most) = (
            (t2 - t1).as_millis() as f64 * 0.95,
            t0.elapsed().as_millis() as f64 * 1.05,
        );
        let ok = collector
            .wait_for(
                |m| Delivery::of(m).of_type("job_response").count() > i,
                Duration::from_secs(20),
            )
            .await;
        assert!(ok, "job response of {id}\n{}", rt.logs());
        let d = Delivery::of(&collector.snapshot());
        let response = d
            .of_type("job_response")
            .find(|e| e["data"]["order_id"] == id.as_str())
            .unwrap();
        let in_state: i64 = response["data"]["time_in_state_ms"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_i64().unwrap())
            .sum();
        assert!(
            (least..=most).contains(&(in_state as f64)),
            "clock {clock}: {in_state} ms in state; the PC's clock says {least:.0} to {most:.0} ms"
        );
        let down = response["data"]["time_in_state_ms"]["down"]
            .as_i64()
            .unwrap_or(0);
        assert!(
            (1_600..=2_600).contains(&down),
            "clock {clock}: down {down} ms, the PLC was down 2 s"
        );
        assert!(rt.is_running(), "the runtime runs on\n{}", rt.logs());
        if i == 0 {
            let m = scrape(health, "/metrics", true);
            let dev = [("device", "press_controller")];
            let skew = sample(&m.families, "mes_edge_device_clock_skew_ms", &dev)
                .expect("a clock skew metric for the OPC UA device");
            assert!((skew - 3_600_000.0).abs() < 60_000.0, "skew metric {skew}");
            assert_eq!(
                sample(&m.families, "mes_edge_device_connected", &dev),
                Some(1.0)
            );
        }
    }

    let d = Delivery::of(&collector.snapshot());
    d.assert_gap_free();
    assert_eq!(d.parts("good"), good as u64);
    // Out of tolerance from the first skewed value on: one warning, and no flapping while the
    // clock stays off (one hour, then minus one hour, then year 9999, all off).
    let skews: Vec<_> = d.of_type("clock_skew").collect();
    assert!(!skews.is_empty(), "a clock_skew warning");
    assert_eq!(skews[0]["data"]["within_tolerance"], false);
    assert_eq!(skews[0]["data"]["device"], "press_controller");
    let skew = skews[0]["data"]["skew_ms"].as_i64().unwrap();
    assert!((skew - 3_600_000).abs() < 60_000, "skew {skew}");
    // The device's own timestamps travel with the part counts, as information.
    let sources: Vec<i64> = d
        .of_type("part_count")
        .filter_map(|e| e["data"]["source_ts"].as_i64())
        .collect();
    assert!(
        sources.contains(&253_402_300_799_000),
        "year 9999 kept as the source time"
    );
    assert!(rt.terminate().success());
}
