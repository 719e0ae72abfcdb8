//! S5, footprint: a 50-tag cell (one device: 20 u16, 15 u32, 15 f32) polled every 100 ms with
//! nothing changing. Binary or install size, time from start to ready, and resident memory and
//! CPU once settled.
//!
//! "Ready" for mes-edge is READY=1 on its sd_notify socket (what systemd waits for); for every
//! tool, the first message at the collector is given too (mes-edge: the device's `online`
//! event; peers: the first values).

use crate::collector::Collector;
use crate::ctx::{Ctx, Tool};
use crate::harness::{layout, load_spec, start_tool, topic_filter, LoadServer};
use crate::load_server::{unix_ns, Mode};
use crate::procs::Broker;
use crate::procstat::{CpuWindow, RssSampler};
use crate::report::{Cell, Figure, Table, Target};
use crate::residency::{residency, Residency};
use crate::workload::Workload;
use anyhow::Result;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

pub const LAYOUT: &str = "u16x20,u32x15,f32x15";
const POLL_MS: u64 = 100;

#[derive(Debug, Clone)]
pub struct Result5 {
    /// The first start (which creates the store), then the measured one.
    pub first_ready_ms: Option<f64>,
    pub ready_ms: Option<f64>,
    pub first_message_ms: f64,
    pub cpu: f64,
    pub rss: f64,
    pub anon: f64,
    pub pss: f64,
    /// Where RSS lies at the window's end.
    pub residency: Residency,
}

fn du_bytes(path: &Path) -> Option<u64> {
    let out = std::process::Command::new("du")
        .arg("-sb")
        .arg(path)
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Milliseconds from the process's start to READY=1 on the notify socket.
fn wait_ready(sock: &UnixDatagram, p: &crate::procs::Proc) -> Option<f64> {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            if String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == "READY=1")
            {
                return Some(p.started.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    None
}

pub fn run_tool(ctx: &Ctx, tool: Tool, run: usize) -> Result<Result5> {
    let d = ctx.durations;
    let dir = ctx.sub(&format!("s5/{}/run{}", tool.name(), run + 1))?;
    let mut broker = Broker::new(&dir, false)?;
    broker.start()?;
    let server = LoadServer::start(ctx, &dir, &load_spec(1, LAYOUT, Mode::Static))?;
    let l = layout(LAYOUT);
    let w = Workload {
        ports: &server.ports,
        layout: &l,
        poll_ms: POLL_MS,
        good: Some(0),
        scrap: None,
        publish: false,
    };
    let sock_path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&sock_path);
    let sock = UnixDatagram::bind(&sock_path)?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    let notify = (tool == Tool::MesEdge).then_some(sock_path.as_path());
    // mes-edge's first start creates its store (a few fsyncs); what systemd waits for at every
    // later start, a restart among them, is the start with the store in place.
    let first_ready_ms = if tool == Tool::MesEdge {
        let mut p = start_tool(ctx, tool, &dir, &w, broker.port, notify)?;
        let ready = wait_ready(&sock, &p);
        p.stop(Duration::from_secs(10));
        ready
    } else {
        None
    };
    let collector = Collector::start(broker.port, topic_filter(tool), None);
    collector.wait_subscribed(Duration::from_secs(10))?;
    let t_spawn = unix_ns();
    let mut p = start_tool(ctx, tool, &dir, &w, broker.port, notify)?;
    let ready_ms = if tool == Tool::MesEdge {
        wait_ready(&sock, &p)
    } else {
        None
    };
    crate::harness::wait_for(Duration::from_secs(30), || collector.len() > 0);
    let first = collector
        .snapshot_first()
        .map(|r| (r.recv_ns - t_spawn) as f64 / 1e6)
        .unwrap_or(f64::NAN);
    std::thread::sleep(Duration::from_secs_f64(d.s5_settle));
    anyhow::ensure!(
        p.running(),
        "{} ended; see {}",
        tool.name(),
        p.log.display()
    );
    let cpu = CpuWindow::start(p.pid());
    let rss = RssSampler::start(p.pid(), Duration::from_millis(500));
    std::thread::sleep(Duration::from_secs_f64(d.s5_seconds));
    let cpu = cpu.percent();
    let rss = rss.finish();
    let residency = residency(p.pid()).unwrap_or_default();
    p.stop(Duration::from_secs(10));
    Ok(Result5 {
        first_ready_ms,
        ready_ms,
        first_message_ms: first,
        cpu,
        rss: rss.max(),
        anon: rss.anon_max,
        pss: rss.pss_max,
        residency,
    })
}

pub fn run(ctx: &Ctx, table: &mut Table) -> Result<()> {
    let d = ctx.durations;
    table.results.scenarios.insert(
        "S5".into(),
        format!(
            "one Modbus device, 50 tags (20 u16, 15 u32, 15 f32) polled every {POLL_MS} ms, nothing changing; {} s to settle, {} s measured",
            d.s5_settle, d.s5_seconds
        ),
    );
    let mut results = Vec::new();
    for tool in ctx.tools()? {
        println!(
            "S5 footprint, 50 tags at {POLL_MS} ms, idle: {}",
            tool.name()
        );
        let r = run_tool(ctx, tool, table.run);
        match &r {
            Ok(r) => println!(
                "  ready {} ms; first message {:.0} ms; CPU {:.2}%; RSS {:.1} MB (anon {:.1}, PSS {:.1}; at the end: file-backed {:.2}, of it the executable {:.2}, private dirty {:.2}; {} threads)",
                r.ready_ms.map_or("-".into(), |v| format!("{v:.1}")),
                r.first_message_ms,
                r.cpu,
                r.rss,
                r.anon,
                r.pss,
                r.residency.file,
                r.residency.exe,
                r.residency.private_dirty,
                r.residency.threads
            ),
            Err(e) => println!("  failed: {e:#}"),
        }
        results.push((tool, r));
    }
    let get = |tool: Tool, f: &dyn Fn(&Result5) -> f64| -> Cell {
        match results.iter().find(|(t, _)| *t == tool) {
            Some((_, Ok(r))) => Cell::Value(f(r)),
            Some((_, Err(e))) => Cell::Text(format!("failed: {e}")),
            None => Cell::na("not run"),
        }
    };
    let me = results
        .iter()
        .find_map(|(t, r)| (*t == Tool::MesEdge).then_some(r.as_ref().ok()).flatten())
        .cloned();

    let mb = |b: Option<u64>| b.map_or(Cell::na("-"), |b| Cell::Value(b as f64 / 1e6));
    let bin = std::fs::metadata(&ctx.mes_edge_bin).ok().map(|m| m.len());
    let node = ctx
        .node_red
        .as_ref()
        .and_then(|p| du_bytes(&p.join("node_modules")));
    let venv = ctx
        .python
        .as_ref()
        .and_then(|p| p.parent()?.parent().map(|v| v.to_path_buf()))
        .and_then(|v| du_bytes(&v));
    let fig = |key, name, unit, digits, mes_edge, python, node_red| Figure {
        scenario: "S5",
        key,
        name,
        unit,
        digits,
        mes_edge,
        python,
        node_red,
        less_is_better: true,
        target: None,
    };
    table.add(
        fig(
            "s5.binary",
            "the shipped binary (stripped)",
            "MB",
            1,
            mb(bin),
            Cell::na("-"),
            Cell::na("-"),
        )
        .target(Target::AtMost { value: 12.0 }),
    );
    table.add(fig(
        "s5.install",
        "size on disk (binary / the venv / node_modules, without the interpreter)",
        "MB",
        1,
        mb(bin),
        mb(venv),
        mb(node),
    ));
    let ready = |f: fn(&Result5) -> Option<f64>| {
        me.as_ref()
            .and_then(f)
            .map_or(Cell::na("no READY"), Cell::Value)
    };
    table.add(
        fig(
            "s5.ready",
            "start -> ready (READY=1 on the sd_notify socket), store in place",
            "ms",
            1,
            ready(|m| m.ready_ms),
            Cell::na("-"),
            Cell::na("-"),
        )
        .target(Target::Below { value: 50.0 }),
    );
    table.add(fig(
        "s5.first_ready",
        "start -> ready, first start (creates the store)",
        "ms",
        1,
        ready(|m| m.first_ready_ms),
        Cell::na("-"),
        Cell::na("-"),
    ));
    table.add(fig(
        "s5.first_message",
        "start -> first message at the collector",
        "ms",
        0,
        get(Tool::MesEdge, &|r| r.first_message_ms),
        get(Tool::Python, &|r| r.first_message_ms),
        get(Tool::NodeRed, &|r| r.first_message_ms),
    ));
    table.add(
        fig(
            "s5.rss",
            "RSS idle (most over the window)",
            "MB",
            1,
            get(Tool::MesEdge, &|r| r.rss),
            get(Tool::Python, &|r| r.rss),
            get(Tool::NodeRed, &|r| r.rss),
        )
        .target(Target::Below { value: 7.0 }),
    );
    table.add(fig(
        "s5.anon",
        "anonymous RSS idle (most)",
        "MB",
        1,
        get(Tool::MesEdge, &|r| r.anon),
        get(Tool::Python, &|r| r.anon),
        get(Tool::NodeRed, &|r| r.anon),
    ));
    table.add(fig(
        "s5.pss",
        "PSS idle (most)",
        "MB",
        1,
        get(Tool::MesEdge, &|r| r.pss),
        get(Tool::Python, &|r| r.pss),
        get(Tool::NodeRed, &|r| r.pss),
    ));
    // Where idle RSS lies at the window's end (see residency.rs).
    type SplitRow<'a, N> = (&'a str, &'a str, &'a str, N, fn(&Residency) -> f64);
    let split: [SplitRow<_>; 4] = [
        (
            "s5.file",
            "file-backed RSS idle, at the window's end (pages of the executable and libraries)",
            "MB",
            2,
            |r| r.file,
        ),
        (
            "s5.exe",
            "of it, the executable's own file (mes-edge / python / node)",
            "MB",
            2,
            |r| r.exe,
        ),
        (
            "s5.private_dirty",
            "private dirty idle, at the window's end (heap, stacks, relocated data)",
            "MB",
            2,
            |r| r.private_dirty,
        ),
        ("s5.threads", "threads idle", "threads", 0, |r| {
            r.threads as f64
        }),
    ];
    for (key, name, unit, digits, of) in split {
        table.add(fig(
            key,
            name,
            unit,
            digits,
            get(Tool::MesEdge, &|r| of(&r.residency)),
            get(Tool::Python, &|r| of(&r.residency)),
            get(Tool::NodeRed, &|r| of(&r.residency)),
        ));
    }
    table.add(fig(
        "s5.cpu",
        "CPU idle",
        "% of one core",
        2,
        get(Tool::MesEdge, &|r| r.cpu),
        get(Tool::Python, &|r| r.cpu),
        get(Tool::NodeRed, &|r| r.cpu),
    ));
    let tag_reads = 50.0 * 1000.0 / POLL_MS as f64;
    table.add(fig(
        "s5.cpu_per_tag",
        "CPU per tag read, idle",
        "µs",
        3,
        get(Tool::MesEdge, &|r| r.cpu / 100.0 * 1e6 / tag_reads),
        get(Tool::Python, &|r| r.cpu / 100.0 * 1e6 / tag_reads),
        get(Tool::NodeRed, &|r| r.cpu / 100.0 * 1e6 / tag_reads),
    ));
    Ok(())
}
