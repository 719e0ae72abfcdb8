//! The pass criteria, checked against the store's outbox and what MOM's collector received:
//! every committed event reached the broker, sequences are gap-free, duplicates are identical
//! re-sends, the part counts equal what the machine made, every command got its reply, and no
//! duration went negative whatever the clock did.

use crate::common::cell::Delivery;
use crate::plant::Plant;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// What a scenario measured; one line of RELIABILITY.md's table.
#[derive(Clone)]
pub struct Report {
    pub scenario: &'static str,
    pub cycles: u64,
    pub faults: u64,
    pub events: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub good: u64,
    pub scrap: u64,
    pub max_rss_kb: u64,
    pub seed: Option<u64>,
    /// Every event MOM received, first copies, in sequence order.
    pub delivered: Vec<Value>,
}

impl Report {
    pub fn of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.delivered.iter().filter(move |e| e["type"] == kind)
    }
}

impl Report {
    pub fn print(&self, elapsed: Duration) {
        println!(
            "FAULT-SUITE | {} | {} | {} | {} | {} | {} | {}+{} | {} MB | {} | {:.0} s |",
            self.scenario,
            self.cycles,
            self.faults,
            self.events,
            self.lost,
            self.duplicates,
            self.good,
            self.scrap,
            self.max_rss_kb / 1024,
            self.seed.map_or("-".into(), |s| s.to_string()),
            elapsed.as_secs_f64()
        );
    }
}

/// The store's outbox as committed: seq → payload.
pub fn committed(store: &std::path::Path) -> (u64, BTreeMap<u64, Vec<u8>>) {
    let conn = Connection::open_with_flags(store, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .unwrap_or_else(|e| panic!("open {}: {e}", store.display()));
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let last: i64 = conn
        .query_row("SELECT last_seq FROM cell_state WHERE id = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    let mut stmt = conn
        .prepare("SELECT seq, payload FROM outbox ORDER BY seq")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, Vec<u8>>(1)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    (last as u64, rows)
}

/// The store and the broker as one moment saw them. The broker's messages are taken before the
/// store is read, so everything the broker has was committed by then: the runtime, still running,
/// may commit and deliver another event (a state change, a periodic OEE) while the criteria are
/// checked, and a broker snapshot taken after the store read would be ahead of it.
pub struct Verdict {
    last_seq: u64,
    rows: BTreeMap<u64, Vec<u8>>,
    msgs: Vec<crate::common::Received>,
}

impl Verdict {
    /// Waits until MOM has every committed event and the machine's parts, or `timeout`.
    pub async fn wait_for_delivery(
        plant: &Plant,
        good: u64,
        scrap: u64,
        timeout: Duration,
    ) -> Verdict {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let msgs = plant.collector.snapshot();
            let (last_seq, rows) = committed(plant.store_path());
            let d = Delivery::of(&msgs);
            let all_there = rows.keys().all(|s| d.by_seq.contains_key(s));
            let counted = d.parts("good") == good && d.parts("scrap") == scrap;
            if (all_there && counted && d.last_seq() == last_seq)
                || std::time::Instant::now() > deadline
            {
                return Verdict {
                    last_seq,
                    rows,
                    msgs,
                };
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    pub fn check(
        &self,
        plant: &Plant,
        good: u64,
        scrap: u64,
        cycles: u64,
        seed: Option<u64>,
    ) -> Report {
        let name = plant.name;
        let msgs = &self.msgs;
        // Panics if a sequence number arrived twice with different bytes.
        let d = Delivery::of(msgs);
        let lost: Vec<u64> = self
            .rows
            .keys()
            .copied()
            .filter(|s| !d.by_seq.contains_key(s))
            .collect();
        assert!(
            lost.is_empty(),
            "{name}: {} committed events never reached the broker: {:?}...",
            lost.len(),
            &lost[..lost.len().min(20)]
        );
        for (seq, payload) in &self.rows {
            let stored: Value = serde_json::from_slice(payload).unwrap();
            assert_eq!(
                d.by_seq[seq], stored,
                "{name}: seq {seq} arrived other than committed"
            );
        }
        d.assert_gap_free();
        assert_eq!(
            d.last_seq(),
            self.last_seq,
            "{name}: the broker has the last committed event"
        );
        assert_eq!(
            (d.parts("good"), d.parts("scrap")),
            (good, scrap),
            "{name}: parts delivered vs parts the machine made"
        );
        for correlation in plant.commands() {
            assert!(
                d.of_type("command_response")
                    .any(|e| e["data"]["correlation_id"] == correlation.as_str()),
                "{name}: no reply to command {correlation}"
            );
        }
        for e in d.by_seq.values() {
            no_negative_durations(&e["data"], e);
        }
        Report {
            scenario: name,
            cycles,
            faults: plant.faults,
            events: self.last_seq,
            lost: lost.len() as u64,
            duplicates: d.duplicates as u64,
            good,
            scrap,
            max_rss_kb: plant.max_rss_kb.load(std::sync::atomic::Ordering::SeqCst),
            seed,
            delivered: d.by_seq.values().cloned().collect(),
        }
    }
}

/// Every `..._ms` number (and every number in a `..._ms` map) is a duration: never negative.
fn no_negative_durations(v: &Value, event: &Value) {
    if let Value::Object(map) = v {
        for (k, x) in map {
            if k.ends_with("_ms") {
                let numbers: Vec<&Value> = match x {
                    Value::Object(m) => m.values().collect(),
                    other => vec![other],
                };
                for n in numbers {
                    if let Some(n) = n.as_i64() {
                        assert!(n >= 0, "negative duration {k} = {n} in {event}");
                    }
                }
            }
            no_negative_durations(x, event);
        }
    }
}
