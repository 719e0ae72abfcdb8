//! One workload, three tools: the mes-edge cell config and the peers' spec are written from the
//! same devices, layout and poll interval.

use crate::layout::Layout;
use serde::Serialize;
use std::fmt::Write;
use std::path::Path;

pub struct Workload<'a> {
    pub ports: &'a [u16],
    pub layout: &'a Layout,
    pub poll_ms: u64,
    /// Tags (by index in the layout) of device 0 that are the good and scrap part counters.
    pub good: Option<usize>,
    pub scrap: Option<usize>,
    /// mes-edge publishes every tag as a process value, by exception (issue 15's S2 row).
    pub publish: bool,
}

/// Tag `i` of device `d`, named the same by every tool.
pub fn tag_name(d: usize, i: usize) -> String {
    format!("d{d}_t{i}")
}

/// The mes-edge cell config, with the production defaults for everything the workload does not
/// name (synchronous = "full", QoS 1, inflight 100).
pub fn cell_config(w: &Workload, store: &Path, broker_url: &str, health_port: u16) -> String {
    cell_config_with(w, &device_config, store, broker_url, health_port)
}

/// The same, with each device written by `device` (S9 writes S7 CPUs).
pub fn cell_config_with(
    w: &Workload,
    device: &dyn Fn(usize, u16, &Layout, u64) -> String,
    store: &Path,
    broker_url: &str,
    health_port: u16,
) -> String {
    let mut s = String::from(
        "[cell]\nenterprise = \"bench\"\nsite = \"site\"\narea = \"area\"\nline = \"line\"\ncell = \"cell\"\n\n",
    );
    for (d, &port) in w.ports.iter().enumerate() {
        s.push_str(&device(d, port, w.layout, w.poll_ms));
    }
    if w.publish {
        for d in 0..w.ports.len() {
            let _ = write!(s, "[[process_values]]\ndevice = \"plc{d}\"\n\n");
        }
    }
    if let Some(g) = w.good {
        let _ = write!(s, "[signals.good_count]\ntag = \"{}\"\n\n", tag_name(0, g));
    }
    if let Some(g) = w.scrap {
        let _ = write!(s, "[signals.scrap_count]\ntag = \"{}\"\n\n", tag_name(0, g));
    }
    let _ = write!(
        s,
        "[store]\npath = \"{}\"\nsynchronous = \"full\"\n\n[mqtt]\nurl = \"{broker_url}\"\nclient_id = \"bench-cell-{health_port}\"\n\n\
         [health]\nlisten = \"127.0.0.1:{health_port}\"\n",
        store.display()
    );
    s
}

/// Device `d` of a cell config: `plc{d}` on `port`, its tags `d{d}_t{i}` as `layout` places them.
pub fn device_config(d: usize, port: u16, layout: &Layout, poll_ms: u64) -> String {
    let mut s = format!(
        "[[devices]]\nname = \"plc{d}\"\nprotocol = \"modbus-tcp\"\nhost = \"127.0.0.1\"\nport = {port}\npoll_interval_ms = {poll_ms}\n\n"
    );
    for (i, t) in layout.tags.iter().enumerate() {
        let _ = write!(
            s,
            "[[devices.tags]]\nname = \"{}\"\ntable = \"holding\"\naddress = {}\ntype = \"{}\"\n\n",
            tag_name(d, i),
            t.addr,
            t.kind.name()
        );
    }
    s
}

/// What the peers (Node-RED's flow, the Python poller) are given: the same devices, blocks and
/// tags. Each publishes every change of a tag as `{"tag":..,"value":..,"ts":..}` with QoS 1.
#[derive(Serialize)]
pub struct PeerSpec {
    pub devices: Vec<PeerDevice>,
    pub poll_ms: u64,
    pub mqtt_port: u16,
    pub topic_root: String,
}

#[derive(Serialize)]
pub struct PeerDevice {
    pub name: String,
    pub port: u16,
    pub blocks: Vec<PeerBlock>,
}

#[derive(Serialize)]
pub struct PeerBlock {
    pub addr: u16,
    pub count: u16,
    /// (name, offset in the block, kind)
    pub tags: Vec<(String, u16, &'static str)>,
}

pub fn peer_spec(w: &Workload, mqtt_port: u16, topic_root: &str) -> PeerSpec {
    let blocks = w.layout.blocks();
    let devices = w
        .ports
        .iter()
        .enumerate()
        .map(|(d, &port)| PeerDevice {
            name: format!("plc{d}"),
            port,
            blocks: blocks
                .iter()
                .map(|b| PeerBlock {
                    addr: b.addr,
                    count: b.count,
                    tags: w
                        .layout
                        .tags
                        .iter()
                        .enumerate()
                        .filter(|(_, t)| t.addr >= b.addr && t.addr < b.addr + b.count)
                        .map(|(i, t)| (tag_name(d, i), t.addr - b.addr, t.kind.name()))
                        .collect(),
                })
                .collect(),
        })
        .collect();
    PeerSpec {
        devices,
        poll_ms: w.poll_ms,
        mqtt_port,
        topic_root: topic_root.to_string(),
    }
}
