use std::time::Duration;

/// Exponential reconnect delay. A cell has a handful of devices, so there is no herd to spread
/// with jitter; what matters is not hammering a PLC that is booting and coming back quickly.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
    /// When the connection now up was made (see [`Backoff::connected`]).
    up_since: Option<std::time::Instant>,
}

/// A connection that lasted less than this is a failed attempt, not a recovery: a broker that
/// accepts the CONNECT and then drops the cell (an oversized retained message, an ACL that
/// refuses the subscription) must not be reconnected to at the first delay forever.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        Backoff {
            first,
            max,
            next: first,
            up_since: None,
        }
    }

    /// The connection is up (a CONNACK, a session made). The delays start over only once it has
    /// stayed up for [`STABLE_AFTER`]: the next [`Backoff::next_delay`] decides.
    pub fn connected(&mut self) {
        self.up_since = Some(std::time::Instant::now());
    }

    /// The delay before the next attempt after a connection was lost: from the first again if
    /// the connection had been up for [`STABLE_AFTER`], else the next of the doubling series.
    pub fn after_loss(&mut self) -> Duration {
        if self
            .up_since
            .take()
            .is_some_and(|t| t.elapsed() >= STABLE_AFTER)
        {
            self.reset();
        }
        self.next_delay()
    }

    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(3));
        let got: Vec<_> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, vec![500, 1000, 2000, 3000, 3000]);
        b.reset();
        assert_eq!(b.next_delay().as_millis(), 500);
    }

    #[test]
    fn a_connection_dropped_at_once_does_not_start_the_delays_over() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let mut got = Vec::new();
        for _ in 0..4 {
            b.connected();
            got.push(b.after_loss().as_millis());
        }
        assert_eq!(got, vec![500, 1000, 2000, 4000]);
        b.connected();
        b.up_since = Some(std::time::Instant::now() - STABLE_AFTER);
        assert_eq!(
            b.after_loss().as_millis(),
            500,
            "a stable connection resets"
        );
    }
}
