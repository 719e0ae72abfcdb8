//! `[health]`: the listener of `/health`, `/metrics`, the status page and its API.

use crate::config::{CellFile, Problem, Seg};
use std::net::SocketAddr;

pub fn check(c: &CellFile, p: &mut Vec<Problem>) {
    let h = &c.health;
    if h.listen.parse::<SocketAddr>().is_err() {
        p.push(Problem::at(
            path!["health", "listen"],
            format!(
                "expected an IP address and port like \"127.0.0.1:9464\", found {:?}",
                h.listen
            ),
        ));
    }
    if h.max_undelivered_age_s == 0 {
        p.push(Problem::at(
            path!["health", "max_undelivered_age_s"],
            "expected an age of at least 1 s",
        ));
    }
}

/// Bound beyond loopback without a token file, the runtime starts but its page and API refuse
/// every request (src/ops/access.rs): not a reason to stop production, but the engineer who
/// opened the port wanted the page on the network and would otherwise learn of it from a 403.
pub fn warnings(c: &CellFile, w: &mut Vec<Problem>) {
    let h = &c.health;
    let beyond_loopback = h
        .listen
        .parse::<SocketAddr>()
        .is_ok_and(|a| !a.ip().is_loopback());
    if h.enabled && beyond_loopback && h.token_file.is_none() {
        w.push(Problem::at(
            path!["health", "listen"],
            "warning: not a loopback address and no `token_file`: the status page and /api/v1 will refuse every request (403), /health and /metrics stay open; set `token_file` (docs/STATUS-PAGE.md)",
        ));
    }
}
