//! The store: one SQLite file per cell holding the outbox (every event, delivered or not) and the
//! cell state the events were derived from. Both change in one transaction, which is what makes
//! a count survive kill -9 exactly: either the parts and the new counter baseline are on disk, or
//! neither is and the next reading counts them again.

mod checkpoint;
mod event_cursor;
pub mod identity;
pub mod inspect;
pub mod integrity;
pub mod live;
#[cfg(test)]
mod model_tests;
mod outbox;
mod owner;
mod prune;
mod recent;
mod schema;
mod sink_cursor;
mod values;

pub use checkpoint::Checkpointer;
pub use event_cursor::{EventsMoved, EVENTS_SINK};
pub use identity::StoreLock;
pub use outbox::{Committed, Outbox, OutboxRow, OutboxStats};
pub use owner::{Commit, StoreOwner};
pub use prune::{PrunePass, PruneStep, Pruned};
pub use schema::{open, StoreError, SCHEMA_VERSION};
pub use sink_cursor::SinkCursor;
pub use values::{ValueDrops, ValueRow, ValuesMoved};
