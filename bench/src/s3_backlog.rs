//! S3, backlog drain: the broker goes down, the cell commits 1,000,000 part counts meanwhile
//! (the pipeline's embedded driver, as fast as it takes them), the broker comes back; the time
//! from the broker's return to the last PUBACK, and resident memory during the drain.
//!
//! The collector's session is persistent and so is the broker's store, so that what the
//! runtime publishes before the collector is back is queued for it, not dropped: the collector
//! still counts every event.

use crate::collector::{check_sequence, Collector};
use crate::ctx::Ctx;
use crate::harness::wait_for;
use crate::load_server::unix_ns;
use crate::pipeline::Load;
use crate::procs::Broker;
use crate::procstat::{rss_mb, CpuWindow, RssSampler};
use crate::report::{Figure, Table, Target};
use crate::s1_rig::{spawn_pipeline, write_config, EVENTS};
use anyhow::{Context, Result};
use std::path::Path;
use std::time::{Duration, Instant};

const SESSION: &str = "bench-s3-collector";

/// (last committed seq, events not yet acknowledged), as the runtime's /health reads them.
fn store_view(db: &Path) -> Result<(u64, u64)> {
    let stats = mes_edge::store::Outbox::open_read_only(db, "bench")?.stats()?;
    Ok((stats.last_seq, stats.depth))
}

pub fn run(ctx: &Ctx, table: &mut Table) -> Result<()> {
    let n = ctx.durations.s3_events;
    let dir = ctx.sub(&format!("s3/run{}", table.run + 1))?;
    table.results.scenarios.insert(
        "S3".into(),
        format!(
            "the broker stopped; the pipeline commits {n} events flat out; the broker restarted (its persistence keeps the \
             collector's session); the drain from the broker's return to the last PUBACK"
        ),
    );
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
    let rss_before = rss_mb(p.pid()).unwrap_or(f64::NAN);
    println!("  {generated} events committed in {fill_s:.1} s with the broker down; RSS {rss_before:.1} MB");

    let rss = RssSampler::start(p.pid(), Duration::from_millis(100));
    let cpu = CpuWindow::start(p.pid());
    broker.start()?;
    let broker_cpu = CpuWindow::start(broker.pid().context("no broker")?);
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
    // The last acknowledgements move the cursor at the forwarder's next flush.
    wait_for(Duration::from_secs(30), || {
        store_view(&db).map(|v| v.1 == 0).unwrap_or(false)
    });
    let cpu = cpu.percent();
    let broker_cpu = broker_cpu.percent();
    let rss = rss.finish();
    let (_, depth) = store_view(&db)?;
    p.stop(Duration::from_secs(15));
    let recs = collector.take();
    // What MOM's subscriber received, timed at its receipt: the broker sends each event on
    // as it takes it, so its first and last receipt bound the drain.
    let received = || {
        recs.iter()
            .filter(|r| r.kind.as_deref() == Some("part_count"))
            .map(|r| r.recv_ns)
    };
    let (first_recv, last_recv) = (received().min(), received().max());
    let (_, missing, dups) = check_sequence(&recs, generated);
    let since_back = |t: Option<i64>| t.map_or(f64::NAN, |t| (t - t_back) as f64 / 1e9);
    let (to_first, to_last) = (since_back(first_recv), since_back(last_recv));
    let drain_s = to_last - to_first;
    let rate = generated as f64 / drain_s;
    println!(
        "  broker back -> first event at MOM {to_first:.2} s, -> last {to_last:.2} s; \
         drain {drain_s:.2} s = {rate:.0}/s; undelivered left {depth}; missing {missing}, duplicates {dups}; \
         RSS {:.1} -> max {:.1} -> {:.1} MB; CPU {cpu:.0}%, broker {broker_cpu:.0}%",
        rss.first(),
        rss.max(),
        rss.last()
    );
    let growth = rss.max() - rss_before.min(rss.first());
    let f =
        |key, name, unit, v| Figure::mes_edge("S3", key, name, unit, v, "n/a: no durable buffer");
    table.add(
        f(
            "s3.to_last",
            "broker back -> last event at MOM",
            "s",
            to_last,
        )
        .digits(2),
    );
    table.add(
        f(
            "s3.to_first",
            "broker back -> first event at MOM (reconnect backoff)",
            "s",
            to_first,
        )
        .digits(2),
    );
    table.add(
        f(
            "s3.drain",
            "drain rate, first to last event at MOM",
            "events/s",
            rate,
        )
        .more_is_better()
        .target(Target::ShareOf {
            figure: "s1.ceiling".into(),
            share: 0.9,
        }),
    );
    table.add(f(
        "s3.broker_cpu",
        "CPU of Mosquitto during the drain",
        "% of one core",
        broker_cpu,
    ));
    table.add(f(
        "s3.cpu",
        "CPU of the runtime during the drain",
        "% of one core",
        cpu,
    ));
    table.add(f("s3.rss_before", "RSS before the drain", "MB", rss_before).digits(1));
    table.add(
        f(
            "s3.rss_growth",
            "RSS growth during the drain (most minus before)",
            "MB",
            growth,
        )
        .digits(1)
        .target(Target::AtMost { value: 10.0 }),
    );
    table.add(f("s3.rss_after", "RSS after the drain", "MB", rss.last()).digits(1));
    table.add(
        f(
            "s3.lost",
            "events missing or duplicated at the collector",
            "events",
            (missing + dups) as f64,
        )
        .target(Target::EveryRunAtMost { value: 0.0 }),
    );
    table.add(
        f(
            "s3.fill",
            "events committed per second with the broker down",
            "events/s",
            generated as f64 / fill_s,
        )
        .more_is_better(),
    );
    table.note(format!(
        "S3: {generated} events committed in {fill_s:.1} s with the broker down; {missing} missing and {dups} duplicates at the collector; \
         the drain is timed by the collector's receipts (the first and the last event MOM received); runtime CPU during the drain {cpu:.0}%, Mosquitto {broker_cpu:.0}%."
    ));
    Ok(())
}
