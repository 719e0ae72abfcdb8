//! The cell: turns what the drivers see into production events, and keeps the state those
//! events are derived from. It does no I/O; the caller commits events and state together.

mod accounting;
mod actuals;
mod clock;
mod commands;
#[cfg(test)]
mod company_model_tests;
mod counter;
mod counter_sessions;
mod counting;
mod engine;
#[cfg(test)]
mod evidence_tests;
mod inbox;
mod model;
mod order_events;
mod part_record;
mod policy;
mod process;
#[cfg(test)]
mod scenario_tests;
#[cfg(test)]
mod session_evidence_tests;
mod tag_write;
#[cfg(test)]
mod tag_write_tests;
mod value_batch;
mod write;

pub use crate::vocabulary::MachineState;
pub use counter::{Company, Counter, CounterRules, Evidence, Pending, Rule, Step};
pub use counter_sessions::{DeviceSession, RestartSign};
pub use engine::{CellState, Engine};
#[cfg(test)]
pub(crate) use evidence_tests::net;
pub use inbox::{CommandIn, ReplyTo};
pub use model::{CellModel, OrderModel, Role};
pub use policy::{CommandPolicy, WritableTag};
pub use process::{exceeds, ProcessValues, Running, MAX_VALUES_PER_BATCH};
pub use value_batch::{ValueBatch, ValuePayload, ValueRecord};
pub use write::{PendingWrite, TagWrite, WriteOutcome, WriteResult};
