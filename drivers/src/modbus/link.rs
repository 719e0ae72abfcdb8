//! One open connection to a line (a TCP connection or a serial port) and the requests made on
//! it. Every request is bounded by a timeout (tokio-modbus has none), keeps the line's minimum
//! silence before it, and has its reply checked against what was asked: a reply of the wrong
//! length or shape is an error for that request, never a panic and never a value.

use super::tag::Table;
use super::transport::{Parity, SerialSettings, Transport};
use std::borrow::Cow;
use std::time::Duration;
use tokio::time::{timeout, Instant};
use tokio_modbus::client::{rtu, tcp, Client, Context};
use tokio_modbus::slave::SlaveContext;
use tokio_modbus::{ExceptionCode, Request, Response, Slave};

/// How a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The device answered with a Modbus exception.
    Exception(ExceptionCode),
    /// No answer within the timeout. The connection is given up: a late reply would otherwise
    /// be taken as the answer to the next request.
    NoAnswer(String),
    /// The connection broke, or the bytes that came back were not a Modbus reply to this
    /// request. The connection is given up, as after a timeout.
    Broken(String),
    /// A well-formed reply that does not answer the request (wrong length, wrong echo).
    BadReply(String),
}

impl CallError {
    /// The device's refusal (an exception), or a fault of the connection.
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            CallError::Exception(_) => crate::ErrorKind::Refused,
            _ => crate::ErrorKind::Transient,
        }
    }

    /// Whether the connection must be reopened before the next request.
    pub fn poisons_link(&self) -> bool {
        matches!(self, CallError::NoAnswer(_) | CallError::Broken(_))
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Exception(code) => write!(f, "Modbus exception {}", exception_text(*code)),
            CallError::NoAnswer(s) | CallError::Broken(s) | CallError::BadReply(s) => {
                f.write_str(s)
            }
        }
    }
}

/// The exception code as a manual names it, with its number.
pub fn exception_text(code: ExceptionCode) -> String {
    let name = match code {
        ExceptionCode::IllegalFunction => "illegal function",
        ExceptionCode::IllegalDataAddress => "illegal data address",
        ExceptionCode::IllegalDataValue => "illegal data value",
        ExceptionCode::ServerDeviceFailure => "server device failure",
        ExceptionCode::Acknowledge => "acknowledge",
        ExceptionCode::ServerDeviceBusy => "server device busy",
        ExceptionCode::MemoryParityError => "memory parity error",
        ExceptionCode::GatewayPathUnavailable => "gateway path unavailable",
        ExceptionCode::GatewayTargetDevice => "gateway target device failed to respond",
        ExceptionCode::Custom(_) => "(not a standard code)",
    };
    format!("0x{:02X} {name}", u8::from(code))
}

/// Data from one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadData {
    Registers(Vec<u16>),
    Bits(Vec<bool>),
}

/// One write request as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// FC 5
    Coil(u16, bool),
    /// FC 15
    Coils(u16, Vec<bool>),
    /// FC 6
    Register(u16, u16),
    /// FC 16
    Registers(u16, Vec<u16>),
    /// FC 22: register = (register AND and_mask) OR (or_mask AND NOT and_mask); sets single bits
    /// without a read-modify-write race with the PLC program.
    MaskRegister(u16, u16, u16),
}

impl WriteOp {
    pub fn function(&self) -> u8 {
        match self {
            WriteOp::Coil(..) => 5,
            WriteOp::Coils(..) => 15,
            WriteOp::Register(..) => 6,
            WriteOp::Registers(..) => 16,
            WriteOp::MaskRegister(..) => 22,
        }
    }
}

pub struct Link {
    ctx: Context,
    /// Silence kept before every request on this line.
    frame_gap: Duration,
    last_io: Option<Instant>,
    described: String,
}

impl Link {
    /// Connects (TCP) or opens the port (serial), within `limit`.
    pub async fn open(transport: &Transport, limit: Duration) -> Result<Link, String> {
        let described = transport.to_string();
        let (ctx, frame_gap) = match transport {
            Transport::Tcp { address } => {
                let stream = connect_tcp(address, limit).await?;
                (tcp::attach(stream), Duration::ZERO)
            }
            Transport::RtuOverTcp { address } => {
                let stream = connect_tcp(address, limit).await?;
                (rtu::attach(stream), Duration::ZERO)
            }
            Transport::Rtu(s) => (rtu::attach(open_serial(s)?), s.frame_gap),
        };
        Ok(Link {
            ctx,
            frame_gap,
            last_io: None,
            described,
        })
    }

    pub fn describe(&self) -> &str {
        &self.described
    }

    /// Reads `count` registers or bits from `table` of `unit`.
    pub async fn read(
        &mut self,
        unit: u8,
        table: Table,
        start: u16,
        count: u16,
        limit: Duration,
        gap: Duration,
    ) -> Result<ReadData, CallError> {
        let request = match table {
            Table::Coil => Request::ReadCoils(start, count),
            Table::DiscreteInput => Request::ReadDiscreteInputs(start, count),
            Table::Holding => Request::ReadHoldingRegisters(start, count),
            Table::Input => Request::ReadInputRegisters(start, count),
        };
        // Named only when something goes wrong: a poll makes thousands of these a second.
        let what = || format!("read {} {start}+{count}", table.name());
        let response = self.call(unit, request, limit, gap, &what).await?;
        let n = count as usize;
        match response {
            Response::ReadHoldingRegisters(words) | Response::ReadInputRegisters(words) => {
                if words.len() != n {
                    return Err(CallError::BadReply(format!(
                        "{}: the reply holds {} registers",
                        what(),
                        words.len()
                    )));
                }
                Ok(ReadData::Registers(words))
            }
            Response::ReadCoils(mut bits) | Response::ReadDiscreteInputs(mut bits) => {
                // Bits come packed in whole bytes: up to 7 padding bits past the count.
                if bits.len() < n || bits.len() >= n + 8 {
                    return Err(CallError::BadReply(format!(
                        "{}: the reply holds {} bits",
                        what(),
                        bits.len()
                    )));
                }
                bits.truncate(n);
                Ok(ReadData::Bits(bits))
            }
            other => Err(CallError::BadReply(format!(
                "{}: answered with {other:?}",
                what()
            ))),
        }
    }

    pub async fn write(
        &mut self,
        unit: u8,
        op: &WriteOp,
        limit: Duration,
        gap: Duration,
    ) -> Result<(), CallError> {
        let (request, what) = match op {
            WriteOp::Coil(a, v) => (Request::WriteSingleCoil(*a, *v), format!("write coil {a}")),
            WriteOp::Coils(a, v) => (
                Request::WriteMultipleCoils(*a, Cow::Borrowed(v)),
                format!("write coils {a}+{}", v.len()),
            ),
            WriteOp::Register(a, v) => (
                Request::WriteSingleRegister(*a, *v),
                format!("write register {a}"),
            ),
            WriteOp::Registers(a, v) => (
                Request::WriteMultipleRegisters(*a, Cow::Borrowed(v)),
                format!("write registers {a}+{}", v.len()),
            ),
            WriteOp::MaskRegister(a, and, or) => (
                Request::MaskWriteRegister(*a, *and, *or),
                format!("mask write register {a}"),
            ),
        };
        let response = self
            .call(unit, request, limit, gap, &|| what.clone())
            .await?;
        // The reply echoes what was written; one that does not was not our write.
        let echoed = match (op, &response) {
            (WriteOp::Coil(a, v), Response::WriteSingleCoil(ra, rv)) => a == ra && v == rv,
            (WriteOp::Coils(a, v), Response::WriteMultipleCoils(ra, rn)) => {
                a == ra && v.len() == *rn as usize
            }
            (WriteOp::Register(a, v), Response::WriteSingleRegister(ra, rv)) => a == ra && v == rv,
            (WriteOp::Registers(a, v), Response::WriteMultipleRegisters(ra, rn)) => {
                a == ra && v.len() == *rn as usize
            }
            (WriteOp::MaskRegister(a, and, or), Response::MaskWriteRegister(ra, rand, ror)) => {
                a == ra && and == rand && or == ror
            }
            _ => false,
        };
        if echoed {
            Ok(())
        } else {
            Err(CallError::BadReply(format!(
                "{what}: the reply {response:?} does not echo the write"
            )))
        }
    }

    async fn call(
        &mut self,
        unit: u8,
        request: Request<'_>,
        limit: Duration,
        gap: Duration,
        what: &(dyn Fn() -> String + Sync),
    ) -> Result<Response, CallError> {
        // No timer when no silence is due (Modbus TCP without a request gap, or a gap already
        // past): most requests.
        let quiet = gap.max(self.frame_gap);
        if let Some(last) = self.last_io.filter(|_| !quiet.is_zero()) {
            if last + quiet > Instant::now() {
                tokio::time::sleep_until(last + quiet).await;
            }
        }
        self.ctx.set_slave(Slave(unit));
        let result = timeout(limit, self.ctx.call(request)).await;
        self.last_io = Some(Instant::now());
        match result {
            Ok(Ok(Ok(response))) => Ok(response),
            Ok(Ok(Err(code))) => Err(CallError::Exception(code)),
            Ok(Err(e)) => Err(CallError::Broken(format!("{} (unit {unit}): {e}", what()))),
            Err(_) => Err(CallError::NoAnswer(format!(
                "{} (unit {unit}): no answer within {limit:?}",
                what()
            ))),
        }
    }

    /// Closes the connection, waiting at most a moment for a TCP peer.
    pub async fn close(mut self) {
        let _ = timeout(Duration::from_millis(200), self.ctx.disconnect()).await;
    }
}

async fn connect_tcp(address: &str, limit: Duration) -> Result<tokio::net::TcpStream, String> {
    let attempt = async {
        let mut last = std::io::Error::other("the address resolves to nothing");
        for addr in tokio::net::lookup_host(address).await? {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    };
    match timeout(limit, attempt).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(format!("connect to {address}: {e}")),
        Err(_) => Err(format!("connect to {address}: timed out after {limit:?}")),
    }
}

fn open_serial(s: &SerialSettings) -> Result<tokio_serial::SerialStream, String> {
    use tokio_serial::{DataBits, StopBits};
    let data_bits = match s.data_bits {
        5 => DataBits::Five,
        6 => DataBits::Six,
        7 => DataBits::Seven,
        _ => DataBits::Eight,
    };
    let parity = match s.parity {
        Parity::None => tokio_serial::Parity::None,
        Parity::Even => tokio_serial::Parity::Even,
        Parity::Odd => tokio_serial::Parity::Odd,
    };
    let stop_bits = if s.stop_bits == 2 {
        StopBits::Two
    } else {
        StopBits::One
    };
    let builder = tokio_serial::new(&s.port, s.baud_rate)
        .data_bits(data_bits)
        .parity(parity)
        .stop_bits(stop_bits)
        .flow_control(tokio_serial::FlowControl::None);
    tokio_serial::SerialStream::open(&builder).map_err(|e| format!("open {}: {e}", s.port))
}
