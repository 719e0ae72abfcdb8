//! Subscribing: subscriptions and monitored items created on a fresh session (in chunks the
//! server accepts), their first values awaited, and the nodes read by polling instead.

use super::intake::Intake;
use super::report::Report;
use super::{Attached, Ending};
use crate::opcua::client::SessionEnd;
use crate::opcua::convert::reading;
use crate::opcua::inbox::{Inbox, Note};
use crate::opcua::resolve::{moved_namespaces, namespace_array, resolve_all};
use crate::opcua::{Deadband, NodeTarget};
use crate::Sample;
use ::opcua::client::{MonitoredItemMap, OnSubscriptionNotificationCore};
use ::opcua::types::{
    AttributeId, DataChangeFilter, DataChangeNotification, DataChangeTrigger, DataValue,
    DeadbandType, ExtensionObject, MonitoredItemCreateRequest, MonitoringMode,
    MonitoringParameters, NodeId, NotificationMessage, ReadValueId, StatusChangeNotification,
    StatusCode, TimestampsToReturn, VariableId, Variant,
};
use std::sync::Arc;
use tokio::sync::watch;

/// Monitored items created per CreateMonitoredItems call when the server states no smaller
/// MaxMonitoredItemsPerCall (and nodes per polled read): async-opcua, server and client,
/// decodes at most 1,000 array elements by default, a request this size stays well inside
/// the default message size (327,675 bytes), and one call's answer comes back within a
/// request timeout.
pub(crate) const ITEMS_PER_CALL: usize = 1000;

/// Data changes the server may put into one notification message: bounds the size of a
/// message (50,000 first values in one would pass the client's default message size limit)
/// and so the memory the inbox's bound stands for.
pub(crate) const NOTIFICATIONS_PER_PUBLISH: u32 = 1000;

/// The subscription callback runs inside the client's event loop: it only queues.
struct Forward {
    group: usize,
    inbox: Arc<Inbox>,
}

impl OnSubscriptionNotificationCore for Forward {
    fn on_subscription_notification(
        &mut self,
        notification: NotificationMessage,
        _items: MonitoredItemMap<'_>,
    ) {
        let mut values = Vec::new();
        let mut ended = None;
        for obj in notification.notification_data.into_iter().flatten() {
            if let Some(dc) = obj.inner_as::<DataChangeNotification>() {
                values.extend(
                    dc.monitored_items
                        .iter()
                        .flatten()
                        .map(|n| (n.client_handle, n.value.clone())),
                );
            } else if let Some(sc) = obj.inner_as::<StatusChangeNotification>() {
                ended = Some(sc.status);
            }
        }
        // One message, at most two notes: the bound in inbox.rs counts on it.
        if !values.is_empty() {
            self.inbox.push(Note::Values(values));
        }
        if let Some(status) = ended {
            self.inbox.push(Note::Ended {
                group: self.group,
                status,
            });
        }
    }
}

/// How the server answered a CreateMonitoredItems call of one chunk.
enum Chunk {
    Created(Vec<StatusCode>),
    TooMany,
}

impl Attached<'_> {
    /// Waits for the first value the server sends for every monitored item (bounded: a server
    /// that never sends one leaves that tag without a value, not the device offline).
    pub(super) async fn first_values(
        &mut self,
        report: &mut Report<'_>,
        intake: &mut Intake<'_>,
        shutdown: &mut watch::Receiver<bool>,
        samples: &mut Vec<Sample>,
    ) -> Result<(), Ending> {
        let slowest = self
            .dev
            .groups
            .iter()
            .map(|g| g.publishing_interval)
            .max()
            .unwrap_or_default();
        let wait = slowest * 3 + self.dev.timeout;
        let deadline = tokio::time::Instant::now() + wait;
        let inbox = intake.inbox.clone();
        while intake.awaiting() > 0 {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(
                        device = %self.dev.name,
                        "no first value within {:?} for {} monitored nodes",
                        wait,
                        intake.awaiting()
                    );
                    break;
                }
                _ = shutdown.changed() => return Err(Ending::Shutdown),
                end = self.live.ended.recv() => {
                    let SessionEnd::Lost(why) = end.unwrap_or(SessionEnd::Lost("session ended".into()));
                    return Err(Ending::Lost(why));
                }
                note = inbox.next() => {
                    if let Err(why) = intake.take(note, report, samples) {
                        return Err(Ending::Lost(why));
                    }
                }
            }
        }
        Ok(())
    }

    /// Namespaces, node ids, subscriptions. A node that cannot be had is bad on its own; a
    /// failed service call loses the connection.
    pub(super) async fn attach(
        &mut self,
        report: &mut Report<'_>,
        intake: &mut Intake<'_>,
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
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); self.dev.groups.len()];
        for (i, n) in self.dev.nodes.iter().enumerate() {
            if !n.poll && self.ids[i].is_some() {
                members[n.group].push(i);
            }
        }
        if members.iter().all(|m| m.is_empty()) {
            return Ok(());
        }
        let mut per_call = self.items_per_call().await;
        for (g, group) in self.dev.groups.iter().enumerate() {
            if members[g].is_empty() {
                continue;
            }
            let interval = group.publishing_interval;
            // The server sends a keep-alive after this many empty intervals (at least every
            // few seconds), and drops the subscription after three missed keep-alives.
            let keep_alive_count = (5000 / interval.as_millis().max(1) as u32).clamp(3, 1000);
            let created = self.session().create_subscription(
                interval,
                keep_alive_count * 3,
                keep_alive_count,
                NOTIFICATIONS_PER_PUBLISH,
                0,
                true,
                Forward {
                    group: g,
                    inbox: intake.inbox.clone(),
                },
            );
            let sub = intake
                .meanwhile(created, report, samples)
                .await?
                .map_err(|e| format!("creating subscription {:?}: {e}", group.name))?;
            let mut rest: &[usize] = &members[g];
            while !rest.is_empty() {
                let chunk = &rest[..per_call.min(rest.len())];
                let statuses = match self.create_items(sub, chunk, intake, report, samples).await {
                    Ok(Chunk::Created(s)) => s,
                    // A server that enforces a limit it does not state: try again with less.
                    Ok(Chunk::TooMany) if per_call > 1 => {
                        per_call /= 2;
                        tracing::info!(
                            device = %self.dev.name,
                            "the server refused {} monitored items in one call; {per_call} per call from now on",
                            chunk.len()
                        );
                        continue;
                    }
                    Ok(Chunk::TooMany) => {
                        return Err(format!(
                        "creating monitored items in {:?}: the server refuses even one per call",
                        group.name
                    ))
                    }
                    Err(e) => {
                        return Err(format!("creating monitored items in {:?}: {e}", group.name))
                    }
                };
                for (&i, status) in chunk.iter().zip(statuses) {
                    if status.is_good() {
                        self.monitored.push(i);
                        intake.expect_first(i);
                    } else {
                        let why = format!(
                            "node {} cannot be monitored: {status}",
                            self.dev.nodes[i].target
                        );
                        report.bad(i, why, samples);
                    }
                }
                rest = &rest[chunk.len()..];
            }
        }
        tracing::info!(
            device = %self.dev.name,
            "{} nodes monitored, at most {per_call} per call",
            self.monitored.len()
        );
        Ok(())
    }

    /// The server's MaxMonitoredItemsPerCall if it states one below ours, else [`ITEMS_PER_CALL`].
    async fn items_per_call(&self) -> usize {
        let id: NodeId =
            VariableId::Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall.into();
        let stated = self
            .session()
            .read(&[ReadValueId::from(id)], TimestampsToReturn::Neither, 0.0)
            .await
            .ok()
            .and_then(|r| r.into_iter().next())
            .and_then(|dv| dv.value)
            .and_then(|v| match v {
                Variant::UInt32(n) => Some(n as usize),
                _ => None,
            });
        match stated {
            Some(n) if n > 0 => n.min(ITEMS_PER_CALL),
            _ => ITEMS_PER_CALL,
        }
    }

    /// One CreateMonitoredItems call for `chunk`.
    async fn create_items(
        &self,
        sub: u32,
        chunk: &[usize],
        intake: &mut Intake<'_>,
        report: &mut Report<'_>,
        samples: &mut Vec<Sample>,
    ) -> Result<Chunk, String> {
        let items: Vec<MonitoredItemCreateRequest> = chunk.iter().map(|&i| self.item(i)).collect();
        let call = self
            .session()
            .create_monitored_items(sub, TimestampsToReturn::Both, items);
        match intake.meanwhile(call, report, samples).await? {
            Ok(created) if created.len() == chunk.len() => Ok(Chunk::Created(
                created.iter().map(|c| c.result.status_code).collect(),
            )),
            Ok(created) => Err(format!(
                "the server answered {} of {} items",
                created.len(),
                chunk.len()
            )),
            Err(e) if e.status() == StatusCode::BadTooManyOperations => Ok(Chunk::TooMany),
            Err(e) => Err(e.to_string()),
        }
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

    /// Reads the polled nodes, taking in notifications meanwhile.
    pub(super) async fn poll(
        &self,
        polled: &[usize],
        intake: &mut Intake<'_>,
        report: &mut Report<'_>,
        out: &mut Vec<Sample>,
    ) -> Result<(), String> {
        let mut values: Vec<DataValue> = Vec::with_capacity(polled.len());
        // At most ITEMS_PER_CALL nodes per read: a server on async-opcua's defaults decodes at
        // most 1,000 array elements (this client takes 100,000 in an answer: client.rs).
        for chunk in polled.chunks(ITEMS_PER_CALL) {
            let reads: Vec<ReadValueId> = chunk
                .iter()
                .map(|&i| ReadValueId::from(self.ids[i].clone().unwrap_or_default()))
                .collect();
            let call = self.session().read(&reads, TimestampsToReturn::Both, 0.0);
            values.extend(
                intake
                    .meanwhile(call, report, out)
                    .await?
                    .map_err(|e| format!("polled read: {e}"))?,
            );
        }
        for (&i, dv) in polled.iter().zip(values.iter()) {
            report.changed(i, reading(dv, self.dev.nodes[i].expect), out);
        }
        Ok(())
    }
}
