//! Sparkplug's multiple MQTT servers (Sparkplug 3.0, "Primary Host Application STATE in Multiple
//! MQTT Server Topologies"): the brokers of `[mqtt] urls` in order, the edge node connected to
//! one of them at a time, and when it moves to the next (docs/SPARKPLUG.md "Several MQTT servers").
//!
//! - **The server lost** (a connection dropped or refused): it has `failover_after_s` to come
//!   back, then the next server is tried, and the next at every failed attempt: the JSON side's
//!   rule and code (forwarder/failover.rs [`Picker`]), so both sides of a cell move alike.
//! - **The primary host offline on this server** once the node is born there (a valid offline
//!   STATE): NDEATH, disconnect, the next server at once (`tck-id-…-multiple-servers-walk`).
//! - **Not born yet on this server**: an offline STATE sends the node on at once while it has not
//!   tried every server since its last birth; after a whole round, or when no online STATE comes
//!   at all, it waits `failover_after_s` for the host there before it moves on. A host offline
//!   everywhere costs one connect per server per `failover_after_s`, not a loop of connects.
//! - **No return to the first server**: the specification lets a node stay while its session is
//!   intact and the host is online there, and a move would cost the host a death and a birth.
//!
//! With one server nothing moves: the node reconnects to it and waits for the host there, as
//! before the list existed.

use crate::forwarder::failover::{Next, Picker};
use rumqttc::MqttOptions;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// The edge node's MQTT servers and which one the next connection goes to (the sink asks
/// [`Servers::options`] at each CONNECT).
pub struct Servers {
    options: Vec<MqttOptions>,
    /// `mqtt://host:port`, as the log names them.
    urls: Vec<String>,
    failover_after: Duration,
    walk: Mutex<Walk>,
}

struct Walk {
    picker: Picker,
    /// Connections made since the last NBIRTH: a whole round of the list when it reaches the
    /// number of servers.
    since_birth: usize,
}

impl Servers {
    /// The options of the server to connect to next (each connect adds its own will).
    pub fn options(&self) -> MqttOptions {
        self.options[self.index()].clone()
    }

    /// `servers`: (url, options) in order of preference; at least one.
    pub fn new(servers: Vec<(String, MqttOptions)>, failover_after: Duration) -> Servers {
        assert!(!servers.is_empty(), "a Sparkplug edge node needs a server");
        let (urls, options): (Vec<_>, Vec<_>) = servers.into_iter().unzip();
        Servers {
            walk: Mutex::new(Walk {
                picker: Picker::new(urls.len(), failover_after),
                since_birth: 0,
            }),
            options,
            urls,
            failover_after,
        }
    }

    pub fn len(&self) -> usize {
        self.urls.len()
    }

    pub fn many(&self) -> bool {
        self.len() > 1
    }

    /// The server connected to (or about to be), by its place in the list.
    pub fn index(&self) -> usize {
        self.walk().picker.node()
    }

    pub fn url(&self) -> &str {
        &self.urls[self.index()]
    }

    /// How long a lost server has to come back, and how long the node waits on a server for the
    /// primary host to be online there.
    pub fn failover_after(&self) -> Duration {
        self.failover_after
    }

    fn walk(&self) -> std::sync::MutexGuard<'_, Walk> {
        // A panic while holding it cannot leave a half-made choice: every field is set whole.
        self.walk.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A CONNACK from the current server.
    pub fn connected(&self) {
        let mut w = self.walk();
        w.picker.connected();
        w.since_birth += 1;
    }

    /// An NBIRTH went out on the current server.
    pub fn born(&self) {
        self.walk().since_birth = 0;
    }

    /// Not born here, the host offline: whether to move on at once (a round of the list since
    /// the last birth is not complete) rather than wait for the host on this server.
    pub fn moves_on_at_once(&self) -> bool {
        self.many() && self.walk().since_birth < self.len()
    }

    /// The connection ended or the attempt failed (`had_connack`: after a CONNACK): another
    /// server next, or the same one again, no later than `at_most` if it is to be left then.
    pub fn lost(&self, had_connack: bool) -> Next {
        let (from, next) = {
            let mut w = self.walk();
            let from = w.picker.node();
            (from, w.picker.lost(had_connack, Instant::now()))
        };
        match next {
            Next::Move(to) => {
                tracing::warn!(
                    from = %self.urls[from],
                    to = %self.urls[to],
                    failover_after_s = self.failover_after.as_secs(),
                    "Sparkplug server not back within the failover time: trying the next one"
                );
            }
            Next::Again { .. } => {}
        }
        next
    }

    /// Leaves the current server for the next one on purpose: the primary host is not online
    /// there. With one server the node stays.
    pub fn move_on(&self) {
        if !self.many() {
            return;
        }
        let (from, to) = {
            let mut w = self.walk();
            (w.picker.node(), w.picker.leave())
        };
        tracing::info!(
            from = %self.urls[from],
            to = %self.urls[to],
            "Sparkplug primary host not online on this server: moving to the next one"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(n: usize) -> Servers {
        servers_failing_over_after(n, Duration::from_secs(3))
    }

    fn servers_failing_over_after(n: usize, after: Duration) -> Servers {
        let list = (0..n)
            .map(|i| {
                let url = format!("mqtt://127.0.0.1:{}", 1883 + i);
                let opts = MqttOptions::new("c", "127.0.0.1", 1883 + i as u16);
                (url, opts)
            })
            .collect();
        Servers::new(list, after)
    }

    #[test]
    fn the_connect_loop_gets_the_chosen_servers_options() {
        let s = servers(3);
        assert_eq!(s.options().broker_address().1, 1883);
        s.connected();
        s.move_on();
        // What sink.rs does at each CONNECT.
        let opts: MqttOptions = s.options();
        assert_eq!(opts.broker_address().1, 1884);
        assert_eq!(s.url(), "mqtt://127.0.0.1:1884");
    }

    #[test]
    fn a_lost_server_has_the_failover_time_then_the_next_is_tried() {
        let s = servers_failing_over_after(2, Duration::from_millis(50));
        s.connected();
        assert!(
            matches!(s.lost(true), Next::Again { at_most } if at_most <= Duration::from_millis(50)),
            "tried again first, within the failover time"
        );
        assert_eq!(s.index(), 0);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(
            s.lost(false),
            Next::Move(1),
            "not back within the failover time"
        );
        assert_eq!(s.index(), 1);
    }

    #[test]
    fn an_offline_host_moves_the_node_on_at_once_until_a_round_is_done() {
        let s = servers(2);
        s.connected();
        s.born();
        // Born on the first, the host goes offline there: the second, at once.
        s.move_on();
        s.connected();
        assert!(
            s.moves_on_at_once(),
            "offline on the second too: back to the first"
        );
        s.move_on();
        s.connected();
        assert_eq!(s.index(), 0);
        assert!(
            !s.moves_on_at_once(),
            "every server tried: wait for the host here"
        );
        s.born();
        s.move_on();
        s.connected();
        assert!(s.moves_on_at_once(), "a birth starts a new round");
    }

    #[test]
    fn one_server_is_never_left() {
        let s = servers(1);
        s.connected();
        s.move_on();
        assert!(!s.moves_on_at_once());
        assert_eq!(
            s.lost(true),
            Next::Again {
                at_most: Duration::MAX
            }
        );
        assert_eq!(s.index(), 0);
    }
}
