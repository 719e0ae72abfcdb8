//! S9's rig: S2's devices and tags as Siemens S7 CPUs. Each device is one process of
//! python-snap7's server (bench/peers/s7_load.py) holding DB1 with the layout's tags, each
//! register pair of S2 as the same bytes here (a u16 is a WORD at DBW 2 x its register, a u32 a
//! DWORD, an f32 a REAL), so the tools read 1,600 bytes per device as 500 tags.

use crate::ctx::Ctx;
use crate::harness::LoadServer;
use crate::layout::{initial, step, Kind, Layout};
use crate::procs::free_port;
use crate::workload::{tag_name, Workload};
use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::json;
use std::fmt::Write;
use std::path::Path;
use std::process::Command;

/// The DB every CPU holds its tags in.
pub const DB: u16 = 1;

/// The S7 type of a layout kind, and the letter of its address's width.
fn s7_type(kind: Kind) -> (&'static str, char) {
    match kind {
        Kind::U16 => ("word", 'W'),
        Kind::U32 => ("dword", 'D'),
        Kind::F32 => ("real", 'D'),
    }
}

/// A tag's first byte in the DB: S2's register address, in bytes.
fn offset(addr: u16) -> u32 {
    addr as u32 * 2
}

fn db_size(layout: &Layout) -> u32 {
    offset(layout.registers())
}

/// Device `d` of the mes-edge cell config: `plc{d}`, an S7 CPU on `port`, with the PDU size
/// and timeout left at their defaults, as a commissioning engineer would start.
pub fn device_config(d: usize, port: u16, layout: &Layout, poll_ms: u64) -> String {
    let mut s = format!(
        "[[devices]]\nname = \"plc{d}\"\nprotocol = \"s7\"\nhost = \"127.0.0.1\"\nport = {port}\npoll_interval_ms = {poll_ms}\n\n"
    );
    for (i, t) in layout.tags.iter().enumerate() {
        let (ty, width) = s7_type(t.kind);
        let _ = write!(
            s,
            "[[devices.s7_tags]]\nname = \"{}\"\naddress = \"DB{DB}.DB{width}{}\"\ntype = \"{ty}\"\n\n",
            tag_name(d, i),
            offset(t.addr),
        );
    }
    s
}

/// What s7_load.py is given: its port, the DB, and every tag with its value and step.
fn server_spec(port: u16, layout: &Layout, tick_ms: u64, per_tick: usize) -> serde_json::Value {
    let tags: Vec<serde_json::Value> = layout
        .tags
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let (ty, _) = s7_type(t.kind);
            let (v, s) = (initial(t.kind, i), step(t.kind));
            // The integer types as JSON integers: Python's struct packs no float as a WORD.
            match t.kind {
                Kind::F32 => json!([offset(t.addr), ty, v, s]),
                _ => json!([offset(t.addr), ty, v as u64, s as u64]),
            }
        })
        .collect();
    json!({"port": port, "db": DB, "size": db_size(layout), "tick_ms": tick_ms, "per_tick": per_tick, "tags": tags})
}

/// One S7 CPU per device, each its own Python process (the GIL would make one process serving
/// all of them the bottleneck), values changing `per_tick` tags every `tick_ms`.
pub fn start_cpus(
    ctx: &Ctx,
    dir: &Path,
    devices: usize,
    layout: &Layout,
    tick_ms: u64,
    per_tick: usize,
) -> Result<Vec<LoadServer>> {
    let python = ctx.python.as_ref().context(
        "S9's CPUs are python-snap7's server, in the peers' venv: run bench/run to install it",
    )?;
    (0..devices)
        .map(|d| {
            let spec = dir.join(format!("s7-cpu{d}.json"));
            let text = server_spec(free_port(), layout, tick_ms, per_tick);
            std::fs::write(&spec, serde_json::to_string(&text)?)?;
            let mut cmd = Command::new(python);
            cmd.arg(ctx.bench_dir().join("peers/s7_load.py")).arg(&spec);
            LoadServer::from_command(&format!("s7-cpu{d}"), cmd, dir)
        })
        .collect()
}

/// What s7_poller.py is given: the same CPUs, DB and tags.
#[derive(Serialize)]
pub struct PollerSpec {
    devices: Vec<PollerDevice>,
    poll_ms: u64,
    mqtt_port: u16,
    topic_root: String,
}

#[derive(Serialize)]
struct PollerDevice {
    name: String,
    port: u16,
    db: u16,
    size: u32,
    /// (name, first byte, S7 type)
    tags: Vec<(String, u32, &'static str)>,
}

pub fn poller_spec(w: &Workload, mqtt_port: u16, topic_root: &str) -> PollerSpec {
    let devices = w
        .ports
        .iter()
        .enumerate()
        .map(|(d, &port)| PollerDevice {
            name: format!("plc{d}"),
            port,
            db: DB,
            size: db_size(w.layout),
            tags: w
                .layout
                .tags
                .iter()
                .enumerate()
                .map(|(i, t)| (tag_name(d, i), offset(t.addr), s7_type(t.kind).0))
                .collect(),
        })
        .collect();
    PollerSpec {
        devices,
        poll_ms: w.poll_ms,
        mqtt_port,
        topic_root: topic_root.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tag_is_addressed_as_its_bytes_in_the_db() {
        let l = Layout::parse("u16x2,u32x1,f32x1").unwrap();
        let c = device_config(0, 102, &l, 100);
        for (addr, ty) in [
            ("DB1.DBW0", "word"),
            ("DB1.DBW2", "word"),
            ("DB1.DBD4", "dword"),
            ("DB1.DBD8", "real"),
        ] {
            assert!(
                c.contains(&format!("address = \"{addr}\"\ntype = \"{ty}\"")),
                "{addr} in\n{c}"
            );
        }
        assert_eq!(db_size(&l), 12);
        let spec = server_spec(102, &l, 100, 5);
        assert_eq!(spec["tags"][2], json!([4, "dword", 100_002, 1]));
    }
}
