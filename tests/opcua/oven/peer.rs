//! [`OvenPeer`]: `tests/peers/opcua_oven.py` (Python asyncua, pinned in
//! tests/peers/requirements.txt), an OPC UA oven that makes parts when told and keeps the tally
//! of what it made: the truth the counting is checked against. See the script's docstring.

use crate::common::process::{self, PeerProcess, Ready};
use crate::common::{free_port, peer_script, python_bin};
use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

pub const NS: &str = "urn:mes-edge:test-oven";

pub struct OvenPeer {
    process: PeerProcess,
    good: u32,
    reject: u16,
}

impl OvenPeer {
    /// An oven whose counters start at `good` and `reject`; returns once it listens.
    pub fn start(good: u32, reject: u16) -> OvenPeer {
        let mut oven = OvenPeer {
            process: PeerProcess::new(
                "opcua_oven.py",
                "mes-edge-oven-",
                "opcua_oven.stdout.log",
                "opcua_oven.stderr.log",
            )
            .with_stdin(),
            good,
            reject,
        };
        process::start_on_free_port("opcua oven", 5, || {
            oven.process.set_port(free_port());
            let port = oven.process.port().to_string();
            let mut cmd = Command::new(python_bin());
            cmd.arg("-u")
                .arg(peer_script("opcua_oven.py"))
                .args(["--port", &port])
                .args(["--good", &oven.good.to_string()])
                .args(["--reject", &oven.reject.to_string()]);
            oven.process
                .spawn(cmd, Ready::line(format!("READY {port}")))
        });
        oven
    }

    pub fn endpoint(&self) -> String {
        format!("opc.tcp://127.0.0.1:{}/", self.process.port())
    }

    /// Makes `good` parts, then `rejects`.
    pub fn make(&mut self, good: u32, rejects: u32) {
        self.command(&format!("make {good} {rejects}"), "OK make");
    }

    /// The controller resets both counters; it shows with the next part.
    pub fn reset(&mut self) {
        self.command("reset", "OK reset");
    }

    /// Its server stops, the controller restarts and makes `good` and `rejects` parts, a new
    /// server comes up showing them. Gives the new server's StartTime, UTC ms.
    pub fn restart(&mut self, good: u32, rejects: u32) -> i64 {
        let line = self.command(&format!("restart {good} {rejects}"), "OK restart ");
        line["OK restart ".len()..].parse().expect("a start time")
    }

    /// Every part the oven made since it started: (good, rejects).
    pub fn tally(&mut self) -> (u64, u64) {
        let line = self.command("tally", "TALLY ");
        let n: Vec<u64> = line[6..]
            .split(' ')
            .map(|n| n.parse().expect("a count"))
            .collect();
        (n[0], n[1])
    }

    /// Sends one command and gives the first new line starting with `answer`.
    fn command(&mut self, line: &str, answer: &str) -> String {
        let before = self.process.lines().len();
        let stdin = self.process.stdin().expect("the oven is not running");
        writeln!(stdin, "{line}").expect("write to opcua_oven.py");
        stdin.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let lines = self.process.lines();
            if let Some(l) = lines[before..].iter().find(|l| l.starts_with(answer)) {
                return l.clone();
            }
            if let Some(e) = lines[before..].iter().find(|l| l.starts_with("ERROR")) {
                panic!(
                    "opcua_oven.py refused `{line}`: {e}\n{}",
                    self.process.logs()
                );
            }
            assert!(
                Instant::now() < deadline,
                "opcua_oven.py did not answer `{line}`\n{}",
                self.process.logs()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
