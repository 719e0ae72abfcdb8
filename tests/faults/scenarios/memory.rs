//! Memory while a backlog builds: the broker is down while the machine runs fast, then comes
//! back to a backlog of thousands of events. The runtime's resident memory (VmRSS) must not
//! grow with the backlog: events wait in the store, not in memory.

use crate::plant::{rss_kb, Options, Plant};
use crate::rng::env_count;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_while_a_backlog_builds() {
    let opts = Options {
        cycle: Duration::from_millis(3),
        poll_ms: 20,
        ..Options::default()
    };
    let mut plant = Plant::start("backlog memory", opts).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    plant.broker.stop();
    plant.faults += 1;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pid = plant.runtime.pid().unwrap();
    let early = rss_kb(pid).unwrap();
    let mut samples = vec![early];
    // Longer by hand: MES_EDGE_FAULT_OUTAGE_S.
    for _ in 0..env_count("MES_EDGE_FAULT_OUTAGE_S", 20) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push(rss_kb(pid).unwrap());
    }
    let late = *samples.last().unwrap();
    plant.broker.start_again();
    let report = plant.finish(1, None).await;
    println!(
        "backlog memory: VmRSS {early} kB after 3 s of outage, {late} kB at its end, max {} kB over the run, {} events",
        report.max_rss_kb, report.events
    );
    assert!(
        report.events > 1000,
        "a real backlog built up: {} events",
        report.events
    );
    assert!(
        late < early + 8 * 1024,
        "memory grew with the backlog: {early} kB -> {late} kB ({samples:?})"
    );
    assert!(
        report.max_rss_kb < 128 * 1024,
        "at most 128 MB resident: {} kB",
        report.max_rss_kb
    );
}
