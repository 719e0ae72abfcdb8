//! Wires one cell together: drivers → engine (and store) → forwarder. Data flows one way; each
//! stage only ever waits on the one before it.

mod embedded;
mod engine_loop;
mod sparkplug;
mod values;
mod write_back;

pub use embedded::{DriverFuture, EmbeddedDrivers};

use crate::cell::{CellModel, CellState, CommandIn, Engine};
use crate::config::CellConfig;
use crate::forwarder::{self, ForwarderSettings};
use crate::ops::{self, health::status_summary, notify::status_line, reload::ReloadRequests, Ops};
use crate::store::{Checkpointer, Outbox};
use anyhow::{Context, Result};
use engine_loop::engine_loop;
use rumqttc::QoS;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Commands waiting for the engine. Each holds at most 64 KiB of payload (the MQTT intake keeps
/// no more of a larger one; the control socket reads no more), so the queue holds at most
/// 8 MiB. Above the MQTT 5 Receive Maximum (`forwarder::RECEIVE_MAXIMUM`), so that what the
/// broker sends always finds room beside the operator's and Sparkplug's commands.
const COMMAND_QUEUE: usize = 128;

/// Runs the cell until `shutdown` turns true, then stops in order: drivers, a last commit, and a
/// bounded wait for the broker to acknowledge what is in flight.
pub async fn run(config: CellConfig, shutdown: watch::Receiver<bool>) -> Result<()> {
    run_reloadable(config, shutdown, None).await
}

/// [`run`], taking a new config at each reload request (SIGHUP): the drivers, the cell model
/// and the engine thread are rebuilt; the store, the forwarder's broker session and the counts
/// (the engine's state, committed in the store) run on. A config that fails its checks, or
/// changes what only a restart can, is refused and the one in force stays.
pub async fn run_reloadable(
    config: CellConfig,
    shutdown: watch::Receiver<bool>,
    reload: Option<ReloadRequests>,
) -> Result<()> {
    run_cell(config, shutdown, reload, None).await
}

/// [`run`] with the drivers `embedded` brings in place of those of the config's devices (see
/// [`EmbeddedDrivers`]); for programs that embed the runtime, such as the benchmark.
pub async fn run_with_drivers(
    config: CellConfig,
    shutdown: watch::Receiver<bool>,
    embedded: EmbeddedDrivers,
) -> Result<()> {
    run_cell(config, shutdown, None, Some(embedded)).await
}

async fn run_cell(
    mut config: CellConfig,
    mut shutdown: watch::Receiver<bool>,
    mut reload: Option<ReloadRequests>,
    embedded: Option<EmbeddedDrivers>,
) -> Result<()> {
    let cell_path = config.cell.joined();
    if let Some(dir) = config.store.path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the store's folder {}", dir.display()))?;
    }
    // Held until the runtime ends: a second runtime on this store stops here.
    let _lock = crate::store::StoreLock::acquire(&config.store.path)?;
    crate::store::identity::restrict_files(&config.store.path)?;
    // Every connection of the runtime, and every one opened again from them, checkpoints on
    // the checkpointer's thread.
    let checkpointer = Checkpointer::start(&config.store.path, config.store.synchronous)?;
    let mut writer = Outbox::open(&config.store.path, config.store.synchronous, &cell_path)?;
    checkpointer.attach(&mut writer)?;
    if let Some((recorded, held)) = writer.reconcile_sequence()? {
        tracing::warn!(
            recorded,
            held,
            "the store's last sequence number was behind the events it holds (was it written by a second runtime?); the sequence goes on after the last event held"
        );
    }
    let announced =
        crate::store::identity::claim(&mut writer, &config.store.path, mes_edge_drivers::now_ms())?;
    let reader = writer.open_again(config.store.synchronous)?;
    let state = writer.load_state()?;
    tracing::info!(
        cell = %cell_path,
        store_id = writer.store_id(),
        last_seq = writer.last_seq(),
        good_total = state.good_total,
        scrap_total = state.scrap_total,
        "store opened"
    );
    let (command_tx, command_rx) = mpsc::channel::<CommandIn>(COMMAND_QUEUE);
    let settings = forwarder_settings(&config, command_tx.clone())?;
    // A Sparkplug host's DCMD comes through the same door as every command.
    let spb_commands = command_tx.clone();
    let control = crate::control::serve(&config.store.path, command_tx)?;

    let ops = Ops::new(&config);
    // The store's announcement is an event committed by this process, too.
    if announced.is_some() {
        ops.add_produced(1);
    }
    let (committed_tx, committed_rx) = watch::channel(writer.last_seq());
    let (fwd_stop_tx, fwd_stop) = watch::channel(false);
    let settings = ForwarderSettings {
        probe: ops.forwarder().clone(),
        ..settings
    };
    // Sparkplug B only: no JSON forwarder (and so no MQTT commands from MOM).
    let json = config
        .sparkplug
        .as_ref()
        .is_none_or(|s| !s.enabled || s.json);
    let fwd = json.then(|| {
        tokio::spawn(forwarder::run(
            settings,
            reader,
            committed_rx.clone(),
            fwd_stop.clone(),
        ))
    });
    let spb = sparkplug::start(
        &config,
        &mut writer,
        committed_rx.clone(),
        fwd_stop,
        spb_commands,
        &ops,
    )?;
    // Sparkplug B only: the values go out as DDATA alone.
    let values_fwd = if json {
        Some(tokio::spawn(forwarder::run_values(
            forwarder::ValueSettings {
                options: forwarder::values_options(&config)?,
                topic: {
                    let (root, cell) = (config.mqtt.topic_root.clone(), config.cell.clone());
                    Arc::new(move |device| forwarder::values_topic(&root, &cell, device))
                },
                window: config.mqtt.inflight as usize,
                probe: ops.values().clone(),
                events: ops.forwarder().clone(),
            },
            writer.open_again(config.store.synchronous)?,
            fwd_stop_tx.subscribe(),
        )))
    } else {
        None
    };
    let (ops_stop_tx, ops_stop) = watch::channel(false);
    ops::supervisor::start_endpoint(&config.health, &ops, ops_stop.clone()).await;
    let supervisor =
        ops::supervisor::supervise(ops.clone(), committed_rx, config.store.clone(), ops_stop);

    let mut cell = start_cell(
        &config,
        writer,
        state,
        command_rx,
        committed_tx.clone(),
        &ops,
        embedded.as_ref(),
    )?;
    tracing::info!("running");
    ops.notify(&format!("READY=1\n{}", status_line(&status_summary(&ops))));
    // After READY: systemd hears that first, then the watchdog and status updates.
    tokio::spawn(supervisor);

    // The engine only ends early by panicking: stop, and let systemd restart the service.
    let engine_died = loop {
        tokio::select! {
            _ = ops::stopped(&mut shutdown) => break false,
            _ = &mut cell.engine_done => break true,
            path = ops::reload::requested(&mut reload) => {
                ops.notify("RELOADING=1");
                match ops::reload::prepare(&path, &config) {
                    Ok(new) => {
                        let commands = cell.stop().await?.context("the engine thread ended during a reload")?;
                        config = new;
                        let mut writer = Outbox::open(&config.store.path, config.store.synchronous, &cell_path)?;
                        checkpointer.attach(&mut writer)?;
                        let state = writer.load_state()?;
                        cell = start_cell(&config, writer, state, commands, committed_tx.clone(), &ops, embedded.as_ref())?;
                        ops.reload_applied();
                        tracing::info!(config = %path.display(), devices = config.devices.len(), "config reloaded");
                    }
                    Err(problems) => ops::reload::refuse(&ops, &path, &problems),
                }
                ops.notify(&format!("READY=1\n{}", status_line(&status_summary(&ops))));
            }
        }
    };
    tracing::info!("stopping");
    ops.notify("STOPPING=1");
    // Polling stops and the engine commits what the drivers handed it; then the forwarder gets
    // a bounded time for the broker's acknowledgements.
    cell.stop().await?;
    let _ = fwd_stop_tx.send(true);
    for task in [fwd, spb, values_fwd].into_iter().flatten() {
        task.await?;
    }
    let _ = ops_stop_tx.send(true);
    control.abort();
    // How far this store went, exactly, for a store that may replace it (the supervisor only
    // brings it up to date every few seconds).
    if let Ok(s) = Outbox::open(&config.store.path, config.store.synchronous, &cell_path)
        .and_then(|o| o.stats())
    {
        let lineage = crate::store::identity::Lineage {
            store_id: s.store_id,
            last_seq: s.last_seq,
        };
        if let Err(e) = crate::store::identity::write_lineage(&config.store.path, &lineage) {
            tracing::warn!("writing the store's identity file: {e}");
        }
    }
    if engine_died {
        anyhow::bail!("the engine thread ended unexpectedly; nothing uncommitted was counted");
    }
    tracing::info!("stopped");
    Ok(())
}

/// The part of the cell a reload rebuilds: the drivers, the cell model and the engine thread.
struct Cell {
    drivers: tokio::task::JoinSet<()>,
    drivers_stop: watch::Sender<bool>,
    engine_thread: std::thread::JoinHandle<mpsc::Receiver<CommandIn>>,
    engine_done: tokio::sync::oneshot::Receiver<()>,
}

impl Cell {
    /// Stops polling and lets the engine commit everything the drivers handed it. Gives back
    /// the command channel (it outlives the cell), or None if the engine thread panicked.
    async fn stop(mut self) -> Result<Option<mpsc::Receiver<CommandIn>>> {
        let _ = self.drivers_stop.send(true);
        while self.drivers.join_next().await.is_some() {}
        // The engine ends once every driver has dropped its sender and the last batch is committed.
        let engine = self.engine_thread;
        Ok(tokio::task::spawn_blocking(move || engine.join())
            .await?
            .ok())
    }
}

/// Starts the drivers and the engine thread for `config`, the engine resuming from `state`.
fn start_cell(
    config: &CellConfig,
    writer: Outbox,
    state: CellState,
    command_rx: mpsc::Receiver<CommandIn>,
    committed_tx: watch::Sender<u64>,
    ops: &Ops,
    embedded: Option<&EmbeddedDrivers>,
) -> Result<Cell> {
    let model = CellModel::from_config(config);
    let (device_tx, device_rx) = mpsc::channel(1024);
    let (drivers_stop_tx, drivers_stop) = watch::channel(false);
    let mut drivers = tokio::task::JoinSet::new();
    let mut writers = write_back::Writers::new();
    match embedded {
        // Embedded drivers take the place of those of the config's devices.
        Some(embedded) => {
            drivers.spawn(embedded(device_tx.clone(), drivers_stop.clone()));
        }
        None => {
            let mut specs = config.drivers.clone();
            ops.instrument(&mut specs);
            for spec in specs {
                let driver = spec
                    .start(device_tx.clone(), drivers_stop.clone())
                    .map_err(anyhow::Error::msg)?;
                drivers.spawn(driver.task);
                writers.extend(driver.writers);
            }
        }
    }
    drop(device_tx);

    let engine = Engine::new(model, state);
    let store_cfg = config.store.clone();
    let handle = tokio::runtime::Handle::current();
    let alive = ops.engine().clone();
    let (written_tx, written_rx) = mpsc::unbounded_channel();
    let writes = write_back::WriteQueues::start(&writers, written_tx, &handle);
    let values = crate::cell::ProcessValues::new(config.values.clone());
    let value_probe = ops.values().clone();
    ops.tags().set_tags(config);
    let tags = ops.tags().clone();
    let (engine_done_tx, engine_done) = tokio::sync::oneshot::channel::<()>();
    let engine_thread = std::thread::Builder::new()
        .name("engine".into())
        .spawn(move || {
            let mut command_rx = command_rx;
            let mut written_rx = written_rx;
            engine_loop(
                engine,
                writer,
                device_rx,
                &mut command_rx,
                committed_tx,
                store_cfg,
                handle,
                alive,
                writes,
                &mut written_rx,
                values,
                value_probe,
                tags,
            );
            let _ = engine_done_tx.send(());
            command_rx
        })?;
    Ok(Cell {
        drivers,
        drivers_stop: drivers_stop_tx,
        engine_thread,
        engine_done,
    })
}

fn forwarder_settings(
    config: &CellConfig,
    commands: mpsc::Sender<CommandIn>,
) -> Result<ForwarderSettings> {
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
        commands: Some(forwarder::CommandIntake {
            topic: forwarder::command_topic(&config.mqtt.topic_root, &config.cell),
            busy: format!(
                "{}/busy",
                forwarder::event_topic(&config.mqtt.topic_root, &config.cell, "command_response")
            ),
            engine: commands,
        }),
        // The runtime hands in the probe its health endpoint reads.
        probe: Default::default(),
    })
}
