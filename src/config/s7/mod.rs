//! S7 in the cell config: its tags (`tag.rs`) and its devices resolved for the driver
//! (`device.rs`). Checks are in `check/s7.rs`.

pub mod device;
pub mod tag;
