//! S2, polling load: 10 Modbus TCP devices (the load server, a separate process) with 1,000
//! holding registers each, read as 500 tags (200 u16, 150 u32, 150 f32) per device every
//! 100 ms while values change (1% of each device's tags every 100 ms, so each tag changes every
//! 10 s: 500 changes/s in all). Achieved poll rate and jitter as the devices see them, CPU per
//! cent of one core and RSS of each tool.
//!
//! What each tool publishes differs by design: the peers publish every change (500/s); mes-edge
//! publishes the production events the cell derives (here the part counts of d0_t0, which
//! steps every 10 s).

use crate::collector::Collector;
use crate::harness::{layout, load_spec, start_tool, topic_filter, Ctx, LoadServer, Tool};
use crate::load_server::Mode;
use crate::procs::Broker;
use crate::procstat::{CpuWindow, RssSampler};
use crate::report::{Cell, Figure, Table};
use crate::stats::{deviation, mean, spread};
use crate::workload::Workload;
use anyhow::Result;
use std::time::Duration;

pub const LAYOUT: &str = "u16x200,u32x150,f32x150";
pub const DEVICES: usize = 10;
pub const POLL_MS: u64 = 100;

#[derive(Debug, Clone)]
pub struct Result2 {
    pub polls_per_s: f64,
    pub polls_per_s_min: f64,
    pub interval_p50: f64,
    pub interval_p99: f64,
    pub interval_max: f64,
    pub jitter_sd: f64,
    pub cpu: f64,
    pub rss: f64,
    pub rss_max: f64,
    pub messages_per_s: f64,
}

pub fn run_tool(ctx: &Ctx, tool: Tool) -> Result<Result2> {
    let d = ctx.durations;
    let dir = ctx.sub(&format!("s2/{}", tool.name()))?;
    let mut broker = Broker::new(&dir, false)?;
    broker.start()?;
    let spec = load_spec(
        DEVICES,
        LAYOUT,
        Mode::Drift {
            tick_ms: POLL_MS,
            per_tick: 5,
        },
    );
    let mut server = LoadServer::start(ctx, &dir, &spec)?;
    let l = layout(LAYOUT);
    let w = Workload {
        ports: &server.ports,
        layout: &l,
        poll_ms: POLL_MS,
        good: Some(0),
        scrap: None,
    };
    let collector = Collector::start(broker.port, topic_filter(tool), None);
    collector.wait_subscribed(Duration::from_secs(10))?;
    let mut p = start_tool(ctx, tool, &dir, &w, broker.port, None)?;
    std::thread::sleep(Duration::from_secs_f64(d.s2_warmup));
    anyhow::ensure!(
        p.running(),
        "{} ended during warm-up; see {}",
        tool.name(),
        p.log.display()
    );
    server.reset()?;
    let cpu = CpuWindow::start(p.pid());
    let rss = RssSampler::start(p.pid(), Duration::from_millis(500));
    let m0 = collector.len();
    std::thread::sleep(Duration::from_secs_f64(d.s2_seconds));
    let cpu = cpu.percent();
    let messages = collector.len() - m0;
    let report = server.report()?;
    let rss = rss.finish();
    anyhow::ensure!(
        p.running(),
        "{} ended during the run; see {}",
        tool.name(),
        p.log.display()
    );
    p.stop(Duration::from_secs(10));
    let rates: Vec<f64> = report.iter().map(|r| r.cycles as f64 / r.seconds).collect();
    let intervals: Vec<f64> = report
        .iter()
        .flat_map(|r| r.intervals_ms.iter().copied())
        .collect();
    let s = spread(intervals.clone());
    Ok(Result2 {
        polls_per_s: mean(&rates),
        polls_per_s_min: rates.iter().copied().fold(f64::INFINITY, f64::min),
        interval_p50: s.p50,
        interval_p99: s.p99,
        interval_max: s.max,
        jitter_sd: deviation(&intervals, POLL_MS as f64),
        cpu,
        rss: rss.last(),
        rss_max: rss.max(),
        messages_per_s: messages as f64 / d.s2_seconds,
    })
}

pub fn run(ctx: &Ctx, table: &mut Table) -> Result<()> {
    let mut results: Vec<(Tool, Result<Result2>)> = Vec::new();
    for tool in ctx.tools()? {
        println!(
            "S2 polling: {} ({DEVICES} devices x 500 tags every {POLL_MS} ms)",
            tool.name()
        );
        let r = run_tool(ctx, tool);
        match &r {
            Ok(r) => println!(
                "  {:.2} polls/s per device (min {:.2}); interval p50 {:.1} / p99 {:.1} / max {:.1} ms, sd {:.1} ms; CPU {:.1}%; RSS {:.1} MiB (max {:.1}); {:.0} msg/s",
                r.polls_per_s, r.polls_per_s_min, r.interval_p50, r.interval_p99, r.interval_max, r.jitter_sd, r.cpu, r.rss, r.rss_max, r.messages_per_s
            ),
            Err(e) => println!("  failed: {e:#}"),
        }
        results.push((tool, r));
    }
    let get = |tool: Tool, f: &dyn Fn(&Result2) -> f64| -> Cell {
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
    let tags = (DEVICES * 500) as f64;
    // Tag reads per second if every poll is made: what "per tag" is measured against.
    let tag_reads = tags * 1000.0 / POLL_MS as f64;
    let rows: [(
        &str,
        usize,
        &dyn Fn(&Result2) -> f64,
        bool,
        Option<(&str, bool)>,
    ); 8] = [
        (
            "polls/s per device (10 = every poll made)",
            2,
            &|r| r.polls_per_s,
            false,
            None,
        ),
        ("poll interval p99, ms", 1, &|r| r.interval_p99, true, None),
        ("poll interval max, ms", 1, &|r| r.interval_max, true, None),
        (
            "jitter: sd of the interval around 100 ms, ms",
            1,
            &|r| r.jitter_sd,
            true,
            None,
        ),
        (
            "CPU % of one core",
            1,
            &|r| r.cpu,
            true,
            Some(("<= 5%", me.as_ref().is_some_and(|m| m.cpu <= 5.0))),
        ),
        (
            "CPU us per tag read (CPU per tag)",
            3,
            &|r| r.cpu / 100.0 * 1e6 / tag_reads,
            true,
            None,
        ),
        (
            "RSS MiB (max over the run)",
            1,
            &|r| r.rss_max,
            true,
            Some((
                "<= 30 MB",
                me.as_ref().is_some_and(|m| m.rss_max * 1.048576 <= 30.0),
            )),
        ),
        (
            "MQTT messages/s published",
            0,
            &|r| r.messages_per_s,
            true,
            None,
        ),
    ];
    for (name, digits, f, less, target) in rows {
        let mut fig = Figure {
            scenario: "S2",
            name,
            digits,
            mes_edge: get(Tool::MesEdge, f),
            python: get(Tool::Python, f),
            node_red: get(Tool::NodeRed, f),
            less_is_better: less,
            target,
        };
        if name.starts_with("CPU us per") {
            fig.target = Some(("peers >= 10x", ratio_ok(&fig)));
        }
        table.add(fig);
    }
    Ok(())
}

/// Both peers at least ten times mes-edge's figure (a peer that was not run does not count).
pub fn ratio_ok(f: &Figure) -> bool {
    let v = |c: &Cell| match c {
        Cell::Value(v) if v.is_finite() => Some(*v),
        _ => None,
    };
    match v(&f.mes_edge) {
        Some(m) if m > 0.0 => [&f.python, &f.node_red]
            .iter()
            .all(|c| v(c).is_some_and(|p| p / m >= 10.0)),
        _ => false,
    }
}
