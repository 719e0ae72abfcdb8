//! A simulated stamping press that speaks Modbus TCP, i.e. a PLC for `mes-edge demo`.
//!
//! The press runs a simple machine model on a background task and serves its registers
//! with tokio-modbus' TCP server, so the runtime polls it exactly as it would poll a real
//! controller. Everything is deterministic for a given [`PressSettings::seed`] except the
//! wall-clock timing.
//!
//! # Register map
//!
//! Holding registers (FC 3) and input registers (FC 4) show the same 100 words, addresses
//! `0..100`. All values are unsigned; 32-bit values are two registers, high word first (ABCD).
//!
//! | Address | Name                     | Type | Access | Meaning |
//! |---------|--------------------------|------|--------|---------|
//! | 0-1     | [`GOOD_COUNT`]           | u32  | read   | good parts made since start (wraps at 2^32 like a PLC UDINT) |
//! | 2       | [`SCRAP_COUNT`]          | u16  | read   | scrap parts, wraps at 65536 like a 16-bit PLC counter ([`PressSim::scrap`] is the unwrapped total) |
//! | 3       | [`STATE_WORD`]           | u16  | read   | [`STATE_IDLE`] 0, [`STATE_RUNNING`] 1, [`STATE_DOWN`] 2 (jammed), [`STATE_STARVED`] 3 (no material) |
//! | 4       | [`FAULT_CODE`]           | u16  | read   | 0 none, [`FAULT_DIE_JAM`] 17 while down, [`FAULT_FEEDER_EMPTY`] 23 while starved |
//! | 5       | [`IDEAL_CYCLE_MS`]       | u16  | read   | configured cycle time in ms (saturates at 65535), for OEE performance |
//! | 6       | [`REJECT_CODE`]          | u16  | read   | the reject code of the last scrap part: 3 burr, 7 crack, 9 (unmapped in the demo's config) |
//! | 7       | [`DIE_TEMPERATURE`]      | i16  | read   | die temperature in tenths of a degree C, wandering around 210.0 |
//! | 8-9     | reserved                 |      | read   | always 0 |
//! | 10-11   | [`ORDER_NUMBER`]         | u32  | write  | written by the runtime (FC 6/16), read back unchanged; 0 at start |
//! | 12-99   | free                     | u16  | write  | scratch words, read back unchanged |
//!
//! Addresses 0-9 belong to the machine: FC 6/16 writes touching them answer the exception
//! `IllegalDataAddress`, as a PLC answers writes to its read-only status area.
//!
//! Coils (FC 1) and discrete inputs (FC 2) show the same 100 lamp bits: bit 0 running,
//! bit 1 jammed, bit 2 starved, all others false. Coil writes (FC 5/15) and the other
//! function codes answer `IllegalFunction`.
//!
//! Any request reaching outside `0..100` answers `IllegalDataAddress`; a quantity of 0 or
//! above the Modbus limits (125 registers to read, 123 to write, 2000 bits) answers
//! `IllegalDataValue`. The unit id is ignored (any unit id is answered).
//!
//! # Machine model
//!
//! The press powers up idle and starts running after one cycle. Each cycle while running
//! it first rolls for a stop (jam, then starvation, then an idle spell, each with its per
//! mille chance); with no stop it makes one part, scrap with `scrap_per_mille` chance,
//! good otherwise. A stop lasts its duration, makes no parts and sets the fault code;
//! then the press runs again and makes its next part one cycle later.

use std::future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_modbus::server::tcp::Server;
use tokio_modbus::server::Service;
use tokio_modbus::{ExceptionCode, Request, Response};

/// Holding registers 0-1: good part count, u32, high word first (ABCD).
pub const GOOD_COUNT: u16 = 0;
/// Holding register 2: scrap count, u16, wraps at 65536 like a real PLC counter.
pub const SCRAP_COUNT: u16 = 2;
/// Holding register 3: machine state, one of the `STATE_*` values.
pub const STATE_WORD: u16 = 3;
/// Holding register 4: fault code, 0 or one of the `FAULT_*` values.
pub const FAULT_CODE: u16 = 4;
/// Holding register 5: configured cycle time in milliseconds (saturating at 65535).
pub const IDEAL_CYCLE_MS: u16 = 5;
/// Holding register 6: the reject code the press gave its last scrap part.
pub const REJECT_CODE: u16 = 6;
/// Holding register 7: die temperature, i16 in tenths of a degree C.
pub const DIE_TEMPERATURE: u16 = 7;
/// Holding registers 10-11: order number, u32 ABCD, writable by the runtime, read back as written.
pub const ORDER_NUMBER: u16 = 10;
/// Number of registers and of bits served; addresses `0..REGISTER_COUNT` are valid.
pub const REGISTER_COUNT: u16 = 100;
/// First holding register clients may write; `0..WRITABLE_FROM` belong to the machine.
pub const WRITABLE_FROM: u16 = 10;

/// State word: powered up, not producing (start-up, operator away).
pub const STATE_IDLE: u16 = 0;
/// State word: producing one part per cycle.
pub const STATE_RUNNING: u16 = 1;
/// State word: down, the die jammed ([`FAULT_DIE_JAM`]).
pub const STATE_DOWN: u16 = 2;
/// State word: starved, the feeder ran out of coil ([`FAULT_FEEDER_EMPTY`]).
pub const STATE_STARVED: u16 = 3;

/// Fault code while [`STATE_DOWN`]: die jam.
pub const FAULT_DIE_JAM: u16 = 17;
/// Fault code while [`STATE_STARVED`]: feeder empty.
pub const FAULT_FEEDER_EMPTY: u16 = 23;

/// Discrete input / coil bit: running lamp.
pub const LAMP_RUNNING: u16 = 0;
/// Discrete input / coil bit: jam lamp.
pub const LAMP_JAMMED: u16 = 1;
/// Discrete input / coil bit: starved lamp.
pub const LAMP_STARVED: u16 = 2;

const MAX_READ_REGISTERS: u16 = 125;
const MAX_WRITE_REGISTERS: u16 = 123;
const MAX_READ_BITS: u16 = 2000;

/// How the simulated press behaves. Chances are per mille per running cycle.
///
/// Build it with `PressSettings { cycle: .., ..Default::default() }`; more fields may come.
#[derive(Debug, Clone)]
pub struct PressSettings {
    /// Time for one stroke, i.e. one part while running. Must be above zero.
    pub cycle: Duration,
    /// Chance that a part is scrap.
    pub scrap_per_mille: u32,
    /// Chance per running cycle that the die jams ([`STATE_DOWN`]).
    pub jam_per_mille: u32,
    /// How long a jam lasts.
    pub jam_duration: Duration,
    /// Chance per running cycle that the feeder runs empty ([`STATE_STARVED`]).
    pub starve_per_mille: u32,
    /// How long the press stays starved.
    pub starve_duration: Duration,
    /// Chance per running cycle of an idle spell ([`STATE_IDLE`], no fault).
    pub idle_per_mille: u32,
    /// How long an idle spell lasts.
    pub idle_duration: Duration,
    /// Seed of the pseudo-random sequence; the same seed gives the same sequence of events.
    pub seed: u64,
}

impl Default for PressSettings {
    /// 400 ms cycle, 5 % scrap, a 3 s jam about every 60 cycles, a 5 s starvation about
    /// every 250 cycles, a 4 s idle spell about every 500 cycles.
    fn default() -> Self {
        Self {
            cycle: Duration::from_millis(400),
            scrap_per_mille: 50,
            jam_per_mille: 17,
            jam_duration: Duration::from_secs(3),
            starve_per_mille: 4,
            starve_duration: Duration::from_secs(5),
            idle_per_mille: 2,
            idle_duration: Duration::from_secs(4),
            seed: 0x4D45_535F_4544_4745, // "MES_EDGE"
        }
    }
}

/// Handle on the running press simulation; cheap to clone, all clones share one machine.
#[derive(Clone)]
pub struct PressSim {
    inner: Arc<Mutex<Machine>>,
}

impl std::fmt::Debug for PressSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.lock();
        f.debug_struct("PressSim")
            .field("good", &m.good)
            .field("scrap", &m.scrap)
            .field("state", &m.state)
            .field("fault", &m.fault)
            .finish()
    }
}

impl PressSim {
    fn new(settings: PressSettings) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Machine::new(settings))),
        }
    }

    // The lock is never held across an .await; a panic while holding it cannot leave the
    // machine inconsistent in a way that matters for a simulation, so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, Machine> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Good parts made so far (the value of registers 0-1).
    pub fn good(&self) -> u32 {
        self.lock().good
    }

    /// Scrap parts made so far, the total: register 2 shows it modulo 65536.
    pub fn scrap(&self) -> u32 {
        self.lock().scrap
    }

    /// Current state word (`STATE_*`).
    pub fn state(&self) -> u16 {
        self.lock().state
    }

    /// Current fault code (0 or `FAULT_*`).
    pub fn fault(&self) -> u16 {
        self.lock().fault
    }

    /// The order number last written to registers 10-11.
    pub fn order_number(&self) -> u32 {
        let m = self.lock();
        let hi = m.regs[ORDER_NUMBER as usize];
        let lo = m.regs[ORDER_NUMBER as usize + 1];
        (u32::from(hi) << 16) | u32::from(lo)
    }
}

/// Starts the press: binds `addr` (port 0 picks a free port), spawns the machine and the
/// Modbus TCP server on the current tokio runtime, and returns the bound address, a handle
/// on the machine state and the task running both. Aborting the task stops the machine,
/// closes the listener and ends the open client connections.
pub async fn serve(
    addr: SocketAddr,
    settings: PressSettings,
) -> anyhow::Result<(SocketAddr, PressSim, tokio::task::JoinHandle<()>)> {
    anyhow::ensure!(
        !settings.cycle.is_zero(),
        "press cycle time must be above zero"
    );
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the simulated press to {addr}"))?;
    let bound = listener.local_addr()?;
    let sim = PressSim::new(settings);

    let machine = sim.clone();
    let service = PressService { sim: sim.clone() };
    let task = tokio::spawn(async move {
        let server = Server::new(listener);
        let on_connected = move |stream, peer: SocketAddr| {
            let service = service.clone();
            async move {
                tracing::debug!(%peer, "press: Modbus client connected");
                Ok::<_, io::Error>(Some((service, stream)))
            }
        };
        let on_process_error = |err: io::Error| {
            tracing::debug!(error = %err, "press: Modbus connection ended with an error");
        };
        tokio::select! {
            res = server.serve(&on_connected, on_process_error) => {
                if let Err(err) = res {
                    tracing::warn!(error = %err, "press: Modbus listener failed; press stopped");
                }
            }
            () = run_machine(machine) => {}
        }
    });
    tracing::info!(addr = %bound, "simulated press listening (Modbus TCP)");
    Ok((bound, sim, task))
}

async fn run_machine(sim: PressSim) {
    // Powered up idle; the first step, one cycle later, starts it running.
    let mut wait = sim.lock().settings.cycle;
    loop {
        tokio::time::sleep(wait).await;
        wait = sim.lock().step();
    }
}

/// The machine model and its register image.
struct Machine {
    settings: PressSettings,
    rng: XorShift,
    good: u32,
    scrap: u32,
    state: u16,
    fault: u16,
    reject: u16,
    temperature: i16,
    /// Reject codes and temperatures draw from their own generator, so the parts and stops a
    /// seed makes stay what they were before these registers existed.
    aux: XorShift,
    /// The register image; 0..WRITABLE_FROM are rendered from the fields above on read.
    regs: [u16; REGISTER_COUNT as usize],
}

impl Machine {
    fn new(settings: PressSettings) -> Self {
        let rng = XorShift::new(settings.seed);
        let aux = XorShift::new(settings.seed ^ 0x005E_ED0F_7E57);
        Self {
            settings,
            rng,
            good: 0,
            scrap: 0,
            state: STATE_IDLE,
            fault: 0,
            reject: 0,
            temperature: 2100,
            aux,
            regs: [0; REGISTER_COUNT as usize],
        }
    }

    /// Advances the machine by one event and returns how long until the next one.
    fn step(&mut self) -> Duration {
        let s = &self.settings;
        if self.state != STATE_RUNNING {
            // End of start-up, of a stop or of an idle spell: run again.
            self.state = STATE_RUNNING;
            self.fault = 0;
            return s.cycle;
        }
        let (state, fault, wait) = if self.rng.chance(s.jam_per_mille) {
            (STATE_DOWN, FAULT_DIE_JAM, s.jam_duration)
        } else if self.rng.chance(s.starve_per_mille) {
            (STATE_STARVED, FAULT_FEEDER_EMPTY, s.starve_duration)
        } else if self.rng.chance(s.idle_per_mille) {
            (STATE_IDLE, 0, s.idle_duration)
        } else {
            // The die warms and cools by up to half a degree per part.
            let step = (self.aux.next() % 11) as i16 - 5;
            self.temperature = (self.temperature + step).clamp(2000, 2200);
            if self.rng.chance(s.scrap_per_mille) {
                self.reject = match self.aux.next() % 10 {
                    0..=5 => 3,
                    6..=8 => 7,
                    _ => 9,
                };
                self.scrap = self.scrap.wrapping_add(1);
            } else {
                self.good = self.good.wrapping_add(1);
            }
            (STATE_RUNNING, 0, s.cycle)
        };
        self.state = state;
        self.fault = fault;
        wait
    }

    fn register(&self, addr: u16) -> u16 {
        match addr {
            0 => (self.good >> 16) as u16,
            1 => self.good as u16,
            2 => self.scrap as u16,
            3 => self.state,
            4 => self.fault,
            5 => u16::try_from(self.settings.cycle.as_millis()).unwrap_or(u16::MAX),
            6 => self.reject,
            7 => self.temperature as u16,
            a if a < WRITABLE_FROM => 0,
            a => self.regs[a as usize],
        }
    }

    fn bit(&self, addr: u16) -> bool {
        match addr {
            LAMP_RUNNING => self.state == STATE_RUNNING,
            LAMP_JAMMED => self.state == STATE_DOWN,
            LAMP_STARVED => self.state == STATE_STARVED,
            _ => false,
        }
    }

    fn read_registers(&self, addr: u16, qty: u16) -> Result<Vec<u16>, ExceptionCode> {
        check_range(addr, qty, MAX_READ_REGISTERS)?;
        Ok((addr..addr + qty).map(|a| self.register(a)).collect())
    }

    fn read_bits(&self, addr: u16, qty: u16) -> Result<Vec<bool>, ExceptionCode> {
        check_range(addr, qty, MAX_READ_BITS)?;
        Ok((addr..addr + qty).map(|a| self.bit(a)).collect())
    }

    fn write_registers(&mut self, addr: u16, words: &[u16]) -> Result<(), ExceptionCode> {
        let qty = u16::try_from(words.len()).map_err(|_| ExceptionCode::IllegalDataValue)?;
        check_range(addr, qty, MAX_WRITE_REGISTERS)?;
        if addr < WRITABLE_FROM {
            return Err(ExceptionCode::IllegalDataAddress);
        }
        let start = usize::from(addr);
        self.regs[start..start + words.len()].copy_from_slice(words);
        Ok(())
    }

    fn handle(&mut self, req: Request<'_>) -> Result<Response, ExceptionCode> {
        match req {
            Request::ReadHoldingRegisters(addr, qty) => self
                .read_registers(addr, qty)
                .map(Response::ReadHoldingRegisters),
            Request::ReadInputRegisters(addr, qty) => self
                .read_registers(addr, qty)
                .map(Response::ReadInputRegisters),
            Request::ReadCoils(addr, qty) => self.read_bits(addr, qty).map(Response::ReadCoils),
            Request::ReadDiscreteInputs(addr, qty) => {
                self.read_bits(addr, qty).map(Response::ReadDiscreteInputs)
            }
            Request::WriteSingleRegister(addr, word) => self
                .write_registers(addr, &[word])
                .map(|()| Response::WriteSingleRegister(addr, word)),
            Request::WriteMultipleRegisters(addr, words) => {
                // write_registers has checked that the length fits a u16.
                let qty = words.len() as u16;
                self.write_registers(addr, &words)
                    .map(|()| Response::WriteMultipleRegisters(addr, qty))
            }
            _ => Err(ExceptionCode::IllegalFunction),
        }
    }
}

fn check_range(addr: u16, qty: u16, max_qty: u16) -> Result<(), ExceptionCode> {
    if qty == 0 || qty > max_qty {
        return Err(ExceptionCode::IllegalDataValue);
    }
    if u32::from(addr) + u32::from(qty) > u32::from(REGISTER_COUNT) {
        return Err(ExceptionCode::IllegalDataAddress);
    }
    Ok(())
}

#[derive(Clone)]
struct PressService {
    sim: PressSim,
}

impl Service for PressService {
    type Request = Request<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = future::Ready<Result<Response, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        future::ready(self.sim.lock().handle(req))
    }
}

/// xorshift64* seeded through splitmix64: small, deterministic, good enough for a simulation.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Self(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// True with a chance of `per_mille` / 1000 (always for 1000 or more, never for 0).
    fn chance(&mut self, per_mille: u32) -> bool {
        // The high bits of xorshift64* are its best ones.
        ((self.next() >> 32) % 1000) < u64::from(per_mille)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tokio_modbus::client::{Context, Reader, Writer};

    fn fast() -> PressSettings {
        PressSettings {
            cycle: Duration::from_millis(10),
            scrap_per_mille: 200,
            jam_per_mille: 0,
            starve_per_mille: 0,
            idle_per_mille: 0,
            ..PressSettings::default()
        }
    }

    /// A press whose machine never gets past start-up during a test.
    fn frozen() -> PressSettings {
        PressSettings {
            cycle: Duration::from_secs(3600),
            ..PressSettings::default()
        }
    }

    async fn start(
        settings: PressSettings,
    ) -> (SocketAddr, PressSim, tokio::task::JoinHandle<()>, Context) {
        let (addr, sim, task) = serve("127.0.0.1:0".parse().unwrap(), settings)
            .await
            .unwrap();
        assert_ne!(addr.port(), 0);
        let ctx = tokio::time::timeout(
            Duration::from_secs(5),
            tokio_modbus::client::tcp::connect(addr),
        )
        .await
        .expect("connect timed out")
        .expect("connect failed");
        (addr, sim, task, ctx)
    }

    async fn read(ctx: &mut Context, addr: u16, qty: u16) -> Result<Vec<u16>, ExceptionCode> {
        tokio::time::timeout(
            Duration::from_secs(5),
            ctx.read_holding_registers(addr, qty),
        )
        .await
        .expect("read timed out")
        .expect("transport error")
    }

    fn decode_u32(hi: u16, lo: u16) -> u32 {
        (u32::from(hi) << 16) | u32::from(lo)
    }

    #[tokio::test]
    async fn counts_advance_and_good_count_decodes_as_u32_abcd() {
        let (_, sim, task, mut ctx) = start(fast()).await;

        let first = read(&mut ctx, GOOD_COUNT, 5).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let later = loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let regs = read(&mut ctx, GOOD_COUNT, 5).await.unwrap();
            if regs[SCRAP_COUNT as usize] > first[SCRAP_COUNT as usize]
                && decode_u32(regs[0], regs[1]) > decode_u32(first[0], first[1])
            {
                break regs;
            }
            assert!(
                Instant::now() < deadline,
                "counts did not advance: {first:?} -> {regs:?}"
            );
        };
        assert_eq!(later[STATE_WORD as usize], STATE_RUNNING);
        assert_eq!(later[FAULT_CODE as usize], 0);

        // The u32 in registers 0-1 is good(): read until no part was made during the read.
        let mut matched = false;
        for _ in 0..50 {
            let before = sim.good();
            let regs = read(&mut ctx, GOOD_COUNT, 2).await.unwrap();
            if sim.good() == before {
                assert_eq!(decode_u32(regs[0], regs[1]), before);
                matched = true;
                break;
            }
        }
        assert!(matched, "the machine never held still for one read");

        // Input registers show the same image.
        let ir = ctx
            .read_input_registers(STATE_WORD, 3)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ir[0], STATE_RUNNING);
        assert_eq!(ir[2], 10, "ideal cycle ms");
        task.abort();
    }

    #[tokio::test]
    async fn high_word_first_and_scrap_wraps_at_65536() {
        let (_, sim, task, mut ctx) = start(frozen()).await;
        {
            let mut m = sim.lock();
            m.good = 0x0001_86A0; // 100_000
            m.scrap = 65_536 + 7;
        }
        let regs = read(&mut ctx, GOOD_COUNT, 3).await.unwrap();
        assert_eq!(regs, vec![0x0001, 0x86A0, 7]);
        assert_eq!(decode_u32(regs[0], regs[1]), sim.good());
        assert_eq!(sim.scrap(), 65_543);
        assert_eq!(regs[2] as u32, sim.scrap() % 65_536);
        task.abort();
    }

    #[tokio::test]
    async fn out_of_range_and_bad_requests_answer_exceptions() {
        let (_, _sim, task, mut ctx) = start(frozen()).await;
        assert_eq!(
            read(&mut ctx, 100, 1).await,
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            read(&mut ctx, 95, 10).await,
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            read(&mut ctx, u16::MAX, 2).await,
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            read(&mut ctx, 0, 126).await,
            Err(ExceptionCode::IllegalDataValue)
        );
        let ir = ctx
            .read_input_registers(99, 2)
            .await
            .expect("transport error");
        assert_eq!(ir, Err(ExceptionCode::IllegalDataAddress));
        let coils = ctx.read_coils(100, 1).await.expect("transport error");
        assert_eq!(coils, Err(ExceptionCode::IllegalDataAddress));
        // Writes to the machine's status area are refused; coil writes are not supported.
        let w = ctx
            .write_single_register(GOOD_COUNT, 5)
            .await
            .expect("transport error");
        assert_eq!(w, Err(ExceptionCode::IllegalDataAddress));
        let w = ctx
            .write_multiple_registers(8, &[1, 2, 3])
            .await
            .expect("transport error");
        assert_eq!(w, Err(ExceptionCode::IllegalDataAddress));
        let w = ctx
            .write_single_coil(0, true)
            .await
            .expect("transport error");
        assert_eq!(w, Err(ExceptionCode::IllegalFunction));
        // The connection is still good after all those exceptions.
        assert_eq!(read(&mut ctx, 99, 1).await, Ok(vec![0]));
        task.abort();
    }

    #[tokio::test]
    async fn order_number_write_reads_back_and_lamps_follow_state() {
        let (_, sim, task, mut ctx) = start(frozen()).await;
        let order: u32 = 4_200_017;
        ctx.write_multiple_registers(ORDER_NUMBER, &[(order >> 16) as u16, order as u16])
            .await
            .unwrap()
            .unwrap();
        ctx.write_single_register(99, 0xBEEF)
            .await
            .unwrap()
            .unwrap();
        let regs = read(&mut ctx, ORDER_NUMBER, 2).await.unwrap();
        assert_eq!(decode_u32(regs[0], regs[1]), order);
        assert_eq!(sim.order_number(), order);
        assert_eq!(read(&mut ctx, 99, 1).await, Ok(vec![0xBEEF]));

        // Powered up idle: no lamp.
        let lamps = ctx.read_discrete_inputs(0, 3).await.unwrap().unwrap();
        assert_eq!(lamps, vec![false, false, false]);
        {
            let mut m = sim.lock();
            m.state = STATE_DOWN;
            m.fault = FAULT_DIE_JAM;
        }
        let lamps = ctx.read_coils(0, 3).await.unwrap().unwrap();
        assert_eq!(lamps, vec![false, true, false]);
        let regs = read(&mut ctx, STATE_WORD, 2).await.unwrap();
        assert_eq!(regs, vec![STATE_DOWN, FAULT_DIE_JAM]);
        task.abort();
    }

    #[test]
    fn default_model_visits_every_state_deterministically() {
        fn run(seed: u64) -> (Vec<(u16, u16)>, u32, u32) {
            let mut m = Machine::new(PressSettings {
                seed,
                ..PressSettings::default()
            });
            let mut trace = Vec::new();
            for _ in 0..20_000 {
                m.step();
                trace.push((m.state, m.fault));
            }
            (trace, m.good, m.scrap)
        }
        let (trace, good, scrap) = run(7);
        assert_eq!(run(7), (trace.clone(), good, scrap), "same seed, same run");
        assert_ne!(run(8).0, trace, "another seed, another run");

        for (state, fault) in [
            (STATE_IDLE, 0),
            (STATE_RUNNING, 0),
            (STATE_DOWN, FAULT_DIE_JAM),
            (STATE_STARVED, FAULT_FEEDER_EMPTY),
        ] {
            assert!(
                trace.contains(&(state, fault)),
                "never saw state {state} fault {fault}"
            );
        }
        // Faults only ever go with their state.
        assert!(trace.iter().all(|&(s, f)| matches!(
            (s, f),
            (STATE_IDLE, 0)
                | (STATE_RUNNING, 0)
                | (STATE_DOWN, FAULT_DIE_JAM)
                | (STATE_STARVED, FAULT_FEEDER_EMPTY)
        )));
        let parts = good + scrap;
        let scrap_rate = f64::from(scrap) / f64::from(parts);
        assert!(
            (0.035..0.065).contains(&scrap_rate),
            "scrap rate {scrap_rate}"
        );
        let jams = trace
            .windows(2)
            .filter(|w| w[0].0 != STATE_DOWN && w[1].0 == STATE_DOWN)
            .count();
        let per_jam = f64::from(parts) / jams as f64;
        assert!(
            (35.0..100.0).contains(&per_jam),
            "one jam per {per_jam} parts"
        );
    }
}
