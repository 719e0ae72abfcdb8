//! The Sparkplug B sink: its own MQTT session (a clean session whose will is the NDEATH) that
//! publishes the outbox's events in sequence order as node metrics, and its own cursor over the
//! outbox, moved at the broker's acknowledgements (QoS 1) so that every event reaches it at
//! least once, whatever the JSON forwarder does.

use super::metrics::Figures;
use super::payload;
use super::session::SinkStore;
use super::settings::{SparkplugSettings, SINK};
use super::wire::{poll, Ended};
use crate::store::{Outbox, StoreOwner};
use mes_edge_drivers::{now_ms, Backoff};
use rumqttc::{AsyncClient, LastWill, QoS};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Runs until `shutdown` turns true. `committed` carries the last committed sequence number.
pub async fn run(
    settings: SparkplugSettings,
    reader: Outbox,
    owner: StoreOwner,
    mut committed: watch::Receiver<u64>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    // The command queue, the primary host's last STATE, the retained commands already reported.
    let mut inbound = super::inbound::Inbound::new(&settings);
    // Each tag's last value, kept across connections; read from the store at the first.
    let mut last: Option<super::values::DeviceValues> = None;
    let mut outbox = SinkStore { reader, owner };
    loop {
        if *shutdown.borrow() {
            return;
        }
        // A new bdSeq for every connect, on disk before the CONNECT carries it in its will: after
        // a kill -9 the next connect cannot reuse the number the host paired with the last birth.
        let first = last.is_none();
        let start = outbox
            .owner
            .ask_run(move |o| {
                let c = o.sink_cursor(SINK, |cell| Figures::from_cell(cell).to_json())?;
                let bd_seq = c.bd_seq.wrapping_add(1);
                o.set_sink_bd_seq(SINK, bd_seq)?;
                let stored = match first {
                    true => Some(o.sink_device_values(SINK)?),
                    false => None,
                };
                Ok((c, bd_seq, stored))
            })
            .await;
        let (cursor, bd_seq) = match start {
            Ok((c, bd_seq, stored)) => {
                if let Some(stored) = stored {
                    last = Some(super::values::DeviceValues::from_stored(stored));
                }
                (c, bd_seq)
            }
            Err(e) => {
                tracing::error!("reading the Sparkplug cursor: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut opts = settings.mqtt.options();
        opts.set_last_will(LastWill::new(
            settings.topics.node("NDEATH"),
            payload::node_death(bd_seq, now_ms() as u64),
            QoS::AtLeastOnce,
            false,
        ));
        let (client, mut eventloop) = AsyncClient::new(opts, settings.window * 2 + 64);
        eventloop.set_network_options(crate::forwarder::link::no_delay());
        let (tx, mut rx) = mpsc::unbounded_channel();
        let poller = tokio::spawn(poll(eventloop, tx));
        let mut session = super::session::Session::new(
            &settings,
            &client,
            &mut outbox,
            cursor,
            bd_seq,
            &mut inbound,
            last.take().unwrap_or_default(),
        );
        let ended = session
            .run(&mut rx, &mut committed, &mut shutdown, &mut backoff)
            .await;
        session.persist();
        settings.probe.connected(false, bd_seq);
        last = Some(session.take_last());
        if !matches!(ended, Ended::Lost(_) | Ended::Unreached(_)) {
            // A clean DISCONNECT drops the will: the death certificate is ours to send.
            let death = payload::node_death(bd_seq, now_ms() as u64);
            let _ = client.try_publish(
                settings.topics.node("NDEATH"),
                QoS::AtLeastOnce,
                false,
                death,
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), client.disconnect()).await;
        // The DISCONNECT must reach the broker before the process may end, or the broker sends
        // the will as well: the event loop ends once it is written.
        let _ = tokio::time::timeout(Duration::from_secs(1), poller).await;
        drop(rx);
        let delay = match ended {
            Ended::Shutdown => return,
            Ended::HostOffline => {
                let next = match settings.mqtt.many() {
                    true => "moving to the next server",
                    false => "waiting for it",
                };
                tracing::info!("Sparkplug primary host offline: edge node disconnected, {next}");
                settings.probe.backing_off(Duration::from_millis(500));
                Duration::from_millis(500)
            }
            Ended::Unreached(reason) => {
                // The number goes to the next CONNECT that is sent.
                let back = bd_seq.wrapping_sub(1);
                let stored = outbox.owner.ask_run(move |o| o.set_sink_bd_seq(SINK, back));
                if let Err(e) = stored.await {
                    tracing::error!("storing the Sparkplug bdSeq: {e}");
                }
                let delay = backoff.after_loss();
                settings.probe.backing_off(delay);
                tracing::warn!(%reason, retry_in = ?delay, "Sparkplug broker not reached");
                delay
            }
            Ended::Lost(reason) => {
                let delay = backoff.after_loss();
                settings.probe.backing_off(delay);
                tracing::warn!(%reason, retry_in = ?delay, "Sparkplug broker connection lost");
                delay
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return,
        }
    }
}
