//! S6, OPC UA scale: mes-edge subscribed to 10,000 and then 50,000 monitored items of the OPC
//! UA load server (`mes-edge-opcua-load`, an async-opcua server in a separate process, built by
//! bench/run) whose variables change 50,000 times a second in all: each of 10,000 every 200 ms,
//! each of 50,000 once a second, so that no item changes twice within the 100 ms publishing
//! interval and every change can reach the runtime (queue size 1).
//!
//! "End to end" here is: from the server's change to the changed value handed to the engine's
//! channel (the driver's `mes_edge_device_samples_total` on /metrics). The engine takes those
//! values from a bounded channel, so over a window of seconds this is the rate the engine takes
//! in. mes-edge publishes production events, not every value: MQTT is not part of this figure
//! (the good counter is one of the items, so its part counts do go out).
//!
//! Also measured: start to all items monitored (the device reported online, which the driver
//! does once every item has its first value), CPU (per cent of one core) and RSS over the
//! window. Anchor: UMH publishes 38,837 msg/s at about 157% CPU and 1-1.5 GB for 50,000 nodes.

use crate::ctx::Ctx;
use crate::procs::{free_port, Broker, Proc};
use crate::procstat::{CpuWindow, RssSampler};
use crate::report::{Cell, Figure, Table, Target};
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const RATE: u64 = 50_000;
const NS: &str = "urn:mes-edge:s6-load";
const DEVICE: &str = "s6_server";

/// key, name, unit, digits, value, less is better, target.
type Row = (
    String,
    String,
    &'static str,
    usize,
    f64,
    bool,
    Option<Target>,
);

struct Result6 {
    nodes: u32,
    start_s: f64,
    received_per_s: f64,
    offered_per_s: f64,
    cpu: f64,
    server_cpu: f64,
    rss_max: f64,
}

fn cell_config(nodes: u32, port: u16, store: &Path, mqtt_port: u16, health: u16) -> String {
    let mut s = format!(
        "[cell]\nenterprise = \"bench\"\nsite = \"site\"\narea = \"area\"\nline = \"line\"\ncell = \"cell\"\n\n\
         [[devices]]\nname = \"{DEVICE}\"\nprotocol = \"opcua\"\nendpoint = \"opc.tcp://127.0.0.1:{port}/\"\n\
         timeout_ms = 10000\npublishing_interval_ms = 100\n\n"
    );
    for k in 0..nodes {
        let _ = write!(
            s,
            "[[devices.nodes]]\nname = \"v{k}\"\nnode_id = \"nsu={NS};i={}\"\ntype = \"u32\"\n\n",
            1000 + k
        );
    }
    let _ = write!(
        s,
        "[signals.good_count]\ntag = \"v0\"\n\n[store]\npath = \"{}\"\n\n\
         [mqtt]\nurl = \"mqtt://127.0.0.1:{mqtt_port}\"\nclient_id = \"bench-s6-{health}\"\n\n\
         [health]\nlisten = \"127.0.0.1:{health}\"\n",
        store.display()
    );
    s
}

/// `/metrics` of the runtime, or None while it does not answer.
fn metrics(port: u16) -> Option<String> {
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        c,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    c.read_to_string(&mut body).ok()?;
    Some(body)
}

fn metric(text: &str, name: &str) -> Option<f64> {
    let prefix = format!("{name}{{device=\"{DEVICE}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

fn run_size(ctx: &Ctx, nodes: u32, seconds: f64) -> Result<Result6> {
    let dir = ctx.sub(&format!("s6/{nodes}"))?;
    let load_bin = ctx
        .bench_bin
        .parent()
        .context("no folder")?
        .join("mes-edge-opcua-load");
    anyhow::ensure!(
        load_bin.exists(),
        "no OPC UA load server at {} (bench/run builds it)",
        load_bin.display()
    );
    let mut cmd = Command::new(&load_bin);
    cmd.args(["--nodes", &nodes.to_string(), "--rate", &RATE.to_string()])
        .arg("--pki")
        .arg(dir.join("load-pki"));
    let mut server = Proc::spawn("opcua-load", cmd, &dir, true)?;
    let port: u16 = server
        .wait_line("READY", Duration::from_secs(60))?
        .parse()?;
    let mut broker = Broker::new(&dir, false)?;
    broker.start()?;
    let health = free_port();
    let config = dir.join("cell.toml");
    std::fs::write(
        &config,
        cell_config(nodes, port, &dir.join("store/cell.db"), broker.port, health),
    )?;
    // The client's key pair is made first (in the PKI folder the cell uses, next to its store):
    // RSA key generation takes a random while that says nothing about the driver.
    let endpoint = format!("opc.tcp://127.0.0.1:{port}/");
    let keys = Command::new(&ctx.mes_edge_bin)
        .args(["opcua", "endpoints", &endpoint, "--pki-dir"])
        .arg(dir.join("store/pki"))
        .output()?;
    anyhow::ensure!(
        keys.status.success(),
        "mes-edge opcua endpoints {endpoint} failed: {}",
        String::from_utf8_lossy(&keys.stderr)
    );
    let mut cmd = Command::new(&ctx.mes_edge_bin);
    cmd.arg("run")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "warn");
    let mut p = Proc::spawn("mes-edge", cmd, &dir, false)?;
    let started = Instant::now();
    loop {
        let up = metrics(health)
            .and_then(|m| metric(&m, "mes_edge_device_connected"))
            .is_some_and(|v| v == 1.0);
        if up {
            break;
        }
        anyhow::ensure!(p.running(), "mes-edge ended; see {}", p.log.display());
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(180),
            "{nodes} items not all monitored within 180 s; see {}",
            p.log.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let start_s = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(5));
    let samples = || {
        metrics(health)
            .and_then(|m| metric(&m, "mes_edge_device_samples_total"))
            .context("no mes_edge_device_samples_total on /metrics")
    };
    server.send_line("reset")?;
    let s0 = samples()?;
    let t0 = Instant::now();
    let cpu = CpuWindow::start(p.pid());
    let server_cpu = CpuWindow::start(server.pid());
    let rss = RssSampler::start(p.pid(), Duration::from_millis(500));
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let s1 = samples()?;
    let window = t0.elapsed().as_secs_f64();
    let (cpu, server_cpu) = (cpu.percent(), server_cpu.percent());
    server.send_line("report")?;
    let report: serde_json::Value =
        serde_json::from_str(&server.wait_line("REPORT", Duration::from_secs(10))?)?;
    let rss = rss.finish();
    anyhow::ensure!(p.running(), "mes-edge ended; see {}", p.log.display());
    p.stop(Duration::from_secs(10));
    let _ = server.send_line("quit");
    let made = report["changes"]
        .as_f64()
        .context("no changes in the report")?;
    let made_s = report["seconds"].as_f64().context("no seconds")?;
    Ok(Result6 {
        nodes,
        start_s,
        received_per_s: (s1 - s0) / window,
        offered_per_s: made / made_s,
        cpu,
        server_cpu,
        rss_max: rss.max(),
    })
}

pub fn run(ctx: &Ctx, table: &mut Table) -> Result<()> {
    let seconds = ctx.durations.s6_seconds;
    table.results.scenarios.insert(
        "S6".into(),
        format!(
            "mes-edge subscribed to 10,000 and then 50,000 monitored items of an OPC UA load server (async-opcua, a separate process) \
             making {RATE} changes/s in all, {seconds} s each, mes-edge only"
        ),
    );
    for nodes in [10_000u32, 50_000] {
        println!("S6 OPC UA scale: mes-edge, {nodes} monitored items, {RATE} changes/s offered");
        let r = match run_size(ctx, nodes, seconds) {
            Ok(r) => r,
            Err(e) => {
                table.note(format!("S6 {nodes} items failed: {e:#}"));
                continue;
            }
        };
        println!(
            "  start to all monitored {:.1} s; {:.0} changes/s received of {:.0} made; CPU {:.1}% (load server {:.1}%); RSS max {:.1} MiB",
            r.start_s, r.received_per_s, r.offered_per_s, r.cpu, r.server_cpu, r.rss_max
        );
        let n = r.nodes;
        let key = |k: &str| format!("s6.{n}.{k}");
        let rss_mb = r.rss_max * 1.048576;
        let rows: [Row; 5] = [
            (
                key("received"),
                format!("{n} items: changes/s received end to end (server change to engine)"),
                "changes/s",
                0,
                r.received_per_s,
                false,
                Some(Target::AtLeast { value: 40_000.0 }),
            ),
            (
                key("made"),
                format!("{n} items: changes/s made by the load server"),
                "changes/s",
                0,
                r.offered_per_s,
                false,
                None,
            ),
            (
                key("cpu"),
                format!("{n} items: CPU of one core"),
                "%",
                1,
                r.cpu,
                true,
                Some(Target::AtMost { value: 50.0 }),
            ),
            (
                key("rss"),
                format!("{n} items: RSS (max over the run)"),
                "MB",
                1,
                rss_mb,
                true,
                Some(Target::Below { value: 200.0 }),
            ),
            (
                key("start"),
                format!("{n} items: start to all items monitored"),
                "s",
                1,
                r.start_s,
                true,
                None,
            ),
        ];
        for (key, name, unit, digits, v, less, target) in rows {
            table.add(Figure {
                scenario: "S6",
                key: &key,
                name: &name,
                unit,
                digits,
                mes_edge: Cell::Value(v),
                python: Cell::na("-"),
                node_red: Cell::na("-"),
                less_is_better: less,
                target,
            });
        }
        table.note(format!(
            "S6 {n} items: the load server used {:.1}% of one core",
            r.server_cpu
        ));
    }
    table.note(
        "S6 anchor: UMH publishes 38,837 msg/s at ~157% CPU and 1-1.5 GB RSS for 50,000 nodes"
            .into(),
    );
    Ok(())
}
