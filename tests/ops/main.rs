//! Running the cell unattended: /health and /metrics, reload, stop, a failing store, systemd, the
//! operator's control socket and the status page in real browsers.

#[path = "../common/mod.rs"]
mod common;
#[path = "../ops_support/mod.rs"]
mod ops_support;

mod control_socket;
mod ops_health;
mod ops_reload;
mod ops_stop;
mod ops_store_failure;
mod ops_systemd;
mod status_page;
