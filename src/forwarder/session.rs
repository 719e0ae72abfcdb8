use super::link::{self, Client, Ev, Options, Refusal};
use crate::store::{Outbox, OutboxRow};
use mes_edge_drivers::now_ms;
use mes_edge_drivers::Backoff;
use rumqttc::QoS;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

#[derive(Clone)]
pub struct ForwarderSettings {
    pub options: Options,
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
}

/// Runs until `shutdown` turns true. `committed` carries the last committed sequence number.
pub async fn run(
    settings: ForwarderSettings,
    mut outbox: Outbox,
    mut committed: watch::Receiver<u64>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let (acks_tx, mut acks) = mpsc::unbounded_channel();
    let mut generation = 0u64;
    let marker = super::marker::Marker::start(&outbox);
    // Re-sends of refused events back off from 1 s to a minute, across reconnects.
    let mut retry = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        generation += 1;
        if *shutdown.borrow() {
            return;
        }
        let (client, eventloop) = link::new(&settings.options, settings.window * 2 + 16);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let poller = tokio::spawn(eventloop.drive(events_tx));
        let mut s = Session {
            settings: &settings,
            client: &client,
            outbox: &mut outbox,
            marker: &marker,
            queued: VecDeque::new(),
            inflight: HashMap::new(),
            acked: Vec::new(),
            cursor: 0,
            handed: 0,
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
        };
        let ended = s
            .run(
                events_rx,
                &mut committed,
                &mut shutdown,
                &mut backoff,
                &mut acks,
            )
            .await;
        // A clean DISCONNECT cancels the Last Will: say `offline` ourselves first.
        if matches!(ended, Ended::Shutdown) {
            publish_status(&settings, &client, "offline".into());
        }
        settings.probe.connected(false);
        let _ = tokio::time::timeout(Duration::from_secs(1), client.disconnect()).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        poller.abort();
        match ended {
            Ended::Shutdown => return,
            Ended::Lost(reason) => {
                let delay = backoff.after_loss();
                // The client's error can quote what the broker sent (a certificate's names).
                let reason = crate::logging::field(&reason);
                tracing::warn!(%reason, retry_in = ?delay, "broker connection lost");
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
fn publish_status(settings: &ForwarderSettings, client: &Client, status: String) {
    if let Some(topic) = settings.options.status_topic() {
        if let Err(e) = client.try_publish(topic, QoS::AtMostOnce, true, status.clone()) {
            tracing::warn!("publishing status {status}: {e}");
        }
    }
}

struct Session<'a> {
    settings: &'a ForwarderSettings,
    client: &'a Client,
    outbox: &'a mut Outbox,
    marker: &'a super::marker::Marker,
    /// Handed to the client, waiting to be written: rumqttc writes them in this order, and the
    /// packet id it picks shows up at the write.
    queued: VecDeque<u64>,
    /// Written, waiting for the acknowledgement, by packet id.
    inflight: HashMap<u16, u64>,
    /// Acknowledged, not yet marked in the store.
    acked: Vec<u64>,
    /// Highest sequence handed to the client in this session, or lower after a replay.
    cursor: u64,
    /// Highest sequence ever handed to the client in this session.
    handed: u64,
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
}

impl Session<'_> {
    async fn run(
        &mut self,
        mut events: mpsc::UnboundedReceiver<Result<Ev, String>>,
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
                    self.ticks = self.ticks.wrapping_add(1);
                    if connected && self.ticks.is_multiple_of(10) {
                        self.pick_up_replays();
                    }
                    // Picks up anything committed while the window was full. Nothing past the
                    // cursor is committed when the cursor is at the last commit: no query then,
                    // which an idle cell would otherwise make ten times a second.
                    if connected && *committed.borrow() > self.cursor {
                        self.fill();
                    }
                }
                _ = &mut connect_deadline, if !connected => return self.lost("no CONNACK within 30 s".into()),
                Some(ack) = acks.recv() => {
                    if let Some(intake) = &mut self.intake {
                        intake.acknowledge(ack, self.client);
                    }
                }
                _ = shutdown.changed() => return self.drain(&mut events, connected).await,
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
                    "connected to broker"
                );
                *connected = true;
                backoff.connected();
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
                let seq = self
                    .queued
                    .pop_front()
                    .ok_or("a publish went out that was never queued")?;
                self.inflight.insert(pkid, seq);
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
        let seq = self
            .inflight
            .remove(&pkid)
            .ok_or_else(|| format!("acknowledgement for unknown packet id {pkid}"))?;
        self.settings.probe.acknowledged();
        let kind = self.kinds.remove(&seq);
        if self.retrying.remove(&seq) {
            // A refused event got through: the broker takes this type again; the others
            // held of its type follow at the next tick.
            self.retry.reset();
            self.open_kinds.extend(kind);
        }
        self.acked.push(seq);
        if self.acked.len() >= 1024 {
            self.flush_acked();
        }
        Ok(())
    }

    /// The broker said no (reason code 0x80 or above): not a delivery. The row stays
    /// undelivered and is held back until the next re-send, which backs off.
    fn refused(&mut self, pkid: u16, r: Refusal) -> Result<(), String> {
        let seq = self
            .inflight
            .remove(&pkid)
            .ok_or_else(|| format!("refusal for unknown packet id {pkid}"))?;
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
    /// that type. The cursor moves back so that `fill` sends them (rows in flight, delivered
    /// meanwhile or still held are skipped there).
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
        // Rows acknowledged but not marked yet would be sent again from a moved-back cursor.
        if !self.acked.is_empty() || self.marker.busy() {
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
        for seq in send {
            self.refused.remove(&seq);
            self.retrying.insert(seq);
        }
        self.cursor = self.cursor.min(first - 1);
        self.fill();
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
            publish_status(self.settings, self.client, text);
        }
    }

    fn room(&self) -> usize {
        self.settings
            .window
            .saturating_sub(self.queued.len() + self.inflight.len())
    }

    /// `mes-edge outbox replay` marks delivered rows undelivered again. Rows behind the cursor
    /// that are undelivered and not in this session's hands are such rows: move the cursor back
    /// to the first of them, and `fill` sends them again.
    fn pick_up_replays(&mut self) {
        if !self.acked.is_empty() || self.marker.busy() {
            return;
        }
        match self.outbox.undelivered_up_to(self.cursor) {
            Ok((n, Some(first)))
                if n as usize
                    > self.queued.len()
                        + self.inflight.len()
                        + self.refused.len()
                        + self.retrying.len() =>
            {
                tracing::info!(from = first, "re-publishing events marked for replay");
                self.cursor = first - 1;
            }
            Ok(_) => {}
            Err(e) => tracing::error!("reading the outbox: {e}"),
        }
    }

    /// Hands the client as many pending events as the window allows.
    fn fill(&mut self) {
        loop {
            let room = self.room();
            if room == 0 {
                return;
            }
            let rows = match self.outbox.pending(self.cursor, room) {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::error!("reading the outbox: {e}");
                    return;
                }
            };
            if rows.is_empty() {
                return;
            }
            for OutboxRow { seq, kind, payload } in rows {
                // After a replay the cursor is behind rows already in flight: skip those.
                if seq <= self.handed
                    && (self.queued.contains(&seq)
                        || self.inflight.values().any(|&s| s == seq)
                        || self.refused.contains_key(&seq))
                {
                    self.cursor = seq;
                    continue;
                }
                let topic = (self.settings.topic)(&kind);
                if let Err(e) = self
                    .client
                    .try_publish(topic, self.settings.qos, false, payload)
                {
                    tracing::debug!("client queue full: {e}");
                    return;
                }
                self.queued.push_back(seq);
                self.kinds.insert(seq, kind);
                self.cursor = seq;
                self.handed = self.handed.max(seq);
            }
        }
    }

    fn flush_acked(&mut self) {
        if self.acked.is_empty() {
            return;
        }
        // Marked on the marker's thread, so that waiting for the store's lock never holds up
        // publishing; on the forwarder's own connection only if that thread could not start.
        match self.marker.hand_over(std::mem::take(&mut self.acked)) {
            Ok(()) => return,
            Err(seqs) => self.acked = seqs,
        }
        let res = tokio::task::block_in_place(|| self.outbox.mark_delivered(&self.acked, now_ms()));
        match res {
            Ok(()) => self.acked.clear(),
            // Kept for the next flush; if the process dies first they are simply sent again.
            Err(e) => tracing::error!("marking delivered events: {e}"),
        }
    }

    fn lost(&mut self, reason: String) -> Ended {
        self.flush_acked();
        // The next session re-publishes what is unmarked: mark everything acknowledged first.
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
        while !(self.queued.is_empty() && self.inflight.is_empty()) {
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
