//! S8's MOM: subscribed on both brokers of the cells' list, each with a persistent session at
//! QoS 1, as docs/OPERATIONS.md advises for independent brokers. It keeps every copy it
//! receives (which broker, when, the event's id, cell, seq, ts, part quantity); what MOM makes
//! of them (de-duplicated on `event_id`, parts per cell, seq gaps, latency, failover) is
//! [`tally`], kept apart so that it can be checked on its own.

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The topics of the plant's cells: `mes/bench/site/area/line/<cell>/...`.
pub const ROOT: &str = "mes/bench/site/area/line";

/// One copy of an event as MOM received it.
#[derive(Debug, Clone)]
pub struct Copy {
    /// Which of MOM's subscribers (the brokers' order in the cells' list).
    pub broker: usize,
    pub recv_ns: i64,
    pub cell: String,
    pub event_id: String,
    pub seq: u64,
    pub ts_ms: i64,
    /// Good parts a part_count event carries; 0 for any other event.
    pub parts: u64,
}

#[derive(Default)]
struct Inner {
    copies: Vec<Copy>,
    /// Per broker, the cells whose retained status there says `online`.
    online: Vec<HashSet<String>>,
    subscribed: Vec<bool>,
}

pub struct Mom {
    inner: Arc<Mutex<Inner>>,
    stop: Arc<AtomicBool>,
}

#[derive(Deserialize)]
struct Msg {
    event_id: String,
    seq: u64,
    ts: i64,
    #[serde(rename = "type")]
    kind: String,
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    counter: Option<String>,
    quantity: Option<u64>,
}

impl Mom {
    pub fn start(ports: &[u16]) -> Mom {
        let inner = Arc::new(Mutex::new(Inner {
            online: vec![HashSet::new(); ports.len()],
            subscribed: vec![false; ports.len()],
            ..Default::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        for (broker, &port) in ports.iter().enumerate() {
            let (inner, stop) = (inner.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("mom-{broker}"))
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime");
                    rt.block_on(subscribe(broker, port, inner, stop));
                })
                .expect("a thread");
        }
        Mom { inner, stop }
    }

    pub fn subscribed(&self) -> bool {
        self.inner.lock().unwrap().subscribed.iter().all(|s| *s)
    }

    /// How many cells say `online` on `broker`.
    pub fn online(&self, broker: usize) -> usize {
        self.inner.lock().unwrap().online[broker].len()
    }

    pub fn copies(&self) -> Vec<Copy> {
        self.inner.lock().unwrap().copies.clone()
    }

    /// Parts MOM has counted so far (de-duplicated).
    pub fn parts(&self) -> u64 {
        let inner = self.inner.lock().unwrap();
        let mut seen = HashSet::new();
        inner
            .copies
            .iter()
            .filter(|c| seen.insert(c.event_id.as_str()))
            .map(|c| c.parts)
            .sum()
    }
}

impl Drop for Mom {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

async fn subscribe(broker: usize, port: u16, inner: Arc<Mutex<Inner>>, stop: Arc<AtomicBool>) {
    let id = format!("s8-mom-{broker}-{}", std::process::id());
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_clean_session(false);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    while !stop.load(Ordering::Relaxed) {
        let ev = tokio::select! {
            ev = eventloop.poll() => ev,
            _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
        };
        match ev {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                for f in ["+/events/#", "+/status"] {
                    let _ = client.try_subscribe(format!("{ROOT}/{f}"), QoS::AtLeastOnce);
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                inner.lock().unwrap().subscribed[broker] = true
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let recv_ns = crate::load_server::unix_ns();
                let Some(rest) = p.topic.strip_prefix(ROOT).and_then(|t| t.strip_prefix('/'))
                else {
                    continue;
                };
                let cell = rest.split('/').next().unwrap_or_default().to_string();
                let mut inner = inner.lock().unwrap();
                if rest.ends_with("/status") {
                    if p.payload.as_ref() == b"online" {
                        inner.online[broker].insert(cell);
                    } else {
                        inner.online[broker].remove(&cell);
                    }
                    continue;
                }
                let Ok(m) = serde_json::from_slice::<Msg>(&p.payload) else {
                    continue;
                };
                let parts = match (&m.kind[..], &m.data) {
                    ("part_count", Some(d)) if d.counter.as_deref() == Some("good") => {
                        d.quantity.unwrap_or(0)
                    }
                    _ => 0,
                };
                inner.copies.push(Copy {
                    broker,
                    recv_ns,
                    cell,
                    event_id: m.event_id,
                    seq: m.seq,
                    ts_ms: m.ts,
                    parts,
                });
            }
            Ok(_) => {}
            // The killed broker: MOM keeps asking, as a real subscriber would.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Writes every copy MOM received as CSV (broker, recv_ns, cell, event_id, seq, ts_ms, parts),
/// for looking into a run afterwards.
pub fn dump(path: &std::path::Path, copies: &[Copy]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(f, "broker,recv_ns,cell,event_id,seq,ts_ms,parts")?;
    for c in copies {
        writeln!(
            f,
            "{},{},{},{},{},{},{}",
            c.broker, c.recv_ns, c.cell, c.event_id, c.seq, c.ts_ms, c.parts
        )?;
    }
    f.flush()
}

/// What MOM made of one cell's events.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CellTally {
    pub parts: u64,
    /// Copies dropped because their `event_id` had been received already.
    pub duplicates: u64,
    /// Sequence numbers missing below the highest received.
    pub seq_missing: u64,
    /// Event's ts -> MOM's receipt of its first copy, ms, for events made before `steady_until`.
    pub latency_ms: Vec<f64>,
    /// The kill -> the first copy via the standby of an event MOM had not had before, s.
    pub failover_s: Option<f64>,
}

/// MOM's view, per cell, of every copy received; `kill_ns`: when the active broker was killed,
/// `steady_until_ns`: the end of the steady state whose latency is measured (an event made just
/// before the kill waits for the failover), `standby`: MOM's subscriber on the standby.
pub fn tally(
    copies: &[Copy],
    kill_ns: i64,
    steady_until_ns: i64,
    standby: usize,
) -> BTreeMap<String, CellTally> {
    let mut by_cell: HashMap<&str, Vec<&Copy>> = HashMap::new();
    for c in copies {
        by_cell.entry(&c.cell).or_default().push(c);
    }
    let mut out = BTreeMap::new();
    for (cell, mut cs) in by_cell {
        cs.sort_by_key(|c| c.recv_ns);
        let mut t = CellTally::default();
        let mut seen = HashSet::new();
        let mut seqs = HashSet::new();
        let before_kill = cs
            .iter()
            .filter(|c| c.recv_ns < kill_ns)
            .map(|c| c.seq)
            .max()
            .unwrap_or(0);
        for c in &cs {
            if !seen.insert(c.event_id.as_str()) {
                t.duplicates += 1;
                continue;
            }
            seqs.insert(c.seq);
            t.parts += c.parts;
            if c.ts_ms * 1_000_000 < steady_until_ns {
                t.latency_ms
                    .push((c.recv_ns - c.ts_ms * 1_000_000) as f64 / 1e6);
            }
            if t.failover_s.is_none()
                && c.broker == standby
                && c.recv_ns >= kill_ns
                && c.seq > before_kill
            {
                t.failover_s = Some((c.recv_ns - kill_ns) as f64 / 1e9);
            }
        }
        let top = seqs.iter().copied().max().unwrap_or(0);
        t.seq_missing = top - seqs.len() as u64;
        out.insert(cell.to_string(), t);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(broker: usize, recv_ms: i64, cell: &str, id: &str, seq: u64, ts_ms: i64) -> Copy {
        Copy {
            broker,
            recv_ns: recv_ms * 1_000_000,
            cell: cell.into(),
            event_id: id.into(),
            seq,
            ts_ms,
            parts: 1,
        }
    }

    #[test]
    fn mom_counts_each_event_once_and_times_the_failover_by_the_first_new_event() {
        let kill_ms = 1_000;
        let copies = vec![
            copy(0, 110, "c1", "a", 1, 100),
            copy(0, 220, "c1", "b", 2, 200),
            // The standby gets the resend window again, then what was made meanwhile.
            copy(1, 3_500, "c1", "a", 1, 100),
            copy(1, 3_500, "c1", "b", 2, 200),
            copy(1, 3_600, "c1", "d", 4, 2_000),
            // Made just before the kill, delivered after the failover: not steady state.
            copy(1, 3_550, "c1", "e", 5, 950),
            copy(0, 150, "c2", "x", 1, 140),
        ];
        let t = tally(&copies, kill_ms * 1_000_000, 500 * 1_000_000, 1);
        let c1 = &t["c1"];
        assert_eq!(c1.parts, 4);
        assert_eq!(c1.duplicates, 2);
        assert_eq!(c1.seq_missing, 1, "seq 3 never arrived");
        assert_eq!(c1.failover_s, Some(2.55));
        assert_eq!(c1.latency_ms, vec![10.0, 20.0]);
        assert_eq!(t["c2"].failover_s, None);
        assert_eq!(t["c2"].seq_missing, 0);
    }
}
