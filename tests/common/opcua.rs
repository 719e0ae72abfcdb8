//! [`OpcUaPeer`]: `tests/peers/opcua_server.py` (Python asyncua, pinned in
//! tests/peers/requirements.txt) on 127.0.0.1, the machine controller for OPC UA tests, and the
//! cell configs that read it.
//!
//! The test plays the machine through the server's stdin (`set GoodCount 7`); the server reports
//! on stdout what clients did to it (`WRITE OrderNumber ORD-1`, `CALLED StartOrder ...`). See the
//! script's docstring for its address space.

use super::{
    append_file, free_port, kill_child, python_bin, tail_file, wait_child, write_marker,
    LOG_TAIL_LINES, PEER_START_TIMEOUT,
};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The namespace of the test PLC's nodes.
pub const NS: &str = "urn:mes-edge:test-plc";

/// `nsu=urn:mes-edge:test-plc;s=Press.<name>`
pub fn node(name: &str) -> String {
    format!("nsu={NS};s=Press.{name}")
}

/// How the server is started.
#[derive(Clone, Debug)]
pub struct OpcUaOptions {
    /// "none", "secure" or "all" (see the script).
    pub security: &'static str,
    /// Only this user name and password are accepted (anonymous refused).
    pub user: Option<(String, String)>,
    /// Namespaces registered before ours: a server whose namespace indexes moved.
    pub extra_namespaces: u32,
    /// A new server certificate at the next start.
    pub new_cert: bool,
    /// Also accept one X.509 user identity: [`OpcUaPeer::user_certificate`].
    pub x509_user: bool,
}

impl Default for OpcUaOptions {
    fn default() -> Self {
        OpcUaOptions {
            security: "none",
            user: None,
            extra_namespaces: 0,
            new_cert: false,
            x509_user: false,
        }
    }
}

pub fn opcua_server_script() -> PathBuf {
    let mut dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")));
    while let Some(d) = dir {
        let candidate = d.join("tests/peers/opcua_server.py");
        if candidate.is_file() {
            return candidate;
        }
        dir = d.parent();
    }
    panic!(
        "tests/peers/opcua_server.py not found above {}",
        env!("CARGO_MANIFEST_DIR")
    );
}

pub struct OpcUaPeer {
    port: u16,
    dir: tempfile::TempDir,
    pub options: OpcUaOptions,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    /// Every stdout line of every start, in order.
    lines: Arc<Mutex<Vec<String>>>,
    /// What the test set, given back as start values after a restart: a PLC keeps its counters.
    values: BTreeMap<String, String>,
    starts: u32,
}

impl OpcUaPeer {
    /// Starts the server on a free port; returns once it listens. Panics (saying to run
    /// scripts/test.sh) if the Python with asyncua is missing.
    pub fn start(options: OpcUaOptions) -> OpcUaPeer {
        let dir = tempfile::Builder::new()
            .prefix("mes-edge-opcua-")
            .tempdir()
            .expect("tempdir");
        let mut peer = OpcUaPeer {
            port: 0,
            dir,
            options,
            child: None,
            stdin: None,
            lines: Arc::new(Mutex::new(Vec::new())),
            values: BTreeMap::new(),
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
        panic!("opcua peer did not start: {last_err}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `opc.tcp://127.0.0.1:PORT/`
    pub fn endpoint(&self) -> String {
        format!("opc.tcp://127.0.0.1:{}/", self.port)
    }

    /// The server's certificate (DER), made at its first secure start.
    pub fn certificate(&self) -> PathBuf {
        self.dir.path().join("server-cert.der")
    }

    /// The X.509 user identity the server accepts (with `x509_user`): certificate and key.
    pub fn user_certificate(&self) -> (PathBuf, PathBuf) {
        (
            self.dir.path().join("user-cert.der"),
            self.dir.path().join("user-key.pem"),
        )
    }

    fn stdout_path(&self) -> PathBuf {
        self.dir.path().join("opcua_server.stdout.log")
    }

    fn stderr_path(&self) -> PathBuf {
        self.dir.path().join("opcua_server.stderr.log")
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let python = python_bin();
        let script = opcua_server_script();
        self.starts += 1;
        let marker = format!(
            "==== harness: start #{} on port {} ====",
            self.starts, self.port
        );
        write_marker(&self.stdout_path(), &marker);
        write_marker(&self.stderr_path(), &marker);
        let init = self.dir.path().join("init.json");
        std::fs::write(&init, serde_json::to_vec(&self.values).unwrap()).expect("write init.json");
        let mut cmd = Command::new(&python);
        cmd.arg("-u")
            .arg(&script)
            .args(["--port", &self.port.to_string()])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--security", self.options.security])
            .arg("--init")
            .arg(&init)
            .args([
                "--extra-namespaces",
                &self.options.extra_namespaces.to_string(),
            ]);
        if let Some((user, password)) = &self.options.user {
            cmd.args(["--user", &format!("{user}:{password}")]);
        }
        if self.options.x509_user {
            cmd.arg("--x509-user");
        }
        if self.options.new_cert {
            cmd.arg("--new-cert");
            self.options.new_cert = false;
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(append_file(&self.stderr_path())))
            .spawn()
            .map_err(|e| format!("spawn {} {}: {e}", python.display(), script.display()))?;
        let stdout = child.stdout.take().unwrap();
        self.stdin = child.stdin.take();
        let mut log = append_file(&self.stdout_path());
        let lines = self.lines.clone();
        let first = lines.lock().unwrap().len();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(log, "{line}");
                lines.lock().unwrap().push(line);
            }
        });
        self.child = Some(child);
        let expected = format!("READY {}", self.port);
        let deadline = Instant::now() + PEER_START_TIMEOUT;
        loop {
            if self.lines.lock().unwrap()[first..]
                .iter()
                .any(|l| l.trim() == expected)
            {
                return Ok(());
            }
            let c = self.child.as_mut().unwrap();
            if let Ok(Some(status)) = c.try_wait() {
                self.child = None;
                return Err(format!(
                    "opcua_server.py exited ({status}) before READY on port {}; stderr:\n{}",
                    self.port,
                    tail_file(&self.stderr_path(), 20)
                ));
            }
            if Instant::now() >= deadline {
                let mut c = self.child.take().unwrap();
                kill_child(&mut c);
                return Err(format!(
                    "opcua_server.py printed no READY within {PEER_START_TIMEOUT:?} on port {}; stderr:\n{}",
                    self.port,
                    tail_file(&self.stderr_path(), 20)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn count(&self, line: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.as_str() == line)
            .count()
    }

    /// Sets a Press variable (`GoodCount`, `State`, ...) as the machine would, and waits until
    /// the server has taken it.
    pub fn set(&mut self, name: &str, value: impl std::fmt::Display) {
        let value = value.to_string();
        self.command(&format!("set {name} {value}"), &format!("OK set {name}"));
        self.values.insert(name.to_string(), value);
    }

    /// Later `set`s carry a source timestamp `how` from the server's clock: seconds (e.g.
    /// "3600"), "max" (9999-12-31T23:59:59Z) or "off".
    pub fn clock(&mut self, how: &str) {
        self.command(&format!("clock {how}"), "OK clock");
    }

    /// Sends one stdin command and waits for its `ok` line.
    fn command(&mut self, line: &str, ok: &str) {
        let before = self.count(ok);
        let stdin = self.stdin.as_mut().expect("opcua peer is not running");
        writeln!(stdin, "{line}").expect("write to opcua_server.py");
        stdin.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.count(ok) == before {
            assert!(
                Instant::now() < deadline,
                "opcua_server.py did not confirm `{line}`\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Every stdout line so far (READY, OK, WRITE ..., CALLED ...).
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits until the server has printed `line` (e.g. `WRITE OrderNumber ORD-1`).
    pub async fn wait_line(&self, line: &str, timeout: Duration) -> bool {
        super::eventually(timeout, || self.count(line) > 0).await
    }

    /// SIGTERM and wait. No-op if not running.
    pub fn stop(&mut self) {
        self.stdin = None;
        super::terminate_slot(&mut self.child);
    }

    pub fn is_running(&mut self) -> bool {
        super::child_running(&mut self.child)
    }

    /// SIGSTOP: the server hangs with its connections open, answering nothing (a controller
    /// whose OPC UA server is stuck, or a cable pulled without a reset).
    pub fn freeze(&mut self) {
        self.signal(19);
    }

    /// SIGCONT after [`OpcUaPeer::freeze`].
    pub fn thaw(&mut self) {
        self.signal(18);
    }

    fn signal(&mut self, sig: i32) {
        let c = self.child.as_ref().expect("opcua peer is not running");
        // SAFETY: kill(2) on the pid of a child we have not reaped yet.
        unsafe {
            super::sys::kill(c.id() as i32, sig);
        }
    }

    /// Starts the server again on the same port with the values last set (a restart of the
    /// controller's OPC UA server; the PLC program keeps its counters).
    pub fn start_again(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("harness: opcua peer restart failed, retrying: {e}");
                    std::thread::sleep(Duration::from_millis(300));
                }
                Err(e) => panic!("opcua peer did not start again: {e}"),
            }
        }
    }

    /// Everything the server wrote to stderr (asyncua's warnings), every start.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    pub fn logs(&self) -> String {
        format!(
            "---- opcua_server.py stdout ({}) ----\n{}\n---- opcua_server.py stderr ({}) ----\n{}",
            self.stdout_path().display(),
            tail_file(&self.stdout_path(), LOG_TAIL_LINES),
            self.stderr_path().display(),
            tail_file(&self.stderr_path(), LOG_TAIL_LINES)
        )
    }
}

impl Drop for OpcUaPeer {
    fn drop(&mut self) {
        self.stdin = None;
        if let Some(mut c) = self.child.take() {
            kill_child(&mut c);
            let _ = wait_child(&mut c, Duration::from_secs(1));
        }
        if std::thread::panicking() && self.starts > 0 {
            eprintln!("{}", self.logs());
        }
    }
}

/// The device section of a cell config for this server; `extra` goes into the device table
/// (security, identity, pki_dir ...).
pub fn device_section(endpoint: &str, extra: &str) -> String {
    format!(
        r#"[[devices]]
name = "press_controller"
protocol = "opcua"
endpoint = "{endpoint}"
timeout_ms = 2000
keep_alive_ms = 1000
publishing_interval_ms = 100
{extra}

[[devices.nodes]]
name = "good_count"
node_id = "{good}"
type = "u32"
sampling_interval_ms = 50

[[devices.nodes]]
name = "scrap_count"
browse_path = "/{{ns}}:Press/{{ns}}:ScrapCount"
type = "u16"

[[devices.nodes]]
name = "state_word"
node_id = "{state}"
type = "u16"
"#,
        good = node("GoodCount"),
        state = node("State"),
    )
}

/// A cell config reading the test PLC over OPC UA (`ns` is the namespace index of the PLC's
/// nodes, for the browse path), delivering to a broker on `mqtt_port`.
pub fn write_cell_config(dir: &Path, device: &str, ns: u16, mqtt_port: u16) -> PathBuf {
    let path = dir.join("cell.toml");
    let device = device.replace("{ns}", &ns.to_string());
    let text = format!(
        r#"[cell]
enterprise = "acme"
site = "plant1"
area = "pressing"
line = "line3"
cell = "press7"

{device}

[signals.good_count]
tag = "good_count"

[signals.scrap_count]
tag = "scrap_count"

[signals.machine_state]
tag = "state_word"
states = {{ 0 = "idle", 1 = "running", 2 = "down" }}

[store]
path = "state/cell.db"

[mqtt]
url = "mqtt://127.0.0.1:{mqtt_port}"
client_id = "mes-edge-under-test"
keep_alive_s = 5
"#
    );
    std::fs::write(&path, text).unwrap();
    path
}
