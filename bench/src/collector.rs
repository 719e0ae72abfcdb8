//! The collector: MOM's side of every scenario. It subscribes with QoS 1 (so the broker queues
//! rather than drops what it has not taken yet), timestamps each message on arrival and keeps
//! the few fields the figures need: an event's `seq`, `ts` and counter, or a peer's tag and
//! value. It runs on its own thread with its own small runtime.

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde::Deserialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Rec {
    pub recv_ns: i64,
    pub seq: Option<u64>,
    pub ts_ms: Option<i64>,
    /// The counter of a part_count event (good, scrap) or the tag of a peer's message.
    pub tag: Option<String>,
    /// A part_count event's counter value, or a peer's value.
    pub value: Option<f64>,
    pub kind: Option<String>,
    /// Process values in the message (a value batch's `values`); 0 for anything else.
    pub values: usize,
}

#[derive(Deserialize)]
struct Msg<'a> {
    seq: Option<u64>,
    ts: Option<i64>,
    #[serde(rename = "type", borrow)]
    kind: Option<&'a str>,
    data: Option<Data>,
    #[serde(borrow)]
    tag: Option<&'a str>,
    value: Option<f64>,
    values: Option<Vec<serde::de::IgnoredAny>>,
}

#[derive(Deserialize)]
struct Data {
    counter_value: Option<u64>,
    counter: Option<String>,
}

#[derive(Default)]
struct Inner {
    recs: Vec<Rec>,
    kinds: std::collections::HashMap<String, usize>,
    subscribed: bool,
}

pub struct Collector {
    inner: Arc<Mutex<Inner>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Collector {
    /// Connects to the broker on `port`, subscribes to `filter`, and collects until dropped.
    /// `session`: a client id whose session the broker keeps across a restart of its own.
    pub fn start(port: u16, filter: &str, session: Option<&str>) -> Collector {
        let c = Collector {
            inner: Default::default(),
            stop: Default::default(),
        };
        let (inner, stop, filter) = (c.inner.clone(), c.stop.clone(), filter.to_string());
        let id = session.map_or_else(
            || format!("bench-collector-{}", std::process::id()),
            str::to_string,
        );
        let persistent = session.is_some();
        std::thread::Builder::new()
            .name("collector".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(run(port, id, persistent, filter, inner, stop));
            })
            .unwrap();
        c
    }

    pub fn wait_subscribed(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        while !self.inner.lock().unwrap().subscribed {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the collector did not subscribe"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap().recs.len()
    }

    /// Messages so far of an event type (`part_count`), or `status` for the cell's status.
    pub fn len_of_kind(&self, kind: &str) -> usize {
        self.inner
            .lock()
            .unwrap()
            .kinds
            .get(kind)
            .copied()
            .unwrap_or(0)
    }

    /// Takes everything collected so far.
    pub fn take(&self) -> Vec<Rec> {
        let mut inner = self.inner.lock().unwrap();
        inner.kinds.clear();
        std::mem::take(&mut inner.recs)
    }

    pub fn snapshot_first(&self) -> Option<Rec> {
        self.inner.lock().unwrap().recs.first().cloned()
    }

    /// Whether anything collected so far is `f`.
    pub fn saw(&self, f: impl Fn(&Rec) -> bool) -> bool {
        self.inner.lock().unwrap().recs.iter().any(f)
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

async fn run(
    port: u16,
    id: String,
    persistent: bool,
    filter: String,
    inner: Arc<Mutex<Inner>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_clean_session(!persistent);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let ev = tokio::select! {
            ev = eventloop.poll() => ev,
            _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
        };
        match ev {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                let _ = client.try_subscribe(filter.clone(), QoS::AtLeastOnce);
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => inner.lock().unwrap().subscribed = true,
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let recv_ns = crate::load_server::unix_ns();
                let rec = match serde_json::from_slice::<Msg>(&p.payload) {
                    Ok(m) => {
                        let (tag, value) = match m.data {
                            Some(d) => (d.counter, d.counter_value.map(|v| v as f64)),
                            None => (m.tag.map(str::to_string), m.value),
                        };
                        Rec {
                            recv_ns,
                            seq: m.seq,
                            ts_ms: m.ts,
                            tag,
                            value,
                            kind: m.kind.map(str::to_string),
                            values: m.values.map_or(0, |v| v.len()),
                        }
                    }
                    // The retained status (`online`) and anything else that is not JSON.
                    Err(_) => Rec {
                        recv_ns,
                        seq: None,
                        ts_ms: None,
                        tag: Some(String::from_utf8_lossy(&p.payload).into_owned()),
                        value: None,
                        kind: Some("status".into()),
                        values: 0,
                    },
                };
                let mut inner = inner.lock().unwrap();
                if let Some(k) = &rec.kind {
                    *inner.kinds.entry(k.clone()).or_default() += 1;
                }
                inner.recs.push(rec);
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Checks that the events' sequence numbers are exactly `1..=last`: returns (distinct, missing,
/// duplicates).
pub fn check_sequence(recs: &[Rec], last: u64) -> (u64, u64, u64) {
    let mut seen = vec![false; last as usize + 1];
    let (mut distinct, mut dups) = (0u64, 0u64);
    for s in recs.iter().filter_map(|r| r.seq) {
        if s == 0 || s > last {
            continue;
        }
        if seen[s as usize] {
            dups += 1;
        } else {
            seen[s as usize] = true;
            distinct += 1;
        }
    }
    (distinct, last - distinct, dups)
}

/// Writes what the collector received as CSV (recv_ns, seq, ts_ms, kind, tag, value), for
/// looking into a run afterwards.
pub fn dump(path: &std::path::Path, recs: &[Rec]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(f, "recv_ns,seq,ts_ms,kind,tag,value")?;
    let o = |v: Option<String>| v.unwrap_or_default();
    for r in recs {
        writeln!(
            f,
            "{},{},{},{},{},{}",
            r.recv_ns,
            o(r.seq.map(|v| v.to_string())),
            o(r.ts_ms.map(|v| v.to_string())),
            o(r.kind.clone()),
            o(r.tag.clone()),
            o(r.value.map(|v| v.to_string()))
        )?;
    }
    f.flush()
}
