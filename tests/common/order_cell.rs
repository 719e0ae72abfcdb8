//! A cell under test for work orders: Mosquitto, the pymodbus PLC with the lab press's
//! register map, a collector of everything published, and the runtime as a process, with the
//! commands, CLI calls and waits the order tests share.

use super::cell::*;
use super::{mqtt_publish, Collector, ModbusPeer, Mosquitto, Plc, RuntimeProcess};
use rumqttc::QoS;
use serde_json::Value;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_mes-edge");
pub const T: Duration = Duration::from_secs(15);

pub struct Cell {
    pub broker: Mosquitto,
    pub peer: ModbusPeer,
    pub plc: Plc,
    pub collector: Collector,
    pub config: std::path::PathBuf,
    pub runtime: RuntimeProcess,
    _dir: tempfile::TempDir,
    pub good: u32,
    pub scrap: u16,
}

impl Cell {
    pub async fn start(extra: &str) -> Cell {
        Cell::start_edited(|_| {}, extra).await
    }

    /// [`Cell::start`], the lab press changed by `edit` first.
    pub async fn start_edited(edit: impl FnOnce(&mut toml_edit::DocumentMut), extra: &str) -> Cell {
        let broker = Mosquitto::start();
        let peer = ModbusPeer::start();
        let mut plc = Plc::connect(peer.port(), 1).await;
        plc.write_u16(STATE, 1).await;
        let collector = Collector::start(broker.port(), TOPIC_FILTER).await;
        let dir = tempfile::tempdir().unwrap();
        let config = write_config_edited(dir.path(), peer.port(), broker.port(), edit, extra);
        let runtime = RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()]);
        let online = collector
            .wait_for(|m| m.iter().any(|r| r.topic.ends_with("device_status")), T)
            .await;
        assert!(online, "the runtime came up");
        Cell {
            broker,
            peer,
            plc,
            collector,
            config,
            runtime,
            _dir: dir,
            good: 0,
            scrap: 0,
        }
    }

    pub async fn send(&self, cmd: Value) {
        mqtt_publish(
            self.broker.port(),
            COMMAND_TOPIC,
            cmd.to_string(),
            QoS::AtLeastOnce,
            false,
            T,
        )
        .await;
    }

    pub async fn send_raw(&self, payload: Vec<u8>) {
        mqtt_publish(
            self.broker.port(),
            COMMAND_TOPIC,
            payload,
            QoS::AtLeastOnce,
            false,
            T,
        )
        .await;
    }

    pub fn delivery(&self) -> Delivery {
        Delivery::of(&self.collector.snapshot())
    }

    pub fn replies(&self) -> Vec<Value> {
        self.delivery()
            .of_type("command_response")
            .map(|e| e["data"].clone())
            .collect()
    }

    /// The reply to `correlation_id` (the last one, for a command sent twice).
    pub async fn reply(&self, correlation_id: &str) -> Value {
        let found = self
            .collector
            .wait_for(
                |m| {
                    Delivery::of(m)
                        .of_type("command_response")
                        .any(|e| e["data"]["correlation_id"] == correlation_id)
                },
                T,
            )
            .await;
        assert!(
            found,
            "no reply to {correlation_id}; replies: {:?}",
            self.replies()
        );
        self.replies()
            .into_iter()
            .rfind(|r| r["correlation_id"] == correlation_id)
            .unwrap()
    }

    pub async fn command(&self, cmd: Value) -> Value {
        let id = cmd["correlation_id"].as_str().unwrap().to_string();
        self.send(cmd).await;
        self.reply(&id).await
    }

    /// Makes parts at the PLC and waits until the runtime has counted them all.
    pub async fn make(&mut self, good: u32, scrap: u16) {
        for _ in 0..good {
            self.good += 1;
            self.plc.write_u32(GOOD, self.good).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for _ in 0..scrap {
            self.scrap += 1;
            self.plc.write_u16(SCRAP, self.scrap).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (g, s) = (self.good as u64, self.scrap as u64);
        let counted = self
            .collector
            .wait_for(
                |m| {
                    let d = Delivery::of(m);
                    d.parts("good") >= g && d.parts("scrap") >= s
                },
                T,
            )
            .await;
        assert!(
            counted,
            "counted {} good, {} scrap of {g}, {s}",
            self.delivery().parts("good"),
            self.delivery().parts("scrap")
        );
    }

    pub fn parts_of(&self, order: Value) -> (u64, u64) {
        let d = self.delivery();
        let sum = |c: &str| {
            d.of_type("part_count")
                .filter(|e| e["data"]["counter"] == c && e["data"]["order_id"] == order)
                .map(|e| e["data"]["quantity"].as_u64().unwrap())
                .sum()
        };
        (sum("good"), sum("scrap"))
    }

    pub async fn job_response(&self, order: &str) -> Value {
        let found = self
            .collector
            .wait_for(
                |m| {
                    Delivery::of(m)
                        .of_type("job_response")
                        .any(|e| e["data"]["order_id"] == order)
                },
                T,
            )
            .await;
        assert!(found, "no job response for {order}");
        self.delivery()
            .of_type("job_response")
            .find(|e| e["data"]["order_id"] == order)
            .unwrap()["data"]
            .clone()
    }

    pub fn order_states(&self, order: &str) -> Vec<(String, String)> {
        self.delivery()
            .of_type("order_state")
            .filter(|e| e["data"]["order_id"] == order)
            .map(|e| {
                (
                    e["data"]["command"].as_str().unwrap().to_string(),
                    e["data"]["state"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut full: Vec<&str> = args.to_vec();
        full.extend(["--config", self.config.to_str().unwrap()]);
        std::process::Command::new(BIN)
            .args(&full)
            .output()
            .unwrap()
    }
}

pub fn cmd_ok(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
