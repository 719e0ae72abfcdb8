//! S1, the pipeline: part counts from the embedded driver of `mes-edge-bench pipeline`, each
//! committed with synchronous = "full" and forwarded with QoS 1 to Mosquitto, counted by the
//! collector. Four measurements: the committed intake flat out; the broker's ceiling (a
//! batching publisher, `ceiling.rs`); the steady-state delivery, the highest fixed input rate
//! held without a growing backlog (`s1_steady.rs`), as a share of that ceiling; and the latency
//! from an event's timestamp to the collector at 1,000 events/s.

use crate::collector::check_sequence;
use crate::ctx::Ctx;
use crate::harness::wait_for;
use crate::load_server::unix_ns;
use crate::pipeline::Load;
use crate::procstat::{CpuWindow, RssSampler};
use crate::report::{Figure, Table, Target};
use crate::s1_rig::{committed, part_counts, rig, Rig, Run};
use crate::s1_steady;
use crate::stats::spread;
use anyhow::{Context, Result};
use std::path::Path;
use std::time::{Duration, Instant};

/// Flat out for `load.seconds`: how fast events are committed while the forwarder delivers.
/// Delivery is not waited for (the steady-state search measures it).
pub fn intake(ctx: &Ctx, dir: &Path, load: Load) -> Result<Run> {
    let Rig {
        broker,
        collector: _collector,
        mut p,
        db,
    } = rig(ctx, dir, load)?;
    p.send_line("go")?;
    let t0: i64 = p.wait_line("START", Duration::from_secs(10))?.parse()?;
    let cpu = [
        CpuWindow::start(p.pid()),
        CpuWindow::start(broker.pid().context("no broker")?),
    ];
    let rss = RssSampler::start(p.pid(), Duration::from_millis(250));
    let line = p.wait_line("GENERATED", Duration::from_secs_f64(load.seconds + 120.0))?;
    let generated: u64 = line.split_whitespace().next().context("count")?.parse()?;
    // The readings still in the driver's channel are committed within moments.
    wait_for(Duration::from_secs(10), || {
        committed(&db).is_some_and(|c| c >= generated)
    });
    let t_done = unix_ns();
    let cpus: Vec<f64> = cpu.iter().map(|c| c.percent()).collect();
    let rss = rss.finish();
    let last = committed(&db).unwrap_or(0);
    anyhow::ensure!(
        p.stop(Duration::from_secs(15)),
        "the runtime did not stop within 15 s of SIGTERM"
    );
    Ok(Run {
        generated,
        // `last` counts the device's online event too: a seq is one event committed.
        intake_per_s: last as f64 / ((t_done - t0) as f64 / 1e9),
        missing: 0,
        duplicates: 0,
        latency_ms: Vec::new(),
        cpu_runtime: cpus[0],
        cpu_broker: cpus[1],
        rss_max: rss.max(),
    })
}

/// At `load.rate`, then everything must arrive: losses and the latency of every event.
pub fn delivered(ctx: &Ctx, dir: &Path, load: Load) -> Result<Run> {
    let Rig {
        broker,
        collector,
        mut p,
        ..
    } = rig(ctx, dir, load)?;
    p.send_line("go")?;
    p.wait_line("START", Duration::from_secs(10))?;
    let cpu = [
        CpuWindow::start(p.pid()),
        CpuWindow::start(broker.pid().context("no broker")?),
    ];
    let rss = RssSampler::start(p.pid(), Duration::from_millis(250));
    let line = p.wait_line("GENERATED", Duration::from_secs_f64(load.seconds + 120.0))?;
    let generated: u64 = line.split_whitespace().next().context("count")?.parse()?;
    // Progress is watched, not a fixed timeout.
    let mut last = (0usize, Instant::now());
    while collector.len_of_kind("part_count") < generated as usize
        && last.1.elapsed() < Duration::from_secs(30)
    {
        let n = collector.len();
        if n != last.0 {
            last = (n, Instant::now());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let cpus: Vec<f64> = cpu.iter().map(|c| c.percent()).collect();
    let rss = rss.finish();
    anyhow::ensure!(
        p.stop(Duration::from_secs(15)),
        "the runtime did not stop within 15 s of SIGTERM"
    );
    let recs = collector.take();
    crate::collector::dump(&dir.join("collector.csv"), &recs)?;
    let last_seq = recs
        .iter()
        .filter_map(|r| r.seq)
        .max()
        .unwrap_or(0)
        .max(generated);
    let (_, missing, duplicates) = check_sequence(&recs, last_seq);
    let latency_ms = part_counts(&recs)
        .filter_map(|r| Some((r.recv_ns - r.ts_ms? * 1_000_000) as f64 / 1e6))
        .collect();
    Ok(Run {
        generated,
        intake_per_s: f64::NAN,
        missing,
        duplicates,
        latency_ms,
        cpu_runtime: cpus[0],
        cpu_broker: cpus[1],
        rss_max: rss.max(),
    })
}

const NONE: &str = "n/a: no durable store";

pub fn run(ctx: &Ctx, table: &mut Table) -> Result<()> {
    let d = ctx.durations;
    let dir = ctx.sub(&format!("s1/run{}", table.run + 1))?;
    table.results.scenarios.insert(
        "S1".into(),
        format!(
            "the pipeline's embedded driver: flat out for {} s (committed intake, synchronous = \"full\"); \
             the broker's ceiling from a batching publisher ({} s, same Mosquitto and collector); \
             a search over fixed input rates ({} s probes, {} s in all) for the highest rate held {} s without a growing backlog; \
             {} s at 1,000 events/s for the latency",
            d.s1_intake_seconds, d.s1_ceiling_seconds, d.s1_probe_seconds, d.s1_search_budget_seconds,
            d.s1_hold_seconds, d.s1_latency_seconds
        ),
    );
    println!("S1 intake: flat out for {} s", d.s1_intake_seconds);
    let tp = intake(
        ctx,
        &dir.join("intake"),
        Load {
            rate: 0,
            count: u64::MAX,
            seconds: d.s1_intake_seconds,
        },
    )?;
    println!(
        "  {} events: committed {:.0}/s; CPU runtime {:.0}%, broker {:.0}%; RSS {:.1} MB",
        tp.generated, tp.intake_per_s, tp.cpu_runtime, tp.cpu_broker, tp.rss_max
    );
    let f = |key, name, unit, v| Figure::mes_edge("S1", key, name, unit, v, NONE);
    table.add(
        f(
            "s1.intake",
            "events committed per second, flat out (synchronous = \"full\")",
            "events/s",
            tp.intake_per_s,
        )
        .more_is_better()
        .target(Target::AtLeast { value: 150_000.0 }),
    );
    table.add(f(
        "s1.intake_cpu",
        "CPU of the runtime at full intake",
        "% of one core",
        tp.cpu_runtime,
    ));
    table.add(f(
        "s1.intake_broker_cpu",
        "CPU of Mosquitto at full intake",
        "% of one core",
        tp.cpu_broker,
    ));
    table.add(
        f(
            "s1.intake_rss",
            "RSS of the runtime at full intake (most)",
            "MB",
            tp.rss_max,
        )
        .digits(1),
    );

    println!(
        "S1 the broker's ceiling: a batching publisher for {} s",
        d.s1_ceiling_seconds
    );
    let c = crate::ceiling::measure(ctx, &dir.join("ceiling"), d.s1_ceiling_seconds)?;
    println!(
        "  {:.0}/s ({} sent), missing {}; CPU publisher {:.0}%, broker {:.0}%, collector {:.0}%",
        c.per_s, c.sent, c.missing, c.cpu_publisher, c.cpu_broker, c.cpu_collector
    );
    table.add(
        f(
            "s1.ceiling",
            "the broker's ceiling: batching publisher to the collector",
            "msg/s",
            c.per_s,
        )
        .more_is_better(),
    );
    table.add(f(
        "s1.ceiling_broker_cpu",
        "CPU of Mosquitto at the ceiling",
        "% of one core",
        c.cpu_broker,
    ));
    table.add(f(
        "s1.ceiling_collector_cpu",
        "CPU of the collector at the ceiling",
        "% of one core",
        c.cpu_collector,
    ));

    let steady = s1_steady::search(ctx, &dir.join("steady"), c.per_s)?;
    table.add(
        f(
            "s1.steady",
            "steady-state delivery: highest fixed input rate held without a growing backlog",
            "events/s",
            steady.rate,
        )
        .more_is_better()
        .target(Target::ShareOf {
            figure: "s1.ceiling".into(),
            share: 0.9,
        }),
    );
    table.add(
        f(
            "s1.steady_delivered",
            "delivered at the collector during that hold",
            "events/s",
            steady.delivered_per_s,
        )
        .more_is_better(),
    );
    table.add(f(
        "s1.steady_cpu",
        "CPU of the runtime during that hold",
        "% of one core",
        steady.cpu_runtime,
    ));
    table.add(f(
        "s1.steady_broker_cpu",
        "CPU of Mosquitto during that hold",
        "% of one core",
        steady.cpu_broker,
    ));

    println!("S1 latency: 1,000 events/s for {} s", d.s1_latency_seconds);
    crate::machine::fsync_figure(ctx, table, "S1", "s1.fsync_p99");
    let lat = delivered(
        ctx,
        &dir.join("latency"),
        Load {
            rate: 1000,
            count: u64::MAX,
            seconds: d.s1_latency_seconds,
        },
    )?;
    let l = spread(lat.latency_ms.clone());
    println!(
        "  {} events, latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; missing {}, duplicates {}",
        l.n, l.p50, l.p99, l.max, lat.missing, lat.duplicates
    );
    table.add(
        f(
            "s1.latency_p50",
            "latency event timestamp -> collector at 1,000/s, p50",
            "ms",
            l.p50,
        )
        .digits(1),
    );
    table.add(
        f(
            "s1.latency_p99",
            "latency event timestamp -> collector at 1,000/s, p99",
            "ms",
            l.p99,
        )
        .digits(1)
        // An event every millisecond, plus the disk's slowest fsyncs, plus 10 ms.
        .target(Target::AtMostFigurePlus {
            figure: "s1.fsync_p99".into(),
            plus: 1.0 + 10.0,
        }),
    );
    table.add(
        f(
            "s1.latency_max",
            "latency event timestamp -> collector at 1,000/s, max",
            "ms",
            l.max,
        )
        .digits(1),
    );
    table.add(
        f(
            "s1.lost",
            "events missing or duplicated at the collector (hold and latency runs)",
            "events",
            (steady.missing + steady.duplicates + lat.missing + lat.duplicates) as f64,
        )
        .target(Target::EveryRunAtMost { value: 0.0 }),
    );
    table.note(format!(
        "S1: intake run {} events; ceiling {} messages sent, {} missing; steady-state search probed {}; latency run {} events. \
         Event timestamps are whole ms, so latencies read up to 1 ms high.",
        tp.generated, c.sent, c.missing, steady.probes, l.n
    ));
    Ok(())
}
