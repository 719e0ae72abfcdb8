//! An embedded MQTT broker (rumqttd) for `mes-edge demo`, so the demo needs no Mosquitto.
//!
//! One MQTT 3.1.1 (v4) listener on 127.0.0.1, plain TCP, no authentication; no MQTT 5,
//! websocket, console, Prometheus or metrics. Limits: payloads up to 256 KiB, 100 QoS 1/2
//! messages in flight per connection, 10 s for a client to send CONNECT after the TCP
//! connect, 256 connections. Persistent sessions (`clean_session = false`) work, but live
//! in the broker's memory only.
//!
//! There is no shutdown: rumqttd's `Broker::start` never returns and has no stop handle, so
//! the broker's threads run until the process exits. Call [`start`] once per process (each
//! call starts another broker on another port).
//!
//! Logging: rumqttd logs through `tracing`: several `info` lines per connection and an
//! `error` line (`router-drop`) for every clean MQTT DISCONNECT, including the start-up
//! probe's. Its threads
//! are its own, so it cannot be quieted from here: add the directive [`QUIET_LOG_DIRECTIVE`]
//! to the demo's `EnvFilter` (e.g. `"info,rumqttd=off"`) unless the user set `RUST_LOG`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// `EnvFilter` directive that silences rumqttd's own log lines.
pub const QUIET_LOG_DIRECTIVE: &str = "rumqttd=off";

/// Largest PUBLISH payload the broker accepts.
pub const MAX_PAYLOAD: usize = 256 * 1024;
/// QoS 1/2 messages in flight per connection.
pub const MAX_INFLIGHT: usize = 100;

/// How long [`start`] waits for the broker to answer an MQTT CONNECT.
const STARTUP_DEADLINE: Duration = Duration::from_secs(10);
/// Attempts when the caller lets us pick the port (another process may take it between
/// our probe and rumqttd's bind).
const FREE_PORT_ATTEMPTS: u32 = 3;

/// Starts the broker on `127.0.0.1:port` (port 0: a free port chosen here) on its own
/// threads, waits until it answers an MQTT CONNECT, and returns its address.
///
/// Fails if the port is taken, or if the broker does not come up within 10 s.
pub fn start(port: u16) -> anyhow::Result<SocketAddr> {
    if port != 0 {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        // rumqttd only logs a failed bind; find out here, and do not mistake another broker
        // already listening on that port for ours.
        drop(
            TcpListener::bind(addr).with_context(|| {
                format!("MQTT port {addr} is not available for the demo broker")
            })?,
        );
        return start_on(addr);
    }
    let mut attempt = 1;
    loop {
        let addr = free_port()?;
        match start_on(addr) {
            Ok(addr) => return Ok(addr),
            Err(err) if attempt < FREE_PORT_ATTEMPTS => {
                tracing::warn!(%addr, error = %format!("{err:#}"), "demo broker did not start; trying another port");
                attempt += 1;
            }
            Err(err) => return Err(err),
        }
    }
}

fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context("finding a free port for the demo broker")?;
    let port = listener.local_addr()?.port();
    drop(listener);
    Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
}

fn config(addr: SocketAddr) -> Config {
    let connections = ConnectionSettings {
        connection_timeout_ms: 10_000,
        max_payload_size: MAX_PAYLOAD,
        max_inflight_count: MAX_INFLIGHT,
        auth: None,
        external_auth: None,
        // Subscribing to a filter nobody configured up front is allowed.
        dynamic_filters: true,
    };
    let listener = ServerSettings {
        name: "mes-edge-demo-mqtt".to_owned(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    let router = RouterConfig {
        max_connections: 256,
        max_outgoing_packet_count: 200,
        // Per topic-filter in-memory log: 10 segments of 1 MiB.
        max_segment_size: 1024 * 1024,
        max_segment_count: 10,
        ..RouterConfig::default()
    };
    Config {
        id: 0,
        router,
        v4: Some(HashMap::from([("1".to_owned(), listener)])),
        ..Config::default()
    }
}

fn start_on(addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    let mut broker = Broker::new(config(addr));
    let thread = thread::Builder::new()
        .name("mqtt-broker".to_owned())
        .spawn(move || {
            // Returns only if every listener thread has ended (e.g. the bind failed; rumqttd
            // logs that itself).
            match broker.start() {
                Ok(()) => tracing::error!(%addr, "embedded MQTT broker stopped"),
                Err(err) => tracing::error!(%addr, error = %err, "embedded MQTT broker failed"),
            }
        })
        .context("spawning the demo broker thread")?;

    let deadline = Instant::now() + STARTUP_DEADLINE;
    loop {
        if thread.is_finished() {
            bail!("the demo MQTT broker on {addr} stopped during start-up (port taken?)");
        }
        match probe(addr) {
            Ok(()) => break,
            Err(err) if Instant::now() >= deadline => {
                return Err(err).context(format!(
                    "the demo MQTT broker on {addr} did not come up within {STARTUP_DEADLINE:?}"
                ));
            }
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
    tracing::info!(%addr, "embedded MQTT broker listening");
    // Detach: the broker runs until the process exits.
    drop(thread);
    Ok(addr)
}

/// One MQTT 3.1.1 handshake: CONNECT (clean session), expect CONNACK accepted, DISCONNECT.
/// Proves that the listener is up and the router answers, not only that a port is open.
fn probe(addr: SocketAddr) -> anyhow::Result<()> {
    const CLIENT_ID: &[u8] = b"mes-edge-demo-probe";
    let mut connect = vec![0x10, 0]; // CONNECT, remaining length patched below
    connect.extend_from_slice(&[0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04]); // protocol 3.1.1
    connect.push(0x02); // flags: clean session
    connect.extend_from_slice(&5u16.to_be_bytes()); // keep alive 5 s (rumqttd refuses 0)
    connect.extend_from_slice(&(CLIENT_ID.len() as u16).to_be_bytes());
    connect.extend_from_slice(CLIENT_ID);
    connect[1] = (connect.len() - 2) as u8;

    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(&connect)?;
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack)?;
    if connack[0] != 0x20 || connack[1] != 0x02 || connack[3] != 0x00 {
        bail!("unexpected answer to MQTT CONNECT: {connack:02x?}");
    }
    // Best effort: the broker is up either way.
    let _ = stream.write_all(&[0xE0, 0x00]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::{AsyncClient, ConnectReturnCode, Event, EventLoop, MqttOptions, Packet, QoS};

    fn options(id: &str, addr: SocketAddr, clean_session: bool) -> MqttOptions {
        let mut opts = MqttOptions::new(id, addr.ip().to_string(), addr.port());
        opts.set_clean_session(clean_session);
        opts.set_keep_alive(Duration::from_secs(5));
        // rumqttc's own limit is 10 KiB each way unless raised.
        opts.set_max_packet_size(MAX_PAYLOAD + 1024, MAX_PAYLOAD + 1024);
        opts
    }

    async fn start_broker() -> SocketAddr {
        let addr = tokio::task::spawn_blocking(|| start(0))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(addr.ip(), Ipv4Addr::LOCALHOST);
        assert_ne!(addr.port(), 0);
        addr
    }

    /// Polls until an event matches `want`; returns every event seen, the match last.
    async fn until(eventloop: &mut EventLoop, want: impl Fn(&Event) -> bool) -> Vec<Event> {
        let mut seen = Vec::new();
        let res = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let ev = eventloop.poll().await.expect("MQTT connection failed");
                let done = want(&ev);
                seen.push(ev);
                if done {
                    break;
                }
            }
        })
        .await;
        assert!(res.is_ok(), "timed out; saw {seen:?}");
        seen
    }

    fn session_present(events: &[Event]) -> Option<bool> {
        events.iter().find_map(|e| match e {
            Event::Incoming(Packet::ConnAck(ack)) => {
                assert_eq!(ack.code, ConnectReturnCode::Success);
                Some(ack.session_present)
            }
            _ => None,
        })
    }

    #[tokio::test]
    async fn persistent_session_client_gets_its_own_qos1_publish() {
        let addr = start_broker().await;
        let (client, mut eventloop) =
            AsyncClient::new(options("mes-edge-broker-test", addr, false), 10);
        client
            .subscribe("mes/demo/#", QoS::AtLeastOnce)
            .await
            .unwrap();
        let seen = until(&mut eventloop, |e| {
            matches!(e, Event::Incoming(Packet::SubAck(_)))
        })
        .await;
        assert_eq!(
            session_present(&seen),
            Some(false),
            "a new client id has no session"
        );

        let payload = vec![0x5A; 100 * 1024]; // above rumqttc's 10 KiB default, below our 256 KiB
        client
            .publish(
                "mes/demo/press/count",
                QoS::AtLeastOnce,
                false,
                payload.clone(),
            )
            .await
            .unwrap();
        let mut puback = false;
        let mut received = None;
        let res = tokio::time::timeout(Duration::from_secs(10), async {
            while !(puback && received.is_some()) {
                match eventloop.poll().await.expect("MQTT connection failed") {
                    Event::Incoming(Packet::PubAck(_)) => puback = true,
                    Event::Incoming(Packet::Publish(p)) => received = Some(p),
                    _ => {}
                }
            }
        })
        .await;
        assert!(
            res.is_ok(),
            "no round trip: puback {puback}, received {}",
            received.is_some()
        );
        let p = received.unwrap();
        assert_eq!(p.qos, QoS::AtLeastOnce);
        assert_eq!(p.topic, "mes/demo/press/count");
        assert_eq!(p.payload.as_ref(), payload.as_slice());
    }

    #[tokio::test]
    async fn persistent_session_keeps_qos1_messages_while_offline() {
        let addr = start_broker().await;

        let (sub, mut sub_loop) =
            AsyncClient::new(options("mes-edge-offline-sub", addr, false), 10);
        sub.subscribe("mes/offline/#", QoS::AtLeastOnce)
            .await
            .unwrap();
        until(&mut sub_loop, |e| {
            matches!(e, Event::Incoming(Packet::SubAck(_)))
        })
        .await;
        sub.disconnect().await.unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while sub_loop.poll().await.is_ok() {}
        })
        .await;
        drop(sub_loop);

        let (publ, mut pub_loop) =
            AsyncClient::new(options("mes-edge-offline-pub", addr, true), 10);
        publ.publish("mes/offline/x", QoS::AtLeastOnce, false, "while away")
            .await
            .unwrap();
        until(&mut pub_loop, |e| {
            matches!(e, Event::Incoming(Packet::PubAck(_)))
        })
        .await;

        let (_sub, mut sub_loop) =
            AsyncClient::new(options("mes-edge-offline-sub", addr, false), 10);
        let seen = until(&mut sub_loop, |e| {
            matches!(e, Event::Incoming(Packet::Publish(_)))
        })
        .await;
        assert_eq!(session_present(&seen), Some(true));
        match seen.last() {
            Some(Event::Incoming(Packet::Publish(p))) => {
                assert_eq!(p.topic, "mes/offline/x");
                assert_eq!(p.payload.as_ref(), b"while away");
            }
            other => panic!("expected the queued publish, got {other:?}"),
        }
    }

    #[test]
    fn a_taken_port_is_an_error() {
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = start(port).unwrap_err();
        assert!(format!("{err:#}").contains("not available"), "{err:#}");
    }
}
