//! Read-only: the events the broker acknowledged lately, for a failover to a broker that does
//! not share the lost one's session (forwarder/failover.rs). A broker that acknowledged an event
//! and died before its subscribers had it lost that event for MOM; publishing these again on
//! the next broker closes that gap, and MOM drops what it already has by `event_id`.

use super::outbox::{Outbox, OutboxRow};
use super::schema::StoreError;
use rusqlite::params;

impl Outbox {
    /// Delivered events whose acknowledgement came at `since_ms` or later, in sequence order,
    /// at most `limit` of them (the latest). Walks back from the highest seq by primary key and
    /// stops at the first delivered row acknowledged before `since_ms`: the broker acknowledges
    /// in the order the forwarder publishes, which is sequence order, so no index on
    /// `delivered_ms` is needed. (An event the broker refused and later took is acknowledged
    /// out of that order; one such below the stop is not found again.)
    pub fn delivered_since(
        &self,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        // From the highest seq acknowledged (the tally), not the last committed: a backlog of
        // undelivered rows above it (a long outage) is not read at all.
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, kind, payload, delivered_ms FROM outbox
             WHERE seq <= (SELECT last_delivered_seq FROM outbox_tally WHERE id = 1)
             ORDER BY seq DESC",
        )?;
        let mut rows = stmt.query(params![])?;
        let mut found = Vec::new();
        while let Some(r) = rows.next()? {
            let delivered: Option<i64> = r.get(3)?;
            match delivered {
                // Undelivered: the forwarder re-sends it anyway.
                None => continue,
                Some(at) if at < since_ms => break,
                Some(_) => found.push(OutboxRow {
                    seq: r.get::<_, i64>(0)? as u64,
                    kind: r.get(1)?,
                    payload: r.get(2)?,
                }),
            }
            if found.len() >= limit {
                break;
            }
        }
        found.reverse();
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use crate::cell::CellState;
    use crate::config::Synchronous;
    use crate::event::{EventBody, NewEvent};
    use crate::store::{Outbox, OutboxRow};

    /// A device going on- and offline: the smallest event there is.
    fn status(online: bool) -> NewEvent {
        let body = EventBody::DeviceStatus {
            device: "plc".into(),
            online,
            reason: None,
        };
        NewEvent::new(1_000, vec![], body)
    }

    fn seqs(rows: Vec<OutboxRow>) -> Vec<u64> {
        rows.iter().map(|r| r.seq).collect()
    }

    #[test]
    fn hands_back_what_was_acknowledged_since_in_seq_order() {
        let dir = tempfile::tempdir().unwrap();
        let at = dir.path().join("press4.db");
        let mut o = Outbox::open(
            &at,
            Synchronous::Normal,
            "acme/plant1/pressing/line2/press4",
        )
        .unwrap();
        let events: Vec<NewEvent> = (1..=6).map(|i| status(i % 2 == 0)).collect();
        o.commit(&events, &CellState::default(), 5).unwrap();
        o.mark_delivered(&[1, 2], 1_000).unwrap();
        o.mark_delivered(&[3, 4], 5_000).unwrap();
        // 5 and 6 are undelivered: not handed back (the forwarder re-sends them anyway).
        assert_eq!(seqs(o.delivered_since(5_000, 100).unwrap()), [3, 4]);
        assert_eq!(seqs(o.delivered_since(0, 100).unwrap()), [1, 2, 3, 4]);
        assert_eq!(seqs(o.delivered_since(0, 3).unwrap()), [2, 3, 4]);
        assert!(o.delivered_since(6_000, 100).unwrap().is_empty());
        let row = &o.delivered_since(5_000, 1).unwrap()[0];
        assert_eq!((row.seq, row.kind.as_str()), (4, "device_status"));
        // Read-only: the rows are still delivered, nothing pending came back.
        assert!(o.pending(0, 100).unwrap().iter().all(|r| r.seq >= 5));
    }
}
