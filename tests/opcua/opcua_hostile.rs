//! A server that serves what would exhaust the runtime's memory (docs/OPCUA.md, "A server that
//! sends what would exhaust memory"): the real binary against an asyncua server whose node holds
//! an Argument with a value rank that makes async-opcua 0.19's own decoder allocate 8.6 GB. This
//! is the end-to-end proof that every session decodes through the bound in
//! drivers/src/opcua/argument.rs (the unit tests and the fuzz target call it directly).

use crate::common;

use common::cell::{Delivery, TOPIC_FILTER};
use common::opcua::{device_section, node, write_cell_config, OpcUaOptions, OpcUaPeer};
use common::process::memory_kb;
use common::{Collector, Mosquitto, Received, RuntimeProcess};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_mes-edge");

/// The unit's MemoryMax (systemd/mes-edge@.service): a runtime whose peak stays below it is one
/// the service manager would not have killed. A debug build against this cell peaks near 45 MB;
/// the unbounded decoder would need 8.6 GB for the one value.
const MEMORY_MAX_KB: u64 = 128 * 1024;

/// The address space the runtime may have here. Without the bound the 8.6 GB allocation fails
/// at once and the process aborts, as the unit's MemoryMax would have it killed: a regression
/// fails this test instead of taking the memory of the machine the tests share. Far above what
/// the runtime reserves (threads' stacks, malloc's arenas), far below 8.6 GB.
const ADDRESS_SPACE: &str = "--as=4294967296";

/// A second device on the same server, with a session of its own, reading only the node that
/// holds the Argument: a die's setup that the controller publishes as a structure.
fn setup_device(endpoint: &str) -> String {
    format!(
        r#"
[[devices]]
name = "die_setup"
protocol = "opcua"
endpoint = "{endpoint}"
timeout_ms = 2000
keep_alive_ms = 1000
publishing_interval_ms = 100

[[devices.nodes]]
name = "die_setup"
node_id = "{hostile}"
"#,
        hostile = node("HostileArgument"),
    )
}

/// `(online, reason)` of the device_status events of `device`, in sequence order.
fn statuses(msgs: &[Received], device: &str) -> Vec<(bool, String)> {
    Delivery::of(msgs)
        .of_type("device_status")
        .filter(|e| e["data"]["device"] == device)
        .map(|e| {
            (
                e["data"]["online"].as_bool().unwrap(),
                e["data"]["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_argument_asking_for_gigabytes_takes_its_device_offline_not_the_runtime_down() {
    let broker = Mosquitto::start();
    let mut peer = OpcUaPeer::start(OpcUaOptions {
        hostile_argument: true,
        ..OpcUaOptions::default()
    });
    let collector = Collector::start(broker.port(), TOPIC_FILTER).await;
    let dir = tempfile::tempdir().unwrap();
    let devices = device_section(&peer.endpoint(), "") + &setup_device(&peer.endpoint());
    let config = write_cell_config(dir.path(), &devices, 2, broker.port());
    let config = config.to_str().unwrap();
    let mut rt = RuntimeProcess::spawn(
        "/usr/bin/prlimit",
        [ADDRESS_SPACE, "--", BIN, "run", "--config", config],
    );
    let pid = rt.pid().unwrap(); // prlimit execs the runtime: the same process

    // The server sends the Argument in the first notification of die_setup's session, and again
    // after every reconnect: each time the runtime refuses the message and the session ends.
    let refusals = |rt: &RuntimeProcess| {
        rt.stderr()
            .lines()
            .filter(|l| l.contains("device=die_setup") && l.contains("BadDecodingError"))
            .count()
    };
    let refused_thrice = common::eventually(Duration::from_secs(30), || {
        refusals(&rt) >= 3 || !rt.is_running()
    })
    .await;
    // The abort's own line is above its backtrace, out of the logs' tail.
    let abort = rt
        .stderr()
        .lines()
        .find(|l| l.starts_with("memory allocation"))
        .map(str::to_string);
    assert!(
        refused_thrice && rt.is_running(),
        "die_setup's session was not refused three times ({} so far); the runtime ended: {:?} \
         {abort:?}\n{}",
        refusals(&rt),
        rt.last_status(),
        rt.logs()
    );
    // What the server saw: after every refusal the runtime came back for the node (its session
    // alone monitors one item).
    let resubscriptions = || {
        let (ok, _) = peer.create_item_calls();
        ok.iter().filter(|&&n| n == 1).count()
    };
    let came_back = common::eventually(Duration::from_secs(5), || resubscriptions() >= 3).await;
    assert!(came_back, "{:?}", peer.create_item_calls());
    assert!(
        rt.stderr().contains("value rank 2147483000"),
        "the log names the value rank refused\n{}",
        rt.logs()
    );
    let offline = collector
        .wait_for(
            |m| {
                statuses(m, "die_setup")
                    .iter()
                    .any(|(online, reason)| !online && reason.contains("BadDecodingError"))
            },
            Duration::from_secs(10),
        )
        .await;
    assert!(
        offline,
        "no offline device_status for die_setup with the decoding error at the broker: {:?}",
        statuses(&collector.snapshot(), "die_setup")
    );

    // The other session on that server keeps counting what the controller counts.
    let online = collector
        .wait_for(
            |m| statuses(m, "press_controller").iter().any(|s| s.0),
            Duration::from_secs(30),
        )
        .await;
    assert!(online, "press_controller never came online\n{}", rt.logs());
    for good in 1..=5u32 {
        peer.set("GoodCount", good);
    }
    let counted = collector
        .wait_for(
            |m| Delivery::of(m).parts("good") >= 5,
            Duration::from_secs(30),
        )
        .await;
    assert!(
        counted,
        "the 5 parts made meanwhile did not arrive: {}\n{}",
        Delivery::of(&collector.snapshot()).parts("good"),
        rt.logs()
    );
    assert_eq!(Delivery::of(&collector.snapshot()).parts("good"), 5);

    assert!(rt.is_running(), "the runtime ended\n{}", rt.logs());
    let peak = memory_kb(pid, "VmHWM").expect("VmHWM of the running runtime");
    eprintln!(
        "runtime peak resident memory {peak} kB, address space {:?} kB, after {} refusals",
        memory_kb(pid, "VmPeak"),
        refusals(&rt)
    );
    assert!(
        peak < MEMORY_MAX_KB,
        "peak resident memory {peak} kB, over the unit's MemoryMax"
    );
    assert!(rt.terminate().success(), "clean exit on SIGTERM");
}
