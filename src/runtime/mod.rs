//! Wires one cell together: drivers → engine (and store) → forwarder. Data flows one way; each
//! stage only ever waits on the one before it.

mod devices;
mod engine_loop;

pub use devices::modbus_devices;

use crate::cell::{CellModel, Engine};
use crate::config::CellConfig;
use crate::forwarder::{self, ForwarderSettings};
use crate::store::Outbox;
use anyhow::{Context, Result};
use engine_loop::engine_loop;
use mes_edge_drivers::modbus;
use rumqttc::QoS;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

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
