//! OPC UA against asyncua servers: the cell end to end, the CLI, the server's clock, the driver, a
//! hostile server, a large address space and the oven run.

#[path = "../common/mod.rs"]
mod common;
#[path = "../ops_support/mod.rs"]
mod ops_support;

mod opcua_cell;
mod opcua_cli;
mod opcua_clock;
mod opcua_driver;
mod opcua_hostile;
mod opcua_scale;
mod oven;
