//! Publishes process values (docs/VALUES.md) on a connection of their own, after the events.
//!
//! Values are a lower class than production events. They go out only while no event waits in
//! the outbox (events the broker refuses and holds back aside), and on their own connection
//! (client id `{client id}-values`), so that a flood of values never sits in the events'
//! client queue or TCP stream ahead of a part count. QoS 1. The forwarder is a sink with a
//! value cursor in the store ([`SINK`]): the broker's acknowledgements move it (a batch goes
//! once every output has it); a batch the broker refuses is held and sent again at the next
//! connection and every [`REPROBE`] while the broker refuses (the value cap bounds what waits).

use super::link::{self, Client, Ev, Options};
use super::window::{Row, Window};
use crate::ops::{ForwarderProbe, ValueProbe};
use crate::store::{Outbox, StoreOwner, ValuesMoved};
use mes_edge_drivers::Backoff;
use rumqttc::QoS;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// The forwarder's cursor in the store.
pub const SINK: &str = "values";
/// How often batches the broker refused are sent again on a connection that stays up. A
/// refusal is a broker's setting (an ACL, a quota) that a person changes: this is how soon
/// after the change the held values follow; a broker that still refuses sees one publish of
/// each held batch per period.
pub const REPROBE: Duration = Duration::from_secs(10);
/// How often the cursor of what the broker acknowledged is stored (and delivered batches
/// deleted): one transaction, with its fsync, a second rather than ten. Bench S2 with
/// publishing (10 devices, 100 batches/s): the store thread 0.90 -> 0.58 % of a core, the
/// process 3.2 -> 2.3 % (2 runs each, 2026-12-07). The cost: after a kill -9 or a power loss,
/// the batches acknowledged in the last second go out again; MOM drops them on (store_id,
/// batch), as after any reconnect. A clean stop stores the cursor on the way out.
const CURSOR_EVERY: Duration = Duration::from_secs(1);

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
        // The cursor as stored: what the last connection had acknowledged and stored.
        let cursor = match owner.ask_run(|o| o.values_cursor(SINK)).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("reading the process values cursor: {e}");
                poller.abort();
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut s = Sending {
            settings: &settings,
            client: &client,
            outbox: &mut outbox,
            owner: &owner,
            window: Window::new(settings.window, cursor),
            again: Some(0),
            reprobe_at: None,
            node,
        };
        let lost = s.run(rx, &mut shutdown, &mut backoff).await;
        settings.probe.set_connected(false);
        s.store_cursor();
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
    window: Window,
    /// Sending again the batches the broker refused before, after this one; None once done on
    /// this connection.
    again: Option<u64>,
    /// When the batches refused on this connection are sent again.
    reprobe_at: Option<tokio::time::Instant>,
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
        let mut tick = tokio::time::interval(CURSOR_EVERY);
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
                        Ev::Written(pkid) => {
                            if let Err(e) = self.window.written(pkid) {
                                return Some(e);
                            }
                        }
                        Ev::PubAck { pkid, refusal } => {
                            let row = match self.window.answered(pkid, refusal.is_some()) {
                                Ok(row) => row,
                                Err(e) => return Some(e),
                            };
                            if let Some(r) = refusal {
                                if self.reprobe_at.is_none() {
                                    tracing::warn!(
                                        batch = row.id,
                                        reason = %r.describe(),
                                        again_in = ?REPROBE,
                                        "the broker refused a process value batch; it is held and sent again"
                                    );
                                    self.reprobe_at = Some(tokio::time::Instant::now() + REPROBE);
                                }
                            }
                            if self.window.room() * 4 >= self.settings.window {
                                self.fill();
                            }
                        }
                        Ev::Disconnect(reason) => return Some(reason),
                        _ => {}
                    }
                }
                _ = tick.tick() => {
                    self.store_cursor();
                    if self.again.is_none()
                        && self.reprobe_at.is_some_and(|at| tokio::time::Instant::now() >= at)
                    {
                        // Only once the move that holds them is stored: they are read from the store.
                        if self.window.to_store().is_none() {
                            self.reprobe_at = None;
                            self.again = Some(0);
                        }
                    }
                    // The events moved to another broker: so do the values, between batches.
                    if self.settings.events.broker_node() != self.node && self.window.is_idle() {
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

    /// Whether an event waits to go out: committed and not yet passed by the JSON events
    /// forwarder's cursor (one the broker refuses is passed and held: it does not wait).
    fn events_waiting(&self) -> bool {
        match self.outbox.events_behind(crate::store::EVENTS_SINK) {
            Ok(n) => n > 0,
            Err(e) => {
                tracing::error!("reading the outbox: {e}");
                true
            }
        }
    }

    /// Hands the client as many value batches as the window allows, if no event waits: first,
    /// once per connection, the batches the broker refused before, then on from the cursor.
    fn fill(&mut self) {
        if self.window.room() == 0 || self.events_waiting() {
            return;
        }
        let room = self.window.room();
        let rows = match self.again {
            Some(after) => self.outbox.held_value_rows(SINK, after, room),
            None => self.outbox.value_rows_after(self.window.read_to(), room),
        };
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!("reading process values: {e}");
                return;
            }
        };
        let again = self.again.is_some();
        if again && rows.is_empty() {
            self.again = None;
            return self.fill();
        }
        for row in rows {
            let topic = (self.settings.topic)(&row.device);
            if let Err(e) = self
                .client
                .try_publish(topic, QoS::AtLeastOnce, false, row.payload)
            {
                tracing::debug!("client queue full: {e}");
                return;
            }
            if again {
                self.again = Some(row.batch);
            }
            self.window.handed(Row {
                id: row.batch,
                weight: row.count,
                again,
            });
        }
    }

    /// Stores the cursor's move: what the broker took, held and released since the last store.
    fn store_cursor(&mut self) {
        let Some(m) = self.window.to_store() else {
            return;
        };
        let moved = ValuesMoved {
            to: m.to,
            held: m.held.clone(),
            taken: m.taken.clone(),
            last: Vec::new(),
        };
        let weight = m.weight;
        let res = tokio::task::block_in_place(|| {
            self.owner.run(move |o| o.advance_sink_values(SINK, &moved))
        });
        match res {
            Ok(()) => {
                self.window.stored();
                self.settings.probe.delivered(weight);
            }
            // Kept, and grows, for the next store; if the process dies first the batches
            // after the stored cursor are simply sent again.
            Err(e) => tracing::error!("storing the process values cursor: {e}"),
        }
    }
}
