//! S9, S2 on Siemens S7: 10 S7 CPUs (python-snap7's server, a process each) with DB1 holding
//! 500 tags each (200 WORD, 150 DWORD, 150 REAL: S2's registers as the same 1,600 bytes), read
//! every 100 ms while 5 tags of each CPU change every 100 ms. mes-edge reads them with its own
//! S7 client (multi-item requests packed to the agreed PDU); the Python poller with
//! python-snap7's client, `db_read` of the whole DB (split by the client into requests the PDU
//! carries) and snap7.util's getters. Measured as S2 is (its windows, its figures), from the
//! CPUs' side: how often every byte of every tag was read, and the interval between reads of
//! the DB's first byte; CPU per tag read is the tool's CPU time over the tag reads made.
//!
//! What each tool publishes is S2's too: the Python poller every change (500/s in all), mes-edge
//! the part counts of d0_t0. Node-RED is not run: its S7 node is not installed.

use crate::collector::Collector;
use crate::ctx::{Ctx, Tool};
use crate::harness::{layout, start_mes_edge, start_python, topic_filter};
use crate::procs::{free_port, Broker, Proc};
use crate::report::{Cell, Table};
use crate::s2_polling::{add_rows, measure, Result2, Row, DEVICES, LAYOUT, POLL_MS};
use crate::s9_rig::{device_config, poller_spec, start_cpus};
use crate::workload::{cell_config_with, Workload};
use anyhow::Result;
use std::time::Duration;

const TAGS: usize = 500;
const CHANGES_PER_TICK: usize = 5;

fn run_tool(ctx: &Ctx, tool: Tool, run: usize) -> Result<(Result2, f64)> {
    let dir = ctx.sub(&format!("s9/{}/run{}", tool.name(), run + 1))?;
    let mut broker = Broker::new(&dir, false)?;
    broker.start()?;
    let l = layout(LAYOUT);
    let mut cpus = start_cpus(ctx, &dir, DEVICES, &l, POLL_MS, CHANGES_PER_TICK)?;
    let ports: Vec<u16> = cpus.iter().map(|c| c.ports[0]).collect();
    let w = Workload {
        ports: &ports,
        layout: &l,
        poll_ms: POLL_MS,
        good: Some(0),
        scrap: None,
        publish: false,
    };
    let collector = Collector::start(broker.port, topic_filter(tool), None);
    collector.wait_subscribed(Duration::from_secs(10))?;
    let mut p: Proc = match tool {
        Tool::MesEdge => {
            let text = cell_config_with(
                &w,
                &device_config,
                &dir.join("store/cell.db"),
                &format!("mqtt://127.0.0.1:{}", broker.port),
                free_port(),
            );
            start_mes_edge(ctx, &dir, &text, None)?
        }
        Tool::Python => start_python(
            ctx,
            &dir,
            "s7_poller.py",
            &poller_spec(&w, broker.port, "plant/python"),
        )?,
        Tool::NodeRed => anyhow::bail!("S9 has no Node-RED flow"),
    };
    // The CPUs' own CPU over the same window: a Python server that cannot keep up would show
    // here (and in the poll rate), not be taken for the tool's slowness.
    let server_cpu: Vec<_> = cpus
        .iter()
        .map(|c| crate::procstat::CpuWindow::start(c.proc.pid()))
        .collect();
    let r = measure(ctx, tool, &mut p, &collector, &mut cpus)?;
    let servers = server_cpu.iter().map(|c| c.percent()).sum::<f64>();
    Ok((r, servers))
}

pub fn run(ctx: &Ctx, table: &mut Table) -> Result<()> {
    let d = ctx.durations;
    table.results.scenarios.insert(
        "S9".into(),
        format!(
            "S2 on Siemens S7: {DEVICES} S7 CPUs (python-snap7's server, a process each), DB1 of each read as {TAGS} tags \
             (200 WORD, 150 DWORD, 150 REAL) every {POLL_MS} ms; each CPU changes {CHANGES_PER_TICK} tags every {POLL_MS} ms; \
             the Python poller reads with python-snap7's client; {} s warm-up, {} s measured",
            d.s2_warmup, d.s2_seconds
        ),
    );
    let mut results: Vec<(Tool, Result<Result2>)> = Vec::new();
    for tool in ctx.tools()?.into_iter().filter(|t| *t != Tool::NodeRed) {
        println!(
            "S9 S7 polling: {} ({DEVICES} CPUs x {TAGS} tags every {POLL_MS} ms)",
            tool.name()
        );
        let r = run_tool(ctx, tool, table.run);
        let r = match r {
            Ok((r, servers)) => {
                println!(
                    "  {:.2} polls/s per CPU (min {:.2}), {:.1} requests per poll; interval p50 {:.1} / p99 {:.1} / max {:.1} ms, sd {:.1} ms; CPU {:.1}%; RSS {:.1} MB (max {:.1}); {:.0} msg/s",
                    r.polls_per_s, r.polls_per_s_min, r.requests_per_poll, r.interval_p50, r.interval_p99, r.interval_max, r.jitter_sd, r.cpu, r.rss, r.rss_max, r.messages_per_s
                );
                table.note(format!(
                    "S9 {}: the {DEVICES} S7 CPUs (python-snap7's server) used {servers:.1}% of one core in all (warm-up and measured window)",
                    tool.name()
                ));
                Ok(r)
            }
            Err(e) => {
                println!("  failed: {e:#}");
                Err(e)
            }
        };
        results.push((tool, r));
    }
    let per_tag = |r: &Result2| r.cpu_per_tag(DEVICES * TAGS);
    let system_per_tag = |r: &Result2| r.cpu_system_per_tag(DEVICES * TAGS);
    // Requests per second in all: per poll of a CPU, times the polls of every CPU.
    let requests = |r: &Result2| r.requests_per_poll * r.polls_per_s * DEVICES as f64;
    let rows: [Row; 11] = [
        ("s9.polls", "polls per CPU as the tags saw them (reads of the least-read byte of a tag; 10 = every poll)", "polls/s", 2, &|r| r.polls_per_s, false, None),
        ("s9.polls_min", "the same, the least-polled CPU", "polls/s", 2, &|r| r.polls_per_s_min, false, None),
        ("s9.requests", "read requests per second, all CPUs", "requests/s", 0, &requests, true, None),
        ("s9.interval_p99", "poll interval p99", "ms", 1, &|r| r.interval_p99, true, None),
        ("s9.jitter", "jitter: SD of the interval around the poll period", "ms", 1, &|r| r.jitter_sd, true, None),
        ("s9.cpu", "CPU", "% of one core", 1, &|r| r.cpu, true, None),
        ("s9.cpu_per_tag", "CPU per tag read", "µs", 3, &per_tag, true, None),
        ("s9.cpu_system_per_tag", "of it in the kernel (system time: the sockets' sends, receives and wake-ups)", "µs", 3, &system_per_tag, true, None),
        ("s9.rss", "RSS (most over the run)", "MB", 1, &|r| r.rss_max, true, None),
        ("s9.anon", "anonymous RSS (most over the run)", "MB", 1, &|r| r.anon_max, true, None),
        ("s9.messages", "MQTT messages published (mes-edge: part counts; Python poller: every change)", "msg/s", 0, &|r| r.messages_per_s, true, None),
    ];
    let no_node = Cell::na("not run: no S7 node installed");
    add_rows(table, "S9", rows, &results, &|_| no_node.clone());
    // The tools count different things here: no ratio (as report.rs's NO_RATIO does for S2's).
    if let Some(f) = table
        .results
        .figures
        .iter_mut()
        .find(|f| f.key == "s9.messages")
    {
        f.ratios = false;
    }
    Ok(())
}
