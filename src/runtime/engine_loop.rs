//! The engine's thread: driver events and commands in, committed events out. Each turn takes
//! what has arrived (in the order it happened), follows the wall clock, applies the batch,
//! commits it with the state it leaves behind, and only then answers the commands in it.

use super::clock::Clock;
use super::housekeeping::Housekeeping;
use super::values::{running, value_housekeeping};
use super::write_back::WriteQueues;
use crate::cell::{CommandIn, Engine, ProcessValues, ValueBatch, WriteOutcome};
use crate::event::{EventBody, NewEvent};
use crate::orders::Reply;
use crate::store::{StoreOwner, ValueDrops};
use mes_edge_drivers::DeviceEvent;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Driver events taken into one commit at most. Under load batches grow towards this, which is
/// what keeps one fsync per commit from capping throughput.
const MAX_BATCH: usize = 4096;
const IDLE_COMMIT: Duration = Duration::from_secs(30);
/// The wall clock moving this much more or less than the monotonic clock between two turns is
/// a step (NTP, an operator), not drift: NTP slews small corrections.
const CLOCK_STEP_MS: i64 = 1_000;
/// A commit that keeps failing while the cell stops is given up after this many attempts: the
/// PLC's counters still hold its parts for the next start.
const ATTEMPTS_AT_STOP: u32 = 5;

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
    waiting: &mut VecDeque<CommandIn>,
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

/// Everything the engine thread is handed.
pub(super) struct EngineInputs {
    pub engine: Engine,
    /// Commits and housekeeping go to the store's owner.
    pub owner: StoreOwner,
    pub devices: mpsc::Receiver<DeviceEvent>,
    /// Commands outlive one engine thread (a reload starts a new one): given back at its end.
    pub commands: mpsc::Receiver<CommandIn>,
    /// Results of writes from the drivers' write queues.
    pub written: mpsc::UnboundedReceiver<WriteOutcome>,
    pub committed: watch::Sender<u64>,
    pub store: crate::config::StoreConfig,
    pub handle: tokio::runtime::Handle,
    /// Beaten at every turn; systemd's watchdog stops being pinged when the beats stop.
    pub alive: crate::ops::Heartbeat,
    /// Accepted writes go out through these once committed.
    pub writes: WriteQueues,
    /// Process values: reported by exception here, where the running order is known.
    pub values: ProcessValues,
    pub value_probe: crate::ops::ValueProbe,
    /// The status page's last reading of each tag.
    pub tags: crate::ops::TagBoard,
    pub clock: Box<dyn Clock>,
}

/// How a turn's commit went.
enum Commit {
    /// Committed, or nothing was due.
    Done,
    /// Failed; the state is rolled back and the same batch is tried again.
    Retry,
    /// The loop ends: the reason, if it is a fault.
    Stop(Option<String>),
}

/// The engine's loop and what it carries from one turn to the next.
pub(super) struct EngineLoop {
    io: EngineInputs,
    batch: Vec<Input>,
    /// Commands that arrived after every reading taken so far.
    waiting: VecDeque<CommandIn>,
    replies: Vec<Reply>,
    events: Vec<NewEvent>,
    value_batches: Vec<ValueBatch>,
    /// Value batches wait with the batch while commits fail: each reading is taken by the
    /// values once, so a retried batch's readings (the first `observed` inputs) are not taken
    /// again.
    observed: usize,
    drops: ValueDrops,
    housekeeping: Housekeeping,
    /// A pruning step is due: carried by this turn's commit, or run alone if none is due.
    prune_due: bool,
    /// Events a step carried by a commit raised after it: committed at the next turn.
    raised: Vec<NewEvent>,
    /// The drivers are gone: the loop ends after committing what they handed in.
    closed: bool,
    failures: u32,
    last_commit: Instant,
    /// The state changed since the last commit without an event.
    dirty: bool,
    /// The clocks at the last turn: (monotonic, wall in UTC ms).
    clock: (Instant, i64),
}

impl EngineLoop {
    pub fn new(io: EngineInputs) -> EngineLoop {
        let (mono, wall) = (io.clock.mono(), io.clock.wall_ms());
        EngineLoop {
            housekeeping: Housekeeping::new(&io.store, mono),
            prune_due: false,
            raised: Vec::new(),
            io,
            batch: Vec::new(),
            waiting: VecDeque::new(),
            replies: Vec::new(),
            events: Vec::new(),
            value_batches: Vec::new(),
            observed: 0,
            drops: ValueDrops::default(),
            closed: false,
            failures: 0,
            last_commit: mono,
            dirty: false,
            clock: (mono, wall),
        }
    }

    /// Takes driver events and commands in batches, derives events, commits each batch with
    /// the state it leaves behind. A failed commit rolls the state back and retries the same
    /// batch, so a full or failing disk delays events but loses none of the parts; a fault no
    /// retry mends (a corrupt store, a broken constraint) ends the loop with its reason.
    /// Gives back the command channel and that reason.
    pub fn run(mut self) -> (mpsc::Receiver<CommandIn>, Option<String>) {
        self.io.engine.resume_at(self.clock.1, &mut self.events);
        self.io
            .engine
            .writes_left_unanswered(self.clock.1, &mut self.events);
        let fault = loop {
            match self.turn() {
                Commit::Done if self.closed => break None,
                Commit::Done | Commit::Retry => {}
                Commit::Stop(fault) => break fault,
            }
        };
        (self.io.commands, fault)
    }

    /// One turn: what has arrived, applied and committed, then answered. A retry answers
    /// nothing: the same batch is applied again at the next turn.
    fn turn(&mut self) -> Commit {
        self.io.alive.beat();
        self.gather();
        let wall = self.follow_clock();
        let before = self.io.engine.state.clone();
        self.housekeep(wall);
        self.apply_batch(wall);
        let commit = self.commit(before);
        if let Commit::Done = commit {
            self.answer();
        }
        commit
    }

    /// Waits up to the clock's idle wait (a second) for the first input when nothing is
    /// waiting, then takes what else has arrived, up to a batch.
    fn gather(&mut self) {
        let mut taken = Vec::new();
        if self.batch.is_empty() && self.waiting.is_empty() && !self.closed {
            let io = &mut self.io;
            let wait = io.clock.idle_wait();
            let first = io.handle.block_on(async {
                tokio::select! {
                    biased;
                    d = io.devices.recv() => Some(d.map(Input::Device)),
                    Some(c) = io.commands.recv() => Some(Some(Input::Command(c))),
                    Some(w) = io.written.recv() => Some(Some(Input::Written(w))),
                    _ = tokio::time::sleep(wait) => None,
                }
            });
            match first {
                Some(Some(Input::Device(ev))) => taken.push(ev),
                Some(Some(Input::Command(c))) => self.waiting.push_back(c),
                Some(Some(w @ Input::Written(_))) => self.batch.push(w),
                Some(None) => self.closed = true,
                None => {}
            }
        }
        while self.batch.len() + taken.len() < MAX_BATCH {
            match self.io.devices.try_recv() {
                Ok(ev) => taken.push(ev),
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.closed = true;
                    break;
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
            }
        }
        let more = self.batch.len() + taken.len() >= MAX_BATCH && !self.closed;
        while let Ok(c) = self.io.commands.try_recv() {
            self.waiting.push_back(c);
        }
        merge(taken, &mut self.waiting, more, &mut self.batch);
        while let Ok(w) = self.io.written.try_recv() {
            self.batch.push(Input::Written(w));
        }
    }

    /// Tells the engine of a step of the wall clock since the last turn (before the turn's
    /// `before`: a batch retried after a failed commit keeps the step's correction) and of
    /// the time now. Gives back the wall clock's time.
    fn follow_clock(&mut self) -> i64 {
        let (mono, wall) = (self.io.clock.mono(), self.io.clock.wall_ms());
        let step = wall - self.clock.1 - mono.duration_since(self.clock.0).as_millis() as i64;
        if step.abs() >= CLOCK_STEP_MS {
            tracing::warn!(
                step_ms = step,
                "the clock stepped; durations go on by the monotonic clock"
            );
            self.io.engine.clock_stepped(step);
            self.dirty = true;
        }
        self.clock = (mono, wall);
        self.io.engine.set_now(wall);
        wall
    }

    /// Housekeeping due at this turn: the values' age now; the outbox's pruning step goes with
    /// the turn's commit (see [`EngineLoop::commit`]). What an earlier turn's step raised (a
    /// store alarm) goes into this turn's events.
    fn housekeep(&mut self, wall: i64) {
        self.events.append(&mut self.raised);
        let mono = self.clock.0;
        if !self.housekeeping.due(mono) {
            return;
        }
        self.prune_due = true;
        let io = &mut self.io;
        if !io.values.is_empty() {
            self.events.extend(value_housekeeping(
                &io.owner,
                &io.store,
                &mut self.drops,
                &io.value_probe,
                wall,
            ));
        }
    }

    /// Applies the batch from its start (a batch retried after a failed commit too: the state
    /// was rolled back to before it); then its readings credit time up to when they were
    /// taken, the tick from there to now.
    fn apply_batch(&mut self, wall: i64) {
        let io = &mut self.io;
        let engine = &mut io.engine;
        for (i, input) in self.batch.iter().enumerate() {
            match input {
                Input::Device(ev) => {
                    io.tags.observe(ev);
                    engine.apply(ev, &mut self.events);
                    let fresh = i >= self.observed && !io.values.is_empty();
                    if let (true, DeviceEvent::Samples { samples, .. }) = (fresh, ev) {
                        let now = running(engine);
                        samples.iter().for_each(|s| io.values.observe(s, &now));
                    }
                }
                Input::Command(c) => {
                    let first = self.events.len();
                    self.replies.push(engine.command_in(c, &mut self.events));
                    for e in &mut self.events[first..] {
                        e.user.clone_from(&c.user);
                    }
                }
                Input::Written(w) => engine.write_done(w, &mut self.events),
            }
        }
        engine.tick(wall, &mut self.events);
        engine.order_write_back();
        self.observed = self.batch.len();
        if !io.values.is_empty() {
            io.values.due(wall, &running(engine));
            self.value_batches.extend(io.values.take(wall));
        }
    }

    /// Commits the turn if it is due. A turn that produced no event only moved time accounts
    /// or baselines: that is committed at most every IDLE_COMMIT, to spare the disk a write a
    /// second for years. A crash loses at most that much time attribution, never a part or an
    /// event.
    fn commit(&mut self, before: crate::cell::CellState) -> Commit {
        let io = &mut self.io;
        self.dirty |= io.engine.state != before;
        let due = !self.events.is_empty()
            || !self.value_batches.is_empty()
            || io.engine.has_writes()
            || (self.dirty
                && (self.closed || self.clock.0.duration_since(self.last_commit) >= IDLE_COMMIT));
        let (mono, wall) = self.clock;
        // A pruning step due rides in the commit; it runs alone on a turn with nothing to
        // commit, and while commits fail (it would fail with them, and its store alarm is
        // what says the store is full).
        let mut step =
            std::mem::take(&mut self.prune_due).then(|| self.housekeeping.step_due(wall));
        if step.is_some() && (!due || self.failures > 0) {
            step = None;
            let ev = self.housekeeping.step(&io.owner, &io.alive, mono, wall);
            // Committed with this turn's batch if there is one, else at the next turn.
            match due {
                true => self.events.extend(ev),
                false => self.raised.extend(ev),
            }
        }
        if !due {
            return Commit::Done;
        }
        let now = io.clock.wall_ms();
        let (events, values) = (
            std::mem::take(&mut self.events),
            std::mem::take(&mut self.value_batches),
        );
        let state = io.engine.state.clone();
        let result = match io.owner.commit(events, values, state, now, step) {
            Ok(c) => {
                (self.events, self.value_batches) = (c.events, c.values);
                // A step rolled back with a failed commit is due again at the next turn.
                if let (Ok(_), Some((st, stats))) = (&c.result, c.step) {
                    let ev = self
                        .housekeeping
                        .done(Ok((st, stats)), &io.alive, mono, wall);
                    self.raised.extend(ev);
                }
                c.result
            }
            // The owner is gone: the batch is not committed, and no later one will be.
            Err(e) => Err(e),
        };
        let io = &mut self.io;
        match result {
            Ok(c) => {
                self.values_committed();
                let io = &mut self.io;
                self.last_commit = self.clock.0;
                self.dirty = false;
                io.committed.send_replace(c.last_seq);
                for w in io.engine.take_writes() {
                    io.writes.push(w);
                }
                self.failures = 0;
                io.alive.committed();
                Commit::Done
            }
            Err(e) if e.is_permanent() => {
                tracing::error!("the store refused the commit for good, stopping: {e}");
                io.alive.commit_failed(&e.to_string());
                Commit::Stop(Some(e.to_string()))
            }
            Err(e) => {
                self.failures += 1;
                let failures = self.failures;
                tracing::error!(failures, "commit failed, will retry the same batch: {e}");
                io.alive.commit_failed(&e.to_string());
                io.engine.state = before;
                io.engine.take_writes();
                io.engine.forget_write_back();
                // The engine makes the batch's events again; a store alarm made by
                // housekeeping is not made again, so it stays for the next attempt.
                self.events.retain(|ev| {
                    matches!(
                        ev.body,
                        EventBody::StoreAlarm { .. } | EventBody::ValuesDropped { .. }
                    )
                });
                self.replies.clear();
                if self.closed && failures >= ATTEMPTS_AT_STOP {
                    tracing::error!(
                        "stopping with an uncommitted batch; the PLC counters still hold its parts"
                    );
                    return Commit::Stop(None);
                }
                std::thread::sleep(Duration::from_secs(1));
                Commit::Retry
            }
        }
    }

    /// After a commit with value batches: the probe hears of them and the values' cap is kept.
    fn values_committed(&mut self) {
        if self.value_batches.is_empty() {
            return;
        }
        let io = &mut self.io;
        io.value_probe.committed(
            self.value_batches
                .iter()
                .map(|b| b.values.len() as u64)
                .sum(),
        );
        self.value_batches.clear();
        let cap = io.store.values_max_count;
        match io.owner.run(move |o| o.cap_values(cap)) {
            Ok(d) if !d.is_empty() => {
                io.value_probe.dropped(&d);
                self.drops.add(d);
            }
            Ok(_) => {}
            Err(e) => tracing::error!("capping process values: {e}"),
        }
    }

    /// Committed: now the senders of commands may learn their replies.
    fn answer(&mut self) {
        let mut replies = self.replies.drain(..);
        for input in self.batch.drain(..) {
            if let Input::Command(c) = input {
                let reply = replies.next().expect("a reply per command");
                if let Some(done) = c.done {
                    done(&reply);
                }
            }
        }
        drop(replies);
        self.observed = 0;
        self.events.clear();
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
        let config = crate::config::test_cell("", "");
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

    /// An engine loop on a store in `dir`, driven turn by turn on a clock the test moves.
    struct Rig {
        lp: EngineLoop,
        clock: super::super::clock::ManualClock,
        devices: mpsc::Sender<DeviceEvent>,
        commands: mpsc::Sender<CommandIn>,
        ops: crate::ops::Ops,
        store: std::path::PathBuf,
        _rt: tokio::runtime::Runtime,
        _dir: tempfile::TempDir,
    }

    impl Rig {
        fn new() -> Rig {
            let dir = tempfile::tempdir().unwrap();
            let store = dir.path().join("cell.db");
            let config = crate::config::test_cell("", "");
            // Multi-thread: `Handle::block_on` (the loop's wait) drives no timer on a
            // current-thread runtime; a worker does.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_time()
                .build()
                .unwrap();
            let ops = crate::ops::Ops::with_notifier(&config, None);
            let clock = super::super::clock::ManualClock::new(mes_edge_drivers::now_ms());
            let (devices, device_rx) = mpsc::channel(64);
            let (commands, command_rx) = mpsc::channel(64);
            let (written_tx, written) = mpsc::unbounded_channel();
            let outbox =
                crate::store::Outbox::open(&store, crate::config::Synchronous::Normal, "e/s/a/l/c")
                    .unwrap();
            let inputs = EngineInputs {
                engine: Engine::new(CellModel::from_config(&config), CellState::default()),
                owner: StoreOwner::start(outbox).unwrap(),
                devices: device_rx,
                commands: command_rx,
                written,
                committed: watch::channel(0).0,
                store: config.store.clone(),
                writes: WriteQueues::start(&Default::default(), written_tx, rt.handle()),
                handle: rt.handle().clone(),
                alive: ops.engine().clone(),
                values: ProcessValues::new(config.values.clone()),
                value_probe: ops.values().clone(),
                tags: ops.tags().clone(),
                clock: Box::new(clock.clone()),
            };
            Rig {
                lp: EngineLoop::new(inputs),
                clock,
                devices,
                commands,
                ops,
                store,
                _rt: rt,
                _dir: dir,
            }
        }

        /// A reading of the good counter taken now, by the loop's clock, and a turn.
        fn read(&mut self, good: u64) {
            let now = self.clock.wall_ms();
            self.devices.try_send(reading(good, now)).unwrap();
            self.turn();
        }

        fn command(&mut self, json: &str) {
            let mut c = CommandIn::new(json.as_bytes().to_vec(), CommandSource::Mqtt);
            c.received_ms = self.clock.wall_ms();
            self.commands.try_send(c).unwrap();
            self.turn();
        }

        fn turn(&mut self) {
            assert!(matches!(self.lp.turn(), Commit::Done));
        }

        /// The cell state as committed, read on a connection of its own.
        fn committed(&self) -> CellState {
            let conn = crate::store::live::open_read_only(&self.store).unwrap();
            crate::store::live::cell_state(&conn).unwrap()
        }

        fn order_time(state: &CellState) -> i64 {
            state.orders.get("WO-1").unwrap().times.values().sum()
        }
    }

    const START: &str = r#"{"correlation_id":"1","command":"store_and_start","order":{"id":"WO-1","material":"M"}}"#;

    /// Steps of the wall clock between turns (two hours forward, one back) are told from time
    /// passing by the monotonic clock: the order is credited the minute that passed.
    #[test]
    fn in_virtual_time_clock_steps_credit_the_order_only_the_time_that_passed() {
        let mut rig = Rig::new();
        rig.read(100);
        rig.command(START);
        for _ in 0..20 {
            rig.clock.advance(Duration::from_secs(1));
            rig.read(100);
        }
        rig.clock.step_wall(2 * 3_600_000);
        for _ in 0..20 {
            rig.clock.advance(Duration::from_secs(1));
            rig.read(100);
        }
        rig.clock.step_wall(-3_600_000);
        for _ in 0..20 {
            rig.clock.advance(Duration::from_secs(1));
            rig.read(100);
        }
        let time = Rig::order_time(&rig.lp.io.engine.state);
        assert!(
            (59_000..=60_000).contains(&time),
            "60 s passed, {time} ms credited"
        );
    }

    /// A turn that only moves time accounts is committed at most every IDLE_COMMIT (30 s): the
    /// disk is spared a write a second for years. A part is committed at once.
    #[test]
    fn in_virtual_time_time_alone_is_committed_every_30_s_and_a_part_at_once() {
        let mut rig = Rig::new();
        rig.read(100);
        rig.command(START);
        let at_start = Rig::order_time(&rig.committed());
        for s in 1..30 {
            rig.clock.advance(Duration::from_secs(1));
            rig.read(100);
            assert_eq!(
                Rig::order_time(&rig.committed()),
                at_start,
                "{s} s: nothing committed for time alone"
            );
        }
        rig.clock.advance(Duration::from_secs(1));
        rig.read(100);
        assert_eq!(Rig::order_time(&rig.committed()), at_start + 30_000);
        rig.clock.advance(Duration::from_secs(1));
        rig.read(101);
        let state = rig.committed();
        assert_eq!(
            (state.good_total, Rig::order_time(&state)),
            (1, at_start + 31_000)
        );
    }

    /// Housekeeping runs a step every 10 s when it finds nothing to do, whatever the turns.
    #[test]
    fn in_virtual_time_housekeeping_steps_every_10_s_when_idle() {
        let mut rig = Rig::new();
        for _ in 0..=35 {
            rig.turn();
            rig.clock.advance(Duration::from_secs(1));
        }
        let (steps, _, pruned) = rig.ops.engine().housekeeping();
        assert_eq!((steps, pruned), (4, 0), "at 0, 10, 20 and 30 s");
    }

    /// The engine far behind: 20 readings queued, one part each, and a stop that arrived
    /// while the 10th was being taken. The parts after the stop are not the order's.
    #[test]
    fn a_backlog_never_credits_parts_made_after_a_stop_to_the_stopped_order() {
        let config = crate::config::test_cell("", "");
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
