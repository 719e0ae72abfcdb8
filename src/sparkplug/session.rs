//! One connection of the Sparkplug sink: waits for the primary host (if one is configured),
//! births the node and its online devices, then publishes each committed event that changes a
//! metric as one NDATA (or a DBIRTH/DDEATH for a device's status), in sequence order. Events
//! committed before the birth are history: their metrics go out with `is_historical`, after a
//! birth that already shows the figures they lead to. Once every committed event is handed
//! out, the process values follow as DDATA (values.rs).

use super::inbound::{Heard, Inbound};
use super::metrics::{Change, Figures, NODE_METRICS};
use super::payload::{self, metric};
use super::settings::{SparkplugSettings, SINK};
use super::values::{DeviceValues, ValueStream};
use super::wire::{Ended, Ev, Incoming, Inflight, Queued, Row};
use crate::forwarder::window::InOrder;
use crate::store::{Outbox, SinkCursor, StoreOwner};
use mes_edge_drivers::{now_ms, Backoff};
use rumqttc::{AsyncClient, QoS};
use serde_json::Value as Json;
use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// The sink's view of the store: it reads on a connection of its own and asks the store's
/// owner to move its cursor.
pub struct SinkStore {
    pub reader: Outbox,
    pub owner: StoreOwner,
}

/// An event handed to the client (or skipped: it changes no metric), in sequence order.
/// A committed event handed to the session: its figures move once the broker has it.
pub struct Pending {
    kind: String,
    data: Json,
}

pub(super) struct Session<'a> {
    s: &'a SparkplugSettings,
    client: &'a AsyncClient,
    outbox: &'a mut SinkStore,
    bd_seq: u8,
    /// The next message's `seq` (0–255, NBIRTH takes 0).
    msg_seq: u8,
    born: bool,
    /// What the node hears, and what it keeps of it across connections.
    inbound: &'a mut Inbound,
    /// What has been published: births are made from it.
    live: Figures,
    live_seq: u64,
    /// What the broker acknowledged, stored with the cursor.
    durable: Figures,
    durable_seq: u64,
    dirty: bool,
    /// Events up to here were committed before the first birth: history.
    birth_seq: u64,
    pending: InOrder<Pending>,
    queued: VecDeque<Queued>,
    inflight: Inflight,
    values: ValueStream,
    /// Devices whose DBIRTH this connection published and no DDEATH since: only they get DDATA.
    born_devices: BTreeSet<String>,
    /// The session ends to move to the next server (servers.rs), not because it was lost.
    moving_on: bool,
}

impl<'a> Session<'a> {
    pub fn new(
        s: &'a SparkplugSettings,
        client: &'a AsyncClient,
        outbox: &'a mut SinkStore,
        cursor: SinkCursor,
        bd_seq: u8,
        inbound: &'a mut Inbound,
        last: DeviceValues,
    ) -> Self {
        let figures = Figures::from_json(&cursor.state);
        let values = ValueStream::new(cursor.value_batch, last);
        Session {
            s,
            client,
            outbox,
            bd_seq,
            msg_seq: 0,
            born: false,
            inbound,
            live: figures.clone(),
            live_seq: cursor.seq,
            durable: figures,
            durable_seq: cursor.seq,
            dirty: false,
            birth_seq: 0,
            pending: InOrder::default(),
            queued: VecDeque::new(),
            inflight: Inflight::new(),
            values,
            born_devices: BTreeSet::new(),
            moving_on: false,
        }
    }

    pub async fn run(
        &mut self,
        events: &mut mpsc::UnboundedReceiver<Result<Ev, String>>,
        committed: &mut watch::Receiver<u64>,
        shutdown: &mut watch::Receiver<bool>,
        backoff: &mut Backoff,
    ) -> Ended {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let deadline = tokio::time::sleep(Duration::from_secs(30));
        tokio::pin!(deadline);
        // Reset at the CONNACK: how long the primary host has to be online on this server.
        let host_wait = tokio::time::sleep(Duration::MAX / 4);
        tokio::pin!(host_wait);
        let mut connected = false;
        loop {
            let step = tokio::select! {
                ev = events.recv() => match ev {
                    Some(Ok(Ev::ConnAck)) => {
                        connected = true;
                        backoff.connected();
                        self.s.mqtt.connected();
                        host_wait.as_mut().reset(tokio::time::Instant::now() + self.s.mqtt.failover_after());
                        self.s.probe.connected(true, self.bd_seq);
                        self.s.probe.server_in_use(self.s.mqtt.url(), self.s.mqtt.index());
                        self.connected(*committed.borrow())
                    }
                    Some(Ok(ev)) => self.on_event(ev, *committed.borrow()),
                    Some(Err(e)) => Err(Ended::Lost(e)),
                    None => Err(Ended::Lost("event loop ended".into())),
                },
                _ = committed.changed(), if self.born => self.fill(),
                _ = tick.tick() => {
                    self.persist();
                    self.s.probe.beat();
                    if self.born && self.inbound.rebirth_due() {
                        tracing::info!("Sparkplug rebirth requested");
                        self.birth(*committed.borrow())
                    // Also without a new event: a turn of the engine may commit values alone.
                    } else if self.born { self.fill() } else { Ok(()) }
                }
                _ = &mut deadline, if !connected => Err(Ended::Lost("no CONNACK within 30 s".into())),
                _ = &mut host_wait, if connected && !self.born && self.waits_for_host() => {
                    self.moving_on = true;
                    Err(Ended::Lost(format!(
                        "the primary host was not online on {} within {} s",
                        self.s.mqtt.url(),
                        self.s.mqtt.failover_after().as_secs()
                    )))
                }
                _ = shutdown.changed() => return self.drain(events).await,
            };
            if let Err(ended) = step {
                self.leaving(&ended, connected, backoff);
                return ended;
            }
        }
    }

    /// Several servers and a primary host: a server where the host is not online is left.
    fn waits_for_host(&self) -> bool {
        self.s.primary_host.is_some() && self.s.mqtt.many()
    }

    /// Where the next connection goes (servers.rs); a move to another server skips the backoff,
    /// and the backoff does not wait past the time a lost server has to come back.
    fn leaving(&mut self, ended: &Ended, connected: bool, backoff: &mut Backoff) {
        use crate::forwarder::failover::Next;
        let moved = match ended {
            Ended::HostOffline => {
                self.s.mqtt.move_on();
                true
            }
            Ended::Lost(_) if self.moving_on => {
                self.s.mqtt.move_on();
                true
            }
            Ended::Lost(_) | Ended::Unreached(_) => match self.s.mqtt.lost(connected) {
                Next::Move(_) => true,
                Next::Again { at_most } => {
                    // The sink waits `backoff.after_loss()` next: a step past the failover time
                    // starts the series over, so the server is asked again before that time
                    // and left soon after it (forwarder/failover.rs caps its delay the same way).
                    if backoff.clone().after_loss() > at_most {
                        backoff.reset();
                    }
                    false
                }
            },
            Ended::Shutdown => false,
        };
        if moved && self.s.mqtt.many() {
            backoff.reset();
        }
    }

    fn lost(e: rumqttc::ClientError) -> Ended {
        Ended::Lost(e.to_string())
    }

    fn connected(&mut self, committed: u64) -> Result<(), Ended> {
        tracing::info!(
            bd_seq = self.bd_seq,
            server = %self.s.mqtt.url(),
            "Sparkplug edge node connected"
        );
        let t = &self.s.topics;
        // Commands first, at QoS 1: the spec wants the node listening before it is born.
        self.client
            .try_subscribe(t.node("NCMD"), QoS::AtLeastOnce)
            .map_err(Self::lost)?;
        self.client
            .try_subscribe(t.device("DCMD", "+"), QoS::AtLeastOnce)
            .map_err(Self::lost)?;
        match &self.s.primary_host {
            Some(host) => self
                .client
                .try_subscribe(super::topics::Topics::state(host), QoS::AtLeastOnce)
                .map_err(Self::lost),
            None => self.birth(committed),
        }
    }

    fn on_event(&mut self, ev: Ev, committed: u64) -> Result<(), Ended> {
        match ev {
            Ev::ConnAck => {}
            Ev::Unreached(why) => return Err(Ended::Unreached(why)),
            Ev::Written(pkid) => {
                let row = self.queued.pop_front().flatten();
                if pkid == 0 {
                    // QoS 0: written is all the delivery there is.
                    if let Some(row) = row {
                        self.done(row);
                    }
                } else {
                    self.inflight.insert(pkid, row);
                }
            }
            Ev::Acked(pkid) => {
                if let Some(Some(row)) = self.inflight.remove(&pkid) {
                    self.done(row);
                }
                if self.room() * 4 >= self.s.window {
                    self.fill()?;
                }
            }
            Ev::Message(m) => self.message(&m, committed)?,
            Ev::Closed => return Err(Ended::Lost("the broker disconnected".into())),
        }
        Ok(())
    }

    fn message(&mut self, m: &Incoming, committed: u64) -> Result<(), Ended> {
        match self.inbound.heard(self.s, m, self.born) {
            Heard::Rebirth => self.birth(committed),
            Heard::HostOnline if !self.born => self.birth(committed),
            Heard::HostOffline if self.born => Err(Ended::HostOffline),
            // Not born here: the next server may have the host (per the walk's rules).
            Heard::HostOffline if self.waits_for_host() && self.s.mqtt.moves_on_at_once() => {
                self.moving_on = true;
                Err(Ended::Lost(format!(
                    "the primary host is offline on {}",
                    self.s.mqtt.url()
                )))
            }
            Heard::Nothing | Heard::HostOnline | Heard::HostOffline => Ok(()),
        }
    }

    /// NBIRTH and a DBIRTH per online device, with the figures of every event committed so far
    /// (the first birth of a connection makes what is committed before it history).
    fn birth(&mut self, committed: u64) -> Result<(), Ended> {
        if !self.born {
            self.birth_seq = committed;
            let last = tokio::task::block_in_place(|| self.outbox.reader.last_value_batch())
                .map_err(|e| Ended::Lost(format!("reading the outbox: {e}")))?;
            self.values.born(last);
            self.fold_values()?;
        }
        let figures = self.figures_up_to(self.birth_seq.max(self.live_seq))?;
        let ts = now_ms() as u64;
        self.born = true;
        self.inbound.born();
        self.s.mqtt.born();
        self.msg_seq = 1;
        self.born_devices.clear();
        self.publish(
            self.s.topics.node("NBIRTH"),
            payload::node_birth(&figures, self.bd_seq, ts),
            None,
        )?;
        for (device, online) in &figures.devices {
            if *online && self.s.devices.get(device).is_some() {
                let seq = self.next_seq();
                let last = self.values.last.get(device);
                let bytes = self.s.devices.birth(device, last, seq, ts);
                self.publish(self.s.topics.device("DBIRTH", device), bytes, None)?;
                self.born_devices.insert(device.clone());
            }
        }
        self.fill()
    }

    /// Folds the value batches committed before the birth into the last values (the births
    /// show the newest), leaving them to go out as history.
    fn fold_values(&mut self) -> Result<(), Ended> {
        let (mut after, up_to) = (self.values.live, self.values.birth_batch());
        while after < up_to {
            let rows =
                tokio::task::block_in_place(|| self.outbox.reader.value_rows_after(after, 1000))
                    .map_err(|e| Ended::Lost(format!("reading process values: {e}")))?;
            let Some(last) = rows.last().map(|r| r.batch) else {
                break;
            };
            for r in rows.iter().take_while(|r| r.batch <= up_to) {
                self.values.fold(r, &self.s.devices);
            }
            after = last;
        }
        Ok(())
    }

    /// The published figures with the events after them up to `seq` folded in.
    fn figures_up_to(&mut self, seq: u64) -> Result<Figures, Ended> {
        let mut f = self.live.clone();
        let mut at = self.live_seq;
        while at < seq {
            let rows = tokio::task::block_in_place(|| self.outbox.reader.rows_after(at, 1000))
                .map_err(|e| Ended::Lost(format!("reading the outbox: {e}")))?;
            if rows.is_empty() {
                break;
            }
            for r in rows {
                if r.seq > seq {
                    return Ok(f);
                }
                let (kind, data, _) = event(&r.payload);
                f.apply(&kind, &data);
                at = r.seq;
            }
        }
        Ok(f)
    }

    fn next_seq(&mut self) -> u8 {
        let s = self.msg_seq;
        self.msg_seq = self.msg_seq.wrapping_add(1);
        s
    }

    fn publish(&mut self, topic: String, bytes: Vec<u8>, row: Queued) -> Result<(), Ended> {
        self.client
            .try_publish(topic, self.s.qos, false, bytes)
            .map_err(Self::lost)?;
        self.queued.push_back(row);
        Ok(())
    }

    fn room(&self) -> usize {
        self.s
            .window
            .saturating_sub(self.queued.len() + self.inflight.len())
    }

    /// Publishes the events after the last one published, as far as the window allows.
    fn fill(&mut self) -> Result<(), Ended> {
        if !self.born {
            return Ok(());
        }
        loop {
            let room = self.room();
            if room == 0 {
                return Ok(());
            }
            let rows =
                tokio::task::block_in_place(|| self.outbox.reader.rows_after(self.live_seq, room))
                    .map_err(|e| Ended::Lost(format!("reading the outbox: {e}")))?;
            if rows.is_empty() {
                return self.fill_values();
            }
            for r in rows {
                let (kind, data, ts) = event(&r.payload);
                let historical = r.seq <= self.birth_seq;
                let change = self.live.apply(&kind, &data);
                self.live_seq = r.seq;
                let message = match change {
                    Change::Nothing => None,
                    Change::Node(changes) => {
                        let metrics = changes
                            .iter()
                            .map(|(alias, v)| {
                                let dt = NODE_METRICS[*alias as usize].datatype;
                                metric(None, Some(*alias), dt, v, ts, historical)
                            })
                            .collect();
                        let seq = self.next_seq() as u64;
                        Some((
                            self.s.topics.node("NDATA"),
                            payload::encode(metrics, Some(seq), now_ms() as u64),
                        ))
                    }
                    // A device's past status is history: the birth already told where it stands.
                    Change::DeviceOnline(_) | Change::DeviceOffline(_) if historical => None,
                    Change::DeviceOnline(d) if self.s.devices.get(&d).is_some() => {
                        let seq = self.next_seq();
                        let last = self.values.last.get(&d);
                        let bytes = self.s.devices.birth(&d, last, seq, now_ms() as u64);
                        let topic = self.s.topics.device("DBIRTH", &d);
                        self.born_devices.insert(d);
                        Some((topic, bytes))
                    }
                    Change::DeviceOffline(d) if self.s.devices.get(&d).is_some() => {
                        self.born_devices.remove(&d);
                        self.values.last.stale(&d);
                        let seq = self.next_seq();
                        Some((
                            self.s.topics.device("DDEATH", &d),
                            super::devices::Devices::death(seq, now_ms() as u64),
                        ))
                    }
                    Change::DeviceOnline(_) | Change::DeviceOffline(_) => None,
                };
                self.pending.push(r.seq, Pending { kind, data });
                match message {
                    Some((topic, bytes)) => self.publish(topic, bytes, Some(Row::Event(r.seq)))?,
                    None => self.pending.answered(r.seq, |_| ()),
                }
            }
            self.advance();
        }
    }

    /// Publishes the process values after the last batch published, as far as the window
    /// allows: called once no committed event waits.
    fn fill_values(&mut self) -> Result<(), Ended> {
        loop {
            let room = self.room();
            if room == 0 {
                return Ok(());
            }
            let after = self.values.live;
            let rows =
                tokio::task::block_in_place(|| self.outbox.reader.value_rows_after(after, room))
                    .map_err(|e| Ended::Lost(format!("reading process values: {e}")))?;
            if rows.is_empty() {
                return Ok(());
            }
            for r in rows {
                let born = &self.born_devices;
                let Some((device, metrics)) =
                    self.values.take(&r, &self.s.devices, |d| born.contains(d))
                else {
                    continue;
                };
                let seq = self.next_seq() as u64;
                let bytes = payload::encode(metrics, Some(seq), now_ms() as u64);
                let topic = self.s.topics.device("DDATA", &device);
                self.publish(topic, bytes, Some(Row::Values(r.batch)))?;
            }
        }
    }

    fn done(&mut self, row: Row) {
        match row {
            Row::Event(seq) => {
                self.s.probe.acknowledged();
                self.pending.answered(seq, |_| ());
                self.advance();
            }
            Row::Values(batch) => self.values.done(batch),
        }
    }

    /// Moves the acknowledged figures on over every leading event that is done.
    fn advance(&mut self) {
        while let Some((seq, p)) = self.pending.pop_answered() {
            self.durable.apply(&p.kind, &p.data);
            self.durable_seq = seq;
            self.dirty = true;
        }
    }

    /// Stores the cursors.
    pub fn persist(&mut self) {
        let changed = self.values.last.take_changed();
        if let Some(batch) = self
            .values
            .to_store()
            .or((!changed.is_empty()).then_some(self.values.durable()))
        {
            let moved = crate::store::ValuesMoved {
                to: batch,
                last: changed,
                ..Default::default()
            };
            let res = tokio::task::block_in_place(|| {
                self.outbox
                    .owner
                    .run(move |o| o.advance_sink_values(SINK, &moved))
            });
            match res {
                Ok(()) => self.values.stored(),
                // Tried again at the next tick (the last values at their next change).
                Err(e) => tracing::error!("storing the Sparkplug values cursor: {e}"),
            }
        }
        if !self.dirty {
            return;
        }
        let (seq, state) = (self.durable_seq, self.durable.to_json());
        let res = tokio::task::block_in_place(|| {
            self.outbox
                .owner
                .run(move |o| o.advance_sink(SINK, seq, &state, now_ms()))
        });
        match res {
            Ok(()) => self.dirty = false,
            // Kept dirty: tried again at the next tick; lost only costs a re-send.
            Err(e) => tracing::error!("storing the Sparkplug cursor: {e}"),
        }
    }

    /// Each tag's last value, for the next connection.
    pub fn take_last(&mut self) -> DeviceValues {
        std::mem::take(&mut self.values.last)
    }

    /// A clean stop: a bounded wait for what is in flight.
    async fn drain(&mut self, events: &mut mpsc::UnboundedReceiver<Result<Ev, String>>) -> Ended {
        let deadline = tokio::time::sleep(Duration::from_secs(3));
        tokio::pin!(deadline);
        // The engine's last batch is committed just before the stop reaches the sinks.
        if self.fill().is_err() {
            return Ended::Shutdown;
        }
        while self.born && !(self.queued.is_empty() && self.inflight.is_empty()) {
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(Ok(Ev::Written(p))) => { let _ = self.on_event(Ev::Written(p), 0); }
                    Some(Ok(Ev::Acked(p))) => {
                        if let Some(Some(row)) = self.inflight.remove(&p) { self.done(row); }
                        if self.fill().is_err() { break; }
                    }
                    Some(Ok(_)) => {}
                    _ => break,
                },
                _ = &mut deadline => break,
            }
        }
        Ended::Shutdown
    }
}

/// An outbox row's `type`, `data` and `ts`.
fn event(payload: &[u8]) -> (String, Json, u64) {
    let mut v: Json = serde_json::from_slice(payload).unwrap_or_default();
    let kind = v["type"].as_str().unwrap_or_default().to_string();
    let ts = v["ts"].as_u64().unwrap_or(0);
    (kind, v["data"].take(), ts)
}
