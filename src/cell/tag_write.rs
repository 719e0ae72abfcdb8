//! `write_tag`: a command that sets a tag marked `write = true`, from MOM, the operator or a
//! Sparkplug host's DCMD, and the order write-back. A write is checked (source, type, limits)
//! before it is accepted; accepted, it is held in the state as pending until its driver
//! answers, and every write ends in a `tag_write` event with what became of it: written,
//! failed with the driver's reason, superseded by a newer write to the same tag, or unknown
//! (the runtime stopped before the driver answered).

use super::engine::Engine;
use super::inbox::CommandIn;
use super::policy::show;
use super::write::{PendingWrite, TagWrite, WriteOutcome, WriteResult};
use crate::event::{EventBody, NewEvent, WriteStatus};
use crate::orders::{Command, CommandSource, Reply};
use mes_edge_drivers::{TagId, Value};

fn json_of(v: &Value) -> serde_json::Value {
    crate::event::RecordedValue::of(Some(*v), mes_edge_drivers::Quality::Good).value
}

impl Engine {
    pub(super) fn write_tag(&mut self, cmd: &Command, c: &CommandIn) -> Reply {
        let name = cmd.tag.as_deref().unwrap_or_default();
        let Some(tag) = self.model.writable.get(name) else {
            let why = if self.model.tag_names.iter().any(|t| t == name) {
                format!("tag {name:?} is not writable (it needs write = true in the cell config)")
            } else {
                format!(
                    "no tag {:?} in the cell config",
                    crate::logging::field(name)
                )
            };
            return Reply::rejected(Some(cmd), why);
        };
        if !tag.writable_by(c.by) {
            let by = crate::orders::by_name(c.by);
            return Reply::rejected(
                Some(cmd),
                format!("tag {name:?} may not be written by {by} (its write_sources)"),
            );
        }
        let Some(asked) = cmd.value.as_ref() else {
            return Reply::rejected(Some(cmd), "write_tag needs a value");
        };
        let value = match tag.check(asked) {
            Ok(v) => v,
            Err(why) => return Reply::rejected(Some(cmd), format!("tag {name:?}: {why}")),
        };
        let id = tag.id;
        self.accept_write(
            id,
            name.to_string(),
            value,
            c.by,
            c.user.clone(),
            Some(cmd.correlation_id.clone()),
        );
        let mut reply = Reply::accepted(cmd, None);
        reply.reason = Some(format!("{name} will be written {}", show(&value)));
        reply
    }

    fn accept_write(
        &mut self,
        tag: TagId,
        name: String,
        value: Value,
        by: CommandSource,
        user: Option<String>,
        correlation_id: Option<String>,
    ) {
        self.state.last_write_id += 1;
        let id = self.state.last_write_id;
        let previous = self
            .last_values
            .get(&tag)
            .and_then(|(v, _)| v.as_ref())
            .map(json_of);
        let pending = PendingWrite {
            tag: name.clone(),
            value: json_of(&value),
            previous,
            by,
            user,
            correlation_id,
            accepted_ms: self.now.unwrap_or_else(mes_edge_drivers::now_ms),
        };
        self.state.pending_writes.insert(id, pending);
        self.writes.push(TagWrite {
            id,
            tag,
            name,
            value,
        });
    }

    /// A write's driver answered (or it was superseded): its `tag_write` event.
    pub fn write_done(&mut self, o: &WriteOutcome, out: &mut Vec<NewEvent>) {
        let Some(p) = self.state.pending_writes.remove(&o.id) else {
            return;
        };
        let (status, reason) = match &o.result {
            WriteResult::Written => (WriteStatus::Written, None),
            WriteResult::Failed(why) => (WriteStatus::Failed, Some(why.clone())),
            WriteResult::Superseded { by } => {
                let newer = self.state.pending_writes.get(by);
                let which = newer
                    .and_then(|p| p.correlation_id.clone())
                    .map_or(format!("write #{by}"), |c| format!("command {c:?}"));
                (
                    WriteStatus::Superseded,
                    Some(format!(
                        "a newer write to the tag ({which}) was written instead"
                    )),
                )
            }
        };
        out.push(written(p, o.ts_ms, status, reason));
    }

    /// Writes accepted before the runtime stopped and never answered: whether they reached
    /// the machine cannot be known here, and they are not sent again (a stale write is worse
    /// than none). Called once when the engine starts.
    pub fn writes_left_unanswered(&mut self, now_ms: i64, out: &mut Vec<NewEvent>) {
        for (_, p) in std::mem::take(&mut self.state.pending_writes) {
            let why = "the runtime stopped before the driver answered; read the tag to know";
            out.push(written(p, now_ms, WriteStatus::Unknown, Some(why.into())));
        }
    }

    /// The order write-back: the active order's number and target quantity, written when the
    /// active order changes (and zeros when none is active), so the machine's HMI shows what
    /// the cell works on. It goes through the same checks-free path as an accepted write_tag
    /// (the config checked the tags) and ends in `tag_write` events like one.
    pub fn order_write_back(&mut self) {
        if self.model.write_back.iter().all(Option::is_none) {
            return;
        }
        let active = self
            .state
            .orders
            .active()
            .map(|o| (o.id().to_string(), o.spec.quantity));
        if self.written_back.as_ref() == Some(&active) {
            return;
        }
        self.written_back = Some(active.clone());
        let (number, target) = match &active {
            // The PLC holds a number: an order id of digits goes as that number; another id as 0.
            Some((id, qty)) => (id.parse::<u64>().unwrap_or(0), *qty),
            None => (0, 0),
        };
        let slots = self.model.write_back.clone();
        for (slot, value) in slots.into_iter().zip([number, target]) {
            if let Some((tag, name)) = slot {
                self.accept_write(
                    tag,
                    name,
                    Value::UInt(value),
                    CommandSource::Cell,
                    None,
                    None,
                );
            }
        }
    }

    /// The writes accepted since the last call: after a commit, for the drivers; after a failed
    /// commit, dropped (the batch is applied again and accepts them again).
    pub fn take_writes(&mut self) -> Vec<TagWrite> {
        std::mem::take(&mut self.writes)
    }

    /// Whether writes wait for a commit (which then is due at once: a write waits for no idle
    /// commit).
    pub fn has_writes(&self) -> bool {
        !self.writes.is_empty()
    }

    /// A commit failed: the state went back to before the batch, and the write-back is
    /// decided again with it.
    pub fn forget_write_back(&mut self) {
        self.written_back = None;
    }
}

fn written(p: PendingWrite, ts_ms: i64, status: WriteStatus, reason: Option<String>) -> NewEvent {
    let source = vec![p.tag.clone()];
    let user = p.user.clone();
    let body = EventBody::TagWrite {
        tag: p.tag,
        value: p.value,
        previous: p.previous,
        by: p.by,
        correlation_id: p.correlation_id,
        result: status,
        reason,
        accepted_ts: p.accepted_ms,
    };
    let mut ev = NewEvent::new(ts_ms, source, body);
    ev.user = user;
    ev
}
