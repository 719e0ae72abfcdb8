//! The health and metrics endpoint and the MQTT status topic, on the real binary against
//! Mosquitto and a pymodbus PLC; the endpoint is read by Python's HTTP client and
//! prometheus_client's parser, as a monitoring agent would read it.

use crate::common;
use crate::ops_support;

use common::cell::{write_config, write_config_with, Delivery, GOOD, TOPIC_FILTER};
use common::{eventually, Broker, Collector, ModbusPeer, Mosquitto, Plc, RabbitMq, RuntimeProcess};
use ops_support::{raw_http, sample, scrape, statuses, wait_online, with_health, BIN};
use std::time::Duration;

const STATUS_TOPIC: &str = "mes/acme/plant1/pressing/line2/press4/status";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_follow_the_device_the_broker_and_the_outbox() {
    let broker = Mosquitto::start();
    let mut peer = ModbusPeer::start();
    let mut plc = Plc::connect(peer.port(), 1).await;
    let collector = Collector::start(broker.port(), TOPIC_FILTER).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), peer.port(), broker.port());
    let health = with_health(&config);
    let mut rt = RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()]);
    wait_online(&collector, 1).await;

    for good in 1..=5u32 {
        plc.write_u32(GOOD, good).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let delivered = collector
        .wait_for(
            |m| Delivery::of(m).parts("good") == 5,
            Duration::from_secs(20),
        )
        .await;
    assert!(delivered, "5 parts delivered\n{}", rt.logs());

    // Healthy: device connected with a recent good read, broker connected, outbox empty. (The
    // store's numbers are read every 5 s: wait until they include the last event.)
    let last_seq = Delivery::of(&collector.snapshot()).last_seq();
    let mut h = scrape(health, "/health", false);
    let ok = eventually(Duration::from_secs(12), || {
        h = scrape(health, "/health", false);
        h.status == 200 && h.json["outbox"]["last_seq"] == last_seq
    })
    .await;
    assert!(
        ok,
        "healthy /health: {} {}\n{}",
        h.status,
        h.body,
        rt.logs()
    );
    assert_eq!(h.content_type, "application/json");
    let j = &h.json;
    assert_eq!(j["status"], "ok");
    assert_eq!(j["cell"], "acme/plant1/pressing/line2/press4");
    assert_eq!(j["devices"][0]["name"], "plc");
    assert_eq!(j["devices"][0]["connected"], true);
    assert!(
        j["devices"][0]["last_good_read_age_s"].as_f64().unwrap() < 5.0,
        "{j}"
    );
    assert_eq!(j["broker"]["connected"], true);
    assert_eq!(
        j["outbox"]["oldest_undelivered_age_s"],
        serde_json::Value::Null
    );
    assert!(j["outbox"]["store_file_bytes"].as_u64().unwrap() > 0);

    // /metrics parses as Prometheus text, and its numbers are what happened (counts are taken
    // once a second).
    let events = Delivery::of(&collector.snapshot()).by_seq.len() as f64;
    let mut m = scrape(health, "/metrics", true);
    let counted = eventually(Duration::from_secs(5), || {
        m = scrape(health, "/metrics", true);
        sample(&m.families, "mes_edge_events_produced_total", &[]) == Some(events)
            && sample(&m.families, "mes_edge_events_acknowledged_total", &[]) == Some(events)
    })
    .await;
    assert!(counted, "{events} events produced: {}", m.body);
    assert_eq!(m.status, 200);
    assert!(
        m.content_type.starts_with("text/plain; version=0.0.4"),
        "{}",
        m.content_type
    );
    let f = &m.families;
    let dev = [("device", "plc")];
    assert_eq!(
        f["mes_edge_device_poll_duration_seconds"]["type"],
        "histogram"
    );
    let polls = sample(f, "mes_edge_device_poll_duration_seconds_count", &dev).unwrap();
    assert!(polls >= 10.0, "polls every 100 ms: {polls}");
    assert_eq!(
        sample(
            f,
            "mes_edge_device_poll_duration_seconds_bucket",
            &[("device", "plc"), ("le", "+Inf")]
        ),
        Some(polls)
    );
    assert!(sample(f, "mes_edge_device_requests_total", &dev).unwrap() >= polls);
    // Under load a request may time out now and then: only growth is asserted, below.
    let errors_before = sample(f, "mes_edge_device_errors_total", &dev).unwrap();
    assert_eq!(sample(f, "mes_edge_device_connected", &dev), Some(1.0));
    let delivered = Delivery::of(&collector.snapshot());
    assert_eq!(
        sample(f, "mes_edge_events_acknowledged_total", &[]),
        Some(events)
    );
    assert!(sample(f, "mes_edge_events_published_total", &[]).unwrap() >= events);
    assert_eq!(sample(f, "mes_edge_outbox_depth", &[]), Some(0.0));
    assert_eq!(
        sample(f, "mes_edge_outbox_last_seq", &[]),
        Some(delivered.last_seq() as f64)
    );
    assert!(sample(f, "mes_edge_store_used_bytes", &[]).unwrap() > 0.0);
    assert_eq!(sample(f, "mes_edge_broker_connected", &[]), Some(1.0));
    assert_eq!(sample(f, "mes_edge_broker_connects_total", &[]), Some(1.0));
    assert_eq!(
        sample(f, "mes_edge_broker_reconnects_total", &[]),
        Some(0.0)
    );

    // The PLC goes away: /health says so with a 503, the errors count.
    peer.stop();
    let mut h = scrape(health, "/health", false);
    let down = eventually(Duration::from_secs(10), || {
        h = scrape(health, "/health", false);
        h.status == 503
    })
    .await;
    assert!(down, "503 once the PLC is gone: {}", h.body);
    assert_eq!(h.json["status"], "unhealthy");
    assert_eq!(h.json["devices"][0]["connected"], false);
    assert!(
        h.json["problems"]
            .to_string()
            .contains("device plc is not connected"),
        "{}",
        h.body
    );
    let m = scrape(health, "/metrics", true);
    assert_eq!(
        sample(&m.families, "mes_edge_device_connected", &dev),
        Some(0.0)
    );
    assert!(sample(&m.families, "mes_edge_device_errors_total", &dev).unwrap() > errors_before);
    // Why, and which kind of why: pymodbus gone is a fault that passes (transient), not a
    // config mistake.
    let gone = &h.json["devices"][0]["last_offline"];
    assert_eq!(gone["kind"], "transient", "{}", h.body);
    assert!(
        gone["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{}",
        h.body
    );
    assert!(
        h.json["problems"].to_string().contains("(transient: "),
        "{}",
        h.body
    );
    let at = sample(
        &m.families,
        "mes_edge_device_last_offline_timestamp_seconds",
        &[("device", "plc"), ("kind", "transient")],
    )
    .expect("the metric names the kind");
    assert!(
        (at - mes_edge_drivers::now_ms() as f64 / 1000.0).abs() < 60.0,
        "{at}"
    );

    // Only what it serves, only GET, only a bounded request.
    assert_eq!(scrape(health, "/nothing-here", false).status, 404);
    let post = raw_http(
        health,
        b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
    assert!(post.contains("Allow: GET"), "{post}");
    let mut big = b"GET /health HTTP/1.1\r\nX-Filler: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 20_000));
    let big = raw_http(health, &big);
    assert!(big.starts_with("HTTP/1.1 431 "), "{big}");
    let garbage = raw_http(health, b"\x16\x03\x01 not http\r\n\r\n");
    assert!(garbage.starts_with("HTTP/1.1 400 "), "{garbage}");

    assert!(rt.terminate().success(), "clean exit\n{}", rt.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_topic_says_online_and_offline_and_the_last_will_speaks_for_a_crash() {
    status_topic_and_last_will(Mosquitto::start(), "").await;
}

/// The same on RabbitMQ's MQTT plugin (3.1.1 only): its retained messages and Last Will.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_topic_and_the_last_will_on_rabbitmq() {
    status_topic_and_last_will(RabbitMq::start(), "protocol_version = \"3.1.1\"").await;
}

async fn status_topic_and_last_will(broker: impl Broker, mqtt_extra: &str) {
    let peer = ModbusPeer::start();
    let collector = Collector::start(broker.port(), STATUS_TOPIC).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_with(dir.path(), peer.port(), broker.port(), mqtt_extra);
    with_health(&config);
    let mut rt = RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()]);

    let says = |n: usize, what: &'static str| {
        let c = &collector;
        async move {
            c.wait_for(
                |m| statuses(m).len() >= n && statuses(m)[n - 1].0 == what,
                Duration::from_secs(20),
            )
            .await
        }
    };
    assert!(
        says(1, "online").await,
        "online after CONNACK: {:?}\n{}",
        statuses(&collector.snapshot()),
        rt.logs()
    );
    // Retained: MOM subscribing later learns it at once.
    let late = Collector::start(broker.port(), STATUS_TOPIC).await;
    let retained = late
        .wait_for(
            |m| statuses(m) == [("online".to_string(), true)],
            Duration::from_secs(5),
        )
        .await;
    assert!(
        retained,
        "retained online: {:?}",
        statuses(&late.snapshot())
    );

    // A crash: the broker publishes the Last Will.
    rt.kill9();
    assert!(
        says(2, "offline").await,
        "Last Will after kill -9: {:?}",
        statuses(&collector.snapshot())
    );

    rt.start_again();
    assert!(
        says(3, "online").await,
        "online again: {:?}",
        statuses(&collector.snapshot())
    );

    // A clean stop: the runtime says offline itself before its DISCONNECT (which cancels the will).
    assert!(rt.terminate().success(), "clean exit\n{}", rt.logs());
    assert!(
        says(4, "offline").await,
        "offline at a clean stop: {:?}",
        statuses(&collector.snapshot())
    );
    let late = Collector::start(broker.port(), STATUS_TOPIC).await;
    let retained = late
        .wait_for(
            |m| statuses(m) == [("offline".to_string(), true)],
            Duration::from_secs(5),
        )
        .await;
    assert!(
        retained,
        "retained offline: {:?}",
        statuses(&late.snapshot())
    );
}
