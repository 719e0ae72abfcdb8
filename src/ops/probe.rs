//! What the engine and the forwarder report about themselves: signs of life for the watchdog,
//! and the forwarder's counts for the metrics. Relaxed atomics: a reader may see a value a
//! moment old, which is all monitoring needs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Milliseconds on a monotonic clock that starts with the process (never 0 once read).
fn mono_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    epoch.elapsed().as_millis() as u64 + 1
}

/// A sign of life from a loop that must keep turning. The loop beats at every turn; the
/// supervisor withholds systemd's watchdog when the beats stop. The engine also reports here
/// whether its commits to the store succeed: a loop that turns but cannot commit is not well.
#[derive(Debug, Clone)]
pub struct Heartbeat(Arc<Beats>);

#[derive(Debug)]
struct Beats {
    last: AtomicU64,
    /// Mono ms of the first failed commit of the current run of failures; 0 while commits work.
    failing_since: AtomicU64,
    failures_total: AtomicU64,
    last_error: Mutex<String>,
    /// Housekeeping steps run on the engine thread, the longest in µs, and rows they pruned.
    housekeeping_steps: AtomicU64,
    housekeeping_longest_us: AtomicU64,
    pruned_total: AtomicU64,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat(Arc::new(Beats {
            last: AtomicU64::new(mono_ms()),
            failing_since: AtomicU64::new(0),
            failures_total: AtomicU64::new(0),
            last_error: Mutex::new(String::new()),
            housekeeping_steps: AtomicU64::new(0),
            housekeeping_longest_us: AtomicU64::new(0),
            pruned_total: AtomicU64::new(0),
        }))
    }
}

/// Commits failing without a success in between: since when, and the last error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitFailure {
    pub for_: Duration,
    pub error: String,
}

impl Heartbeat {
    pub fn beat(&self) {
        self.0.last.store(mono_ms(), Relaxed);
    }

    /// Time since the last beat (or since the heartbeat was made).
    pub fn silence(&self) -> Duration {
        Duration::from_millis(mono_ms().saturating_sub(self.0.last.load(Relaxed)))
    }

    /// A commit to the store failed with `error`.
    pub fn commit_failed(&self, error: &str) {
        self.0.failures_total.fetch_add(1, Relaxed);
        let _ = self
            .0
            .failing_since
            .compare_exchange(0, mono_ms(), Relaxed, Relaxed);
        *self.0.last_error.lock().unwrap_or_else(|e| e.into_inner()) = error.to_string();
    }

    /// A commit succeeded: whatever failed before is over.
    pub fn committed(&self) {
        if self.0.failing_since.load(Relaxed) != 0 {
            self.0.failing_since.store(0, Relaxed);
        }
    }

    /// Failed commits since start.
    pub fn commit_failures(&self) -> u64 {
        self.0.failures_total.load(Relaxed)
    }

    /// A housekeeping step held the engine thread for `took` and pruned `rows`.
    pub fn housekept(&self, took: Duration, rows: u64) {
        self.0.housekeeping_steps.fetch_add(1, Relaxed);
        self.0
            .housekeeping_longest_us
            .fetch_max(took.as_micros() as u64, Relaxed);
        self.0.pruned_total.fetch_add(rows, Relaxed);
    }

    /// (steps, longest step, rows pruned) since start.
    pub fn housekeeping(&self) -> (u64, Duration, u64) {
        (
            self.0.housekeeping_steps.load(Relaxed),
            Duration::from_micros(self.0.housekeeping_longest_us.load(Relaxed)),
            self.0.pruned_total.load(Relaxed),
        )
    }

    /// Whether commits are failing now, for how long and why.
    pub fn commit_failure(&self) -> Option<CommitFailure> {
        let since = self.0.failing_since.load(Relaxed);
        (since != 0).then(|| CommitFailure {
            for_: Duration::from_millis(mono_ms().saturating_sub(since)),
            error: self
                .0
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        })
    }
}

/// The forwarder's side: broker connection, what went out, what came back.
#[derive(Debug, Clone)]
pub struct ForwarderProbe(Arc<ForwarderCounts>);

impl Default for ForwarderProbe {
    fn default() -> Self {
        let p = ForwarderProbe(Arc::default());
        p.beat();
        p
    }
}

#[derive(Debug, Default)]
struct ForwarderCounts {
    connected: AtomicBool,
    connects: AtomicU64,
    published: AtomicU64,
    acknowledged: AtomicU64,
    /// When the broker last acknowledged an event (UTC ms; 0: not since the start).
    last_ack_ms: AtomicI64,
    /// Mono ms of the last sign of life; in the future while it waits on purpose (a backoff).
    alive_until: AtomicU64,
    /// Refusals (MQTT 5 reason codes of 0x80 and above) since start, by (reason, code).
    refusals: Mutex<BTreeMap<(&'static str, u8), u64>>,
    /// Events the broker refused that are not delivered yet, and the last refusal's words.
    refused_held: Mutex<(u64, String)>,
    /// Why the broker refused the subscription to the command topic, at the last SUBACK.
    subscription_refused: Mutex<Option<String>>,
    /// The broker of the last CONNACK (its url, and whether it is the first of `urls`).
    broker: Mutex<Option<(String, bool)>>,
    /// Moves to another broker since start, by why: `lost` or `primary_back`.
    failovers: Mutex<BTreeMap<&'static str, u64>>,
    /// Events published again after a failover, already acknowledged by the lost broker.
    resent: AtomicU64,
    /// The index in `[mqtt] urls` of the broker of the last CONNACK, for the process values'
    /// connection to follow.
    broker_node: std::sync::atomic::AtomicUsize,
}

/// A copy of the forwarder's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwarderSnapshot {
    pub connected: bool,
    /// CONNACKs received since start: the first connection and every reconnect.
    pub connects: u64,
    /// Event publishes written to the broker connection (re-sends after a reconnect included).
    pub published: u64,
    /// Events the broker acknowledged (PUBACK, or PUBCOMP at QoS 2).
    pub acknowledged: u64,
}

impl ForwarderProbe {
    pub fn connected(&self, yes: bool) {
        if yes && !self.0.connected.swap(true, Relaxed) {
            self.0.connects.fetch_add(1, Relaxed);
        } else if !yes {
            self.0.connected.store(false, Relaxed);
        }
    }

    pub fn published(&self) {
        self.0.published.fetch_add(1, Relaxed);
    }

    pub fn acknowledged(&self) {
        self.0.acknowledged.fetch_add(1, Relaxed);
        self.0
            .last_ack_ms
            .store(mes_edge_drivers::now_ms(), Relaxed);
    }

    /// When the broker last acknowledged an event, if it has since the start.
    pub fn last_ack_ms(&self) -> Option<i64> {
        Some(self.0.last_ack_ms.load(Relaxed)).filter(|&t| t != 0)
    }

    /// The session loop turned.
    pub fn beat(&self) {
        self.0.alive_until.fetch_max(mono_ms(), Relaxed);
    }

    /// The forwarder will sit idle for `d` before its next connect: quiet, not hung.
    pub fn backing_off(&self, d: Duration) {
        self.0
            .alive_until
            .fetch_max(mono_ms() + d.as_millis() as u64, Relaxed);
    }

    /// How long the forwarder has shown no sign of life beyond a wait it announced. A probe
    /// nobody beats (before the forwarder starts) counts from its creation.
    pub fn silence(&self) -> Duration {
        let last = self.0.alive_until.load(Relaxed);
        Duration::from_millis(mono_ms().saturating_sub(last))
    }

    /// The broker refused an event: `reason` is the metric's label ("not_authorized"),
    /// `what` says it for a person ("not authorized (0x87) on mes/.../events/part_count").
    pub fn refused(&self, reason: &'static str, code: u8, what: String) {
        *self
            .0
            .refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((reason, code))
            .or_default() += 1;
        self.0
            .refused_held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1 = what;
    }

    /// How many refused events are still undelivered (0 once they are all delivered).
    pub fn set_refused_held(&self, n: u64) {
        self.0
            .refused_held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0 = n;
    }

    /// Refused events not delivered yet, and the last refusal; None while there are none.
    pub fn refusal(&self) -> Option<(u64, String)> {
        let held = self
            .0
            .refused_held
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        (held.0 > 0).then(|| held.clone())
    }

    /// The broker's answer to the command subscription: Some(why) if it refused it.
    pub fn subscription_refused(&self, why: Option<String>) {
        *self
            .0
            .subscription_refused
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = why;
    }

    /// Why the broker refused the command subscription, while it does.
    pub fn subscription_refusal(&self) -> Option<String> {
        self.0
            .subscription_refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Refusals since start by reason name and code.
    pub fn refusals(&self) -> Vec<(&'static str, u8, u64)> {
        self.0
            .refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|((r, c), n)| (*r, *c, *n))
            .collect()
    }

    /// Connected to `url`, `node` in `[mqtt] urls` (0: the primary, or the only one).
    pub fn broker_in_use(&self, url: &str, node: usize) {
        *self.0.broker.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((url.to_string(), node == 0));
        self.0.broker_node.store(node, Relaxed);
    }

    /// The index in `[mqtt] urls` of the broker the events went to last.
    pub fn broker_node(&self) -> usize {
        self.0.broker_node.load(Relaxed)
    }

    /// The broker of the last CONNACK, and whether it is the primary.
    pub fn broker(&self) -> Option<(String, bool)> {
        self.0
            .broker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Connected to another broker than the last one, because the last was `lost` or because
    /// the primary was back (`primary_back`).
    pub fn failed_over(&self, why: &'static str) {
        *self
            .0
            .failovers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(why)
            .or_default() += 1;
    }

    /// Moves to another broker since start, by why.
    pub fn failovers(&self) -> Vec<(&'static str, u64)> {
        let moves = self.0.failovers.lock().unwrap_or_else(|e| e.into_inner());
        ["lost", "primary_back"]
            .into_iter()
            .map(|why| (why, moves.get(why).copied().unwrap_or(0)))
            .collect()
    }

    pub fn resent(&self, n: u64) {
        self.0.resent.fetch_add(n, Relaxed);
    }

    /// Events published again after failovers (acknowledged by the broker lost).
    pub fn resent_total(&self) -> u64 {
        self.0.resent.load(Relaxed)
    }

    pub fn counts(&self) -> ForwarderSnapshot {
        ForwarderSnapshot {
            connected: self.0.connected.load(Relaxed),
            connects: self.0.connects.load(Relaxed),
            published: self.0.published.load(Relaxed),
            acknowledged: self.0.acknowledged.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_grows_without_beats_and_resets_with_one() {
        let h = Heartbeat::default();
        std::thread::sleep(Duration::from_millis(30));
        assert!(h.silence() >= Duration::from_millis(30));
        h.beat();
        assert!(h.silence() < Duration::from_millis(30));
    }

    #[test]
    fn commit_failures_last_until_a_commit_succeeds() {
        let h = Heartbeat::default();
        assert_eq!(h.commit_failure(), None);
        h.commit_failed("disk I/O error");
        std::thread::sleep(Duration::from_millis(30));
        h.commit_failed("database or disk is full");
        let f = h.commit_failure().unwrap();
        assert!(
            f.for_ >= Duration::from_millis(30),
            "counted from the first"
        );
        assert_eq!(f.error, "database or disk is full");
        h.committed();
        assert_eq!(h.commit_failure(), None);
        assert_eq!(h.commit_failures(), 2);
    }

    #[test]
    fn an_announced_backoff_is_not_silence() {
        let p = ForwarderProbe::default();
        p.backing_off(Duration::from_millis(200));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(p.silence(), Duration::ZERO);
    }

    #[test]
    fn reconnects_count_connack_transitions() {
        let p = ForwarderProbe::default();
        p.connected(true);
        p.connected(true);
        p.connected(false);
        p.connected(true);
        assert_eq!(p.counts().connects, 2);
        assert!(p.counts().connected);
    }

    #[test]
    fn refusals_are_counted_by_reason_and_held_until_delivered() {
        let p = ForwarderProbe::default();
        assert_eq!(p.refusal(), None);
        p.refused("not_authorized", 0x87, "not authorized (0x87)".into());
        p.refused("not_authorized", 0x87, "not authorized (0x87)".into());
        p.refused("quota_exceeded", 0x97, "quota exceeded (0x97)".into());
        p.set_refused_held(3);
        assert_eq!(p.refusal(), Some((3, "quota exceeded (0x97)".into())));
        assert_eq!(
            p.refusals(),
            vec![("not_authorized", 0x87, 2), ("quota_exceeded", 0x97, 1)]
        );
        p.set_refused_held(0);
        assert_eq!(p.refusal(), None);
    }

    /// What /health and `systemctl status` (STATUS=) say while refused events are held.
    #[test]
    fn a_refusal_makes_health_503_and_shows_in_the_status_line() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[cell]\nenterprise = \"a\"\nsite = \"b\"\narea = \"c\"\nline = \"d\"\ncell = \"e\"\n\
             [store]\npath = \"{}\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:1\"\n",
            dir.path().join("cell.db").display()
        );
        let config = crate::config::parse(std::path::Path::new("cell.toml"), &text).unwrap();
        let ops = crate::ops::Ops::with_notifier(&config, None);
        let what = "not authorized (0x87) on a/b/c/d/e/events/part_count".to_string();
        ops.forwarder()
            .refused("not_authorized", 0x87, what.clone());
        ops.forwarder().set_refused_held(3);
        let h = crate::ops::health::health(&ops, 0);
        assert!(!h.ok);
        let problems = h.body["problems"].to_string();
        assert!(
            problems.contains("the broker refused 3 event(s), last: not authorized (0x87)"),
            "{problems}"
        );
        assert_eq!(h.body["broker"]["refused_held"], 3);
        let status = crate::ops::health::status_summary(&ops);
        assert!(
            status.ends_with(&format!(", 3 events refused by broker: {what}")),
            "{status}"
        );
        ops.forwarder().set_refused_held(0);
        ops.forwarder()
            .subscription_refused(Some("not authorized (0x87)".into()));
        let h = crate::ops::health::health(&ops, 0);
        assert!(
            h.body["problems"].to_string().contains(
                "the broker refused the subscription to the command topic: not authorized (0x87)"
            ),
            "{}",
            h.body
        );
        ops.forwarder().subscription_refused(None);
        let h = crate::ops::health::health(&ops, 0);
        assert!(!h.body["problems"].to_string().contains("refused"));
        assert!(!crate::ops::health::status_summary(&ops).contains("refused"));
    }
}
