//! S8's presses: one Modbus TCP device per cell, all served by one tokio-modbus server on a
//! thread of the harness (each on its own port), each a good-part counter (a u32 in holding
//! registers 0-1) stepping by one after a random pause. The truth of S8 is what these devices
//! served: their counters when production stops, read here, never from mes-edge.

use crate::load_server::XorShift;
use std::future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_modbus::prelude::*;
use tokio_modbus::server::tcp::Server;
use tokio_modbus::server::Service;

/// Parts made so far per press; a press makes parts only while `making` is set.
#[derive(Default)]
struct Line {
    counters: Vec<AtomicU32>,
    making: AtomicBool,
    closed: AtomicBool,
}

pub struct Presses {
    pub ports: Vec<u16>,
    line: Arc<Line>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Clone)]
struct Press {
    line: Arc<Line>,
    index: usize,
}

impl Service for Press {
    type Request = Request<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = future::Ready<Result<Response, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        let v = self.line.counters[self.index].load(Ordering::SeqCst);
        future::ready(match req {
            Request::ReadHoldingRegisters(0, 2) => Ok(Response::ReadHoldingRegisters(vec![
                (v >> 16) as u16,
                v as u16,
            ])),
            Request::ReadHoldingRegisters(..) => Err(ExceptionCode::IllegalDataAddress),
            _ => Err(ExceptionCode::IllegalFunction),
        })
    }
}

impl Presses {
    /// `n` presses, idle (counters at 0) until [`Presses::start_making`]; each makes a part
    /// after a pause drawn from `min_ms..max_ms`.
    pub fn start(n: usize, min_ms: u64, max_ms: u64) -> anyhow::Result<Presses> {
        let line = Arc::new(Line {
            counters: (0..n).map(|_| AtomicU32::new(0)).collect(),
            ..Default::default()
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let l = line.clone();
        let thread = std::thread::Builder::new()
            .name("s8-presses".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime");
                rt.block_on(serve(l, n, min_ms, max_ms, tx));
            })?;
        let ports = rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| anyhow::anyhow!("the presses did not bind their ports"))??;
        Ok(Presses {
            ports,
            line,
            thread: Some(thread),
        })
    }

    pub fn start_making(&self) {
        self.line.making.store(true, Ordering::SeqCst);
    }

    /// Stops production; returns every press's counter as it serves it from now on.
    pub fn stop_making(&self) -> Vec<u64> {
        self.line.making.store(false, Ordering::SeqCst);
        // A press that had passed its check when the flag fell finishes that one part.
        std::thread::sleep(Duration::from_millis(50));
        self.counters()
    }

    pub fn counters(&self) -> Vec<u64> {
        self.line
            .counters
            .iter()
            .map(|c| c.load(Ordering::SeqCst) as u64)
            .collect()
    }
}

impl Drop for Presses {
    fn drop(&mut self) {
        self.line.closed.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    line: Arc<Line>,
    n: usize,
    min_ms: u64,
    max_ms: u64,
    ready: std::sync::mpsc::Sender<anyhow::Result<Vec<u16>>>,
) {
    let mut ports = Vec::with_capacity(n);
    for index in 0..n {
        let listener = match TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => {
                let _ = ready.send(Err(e.into()));
                return;
            }
        };
        ports.push(listener.local_addr().map(|a| a.port()).unwrap_or(0));
        let press = Press {
            line: line.clone(),
            index,
        };
        tokio::spawn(async move {
            let on_connected = move |stream, _peer: SocketAddr| {
                let press = press.clone();
                async move { Ok::<_, std::io::Error>(Some((press, stream))) }
            };
            let _ = Server::new(listener)
                .serve(&on_connected, |_e: std::io::Error| {})
                .await;
        });
        let line = line.clone();
        tokio::spawn(async move {
            let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ ((index as u64 + 1) * 0x2545_F491));
            loop {
                let pause = min_ms + rng.next() % (max_ms - min_ms).max(1);
                tokio::time::sleep(Duration::from_millis(pause)).await;
                if line.making.load(Ordering::SeqCst) {
                    line.counters[index].fetch_add(1, Ordering::SeqCst);
                }
            }
        });
    }
    let _ = ready.send(Ok(ports));
    while !line.closed.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
