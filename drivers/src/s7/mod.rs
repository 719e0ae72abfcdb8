//! Siemens S7 over S7comm (PUT/GET) on ISO-on-TCP: S7-300/400, and S7-1200/1500 with PUT/GET
//! allowed and absolute addressing (docs/S7.md). One connection per CPU, polled by one task;
//! tags are read in multi-item requests packed to the negotiated PDU, writes are made between
//! reads on the same connection.

pub mod address;
mod clock;
pub mod commission;
mod device;
mod driver;
pub mod frame;
pub mod link;
pub mod plan;
pub mod tag;

pub use address::{Address, Area, Width};
pub use device::{run, write_item, S7Device};
pub use link::{Endpoint, Link, LinkError};
pub use tag::{S7Tag, S7Type};
