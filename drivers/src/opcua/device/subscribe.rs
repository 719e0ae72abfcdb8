//! Subscribing: subscriptions and monitored items created on a fresh session, the notifications
//! they bring taken in, and the nodes read by polling instead.

use super::report::Report;
use super::{Attached, Ending};
use crate::opcua::client::SessionEnd;
use crate::opcua::convert::reading;
use crate::opcua::resolve::{moved_namespaces, namespace_array, resolve_all};
use crate::opcua::{Deadband, NodeTarget};
use crate::Sample;
use ::opcua::client::{MonitoredItemMap, OnSubscriptionNotificationCore};
use ::opcua::types::{
    AttributeId, DataChangeFilter, DataChangeNotification, DataChangeTrigger, DataValue,
    DeadbandType, ExtensionObject, MonitoredItemCreateRequest, MonitoringMode,
    MonitoringParameters, NotificationMessage, ReadValueId, StatusChangeNotification, StatusCode,
    TimestampsToReturn,
};
use tokio::sync::{mpsc, watch};

/// What a subscription's callback hands to the device loop.
pub(super) enum Note {
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

impl Attached<'_> {
    /// Hands on the values a notification brought, calling `seen` with each node they were for.
    /// An error is the end of the subscriptions (the server ended one, or the client stopped).
    pub(super) fn take(
        &self,
        note: Option<Note>,
        report: &mut Report<'_>,
        out: &mut Vec<Sample>,
        mut seen: impl FnMut(usize),
    ) -> Result<(), String> {
        match note {
            Some(Note::Values(values)) => {
                for (handle, dv) in values {
                    let i = handle.wrapping_sub(1) as usize;
                    if let Some(node) = self.dev.nodes.get(i) {
                        report.changed(i, reading(&dv, node.expect), out);
                        seen(i);
                    }
                }
                Ok(())
            }
            Some(Note::Ended { group, status }) => Err(format!(
                "the server ended subscription {:?} ({status})",
                self.dev.groups[group].name
            )),
            None => Err("subscriptions stopped".into()),
        }
    }

    /// Waits for the initial value the server sends for every monitored item (bounded: a server
    /// that never sends one leaves that tag without a value, not the device offline).
    pub(super) async fn first_values(
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
                note = notes.recv() => {
                    let taken = self.take(note, report, samples, |i| {
                        waiting.remove(&i);
                    });
                    if let Err(why) = taken {
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

    pub(super) async fn poll(
        &self,
        polled: &[usize],
        report: &mut Report<'_>,
    ) -> Result<Vec<Sample>, String> {
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
}
