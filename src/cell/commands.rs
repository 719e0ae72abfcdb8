//! Commands reaching the engine: from MOM over MQTT, from the operator over the control socket,
//! and from the PLC's order signals. One door: every command is applied here, in order, and its
//! effects commit with the reply.

use super::engine::Engine;
use crate::event::{EventBody, NewEvent};
use crate::orders::{
    by_name, parse_command, Command, CommandName, CommandSource, JobCommand, JobState, OrderSpec,
    Reply,
};

impl Engine {
    /// Applies a command payload and returns the reply (also appended as a command_response
    /// event). A command whose correlation id was seen before is answered, not applied again.
    pub fn command(
        &mut self,
        payload: &[u8],
        by: CommandSource,
        now_ms: i64,
        out: &mut Vec<NewEvent>,
    ) -> Reply {
        let reply = match parse_command(payload) {
            Err((correlation_id, reason)) => {
                tracing::warn!(?by, ?correlation_id, "command rejected: {reason}");
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
                    self.credit(now_ms);
                    let reply = self.apply_command(&cmd, by, now_ms, out);
                    if !reply.accepted {
                        tracing::warn!(?by, correlation_id = %cmd.correlation_id, "command rejected: {}", reply.reason.as_deref().unwrap_or(""));
                    }
                    self.state.orders.remember(reply.clone());
                    reply
                }
            },
        };
        out.push(NewEvent::new(
            now_ms,
            vec![by_name(by).into()],
            EventBody::CommandResponse(reply.clone()),
        ));
        reply
    }

    fn apply_command(
        &mut self,
        cmd: &Command,
        by: CommandSource,
        now_ms: i64,
        out: &mut Vec<NewEvent>,
    ) -> Reply {
        match cmd.command {
            CommandName::ScrapReason => return self.give_scrap_reason(cmd, by, now_ms, out),
            CommandName::ConsumeMaterial => return self.consume_material(cmd, by, now_ms, out),
            CommandName::WriteTag => return self.write_tag(cmd),
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
            tracing::warn!(order = %id, "PLC order start refused: {e}");
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
