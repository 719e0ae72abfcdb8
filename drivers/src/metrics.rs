//! What a driver counts about its own device, for the runtime's health and metrics endpoint.
//!
//! A driver only adds to a [`DeviceMetrics`] handle; it does not know who reads it or in which
//! format. Everything is a relaxed atomic: counts may be a moment stale for a reader, never torn.

use crate::DriverError;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets; the last bucket is +Inf. From a fast
/// PLC on the same switch (a millisecond) to one that answers at its timeout.
pub const LATENCY_BUCKETS_S: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A cheap, clonable handle; the default one is counted into but read by nobody.
#[derive(Debug, Clone, Default)]
pub struct DeviceMetrics(Arc<Counters>);

#[derive(Debug)]
struct Counters {
    requests: AtomicU64,
    errors: AtomicU64,
    connects: AtomicU64,
    samples: AtomicU64,
    connected: AtomicBool,
    /// UTC ms of the last read that brought values back; 0 = never.
    last_good_read_ms: AtomicI64,
    /// The device's clock minus the runtime's at its last stamped value; `CLOCK_UNKNOWN` if it
    /// stamps none (Modbus).
    clock_skew_ms: AtomicI64,
    latency: Histogram,
    /// Why the device last went offline, and when (UTC ms): written once per outage.
    last_offline: Mutex<Option<(DriverError, i64)>>,
}

const CLOCK_UNKNOWN: i64 = i64::MIN;

/// A point-in-time copy of a device's counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceMetricsSnapshot {
    /// Requests sent to the device (reads and writes).
    pub requests: u64,
    /// Failed connects, requests that timed out or broke the connection, and protocol
    /// exceptions (the device answered, but with an error).
    pub errors: u64,
    /// Connections established.
    pub connects: u64,
    /// Changed values handed to the engine (the OPC UA driver counts them; Modbus not yet).
    pub samples: u64,
    pub connected: bool,
    pub last_good_read_ms: Option<i64>,
    /// The device's clock minus the runtime's, ms, at its last stamped value (OPC UA).
    pub clock_skew_ms: Option<i64>,
    /// How long one poll of all the device's tags took (or, for a subscription, how old a
    /// notification was when it arrived): counts per bucket of [`LATENCY_BUCKETS_S`], then +Inf.
    pub latency_buckets: [u64; LATENCY_BUCKETS_S.len() + 1],
    pub latency_sum_s: f64,
    pub latency_count: u64,
    /// Why the device last went offline (its kind tells a fault that passes from one only the
    /// config or the device's program mends), and when, UTC ms; kept after it came back.
    pub last_offline: Option<(DriverError, i64)>,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            requests: AtomicU64::default(),
            errors: AtomicU64::default(),
            connects: AtomicU64::default(),
            samples: AtomicU64::default(),
            connected: AtomicBool::default(),
            last_good_read_ms: AtomicI64::default(),
            clock_skew_ms: AtomicI64::new(CLOCK_UNKNOWN),
            latency: Histogram::default(),
            last_offline: Mutex::new(None),
        }
    }
}

#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS_S.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl DeviceMetrics {
    /// One request answered (`ok`) or not (timeout, broken connection, protocol exception).
    pub fn request(&self, ok: bool) {
        self.0.requests.fetch_add(1, Relaxed);
        if !ok {
            self.0.errors.fetch_add(1, Relaxed);
        }
    }

    /// A connect that failed: counted as an error, the device is not connected.
    pub fn connect_failed(&self) {
        self.0.errors.fetch_add(1, Relaxed);
        self.0.connected.store(false, Relaxed);
    }

    /// The device answers (true) or was given up as offline (false).
    pub fn set_connected(&self, connected: bool) {
        let was = self.0.connected.swap(connected, Relaxed);
        if connected && !was {
            self.0.connects.fetch_add(1, Relaxed);
        }
    }

    /// The device was given up as offline at `ts_ms` for `reason`.
    pub fn went_offline(&self, reason: &DriverError, ts_ms: i64) {
        // The reason first: a reader that sees the device offline finds why.
        *self
            .0
            .last_offline
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some((reason.clone(), ts_ms));
        self.set_connected(false);
    }

    /// `n` changed values were handed to the engine.
    pub fn samples(&self, n: usize) {
        self.0.samples.fetch_add(n as u64, Relaxed);
    }

    /// Values came back from the device at `ts_ms` (UTC ms).
    pub fn good_read(&self, ts_ms: i64) {
        self.0.last_good_read_ms.fetch_max(ts_ms, Relaxed);
    }

    /// A value stamped by the device `skew_ms` away from the runtime's clock.
    pub fn clock_skew(&self, skew_ms: i64) {
        self.0
            .clock_skew_ms
            .store(skew_ms.max(CLOCK_UNKNOWN + 1), Relaxed);
    }

    /// One complete poll (or notification) took `d`.
    pub fn latency(&self, d: Duration) {
        let h = &self.0.latency;
        let s = d.as_secs_f64();
        let i = LATENCY_BUCKETS_S
            .iter()
            .position(|&le| s <= le)
            .unwrap_or(LATENCY_BUCKETS_S.len());
        h.buckets[i].fetch_add(1, Relaxed);
        h.sum_us
            .fetch_add(d.as_micros().min(u64::MAX as u128) as u64, Relaxed);
        h.count.fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> DeviceMetricsSnapshot {
        let c = &self.0;
        let mut latency_buckets = [0; LATENCY_BUCKETS_S.len() + 1];
        for (out, b) in latency_buckets.iter_mut().zip(&c.latency.buckets) {
            *out = b.load(Relaxed);
        }
        let last = c.last_good_read_ms.load(Relaxed);
        let skew = c.clock_skew_ms.load(Relaxed);
        DeviceMetricsSnapshot {
            requests: c.requests.load(Relaxed),
            errors: c.errors.load(Relaxed),
            connects: c.connects.load(Relaxed),
            samples: c.samples.load(Relaxed),
            connected: c.connected.load(Relaxed),
            last_good_read_ms: (last > 0).then_some(last),
            clock_skew_ms: (skew != CLOCK_UNKNOWN).then_some(skew),
            latency_buckets,
            latency_sum_s: c.latency.sum_us.load(Relaxed) as f64 / 1e6,
            latency_count: c.latency.count.load(Relaxed),
            last_offline: c
                .last_offline
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_reason_to_go_offline_stays_after_the_device_is_back() {
        let m = DeviceMetrics::default();
        assert_eq!(m.snapshot().last_offline, None);
        m.set_connected(true);
        m.went_offline(&DriverError::transient("connection refused"), 1_000);
        m.went_offline(&DriverError::configuration("no such register"), 2_000);
        let s = m.snapshot();
        assert!(!s.connected);
        assert_eq!(
            s.last_offline,
            Some((DriverError::configuration("no such register"), 2_000))
        );
        m.set_connected(true);
        let s = m.snapshot();
        assert!(s.connected && s.last_offline.is_some());
        assert_eq!(s.connects, 2);
    }

    #[test]
    fn latencies_land_in_the_first_bucket_that_holds_them() {
        let m = DeviceMetrics::default();
        m.latency(Duration::from_micros(900)); // <= 1 ms
        m.latency(Duration::from_millis(1)); // exactly on a bound: that bucket
        m.latency(Duration::from_millis(30)); // <= 50 ms
        m.latency(Duration::from_secs(9)); // past 5 s: +Inf
        let s = m.snapshot();
        assert_eq!(s.latency_buckets[0], 2);
        assert_eq!(s.latency_buckets[5], 1);
        assert_eq!(s.latency_buckets[LATENCY_BUCKETS_S.len()], 1);
        assert_eq!(s.latency_count, 4);
        assert!(
            (s.latency_sum_s - 9.0319).abs() < 1e-6,
            "{}",
            s.latency_sum_s
        );
    }

    #[test]
    fn connects_count_transitions_not_repeats() {
        let m = DeviceMetrics::default();
        m.set_connected(true);
        m.set_connected(true);
        m.connect_failed();
        m.set_connected(true);
        m.request(true);
        m.request(false);
        let s = m.snapshot();
        assert_eq!((s.connects, s.requests, s.errors), (2, 2, 2));
        assert!(s.connected);
        assert_eq!(s.last_good_read_ms, None);
    }
}
