//! What bounds each target when it is not met: the measured figures that show it, and why. One
//! table serves the harness (each figure carries its bound into results.json) and the report
//! (a results.json recorded before a bound was written down gets it from here). Only words and
//! figure keys live here: the values always come from the run.

use serde::{Deserialize, Serialize};

/// When a target is not met: the measured figures that show what bounds it, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Bound {
    pub figures: Vec<String>,
    pub why: String,
}

const BOUNDS: &[(&str, &[&str], &str)] = &[
    (
        "s1.intake",
        &["s1.intake_cpu", "s1.intake_broker_cpu"],
        "the engine thread, the checkpointer, the forwarder, Mosquitto and the collector share the two cores while the intake runs",
    ),
    (
        "s1.steady",
        &[
            "s1.ceiling",
            "s1.steady_cpu",
            "s1.steady_broker_cpu",
            "s1.ceiling_broker_cpu",
        ],
        "the runtime and Mosquitto at the highest rate held, beside Mosquitto at the ceiling",
    ),
    (
        "s1.latency_p99",
        &["s1.latency_p50", "s1.latency_max", "s1.fsync_p99"],
        "each event waits for its commit's fsync (synchronous = \"full\"): the tail follows fsync stalls of the shared disk beyond those the probe just before caught (the stalls come and go)",
    ),
    (
        "s2.cpu_per_tag",
        &["s2.cpu", "s2.cpu_system_per_tag", "s2.requests", "s2.polls"],
        "most of mes-edge's CPU per tag is the kernel's work for its sockets (system time: a write, a read and a wake-up per request, which every tool asking one request at a time pays alike); a peer's CPU per tag over mes-edge's system time per tag alone is the most any saving in mes-edge's own code could reach. Several requests in flight per connection would share those costs, but a Modbus TCP server need not accept them (pymodbus 3.11.4's answers only the first of several that arrive together: docs/MODBUS.md), so mes-edge asks one at a time",
    ),
    (
        "s2.cpu_publishing",
        &[
            "s2.cpu_publishing",
            "s2.cpu",
            "s2.cpu_publishing_store",
            "s2.messages_publishing",
        ],
        "with publishing, mes-edge also commits the changed values to its store (synchronous = \"full\": an fsync per commit) before they go to the broker in a batch per device and poll, and stores the delivered ones' cursor; its store thread's share is measured beside it, and the peers store nothing",
    ),
    (
        "s3.drain",
        &["s3.broker_cpu", "s3.cpu", "s1.ceiling"],
        "Mosquitto and the runtime during the drain, beside the broker's ceiling",
    ),
    (
        "s4.modbus_p99",
        &["s4.modbus_p50", "s4.modbus_max", "s4.fsync_p99"],
        "mes-edge publishes a change as an event committed with synchronous = \"full\" (the peers store nothing): the few slowest changes waited out fsync stalls of the shared disk beyond those the probe just before caught (the stalls come and go)",
    ),
    (
        "s4.opcua_p99",
        &["s4.opcua_p50", "s4.opcua_max", "s4.fsync_p99"],
        "as for Modbus: the few slowest changes waited out fsync stalls of the shared disk",
    ),
    (
        "s5.rss",
        &["s5.anon", "s5.file", "s5.exe", "s5.private_dirty", "s5.binary"],
        "RSS beyond the anonymous part (heap, stacks, malloc arenas, relocated pointers) is file-backed, most of it the binary's own code: the runtime hands back what only the start ran, and what the idle cell runs comes back 64 KiB at a time (the kernel's fault-around); docs/FOOTPRINT.md has the split and each lever measured",
    ),
    (
        "s5.binary",
        &["s5.binary", "s5.install"],
        "the shipped build links the OPC UA client stack (async-opcua), TLS (rustls and its crypto provider) and SQLite into one static binary, already built for size (opt-level \"s\", fat LTO, one codegen unit, panic = abort, stripped); the harness does not break the size down by crate",
    ),
    (
        "s7.intake_large",
        &[
            "s7.intake_empty",
            "s7.pruned",
            "s7.written_large",
            "s7.written_empty",
        ],
        "on the large store the size cap is reached, so pruning deletes old rows during the intake, and each event writes more bytes (deeper B-trees, index pages of 10 M rows, the pruned pages)",
    ),
    (
        "s7.housekeeping_step",
        &["s7.pruned", "s7.written_large"],
        "a step deletes rows for up to 4 ms or 1,000 rows; carried by the engine's commit only its deletes count, run alone (a turn with nothing to commit) its commit counts too: it writes every page the rows were on to the WAL, without an fsync of its own, beside the engine committing flat out and the checkpointer copying the WAL",
    ),
    (
        "s7.poll_p99_large",
        &["s7.poll_p99_empty", "s7.pruned", "s7.intake_large"],
        "the polled device shares the two cores with the engine committing flat out, the checkpointer and the load server; on the large store the pruning steps add to the engine's work",
    ),
];

/// The bound of the figure `key`, if one is written down.
pub fn of(key: &str) -> Option<Bound> {
    BOUNDS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, figures, why)| Bound {
            figures: figures.iter().map(|f| f.to_string()).collect(),
            why: why.to_string(),
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_bound_names_itself_once_and_some_figures() {
        let mut keys: Vec<&str> = super::BOUNDS.iter().map(|b| b.0).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), super::BOUNDS.len());
        assert!(super::BOUNDS.iter().all(|b| !b.1.is_empty()));
    }
}
