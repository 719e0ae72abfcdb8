//! Delivery to the plant's brokers: Mosquitto and RabbitMQ end to end, peers that misbehave, broker
//! failover and refusals, commands from MOM, TLS and logins.

#[path = "../common/mod.rs"]
mod common;
#[path = "../ops_support/mod.rs"]
mod ops_support;

mod backbone;
mod bad_peers;
mod broker_failover;
mod broker_refusals;
mod commands;
mod tls;
