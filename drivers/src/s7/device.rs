//! One S7 CPU: its connection, its poll groups on their schedules, and the writes the runtime
//! asks for, made between reads on the same connection. A CPU that stops answering is reported
//! offline with every tag bad, and connected again with a growing delay.

use super::frame::{item_error_text, Item};
use super::link::{Endpoint, Link, LinkError};
use super::plan::{plan_groups, PollGroup, ReadRequest, Refusals, MIN_PDU};
use super::tag::{S7Tag, S7Type};
use crate::presence::Presence;
use crate::{
    now_ms, Backoff, DeviceEvent, DeviceId, DeviceMetrics, DriverError, Sample, TagId, Value,
    WriteRequest,
};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// A CPU as the driver needs it.
#[derive(Debug, Clone)]
pub struct S7Device {
    pub id: DeviceId,
    pub name: String,
    pub endpoint: Endpoint,
    /// Bound on connecting and on each request.
    pub timeout: Duration,
    /// Largest run of unused bytes read to save an item.
    pub max_gap: u32,
    pub tags: Vec<S7Tag>,
    pub metrics: DeviceMetrics,
}

struct State {
    groups: Vec<PollGroup>,
    due: Vec<Instant>,
    refusals: Refusals,
    pdu_size: u16,
}

impl State {
    fn replan(&mut self, dev: &S7Device) {
        // Intervals do not change, so group indices and their due times stay valid.
        self.groups = plan_groups(&dev.tags, dev.max_gap, self.pdu_size, &self.refusals);
        self.due.resize(self.groups.len(), Instant::now());
    }

    fn next(&self) -> Option<(Instant, usize)> {
        crate::schedule::earliest(&self.due)
    }

    fn hurry(&mut self, i: usize) {
        if let Some(g) = self.groups.iter().position(|g| g.tags.contains(&i)) {
            self.due[g] = Instant::now();
        }
    }
}

/// Polls the CPU and makes the writes sent on `writes` until `stop` turns true. Never returns
/// an error: a CPU that misbehaves is reported offline and tried again.
pub async fn run(
    dev: S7Device,
    mut writes: mpsc::Receiver<WriteRequest>,
    tx: mpsc::Sender<DeviceEvent>,
    mut stop: watch::Receiver<bool>,
) {
    let ids = dev.tags.iter().map(|t| t.id).collect();
    let mut presence = Presence::new(dev.id, &dev.name, dev.metrics.clone(), ids);
    let mut st = State {
        groups: Vec::new(),
        due: Vec::new(),
        refusals: Refusals::new(),
        pdu_size: MIN_PDU,
    };
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut link: Option<Link> = None;
    let mut writes_open = true;
    // While the CPU is unreachable: when it is tried next, and why it is not connected.
    let mut retry_at = Instant::now();
    let mut down = String::new();
    while !*stop.borrow() {
        let Some(l) = link.as_mut() else {
            // Writes are answered at once while the CPU is unreachable, not left waiting.
            while Instant::now() < retry_at {
                tokio::select! {
                    _ = tokio::time::sleep_until(retry_at) => {}
                    w = writes.recv(), if writes_open => match w {
                        Some(w) => {
                            let _ = w.reply.send(Err(DriverError::transient(format!("{}: not connected: {down}", dev.name))));
                        }
                        None => writes_open = false,
                    },
                    _ = stop.changed() => break,
                }
            }
            if *stop.borrow() {
                break;
            }
            let opened = tokio::select! {
                r = Link::open(&dev.endpoint, dev.timeout) => r,
                _ = stop.changed() => break,
            };
            match opened {
                Ok(l) => {
                    tracing::debug!(device = %dev.name, pdu = l.pdu_size, "s7 connection open");
                    backoff.connected();
                    // What the CPU refused before may have changed with a new program.
                    st.refusals.clear();
                    st.pdu_size = l.pdu_size;
                    st.replan(&dev);
                    st.due.iter_mut().for_each(|d| *d = Instant::now());
                    link = Some(l);
                }
                Err(e) => {
                    dev.metrics.connect_failed();
                    down = format!("{}: {e}", dev.endpoint);
                    retry_at = Instant::now() + backoff.after_loss();
                    // A CPU refusing the connection (a TSAP it does not serve) is its refusal.
                    let why = DriverError {
                        kind: e.kind(),
                        message: down.clone(),
                    };
                    if !presence.went_offline(why, Vec::new(), &tx).await {
                        return;
                    }
                }
            }
            continue;
        };
        let next = st.next();
        enum Step {
            Write(WriteRequest),
            Poll(usize),
            Idle,
        }
        let step = tokio::select! {
            biased;
            _ = stop.changed() => break,
            w = writes.recv(), if writes_open => match w {
                Some(w) => Step::Write(w),
                None => { writes_open = false; Step::Idle }
            },
            _ = tokio::time::sleep_until(next.map_or(Instant::now() + Duration::from_secs(3600), |(at, _)| at)) => {
                next.map_or(Step::Idle, |(_, g)| Step::Poll(g))
            }
        };
        let outcome = match step {
            Step::Idle => Outcome::Done,
            Step::Write(w) => {
                let result = write(&dev, l, &mut st, w.tag, w.value).await;
                let lost = match &result {
                    Err((msg, lost)) => {
                        tracing::warn!(device = %dev.name, tag = w.tag.0, "s7 write failed: {msg}");
                        lost.clone()
                    }
                    Ok(()) => None,
                };
                let _ = w.reply.send(result.map_err(|(msg, _)| msg));
                lost.map_or(Outcome::Done, |reason| Outcome::Lost(reason, Vec::new()))
            }
            Step::Poll(g) => poll(&dev, l, &mut st, &mut presence, g, &tx).await,
        };
        if let Outcome::Gone = outcome {
            break;
        }
        if let Outcome::Lost(reason, samples) = outcome {
            if let Some(l) = link.take() {
                l.close().await;
            }
            retry_at = Instant::now() + backoff.after_loss();
            down = reason.clone();
            if !presence
                .went_offline(DriverError::transient(reason), samples, &tx)
                .await
            {
                return;
            }
        }
    }
    if let Some(l) = link.take() {
        l.close().await;
    }
}

/// How a poll or a write left the connection.
enum Outcome {
    Done,
    /// The connection is lost: why, and the samples gathered before.
    Lost(String, Vec<Sample>),
    /// The runtime dropped its receiver: the driver stops.
    Gone,
}

/// Reads group `g`.
async fn poll(
    dev: &S7Device,
    link: &mut Link,
    st: &mut State,
    presence: &mut Presence,
    g: usize,
    tx: &mpsc::Sender<DeviceEvent>,
) -> Outcome {
    let requests = st.groups[g].requests.clone();
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut learned = false;
    for req in requests.iter() {
        match read(dev, link, req, st, presence, &mut samples).await {
            Ok(l) => learned |= l,
            Err(reason) => return Outcome::Lost(reason, samples),
        }
    }
    dev.metrics.latency(started.elapsed());
    let now = Instant::now();
    if learned {
        st.replan(dev);
        st.due[g] = now;
    } else {
        st.due[g] = (st.due[g] + st.groups[g].interval).max(now);
    }
    if !presence.report(samples, tx).await {
        return Outcome::Gone;
    }
    Outcome::Done
}

/// One read request. Ok(true) if a shared item was refused and the plan must change.
async fn read(
    dev: &S7Device,
    link: &mut Link,
    req: &ReadRequest,
    st: &mut State,
    presence: &mut Presence,
    samples: &mut Vec<Sample>,
) -> Result<bool, String> {
    let items: Vec<Item> = req
        .items
        .iter()
        .map(|i| Item::bytes(i.area, i.start, i.len))
        .collect();
    let result = link.read(&items).await;
    dev.metrics.request(result.is_ok());
    let ts_ms = now_ms();
    let results = match result {
        Ok(r) => r,
        Err(LinkError::Lost(e)) => return Err(format!("{}: {e}", dev.endpoint)),
        Err(LinkError::Refused(e)) => {
            let tags = req.items.iter().flat_map(|i| &i.tags);
            // Once per refusal, not at every poll of a CPU that keeps refusing.
            if tags.clone().any(|&i| !presence.is_bad(i)) {
                tracing::warn!(device = %dev.name, "s7 read refused: {e}");
            }
            for &i in tags {
                presence.changed(i, None, ts_ms, samples);
            }
            return Ok(false);
        }
    };
    dev.metrics.good_read(ts_ms);
    let mut learned = false;
    for (item, result) in req.items.iter().zip(results) {
        match result {
            Ok(bytes) => {
                for &i in &item.tags {
                    let tag = &dev.tags[i];
                    let from = (tag.address.byte - item.start) as usize;
                    let value = bytes.get(from..).and_then(|b| tag.decode(b));
                    presence.changed(i, value, ts_ms, samples);
                }
            }
            Err(code) if item.tags.len() > 1 => {
                // Which of the item's tags the CPU refuses is learned by reading each alone.
                st.refusals.extend(item.tags.iter().copied());
                learned = true;
                tracing::debug!(device = %dev.name, "s7 item refused ({}), reading its tags alone", item_error_text(code));
            }
            Err(code) => {
                let i = item.tags[0];
                if !presence.is_bad(i) {
                    tracing::warn!(device = %dev.name, address = %dev.tags[i].address, "s7 tag refused: {}", item_error_text(code));
                }
                presence.changed(i, None, ts_ms, samples);
            }
        }
    }
    Ok(learned)
}

/// Writes `value` to tag `id`; an error says why, with the reason the connection is lost if it is.
async fn write(
    dev: &S7Device,
    link: &mut Link,
    st: &mut State,
    id: TagId,
    value: Value,
) -> Result<(), (DriverError, Option<String>)> {
    let i = dev.tags.iter().position(|t| t.id == id).ok_or_else(|| {
        (
            DriverError::configuration(format!("tag #{} is not on S7 device {:?}", id.0, dev.name)),
            None,
        )
    })?;
    let t = &dev.tags[i];
    if !t.writable {
        return Err((
            DriverError::configuration(format!(
                "{} of {:?} is not writable (`write = true` in its config)",
                t.address, dev.name
            )),
            None,
        ));
    }
    let (item, data) = write_item(t, value).map_err(|e| {
        (
            DriverError::configuration(format!("{} {}: {e}", dev.name, t.address)),
            None,
        )
    })?;
    let result = link.write(&item, &data).await;
    dev.metrics.request(result.is_ok());
    match result {
        Ok(Ok(())) => {
            st.hurry(i);
            Ok(())
        }
        Ok(Err(code)) => Err((
            DriverError::refused(format!(
                "{} refused the write to {}: {}",
                dev.name,
                t.address,
                item_error_text(code)
            )),
            None,
        )),
        Err(LinkError::Refused(e)) => Err((
            DriverError::refused(format!(
                "{} refused the write to {}: {e}",
                dev.name, t.address
            )),
            None,
        )),
        Err(LinkError::Lost(e)) => {
            let reason = format!("{}: {e}", dev.endpoint);
            Err((
                DriverError::transient(format!(
                    "{}: write to {} not confirmed: {e}",
                    dev.name, t.address
                )),
                Some(reason),
            ))
        }
    }
}

/// The write var item and its data for `value` on tag `t`: one bit for a bool, else its bytes.
pub fn write_item(t: &S7Tag, value: Value) -> Result<(Item, Vec<u8>), String> {
    let data = t.encode(value)?;
    let bit = match (t.data_type, t.address.width) {
        (S7Type::Bool, super::address::Width::Bit(b)) => Some(b),
        _ => None,
    };
    let item = Item {
        area: t.address.area,
        start: t.address.byte,
        len: data.len() as u16,
        bit,
    };
    Ok((item, data))
}
