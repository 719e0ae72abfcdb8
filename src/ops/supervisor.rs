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

/// How often the supervisor looks.
const TICK: Duration = Duration::from_secs(1);

/// The least silence taken as a hang: the engine turns at least once a second when idle.
const MIN_STALL: Duration = Duration::from_secs(3);

/// Runs until `stop` turns true. `committed` carries the last committed sequence number.
pub async fn supervise(
    ops: Ops,
    committed: watch::Receiver<u64>,
    store: StoreConfig,
    stop: watch::Receiver<bool>,
) {
    watch_over(ops, committed, store, stop, watchdog_interval()).await
}

/// [`supervise`] with the watchdog interval given (None: no watchdog).
pub async fn watch_over(
    ops: Ops,
    mut committed: watch::Receiver<u64>,
    store: StoreConfig,
    mut stop: watch::Receiver<bool>,
    watchdog: Option<Duration>,
) {
    // Silence beyond half the watchdog interval is a hang: the pings stop while systemd still
    // has half an interval left to notice it.
    let stall = watchdog.map_or(STALL, |w| (w / 2).clamp(MIN_STALL, STALL));
    let ping_every = watchdog.map_or(Duration::MAX, |w| w / 4);
    if let Some(w) = watchdog {
        tracing::info!(interval = ?w, "systemd watchdog armed");
    }
    let fail_limit = (store.restart_after_failing_commits_s > 0)
        .then(|| Duration::from_secs(store.restart_after_failing_commits_s));
    let mut last_ping: Option<Instant> = None;
    let mut withheld = false;
    let mut last_seq = *committed.borrow_and_update();
    let mut next_store_read = Instant::now();
    let mut reader: Option<Outbox> = None;
    let mut last_status = String::new();
    let mut ready_due = false;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = ops.ready_called() => {}
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
        // READY (at the start, after a reload) before any watchdog ping, with the status.
        let status = status_summary(&ops);
        // What systemd did not get (its socket buffer full) goes again at the next turn.
        ready_due |= ops.take_ready();
        if ready_due {
            if ops.notify(&format!("READY=1\n{}", status_line(&status))) {
                ready_due = false;
                last_status = status;
            }
        } else if status != last_status && ops.notify(&status_line(&status)) {
            last_status = status;
        }
        if let Some(w) = watchdog {
            let (engine, forwarder) = (ops.engine().silence(), ops.forwarder().silence());
            // Turning but unable to commit for too long: a restart may clear it (a reopened
            // file, a remounted disk), and if not, systemd's restart limit makes it plain.
            let failing = ops
                .engine()
                .commit_failure()
                .filter(|f| fail_limit.is_some_and(|l| f.for_ >= l));
            if let Some(f) = &failing {
                if !withheld {
                    withheld = true;
                    tracing::error!(
                        failing_for = ?f.for_,
                        "commits to the store have failed for {:?}: withholding the watchdog so systemd restarts the service within {w:?}; last error: {}",
                        f.for_, f.error
                    );
                }
            } else if engine <= stall && forwarder <= stall {
                // Half a tick of slack: ticks jitter, and a ping due a millisecond later would
                // otherwise wait a whole tick more.
                if last_ping.is_none_or(|t| t.elapsed() + TICK / 2 >= ping_every) {
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
    }
}

/// Reads the store's numbers on a blocking thread, with a connection of its own (kept open).
async fn read_store(ops: &Ops, store: &StoreConfig, reader: Option<Outbox>) -> Option<Outbox> {
    let (path, cell) = (store.path.clone(), ops.cell().to_string());
    let sparkplug = ops.sinks_enabled().sparkplug;
    let res = tokio::task::spawn_blocking(move || {
        let outbox = match reader {
            Some(o) => o,
            None => Outbox::open_read_only(&path, &cell)?,
        };
        let stats = outbox.stats();
        let behind = match sparkplug {
            true => outbox.sink_behind(crate::sparkplug::SINK).ok().flatten(),
            false => None,
        };
        if let Ok(s) = &stats {
            // How far this store went, for the store that may one day replace it.
            let lineage = crate::store::identity::Lineage {
                store_id: s.store_id.clone(),
                last_seq: s.last_seq,
            };
            if crate::store::identity::read_lineage(&path).as_ref() != Some(&lineage) {
                let _ = crate::store::identity::write_lineage(&path, &lineage);
            }
        }
        let mut wal = path.clone().into_os_string();
        wal.push("-wal");
        let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let file_bytes = size(&path) + size(std::path::Path::new(&wal));
        Ok::<_, crate::store::StoreError>((
            outbox,
            stats.map(|stats| StoreView {
                stats,
                file_bytes,
                sparkplug_behind: behind,
            }),
        ))
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
    tracing::info!(
        "health and metrics on http://{}/health and /metrics",
        config.listen
    );
    tokio::spawn(super::http::serve(
        listener,
        ops.clone(),
        config.clone(),
        stop,
    ));
    addr
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::notify::Notifier;
    use std::os::unix::net::UnixDatagram;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// The datagrams systemd would receive within `d`.
    fn collect(rx: &UnixDatagram, d: Duration) -> Vec<String> {
        let until = Instant::now() + d;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            rx.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            if let Ok(n) = rx.recv(&mut buf) {
                out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        out
    }

    fn pings(msgs: &[String]) -> usize {
        msgs.iter().filter(|m| m.as_str() == "WATCHDOG=1").count()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_watchdog_is_withheld_while_the_engine_is_silent_and_resumes_after() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[cell]\nenterprise = \"a\"\nsite = \"b\"\narea = \"c\"\nline = \"d\"\ncell = \"e\"\n\
             [store]\npath = \"{}\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:1\"\n",
            dir.path().join("cell.db").display()
        );
        let config = crate::config::parse(std::path::Path::new("cell.toml"), &text).unwrap();
        let socket = dir.path().join("notify");
        let rx = UnixDatagram::bind(&socket).unwrap();
        let notifier = Notifier::connect(socket.as_os_str().as_encoded_bytes()).unwrap();
        let ops = Ops::with_notifier(&config, Some(notifier));

        // The engine and the forwarder turning, as their loops do, until the engine hangs.
        let engine_turns = Arc::new(AtomicBool::new(true));
        let (o, turns) = (ops.clone(), engine_turns.clone());
        let beats = std::thread::spawn(move || {
            for _ in 0..100 {
                if turns.load(Ordering::Relaxed) {
                    o.engine().beat();
                }
                o.forwarder().beat();
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let (_committed_tx, committed) = watch::channel(0);
        let (stop_tx, stop) = watch::channel(false);
        let sup = tokio::spawn(watch_over(
            ops.clone(),
            committed,
            config.store.clone(),
            stop,
            Some(Duration::from_secs(4)),
        ));

        let alive = tokio::task::block_in_place(|| collect(&rx, Duration::from_millis(2500)));
        assert!(pings(&alive) >= 2, "pings while alive: {alive:?}");
        assert!(
            alive
                .iter()
                .any(|m| m.starts_with("STATUS=devices online 0/0")),
            "{alive:?}"
        );

        engine_turns.store(false, Ordering::Relaxed);
        // Within the stall limit (3 s here) pings may still go out; after it, none.
        tokio::task::block_in_place(|| collect(&rx, Duration::from_millis(3300)));
        let hung = tokio::task::block_in_place(|| collect(&rx, Duration::from_millis(2000)));
        assert_eq!(
            pings(&hung),
            0,
            "pings while the engine is silent: {hung:?}"
        );

        engine_turns.store(true, Ordering::Relaxed);
        let back = tokio::task::block_in_place(|| collect(&rx, Duration::from_millis(2000)));
        assert!(
            pings(&back) >= 1,
            "pings after the engine turns again: {back:?}"
        );

        stop_tx.send(true).unwrap();
        sup.await.unwrap();
        drop(beats);
    }
}
