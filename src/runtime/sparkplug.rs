//! Wires the Sparkplug B sink (when `[sparkplug] enabled`): its own read-only store connection
//! and cursor (moved by the store's owner); its DCMD writes go to the engine's command door like
//! every command.

use crate::config::CellConfig;
use crate::sparkplug;
use crate::store::{Outbox, StoreOwner};
use anyhow::Result;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Starts the sink if the config enables it, reading the store on a connection from `reader`;
/// otherwise forgets its cursor, so that an output turned off no longer holds rows in the store.
pub fn start(
    config: &CellConfig,
    reader: impl FnOnce() -> Result<Outbox>,
    owner: &StoreOwner,
    committed: watch::Receiver<u64>,
    stop: watch::Receiver<bool>,
    commands: mpsc::Sender<crate::cell::CommandIn>,
    ops: &crate::ops::Ops,
) -> Result<Option<JoinHandle<()>>> {
    let Some(mut settings) = sparkplug::settings(config, Some(commands))? else {
        if owner.run(|o| o.drop_sink(sparkplug::SINK))? {
            tracing::info!(
                "Sparkplug B turned off: its cursor no longer holds events in the store"
            );
        }
        return Ok(None);
    };
    settings.probe = ops.sparkplug().clone();
    // Sparkplug B only: the session is the runtime's broker connection in /health and to the
    // watchdog, where the absent JSON forwarder would otherwise read as down.
    let stand_in = settings.only_output.then(|| ops.forwarder().clone());
    settings.probe.enable(stand_in);
    tracing::info!(
        group_id = %settings.topics.group,
        edge_node_id = %settings.topics.node,
        primary_host = settings.primary_host.as_deref().unwrap_or("none"),
        "Sparkplug B edge node"
    );
    // The cursor before the engine starts, so that every event and value batch of this run is
    // the sink's, however late its task gets going.
    owner.run(move |o| {
        o.sink_cursor(sparkplug::SINK, |c| {
            sparkplug::Figures::from_cell(c).to_json()
        })
        .map(|_| ())
    })?;
    let reader = reader()?;
    Ok(Some(tokio::spawn(sparkplug::run(
        settings,
        reader,
        owner.clone(),
        committed,
        stop,
    ))))
}
