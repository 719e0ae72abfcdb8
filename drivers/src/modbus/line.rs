//! A line: one connection (a TCP connection to a PLC or gateway, or a serial port) and the
//! devices reached through it. Modbus allows one outstanding request per line, so one task owns
//! the connection and serializes every device's requests and writes on it, each device on its own
//! schedule. A device that stops answering costs the others one timeout per try, and is then
//! only tried again with a growing delay.

use super::device::{DeviceState, ModbusDevice};
use super::link::{CallError, Link, ReadData, WriteOp};
use super::plan::{block_for, ReadBlock};
use super::tag::Table;
use super::transport::Transport;
use crate::{now_ms, Backoff, DeviceEvent, DriverError, Sample, TagId, Value, WriteRequest};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_modbus::ExceptionCode;

#[derive(Debug, Clone)]
pub struct ModbusLine {
    pub transport: Transport,
    pub devices: Vec<ModbusDevice>,
}

/// Polls the line's devices and makes the writes sent on `writes` until `shutdown` turns true.
/// Never returns an error: a device that misbehaves is reported offline and retried, so it
/// cannot take the runtime or other devices down with it.
pub async fn run_line(
    line: ModbusLine,
    mut writes: mpsc::Receiver<WriteRequest>,
    tx: mpsc::Sender<DeviceEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut runner = Runner::new(&line, &tx);
    let open_limit = line
        .devices
        .iter()
        .map(|d| d.timeout)
        .max()
        .unwrap_or(Duration::from_secs(1));
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut writes_open = true;
    while !*shutdown.borrow() && !runner.gone {
        if runner.link.is_none() {
            let opened = tokio::select! {
                r = Link::open(&line.transport, open_limit) => r,
                _ = shutdown.changed() => break,
            };
            match opened {
                Ok(link) => {
                    tracing::debug!(line = %line.transport, "modbus line open");
                    runner.link = Some(link);
                    backoff.reset();
                    if std::mem::take(&mut runner.was_down) {
                        let now = Instant::now();
                        runner.states.iter_mut().for_each(|s| s.line_restored(now));
                    }
                }
                Err(reason) => {
                    line.devices.iter().for_each(|d| d.metrics.connect_failed());
                    runner.line_down(reason).await;
                    // Writes are answered at once while the line is down, not left waiting.
                    let until = Instant::now() + backoff.next_delay();
                    loop {
                        tokio::select! {
                            _ = tokio::time::sleep_until(until) => break,
                            w = writes.recv(), if writes_open => match w {
                                Some(w) => {
                                    let _ = w.reply.send(Err(DriverError::transient(format!(
                                        "{}: the line is down", line.transport
                                    ))));
                                }
                                None => writes_open = false,
                            },
                            _ = shutdown.changed() => break,
                        }
                    }
                    continue;
                }
            }
        }
        let Some((at, d, g)) = runner.next_due() else {
            // No tags to read: only writes to serve.
            tokio::select! {
                w = writes.recv(), if writes_open => match w {
                    Some(w) => runner.write(w).await,
                    None => writes_open = false,
                },
                _ = shutdown.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            }
            continue;
        };
        enum Step {
            Write(WriteRequest),
            WritesClosed,
            Poll,
            Stop,
        }
        let step = tokio::select! {
            biased;
            _ = shutdown.changed() => Step::Stop,
            w = writes.recv(), if writes_open => w.map_or(Step::WritesClosed, Step::Write),
            _ = tokio::time::sleep_until(at) => Step::Poll,
        };
        match step {
            Step::Stop => break,
            Step::WritesClosed => writes_open = false,
            Step::Write(w) => runner.write(w).await,
            Step::Poll => runner.poll(d, g, &mut writes, &mut writes_open).await,
        }
    }
    if let Some(link) = runner.link.take() {
        link.close().await;
    }
}

/// Why a read gave no data.
enum ReadFail {
    /// An exception that says the request itself is wrong for this device: the block is split.
    Refused(ExceptionCode),
    /// Any other exception (busy after every retry, memory parity): the block's tags are bad.
    Exception(String),
    /// No usable answer after every attempt: timeouts, broken or garbled replies, a gateway
    /// that cannot reach the unit.
    Silent(String),
    /// The connection cannot be opened again.
    LineDown(String),
}

enum ExceptionKind {
    Refused,
    Busy,
    Unreachable,
    Other,
}

fn kind(code: ExceptionCode) -> ExceptionKind {
    use ExceptionCode::*;
    match code {
        // Devices answer an unmapped address with any of these, depending on the make.
        IllegalFunction | IllegalDataAddress | IllegalDataValue | ServerDeviceFailure => {
            ExceptionKind::Refused
        }
        Acknowledge | ServerDeviceBusy => ExceptionKind::Busy,
        GatewayPathUnavailable | GatewayTargetDevice => ExceptionKind::Unreachable,
        _ => ExceptionKind::Other,
    }
}

struct Runner<'a> {
    line: &'a ModbusLine,
    tx: &'a mpsc::Sender<DeviceEvent>,
    states: Vec<DeviceState>,
    link: Option<Link>,
    by_tag: HashMap<TagId, (usize, usize)>,
    /// The runtime dropped its receiver: stop.
    gone: bool,
    /// The line could not be opened (not merely closed after a request that got no answer,
    /// which would otherwise make every failed try of a dead unit look like the line coming
    /// back, and have it tried again at once).
    was_down: bool,
}

impl<'a> Runner<'a> {
    fn new(line: &'a ModbusLine, tx: &'a mpsc::Sender<DeviceEvent>) -> Self {
        let mut by_tag = HashMap::new();
        for (d, dev) in line.devices.iter().enumerate() {
            for (i, t) in dev.tags.iter().enumerate() {
                by_tag.insert(t.id, (d, i));
            }
        }
        Runner {
            line,
            tx,
            states: line.devices.iter().map(DeviceState::new).collect(),
            link: None,
            by_tag,
            gone: false,
            was_down: false,
        }
    }

    fn next_due(&self) -> Option<(Instant, usize, usize)> {
        self.states
            .iter()
            .enumerate()
            .filter_map(|(d, s)| s.next().map(|(at, g)| (at, d, g)))
            .min_by_key(|&(at, d, _)| (at, d))
    }

    async fn line_down(&mut self, reason: String) {
        self.was_down = true;
        if let Some(link) = self.link.take() {
            link.close().await;
        }
        for (d, dev) in self.line.devices.iter().enumerate() {
            if !self.states[d]
                .went_offline(
                    dev,
                    DriverError::transient(reason.clone()),
                    Vec::new(),
                    self.tx,
                )
                .await
            {
                self.gone = true;
            }
        }
    }

    async fn ensure_link(&mut self) -> Result<&mut Link, String> {
        if self.link.is_none() {
            let limit = self
                .line
                .devices
                .iter()
                .map(|d| d.timeout)
                .max()
                .unwrap_or(Duration::from_secs(1));
            self.link = Some(Link::open(&self.line.transport, limit).await?);
        }
        Ok(self.link.as_mut().expect("opened above"))
    }

    /// Reads one block, retrying what may pass (no answer, busy).
    async fn read_block(
        &mut self,
        d: usize,
        b: &ReadBlock,
        attempts: u8,
    ) -> Result<ReadData, ReadFail> {
        let dev = &self.line.devices[d];
        let mut last = ReadFail::Silent("not tried".into());
        for attempt in 0..attempts.max(1) {
            if attempt > 0 {
                tracing::debug!(device = %dev.name, start = b.start, count = b.count, attempt, "modbus retry");
            }
            let link = self.ensure_link().await.map_err(ReadFail::LineDown)?;
            let result = link
                .read(
                    dev.unit,
                    b.table,
                    b.start,
                    b.count,
                    dev.timeout,
                    dev.request_gap,
                )
                .await;
            dev.metrics.request(result.is_ok());
            match result {
                Ok(data) => return Ok(data),
                Err(CallError::Exception(code)) => match kind(code) {
                    ExceptionKind::Refused => return Err(ReadFail::Refused(code)),
                    ExceptionKind::Other => {
                        return Err(ReadFail::Exception(CallError::Exception(code).to_string()))
                    }
                    ExceptionKind::Busy => {
                        last = ReadFail::Exception(CallError::Exception(code).to_string());
                        tokio::time::sleep(dev.request_gap.max(Duration::from_millis(50))).await;
                    }
                    ExceptionKind::Unreachable => {
                        last = ReadFail::Silent(CallError::Exception(code).to_string());
                    }
                },
                Err(e) => {
                    if e.poisons_link() {
                        if let Some(link) = self.link.take() {
                            link.close().await;
                        }
                    }
                    last = ReadFail::Silent(e.to_string());
                }
            }
        }
        Err(last)
    }

    /// Reads one poll group of device `d` and hands on what changed.
    async fn poll(
        &mut self,
        d: usize,
        g: usize,
        writes: &mut mpsc::Receiver<WriteRequest>,
        writes_open: &mut bool,
    ) {
        let dev = &self.line.devices[d];
        let probing = self.states[d].online == Some(false);
        let attempts = if probing { 1 } else { 1 + dev.retries };
        let blocks = std::sync::Arc::clone(&self.states[d].groups[g].blocks);
        let started = Instant::now();
        let mut samples = Vec::new();
        let mut answered = false;
        let mut silent = None;
        for block in blocks.iter() {
            // Writes go between reads, so a write waits for one request at most.
            while *writes_open {
                match writes.try_recv() {
                    Ok(w) => self.write(w).await,
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => *writes_open = false,
                }
            }
            match self.read_block(d, block, attempts).await {
                Ok(data) => {
                    answered = true;
                    self.decode(d, block, &data, &mut samples);
                }
                Err(ReadFail::Refused(code)) => {
                    answered = true;
                    match self.isolate(d, block, code, attempts, &mut samples).await {
                        Ok(()) => {}
                        Err(ReadFail::LineDown(reason)) => return self.line_down(reason).await,
                        Err(ReadFail::Silent(reason)) => silent = Some(reason),
                        Err(_) => {}
                    }
                }
                Err(ReadFail::Exception(e)) => {
                    answered = true;
                    tracing::debug!(device = %dev.name, start = block.start, count = block.count, "{e}");
                    self.bad(d, &block.tags, &mut samples);
                }
                Err(ReadFail::Silent(reason)) => {
                    self.bad(d, &block.tags, &mut samples);
                    silent = Some(reason);
                    if probing {
                        break;
                    }
                }
                Err(ReadFail::LineDown(reason)) => return self.line_down(reason).await,
            }
        }
        let st = &mut self.states[d];
        st.reschedule(g, Instant::now());
        if answered {
            dev.metrics.latency(started.elapsed());
        }
        let ok = if answered {
            if let Some(reason) = silent {
                tracing::debug!(device = %dev.name, %reason, "part of a poll went unanswered");
            }
            st.report(dev, samples, self.tx).await
        } else {
            let reason = silent.unwrap_or_else(|| "no answer".into());
            st.went_offline(dev, DriverError::transient(reason), samples, self.tx)
                .await
        };
        if !ok {
            self.gone = true;
        }
    }

    /// Finds what in a refused block the device refuses: splits it in halves until each part is
    /// read or is a lone tag the device refuses. Parts read are handed on good, refused tags
    /// bad, and the device's plan is changed to keep clear of what was learned.
    async fn isolate(
        &mut self,
        d: usize,
        block: &ReadBlock,
        code: ExceptionCode,
        attempts: u8,
        samples: &mut Vec<Sample>,
    ) -> Result<(), ReadFail> {
        let dev = &self.line.devices[d];
        // The halves set tags' last values from reads other than their plan's blocks.
        self.states[d].forget_reads();
        let mut refused = vec![block.clone()];
        let mut learned = false;
        while let Some(b) = refused.pop() {
            if b.tags.len() == 1 {
                let t = &dev.tags[b.tags[0]];
                tracing::warn!(
                    device = %dev.name, table = t.table.name(), address = t.address,
                    "the device refuses this tag ({}); it is bad and read alone from now on",
                    super::link::exception_text(code)
                );
                self.states[d]
                    .refusals
                    .barriers
                    .push((t.table, t.address as u32, t.end()));
                self.bad(d, &b.tags, samples);
                learned = true;
                continue;
            }
            let mut sorted = b.tags.clone();
            sorted.sort_by_key(|&i| (dev.tags[i].address, dev.tags[i].end()));
            let (l, r) = sorted.split_at(sorted.len() / 2);
            let halves = [
                block_for(&dev.tags, l).expect("a half holds tags"),
                block_for(&dev.tags, r).expect("a half holds tags"),
            ];
            let mut read = 0;
            for half in &halves {
                match self.read_block(d, half, attempts).await {
                    Ok(data) => {
                        read += 1;
                        self.decode(d, half, &data, samples);
                    }
                    Err(ReadFail::Refused(_)) => refused.push(half.clone()),
                    Err(ReadFail::Exception(_)) => self.bad(d, &half.tags, samples),
                    Err(other) => {
                        for rest in refused.iter().chain(std::iter::once(half)) {
                            self.bad(d, &rest.tags, samples);
                        }
                        if learned {
                            self.states[d].replan(dev);
                        }
                        return Err(other);
                    }
                }
            }
            if read == 2 {
                // Both halves read alone: the union failed for what lies between them or for
                // its size.
                let (a, z) = (&halves[0], &halves[1]);
                let st = &mut self.states[d];
                if z.start as u32 > a.end() {
                    tracing::warn!(
                        device = %dev.name, table = b.table.name(), from = a.end(), to = z.start,
                        "the device refuses a read across these unused addresses; planning around them"
                    );
                    st.refusals
                        .barriers
                        .push((b.table, a.end(), z.start as u32));
                    learned = true;
                } else if a.count.max(z.count) < b.count {
                    let cap = a.count.max(z.count);
                    tracing::warn!(
                        device = %dev.name, table = b.table.name(), refused = b.count, cap,
                        "the device refuses requests this large; reading at most {cap} at a time"
                    );
                    let entry = st.refusals.size_caps.entry(b.table).or_insert(cap);
                    *entry = (*entry).min(cap);
                    learned = true;
                }
            }
        }
        if learned {
            self.states[d].replan(dev);
        }
        Ok(())
    }

    fn decode(&mut self, d: usize, block: &ReadBlock, data: &ReadData, samples: &mut Vec<Sample>) {
        let dev = &self.line.devices[d];
        let ts_ms = now_ms();
        dev.metrics.good_read(ts_ms);
        if let ReadData::Registers(regs) = data {
            if self.states[d].same_as_last_read(block, regs) {
                return;
            }
        }
        for &i in &block.tags {
            let tag = &dev.tags[i];
            let value = match data {
                ReadData::Registers(regs) => tag.decode_registers(block.start, regs),
                ReadData::Bits(bits) => tag.decode_bits(block.start, bits),
            };
            self.states[d].changed(dev, i, value, ts_ms, samples);
        }
    }

    fn bad(&mut self, d: usize, tags: &[usize], samples: &mut Vec<Sample>) {
        let dev = &self.line.devices[d];
        let ts_ms = now_ms();
        self.states[d].forget_reads();
        for &i in tags {
            self.states[d].changed(dev, i, None, ts_ms, samples);
        }
    }

    async fn write(&mut self, w: WriteRequest) {
        let result = self.try_write(w.tag, w.value).await;
        if let Err(e) = &result {
            tracing::warn!(tag = w.tag.0, "modbus write failed: {e}");
        }
        let _ = w.reply.send(result);
    }

    /// A busy device or an unreachable gateway path is tried again and, if it stays so, a
    /// transient failure; any other exception is the device's refusal.
    async fn try_write(&mut self, tag: TagId, value: Value) -> Result<(), DriverError> {
        let &(d, i) = self.by_tag.get(&tag).ok_or_else(|| {
            DriverError::configuration(format!("tag #{} is not on this Modbus line", tag.0))
        })?;
        let dev = &self.line.devices[d];
        let t = &dev.tags[i];
        if !t.writable {
            return Err(DriverError::configuration(format!(
                "tag #{} of device {:?} is not writable (`write = true` in its config)",
                tag.0, dev.name
            )));
        }
        let op = write_op(dev, i, value).map_err(DriverError::configuration)?;
        let mut last = String::new();
        for _ in 0..1 + dev.retries {
            let link = self.ensure_link().await.map_err(DriverError::transient)?;
            let result = link
                .write(dev.unit, &op, dev.timeout, dev.request_gap)
                .await;
            dev.metrics.request(result.is_ok());
            match result {
                Ok(()) => {
                    self.states[d].hurry(i, Instant::now());
                    return Ok(());
                }
                Err(CallError::Exception(code)) => match kind(code) {
                    ExceptionKind::Busy | ExceptionKind::Unreachable => {
                        last = CallError::Exception(code).to_string();
                        tokio::time::sleep(dev.request_gap.max(Duration::from_millis(50))).await;
                    }
                    _ => {
                        return Err(DriverError::refused(format!(
                            "{} at {} {}: {}",
                            dev.name,
                            t.table.name(),
                            t.address,
                            CallError::Exception(code)
                        )))
                    }
                },
                Err(e) => {
                    if e.poisons_link() {
                        if let Some(link) = self.link.take() {
                            link.close().await;
                        }
                    }
                    last = e.to_string();
                }
            }
        }
        Err(DriverError::transient(format!("{}: {last}", dev.name)))
    }
}

/// The request that writes `value` to tag `i` of `dev`, in the tag's encoding.
pub fn write_op(dev: &ModbusDevice, i: usize, value: Value) -> Result<WriteOp, String> {
    let t = &dev.tags[i];
    let on = |v: Value| match v {
        Value::Bool(b) => Ok(b),
        Value::Int(0) | Value::UInt(0) => Ok(false),
        Value::Int(1) | Value::UInt(1) => Ok(true),
        other => Err(format!("expected true or false, got {other:?}")),
    };
    match t.table {
        Table::Coil => {
            let b = on(value)?;
            Ok(if dev.single_writes {
                WriteOp::Coil(t.address, b)
            } else {
                WriteOp::Coils(t.address, vec![b])
            })
        }
        Table::Holding if t.bit.is_some() => {
            let b = on(value)?;
            let bit = t.bit.unwrap_or(0).min(15);
            // Where the bit lies in the register as sent, with the tag's byte order.
            let pattern =
                super::encoding::encode(Value::UInt(1 << bit), super::DataType::U16, t.order, None)
                    .map_err(|e| e.to_string())?[0];
            Ok(WriteOp::MaskRegister(
                t.address,
                !pattern,
                if b { pattern } else { 0 },
            ))
        }
        Table::Holding => {
            let regs = t.encode_registers(value).map_err(|e| e.to_string())?;
            Ok(if regs.len() == 1 && dev.single_writes {
                WriteOp::Register(t.address, regs[0])
            } else {
                WriteOp::Registers(t.address, regs)
            })
        }
        Table::Input | Table::DiscreteInput => Err(format!(
            "{} {} is read-only in Modbus",
            t.table.name(),
            t.address
        )),
    }
}
