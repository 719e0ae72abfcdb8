//! S1's steady-state delivery: the highest fixed input rate the cell holds without a growing
//! backlog. A flat-out run says how fast events go in, not how fast they can keep going out;
//! averaging intake with the drain of the backlog it built says neither. So the embedded
//! driver feeds the pipeline at a fixed rate, the collector's count is sampled every second,
//! and the backlog (what the schedule has generated minus what has arrived) must not grow.
//!
//! The search probes rates around the target (90% of the ceiling) with short runs, bisecting
//! between the highest rate held and the lowest not held within a time budget, then confirms
//! the best rate with a full hold; if the hold fails, it steps down once.

use crate::collector::check_sequence;
use crate::ctx::Ctx;
use crate::pipeline::Load;
use crate::procstat::CpuWindow;
use crate::s1_rig::rig;
use anyhow::{Context, Result};
use std::path::Path;
use std::time::{Duration, Instant};

/// The backlog may grow by at most this share of the input rate per second...
const SLOPE_SHARE: f64 = 0.01;
/// ...and be at most this many seconds of input when the generator stops.
const LAG_SECONDS: f64 = 0.5;

#[derive(Debug, Default)]
pub struct Hold {
    pub held: bool,
    pub delivered_per_s: f64,
    pub cpu_runtime: f64,
    pub cpu_broker: f64,
    pub missing: u64,
    pub duplicates: u64,
}

/// Least-squares slope of `ys` against `xs`.
pub fn slope(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len() as f64;
    if xs.len() < 2 {
        return 0.0;
    }
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let (mut num, mut den) = (0.0, 0.0);
    for (x, y) in xs.iter().zip(ys) {
        num += (x - mx) * (y - my);
        den += (x - mx) * (x - mx);
    }
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

/// Whether a backlog trace (seconds since start, events) shows a rate held.
pub fn judge(rate: f64, t: &[f64], backlog: &[f64]) -> (bool, f64, f64) {
    let half = t.len() / 2;
    let s = slope(&t[half..], &backlog[half..]);
    let lag = backlog.last().copied().unwrap_or(f64::INFINITY);
    let held = !t.is_empty() && s <= SLOPE_SHARE * rate && lag <= (LAG_SECONDS * rate).max(1000.0);
    (held, s, lag)
}

/// The pipeline at `rate` for `seconds`; when it held, waits for the rest and checks losses.
pub fn hold(ctx: &Ctx, dir: &Path, rate: f64, seconds: f64) -> Result<Hold> {
    let load = Load {
        rate: rate.round() as u64,
        count: u64::MAX,
        seconds,
    };
    let mut r = rig(ctx, dir, load)?;
    r.p.send_line("go")?;
    r.p.wait_line("START", Duration::from_secs(10))?;
    let start = Instant::now();
    let cpu = [
        CpuWindow::start(r.p.pid()),
        CpuWindow::start(r.broker.pid().context("no broker")?),
    ];
    let (mut t, mut backlog) = (Vec::new(), Vec::new());
    let base = r.collector.len_of_kind("part_count") as f64;
    while start.elapsed().as_secs_f64() < seconds {
        std::thread::sleep(Duration::from_secs(1));
        let s = start.elapsed().as_secs_f64().min(seconds);
        let arrived = r.collector.len_of_kind("part_count") as f64 - base;
        t.push(s);
        backlog.push(rate * s - arrived);
    }
    let cpus: Vec<f64> = cpu.iter().map(|c| c.percent()).collect();
    let line = r.p.wait_line("GENERATED", Duration::from_secs(30))?;
    let generated: u64 = line.split_whitespace().next().context("count")?.parse()?;
    let arrived = r.collector.len_of_kind("part_count");
    let (mut held, slope, lag) = judge(rate, &t, &backlog);
    // A driver that fell behind its schedule means the engine did not take the rate.
    held &= generated as f64 >= 0.99 * rate * seconds;
    let mut h = Hold {
        held,
        delivered_per_s: arrived as f64 / seconds,
        cpu_runtime: cpus[0],
        cpu_broker: cpus[1],
        ..Hold::default()
    };
    if held {
        crate::harness::wait_for(Duration::from_secs(20), || {
            r.collector.len_of_kind("part_count") >= generated as usize
        });
        let recs = r.collector.take();
        let last = recs.iter().filter_map(|x| x.seq).max().unwrap_or(0);
        let (_, missing, dups) = check_sequence(&recs, last.max(generated));
        h.missing = missing;
        h.duplicates = dups;
    }
    r.p.stop(Duration::from_secs(15));
    println!(
        "  {rate:.0}/s for {seconds:.0} s: {} (backlog slope {slope:.0}/s, at the end {lag:.0}; delivered {:.0}/s; CPU runtime {:.0}%, broker {:.0}%)",
        if h.held { "held" } else { "not held" },
        h.delivered_per_s,
        h.cpu_runtime,
        h.cpu_broker
    );
    Ok(h)
}

pub struct Steady {
    /// The highest rate confirmed by a full hold (NaN if none was).
    pub rate: f64,
    pub delivered_per_s: f64,
    pub cpu_runtime: f64,
    pub cpu_broker: f64,
    pub missing: u64,
    pub duplicates: u64,
    /// The rates probed, in order, for the run's notes.
    pub probes: String,
}

pub fn search(ctx: &Ctx, dir: &Path, ceiling: f64) -> Result<Steady> {
    let d = ctx.durations;
    println!(
        "S1 steady state: probes of {} s within {} s, then a hold of {} s",
        d.s1_probe_seconds, d.s1_search_budget_seconds, d.s1_hold_seconds
    );
    let started = Instant::now();
    let (mut lo, mut hi) = (None::<f64>, ceiling);
    let mut rate = 0.9 * ceiling;
    let mut probes = Vec::new();
    let mut n = 0;
    // Room for one more probe (its run plus the rig's start) within the budget.
    while started.elapsed().as_secs_f64() + d.s1_probe_seconds + 5.0 <= d.s1_search_budget_seconds {
        n += 1;
        let h = hold(
            ctx,
            &dir.join(format!("probe{n}")),
            rate,
            d.s1_probe_seconds,
        )?;
        probes.push(format!(
            "{rate:.0}/s {}",
            if h.held { "held" } else { "not held" }
        ));
        if h.held {
            lo = Some(rate);
        } else {
            hi = rate;
        }
        rate = match lo {
            Some(l) => (l + hi) / 2.0,
            None => hi * 0.75,
        };
        if lo.is_some_and(|l| (hi - l) / ceiling < 0.03) {
            break;
        }
    }
    let mut best = Steady {
        rate: f64::NAN,
        delivered_per_s: f64::NAN,
        cpu_runtime: f64::NAN,
        cpu_broker: f64::NAN,
        missing: 0,
        duplicates: 0,
        probes: String::new(),
    };
    // Confirm the highest rate probed as held (or the last tried); once more 5% lower.
    let mut candidate = lo.unwrap_or(rate);
    for attempt in 1..=2 {
        let h = hold(
            ctx,
            &dir.join(format!("hold{attempt}")),
            candidate,
            d.s1_hold_seconds,
        )?;
        probes.push(format!(
            "{candidate:.0}/s for {:.0} s {}",
            d.s1_hold_seconds,
            if h.held { "held" } else { "not held" }
        ));
        if h.held {
            best = Steady {
                rate: candidate,
                delivered_per_s: h.delivered_per_s,
                cpu_runtime: h.cpu_runtime,
                cpu_broker: h.cpu_broker,
                missing: h.missing,
                duplicates: h.duplicates,
                probes: String::new(),
            };
            break;
        }
        candidate *= 0.95;
    }
    best.probes = probes.join(", ");
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_backlog_is_held_and_a_growing_one_is_not() {
        let t: Vec<f64> = (1..=60).map(f64::from).collect();
        let flat: Vec<f64> = t.iter().map(|x| 300.0 + (x * 7.0).sin() * 200.0).collect();
        assert!(judge(10_000.0, &t, &flat).0);
        // Delivery at 98% of the input: 200 more events behind every second.
        let growing: Vec<f64> = t.iter().map(|x| 200.0 * x).collect();
        let (held, s, _) = judge(10_000.0, &t, &growing);
        assert!(!held);
        assert!((s - 200.0).abs() < 1e-6);
        // Flat but far behind at the end: a backlog built early and never worked off.
        assert!(!judge(10_000.0, &t, &vec![9_000.0; 60]).0);
    }
}
