use super::failover::{self, Brokers, Next, Picker};
use super::link::{self, Client, Ev, Refusal};
use super::window::{Row, Window};
use crate::store::{EventsMoved, Outbox, OutboxRow, StoreOwner};
use mes_edge_drivers::now_ms;
use mes_edge_drivers::Backoff;
use rumqttc::QoS;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

#[derive(Clone)]
pub struct ForwarderSettings {
    /// The broker or brokers (`[mqtt] urls`), in order of preference.
    pub options: Brokers,
    pub qos: QoS,
    /// Builds the topic of an event from its type.
    pub topic: std::sync::Arc<dyn Fn(&str) -> String + Send + Sync>,
    /// Publishes awaiting acknowledgement at once; at most rumqttc's inflight setting.
    pub window: usize,
    /// How long a clean stop waits for outstanding acknowledgements.
    pub drain: Duration,
    /// Where commands from MOM arrive, and the engine's door for them.
    pub commands: Option<super::commands::CommandIntake>,
    /// Connection state and counts for the health and metrics endpoint.
    pub probe: crate::ops::ForwarderProbe,
}

enum Ended {
    Shutdown,
    Lost(String),
    /// The primary answers again (`prefer_primary`): left between publishes.
    BackToPrimary,
}

/// A connection to another broker than the last one.
struct Moved {
    from: String,
    /// After a loss: events acknowledged since this wall-clock time (ms) are published again.
    resend_since_ms: Option<i64>,
}

/// Runs until `shutdown` turns true. `committed` carries the last committed sequence number.
pub async fn run(
    settings: ForwarderSettings,
    mut outbox: Outbox,
    owner: StoreOwner,
    mut committed: watch::Receiver<u64>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let (acks_tx, mut acks) = mpsc::unbounded_channel();
    let mut generation = 0u64;
    let marker = super::marker::Marker::new(owner);
    // Re-sends of refused events back off from 1 s to a minute, across reconnects.
    let mut retry = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    let brokers = &settings.options;
    let mut picker = Picker::new(brokers.nodes.len(), brokers.failover_after);
    loop {
        generation += 1;
        if *shutdown.borrow() {
            return;
        }
        let node = picker.node();
        let broker = &brokers.nodes[node];
        let moved = picker
            .home()
            .filter(|(home, _)| *home != node)
            .map(|(home, lost)| Moved {
                from: brokers.nodes[home].url.clone(),
                resend_since_ms: lost.filter(|_| !brokers.resend_window.is_zero()).map(|at| {
                    let ago = at.elapsed() + brokers.resend_window;
                    now_ms() - ago.as_millis() as i64
                }),
            });
        let primary_back = Arc::new(AtomicBool::new(false));
        let watcher = (node != 0 && brokers.prefer_primary).then(|| {
            tokio::spawn(failover::watch_primary(
                brokers.primary_probe.clone(),
                primary_back.clone(),
            ))
        });
        let (client, eventloop) = link::new(&broker.options, settings.window * 2 + 16);
        // Held until after the DISCONNECT below: the event loop stops at its next event once
        // nobody listens, and would close the connection before writing the DISCONNECT (the
        // broker would then publish the Last Will).
        let (events_tx, mut events_rx) = mpsc::unbounded_channel();
        let poller = tokio::spawn(eventloop.drive(events_tx));
        // Where the cursor stands once the last session's moves are stored (it waited for them).
        let cursor = match outbox.events_cursor(crate::store::EVENTS_SINK) {
            Ok(c) => c.unwrap_or_default(),
            Err(e) => {
                tracing::error!("reading the events cursor: {e}");
                0
            }
        };
        let mut s = Session {
            settings: &settings,
            client: &client,
            outbox: &mut outbox,
            marker: &marker,
            window: Window::new(settings.window, cursor),
            ticks: 0,
            kinds: HashMap::new(),
            refused: BTreeMap::new(),
            retrying: HashSet::new(),
            open_kinds: HashSet::new(),
            retry_at: None,
            retry: &mut retry,
            last_refusal: None,
            status: "",
            intake: settings
                .commands
                .as_ref()
                .map(|c| c.session(generation, acks_tx.clone())),
            node,
            moved,
            again: VecDeque::new(),
            connacked: false,
            primary_back: watcher.is_some().then_some(primary_back),
            leaving: false,
        };
        let ended = s
            .run(
                &mut events_rx,
                &mut committed,
                &mut shutdown,
                &mut backoff,
                &mut acks,
            )
            .await;
        let connacked = s.connacked;
        if let Some(w) = watcher {
            w.abort();
        }
        // A clean DISCONNECT cancels the Last Will: say `offline` ourselves first.
        if matches!(ended, Ended::Shutdown | Ended::BackToPrimary) {
            publish_status(&settings, &client, node, "offline".into());
        }
        settings.probe.connected(false);
        let _ = tokio::time::timeout(Duration::from_secs(1), client.disconnect()).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        poller.abort();
        if connacked {
            picker.connected();
        }
        match ended {
            Ended::Shutdown => return,
            Ended::BackToPrimary => {
                tracing::info!(from = %broker.url, to = %brokers.nodes[0].url, "the primary broker answers again: moving back to it");
                picker.to_primary();
            }
            Ended::Lost(reason) => {
                // The client's error can quote what the broker sent (a certificate's names).
                let reason = crate::logging::field(&reason);
                let delay = match picker.lost(connacked, Instant::now()) {
                    Next::Again { at_most } => {
                        let delay = backoff.after_loss().min(at_most);
                        tracing::warn!(%reason, broker = %broker.url, retry_in = ?delay, "broker connection lost");
                        delay
                    }
                    Next::Move(next) => {
                        tracing::warn!(%reason, broker = %broker.url, next = %brokers.nodes[next].url, "broker connection lost and not back within failover_after_s: trying the next broker");
                        Duration::ZERO
                    }
                };
                settings.probe.backing_off(delay);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}

/// A message on a topic the cell never subscribed to: logged, but a broker that keeps sending
/// them must not fill the journal.
fn off_topic(topic: &str) {
    static LINES: std::sync::Mutex<crate::logging::Throttle> =
        std::sync::Mutex::new(crate::logging::Throttle::new(Duration::from_secs(60), 3));
    let allowed = LINES.lock().unwrap_or_else(|e| e.into_inner()).allow();
    if let Some(held) = allowed {
        let topic = crate::logging::field(topic);
        tracing::warn!(%topic, held, "message on a topic the cell does not take");
    }
}

/// The retained status on the Last Will's topic: `online`, `offline`, or `refused: …` while
/// the broker refuses events. QoS 0, so that its packet id (0) stays out of the events'
/// bookkeeping; TCP still delivers it in order with what follows.
///
/// Under MQTT 5 it carries the user property `broker`, the url of the broker it went to: with
/// brokers that fail over, MOM subscribed to each can tell which one the cell is on.
fn publish_status(settings: &ForwarderSettings, client: &Client, node: usize, status: String) {
    if let Some(topic) = settings.options.status_topic() {
        let broker = &settings.options.nodes[node].url;
        if let Err(e) = client.try_publish_status(topic, status.clone(), broker) {
            tracing::warn!("publishing status {status}: {e}");
        }
    }
}

struct Session<'a> {
    settings: &'a ForwarderSettings,
    client: &'a Client,
    outbox: &'a mut Outbox,
    marker: &'a super::marker::Marker,
    /// What the client has in hand, and where the cursor may move (window.rs).
    window: Window,
    ticks: u32,
    /// The event type (it makes the topic) of each event handed to the client.
    kinds: HashMap<u64, String>,
    /// Events the broker refused, with their type, held back.
    refused: BTreeMap<u64, String>,
    /// Refused events sent again, awaiting the broker's answer.
    retrying: HashSet<u64>,
    /// Types whose re-sent event the broker took: the rest of their refused events go next.
    open_kinds: HashSet<String>,
    /// When the first refused event of each type is sent again (the backoff).
    retry_at: Option<Instant>,
    retry: &'a mut Backoff,
    /// The last refusal, said for a person.
    last_refusal: Option<String>,
    /// What the status topic says now ("" before the first CONNACK).
    status: &'static str,
    intake: Option<super::commands::SessionIntake>,
    /// Which of the brokers this connection goes to.
    node: usize,
    /// Set when this is another broker than the last one; taken at the CONNACK.
    moved: Option<Moved>,
    /// Events behind the cursor to publish again before the pending ones: what the lost broker
    /// acknowledged lately (failover), what the broker refused before and is held, what
    /// `outbox replay` put back.
    again: VecDeque<OutboxRow>,
    connacked: bool,
    /// Set by the primary's watcher (failover.rs): the primary answers again.
    primary_back: Option<Arc<AtomicBool>>,
    /// Handing nothing more to the client: on the way back to the primary.
    leaving: bool,
}

impl Session<'_> {
    async fn run(
        &mut self,
        events: &mut mpsc::UnboundedReceiver<Result<Ev, String>>,
        committed: &mut watch::Receiver<u64>,
        shutdown: &mut watch::Receiver<bool>,
        backoff: &mut Backoff,
        acks: &mut mpsc::UnboundedReceiver<super::commands::Ack>,
    ) -> Ended {
        let mut connected = false;
        let mut flush = tokio::time::interval(Duration::from_millis(100));
        let connect_deadline = tokio::time::sleep(Duration::from_secs(30));
        tokio::pin!(connect_deadline);
        loop {
            tokio::select! {
                ev = events.recv() => {
                    let ev = match ev {
                        Some(Ok(ev)) => ev,
                        Some(Err(e)) => {
                            let e = if connected { e } else { self.before_connack(e) };
                            return self.lost(e);
                        }
                        None => return self.lost("event loop ended".into()),
                    };
                    if let Err(e) = self.on_event(ev, &mut connected, backoff) {
                        // A request fails when the event loop has just ended: its error, queued
                        // behind this event, is the cause worth reporting.
                        let cause = std::iter::from_fn(|| events.try_recv().ok()).find_map(Result::err);
                        return self.lost(match cause {
                            Some(cause) => format!("{cause} ({e})"),
                            None => e,
                        });
                    }
                    // Refill once a quarter of the window is free, not at every acknowledgement.
                    if connected && self.room() * 4 >= self.settings.window {
                        self.fill();
                    }
                }
                _ = committed.changed(), if connected => self.fill(),
                _ = flush.tick() => {
                    self.settings.probe.beat();
                    self.flush_acked();
                    if let Some(intake) = &mut self.intake {
                        intake.hand_on(self.client);
                    }
                    if connected {
                        self.retry_refused();
                        self.report_refusals();
                    }
                    if connected && self.ready_to_leave() {
                        self.flush_acked();
                        tokio::task::block_in_place(|| self.marker.wait());
                        return Ended::BackToPrimary;
                    }
                    self.ticks = self.ticks.wrapping_add(1);
                    if connected && self.ticks.is_multiple_of(10) {
                        self.pick_up_replays();
                    }
                    // Picks up anything committed while the window was full. Nothing past the
                    // cursor is committed when the cursor is at the last commit: no query then,
                    // which an idle cell would otherwise make ten times a second.
                    if connected && *committed.borrow() > self.window.read_to() {
                        self.fill();
                    }
                }
                _ = &mut connect_deadline, if !connected => return self.lost("no CONNACK within 30 s".into()),
                Some(ack) = acks.recv() => {
                    if let Some(intake) = &mut self.intake {
                        intake.acknowledge(ack, self.client);
                    }
                }
                _ = shutdown.changed() => return self.drain(events, connected).await,
            }
        }
    }

    fn on_event(
        &mut self,
        ev: Ev,
        connected: &mut bool,
        backoff: &mut Backoff,
    ) -> Result<(), String> {
        match ev {
            Ev::ConnAck { session_present } => {
                tracing::info!(
                    session_present,
                    protocol = if self.settings.options.is_v5() {
                        "5"
                    } else {
                        "3.1.1"
                    },
                    broker = %self.settings.options.nodes[self.node].url,
                    "connected to broker"
                );
                *connected = true;
                self.connacked = true;
                backoff.connected();
                self.arrived();
                self.send_held_again();
                self.settings.probe.connected(true);
                self.status = "";
                self.report_refusals();
                if let Some(intake) = &self.intake {
                    intake.subscribe(self.client)?;
                }
            }
            Ev::Command(msg) => match &mut self.intake {
                Some(intake) => intake.received(msg, self.client),
                None => off_topic(&msg.topic()),
            },
            // The QoS 0 status publish: no packet id, not an event.
            Ev::Written(0) => {}
            Ev::Written(pkid) => {
                self.settings.probe.published();
                self.window.written(pkid)?;
            }
            Ev::PubAck { pkid, refusal } if self.settings.qos == QoS::AtLeastOnce => {
                match refusal {
                    None => self.acknowledged(pkid)?,
                    Some(r) => self.refused(pkid, r)?,
                }
            }
            Ev::PubRec {
                pkid,
                refusal: Some(r),
            } if self.settings.qos == QoS::ExactlyOnce => self.refused(pkid, r)?,
            Ev::PubComp { pkid } if self.settings.qos == QoS::ExactlyOnce => {
                self.acknowledged(pkid)?
            }
            Ev::SubAck { refused } => {
                if let Some(why) = &refused {
                    tracing::error!(
                        reason = %why,
                        "the broker refused the cell's subscription to its command topic: commands from MOM cannot arrive"
                    );
                }
                self.settings.probe.subscription_refused(refused);
            }
            Ev::Disconnect(reason) => return Err(reason),
            _ => {}
        }
        Ok(())
    }

    /// Connected: the probe names the broker; on another broker than the last one after a
    /// loss, the events the lost one acknowledged lately are read to be published again.
    fn arrived(&mut self) {
        let url = &self.settings.options.nodes[self.node].url;
        self.settings.probe.broker_in_use(url, self.node);
        let Some(moved) = self.moved.take() else {
            return;
        };
        let reason = if moved.resend_since_ms.is_some() {
            "lost"
        } else {
            "primary_back"
        };
        self.settings.probe.failed_over(reason);
        let Some(since) = moved.resend_since_ms else {
            tracing::info!(from = %moved.from, to = %url, "moved to another broker");
            return;
        };
        let rows = tokio::task::block_in_place(|| {
            self.outbox.delivered_since(since, failover::RESEND_MAX)
        });
        match rows {
            Ok(rows) => {
                tracing::warn!(
                    from = %moved.from,
                    to = %url,
                    resent = rows.len(),
                    first = rows.first().map(|r| r.seq),
                    "failed over to another broker; publishing again the events the lost one acknowledged within resend_window_s"
                );
                self.settings.probe.resent(rows.len() as u64);
                self.again.extend(rows);
            }
            Err(e) => tracing::error!("reading the events delivered before the failover: {e}"),
        }
    }

    /// With the primary back: stop handing events to the client, and leave once everything
    /// handed to it is acknowledged (never in the middle of a publish).
    fn ready_to_leave(&mut self) -> bool {
        if self
            .primary_back
            .as_ref()
            .is_some_and(|back| back.load(Relaxed))
            && self.again.is_empty()
        {
            self.leaving = true;
        }
        self.leaving && self.window.is_idle()
    }

    /// A connection that ended before its CONNACK. A broker without MQTT 5 (RabbitMQ 3.x)
    /// closes the connection at an MQTT 5 CONNECT without a word: say what may help.
    fn before_connack(&self, e: String) -> String {
        if self.settings.options.is_v5() && e.contains("closed by peer") {
            format!("{e} (before CONNACK: if the broker does not speak MQTT 5, set [mqtt] protocol_version = \"3.1.1\")")
        } else {
            e
        }
    }

    fn acknowledged(&mut self, pkid: u16) -> Result<(), String> {
        let seq = self.window.answered(pkid, false)?.id;
        self.settings.probe.acknowledged();
        let kind = self.kinds.remove(&seq);
        if self.retrying.remove(&seq) {
            // A refused event got through: the broker takes this type again; the others
            // held of its type follow at the next tick.
            self.retry.reset();
            self.open_kinds.extend(kind);
        }
        if self.window.to_store().is_some_and(|m| m.weight >= 1024) {
            self.flush_acked();
        }
        Ok(())
    }

    /// The broker said no (reason code 0x80 or above): not a delivery. The cursor passes the
    /// row and holds it (the store keeps it); it is sent again later, with a backoff.
    fn refused(&mut self, pkid: u16, r: Refusal) -> Result<(), String> {
        let seq = self.window.answered(pkid, true)?.id;
        let what = match &r.reason_string {
            Some(words) => format!("{} \"{words}\"", r.describe()),
            None => r.describe(),
        };
        if self.refused.is_empty() && self.retrying.is_empty()
            || self.last_refusal.as_deref() != Some(what.as_str())
        {
            tracing::warn!(
                seq,
                reason = %what,
                "the broker refused an event; it stays in the outbox and is sent again later"
            );
        } else {
            tracing::debug!(seq, reason = %what, "the broker refused an event");
        }
        self.settings.probe.refused(r.name, r.code, what.clone());
        self.last_refusal = Some(what);
        self.retrying.remove(&seq);
        let kind = self.kinds.remove(&seq).unwrap_or_default();
        self.refused.insert(seq, kind);
        if self.retry_at.is_none() {
            self.retry_at = Some(Instant::now() + self.retry.next_delay());
        }
        Ok(())
    }

    /// Sends refused events again without flooding a broker that still refuses: once the
    /// backoff has passed, the first held event of each type (each type is a topic, and an ACL
    /// or a quota may treat topics differently); once the broker takes one, every held event of
    /// that type. They are read again from the store and go before the pending ones.
    fn retry_refused(&mut self) {
        if self.refused.is_empty() {
            self.retry_at = None;
            self.open_kinds.clear();
            return;
        }
        let probe_due = self.retry_at.is_some_and(|at| Instant::now() >= at);
        if !probe_due && self.open_kinds.is_empty() {
            return;
        }
        let mut probed: HashSet<&str> = HashSet::new();
        let send: Vec<u64> = self
            .refused
            .iter()
            .filter(|(_, kind)| {
                self.open_kinds.contains(kind.as_str()) || (probe_due && probed.insert(kind))
            })
            .map(|(&seq, _)| seq)
            .collect();
        let (probes, released) = (probed.len(), send.len() - probed.len());
        self.open_kinds.clear();
        if probe_due {
            self.retry_at = None;
        }
        let Some(&first) = send.first() else { return };
        tracing::info!(
            probes,
            released,
            still_held = self.refused.len() - send.len(),
            from = first,
            "sending events the broker refused again"
        );
        for seq in &send {
            self.refused.remove(seq);
            self.retrying.insert(*seq);
        }
        self.read_again(&send);
        self.fill();
    }

    /// Queues the events `seqs` (behind the cursor) to be published again.
    fn read_again(&mut self, seqs: &[u64]) {
        match tokio::task::block_in_place(|| self.outbox.events_by_seq(seqs)) {
            Ok(rows) => self.again.extend(rows),
            Err(e) => tracing::error!("reading the events to send again: {e}"),
        }
    }

    /// At the connection: every event the cursor holds (refused before, or put back by `outbox
    /// replay`) is sent once; those refused again wait for the backoff.
    fn send_held_again(&mut self) {
        match self.outbox.held_events(crate::store::EVENTS_SINK) {
            Ok(seqs) if !seqs.is_empty() => {
                tracing::info!(
                    events = seqs.len(),
                    first = seqs[0],
                    "sending held events again"
                );
                self.read_again(&seqs);
            }
            Ok(_) => {}
            Err(e) => tracing::error!("reading the held events: {e}"),
        }
    }

    /// Tells the probe (for /health, /metrics, STATUS=) and the status topic whether refused
    /// events are waiting.
    fn report_refusals(&mut self) {
        let held = (self.refused.len() + self.retrying.len()) as u64;
        self.settings.probe.set_refused_held(held);
        let status = if held > 0 { "refused" } else { "online" };
        if status != self.status {
            self.status = status;
            let text = match (&self.last_refusal, held > 0) {
                (Some(what), true) => format!("refused: {held} events, {what}"),
                _ => "online".to_string(),
            };
            publish_status(self.settings, self.client, self.node, text);
        }
    }

    fn room(&self) -> usize {
        self.window.room()
    }

    /// `mes-edge outbox replay` holds rows the cursor passed again. Held rows this session does
    /// not have in hand are such rows: read them, and `fill` sends them again. Not while a move
    /// is on its way to the store: a release not yet stored would read as a replay.
    fn pick_up_replays(&mut self) {
        if self.window.to_store().is_some() || self.marker.busy() {
            return;
        }
        let held = match self.outbox.held_events(crate::store::EVENTS_SINK) {
            Ok(held) => held,
            Err(e) => return tracing::error!("reading the held events: {e}"),
        };
        let replayed: Vec<u64> = held
            .into_iter()
            .filter(|s| {
                !self.refused.contains_key(s)
                    && !self.retrying.contains(s)
                    && !self.kinds.contains_key(s)
                    && !self.again.iter().any(|r| r.seq == *s)
            })
            .collect();
        if let Some(first) = replayed.first() {
            tracing::info!(
                from = first,
                events = replayed.len(),
                "re-publishing events put back for replay"
            );
            self.read_again(&replayed);
        }
    }

    /// Hands the client as many events as the window allows: first what goes again, then on
    /// from where the last read ended.
    fn fill(&mut self) {
        if self.leaving {
            return;
        }
        while self.room() > 0 {
            let Some(row) = self.again.pop_front() else {
                break;
            };
            if !self.publish(&row, true) {
                self.again.push_front(row);
                return;
            }
        }
        if !self.again.is_empty() {
            return;
        }
        loop {
            let room = self.room();
            if room == 0 {
                return;
            }
            let rows = match self.outbox.rows_after(self.window.read_to(), room) {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::error!("reading the outbox: {e}");
                    return;
                }
            };
            if rows.is_empty() {
                return;
            }
            for row in rows {
                if !self.publish(&row, false) {
                    return;
                }
            }
        }
    }

    /// Hands `row` to the client; false if its queue is full.
    fn publish(&mut self, row: &OutboxRow, again: bool) -> bool {
        let topic = (self.settings.topic)(&row.kind);
        if let Err(e) =
            self.client
                .try_publish(topic, self.settings.qos, false, row.payload.clone())
        {
            tracing::debug!("client queue full: {e}");
            return false;
        }
        self.window.handed(Row {
            id: row.seq,
            weight: 1,
            again,
        });
        self.kinds.insert(row.seq, row.kind.clone());
        true
    }

    /// Hands the cursor's move to the store's owner, so that the disk never holds up
    /// publishing. Kept (and growing) for the next flush if the owner has stopped (the runtime
    /// is stopping with it): if the process ends first the events are simply sent again.
    fn flush_acked(&mut self) {
        let Some(m) = self.window.to_store() else {
            return;
        };
        let moved = EventsMoved {
            to: m.to,
            held: m.held.clone(),
            taken: m.taken.clone(),
        };
        if self.marker.hand_over(moved).is_ok() {
            self.window.stored();
        }
    }

    fn lost(&mut self, reason: String) -> Ended {
        self.flush_acked();
        // The next session starts from the stored cursor: store every answer first.
        tokio::task::block_in_place(|| self.marker.wait());
        Ended::Lost(reason)
    }

    /// A clean stop: publish what is still pending (the engine's last batch is committed just
    /// before the stop reaches us), wait a bounded time for the acknowledgements, record them,
    /// and go. What the broker has not acknowledged by then is sent again after the next start.
    async fn drain(
        &mut self,
        events: &mut mpsc::UnboundedReceiver<Result<Ev, String>>,
        mut connected: bool,
    ) -> Ended {
        let deadline = tokio::time::sleep(self.settings.drain);
        tokio::pin!(deadline);
        let mut backoff = Backoff::new(Duration::ZERO, Duration::ZERO);
        if connected {
            self.fill();
        }
        while !self.window.is_idle() {
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(Ok(ev)) => {
                        if self.on_event(ev, &mut connected, &mut backoff).is_err() {
                            break;
                        }
                        if connected && self.room() * 4 >= self.settings.window {
                            self.fill();
                        }
                    }
                    _ => break,
                },
                _ = &mut deadline => break,
            }
        }
        self.flush_acked();
        tokio::task::block_in_place(|| self.marker.wait());
        Ended::Shutdown
    }
}
