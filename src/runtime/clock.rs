//! The engine loop's time, passed in: the wall clock (UTC ms, which NTP or an operator may
//! step) and the monotonic clock (durations, pacing), and how long a turn waits for its first
//! input. The runtime gives it the system's clocks; a test gives it a clock it moves by hand,
//! so idle commits, housekeeping pacing and clock steps are tested without sleeping (issue 24).

use std::time::{Duration, Instant};

pub trait Clock: Send {
    /// The wall clock, UTC ms.
    fn wall_ms(&self) -> i64;
    /// The monotonic clock.
    fn mono(&self) -> Instant;
    /// How long an idle turn waits for its first input before it turns anyway.
    fn idle_wait(&self) -> Duration {
        Duration::from_secs(1)
    }
}

/// The system's clocks: the runtime's.
pub struct SystemClock;

impl Clock for SystemClock {
    fn wall_ms(&self) -> i64 {
        mes_edge_drivers::now_ms()
    }

    fn mono(&self) -> Instant {
        Instant::now()
    }
}

/// A clock a test moves by hand, shared between the test and the loop it drives.
#[cfg(test)]
#[derive(Clone)]
pub struct ManualClock(std::sync::Arc<std::sync::Mutex<(Instant, i64)>>);

#[cfg(test)]
impl ManualClock {
    pub fn new(wall_ms: i64) -> ManualClock {
        ManualClock(std::sync::Arc::new(std::sync::Mutex::new((
            Instant::now(),
            wall_ms,
        ))))
    }

    /// Both clocks on by `d`.
    pub fn advance(&self, d: Duration) {
        let mut t = self.0.lock().unwrap();
        t.0 += d;
        t.1 += d.as_millis() as i64;
    }

    /// The wall clock alone, by `ms` (an NTP step, an operator).
    pub fn step_wall(&self, ms: i64) {
        self.0.lock().unwrap().1 += ms;
    }
}

#[cfg(test)]
impl Clock for ManualClock {
    fn wall_ms(&self) -> i64 {
        self.0.lock().unwrap().1
    }

    fn mono(&self) -> Instant {
        self.0.lock().unwrap().0
    }

    fn idle_wait(&self) -> Duration {
        Duration::ZERO
    }
}
