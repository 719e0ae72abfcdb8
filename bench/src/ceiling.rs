//! The broker's ceiling on this machine: a bare rumqttc publisher (`mes-edge-bench publish`, a
//! process of its own) sends event-sized QoS 1 messages as fast as Mosquitto acknowledges them,
//! to the same collector. No store, no engine: what S1 cannot exceed however fast the runtime
//! gets, since the broker, the publisher and the collector share the machine's two cores.

use crate::collector::{check_sequence, Collector};
use crate::harness::Ctx;
use crate::load_server::unix_ns;
use crate::procs::{Broker, Proc};
use crate::procstat::CpuWindow;
use anyhow::Result;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// `mes-edge-bench publish`: `count` messages shaped like part_count events, `inflight` at once.
pub fn publish(port: u16, count: u64, inflight: u16) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut opts = MqttOptions::new(format!("bench-publisher-{}", std::process::id()), "127.0.0.1", port);
        opts.set_inflight(inflight);
        opts.set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = AsyncClient::new(opts, inflight as usize * 2 + 16);
        let topic = "mes/bench/site/area/line/cell/events/part_count";
        let mut acked = 0u64;
        let mut started = false;
        while acked < count {
            match eventloop.poll().await? {
                Event::Incoming(Packet::ConnAck(_)) if !started => {
                    started = true;
                    println!("START {}", unix_ns());
                    let client = client.clone();
                    tokio::spawn(async move {
                        for seq in 1..=count {
                            // The size and shape of a part_count event (docs/EVENTS.md).
                            let payload = format!(
                                r#"{{"event_id":"0190f1e6-3c2a-7b4e-9d1f-{seq:012}","seq":{seq},"ts":{ts},"time":"2026-11-25T16:00:00.000Z","cell":"bench/site/area/line/cell","type":"part_count","data":{{"counter":"good","quantity":1,"counter_value":{seq},"previous_value":{prev},"rolled_over":false,"order_id":null}},"source":["d0_t0"]}}"#,
                                ts = unix_ns() / 1_000_000,
                                prev = seq - 1
                            );
                            if client.publish(topic, QoS::AtLeastOnce, false, payload).await.is_err() {
                                return;
                            }
                        }
                    });
                }
                Event::Incoming(Packet::PubAck(_)) => acked += 1,
                Event::Outgoing(Outgoing::Disconnect) => break,
                _ => {}
            }
        }
        println!("DONE {acked} {}", unix_ns());
        Ok(())
    })
}

pub struct Ceiling {
    pub per_s: f64,
    pub missing: u64,
    pub cpu_publisher: f64,
    pub cpu_broker: f64,
    pub cpu_collector: f64,
}

pub fn measure(ctx: &Ctx, dir: &Path, count: u64, inflight: u16) -> Result<Ceiling> {
    std::fs::create_dir_all(dir)?;
    let mut broker = Broker::new(dir, false)?;
    broker.start()?;
    let collector = Collector::start(broker.port, crate::s1_pipeline::EVENTS, None);
    collector.wait_subscribed(Duration::from_secs(10))?;
    let mut cmd = Command::new(&ctx.bench_bin);
    cmd.args([
        "publish",
        "--port",
        &broker.port.to_string(),
        "--count",
        &count.to_string(),
        "--inflight",
        &inflight.to_string(),
    ]);
    let mut p = Proc::spawn("publisher", cmd, dir, true)?;
    let t0: i64 = p.wait_line("START", Duration::from_secs(10))?.parse()?;
    let cpu = [
        CpuWindow::start(p.pid()),
        CpuWindow::start(broker.pid().unwrap()),
        CpuWindow::start(std::process::id()),
    ];
    let mut progress = (0usize, Instant::now());
    while collector.len_of_kind("part_count") < count as usize
        && progress.1.elapsed() < Duration::from_secs(20)
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
    let (_, missing, _) = check_sequence(&recs, count);
    p.stop(Duration::from_secs(5));
    Ok(Ceiling {
        per_s: received as f64 / ((last - t0) as f64 / 1e9),
        missing,
        cpu_publisher: cpus[0],
        cpu_broker: cpus[1],
        cpu_collector: cpus[2],
    })
}
