//! Commands reaching the engine: from MOM over MQTT, from the operator over the control socket,
//! and from the PLC's order signals. One door: every command is applied here, in order, and its
//! effects commit with the reply.

use super::engine::Engine;
use super::inbox::CommandIn;
use crate::event::{EventBody, NewEvent};
use crate::logging::field;
use crate::orders::{
    by_name, parse_command, Command, CommandName, CommandSource, JobCommand, JobState, OrderSpec,
    Reply, ReplyStatus,
};

/// A command issued further ahead of the cell's clock than this cannot be judged fresh or
/// stale: one of the two clocks is wrong, and a write to a machine waits until that is fixed.
const MAX_AHEAD_MS: i64 = 60_000;

impl Engine {
    /// Applies a command payload received at `now_ms` from `by`, with nothing else known of it
    /// (see [`Engine::command_in`]).
    pub fn command(
        &mut self,
        payload: &[u8],
        by: CommandSource,
        now_ms: i64,
        out: &mut Vec<NewEvent>,
    ) -> Reply {
        let c = CommandIn {
            received_ms: now_ms,
            ..CommandIn::new(payload.to_vec(), by)
        };
        self.command_in(&c, out)
    }

    /// Applies a command and returns the reply (also appended as a command_response event).
    /// A command is checked before anything of it is applied: its source must be allowed to
    /// send it, and it must still be fresh. A command whose correlation id was seen before is
    /// answered, not applied again.
    pub fn command_in(&mut self, c: &CommandIn, out: &mut Vec<NewEvent>) -> Reply {
        let (by, now_ms) = (c.by, c.received_ms);
        let mut reply = match parse_command(&c.payload) {
            Err((correlation_id, reason)) => {
                let mut r = Reply::rejected(None, reason);
                r.correlation_id = correlation_id;
                r
            }
            Ok(cmd) => match self.state.orders.seen(&cmd.correlation_id) {
                Some(first) => Reply {
                    duplicate: true,
                    ..first.clone()
                },
                None => {
                    let reply = match self.refusal(&cmd, c) {
                        Some(refused) => refused,
                        None => {
                            self.credit(now_ms);
                            self.apply_command(&cmd, c, out)
                        }
                    };
                    // Expired: a fresh copy under the same id may still come, and is applied.
                    if reply.status() != ReplyStatus::Expired {
                        self.state.orders.remember(reply.clone());
                    }
                    reply
                }
            },
        };
        if reply.status() != ReplyStatus::Accepted && !reply.duplicate {
            tracing::warn!(
                ?by,
                correlation_id = %field(reply.correlation_id.as_deref().unwrap_or("")),
                status = ?reply.status(),
                "command not applied: {}",
                field(reply.reason.as_deref().unwrap_or(""))
            );
        }
        if let Some(route) = &c.respond_to {
            reply.response_topic = Some(route.topic.clone());
            reply.correlation_data = route.correlation_data.as_ref().map(|d| hex(d));
        }
        let mut ev = NewEvent::new(
            now_ms,
            vec![by_name(by).into()],
            EventBody::CommandResponse(reply.clone()),
        );
        ev.user.clone_from(&c.user);
        out.push(ev);
        reply
    }

    /// Why `cmd` may not be applied now, if it may not: its source not allowed to send it,
    /// expired, past the cell's maximum age for it, issued by a clock far ahead of the cell's.
    fn refusal(&self, cmd: &Command, c: &CommandIn) -> Option<Reply> {
        let policy = &self.model.policy;
        if !policy.allows(c.by, cmd.command) {
            return Some(Reply::rejected(
                Some(cmd),
                policy.refusal(c.by, cmd.command),
            ));
        }
        // Judged when the engine comes to it, which may be well after it arrived.
        let now = self.now.unwrap_or(c.received_ms).max(c.received_ms);
        let expired = |why: String| Some(Reply::refused(Some(cmd), ReplyStatus::Expired, why));
        for (what, at) in [
            ("its expiry", c.expires_ms),
            ("its expires_at", cmd.expires_ms()),
        ] {
            if let Some(at) = at.filter(|&at| now > at) {
                return expired(format!("{what} passed {} s ago", secs(now - at)));
            }
        }
        let issued = cmd.issued_ms();
        if let Some(ahead) = issued.map(|i| i - now).filter(|&a| a > MAX_AHEAD_MS) {
            return Some(Reply::rejected(
                Some(cmd),
                format!(
                    "issued_at is {} s ahead of the cell's clock: one of the two clocks is wrong",
                    secs(ahead)
                ),
            ));
        }
        if let Some(max) = policy.max_age_ms(cmd.command) {
            let age = now - issued.unwrap_or(c.received_ms);
            if age > max {
                let from = if issued.is_some() {
                    "issued"
                } else {
                    "received"
                };
                return expired(format!(
                    "{from} {} s ago, over the cell's maximum age of {} s for it",
                    secs(age),
                    secs(max)
                ));
            }
        }
        None
    }

    fn apply_command(&mut self, cmd: &Command, c: &CommandIn, out: &mut Vec<NewEvent>) -> Reply {
        let (by, now_ms) = (c.by, c.received_ms);
        match cmd.command {
            CommandName::ScrapReason => return self.give_scrap_reason(cmd, by, now_ms, out),
            CommandName::ConsumeMaterial => return self.consume_material(cmd, by, now_ms, out),
            CommandName::WriteTag => return self.write_tag(cmd, c),
            _ => {}
        }
        if cmd.command != CommandName::DowntimeReason {
            let products = &self.model.orders.products;
            return self
                .state
                .orders
                .apply(cmd, by, now_ms, &|m| products.get(m).copied(), out);
        }
        let reason = cmd.reason.as_deref().unwrap_or_default();
        match self.give_reason(reason) {
            None => Reply::rejected(
                Some(cmd),
                "the cell has not stopped yet: no stop to give a reason to",
            ),
            Some(stop) => {
                let body = EventBody::DowntimeReason {
                    state: stop.state,
                    since: stop.since,
                    until: stop.until,
                    reason: reason.to_string(),
                    by,
                    order_id: stop.order_id.clone(),
                };
                out.push(NewEvent::new(now_ms, vec![by_name(by).into()], body));
                Reply::accepted(cmd, stop.order_id)
            }
        }
    }

    /// A rising edge of the PLC's order start or end bit. The PLC says what the machine does, so
    /// a start while another order is active ends that one first, and an unknown order number
    /// becomes a new order.
    pub(super) fn plc_order_signal(&mut self, start: bool, ts_ms: i64, out: &mut Vec<NewEvent>) {
        let needs = if start {
            CommandName::Start
        } else {
            CommandName::Stop
        };
        if !self.model.policy.allows(CommandSource::Plc, needs) {
            let why = self.model.policy.refusal(CommandSource::Plc, needs);
            tracing::warn!("PLC order signal ignored: {why}");
            return;
        }
        let book = &mut self.state.orders;
        let active = book.active().map(|o| o.id().to_string());
        if !start {
            match active {
                Some(id) => {
                    let _ = book.command(
                        &id,
                        JobCommand::Stop,
                        CommandSource::Plc,
                        Some("PLC end signal".into()),
                        ts_ms,
                        out,
                    );
                    book.begin_next(ts_ms, out);
                }
                None => tracing::warn!("PLC order end signal with no active order"),
            }
            return;
        }
        let Some(number) = self.state.order_number else {
            tracing::warn!("PLC order start signal, but the order number tag has not been read");
            return;
        };
        let id = number.to_string();
        if active.as_deref() == Some(id.as_str()) {
            return;
        }
        if let Some(other) = active {
            let reason = Some(format!("PLC started order {id}"));
            let _ = book.command(
                &other,
                JobCommand::Stop,
                CommandSource::Plc,
                reason,
                ts_ms,
                out,
            );
        }
        let result = match book.get(&id).map(|o| o.state) {
            None => {
                let spec = OrderSpec {
                    id: id.clone(),
                    material: "unknown".into(),
                    quantity: 0,
                    ideal_cycle_s: None,
                    lot: None,
                    priority: i32::MAX,
                };
                let cmd = Command {
                    correlation_id: format!("plc-{ts_ms}"),
                    command: CommandName::StoreAndStart,
                    order: Some(spec),
                    order_id: None,
                    reason: None,
                    quantity: None,
                    material: None,
                    tag: None,
                    value: None,
                    issued_at: None,
                    expires_at: None,
                };
                let products = &self.model.orders.products;
                let r = book.apply(
                    &cmd,
                    CommandSource::Plc,
                    ts_ms,
                    &|m| products.get(m).copied(),
                    out,
                );
                if r.accepted {
                    Ok(())
                } else {
                    Err(r.reason.unwrap_or_default())
                }
            }
            Some(JobState::NotAllowedToStart) => {
                book.command(&id, JobCommand::Start, CommandSource::Plc, None, ts_ms, out)
            }
            Some(JobState::Interrupted) => book.command(
                &id,
                JobCommand::Resume,
                CommandSource::Plc,
                None,
                ts_ms,
                out,
            ),
            Some(_) => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!(order = %crate::logging::field(&id), "PLC order start refused: {e}");
        }
        // An order allowed to start waits behind higher priorities; the PLC's goes first.
        if let Some(o) = book
            .orders
            .iter_mut()
            .find(|o| o.id() == id && o.state == JobState::AllowedToStart)
        {
            o.spec.priority = i32::MAX;
        }
        book.begin_next(ts_ms, out);
    }
}

fn secs(ms: i64) -> String {
    format!("{:.1}", ms as f64 / 1000.0)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
