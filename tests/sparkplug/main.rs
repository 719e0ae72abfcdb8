//! Sparkplug B against pysparkplug as the primary host: births, data, commands, several MQTT
//! servers, and the generated payload code.

#[path = "../common/mod.rs"]
mod common;
mod host;
#[path = "../ops_support/mod.rs"]
mod ops_support;

mod sparkplug;
mod sparkplug_failover;
mod sparkplug_proto;
