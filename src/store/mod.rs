//! The store: one SQLite file per cell holding the outbox (every event, delivered or not) and the
//! cell state the events were derived from. Both change in one transaction, which is what makes
//! a count survive kill -9 exactly: either the parts and the new counter baseline are on disk, or
//! neither is and the next reading counts them again.

mod checkpoint;
mod cursor_rows;
mod error;
mod event_cursor;
pub mod identity;
pub mod inspect;
pub mod integrity;
pub mod live;
pub mod lock;
#[cfg(test)]
mod model_tests;
mod outbox;
mod owner;
mod prune;
mod recent;
pub mod replay;
mod schema;
mod sink_cursor;
#[cfg(test)]
mod test_support;
mod values;

pub use checkpoint::Checkpointer;
pub use cursor_rows::EventsMoved;
pub use error::StoreError;
pub use event_cursor::EVENTS_SINK;
pub use lock::StoreLock;
pub use outbox::{Committed, Outbox, OutboxRow, OutboxStats};
pub use owner::{Commit, StoreOwner};
pub use prune::{PrunePass, PruneStep, Pruned};
pub use schema::{open, SCHEMA_VERSION};
pub use sink_cursor::SinkCursor;
pub use values::{ValueDrops, ValueRow, ValuesMoved};
