//! S8, a plant of cells on one pair of brokers (issue 27): as many mes-edge cells as the
//! machine holds (up to `s8_cells`), each a real process with its own config and store, each
//! reading its own press (s8_presses.rs) and publishing to an active and a standby Mosquitto
//! (`[mqtt] urls`, independent brokers, no bridge). MOM (s8_mom.rs) is subscribed on both. Mid
//! production the active broker is killed with kill -9 and the cells fail over to the standby
//! after `failover_after_s`. The truth is the presses' counters; MOM's count is compared with it.

use crate::ctx::Ctx;
use crate::layout::Layout;
use crate::load_server::unix_ns;
use crate::procs::{Broker, Proc};
use crate::procstat::{pss_mb, rss_mb, CpuWindow};
use crate::report::{Figure, Table, Target};
use crate::s8_mom::{tally, CellTally, Mom};
use crate::s8_presses::Presses;
use crate::stats::{percentile, sorted};
use crate::workload::device_config;
use anyhow::{Context, Result};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const POLL_MS: u64 = 100;
/// A part every 0.5-1.5 s per press: about one a second, each cell out of phase.
const PART_MS: (u64, u64) = (500, 1_500);
const FAILOVER_AFTER_S: u64 = 5;
/// What a cell may take beyond `failover_after_s` to deliver through the standby: the
/// reconnect of every cell at once on a loaded two-core machine.
const FAILOVER_SLACK_S: f64 = 5.0;
/// The memory each cell is given when sizing the plant: the systemd unit's MemoryMax.
const CELL_MEMORY_MB: u64 = 128;
/// The last seconds before the kill are left out of the latency: an event made then may wait
/// for the failover, which has figures of its own.
const STEADY_MARGIN_S: f64 = 2.0;
const PEERS: &str = "mes-edge only: neither peer takes a list of brokers";

/// How many cells this machine holds: `wanted`, or fewer if the memory available does not give
/// each its unit's MemoryMax. Returns the count and the reason for it.
pub fn plant_size(wanted: u64) -> (usize, String) {
    let avail_mb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemAvailable:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024 / 1_000_000);
    let fits = avail_mb / CELL_MEMORY_MB;
    let n = wanted.min(fits).max(1) as usize;
    let why = if (n as u64) < wanted {
        format!(
            "{n} cells, not {wanted}: {avail_mb} MB available gives {fits} cells their unit's MemoryMax of {CELL_MEMORY_MB} MB"
        )
    } else {
        format!("{n} cells ({avail_mb} MB available holds {fits} at their unit's MemoryMax of {CELL_MEMORY_MB} MB)")
    };
    (n, why)
}

fn cell_name(i: usize) -> String {
    format!("c{i:03}")
}

fn cell_config(i: usize, press_port: u16, dir: &Path, urls: &[String]) -> String {
    let layout = Layout::parse("u32x1").expect("a layout");
    let urls: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "[cell]\nenterprise = \"bench\"\nsite = \"site\"\narea = \"area\"\nline = \"line\"\ncell = \"{name}\"\n\n\
         {device}[signals.good_count]\ntag = \"d0_t0\"\n\n\
         [store]\npath = \"{store}\"\nsynchronous = \"full\"\n\n\
         [mqtt]\nurls = [{urls}]\nclient_id = \"s8-{name}\"\nfailover_after_s = {FAILOVER_AFTER_S}\n\n\
         [health]\nlisten = \"127.0.0.1:{health}\"\n",
        name = cell_name(i),
        device = device_config(0, press_port, &layout, POLL_MS),
        store = dir.join("store/cell.db").display(),
        urls = urls.join(", "),
        health = crate::procs::free_port(),
    )
}

/// What one run of the plant measured.
pub struct Plant {
    pub cells: usize,
    pub cpu_total: f64,
    pub rss_total: f64,
    pub pss_total: f64,
    pub broker_cpu: f64,
    pub standby_cpu: f64,
    pub truth: u64,
    pub tallies: Vec<(u64, CellTally)>,
}

fn wait(timeout: Duration, what: &str, cond: impl FnMut() -> bool) -> Result<()> {
    anyhow::ensure!(
        crate::harness::wait_for(timeout, cond),
        "{what} within {timeout:?}"
    );
    Ok(())
}

pub fn run_plant(ctx: &Ctx, n: usize, run: usize) -> Result<Plant> {
    let d = ctx.durations;
    let dir = ctx.sub(&format!("s8/run{}", run + 1))?;
    let mut active = Broker::new(&dir, true)?;
    let mut standby = Broker::new(&dir, true)?;
    active.start()?;
    standby.start()?;
    let urls = [active.port, standby.port].map(|p| format!("mqtt://127.0.0.1:{p}"));
    let mom = Mom::start(&[active.port, standby.port]);
    wait(
        Duration::from_secs(10),
        "MOM subscribed on both brokers",
        || mom.subscribed(),
    )?;
    let presses = Presses::start(n, PART_MS.0, PART_MS.1)?;
    let mut cells = Vec::with_capacity(n);
    for (i, &port) in presses.ports.iter().enumerate() {
        let cdir = ctx.sub(&format!("s8/run{}/{}", run + 1, cell_name(i)))?;
        let config = cdir.join("cell.toml");
        std::fs::write(&config, cell_config(i, port, &cdir, &urls))?;
        let mut cmd = Command::new(&ctx.mes_edge_bin);
        cmd.arg("run")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn");
        cells.push(Proc::spawn("mes-edge", cmd, &cdir, false)?);
    }
    let started = Instant::now();
    wait(
        Duration::from_secs(120),
        &format!("all {n} cells online on the active broker"),
        || mom.online(0) == n,
    )?;
    println!(
        "  {n} cells online on the active broker after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Every cell has read its press's counter at 0 (its baseline) before the first part.
    std::thread::sleep(Duration::from_millis(20 * POLL_MS));
    presses.start_making();
    std::thread::sleep(Duration::from_secs(3));
    let active_pid = active.pid().context("the active broker runs")?;
    let cpu: Vec<CpuWindow> = cells.iter().map(|c| CpuWindow::start(c.pid())).collect();
    let broker_cpu = CpuWindow::start(active_pid);
    std::thread::sleep(Duration::from_secs_f64(d.s8_seconds));
    let cpu_total: f64 = cpu.iter().map(CpuWindow::percent).sum();
    let broker_cpu = broker_cpu.percent();
    let rss_total: f64 = cells.iter().filter_map(|c| rss_mb(c.pid())).sum();
    let pss_total: f64 = cells.iter().filter_map(|c| pss_mb(c.pid())).sum();

    let kill_ns = unix_ns();
    if let Some(p) = &active.proc {
        p.signal(libc::SIGKILL);
    }
    let standby_cpu = CpuWindow::start(standby.pid().context("the standby runs")?);
    std::thread::sleep(Duration::from_secs_f64(d.s8_after_kill));
    let standby_cpu = standby_cpu.percent();
    let truth = presses.stop_making();
    let total: u64 = truth.iter().sum();
    let drained = crate::harness::wait_for(Duration::from_secs(60), || mom.parts() >= total);
    // Room for copies still on their way (duplicates, a late seq).
    std::thread::sleep(Duration::from_secs(2));
    let died: Vec<String> = cells
        .iter_mut()
        .enumerate()
        .filter_map(|(i, c)| (!c.running()).then_some((i, c)))
        .map(|(i, c)| format!("{} ({})", cell_name(i), c.log.display()))
        .collect();
    for c in &cells {
        c.signal(libc::SIGTERM);
    }
    drop(cells);
    anyhow::ensure!(died.is_empty(), "cells ended during the run: {died:?}");
    if !drained {
        println!("  MOM counted {} parts of {total} after 60 s", mom.parts());
    }
    let steady_until = kill_ns - (STEADY_MARGIN_S * 1e9) as i64;
    let copies = mom.copies();
    crate::s8_mom::dump(&dir.join("mom.csv"), &copies)?;
    let mut t = tally(&copies, kill_ns, steady_until, 1);
    let tallies = truth
        .iter()
        .enumerate()
        .map(|(i, &made)| (made, t.remove(&cell_name(i)).unwrap_or_default()))
        .collect();
    Ok(Plant {
        cells: n,
        cpu_total,
        rss_total,
        pss_total,
        broker_cpu,
        standby_cpu,
        truth: total,
        tallies,
    })
}

pub fn run(ctx: &Ctx, table: &mut Table) -> Result<()> {
    let d = ctx.durations;
    let (n, why) = plant_size(d.s8_cells);
    table.results.scenarios.insert(
        "S8".into(),
        format!(
            "a plant of {why}, each a mes-edge process (the release build) with its own config and store, reading its own \
             Modbus press (one tokio-modbus server in the harness, a port per press, a u32 good counter stepping by one every \
             {}-{} ms) every {POLL_MS} ms, publishing with `[mqtt] urls` to an active and a standby Mosquitto (two independent \
             brokers, no bridge) with failover_after_s = {FAILOVER_AFTER_S}; MOM subscribed on both with persistent sessions, \
             de-duplicating on event_id. {} s of production, then the active broker is killed (kill -9, not restarted) and \
             production goes on for {} s; the truth is the presses' counters",
            PART_MS.0, PART_MS.1, d.s8_seconds, d.s8_after_kill
        ),
    );
    println!("S8 a plant of {n} cells on an active and a standby Mosquitto");
    let p = run_plant(ctx, n, table.run)?;
    let cells = p.cells as f64;
    let mom_parts: u64 = p.tallies.iter().map(|(_, t)| t.parts).sum();
    let lost: u64 = p
        .tallies
        .iter()
        .map(|(m, t)| m.saturating_sub(t.parts))
        .sum();
    let extra: u64 = p
        .tallies
        .iter()
        .map(|(m, t)| t.parts.saturating_sub(*m))
        .sum();
    let dups: u64 = p.tallies.iter().map(|(_, t)| t.duplicates).sum();
    let seq_missing: u64 = p.tallies.iter().map(|(_, t)| t.seq_missing).sum();
    let p99s = sorted(
        p.tallies
            .iter()
            .filter(|(_, t)| !t.latency_ms.is_empty())
            .map(|(_, t)| percentile(&sorted(t.latency_ms.clone()), 99.0))
            .collect(),
    );
    let failovers = sorted(p.tallies.iter().filter_map(|(_, t)| t.failover_s).collect());
    println!(
        "  truth {} parts, MOM {mom_parts} ({lost} lost, {extra} counted twice, {dups} duplicate copies dropped, {seq_missing} seq missing); \
         CPU {:.1}% of a core, RSS {:.0} MB, broker {:.1}%; p99 latency median cell {:.1} ms, worst {:.1} ms; failover median {:.2} s, max {:.2} s ({} of {} cells)",
        p.truth,
        p.cpu_total,
        p.rss_total,
        p.broker_cpu,
        percentile(&p99s, 50.0),
        p99s.last().copied().unwrap_or(f64::NAN),
        percentile(&failovers, 50.0),
        failovers.last().copied().unwrap_or(f64::NAN),
        failovers.len(),
        p.cells
    );
    let f = |key, name, unit, v| Figure::mes_edge("S8", key, name, unit, v, PEERS);
    let pct = "% of a core";
    table.add(f("s8.cells", "cells", "", cells).more_is_better());
    table.add(
        f(
            "s8.cpu_total",
            "runtimes' CPU, all cells, before the kill",
            pct,
            p.cpu_total,
        )
        .digits(1),
    );
    table.add(
        f(
            "s8.cpu_per_cell",
            "runtimes' CPU per cell",
            pct,
            p.cpu_total / cells,
        )
        .digits(2),
    );
    table.add(f(
        "s8.rss_total",
        "runtimes' RSS, all cells",
        "MB",
        p.rss_total,
    ));
    table.add(
        f(
            "s8.rss_per_cell",
            "runtimes' RSS per cell",
            "MB",
            p.rss_total / cells,
        )
        .digits(1),
    );
    table.add(f(
        "s8.pss_total",
        "runtimes' PSS, all cells (shared pages counted once)",
        "MB",
        p.pss_total,
    ));
    table.add(
        f(
            "s8.broker_cpu",
            "active Mosquitto's CPU, before the kill",
            pct,
            p.broker_cpu,
        )
        .digits(1),
    );
    table.add(
        f(
            "s8.standby_cpu",
            "standby Mosquitto's CPU, after the kill",
            pct,
            p.standby_cpu,
        )
        .digits(1),
    );
    table.add(
        f(
            "s8.latency_p99_median",
            "delivery latency p99 (event ts -> MOM), median cell",
            "ms",
            percentile(&p99s, 50.0),
        )
        .digits(1),
    );
    table.add(
        f(
            "s8.latency_p99_worst",
            "delivery latency p99 (event ts -> MOM), worst cell",
            "ms",
            p99s.last().copied().unwrap_or(f64::NAN),
        )
        .digits(1),
    );
    table.add(
        f(
            "s8.failover_median",
            "failover: kill -9 -> first new event via the standby, median cell",
            "s",
            percentile(&failovers, 50.0),
        )
        .digits(2),
    );
    table.add(
        f(
            "s8.failover_max",
            "failover: kill -9 -> first new event via the standby, slowest cell",
            "s",
            failovers.last().copied().unwrap_or(f64::NAN),
        )
        .digits(2)
        .target(Target::AtMost {
            value: FAILOVER_AFTER_S as f64 + FAILOVER_SLACK_S,
        }),
    );
    table.add(
        f(
            "s8.cells_not_failed_over",
            "cells with no new event via the standby",
            "cells",
            (p.cells - failovers.len()) as f64,
        )
        .target(Target::EveryRunAtMost { value: 0.0 }),
    );
    table.add(
        f(
            "s8.parts_lost",
            "parts lost (presses' truth - MOM's count)",
            "parts",
            lost as f64,
        )
        .target(Target::EveryRunAtMost { value: 0.0 }),
    );
    table.add(
        f(
            "s8.parts_extra",
            "parts counted twice by MOM",
            "parts",
            extra as f64,
        )
        .target(Target::EveryRunAtMost { value: 0.0 }),
    );
    table.add(
        f(
            "s8.seq_missing",
            "events missing from a cell's seq",
            "events",
            seq_missing as f64,
        )
        .target(Target::EveryRunAtMost { value: 0.0 }),
    );
    table.add(f(
        "s8.duplicates",
        "copies MOM dropped by event_id (resend window, both brokers)",
        "copies",
        dups as f64,
    ));
    table.note(format!(
        "S8: {} cells, the presses made {} parts, MOM counted {mom_parts}; latency is the event's ts (the cell's reading, \
         from the system clock) to MOM's receipt (the harness's system clock, the same machine), over the events made \
         up to {STEADY_MARGIN_S} s before the kill; CPU and RSS are over the {} s before the kill.",
        p.cells, p.truth, d.s8_seconds
    ));
    Ok(())
}
