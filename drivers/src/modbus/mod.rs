//! Modbus TCP: a device is polled on a fixed interval, its tags read in as few requests as the
//! planner can pack them into, and every change handed on as a [`crate::Sample`].

mod backoff;
mod device;
pub mod encoding;
pub mod plan;
mod tag;

pub use backoff::Backoff;
pub use device::{run_tcp, ModbusTcpDevice};
pub use encoding::{ByteOrder, DataType};
pub use tag::{ModbusTag, Table};
