//! The wall clock stepped back and forward under the running cell (NTP correcting a PC that
//! drifted, an operator setting the time). Timestamps follow the clock; durations never go
//! negative (checked for every `_ms` field in the verdict) and follow the monotonic clock: no
//! order is credited a step's hours; sequence numbers stay in order.

use crate::plant::{Options, Plant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_stepped_back_and_forward() {
    let mut plant = Plant::start("clock steps", Options::default()).await;
    let real_start = mes_edge_drivers::now_ms();
    // An order runs through an hour back and two hours forward.
    plant.order_step().await;
    plant.wait_replied().await;
    // After each step, events committed under the stepped clock have reached MOM.
    plant.step_clock(-3_600_000).await;
    plant.wait_fresh_events(3).await;
    plant.step_clock(2 * 3_600_000).await;
    plant.wait_fresh_events(3).await;
    plant.order_step().await;
    plant.wait_replied().await;
    // Back by 5 s while the order is held.
    plant.step_clock(-5_000).await;
    plant.wait_fresh_events(3).await;
    plant.order_step().await;
    plant.wait_replied().await;
    plant.wait_fresh_events(3).await;
    plant.order_step().await;
    // And across a runtime restart.
    plant.kill_runtime();
    plant.step_clock(-600_000).await;
    plant.restart_runtime();
    plant.wait_fresh_events(3).await;
    let real_end = mes_edge_drivers::now_ms();

    let report = plant.finish(5, None).await;
    assert!(
        report.of_type("job_response").count() >= 1,
        "the order that ran through the steps ended"
    );
    let mut last_seq = 0;
    for e in &report.delivered {
        let seq = e["seq"].as_u64().unwrap();
        assert!(seq > last_seq, "sequence in order");
        last_seq = seq;
        let ts = e["ts"].as_i64().unwrap();
        assert!(
            ts >= real_start - 3_600_000 - 1_000 && ts <= real_end + 3_600_000 + 60_000,
            "a timestamp the stepped clock can explain: {e}"
        );
        // The steps add up to +55 min: an order credited with them would show it.
        let times = match e["type"].as_str() {
            Some("job_response") => Some(&e["data"]["time_in_state_ms"]),
            Some("oee") => Some(&e["data"]["time_in_state_ms"]),
            _ => None,
        };
        let elapsed = real_end - real_start;
        if let Some(d) = e["data"]["previous_duration_ms"].as_i64() {
            assert!(
                d <= elapsed + 5_000,
                "a state longer than the run ({elapsed} ms): {e}"
            );
        }
        if let Some(times) = times.and_then(|t| t.as_object()) {
            let total: i64 = times.values().filter_map(|v| v.as_i64()).sum();
            assert!(
                total <= elapsed + 5_000,
                "time in state beyond the real elapsed time ({elapsed} ms): {e}"
            );
        }
    }
}
