//! What the store's unit tests build their stores from.

use super::Outbox;
use crate::cell::CellState;
use crate::config::Synchronous;
use crate::event::{CounterKind, EventBody, NewEvent};

/// A good part count of `q` parts.
pub fn part(q: u64) -> NewEvent {
    NewEvent::new(
        1_000,
        vec!["good".into()],
        EventBody::PartCount {
            counter: CounterKind::Good,
            quantity: q,
            counter_value: q,
            previous_value: 0,
            rolled_over: false,
            order_id: None,
            rule: None,
            source_ts: None,
            reason: None,
        },
    )
}

/// A store holding `n` part counts, seq 1..=n, none delivered.
pub fn store_with(n: u64) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cell.db");
    let mut ob = Outbox::open(&path, Synchronous::Full, "a/b/c/d/e").unwrap();
    let events: Vec<_> = (1..=n).map(part).collect();
    ob.commit(&events, &CellState::default(), 5).unwrap();
    (dir, path)
}
