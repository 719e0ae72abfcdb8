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
use crate::ctx::{Ctx, Tool};
use crate::harness::{layout, load_spec, start_tool, topic_filter, LoadServer};
use crate::load_server::{DeviceReport, Mode};
use crate::procs::{Broker, Proc};
use crate::procstat::{thread_cpu, CpuWindow, RssSampler, RssTrace};
use crate::report::{Cell, Figure, Table, Target};
use crate::stats::{deviation, mean, spread};
use crate::workload::Workload;
use anyhow::Result;
use std::time::Duration;

pub const LAYOUT: &str = "u16x200,u32x150,f32x150";
pub const DEVICES: usize = 10;
pub const POLL_MS: u64 = 100;
/// The name of mes-edge's store thread (src/store/owner.rs), whose CPU S2 shows apart.
const STORE_THREAD: &str = "store-owner";

#[derive(Debug, Clone)]
pub struct Result2 {
    /// Polls per second as every tag saw them: per device, the reads of its least-read tag
    /// register; the mean and the least over the devices.
    pub polls_per_s: f64,
    pub polls_per_s_min: f64,
    /// Read requests per poll (the first block's reads), mean over the devices.
    pub requests_per_poll: f64,
    pub interval_p50: f64,
    pub interval_p99: f64,
    pub interval_max: f64,
    pub jitter_sd: f64,
    pub cpu: f64,
    /// Of `cpu`, what the kernel spent on the tool's behalf (system time).
    pub cpu_system: f64,
    /// Of `cpu`, mes-edge's store thread (its commits and their fsyncs); None for a tool
    /// without one.
    pub cpu_store: Option<f64>,
    pub rss: f64,
    pub rss_max: f64,
    pub anon_max: f64,
    pub pss_max: f64,
    pub messages_per_s: f64,
}

impl Result2 {
    /// CPU time per tag read, µs: the tool's CPU over the reads of `tags` tags at its poll rate.
    pub fn cpu_per_tag(&self, tags: usize) -> f64 {
        self.per_tag(self.cpu, tags)
    }

    /// System time per tag read, µs: the part of [`Result2::cpu_per_tag`] spent in the kernel.
    pub fn cpu_system_per_tag(&self, tags: usize) -> f64 {
        self.per_tag(self.cpu_system, tags)
    }

    fn per_tag(&self, percent: f64, tags: usize) -> f64 {
        percent / 100.0 * 1e6 / (tags as f64 * self.polls_per_s)
    }
}

/// A tool's figure from its result, or why there is none.
pub fn cell(results: &[(Tool, Result<Result2>)], tool: Tool, f: &dyn Fn(&Result2) -> f64) -> Cell {
    match results.iter().find(|(t, _)| *t == tool) {
        Some((_, Ok(r))) => Cell::Value(f(r)),
        Some((_, Err(e))) => Cell::Text(format!("failed: {e}")),
        None => Cell::na("not run"),
    }
}

/// One figure of a tool's result.
pub type Of<'a> = &'a dyn Fn(&Result2) -> f64;

/// key, name, unit, digits, the figure, less is better, target.
pub type Row<'a> = (
    &'a str,
    &'a str,
    &'a str,
    usize,
    Of<'a>,
    bool,
    Option<Target>,
);

/// Each row as a figure of mes-edge and the Python poller; `node_red` gives Node-RED's cell.
pub fn add_rows<'a>(
    table: &mut Table,
    scenario: &'static str,
    rows: impl IntoIterator<Item = Row<'a>>,
    results: &[(Tool, Result<Result2>)],
    node_red: &dyn Fn(Of) -> Cell,
) {
    for (key, name, unit, digits, f, less, target) in rows {
        table.add(Figure {
            scenario,
            key,
            name,
            unit,
            digits,
            mes_edge: cell(results, Tool::MesEdge, f),
            python: cell(results, Tool::Python, f),
            node_red: node_red(f),
            less_is_better: less,
            target,
        });
    }
}

/// `publish`: mes-edge publishes every tag as a process value by exception.
pub fn run_tool(ctx: &Ctx, tool: Tool, run: usize, publish: bool) -> Result<Result2> {
    let name = if publish {
        "mes-edge-publishing"
    } else {
        tool.name()
    };
    let dir = ctx.sub(&format!("s2/{name}"))?;
    let dir = dir.join(format!("run{}", run + 1));
    std::fs::create_dir_all(&dir)?;
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
        publish,
    };
    // With publishing, the value batches are counted too (they have a topic of their own).
    let filter = if publish {
        "mes/bench/site/area/line/cell/#"
    } else {
        topic_filter(tool)
    };
    let collector = Collector::start(broker.port, filter, None);
    collector.wait_subscribed(Duration::from_secs(10))?;
    let mut p = start_tool(ctx, tool, &dir, &w, broker.port, None)?;
    measure(
        ctx,
        tool,
        &mut p,
        &collector,
        std::slice::from_mut(&mut server),
    )
}

/// The warm-up, then the measured window of `tool` (process `p`) polling the load servers:
/// their counts cleared, the tool's CPU, memory and messages taken over the window, and what
/// every server saw of it. S9 (S7, a server per device) measures the same way.
pub fn measure(
    ctx: &Ctx,
    tool: Tool,
    p: &mut Proc,
    collector: &Collector,
    servers: &mut [LoadServer],
) -> Result<Result2> {
    let d = ctx.durations;
    std::thread::sleep(Duration::from_secs_f64(d.s2_warmup));
    anyhow::ensure!(
        p.running(),
        "{} ended during warm-up; see {}",
        tool.name(),
        p.log.display()
    );
    for s in servers.iter_mut() {
        s.reset()?;
    }
    let cpu = CpuWindow::start(p.pid());
    let store0 = thread_cpu(p.pid(), STORE_THREAD);
    let rss = RssSampler::start(p.pid(), Duration::from_millis(500));
    let m0 = collector.len();
    std::thread::sleep(Duration::from_secs_f64(d.s2_seconds));
    let (cpu, cpu_system) = cpu.percents();
    let cpu_store = store0
        .zip(thread_cpu(p.pid(), STORE_THREAD))
        .map(|(before, after)| 100.0 * (after - before) / d.s2_seconds);
    let messages = collector.len() - m0;
    let mut report = Vec::new();
    for s in servers.iter_mut() {
        report.extend(s.report()?);
    }
    let rss = rss.finish();
    anyhow::ensure!(
        p.running(),
        "{} ended during the run; see {}",
        tool.name(),
        p.log.display()
    );
    p.stop(Duration::from_secs(10));
    let mut r = measured(&report, (cpu, cpu_system), &rss, messages, d.s2_seconds);
    r.cpu_store = cpu_store;
    Ok(r)
}

/// One tool's figures from what the load servers saw of it (`report`, a device each) and what
/// its process used over the measured window (`seconds`; `cpu` in all and of it the kernel's, per
/// cent of one core). S9 (S7) measures the same way.
fn measured(
    report: &[DeviceReport],
    (cpu, cpu_system): (f64, f64),
    rss: &RssTrace,
    messages: usize,
    seconds: f64,
) -> Result2 {
    let rates: Vec<f64> = report
        .iter()
        .map(|r| r.tag_register_reads_min as f64 / r.seconds)
        .collect();
    let requests: Vec<f64> = report
        .iter()
        .map(|r| r.reads as f64 / r.cycles.max(1) as f64)
        .collect();
    let intervals: Vec<f64> = report
        .iter()
        .flat_map(|r| r.intervals_ms.iter().copied())
        .collect();
    let s = spread(intervals.clone());
    Result2 {
        polls_per_s: mean(&rates),
        polls_per_s_min: rates.iter().copied().fold(f64::INFINITY, f64::min),
        requests_per_poll: mean(&requests),
        interval_p50: s.p50,
        interval_p99: s.p99,
        interval_max: s.max,
        jitter_sd: deviation(&intervals, POLL_MS as f64),
        cpu,
        cpu_system,
        cpu_store: None,
        rss: rss.last(),
        rss_max: rss.max(),
        anon_max: rss.anon_max,
        pss_max: rss.pss_max,
        messages_per_s: messages as f64 / seconds,
    }
}

pub fn run(ctx: &Ctx, table: &mut Table) -> Result<()> {
    let d = ctx.durations;
    table.results.scenarios.insert(
        "S2".into(),
        format!(
            "{DEVICES} Modbus TCP devices x 1,000 holding registers, each read as 500 tags (200 u16, 150 u32, 150 f32) every \
             {POLL_MS} ms; the load server changes 5 tags per device every {POLL_MS} ms; {} s warm-up, {} s measured",
            d.s2_warmup, d.s2_seconds
        ),
    );
    let mut results: Vec<(Tool, Result<Result2>)> = Vec::new();
    for tool in ctx.tools()? {
        println!(
            "S2 polling: {} ({DEVICES} devices x 500 tags every {POLL_MS} ms)",
            tool.name()
        );
        let r = run_tool(ctx, tool, table.run, false);
        match &r {
            Ok(r) => println!(
                "  {:.2} polls/s per device (min {:.2}), {:.1} requests per poll; interval p50 {:.1} / p99 {:.1} / max {:.1} ms, sd {:.1} ms; CPU {:.1}%; RSS {:.1} MB (max {:.1}, anon {:.1}, PSS {:.1}); {:.0} msg/s",
                r.polls_per_s, r.polls_per_s_min, r.requests_per_poll, r.interval_p50, r.interval_p99, r.interval_max, r.jitter_sd, r.cpu, r.rss, r.rss_max, r.anon_max, r.pss_max, r.messages_per_s
            ),
            Err(e) => println!("  failed: {e:#}"),
        }
        results.push((tool, r));
    }
    // mes-edge again, every tag published as a process value by exception (issue 15): its CPU
    // beside its CPU without, and beside the peers, which publish every change.
    let publishing = if results.iter().any(|(t, _)| *t == Tool::MesEdge) {
        println!("S2 polling: mes-edge, every tag published as a process value");
        let r = run_tool(ctx, Tool::MesEdge, table.run, true);
        match &r {
            Ok(r) => println!("  CPU {:.1}%; {:.0} msg/s", r.cpu, r.messages_per_s),
            Err(e) => println!("  failed: {e:#}"),
        }
        Some(r)
    } else {
        None
    };
    let get = |tool: Tool, f: &dyn Fn(&Result2) -> f64| cell(&results, tool, f);
    let per_tag = |r: &Result2| r.cpu_per_tag(DEVICES * 500);
    let system_per_tag = |r: &Result2| r.cpu_system_per_tag(DEVICES * 500);
    let rows: [Row; 12] = [
        ("s2.polls", "polls per device as the tags saw them (reads of the least-read tag register; 10 = every poll)", "polls/s", 2, &|r| r.polls_per_s, false, None),
        ("s2.polls_min", "the same, the least-polled device", "polls/s", 2, &|r| r.polls_per_s_min, false, None),
        ("s2.requests", "read requests per poll", "requests", 1, &|r| r.requests_per_poll, true, None),
        ("s2.interval_p99", "poll interval p99", "ms", 1, &|r| r.interval_p99, true, None),
        ("s2.interval_max", "poll interval max", "ms", 1, &|r| r.interval_max, true, None),
        ("s2.jitter", "jitter: SD of the interval around the poll period", "ms", 1, &|r| r.jitter_sd, true, None),
        ("s2.cpu", "CPU", "% of one core", 1, &|r| r.cpu, true, Some(Target::AtMost { value: 5.0 })),
        (
            "s2.cpu_per_tag",
            "CPU per tag read",
            "µs",
            3,
            &per_tag,
            true,
            Some(Target::PeerTimes {
                times: [("python-poller".to_string(), 20.0), ("node-red".to_string(), 50.0)].into(),
            }),
        ),
        (
            "s2.cpu_system_per_tag",
            "of it in the kernel (system time: the sockets' sends, receives and wake-ups)",
            "µs",
            3,
            &system_per_tag,
            true,
            None,
        ),
        ("s2.rss", "RSS (most over the run)", "MB", 1, &|r| r.rss_max, true, Some(Target::AtMost { value: 30.0 })),
        ("s2.anon", "anonymous RSS (most over the run)", "MB", 1, &|r| r.anon_max, true, None),
        ("s2.pss", "PSS (most over the run)", "MB", 1, &|r| r.pss_max, true, None),
    ];
    add_rows(table, "S2", rows, &results, &|f| get(Tool::NodeRed, f));
    table.add(Figure {
        scenario: "S2",
        key: "s2.messages",
        name: "MQTT messages published (mes-edge: part counts; peers: every change)",
        unit: "msg/s",
        digits: 0,
        mes_edge: get(Tool::MesEdge, &|r| r.messages_per_s),
        python: get(Tool::Python, &|r| r.messages_per_s),
        node_red: get(Tool::NodeRed, &|r| r.messages_per_s),
        less_is_better: true,
        target: None,
    });
    // A figure a tool may lack (a None): the store thread's, which the peers do not have.
    type MaybeOf<'a> = &'a dyn Fn(&Result2) -> Option<f64>;
    let of = |r: &Result<Result2>, f: MaybeOf, lacking: &str| -> Cell {
        match r {
            Ok(r) => f(r).map_or_else(|| Cell::na(lacking), Cell::Value),
            Err(e) => Cell::Text(format!("failed: {e}")),
        }
    };
    let with_publishing = |f: MaybeOf| -> Cell {
        match &publishing {
            Some(r) => of(r, f, "no store thread found"),
            None => Cell::na("not run"),
        }
    };
    let peer = |tool: Tool, f: MaybeOf| -> Cell {
        match results.iter().find(|(t, _)| *t == tool) {
            Some((_, r)) => of(r, f, "no durable store"),
            None => Cell::na("not run"),
        }
    };
    for (key, name, unit, digits, f, target) in [
        (
            "s2.cpu_publishing",
            "CPU with every tag published (mes-edge: process values by exception, batched per device and poll; peers: every change)",
            "% of one core",
            1,
            &(|r: &Result2| Some(r.cpu)) as MaybeOf,
            Some(Target::PeerTimes {
                times: [("python-poller".to_string(), 10.0), ("node-red".to_string(), 25.0)].into(),
            }),
        ),
        (
            "s2.cpu_publishing_store",
            "of it, mes-edge's store thread (each value batch committed with its fsync before it is sent, the delivered ones' cursor stored)",
            "% of one core",
            2,
            &|r: &Result2| r.cpu_store,
            None,
        ),
        (
            "s2.messages_publishing",
            "MQTT messages published, the same (mes-edge: value batches and events)",
            "msg/s",
            0,
            &|r: &Result2| Some(r.messages_per_s),
            None,
        ),
    ] {
        table.add(Figure {
            scenario: "S2",
            key,
            name,
            unit,
            digits,
            mes_edge: with_publishing(f),
            python: peer(Tool::Python, f),
            node_red: peer(Tool::NodeRed, f),
            less_is_better: true,
            target,
        });
    }
    Ok(())
}
