//! S1, pipeline throughput: part counts generated as fast as the runtime takes them (the
//! embedded driver of `mes-edge-bench pipeline`), each committed with synchronous = "full" and
//! forwarded with QoS 1 to Mosquitto; sustained events per second with nothing lost, counted by
//! the collector. Then the same at 1,000 events/s for the latency from an event's timestamp to
//! its arrival at the collector.

use crate::collector::{check_sequence, Collector, Rec};
use crate::harness::{layout, wait_for, Ctx};
use crate::pipeline::Load;
use crate::procs::{free_port, Broker, Proc};
use crate::procstat::{CpuWindow, RssSampler};
use crate::report::{Cell, Figure, Table};
use crate::stats::spread;
use crate::workload::{cell_config, Workload};
use anyhow::{Context, Result};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

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

pub struct Run {
    pub generated: u64,
    pub intake_per_s: f64,
    pub delivered_per_s: f64,
    pub missing: u64,
    pub duplicates: u64,
    pub latency_ms: Vec<f64>,
    pub cpu_runtime: f64,
    pub cpu_broker: f64,
    pub cpu_collector: f64,
    pub rss_max: f64,
    pub seconds: f64,
}

fn part_counts(recs: &[Rec]) -> impl Iterator<Item = &Rec> {
    recs.iter()
        .filter(|r| r.kind.as_deref() == Some("part_count"))
}

pub fn run_once(ctx: &Ctx, dir: &Path, load: Load, inflight: Option<u16>) -> Result<Run> {
    std::fs::create_dir_all(dir)?;
    // A broker of its own per run: no retained status or queued message from another run.
    let mut broker = Broker::new(dir, false)?;
    broker.start()?;
    let collector = Collector::start(broker.port, EVENTS, None);
    collector.wait_subscribed(Duration::from_secs(10))?;
    let config = write_config_with(dir, broker.port, inflight)?;
    let mut p = spawn_pipeline(ctx, dir, &config, load)?;
    // Generation starts once the forwarder is connected (its retained `online` arrived).
    anyhow::ensure!(
        wait_for(Duration::from_secs(20), || collector
            .snapshot_tail()
            .is_some_and(|r| r.tag.as_deref() == Some("online"))),
        "the runtime did not connect to the broker; see {}",
        p.log.display()
    );
    p.send_line("go")?;
    let t0: i64 = p.wait_line("START", Duration::from_secs(10))?.parse()?;
    let cpu = [
        CpuWindow::start(p.pid()),
        CpuWindow::start(broker.pid().unwrap()),
        CpuWindow::start(std::process::id()),
    ];
    let start = Instant::now();
    let rss = RssSampler::start(p.pid(), Duration::from_millis(250));
    let generated_line = p.wait_line("GENERATED", Duration::from_secs_f64(load.seconds + 120.0))?;
    let mut f = generated_line.split_whitespace();
    let generated: u64 = f.next().context("count")?.parse()?;
    let t_gen: i64 = f.next().context("time")?.parse()?;
    // Then everything must arrive: progress is watched, not a fixed timeout.
    let mut last = (0usize, Instant::now());
    loop {
        let n = collector.len();
        if collector.len_of_kind("part_count") >= generated as usize {
            break;
        }
        if n != last.0 {
            last = (n, Instant::now());
        }
        if last.1.elapsed() > Duration::from_secs(30) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let cpus: Vec<f64> = cpu.iter().map(|c| c.percent()).collect();
    let seconds = start.elapsed().as_secs_f64();
    let rss = rss.finish();
    anyhow::ensure!(
        p.stop(Duration::from_secs(15)),
        "the runtime did not stop within 15 s of SIGTERM"
    );
    let recs = collector.take();
    crate::collector::dump(&dir.join("collector.csv"), &recs)?;
    let parts: Vec<&Rec> = part_counts(&recs).collect();
    let last_recv = parts.iter().map(|r| r.recv_ns).max().unwrap_or(t0);
    let last_seq = recs
        .iter()
        .filter_map(|r| r.seq)
        .max()
        .unwrap_or(0)
        .max(generated);
    let (_, missing, duplicates) = check_sequence(&recs, last_seq);
    let latency_ms = parts
        .iter()
        .filter_map(|r| Some((r.recv_ns - r.ts_ms? * 1_000_000) as f64 / 1e6))
        .collect();
    Ok(Run {
        generated,
        intake_per_s: generated as f64 / ((t_gen - t0) as f64 / 1e9),
        delivered_per_s: parts.len() as f64 / ((last_recv - t0) as f64 / 1e9),
        missing,
        duplicates,
        latency_ms,
        cpu_runtime: cpus[0],
        cpu_broker: cpus[1],
        cpu_collector: cpus[2],
        rss_max: rss.max(),
        seconds,
    })
}

pub fn run(ctx: &Ctx, table: &mut Table) -> Result<()> {
    let d = ctx.durations;
    let dir = ctx.sub("s1")?;
    println!(
        "S1 throughput: as fast as the runtime takes them for {} s",
        d.s1_seconds
    );
    let tp = run_once(
        ctx,
        &dir.join("throughput"),
        Load {
            rate: 0,
            count: u64::MAX,
            seconds: d.s1_seconds,
        },
        None,
    )?;
    println!(
        "  {} events: taken {:.0}/s, delivered {:.0}/s, missing {}, duplicates {}; CPU runtime {:.0}%, broker {:.0}%, collector {:.0}%",
        tp.generated, tp.intake_per_s, tp.delivered_per_s, tp.missing, tp.duplicates, tp.cpu_runtime, tp.cpu_broker, tp.cpu_collector
    );
    println!("S1 latency: 1,000 events/s for {} s", d.s1_latency_seconds);
    let lat = run_once(
        ctx,
        &dir.join("latency"),
        Load {
            rate: 1000,
            count: u64::MAX,
            seconds: d.s1_latency_seconds,
        },
        None,
    )?;
    println!(
        "S1 throughput with [mqtt] inflight = 1000, {} s",
        d.s1_seconds
    );
    let wide = run_once(
        ctx,
        &dir.join("throughput-inflight-1000"),
        Load {
            rate: 0,
            count: u64::MAX,
            seconds: d.s1_seconds,
        },
        Some(1000),
    )?;
    println!(
        "  {} events: taken {:.0}/s, delivered {:.0}/s, missing {}; CPU runtime {:.0}%, broker {:.0}%, collector {:.0}%",
        wide.generated, wide.intake_per_s, wide.delivered_per_s, wide.missing, wide.cpu_runtime, wide.cpu_broker, wide.cpu_collector
    );
    let n = (d.s1_seconds * 20_000.0) as u64;
    println!("S1 the broker's ceiling: {n} event-sized QoS 1 messages from a bare rumqttc publisher, inflight 1000");
    let ceiling = crate::ceiling::measure(ctx, &dir.join("ceiling"), n, 1000)?;
    println!(
        "  {:.0}/s, missing {}; CPU publisher {:.0}%, broker {:.0}%, collector {:.0}%",
        ceiling.per_s,
        ceiling.missing,
        ceiling.cpu_publisher,
        ceiling.cpu_broker,
        ceiling.cpu_collector
    );
    let l = spread(lat.latency_ms.clone());
    println!(
        "  {} events, latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; missing {}",
        l.n, l.p50, l.p99, l.max, lat.missing
    );

    let none = || Cell::na("n/a: no durable store");
    let ok = tp.missing == 0 && tp.delivered_per_s >= 50_000.0;
    table.add(Figure {
        scenario: "S1",
        name: "events/s sustained, committed (sync FULL) and PUBACKed, nothing lost",
        digits: 0,
        mes_edge: Cell::Value(tp.delivered_per_s),
        python: none(),
        node_red: none(),
        less_is_better: false,
        target: Some((">= 50,000/s", ok)),
    });
    table.add(Figure {
        scenario: "S1",
        name: "the same with [mqtt] inflight = 1000 (default 100)",
        digits: 0,
        mes_edge: Cell::Value(wide.delivered_per_s),
        python: none(),
        node_red: none(),
        less_is_better: false,
        target: None,
    });
    table.add(Figure {
        scenario: "S1",
        name: "the broker's ceiling: bare rumqttc publisher, same collector, msg/s",
        digits: 0,
        mes_edge: Cell::Value(ceiling.per_s),
        python: none(),
        node_red: none(),
        less_is_better: false,
        target: None,
    });
    table.add(Figure {
        scenario: "S1",
        name: "events/s taken in and committed by the engine",
        digits: 0,
        mes_edge: Cell::Value(tp.intake_per_s),
        python: none(),
        node_red: none(),
        less_is_better: false,
        target: None,
    });
    table.add(Figure {
        scenario: "S1",
        name: "events missing / duplicated at the collector",
        digits: 0,
        mes_edge: Cell::Text(format!(
            "{} / {} of {}",
            tp.missing, tp.duplicates, tp.generated
        )),
        python: none(),
        node_red: none(),
        less_is_better: true,
        target: Some(("0 missing", tp.missing == 0)),
    });
    table.add(Figure {
        scenario: "S1",
        name:
            "CPU % of one core at full load: runtime / Mosquitto / collector; runtime RSS max MiB",
        digits: 0,
        mes_edge: Cell::Text(format!(
            "{:.0} / {:.0} / {:.0}; {:.1}",
            tp.cpu_runtime, tp.cpu_broker, tp.cpu_collector, tp.rss_max
        )),
        python: none(),
        node_red: none(),
        less_is_better: true,
        target: None,
    });
    table.add(Figure {
        scenario: "S1",
        name: "latency event ts -> collector at 1,000/s, p50 / p99 / max ms",
        digits: 1,
        mes_edge: Cell::Text(format!("{:.1} / {:.1} / {:.1}", l.p50, l.p99, l.max)),
        python: none(),
        node_red: none(),
        less_is_better: true,
        target: None,
    });
    table.note(format!(
        "S1: {} events in {:.0} s at full load; latency run {} events, {} missing. Event timestamps are whole ms, so latencies read up to 1 ms high.",
        tp.generated, tp.seconds, l.n, lat.missing
    ));
    Ok(())
}
