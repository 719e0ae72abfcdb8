//! The wall clock every timestamp of the cell comes from ([`crate::now_ms`]), with a hook that
//! lets a test step it the way NTP or an operator steps a line-side PC's clock.
//!
//! The real clock cannot be moved from a test without root and without disturbing everything
//! else on the machine, so the runtime adds an offset to it. The offset is zero unless the
//! environment variable `MES_EDGE_TEST_CLOCK_OFFSET_FILE` names a file: that file holds a signed
//! number of milliseconds, and a thread re-reads it every 50 ms, so a test steps the clock of a
//! running process by rewriting the file. The hook exists only in builds with debug assertions
//! (the test builds): a release build (`cargo build --release`, the .deb) has no way to move
//! its clock but the system's, whatever its environment says.
//!
//! Event ids (UUID v7) keep the real clock: they only have to be unique, and are.

#[cfg(debug_assertions)]
use std::sync::atomic::{AtomicI64, Ordering};
#[cfg(debug_assertions)]
use std::sync::Once;
#[cfg(debug_assertions)]
use std::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};

/// The variable naming the offset file (test builds only).
pub const OFFSET_FILE_VAR: &str = "MES_EDGE_TEST_CLOCK_OFFSET_FILE";

#[cfg(debug_assertions)]
static OFFSET_MS: AtomicI64 = AtomicI64::new(0);
#[cfg(debug_assertions)]
static WATCH: Once = Once::new();

/// Milliseconds since the Unix epoch, UTC, plus the test offset if one is set.
pub fn now_ms() -> i64 {
    let real = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    real.saturating_add(offset_ms())
}

#[cfg(debug_assertions)]
fn offset_ms() -> i64 {
    WATCH.call_once(watch_offset_file);
    OFFSET_MS.load(Ordering::Relaxed)
}

#[cfg(not(debug_assertions))]
fn offset_ms() -> i64 {
    0
}

#[cfg(debug_assertions)]
fn watch_offset_file() {
    let Some(path) = std::env::var_os(OFFSET_FILE_VAR).filter(|p| !p.is_empty()) else {
        return;
    };
    let read = move || {
        std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.trim().parse::<i64>().ok())
    };
    // The first reading is taken before any timestamp is handed out.
    if let Some(ms) = read() {
        OFFSET_MS.store(ms, Ordering::Relaxed);
    }
    tracing::warn!("{OFFSET_FILE_VAR} is set: the clock is offset for testing");
    let spawned = std::thread::Builder::new()
        .name("test-clock".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_millis(50));
            if let Some(ms) = read() {
                OFFSET_MS.store(ms, Ordering::Relaxed);
            }
        });
    if let Err(e) = spawned {
        tracing::error!("{OFFSET_FILE_VAR}: cannot start its reader: {e}");
    }
}
