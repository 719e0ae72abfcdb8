//! The cell as a whole against its peers: config checks, the demo, the harness itself, orders and
//! their actuals, process values, the store's tools, identity and upgrade.

#[path = "../common/mod.rs"]
mod common;
#[path = "../ops_support/mod.rs"]
mod ops_support;

mod config_check;
mod demo;
mod harness_smoke;
mod order_actuals;
mod orders;
mod outbox_tools;
mod process_values;
mod store_identity;
mod upgrade;
