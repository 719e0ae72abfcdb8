//! Read-only: the events the broker acknowledged lately, for a failover to a broker that does
//! not share the lost one's session (forwarder/failover.rs). A broker that acknowledged an event
//! and died before its subscribers had it lost that event for MOM; publishing these again on
//! the next broker closes that gap, and MOM drops what it already has by `event_id`.

use super::error::StoreError;
use super::outbox::{Outbox, OutboxRow};
use rusqlite::params;

impl Outbox {
    /// Events the JSON forwarder's cursor passed at `since_ms` or later (taken by the broker,
    /// not held refused), in sequence order, at most `limit` of them (the latest). The cursor's
    /// moves are recorded a second apart at most, so this may include events of the second
    /// before `since_ms`: sent once more, which MOM drops. (An event held refused and taken
    /// later was taken outside the cursor's moves; it is not found again.)
    pub fn delivered_since(
        &self,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let sink = super::EVENTS_SINK;
        let Some(cursor) = super::cursor_rows::events_cursor(&self.conn, sink)? else {
            return Ok(Vec::new());
        };
        let before = super::cursor_rows::moved_before(&self.conn, sink, since_ms)?.unwrap_or(0);
        let from = before.max(cursor.saturating_sub(limit as u64));
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, kind, payload FROM outbox
             WHERE seq > ?1 AND seq <= ?2
               AND seq NOT IN (SELECT item FROM sink_held WHERE sink = ?3 AND class = 'event')
             ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![from as i64, cursor as i64, sink], |r| {
            Ok(OutboxRow {
                seq: r.get::<_, i64>(0)? as u64,
                kind: r.get(1)?,
                payload: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
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
        let moved = |to| crate::store::EventsMoved {
            to,
            ..Default::default()
        };
        o.advance_events(crate::store::EVENTS_SINK, &moved(2), 1_000)
            .unwrap();
        o.advance_events(crate::store::EVENTS_SINK, &moved(4), 5_000)
            .unwrap();
        // 5 and 6 are undelivered: not handed back (the forwarder re-sends them anyway).
        assert_eq!(seqs(o.delivered_since(5_000, 100).unwrap()), [3, 4]);
        assert_eq!(seqs(o.delivered_since(0, 100).unwrap()), [1, 2, 3, 4]);
        assert_eq!(seqs(o.delivered_since(0, 3).unwrap()), [2, 3, 4]);
        assert!(o.delivered_since(6_000, 100).unwrap().is_empty());
        let row = &o.delivered_since(5_000, 1).unwrap()[0];
        assert_eq!((row.seq, row.kind.as_str()), (4, "device_status"));
        // Read-only: the cursor did not move.
        assert_eq!(o.events_cursor(crate::store::EVENTS_SINK).unwrap(), Some(4));
    }
}
