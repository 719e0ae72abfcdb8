//! The oven run of issue 24, end to end against peers we did not write: an asyncua oven
//! (tests/peers/opcua_oven.py: a UInt32 good counter, a UInt16 reject counter that rolls over,
//! resets seen only with the next part, a server whose StartTime changes when it restarts),
//! Mosquitto as the plant's broker, the real binary killed with -9 twice, and a broker outage.
//! The truth is the oven's own tally of the parts it made; MOM's net of what Mosquitto
//! delivered must be exactly that, for both counters.

use crate::common;
#[path = "oven/peer.rs"]
mod peer;

use common::cell::{Delivery, TOPIC_FILTER};
use common::{unique_name, Collector, Mosquitto, RuntimeProcess};
use peer::{OvenPeer, NS};
use std::path::{Path, PathBuf};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_mes-edge");

fn write_config(dir: &Path, endpoint: &str, mqtt_port: u16) -> PathBuf {
    let path = dir.join("oven.toml");
    let text = format!(
        r#"[cell]
enterprise = "acme"
site = "plant1"
area = "baking"
line = "line1"
cell = "oven3"

[[devices]]
name = "oven_controller"
protocol = "opcua"
endpoint = "{endpoint}"
timeout_ms = 2000
keep_alive_ms = 1000
publishing_interval_ms = 100

[[devices.nodes]]
name = "good_count"
node_id = "nsu={NS};s=Oven.GoodCount"
type = "u32"
sampling_interval_ms = 50

[[devices.nodes]]
name = "reject_count"
node_id = "nsu={NS};s=Oven.RejectCount"
type = "u16"
sampling_interval_ms = 50

[signals.good_count]
tag = "good_count"
confirm_ms = 2000

[signals.scrap_count]
tag = "reject_count"
confirm_ms = 2000

[health]
enabled = false

[store]
path = "state/oven.db"

[mqtt]
url = "mqtt://127.0.0.1:{mqtt_port}"
client_id = "mes-edge-oven3"
keep_alive_s = 5
"#
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A broker that keeps sessions across its restart, as a plant's does: MOM's persistent
/// session gets what was published while it was reconnecting.
fn plant_broker(dir: &Path) -> Mosquitto {
    use std::os::unix::fs::PermissionsExt;
    let folder = dir.join("broker");
    std::fs::create_dir_all(&folder).unwrap();
    // Mosquitto started as root drops to the `mosquitto` user, who must write there.
    for (p, mode) in [(dir, 0o755), (folder.as_path(), 0o777)] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    Mosquitto::start_with_config(&format!(
        "persistence true\npersistence_location {}/\n",
        folder.display()
    ))
}

struct Run {
    oven: OvenPeer,
    collector: Collector,
    rt: RuntimeProcess,
}

impl Run {
    /// Waits until MOM's net of both counters is the oven's tally.
    async fn caught_up(&mut self, what: &str) -> Delivery {
        let truth = self.oven.tally();
        let ok = self
            .collector
            .wait_for(
                |m| {
                    let d = Delivery::of(m);
                    (d.parts("good"), d.parts("scrap")) == truth
                },
                Duration::from_secs(40),
            )
            .await;
        let d = Delivery::of(&self.collector.snapshot());
        assert!(
            ok,
            "{what}: MOM has good {} and rejects {}, the oven made {truth:?}\n{}",
            d.parts("good"),
            d.parts("scrap"),
            self.rt.logs()
        );
        d
    }

    /// Starts the runtime again after a kill and waits until it has read the oven (its device
    /// reported online once more): a counter that restarted must be read below its old value
    /// before it passes it, or nothing can tell its restart (docs/EVENTS.md, the cases that
    /// cannot be told).
    async fn start_again_and_read(&mut self) {
        let online = |m: &[common::Received]| {
            Delivery::of(m)
                .of_type("device_status")
                .filter(|e| e["data"]["online"] == true)
                .count()
        };
        let before = online(&self.collector.snapshot());
        self.rt.start_again();
        let ok = self
            .collector
            .wait_for(|m| online(m) > before, Duration::from_secs(30))
            .await;
        assert!(ok, "the runtime read the oven again\n{}", self.rt.logs());
    }

    /// A part of each every 150 ms, so that each shows in its own notification.
    async fn produce(&mut self, good: u32, rejects: u32) {
        for i in 0..good.max(rejects) {
            self.oven.make(u32::from(i < good), u32::from(i < rejects));
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
}

/// `(rule, evidence)` of each reset of `counter`, in order.
fn resets(d: &Delivery, counter: &str) -> Vec<(String, String)> {
    d.of_type("counter_reset")
        .filter(|e| e["data"]["counter"] == counter)
        .map(|e| {
            let field = |k: &str| e["data"][k].as_str().unwrap_or("-").to_string();
            (field("rule"), field("evidence"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oven_run_gives_mom_exactly_what_the_oven_made() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = plant_broker(dir.path());
    // The reject counter is 6 short of its top: it rolls over within the first parts.
    let oven = OvenPeer::start(550, 65_530);
    let collector =
        Collector::start_persistent(broker.port(), TOPIC_FILTER, &unique_name("mom")).await;
    let config = write_config(dir.path(), &oven.endpoint(), broker.port());
    let rt = RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()]);
    let mut run = Run {
        oven,
        collector,
        rt,
    };
    common::cell::wait_first_device_status(&run.collector, &run.rt).await;

    // Production, the reject counter rolling over: 65,530 -> 4.
    run.produce(9, 10).await;
    run.caught_up("before any reset").await;

    // A reset seen only with the next part: good 559 -> 1.., rejects 4 -> 1 (alone a
    // correction of -3).
    run.oven.reset();
    run.produce(4, 2).await;
    run.caught_up("a reset seen with the next part").await;

    // kill -9 in the middle of production; the oven goes on while the runtime is down.
    run.oven.make(5, 2);
    run.rt.kill9();
    run.oven.make(4, 1);
    run.rt.start_again();
    run.produce(2, 0).await;
    run.caught_up("a kill -9 during production").await;

    // kill -9, then the oven's controller restarts while the runtime is down, its zeros never
    // shown: good 15 -> 3, rejects 5 -> 4 (alone a part taken back). Its server's new
    // StartTime tells the restart.
    let d = run.caught_up("before the second kill").await;
    assert_eq!(resets(&d, "scrap").len(), 1);
    run.rt.kill9();
    run.oven.restart(3, 4);
    run.start_again_and_read().await;
    run.produce(3, 2).await;
    let d = run
        .caught_up("a restart of the oven while the runtime was down")
        .await;
    assert_eq!(
        resets(&d, "scrap").last().unwrap(),
        &("restarted_from_zero".into(), "server_restarted".into()),
        "the reject counter's step back 5 -> 4 was judged a restart by the new StartTime"
    );

    // The broker is away while the oven makes parts; the oven restarts while the runtime
    // watches (its connection drops, a new StartTime).
    broker.stop();
    run.produce(6, 2).await;
    run.oven.restart(1, 1);
    run.produce(2, 2).await;
    broker.start_again();
    run.produce(1, 1).await;
    let d = run
        .caught_up("a broker outage and a restart of the oven")
        .await;

    // Nothing late, nothing twice, never a part taken back: the oven takes none back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let end = Delivery::of(&run.collector.snapshot());
    assert_eq!(
        (end.parts("good"), end.parts("scrap")),
        run.oven.tally(),
        "MOM's net stays the oven's tally"
    );
    end.assert_gap_free();
    assert_eq!(end.of_type("count_correction").count(), 0);
    assert!(end
        .of_type("part_count")
        .any(|e| e["data"]["counter"] == "scrap" && e["data"]["rolled_over"] == true));
    let scrap = resets(&d, "scrap");
    assert_eq!(scrap.len(), 3, "one reset and two restarts: {scrap:?}");
    assert_eq!(
        scrap[0],
        ("restarted_from_zero".into(), "sibling_restarted".into())
    );
    assert!(run.rt.terminate().success(), "clean exit on SIGTERM");
}
