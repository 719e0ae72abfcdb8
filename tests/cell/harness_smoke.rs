//! Smoke tests of the test harness itself, against the real peers: a Mosquitto broker and the
//! pymodbus server in tests/peers. Run through scripts/test.sh (it provides the peers).

use crate::common;

use std::time::Duration;

use common::{mqtt_publish, Collector, ModbusPeer, Mosquitto, Plc, PlcError, Received};
use rumqttc::QoS;
use serde_json::json;
use tokio_modbus::ExceptionCode;

const WAIT: Duration = Duration::from_secs(15);

fn count(msgs: &[Received], topic: &str) -> usize {
    msgs.iter().filter(|m| m.topic == topic).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_receives_and_survives_broker_restart() {
    let mut broker = Mosquitto::start();
    let port = broker.port();
    assert_eq!(broker.url(), format!("mqtt://127.0.0.1:{port}"));

    let collector = Collector::start(port, "mes/#").await;
    assert_eq!(collector.subscriptions(), 1);

    mqtt_publish(
        port,
        "other/not-collected",
        r#"{"seq":0}"#,
        QoS::AtLeastOnce,
        false,
        WAIT,
    )
    .await;
    mqtt_publish(
        port,
        "mes/smoke/a",
        r#"{"seq":1,"kind":"count"}"#,
        QoS::AtLeastOnce,
        false,
        WAIT,
    )
    .await;
    mqtt_publish(
        port,
        "mes/smoke/raw",
        b"not json".to_vec(),
        QoS::AtLeastOnce,
        false,
        WAIT,
    )
    .await;
    assert!(
        collector
            .wait_for(
                |m| count(m, "mes/smoke/a") == 1 && count(m, "mes/smoke/raw") == 1,
                WAIT
            )
            .await,
        "collector did not receive the first messages: {:?}\n{}",
        collector.snapshot(),
        broker.logs()
    );
    let first = collector.snapshot();
    let a = first.iter().find(|m| m.topic == "mes/smoke/a").unwrap();
    assert_eq!(a.payload, json!({"seq": 1, "kind": "count"}));
    assert_eq!(a.raw, br#"{"seq":1,"kind":"count"}"#);
    assert_eq!(a.qos, 1);
    let raw = first.iter().find(|m| m.topic == "mes/smoke/raw").unwrap();
    assert_eq!(raw.payload, serde_json::Value::Null);
    assert_eq!(raw.raw, b"not json");

    // Broker restart on the same port: the collector must reconnect and subscribe again.
    broker.stop();
    assert!(!broker.is_running());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} still accepts connections after stop()"
    );
    broker.start_again();
    assert_eq!(broker.port(), port);
    assert!(broker.is_running());
    assert!(
        collector.wait_subscriptions(2, WAIT).await,
        "collector did not resubscribe after the broker restart\n{}",
        broker.logs()
    );

    mqtt_publish(
        port,
        "mes/smoke/b",
        r#"{"seq":2}"#,
        QoS::AtLeastOnce,
        false,
        WAIT,
    )
    .await;
    assert!(
        collector
            .wait_for(|m| count(m, "mes/smoke/b") == 1, WAIT)
            .await,
        "collector did not receive the message after the broker restart: {:?}\n{}",
        collector.snapshot(),
        broker.logs()
    );

    // Give a stray duplicate or the filtered-out topic a moment to show up, then check exactly.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = collector.snapshot();
    let topics: Vec<&str> = all.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(topics, ["mes/smoke/a", "mes/smoke/raw", "mes/smoke/b"]);
    assert_eq!(all[2].payload["seq"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modbus_peer_plays_the_plc_and_resets_on_restart() {
    let mut peer = ModbusPeer::start();
    let port = peer.port();
    let mut plc = Plc::connect(port, 1).await;

    assert_eq!(plc.read_u16s(8, 5).await, [0, 0, 0, 0, 0]);

    // 0x0001_E240 = 123456: high word at 10, low word at 11; neighbours must stay untouched
    // (an off-by-one between protocol address and datastore would show here).
    plc.write_u32(10, 123_456).await;
    assert_eq!(plc.read_u16s(8, 5).await, [0, 0, 0x0001, 0xE240, 0]);
    assert_eq!(plc.read_u16(10).await, 0x0001);
    assert_eq!(plc.read_u16(11).await, 0xE240);
    assert_eq!(plc.read_u32(10).await, 123_456);
    // Input registers mirror holding registers.
    assert_eq!(plc.read_input_u16s(8, 5).await, [0, 0, 0x0001, 0xE240, 0]);

    // FC 6 at both ends of the table.
    plc.write_u16(0, 7).await;
    plc.write_u16(9999, 65535).await;
    assert_eq!(plc.read_u16(0).await, 7);
    assert_eq!(plc.read_input_u16(9999).await, 65535);
    // Past the end: a Modbus exception, not a transport error.
    match plc.try_read_u16s(9999, 2).await {
        Err(PlcError::Exception(ExceptionCode::IllegalDataAddress)) => {}
        other => panic!("expected IllegalDataAddress, got {other:?}"),
    }

    // Coils (FC 5 / 15), mirrored as discrete inputs.
    plc.write_coil(5, true).await;
    plc.write_coils(20, &[true, false, true]).await;
    assert_eq!(plc.read_coils(4, 3).await, [false, true, false]);
    assert_eq!(plc.read_discretes(4, 3).await, [false, true, false]);
    assert_eq!(
        plc.read_discretes(19, 5).await,
        [false, true, false, true, false]
    );
    assert!(plc.read_discrete(5).await);

    // PLC restart: same port, everything back to zero, and the Plc client reconnects by itself.
    peer.stop();
    assert!(!peer.is_running());
    assert!(
        plc.try_read_u16s(10, 2).await.is_err(),
        "read succeeded with the server stopped"
    );
    peer.start_again();
    assert_eq!(peer.port(), port);
    assert_eq!(plc.read_u16s(8, 5).await, [0, 0, 0, 0, 0]);
    assert_eq!(plc.read_u32(10).await, 0);
    assert_eq!(plc.read_input_u16s(10, 2).await, [0, 0]);
    assert_eq!(plc.read_u16(0).await, 0);
    assert!(!plc.read_coil(5).await);
    assert!(!plc.read_discrete(5).await);

    // And it is writable again after the restart.
    plc.write_u32(10, 0xDEAD_BEEF).await;
    assert_eq!(plc.read_u16s(10, 2).await, [0xDEAD, 0xBEEF]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modbus_peer_init_values_land_on_protocol_addresses() {
    let init = json!({
        "holding": {"10": [1, 0xE240], "9999": 9},
        "coils": {"3": true},
        "units": {"2": {"holding": {"10": 42}}}
    });
    let mut peer = ModbusPeer::start_with(&[1, 2], Some(init));
    let mut unit1 = Plc::connect(peer.port(), 1).await;
    let mut unit2 = Plc::connect(peer.port(), 2).await;

    assert_eq!(unit1.read_u16s(9, 4).await, [0, 1, 0xE240, 0]);
    assert_eq!(unit1.read_input_u16s(9, 4).await, [0, 1, 0xE240, 0]);
    assert_eq!(unit1.read_u32(10).await, 123_456);
    assert_eq!(unit1.read_u16(9999).await, 9);
    assert_eq!(unit1.read_coils(2, 3).await, [false, true, false]);
    assert_eq!(unit1.read_discretes(2, 3).await, [false, true, false]);
    // Unit 2 has its own tables: the shared init plus its own override.
    assert_eq!(unit2.read_u16s(10, 2).await, [42, 0xE240]);

    // Units are independent.
    unit2.write_u16(500, 5).await;
    assert_eq!(unit1.read_u16(500).await, 0);
    assert_eq!(unit2.read_u16(500).await, 5);

    // A restart comes back with the init values, not with what was written since.
    unit1.write_u16(10, 77).await;
    peer.start_again();
    assert_eq!(unit1.read_u16s(10, 2).await, [1, 0xE240]);
    assert_eq!(unit2.read_u16(500).await, 0);
}

/// RuntimeProcess on a stand-in binary (/bin/sh), so the harness is checked independently of
/// the mes-edge CLI: output capture, SIGTERM, SIGKILL, restart with appended logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_process_captures_output_and_signals() {
    use std::os::unix::process::ExitStatusExt;

    let script = r#"echo "started $MES_EDGE_SMOKE"; echo "to stderr" >&2; trap 'echo got-term; exit 7' TERM; while :; do sleep 0.05; done"#;
    let mut rt = common::RuntimeProcess::spawn_with(
        "/bin/sh",
        ["-c", script],
        [("MES_EDGE_SMOKE", "yes")],
        None,
    );
    assert!(
        rt.wait_for_output("started yes", WAIT).await,
        "{}",
        rt.logs()
    );
    assert!(rt.wait_for_output("to stderr", WAIT).await, "{}", rt.logs());
    assert!(rt.is_running());

    let status = rt.terminate();
    assert_eq!(
        status.code(),
        Some(7),
        "SIGTERM handler did not run\n{}",
        rt.logs()
    );
    assert!(rt.stdout().contains("got-term"));
    assert!(!rt.is_running());

    rt.start_again();
    assert!(
        common::eventually(WAIT, || rt.stdout().matches("started yes").count() == 2).await,
        "{}",
        rt.logs()
    );
    let status = rt.kill9();
    assert_eq!(status.signal(), Some(9));
    let out = rt.stdout();
    assert!(
        out.contains("==== harness: start #1 ====") && out.contains("==== harness: start #2 ====")
    );
    assert_eq!(
        out.matches("got-term").count(),
        1,
        "SIGKILL must not run the TERM handler"
    );
    assert!(rt.logs().contains("to stderr"));
}
