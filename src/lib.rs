//! mes-edge: the MES execution layer of one production cell (ISA-95 level 3 at the cell).
//!
//! Data flows one way: drivers (in `mes-edge-drivers`) read the PLCs; the [`cell`] engine turns
//! readings into production events; the [`store`] commits each event with the state it came
//! from; the [`forwarder`] delivers the outbox to MOM over MQTT.

pub mod cell;
pub mod cli;
#[macro_use]
pub mod config;
pub mod control;
pub mod event;
pub mod forwarder;
pub mod logging;
pub mod ops;
pub mod orders;
pub mod protocols;
pub mod runtime;
pub mod sparkplug;
pub mod store;
pub mod vocabulary;

#[cfg(feature = "demo")]
pub mod demo;
