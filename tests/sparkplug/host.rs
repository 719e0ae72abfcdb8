//! The Sparkplug host application of the tests: tests/peers/sparkplug_host.py on pysparkplug,
//! printing every message it decodes as a JSON line, taking commands on stdin.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Host {
    child: Child,
    stdin: ChildStdin,
    seen: Arc<Mutex<Vec<Value>>>,
}

pub const GROUP: &str = "acme:plant1:pressing:line2";
pub const NODE: &str = "press4";

impl Host {
    pub async fn start(broker_port: u16, host_id: Option<&str>) -> Host {
        Host::start_on(&[broker_port], host_id).await
    }

    /// A host with a session on each of these MQTT servers (Sparkplug's multiple servers): each
    /// message it prints names the server it came through (`"server": port`).
    pub async fn start_on(broker_ports: &[u16], host_id: Option<&str>) -> Host {
        let mut cmd = Command::new(super::common::python_bin());
        cmd.arg(super::common::peer_script("sparkplug_host.py"));
        for port in broker_ports {
            cmd.args(["--port", &port.to_string()]);
        }
        if let Some(id) = host_id {
            cmd.args(["--host-id", id]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the Sparkplug host (pysparkplug)");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        let host = Host { child, stdin, seen };
        assert!(
            host.wait(|m| m.iter().any(|v| v["type"] == "READY"), 20)
                .await,
            "host not ready"
        );
        host
    }

    pub fn messages(&self) -> Vec<Value> {
        self.seen.lock().unwrap().clone()
    }

    /// The edge node's messages (births, data, deaths; not STATE or commands).
    pub fn node_messages(&self) -> Vec<Value> {
        self.messages()
            .into_iter()
            .filter(|v| {
                v["node"] == NODE
                    && ["NBIRTH", "NDATA", "NDEATH", "DBIRTH", "DDATA", "DDEATH"]
                        .contains(&v["type"].as_str().unwrap_or(""))
            })
            .collect()
    }

    pub async fn wait(&self, cond: impl Fn(&[Value]) -> bool, secs: u64) -> bool {
        let end = tokio::time::Instant::now() + Duration::from_secs(secs);
        while tokio::time::Instant::now() < end {
            if cond(&self.messages()) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        cond(&self.messages())
    }

    fn send(&mut self, cmd: Value) {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
    }

    pub fn set_online(&mut self, online: bool) {
        self.send(json!({"cmd": "state", "online": online}));
    }

    /// The host's STATE on one of its servers only: as when it loses (or regains) its session to
    /// that server while it stays connected to the others.
    #[allow(dead_code)] // tests/sparkplug_failover.rs
    pub fn set_online_on(&mut self, broker_port: u16, online: bool) {
        self.send(json!({"cmd": "state", "online": online, "port": broker_port}));
    }

    /// A STATE with the timestamp `ts` (ms): an old one, as a broker may deliver late.
    pub fn send_state_at(&mut self, online: bool, ts: u64) {
        self.send(json!({"cmd": "state", "online": online, "timestamp": ts}));
    }

    pub fn rebirth(&mut self) {
        self.send(json!({"cmd": "rebirth", "group": GROUP, "node": NODE}));
    }

    pub fn dcmd(&mut self, device: &str, name: &str, datatype: &str, value: Value) {
        self.send(
            json!({"cmd": "dcmd", "group": GROUP, "node": NODE, "device": device,
                         "name": name, "datatype": datatype, "value": value}),
        );
    }

    /// A DCMD the broker keeps (retained) and sends again to every new subscription.
    pub fn dcmd_retained(&mut self, device: &str, name: &str, datatype: &str, value: Value) {
        self.send(
            json!({"cmd": "dcmd", "group": GROUP, "node": NODE, "device": device,
                         "name": name, "datatype": datatype, "value": value, "retain": true}),
        );
    }

    /// A retained DCMD with a STRING value of `bytes` bytes.
    pub fn dcmd_oversized_retained(&mut self, device: &str, name: &str, bytes: usize) {
        self.send(
            json!({"cmd": "dcmd", "group": GROUP, "node": NODE, "device": device,
                         "name": name, "datatype": "STRING", "pad": bytes, "retain": true}),
        );
    }

    /// The same DCMD `count` times, as fast as the host can publish them.
    pub fn dcmd_flood(
        &mut self,
        device: &str,
        name: &str,
        datatype: &str,
        value: Value,
        count: u32,
    ) {
        self.send(
            json!({"cmd": "dcmd", "group": GROUP, "node": NODE, "device": device,
                         "name": name, "datatype": datatype, "value": value, "count": count}),
        );
    }

    /// `count` rebirth requests, as fast as the host can publish them.
    pub fn rebirth_flood(&mut self, count: u32) {
        self.send(json!({"cmd": "rebirth", "group": GROUP, "node": NODE, "count": count}));
    }

    /// Connects as `client_id` and leaves: the broker drops the edge node's connection.
    pub fn kick(&mut self, client_id: &str) {
        self.send(json!({"cmd": "kick", "client_id": client_id}));
    }

    /// Commands the host has carried out (each prints DONE once sent).
    pub fn done(&self) -> usize {
        self.messages()
            .iter()
            .filter(|m| m["type"] == "DONE")
            .count()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A metric of a decoded message by name (aliases are resolved by pysparkplug from the birth).
pub fn metric<'a>(msg: &'a Value, name: &str) -> Option<&'a Value> {
    msg["metrics"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == name)
}

pub fn of_type<'a>(msgs: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    msgs.iter().filter(move |m| m["type"] == kind)
}

/// The last value of the node's good total the host saw (births and data).
pub fn good_total(msgs: &[Value]) -> Option<u64> {
    msgs.iter()
        .rev()
        .filter(|m| m["type"] == "NBIRTH" || m["type"] == "NDATA")
        .find_map(|m| metric(m, "Production/Good Total")?["value"].as_u64())
}

/// Every message after each NBIRTH carries the next seq (mod 256) until the next NBIRTH or
/// NDEATH; gives back the messages that break it.
pub fn seq_breaks(msgs: &[Value]) -> Vec<Value> {
    let mut next: Option<u64> = None;
    let mut breaks = Vec::new();
    for m in msgs {
        match m["type"].as_str().unwrap_or("") {
            "NDEATH" => next = None,
            "NBIRTH" => {
                if m["seq"] != 0 {
                    breaks.push(m.clone());
                }
                next = Some(1);
            }
            _ => {
                let seq = m["seq"].as_u64();
                if next.is_some() && seq != next {
                    breaks.push(m.clone());
                }
                next = seq.map(|s| (s + 1) % 256);
            }
        }
    }
    breaks
}
