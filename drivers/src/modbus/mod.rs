//! Modbus over TCP, over a serial line (RTU), and RTU frames over TCP. Devices are grouped by
//! the line (connection) they are reached through; each line is polled by one task, every device
//! on its own schedule, its tags read in as few requests as the planner can pack them into, and
//! every change handed on as a [`crate::Sample`]. Writes arrive as [`crate::WriteRequest`]s and are
//! made between reads on the same connection.

pub mod commission;
mod device;
mod driver;
pub mod encoding;
mod line;
pub mod link;
pub mod plan;
mod tag;
pub mod transport;

pub use device::ModbusDevice;
pub use encoding::{ByteOrder, DataType};
pub use line::{run_line, write_op, ModbusLine};
pub use link::{CallError, Link, ReadData, WriteOp};
pub use tag::{ModbusTag, Table, MAX_READ_BITS, MAX_READ_REGISTERS};
pub use transport::{default_frame_gap, Parity, SerialSettings, Transport};
