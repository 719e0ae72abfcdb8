//! [`OpcUaPeer`]: `tests/peers/opcua_server.py` (Python asyncua, pinned in
//! tests/peers/requirements.txt) on 127.0.0.1, the machine controller for OPC UA tests, and the
//! cell configs that read it.
//!
//! The test plays the machine through the server's stdin (`set GoodCount 7`); the server reports
//! on stdout what clients did to it (`WRITE OrderNumber ORD-1`, `CALLED StartOrder ...`). See the
//! script's docstring for its address space.

use super::process::{self, PeerProcess, Ready, Retry};
use super::{free_port, python_bin};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The namespace of the test PLC's nodes.
pub const NS: &str = "urn:mes-edge:test-plc";

/// `nsu=urn:mes-edge:test-plc;s=Press.<name>`
pub fn node(name: &str) -> String {
    format!("nsu={NS};s=Press.{name}")
}

/// `nsu=urn:mes-edge:test-plc;s=Bulk.<k>`
pub fn bulk_node(k: u32) -> String {
    format!("nsu={NS};s=Bulk.{k}")
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
    /// This many more UInt32 variables, `s=Bulk.<k>` (see [`bulk_node`]), start value k.
    pub bulk: u32,
    /// Refuse CreateMonitoredItems calls of more items (BadTooManyOperations); 0: no limit.
    pub max_items_per_call: u32,
    /// Enforce `max_items_per_call` without stating it in the server's operation limits.
    pub hidden_limit: bool,
    /// Also serve `s=Press.HostileArgument`: an Argument whose value rank asks an unbounded
    /// decoder for 8.6 GB (see the script).
    pub hostile_argument: bool,
}

impl Default for OpcUaOptions {
    fn default() -> Self {
        OpcUaOptions {
            security: "none",
            user: None,
            extra_namespaces: 0,
            new_cert: false,
            x509_user: false,
            bulk: 0,
            max_items_per_call: 0,
            hidden_limit: false,
            hostile_argument: false,
        }
    }
}

pub fn opcua_server_script() -> PathBuf {
    super::peer_script("opcua_server.py")
}

pub struct OpcUaPeer {
    pub options: OpcUaOptions,
    /// What the test set, given back as start values after a restart: a PLC keeps its counters.
    values: BTreeMap<String, String>,
    process: PeerProcess,
}

impl OpcUaPeer {
    /// Starts the server on a free port; returns once it listens. Panics (saying to run
    /// scripts/test.sh) if the Python with asyncua is missing.
    pub fn start(options: OpcUaOptions) -> OpcUaPeer {
        // Thousands of nodes take asyncua a while to add, longer on a busy machine.
        let start_timeout = if options.bulk > 0 {
            Duration::from_secs(120)
        } else {
            super::PEER_START_TIMEOUT
        };
        let mut peer = OpcUaPeer {
            options,
            values: BTreeMap::new(),
            process: PeerProcess::new(
                "opcua_server.py",
                "mes-edge-opcua-",
                "opcua_server.stdout.log",
                "opcua_server.stderr.log",
            )
            .with_stdin()
            .start_timeout(start_timeout),
        };
        process::start_on_free_port("opcua peer", 5, || {
            peer.process.set_port(free_port());
            peer.spawn_and_wait()
        });
        peer
    }

    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// `opc.tcp://127.0.0.1:PORT/`
    pub fn endpoint(&self) -> String {
        format!("opc.tcp://127.0.0.1:{}/", self.port())
    }

    /// The server's certificate (DER), made at its first secure start.
    pub fn certificate(&self) -> PathBuf {
        self.process.dir().join("server-cert.der")
    }

    /// The X.509 user identity the server accepts (with `x509_user`): certificate and key.
    pub fn user_certificate(&self) -> (PathBuf, PathBuf) {
        (
            self.process.dir().join("user-cert.der"),
            self.process.dir().join("user-key.pem"),
        )
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let dir = self.process.dir().to_path_buf();
        let port = self.port().to_string();
        let init = dir.join("init.json");
        std::fs::write(&init, serde_json::to_vec(&self.values).unwrap()).expect("write init.json");
        let mut cmd = Command::new(python_bin());
        cmd.arg("-u")
            .arg(opcua_server_script())
            .args(["--port", &port])
            .arg("--dir")
            .arg(&dir)
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
        cmd.args(["--bulk", &self.options.bulk.to_string()]);
        cmd.args([
            "--max-items-per-call",
            &self.options.max_items_per_call.to_string(),
        ]);
        if self.options.hidden_limit {
            cmd.arg("--hidden-limit");
        }
        if self.options.hostile_argument {
            cmd.arg("--hostile-argument");
        }
        if self.options.new_cert {
            cmd.arg("--new-cert");
            self.options.new_cert = false;
        }
        self.process
            .spawn(cmd, Ready::line(format!("READY {port}")))
    }

    /// Sets a Press variable (`GoodCount`, `State`, ...) as the machine would, and waits until
    /// the server has taken it.
    pub fn set(&mut self, name: &str, value: impl std::fmt::Display) {
        let value = value.to_string();
        self.command(&format!("set {name} {value}"), &format!("OK set {name}"));
        self.values.insert(name.to_string(), value);
    }

    /// Sets `Bulk.<k>` (with [`OpcUaOptions::bulk`]) and waits until the server has taken it.
    pub fn bulk(&mut self, k: u32, value: u32) {
        self.command(&format!("bulk {k} {value}"), &format!("OK bulk {k}"));
    }

    /// The sizes of the CreateMonitoredItems calls the server took (`ok`) and refused.
    pub fn create_item_calls(&self) -> (Vec<usize>, Vec<usize>) {
        let (mut ok, mut refused) = (Vec::new(), Vec::new());
        for line in self.lines() {
            let mut f = line.split_whitespace();
            if f.next() != Some("CREATE_ITEMS") {
                continue;
            }
            let n: usize = f.next().and_then(|n| n.parse().ok()).expect("a size");
            match f.next() {
                Some("ok") => ok.push(n),
                _ => refused.push(n),
            }
        }
        (ok, refused)
    }

    /// The sensor behind a Press variable fails: the node keeps its value, status Bad.
    pub fn bad(&mut self, name: &str) {
        self.command(&format!("bad {name}"), &format!("OK bad {name}"));
    }

    /// Later `set`s carry a source timestamp `how` from the server's clock: seconds (e.g.
    /// "3600"), "max" (9999-12-31T23:59:59Z) or "off".
    pub fn clock(&mut self, how: &str) {
        self.command(&format!("clock {how}"), "OK clock");
    }

    /// Sends one stdin command and waits for its `ok` line.
    fn command(&mut self, line: &str, ok: &str) {
        let before = self.process.count_lines(ok);
        let stdin = self.process.stdin().expect("opcua peer is not running");
        writeln!(stdin, "{line}").expect("write to opcua_server.py");
        stdin.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.process.count_lines(ok) == before {
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
        self.process.lines()
    }

    /// Waits until the server has printed `line` (e.g. `WRITE OrderNumber ORD-1`).
    pub async fn wait_line(&self, line: &str, timeout: Duration) -> bool {
        super::eventually(timeout, || self.process.count_lines(line) > 0).await
    }

    /// SIGTERM and wait. No-op if not running.
    pub fn stop(&mut self) {
        self.process.stop();
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// SIGSTOP: the server hangs with its connections open, answering nothing (a controller
    /// whose OPC UA server is stuck, or a cable pulled without a reset).
    pub fn freeze(&mut self) {
        self.process.signal(process::SIGSTOP);
    }

    /// SIGCONT after [`OpcUaPeer::freeze`].
    pub fn thaw(&mut self) {
        self.process.signal(process::SIGCONT);
    }

    /// Starts the server again on the same port with the values last set (a restart of the
    /// controller's OPC UA server; the PLC program keeps its counters).
    pub fn start_again(&mut self) {
        self.stop();
        process::restart("opcua peer", Retry::AnyFailure, || self.spawn_and_wait());
    }

    /// Everything the server wrote to stderr (asyncua's warnings), every start.
    pub fn stderr(&self) -> String {
        self.process.stderr()
    }

    pub fn logs(&self) -> String {
        self.process.logs()
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
