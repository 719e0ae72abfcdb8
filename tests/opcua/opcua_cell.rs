//! An OPC UA cell end to end, against peers we did not write: a Python asyncua server as the
//! machine controller and Mosquitto as the plant's broker; the runtime is the real binary.

use crate::common;

use common::cell::{Delivery, TOPIC_FILTER};
use common::opcua::{device_section, write_cell_config, OpcUaOptions, OpcUaPeer};
use common::{Collector, Mosquitto, Received, RuntimeProcess};
use std::path::Path;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_mes-edge");

fn run_cell(config: &Path) -> RuntimeProcess {
    RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()])
}

/// `(online, reason)` of every device_status event, in sequence order.
fn statuses(msgs: &[Received]) -> Vec<(bool, String)> {
    Delivery::of(msgs)
        .of_type("device_status")
        .map(|e| {
            (
                e["data"]["online"].as_bool().unwrap(),
                e["data"]["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

async fn wait_status(c: &Collector, rt: &RuntimeProcess, online: bool, n: usize) {
    let ok = c
        .wait_for(
            |m| statuses(m).iter().filter(|s| s.0 == online).count() >= n,
            Duration::from_secs(30),
        )
        .await;
    assert!(
        ok,
        "no device_status online={online} #{n}; got {:?}\n{}",
        statuses(&c.snapshot()),
        rt.logs()
    );
}

async fn wait_parts(c: &Collector, good: u64, scrap: u64) -> Delivery {
    c.wait_for(
        |m| {
            let d = Delivery::of(m);
            d.parts("good") >= good && d.parts("scrap") >= scrap
        },
        Duration::from_secs(30),
    )
    .await;
    Delivery::of(&c.snapshot())
}

fn states(d: &Delivery) -> Vec<String> {
    d.of_type("machine_state")
        .map(|e| e["data"]["state"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribed_counter_node_counts_parts_exactly_end_to_end() {
    let broker = Mosquitto::start();
    let mut peer = OpcUaPeer::start(OpcUaOptions::default());
    let (mut good, mut scrap) = (4_294_967_200u32, 100u16);
    peer.set("GoodCount", good);
    peer.set("ScrapCount", scrap);
    let collector = Collector::start(broker.port(), TOPIC_FILTER).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_cell_config(
        dir.path(),
        &device_section(&peer.endpoint(), ""),
        2,
        broker.port(),
    );
    let mut rt = run_cell(&config);
    wait_status(&collector, &rt, true, 1).await;

    peer.set("State", 1);
    for i in 0..200u32 {
        good = good.wrapping_add(1);
        peer.set("GoodCount", good);
        if i % 8 == 0 {
            scrap += 1;
            peer.set("ScrapCount", scrap);
        }
        if i == 100 {
            peer.set("State", 2);
        }
        if i == 150 {
            peer.set("State", 1);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let d = wait_parts(&collector, 200, 25).await;
    d.assert_gap_free();
    assert_eq!(
        (d.parts("good"), d.parts("scrap")),
        (200, 25),
        "counted what the controller counted, across the 32-bit rollover"
    );
    assert!(d
        .of_type("part_count")
        .any(|e| e["data"]["rolled_over"] == true));
    assert_eq!(d.of_type("counter_reset").count(), 0);
    assert_eq!(states(&d), ["idle", "running", "down", "running"]);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let after = Delivery::of(&collector.snapshot());
    assert_eq!((after.parts("good"), after.parts("scrap")), (200, 25));
    assert!(rt.terminate().success(), "clean exit on SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_is_an_outage_with_recovery_and_no_phantom_count() {
    let broker = Mosquitto::start();
    let mut peer = OpcUaPeer::start(OpcUaOptions::default());
    peer.set("GoodCount", 5000);
    let collector = Collector::start(broker.port(), TOPIC_FILTER).await;
    let dir = tempfile::tempdir().unwrap();
    // The state word is given by namespace index, the counters by URI and browse path.
    let section = device_section(&peer.endpoint(), "")
        .replace(&common::opcua::node("State"), "ns=2;s=Press.State");
    let config = write_cell_config(dir.path(), &section, 2, broker.port());
    let mut rt = run_cell(&config);
    wait_status(&collector, &rt, true, 1).await;
    for g in 5001..=5010 {
        peer.set("GoodCount", g);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_parts(&collector, 10, 0).await;

    peer.stop();
    wait_status(&collector, &rt, false, 1).await;
    let offline = statuses(&collector.snapshot());
    assert!(
        offline.last().unwrap().1.contains("connection lost")
            || offline.last().unwrap().1.contains("session"),
        "the reason says what happened: {offline:?}"
    );
    // The controller's server comes back with the counter where it was, and with another
    // namespace registered before ours: nsu= and browse paths follow it, ns=2 no longer names it.
    peer.options.extra_namespaces = 1;
    peer.start_again();
    wait_status(&collector, &rt, true, 2).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let d = Delivery::of(&collector.snapshot());
    assert_eq!(d.parts("good"), 10, "no phantom count on reconnect");

    for g in 5011..=5015 {
        peer.set("GoodCount", g);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The scrap counter's browse path names namespace 2, which is now another namespace: that
    // tag is bad and counts nothing, and the log says why.
    peer.set("ScrapCount", 3);
    let d = wait_parts(&collector, 15, 0).await;
    d.assert_gap_free();
    assert_eq!(
        (d.parts("good"), d.parts("scrap")),
        (15, 0),
        "the re-created subscription delivers again; a bad tag counts nothing"
    );
    assert!(
        rt.wait_for_output(
            "browse path /2:Press/2:ScrapCount not found on the server",
            Duration::from_secs(5)
        )
        .await,
        "{}",
        rt.logs()
    );
    assert_eq!(d.of_type("counter_reset").count(), 0);
    assert!(
        rt.wait_for_output(
            "the server's namespace 2 was \"urn:mes-edge:test-plc\" and is now",
            Duration::from_secs(5)
        )
        .await,
        "a moved namespace is a clear error\n{}",
        rt.logs()
    );
    assert!(rt.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secure_session_with_user_and_password_after_the_server_certificate_is_trusted() {
    let broker = Mosquitto::start();
    let mut peer = OpcUaPeer::start(OpcUaOptions {
        security: "secure",
        user: Some(("operator".into(), "s3cret-pw".into())),
        ..Default::default()
    });
    peer.set("GoodCount", 70);
    let collector = Collector::start(broker.port(), TOPIC_FILTER).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("press.password"), "s3cret-pw\n").unwrap();
    let security = "security_policy = \"Basic256Sha256\"\n\
                    security_mode = \"SignAndEncrypt\"\n\
                    username = \"operator\"\n\
                    password_file = \"press.password\"";
    let config = write_cell_config(
        dir.path(),
        &device_section(&peer.endpoint(), security),
        2,
        broker.port(),
    );
    let mut rt = run_cell(&config);

    // The PKI folder is made next to the store, with our certificate, and the server's unknown
    // certificate is refused with the file to move.
    let pki = dir.path().join("state/pki");
    wait_status(&collector, &rt, false, 1).await;
    let reason = statuses(&collector.snapshot()).last().unwrap().1.clone();
    assert!(
        reason.contains("the server's certificate is not trusted"),
        "{reason}"
    );
    let rejected = std::fs::read_dir(pki.join("rejected"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .next()
        .expect("the server's certificate is in rejected/");
    assert!(
        reason.contains(&format!("move \"{}\"", rejected.display()))
            && reason.contains(&format!("into \"{}\"", pki.join("trusted").display())),
        "the error names the file and where it goes: {reason}"
    );
    assert!(
        pki.join("own/cert.der").is_file(),
        "our certificate was made"
    );
    assert_eq!(
        std::fs::read(&rejected).unwrap(),
        std::fs::read(peer.certificate()).unwrap(),
        "rejected/ holds exactly the server's certificate"
    );
    assert!(
        rt.stderr()
            .contains("the server's certificate is not trusted"),
        "the error is in the log too\n{}",
        rt.logs()
    );

    // The trust step: move the file. The driver's next attempt connects.
    std::fs::rename(
        &rejected,
        pki.join("trusted").join(rejected.file_name().unwrap()),
    )
    .unwrap();
    wait_status(&collector, &rt, true, 1).await;
    for g in 71..=80 {
        peer.set("GoodCount", g);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let d = wait_parts(&collector, 10, 0).await;
    d.assert_gap_free();
    assert_eq!(d.parts("good"), 10);

    // A server that comes back with a new certificate is not trusted silently: the connection
    // loss is the device's offline event, the refusals that follow are in the log and the new
    // certificate waits in rejected/.
    let refusals_before = rt.stderr().matches("certificate is not trusted").count();
    peer.options.new_cert = true;
    peer.start_again();
    wait_status(&collector, &rt, false, 2).await;
    let new_cert = std::fs::read(peer.certificate()).unwrap();
    let waiting = common::eventually(Duration::from_secs(30), || {
        std::fs::read_dir(pki.join("rejected"))
            .unwrap()
            .any(|e| std::fs::read(e.unwrap().path()).unwrap() == new_cert)
    })
    .await;
    assert!(
        waiting,
        "the new certificate is in rejected/\n{}",
        rt.logs()
    );
    let logged = common::eventually(Duration::from_secs(10), || {
        rt.stderr().matches("certificate is not trusted").count() > refusals_before
    })
    .await;
    assert!(logged, "the refusal is logged\n{}", rt.logs());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let online = statuses(&collector.snapshot())
        .iter()
        .filter(|s| s.0)
        .count();
    assert_eq!(online, 1, "not online again with an untrusted certificate");
    assert!(rt.terminate().success());
}

/// A controller that shows its reset only with its next part (a fast machine read slowly):
/// the good counter jumps 559 -> 2 and the reject counter 5 -> 1 at once. Alone, the reject
/// counter's step back is a correction of -4 and its part is lost; at the moment the good
/// counter restarts from zero it is a restart too (docs/EVENTS.md rule 7). MOM gets what the
/// controller counted on both counters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_seen_only_with_the_next_part_counts_both_counters() {
    let broker = Mosquitto::start();
    let mut peer = OpcUaPeer::start(OpcUaOptions::default());
    peer.set("GoodCount", 550);
    peer.set("ScrapCount", 4);
    let collector = Collector::start(broker.port(), TOPIC_FILTER).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_cell_config(
        dir.path(),
        &device_section(&peer.endpoint(), ""),
        2,
        broker.port(),
    );
    let mut rt = run_cell(&config);
    wait_status(&collector, &rt, true, 1).await;
    // Parts before the reset: 9 good, 1 reject (the baselines are taken).
    for g in 551..=559 {
        peer.set("GoodCount", g);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    peer.set("ScrapCount", 5);
    let d = wait_parts(&collector, 9, 1).await;
    assert_eq!((d.parts("good"), d.parts("scrap")), (9, 1));

    // Reset, seen with the next part of each counter.
    peer.set("GoodCount", 2);
    peer.set("ScrapCount", 1);
    for g in 3..=5 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        peer.set("GoodCount", g);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    peer.set("ScrapCount", 2);
    let d = wait_parts(&collector, 9 + 5, 1 + 2).await;
    assert_eq!(
        (d.parts("good"), d.parts("scrap")),
        (14, 3),
        "what the controller counted\n{}",
        rt.logs()
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let d = Delivery::of(&collector.snapshot());
    assert_eq!((d.parts("good"), d.parts("scrap")), (14, 3), "nothing more");
    d.assert_gap_free();
    assert_eq!(d.of_type("count_correction").count(), 0);
    let reset = |counter: &str| {
        d.of_type("counter_reset")
            .find(|e| e["data"]["counter"] == counter)
            .map(|e| {
                (
                    e["data"]["rule"].as_str().unwrap_or("-").to_string(),
                    e["data"]["evidence"].as_str().unwrap_or("-").to_string(),
                )
            })
    };
    assert_eq!(
        reset("good"),
        Some(("restarted_from_zero".into(), "readings".into()))
    );
    assert_eq!(
        reset("scrap"),
        Some(("restarted_from_zero".into(), "sibling_restarted".into()))
    );
    assert!(rt.terminate().success(), "clean exit on SIGTERM");
}
