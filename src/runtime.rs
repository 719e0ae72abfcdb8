//! Wires one cell together: drivers → engine (and store) → forwarder. Data flows one way; each
//! stage only ever waits on the one before it.

use crate::cell::{CellModel, Engine};
use crate::config::{CellConfig, Protocol};
use crate::event::{AlarmLevel, EventBody, NewEvent};
use crate::forwarder::{self, ForwarderSettings};
use crate::store::Outbox;
use anyhow::{Context, Result};
use mes_edge_drivers::modbus::{self, plan::Limits, ModbusTag, ModbusTcpDevice};
use mes_edge_drivers::{now_ms, DeviceEvent, DeviceId, TagId};
use rumqttc::QoS;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Driver events taken into one commit at most. Under load batches grow towards this, which is
/// what keeps one fsync per commit from capping throughput.
const MAX_BATCH: usize = 4096;
const HOUSEKEEPING: Duration = Duration::from_secs(10);

/// Runs the cell until `shutdown` turns true, then stops in order: drivers, a last commit, and a
/// bounded wait for the broker to acknowledge what is in flight.
pub async fn run(config: CellConfig, mut shutdown: watch::Receiver<bool>) -> Result<()> {
    let model = CellModel::from_config(&config);
    if let Some(dir) = config.store.path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the store's folder {}", dir.display()))?;
    }
    let writer = Outbox::open(
        &config.store.path,
        config.store.synchronous,
        &model.cell_path,
    )?;
    let reader = Outbox::open(
        &config.store.path,
        config.store.synchronous,
        &model.cell_path,
    )?;
    let state = writer.load_state()?;
    tracing::info!(
        cell = %model.cell_path,
        last_seq = writer.last_seq(),
        good_total = state.good_total,
        scrap_total = state.scrap_total,
        "store opened"
    );
    let settings = forwarder_settings(&config)?;

    let (device_tx, device_rx) = mpsc::channel(1024);
    let (drivers_stop_tx, drivers_stop) = watch::channel(false);
    let mut drivers = tokio::task::JoinSet::new();
    for dev in modbus_devices(&config) {
        drivers.spawn(modbus::run_tcp(
            dev,
            device_tx.clone(),
            drivers_stop.clone(),
        ));
    }
    drop(device_tx);

    let (committed_tx, committed_rx) = watch::channel(writer.last_seq());
    let engine = Engine::new(model, state);
    let store_cfg = config.store.clone();
    let handle = tokio::runtime::Handle::current();
    let (engine_done_tx, mut engine_done) = tokio::sync::oneshot::channel::<()>();
    let engine_thread = std::thread::Builder::new()
        .name("engine".into())
        .spawn(move || {
            engine_loop(engine, writer, device_rx, committed_tx, store_cfg, handle);
            let _ = engine_done_tx.send(());
        })?;

    let (fwd_stop_tx, fwd_stop) = watch::channel(false);
    let fwd = tokio::spawn(forwarder::run(settings, reader, committed_rx, fwd_stop));
    tracing::info!("running");

    // The engine only ends early by panicking: stop, and let systemd restart the service.
    let engine_died = tokio::select! {
        _ = shutdown.wait_for(|s| *s) => false,
        _ = &mut engine_done => true,
    };
    tracing::info!("stopping");
    let _ = drivers_stop_tx.send(true);
    while drivers.join_next().await.is_some() {}
    // The engine ends once every driver has dropped its sender and the last batch is committed.
    tokio::task::spawn_blocking(move || engine_thread.join())
        .await?
        .ok();
    let _ = fwd_stop_tx.send(true);
    fwd.await?;
    if engine_died {
        anyhow::bail!("the engine thread ended unexpectedly; nothing uncommitted was counted");
    }
    tracing::info!("stopped");
    Ok(())
}

fn forwarder_settings(config: &CellConfig) -> Result<ForwarderSettings> {
    let options = forwarder::mqtt_options(config)?;
    let (root, cell) = (config.mqtt.topic_root.clone(), config.cell.clone());
    Ok(ForwarderSettings {
        options,
        qos: if config.mqtt.qos == 2 {
            QoS::ExactlyOnce
        } else {
            QoS::AtLeastOnce
        },
        topic: Arc::new(move |kind| forwarder::event_topic(&root, &cell, kind)),
        window: config.mqtt.inflight as usize,
        drain: Duration::from_secs(5),
    })
}

/// The drivers' view of the config, with tags numbered as [`CellModel`] numbers them.
pub fn modbus_devices(config: &CellConfig) -> Vec<ModbusTcpDevice> {
    let mut next_tag = 0u32;
    let mut out = Vec::new();
    for (d, dev) in config.devices.iter().enumerate() {
        let tags = dev
            .tags
            .iter()
            .map(|t| {
                next_tag += 1;
                ModbusTag {
                    id: TagId(next_tag - 1),
                    table: t.table,
                    address: t.address,
                    data_type: t.data_type,
                    order: t.order,
                    bit: t.bit,
                    scale: t.scale,
                    offset: t.offset,
                }
            })
            .collect();
        match dev.protocol {
            Protocol::ModbusTcp => out.push(ModbusTcpDevice {
                id: DeviceId(d as u32),
                name: dev.name.clone(),
                address: format!("{}:{}", dev.host.as_deref().unwrap_or_default(), dev.port),
                unit: dev.unit_id,
                timeout: Duration::from_millis(dev.timeout_ms),
                poll_interval: Duration::from_millis(dev.poll_interval_ms),
                limits: Limits {
                    max_gap: dev.max_gap,
                    max_registers: dev.max_registers,
                    ..Limits::default()
                },
                tags,
            }),
        }
    }
    out
}

/// The engine's thread: takes driver events in batches, derives events, commits each batch with
/// the state it leaves behind. A failed commit rolls the state back and retries the same batch,
/// so a full or failing disk delays events but loses none of the parts.
fn engine_loop(
    mut engine: Engine,
    mut outbox: Outbox,
    mut rx: mpsc::Receiver<DeviceEvent>,
    committed: watch::Sender<u64>,
    store: crate::config::StoreConfig,
    handle: tokio::runtime::Handle,
) {
    let cap_bytes = store.max_size_mb.saturating_mul(1 << 20);
    let retention_ms = store.retention_hours.saturating_mul(3_600_000) as i64;
    let mut batch: Vec<DeviceEvent> = Vec::new();
    let mut events: Vec<NewEvent> = Vec::new();
    let mut alarm = AlarmLevel::Cleared;
    let mut next_housekeeping = Instant::now();
    let mut closed = false;
    let mut failures = 0u32;
    loop {
        if batch.is_empty() && !closed {
            match handle
                .block_on(async { tokio::time::timeout(Duration::from_secs(1), rx.recv()).await })
            {
                Ok(Some(ev)) => batch.push(ev),
                Ok(None) => closed = true,
                Err(_) => {}
            }
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(ev) => batch.push(ev),
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
            }
        }
        if Instant::now() >= next_housekeeping {
            next_housekeeping = Instant::now() + HOUSEKEEPING;
            if let Some(ev) = housekeeping(&mut outbox, cap_bytes, retention_ms, &mut alarm) {
                events.push(ev);
            }
        }
        let before = engine.state.clone();
        for ev in &batch {
            engine.apply(ev, &mut events);
        }
        if !events.is_empty() || engine.state != before {
            match outbox.commit(&events, &engine.state, now_ms()) {
                Ok(c) => {
                    committed.send_replace(c.last_seq);
                    failures = 0;
                }
                Err(e) => {
                    failures += 1;
                    tracing::error!(failures, "commit failed, will retry the same batch: {e}");
                    engine.state = before;
                    events.clear();
                    if closed && failures >= 5 {
                        tracing::error!("stopping with an uncommitted batch; the PLC counters still hold its parts");
                        return;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            }
        }
        events.clear();
        batch.clear();
        if closed {
            return;
        }
    }
}

/// Prunes by retention and size cap, and raises a store alarm when the level changes.
fn housekeeping(
    outbox: &mut Outbox,
    cap: u64,
    retention_ms: i64,
    alarm: &mut AlarmLevel,
) -> Option<NewEvent> {
    let pruned = match outbox.prune(now_ms() - retention_ms, cap) {
        Ok(n) => n,
        Err(e) => {
            tracing::error!("pruning the outbox: {e}");
            return None;
        }
    };
    if pruned > 0 {
        tracing::info!(pruned, "pruned delivered events");
    }
    let stats = outbox.stats().ok()?;
    let used = stats.used_bytes;
    let level = if used >= cap {
        AlarmLevel::Full
    } else if used >= cap / 10 * 9 {
        AlarmLevel::Warning
    } else if used < cap / 10 * 8 {
        AlarmLevel::Cleared
    } else {
        *alarm
    };
    if level == *alarm {
        return None;
    }
    *alarm = level;
    tracing::warn!(?level, used, cap, undelivered = stats.depth, "store alarm");
    let body = EventBody::StoreAlarm {
        level,
        used_bytes: used,
        cap_bytes: cap,
        undelivered: stats.depth,
    };
    Some(NewEvent::new(now_ms(), vec!["store".into()], body))
}
