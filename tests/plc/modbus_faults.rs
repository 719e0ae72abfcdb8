//! Faults stay with the device that has them, against pymodbus peers: an address the PLC
//! refuses turns only its own tag bad, and a slow PLC or one that answers garbage does not slow
//! down the other devices.

use crate::common;

use common::modbus_lab::{cell_config, Drivers, GarbagePeer, LabOptions, LabPeer};
use common::Plc;
use mes_edge_drivers::{Quality, Value};
use serde_json::json;
use std::time::{Duration, Instant};

fn u16_tags(addresses: &[u16]) -> String {
    addresses
        .iter()
        .map(|a| {
            format!("[[devices.tags]]\nname = \"r{a}\"\ntable = \"holding\"\naddress = {a}\ntype = \"u16\"\n")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_illegal_data_address_turns_only_its_own_tag_bad() {
    // 5 is a tag the PLC does not have; 20 is an unused address between two tags that the PLC
    // does not have either, so a request across it fails although both tags exist.
    let addresses: Vec<u16> = (0..10).chain([18, 22, 30]).collect();
    let holding: serde_json::Map<String, serde_json::Value> = addresses
        .iter()
        .map(|a| (a.to_string(), json!(1000 + a)))
        .collect();
    let peer = LabPeer::start(LabOptions {
        tcp: true,
        init: Some(json!({"holding": holding, "missing": [5, 20]})),
        ..Default::default()
    });
    let config = cell_config(&format!(
        "[[devices]]\nname = \"plc\"\nprotocol = \"modbus-tcp\"\nhost = \"127.0.0.1\"\nport = {}\n\
         poll_interval_ms = 100\n\n{}",
        peer.tcp_port,
        u16_tags(&addresses)
    ));
    let drivers = Drivers::start(&config);
    let names: Vec<String> = addresses.iter().map(|a| format!("r{a}")).collect();
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    let settled = common::eventually(Duration::from_secs(10), || {
        all.iter().all(|n| {
            drivers.latest(n).is_some_and(|s| {
                s.quality
                    == if *n == "r5" {
                        Quality::Bad
                    } else {
                        Quality::Good
                    }
            })
        })
    })
    .await;
    let now: Vec<_> = all.iter().map(|n| (n, drivers.latest(n))).collect();
    assert!(settled, "expected only r5 bad: {now:#?}");
    for a in &addresses {
        if *a != 5 {
            let s = drivers.latest(&format!("r{a}")).unwrap();
            assert_eq!(s.value, Some(Value::UInt(1000 + *a as u64)), "r{a}");
        }
    }
    assert_eq!(drivers.statuses(0), vec![true], "the device stays online");

    // The requests planned around the refused addresses keep reading: new values show.
    let mut plc = Plc::connect(peer.tcp_port, 1).await;
    plc.write_u16(4, 7).await;
    plc.write_u16(6, 8).await;
    plc.write_u16(22, 9).await;
    let updated = common::eventually(Duration::from_secs(5), || {
        [("r4", 7), ("r6", 8), ("r22", 9)].iter().all(|(n, v)| {
            drivers
                .latest(n)
                .is_some_and(|s| s.value == Some(Value::UInt(*v)))
        })
    })
    .await;
    assert!(
        updated,
        "values around the refused addresses are still read"
    );
    // A refused tag is reported bad once, not at every poll.
    assert_eq!(
        drivers.samples("r5").len(),
        1,
        "{:?}",
        drivers.samples("r5")
    );
    drivers.stop().await;
}

/// Polls of a tag that changes at every read (the server counts reads into it) between `from`
/// and `to`.
fn polls_between(drivers: &Drivers, tag: &str, from: Instant, to: Instant) -> usize {
    drivers
        .samples(tag)
        .iter()
        .filter(|(at, s)| *at >= from && *at < to && s.quality == Quality::Good)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_and_a_garbage_device_do_not_slow_the_others() {
    let good = LabPeer::start(LabOptions {
        tcp: true,
        count_reads_at: Some(50),
        ..Default::default()
    });
    let slow = LabPeer::start(LabOptions {
        tcp: true,
        delay_ms: Some(400),
        count_reads_at: Some(50),
        ..Default::default()
    });
    let garbage = GarbagePeer::start();
    let device = |name: &str, port: u16, tag: &str| {
        format!(
            "[[devices]]\nname = \"{name}\"\nprotocol = \"modbus-tcp\"\nhost = \"127.0.0.1\"\nport = {port}\n\
             poll_interval_ms = 100\ntimeout_ms = 600\n\n\
             [[devices.tags]]\nname = \"{tag}\"\ntable = \"holding\"\naddress = 50\ntype = \"u16\"\n\
             [[devices.tags]]\nname = \"{tag}_more\"\ntable = \"input\"\naddress = 0\ntype = \"u32\"\n\n"
        )
    };
    let config = cell_config(&format!(
        "{}{}{}",
        device("good", good.tcp_port, "good_reads"),
        device("slow", slow.tcp_port, "slow_reads"),
        device("garbage", garbage.port, "garbage_reads"),
    ));
    let drivers = Drivers::start(&config);
    let names = ["good_reads", "slow_reads", "garbage_reads"];
    assert!(
        drivers.wait_all(&names, Duration::from_secs(10)).await,
        "{:?} {:?}",
        names.map(|n| drivers.latest(n)),
        (0..3).map(|d| drivers.statuses(d)).collect::<Vec<_>>()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let from = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let to = Instant::now();
    let good_polls = polls_between(&drivers, "good_reads", from, to);
    // 4 s at 100 ms is 40 polls; allow for a loaded 2-core CI machine.
    assert!(
        good_polls >= 32,
        "the good device was polled {good_polls} times in 4 s (expected about 40)"
    );
    // The slow device answers every request 400 ms late: about one poll in 0.8 s (a group is two
    // requests), every one of them good.
    let slow_polls = polls_between(&drivers, "slow_reads", from, to);
    assert!(
        (3..=7).contains(&slow_polls),
        "slow device: {slow_polls} polls in 4 s"
    );
    assert!(drivers
        .samples("slow_reads")
        .iter()
        .all(|(_, s)| s.quality == Quality::Good));
    // The garbage device never produced a value, and was reported offline.
    assert!(
        drivers
            .samples("garbage_reads")
            .iter()
            .all(|(_, s)| s.quality == Quality::Bad && s.value.is_none()),
        "{:?}",
        drivers.samples("garbage_reads")
    );
    assert!(
        drivers.statuses(2).contains(&false),
        "garbage device statuses {:?}",
        drivers.statuses(2)
    );
    assert_eq!(
        drivers.statuses(0),
        vec![true],
        "good device: online once, never offline"
    );
    drivers.stop().await;
}
