//! S3, backlog drain: the broker goes down, the cell commits 1,000,000 part counts meanwhile
//! (the pipeline's embedded driver, as fast as it takes them), the broker comes back; the time
//! from the broker's return to the last PUBACK, and resident memory during the drain.
//!
//! The collector's session is persistent and so is the broker's store, so that what the
//! runtime publishes before the collector is back is queued for it, not dropped: the collector
//! still counts every event.

use crate::collector::{check_sequence, Collector};
use crate::harness::{wait_for, Ctx};
use crate::load_server::unix_ns;
use crate::pipeline::Load;
use crate::procs::Broker;
use crate::procstat::{rss_mib, CpuWindow, RssSampler};
use crate::report::{Cell, Figure, Table};
use crate::s1_pipeline::{spawn_pipeline, write_config, EVENTS};
use anyhow::Result;
use std::path::Path;
use std::time::{Duration, Instant};

const SESSION: &str = "bench-s3-collector";

/// (last committed seq, undelivered events, first and last delivered_ms)
fn store_view(db: &Path) -> Result<(u64, u64, Option<i64>, Option<i64>)> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let last: i64 = conn.query_row("SELECT last_seq FROM cell_state WHERE id = 1", [], |r| {
        r.get(0)
    })?;
    let (depth, first, lastd): (i64, Option<i64>, Option<i64>) = conn.query_row(
        "SELECT (SELECT count(*) FROM outbox WHERE delivered_ms IS NULL), min(delivered_ms), max(delivered_ms) FROM outbox",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok((last as u64, depth as u64, first, lastd))
}

pub fn run(ctx: &Ctx, table: &mut Table) -> Result<()> {
    let n = ctx.durations.s3_events;
    let dir = ctx.sub("s3")?;
    println!("S3 backlog: {n} events committed while the broker is down, then drained");
    let mut broker = Broker::new(&dir, true)?;
    broker.start()?;
    {
        let c = Collector::start(broker.port, EVENTS, Some(SESSION));
        c.wait_subscribed(Duration::from_secs(10))?;
    }
    std::thread::sleep(Duration::from_millis(300));
    broker.stop();
    let config = write_config(&dir, broker.port)?;
    let db = dir.join("store/cell.db");
    let mut p = spawn_pipeline(
        ctx,
        &dir,
        &config,
        Load {
            rate: 0,
            count: n,
            seconds: 3600.0,
        },
    )?;
    std::thread::sleep(Duration::from_millis(500));
    p.send_line("go")?;
    let t0: i64 = p.wait_line("START", Duration::from_secs(10))?.parse()?;
    let line = p.wait_line("GENERATED", Duration::from_secs(1800))?;
    let generated: u64 = line.split_whitespace().next().unwrap_or("0").parse()?;
    anyhow::ensure!(
        wait_for(Duration::from_secs(120), || store_view(&db)
            .map(|v| v.0 >= generated)
            .unwrap_or(false)),
        "the store did not reach {generated} committed events"
    );
    let fill_s = (unix_ns() - t0) as f64 / 1e9;
    let rss_before = rss_mib(p.pid()).unwrap_or(f64::NAN);
    println!("  {generated} events committed in {fill_s:.1} s with the broker down; RSS {rss_before:.1} MiB");

    let rss = RssSampler::start(p.pid(), Duration::from_millis(100));
    let cpu = CpuWindow::start(p.pid());
    broker.start()?;
    let t_back = unix_ns();
    let collector = Collector::start(broker.port, EVENTS, Some(SESSION));
    let mut progress = (0usize, Instant::now());
    while collector.len_of_kind("part_count") < generated as usize
        && progress.1.elapsed() < Duration::from_secs(60)
    {
        let k = collector.len_of_kind("part_count");
        if k != progress.0 {
            progress = (k, Instant::now());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // The last acknowledgements are marked in the store at the forwarder's next flush.
    wait_for(Duration::from_secs(30), || {
        store_view(&db).map(|v| v.1 == 0).unwrap_or(false)
    });
    let cpu = cpu.percent();
    let rss = rss.finish();
    let (_, depth, first_ms, last_ms) = store_view(&db)?;
    p.stop(Duration::from_secs(15));
    let recs = collector.take();
    let last_recv = recs
        .iter()
        .filter(|r| r.kind.as_deref() == Some("part_count"))
        .map(|r| r.recv_ns)
        .max();
    let (_, missing, dups) = check_sequence(&recs, generated);
    let back_ms = t_back / 1_000_000;
    let to_first = first_ms.map_or(f64::NAN, |f| (f - back_ms) as f64 / 1e3);
    let to_last = last_ms.map_or(f64::NAN, |l| (l - back_ms) as f64 / 1e3);
    let drain_s = match (first_ms, last_ms) {
        (Some(f), Some(l)) => (l - f) as f64 / 1e3,
        _ => f64::NAN,
    };
    let rate = generated as f64 / drain_s;
    let to_collector = last_recv.map_or(f64::NAN, |l| (l - t_back) as f64 / 1e9);
    println!(
        "  broker back -> first PUBACK {to_first:.2} s, -> last PUBACK {to_last:.2} s (last at collector {to_collector:.2} s); \
         drain {drain_s:.2} s = {rate:.0}/s; undelivered left {depth}; missing {missing}, duplicates {dups}; \
         RSS {:.1} -> max {:.1} -> {:.1} MiB; CPU {cpu:.0}%",
        rss.first(),
        rss.max(),
        rss.last()
    );
    let none = || Cell::na("n/a: no durable buffer");
    let growth = rss.max() - rss_before.min(rss.first());
    let flat = growth <= 10.0;
    table.add(Figure {
        scenario: "S3",
        name: "broker back -> last PUBACK, s (of which reconnect backoff)",
        digits: 2,
        mes_edge: Cell::Text(format!("{to_last:.2} ({to_first:.2})")),
        python: none(),
        node_red: none(),
        less_is_better: true,
        target: None,
    });
    table.add(Figure {
        scenario: "S3",
        name: "drain rate, first to last PUBACK, events/s",
        digits: 0,
        mes_edge: Cell::Value(rate),
        python: none(),
        node_red: none(),
        less_is_better: false,
        target: Some((">= 50,000/s", rate >= 50_000.0 && missing == 0)),
    });
    table.add(Figure {
        scenario: "S3",
        name: "RSS before / max during / after the drain, MiB",
        digits: 1,
        mes_edge: Cell::Text(format!(
            "{:.1} / {:.1} / {:.1}",
            rss_before,
            rss.max(),
            rss.last()
        )),
        python: none(),
        node_red: none(),
        less_is_better: true,
        target: Some(("flat (grows <= 10 MiB)", flat)),
    });
    table.note(format!(
        "S3: {generated} events committed in {fill_s:.1} s with the broker down; {missing} missing and {dups} duplicates at the collector; \
         PUBACK times are when the forwarder marked them in the store (it flushes every 1,024 acknowledgements or 100 ms); runtime CPU during the drain {cpu:.0}%."
    ));
    Ok(())
}
