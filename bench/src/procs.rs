//! The processes a scenario starts: each logs to a file in the run's folder and is ended
//! (SIGTERM, then SIGKILL) when its handle is dropped, so an interrupted run leaves nothing
//! behind.

use anyhow::{Context, Result};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Proc {
    pub name: String,
    child: Child,
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<BufReader<ChildStdout>>,
    pub started: Instant,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stderr (and stdout unless `piped`) to `dir/name.log`.
    pub fn spawn(name: &str, mut cmd: Command, dir: &Path, piped: bool) -> Result<Proc> {
        let log = dir.join(format!("{name}.log"));
        let err = File::create(&log)?;
        cmd.stdin(if piped { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(if piped {
            Stdio::piped()
        } else {
            Stdio::from(err.try_clone()?)
        });
        cmd.stderr(Stdio::from(err));
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        Ok(Proc {
            name: name.to_string(),
            stdin: child.stdin.take(),
            stdout: child.stdout.take().map(BufReader::new),
            child,
            started,
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Reads stdout lines until one starts with `prefix`; returns the rest of it.
    pub fn wait_line(&mut self, prefix: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let out = self.stdout.as_mut().context("stdout not piped")?;
        let mut line = String::new();
        loop {
            line.clear();
            if out.read_line(&mut line)? == 0 {
                anyhow::bail!(
                    "{} ended before printing {prefix}; see {}",
                    self.name,
                    self.log.display()
                );
            }
            if let Some(rest) = line.trim_end().strip_prefix(prefix) {
                return Ok(rest.trim().to_string());
            }
            if Instant::now() > deadline {
                anyhow::bail!("{} printed no {prefix} within {timeout:?}", self.name);
            }
        }
    }

    pub fn send_line(&mut self, line: &str) -> Result<()> {
        use std::io::Write;
        let stdin = self.stdin.as_mut().context("stdin not piped")?;
        writeln!(stdin, "{line}")?;
        stdin.flush()?;
        Ok(())
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// SIGTERM, then SIGKILL after `grace`; returns whether it ended by itself in time.
    pub fn stop(&mut self, grace: Duration) -> bool {
        if !self.running() {
            return true;
        }
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.running() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_port(port: u16, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "nothing listens on port {port} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// Mosquitto from Debian on 127.0.0.1 with a config of our own. `persistent` keeps sessions
/// across a restart (S3's collector must not miss what arrives before it reconnects).
pub struct Broker {
    pub port: u16,
    dir: PathBuf,
    pub proc: Option<Proc>,
    persistent: bool,
    starts: u32,
}

pub fn mosquitto_bin() -> PathBuf {
    std::env::var_os("MES_EDGE_MOSQUITTO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/mosquitto"))
}

impl Broker {
    pub fn new(dir: &Path, persistent: bool) -> Result<Broker> {
        let dir = dir.join(format!("mosquitto-{}", free_port()));
        std::fs::create_dir_all(&dir)?;
        Ok(Broker {
            port: free_port(),
            dir,
            proc: None,
            persistent,
            starts: 0,
        })
    }

    pub fn start(&mut self) -> Result<()> {
        self.starts += 1;
        let persistence = if self.persistent {
            format!(
                "persistence true\npersistence_location {}/\nautosave_interval 0\n",
                self.dir.display()
            )
        } else {
            "persistence false\n".to_string()
        };
        // Queues large enough that the broker never drops what a slow subscriber has not taken
        // yet: the collector must see everything to prove nothing was lost.
        let conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\n{persistence}\
             max_queued_messages 4000000\nmax_queued_bytes 0\nmax_inflight_messages 0\n\
             set_tcp_nodelay true\nlog_dest stderr\nlog_type error\nlog_type warning\n",
            port = self.port
        );
        let path = self.dir.join("mosquitto.conf");
        std::fs::write(&path, conf)?;
        let mut cmd = Command::new(mosquitto_bin());
        cmd.arg("-c").arg(&path);
        let name = format!("mosquitto-{}-{}", self.port, self.starts);
        self.proc = Some(Proc::spawn(&name, cmd, &self.dir, false)?);
        wait_port(self.port, Duration::from_secs(10)).with_context(|| {
            format!(
                "mosquitto did not start (is it installed? bench/run installs it); see {}",
                self.dir.display()
            )
        })
    }

    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop(Duration::from_secs(10));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(|p| p.pid())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}
