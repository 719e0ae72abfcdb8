//! What an output has in the hands of its MQTT client, and where its cursor may move.
//!
//! An output reads its rows in order from its cursor and publishes them at QoS 1. The broker
//! answers each by packet id: taken or (MQTT 5) refused. The cursor moves over every leading
//! row that has its answer: a refused row does not stop it, it is held (kept in the store, sent
//! again at the next connection) so that one row a broker will not take never holds back the
//! rows after it. A held row sent again and taken is released. Rows written but unanswered when
//! the connection goes are read again from the cursor at the next one: at least once.

use std::collections::{HashMap, VecDeque};

/// A row of an output's stream: its place in the stream (a seq or a value batch), its weight
/// (values in a batch, for the figures), and whether it is a held row sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub id: u64,
    pub weight: u64,
    pub again: bool,
}

/// Where an output's cursor moves: on to `to`, holding the rows refused on the way and
/// releasing the held rows taken since; `weight`: what the broker took.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Moved {
    pub to: u64,
    pub held: Vec<u64>,
    pub taken: Vec<u64>,
    pub weight: u64,
}

/// A stream's rows in the order they were published, each waiting for its answer: what
/// leads and has its answer is taken off the front. The cursor of every output is moved this
/// way (the JSON values' [`Window`], Sparkplug's events and values).
#[derive(Debug)]
pub struct InOrder<T> {
    rows: VecDeque<(u64, T, bool)>,
}

impl<T> Default for InOrder<T> {
    fn default() -> Self {
        InOrder {
            rows: VecDeque::new(),
        }
    }
}

impl<T> InOrder<T> {
    pub fn push(&mut self, id: u64, row: T) {
        self.rows.push_back((id, row, false));
    }

    /// Row `id` has its answer; `answer` records it. A row not waiting here is no one's.
    pub fn answered(&mut self, id: u64, answer: impl FnOnce(&mut T)) {
        if let Some((_, row, done)) = self.rows.iter_mut().find(|(i, _, _)| *i == id) {
            answer(row);
            *done = true;
        }
    }

    /// The first row, if it has its answer.
    pub fn pop_answered(&mut self) -> Option<(u64, T)> {
        if self.rows.front().is_some_and(|(_, _, done)| *done) {
            self.rows.pop_front().map(|(id, row, _)| (id, row))
        } else {
            None
        }
    }
}

/// A row's answer, once it has one: taken (with its weight) or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Taken(u64),
    Refused,
}

/// One connection's rows in flight, and the cursor's move not yet stored.
#[derive(Debug)]
pub struct Window {
    size: usize,
    /// Handed to the client, not yet written (no packet id yet), in order.
    queued: VecDeque<Row>,
    /// Written, waiting for the broker's answer, by packet id.
    inflight: HashMap<u16, Row>,
    /// The stream's rows after the cursor, in order, with their answers.
    order: InOrder<Answer>,
    /// The last row of the stream handed out: the next read starts after it.
    read_to: u64,
    /// Answers folded in since the cursor was last stored.
    unstored: Option<Moved>,
    cursor: u64,
}

impl Window {
    /// A window of `size` rows in flight, over a stream whose cursor is at `cursor`.
    pub fn new(size: usize, cursor: u64) -> Window {
        Window {
            size,
            queued: VecDeque::new(),
            inflight: HashMap::new(),
            order: InOrder::default(),
            read_to: cursor,
            unstored: None,
            cursor,
        }
    }

    /// Rows the client may be handed now.
    pub fn room(&self) -> usize {
        self.size
            .saturating_sub(self.queued.len() + self.inflight.len())
    }

    /// Where the next read of the stream starts (after this row).
    pub fn read_to(&self) -> u64 {
        self.read_to
    }

    pub fn is_idle(&self) -> bool {
        self.queued.is_empty() && self.inflight.is_empty()
    }

    /// `row` was handed to the client (its publish queued).
    pub fn handed(&mut self, row: Row) {
        if !row.again {
            self.order.push(row.id, Answer::Taken(row.weight));
            self.read_to = row.id;
        }
        self.queued.push_back(row);
    }

    /// The client wrote the first queued row with packet id `pkid`.
    pub fn written(&mut self, pkid: u16) -> Result<(), String> {
        let row = self
            .queued
            .pop_front()
            .ok_or("a publish went out that was never queued")?;
        self.inflight.insert(pkid, row);
        Ok(())
    }

    /// The broker answered packet `pkid`: taken, or refused. Gives back the row.
    pub fn answered(&mut self, pkid: u16, refused: bool) -> Result<Row, String> {
        let row = self
            .inflight
            .remove(&pkid)
            .ok_or_else(|| format!("acknowledgement for unknown packet id {pkid}"))?;
        if row.again {
            if !refused {
                let m = self.unstored.get_or_insert_with(|| Moved {
                    to: self.cursor,
                    ..Default::default()
                });
                m.taken.push(row.id);
                m.weight += row.weight;
            }
            return Ok(row);
        }
        self.order.answered(row.id, |a| {
            if refused {
                *a = Answer::Refused
            }
        });
        self.advance();
        Ok(row)
    }

    /// The cursor's move to store, if it moved or released held rows since the last store.
    pub fn to_store(&self) -> Option<&Moved> {
        self.unstored.as_ref()
    }

    /// The move handed out by [`Window::to_store`] is in the store.
    pub fn stored(&mut self) {
        if let Some(m) = self.unstored.take() {
            self.cursor = m.to;
        }
    }

    fn advance(&mut self) {
        while let Some((id, answer)) = self.order.pop_answered() {
            let m = self.unstored.get_or_insert_with(|| Moved {
                to: self.cursor,
                ..Default::default()
            });
            m.to = id;
            match answer {
                Answer::Taken(weight) => m.weight += weight,
                Answer::Refused => m.held.push(id),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: u64) -> Row {
        Row {
            id,
            weight: 2,
            again: false,
        }
    }

    #[test]
    fn the_cursor_moves_over_answered_rows_in_order_and_holds_the_refused() {
        let mut w = Window::new(4, 10);
        for id in 11..=14 {
            w.handed(row(id));
        }
        assert_eq!((w.room(), w.read_to()), (0, 14));
        for pkid in 1..=4 {
            w.written(pkid).unwrap();
        }
        // 12 answered before 11: nothing moves until 11 has its answer.
        w.answered(2, true).unwrap();
        assert_eq!(w.to_store(), None);
        w.answered(1, false).unwrap();
        w.answered(4, false).unwrap();
        assert_eq!(
            w.to_store(),
            Some(&Moved {
                to: 12,
                held: vec![12],
                taken: vec![],
                weight: 2,
            })
        );
        w.stored();
        assert_eq!(w.to_store(), None);
        // A held row sent again and taken is released; 13 then frees 14.
        w.handed(Row {
            id: 7,
            weight: 3,
            again: true,
        });
        w.written(5).unwrap();
        w.answered(5, false).unwrap();
        w.answered(3, false).unwrap();
        assert_eq!(
            w.to_store(),
            Some(&Moved {
                to: 14,
                held: vec![],
                taken: vec![7],
                weight: 7,
            })
        );
        assert!(w.is_idle());
        assert!(w.answered(9, false).is_err(), "an unknown packet id");
        assert!(w.written(6).is_err(), "nothing queued");
    }

    #[test]
    fn a_move_not_stored_grows_with_the_next_answers() {
        let mut w = Window::new(8, 0);
        w.handed(row(1));
        w.handed(row(2));
        w.written(1).unwrap();
        w.written(2).unwrap();
        w.answered(1, false).unwrap();
        // The store refused the write: the move is kept and grows.
        w.answered(2, true).unwrap();
        let m = w.to_store().unwrap();
        assert_eq!((m.to, m.held.as_slice(), m.weight), (2, &[2][..], 2));
    }
}
