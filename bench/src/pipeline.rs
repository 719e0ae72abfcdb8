//! `mes-edge-bench pipeline`: the runtime (the same library `mes-edge run` is built from, the
//! same engine thread, store and forwarder, wired by `runtime::run_with_drivers`) fed by an
//! embedded driver instead of a PLC. The driver reads the good-part counter faster than any PLC
//! could be polled: each reading is one more part, so each is one `part_count` event. This is
//! how S1 and S3 load the engine, the SQLite outbox and the MQTT forwarder without a protocol's
//! round trip in the way. The config's other devices are polled as configured (S7 polls one
//! beside the generator, to see what a busy store does to a poll).
//!
//! Stdin `go` starts the generator; stdout gets `START unix_ns` and, when it is done,
//! `GENERATED events unix_ns`. SIGTERM stops the runtime as it stops in production.

use crate::load_server::unix_ns;
use mes_edge::runtime::{DriverFuture, EmbeddedDrivers};
use mes_edge_drivers::{now_ms, DeviceEvent, DeviceId, DriverSpec, Quality, Sample, TagId, Value};
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Events per second; 0 is as fast as the runtime takes them.
    pub rate: u64,
    /// Stop after this many events...
    pub count: u64,
    /// ...or after this long, whichever comes first.
    pub seconds: f64,
}

pub fn main(config_path: &Path, load: Load) -> anyhow::Result<()> {
    let config = mes_edge::config::load(config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let good = &config
        .signals
        .good_count
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no good_count signal"))?
        .tag;
    let (tag, device) = config
        .numbered_tags()
        .into_iter()
        .find(|(_, _, t)| t.name() == good)
        .map(|(id, d, _)| (id, DeviceId(d as u32)))
        .ok_or_else(|| anyhow::anyhow!("no tag {good}"))?;

    // The generator waits for `go` on stdin, read on a plain thread.
    let (go_tx, go_rx) = watch::channel(false);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if line.map(|l| l.trim() == "go").unwrap_or(false) {
                let _ = go_tx.send(true);
            }
        }
    });
    let go = Arc::new(go_rx);
    let others: Vec<DriverSpec> = config
        .drivers
        .iter()
        .filter(|s| !serves(s, device))
        .cloned()
        .collect();
    let embedded: EmbeddedDrivers = Arc::new(move |tx, stop| -> DriverFuture {
        let mut tasks = tokio::task::JoinSet::new();
        for spec in others.iter().cloned() {
            match spec.start(tx.clone(), stop.clone()) {
                Ok(driver) => {
                    tasks.spawn(driver.task);
                }
                Err(e) => eprintln!("a device of the config cannot be driven: {e}"),
            }
        }
        tasks.spawn(generate(tx, stop, (*go).clone(), tag, device, load));
        Box::pin(async move { while tasks.join_next().await.is_some() {} })
    });
    mes_edge::logging::init(false, &[]);
    // The same runtime shape as `mes-edge run` (src/cli): two worker threads.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(mes_edge::ops::signals::stop_on_signal(tx));
        mes_edge::runtime::run_with_drivers(config, rx, embedded).await
    })
}

/// Whether `spec` drives `device` (the generator's, which it takes the place of).
fn serves(spec: &DriverSpec, device: DeviceId) -> bool {
    spec.device_ids().contains(&device)
}

async fn generate(
    tx: mpsc::Sender<DeviceEvent>,
    mut stop: watch::Receiver<bool>,
    mut go: watch::Receiver<bool>,
    tag: TagId,
    device: DeviceId,
    load: Load,
) {
    let reading = |n: u64| DeviceEvent::Samples {
        device,
        samples: vec![Sample {
            tag,
            value: Some(Value::UInt(n)),
            quality: Quality::Good,
            ts_ms: now_ms(),
            source_ts_ms: None,
        }],
    };
    tokio::select! {
        _ = go.wait_for(|g| *g) => {}
        _ = stop.wait_for(|s| *s) => return,
    }
    // The first reading is the counter's baseline; every one after it is one part.
    let mut n = 1u64;
    if tx.send(reading(n)).await.is_err() {
        return;
    }
    let start = Instant::now();
    println!("START {}", unix_ns());
    let _ = std::io::stdout().flush();
    let deadline = start + Duration::from_secs_f64(load.seconds);
    let mut tick = (load.rate > 0).then(|| {
        let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / load.rate as f64));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        t
    });
    while n <= load.count && Instant::now() < deadline && !*stop.borrow() {
        if let Some(t) = tick.as_mut() {
            t.tick().await;
        }
        n += 1;
        if tx.send(reading(n)).await.is_err() {
            return;
        }
    }
    println!("GENERATED {} {}", n - 1, unix_ns());
    let _ = std::io::stdout().flush();
    // The sender must live until the cell stops: the engine ends when every driver is gone.
    let _ = stop.wait_for(|s| *s).await;
}
