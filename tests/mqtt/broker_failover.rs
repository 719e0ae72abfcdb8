//! Brokers that fail over (`[mqtt] urls`, docs/RELIABILITY.md "Brokers that fail over"), each
//! test with a pymodbus press making parts and MOM subscribed as the docs advise (persistent
//! sessions, de-duplicating on `seq`): an active and a standby Mosquitto, independent of each
//! other (no shared sessions, no bridge), MOM on both; and a three-node RabbitMQ cluster (MQTT
//! sessions in quorum queues), MOM on the third node. The broker the cell is on is killed with
//! kill -9 during production and restarted later. The truth is the press's counter as the
//! pymodbus peer serves it; the figure checked is the net MOM computes from what it received.

use crate::common;
use crate::ops_support;

use common::cell::{write_config_edited, Delivery, COMMAND_TOPIC, GOOD, TOPIC_FILTER};
use common::pki::Pki;
use common::{
    free_port, unique_name, Broker, Collector, ModbusPeer, Mosquitto, Plc, Press, RabbitCluster,
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

/// Stops the press and checks what MOM received against the truth, the counter as the pymodbus
/// peer serves it: every part, `seq` gap-free. Returns the truth and MOM's view.
async fn every_part_at_mom(
    name: &str,
    press: Press,
    peer: &ModbusPeer,
    received: impl Fn() -> Vec<common::Received>,
    rt: &RuntimeProcess,
) -> (u64, Delivery) {
    let written = press.stop().await;
    let mut reader = Plc::connect(peer.port(), 1).await;
    let truth = reader.read_u32(GOOD).await as u64;
    assert_eq!(truth, written as u64, "the peer holds what the press wrote");
    let arrived = wait_until(Duration::from_secs(30), || {
        Delivery::of(&received()).parts("good") >= truth
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mom = Delivery::of(&received());
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
    (truth, mom)
}

/// The lab press's `[mqtt]` with `urls` instead of its `url`, failing over after
/// [`FAILOVER_AFTER_S`]; returns the table for more keys.
fn list_brokers(doc: &mut toml_edit::DocumentMut, urls: toml_edit::Array) -> &mut toml_edit::Table {
    let mqtt = doc["mqtt"].as_table_mut().unwrap();
    mqtt.remove("url");
    mqtt["urls"] = toml_edit::value(urls);
    mqtt["failover_after_s"] = toml_edit::value(FAILOVER_AFTER_S as i64);
    mqtt
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
            let mqtt = list_brokers(doc, toml_edit::Array::from_iter(urls.iter().cloned()));
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
    let (truth, mom) = every_part_at_mom(name, press, &peer, || plant.received(), &rt).await;

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

/// Each broker with its own CA and login (`[mqtt] urls` entries written as tables): an active
/// Mosquitto reached with the `[mqtt]` section's CA, client certificate and login, and a
/// standby that trusts another CA and knows another login, given in its own entry. Neither
/// broker lets in a client without its own CA's certificate and its own password, so the cell
/// delivering through the standby after the active is killed shows it used the standby's
/// settings there. MOM subscribes on both, as an independent client with each broker's login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_with_its_own_ca_and_login_takes_over_from_a_killed_active_mosquitto() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        Pki::new("press4-a", "pw-A-61c0e2d8"),
        Pki::new("press4-b", "pw-B-93f4d7aa"),
    );
    let (plain_a, plain_b) = (free_port(), free_port());
    let mut active = Mosquitto::start_with_config(&a.broker_config(plain_a, true));
    let standby = Mosquitto::start_with_config(&b.broker_config(plain_b, true));
    let moms = [
        Collector::start_with_login(plain_a, TOPIC_FILTER, &a.user, &a.password).await,
        Collector::start_with_login(plain_b, TOPIC_FILTER, &b.user, &b.password).await,
    ];
    let received = || -> Vec<common::Received> { moms.iter().flat_map(|m| m.snapshot()).collect() };
    let last_seq = || Delivery::of(&received()).last_seq();
    let urls = [
        format!("mqtts://127.0.0.1:{}", active.port()),
        format!("mqtts://127.0.0.1:{}", standby.port()),
    ];
    let peer = ModbusPeer::start();
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let config = write_config_edited(
        dir.path(),
        peer.port(),
        active.port(),
        |doc| {
            let mut own = toml_edit::InlineTable::new();
            own.insert("url", urls[1].as_str().into());
            own.insert("ca_file", path(&b.ca).into());
            own.insert("cert_file", path(&b.client_cert).into());
            own.insert("key_file", path(&b.client_key).into());
            own.insert("username", b.user.as_str().into());
            own.insert("password_file", path(&b.password_file).into());
            let mut list = toml_edit::Array::new();
            list.push(urls[0].as_str());
            list.push(own);
            let mqtt = list_brokers(doc, list);
            for (key, file) in [
                ("ca_file", &a.ca),
                ("cert_file", &a.client_cert),
                ("key_file", &a.client_key),
                ("password_file", &a.password_file),
            ] {
                mqtt[key] = toml_edit::value(path(file));
            }
            mqtt["username"] = toml_edit::value(a.user.as_str());
        },
        "",
    );
    let health = with_health(&config);
    // Debug logging: the passwords must stay out of the log at every level.
    let mut rt = RuntimeProcess::spawn_with(
        BIN,
        ["run", "--config", config.to_str().unwrap()],
        [("RUST_LOG", "debug,tokio_modbus=info")],
        None,
    );
    let on = |url: &str| broker_in_use(health).as_deref() == Some(url);
    assert!(
        wait_until(Duration::from_secs(30), || on(&urls[0]))
            .await
            .is_some(),
        "the cell never connected to the active broker; log:\n{}\n{}",
        rt.stderr(),
        active.logs()
    );
    let press = Press::start(peer.port(), Duration::from_millis(25)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before_kill = last_seq();
    assert!(
        before_kill > 10,
        "production reached MOM on the active broker"
    );
    active.kill9();
    let failover = wait_until(Duration::from_secs(FAILOVER_AFTER_S + 30), || {
        last_seq() > before_kill
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "nothing new arrived after the kill; log:\n{}\nstandby:\n{}",
            rt.stderr(),
            standby.logs()
        )
    });
    assert!(on(&urls[1]), "/health names the standby");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let name = "own CA and login per broker";
    let (truth, mom) = every_part_at_mom(name, press, &peer, received, &rt).await;
    println!(
        "FAILOVER | {name} | first event made after the kill -9 at MOM {:.2} s after it | parts made {truth} | MOM counted {} | events {} | duplicates dropped {}",
        failover.as_secs_f64(),
        mom.parts("good"),
        mom.last_seq(),
        mom.duplicates,
    );
    // Each broker saw the cell log in with its own login (Mosquitto logs the username).
    for (broker, pki) in [(&active as &Mosquitto, &a), (&standby, &b)] {
        let logged_in = format!("as mes-edge-under-test (p5, c0, k5, u'{}')", pki.user);
        assert!(
            broker.logs().contains(&logged_in),
            "{logged_in:?} not in the broker's log:\n{}",
            broker.logs()
        );
    }
    let seen = format!(
        "{}{}{}",
        rt.stdout(),
        rt.stderr(),
        scrape(health, "/health", false).body
    );
    for pki in [&a, &b] {
        assert!(
            !seen.contains(&pki.password),
            "a password in the log or /health"
        );
    }
    assert_eq!(rt.terminate().code(), Some(0), "log:\n{}", rt.stderr());
}

/// A writable `speed` on the test PLC (holding register 30), for commands across brokers.
const SPEED_TAG: &str = "
[[devices.tags]]
name = \"speed\"
table = \"holding\"
address = 30
type = \"u16\"
write = true
";

/// The reply to `id` MOM received through `mom`, the last one if it came twice.
fn reply(mom: &Collector, id: &str) -> Option<serde_json::Value> {
    Delivery::of(&mom.snapshot())
        .of_type("command_response")
        .filter(|e| e["data"]["correlation_id"] == id)
        .last()
        .map(|e| e["data"].clone())
}

/// Commands across two independent brokers, MOM sending as RELIABILITY.md advises: to the
/// broker the cell is on, or to every broker. A command on the standby after the failover is
/// applied and answered there; a command sent on both brokers (one id) is applied once, from
/// the broker the cell is on, and its copy, kept for the cell in its session on the other
/// broker, is answered as a duplicate when the cell comes back there. The truth is what the
/// pymodbus PLC logged of the writes it received.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_on_the_standby_is_answered_there_and_one_sent_on_both_brokers_is_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut active = Mosquitto::start();
    let standby = Mosquitto::start();
    let moms = [
        Collector::start(active.port(), TOPIC_FILTER).await,
        Collector::start(standby.port(), TOPIC_FILTER).await,
    ];
    let urls = [active.url(), standby.url()];
    let peer = ModbusPeer::start();
    let config = write_config_edited(
        dir.path(),
        peer.port(),
        active.port(),
        |doc| {
            list_brokers(doc, toml_edit::Array::from_iter(urls.iter().cloned()));
        },
        SPEED_TAG,
    );
    let health = with_health(&config);
    let mut rt = RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()]);
    let on = |url: &str| broker_in_use(health).as_deref() == Some(url);
    let wait_on = |i: usize, secs: u64| {
        let url = urls[i].clone();
        async move {
            wait_until(Duration::from_secs(secs), || on(&url))
                .await
                .is_some()
        }
    };
    assert!(
        wait_on(0, 30).await,
        "on the active broker\n{}",
        rt.stderr()
    );
    let speed_writes = || -> Vec<u64> {
        peer.writes()
            .iter()
            .filter(|w| w["table"] == "registers" && w["address"] == 30)
            .map(|w| w["values"][0].as_u64().unwrap())
            .collect()
    };
    let send = |port: u16, id: &'static str, speed: u64| async move {
        let cmd = serde_json::json!({"correlation_id": id, "command": "write_tag", "tag": "speed", "value": speed});
        common::mqtt_publish(
            port,
            COMMAND_TOPIC,
            cmd.to_string(),
            rumqttc::QoS::AtLeastOnce,
            false,
            Duration::from_secs(10),
        )
        .await;
    };
    let answered = |mom: usize, id: &'static str, duplicate: bool| {
        let moms = &moms;
        async move {
            wait_until(Duration::from_secs(30), || {
                reply(&moms[mom], id).is_some_and(|r| r["duplicate"] == duplicate)
            })
            .await
            .is_some()
        }
    };

    // The active broker dies; MOM sends to the standby, where the cell is now.
    active.kill9();
    assert!(wait_on(1, 30).await, "on the standby\n{}", rt.stderr());
    send(standby.port(), "on-standby", 1111).await;
    assert!(
        answered(1, "on-standby", false).await,
        "the command on the standby answered there\n{}",
        rt.stderr()
    );
    assert_eq!(reply(&moms[1], "on-standby").unwrap()["status"], "accepted");

    // Back on the restarted active (prefer_primary); the cell's session on the standby stays.
    active.start_again();
    assert!(wait_on(0, 60).await, "back on the active\n{}", rt.stderr());
    // One command, one id, on both brokers: the standby keeps its copy for the cell.
    send(standby.port(), "on-both", 2222).await;
    send(active.port(), "on-both", 2222).await;
    assert!(
        answered(0, "on-both", false).await,
        "applied from the active\n{}",
        rt.stderr()
    );
    // The active dies again: the cell takes the standby's copy from its session there.
    active.kill9();
    assert!(
        wait_on(1, 30).await,
        "on the standby again\n{}",
        rt.stderr()
    );
    assert!(
        answered(1, "on-both", true).await,
        "the standby's copy answered as a duplicate\n{}",
        rt.stderr()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut plc = Plc::connect(peer.port(), 1).await;
    assert_eq!(
        plc.read_u16(30).await,
        2222,
        "the PLC holds the last command's value"
    );
    assert_eq!(
        speed_writes(),
        vec![1111, 2222],
        "the PLC received each command once"
    );
    println!(
        "COMMANDS ACROSS BROKERS | replies on the standby: {:?}",
        Delivery::of(&moms[1].snapshot())
            .of_type("command_response")
            .map(|e| (
                e["data"]["correlation_id"].clone(),
                e["data"]["status"].clone(),
                e["data"]["duplicate"].clone()
            ))
            .collect::<Vec<_>>()
    );
    assert_eq!(rt.terminate().code(), Some(0), "log:\n{}", rt.stderr());
}
