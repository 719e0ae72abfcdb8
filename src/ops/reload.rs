//! Reload: SIGHUP (`systemctl reload`) re-reads the cell's config. A valid new config replaces
//! the drivers and the cell model while the store and the forwarder run on; an invalid one is
//! refused with its errors in the log, and the config in force stays.

use crate::config::{self, CellConfig};
use std::path::{Path, PathBuf};
use tokio::sync::watch;

/// Where the config comes from, and a count that goes up at every SIGHUP.
pub struct ReloadRequests {
    pub path: PathBuf,
    pub requests: watch::Receiver<u64>,
}

/// Turns SIGHUP into reload requests. Registering replaces SIGHUP's default action (ending the
/// process) at once, so call it before anything else can take a while.
pub fn listen_for_hangup(path: &Path) -> std::io::Result<ReloadRequests> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    let (tx, rx) = watch::channel(0u64);
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tx.send_modify(|n| *n += 1);
        }
    });
    Ok(ReloadRequests {
        path: path.to_path_buf(),
        requests: rx,
    })
}

/// Waits for the next reload request and names the file to read; never returns without one.
pub async fn requested(reload: &mut Option<ReloadRequests>) -> PathBuf {
    if let Some(r) = reload {
        if r.requests.changed().await.is_ok() {
            return r.path.clone();
        }
    }
    std::future::pending().await
}

/// Logs why a reload was refused, one line per problem, so `journalctl -p err` shows them.
pub fn refuse(ops: &super::Ops, path: &Path, problems: &[String]) {
    ops.reload_refused();
    for p in problems {
        tracing::error!("{p}");
    }
    tracing::error!(
        config = %path.display(),
        problems = problems.len(),
        "reload refused; the config in force stays"
    );
}

/// Sections a reload cannot change: they name the store and the broker session the runtime
/// keeps running across the reload.
const NEEDS_RESTART: &str = "[cell], [store], [mqtt], [health] and [sparkplug]";

/// Reads and checks the config at `path` against the one in force. `Err` holds one line per
/// problem, `file:line:column: ...` where the problem has a place in the file.
pub fn prepare(path: &Path, running: &CellConfig) -> Result<CellConfig, Vec<String>> {
    let new = config::load(path)
        .map_err(|e| e.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>())?;
    let mut changed = Vec::new();
    if new.cell != running.cell {
        changed.push("[cell]");
    }
    if new.store != running.store {
        changed.push("[store]");
    }
    if new.mqtt != running.mqtt {
        changed.push("[mqtt]");
    }
    if new.health != running.health {
        changed.push("[health]");
    }
    if new.sparkplug != running.sparkplug {
        changed.push("[sparkplug]");
    }
    if !changed.is_empty() {
        return Err(vec![format!(
            "{}: {} changed; a reload applies devices and signals only, {NEEDS_RESTART} need a restart (systemctl restart)",
            path.display(),
            changed.join(", ")
        )]);
    }
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CELL: &str = r#"
[cell]
enterprise = "acme"
site = "plant1"
area = "pressing"
line = "line2"
cell = "press4"

[[devices]]
name = "plc"
protocol = "modbus-tcp"
host = "127.0.0.1"

[[devices.tags]]
name = "good_count"
table = "holding"
address = 0
type = "u32"

[signals.good_count]
tag = "good_count"

[store]
path = "cell.db"

[mqtt]
url = "mqtt://127.0.0.1:1883"
"#;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("cell.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_changed_device_is_taken_a_changed_broker_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let running = config::load(&write(dir.path(), CELL)).unwrap();

        let p = write(
            dir.path(),
            &CELL.replace("name = \"plc\"", "name = \"press_plc\""),
        );
        let new = prepare(&p, &running).expect("a renamed device reloads");
        assert_eq!(new.devices[0].name, "press_plc");

        let p = write(dir.path(), &CELL.replace(":1883", ":1884"));
        let err = prepare(&p, &running).unwrap_err();
        assert!(err[0].contains("[mqtt] changed"), "{err:?}");

        // The Sparkplug sink keeps its session and cursor across a reload: turning it on waits
        // for a restart too.
        let p = write(
            dir.path(),
            &format!("{CELL}\n[sparkplug]\nenabled = true\n"),
        );
        let err = prepare(&p, &running).unwrap_err();
        assert!(err[0].contains("[sparkplug] changed"), "{err:?}");
    }

    #[test]
    fn a_broken_file_is_refused_with_located_errors() {
        let dir = tempfile::tempdir().unwrap();
        let running = config::load(&write(dir.path(), CELL)).unwrap();
        let p = write(
            dir.path(),
            &CELL.replace("type = \"u32\"", "type = \"u33\""),
        );
        let err = prepare(&p, &running).unwrap_err();
        assert_eq!(err.len(), 1);
        assert!(
            err[0].contains("cell.toml:18:8: unknown variant `u33`"),
            "{err:?}"
        );
    }
}
