//! Commits that fail show: the store on a small tmpfs that fills up (a full disk, as root in
//! CI, where file permissions cannot make a store read-only: root passes them). While commits
//! fail, `/health` answers 503 naming the reason, the failure counter rises, STATUS= says it,
//! and after `restart_after_failing_commits_s` the watchdog pings stop (systemd would restart
//! the service); once there is room again, everything made meanwhile is committed and sent.

use crate::common;
use crate::ops_support;

use common::cell::{write_config_with, Delivery, GOOD, TOPIC_FILTER};
use common::{eventually, Collector, ModbusPeer, Mosquitto, Plc, RuntimeProcess};
use ops_support::{sample, scrape, with_health, BIN};
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs of `size`, unmounted when dropped.
struct SmallDisk(PathBuf, #[allow(dead_code)] tempfile::TempDir);

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let at = dir.path().join("disk");
        std::fs::create_dir(&at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test fills a small tmpfs to make commits fail and needs to mount one (root, \
             CAP_SYS_ADMIN); mount said: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk(at, dir)
    }

    /// Writes a file until the disk is full.
    fn fill(&self) -> PathBuf {
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.flush();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn receive(rx: &UnixDatagram, d: Duration) -> Vec<String> {
    let until = Instant::now() + d;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        rx.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        if let Ok(n) = rx.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    out
}

fn pings(msgs: &[String]) -> usize {
    msgs.iter().filter(|m| m.as_str() == "WATCHDOG=1").count()
}

fn config_on(dir: &Path, disk: &Path, modbus: u16, mqtt: u16) -> PathBuf {
    let config = write_config_with(dir, modbus, mqtt, "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[store]\npath = \"cell.db\"",
        &format!(
            "[store]\npath = \"{}\"\nrestart_after_failing_commits_s = 3",
            disk.join("cell.db").display()
        ),
    );
    assert!(text.contains("restart_after_failing_commits_s"));
    std::fs::write(&config, text).unwrap();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_shows_in_health_metrics_status_and_the_watchdog_and_nothing_is_lost() {
    let disk = SmallDisk::mount("1m");
    let broker = Mosquitto::start();
    let peer = ModbusPeer::start();
    let mut plc = Plc::connect(peer.port(), 1).await;
    let collector = Collector::start(broker.port(), TOPIC_FILTER).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_on(dir.path(), &disk.0, peer.port(), broker.port());
    let health = with_health(&config);
    let (mut rt, rx) = ops_support::run_under_watchdog(&config, dir.path());
    common::cell::wait_first_device_status(&collector, &rt).await;
    let mut h = scrape(health, "/health", false);
    assert!(
        eventually(Duration::from_secs(12), || {
            h = scrape(health, "/health", false);
            h.status == 200
        })
        .await,
        "healthy first: {}\n{}",
        h.body,
        rt.logs()
    );

    // The disk fills; parts keep being made until a commit fails.
    let filler = disk.fill();
    let mut good = 0u32;
    let failing = eventually(Duration::from_secs(60), || {
        h = scrape(health, "/health", false);
        h.status == 503
    });
    let made = async {
        for _ in 0..400 {
            good += 1;
            plc.write_u32(GOOD, good).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            if scrape(health, "/health", false)
                .body
                .contains("commits to the store have failed")
            {
                break;
            }
        }
    };
    made.await;
    assert!(failing.await, "/health 503: {}\n{}", h.body, rt.logs());
    eprintln!(
        "/health while the disk is full: {} {}",
        h.status, h.json["problems"]
    );
    let problems = h.json["problems"].to_string();
    assert!(
        problems.contains("commits to the store have failed") && problems.contains("full"),
        "{}",
        h.body
    );
    assert!(
        h.json["engine"]["commits_failing"].is_string(),
        "{}",
        h.body
    );
    let m = scrape(health, "/metrics", true);
    assert!(
        sample(&m.families, "mes_edge_store_commit_failures_total", &[]).unwrap() >= 1.0,
        "{}",
        m.body
    );
    // STATUS= says it; after 3 s of failing commits the watchdog pings stop.
    let heard = tokio::task::block_in_place(|| receive(&rx, Duration::from_secs(5)));
    assert!(
        heard
            .iter()
            .any(|m| m.starts_with("STATUS=") && m.contains("STORE COMMITS FAILING")),
        "{heard:?}"
    );
    let later = tokio::task::block_in_place(|| receive(&rx, Duration::from_secs(3)));
    assert_eq!(pings(&later), 0, "no pings while commits fail: {later:?}");
    assert!(
        rt.logs().contains("withholding the watchdog"),
        "{}",
        rt.logs()
    );

    // Room again: the batch commits, pings come back, /health is well, every part is sent.
    std::fs::remove_file(filler).unwrap();
    let back = tokio::task::block_in_place(|| receive(&rx, Duration::from_secs(4)));
    assert!(pings(&back) >= 1, "pings again: {back:?}\n{}", rt.logs());
    assert!(
        eventually(Duration::from_secs(15), || {
            h = scrape(health, "/health", false);
            h.status == 200
        })
        .await,
        "{}",
        h.body
    );
    let all = collector
        .wait_for(
            |m| Delivery::of(m).parts("good") == good as u64,
            Duration::from_secs(20),
        )
        .await;
    let d = Delivery::of(&collector.snapshot());
    assert!(
        all,
        "{} parts sent of {good}\n{}",
        d.parts("good"),
        rt.logs()
    );
    d.assert_gap_free();
    eprintln!("{good} parts made, all sent; events 1..={}", d.last_seq());
    assert!(rt.terminate().success(), "{}", rt.logs());
}

/// A store alarm raised while commits fail is committed once they work again, not dropped with
/// the failed batch. The store is filled to 92% of a 1 MB cap beforehand (so housekeeping raises
/// `warning` at the runtime's first turn), and a trigger in it fails every insert into the
/// outbox while the test says so: a fault in the commit alone (pruning still works).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_alarm_raised_while_commits_fail_is_sent_once_they_work() {
    use mes_edge::event::{EventBody, NewEvent};
    let broker = Mosquitto::start();
    let peer = ModbusPeer::start();
    let collector = Collector::start(broker.port(), TOPIC_FILTER).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_with(dir.path(), peer.port(), broker.port(), "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[store]\npath = \"cell.db\"",
        "[store]\npath = \"cell.db\"\nmax_size_mb = 1",
    );
    std::fs::write(&config, text).unwrap();
    let health = with_health(&config);
    let db = dir.path().join("cell.db");
    {
        let cell = "acme/plant1/pressing/line2/press4";
        let mut ob =
            mes_edge::store::Outbox::open(&db, mes_edge::config::Synchronous::Full, cell).unwrap();
        mes_edge::store::identity::claim(&mut ob, &db, 1).unwrap();
        while ob.used_bytes().unwrap() < 965_000 {
            let e = NewEvent::new(
                1,
                vec!["filler".into()],
                EventBody::DeviceStatus {
                    device: "filler".into(),
                    online: false,
                    reason: Some("x".repeat(8000)),
                },
            );
            let c = ob.commit(&[e], &ob.load_state().unwrap(), 1).unwrap();
            let moved = mes_edge::store::EventsMoved {
                to: c.last_seq,
                ..Default::default()
            };
            ob.advance_events(
                mes_edge::store::EVENTS_SINK,
                &moved,
                mes_edge_drivers::now_ms(),
            )
            .unwrap();
        }
        let used = ob.used_bytes().unwrap();
        assert!((943_719..1_000_000).contains(&used), "{used}");
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE test_fault (fail INTEGER NOT NULL);
             INSERT INTO test_fault VALUES (1);
             CREATE TRIGGER test_fault BEFORE INSERT ON outbox
               WHEN (SELECT fail FROM test_fault) = 1
               BEGIN SELECT RAISE(ABORT, 'injected commit failure'); END;",
        )
        .unwrap();
    }
    let mut rt = RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()]);
    let mut h = scrape(health, "/health", false);
    let failing = eventually(Duration::from_secs(20), || {
        h = scrape(health, "/health", false);
        h.status == 503 && h.body.contains("injected commit failure")
    })
    .await;
    assert!(failing, "{}\n{}", h.body, rt.logs());
    // A few more failed attempts (one a second) with the alarm in the batch.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        rt.logs().contains("store alarm"),
        "housekeeping raised the alarm\n{}",
        rt.logs()
    );
    assert!(Delivery::of(&collector.snapshot())
        .of_type("store_alarm")
        .next()
        .is_none());
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("UPDATE test_fault SET fail = 0", [])
        .unwrap();
    let sent = collector
        .wait_for(
            |m| Delivery::of(m).of_type("store_alarm").count() == 1,
            Duration::from_secs(20),
        )
        .await;
    let d = Delivery::of(&collector.snapshot());
    assert!(sent, "the alarm arrives\n{}", rt.logs());
    let alarm = d.of_type("store_alarm").next().unwrap();
    assert_eq!(alarm["data"]["level"], "warning", "{alarm}");
    assert!(rt.terminate().success(), "{}", rt.logs());
}

/// A store whose middle 64 KiB a failing disk overwrote: the runtime refuses it at its start as
/// corrupt, naming the store and what to do, not as "not a mes-edge store", and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_store_is_refused_at_start_as_corrupt_with_what_to_do() {
    use mes_edge::event::{EventBody, NewEvent};
    use std::io::{Seek, SeekFrom};
    let broker = Mosquitto::start();
    let peer = ModbusPeer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_with(dir.path(), peer.port(), broker.port(), "");
    let db = dir.path().join("cell.db");
    {
        let cell = "acme/plant1/pressing/line2/press4";
        let mut ob =
            mes_edge::store::Outbox::open(&db, mes_edge::config::Synchronous::Full, cell).unwrap();
        for _ in 0..300 {
            let e = NewEvent::new(
                1,
                vec!["filler".into()],
                EventBody::DeviceStatus {
                    device: "filler".into(),
                    online: false,
                    reason: Some("x".repeat(4000)),
                },
            );
            ob.commit(&[e], &ob.load_state().unwrap(), 1).unwrap();
        }
    }
    // The last connection's close copied the WAL into the file.
    let len = std::fs::metadata(&db).unwrap().len();
    assert!(len > 1 << 20, "a store of {len} bytes");
    let mut f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    f.seek(SeekFrom::Start(len / 2 / 4096 * 4096)).unwrap();
    f.write_all(&[0x55; 64 * 1024]).unwrap();
    drop(f);
    let before = std::fs::read(&db).unwrap();
    let mut rt = RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()]);
    let status = rt.wait_exit(Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{}", rt.logs());
    let err = rt.stderr();
    assert!(
        err.contains(&format!("{}: the store is corrupt", db.display()))
            && err.contains("outbox verify"),
        "{err}"
    );
    assert!(!err.contains("not a mes-edge store"), "{err}");
    assert!(
        std::fs::read(&db).unwrap() == before,
        "the store was written to"
    );
}

/// Another writer took the runtime's next sequence number behind its back (what a second name
/// for the store once allowed): the commit breaks the outbox's key. The runtime stops with that
/// reason at once, instead of retrying the same commit every second for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequence_number_taken_behind_the_runtimes_back_stops_it_with_the_reason() {
    let broker = Mosquitto::start();
    let peer = ModbusPeer::start();
    let collector = Collector::start(broker.port(), TOPIC_FILTER).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_with(dir.path(), peer.port(), broker.port(), "");
    let db = dir.path().join("cell.db");
    let mut rt = RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()]);
    common::cell::wait_first_device_status(&collector, &rt).await;
    // The intruder's row at the next seq (SQLite's lock is not the runtime's lock).
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let taken: i64 = conn
        .query_row(
            "INSERT INTO outbox (seq, event_id, ts_ms, kind, payload, committed_ms)
             SELECT last_seq + 1, 'intruder', 0, 'device_status', '{}', 0 FROM cell_state
             RETURNING seq",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(conn);
    let mut plc = Plc::connect(peer.port(), 1).await;
    plc.write_u32(GOOD, 1).await;
    let status = rt.wait_exit(Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{}", rt.logs());
    let logs = rt.logs();
    assert!(
        logs.contains("UNIQUE constraint failed: outbox.seq")
            && logs.contains("the engine stopped"),
        "{logs}"
    );
    assert_eq!(
        logs.matches("commit failed, will retry").count(),
        0,
        "not retried: {logs}"
    );
    eprintln!("seq {taken} taken behind the runtime's back: it stopped");
}
