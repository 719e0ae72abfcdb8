//! A store file that is not a SQLite database, or is a store of a newer mes-edge: the runtime
//! and the outbox tools refuse it with a clear error and exit code 1, and the file is left
//! byte for byte as it was.

use crate::common::cell::write_config_with;
use crate::common::free_port;
use crate::plant::BIN;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn run(args: &[&str], config: &Path) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .args(["--config", config.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("mes-edge {args:?} did not exit within 20 s on a bad store");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn assert_refused(store: &Path, config: &Path, expect: &str) {
    let before = std::fs::read(store).unwrap();
    for args in [
        &["run"][..],
        &["outbox", "stats"],
        &["outbox", "tail"],
        &["outbox", "verify"],
        &["outbox", "replay", "--from", "1"],
    ] {
        let out = run(args, config);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "mes-edge {args:?}: {stderr}");
        assert!(
            stderr.contains(expect),
            "mes-edge {args:?} says {expect:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(
            std::fs::read(store).unwrap(),
            before,
            "mes-edge {args:?} altered the file"
        );
        for side in ["db-wal", "db-shm"] {
            assert!(
                !store.with_extension(side).exists(),
                "mes-edge {args:?} left a {side}"
            );
        }
    }
}

#[test]
fn a_store_that_is_not_sqlite_or_from_a_newer_version_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_with(
        dir.path(),
        free_port(),
        free_port(),
        "[health]\nenabled = false\n",
    );
    let store = dir.path().join("cell.db");

    std::fs::write(&store, "line,good,scrap\npress4,120,3\n".repeat(200)).unwrap();
    assert_refused(&store, &config, "not a mes-edge store");

    // A store marked as written by a newer build: one schema past this build's.
    std::fs::remove_file(&store).unwrap();
    let newer = mes_edge::store::SCHEMA_VERSION + 1;
    {
        let conn = rusqlite::Connection::open(&store).unwrap();
        conn.execute_batch("PRAGMA application_id = 1296388933;")
            .unwrap();
        conn.pragma_update(None, "user_version", newer).unwrap();
        conn.execute_batch("CREATE TABLE outbox_next (x);").unwrap();
    }
    assert_refused(
        &store,
        &config,
        &format!("written by a newer mes-edge (schema {newer}"),
    );
}
