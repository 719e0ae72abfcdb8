//! The load servers: one tokio-modbus TCP server per simulated device, all in this separate
//! process (`mes-edge-bench load-server`), so that serving never competes inside the process
//! being measured. Each device holds the registers of a [`Layout`]; a mode decides how values
//! change. The server also measures what every tool is judged on, seen from the PLC side the
//! same way for mes-edge, Node-RED and the Python poller: how often every register of every
//! tag is read (the achieved poll rate, whatever blocks a tool reads them in), and how evenly
//! the first block is read (jitter).
//!
//! Protocol with the harness, one line each way: it prints `READY port,port,...` once bound;
//! on stdin `reset` clears the statistics, `report` prints `REPORT {json}`; in counter mode every
//! change is printed as `CHANGE device tag value unix_ns`.

use crate::layout::{encode, initial, step, Kind, Layout};
use serde::{Deserialize, Serialize};
use std::future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncBufReadExt;
use tokio::net::TcpListener;
use tokio_modbus::prelude::*;
use tokio_modbus::server::tcp::Server;
use tokio_modbus::server::Service;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    pub devices: usize,
    /// Holding registers per device.
    pub registers: u16,
    pub layout: String,
    pub mode: Mode,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mode {
    /// Values never change.
    Static,
    /// Every `tick_ms`, `per_tick` tags of each device change, in turn.
    Drift { tick_ms: u64, per_tick: usize },
    /// The listed tags of device 0 each step by one after a random pause in
    /// `min_ms..max_ms`, independently; each change is reported on stdout.
    Counters {
        tags: Vec<usize>,
        min_ms: u64,
        max_ms: u64,
    },
}

/// One device's registers and what the server saw of its readers.
struct Device {
    regs: Vec<u16>,
    values: Vec<f64>,
    reads: u64,
    registers_read: u64,
    /// Reads of each register: whatever blocks a tool splits its tags into, every tag's
    /// registers must be read once per poll.
    register_reads: Vec<u64>,
    /// When the device's first block (address 0) was read: one per poll cycle of any tool.
    cycle_starts: Vec<Instant>,
}

type Shared = Arc<Vec<Mutex<Device>>>;

#[derive(Clone)]
struct DeviceService {
    devices: Shared,
    index: usize,
}

impl Service for DeviceService {
    type Request = Request<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = future::Ready<Result<Response, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        let mut d = self.devices[self.index].lock().unwrap();
        let res = match req {
            Request::ReadHoldingRegisters(addr, qty) => {
                let (a, n) = (addr as usize, qty as usize);
                if n == 0 || n > 125 || a + n > d.regs.len() {
                    Err(ExceptionCode::IllegalDataAddress)
                } else {
                    d.reads += 1;
                    d.registers_read += n as u64;
                    for r in &mut d.register_reads[a..a + n] {
                        *r += 1;
                    }
                    if addr == 0 {
                        d.cycle_starts.push(Instant::now());
                    }
                    Ok(Response::ReadHoldingRegisters(d.regs[a..a + n].to_vec()))
                }
            }
            _ => Err(ExceptionCode::IllegalFunction),
        };
        future::ready(res)
    }
}

pub fn unix_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn set(d: &mut Device, layout: &Layout, tag: usize, value: f64) {
    let t = &layout.tags[tag];
    d.values[tag] = value;
    let words = encode(t.kind, value);
    let a = t.addr as usize;
    d.regs[a] = words[0];
    if t.kind != Kind::U16 {
        d.regs[a + 1] = words[1];
    }
}

pub fn main(spec_json: &str) -> anyhow::Result<()> {
    let spec: Spec = serde_json::from_str(spec_json)?;
    let layout = Layout::parse(&spec.layout)?;
    anyhow::ensure!(
        layout.registers() <= spec.registers,
        "layout does not fit the registers"
    );
    // One thread: serving a few thousand requests a second is light, and a second busy thread
    // would take CPU from the process being measured.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(spec, layout))
}

async fn serve(spec: Spec, layout: Layout) -> anyhow::Result<()> {
    let devices: Shared = Arc::new(
        (0..spec.devices)
            .map(|_| {
                let mut d = Device {
                    regs: vec![0; spec.registers as usize],
                    values: vec![0.0; layout.tags.len()],
                    reads: 0,
                    registers_read: 0,
                    register_reads: vec![0; spec.registers as usize],
                    cycle_starts: Vec::new(),
                };
                for (i, t) in layout.tags.iter().enumerate() {
                    set(&mut d, &layout, i, initial(t.kind, i));
                }
                Mutex::new(d)
            })
            .collect(),
    );
    let mut ports = Vec::new();
    for index in 0..spec.devices {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        ports.push(listener.local_addr()?.port());
        let service = DeviceService {
            devices: devices.clone(),
            index,
        };
        tokio::spawn(async move {
            let server = Server::new(listener);
            let on_connected = move |stream, _peer: SocketAddr| {
                let service = service.clone();
                async move { Ok::<_, std::io::Error>(Some((service, stream))) }
            };
            let _ = server.serve(&on_connected, |_e: std::io::Error| {}).await;
        });
    }
    let line: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
    println!("READY {}", line.join(","));
    std::io::stdout().flush()?;

    let layout = Arc::new(layout);
    match spec.mode.clone() {
        Mode::Static => {}
        Mode::Drift { tick_ms, per_tick } => {
            let (devices, layout) = (devices.clone(), layout.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(tick_ms));
                let mut next = 0usize;
                loop {
                    tick.tick().await;
                    for d in devices.iter() {
                        let mut d = d.lock().unwrap();
                        for k in 0..per_tick {
                            let i = (next + k) % layout.tags.len();
                            let v = d.values[i] + step(layout.tags[i].kind);
                            set(&mut d, &layout, i, v);
                        }
                    }
                    next = (next + per_tick) % layout.tags.len().max(1);
                }
            });
        }
        Mode::Counters {
            tags,
            min_ms,
            max_ms,
        } => {
            for (n, tag) in tags.into_iter().enumerate() {
                let (devices, layout) = (devices.clone(), layout.clone());
                tokio::spawn(async move {
                    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ ((n as u64 + 1) * 0x2545_F491));
                    loop {
                        let pause = min_ms + rng.next() % (max_ms - min_ms).max(1);
                        tokio::time::sleep(Duration::from_millis(pause)).await;
                        let mut d = devices[0].lock().unwrap();
                        let v = d.values[tag] + 1.0;
                        set(&mut d, &layout, tag, v);
                        let t = unix_ns();
                        drop(d);
                        println!("CHANGE 0 {tag} {v} {t}");
                    }
                });
            }
        }
    }

    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut since = Instant::now();
    while let Some(cmd) = stdin.next_line().await? {
        match cmd.trim() {
            "reset" => {
                for d in devices.iter() {
                    let mut d = d.lock().unwrap();
                    d.reads = 0;
                    d.registers_read = 0;
                    d.register_reads.iter_mut().for_each(|r| *r = 0);
                    d.cycle_starts.clear();
                }
                since = Instant::now();
            }
            "report" => {
                let secs = since.elapsed().as_secs_f64();
                let per_device: Vec<DeviceReport> = devices
                    .iter()
                    .map(|d| report(&d.lock().unwrap(), &layout, secs))
                    .collect();
                println!("REPORT {}", serde_json::to_string(&per_device)?);
            }
            "quit" => break,
            _ => {}
        }
        std::io::stdout().flush()?;
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceReport {
    pub seconds: f64,
    pub reads: u64,
    pub registers_read: u64,
    pub cycles: u64,
    /// Of the registers the layout's tags occupy: the fewest and the most reads of one.
    pub tag_register_reads_min: u64,
    pub tag_register_reads_max: u64,
    /// Intervals between successive reads of the first block, ms.
    pub intervals_ms: Vec<f64>,
}

fn report(d: &Device, layout: &Layout, seconds: f64) -> DeviceReport {
    let used = layout.tags.iter().flat_map(|t| {
        let a = t.addr as usize;
        if t.kind == Kind::U16 {
            a..a + 1
        } else {
            a..a + 2
        }
    });
    let reads: Vec<u64> = used.map(|a| d.register_reads[a]).collect();
    let intervals_ms = d
        .cycle_starts
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64() * 1e3)
        .collect();
    DeviceReport {
        seconds,
        reads: d.reads,
        registers_read: d.registers_read,
        cycles: d.cycle_starts.len() as u64,
        tag_register_reads_min: reads.iter().copied().min().unwrap_or(0),
        tag_register_reads_max: reads.iter().copied().max().unwrap_or(0),
        intervals_ms,
    }
}

/// xorshift64*: enough randomness for the phase of a change against a poll.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}
