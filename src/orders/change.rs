//! What a command or a PLC signal did to the order book. The book only says what changed; the
//! cell turns each change into a production event (`cell/order_events.rs`), so orders know
//! nothing of events, envelopes or topics.

use super::command::CommandSource;
use super::order::JobResponse;
use super::state_machine::{JobCommand, JobState, SubState};

#[derive(Debug, Clone, PartialEq)]
pub enum OrderChange {
    /// An order was received, or moved to another state.
    State {
        at_ms: i64,
        order_id: String,
        material: String,
        state: JobState,
        substate: Option<SubState>,
        /// None when the order was just received.
        previous: Option<JobState>,
        command: JobCommand,
        by: CommandSource,
        reason: Option<String>,
        good: u64,
        scrap: u64,
    },
    /// Cancel or Clear took an order off the book.
    Removed {
        at_ms: i64,
        order_id: String,
        previous: JobState,
        command: JobCommand,
        by: CommandSource,
    },
    /// An order reached Ended or Aborted: its summary.
    Ended {
        at_ms: i64,
        response: Box<JobResponse>,
    },
}

/// Where the book records its changes.
pub trait OrderChanges {
    fn record(&mut self, change: OrderChange);
}

impl OrderChanges for Vec<OrderChange> {
    fn record(&mut self, change: OrderChange) {
        self.push(change);
    }
}
