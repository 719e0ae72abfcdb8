//! Modbus (TCP and RTU, pymodbus) and S7 (python-snap7) PLCs: encodings, faults, the CLIs and the
//! counter rules against a PLC on the wire.

#[path = "../common/mod.rs"]
mod common;

mod counter_rules;
mod modbus_cli;
mod modbus_encodings;
mod modbus_faults;
mod modbus_rtu;
mod s7;
mod s7_cli;
mod s7_dtl;
