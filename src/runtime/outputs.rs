//! The cell's outputs to MOM: the JSON events forwarder (with MOM's commands), the JSON
//! process values forwarder, and the Sparkplug B edge node, each reading on a read-only store
//! connection of its own and writing through the store's owner, each woken by the engine's
//! commits, all stopped together.

use super::sparkplug;
use crate::cell::CommandIn;
use crate::config::CellConfig;
use crate::forwarder::{self, ForwarderSettings};
use crate::ops::Ops;
use crate::store::{Outbox, StoreOwner};
use anyhow::Result;
use rumqttc::QoS;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub(super) struct Outputs {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Outputs {
    /// Starts the outputs the config turns on.
    pub fn start(
        config: &CellConfig,
        ops: &Ops,
        owner: &StoreOwner,
        committed: &watch::Receiver<u64>,
        commands: mpsc::Sender<CommandIn>,
    ) -> Result<Outputs> {
        let (stop_tx, stop) = watch::channel(false);
        let mut tasks = Vec::new();
        // Sparkplug B only: no JSON forwarder (and so no MQTT commands from MOM), and the
        // values go out as DDATA alone.
        let json = ops.sinks_enabled().events;
        // The JSON cursors before the engine starts, like Sparkplug's; an output turned off
        // no longer holds events or value batches.
        owner.run(move |o| {
            if json {
                o.make_events_cursor(crate::store::EVENTS_SINK)?;
                o.values_cursor(forwarder::VALUES_SINK)?;
            } else {
                o.drop_sink(crate::store::EVENTS_SINK)?;
                o.drop_sink(forwarder::VALUES_SINK)?;
            }
            Ok(())
        })?;
        if json {
            let settings = ForwarderSettings {
                probe: ops.forwarder().clone(),
                ..forwarder_settings(config, commands.clone())?
            };
            tasks.push(tokio::spawn(forwarder::run(
                settings,
                reader(config)?,
                owner.clone(),
                committed.clone(),
                stop.clone(),
            )));
        }
        // A Sparkplug host's DCMD comes through the same door as every command.
        let spb = sparkplug::start(
            config,
            || reader(config),
            owner,
            committed.clone(),
            stop.clone(),
            commands,
            ops,
        )?;
        tasks.extend(spb);
        if json {
            tasks.push(tokio::spawn(forwarder::run_values(
                value_settings(config, ops)?,
                reader(config)?,
                owner.clone(),
                stop,
            )));
        }
        Ok(Outputs {
            stop: stop_tx,
            tasks,
        })
    }

    /// Once the engine's last batch is committed: each output gets its bounded wait for the
    /// broker's acknowledgements, then ends.
    pub async fn stop(self) -> Result<()> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            task.await?;
        }
        Ok(())
    }
}

/// A read-only connection to the store for one output.
pub(super) fn reader(config: &CellConfig) -> Result<Outbox> {
    Ok(Outbox::open_read_only(
        &config.store.path,
        &config.cell.joined(),
    )?)
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

fn value_settings(config: &CellConfig, ops: &Ops) -> Result<forwarder::ValueSettings> {
    let (root, cell) = (config.mqtt.topic_root.clone(), config.cell.clone());
    Ok(forwarder::ValueSettings {
        options: forwarder::values_options(config)?,
        topic: Arc::new(move |device| forwarder::values_topic(&root, &cell, device)),
        window: config.mqtt.inflight as usize,
        probe: ops.values().clone(),
        events: ops.forwarder().clone(),
    })
}
