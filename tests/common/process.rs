//! [`PeerProcess`]: the one lifecycle of every process the harness starts (Mosquitto, RabbitMQ,
//! the pymodbus and asyncua peers, socat, the runtime under test): its own temp dir, logs appended
//! there after a `==== harness: start #N ====` line, spawn and wait until it is up, the port it
//! serves, is_running, stop (SIGTERM, SIGKILL after [`STOP_TIMEOUT`]), kill -9, start again on the
//! same port, and its logs in assertion messages and on a panicking thread.
//!
//! A peer type holds a `PeerProcess` and adds only what is its own: its command line, config
//! files, when it counts as up ([`Ready`]) and its extra verbs (SIGHUP, SIGSTOP, stdin commands).

use super::{
    append_file, read_lossy, tail_file, write_marker, LOG_TAIL_LINES, PEER_START_TIMEOUT,
    STOP_TIMEOUT,
};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SIGHUP: i32 = 1;
pub const SIGKILL: i32 = 9;
pub const SIGTERM: i32 = 15;
pub const SIGCONT: i32 = 18;
pub const SIGSTOP: i32 = 19;

mod sys {
    extern "C" {
        pub fn kill(pid: i32, sig: i32) -> i32;
    }
}

/// kill(2); true if the signal was sent.
fn send_signal(pid: u32, sig: i32) -> bool {
    // SAFETY: kill(2) has no memory effects; callers pass the pid of a child they have not reaped
    // yet (so it cannot have been reused), or one its start script wrote (see `pid_file`).
    unsafe { sys::kill(pid as i32, sig) == 0 }
}

/// When a freshly spawned process counts as up.
pub enum Ready {
    /// At once: the runtime under test, whose readiness each test judges itself.
    Spawned,
    /// Once stdout has a line (trimmed) for which this holds: the Python peers' `READY <port>`.
    /// Stdout is then read through a pipe: copied to the log and kept for [`PeerProcess::lines`].
    Line(Box<dyn Fn(&str) -> bool>),
    /// Once this holds, asked every 20 ms with what the process logged since this start.
    Check(Box<dyn FnMut(&str) -> bool>),
}

impl Ready {
    /// Up once stdout has exactly the line `expected`.
    pub fn line(expected: String) -> Ready {
        Ready::Line(Box::new(move |line| line == expected))
    }
}

/// What [`restart`] retries when a start on the old port fails.
pub enum Retry {
    /// A failure that says "in use" (the old run still holds the port), for 10 s.
    WhilePortInUse,
    /// Any failure, for 15 s (asyncua's server at times does not come up again at the first try).
    AnyFailure,
}

/// One child process with its temp dir and logs; killed on drop, logs shown on a panic.
pub struct PeerProcess {
    /// How its logs are headed: `mosquitto`, `modbus_server.py`, the runtime's file name.
    name: String,
    dir: tempfile::TempDir,
    stdout_log: PathBuf,
    /// The same path as `stdout_log` for a process that logs both streams into one file.
    stderr_log: PathBuf,
    start_timeout: Duration,
    keep_stdin: bool,
    /// The pid file of the process a start script runs (RabbitMQ's Erlang VM): kill -9 kills it.
    pid_file: Option<PathBuf>,
    /// The port it serves; 0 for none (the runtime).
    port: u16,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    /// Every stdout line of every start, in order (with [`Ready::Line`] only).
    lines: Arc<Mutex<Vec<String>>>,
    starts: u32,
    last_status: Option<ExitStatus>,
}

impl PeerProcess {
    /// A process named `name`, with a new temp dir `<dir_prefix>…` holding its logs `stdout_log`
    /// and `stderr_log` (one file if both are the same name).
    pub fn new(name: &str, dir_prefix: &str, stdout_log: &str, stderr_log: &str) -> PeerProcess {
        let dir = tempfile::Builder::new()
            .prefix(dir_prefix)
            .tempdir()
            .expect("tempdir");
        PeerProcess {
            name: name.to_string(),
            stdout_log: dir.path().join(stdout_log),
            stderr_log: dir.path().join(stderr_log),
            dir,
            start_timeout: PEER_START_TIMEOUT,
            keep_stdin: false,
            pid_file: None,
            port: 0,
            child: None,
            stdin: None,
            lines: Arc::new(Mutex::new(Vec::new())),
            starts: 0,
            last_status: None,
        }
    }

    /// How long a start may take to be [`Ready`] ([`PEER_START_TIMEOUT`] unless set).
    pub fn start_timeout(mut self, timeout: Duration) -> PeerProcess {
        self.start_timeout = timeout;
        self
    }

    /// Keeps a pipe to the process's stdin: [`PeerProcess::stdin`].
    pub fn with_stdin(mut self) -> PeerProcess {
        self.keep_stdin = true;
        self
    }

    /// The child is a start script; the process it runs writes its pid to `file` in the dir.
    pub fn with_pid_file(mut self, file: &str) -> PeerProcess {
        self.pid_file = Some(self.dir.path().join(file));
        self
    }

    pub fn set_port(&mut self, port: u16) {
        self.port = port;
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn stdout_path(&self) -> PathBuf {
        self.stdout_log.clone()
    }

    pub fn stderr_path(&self) -> PathBuf {
        self.stderr_log.clone()
    }

    fn one_log(&self) -> bool {
        self.stdout_log == self.stderr_log
    }

    /// Spawns `cmd` (its stdio is set here) and waits until it is `ready`. On failure the
    /// process is gone and the error names it, its port and the tail of its log.
    pub fn spawn(&mut self, mut cmd: Command, mut ready: Ready) -> Result<(), String> {
        self.starts += 1;
        let marker = match self.port {
            0 => format!("==== harness: start #{} ====", self.starts),
            port => format!("==== harness: start #{} on port {port} ====", self.starts),
        };
        write_marker(&self.stdout_log, &marker);
        if !self.one_log() {
            write_marker(&self.stderr_log, &marker);
        }
        let log_offset = fs::metadata(&self.stdout_log).map(|m| m.len()).unwrap_or(0);
        if let Some(pid_file) = &self.pid_file {
            let _ = fs::remove_file(pid_file);
        }
        let piped = matches!(ready, Ready::Line(_));
        cmd.stdin(if self.keep_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(if piped {
            Stdio::piped()
        } else {
            Stdio::from(append_file(&self.stdout_log))
        })
        .stderr(Stdio::from(append_file(&self.stderr_log)));
        let mut child = cmd.spawn().map_err(|e| format!("spawn {cmd:?}: {e}"))?;
        self.stdin = child.stdin.take();
        let first_line = self.lines.lock().unwrap().len();
        if piped {
            // A thread copies stdout to the log and keeps its lines (READY, the peer's reports).
            let stdout = child.stdout.take().unwrap();
            let mut log = append_file(&self.stdout_log);
            let lines = self.lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let _ = writeln!(log, "{line}");
                    lines.lock().unwrap().push(line);
                }
            });
        }
        self.child = Some(child);
        self.last_status = None;

        let deadline = Instant::now() + self.start_timeout;
        loop {
            let up = match &mut ready {
                Ready::Spawned => true,
                Ready::Line(is_ready) => self.lines.lock().unwrap()[first_line..]
                    .iter()
                    .any(|l| is_ready(l.trim())),
                Ready::Check(check) => {
                    let text = read_lossy(&self.stdout_log);
                    check(text.get(log_offset as usize..).unwrap_or(""))
                }
            };
            if up {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.as_mut().unwrap().try_wait() {
                self.child = None;
                self.stdin = None;
                self.last_status = Some(status);
                return Err(format!(
                    "{} exited ({status}) while starting{}; {}",
                    self.name,
                    self.on_port(),
                    self.error_tail()
                ));
            }
            if Instant::now() >= deadline {
                self.kill9();
                return Err(format!(
                    "{} was not up within {:?}{}; {}",
                    self.name,
                    self.start_timeout,
                    self.on_port(),
                    self.error_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn on_port(&self) -> String {
        match self.port {
            0 => String::new(),
            port => format!(" on port {port}"),
        }
    }

    fn error_tail(&self) -> String {
        let (what, path) = if self.one_log() {
            ("log", &self.stdout_log)
        } else {
            ("stderr", &self.stderr_log)
        };
        format!("{what}:\n{}", tail_file(path, 30))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether it still runs; if it has ended, [`PeerProcess::last_status`] says how.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(status))) => {
                self.last_status = Some(status);
                false
            }
            _ => false,
        }
    }

    /// SIGTERM and wait up to [`STOP_TIMEOUT`], then SIGKILL (the status shows it). None if it
    /// was not started (or was stopped already).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.stdin = None;
        let mut child = self.child.take()?;
        let status = terminate_child(&mut child, STOP_TIMEOUT);
        self.last_status = Some(status);
        Some(status)
    }

    /// SIGKILL (a crash), the process in the pid file first, and reap it. None if it was not
    /// started (or was stopped already).
    pub fn kill9(&mut self) -> Option<ExitStatus> {
        self.stdin = None;
        if let Some(pid_file) = &self.pid_file {
            if let Some(pid) = fs::read_to_string(pid_file)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
            {
                // The pid the process wrote at boot: ours while its start script runs. Once
                // killed it is not ours any more, so the file goes.
                send_signal(pid, SIGKILL);
                let _ = fs::remove_file(pid_file);
            }
        }
        let mut child = self.child.take()?;
        let status = kill_child(&mut child);
        self.last_status = Some(status);
        Some(status)
    }

    /// Sends `sig` (SIGHUP, SIGSTOP, SIGCONT); true if it was sent. Panics if not running.
    pub fn signal(&self, sig: i32) -> bool {
        let child = self
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("{} is not running", self.name));
        send_signal(child.id(), sig)
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let status = wait_child(self.child.as_mut()?, timeout);
        if status.is_some() {
            self.child = None;
            self.stdin = None;
            self.last_status = status;
        }
        status
    }

    /// The exit status of the last run that ended (by kill9, stop, wait_exit or is_running).
    pub fn last_status(&self) -> Option<ExitStatus> {
        self.last_status
    }

    /// The pipe to its stdin (with [`PeerProcess::with_stdin`], while it runs).
    pub fn stdin(&mut self) -> Option<&mut ChildStdin> {
        self.stdin.as_mut()
    }

    /// Every stdout line so far, every start (with [`Ready::Line`]).
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// How many stdout lines so far are exactly `line`.
    pub fn count_lines(&self, line: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.as_str() == line)
            .count()
    }

    /// All of stdout so far (every start).
    pub fn stdout(&self) -> String {
        read_lossy(&self.stdout_log)
    }

    /// All of stderr so far (every start).
    pub fn stderr(&self) -> String {
        read_lossy(&self.stderr_log)
    }

    /// The tail of its log(s), for assertion messages.
    pub fn logs(&self) -> String {
        let name = &self.name;
        let tail = |path: &Path| tail_file(path, LOG_TAIL_LINES);
        if self.one_log() {
            let log = &self.stdout_log;
            format!("---- {name} log ({}) ----\n{}", log.display(), tail(log))
        } else {
            format!(
                "---- {name} stdout ({}) ----\n{}\n---- {name} stderr ({}) ----\n{}",
                self.stdout_log.display(),
                tail(&self.stdout_log),
                self.stderr_log.display(),
                tail(&self.stderr_log)
            )
        }
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() && self.starts > 0 {
            eprintln!("{}", self.logs());
        }
    }
}

/// The first start of a peer: `try_start` (which picks a free port) up to `attempts` times, as
/// another process may take a free port before the peer binds it. Panics with the last error.
pub fn start_on_free_port(
    what: &str,
    attempts: usize,
    mut try_start: impl FnMut() -> Result<(), String>,
) {
    let mut last_err = String::new();
    for _ in 0..attempts {
        match try_start() {
            Ok(()) => return,
            Err(e) => last_err = e,
        }
    }
    panic!("{what} did not start: {last_err}");
}

/// Starts a peer again on its old port (after it was stopped), retrying as `retry` says.
pub fn restart(what: &str, retry: Retry, mut spawn: impl FnMut() -> Result<(), String>) {
    let (within, pause) = match retry {
        Retry::WhilePortInUse => (Duration::from_secs(10), Duration::from_millis(200)),
        Retry::AnyFailure => (Duration::from_secs(15), Duration::from_millis(300)),
    };
    let deadline = Instant::now() + within;
    loop {
        match spawn() {
            Ok(()) => return,
            Err(e) if Instant::now() < deadline && retryable(&retry, &e) => {
                if matches!(retry, Retry::AnyFailure) {
                    eprintln!("harness: {what} restart failed, retrying: {e}");
                }
                std::thread::sleep(pause);
            }
            Err(e) => panic!("{what} did not start again: {e}"),
        }
    }
}

fn retryable(retry: &Retry, error: &str) -> bool {
    match retry {
        Retry::WhilePortInUse => error.contains("in use"),
        Retry::AnyFailure => true,
    }
}

/// SIGTERM, wait up to `timeout`, then SIGKILL. Returns the exit status.
fn terminate_child(child: &mut Child, timeout: Duration) -> ExitStatus {
    if let Ok(Some(status)) = child.try_wait() {
        return status;
    }
    send_signal(child.id(), SIGTERM);
    if let Some(status) = wait_child(child, timeout) {
        return status;
    }
    eprintln!(
        "harness: pid {} ignored SIGTERM for {timeout:?}; sending SIGKILL",
        child.id()
    );
    kill_child(child)
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

/// A memory figure of a running process from `/proc/<pid>/status` (`VmRSS`, `VmHWM`, ...), in
/// kB; None once it has exited.
pub fn memory_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
