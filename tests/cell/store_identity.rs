//! Which store an event comes from, on the real binary against Mosquitto and a pymodbus PLC:
//! a store of the previous release is migrated with every undelivered event sent; a store
//! deleted and made again starts at seq 1 with a new `store_id` and says which store it
//! replaces; a second runtime on one store stops at its start, also when its config names the
//! store by another name (a symlink).

use crate::common;

use common::cell::{write_config, Delivery, TOPIC_FILTER};
use common::{Collector, ModbusPeer, Mosquitto, RuntimeProcess};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_mes-edge");

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/previous-release")
        .join(name)
}

fn stats(config: &Path) -> String {
    let out = Command::new(BIN)
        .args(["outbox", "stats", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stat_line<'a>(stats: &'a str, name: &str) -> &'a str {
    stats
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {stats}"))
        .trim()
}

/// The rows of a store as its own SQLite file holds them: (seq, event_id, payload).
fn rows(db: &Path) -> Vec<(u64, String, Value)> {
    let conn = rusqlite_free_read(db);
    conn.into_iter()
        .map(|(seq, id, payload)| (seq, id, serde_json::from_str(&payload).unwrap()))
        .collect()
}

/// Reads the outbox with the sqlite3 module of the test peers' Python: an independent reader
/// of the file, not this crate's code.
fn rusqlite_free_read(db: &Path) -> Vec<(u64, String, String)> {
    let out = Command::new(common::python_bin())
        .arg("-c")
        .arg(
            "import json, sqlite3, sys\n\
             c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)\n\
             print(json.dumps([[s, i, bytes(p).decode()] for s, i, p in \
             c.execute('SELECT seq, event_id, payload FROM outbox ORDER BY seq')]))",
        )
        .arg(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_of_the_previous_release_is_migrated_and_every_undelivered_event_sent() {
    let plc: Value = serde_json::from_slice(&std::fs::read(fixture("plc.json")).unwrap()).unwrap();
    let good = plc["good"].as_u64().unwrap();
    let (scrap, state, fault) = (
        plc["scrap"].clone(),
        plc["state"].clone(),
        plc["fault"].clone(),
    );
    // The PLC as the previous release last read it: nothing new to count.
    let peer = ModbusPeer::start_with_init(json!({
        "holding": { "0": [good >> 16, good & 0xFFFF, scrap, state, fault] }
    }));
    let broker = Mosquitto::start();
    let collector = Collector::start(broker.port(), TOPIC_FILTER).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), peer.port(), broker.port());
    let db = dir.path().join("cell.db");
    std::fs::copy(fixture("store.db"), &db).unwrap();
    let old = rows(&db);
    assert_eq!(old.len(), 36, "the fixture's undelivered events");
    assert!(old.iter().all(|(_, _, p)| p.get("store_id").is_none()));

    let mut rt = RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()]);
    let sent = collector
        .wait_for(
            |m| Delivery::of(m).of_type("store_created").count() == 1,
            Duration::from_secs(30),
        )
        .await;
    assert!(sent, "store_created delivered\n{}", rt.logs());
    // Every old event arrives (with its event_id, all else the same but the store_id), then
    // the announcement continues the sequence.
    let all = collector
        .wait_for(
            |m| (1..=37).all(|s| Delivery::of(m).by_seq.contains_key(&s)),
            Duration::from_secs(30),
        )
        .await;
    assert!(all, "seq 1..=37 delivered\n{}", rt.logs());
    let got = Delivery::of(&collector.snapshot());
    let created = &got.by_seq[&37];
    assert_eq!(created["type"], "store_created", "{created}");
    assert_eq!(created["data"]["origin"], "migrated");
    let store_id = created["store_id"].as_str().unwrap().to_string();
    assert_eq!(created["data"]["store_id"], store_id.as_str());
    for (seq, id, before) in &old {
        let mut after = got.by_seq[seq].clone();
        assert_eq!(after["event_id"], id.as_str());
        assert_eq!(after["store_id"], store_id.as_str(), "seq {seq}");
        after.as_object_mut().unwrap().remove("store_id");
        assert_eq!(&after, before, "seq {seq}: only store_id added");
    }
    assert!(rt.terminate().success(), "{}", rt.logs());

    let s = stats(&config);
    assert_eq!(stat_line(&s, "store id:"), store_id, "{s}");
    assert_eq!(stat_line(&s, "depth (undelivered):"), "0", "{s}");
    // The file itself: schema 2, every row with the store id, verify passes.
    assert!(rows(&db)
        .iter()
        .all(|(_, _, p)| p["store_id"] == store_id.as_str()));
    let out = Command::new(BIN)
        .args(["outbox", "verify", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_deleted_and_made_again_has_a_new_id_starts_at_one_and_names_the_old_one() {
    let peer = ModbusPeer::start();
    let broker = Mosquitto::start();
    let collector = Collector::start(broker.port(), TOPIC_FILTER).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), peer.port(), broker.port());
    let mut rt = RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()]);
    common::cell::wait_first_device_status(&collector, &rt).await;
    let d = Delivery::of(&collector.snapshot());
    let created = &d.by_seq[&1];
    assert_eq!(
        created["type"], "store_created",
        "the first event of a store"
    );
    assert_eq!(created["data"]["origin"], "new");
    assert_eq!(created["data"]["previous_store_id"], Value::Null);
    let first_id = created["store_id"].as_str().unwrap().to_string();
    assert!(d
        .by_seq
        .values()
        .all(|e| e["store_id"] == first_id.as_str()));
    // A clean stop writes the identity file with the last seq (a crash leaves it at most 5 s
    // behind).
    assert!(rt.terminate().success());
    let first_last: u64 = stat_line(&stats(&config), "last committed seq:")
        .parse()
        .unwrap();
    assert!(first_last >= d.last_seq());

    for f in ["cell.db", "cell.db-wal", "cell.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(f));
    }
    collector.clear();
    rt.start_again();
    common::cell::wait_first_device_status(&collector, &rt).await;
    let d = Delivery::of(&collector.snapshot());
    let created = &d.by_seq[&1];
    assert_eq!(created["type"], "store_created", "seq starts again at 1");
    let second_id = created["store_id"].as_str().unwrap();
    assert_ne!(second_id, first_id, "MOM can tell the stores apart");
    assert_eq!(created["data"]["previous_store_id"], first_id.as_str());
    assert_eq!(created["data"]["previous_last_seq"], first_last);
    // (store_id, seq) of the new store's events are not those of the old store's.
    assert!(d.by_seq.values().all(|e| e["store_id"] == second_id));
    assert!(rt.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_runtime_on_the_same_store_stops_with_a_clear_error() {
    let peer = ModbusPeer::start();
    let broker = Mosquitto::start();
    let collector = Collector::start(broker.port(), TOPIC_FILTER).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), peer.port(), broker.port());
    let mut first = RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()]);
    common::cell::wait_first_device_status(&collector, &first).await;
    // The second one with its own health port and client id: only the store is shared.
    let other = dir.path().join("other.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "client_id = \"mes-edge-under-test\"",
        "client_id = \"mes-edge-second\"",
    ) + &format!(
        "\n[health]\nlisten = \"127.0.0.1:{}\"\n",
        common::free_port()
    );
    std::fs::write(
        &other,
        text.replace(
            "path = \"cell.db\"",
            &format!("path = \"{}\"", dir.path().join("cell.db").display()),
        ),
    )
    .unwrap();
    let mut second = RuntimeProcess::spawn(BIN, ["run", "--config", other.to_str().unwrap()]);
    let status = second.wait_exit(Duration::from_secs(15));
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{}", second.logs());
    let err = second.stderr();
    assert!(
        err.contains("another mes-edge runtime has this store open")
            && err.contains(&format!("pid {}", first.pid().unwrap())),
        "{err}"
    );
    assert!(first.is_running(), "the first one runs on");
    // A second name for the same store: a symlink, and the config naming it. Refused naming
    // the holder, and the live runtime goes on committing.
    let link = dir.path().join("alias.db");
    std::os::unix::fs::symlink(dir.path().join("cell.db"), &link).unwrap();
    let aliased = dir.path().join("alias.toml");
    std::fs::write(
        &aliased,
        std::fs::read_to_string(&other)
            .unwrap()
            .replace("cell.db", "alias.db"),
    )
    .unwrap();
    let mut alias = RuntimeProcess::spawn(BIN, ["run", "--config", aliased.to_str().unwrap()]);
    let status = alias.wait_exit(Duration::from_secs(15));
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{}", alias.logs());
    let err = alias.stderr();
    assert!(
        err.contains("holds the store file itself")
            && err.contains(&format!("pid {}", first.pid().unwrap())),
        "{err}"
    );
    let mut plc = common::Plc::connect(peer.port(), 1).await;
    plc.write_u32(common::cell::GOOD, 3).await;
    assert!(
        collector
            .wait_for(
                |m| Delivery::of(m).parts("good") == 3,
                Duration::from_secs(15)
            )
            .await,
        "the live runtime counts on\n{}",
        first.logs()
    );
    Delivery::of(&collector.snapshot()).assert_gap_free();
    assert!(first.terminate().success());
    // Once the first is gone (even killed), the store is free.
    // "running" is logged once the store is held and the cell started.
    let mut third = RuntimeProcess::spawn(BIN, ["run", "--config", other.to_str().unwrap()]);
    let started = third
        .wait_for_output("running", Duration::from_secs(15))
        .await;
    assert!(started && third.is_running(), "{}", third.logs());
    third.kill9();
    let mut fourth = RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()]);
    let started = fourth
        .wait_for_output("running", Duration::from_secs(15))
        .await;
    assert!(
        started && fourth.is_running(),
        "a lock dies with its holder\n{}",
        fourth.logs()
    );
    assert!(fourth.terminate().success());
}
