//! The Modbus TCP PLC of the tests: [`ModbusPeer`], `tests/peers/modbus_server.py` (pymodbus,
//! `MES_EDGE_PYTHON`), and [`Plc`], a small tokio-modbus client with which a test plays the PLC
//! program (writes counters and state words).

use super::process::{self, PeerProcess, Ready, Retry};
use super::{free_port, modbus_server_script, python_bin};
use std::fs;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use tokio_modbus::client::Context as ModbusContext;
use tokio_modbus::prelude::{Reader, Writer};

/// `tests/peers/modbus_server.py` (pymodbus) on 127.0.0.1: the PLC.
///
/// Holding registers, input registers, coils and discrete inputs at protocol addresses 0..9999;
/// input registers mirror holding registers and discrete inputs mirror coils (same storage).
/// All zero at start (or the `init` values). A restart resets everything, like a PLC restart.
pub struct ModbusPeer {
    unit_ids: Vec<u8>,
    has_init: bool,
    process: PeerProcess,
}

impl ModbusPeer {
    /// Unit id 1, all tables zero.
    pub fn start() -> ModbusPeer {
        Self::start_with(&[1], None)
    }

    /// Unit id 1 with initial values; see the docstring of `tests/peers/modbus_server.py` for
    /// the format, e.g. `json!({"holding": {"10": [0, 7]}, "coils": {"3": true}})`.
    /// [`ModbusPeer::start_again`] comes back with these init values.
    pub fn start_with_init(init: serde_json::Value) -> ModbusPeer {
        Self::start_with(&[1], Some(init))
    }

    /// Any set of unit ids, optional init values.
    pub fn start_with(unit_ids: &[u8], init: Option<serde_json::Value>) -> ModbusPeer {
        assert!(
            !unit_ids.is_empty(),
            "ModbusPeer needs at least one unit id"
        );
        let mut peer = ModbusPeer {
            unit_ids: unit_ids.to_vec(),
            has_init: false,
            process: PeerProcess::new(
                "modbus_server.py",
                "mes-edge-modbus-",
                "modbus_server.stdout.log",
                "modbus_server.stderr.log",
            ),
        };
        if let Some(init) = init {
            peer.write_init(&init);
        }
        process::start_on_free_port("modbus peer", 5, || {
            peer.process.set_port(free_port());
            peer.spawn_and_wait()
        });
        peer
    }

    fn write_init(&mut self, init: &serde_json::Value) {
        fs::write(
            self.process.dir().join("init.json"),
            serde_json::to_vec_pretty(init).unwrap(),
        )
        .expect("write init.json");
        self.has_init = true;
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let port = self.port().to_string();
        let units: Vec<String> = self.unit_ids.iter().map(|u| u.to_string()).collect();
        let mut cmd = Command::new(python_bin());
        cmd.arg("-u")
            .arg(modbus_server_script())
            .args(["--host", "127.0.0.1", "--port", &port])
            .args(["--unit-ids", &units.join(",")]);
        if self.has_init {
            cmd.arg("--init").arg(self.process.dir().join("init.json"));
        }
        cmd.arg("--write-log").arg(self.write_log());
        self.process
            .spawn(cmd, Ready::line(format!("READY {port}")))
    }

    fn write_log(&self) -> std::path::PathBuf {
        self.process.dir().join("writes.jsonl")
    }

    /// Every write a client made to the peer's tables, as the peer recorded it, in order
    /// (across restarts of the peer): `{"t_ms", "table", "address", "values"}`.
    pub fn writes(&self) -> Vec<serde_json::Value> {
        fs::read_to_string(self.write_log())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn port(&self) -> u16 {
        self.process.port()
    }

    pub fn unit_ids(&self) -> &[u8] {
        &self.unit_ids
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// SIGTERM and wait (SIGKILL after [`super::STOP_TIMEOUT`]). No-op if not running.
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// SIGKILL. No-op if not running.
    pub fn kill9(&mut self) {
        self.process.kill9();
    }

    /// Starts the server again on the same port (stops it first if running): a PLC restart.
    /// All tables are back to zero (or to the init values).
    pub fn start_again(&mut self) {
        self.stop();
        process::restart("modbus peer", Retry::WhilePortInUse, || {
            self.spawn_and_wait()
        });
    }

    /// A PLC restart that comes back with `init` (e.g. a retained counter at its last value)
    /// instead of the values given at the first start.
    pub fn start_again_with_init(&mut self, init: serde_json::Value) {
        self.write_init(&init);
        self.start_again();
    }

    pub fn logs(&self) -> String {
        self.process.logs()
    }
}

// ---------------------------------------------------------------------------------------------
// Plc: a tokio-modbus client with which tests play the PLC program
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
pub enum PlcError {
    /// The server answered with a Modbus exception (not retried).
    Exception(tokio_modbus::ExceptionCode),
    /// Connect failure, I/O or protocol error, or timeout (the connection is dropped).
    Transport(String),
}

impl std::fmt::Display for PlcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlcError::Exception(code) => write!(f, "Modbus exception {code:?}"),
            PlcError::Transport(msg) => write!(f, "transport: {msg}"),
        }
    }
}

impl std::error::Error for PlcError {}

#[derive(Clone, Copy, Debug)]
enum PlcOp<'a> {
    ReadHolding(u16, u16),
    ReadInput(u16, u16),
    ReadCoils(u16, u16),
    ReadDiscrete(u16, u16),
    WriteRegister(u16, u16),
    WriteRegisters(u16, &'a [u16]),
    WriteCoil(u16, bool),
    WriteCoils(u16, &'a [bool]),
}

enum PlcOut {
    Words(Vec<u16>),
    Bits(Vec<bool>),
    Done,
}

/// Modbus TCP client for tests. Every call has a timeout (`op_timeout`); after a timeout or a
/// transport error the connection is dropped and the next call reconnects, so a `Plc` survives
/// a [`ModbusPeer::start_again`]. The plain methods retry transport failures until `retry_for`
/// has passed and then panic; Modbus exceptions panic at once. `try_*` methods make one attempt.
///
/// Word order for 32-bit values is big-endian: the high word is at `addr`, the low at `addr+1`.
pub struct Plc {
    addr: SocketAddr,
    unit: u8,
    ctx: Option<ModbusContext>,
    pub op_timeout: Duration,
    pub retry_for: Duration,
}

impl Plc {
    /// Connects to 127.0.0.1:`port` as unit `unit` (retries for up to 10 s, then panics).
    pub async fn connect(port: u16, unit: u8) -> Plc {
        let mut plc = Plc {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            unit,
            ctx: None,
            op_timeout: Duration::from_secs(2),
            retry_for: Duration::from_secs(10),
        };
        let deadline = Instant::now() + plc.retry_for;
        loop {
            match plc.ensure_connected().await {
                Ok(()) => return plc,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("Plc: cannot connect to {}: {e}", plc.addr),
            }
        }
    }

    pub fn unit(&self) -> u8 {
        self.unit
    }

    /// Drops the current connection (the next call reconnects).
    pub fn disconnect(&mut self) {
        self.ctx = None;
    }

    async fn ensure_connected(&mut self) -> Result<(), PlcError> {
        if self.ctx.is_some() {
            return Ok(());
        }
        let slave = tokio_modbus::Slave(self.unit);
        match tokio::time::timeout(
            self.op_timeout,
            tokio_modbus::client::tcp::connect_slave(self.addr, slave),
        )
        .await
        {
            Ok(Ok(ctx)) => {
                self.ctx = Some(ctx);
                Ok(())
            }
            Ok(Err(e)) => Err(PlcError::Transport(format!("connect {}: {e}", self.addr))),
            Err(_) => Err(PlcError::Transport(format!(
                "connect {}: timed out",
                self.addr
            ))),
        }
    }

    async fn attempt(&mut self, op: PlcOp<'_>) -> Result<PlcOut, PlcError> {
        self.ensure_connected().await?;
        let ctx = self.ctx.as_mut().unwrap();
        let call = async {
            match op {
                PlcOp::ReadHolding(a, n) => ctx
                    .read_holding_registers(a, n)
                    .await
                    .map(|r| r.map(PlcOut::Words)),
                PlcOp::ReadInput(a, n) => ctx
                    .read_input_registers(a, n)
                    .await
                    .map(|r| r.map(PlcOut::Words)),
                PlcOp::ReadCoils(a, n) => ctx.read_coils(a, n).await.map(|r| r.map(PlcOut::Bits)),
                PlcOp::ReadDiscrete(a, n) => ctx
                    .read_discrete_inputs(a, n)
                    .await
                    .map(|r| r.map(PlcOut::Bits)),
                PlcOp::WriteRegister(a, v) => ctx
                    .write_single_register(a, v)
                    .await
                    .map(|r| r.map(|()| PlcOut::Done)),
                PlcOp::WriteRegisters(a, vs) => ctx
                    .write_multiple_registers(a, vs)
                    .await
                    .map(|r| r.map(|()| PlcOut::Done)),
                PlcOp::WriteCoil(a, v) => ctx
                    .write_single_coil(a, v)
                    .await
                    .map(|r| r.map(|()| PlcOut::Done)),
                PlcOp::WriteCoils(a, vs) => ctx
                    .write_multiple_coils(a, vs)
                    .await
                    .map(|r| r.map(|()| PlcOut::Done)),
            }
        };
        match tokio::time::timeout(self.op_timeout, call).await {
            Ok(Ok(Ok(out))) => Ok(out),
            Ok(Ok(Err(code))) => Err(PlcError::Exception(code)),
            Ok(Err(e)) => {
                // A broken connection or a late reply would poison the next transaction.
                self.ctx = None;
                Err(PlcError::Transport(format!("{op:?}: {e}")))
            }
            Err(_) => {
                self.ctx = None;
                Err(PlcError::Transport(format!(
                    "{op:?}: timed out after {:?}",
                    self.op_timeout
                )))
            }
        }
    }

    async fn run(&mut self, op: PlcOp<'_>) -> PlcOut {
        let deadline = Instant::now() + self.retry_for;
        loop {
            match self.attempt(op).await {
                Ok(out) => return out,
                Err(PlcError::Transport(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("Plc {} unit {}: {op:?} failed: {e}", self.addr, self.unit),
            }
        }
    }

    fn words(out: PlcOut) -> Vec<u16> {
        match out {
            PlcOut::Words(w) => w,
            _ => unreachable!(),
        }
    }

    fn bits(out: PlcOut) -> Vec<bool> {
        match out {
            PlcOut::Bits(b) => b,
            _ => unreachable!(),
        }
    }

    /// FC 6.
    pub async fn write_u16(&mut self, addr: u16, value: u16) {
        self.run(PlcOp::WriteRegister(addr, value)).await;
    }

    /// FC 16.
    pub async fn write_u16s(&mut self, addr: u16, values: &[u16]) {
        self.run(PlcOp::WriteRegisters(addr, values)).await;
    }

    /// FC 16 with two words, high word at `addr` (big-endian word order), in one transaction.
    pub async fn write_u32(&mut self, addr: u16, value: u32) {
        let words = [(value >> 16) as u16, value as u16];
        self.run(PlcOp::WriteRegisters(addr, &words)).await;
    }

    /// FC 5.
    pub async fn write_coil(&mut self, addr: u16, value: bool) {
        self.run(PlcOp::WriteCoil(addr, value)).await;
    }

    /// FC 15.
    pub async fn write_coils(&mut self, addr: u16, values: &[bool]) {
        self.run(PlcOp::WriteCoils(addr, values)).await;
    }

    /// FC 3, one register.
    pub async fn read_u16(&mut self, addr: u16) -> u16 {
        self.read_u16s(addr, 1).await[0]
    }

    /// FC 3.
    pub async fn read_u16s(&mut self, addr: u16, count: u16) -> Vec<u16> {
        Self::words(self.run(PlcOp::ReadHolding(addr, count)).await)
    }

    /// FC 3, two registers, high word at `addr`.
    pub async fn read_u32(&mut self, addr: u16) -> u32 {
        let w = self.read_u16s(addr, 2).await;
        (u32::from(w[0]) << 16) | u32::from(w[1])
    }

    /// FC 4, one register.
    pub async fn read_input_u16(&mut self, addr: u16) -> u16 {
        self.read_input_u16s(addr, 1).await[0]
    }

    /// FC 4.
    pub async fn read_input_u16s(&mut self, addr: u16, count: u16) -> Vec<u16> {
        Self::words(self.run(PlcOp::ReadInput(addr, count)).await)
    }

    /// FC 1, one coil.
    pub async fn read_coil(&mut self, addr: u16) -> bool {
        self.read_coils(addr, 1).await[0]
    }

    /// FC 1.
    pub async fn read_coils(&mut self, addr: u16, count: u16) -> Vec<bool> {
        Self::bits(self.run(PlcOp::ReadCoils(addr, count)).await)
    }

    /// FC 2, one discrete input.
    pub async fn read_discrete(&mut self, addr: u16) -> bool {
        self.read_discretes(addr, 1).await[0]
    }

    /// FC 2.
    pub async fn read_discretes(&mut self, addr: u16, count: u16) -> Vec<bool> {
        Self::bits(self.run(PlcOp::ReadDiscrete(addr, count)).await)
    }

    /// FC 6, one attempt (reconnecting first if needed), no retry.
    pub async fn try_write_u16(&mut self, addr: u16, value: u16) -> Result<(), PlcError> {
        self.attempt(PlcOp::WriteRegister(addr, value))
            .await
            .map(|_| ())
    }

    /// FC 16, one attempt (reconnecting first if needed), no retry.
    pub async fn try_write_u16s(&mut self, addr: u16, values: &[u16]) -> Result<(), PlcError> {
        self.attempt(PlcOp::WriteRegisters(addr, values))
            .await
            .map(|_| ())
    }

    /// FC 3, one attempt, no retry.
    pub async fn try_read_u16s(&mut self, addr: u16, count: u16) -> Result<Vec<u16>, PlcError> {
        self.attempt(PlcOp::ReadHolding(addr, count))
            .await
            .map(Self::words)
    }
}

/// A press making parts: one written to the PLC's good counter every `every` until stopped.
pub struct Press {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<u32>,
}

impl Press {
    pub async fn start(plc_port: u16, every: Duration) -> Press {
        use std::sync::atomic::Ordering;
        let mut plc = Plc::connect(plc_port, 1).await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let running = stop.clone();
        let task = tokio::spawn(async move {
            let mut made = 0u32;
            while !running.load(Ordering::SeqCst) {
                made += 1;
                plc.write_u32(super::cell::GOOD, made).await;
                tokio::time::sleep(every).await;
            }
            made
        });
        Press { stop, task }
    }

    /// Stops it; the last count written.
    pub async fn stop(self) -> u32 {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.task.await.unwrap()
    }
}
