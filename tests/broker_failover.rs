//! Brokers that fail over (`[mqtt] urls`, docs/RELIABILITY.md "Brokers that fail over"): an
//! active and a standby Mosquitto, independent of each other (no shared sessions, no bridge),
//! a pymodbus press making parts, and MOM subscribed on both as the docs advise (a persistent
//! session on each, de-duplicating on `seq`). The active broker is killed with kill -9 during
//! production and restarted later. The truth is the press's counter as the pymodbus peer
//! serves it; the figure checked is the net MOM computes from what both brokers delivered.

mod common;
mod ops_support;

use common::cell::{write_config_edited, Delivery, GOOD, TOPIC_FILTER};
use common::{unique_name, Collector, ModbusPeer, Mosquitto, Plc, RuntimeProcess};
use ops_support::{sample, scrape, with_health, BIN};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The failover time the cell is configured for in this test.
const FAILOVER_AFTER_S: u64 = 3;

/// A broker as a plant runs it: persistence on, in a folder Mosquitto (dropping to its own
/// user when started as root) can write.
fn plant_broker(dir: &Path, name: &str) -> Mosquitto {
    use std::os::unix::fs::PermissionsExt;
    let store = dir.join(name);
    std::fs::create_dir_all(&store).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o777)).unwrap();
    Mosquitto::start_with_config(&format!(
        "persistence true\npersistence_location {}/\n",
        store.display()
    ))
}

/// The press: a part every 25 ms written to the PLC's good counter until `stop`; returns the
/// last value written.
fn run_press(mut plc: Plc, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u32> {
    tokio::spawn(async move {
        let mut made = 0u32;
        while !stop.load(Ordering::SeqCst) {
            made += 1;
            plc.write_u32(GOOD, made).await;
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        made
    })
}

/// The url of the broker the cell is on, from /health.
fn broker_in_use(health: std::net::SocketAddr) -> Option<String> {
    scrape(health, "/health", false).json["broker"]["url"]
        .as_str()
        .map(str::to_string)
}

async fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_broker_killed_mid_production_fails_over_to_the_standby_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut active = plant_broker(dir.path(), "active");
    let standby = plant_broker(dir.path(), "standby");
    let peer = ModbusPeer::start();
    // MOM as the docs advise: a persistent session on every broker of the cell's list.
    let mom_a =
        Collector::start_persistent(active.port(), TOPIC_FILTER, &unique_name("mom-a")).await;
    let mom_b =
        Collector::start_persistent(standby.port(), TOPIC_FILTER, &unique_name("mom-b")).await;
    let urls = [active.port(), standby.port()].map(|p| format!("mqtt://127.0.0.1:{p}"));
    let config = write_config_edited(
        dir.path(),
        peer.port(),
        active.port(),
        |doc| {
            let mqtt = doc["mqtt"].as_table_mut().unwrap();
            mqtt.remove("url");
            mqtt["urls"] = toml_edit::value(toml_edit::Array::from_iter(urls.iter().cloned()));
            mqtt["failover_after_s"] = toml_edit::value(FAILOVER_AFTER_S as i64);
        },
        "",
    );
    let health = with_health(&config);
    let mut rt = RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()]);
    let on = |url: &str| broker_in_use(health).as_deref() == Some(url);
    assert!(
        wait_until(Duration::from_secs(20), || on(&urls[0]))
            .await
            .is_some(),
        "the cell never connected to the active broker; log:\n{}",
        rt.stderr()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let press = run_press(Plc::connect(peer.port(), 1).await, stop.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The active broker dies.
    let before_kill = Delivery::of(&mom_a.snapshot()).last_seq();
    assert!(
        before_kill > 10,
        "production reached MOM through the active broker"
    );
    active.kill9();
    let killed = Instant::now();
    let failover = wait_until(Duration::from_secs(FAILOVER_AFTER_S + 20), || {
        Delivery::of(&mom_b.snapshot()).last_seq() > 0
    })
    .await
    .unwrap_or_else(|| panic!("nothing arrived through the standby; log:\n{}", rt.stderr()));
    // Every event the standby delivers after this one was committed after the kill.
    let committed_after = Delivery::of(&mom_a.snapshot()).last_seq();
    let first_new = wait_until(Duration::from_secs(20), || {
        Delivery::of(&mom_b.snapshot()).last_seq() > committed_after.max(before_kill)
    })
    .await
    .map(|_| killed.elapsed());
    println!(
        "FAILOVER | configured failover_after_s {FAILOVER_AFTER_S} | first event through the standby {:.2} s after kill -9 | first event made after the kill {:.2} s",
        failover.as_secs_f64(),
        first_new.unwrap_or_default().as_secs_f64()
    );
    assert!(
        failover <= Duration::from_secs(FAILOVER_AFTER_S + 2),
        "delivering through the standby took {failover:?}, configured {FAILOVER_AFTER_S} s"
    );
    assert!(on(&urls[1]), "/health names the standby");
    // What the active broker had acknowledged before it went is published again on the
    // standby (resend_window_s, default 60 s: the whole run so far).
    let on_standby = Delivery::of(&mom_b.snapshot());
    let missing: Vec<u64> = (1..=before_kill)
        .filter(|s| !on_standby.by_seq.contains_key(s))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged by the lost broker and not published again on the standby: {missing:?}"
    );

    // Production goes on through the standby, then the active broker comes back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    active.start_again();
    let restarted = Instant::now();
    let back = wait_until(Duration::from_secs(40), || on(&urls[0]))
        .await
        .unwrap_or_else(|| {
            panic!(
                "the cell did not go back to the primary; log:\n{}",
                rt.stderr()
            )
        });
    let seq_at_return = Delivery::of(&mom_b.snapshot()).last_seq();
    assert!(
        wait_until(Duration::from_secs(10), || {
            Delivery::of(&mom_a.snapshot()).last_seq() > seq_at_return
        })
        .await
        .is_some(),
        "new events arrive through the primary again"
    );
    println!(
        "FAILOVER | back on the primary {:.2} s after its restart",
        restarted.elapsed().min(back).as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    let written = press.await.unwrap();

    // The truth: the counter as the pymodbus peer serves it.
    let mut reader = Plc::connect(peer.port(), 1).await;
    let truth = reader.read_u32(GOOD).await as u64;
    assert_eq!(truth, written as u64, "the peer holds what the press wrote");
    let union = || {
        let mut all = mom_a.snapshot();
        all.extend(mom_b.snapshot());
        all
    };
    let arrived = wait_until(Duration::from_secs(30), || {
        Delivery::of(&union()).parts("good") >= truth
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mom = Delivery::of(&union());
    assert!(
        arrived.is_some(),
        "MOM counted {} parts of {truth}; log:\n{}",
        mom.parts("good"),
        rt.stderr()
    );
    assert_eq!(mom.parts("good"), truth, "MOM's parts equal the press's");
    mom.assert_gap_free();

    let metrics = scrape(health, "/metrics", true).families;
    let failovers = |reason| {
        sample(
            &metrics,
            "mes_edge_broker_failovers_total",
            &[("reason", reason)],
        )
    };
    assert_eq!(failovers("lost"), Some(1.0));
    assert_eq!(failovers("primary_back"), Some(1.0));
    assert_eq!(
        sample(
            &metrics,
            "mes_edge_broker_info",
            &[("url", urls[0].as_str()), ("role", "primary")]
        ),
        Some(1.0)
    );
    let resent = sample(&metrics, "mes_edge_broker_resent_total", &[]).unwrap();
    assert!(resent >= before_kill as f64, "resent {resent}");
    println!(
        "FAILOVER | parts made {truth} | MOM counted {} | events {} | duplicates after de-duplication dropped {} | re-sent from the window {resent}",
        mom.parts("good"),
        mom.last_seq(),
        mom.duplicates
    );
    assert_eq!(rt.terminate().code(), Some(0), "log:\n{}", rt.stderr());
}
