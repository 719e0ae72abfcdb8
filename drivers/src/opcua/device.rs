//! The OPC UA device loop: connect, resolve, subscribe, hand on changes; on any loss report the
//! device offline with its tags bad, back off, and build everything again from scratch.
//!
//! The loop is here; its jobs are beside it: [`subscribe`] (subscriptions, monitored items and
//! polled reads), [`intake`] (notifications in, also while a service call is under way),
//! [`report`] (samples and device status, only changes) and [`requests`] (writes and method
//! calls).

mod intake;
mod report;
mod requests;
mod subscribe;

use super::client::{connect, ClientSettings, ConnectError, Live, SessionEnd};
use super::resolve::start_time;
use super::{NodeType, OpcUaDevice};
use crate::{Backoff, DeviceEvent, DriverError, MethodCall, WriteRequest};
use ::opcua::client::Session;
use ::opcua::types::NodeId;
use intake::Intake;
use report::Report;
use requests::Requests;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;

/// Runs the device until `shutdown` turns true. Never returns an error and never panics on what
/// a server sends: a misbehaving server marks its own tags bad and is retried.
pub async fn run(
    dev: OpcUaDevice,
    tx: mpsc::Sender<DeviceEvent>,
    writes: mpsc::Receiver<WriteRequest>,
    calls: mpsc::Receiver<MethodCall>,
    mut shutdown: watch::Receiver<bool>,
) {
    let settings = ClientSettings {
        request_timeout: dev.timeout,
        keep_alive: dev.keep_alive,
    };
    let mut requests = Requests::new(writes, calls);
    let mut report = Report::new(&dev, &tx);
    let mut first_namespaces: Option<Vec<String>> = None;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    while !*shutdown.borrow() {
        let connected = tokio::select! {
            r = connect(&dev.connection, &settings) => r,
            _ = shutdown.changed() => return,
        };
        let lost = match connected {
            Ok(live) => {
                let mut attached = Attached::new(&dev, live);
                match attached
                    .serve(
                        &mut report,
                        &mut requests,
                        &mut shutdown,
                        &mut first_namespaces,
                        &mut backoff,
                    )
                    .await
                {
                    Ending::Shutdown => {
                        attached.live.close().await;
                        return;
                    }
                    Ending::RuntimeGone => return,
                    Ending::Lost(why) => DriverError::transient(why),
                }
            }
            // A server certificate to trust is the commissioning engineer's to do.
            Err(e @ ConnectError::Untrusted { .. }) => DriverError::configuration(e.to_string()),
            Err(e) => DriverError::transient(e.to_string()),
        };
        tracing::warn!(device = %dev.name, reason = %lost, kind = lost.kind.name(), "opcua device offline");
        if !report.went_offline(lost.clone()).await {
            return;
        }
        let pause = tokio::time::sleep(backoff.next_delay());
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = &mut pause => break,
                _ = shutdown.changed() => return,
                r = requests.next() => r.refuse(&format!("device {} is offline: {lost}", dev.name)),
            }
        }
    }
}

enum Ending {
    Shutdown,
    RuntimeGone,
    Lost(String),
}

/// One live session with the device's nodes resolved on it.
struct Attached<'a> {
    dev: &'a OpcUaDevice,
    live: Live,
    /// Node id of each config node on this server, if it resolved.
    ids: Vec<Option<NodeId>>,
    namespaces: Vec<String>,
    /// The built-in type of nodes written to, read once per session.
    write_types: HashMap<usize, NodeType>,
    /// Nodes monitored in a subscription on this session.
    monitored: Vec<usize>,
}

impl<'a> Attached<'a> {
    fn new(dev: &'a OpcUaDevice, live: Live) -> Self {
        Attached {
            dev,
            live,
            ids: vec![None; dev.nodes.len()],
            namespaces: Vec::new(),
            write_types: HashMap::new(),
            monitored: Vec::new(),
        }
    }

    fn session(&self) -> &Session {
        &self.live.session
    }

    async fn serve(
        &mut self,
        report: &mut Report<'_>,
        requests: &mut Requests,
        shutdown: &mut watch::Receiver<bool>,
        first_namespaces: &mut Option<Vec<String>>,
        backoff: &mut Backoff,
    ) -> Ending {
        let mut intake = Intake::new(self.dev, self.live.inbox.clone());
        let mut samples = Vec::new();
        // Read before anything is subscribed; a server that cannot say is still served (its
        // restarts are then told only by the lost connection).
        let started = match start_time(self.session()).await {
            Ok(at) => Some(at),
            Err(why) => {
                tracing::warn!(device = %self.dev.name, "{why}; its restarts are told by lost connections only");
                None
            }
        };
        if let Err(why) = self
            .attach(report, &mut intake, first_namespaces, &mut samples)
            .await
        {
            return Ending::Lost(why);
        }
        let polled: Vec<usize> = (0..self.dev.nodes.len())
            .filter(|&i| self.dev.nodes[i].poll && self.ids[i].is_some())
            .collect();
        // Online means the values are known, as after a Modbus device's first complete poll: a
        // count made right after the online event must not become part of the baseline.
        if let Err(ending) = self
            .first_values(report, &mut intake, shutdown, &mut samples)
            .await
        {
            return ending;
        }
        if !polled.is_empty() {
            if let Err(why) = self.poll(&polled, &mut intake, report, &mut samples).await {
                return Ending::Lost(why);
            }
        }
        backoff.reset();
        if !report.went_online(started).await || !report.send(samples).await {
            return Ending::RuntimeGone;
        }
        let mut ticker = tokio::time::interval_at(
            tokio::time::Instant::now() + self.dev.poll_interval,
            self.dev.poll_interval,
        );
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let inbox = intake.inbox.clone();
        loop {
            let mut out = Vec::new();
            tokio::select! {
                _ = shutdown.changed() => return Ending::Shutdown,
                end = self.live.ended.recv() => {
                    let SessionEnd::Lost(why) = end.unwrap_or(SessionEnd::Lost("session ended".into()));
                    return Ending::Lost(why);
                }
                note = inbox.next() => {
                    if let Err(why) = intake.take(note, report, &mut out) {
                        return Ending::Lost(why);
                    }
                }
                _ = ticker.tick(), if !polled.is_empty() => {
                    if let Err(why) = self.poll(&polled, &mut intake, report, &mut out).await {
                        return Ending::Lost(why);
                    }
                }
                req = requests.next() => {
                    if let Err(why) = intake.meanwhile(self.answer(req), report, &mut out).await {
                        return Ending::Lost(why);
                    }
                }
            }
            // While the runtime is slow to take these, the inbox fills and the event loop
            // waits: back-pressure to the server, nothing dropped here.
            if !report.send(out).await {
                return Ending::RuntimeGone;
            }
        }
    }
}
