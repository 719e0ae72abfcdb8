//! Test harness for mes-edge integration tests against real, independent peers.
//!
//! Use from an integration test with `mod common;`. The peers are:
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
pub mod modbus_lab;
pub mod opcua;
pub mod rabbitmq;

pub use rabbitmq::RabbitMq;

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS, SubscribeReasonCode,
};
use tokio_modbus::client::Context as ModbusContext;
use tokio_modbus::prelude::{Reader, Writer};

/// How long a peer may take to come up before the harness gives up.
pub const PEER_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `stop()` / `terminate()` wait after SIGTERM before they SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// How many log lines `logs()` and the on-panic dumps show per file.
pub const LOG_TAIL_LINES: usize = 80;

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

/// `tests/peers/modbus_server.py`, found from this crate's manifest dir upwards (so the harness
/// also works when included from a workspace member with `#[path = ...]`).
pub fn modbus_server_script() -> PathBuf {
    let mut dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")));
    while let Some(d) = dir {
        let candidate = d.join("tests/peers/modbus_server.py");
        if candidate.is_file() {
            return candidate;
        }
        dir = d.parent();
    }
    panic!(
        "tests/peers/modbus_server.py not found above {}",
        env!("CARGO_MANIFEST_DIR")
    );
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

mod sys {
    extern "C" {
        pub fn kill(pid: i32, sig: i32) -> i32;
    }
}
const SIGTERM: i32 = 15;

fn send_sigterm(child: &Child) {
    // SAFETY: kill(2) on the pid of a child we have not reaped yet (so it cannot be reused).
    unsafe {
        sys::kill(child.id() as i32, SIGTERM);
    }
}

/// SIGTERM, wait up to `timeout`, then SIGKILL. Returns the exit status.
fn terminate_child(child: &mut Child, timeout: Duration) -> ExitStatus {
    if let Ok(Some(status)) = child.try_wait() {
        return status;
    }
    send_sigterm(child);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!(
        "harness: pid {} ignored SIGTERM for {timeout:?}; sending SIGKILL",
        child.id()
    );
    let _ = child.kill();
    child.wait().expect("wait for killed child")
}

fn kill_child(child: &mut Child) -> ExitStatus {
    if let Ok(Some(status)) = child.try_wait() {
        return status;
    }
    let _ = child.kill();
    child.wait().expect("wait for killed child")
}

fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------------------
// Mosquitto
// ---------------------------------------------------------------------------------------------

/// A Mosquitto broker on 127.0.0.1 with its own generated config in a temp dir.
///
/// Config: listener on 127.0.0.1 only, anonymous allowed, no persistence, very large queues,
/// no inflight limit, log to stderr (captured in `mosquitto.log` in the temp dir).
/// Whether the child in `slot` still runs.
fn child_running(slot: &mut Option<Child>) -> bool {
    slot.as_mut()
        .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
}

/// SIGTERM and wait (SIGKILL after [`STOP_TIMEOUT`]); no-op if nothing runs.
fn terminate_slot(slot: &mut Option<Child>) {
    if let Some(mut c) = slot.take() {
        terminate_child(&mut c, STOP_TIMEOUT);
    }
}

/// SIGKILL; no-op if nothing runs.
fn kill_slot(slot: &mut Option<Child>) {
    if let Some(mut c) = slot.take() {
        kill_child(&mut c);
    }
}

/// Starts a peer again on its old port, waiting (10 s at most) while the port is still in use.
fn respawn_on_same_port(what: &str, mut spawn: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match spawn() {
            Ok(()) => return,
            Err(e) if Instant::now() < deadline && e.contains("in use") => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("{what} did not start again: {e}"),
        }
    }
}

pub struct Mosquitto {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    starts: u32,
}

impl Mosquitto {
    /// Starts a broker on a free port; returns once it accepts connections.
    pub fn start() -> Mosquitto {
        Self::start_with_config("")
    }

    /// Like [`Mosquitto::start`], with extra lines appended to the generated config.
    pub fn start_with_config(extra_config: &str) -> Mosquitto {
        let bin = mosquitto_bin();
        let dir = tempfile::Builder::new()
            .prefix("mes-edge-mosquitto-")
            .tempdir()
            .expect("tempdir");
        // Started as root, Mosquitto drops to the `mosquitto` user before it reads an ACL file
        // and when it re-reads its config at SIGHUP: the folder must be readable to it.
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755));
        }
        let mut m = Mosquitto {
            port: 0,
            dir,
            child: None,
            starts: 0,
        };
        let mut last_err = String::new();
        for _attempt in 0..5 {
            m.port = free_port();
            m.write_config(extra_config);
            match m.spawn_and_wait(&bin) {
                Ok(()) => return m,
                Err(e) => last_err = e,
            }
        }
        panic!("mosquitto did not start: {last_err}");
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("mosquitto.conf")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("mosquitto.log")
    }

    fn write_config(&self, extra: &str) {
        let conf = format!(
            "# generated by tests/common (mes-edge test harness)\n\
             per_listener_settings false\n\
             listener {port} 127.0.0.1\n\
             allow_anonymous true\n\
             persistence false\n\
             max_queued_messages 1000000\n\
             max_queued_bytes 0\n\
             max_inflight_messages 0\n\
             max_inflight_bytes 0\n\
             max_keepalive 65535\n\
             set_tcp_nodelay true\n\
             log_dest stderr\n\
             log_type error\n\
             log_type warning\n\
             log_type notice\n\
             log_type information\n\
             connection_messages true\n\
             log_timestamp_format %Y-%m-%dT%H:%M:%S\n\
             {extra}\n",
            port = self.port
        );
        fs::write(self.config_path(), conf).expect("write mosquitto.conf");
    }

    fn spawn_and_wait(&mut self, bin: &Path) -> Result<(), String> {
        self.starts += 1;
        let log = self.log_path();
        write_marker(
            &log,
            &format!(
                "==== harness: start #{} on port {} ====",
                self.starts, self.port
            ),
        );
        let log_offset = fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let child = Command::new(bin)
            .arg("-c")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(append_file(&log)))
            .stderr(Stdio::from(append_file(&log)))
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + PEER_START_TIMEOUT;
        loop {
            let child = self.child.as_mut().unwrap();
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Err(format!(
                    "mosquitto exited with {status} while starting on port {}; log:\n{}",
                    self.port,
                    tail_file(&log, 20)
                ));
            }
            // "running" is logged after the listener is bound, so a connect that succeeds after
            // it reaches our broker (not some other process that grabbed the port).
            let text = read_lossy(&log);
            let ours = text.get(log_offset as usize..).unwrap_or("");
            if ours.contains(" running") && port_accepts(self.port) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let mut c = self.child.take().unwrap();
                kill_child(&mut c);
                return Err(format!(
                    "mosquitto did not accept connections on port {} within {PEER_START_TIMEOUT:?}; log:\n{}",
                    self.port,
                    tail_file(&log, 20)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// `mqtt://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn is_running(&mut self) -> bool {
        child_running(&mut self.child)
    }

    /// SIGTERM and wait (SIGKILL after [`STOP_TIMEOUT`]). No-op if not running.
    pub fn stop(&mut self) {
        terminate_slot(&mut self.child);
    }

    /// SIGKILL (a broker crash). No-op if not running.
    pub fn kill9(&mut self) {
        kill_slot(&mut self.child);
    }

    /// Starts the broker again on the same port (stops it first if it is running). Without
    /// persistence it comes back empty: no sessions, no retained messages, no queues.
    pub fn start_again(&mut self) {
        self.stop();
        let bin = mosquitto_bin();
        respawn_on_same_port("mosquitto", || self.spawn_and_wait(&bin));
    }

    /// The broker's own folder (config, log): a place for an ACL file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// SIGHUP: Mosquitto reads its config, ACL and password files again, keeping its clients.
    pub fn reload(&self) {
        let child = self.child.as_ref().expect("mosquitto is running");
        // SAFETY: kill(2) on the pid of a child we have not reaped yet.
        let rc = unsafe { sys::kill(child.id() as i32, 1) };
        assert_eq!(rc, 0, "SIGHUP to mosquitto");
    }

    /// The tail of the broker's log.
    pub fn logs(&self) -> String {
        format!(
            "---- mosquitto log ({}) ----\n{}",
            self.log_path().display(),
            tail_file(&self.log_path(), LOG_TAIL_LINES)
        )
    }
}

/// What a test does to the plant's broker, whichever broker it is.
pub trait Broker {
    fn port(&self) -> u16;
    /// Stopped cleanly (SIGTERM).
    fn stop(&mut self);
    /// Started again on the same port, with what it keeps across a restart.
    fn start_again(&mut self);
    fn logs(&self) -> String;
}

impl Broker for Mosquitto {
    fn port(&self) -> u16 {
        Mosquitto::port(self)
    }
    fn stop(&mut self) {
        Mosquitto::stop(self)
    }
    fn start_again(&mut self) {
        Mosquitto::start_again(self)
    }
    fn logs(&self) -> String {
        Mosquitto::logs(self)
    }
}

impl Broker for RabbitMq {
    fn port(&self) -> u16 {
        RabbitMq::port(self)
    }
    fn stop(&mut self) {
        RabbitMq::stop(self)
    }
    fn start_again(&mut self) {
        RabbitMq::start_again(self)
    }
    fn logs(&self) -> String {
        RabbitMq::logs(self)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_child(&mut c);
        }
        if std::thread::panicking() && self.starts > 0 {
            eprintln!("{}", self.logs());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Modbus peer (pymodbus server)
// ---------------------------------------------------------------------------------------------

/// `tests/peers/modbus_server.py` (pymodbus) on 127.0.0.1: the PLC.
///
/// Holding registers, input registers, coils and discrete inputs at protocol addresses 0..9999;
/// input registers mirror holding registers and discrete inputs mirror coils (same storage).
/// All zero at start (or the `init` values). A restart resets everything, like a PLC restart.
pub struct ModbusPeer {
    port: u16,
    unit_ids: Vec<u8>,
    dir: tempfile::TempDir,
    has_init: bool,
    child: Option<Child>,
    starts: u32,
}

impl ModbusPeer {
    /// Unit id 1, all tables zero.
    pub fn start() -> ModbusPeer {
        Self::start_with(&[1], None)
    }

    /// Unit id 1 with initial values; see the docstring of `tests/peers/modbus_server.py` for
    /// the format, e.g. `json!({"holding": {"10": [0, 7]}, "coils": {"3": true}})`.
    /// [`ModbusPeer::start_again`] comes back with these init values.
    pub fn start_with_init(init: serde_json::Value) -> ModbusPeer {
        Self::start_with(&[1], Some(init))
    }

    /// Any set of unit ids, optional init values.
    pub fn start_with(unit_ids: &[u8], init: Option<serde_json::Value>) -> ModbusPeer {
        assert!(
            !unit_ids.is_empty(),
            "ModbusPeer needs at least one unit id"
        );
        let dir = tempfile::Builder::new()
            .prefix("mes-edge-modbus-")
            .tempdir()
            .expect("tempdir");
        if let Some(init) = &init {
            fs::write(
                dir.path().join("init.json"),
                serde_json::to_vec_pretty(init).unwrap(),
            )
            .expect("write init.json");
        }
        let mut peer = ModbusPeer {
            port: 0,
            unit_ids: unit_ids.to_vec(),
            dir,
            has_init: init.is_some(),
            child: None,
            starts: 0,
        };
        let mut last_err = String::new();
        for _attempt in 0..5 {
            peer.port = free_port();
            match peer.spawn_and_wait() {
                Ok(()) => return peer,
                Err(e) => last_err = e,
            }
        }
        panic!("modbus peer did not start: {last_err}");
    }

    fn stdout_path(&self) -> PathBuf {
        self.dir.path().join("modbus_server.stdout.log")
    }

    fn stderr_path(&self) -> PathBuf {
        self.dir.path().join("modbus_server.stderr.log")
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let python = python_bin();
        let script = modbus_server_script();
        self.starts += 1;
        let marker = format!(
            "==== harness: start #{} on port {} ====",
            self.starts, self.port
        );
        write_marker(&self.stdout_path(), &marker);
        write_marker(&self.stderr_path(), &marker);
        let units: Vec<String> = self.unit_ids.iter().map(|u| u.to_string()).collect();
        let mut cmd = Command::new(&python);
        cmd.arg("-u")
            .arg(&script)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--unit-ids", &units.join(",")]);
        if self.has_init {
            cmd.arg("--init").arg(self.dir.path().join("init.json"));
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(append_file(&self.stderr_path())))
            .spawn()
            .map_err(|e| format!("spawn {} {}: {e}", python.display(), script.display()))?;

        // A thread forwards stdout lines to the test (for READY) and copies them to the log.
        let stdout = child.stdout.take().unwrap();
        let mut log = append_file(&self.stdout_path());
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(log, "{line}");
                let _ = tx.send(line);
            }
        });
        self.child = Some(child);

        let expected = format!("READY {}", self.port);
        let deadline = Instant::now() + PEER_START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.max(Duration::from_millis(1))) {
                Ok(line) if line.trim() == expected => return Ok(()),
                Ok(_) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // stdout closed: the server exited before READY.
                    let mut c = self.child.take().unwrap();
                    let status = wait_child(&mut c, Duration::from_secs(5))
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| {
                            kill_child(&mut c);
                            "killed".into()
                        });
                    return Err(format!(
                        "modbus_server.py exited ({status}) before READY on port {}; stderr:\n{}",
                        self.port,
                        tail_file(&self.stderr_path(), 20)
                    ));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let mut c = self.child.take().unwrap();
                    kill_child(&mut c);
                    return Err(format!(
                        "modbus_server.py printed no READY within {PEER_START_TIMEOUT:?} on port {}; stderr:\n{}",
                        self.port,
                        tail_file(&self.stderr_path(), 20)
                    ));
                }
            }
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn unit_ids(&self) -> &[u8] {
        &self.unit_ids
    }

    pub fn is_running(&mut self) -> bool {
        child_running(&mut self.child)
    }

    /// SIGTERM and wait (SIGKILL after [`STOP_TIMEOUT`]). No-op if not running.
    pub fn stop(&mut self) {
        terminate_slot(&mut self.child);
    }

    /// SIGKILL. No-op if not running.
    pub fn kill9(&mut self) {
        kill_slot(&mut self.child);
    }

    /// Starts the server again on the same port (stops it first if running): a PLC restart.
    /// All tables are back to zero (or to the init values).
    pub fn start_again(&mut self) {
        self.stop();
        respawn_on_same_port("modbus peer", || self.spawn_and_wait());
    }

    /// A PLC restart that comes back with `init` (e.g. a retained counter at its last value)
    /// instead of the values given at the first start.
    pub fn start_again_with_init(&mut self, init: serde_json::Value) {
        fs::write(
            self.dir.path().join("init.json"),
            serde_json::to_vec_pretty(&init).unwrap(),
        )
        .expect("write init.json");
        self.has_init = true;
        self.start_again();
    }

    pub fn logs(&self) -> String {
        format!(
            "---- modbus_server.py stdout ({}) ----\n{}\n---- modbus_server.py stderr ({}) ----\n{}",
            self.stdout_path().display(),
            tail_file(&self.stdout_path(), LOG_TAIL_LINES),
            self.stderr_path().display(),
            tail_file(&self.stderr_path(), LOG_TAIL_LINES)
        )
    }
}

impl Drop for ModbusPeer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_child(&mut c);
        }
        if std::thread::panicking() && self.starts > 0 {
            eprintln!("{}", self.logs());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Plc: a tokio-modbus client with which tests play the PLC program
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
pub enum PlcError {
    /// The server answered with a Modbus exception (not retried).
    Exception(tokio_modbus::ExceptionCode),
    /// Connect failure, I/O or protocol error, or timeout (the connection is dropped).
    Transport(String),
}

impl std::fmt::Display for PlcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlcError::Exception(code) => write!(f, "Modbus exception {code:?}"),
            PlcError::Transport(msg) => write!(f, "transport: {msg}"),
        }
    }
}

impl std::error::Error for PlcError {}

#[derive(Clone, Copy, Debug)]
enum PlcOp<'a> {
    ReadHolding(u16, u16),
    ReadInput(u16, u16),
    ReadCoils(u16, u16),
    ReadDiscrete(u16, u16),
    WriteRegister(u16, u16),
    WriteRegisters(u16, &'a [u16]),
    WriteCoil(u16, bool),
    WriteCoils(u16, &'a [bool]),
}

enum PlcOut {
    Words(Vec<u16>),
    Bits(Vec<bool>),
    Done,
}

/// Modbus TCP client for tests. Every call has a timeout (`op_timeout`); after a timeout or a
/// transport error the connection is dropped and the next call reconnects, so a `Plc` survives
/// a [`ModbusPeer::start_again`]. The plain methods retry transport failures until `retry_for`
/// has passed and then panic; Modbus exceptions panic at once. `try_*` methods make one attempt.
///
/// Word order for 32-bit values is big-endian: the high word is at `addr`, the low at `addr+1`.
pub struct Plc {
    addr: SocketAddr,
    unit: u8,
    ctx: Option<ModbusContext>,
    pub op_timeout: Duration,
    pub retry_for: Duration,
}

impl Plc {
    /// Connects to 127.0.0.1:`port` as unit `unit` (retries for up to 10 s, then panics).
    pub async fn connect(port: u16, unit: u8) -> Plc {
        let mut plc = Plc {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            unit,
            ctx: None,
            op_timeout: Duration::from_secs(2),
            retry_for: Duration::from_secs(10),
        };
        let deadline = Instant::now() + plc.retry_for;
        loop {
            match plc.ensure_connected().await {
                Ok(()) => return plc,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("Plc: cannot connect to {}: {e}", plc.addr),
            }
        }
    }

    pub fn unit(&self) -> u8 {
        self.unit
    }

    /// Drops the current connection (the next call reconnects).
    pub fn disconnect(&mut self) {
        self.ctx = None;
    }

    async fn ensure_connected(&mut self) -> Result<(), PlcError> {
        if self.ctx.is_some() {
            return Ok(());
        }
        let slave = tokio_modbus::Slave(self.unit);
        match tokio::time::timeout(
            self.op_timeout,
            tokio_modbus::client::tcp::connect_slave(self.addr, slave),
        )
        .await
        {
            Ok(Ok(ctx)) => {
                self.ctx = Some(ctx);
                Ok(())
            }
            Ok(Err(e)) => Err(PlcError::Transport(format!("connect {}: {e}", self.addr))),
            Err(_) => Err(PlcError::Transport(format!(
                "connect {}: timed out",
                self.addr
            ))),
        }
    }

    async fn attempt(&mut self, op: PlcOp<'_>) -> Result<PlcOut, PlcError> {
        self.ensure_connected().await?;
        let ctx = self.ctx.as_mut().unwrap();
        let call = async {
            match op {
                PlcOp::ReadHolding(a, n) => ctx
                    .read_holding_registers(a, n)
                    .await
                    .map(|r| r.map(PlcOut::Words)),
                PlcOp::ReadInput(a, n) => ctx
                    .read_input_registers(a, n)
                    .await
                    .map(|r| r.map(PlcOut::Words)),
                PlcOp::ReadCoils(a, n) => ctx.read_coils(a, n).await.map(|r| r.map(PlcOut::Bits)),
                PlcOp::ReadDiscrete(a, n) => ctx
                    .read_discrete_inputs(a, n)
                    .await
                    .map(|r| r.map(PlcOut::Bits)),
                PlcOp::WriteRegister(a, v) => ctx
                    .write_single_register(a, v)
                    .await
                    .map(|r| r.map(|()| PlcOut::Done)),
                PlcOp::WriteRegisters(a, vs) => ctx
                    .write_multiple_registers(a, vs)
                    .await
                    .map(|r| r.map(|()| PlcOut::Done)),
                PlcOp::WriteCoil(a, v) => ctx
                    .write_single_coil(a, v)
                    .await
                    .map(|r| r.map(|()| PlcOut::Done)),
                PlcOp::WriteCoils(a, vs) => ctx
                    .write_multiple_coils(a, vs)
                    .await
                    .map(|r| r.map(|()| PlcOut::Done)),
            }
        };
        match tokio::time::timeout(self.op_timeout, call).await {
            Ok(Ok(Ok(out))) => Ok(out),
            Ok(Ok(Err(code))) => Err(PlcError::Exception(code)),
            Ok(Err(e)) => {
                // A broken connection or a late reply would poison the next transaction.
                self.ctx = None;
                Err(PlcError::Transport(format!("{op:?}: {e}")))
            }
            Err(_) => {
                self.ctx = None;
                Err(PlcError::Transport(format!(
                    "{op:?}: timed out after {:?}",
                    self.op_timeout
                )))
            }
        }
    }

    async fn run(&mut self, op: PlcOp<'_>) -> PlcOut {
        let deadline = Instant::now() + self.retry_for;
        loop {
            match self.attempt(op).await {
                Ok(out) => return out,
                Err(PlcError::Transport(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("Plc {} unit {}: {op:?} failed: {e}", self.addr, self.unit),
            }
        }
    }

    fn words(out: PlcOut) -> Vec<u16> {
        match out {
            PlcOut::Words(w) => w,
            _ => unreachable!(),
        }
    }

    fn bits(out: PlcOut) -> Vec<bool> {
        match out {
            PlcOut::Bits(b) => b,
            _ => unreachable!(),
        }
    }

    /// FC 6.
    pub async fn write_u16(&mut self, addr: u16, value: u16) {
        self.run(PlcOp::WriteRegister(addr, value)).await;
    }

    /// FC 16.
    pub async fn write_u16s(&mut self, addr: u16, values: &[u16]) {
        self.run(PlcOp::WriteRegisters(addr, values)).await;
    }

    /// FC 16 with two words, high word at `addr` (big-endian word order), in one transaction.
    pub async fn write_u32(&mut self, addr: u16, value: u32) {
        let words = [(value >> 16) as u16, value as u16];
        self.run(PlcOp::WriteRegisters(addr, &words)).await;
    }

    /// FC 5.
    pub async fn write_coil(&mut self, addr: u16, value: bool) {
        self.run(PlcOp::WriteCoil(addr, value)).await;
    }

    /// FC 15.
    pub async fn write_coils(&mut self, addr: u16, values: &[bool]) {
        self.run(PlcOp::WriteCoils(addr, values)).await;
    }

    /// FC 3, one register.
    pub async fn read_u16(&mut self, addr: u16) -> u16 {
        self.read_u16s(addr, 1).await[0]
    }

    /// FC 3.
    pub async fn read_u16s(&mut self, addr: u16, count: u16) -> Vec<u16> {
        Self::words(self.run(PlcOp::ReadHolding(addr, count)).await)
    }

    /// FC 3, two registers, high word at `addr`.
    pub async fn read_u32(&mut self, addr: u16) -> u32 {
        let w = self.read_u16s(addr, 2).await;
        (u32::from(w[0]) << 16) | u32::from(w[1])
    }

    /// FC 4, one register.
    pub async fn read_input_u16(&mut self, addr: u16) -> u16 {
        self.read_input_u16s(addr, 1).await[0]
    }

    /// FC 4.
    pub async fn read_input_u16s(&mut self, addr: u16, count: u16) -> Vec<u16> {
        Self::words(self.run(PlcOp::ReadInput(addr, count)).await)
    }

    /// FC 1, one coil.
    pub async fn read_coil(&mut self, addr: u16) -> bool {
        self.read_coils(addr, 1).await[0]
    }

    /// FC 1.
    pub async fn read_coils(&mut self, addr: u16, count: u16) -> Vec<bool> {
        Self::bits(self.run(PlcOp::ReadCoils(addr, count)).await)
    }

    /// FC 2, one discrete input.
    pub async fn read_discrete(&mut self, addr: u16) -> bool {
        self.read_discretes(addr, 1).await[0]
    }

    /// FC 2.
    pub async fn read_discretes(&mut self, addr: u16, count: u16) -> Vec<bool> {
        Self::bits(self.run(PlcOp::ReadDiscrete(addr, count)).await)
    }

    /// FC 6, one attempt (reconnecting first if needed), no retry.
    pub async fn try_write_u16(&mut self, addr: u16, value: u16) -> Result<(), PlcError> {
        self.attempt(PlcOp::WriteRegister(addr, value))
            .await
            .map(|_| ())
    }

    /// FC 16, one attempt (reconnecting first if needed), no retry.
    pub async fn try_write_u16s(&mut self, addr: u16, values: &[u16]) -> Result<(), PlcError> {
        self.attempt(PlcOp::WriteRegisters(addr, values))
            .await
            .map(|_| ())
    }

    /// FC 3, one attempt, no retry.
    pub async fn try_read_u16s(&mut self, addr: u16, count: u16) -> Result<Vec<u16>, PlcError> {
        self.attempt(PlcOp::ReadHolding(addr, count))
            .await
            .map(Self::words)
    }
}

// ---------------------------------------------------------------------------------------------
// MQTT: Collector and a one-shot publisher
// ---------------------------------------------------------------------------------------------

/// One message seen by a [`Collector`].
#[derive(Clone, Debug)]
pub struct Received {
    pub topic: String,
    /// The payload parsed as JSON; `Value::Null` if it is not JSON (see `raw`).
    pub payload: serde_json::Value,
    pub raw: Vec<u8>,
    pub retain: bool,
    pub qos: u8,
}

/// An MQTT subscriber (QoS 1, clean session, own client id) that records every message under a
/// topic filter from a background task. It reconnects after broker restarts and subscribes again
/// on every CONNACK (clean session: the broker forgot the subscription).
///
/// Note: with clean session, messages published while the collector is disconnected are not
/// queued for it by the broker; tests that restart the broker should wait for
/// [`Collector::wait_subscriptions`] before expecting new messages.
pub struct Collector {
    filter: String,
    client: AsyncClient,
    msgs: Arc<Mutex<Vec<Received>>>,
    subscriptions: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    /// Connects to 127.0.0.1:`broker_port`, subscribes to `filter` at QoS 1, and returns after
    /// the first SUBACK (panics after 10 s).
    pub async fn start(broker_port: u16, filter: &str) -> Collector {
        Self::start_with(broker_port, filter, None, None).await
    }

    /// A collector that logs in with a username and password (a broker without anonymous access).
    pub async fn start_with_login(
        broker_port: u16,
        filter: &str,
        user: &str,
        password: &str,
    ) -> Collector {
        Self::start_with(broker_port, filter, None, Some((user, password))).await
    }

    /// A collector with a persistent session under `client_id`: with a broker that keeps
    /// sessions (`persistence true`), messages published while the collector is reconnecting
    /// after a broker restart are queued for it instead of lost.
    pub async fn start_persistent(broker_port: u16, filter: &str, client_id: &str) -> Collector {
        Self::start_with(broker_port, filter, Some(client_id), None).await
    }

    async fn start_with(
        broker_port: u16,
        filter: &str,
        persistent_id: Option<&str>,
        login: Option<(&str, &str)>,
    ) -> Collector {
        let client_id = persistent_id
            .map(str::to_string)
            .unwrap_or_else(|| unique_name("collector"));
        let mut opts = MqttOptions::new(client_id, "127.0.0.1", broker_port);
        opts.set_keep_alive(Duration::from_secs(5))
            .set_clean_session(persistent_id.is_none())
            .set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024)
            .set_request_channel_capacity(64);
        if let Some((user, password)) = login {
            opts.set_credentials(user, password);
        }
        let (client, eventloop) = AsyncClient::new(opts, 64);
        let msgs = Arc::new(Mutex::new(Vec::new()));
        let subscriptions = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(Self::run(
            eventloop,
            client.clone(),
            filter.to_string(),
            msgs.clone(),
            subscriptions.clone(),
        ));
        let collector = Collector {
            filter: filter.to_string(),
            client,
            msgs,
            subscriptions,
            task,
        };
        if !collector
            .wait_subscriptions(1, Duration::from_secs(10))
            .await
        {
            panic!("Collector: no SUBACK for {filter:?} from 127.0.0.1:{broker_port} within 10 s");
        }
        collector
    }

    async fn run(
        mut eventloop: EventLoop,
        client: AsyncClient,
        filter: String,
        msgs: Arc<Mutex<Vec<Received>>>,
        subscriptions: Arc<AtomicUsize>,
    ) {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    // Clean session: (re)subscribe on every connection.
                    if let Err(e) = client.try_subscribe(filter.clone(), QoS::AtLeastOnce) {
                        eprintln!("Collector: subscribe request failed: {e}");
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    if ack
                        .return_codes
                        .iter()
                        .all(|c| matches!(c, SubscribeReasonCode::Success(_)))
                    {
                        subscriptions.fetch_add(1, Ordering::SeqCst);
                    } else {
                        eprintln!("Collector: subscription to {filter:?} refused: {ack:?}");
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let raw = p.payload.to_vec();
                    let payload = serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null);
                    msgs.lock().unwrap().push(Received {
                        topic: p.topic.clone(),
                        payload,
                        raw,
                        retain: p.retain,
                        qos: p.qos as u8,
                    });
                }
                Ok(_) => {}
                Err(_) => {
                    // Broker down or connection lost: keep polling, rumqttc reconnects.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// A copy of everything received so far, in arrival order.
    pub fn snapshot(&self) -> Vec<Received> {
        self.msgs.lock().unwrap().clone()
    }

    /// Forgets everything received so far.
    pub fn clear(&self) {
        self.msgs.lock().unwrap().clear();
    }

    /// How many successful SUBACKs so far (1 after `start`, +1 after each reconnection).
    pub fn subscriptions(&self) -> usize {
        self.subscriptions.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` SUBACKs have been received.
    pub async fn wait_subscriptions(&self, n: usize, timeout: Duration) -> bool {
        eventually(timeout, || self.subscriptions() >= n).await
    }

    /// Waits until `pred` holds for the messages received so far; false on timeout.
    pub async fn wait_for<F>(&self, pred: F, timeout: Duration) -> bool
    where
        F: Fn(&[Received]) -> bool,
    {
        eventually(timeout, || pred(&self.msgs.lock().unwrap())).await
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.client.try_disconnect();
        self.task.abort();
    }
}

/// Publishes one message with a fresh client (clean session) and waits until it is on the
/// broker: PUBACK for QoS 1, written to the socket for QoS 0. Retries with a new connection
/// until `timeout`, then panics.
pub async fn mqtt_publish(
    broker_port: u16,
    topic: &str,
    payload: impl Into<Vec<u8>>,
    qos: QoS,
    retain: bool,
    timeout: Duration,
) {
    let payload: Vec<u8> = payload.into();
    let deadline = Instant::now() + timeout;
    let mut last_err = String::from("timed out");
    while Instant::now() < deadline {
        let mut opts = MqttOptions::new(unique_name("publisher"), "127.0.0.1", broker_port);
        opts.set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024);
        let (client, mut eventloop) = AsyncClient::new(opts, 8);
        client
            .publish(topic, qos, retain, payload.clone())
            .await
            .expect("queue publish");
        let left = deadline.saturating_duration_since(Instant::now());
        let done = tokio::time::timeout(left, async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) if qos != QoS::AtMostOnce => {
                        return Ok(())
                    }
                    Ok(Event::Incoming(Packet::PubComp(_))) if qos == QoS::ExactlyOnce => {
                        return Ok(())
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(_))) if qos == QoS::AtMostOnce => {
                        return Ok(())
                    }
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
        })
        .await;
        match done {
            Ok(Ok(())) => {
                let _ = client.try_disconnect();
                // Flush the DISCONNECT (best effort).
                let _ = tokio::time::timeout(Duration::from_millis(200), async {
                    while eventloop.poll().await.is_ok() {}
                })
                .await;
                return;
            }
            Ok(Err(e)) => {
                last_err = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(_) => break,
        }
    }
    panic!("mqtt_publish to 127.0.0.1:{broker_port} {topic:?} failed: {last_err}");
}

// ---------------------------------------------------------------------------------------------
// RuntimeProcess: the mes-edge binary under test
// ---------------------------------------------------------------------------------------------

/// The binary under test as a child process, stdout/stderr captured to files in a temp dir.
///
/// Pass the binary from the test: `RuntimeProcess::spawn(env!("CARGO_BIN_EXE_mes-edge"), ["run",
/// "--config", path])` (`env!` of a bin works only in the same package's integration tests).
/// Drop kills it; on a panicking thread Drop also prints the tail of its logs.
pub struct RuntimeProcess {
    bin: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    dir: tempfile::TempDir,
    child: Option<Child>,
    starts: u32,
    last_status: Option<ExitStatus>,
}

impl RuntimeProcess {
    pub fn spawn<I, S>(bin: impl AsRef<Path>, args: I) -> RuntimeProcess
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Self::spawn_with(bin, args, Vec::<(String, String)>::new(), None)
    }

    /// With extra environment variables and an optional working directory.
    pub fn spawn_with<I, S, E, K, V>(
        bin: impl AsRef<Path>,
        args: I,
        envs: E,
        cwd: Option<&Path>,
    ) -> RuntimeProcess
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
        E: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let dir = tempfile::Builder::new()
            .prefix("mes-edge-runtime-")
            .tempdir()
            .expect("tempdir");
        let mut p = RuntimeProcess {
            bin: bin.as_ref().to_path_buf(),
            args: args
                .into_iter()
                .map(|a| a.as_ref().to_os_string())
                .collect(),
            envs: envs
                .into_iter()
                .map(|(k, v)| (k.as_ref().to_os_string(), v.as_ref().to_os_string()))
                .collect(),
            cwd: cwd.map(Path::to_path_buf),
            dir,
            child: None,
            starts: 0,
            last_status: None,
        };
        p.launch();
        p
    }

    fn launch(&mut self) {
        self.starts += 1;
        let marker = format!("==== harness: start #{} ====", self.starts);
        write_marker(&self.stdout_path(), &marker);
        write_marker(&self.stderr_path(), &marker);
        let mut cmd = Command::new(&self.bin);
        cmd.args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(append_file(&self.stdout_path())))
            .stderr(Stdio::from(append_file(&self.stderr_path())));
        if let Some(cwd) = &self.cwd {
            cmd.current_dir(cwd);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        self.child = Some(child);
        self.last_status = None;
    }

    /// Spawns the same binary with the same args and env again (after a kill or exit). Logs are
    /// appended to the same files, after a `==== harness: start #N ====` line.
    pub fn start_again(&mut self) {
        if self.is_running() {
            panic!(
                "RuntimeProcess::start_again: still running (pid {:?})",
                self.pid()
            );
        }
        self.child = None;
        self.launch();
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => match c.try_wait() {
                Ok(None) => true,
                Ok(Some(status)) => {
                    self.last_status = Some(status);
                    false
                }
                Err(_) => false,
            },
            None => false,
        }
    }

    /// SIGKILL (a crash / power loss of the edge box) and reap it.
    pub fn kill9(&mut self) -> ExitStatus {
        let mut c = self
            .child
            .take()
            .expect("RuntimeProcess::kill9: not started");
        let status = kill_child(&mut c);
        self.last_status = Some(status);
        status
    }

    /// SIGTERM and wait up to [`STOP_TIMEOUT`] (then SIGKILL, and the returned status shows it).
    pub fn terminate(&mut self) -> ExitStatus {
        let mut c = self
            .child
            .take()
            .expect("RuntimeProcess::terminate: not started");
        let status = terminate_child(&mut c, STOP_TIMEOUT);
        self.last_status = Some(status);
        status
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let c = self.child.as_mut()?;
        let status = wait_child(c, timeout);
        if status.is_some() {
            self.child = None;
            self.last_status = status;
        }
        status
    }

    /// The exit status of the last run that ended (by kill9, terminate, wait_exit or is_running).
    pub fn last_status(&self) -> Option<ExitStatus> {
        self.last_status
    }

    pub fn log_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn stdout_path(&self) -> PathBuf {
        self.dir.path().join("stdout.log")
    }

    pub fn stderr_path(&self) -> PathBuf {
        self.dir.path().join("stderr.log")
    }

    /// All of stdout so far (every start).
    pub fn stdout(&self) -> String {
        read_lossy(&self.stdout_path())
    }

    /// All of stderr so far (every start).
    pub fn stderr(&self) -> String {
        read_lossy(&self.stderr_path())
    }

    /// Waits until stdout or stderr contains `needle`.
    pub async fn wait_for_output(&self, needle: &str, timeout: Duration) -> bool {
        eventually(timeout, || {
            self.stdout().contains(needle) || self.stderr().contains(needle)
        })
        .await
    }

    /// The tail of stdout and stderr, for assertion messages:
    /// `assert!(ok, "no event\n{}", rt.logs())`.
    pub fn logs(&self) -> String {
        format!(
            "---- {} stdout ({}) ----\n{}\n---- {} stderr ({}) ----\n{}",
            self.bin.file_name().unwrap_or_default().to_string_lossy(),
            self.stdout_path().display(),
            tail_file(&self.stdout_path(), LOG_TAIL_LINES),
            self.bin.file_name().unwrap_or_default().to_string_lossy(),
            self.stderr_path().display(),
            tail_file(&self.stderr_path(), LOG_TAIL_LINES)
        )
    }
}

impl Drop for RuntimeProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_child(&mut c);
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}
