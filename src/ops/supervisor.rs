//! The supervisor: once a second it looks at what the cell's parts report and tells systemd.
//! It pings the watchdog only while the engine and the forwarder both show signs of life, so a
//! hung runtime (an engine thread stuck in I/O, a dead-locked task) stops the pings and systemd
//! kills and restarts it; it keeps STATUS= current and reads the store's numbers for `/health`.

use super::health::{status_summary, STALL};
use super::notify::{status_line, watchdog_interval};
use super::{Ops, StoreView};
use crate::config::{HealthConfig, StoreConfig};
use crate::store::Outbox;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often the store's depth, oldest event and size are read (a few queries).
const STORE_READ_EVERY: Duration = Duration::from_secs(5);

/// Runs until `stop` turns true. `committed` carries the last committed sequence number.
pub async fn supervise(
    ops: Ops,
    mut committed: watch::Receiver<u64>,
    store: StoreConfig,
    mut stop: watch::Receiver<bool>,
) {
    let watchdog = watchdog_interval();
    // Silence beyond half the watchdog interval is a hang: the pings stop while systemd still
    // has half an interval left to notice it.
    let stall = watchdog.map_or(STALL, |w| (w / 2).min(STALL));
    let ping_every = watchdog.map_or(Duration::MAX, |w| w / 4);
    if let Some(w) = watchdog {
        tracing::info!(interval = ?w, "systemd watchdog armed");
    }
    let mut last_ping: Option<Instant> = None;
    let mut withheld = false;
    let mut last_seq = *committed.borrow_and_update();
    let mut next_store_read = Instant::now();
    let mut reader: Option<Outbox> = None;
    let mut last_status = String::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = super::stopped(&mut stop) => return,
        }
        let seq = *committed.borrow_and_update();
        if seq > last_seq {
            ops.add_produced(seq - last_seq);
            last_seq = seq;
        }
        if Instant::now() >= next_store_read {
            next_store_read = Instant::now() + STORE_READ_EVERY;
            reader = read_store(&ops, &store, reader).await;
        }
        if let Some(w) = watchdog {
            let (engine, forwarder) = (ops.engine().silence(), ops.forwarder().silence());
            if engine <= stall && forwarder <= stall {
                if last_ping.is_none_or(|t| t.elapsed() >= ping_every) {
                    ops.notify("WATCHDOG=1");
                    last_ping = Some(Instant::now());
                }
                if withheld {
                    tracing::info!("engine and forwarder turning again; watchdog pings resumed");
                    withheld = false;
                }
            } else if !withheld {
                withheld = true;
                tracing::error!(
                    engine_silent = ?engine,
                    forwarder_silent = ?forwarder,
                    "the runtime looks hung; withholding the watchdog so systemd restarts it within {w:?}"
                );
            }
        }
        let status = status_summary(&ops);
        if status != last_status {
            ops.notify(&status_line(&status));
            last_status = status;
        }
    }
}

/// Reads the store's numbers on a blocking thread, with a connection of its own (kept open).
async fn read_store(ops: &Ops, store: &StoreConfig, reader: Option<Outbox>) -> Option<Outbox> {
    let (path, sync, cell) = (store.path.clone(), store.synchronous, ops.cell().to_string());
    let res = tokio::task::spawn_blocking(move || {
        let outbox = match reader {
            Some(o) => o,
            None => Outbox::open(&path, sync, &cell)?,
        };
        let stats = outbox.stats();
        let mut wal = path.clone().into_os_string();
        wal.push("-wal");
        let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let file_bytes = size(&path) + size(std::path::Path::new(&wal));
        Ok::<_, crate::store::StoreError>((outbox, stats.map(|stats| StoreView { stats, file_bytes })))
    })
    .await;
    match res {
        Ok(Ok((outbox, Ok(view)))) => {
            ops.set_store(view);
            Some(outbox)
        }
        Ok(Ok((outbox, Err(e)))) => {
            tracing::warn!("reading the store's numbers for /health: {e}");
            Some(outbox)
        }
        Ok(Err(e)) => {
            tracing::warn!("opening the store for /health: {e}");
            None
        }
        Err(_) => None,
    }
}

/// Binds the health and metrics endpoint and serves it until `stop`. A failure to bind is
/// logged and the cell runs on without the endpoint: production matters more than monitoring.
pub async fn start_endpoint(
    config: &HealthConfig,
    ops: &Ops,
    stop: watch::Receiver<bool>,
) -> Option<SocketAddr> {
    if !config.enabled {
        return None;
    }
    let listener = match tokio::net::TcpListener::bind(&config.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(
                listen = %config.listen,
                "health endpoint not started: {e}; set [health] listen to a free address"
            );
            return None;
        }
    };
    let addr = listener.local_addr().ok();
    tracing::info!("health and metrics on http://{}/health and /metrics", config.listen);
    tokio::spawn(super::http::serve(listener, ops.clone(), stop));
    addr
}
