//! S1's rig: the cell config of S1 and S3, the pipeline process, and a broker with the
//! collector connected to it, shared by the intake, the steady-state search and the ceiling.

use crate::collector::{Collector, Rec};
use crate::ctx::Ctx;
use crate::harness::{layout, wait_for};
use crate::pipeline::Load;
use crate::procs::{free_port, Broker, Proc};
use crate::workload::{cell_config, Workload};
use anyhow::Result;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

pub const EVENTS: &str = "mes/bench/site/area/line/cell/#";

/// The cell of S1 and S3: one device whose only tag is the good-part counter. The device is
/// never polled: the embedded driver stands in for it.
pub fn write_config(dir: &Path, broker_port: u16) -> Result<std::path::PathBuf> {
    write_config_with(dir, broker_port, None)
}

/// With `[mqtt] inflight` set (None: the default, 100).
pub fn write_config_with(
    dir: &Path,
    broker_port: u16,
    inflight: Option<u16>,
) -> Result<std::path::PathBuf> {
    let l = layout("u32x1");
    let w = Workload {
        ports: &[1],
        layout: &l,
        poll_ms: 1000,
        good: Some(0),
        scrap: None,
        publish: false,
    };
    let path = dir.join("cell.toml");
    let mut text = cell_config(
        &w,
        &dir.join("store/cell.db"),
        &format!("mqtt://127.0.0.1:{broker_port}"),
        free_port(),
    );
    if let Some(n) = inflight {
        text = text.replace("[mqtt]\n", &format!("[mqtt]\ninflight = {n}\n"));
    }
    std::fs::write(&path, text)?;
    Ok(path)
}

pub fn spawn_pipeline(ctx: &Ctx, dir: &Path, config: &Path, load: Load) -> Result<Proc> {
    let mut cmd = Command::new(&ctx.bench_bin);
    cmd.arg("pipeline")
        .arg("--config")
        .arg(config)
        .arg("--rate")
        .arg(load.rate.to_string())
        .arg("--count")
        .arg(load.count.to_string())
        .arg("--seconds")
        .arg(load.seconds.to_string())
        .env("RUST_LOG", "warn");
    Proc::spawn("pipeline", cmd, dir, true)
}

/// What one pipeline run measured.
pub struct Run {
    pub generated: u64,
    /// Events committed per second, START to the last one committed.
    pub intake_per_s: f64,
    pub missing: u64,
    pub duplicates: u64,
    pub latency_ms: Vec<f64>,
    pub cpu_runtime: f64,
    pub cpu_broker: f64,
    pub rss_max: f64,
}

pub fn part_counts(recs: &[Rec]) -> impl Iterator<Item = &Rec> {
    recs.iter()
        .filter(|r| r.kind.as_deref() == Some("part_count"))
}

/// The last seq committed in the store (read-only, beside the running cell).
pub fn committed(db: &Path) -> Option<u64> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    conn.busy_timeout(Duration::from_secs(1)).ok()?;
    conn.query_row("SELECT last_seq FROM cell_state WHERE id = 1", [], |r| {
        r.get::<_, i64>(0)
    })
    .ok()
    .map(|v| v as u64)
}

/// A broker, the collector and the pipeline, connected and waiting for `go`.
pub struct Rig {
    pub broker: Broker,
    pub collector: Collector,
    pub p: Proc,
    pub db: std::path::PathBuf,
}

pub fn rig(ctx: &Ctx, dir: &Path, load: Load) -> Result<Rig> {
    std::fs::create_dir_all(dir)?;
    // A broker of its own per run: no retained status or queued message from another run.
    let mut broker = Broker::new(dir, false)?;
    broker.start()?;
    let collector = Collector::start(broker.port, EVENTS, None);
    collector.wait_subscribed(Duration::from_secs(10))?;
    let config = write_config(dir, broker.port)?;
    let p = spawn_pipeline(ctx, dir, &config, load)?;
    // Generation starts once the forwarder is connected (its retained `online` arrived). Not
    // "the last message is `online`": the store's announcement follows it at once, and only
    // Nagle's delay on the runtime's socket (now off) used to leave a window to see it last.
    anyhow::ensure!(
        wait_for(Duration::from_secs(20), || collector
            .saw(|r| r.tag.as_deref() == Some("online"))),
        "the runtime did not connect to the broker; see {}",
        p.log.display()
    );
    Ok(Rig {
        broker,
        collector,
        p,
        db: dir.join("store/cell.db"),
    })
}
