//! The node's own queue in front of the engine's command door. A host's DCMD metrics wait here,
//! bounded, and go in at a steady pace: a host flooding writes cannot fill the door MOM's
//! commands share, and a full queue refuses at once (said and counted) instead of waiting on
//! the broker connection's task.

use crate::cell::CommandIn;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Commands waiting at most: a recipe of a few dozen tags fits, a flood does not.
pub const QUEUE: usize = 128;

/// Commands per second into the engine's door, with a burst of as many: far above what a person
/// at an HMI sends, far below what would crowd the door's 64 places.
pub const PER_SECOND: u32 = 20;

#[derive(Clone)]
pub struct CommandQueue {
    tx: mpsc::Sender<CommandIn>,
}

impl CommandQueue {
    /// Starts the task that feeds `door` from the queue.
    pub fn start(door: mpsc::Sender<CommandIn>) -> CommandQueue {
        let (tx, mut rx) = mpsc::channel::<CommandIn>(QUEUE);
        tokio::spawn(async move {
            let mut pace = Pace::new(PER_SECOND, Instant::now());
            while let Some(cmd) = rx.recv().await {
                let wait = pace.take(Instant::now());
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                if door.send(cmd).await.is_err() {
                    return;
                }
            }
        });
        CommandQueue { tx }
    }

    /// Queues `cmd`; false if the queue is full (or the engine is gone).
    pub fn offer(&self, cmd: CommandIn) -> bool {
        self.tx.try_send(cmd).is_ok()
    }
}

/// A token bucket: `per_second` tokens a second, as many at most.
struct Pace {
    per_second: u32,
    tokens: f64,
    at: Instant,
}

impl Pace {
    fn new(per_second: u32, now: Instant) -> Pace {
        Pace {
            per_second,
            tokens: per_second as f64,
            at: now,
        }
    }

    /// Takes a token: how long to wait before the command may go.
    fn take(&mut self, now: Instant) -> Duration {
        let rate = self.per_second as f64;
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.at = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_goes_at_once_then_the_pace_holds() {
        let t0 = Instant::now();
        let mut p = Pace::new(20, t0);
        for _ in 0..20 {
            assert_eq!(p.take(t0), Duration::ZERO);
        }
        let wait = p.take(t0);
        assert!(
            (wait.as_secs_f64() - 0.05).abs() < 1e-6,
            "the 21st waits 50 ms: {wait:?}"
        );
        // 100 more at once: the last goes 5 s after the burst, 20 a second.
        let mut last = Duration::ZERO;
        for _ in 0..100 {
            last = p.take(t0);
        }
        assert!((last.as_secs_f64() - 5.05).abs() < 1e-6, "{last:?}");
        // After a quiet minute the bucket is full again, not fuller.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..20 {
            assert_eq!(p.take(later), Duration::ZERO);
        }
        assert!(!p.take(later).is_zero());
    }

    #[tokio::test]
    async fn a_full_queue_gives_the_command_back() {
        // A door nobody reads: the feeding task takes one and waits on it.
        let (door, _keep) = mpsc::channel(1);
        let q = CommandQueue::start(door);
        let cmd = || CommandIn::new(b"{}".to_vec(), crate::orders::CommandSource::Sparkplug);
        let mut taken = 0;
        let mut refused = 0;
        for _ in 0..(QUEUE + 10) {
            if q.offer(cmd()) {
                taken += 1;
            } else {
                refused += 1;
            }
        }
        assert!(taken >= QUEUE && refused > 0, "{taken} {refused}");
    }
}
