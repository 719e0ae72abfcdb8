//! The simulated machine: it makes parts at a steady rate while running, rejects every seventh,
//! goes down with a jam now and then, and writes its counters and state word into the PLC
//! (pymodbus) the way a PLC program would. It counts what it made: that is the truth the
//! delivered part counts must equal.

use crate::common::cell::{FAULT, GOOD, SCRAP, STATE};
use crate::common::Plc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the machine's counters do besides counting up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CounterMode {
    Counting,
    /// The PLC's counter stops moving (a stuck sensor): no parts are made or counted.
    Frozen,
}

#[derive(Default)]
pub struct Made {
    pub good: AtomicU64,
    pub scrap: AtomicU64,
}

/// The PLC registers as the machine last wrote them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Registers {
    pub good: u32,
    pub scrap: u16,
    pub state: u16,
    pub fault: u16,
}

/// Control of the running machine task.
pub struct Machine {
    pub made: Arc<Made>,
    regs: Arc<Mutex<Registers>>,
    paused: Arc<AtomicBool>,
    /// True while the task is between two of its steps (safe to kill the PLC).
    idle: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    mode: Arc<Mutex<CounterMode>>,
    jump: Arc<Mutex<Option<(u32, u16)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Machine {
    /// Sets up the PLC at `port` with the counters at `start`; `resume` starts making parts,
    /// one every `cycle` while running.
    pub async fn start(port: u16, cycle: Duration, start: Registers) -> Machine {
        let mut plc = Plc::connect(port, 1).await;
        plc.write_u32(GOOD, start.good).await;
        plc.write_u16s(SCRAP, &[start.scrap, 1, 0]).await;
        let m = Machine {
            made: Arc::new(Made::default()),
            regs: Arc::new(Mutex::new(Registers {
                state: 1,
                fault: 0,
                ..start
            })),
            paused: Arc::new(AtomicBool::new(true)),
            idle: Arc::new(AtomicBool::new(true)),
            stop: Arc::new(AtomicBool::new(false)),
            mode: Arc::new(Mutex::new(CounterMode::Counting)),
            jump: Arc::new(Mutex::new(None)),
            task: tokio::spawn(async {}),
        };
        let task = tokio::spawn(run(
            plc,
            cycle,
            m.made.clone(),
            m.regs.clone(),
            m.paused.clone(),
            m.idle.clone(),
            m.stop.clone(),
            m.mode.clone(),
            m.jump.clone(),
        ));
        Machine { task, ..m }
    }

    pub fn good(&self) -> u64 {
        self.made.good.load(Ordering::SeqCst)
    }

    pub fn scrap(&self) -> u64 {
        self.made.scrap.load(Ordering::SeqCst)
    }

    pub fn registers(&self) -> Registers {
        *self.regs.lock().unwrap()
    }

    /// Stops writing to the PLC and returns once no write is under way: the PLC can then be
    /// killed without a write whose outcome nobody knows.
    pub async fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
        while !self.idle.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The task may have just passed its check: one more full step's time.
        tokio::time::sleep(Duration::from_millis(30)).await;
        while !self.idle.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }

    pub fn set_mode(&self, mode: CounterMode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// The counters jump to these values, and the state word and fault code are written again
    /// (an operator's reset, a PLC restarted and set up by its program); parts made afterwards
    /// count from there. Returns once the PLC has them.
    pub async fn jump_to(&self, good: u32, scrap: u16) {
        *self.jump.lock().unwrap() = Some((good, scrap));
        while self.jump.lock().unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        while !self.idle.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops the machine; returns what it made.
    pub async fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        let made = self.made.clone();
        let _ = self.task.await;
        (
            made.good.load(Ordering::SeqCst),
            made.scrap.load(Ordering::SeqCst),
        )
    }
}

// The fault code is written with the state word in one request, and a jump writes all five
// registers in one.
const _: () = assert!(SCRAP == GOOD + 2 && STATE == SCRAP + 1 && FAULT == STATE + 1);

#[allow(clippy::too_many_arguments)]
async fn run(
    mut plc: Plc,
    cycle: Duration,
    made: Arc<Made>,
    regs: Arc<Mutex<Registers>>,
    paused: Arc<AtomicBool>,
    idle: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    mode: Arc<Mutex<CounterMode>>,
    jump: Arc<Mutex<Option<(u32, u16)>>>,
) {
    let mut step: u64 = 0;
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(cycle).await;
        idle.store(false, Ordering::SeqCst);
        // A jump is made even while paused: the PLC program sets its registers anew, e.g. after
        // the PLC restarted.
        let jumped = jump.lock().unwrap().take();
        if let Some((g, s)) = jumped {
            let mut r = *regs.lock().unwrap();
            r.good = g;
            r.scrap = s;
            write(
                &mut plc,
                GOOD,
                &[(g >> 16) as u16, g as u16, s, r.state, r.fault],
            )
            .await;
            *regs.lock().unwrap() = r;
        }
        if paused.load(Ordering::SeqCst) {
            idle.store(true, Ordering::SeqCst);
            continue;
        }
        step += 1;
        let mut r = *regs.lock().unwrap();
        // A jam every 150 steps, cleared 25 steps later; idle for 10 steps every 400.
        let (state, fault) = match step % 400 {
            150..=174 => (2, 17),
            300..=309 => (0, 0),
            _ => (1, 0),
        };
        if (state, fault) != (r.state, r.fault) {
            // Fault code and state word in one write, as a PLC sets them in one scan.
            write(&mut plc, STATE, &[state, fault]).await;
            r.state = state;
            r.fault = fault;
        }
        let counting = *mode.lock().unwrap() == CounterMode::Counting;
        if state == 1 && counting {
            if step.is_multiple_of(7) {
                r.scrap = r.scrap.wrapping_add(1);
                write(&mut plc, SCRAP, &[r.scrap]).await;
                made.scrap.fetch_add(1, Ordering::SeqCst);
            } else {
                r.good = r.good.wrapping_add(1);
                write(&mut plc, GOOD, &[(r.good >> 16) as u16, r.good as u16]).await;
                made.good.fetch_add(1, Ordering::SeqCst);
            }
        }
        *regs.lock().unwrap() = r;
        idle.store(true, Ordering::SeqCst);
    }
}

/// Writes until the PLC has the value: a failed write is read back, since a write whose reply
/// was lost may have been made.
async fn write(plc: &mut Plc, addr: u16, words: &[u16]) {
    for _ in 0..200 {
        if plc.try_write_u16s(addr, words).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Ok(now) = plc.try_read_u16s(addr, words.len() as u16).await {
            if now == words {
                return;
            }
        }
    }
    panic!("the machine could not write {words:?} at {addr} for 10 s");
}
