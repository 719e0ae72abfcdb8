//! [`S7Peer`]: `tests/peers/s7_server.py` (python-snap7's pure-Python server, pinned in
//! tests/peers/requirements.txt) on 127.0.0.1, the Siemens CPU of the S7 tests. The test plays
//! the PLC program through its stdin (`press on|off`, `set`, `get`); the server reports on
//! stdout what clients wrote (`WRITE DB 10 46 fff9`). See the script's docstring for its memory.

use super::process::{self, PeerProcess, Ready, Retry};
use super::{free_port, peer_script, python_bin};
use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

pub struct S7Peer {
    press_ms: u32,
    process: PeerProcess,
}

impl S7Peer {
    /// The CPU with its press counting a part every `press_ms` (0: the press stands).
    pub fn start(press_ms: u32) -> S7Peer {
        let mut peer = S7Peer {
            press_ms,
            process: PeerProcess::new(
                "s7_server.py",
                "mes-edge-s7-",
                "s7_server.stdout.log",
                "s7_server.stderr.log",
            )
            .with_stdin(),
        };
        process::start_on_free_port("s7 peer", 5, || {
            peer.process.set_port(free_port());
            peer.spawn_and_wait()
        });
        peer
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let port = self.port().to_string();
        let mut cmd = Command::new(python_bin());
        cmd.arg("-u").arg(peer_script("s7_server.py")).args([
            "--port",
            &port,
            "--press-ms",
            &self.press_ms.to_string(),
        ]);
        self.process
            .spawn(cmd, Ready::line(format!("READY {port}")))
    }

    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// Sends one stdin command and returns the first new stdout line starting with `answer`.
    fn command(&mut self, line: &str, answer: &str) -> String {
        let before = self.process.lines().len();
        let stdin = self.process.stdin().expect("s7 peer is not running");
        writeln!(stdin, "{line}").expect("write to s7_server.py");
        stdin.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(l) = self.process.lines()[before..]
                .iter()
                .find(|l| l.starts_with(answer))
            {
                return l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "s7_server.py did not answer `{line}`\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Starts (true) or stops the press; the good counter (DB1.DBD0) as the PLC holds it then.
    pub fn press(&mut self, on: bool) -> i64 {
        let word = if on { "on" } else { "off" };
        let line = self.command(&format!("press {word}"), &format!("OK press {word}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    /// Sets a value in the PLC's memory, encoded by snap7.util (`ty`: int, dint, word, real).
    pub fn set(&mut self, area: &str, db: u16, ty: &str, byte: u32, value: &str) {
        self.command(&format!("set {area} {db} {ty} {byte} {value}"), "OK set");
    }

    /// A value of the PLC's memory, decoded by snap7.util, as text.
    pub fn get(&mut self, area: &str, db: u16, ty: &str, byte: u32) -> String {
        let line = self.command(
            &format!("get {area} {db} {ty} {byte}"),
            &format!("GOT {area} {db} {ty} {byte} "),
        );
        line.rsplit(' ').next().unwrap().to_string()
    }

    /// The writes clients made, as the peer recorded them: `WRITE <AREA> <db> <start> <hex>`.
    pub fn writes(&self) -> Vec<String> {
        self.process
            .lines()
            .into_iter()
            .filter(|l| l.starts_with("WRITE "))
            .collect()
    }

    /// SIGTERM and wait: the CPU is gone (powered off, or its Ethernet unplugged).
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Starts again on the same port, from its initial memory (a cold restart).
    pub fn start_again(&mut self) {
        self.stop();
        process::restart("s7 peer", Retry::WhilePortInUse, || self.spawn_and_wait());
    }

    pub fn logs(&self) -> String {
        self.process.logs()
    }
}
