//! The OPC UA device loop: connect, resolve, subscribe, hand on changes; on any loss report the
//! device offline with its tags bad, back off, and build everything again from scratch.

use super::client::{connect, ClientSettings, Live, SessionEnd};
use super::convert::{builtin_of, reading, value_of, variant_for, Reading};
use super::resolve::{moved_namespaces, namespace_array, node_id, resolve_all};
use super::{parse_node_id, Deadband, NodeTarget, NodeType, OpcUaDevice};
use crate::{
    now_ms, Backoff, DeviceEvent, DeviceStatus, MethodCall, Quality, Sample, Value, WriteRequest,
};
use ::opcua::client::{MonitoredItemMap, OnSubscriptionNotificationCore, Session};
use ::opcua::types::{
    AttributeId, BrowsePath, DataChangeFilter, DataChangeNotification, DataChangeTrigger,
    DataValue, DeadbandType, ExtensionObject, MonitoredItemCreateRequest, MonitoringMode,
    MonitoringParameters, NodeId, NotificationMessage, NumericRange, QualifiedName, ReadValueId,
    ReferenceTypeId, RelativePath, RelativePathElement, StatusChangeNotification, StatusCode,
    TimestampsToReturn, Variant, WriteValue,
};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::{timeout, MissedTickBehavior};

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
    let mut requests = Requests {
        writes: Some(writes),
        calls: Some(calls),
    };
    let mut report = Report {
        dev: &dev,
        tx: &tx,
        last: vec![None; dev.nodes.len()],
        problems: vec![None; dev.nodes.len()],
        online: None,
    };
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
                    Ending::Lost(why) => why,
                }
            }
            Err(e) => e.to_string(),
        };
        tracing::warn!(device = %dev.name, reason = %lost, "opcua device offline");
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

/// Writes and method calls waiting for the driver; either channel may be closed by the runtime.
struct Requests {
    writes: Option<mpsc::Receiver<WriteRequest>>,
    calls: Option<mpsc::Receiver<MethodCall>>,
}

enum Request {
    Write(WriteRequest),
    Call(MethodCall),
}

impl Request {
    fn refuse(self, why: &str) {
        match self {
            Request::Write(w) => {
                let _ = w.reply.send(Err(why.to_string()));
            }
            Request::Call(c) => {
                let _ = c.reply.send(Err(why.to_string()));
            }
        }
    }
}

async fn recv<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Requests {
    /// The next request; pending forever once both channels are closed.
    async fn next(&mut self) -> Request {
        loop {
            let (write, call) = tokio::select! {
                w = recv(&mut self.writes) => (Some(w), None),
                c = recv(&mut self.calls) => (None, Some(c)),
            };
            match (write, call) {
                (Some(Some(w)), _) => return Request::Write(w),
                (Some(None), _) => self.writes = None,
                (_, Some(Some(c))) => return Request::Call(c),
                (_, Some(None)) => self.calls = None,
                (None, None) => {}
            }
        }
    }
}

/// What the driver has said about its tags, so that only changes go out.
struct Report<'a> {
    dev: &'a OpcUaDevice,
    tx: &'a mpsc::Sender<DeviceEvent>,
    last: Vec<Option<(Option<Value>, Quality)>>,
    /// Why a node is bad, logged when it changes rather than at every notification.
    problems: Vec<Option<String>>,
    online: Option<bool>,
}

impl Report<'_> {
    fn changed(&mut self, i: usize, r: Reading, out: &mut Vec<Sample>) {
        if let Some(source) = r.source_ts_ms {
            self.dev.metrics.clock_skew(source - r.ts_ms);
        }
        if r.quality != Quality::Bad {
            self.dev.metrics.good_read(r.ts_ms);
        }
        if r.problem != self.problems[i] {
            if let Some(p) = &r.problem {
                tracing::warn!(device = %self.dev.name, tag = %self.dev.nodes[i].name, "{p}");
            }
            self.problems[i] = r.problem;
        }
        let now = Some((r.value, r.quality));
        if self.last[i] != now {
            self.last[i] = now;
            out.push(Sample {
                tag: self.dev.nodes[i].id,
                value: r.value,
                quality: r.quality,
                ts_ms: r.ts_ms,
                source_ts_ms: r.source_ts_ms,
            });
        }
    }

    fn bad(&mut self, i: usize, problem: String, out: &mut Vec<Sample>) {
        self.changed(
            i,
            Reading {
                value: None,
                quality: Quality::Bad,
                ts_ms: now_ms(),
                source_ts_ms: None,
                problem: Some(problem),
            },
            out,
        );
    }

    async fn send(&self, samples: Vec<Sample>) -> bool {
        samples.is_empty()
            || self
                .tx
                .send(DeviceEvent::Samples {
                    device: self.dev.id,
                    samples,
                })
                .await
                .is_ok()
    }

    async fn went_online(&mut self) -> bool {
        if self.online == Some(true) {
            return true;
        }
        self.online = Some(true);
        self.dev.metrics.set_connected(true);
        tracing::info!(device = %self.dev.name, "opcua device online");
        self.tx
            .send(DeviceEvent::Status {
                device: self.dev.id,
                status: DeviceStatus::Online,
                ts_ms: now_ms(),
            })
            .await
            .is_ok()
    }

    /// Reports the device offline and its tags bad, once per outage.
    async fn went_offline(&mut self, reason: String) -> bool {
        if self.online == Some(false) {
            return true;
        }
        self.online = Some(false);
        self.dev.metrics.set_connected(false);
        let ts_ms = now_ms();
        let mut samples = Vec::new();
        for i in 0..self.dev.nodes.len() {
            let r = Reading {
                value: None,
                quality: Quality::Bad,
                ts_ms,
                source_ts_ms: None,
                problem: None,
            };
            self.changed(i, r, &mut samples);
        }
        let status = DeviceEvent::Status {
            device: self.dev.id,
            status: DeviceStatus::Offline { reason },
            ts_ms,
        };
        self.tx.send(status).await.is_ok() && self.send(samples).await
    }
}

/// What a subscription's callback hands to the device loop.
enum Note {
    Values(Vec<(u32, DataValue)>),
    Ended { group: usize, status: StatusCode },
}

/// The subscription callback runs inside the client's event loop: it only forwards.
struct Forward {
    group: usize,
    tx: mpsc::UnboundedSender<Note>,
}

impl OnSubscriptionNotificationCore for Forward {
    fn on_subscription_notification(
        &mut self,
        notification: NotificationMessage,
        _items: MonitoredItemMap<'_>,
    ) {
        for obj in notification.notification_data.into_iter().flatten() {
            if let Some(dc) = obj.inner_as::<DataChangeNotification>() {
                let values = dc
                    .monitored_items
                    .iter()
                    .flatten()
                    .map(|n| (n.client_handle, n.value.clone()))
                    .collect();
                let _ = self.tx.send(Note::Values(values));
            } else if let Some(sc) = obj.inner_as::<StatusChangeNotification>() {
                let _ = self.tx.send(Note::Ended {
                    group: self.group,
                    status: sc.status,
                });
            }
        }
    }
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
        let (note_tx, mut notes) = mpsc::unbounded_channel();
        let mut samples = Vec::new();
        if let Err(why) = self
            .attach(report, note_tx, first_namespaces, &mut samples)
            .await
        {
            return Ending::Lost(why);
        }
        let polled: Vec<usize> = (0..self.dev.nodes.len())
            .filter(|&i| self.dev.nodes[i].poll && self.ids[i].is_some())
            .collect();
        // Online means the values are known, as after a Modbus device's first complete poll: a
        // count made right after the online event must not become part of the baseline.
        match self
            .first_values(report, &mut notes, shutdown, &mut samples)
            .await
        {
            Ok(()) => {}
            Err(ending) => return ending,
        }
        if !polled.is_empty() {
            match self.poll(&polled, report).await {
                Ok(out) => samples.extend(out),
                Err(why) => return Ending::Lost(why),
            }
        }
        backoff.reset();
        if !report.went_online().await || !report.send(samples).await {
            return Ending::RuntimeGone;
        }
        let mut ticker = tokio::time::interval_at(
            tokio::time::Instant::now() + self.dev.poll_interval,
            self.dev.poll_interval,
        );
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return Ending::Shutdown,
                end = self.live.ended.recv() => {
                    let SessionEnd::Lost(why) = end.unwrap_or(SessionEnd::Lost("session ended".into()));
                    return Ending::Lost(why);
                }
                note = notes.recv() => match note {
                    Some(Note::Values(values)) => {
                        let mut out = Vec::new();
                        for (handle, dv) in values {
                            let i = handle.wrapping_sub(1) as usize;
                            if let Some(node) = self.dev.nodes.get(i) {
                                report.changed(i, reading(&dv, node.expect), &mut out);
                            }
                        }
                        if !report.send(out).await {
                            return Ending::RuntimeGone;
                        }
                    }
                    Some(Note::Ended { group, status }) => {
                        return Ending::Lost(format!(
                            "the server ended subscription {:?} ({status})",
                            self.dev.groups[group].name
                        ));
                    }
                    None => return Ending::Lost("subscriptions stopped".into()),
                },
                _ = ticker.tick(), if !polled.is_empty() => {
                    match self.poll(&polled, report).await {
                        Ok(out) => if !report.send(out).await { return Ending::RuntimeGone },
                        Err(why) => return Ending::Lost(why),
                    }
                }
                req = requests.next() => match req {
                    Request::Write(w) => {
                        let result = self.write(&w).await;
                        if let Err(e) = &result {
                            tracing::warn!(device = %self.dev.name, "write refused: {e}");
                        }
                        let _ = w.reply.send(result);
                    }
                    Request::Call(c) => {
                        let result = self.call(&c).await;
                        if let Err(e) = &result {
                            tracing::warn!(device = %self.dev.name, "method call failed: {e}");
                        }
                        let _ = c.reply.send(result);
                    }
                },
            }
        }
    }

    /// Waits for the initial value the server sends for every monitored item (bounded: a server
    /// that never sends one leaves that tag without a value, not the device offline).
    async fn first_values(
        &mut self,
        report: &mut Report<'_>,
        notes: &mut mpsc::UnboundedReceiver<Note>,
        shutdown: &mut watch::Receiver<bool>,
        samples: &mut Vec<Sample>,
    ) -> Result<(), Ending> {
        let mut waiting: std::collections::HashSet<usize> =
            self.monitored.iter().copied().collect();
        let slowest = self
            .dev
            .groups
            .iter()
            .map(|g| g.publishing_interval)
            .max()
            .unwrap_or_default();
        let wait = slowest * 3 + self.dev.timeout;
        let deadline = tokio::time::Instant::now() + wait;
        while !waiting.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(
                        device = %self.dev.name,
                        "no first value within {:?} for {} monitored nodes",
                        wait,
                        waiting.len()
                    );
                    break;
                }
                _ = shutdown.changed() => return Err(Ending::Shutdown),
                end = self.live.ended.recv() => {
                    let SessionEnd::Lost(why) = end.unwrap_or(SessionEnd::Lost("session ended".into()));
                    return Err(Ending::Lost(why));
                }
                note = notes.recv() => match note {
                    Some(Note::Values(values)) => {
                        for (handle, dv) in values {
                            let i = handle.wrapping_sub(1) as usize;
                            if let Some(node) = self.dev.nodes.get(i) {
                                report.changed(i, reading(&dv, node.expect), samples);
                                waiting.remove(&i);
                            }
                        }
                    }
                    Some(Note::Ended { group, status }) => {
                        return Err(Ending::Lost(format!(
                            "the server ended subscription {:?} ({status})",
                            self.dev.groups[group].name
                        )));
                    }
                    None => return Err(Ending::Lost("subscriptions stopped".into())),
                },
            }
        }
        Ok(())
    }

    /// Namespaces, node ids, subscriptions. A node that cannot be had is bad on its own; a
    /// failed service call loses the connection.
    async fn attach(
        &mut self,
        report: &mut Report<'_>,
        note_tx: mpsc::UnboundedSender<Note>,
        first_namespaces: &mut Option<Vec<String>>,
        samples: &mut Vec<Sample>,
    ) -> Result<(), String> {
        self.namespaces = namespace_array(self.session()).await?;
        let first = first_namespaces.get_or_insert_with(|| self.namespaces.clone());
        let moved = moved_namespaces(first, &self.namespaces);
        if !moved.is_empty() {
            tracing::error!(
                device = %self.dev.name,
                "the server's namespace array changed since the first connect: {}",
                moved
                    .iter()
                    .map(|(i, was, is)| format!("ns={i} was {was:?}, is {is:?}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        let targets: Vec<&NodeTarget> = self.dev.nodes.iter().map(|n| &n.target).collect();
        let resolved = resolve_all(self.session(), &targets, &self.namespaces, &moved).await;
        for (i, r) in resolved.into_iter().enumerate() {
            match r {
                Ok(id) => self.ids[i] = Some(id),
                Err(why) => report.bad(i, why, samples),
            }
        }
        for (g, group) in self.dev.groups.iter().enumerate() {
            let members: Vec<usize> = (0..self.dev.nodes.len())
                .filter(|&i| {
                    let n = &self.dev.nodes[i];
                    n.group == g && !n.poll && self.ids[i].is_some()
                })
                .collect();
            if members.is_empty() {
                continue;
            }
            let interval = group.publishing_interval;
            // The server sends a keep-alive after this many empty intervals (at least every
            // few seconds), and drops the subscription after three missed keep-alives.
            let keep_alive_count = (5000 / interval.as_millis().max(1) as u32).clamp(3, 1000);
            let sub = self
                .session()
                .create_subscription(
                    interval,
                    keep_alive_count * 3,
                    keep_alive_count,
                    0,
                    0,
                    true,
                    Forward {
                        group: g,
                        tx: note_tx.clone(),
                    },
                )
                .await
                .map_err(|e| format!("creating subscription {:?}: {e}", group.name))?;
            let items: Vec<MonitoredItemCreateRequest> =
                members.iter().map(|&i| self.item(i)).collect();
            let created = self
                .session()
                .create_monitored_items(sub, TimestampsToReturn::Both, items)
                .await
                .map_err(|e| format!("creating monitored items in {:?}: {e}", group.name))?;
            for (&i, c) in members.iter().zip(created.iter()) {
                if c.result.status_code.is_good() {
                    self.monitored.push(i);
                } else {
                    let why = format!(
                        "node {} cannot be monitored: {}",
                        self.dev.nodes[i].target, c.result.status_code
                    );
                    report.bad(i, why, samples);
                }
            }
        }
        Ok(())
    }

    fn item(&self, i: usize) -> MonitoredItemCreateRequest {
        let n = &self.dev.nodes[i];
        let filter = match n.deadband {
            None => ExtensionObject::null(),
            Some(d) => {
                let (kind, value) = match d {
                    Deadband::Absolute(v) => (DeadbandType::Absolute, v),
                    Deadband::Percent(v) => (DeadbandType::Percent, v),
                };
                ExtensionObject::from_message(DataChangeFilter {
                    trigger: DataChangeTrigger::StatusValue,
                    deadband_type: kind as u32,
                    deadband_value: value,
                })
            }
        };
        MonitoredItemCreateRequest {
            item_to_monitor: ReadValueId {
                node_id: self.ids[i].clone().unwrap_or_default(),
                attribute_id: AttributeId::Value as u32,
                ..Default::default()
            },
            monitoring_mode: MonitoringMode::Reporting,
            requested_parameters: MonitoringParameters {
                client_handle: i as u32 + 1,
                sampling_interval: n
                    .sampling_interval
                    .map(|d| d.as_secs_f64() * 1000.0)
                    .unwrap_or(-1.0),
                filter,
                queue_size: n.queue_size,
                discard_oldest: n.discard_oldest,
            },
        }
    }

    async fn poll(&self, polled: &[usize], report: &mut Report<'_>) -> Result<Vec<Sample>, String> {
        let reads: Vec<ReadValueId> = polled
            .iter()
            .map(|&i| ReadValueId::from(self.ids[i].clone().unwrap_or_default()))
            .collect();
        let values = self
            .session()
            .read(&reads, TimestampsToReturn::Both, 0.0)
            .await
            .map_err(|e| format!("polled read: {e}"))?;
        let mut out = Vec::new();
        for (&i, dv) in polled.iter().zip(values.iter()) {
            report.changed(i, reading(dv, self.dev.nodes[i].expect), &mut out);
        }
        Ok(out)
    }

    async fn write(&mut self, w: &WriteRequest) -> Result<(), String> {
        let i = self
            .dev
            .nodes
            .iter()
            .position(|n| n.id == w.tag)
            .ok_or_else(|| format!("tag {:?} is not a node of device {}", w.tag, self.dev.name))?;
        let node = &self.dev.nodes[i];
        let id = self.ids[i]
            .clone()
            .ok_or_else(|| format!("node {} is not available on the server", node.target))?;
        let t = match node.expect.or_else(|| self.write_types.get(&i).copied()) {
            Some(t) => t,
            None => {
                let t = self.data_type(&id).await?;
                self.write_types.insert(i, t);
                t
            }
        };
        let variant =
            variant_for(w.value, t).map_err(|e| format!("{} ({}): {e}", node.name, node.target))?;
        let status = timeout(
            self.dev.timeout * 2,
            self.session().write(&[WriteValue {
                node_id: id,
                attribute_id: AttributeId::Value as u32,
                index_range: NumericRange::None,
                value: DataValue::value_only(variant),
            }]),
        )
        .await
        .map_err(|_| format!("write to {}: no answer", node.target))?
        .map_err(|e| format!("write to {}: {e}", node.target))?;
        match status.first() {
            Some(s) if s.is_good() => Ok(()),
            Some(s) => Err(format!(
                "the server refused the write to {}: {s}",
                node.target
            )),
            None => Err(format!("write to {}: no result", node.target)),
        }
    }

    /// The built-in type of a variable, from its DataType attribute.
    async fn data_type(&self, id: &NodeId) -> Result<NodeType, String> {
        let r = self
            .session()
            .read(
                &[ReadValueId {
                    node_id: id.clone(),
                    attribute_id: AttributeId::DataType as u32,
                    ..Default::default()
                }],
                TimestampsToReturn::Neither,
                0.0,
            )
            .await
            .map_err(|e| format!("reading the data type of {id}: {e}"))?;
        match r.into_iter().next().and_then(|dv| dv.value) {
            Some(Variant::NodeId(t)) => builtin_of(&t).ok_or_else(|| {
                format!("node {id} has data type {t}, which the cell cannot write (only built-in scalar types)")
            }),
            other => Err(format!("node {id} has no readable data type ({other:?})")),
        }
    }

    async fn call(&self, c: &MethodCall) -> Result<Vec<Option<Value>>, String> {
        let resolve = |text: &str| parse_node_id(text).and_then(|a| node_id(&a, &self.namespaces));
        let object = resolve(&c.object)?;
        let method = resolve(&c.method)?;
        let types = self.input_types(&method).await?;
        if types.len() != c.args.len() {
            return Err(format!(
                "method {} takes {} arguments, {} given",
                c.method,
                types.len(),
                c.args.len()
            ));
        }
        let args = c
            .args
            .iter()
            .zip(&types)
            .enumerate()
            .map(|(k, (v, t))| variant_for(*v, *t).map_err(|e| format!("argument {}: {e}", k + 1)))
            .collect::<Result<Vec<_>, _>>()?;
        let result = timeout(
            self.dev.timeout * 2,
            self.session().call_one((object, method, Some(args))),
        )
        .await
        .map_err(|_| format!("call {}: no answer", c.method))?
        .map_err(|e| format!("call {}: {e}", c.method))?;
        if !result.status_code.is_good() {
            let per_arg: Vec<String> = result
                .input_argument_results
                .iter()
                .flatten()
                .map(|s| s.to_string())
                .collect();
            return Err(format!(
                "the server refused the call of {}: {}{}",
                c.method,
                result.status_code,
                if per_arg.is_empty() {
                    String::new()
                } else {
                    format!(" (arguments: {})", per_arg.join(", "))
                }
            ));
        }
        Ok(result
            .output_arguments
            .iter()
            .flatten()
            .map(|v| value_of(v).ok())
            .collect())
    }

    /// The built-in type of each input argument a method declares (none if it has no
    /// InputArguments property).
    async fn input_types(&self, method: &NodeId) -> Result<Vec<NodeType>, String> {
        let path = BrowsePath {
            starting_node: method.clone(),
            relative_path: RelativePath {
                elements: Some(vec![RelativePathElement {
                    reference_type_id: ReferenceTypeId::HasProperty.into(),
                    is_inverse: false,
                    include_subtypes: true,
                    target_name: QualifiedName::new(0, "InputArguments"),
                }]),
            },
        };
        let found = self
            .session()
            .translate_browse_paths_to_node_ids(&[path])
            .await
            .map_err(|e| format!("looking up the arguments of {method}: {e}"))?;
        let Some(prop) = found
            .first()
            .filter(|r| r.status_code.is_good())
            .and_then(|r| r.targets.as_deref())
            .and_then(|t| t.first())
            .map(|t| t.target_id.node_id.clone())
        else {
            return Ok(Vec::new());
        };
        let r = self
            .session()
            .read(&[ReadValueId::from(prop)], TimestampsToReturn::Neither, 0.0)
            .await
            .map_err(|e| format!("reading the arguments of {method}: {e}"))?;
        let Some(Variant::Array(a)) = r.into_iter().next().and_then(|dv| dv.value) else {
            return Ok(Vec::new());
        };
        a.values
            .iter()
            .map(|v| match v {
                Variant::ExtensionObject(o) => o
                    .inner_as::<::opcua::types::Argument>()
                    .and_then(|arg| builtin_of(&arg.data_type))
                    .ok_or_else(|| {
                        format!("method {method} takes an argument the cell cannot pass")
                    }),
                _ => Err(format!("method {method} declares its arguments oddly")),
            })
            .collect()
    }
}
