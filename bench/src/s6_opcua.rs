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
//! With publishing (issue 28): the 50,000 items also published as process values by exception
//! (`[[process_values]] device = ...`: stored in the value class, delivered to Mosquitto),
//! counted at an MQTT subscriber: values/s and messages/s that arrived there, the runtime's CPU
//! and RSS, the store's bytes written per value (/proc/PID/io), and the values the cap dropped
//! (`mes_edge_values_dropped_total`). That is what UMH's anchor figure measures.
//!
//! Also measured: start to all items monitored (the device reported online, which the driver
//! does once every item has its first value), CPU (per cent of one core) and RSS over the
//! window. Anchor: UMH publishes 38,837 msg/s at about 157% CPU and 1-1.5 GB for 50,000 nodes.

use crate::collector::Collector;
use crate::ctx::Ctx;
use crate::procs::{free_port, Broker, Proc};
use crate::procstat::{write_bytes, CpuWindow, RssSampler};
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
    /// Published as process values (the subscriber's figures below).
    published: Option<Delivered>,
    start_s: f64,
    received_per_s: f64,
    offered_per_s: f64,
    cpu: f64,
    server_cpu: f64,
    rss_max: f64,
}

/// What the MQTT subscriber received over the window, and what it cost the store.
struct Delivered {
    values_per_s: f64,
    messages_per_s: f64,
    bytes_per_value: f64,
    dropped: f64,
}

fn cell_config(
    nodes: u32,
    publish: bool,
    port: u16,
    store: &Path,
    mqtt_port: u16,
    health: u16,
) -> String {
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
    if publish {
        let _ = write!(s, "\n[[process_values]]\ndevice = \"{DEVICE}\"\n");
    }
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

/// The sum of a counter's samples, whatever their labels (0 when it has none yet).
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with([' ', '{']))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn metric(text: &str, name: &str) -> Option<f64> {
    let prefix = format!("{name}{{device=\"{DEVICE}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

fn run_size(ctx: &Ctx, nodes: u32, publish: bool, seconds: f64) -> Result<Result6> {
    let dir = ctx.sub(&format!(
        "s6/{nodes}{}",
        if publish { "-published" } else { "" }
    ))?;
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
        cell_config(
            nodes,
            publish,
            port,
            &dir.join("store/cell.db"),
            broker.port,
            health,
        ),
    )?;
    let subscriber = publish
        .then(|| Collector::start(broker.port, "+/bench/site/area/line/cell/values/#", None));
    if let Some(c) = &subscriber {
        c.wait_subscribed(Duration::from_secs(10))?;
    }
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
    let dropped =
        || metrics(health).map_or(0.0, |m| metric_sum(&m, "mes_edge_values_dropped_total"));
    let (dropped0, io0) = (dropped(), write_bytes(p.pid()).unwrap_or(0));
    let t0 = Instant::now();
    let t0_ns = crate::load_server::unix_ns();
    let cpu = CpuWindow::start(p.pid());
    let server_cpu = CpuWindow::start(server.pid());
    let rss = RssSampler::start(p.pid(), Duration::from_millis(500));
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let s1 = samples()?;
    let window = t0.elapsed().as_secs_f64();
    let t1_ns = crate::load_server::unix_ns();
    let (dropped1, io1) = (dropped(), write_bytes(p.pid()).unwrap_or(0));
    let published = subscriber.map(|c| {
        let got: Vec<_> = c
            .take()
            .into_iter()
            .filter(|r| r.values > 0 && r.recv_ns >= t0_ns && r.recv_ns < t1_ns)
            .collect();
        let values: usize = got.iter().map(|r| r.values).sum();
        Delivered {
            values_per_s: values as f64 / window,
            messages_per_s: got.len() as f64 / window,
            bytes_per_value: (io1 - io0) as f64 / (values.max(1)) as f64,
            dropped: dropped1 - dropped0,
        }
    });
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
        published,
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
             making {RATE} changes/s in all, {seconds} s each; then the 50,000 also published as process values by exception to Mosquitto, \
             counted at an MQTT subscriber; mes-edge only"
        ),
    );
    for (nodes, publish) in [(10_000u32, false), (50_000, false), (50_000, true)] {
        let what = if publish { ", published" } else { "" };
        println!(
            "S6 OPC UA scale: mes-edge, {nodes} monitored items{what}, {RATE} changes/s offered"
        );
        let r = match run_size(ctx, nodes, publish, seconds) {
            Ok(r) => r,
            Err(e) => {
                table.note(format!("S6 {nodes} items{what} failed: {e:#}"));
                continue;
            }
        };
        println!(
            "  start to all monitored {:.1} s; {:.0} changes/s received of {:.0} made; CPU {:.1}% (load server {:.1}%); RSS max {:.1} MiB",
            r.start_s, r.received_per_s, r.offered_per_s, r.cpu, r.server_cpu, r.rss_max
        );
        if let Some(d) = &r.published {
            println!(
                "  published: {:.0} values/s in {:.0} messages/s at the subscriber; {:.1} store bytes written per value; {:.0} dropped by the cap",
                d.values_per_s, d.messages_per_s, d.bytes_per_value, d.dropped
            );
        }
        for (key, name, unit, digits, v, less, target) in rows(&r) {
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
            "S6 {nodes} items{what}: the load server used {:.1}% of one core",
            r.server_cpu
        ));
    }
    table.note(
        "S6 anchor: UMH publishes 38,837 msg/s at ~157% CPU and 1-1.5 GB RSS for 50,000 nodes"
            .into(),
    );
    Ok(())
}

/// The figures of one size: what the engine took in, and with publishing what arrived.
fn rows(r: &Result6) -> Vec<Row> {
    let n = r.nodes;
    let (tag, what) = match r.published {
        Some(_) => (format!("{n}.published"), format!("{n} items published")),
        None => (n.to_string(), format!("{n} items")),
    };
    let key = |k: &str| format!("s6.{tag}.{k}");
    // Publishing every change may take up to a core (UMH: ~157 %); reading alone, half.
    let cpu_target = if r.published.is_some() { 100.0 } else { 50.0 };
    let mut rows: Vec<Row> = vec![
        (
            key("received"),
            format!("{what}: changes/s received end to end (server change to engine)"),
            "changes/s",
            0,
            r.received_per_s,
            false,
            Some(Target::AtLeast { value: 40_000.0 }),
        ),
        (
            key("made"),
            format!("{what}: changes/s made by the load server"),
            "changes/s",
            0,
            r.offered_per_s,
            false,
            None,
        ),
        (
            key("cpu"),
            format!("{what}: CPU of one core"),
            "%",
            1,
            r.cpu,
            true,
            Some(Target::AtMost { value: cpu_target }),
        ),
        (
            key("rss"),
            format!("{what}: RSS (max over the run)"),
            "MB",
            1,
            r.rss_max * 1.048576,
            true,
            Some(Target::Below { value: 200.0 }),
        ),
        (
            key("start"),
            format!("{what}: start to all items monitored"),
            "s",
            1,
            r.start_s,
            true,
            None,
        ),
    ];
    if let Some(d) = &r.published {
        rows.extend([
            (
                key("delivered"),
                format!("{what}: values/s delivered (counted at an MQTT subscriber)"),
                "values/s",
                0,
                d.values_per_s,
                false,
                Some(Target::AtLeast { value: 40_000.0 }),
            ),
            (
                key("messages"),
                format!("{what}: messages/s at the subscriber (value batches)"),
                "msg/s",
                0,
                d.messages_per_s,
                false,
                None,
            ),
            (
                key("bytes"),
                format!("{what}: store bytes written per value delivered (write_bytes)"),
                "B",
                0,
                d.bytes_per_value,
                true,
                None,
            ),
            (
                key("dropped"),
                format!("{what}: values dropped by the store's cap in the window"),
                "values",
                0,
                d.dropped,
                true,
                Some(Target::EveryRunAtMost { value: 0.0 }),
            ),
        ]);
    }
    rows
}
