//! Operations: how a runtime nobody logs into tells systemd and the plant's monitoring how it
//! is. systemd hears READY, STATUS and the watchdog ([`notify`], [`supervisor`]); monitoring asks
//! `/health` and `/metrics` ([`http`], [`health`], [`metrics`]); a new config arrives by SIGHUP
//! ([`reload`]). Everything here only reads what the cell's parts report through [`Ops`]; none of
//! it can stop production.

pub mod access;
pub mod api;
pub mod health;
pub mod http;
pub mod journal;
pub mod metrics;
pub mod notify;
pub mod page;
pub mod probe;
pub mod reload;
mod response;
mod routes;
pub mod signals;
pub mod sinks;
pub mod sparkplug;
pub mod start_pages;
pub mod supervisor;
pub mod tags;
pub mod trend;
pub mod values;

pub use probe::{ForwarderProbe, Heartbeat};
pub use sparkplug::SparkplugProbe;
pub use tags::TagBoard;
pub use values::ValueProbe;

use crate::config::CellConfig;
use crate::store::OutboxStats;
use mes_edge_drivers::DeviceMetrics;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Returns once `stop` is true (or its sender is gone).
pub async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    // The guard wait_for returns is not Send: drop it here, not across the caller's awaits.
    let _ = stop.wait_for(|s| *s).await;
}

/// The handle the runtime's parts report through and the endpoint reads from. Cheap to clone.
#[derive(Clone)]
pub struct Ops(Arc<State>);

struct State {
    cell: String,
    max_undelivered_age: Duration,
    /// The devices of the config in force, in config order; a reload replaces the list but keeps
    /// the counts of devices that keep their name.
    devices: Mutex<Vec<(String, DeviceMetrics)>>,
    engine: Heartbeat,
    forwarder: ForwarderProbe,
    values: ValueProbe,
    sparkplug: SparkplugProbe,
    /// The last reading of each tag, for the status page.
    tags: TagBoard,
    store_path: std::path::PathBuf,
    store: Mutex<Option<StoreView>>,
    sinks: sinks::Enabled,
    /// Events committed since this process started.
    produced: AtomicU64,
    reloads_applied: AtomicU64,
    reloads_refused: AtomicU64,
    notifier: Option<notify::Notifier>,
    /// READY=1 is due (at the start and after each reload): the supervisor sends it with the
    /// status line, so that one place makes that line.
    ready_due: std::sync::atomic::AtomicBool,
    ready_wake: tokio::sync::Notify,
}

/// The store as last read by the supervisor.
#[derive(Debug, Clone)]
pub struct StoreView {
    pub stats: OutboxStats,
    /// The database file and its WAL on disk.
    pub file_bytes: u64,
    /// How far the Sparkplug B sink's cursor is behind: events, and the time of the first.
    pub sparkplug_behind: Option<(u64, Option<i64>)>,
}

impl Ops {
    /// Reports to systemd if `$NOTIFY_SOCKET` says it started us.
    pub fn new(config: &CellConfig) -> Ops {
        Self::with_notifier(config, notify::Notifier::from_env())
    }

    pub fn with_notifier(config: &CellConfig, notifier: Option<notify::Notifier>) -> Ops {
        Ops(Arc::new(State {
            cell: config.cell.joined(),
            max_undelivered_age: Duration::from_secs(config.health.max_undelivered_age_s),
            devices: Mutex::new(Vec::new()),
            engine: Heartbeat::default(),
            forwarder: ForwarderProbe::default(),
            values: ValueProbe::default(),
            sparkplug: SparkplugProbe::default(),
            tags: TagBoard::default(),
            store_path: config.store.path.clone(),
            store: Mutex::new(None),
            sinks: sinks::Enabled::of(config),
            produced: AtomicU64::new(0),
            reloads_applied: AtomicU64::new(0),
            reloads_refused: AtomicU64::new(0),
            notifier,
            ready_due: std::sync::atomic::AtomicBool::new(false),
            ready_wake: tokio::sync::Notify::new(),
        }))
    }

    /// Tells systemd (sd_notify), if it started us; otherwise does nothing. False when the
    /// message could not be sent (a full socket buffer): a caller whose state must reach
    /// systemd (READY, STATUS) sends it again at its next turn.
    pub fn notify(&self, state: &str) -> bool {
        match &self.0.notifier {
            Some(n) => match n.send(state) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!("sd_notify {state:?}: {e}");
                    false
                }
            },
            None => true,
        }
    }

    /// The cell is ready (started, or a reload is done): the supervisor tells systemd at once.
    pub fn ready(&self) {
        self.0
            .ready_due
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.0.ready_wake.notify_one();
    }

    /// Whether READY=1 is due; taking it clears it.
    pub fn take_ready(&self) -> bool {
        self.0
            .ready_due
            .swap(false, std::sync::atomic::Ordering::SeqCst)
    }

    /// Returns when [`Ops::ready`] is called (at once if it was called since the last wait).
    pub async fn ready_called(&self) {
        self.0.ready_wake.notified().await
    }

    pub fn cell(&self) -> &str {
        &self.0.cell
    }

    /// The outputs the config turns on.
    pub fn sinks_enabled(&self) -> sinks::Enabled {
        self.0.sinks
    }

    /// The metrics handle for a device of the config now in force, the same one as before a
    /// reload if the device kept its name.
    pub fn device(&self, name: &str) -> DeviceMetrics {
        let devices = self.0.devices.lock().unwrap_or_else(|e| e.into_inner());
        devices
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// Sets the devices of the config in force (at start and after each reload).
    pub fn set_devices(&self, names: &[String]) {
        let mut devices = self.0.devices.lock().unwrap_or_else(|e| e.into_inner());
        let old = std::mem::take(&mut *devices);
        for name in names {
            let m = old
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, m)| m.clone())
                .unwrap_or_default();
            devices.push((name.clone(), m));
        }
    }

    /// Hands each device the metrics handle of its name, and makes these the devices `/health`
    /// and `/metrics` report.
    pub fn instrument(&self, drivers: &mut [mes_edge_drivers::DriverSpec]) {
        let mut handles: Vec<(&str, &mut mes_edge_drivers::DeviceMetrics)> =
            drivers.iter_mut().flat_map(|d| d.metrics_mut()).collect();
        let names: Vec<String> = handles.iter().map(|(n, _)| n.to_string()).collect();
        self.set_devices(&names);
        for (name, metrics) in &mut handles {
            **metrics = self.device(name);
        }
    }

    pub fn devices(&self) -> Vec<(String, mes_edge_drivers::DeviceMetricsSnapshot)> {
        let devices = self.0.devices.lock().unwrap_or_else(|e| e.into_inner());
        devices
            .iter()
            .map(|(n, m)| (n.clone(), m.snapshot()))
            .collect()
    }

    pub fn engine(&self) -> &Heartbeat {
        &self.0.engine
    }

    pub fn forwarder(&self) -> &ForwarderProbe {
        &self.0.forwarder
    }

    /// The Sparkplug B session, if the runtime runs one.
    pub fn sparkplug(&self) -> &SparkplugProbe {
        &self.0.sparkplug
    }

    /// Process values committed, delivered and dropped.
    pub fn values(&self) -> &ValueProbe {
        &self.0.values
    }

    pub fn tags(&self) -> &TagBoard {
        &self.0.tags
    }

    pub fn store_path(&self) -> &std::path::Path {
        &self.0.store_path
    }

    pub fn store(&self) -> Option<StoreView> {
        self.0
            .store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_store(&self, view: StoreView) {
        *self.0.store.lock().unwrap_or_else(|e| e.into_inner()) = Some(view);
    }

    pub fn produced(&self) -> u64 {
        self.0.produced.load(Relaxed)
    }

    pub(crate) fn add_produced(&self, n: u64) {
        self.0.produced.fetch_add(n, Relaxed);
    }

    pub fn reload_applied(&self) {
        self.0.reloads_applied.fetch_add(1, Relaxed);
    }

    pub fn reload_refused(&self) {
        self.0.reloads_refused.fetch_add(1, Relaxed);
    }

    /// (applied, refused) since start.
    pub fn reloads(&self) -> (u64, u64) {
        (
            self.0.reloads_applied.load(Relaxed),
            self.0.reloads_refused.load(Relaxed),
        )
    }

    pub fn max_undelivered_age(&self) -> Duration {
        self.0.max_undelivered_age
    }
}
