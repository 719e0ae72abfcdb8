//! A replay on MOM's request (`mes-edge outbox replay`): a range of committed events put back
//! in the JSON forwarder's hands, to be published again byte for byte as committed.
//!
//! It never writes beside a running owner (store/owner.rs): a running runtime's owner does it,
//! asked over the control socket (src/control.rs), in a transaction of the runtime's one
//! read-write connection, where the forwarder's own releases of held events are written too;
//! a stopped runtime's store is written by the tool itself, holding the store file's lock
//! (store/lock.rs) so that no runtime starts on it meanwhile.

use super::{Outbox, StoreError};
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

/// What `replay` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replayed {
    /// Rows put back in the JSON forwarder's hands (delivered ones in the range).
    pub marked: u64,
    /// Rows of the range already on their way: not yet delivered, or put back before.
    pub already_pending: u64,
    /// Sequence numbers of the range no longer in the store (pruned after delivery).
    pub missing: Vec<(u64, u64)>,
}

/// Why a replay was not done.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The range asked for is not one of committed events.
    #[error("{0}")]
    Range(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for ReplayError {
    fn from(e: rusqlite::Error) -> Self {
        ReplayError::Store(e.into())
    }
}

impl Outbox {
    /// [`replay`] on the owner's connection.
    pub fn replay(&mut self, from: u64, to: Option<u64>) -> Result<Replayed, ReplayError> {
        replay(&mut self.conn, from, to)
    }
}

/// Puts the rows `from..=to` back in the JSON forwarder's hands: the rows its cursor has
/// passed are held for it, as a refused row is, so that it publishes them again byte for byte
/// as committed (and they are kept from pruning until it has). A running forwarder notices
/// within a second; a stopped one sends them at its next connection. Rows pruned after
/// delivery cannot be replayed and are reported. `to` defaults to the last committed event.
pub fn replay(conn: &mut Connection, from: u64, to: Option<u64>) -> Result<Replayed, ReplayError> {
    let tx = super::schema::write_tx(conn)?;
    let last = super::inspect::last_seq(&tx)?;
    let to = to.unwrap_or(last);
    if from == 0 || from > to || to > last {
        return Err(ReplayError::Range(format!(
            "expected 1 <= --from <= --to <= {last} (the last committed sequence), found {from}..{to}"
        )));
    }
    let cursor = super::cursor_rows::events_cursor(&tx, super::EVENTS_SINK)?.ok_or_else(|| {
        ReplayError::Store(StoreError::NoCursor(format!(
            "{} (the JSON forwarder has not run on this store)",
            super::EVENTS_SINK
        )))
    })?;
    let present: i64 = tx.query_row(
        "SELECT count(*) FROM outbox WHERE seq BETWEEN ?1 AND ?2",
        params![from as i64, to as i64],
        |r| r.get(0),
    )?;
    let marked = tx.execute(
        "INSERT OR IGNORE INTO sink_held (sink, class, item)
         SELECT ?3, 'event', seq FROM outbox WHERE seq BETWEEN ?1 AND ?2 AND seq <= ?4",
        params![from as i64, to as i64, super::EVENTS_SINK, cursor as i64],
    )? as u64;
    let missing = if present as u64 == to - from + 1 {
        Vec::new()
    } else {
        let seqs: Vec<u64> = {
            let mut stmt =
                tx.prepare("SELECT seq FROM outbox WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq")?;
            let rows = stmt.query_map(params![from as i64, to as i64], |r| r.get::<_, i64>(0))?;
            rows.map(|r| r.map(|s| s as u64))
                .collect::<Result<_, _>>()?
        };
        holes(from, to, &seqs)
    };
    tx.commit()?;
    Ok(Replayed {
        marked,
        already_pending: present as u64 - marked,
        missing,
    })
}

/// The ranges of `from..=to` not in `present` (sorted).
fn holes(from: u64, to: u64, present: &[u64]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut next = from;
    for &s in present {
        if s > next {
            out.push((next, s - 1));
        }
        next = s + 1;
    }
    if next <= to {
        out.push((next, to));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::test_support::store_with;
    use super::*;
    use crate::config::Synchronous;

    #[test]
    fn replay_puts_delivered_rows_back_and_reports_pruned_ones() {
        let (_dir, path) = store_with(10);
        let mut ob = Outbox::open(&path, Synchronous::Full, "a/b/c/d/e").unwrap();
        let to = |to| crate::store::EventsMoved {
            to,
            ..Default::default()
        };
        ob.advance_events(crate::store::EVENTS_SINK, &to(8), 10)
            .unwrap();
        ob.prune(11, u64::MAX).unwrap();
        drop(ob);
        // Rows 1..=8 delivered and pruned; 9 and 10 are still pending.
        let mut conn = super::super::inspect::open_existing(&path).unwrap();
        let r = replay(&mut conn, 7, Some(10)).unwrap();
        assert_eq!(
            r,
            Replayed {
                marked: 0,
                already_pending: 2,
                missing: vec![(7, 8)]
            }
        );
        let ob = Outbox::open(&path, Synchronous::Full, "a/b/c/d/e").unwrap();
        let mut ob = ob;
        ob.advance_events(crate::store::EVENTS_SINK, &to(10), 20)
            .unwrap();
        let r = replay(&mut conn, 10, Some(10)).unwrap();
        assert_eq!(
            r,
            Replayed {
                marked: 1,
                already_pending: 0,
                missing: vec![]
            }
        );
        assert_eq!(ob.held_events(crate::store::EVENTS_SINK).unwrap(), [10]);
        assert_eq!(ob.stats().unwrap().depth, 1);
        // Put back once: a second replay of it changes nothing.
        let r = replay(&mut conn, 9, None).unwrap();
        assert_eq!((r.marked, r.already_pending), (1, 1));
    }

    #[test]
    fn a_range_beyond_the_committed_events_is_refused_and_changes_nothing() {
        let (_dir, path) = store_with(3);
        let mut ob = Outbox::open(&path, Synchronous::Full, "a/b/c/d/e").unwrap();
        let delivered = crate::store::EventsMoved {
            to: 3,
            ..Default::default()
        };
        ob.advance_events(crate::store::EVENTS_SINK, &delivered, 10)
            .unwrap();
        for (from, to) in [(0, Some(2)), (3, Some(2)), (1, Some(4)), (5, None)] {
            match ob.replay(from, to) {
                Err(ReplayError::Range(why)) => assert!(why.contains("<= 3"), "{why}"),
                other => panic!("{from}..{to:?}: {other:?}"),
            }
        }
        assert!(ob
            .held_events(crate::store::EVENTS_SINK)
            .unwrap()
            .is_empty());
        assert_eq!(ob.replay(2, None).unwrap().marked, 2);
    }

    #[test]
    fn holes_are_the_missing_ranges() {
        assert_eq!(holes(1, 10, &[1, 2, 5, 10]), vec![(3, 4), (6, 9)]);
        assert_eq!(holes(1, 3, &[]), vec![(1, 3)]);
        assert!(holes(4, 6, &[4, 5, 6]).is_empty());
    }
}
