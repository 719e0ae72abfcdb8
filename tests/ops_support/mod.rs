//! What the ops tests share beyond `tests/common`: the health endpoint in a cell config, a
//! scrape through Python's HTTP client and prometheus_client's parser (`tests/peers/
//! http_scrape.py`), signals, `outbox stats`, and a TCP relay to the broker that can be frozen
//! so that publishes stay unacknowledged (the broker itself stays the real Mosquitto).
#![allow(dead_code)]

use crate::common::cell::Delivery;
use crate::common::{free_port, python_bin, Collector, Received};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_mes-edge");

/// Adds a `[health]` section on a free port to a config file; returns the address.
pub fn with_health(config: &Path) -> SocketAddr {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut text = std::fs::read_to_string(config).unwrap();
    text.push_str(&format!("\n[health]\nlisten = \"{addr}\"\n"));
    std::fs::write(config, text).unwrap();
    addr
}

pub struct Scrape {
    pub status: u16,
    pub content_type: String,
    pub body: String,
    /// The body as JSON (`/health`), or Null.
    pub json: Value,
    /// Metric families as prometheus_client parsed them (`/metrics`), or Null.
    pub families: Value,
}

fn scrape_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/http_scrape.py")
}

/// GET `http://addr{path}` with Python's urllib; `metrics` also parses the body as Prometheus
/// text (the scrape fails if the parser rejects it).
pub fn scrape(addr: SocketAddr, path: &str, metrics: bool) -> Scrape {
    let mut cmd = Command::new(python_bin());
    cmd.arg(scrape_script()).arg(format!("http://{addr}{path}"));
    if metrics {
        cmd.arg("--metrics");
    }
    let out = cmd.output().expect("run http_scrape.py");
    assert!(
        out.status.success(),
        "http_scrape.py {path}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("http_scrape.py prints JSON");
    let body = v["body"].as_str().unwrap_or_default().to_string();
    Scrape {
        status: v["status"].as_u64().unwrap() as u16,
        content_type: v["content_type"].as_str().unwrap_or_default().into(),
        json: serde_json::from_str(&body).unwrap_or(Value::Null),
        body,
        families: v.get("families").cloned().unwrap_or(Value::Null),
    }
}

/// The value of the sample `sample` with exactly `labels` among the parsed families.
pub fn sample(families: &Value, sample: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let fams = families.as_object()?;
    for fam in fams.values() {
        for s in fam["samples"].as_array()? {
            let got = s[1].as_object()?;
            if s[0] == sample
                && got.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| got.get(*k).and_then(Value::as_str) == Some(*v))
            {
                return s[2].as_f64();
            }
        }
    }
    None
}

/// Sends `request` as is and returns the raw response (until the server closes).
pub fn raw_http(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    // The server may answer (and close) before it has read everything we send.
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

mod sys {
    extern "C" {
        pub fn kill(pid: i32, sig: i32) -> i32;
    }
}
pub const SIGHUP: i32 = 1;
pub const SIGTERM: i32 = 15;

pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on the pid of a child the harness has not reaped.
    let rc = unsafe { sys::kill(pid as i32, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig})");
}

/// `mes-edge outbox stats`: (depth, last committed seq).
pub fn outbox_stats(config: &Path) -> (u64, u64) {
    let out = Command::new(BIN)
        .args(["outbox", "stats", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .trim()
            .parse()
            .unwrap()
    };
    (field("depth (undelivered):"), field("last committed seq:"))
}

fn device_statuses(msgs: &[Received]) -> Vec<bool> {
    Delivery::of(msgs)
        .of_type("device_status")
        .map(|e| e["data"]["online"].as_bool().unwrap())
        .collect()
}

/// Waits for the cell's device to have come online `n` times.
pub async fn wait_online(c: &Collector, n: usize) {
    let ok = c
        .wait_for(
            |m| device_statuses(m).iter().filter(|o| **o).count() >= n,
            Duration::from_secs(20),
        )
        .await;
    assert!(
        ok,
        "device not online (#{n}): {:?}",
        device_statuses(&c.snapshot())
    );
}

/// The payloads published on the cell's status topic, in arrival order.
pub fn statuses(msgs: &[Received]) -> Vec<(String, bool)> {
    msgs.iter()
        .filter(|m| m.topic.ends_with("/status"))
        .map(|m| (String::from_utf8_lossy(&m.raw).into_owned(), m.retain))
        .collect()
}

/// A TCP relay from a local port to the broker. Frozen, it stops moving bytes either way while
/// keeping the connections open: the runtime's publishes get no acknowledgement, as with a
/// broker that hangs.
pub struct Relay {
    port: u16,
    frozen: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    pub async fn start(target_port: u16) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = Arc::new(AtomicBool::new(false));
        let f = frozen.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target_port)).await
                else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pipe(cr, sw, f.clone()));
                tokio::spawn(pipe(sr, cw, f.clone()));
            }
        });
        Relay { port, frozen, task }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn freeze(&self, yes: bool) {
        self.frozen.store(yes, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if frozen.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let n = match tokio::time::timeout(Duration::from_millis(50), from.read(&mut buf)).await {
            Err(_) => continue,
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The runtime on `config` with systemd's place taken by the test: sd_notify datagrams go to a
/// socket in `dir` (returned, bound) and the watchdog is 4 s (a ping at least every second
/// while the runtime is well; a loop silent for 3 s is hung).
pub fn run_under_watchdog(
    config: &Path,
    dir: &Path,
) -> (
    crate::common::RuntimeProcess,
    std::os::unix::net::UnixDatagram,
) {
    let socket = dir.join("notify");
    let rx = std::os::unix::net::UnixDatagram::bind(&socket).unwrap();
    let rt = crate::common::RuntimeProcess::spawn_with(
        BIN,
        ["run", "--config", config.to_str().unwrap()],
        [
            ("NOTIFY_SOCKET", socket.to_str().unwrap()),
            ("WATCHDOG_USEC", "4000000"),
        ],
        None,
    );
    (rt, rx)
}
