//! Publishes process values (docs/VALUES.md) on a connection of their own, after the events.
//!
//! Values are a lower class than production events. They go out only while no event waits in
//! the outbox (events the broker refuses and holds back aside), and on their own connection
//! (client id `{client id}-values`), so that a flood of values never sits in the events'
//! client queue or TCP stream ahead of a part count. QoS 1; a batch is deleted from the store
//! at the broker's acknowledgement. A batch the broker refuses stays and is sent again at the
//! next connection (the value cap bounds what waits).

use super::link::{self, Client, Ev, Options};
use crate::ops::{ForwarderProbe, ValueProbe};
use crate::store::{Outbox, StoreOwner};
use mes_edge_drivers::Backoff;
use rumqttc::QoS;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

#[derive(Clone)]
pub struct ValueSettings {
    /// One per broker of `[mqtt] urls`: the values follow the events to the broker they are on.
    pub options: Vec<Options>,
    /// `{root}/{cell path}/values/{device}`, from the device's name.
    pub topic: Arc<dyn Fn(&str) -> String + Send + Sync>,
    /// Batches awaiting acknowledgement at once.
    pub window: usize,
    pub probe: ValueProbe,
    /// The events' forwarder: how many refused events it holds back.
    pub events: ForwarderProbe,
}

/// Runs until `shutdown` turns true.
/// `outbox` reads; the store's `owner` deletes what the broker acknowledged.
pub async fn run(
    settings: ValueSettings,
    mut outbox: Outbox,
    owner: StoreOwner,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    // A cell that publishes no values opens no second connection and reads nothing.
    if outbox.values_held().unwrap_or(0) == 0 {
        tokio::select! {
            _ = settings.probe.next_commit() => {}
            _ = shutdown.changed() => return,
        }
    }
    loop {
        if *shutdown.borrow() {
            return;
        }
        let node = settings
            .events
            .broker_node()
            .min(settings.options.len() - 1);
        let (client, eventloop) = link::new(&settings.options[node], settings.window * 2 + 16);
        let (tx, rx) = mpsc::unbounded_channel();
        let poller = tokio::spawn(eventloop.drive(tx));
        let mut s = Sending {
            settings: &settings,
            client: &client,
            outbox: &mut outbox,
            owner: &owner,
            queued: VecDeque::new(),
            inflight: HashMap::new(),
            acked: Vec::new(),
            cursor: 0,
            node,
        };
        let lost = s.run(rx, &mut shutdown, &mut backoff).await;
        settings.probe.set_connected(false);
        s.flush_acked();
        let _ = tokio::time::timeout(Duration::from_secs(1), client.disconnect()).await;
        poller.abort();
        let Some(reason) = lost else { return };
        let delay = backoff.after_loss();
        let reason = crate::logging::field(&reason);
        tracing::debug!(%reason, retry_in = ?delay, "process values: broker connection lost");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return,
        }
    }
}

struct Sending<'a> {
    settings: &'a ValueSettings,
    client: &'a Client,
    outbox: &'a mut Outbox,
    owner: &'a StoreOwner,
    /// Handed to the client, waiting to be written, with their value counts.
    queued: VecDeque<(u64, u64)>,
    /// Written, waiting for the acknowledgement, by packet id.
    inflight: HashMap<u16, (u64, u64)>,
    acked: Vec<(u64, u64)>,
    /// Highest batch handed to the client in this connection.
    cursor: u64,
    /// The broker of this connection, in `[mqtt] urls`.
    node: usize,
}

impl Sending<'_> {
    /// None at shutdown, else why the connection was lost.
    async fn run(
        &mut self,
        mut events: mpsc::UnboundedReceiver<Result<Ev, String>>,
        shutdown: &mut watch::Receiver<bool>,
        backoff: &mut Backoff,
    ) -> Option<String> {
        let mut connected = false;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                ev = events.recv() => {
                    let ev = match ev {
                        Some(Ok(ev)) => ev,
                        Some(Err(e)) => return Some(e),
                        None => return Some("event loop ended".into()),
                    };
                    match ev {
                        Ev::ConnAck { .. } => {
                            connected = true;
                            self.settings.probe.set_connected(true);
                            backoff.connected();
                            self.fill();
                        }
                        Ev::Written(0) => {}
                        Ev::Written(pkid) => match self.queued.pop_front() {
                            Some(b) => {
                                self.inflight.insert(pkid, b);
                            }
                            None => return Some("a publish went out that was never queued".into()),
                        },
                        Ev::PubAck { pkid, refusal } => {
                            let Some(b) = self.inflight.remove(&pkid) else {
                                return Some(format!("acknowledgement for unknown packet id {pkid}"));
                            };
                            match refusal {
                                None => self.acked.push(b),
                                Some(r) => tracing::warn!(
                                    batch = b.0,
                                    reason = %r.describe(),
                                    "the broker refused a process value batch; it is sent again at the next connection"
                                ),
                            }
                            if self.room() * 4 >= self.settings.window {
                                self.fill();
                            }
                        }
                        Ev::Disconnect(reason) => return Some(reason),
                        _ => {}
                    }
                }
                _ = tick.tick() => {
                    self.flush_acked();
                    // The events moved to another broker: so do the values, between batches.
                    if self.settings.events.broker_node() != self.node && self.inflight.is_empty() && self.queued.is_empty() {
                        return Some("following the events to another broker".into());
                    }
                    if connected {
                        self.fill();
                    }
                }
                _ = shutdown.changed() => return None,
            }
        }
    }

    fn room(&self) -> usize {
        self.settings
            .window
            .saturating_sub(self.queued.len() + self.inflight.len())
    }

    /// Whether an event waits to go out (one the broker refuses and holds back aside). The
    /// store binds seq as an i64: i64::MAX is "all of them".
    fn events_waiting(&self) -> bool {
        let held = self.settings.events.refusal().map_or(0, |(n, _)| n);
        match self.outbox.undelivered_up_to(i64::MAX as u64) {
            Ok((n, _)) => n > held,
            Err(e) => {
                tracing::error!("reading the outbox: {e}");
                true
            }
        }
    }

    /// Hands the client as many value batches as the window allows, if no event waits.
    fn fill(&mut self) {
        let room = self.room();
        if room == 0 || self.events_waiting() {
            return;
        }
        let rows = match self.outbox.pending_values(self.cursor, room) {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!("reading process values: {e}");
                return;
            }
        };
        for row in rows {
            let topic = (self.settings.topic)(&row.device);
            if let Err(e) = self
                .client
                .try_publish(topic, QoS::AtLeastOnce, false, row.payload)
            {
                tracing::debug!("client queue full: {e}");
                return;
            }
            self.queued.push_back((row.batch, row.count));
            self.cursor = row.batch;
        }
    }

    fn flush_acked(&mut self) {
        if self.acked.is_empty() {
            return;
        }
        let batches: Vec<u64> = self.acked.iter().map(|b| b.0).collect();
        let res =
            tokio::task::block_in_place(|| self.owner.run(move |o| o.values_delivered(&batches)));
        match res {
            Ok(()) => {
                self.settings
                    .probe
                    .delivered(self.acked.iter().map(|b| b.1).sum());
                self.acked.clear();
            }
            // Kept for the next flush; if the process dies first they are simply sent again.
            Err(e) => tracing::error!("deleting delivered process values: {e}"),
        }
    }
}
