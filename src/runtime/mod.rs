//! Wires one cell together: drivers → engine (and store) → forwarder. Data flows one way; each
//! stage only ever waits on the one before it.

mod clock;
#[cfg(test)]
mod counting_in_virtual_time;
mod embedded;
mod engine_loop;
mod housekeeping;
mod outputs;
mod sparkplug;
mod store_open;
mod values;
mod write_back;

pub use embedded::{DriverFuture, EmbeddedDrivers};

use crate::cell::{CellModel, CellState, CommandIn, Engine};
use crate::config::CellConfig;
use crate::ops::{self, reload::ReloadRequests, Ops};
use crate::store::StoreOwner;
use anyhow::{Context, Result};
use engine_loop::{EngineInputs, EngineLoop};
use outputs::Outputs;
use store_open::HeldStore;
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
    let (store, state) = HeldStore::open(&config, &cell_path)?;
    let ops = Ops::new(&config);
    // The store's announcement is an event committed by this process, too.
    if store.announced {
        ops.add_produced(1);
    }
    let (command_tx, command_rx) = mpsc::channel::<CommandIn>(COMMAND_QUEUE);
    let (committed_tx, committed_rx) = watch::channel(store.last_seq);
    let outputs = Outputs::start(
        &config,
        &ops,
        &store.owner,
        &committed_rx,
        command_tx.clone(),
    )?;
    let control = crate::control::serve(&config.store.path, command_tx, store.owner.clone())?;
    let (ops_stop_tx, ops_stop) = watch::channel(false);
    ops::supervisor::start_endpoint(&config.health, &ops, ops_stop.clone()).await;
    let supervisor =
        ops::supervisor::supervise(ops.clone(), committed_rx, config.store.clone(), ops_stop);
    let mut cell = start_cell(
        &config,
        store.owner.clone(),
        state,
        command_rx,
        committed_tx.clone(),
        &ops,
        embedded.as_ref(),
    )?;
    tracing::info!("running");
    // The supervisor's first turn tells systemd READY, before any watchdog ping or status.
    ops.ready();
    tokio::spawn(supervisor);
    // The pages only the start ran go back once it has settled (docs/FOOTPRINT.md).
    tokio::spawn(ops::start_pages::hand_back_when_settled());

    // The engine only ends early by a store fault no retry mends, or by panicking: stop, and
    // let systemd restart the service.
    let engine_died = loop {
        tokio::select! {
            _ = ops::stopped(&mut shutdown) => break None,
            ended = &mut cell.engine_done => break Some(ended.unwrap_or_else(|_| "it panicked".into())),
            path = ops::reload::requested(&mut reload) => {
                cell = reload_cell(cell, &path, &mut config, &store, &committed_tx, &ops, embedded.as_ref()).await?;
            }
        }
    };
    tracing::info!("stopping");
    ops.notify("STOPPING=1");
    // Polling stops and the engine commits what the drivers handed it; then the outputs get
    // a bounded time for the broker's acknowledgements.
    cell.stop().await?;
    outputs.stop().await?;
    let _ = ops_stop_tx.send(true);
    control.abort();
    store.close(engine_died.is_none());
    if let Some(why) = engine_died {
        anyhow::bail!("the engine stopped: {why}; nothing uncommitted was counted");
    }
    tracing::info!("stopped");
    Ok(())
}

/// A reload (SIGHUP): a config that passes its checks replaces the cell (drivers, model,
/// engine thread) and the store, the outputs and the counts run on; one that does not is
/// refused and the one in force stays.
async fn reload_cell(
    cell: Cell,
    path: &std::path::Path,
    config: &mut CellConfig,
    store: &HeldStore,
    committed_tx: &watch::Sender<u64>,
    ops: &Ops,
    embedded: Option<&EmbeddedDrivers>,
) -> Result<Cell> {
    ops.notify("RELOADING=1");
    let cell = match ops::reload::prepare(path, config) {
        Ok(new) => {
            let commands = cell
                .stop()
                .await?
                .context("the engine thread ended during a reload")?;
            *config = new;
            let state = store.owner.run(|o| o.load_state())?;
            let cell = start_cell(
                config,
                store.owner.clone(),
                state,
                commands,
                committed_tx.clone(),
                ops,
                embedded,
            )?;
            ops.reload_applied();
            tracing::info!(config = %path.display(), devices = config.devices.len(), "config reloaded");
            cell
        }
        Err(problems) => {
            ops::reload::refuse(ops, path, &problems);
            cell
        }
    };
    ops.ready();
    Ok(cell)
}

/// The part of the cell a reload rebuilds: the drivers, the cell model and the engine thread.
struct Cell {
    drivers: tokio::task::JoinSet<()>,
    drivers_stop: watch::Sender<bool>,
    engine_thread: std::thread::JoinHandle<mpsc::Receiver<CommandIn>>,
    /// Why the engine thread ended; dropped unsent if it panicked.
    engine_done: tokio::sync::oneshot::Receiver<String>,
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
    owner: StoreOwner,
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

    let handle = tokio::runtime::Handle::current();
    let (written_tx, written) = mpsc::unbounded_channel();
    ops.tags().set_tags(config);
    let inputs = EngineInputs {
        engine: Engine::new(model, state),
        owner,
        devices: device_rx,
        commands: command_rx,
        written,
        committed: committed_tx,
        store: config.store.clone(),
        writes: write_back::WriteQueues::start(&writers, written_tx, &handle),
        handle,
        alive: ops.engine().clone(),
        values: crate::cell::ProcessValues::new(config.values.clone()),
        value_probe: ops.values().clone(),
        tags: ops.tags().clone(),
        clock: Box::new(clock::SystemClock),
    };
    let (engine_done_tx, engine_done) = tokio::sync::oneshot::channel::<String>();
    let engine_thread = std::thread::Builder::new()
        .name("engine".into())
        .spawn(move || {
            let (commands, fault) = EngineLoop::new(inputs).run();
            let _ = engine_done_tx.send(fault.unwrap_or_else(|| "its inputs closed".into()));
            commands
        })?;
    Ok(Cell {
        drivers,
        drivers_stop: drivers_stop_tx,
        engine_thread,
        engine_done,
    })
}
