//! S7, a large store: 10 M events stored, 5 M of them undelivered (`--quick`: 1 M and 500 k).
//! The store is built by the runtime's own commit path (`Outbox::commit`, batches of 50,000
//! part counts, synchronous = "normal" while building) and the older half marked delivered
//! (`Outbox::advance_events`, the JSON cursor's moves). Then, on that store and on an empty one:
//! intake as in S1 with the broker down (the store, not the broker, is what is measured), with
//! the size cap set just under the store so that housekeeping prunes while intake runs; the
//! longest housekeeping step from the runtime's /metrics; bytes written per event from
//! /proc/PID/io; the poll interval of a Modbus device (S2's layout, 500 tags, at 100 ms) polled
//! beside the intake, as the load server saw it; and a kill -9 under load followed by a start:
//! to READY=1 and to the first event at the broker.

use crate::collector::Collector;
use crate::ctx::Ctx;
use crate::harness::{layout, load_spec, wait_for, LoadServer};
use crate::load_server::{unix_ns, Mode};
use crate::procs::{free_port, Broker, Proc};
use crate::procstat::write_bytes;
use crate::report::{Cell, Figure, Table, Target};
use crate::s1_rig::{write_config, EVENTS};
use crate::s2_polling::{LAYOUT, POLL_MS};
use crate::stats::spread;
use crate::workload::device_config;
use anyhow::{Context, Result};
use mes_edge::cell::CellState;
use mes_edge::config::Synchronous;
use mes_edge::event::{CounterKind, EventBody, NewEvent};
use mes_edge::store::Outbox;
use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const CELL: &str = "bench/site/area/line/cell";
const BATCH: u64 = 50_000;
const INTAKE_SECONDS: f64 = 10.0;

/// Commits `total` part counts, then marks the first `delivered` of them delivered.
fn build_store(db: &Path, total: u64, delivered: u64) -> Result<f64> {
    let started = Instant::now();
    std::fs::create_dir_all(db.parent().context("store folder")?)?;
    let mut ob = Outbox::open(db, Synchronous::Normal, CELL)?;
    let mut state = CellState::default();
    let mut events = Vec::with_capacity(BATCH as usize);
    let mut n = 0;
    while n < total {
        events.clear();
        let now = mes_edge_drivers::now_ms();
        for _ in 0..BATCH.min(total - n) {
            n += 1;
            events.push(NewEvent::new(
                now,
                vec!["d0_t0".into()],
                EventBody::PartCount {
                    counter: CounterKind::Good,
                    quantity: 1,
                    counter_value: n,
                    previous_value: n - 1,
                    rolled_over: false,
                    order_id: None,
                    rule: None,
                    source_ts: None,
                    reason: None,
                },
            ));
        }
        state.good_total = n;
        ob.commit(&events, &state, now)?;
    }
    let mut seq = 1;
    while seq <= delivered {
        let to = (seq + BATCH).min(delivered + 1);
        let moved = mes_edge::store::EventsMoved {
            to: to - 1,
            ..Default::default()
        };
        ob.advance_events(
            mes_edge::store::EVENTS_SINK,
            &moved,
            mes_edge_drivers::now_ms(),
        )?;
        seq = to;
    }
    // As a runtime's clean stop leaves it: the intake runs on a store started cleanly (not
    // checked); the kill -9 below then measures the start after an unclean stop.
    ob.mark_stopped_cleanly()?;
    Ok(started.elapsed().as_secs_f64())
}

fn file_bytes(db: &Path) -> u64 {
    let size = |p: String| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    size(db.display().to_string()) + size(format!("{}-wal", db.display()))
}

/// A gauge or counter of the runtime's /metrics.
fn metric(port: u16, name: &str) -> Option<f64> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn health_port(config: &Path) -> Result<u16> {
    let text = std::fs::read_to_string(config)?;
    let at = text
        .find("listen = \"127.0.0.1:")
        .context("no [health] listen")?
        + 20;
    Ok(text[at..].split('"').next().context("port")?.parse()?)
}

/// The cell of S1 with `[store] max_size_mb`; with `notify`, READY=1 goes there. Its log is
/// `{name}.log`.
fn spawn(
    ctx: &Ctx,
    name: &str,
    dir: &Path,
    config: &Path,
    rate: u64,
    notify: Option<&Path>,
) -> Result<Proc> {
    let mut cmd = Command::new(&ctx.bench_bin);
    cmd.arg("pipeline")
        .arg("--config")
        .arg(config)
        .arg("--rate")
        .arg(rate.to_string())
        .arg("--seconds")
        .arg(INTAKE_SECONDS.to_string())
        .env("RUST_LOG", "warn");
    if let Some(n) = notify {
        cmd.env("NOTIFY_SOCKET", n);
    }
    Proc::spawn(name, cmd, dir, true)
}

/// S1's cell with `[store] max_size_mb`, and with a second device on `polled` if given.
fn config_with_cap(
    dir: &Path,
    broker_port: u16,
    cap_mb: u64,
    polled: Option<u16>,
) -> Result<std::path::PathBuf> {
    let config = write_config(dir, broker_port)?;
    let mut text = std::fs::read_to_string(&config)?
        .replace("[store]\n", &format!("[store]\nmax_size_mb = {cap_mb}\n"));
    if let Some(port) = polled {
        let device = device_config(1, port, &layout(LAYOUT), POLL_MS);
        let at = text
            .find("[signals")
            .context("no [signals] in S1's config")?;
        text.insert_str(at, &device);
    }
    std::fs::write(&config, text)?;
    Ok(config)
}

struct Intake {
    per_s: f64,
    written_per_event: f64,
    longest_step_ms: f64,
    steps: f64,
    pruned: f64,
    /// The polled device's intervals between polls during the intake, as the load server saw
    /// them: p99, and how many.
    poll_p99_ms: f64,
    polls: usize,
}

/// Events as fast as the runtime takes them for INTAKE_SECONDS, the broker down, and a device
/// polled beside them.
fn intake(ctx: &Ctx, dir: &Path, cap_mb: u64) -> Result<Intake> {
    let spec = load_spec(
        1,
        LAYOUT,
        Mode::Drift {
            tick_ms: POLL_MS,
            per_tick: 5,
        },
    );
    let mut server = LoadServer::start(ctx, dir, &spec)?;
    let config = config_with_cap(dir, free_port(), cap_mb, Some(server.ports[0]))?;
    let port = health_port(&config)?;
    let mut p = spawn(ctx, "intake", dir, &config, 0, None)?;
    // Polling before the intake starts: the first intervals are not the intake's.
    std::thread::sleep(Duration::from_secs(2));
    p.send_line("go")?;
    let t0: i64 = p.wait_line("START", Duration::from_secs(30))?.parse()?;
    server.reset()?;
    let io0 = write_bytes(p.pid()).unwrap_or(0);
    let line = p.wait_line("GENERATED", Duration::from_secs_f64(INTAKE_SECONDS + 60.0))?;
    let polled = spread(server.report()?.remove(0).intervals_ms);
    let mut f = line.split_whitespace();
    let n: f64 = f.next().context("count")?.parse()?;
    let t1: i64 = f.next().context("time")?.parse()?;
    // The engine commits what was generated within a moment; then the writes are counted.
    std::thread::sleep(Duration::from_millis(500));
    let io1 = write_bytes(p.pid()).unwrap_or(0);
    let m = |name| metric(port, name).unwrap_or(f64::NAN);
    let r = Intake {
        per_s: n / ((t1 - t0) as f64 / 1e9),
        written_per_event: (io1 - io0) as f64 / n,
        longest_step_ms: m("mes_edge_housekeeping_longest_step_seconds") * 1e3,
        steps: m("mes_edge_housekeeping_steps_total"),
        pruned: m("mes_edge_events_pruned_total"),
        poll_p99_ms: polled.p99,
        polls: polled.n,
    };
    p.stop(Duration::from_secs(30));
    Ok(r)
}

/// Kill -9 under load (events coming and the backlog draining), then a start: ms to READY=1
/// and to the first event at the broker.
fn cold_start(ctx: &Ctx, dir: &Path, cap_mb: u64) -> Result<(f64, f64)> {
    let mut broker = Broker::new(dir, false)?;
    broker.start()?;
    let collector = Collector::start(broker.port, EVENTS, None);
    collector.wait_subscribed(Duration::from_secs(10))?;
    let config = config_with_cap(dir, broker.port, cap_mb, None)?;
    let mut p = spawn(ctx, "killed", dir, &config, 1000, None)?;
    p.send_line("go")?;
    p.wait_line("START", Duration::from_secs(30))?;
    std::thread::sleep(Duration::from_secs(2));
    p.signal(libc::SIGKILL);
    let _ = p.stop(Duration::from_secs(5));
    // What the killed process had in flight arrives before the count starts.
    std::thread::sleep(Duration::from_millis(300));
    let sock_path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&sock_path);
    let sock = UnixDatagram::bind(&sock_path)?;
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    let heard = collector.take().len();
    let t_spawn = unix_ns();
    let mut p = spawn(ctx, "restarted", dir, &config, 1000, Some(&sock_path))?;
    let mut buf = [0u8; 4096];
    let mut ready = f64::NAN;
    let deadline = Instant::now() + Duration::from_secs(30);
    while ready.is_nan() && Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            if String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == "READY=1")
            {
                ready = (unix_ns() - t_spawn) as f64 / 1e6;
            }
        }
    }
    let mut first = f64::NAN;
    wait_for(Duration::from_secs(30), || {
        first = collector
            .take()
            .iter()
            .find(|r| r.kind.as_deref() == Some("part_count"))
            .map_or(f64::NAN, |r| (r.recv_ns - t_spawn) as f64 / 1e6);
        !first.is_nan()
    });
    p.stop(Duration::from_secs(30));
    println!("  kill -9 after {heard} messages; READY {ready:.0} ms, first event {first:.0} ms");
    Ok((ready, first))
}

struct RemoveOnDrop(Vec<std::path::PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for dir in &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// key, name, unit, value, digits, less is better, target.
type Row<'a> = (&'a str, &'a str, &'a str, f64, usize, bool, Option<Target>);

pub fn run(ctx: &Ctx, table: &mut Table) -> Result<()> {
    let total = ctx.durations.s7_events;
    let dir = ctx.sub("s7")?;
    println!("S7 large store: {total} events, half of them undelivered");
    table.results.scenarios.insert(
        "S7".into(),
        format!(
            "a store of {total} part counts, half of them delivered, built by the runtime's commit path; on it and on an empty store, \
             the pipeline flat out for {INTAKE_SECONDS} s with the broker down and the size cap just under the large store, \
             a Modbus device (S2's layout) polled every {POLL_MS} ms beside it; then kill -9 under load and a start"
        ),
    );
    let empty_dir = dir.join("empty");
    std::fs::create_dir_all(&empty_dir)?;
    let big_dir = dir.join("big");
    // The stores go when S7 ends, failed or not (5 GB each); the logs stay with the run's.
    let _stores = RemoveOnDrop(vec![empty_dir.join("store"), big_dir.join("store")]);
    let db = big_dir.join("store/cell.db");
    let took = build_store(&db, total, total / 2)?;
    let built_bytes = file_bytes(&db);
    let used = Outbox::open(&db, Synchronous::Normal, CELL)?.used_bytes()?;
    table.note(format!(
        "S7: store of {total} events ({} undelivered) built in {took:.0} s by Outbox::commit in batches of {BATCH}; {:.2} GB on disk",
        total / 2,
        built_bytes as f64 / 1e9
    ));
    // The cap just under the store: housekeeping prunes delivered events while intake runs.
    let cap_mb = (used as f64 * 0.99 / (1 << 20) as f64) as u64;
    let empty = intake(ctx, &empty_dir, cap_mb)?;
    let big = intake(ctx, &big_dir, cap_mb)?;
    println!(
        "  intake {:.0}/s empty, {:.0}/s large; housekeeping {} steps, longest {:.2} ms, {} pruned; poll interval p99 {:.1} ms empty ({} polls), {:.1} ms large ({} polls)",
        empty.per_s, big.per_s, big.steps, big.longest_step_ms, big.pruned, empty.poll_p99_ms, empty.polls, big.poll_p99_ms, big.polls
    );
    let (ready_ms, first_ms) = cold_start(ctx, &big_dir, cap_mb)?;
    let share = |figure: &str, share: f64| Target::ShareOf {
        figure: figure.into(),
        share,
    };
    let rows: Vec<Row> = vec![
        (
            "s7.intake_empty",
            "intake, empty store",
            "events/s",
            empty.per_s,
            0,
            false,
            None,
        ),
        (
            "s7.intake_large",
            "intake, large store (within 10% of the empty store's)",
            "events/s",
            big.per_s,
            0,
            false,
            Some(share("s7.intake_empty", 0.9)),
        ),
        (
            "s7.poll_p99_empty",
            "poll interval p99 during intake, empty store (a device at 100 ms)",
            "ms",
            empty.poll_p99_ms,
            1,
            true,
            None,
        ),
        (
            "s7.poll_p99_large",
            "poll interval p99 during intake, large store (within 10% of the empty store's)",
            "ms",
            big.poll_p99_ms,
            1,
            true,
            Some(share("s7.poll_p99_empty", 1.1)),
        ),
        (
            "s7.housekeeping_step",
            "longest housekeeping step on the engine thread",
            "ms",
            big.longest_step_ms,
            2,
            true,
            Some(Target::AtMost { value: 10.0 }),
        ),
        (
            "s7.pruned",
            "events pruned during intake",
            "events",
            big.pruned,
            0,
            false,
            None,
        ),
        (
            "s7.ready",
            "kill -9 -> READY",
            "ms",
            ready_ms,
            0,
            true,
            Some(Target::Below { value: 1000.0 }),
        ),
        (
            "s7.first_publish",
            "kill -9 -> first event at the broker",
            "ms",
            first_ms,
            0,
            true,
            Some(Target::Below { value: 2000.0 }),
        ),
        (
            "s7.disk_per_event",
            "bytes on disk per stored event",
            "B",
            built_bytes as f64 / total as f64,
            0,
            true,
            None,
        ),
        (
            "s7.written_large",
            "bytes written per event (write_bytes), large store",
            "B",
            big.written_per_event,
            0,
            true,
            None,
        ),
        (
            "s7.written_empty",
            "bytes written per event (write_bytes), empty store",
            "B",
            empty.written_per_event,
            0,
            true,
            None,
        ),
    ];
    for (key, name, unit, v, digits, less_is_better, target) in rows {
        table.add(Figure {
            scenario: "S7",
            key,
            name,
            unit,
            digits,
            mes_edge: Cell::Value(v),
            python: Cell::na("-"),
            node_red: Cell::na("-"),
            less_is_better,
            target,
        });
    }
    Ok(())
}
