//! What the edge node will not take from the broker at face value: a retained command (old, sent
//! again at every subscribe), a flood of rebirth requests, a primary host STATE stamped in the
//! future. Each one is refused here and said in the log without letting a flood fill it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// At most one rebirth per this window: a birth is a few hundred bytes per tag and a host asks
/// again only when it lost track, so a second one within seconds tells it nothing new. A request
/// inside the window is answered by one rebirth at its end.
pub const REBIRTH_WINDOW: Duration = Duration::from_secs(3);

/// A primary host's STATE stamped further ahead of this PC's clock is refused. Host and edge
/// clocks on a plant network are NTP-synchronised to within seconds; minutes of margin leave room
/// for a PC whose clock is off, while a forged far-future timestamp would otherwise pin the
/// host's last STATE there and make every real STATE after it look stale until a restart.
pub const STATE_AHEAD_MAX_MS: i64 = 5 * 60 * 1000;

/// Largest command payload the node decodes. The MQTT client takes packets up to
/// [`MAX_INCOMING_PACKET`] so that a bigger command costs a log line, not the connection.
pub const MAX_COMMAND_BYTES: usize = 256 * 1024;

/// The MQTT client's incoming limit: past it the client (rumqttc) drops the connection, it
/// cannot skip a packet.
pub const MAX_INCOMING_PACKET: usize = 4 << 20;

/// Retained commands already reported: each is logged once, not at every reconnect.
pub struct RetainedSeen {
    seen: VecDeque<(String, u64)>,
}

/// How many retained commands are remembered; past it the oldest is forgotten (and logged again
/// if it comes back).
const RETAINED_REMEMBERED: usize = 64;

impl RetainedSeen {
    pub fn new() -> RetainedSeen {
        RetainedSeen {
            seen: VecDeque::new(),
        }
    }

    /// Whether this retained message is new to the log (remembers it if so).
    pub fn first_time(&mut self, topic: &str, payload: &[u8]) -> bool {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        payload.hash(&mut h);
        let key = (topic.to_string(), h.finish());
        if self.seen.contains(&key) {
            return false;
        }
        if self.seen.len() == RETAINED_REMEMBERED {
            self.seen.pop_front();
        }
        self.seen.push_back(key);
        true
    }
}

/// Rebirth requests, answered at most once per [`REBIRTH_WINDOW`].
pub struct RebirthWindow {
    window: Duration,
    last: Option<Instant>,
    waiting: bool,
}

impl RebirthWindow {
    pub fn new(window: Duration) -> RebirthWindow {
        RebirthWindow {
            window,
            last: None,
            waiting: false,
        }
    }

    /// A host asks for a rebirth: true to rebirth now; otherwise it is held for the window's end.
    pub fn request(&mut self, now: Instant) -> bool {
        if self
            .last
            .is_none_or(|l| now.duration_since(l) >= self.window)
        {
            self.last = Some(now);
            self.waiting = false;
            true
        } else {
            self.waiting = true;
            false
        }
    }

    /// At every tick: true once a held request's window is over (rebirth now).
    pub fn due(&mut self, now: Instant) -> bool {
        if self.waiting
            && self
                .last
                .is_none_or(|l| now.duration_since(l) >= self.window)
        {
            self.waiting = false;
            self.last = Some(now);
            return true;
        }
        false
    }

    /// A birth made for another reason (a new connection, the host back) answers what waits.
    pub fn born(&mut self, now: Instant) {
        self.last = Some(now);
        self.waiting = false;
    }
}

/// Whether a STATE stamped `ts` is too far ahead of `now` (both ms since the epoch).
pub fn state_from_the_future(ts: i64, now: i64) -> bool {
    ts.saturating_sub(now) > STATE_AHEAD_MAX_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_rebirth_requests_gives_one_now_and_one_at_the_window_end() {
        let w = Duration::from_secs(3);
        let mut r = RebirthWindow::new(w);
        let t0 = Instant::now();
        assert!(r.request(t0));
        let mut births = 1;
        // 3,000 requests in the first second, a tick every 100 ms for 10 s.
        for i in 0..3000u64 {
            if r.request(t0 + Duration::from_micros(i * 333)) {
                births += 1;
            }
        }
        for tick in 0..100u64 {
            if r.due(t0 + Duration::from_millis(tick * 100)) {
                births += 1;
            }
        }
        assert_eq!(births, 2, "one at once, the last request answered at 3 s");
        // Nothing more is due without a new request.
        assert!(!r.due(t0 + Duration::from_secs(60)));
        assert!(r.request(t0 + Duration::from_secs(60)));
    }

    #[test]
    fn a_birth_for_another_reason_answers_a_waiting_request() {
        let t0 = Instant::now();
        let mut r = RebirthWindow::new(Duration::from_secs(3));
        assert!(r.request(t0));
        assert!(!r.request(t0 + Duration::from_secs(1)));
        r.born(t0 + Duration::from_secs(2));
        assert!(!r.due(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn retained_commands_are_reported_once_and_the_memory_is_bounded() {
        let mut s = RetainedSeen::new();
        assert!(s.first_time("spBv1.0/g/DCMD/n/plc", b"a"));
        assert!(!s.first_time("spBv1.0/g/DCMD/n/plc", b"a"));
        assert!(s.first_time("spBv1.0/g/DCMD/n/plc", b"b"));
        for i in 0..1000 {
            s.first_time(&format!("t{i}"), b"x");
        }
        assert_eq!(s.seen.len(), RETAINED_REMEMBERED);
        assert!(
            s.first_time("spBv1.0/g/DCMD/n/plc", b"a"),
            "forgotten by now"
        );
    }

    #[test]
    fn a_state_minutes_ahead_is_refused_seconds_ahead_is_not() {
        let now = 1_800_000_000_000;
        assert!(state_from_the_future(9_000_000_000_000_000, now));
        assert!(state_from_the_future(now + STATE_AHEAD_MAX_MS + 1, now));
        assert!(!state_from_the_future(now + 5_000, now));
        assert!(!state_from_the_future(0, now));
    }
}
