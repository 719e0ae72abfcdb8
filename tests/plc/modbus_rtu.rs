//! Modbus RTU against pymodbus: over a serial line (a socat pseudo-terminal pair, the pymodbus
//! RTU server on one end, the runtime on the other) end to end through Mosquitto, and RTU frames
//! over TCP with several units on one gateway, one of them dead.

use crate::common;

use common::cell::{Delivery, FAULT, GOOD, SCRAP, STATE, TOPIC_FILTER};
use common::modbus_lab::{cell_config, Drivers, LabOptions, LabPeer, SocatPair};
use common::{Collector, Mosquitto, Plc, RuntimeProcess};
use mes_edge_drivers::Quality;
use serde_json::json;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mes-edge");

fn rtu_cell(
    dir: &std::path::Path,
    serial_port: &std::path::Path,
    mqtt_port: u16,
) -> std::path::PathBuf {
    let path = dir.join("cell.toml");
    let text = format!(
        r#"[cell]
enterprise = "acme"
site = "plant1"
area = "pressing"
line = "line3"
cell = "press7"

[[devices]]
name = "press_plc"
protocol = "modbus-rtu"
serial_port = "{port}"
baud_rate = 19200
parity = "none"
unit_id = 1
timeout_ms = 500
poll_interval_ms = 100

[[devices.tags]]
name = "good_count"
table = "holding"
address = {GOOD}
type = "u32"

[[devices.tags]]
name = "scrap_count"
table = "holding"
address = {SCRAP}
type = "u16"

[[devices.tags]]
name = "state_word"
table = "holding"
address = {STATE}
type = "u16"

[[devices.tags]]
name = "fault_code"
table = "holding"
address = {FAULT}
type = "u16"

[[devices]]
name = "energy_meter"
protocol = "modbus-rtu"
serial_port = "{port}"
baud_rate = 19200
parity = "none"
unit_id = 2
timeout_ms = 500
poll_interval_ms = 500

[[devices.tags]]
name = "energy"
table = "input"
address = 10
type = "f32"
order = "CDAB"

[signals.good_count]
tag = "good_count"

[signals.scrap_count]
tag = "scrap_count"

[signals.machine_state]
tag = "state_word"
fault_tag = "fault_code"
states = {{ 0 = "idle", 1 = "running", 2 = "down" }}

[store]
path = "cell.db"

[mqtt]
url = "mqtt://127.0.0.1:{mqtt_port}"
client_id = "mes-edge-rtu-under-test"
keep_alive_s = 5
"#,
        port = serial_port.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_and_states_over_a_serial_line_end_to_end() {
    let pair = SocatPair::start();
    let plc_peer = LabPeer::start(LabOptions {
        tcp: true,
        serial: Some(pair.plc_end.clone()),
        unit_ids: vec![1, 2],
        ..Default::default()
    });
    let broker = Mosquitto::start();
    let collector = Collector::start(broker.port(), TOPIC_FILTER).await;
    let dir = tempfile::tempdir().unwrap();
    let config = rtu_cell(dir.path(), &pair.runtime_end, broker.port());
    let mut rt = RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()]);

    let online = |m: &[common::Received]| {
        Delivery::of(m)
            .of_type("device_status")
            .filter(|e| e["data"]["online"] == true)
            .count()
    };
    let ok = collector
        .wait_for(|m| online(m) >= 2, Duration::from_secs(20))
        .await;
    assert!(ok, "both units on the serial line online\n{}", rt.logs());

    // The PLC program (played over Modbus TCP on the same tables) makes parts and runs.
    let mut plc = Plc::connect(plc_peer.tcp_port, 1).await;
    plc.write_u16(STATE, 1).await;
    let (mut good, mut scrap) = (0u32, 0u16);
    for i in 0..40 {
        good += 1;
        plc.write_u32(GOOD, good).await;
        if i % 4 == 0 {
            scrap += 1;
            plc.write_u16(SCRAP, scrap).await;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    plc.write_u16(FAULT, 17).await;
    plc.write_u16(STATE, 2).await;
    let ok = collector
        .wait_for(
            |m| {
                let d = Delivery::of(m);
                d.parts("good") >= good as u64
                    && d.parts("scrap") >= scrap as u64
                    && d.of_type("machine_state")
                        .any(|e| e["data"]["state"] == "down")
            },
            Duration::from_secs(20),
        )
        .await;
    let d = Delivery::of(&collector.snapshot());
    assert!(
        ok,
        "parts and states over RTU; got {:?}\n{}",
        d.by_seq,
        rt.logs()
    );
    d.assert_gap_free();
    assert_eq!(
        (d.parts("good"), d.parts("scrap")),
        (good as u64, scrap as u64)
    );
    let states: Vec<&str> = d
        .of_type("machine_state")
        .filter_map(|e| e["data"]["state"].as_str())
        .collect();
    assert!(states.contains(&"running"), "{states:?}");
    assert!(
        d.of_type("device_status")
            .all(|e| e["data"]["online"] == true),
        "no device went offline on the serial line"
    );
    assert!(
        rt.terminate().success(),
        "clean exit on SIGTERM\n{}",
        rt.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_unit_on_a_gateway_does_not_stall_the_others() {
    let peer = LabPeer::start(LabOptions {
        rtu_over_tcp: true,
        unit_ids: vec![1, 2],
        count_reads_at: Some(7),
        init: Some(
            json!({"typed": [{"address": 20, "type": "f32", "order": "CDAB", "value": 230.5}]}),
        ),
        ..Default::default()
    });
    let unit = |n: u8| {
        format!(
            "[[devices]]\nname = \"unit{n}\"\nprotocol = \"modbus-rtu-over-tcp\"\nhost = \"127.0.0.1\"\n\
             port = {}\nunit_id = {n}\ntimeout_ms = 250\npoll_interval_ms = 100\n\n\
             [[devices.tags]]\nname = \"reads{n}\"\ntable = \"holding\"\naddress = 7\ntype = \"u16\"\n\
             [[devices.tags]]\nname = \"volts{n}\"\ntable = \"input\"\naddress = 20\ntype = \"f32\"\norder = \"CDAB\"\n\n",
            peer.rtu_over_tcp_port
        )
    };
    let drivers = Drivers::start(&cell_config(&format!("{}{}{}", unit(1), unit(3), unit(2))));
    assert!(
        drivers
            .wait_all(&["reads1", "reads2", "reads3"], Duration::from_secs(10))
            .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let from = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let to = Instant::now();
    for n in [1, 2] {
        let polls = drivers
            .samples(&format!("reads{n}"))
            .iter()
            .filter(|(at, s)| *at >= from && *at < to && s.quality == Quality::Good)
            .count();
        // 40 polls in 4 s; the dead unit is tried with a growing delay, each try costing one
        // 250 ms timeout on the shared line.
        let gaps: Vec<u128> = drivers
            .samples(&format!("reads{n}"))
            .windows(2)
            .map(|w| (w[1].0 - w[0].0).as_millis())
            .collect();
        assert!(
            polls >= 28,
            "unit {n}: {polls} polls in 4 s (expected about 40); ms between polls: {gaps:?}"
        );
        let volts = drivers.latest(&format!("volts{n}")).unwrap();
        assert_eq!(volts.value, Some(mes_edge_drivers::Value::Float(230.5)));
    }
    assert_eq!(drivers.statuses(1), vec![false], "unit 3 offline, once");
    assert!(drivers
        .samples("reads3")
        .iter()
        .all(|(_, s)| s.quality == Quality::Bad));
    assert_eq!(drivers.statuses(0), vec![true]);
    assert_eq!(drivers.statuses(2), vec![true]);
    drivers.stop().await;
}
