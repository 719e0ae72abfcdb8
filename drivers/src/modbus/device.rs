use super::plan::{plan, Limits, ReadBlock};
use super::tag::{ModbusTag, Table};
use super::Backoff;
use crate::{now_ms, DeviceEvent, DeviceId, DeviceStatus, Quality, Sample, Value};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::{timeout, MissedTickBehavior};
use tokio_modbus::client::{tcp, Context, Reader};
use tokio_modbus::Slave;

/// A Modbus TCP device as the driver needs it.
#[derive(Debug, Clone)]
pub struct ModbusTcpDevice {
    pub id: DeviceId,
    pub name: String,
    /// `host:port`, resolved at every connect so a changed DNS entry is picked up.
    pub address: String,
    pub unit: u8,
    /// Bound on connecting and on each request; tokio-modbus has none of its own.
    pub timeout: Duration,
    pub poll_interval: Duration,
    pub limits: Limits,
    pub tags: Vec<ModbusTag>,
}

/// Why a connection is given up: the context is dropped and rebuilt after any of these, because a
/// late reply after a timeout would otherwise be taken as the answer to the next request.
struct ConnectionLost(String);

/// Polls the device until `shutdown` turns true. Never returns an error: a device that misbehaves
/// is reported offline and retried, so it cannot take the runtime or other devices down with it.
pub async fn run_tcp(
    dev: ModbusTcpDevice,
    tx: mpsc::Sender<DeviceEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    let blocks = plan(&dev.tags, dev.limits);
    let mut poller = Poller {
        dev: &dev,
        tx: &tx,
        last: vec![None; dev.tags.len()],
        online: None,
    };
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    while !*shutdown.borrow() {
        let connected = tokio::select! {
            r = connect(&dev) => r,
            _ = shutdown.changed() => return,
        };
        let lost = match connected {
            Ok(mut ctx) => {
                let lost = poller
                    .poll_until_lost(&mut ctx, &blocks, &mut shutdown, &mut backoff)
                    .await;
                let _ = tokio::time::timeout(Duration::from_millis(200), disconnect(ctx)).await;
                match lost {
                    Some(lost) => lost,
                    None => return,
                }
            }
            Err(lost) => lost,
        };
        tracing::warn!(device = %dev.name, reason = %lost.0, "modbus device offline");
        if !poller.went_offline(lost.0).await {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn connect(dev: &ModbusTcpDevice) -> Result<Context, ConnectionLost> {
    let attempt = async {
        let addr = tokio::net::lookup_host(&dev.address)
            .await?
            .next()
            .ok_or_else(|| std::io::Error::other("address resolves to nothing"))?;
        tcp::connect_slave(addr, Slave(dev.unit)).await
    };
    match timeout(dev.timeout, attempt).await {
        Ok(Ok(ctx)) => Ok(ctx),
        Ok(Err(e)) => Err(ConnectionLost(format!("connect to {}: {e}", dev.address))),
        Err(_) => Err(ConnectionLost(format!(
            "connect to {}: timed out after {:?}",
            dev.address, dev.timeout
        ))),
    }
}

async fn disconnect(mut ctx: Context) {
    use tokio_modbus::client::Client;
    let _ = ctx.disconnect().await;
}

struct Poller<'a> {
    dev: &'a ModbusTcpDevice,
    tx: &'a mpsc::Sender<DeviceEvent>,
    /// What was last handed on for each tag; only changes go out.
    last: Vec<Option<(Option<Value>, Quality)>>,
    online: Option<bool>,
}

enum BlockRead {
    Registers(Vec<u16>),
    Bits(Vec<bool>),
    Exception(String),
}

impl Poller<'_> {
    /// Polls on the interval; returns why the connection was lost, or None on shutdown.
    async fn poll_until_lost(
        &mut self,
        ctx: &mut Context,
        blocks: &[ReadBlock],
        shutdown: &mut watch::Receiver<bool>,
        backoff: &mut Backoff,
    ) -> Option<ConnectionLost> {
        let mut ticker = tokio::time::interval(self.dev.poll_interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.changed() => return None,
            }
            let mut samples = Vec::new();
            for block in blocks {
                let read = match self.read(ctx, block).await {
                    Ok(read) => read,
                    Err(lost) => return Some(lost),
                };
                let ts_ms = now_ms();
                for &i in &block.tags {
                    let tag = &self.dev.tags[i];
                    let (value, quality) = match &read {
                        BlockRead::Registers(regs) => {
                            decoded(tag.decode_registers(block.start, regs))
                        }
                        BlockRead::Bits(bits) => decoded(tag.decode_bits(block.start, bits)),
                        BlockRead::Exception(_) => (None, Quality::Bad),
                    };
                    self.changed(i, value, quality, ts_ms, &mut samples);
                }
                if let BlockRead::Exception(e) = &read {
                    tracing::debug!(device = %self.dev.name, start = block.start, count = block.count, "modbus exception: {e}");
                }
            }
            if self.online != Some(true) {
                self.online = Some(true);
                backoff.reset();
                let ev = DeviceEvent::Status {
                    device: self.dev.id,
                    status: DeviceStatus::Online,
                    ts_ms: now_ms(),
                };
                if self.tx.send(ev).await.is_err() {
                    return None;
                }
                tracing::info!(device = %self.dev.name, "modbus device online");
            }
            if !samples.is_empty()
                && self
                    .tx
                    .send(DeviceEvent::Samples {
                        device: self.dev.id,
                        samples,
                    })
                    .await
                    .is_err()
            {
                return None;
            }
        }
    }

    async fn read(&self, ctx: &mut Context, b: &ReadBlock) -> Result<BlockRead, ConnectionLost> {
        let res = match b.table {
            Table::Holding => timeout(
                self.dev.timeout,
                ctx.read_holding_registers(b.start, b.count),
            )
            .await
            .map(|r| r.map(|r| r.map(BlockRead::Registers))),
            Table::Input => timeout(self.dev.timeout, ctx.read_input_registers(b.start, b.count))
                .await
                .map(|r| r.map(|r| r.map(BlockRead::Registers))),
            Table::Coil => timeout(self.dev.timeout, ctx.read_coils(b.start, b.count))
                .await
                .map(|r| r.map(|r| r.map(BlockRead::Bits))),
            Table::DiscreteInput => {
                timeout(self.dev.timeout, ctx.read_discrete_inputs(b.start, b.count))
                    .await
                    .map(|r| r.map(|r| r.map(BlockRead::Bits)))
            }
        };
        match res {
            Ok(Ok(Ok(read))) => Ok(read),
            Ok(Ok(Err(exception))) => Ok(BlockRead::Exception(exception.to_string())),
            Ok(Err(e)) => Err(ConnectionLost(format!(
                "read {:?} {}+{}: {e}",
                b.table, b.start, b.count
            ))),
            Err(_) => Err(ConnectionLost(format!(
                "read {:?} {}+{}: no answer within {:?}",
                b.table, b.start, b.count, self.dev.timeout
            ))),
        }
    }

    fn changed(
        &mut self,
        i: usize,
        value: Option<Value>,
        quality: Quality,
        ts_ms: i64,
        out: &mut Vec<Sample>,
    ) {
        let now = Some((value, quality));
        if self.last[i] != now {
            self.last[i] = now;
            out.push(Sample {
                tag: self.dev.tags[i].id,
                value,
                quality,
                ts_ms,
            });
        }
    }

    /// Reports the device offline and its tags bad (once per outage). False if the runtime is gone.
    async fn went_offline(&mut self, reason: String) -> bool {
        if self.online == Some(false) {
            return true;
        }
        self.online = Some(false);
        let ts_ms = now_ms();
        let mut samples = Vec::new();
        for i in 0..self.dev.tags.len() {
            self.changed(i, None, Quality::Bad, ts_ms, &mut samples);
        }
        let status = DeviceEvent::Status {
            device: self.dev.id,
            status: DeviceStatus::Offline { reason },
            ts_ms,
        };
        self.tx.send(status).await.is_ok()
            && (samples.is_empty()
                || self
                    .tx
                    .send(DeviceEvent::Samples {
                        device: self.dev.id,
                        samples,
                    })
                    .await
                    .is_ok())
    }
}

fn decoded(v: Option<Value>) -> (Option<Value>, Quality) {
    match v {
        Some(v) => (Some(v), Quality::Good),
        // A short reply: the device answered, but not with what was asked.
        None => (None, Quality::Bad),
    }
}
