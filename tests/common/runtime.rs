//! [`RuntimeProcess`]: the mes-edge binary under test, as a child process.

use super::eventually;
use super::process::{PeerProcess, Ready};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

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
    process: PeerProcess,
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
        let bin = bin.as_ref().to_path_buf();
        let name = bin.file_name().unwrap_or_default().to_string_lossy();
        let process = PeerProcess::new(&name, "mes-edge-runtime-", "stdout.log", "stderr.log");
        let mut p = RuntimeProcess {
            args: args
                .into_iter()
                .map(|a| a.as_ref().to_os_string())
                .collect(),
            envs: envs
                .into_iter()
                .map(|(k, v)| (k.as_ref().to_os_string(), v.as_ref().to_os_string()))
                .collect(),
            cwd: cwd.map(Path::to_path_buf),
            bin,
            process,
        };
        p.launch();
        p
    }

    fn launch(&mut self) {
        let mut cmd = Command::new(&self.bin);
        cmd.args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)));
        if let Some(cwd) = &self.cwd {
            cmd.current_dir(cwd);
        }
        if let Err(e) = self.process.spawn(cmd, Ready::Spawned) {
            panic!("{e}");
        }
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
        self.launch();
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// SIGKILL (a crash / power loss of the edge box) and reap it.
    pub fn kill9(&mut self) -> ExitStatus {
        self.process
            .kill9()
            .expect("RuntimeProcess::kill9: not started")
    }

    /// SIGTERM and wait up to [`super::STOP_TIMEOUT`] (then SIGKILL, and the returned status
    /// shows it).
    pub fn terminate(&mut self) -> ExitStatus {
        self.process
            .stop()
            .expect("RuntimeProcess::terminate: not started")
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.process.wait_exit(timeout)
    }

    /// The exit status of the last run that ended (by kill9, terminate, wait_exit or is_running).
    pub fn last_status(&self) -> Option<ExitStatus> {
        self.process.last_status()
    }

    pub fn log_dir(&self) -> &Path {
        self.process.dir()
    }

    pub fn stdout_path(&self) -> PathBuf {
        self.process.stdout_path()
    }

    pub fn stderr_path(&self) -> PathBuf {
        self.process.stderr_path()
    }

    /// All of stdout so far (every start).
    pub fn stdout(&self) -> String {
        self.process.stdout()
    }

    /// All of stderr so far (every start).
    pub fn stderr(&self) -> String {
        self.process.stderr()
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
        self.process.logs()
    }
}

/// `mes-edge orders --config CONFIG ARGS...` (the operator's CLI, over the control socket of the
/// running cell); panics with its stderr if it fails.
pub fn orders_cli(bin: &str, config: &Path, args: &[&str]) {
    let out = Command::new(bin)
        .args(["orders", "--config", config.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "orders {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
