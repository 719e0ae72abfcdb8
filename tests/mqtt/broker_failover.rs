//! Brokers that fail over (`[mqtt] urls`, docs/RELIABILITY.md "Brokers that fail over"), each
//! test with a pymodbus press making parts and MOM subscribed as the docs advise (persistent
//! sessions, de-duplicating on `seq`): an active and a standby Mosquitto, independent of each
//! other (no shared sessions, no bridge), MOM on both; and a three-node RabbitMQ cluster (MQTT
//! sessions in quorum queues), MOM on the third node. The broker the cell is on is killed with
//! kill -9 during production and restarted later. The truth is the press's counter as the
//! pymodbus peer serves it; the figure checked is the net MOM computes from what it received.

use crate::common;
use crate::ops_support;

use common::cell::{write_config_edited, Delivery, GOOD, TOPIC_FILTER};
use common::{
    unique_name, Broker, Collector, ModbusPeer, Mosquitto, Plc, Press, RabbitCluster,
    RuntimeProcess,
};
use ops_support::{sample, scrape, with_health, BIN};
use std::path::Path;
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

/// The retained status on `port` as an MQTT 5 subscriber (paho-mqtt) reads it: its payload and
/// its user property `broker`.
fn retained_status(port: u16) -> (String, Option<String>) {
    let out = std::process::Command::new(common::python_bin())
        .arg(common::peer_script("mqtt_retained.py"))
        .arg(port.to_string())
        .arg("mes/acme/plant1/pressing/line2/press4/status")
        .output()
        .expect("run mqtt_retained.py");
    assert!(
        out.status.success(),
        "mqtt_retained.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let broker = v["user_properties"]["broker"].as_str().map(str::to_string);
    (
        v["payload"].as_str().unwrap_or_default().to_string(),
        broker,
    )
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

/// The brokers of one test, as the cell and MOM see them.
struct Plant<'a> {
    name: &'static str,
    /// The broker the cell prefers: killed with kill -9, later restarted.
    primary: &'a mut dyn Broker,
    /// The cell's `[mqtt] urls`, the primary first.
    urls: Vec<String>,
    /// MOM's subscribers, as the docs advise for this kind of broker.
    moms: Vec<Collector>,
    /// With independent brokers: which of `moms` is on the standby (urls[1]).
    standby_mom: Option<usize>,
    /// RabbitMQ 3.x: no MQTT 5.
    mqtt_311: bool,
    /// How much longer than `failover_after_s` the first new event may take through the
    /// standby: a connect on loopback for Mosquitto; for a cluster also the election of new
    /// leaders for the queues whose leader was on the node killed.
    slack: Duration,
}

impl Plant<'_> {
    /// Everything MOM received, from every subscriber.
    fn received(&self) -> Vec<common::Received> {
        self.moms.iter().flat_map(|m| m.snapshot()).collect()
    }

    fn last_seq(&self) -> u64 {
        Delivery::of(&self.received()).last_seq()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_mosquitto_killed_mid_production_fails_over_to_the_standby_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut active = plant_broker(dir.path(), "active");
    let standby = plant_broker(dir.path(), "standby");
    // MOM as the docs advise: a persistent session on every broker of the cell's list.
    let moms = vec![
        Collector::start_persistent(active.port(), TOPIC_FILTER, &unique_name("mom-a")).await,
        Collector::start_persistent(standby.port(), TOPIC_FILTER, &unique_name("mom-b")).await,
    ];
    let urls = vec![active.url(), standby.url()];
    failover(
        dir.path(),
        Plant {
            name: "mosquitto active/standby",
            primary: &mut active,
            urls,
            moms,
            standby_mom: Some(1),
            mqtt_311: false,
            slack: Duration::from_secs(2),
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rabbitmq_cluster_node_killed_mid_production_hands_the_cell_to_the_next_node_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = RabbitCluster::start(3);
    let urls: Vec<String> = cluster.nodes.iter().map(|n| n.url()).collect();
    // MOM on a node the cell is not on first; its session is a quorum queue, on every node.
    let moms = vec![
        Collector::start_persistent(cluster.nodes[2].port(), TOPIC_FILTER, &unique_name("mom"))
            .await,
    ];
    failover(
        dir.path(),
        Plant {
            name: "rabbitmq 3-node cluster",
            primary: &mut cluster.nodes[0],
            urls,
            moms,
            standby_mom: None,
            mqtt_311: true,
            slack: Duration::from_secs(10),
        },
    )
    .await;
}

async fn failover(dir: &Path, plant: Plant<'_>) {
    let name = plant.name;
    let peer = ModbusPeer::start();
    let urls = plant.urls.clone();
    let config = write_config_edited(
        dir,
        peer.port(),
        plant.primary.port(),
        |doc| {
            let mqtt = doc["mqtt"].as_table_mut().unwrap();
            mqtt.remove("url");
            mqtt["urls"] = toml_edit::value(toml_edit::Array::from_iter(urls.iter().cloned()));
            mqtt["failover_after_s"] = toml_edit::value(FAILOVER_AFTER_S as i64);
            if plant.mqtt_311 {
                mqtt["protocol_version"] = toml_edit::value("3.1.1");
            }
        },
        "",
    );
    let health = with_health(&config);
    let mut rt = RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()]);
    let on = |url: &str| broker_in_use(health).as_deref() == Some(url);
    assert!(
        wait_until(Duration::from_secs(30), || on(&urls[0]))
            .await
            .is_some(),
        "{name}: the cell never connected to the primary; log:\n{}",
        rt.stderr()
    );

    let press = Press::start(peer.port(), Duration::from_millis(25)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The broker the cell is on dies.
    let before_kill = plant.last_seq();
    assert!(before_kill > 10, "{name}: production reached MOM");
    plant.primary.kill9();
    let failover = wait_until(Duration::from_secs(FAILOVER_AFTER_S + 30), || {
        plant.last_seq() > before_kill
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "{name}: nothing new arrived after the kill; log:\n{}",
            rt.stderr()
        )
    });
    println!(
        "FAILOVER | {name} | configured failover_after_s {FAILOVER_AFTER_S} | first event made after the kill -9 at MOM {:.2} s after it",
        failover.as_secs_f64(),
    );
    assert!(on(&urls[1]), "{name}: /health names the second broker");
    assert!(
        failover <= Duration::from_secs(FAILOVER_AFTER_S) + plant.slack,
        "{name}: delivering through the next broker took {failover:?}, configured {FAILOVER_AFTER_S} s"
    );
    if let Some(standby) = plant.standby_mom {
        // What the active broker had acknowledged before it went is published again on the
        // standby (resend_window_s, default 60 s: the whole run so far).
        let on_standby = Delivery::of(&plant.moms[standby].snapshot());
        let missing: Vec<u64> = (1..=before_kill)
            .filter(|s| !on_standby.by_seq.contains_key(s))
            .collect();
        assert!(
            missing.is_empty(),
            "acknowledged by the lost broker and not published again on the standby: {missing:?}"
        );
    }

    // Production goes on through the next broker, then the primary comes back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    plant.primary.start_again();
    let restarted = Instant::now();
    wait_until(Duration::from_secs(60), || on(&urls[0]))
        .await
        .unwrap_or_else(|| {
            panic!(
                "{name}: the cell did not go back to the primary; log:\n{}",
                rt.stderr()
            )
        });
    let back = restarted.elapsed();
    let seq_at_return = plant.last_seq();
    assert!(
        wait_until(Duration::from_secs(15), || plant.last_seq() > seq_at_return)
            .await
            .is_some(),
        "{name}: new events arrive through the primary again"
    );
    println!(
        "FAILOVER | {name} | back on the primary {:.2} s after its restart",
        back.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let written = press.stop().await;

    // The truth: the counter as the pymodbus peer serves it.
    let mut reader = Plc::connect(peer.port(), 1).await;
    let truth = reader.read_u32(GOOD).await as u64;
    assert_eq!(truth, written as u64, "the peer holds what the press wrote");
    let arrived = wait_until(Duration::from_secs(30), || {
        Delivery::of(&plant.received()).parts("good") >= truth
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mom = Delivery::of(&plant.received());
    assert!(
        arrived.is_some(),
        "{name}: MOM counted {} parts of {truth}; log:\n{}",
        mom.parts("good"),
        rt.stderr()
    );
    assert_eq!(
        mom.parts("good"),
        truth,
        "{name}: MOM's parts equal the press's"
    );
    mom.assert_gap_free();

    let metrics = scrape(health, "/metrics", true).families;
    let failovers = |reason| {
        sample(
            &metrics,
            "mes_edge_broker_failovers_total",
            &[("reason", reason)],
        )
    };
    let resent = sample(&metrics, "mes_edge_broker_resent_total", &[]).unwrap();
    println!(
        "FAILOVER | {name} | parts made {truth} | MOM counted {} | events {} | duplicates dropped {} | re-sent from the window {resent} | failovers lost {:?} primary_back {:?}",
        mom.parts("good"),
        mom.last_seq(),
        mom.duplicates,
        failovers("lost"),
        failovers("primary_back"),
    );
    for line in rt.stderr().lines().filter(|l| l.contains("broker")) {
        println!("FAILOVER | {name} | log | {line}");
    }
    assert_eq!(failovers("lost"), Some(1.0), "{name}");
    assert_eq!(failovers("primary_back"), Some(1.0), "{name}");
    assert_eq!(
        sample(
            &metrics,
            "mes_edge_broker_info",
            &[("url", urls[0].as_str()), ("role", "primary")]
        ),
        Some(1.0)
    );
    assert!(resent >= before_kill as f64, "{name}: resent {resent}");
    if !plant.mqtt_311 {
        // Each broker's retained status names the broker it went to (MQTT 5 user property):
        // `online` on the primary the cell is back on, `offline` on the broker it left.
        let ports: Vec<u16> = urls
            .iter()
            .map(|u| u.rsplit(':').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(
            retained_status(ports[0]),
            ("online".to_string(), Some(urls[0].clone()))
        );
        assert_eq!(
            retained_status(ports[1]),
            ("offline".to_string(), Some(urls[1].clone()))
        );
    }
    assert_eq!(rt.terminate().code(), Some(0), "log:\n{}", rt.stderr());
}
