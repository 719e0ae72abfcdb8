//! The broker's ceiling on this machine: what Mosquitto and the collector can carry end to end
//! when the publisher costs next to nothing. `mes-edge-bench publish` (a process of its own)
//! writes event-sized QoS 1 PUBLISH packets straight onto the socket, many per write, with up
//! to `window` unacknowledged, and counts PUBACKs on a second thread: no client library, no
//! write and flush per message, so neither the publisher nor its syscalls bound the figure. The
//! collector counts what arrives; that rate is the ceiling S1's delivery is a share of.

use crate::collector::{check_sequence, Collector};
use crate::ctx::Ctx;
use crate::load_server::unix_ns;
use crate::procs::{Broker, Proc};
use crate::procstat::CpuWindow;
use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOPIC: &str = "mes/bench/site/area/line/cell/events/part_count";
/// Bytes gathered before one write(2).
const BATCH: usize = 64 * 1024;

fn remaining_length(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            return;
        }
    }
}

fn connect_packet(client_id: &str) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60];
    body.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
    body.extend_from_slice(client_id.as_bytes());
    let mut p = vec![0x10];
    remaining_length(&mut p, body.len());
    p.extend_from_slice(&body);
    p
}

/// A QoS 1 PUBLISH of a part_count-shaped event (docs/EVENTS.md), appended to `out`.
pub fn publish_packet(out: &mut Vec<u8>, seq: u64, pkid: u16) {
    let payload = format!(
        r#"{{"event_id":"0190f1e6-3c2a-7b4e-9d1f-{seq:012}","seq":{seq},"ts":{ts},"time":"2026-11-25T16:00:00.000Z","cell":"bench/site/area/line/cell","type":"part_count","data":{{"counter":"good","quantity":1,"counter_value":{seq},"previous_value":{prev},"rolled_over":false,"order_id":null}},"source":["d0_t0"]}}"#,
        ts = unix_ns() / 1_000_000,
        prev = seq - 1
    );
    out.push(0x32);
    remaining_length(out, 2 + TOPIC.len() + 2 + payload.len());
    out.extend_from_slice(&(TOPIC.len() as u16).to_be_bytes());
    out.extend_from_slice(TOPIC.as_bytes());
    out.extend_from_slice(&pkid.to_be_bytes());
    out.extend_from_slice(payload.as_bytes());
}

/// Counts PUBACKs in the byte stream from the broker until it closes or `stop` is set.
fn count_acks(mut sock: TcpStream, acked: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
    while !stop.load(Ordering::Relaxed) {
        match sock.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return,
        }
        let mut at = 0;
        loop {
            // Fixed header: type, then the remaining length (at most four bytes).
            let (mut len, mut mult, mut i) = (0usize, 1usize, at + 1);
            let mut complete = false;
            while i < pending.len() && i < at + 5 {
                len += (pending[i] & 0x7f) as usize * mult;
                mult *= 128;
                i += 1;
                if pending[i - 1] & 0x80 == 0 {
                    complete = true;
                    break;
                }
            }
            if !complete || i + len > pending.len() {
                break;
            }
            if pending[at] >> 4 == 4 {
                acked.fetch_add(1, Ordering::Relaxed);
            }
            at = i + len;
        }
        pending.drain(..at);
    }
}

/// `mes-edge-bench publish`: flat out for `seconds`, then waits for the last PUBACKs.
/// Prints `START unix_ns` and `DONE sent acked unix_ns`.
pub fn publish(port: u16, seconds: f64, window: u32) -> Result<()> {
    let mut sock = TcpStream::connect(("127.0.0.1", port))?;
    sock.set_nodelay(true)?;
    sock.write_all(&connect_packet(&format!(
        "bench-publisher-{}",
        std::process::id()
    )))?;
    let mut connack = [0u8; 4];
    sock.read_exact(&mut connack)?;
    anyhow::ensure!(
        connack[0] == 0x20 && connack[3] == 0,
        "CONNACK refused: {connack:?}"
    );
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (s, a, st) = (sock.try_clone()?, acked.clone(), stop.clone());
        std::thread::spawn(move || count_acks(s, a, st))
    };
    println!("START {}", unix_ns());
    let _ = std::io::stdout().flush();
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut sent = 0u64;
    let mut batch = Vec::with_capacity(BATCH + 1024);
    while Instant::now() < end {
        batch.clear();
        while batch.len() < BATCH && sent - acked.load(Ordering::Relaxed) < window as u64 {
            sent += 1;
            // Packet ids 1..=65535 in turn; the window keeps them far from reuse.
            publish_packet(&mut batch, sent, (sent % 65_535) as u16 + 1);
        }
        if batch.is_empty() {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        sock.write_all(&batch)?;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while acked.load(Ordering::Relaxed) < sent && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    let _ = sock.write_all(&[0xe0, 0]);
    let _ = reader.join();
    println!(
        "DONE {sent} {} {}",
        acked.load(Ordering::Relaxed),
        unix_ns()
    );
    Ok(())
}

pub struct Ceiling {
    pub per_s: f64,
    pub sent: u64,
    pub missing: u64,
    pub cpu_publisher: f64,
    pub cpu_broker: f64,
    pub cpu_collector: f64,
}

pub fn measure(ctx: &Ctx, dir: &Path, seconds: f64) -> Result<Ceiling> {
    std::fs::create_dir_all(dir)?;
    let mut broker = Broker::new(dir, false)?;
    broker.start()?;
    let collector = Collector::start(broker.port, crate::s1_rig::EVENTS, None);
    collector.wait_subscribed(Duration::from_secs(10))?;
    let mut cmd = Command::new(&ctx.bench_bin);
    cmd.args(["publish", "--port", &broker.port.to_string()])
        .args(["--seconds", &seconds.to_string()]);
    let mut p = Proc::spawn("publisher", cmd, dir, true)?;
    let t0: i64 = p.wait_line("START", Duration::from_secs(10))?.parse()?;
    let cpu = [
        CpuWindow::start(p.pid()),
        CpuWindow::start(broker.pid().context("no broker")?),
        CpuWindow::start(std::process::id()),
    ];
    let done = p.wait_line("DONE", Duration::from_secs_f64(seconds + 30.0))?;
    let sent: u64 = done.split_whitespace().next().unwrap_or("0").parse()?;
    // Then what the broker still queues for the collector arrives.
    let mut progress = (0usize, Instant::now());
    while collector.len_of_kind("part_count") < sent as usize
        && progress.1.elapsed() < Duration::from_secs(10)
    {
        let n = collector.len_of_kind("part_count");
        if n != progress.0 {
            progress = (n, Instant::now());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let cpus: Vec<f64> = cpu.iter().map(|c| c.percent()).collect();
    let recs = collector.take();
    let last = recs.iter().map(|r| r.recv_ns).max().unwrap_or(t0);
    let received = recs.iter().filter(|r| r.seq.is_some()).count();
    let (_, missing, _) = check_sequence(&recs, sent);
    p.stop(Duration::from_secs(5));
    Ok(Ceiling {
        per_s: received as f64 / ((last - t0) as f64 / 1e9),
        sent,
        missing,
        cpu_publisher: cpus[0],
        cpu_broker: cpus[1],
        cpu_collector: cpus[2],
    })
}
