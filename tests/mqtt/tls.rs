//! MQTT over TLS against Mosquitto with `require_certificate true`: the runtime verifies the
//! broker against the configured CA, proves itself with a client certificate, logs in with a
//! username and a password from a file, never falls back to plaintext, warns about a key file
//! anyone can read, and never writes a secret into its log. Certificates are made by the test.

use crate::common;

use common::cell::{write_config_with, Delivery, GOOD, TOPIC_FILTER};
use common::pki::Pki;
use common::{free_port, Collector, ModbusPeer, Mosquitto, Plc, RuntimeProcess};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_mes-edge");
const USER: &str = "press4";
const PASSWORD: &str = "s3cret-Pw-7f2a9c";

/// A cell whose `[mqtt]` table gets `mqtt` (url and TLS keys) instead of the plain url.
fn tls_cell(dir: &Path, modbus_port: u16, url: &str, mqtt: &str) -> PathBuf {
    let path = write_config_with(
        dir,
        modbus_port,
        1,
        &format!("{mqtt}\n[health]\nenabled = false\n"),
    );
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("url = \"mqtt://127.0.0.1:1\"", &format!("url = {url:?}"));
    std::fs::write(&path, text).unwrap();
    path
}

fn spawn(config: &Path) -> RuntimeProcess {
    // Debug logging: a secret must stay out of the log at every level.
    RuntimeProcess::spawn_with(
        BIN,
        ["run", "--config", config.to_str().unwrap()],
        [("RUST_LOG", "debug,tokio_modbus=info")],
        None,
    )
}

fn assert_no_secrets(rt: &RuntimeProcess, pki: &Pki) {
    let log = format!("{}{}", rt.stdout(), rt.stderr());
    assert!(!log.contains(PASSWORD), "the password is in the log");
    let key = std::fs::read_to_string(&pki.client_key).unwrap();
    let body: Vec<&str> = key.lines().filter(|l| !l.starts_with("-----")).collect();
    for line in body {
        assert!(!log.contains(line), "the private key is in the log");
    }
}

async fn make_parts(peer: &ModbusPeer, n: u32) {
    let mut plc = Plc::connect(peer.port(), 1).await;
    for good in 1..=n {
        plc.write_u32(GOOD, good).await;
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
}

async fn wait_parts(c: &Collector, n: u64) -> bool {
    c.wait_for(
        |m| Delivery::of(m).parts("good") >= n,
        Duration::from_secs(30),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_and_password_from_a_file_over_tls() {
    let pki = Pki::new(USER, PASSWORD);
    let plain = free_port();
    let broker = Mosquitto::start_with_config(&pki.broker_config(plain, true));
    let peer = ModbusPeer::start();
    let collector = Collector::start_with_login(plain, TOPIC_FILTER, USER, PASSWORD).await;
    let dir = tempfile::tempdir().unwrap();
    let config = tls_cell(
        dir.path(),
        peer.port(),
        &format!("mqtts://127.0.0.1:{}", broker.port()),
        &format!(
            "ca_file = {:?}\ncert_file = {:?}\nkey_file = {:?}\nusername = {USER:?}\npassword_file = {:?}\n",
            pki.ca, pki.client_cert, pki.client_key, pki.password_file
        ),
    );
    let mut rt = spawn(&config);
    assert!(
        rt.wait_for_output("connected to broker", Duration::from_secs(20))
            .await,
        "no TLS connection\n{}\n{}",
        rt.logs(),
        broker.logs()
    );
    // Parts count from the runtime's first reading of the PLC: make them after it.
    let online = collector
        .wait_for(
            |m| {
                m.iter().any(|m| {
                    m.topic.ends_with("/device_status") && m.payload["data"]["online"] == true
                })
            },
            Duration::from_secs(20),
        )
        .await;
    assert!(online, "the device online over TLS\n{}", rt.logs());
    make_parts(&peer, 12).await;
    assert!(
        wait_parts(&collector, 12).await,
        "parts over TLS\n{}",
        rt.logs()
    );
    let d = Delivery::of(&collector.snapshot());
    d.assert_gap_free();
    assert_eq!(d.parts("good"), 12);
    assert!(
        broker
            .logs()
            .contains(&format!("as mes-edge-under-test (p5, c0, k5, u'{USER}')")),
        "the broker saw the runtime log in as {USER}\n{}",
        broker.logs()
    );
    assert!(
        !rt.stderr().contains("readable by every user"),
        "{}",
        rt.logs()
    );
    assert_no_secrets(&rt, &pki);
    assert!(rt.terminate().success());
    drop(pki.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_a_missing_certificate_or_an_unknown_ca_is_refused() {
    let pki = Pki::new(USER, PASSWORD);
    let plain = free_port();
    let broker = Mosquitto::start_with_config(&pki.broker_config(plain, true));
    let peer = ModbusPeer::start();
    let collector = Collector::start_with_login(plain, TOPIC_FILTER, USER, PASSWORD).await;
    let url = format!("mqtts://127.0.0.1:{}", broker.port());
    let wrong_pw = pki.dir.path().join("wrong-password");
    std::fs::write(&wrong_pw, "not-the-password\n").unwrap();
    std::fs::set_permissions(&wrong_pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cases = [
        (
            "wrong password",
            format!("ca_file = {:?}\ncert_file = {:?}\nkey_file = {:?}\nusername = {USER:?}\npassword_file = {:?}\n", pki.ca, pki.client_cert, pki.client_key, wrong_pw),
            "Connection refused, return code",
        ),
        (
            "no client certificate",
            format!("ca_file = {:?}\nusername = {USER:?}\npassword_file = {:?}\n", pki.ca, pki.password_file),
            "broker connection lost",
        ),
        (
            "broker signed by a CA the cell does not trust",
            format!("ca_file = {:?}\ncert_file = {:?}\nkey_file = {:?}\nusername = {USER:?}\npassword_file = {:?}\n", pki.stranger_ca, pki.client_cert, pki.client_key, pki.password_file),
            "UnknownIssuer",
        ),
    ];
    for (what, mqtt, expect) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut rt = spawn(&tls_cell(dir.path(), peer.port(), &url, &mqtt));
        assert!(
            rt.wait_for_output(expect, Duration::from_secs(15)).await,
            "{what}: expected {expect:?} in the log\n{}",
            rt.logs()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(
            rt.is_running(),
            "{what}: the runtime keeps trying, it does not exit"
        );
        assert!(
            !rt.stderr().contains("connected to broker"),
            "{what}: connected anyway\n{}",
            rt.logs()
        );
        assert_no_secrets(&rt, &pki);
        assert!(rt.terminate().success(), "{what}: clean stop while refused");
    }
    assert!(
        collector
            .snapshot()
            .iter()
            .all(|m| !m.topic.contains("/events/")),
        "no event reached the broker"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtts_never_falls_back_to_plaintext_and_a_readable_key_is_flagged() {
    let pki = Pki::new(USER, PASSWORD);
    // A plaintext broker where the config says mqtts://
    let broker = Mosquitto::start();
    let peer = ModbusPeer::start();
    let collector = Collector::start(broker.port(), TOPIC_FILTER).await;
    let readable_key = pki.dir.path().join("readable.key");
    std::fs::copy(&pki.client_key, &readable_key).unwrap();
    std::fs::set_permissions(&readable_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = tls_cell(
        dir.path(),
        peer.port(),
        &format!("mqtts://127.0.0.1:{}", broker.port()),
        &format!(
            "ca_file = {:?}\ncert_file = {:?}\nkey_file = {:?}\n",
            pki.ca, pki.client_cert, readable_key
        ),
    );
    let mut rt = spawn(&config);
    make_parts(&peer, 5).await;
    assert!(
        rt.wait_for_output("broker connection lost", Duration::from_secs(15))
            .await,
        "{}",
        rt.logs()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(rt.is_running());
    let log = rt.stderr();
    assert!(
        log.contains("key_file is readable by every user"),
        "{}",
        rt.logs()
    );
    assert!(log.contains("readable.key"), "the warning names the file");
    assert!(!log.contains("connected to broker"), "{}", rt.logs());
    // The broker saw bytes that were no MQTT CONNECT (a TLS ClientHello), and no client.
    let broker_log = broker.logs();
    assert!(
        !broker_log.contains("as mes-edge-under-test"),
        "{broker_log}"
    );
    assert!(
        broker_log.contains("disconnected due to protocol error"),
        "{broker_log}"
    );
    assert!(collector
        .snapshot()
        .iter()
        .all(|m| !m.topic.contains("/events/")));
    // The events wait in the store for a broker the cell can trust.
    let stats = Command::new(BIN)
        .args(["outbox", "stats", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let stats = String::from_utf8_lossy(&stats.stdout);
    assert!(stats.contains("last delivered seq:  -"), "{stats}");
    assert_no_secrets(&rt, &pki);
    assert!(rt.terminate().success());
}
