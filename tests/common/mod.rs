//! Test harness for mes-edge integration tests against real, independent peers.
//!
//! The integration tests are a few test binaries, one per area (`tests/<area>/main.rs`, each
//! former test file a module of it): every binary links the whole library and this harness, so
//! fewer binaries build faster and take less disk, and nextest still runs each test in a process
//! of its own. A binary's main.rs declares `#[path = "../common/mod.rs"] mod common;` and its
//! modules `use crate::common;`. The peers are:
//! - [`Mosquitto`]: a real Mosquitto broker process (Debian's `mosquitto`), one per test.
//! - [`RabbitMq`]: a RabbitMQ node with its MQTT plugin (Debian's `rabbitmq-server`,
//!   `MES_EDGE_RABBITMQ`), the second broker; [`Broker`] is what tests do to either.
//! - [`ModbusPeer`]: `tests/peers/modbus_server.py`, an independent pymodbus TCP server that
//!   plays the PLC; [`Plc`] is a small tokio-modbus client with which a test plays the PLC
//!   program (writes counters and state words).
//! - [`Collector`]: an MQTT subscriber that records everything published under a topic filter,
//!   across broker restarts.
//! - [`RuntimeProcess`]: the mes-edge binary under test, as a child process.
//!
//! One file per peer (`mosquitto.rs`, `rabbitmq.rs`, `modbus.rs`, `opcua.rs`, `modbus_lab.rs`,
//! `runtime.rs`), the MQTT client side in `mqtt.rs`, and the lifecycle they all share (spawn, wait
//! until up, stop, kill -9, start again on the same port, logs) once, in `process.rs`
//! ([`process::PeerProcess`]). This file keeps the environment, small helpers and the names
//! tests import (`use common::{Mosquitto, Plc, ...}`).
//!
//! Peers come from the environment set by `scripts/test.sh`: `MES_EDGE_MOSQUITTO` (the
//! mosquitto binary) and `MES_EDGE_PYTHON` (a Python with pinned pymodbus). If either is
//! missing, starting a peer panics: a test must never pass without its peers.
//!
//! The harness knows nothing of the runtime's config format or event schema: tests build those.
//!
//! Process-level helpers (`start`, `stop`, `start_again`, `terminate`, ...) are synchronous and
//! block for at most a few seconds; they are fine to call from async tests. Prefer
//! `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]` so that the [`Collector`]'s
//! background task keeps running while the test thread blocks.
#![allow(dead_code)]

pub mod cell;
pub mod modbus;
pub mod modbus_lab;
pub mod mosquitto;
pub mod mqtt;
pub mod opcua;
pub mod order_cell;
pub mod pki;
pub mod process;
pub mod rabbitmq;
pub mod runtime;
pub mod s7;

// The names tests import from `common` itself; each test crate uses some of them.
#[allow(unused_imports)]
pub use {
    modbus::{ModbusPeer, Plc, PlcError, Press},
    mosquitto::Mosquitto,
    mqtt::{mqtt_publish, Collector, Received},
    rabbitmq::{RabbitCluster, RabbitMq},
    runtime::RuntimeProcess,
};

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a peer may take to come up before the harness gives up.
pub const PEER_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `stop()` / `terminate()` wait after SIGTERM before they SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// How many log lines `logs()` and the on-panic dumps show per file.
pub const LOG_TAIL_LINES: usize = 80;

/// What a test does to the plant's broker, whichever broker it is ([`Mosquitto`], [`RabbitMq`]).
pub trait Broker {
    fn port(&self) -> u16;
    /// Stopped cleanly (SIGTERM).
    fn stop(&mut self);
    /// Killed with SIGKILL (a crash).
    fn kill9(&mut self);
    /// Started again on the same port, with what it keeps across a restart.
    fn start_again(&mut self);
    fn logs(&self) -> String;
}

// ---------------------------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------------------------

fn required_env_file(name: &str) -> PathBuf {
    let value = match std::env::var_os(name) {
        Some(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set. Integration tests run against real peers (Mosquitto and a pymodbus \
             server) and must not pass without them: run scripts/test.sh, which installs the peers \
             and sets MES_EDGE_MOSQUITTO and MES_EDGE_PYTHON."
        ),
    };
    let path = PathBuf::from(value);
    if !path.is_file() {
        panic!(
            "{name}={} does not exist. Run scripts/test.sh, which installs the test peers \
             (Mosquitto, the pymodbus venv) and sets MES_EDGE_MOSQUITTO and MES_EDGE_PYTHON.",
            path.display()
        );
    }
    path
}

/// The mosquitto binary (`MES_EDGE_MOSQUITTO`); panics with "run scripts/test.sh" if unset or missing.
pub fn mosquitto_bin() -> PathBuf {
    required_env_file("MES_EDGE_MOSQUITTO")
}

/// The Python that has the pinned pymodbus (`MES_EDGE_PYTHON`); panics if unset or missing.
pub fn python_bin() -> PathBuf {
    required_env_file("MES_EDGE_PYTHON")
}

/// `tests/peers/<file>`, found from this crate's manifest dir upwards (so the harness also works
/// when included from a workspace member with `#[path = ...]`).
pub fn peer_script(file: &str) -> PathBuf {
    let mut dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")));
    while let Some(d) = dir {
        let candidate = d.join("tests/peers").join(file);
        if candidate.is_file() {
            return candidate;
        }
        dir = d.parent();
    }
    panic!(
        "tests/peers/{file} not found above {}",
        env!("CARGO_MANIFEST_DIR")
    );
}

/// `tests/peers/modbus_server.py`.
pub fn modbus_server_script() -> PathBuf {
    peer_script("modbus_server.py")
}

// ---------------------------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------------------------

/// A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, drop the socket).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// A process-unique name, e.g. for MQTT client ids.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// Polls `cond` every 20 ms until it is true (returns true) or `timeout` passes (returns false).
pub async fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn port_accepts(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// The last `n` lines of a file ("" if it does not exist).
pub fn tail_file(path: &Path, n: usize) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        // Only the last 256 KiB matter for a tail.
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let start = len.saturating_sub(256 * 1024);
        let _ = f.seek(SeekFrom::Start(start));
        let mut bytes = Vec::new();
        let _ = f.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn append_file(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

fn write_marker(path: &Path, text: &str) {
    let mut f = append_file(path);
    let _ = writeln!(f, "{text}");
}
