//! The cell's order book: the job orders it holds, and what each command does to them.

use super::change::{OrderChange, OrderChanges};
use super::command::{Command, CommandSource, Reply};
use super::order::JobResponse;
use super::order::{JobOrder, OrderSpec};
use super::state_machine::{transition, JobCommand, JobState, SubState};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Replies remembered for re-delivered commands (QoS 1 delivers at least once). They are part
/// of the state written at every commit, so the window is what a re-delivery needs, not more.
const RECENT_REPLIES: usize = 128;
/// Orders not yet ended the cell will hold; MOM should not send a month's plan to one cell.
const MAX_OPEN: usize = 200;
/// Ended and aborted orders kept for `orders list` until cleared; the oldest go first.
const MAX_FINAL: usize = 20;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OrderBook {
    pub orders: Vec<JobOrder>,
    pub recent: VecDeque<Reply>,
    /// Parts made with no order running: reported, never dropped.
    pub no_order_good: u64,
    pub no_order_scrap: u64,
}

impl OrderBook {
    pub fn get(&self, id: &str) -> Option<&JobOrder> {
        self.orders.iter().find(|o| o.id() == id)
    }

    fn index(&self, id: &str) -> Option<usize> {
        self.orders.iter().position(|o| o.id() == id)
    }

    /// The order the cell is executing: Running, or Interrupted (held) and not yet ended.
    pub fn active(&self) -> Option<&JobOrder> {
        self.orders
            .iter()
            .find(|o| matches!(o.state, JobState::Running | JobState::Interrupted))
    }

    pub fn running_mut(&mut self) -> Option<&mut JobOrder> {
        self.orders
            .iter_mut()
            .find(|o| o.state == JobState::Running)
    }

    pub fn seen(&self, correlation_id: &str) -> Option<&Reply> {
        self.recent
            .iter()
            .find(|r| r.correlation_id.as_deref() == Some(correlation_id))
    }

    pub fn remember(&mut self, reply: Reply) {
        if self.recent.len() >= RECENT_REPLIES {
            self.recent.pop_front();
        }
        self.recent.push_back(reply);
    }

    /// Applies an order command (not downtime_reason). `ideal_cycle_ms` looks a material up in
    /// the product table.
    pub fn apply(
        &mut self,
        cmd: &Command,
        by: CommandSource,
        now_ms: i64,
        ideal_cycle_ms: &dyn Fn(&str) -> Option<f64>,
        out: &mut dyn OrderChanges,
    ) -> Reply {
        let job = cmd.command.job_command().expect("an order command");
        let result = match (&cmd.order, job) {
            (Some(spec), JobCommand::Store | JobCommand::StoreAndStart) => {
                self.store(spec, job, by, now_ms, ideal_cycle_ms, out)
            }
            (Some(spec), JobCommand::Update) => self.update(spec, by, now_ms, ideal_cycle_ms, out),
            (_, _) => {
                let id = cmd.order_id.as_deref().unwrap_or_default();
                self.command(id, job, by, cmd.reason.clone(), now_ms, out)
            }
        };
        let order_id = cmd
            .order_id
            .clone()
            .or_else(|| cmd.order.as_ref().map(|o| o.id.clone()));
        match result {
            Ok(()) => {
                self.begin_next(now_ms, out);
                let state = order_id
                    .as_deref()
                    .and_then(|id| self.get(id))
                    .map(|o| o.state);
                Reply {
                    state,
                    ..Reply::accepted(cmd, order_id)
                }
            }
            Err(reason) => {
                let mut r = Reply::rejected(Some(cmd), reason);
                r.state = order_id
                    .as_deref()
                    .and_then(|id| self.get(id))
                    .map(|o| o.state);
                r
            }
        }
    }

    fn store(
        &mut self,
        spec: &OrderSpec,
        job: JobCommand,
        by: CommandSource,
        now_ms: i64,
        ideal_cycle_ms: &dyn Fn(&str) -> Option<f64>,
        out: &mut dyn OrderChanges,
    ) -> Result<(), String> {
        if let Some(o) = self.get(&spec.id) {
            return Err(format!(
                "order {} already exists ({:?}); use update, or clear it first",
                spec.id, o.state
            ));
        }
        if self.orders.iter().filter(|o| !o.state.is_final()).count() >= MAX_OPEN {
            return Err(format!("the cell already holds {MAX_OPEN} open orders"));
        }
        let state = if job == JobCommand::StoreAndStart {
            JobState::AllowedToStart
        } else {
            JobState::NotAllowedToStart
        };
        let cycle = spec
            .ideal_cycle_s
            .map(|s| s * 1000.0)
            .or_else(|| ideal_cycle_ms(&spec.material));
        self.orders
            .push(JobOrder::new(spec.clone(), cycle, state, now_ms));
        if let Some(o) = self.orders.last() {
            out.record(order_change(o, None, job, by, None, now_ms));
        }
        Ok(())
    }

    fn update(
        &mut self,
        spec: &OrderSpec,
        by: CommandSource,
        now_ms: i64,
        ideal_cycle_ms: &dyn Fn(&str) -> Option<f64>,
        out: &mut dyn OrderChanges,
    ) -> Result<(), String> {
        let i = self
            .index(&spec.id)
            .ok_or_else(|| format!("unknown order {}", spec.id))?;
        let o = &mut self.orders[i];
        transition(o.state, JobCommand::Update)?;
        o.ideal_cycle_ms = spec
            .ideal_cycle_s
            .map(|s| s * 1000.0)
            .or_else(|| ideal_cycle_ms(&spec.material));
        o.spec = spec.clone();
        out.record(order_change(
            o,
            Some(o.state),
            JobCommand::Update,
            by,
            None,
            now_ms,
        ));
        Ok(())
    }

    /// A command on an existing order.
    pub fn command(
        &mut self,
        id: &str,
        job: JobCommand,
        by: CommandSource,
        reason: Option<String>,
        now_ms: i64,
        out: &mut dyn OrderChanges,
    ) -> Result<(), String> {
        let i = self
            .index(id)
            .ok_or_else(|| format!("unknown order {id}"))?;
        let previous = self.orders[i].state;
        if job == JobCommand::Resume {
            if let Some(other) = self.active().filter(|o| o.id() != id) {
                return Err(format!(
                    "order {} is active at the cell; stop or pause it first",
                    other.id()
                ));
            }
        }
        let Some(next) = transition(previous, job)? else {
            self.orders.remove(i);
            out.record(OrderChange::Removed {
                at_ms: now_ms,
                order_id: id.to_string(),
                previous,
                command: job,
                by,
            });
            return Ok(());
        };
        let o = &mut self.orders[i];
        o.state = next;
        o.substate = match (next, job) {
            (JobState::Interrupted, _) => Some(SubState::Held),
            (JobState::Ended, _) if o.spec.quantity == 0 || o.good >= o.spec.quantity => {
                Some(SubState::Completed)
            }
            (JobState::Ended, _) => Some(SubState::Closed),
            _ => None,
        };
        if next == JobState::Running && o.started_ms.is_none() {
            o.started_ms = Some(now_ms);
        }
        if next.is_final() {
            o.ended_ms = Some(now_ms);
        }
        out.record(order_change(o, Some(previous), job, by, reason, now_ms));
        if next.is_final() {
            out.record(OrderChange::Ended {
                at_ms: now_ms,
                response: Box::new(JobResponse::of(o)),
            });
            self.trim_final();
        }
        Ok(())
    }

    /// Starts the next order allowed to start when the cell is free: highest priority, then
    /// the earliest stored.
    pub fn begin_next(&mut self, now_ms: i64, out: &mut dyn OrderChanges) {
        if self.active().is_some() {
            return;
        }
        // Highest priority, then the earliest stored; orders stored in the same millisecond
        // keep the order they came in.
        let next = self
            .orders
            .iter()
            .enumerate()
            .filter(|(_, o)| o.state == JobState::AllowedToStart)
            .max_by_key(|(i, o)| {
                (
                    o.spec.priority,
                    std::cmp::Reverse(o.stored_ms),
                    std::cmp::Reverse(*i),
                )
            })
            .map(|(_, o)| o.id().to_string());
        if let Some(id) = next {
            self.command(
                &id,
                JobCommand::Begin,
                CommandSource::Cell,
                None,
                now_ms,
                out,
            )
            .expect("AllowedToStart begins");
        }
    }

    fn trim_final(&mut self) {
        while self.orders.iter().filter(|o| o.state.is_final()).count() > MAX_FINAL {
            let oldest = self.orders.iter().position(|o| o.state.is_final()).unwrap();
            self.orders.remove(oldest);
        }
    }
}

pub fn by_name(by: CommandSource) -> &'static str {
    match by {
        CommandSource::Mqtt => "mqtt",
        CommandSource::Operator => "operator",
        CommandSource::Plc => "plc",
        CommandSource::Sparkplug => "sparkplug",
        CommandSource::Cell => "cell",
    }
}

fn order_change(
    o: &JobOrder,
    previous: Option<JobState>,
    command: JobCommand,
    by: CommandSource,
    reason: Option<String>,
    now_ms: i64,
) -> OrderChange {
    OrderChange::State {
        at_ms: now_ms,
        order_id: o.id().to_string(),
        material: o.spec.material.clone(),
        state: o.state,
        substate: o.substate,
        previous,
        command,
        by,
        reason,
        good: o.good,
        scrap: o.scrap,
    }
}
