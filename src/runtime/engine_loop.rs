//! The engine's thread: driver events and commands in, committed events out.

use super::values::{running, value_housekeeping};
use crate::cell::{CommandIn, Engine, ProcessValues, ValueBatch, WriteOutcome};
use crate::event::{AlarmLevel, EventBody, NewEvent};
use crate::orders::Reply;
use crate::store::{Outbox, PrunePass, ValueDrops};
use mes_edge_drivers::{now_ms, DeviceEvent};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Driver events taken into one commit at most. Under load batches grow towards this, which is
/// what keeps one fsync per commit from capping throughput.
const MAX_BATCH: usize = 4096;
const HOUSEKEEPING: Duration = Duration::from_secs(10);
/// What one housekeeping step may spend deleting before it commits: the engine waits for it,
/// and the step with its commit stays under 10 ms (issue 14).
const HOUSEKEEPING_BUDGET: Duration = Duration::from_millis(4);
const IDLE_COMMIT: Duration = Duration::from_secs(30);
/// The wall clock moving this much more or less than the monotonic clock between two turns is
/// a step (NTP, an operator), not drift: NTP slews small corrections.
const CLOCK_STEP_MS: i64 = 1_000;

enum Input {
    Device(DeviceEvent),
    Command(CommandIn),
    /// A write's result from its driver's queue.
    Written(WriteOutcome),
}

/// When a driver event was taken, by the runtime's clock.
fn taken_ms(ev: &DeviceEvent) -> i64 {
    match ev {
        DeviceEvent::Samples { samples, .. } => samples.first().map_or(i64::MIN, |s| s.ts_ms),
        DeviceEvent::Status { ts_ms, .. } => *ts_ms,
    }
}

/// Appends `devices` (in the order the drivers sent them) and the waiting commands to `batch`
/// in the order they happened: a command goes after the readings taken before it arrived and
/// before those taken after. A command newer than every reading stays waiting while more
/// readings may be queued (`more`), so that a backlog of readings taken before a stop is
/// never credited after it, and readings taken after a stop never before it.
fn merge(
    devices: Vec<DeviceEvent>,
    waiting: &mut std::collections::VecDeque<CommandIn>,
    more: bool,
    batch: &mut Vec<Input>,
) {
    for ev in devices {
        let taken = taken_ms(&ev);
        while waiting.front().is_some_and(|c| c.received_ms < taken) {
            batch.push(Input::Command(waiting.pop_front().expect("front")));
        }
        batch.push(Input::Device(ev));
    }
    if !more {
        batch.extend(waiting.drain(..).map(Input::Command));
    }
}

/// The engine's thread: takes driver events and commands in batches, derives events, commits
/// each batch with the state it leaves behind. A failed commit rolls the state back and retries
/// the same batch, so a full or failing disk delays events but loses none of the parts.
// The engine thread's whole world is handed in here; issue 13 gathers it into one inbox.
#[allow(clippy::too_many_arguments)]
pub fn engine_loop(
    mut engine: Engine,
    mut outbox: Outbox,
    mut devices: mpsc::Receiver<DeviceEvent>,
    // Borrowed: commands outlive one engine thread (a reload starts a new one).
    commands: &mut mpsc::Receiver<CommandIn>,
    committed: watch::Sender<u64>,
    store: crate::config::StoreConfig,
    handle: tokio::runtime::Handle,
    // Beaten at every turn; systemd's watchdog stops being pinged when the beats stop.
    alive: crate::ops::Heartbeat,
    // Accepted writes go out through these once committed; their results come back on
    // `written`.
    writes: super::write_back::WriteQueues,
    written: &mut mpsc::UnboundedReceiver<WriteOutcome>,
    // Process values: reported by exception here, where the running order is known.
    mut values: ProcessValues,
    value_probe: crate::ops::ValueProbe,
    // The status page's last reading of each tag.
    tags: crate::ops::TagBoard,
) {
    let cap_bytes = store.max_size_mb.saturating_mul(1 << 20);
    let retention_ms = store.retention_hours.saturating_mul(3_600_000) as i64;
    let mut batch: Vec<Input> = Vec::new();
    let mut waiting = std::collections::VecDeque::new();
    let mut taken = Vec::new();
    let mut replies: Vec<Reply> = Vec::new();
    let mut events: Vec<NewEvent> = Vec::new();
    let mut housekeeping = Housekeeping {
        pass: PrunePass::default(),
        alarm: AlarmLevel::Cleared,
        next: Instant::now(),
        cap: cap_bytes,
        retention_ms,
        pruned: 0,
    };
    let mut closed = false;
    let mut failures = 0u32;
    let mut last_commit = Instant::now();
    let mut dirty = false;
    let mut clock = (Instant::now(), now_ms());
    let mut value_batches: Vec<ValueBatch> = Vec::new();
    // Value batches wait with the batch while commits fail: each reading is taken by the values
    // once, so a retried batch's readings (the first `observed` inputs) are not taken again.
    let mut observed = 0usize;
    let mut drops = ValueDrops::default();
    engine.resume_at(clock.1, &mut events);
    engine.writes_left_unanswered(clock.1, &mut events);
    loop {
        alive.beat();
        if batch.is_empty() && waiting.is_empty() && !closed {
            let first = handle.block_on(async {
                tokio::select! {
                    d = devices.recv() => Some(d.map(Input::Device)),
                    Some(c) = commands.recv() => Some(Some(Input::Command(c))),
                    Some(w) = written.recv() => Some(Some(Input::Written(w))),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => None,
                }
            });
            match first {
                Some(Some(Input::Device(ev))) => taken.push(ev),
                Some(Some(Input::Command(c))) => waiting.push_back(c),
                Some(Some(w @ Input::Written(_))) => batch.push(w),
                Some(None) => closed = true,
                None => {}
            }
        }
        while batch.len() + taken.len() < MAX_BATCH {
            match devices.try_recv() {
                Ok(ev) => taken.push(ev),
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
            }
        }
        let more = batch.len() + taken.len() >= MAX_BATCH && !closed;
        while let Ok(c) = commands.try_recv() {
            waiting.push_back(c);
        }
        merge(std::mem::take(&mut taken), &mut waiting, more, &mut batch);
        while let Ok(w) = written.try_recv() {
            batch.push(Input::Written(w));
        }
        // Before `before`: a batch retried after a failed commit keeps the step's correction.
        let (mono, wall) = (Instant::now(), now_ms());
        let step = wall - clock.1 - mono.duration_since(clock.0).as_millis() as i64;
        if step.abs() >= CLOCK_STEP_MS {
            tracing::warn!(
                step_ms = step,
                "the clock stepped; durations go on by the monotonic clock"
            );
            engine.clock_stepped(step);
            dirty = true;
        }
        clock = (mono, wall);
        engine.set_now(wall);
        let before = engine.state.clone();
        if Instant::now() >= housekeeping.next {
            if let Some(ev) = housekeeping.step(&mut outbox, &alive) {
                events.push(ev);
            }
            if !values.is_empty() {
                events.extend(value_housekeeping(
                    &mut outbox,
                    &store,
                    &mut drops,
                    &value_probe,
                ));
            }
        }
        // A batch retried after a failed commit is applied again from its start: the state
        // was rolled back to before it.
        for (i, input) in batch.iter().enumerate() {
            match input {
                Input::Device(ev) => {
                    tags.observe(ev);
                    engine.apply(ev, &mut events);
                    let fresh = i >= observed && !values.is_empty();
                    if let (true, DeviceEvent::Samples { samples, .. }) = (fresh, ev) {
                        let now = running(&engine);
                        samples.iter().for_each(|s| values.observe(s, &now));
                    }
                }
                Input::Command(c) => {
                    let first = events.len();
                    replies.push(engine.command_in(c, &mut events));
                    for e in &mut events[first..] {
                        e.user.clone_from(&c.user);
                    }
                }
                Input::Written(w) => engine.write_done(w, &mut events),
            }
        }
        // After the batch: its readings credit time up to when they were taken, the tick
        // from there to now.
        engine.tick(wall, &mut events);
        engine.order_write_back();
        observed = batch.len();
        if !values.is_empty() {
            values.due(wall, &running(&engine));
            value_batches.extend(values.take(wall));
        }
        // A turn that produced no event only moved time accounts or baselines: that is committed
        // at most every IDLE_COMMIT, to spare the disk a write a second for years. A crash
        // loses at most that much time attribution, never a part or an event.
        dirty |= engine.state != before;
        let due = !events.is_empty()
            || !value_batches.is_empty()
            || engine.has_writes()
            || (dirty && (closed || last_commit.elapsed() >= IDLE_COMMIT));
        if due {
            match outbox.commit_all(&events, &value_batches, &engine.state, now_ms()) {
                Ok(c) => {
                    if !value_batches.is_empty() {
                        value_probe
                            .committed(value_batches.iter().map(|b| b.values.len() as u64).sum());
                        value_batches.clear();
                        match outbox.cap_values(store.values_max_count) {
                            Ok(d) if !d.is_empty() => {
                                value_probe.dropped(&d);
                                drops.add(d);
                            }
                            Ok(_) => {}
                            Err(e) => tracing::error!("capping process values: {e}"),
                        }
                    }
                    last_commit = Instant::now();
                    dirty = false;
                    committed.send_replace(c.last_seq);
                    for w in engine.take_writes() {
                        writes.push(w);
                    }
                    failures = 0;
                    alive.committed();
                }
                Err(e) => {
                    failures += 1;
                    tracing::error!(failures, "commit failed, will retry the same batch: {e}");
                    alive.commit_failed(&e.to_string());
                    engine.state = before;
                    engine.take_writes();
                    engine.forget_write_back();
                    // The engine makes the batch's events again; a store alarm made by
                    // housekeeping is not made again, so it stays for the next attempt.
                    events.retain(|ev| {
                        matches!(
                            ev.body,
                            EventBody::StoreAlarm { .. } | EventBody::ValuesDropped { .. }
                        )
                    });
                    replies.clear();
                    if closed && failures >= 5 {
                        tracing::error!("stopping with an uncommitted batch; the PLC counters still hold its parts");
                        return;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            }
        }
        // Committed: now the senders of commands may learn their replies.
        let mut replies_iter = replies.drain(..);
        for input in batch.drain(..) {
            if let Input::Command(c) = input {
                let reply = replies_iter.next().expect("a reply per command");
                if let Some(done) = c.done {
                    done(&reply);
                }
            }
        }
        drop(replies_iter);
        observed = 0;
        events.clear();
        if closed {
            return;
        }
    }
}

/// Pruning by retention and size cap, in bounded steps, and the store alarm.
struct Housekeeping {
    pass: PrunePass,
    alarm: AlarmLevel,
    next: Instant,
    cap: u64,
    retention_ms: i64,
    /// Rows pruned by the steps of the current round, logged when it is done.
    pruned: u64,
}

impl Housekeeping {
    /// One step; raises a store alarm when the level changes. A step that leaves work behind
    /// (a store over its cap, a long retention pass) is followed by another after three times
    /// its length, so housekeeping takes at most a quarter of the engine's time while behind.
    fn step(&mut self, outbox: &mut Outbox, alive: &crate::ops::Heartbeat) -> Option<NewEvent> {
        let started = Instant::now();
        let before = now_ms() - self.retention_ms;
        let step = outbox.prune_step(&mut self.pass, before, self.cap, HOUSEKEEPING_BUDGET);
        let alarm = match step {
            Ok(_) => self.alarm(outbox),
            Err(ref e) => {
                tracing::error!("pruning the outbox: {e}");
                None
            }
        };
        let took = started.elapsed();
        let (rows, again) = match step {
            Ok(p) => (p.rows, !p.done),
            Err(_) => (0, false),
        };
        alive.housekept(took, rows);
        self.pruned += rows;
        if !again && self.pruned > 0 {
            tracing::info!(pruned = self.pruned, "pruned delivered events");
            self.pruned = 0;
        }
        self.next = Instant::now()
            + if again {
                (took * 3).max(Duration::from_millis(1))
            } else {
                HOUSEKEEPING
            };
        alarm
    }

    fn alarm(&mut self, outbox: &Outbox) -> Option<NewEvent> {
        let stats = outbox.stats().ok()?;
        let (used, cap) = (stats.used_bytes, self.cap);
        let level = if used >= cap {
            AlarmLevel::Full
        } else if used >= cap / 10 * 9 {
            AlarmLevel::Warning
        } else if used < cap / 10 * 8 {
            AlarmLevel::Cleared
        } else {
            self.alarm
        };
        if level == self.alarm {
            return None;
        }
        self.alarm = level;
        tracing::warn!(?level, used, cap, undelivered = stats.depth, "store alarm");
        let body = EventBody::StoreAlarm {
            level,
            used_bytes: used,
            cap_bytes: cap,
            undelivered: stats.depth,
        };
        Some(NewEvent::new(now_ms(), vec!["store".into()], body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell::{CellModel, CellState};
    use crate::event::EventBody;
    use crate::orders::CommandSource;
    use mes_edge_drivers::{DeviceId, Quality, Sample, TagId, Value};
    use std::collections::VecDeque;

    const CONFIG: &str = r#"
[cell]
enterprise = "e"
site = "s"
area = "a"
line = "l"
cell = "c"

[[devices]]
name = "plc"
protocol = "modbus-tcp"
host = "127.0.0.1"

[[devices.tags]]
name = "good"
table = "holding"
address = 0
type = "u32"

[signals.good_count]
tag = "good"

[store]
path = "cell.db"

[mqtt]
url = "mqtt://127.0.0.1"
"#;

    fn reading(good: u64, ts_ms: i64) -> DeviceEvent {
        DeviceEvent::Samples {
            device: DeviceId(0),
            samples: vec![Sample {
                tag: TagId(0),
                value: Some(Value::UInt(good)),
                quality: Quality::Good,
                ts_ms,
                source_ts_ms: None,
            }],
        }
    }

    fn command(json: &str, received_ms: i64) -> CommandIn {
        CommandIn {
            received_ms,
            ..CommandIn::new(json.as_bytes().to_vec(), CommandSource::Operator)
        }
    }

    /// Readings stamped before a step of the clock and applied after it (they were queued when
    /// the loop found the step) credit neither the step nor anything in the old clock's time.
    #[test]
    fn readings_stamped_before_a_clock_step_credit_no_step() {
        let config = crate::config::parse(std::path::Path::new("cell.toml"), CONFIG).unwrap();
        let mut engine = Engine::new(CellModel::from_config(&config), CellState::default());
        let mut out = Vec::new();
        let hour = 3_600_000;
        let time = |e: &Engine| -> i64 { e.state.orders.get("WO-1").unwrap().times.values().sum() };
        engine.set_now(1_000);
        let start = r#"{"correlation_id":"1","command":"store_and_start","order":{"id":"WO-1","material":"M"}}"#;
        engine.command(start.as_bytes(), CommandSource::Mqtt, 1_000, &mut out);
        engine.set_now(2_000);
        engine.apply(&reading(100, 2_000), &mut out);
        assert_eq!(time(&engine), 1_000);
        // Two hours forward; a reading taken just before the step comes after it.
        engine.clock_stepped(2 * hour);
        engine.set_now(2 * hour + 3_000);
        engine.apply(&reading(101, 2_500), &mut out);
        engine.apply(&reading(102, 2 * hour + 3_000), &mut out);
        assert_eq!(time(&engine), 2_000, "the step is not credited");
        // An hour back; a reading taken just before it, an hour ahead of the clock now.
        engine.clock_stepped(-hour);
        engine.set_now(hour + 4_000);
        engine.apply(&reading(103, 2 * hour + 3_500), &mut out);
        engine.apply(&reading(104, hour + 5_000), &mut out);
        assert_eq!(time(&engine), 3_000, "nothing beyond the loop's clock");
        // And on from there by the new clock.
        engine.set_now(hour + 5_000);
        engine.apply(&reading(104, hour + 5_000), &mut out);
        assert_eq!(time(&engine), 4_000);
    }

    /// The engine far behind: 20 readings queued, one part each, and a stop that arrived
    /// while the 10th was being taken. The parts after the stop are not the order's.
    #[test]
    fn a_backlog_never_credits_parts_made_after_a_stop_to_the_stopped_order() {
        let config = crate::config::parse(std::path::Path::new("cell.toml"), CONFIG).unwrap();
        let mut engine = Engine::new(CellModel::from_config(&config), CellState::default());
        let mut out = Vec::new();
        engine.apply(&reading(100, 1_000), &mut out);
        let start = r#"{"correlation_id":"1","command":"store_and_start","order":{"id":"WO-1","material":"M"}}"#;
        engine.command(start.as_bytes(), CommandSource::Mqtt, 1_001, &mut out);

        let backlog: Vec<DeviceEvent> = (1..=20)
            .map(|i| reading(100 + i, 1_000 + i as i64 * 100))
            .collect();
        let mut waiting = VecDeque::from([command(
            r#"{"correlation_id":"2","command":"stop","order_id":"WO-1"}"#,
            1_000 + 10 * 100 + 50,
        )]);
        // The first half of the backlog fills a batch: the stop must wait for the rest.
        let mut batch = Vec::new();
        let mut rest = backlog;
        let second = rest.split_off(10);
        merge(rest, &mut waiting, true, &mut batch);
        assert_eq!(
            waiting.len(),
            1,
            "the stop waits for the readings taken before it"
        );
        merge(second, &mut waiting, false, &mut batch);
        for input in &batch {
            match input {
                Input::Device(ev) => engine.apply(ev, &mut out),
                Input::Command(c) => {
                    engine.command(&c.payload, c.by, c.received_ms, &mut out);
                }
                Input::Written(w) => engine.write_done(w, &mut out),
            }
        }
        let on_order: u64 = out
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::PartCount {
                    quantity,
                    order_id: Some(_),
                    ..
                } => Some(*quantity),
                _ => None,
            })
            .sum();
        let no_order: u64 = out
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::PartCount {
                    quantity,
                    order_id: None,
                    ..
                } => Some(*quantity),
                _ => None,
            })
            .sum();
        assert_eq!((on_order, no_order), (10, 10));
        let response = out
            .iter()
            .find_map(|e| match &e.body {
                EventBody::JobResponse(r) => Some(r.clone()),
                _ => None,
            })
            .expect("a job response");
        assert_eq!(serde_json::to_value(&response).unwrap()["good"], 10);
    }
}
