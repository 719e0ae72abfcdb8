//! Brokers that fail over (`[mqtt] urls`): which broker the forwarder connects to next, and
//! whether the primary is back.
//!
//! The cell stays with the broker it was connected to while that broker may come back (a
//! restart, a network blip): `failover_after` from the loss. Then it tries the next broker in
//! the list, and each next one at every failed attempt, until one answers. With
//! `prefer_primary` a client of its own asks the first broker at a calm pace whether it answers
//! again, and the session moves back there between publishes (session.rs).
//!
//! What is re-sent on the new broker: every event the old one had not acknowledged (the outbox
//! owns re-delivery, as after any reconnect) and, after a loss, the events the old one
//! acknowledged in `resend_window` before it went (store/recent.rs).

use super::link::{self, Ev, Options};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How often the primary is asked whether it is back: often enough that the cell returns
/// within half a minute, rarely enough that a primary refusing connections is not hammered.
pub const PRIMARY_CHECK: Duration = Duration::from_secs(15);

/// At most this many acknowledged events are published again after a failover (the latest of
/// the window): a bound on the memory and the burst of duplicates at a cell running fast.
pub const RESEND_MAX: usize = 10_000;

#[derive(Clone)]
pub struct Node {
    /// `mqtt://host:port`, as /health and /metrics name it.
    pub url: String,
    pub options: Options,
}

/// The brokers of `[mqtt] url`/`urls`, in order of preference, and the failover settings.
#[derive(Clone)]
pub struct Brokers {
    pub nodes: Vec<Node>,
    pub failover_after: Duration,
    pub prefer_primary: bool,
    pub resend_window: Duration,
    /// A clean session under its own client id, to ask the primary whether it answers.
    pub primary_probe: Options,
}

impl Brokers {
    /// The Last Will's topic: the cell's status topic (the same on every broker).
    pub fn status_topic(&self) -> Option<String> {
        self.nodes[0].options.status_topic()
    }

    pub fn is_v5(&self) -> bool {
        self.nodes[0].options.is_v5()
    }
}

/// Which broker to try next.
#[derive(Debug)]
pub struct Picker {
    nodes: usize,
    at: usize,
    /// The broker the cell was last connected to, and when that connection was lost.
    home: Option<(usize, Option<Instant>)>,
    failover_after: Duration,
}

/// What the next attempt is.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// The same broker, after the usual backoff, but not past the failover time.
    Again { at_most: Duration },
    /// Another broker, at once.
    Move(usize),
}

impl Picker {
    pub fn new(nodes: usize, failover_after: Duration) -> Picker {
        Picker {
            nodes: nodes.max(1),
            at: 0,
            home: None,
            failover_after,
        }
    }

    /// The broker the next connection goes to.
    pub fn node(&self) -> usize {
        self.at
    }

    /// The broker the cell was last connected to, and when that connection was lost (None:
    /// not lost, or left on purpose).
    pub fn home(&self) -> Option<(usize, Option<Instant>)> {
        self.home
    }

    /// A CONNACK from the current broker. Returns the broker the cell was on before if it was
    /// another one, and when that one was lost (None: it was left on purpose, or never lost).
    pub fn connected(&mut self) -> Option<(usize, Option<Instant>)> {
        let before = self.home.filter(|(home, _)| *home != self.at);
        self.home = Some((self.at, None));
        before
    }

    /// The connection to the current broker ended (`had_connack`: after a CONNACK) or the
    /// attempt failed.
    pub fn lost(&mut self, had_connack: bool, now: Instant) -> Next {
        if had_connack {
            self.home = Some((self.at, Some(now)));
        }
        if self.nodes == 1 {
            return Next::Again {
                at_most: Duration::MAX,
            };
        }
        if let Some((home, Some(since))) = self.home {
            if home == self.at {
                let waited = now.saturating_duration_since(since);
                if waited < self.failover_after {
                    return Next::Again {
                        at_most: self.failover_after - waited,
                    };
                }
            }
        }
        self.at = (self.at + 1) % self.nodes;
        if Some(self.at) == self.home.map(|h| h.0) || (self.home.is_none() && self.at == 0) {
            // Round the whole list without an answer: the usual backoff before the next round.
            return Next::Again {
                at_most: Duration::MAX,
            };
        }
        Next::Move(self.at)
    }

    /// Leaves the current broker on purpose for the next one in the list and returns it
    /// (Sparkplug: the primary host is not online there). The broker left is not "lost".
    pub fn leave(&mut self) -> usize {
        self.at = (self.at + 1) % self.nodes;
        self.home = None;
        self.at
    }

    /// Back to the primary, on purpose: the broker left is not "lost".
    pub fn to_primary(&mut self) {
        self.at = 0;
    }
}

/// Asks the primary every [`PRIMARY_CHECK`] whether it answers a CONNECT (a CONNACK within
/// 5 s); sets `back` when it does and returns. Aborted by the session when it ends.
pub async fn watch_primary(probe: Options, back: Arc<AtomicBool>) {
    loop {
        tokio::time::sleep(PRIMARY_CHECK).await;
        let (client, mut eventloop) = link::new(&probe, 4);
        let answered = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match eventloop.poll().await {
                    Ok(Ev::ConnAck { .. }) => return true,
                    Ok(_) => {}
                    Err(_) => return false,
                }
            }
        })
        .await
        .unwrap_or(false);
        if answered {
            // The DISCONNECT has to be written by the event loop to leave cleanly.
            client.disconnect().await;
            let _ = tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await;
            back.store(true, Relaxed);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_with_a_lost_broker_until_the_failover_time_then_moves_on() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut p = Picker::new(3, s(10));
        assert_eq!(p.node(), 0);
        assert_eq!(p.connected(), None);
        // Lost at t0: tried again, no later than the failover time.
        assert_eq!(p.lost(true, t0), Next::Again { at_most: s(10) });
        assert_eq!(p.lost(false, t0 + s(4)), Next::Again { at_most: s(6) });
        assert_eq!(p.node(), 0);
        // Not back within 10 s: the next broker, at once.
        assert_eq!(p.lost(false, t0 + s(10)), Next::Move(1));
        // The next does not answer either: the one after it.
        assert_eq!(p.lost(false, t0 + s(11)), Next::Move(2));
        // Connected to the third: the one before it and when it was lost.
        assert_eq!(p.connected(), Some((0, Some(t0))));
        assert_eq!(p.connected(), None, "the same broker again");
    }

    #[test]
    fn a_round_without_an_answer_backs_off() {
        let t0 = Instant::now();
        let mut p = Picker::new(2, Duration::from_secs(10));
        // At start nothing was ever connected: each failed attempt tries the next broker.
        assert_eq!(p.lost(false, t0), Next::Move(1));
        let round = Next::Again {
            at_most: Duration::MAX,
        };
        assert_eq!(p.lost(false, t0), round);
        assert_eq!(p.node(), 0);
        // Connected to the primary, lost, the standby answers nothing: a round ends at the
        // primary again, with the backoff.
        p.connected();
        p.lost(true, t0);
        assert_eq!(p.lost(false, t0 + Duration::from_secs(10)), Next::Move(1));
        assert_eq!(p.lost(false, t0 + Duration::from_secs(11)), round);
        assert_eq!(p.node(), 0);
    }

    #[test]
    fn a_return_to_the_primary_is_not_a_loss() {
        let t0 = Instant::now();
        let mut p = Picker::new(2, Duration::from_secs(1));
        p.connected();
        p.lost(true, t0);
        assert_eq!(p.lost(false, t0 + Duration::from_secs(2)), Next::Move(1));
        assert_eq!(p.connected(), Some((0, Some(t0))));
        p.to_primary();
        assert_eq!(p.connected(), Some((1, None)), "left on purpose");
    }

    #[test]
    fn one_broker_is_always_tried_again() {
        let mut p = Picker::new(1, Duration::from_secs(1));
        p.connected();
        let again = Next::Again {
            at_most: Duration::MAX,
        };
        assert_eq!(p.lost(true, Instant::now()), again);
        assert_eq!(p.node(), 0);
    }
}
