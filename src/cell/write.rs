//! A write to a tag as it travels: accepted by the engine, pending in the committed state until
//! its driver answers, and the answer coming back (see tag_write.rs for the rules).

use crate::orders::CommandSource;
use mes_edge_drivers::{TagId, Value};
use serde::{Deserialize, Serialize};

/// A write the engine accepted, for the runtime to hand to the tag's driver after the commit.
#[derive(Debug, Clone, PartialEq)]
pub struct TagWrite {
    /// Names the write until its outcome comes back (see [`WriteOutcome`]).
    pub id: u64,
    pub tag: TagId,
    pub name: String,
    pub value: Value,
}

/// An accepted write waiting for its driver's answer; committed with the state, so that a
/// write the runtime never heard back from is reported after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingWrite {
    pub tag: String,
    pub value: serde_json::Value,
    pub previous: Option<serde_json::Value>,
    pub by: CommandSource,
    pub user: Option<String>,
    pub correlation_id: Option<String>,
    pub accepted_ms: i64,
}

/// What became of a write.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteResult {
    Written,
    Failed(String),
    /// A newer write to the same tag came before this one reached the driver: the newer one
    /// is written, this one never is.
    Superseded {
        by: u64,
    },
}

/// A write's result, from the write queue back to the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOutcome {
    pub id: u64,
    pub result: WriteResult,
    pub ts_ms: i64,
}
