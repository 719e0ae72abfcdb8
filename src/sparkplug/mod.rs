//! Sparkplug B: the cell as an edge node and its PLCs as devices, beside (or instead of) the
//! JSON events (docs/SPARKPLUG.md). A sink of its own over the same outbox: its own MQTT
//! session and its own delivery cursor, so the engine and the JSON forwarder do not change.

mod command_queue;
mod command_value;
mod commands;
mod devices;
mod guard;
mod inbound;
mod metrics;
mod payload;
#[allow(clippy::all, clippy::pedantic, missing_docs)]
#[rustfmt::skip]
pub mod proto;
mod servers;
mod session;
mod settings;
mod sink;
mod topics;
mod values;
mod wire;

pub use devices::{DeviceSpec, Devices, TagSpec};
pub use guard::{MAX_COMMAND_BYTES, MAX_INCOMING_PACKET, REBIRTH_WINDOW, STATE_AHEAD_MAX_MS};
pub use metrics::{Figures, MetricValue, NODE_METRICS};
pub use settings::{SparkplugSettings, Writes, SINK};
pub use sink::run;
pub use topics::Topics;

use crate::config::CellConfig;
use anyhow::Result;
use rumqttc::{MqttOptions, QoS};
use std::time::Duration;

/// The sink's settings from a config whose `[sparkplug]` is enabled (None otherwise). Its
/// session goes to the brokers of `[mqtt] url` or `urls`, one at a time (servers.rs), with
/// each broker's login and TLS (as the JSON side's), as MQTT 3.1.1 with a clean session (Sparkplug's state lives in
/// births, not in broker sessions), client id `{client id}-spb`.
pub fn settings(c: &CellConfig, writes: Option<Writes>) -> Result<Option<SparkplugSettings>> {
    let Some(sp) = c.sparkplug.as_ref().filter(|s| s.enabled) else {
        return Ok(None);
    };
    let m = &c.mqtt;
    let servers = c
        .brokers
        .iter()
        .map(|b| Ok((b.url.to_string(), server_options(c, b)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(SparkplugSettings {
        mqtt: servers::Servers::new(servers, Duration::from_secs(m.failover_after_s)),
        topics: Topics {
            group: sp.group_id(&c.cell),
            node: sp.edge_node_id(&c.cell),
        },
        primary_host: sp.primary_host_id.clone(),
        qos: if sp.qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        },
        only_output: !sp.json,
        window: m.inflight.max(1) as usize,
        devices: Devices::from_config(c),
        writes,
        probe: crate::ops::SparkplugProbe::default(),
    }))
}

/// One server's session options: every server of the list gets the same client id; each its
/// own TLS settings and login (`[mqtt] urls` entries, config/broker.rs), read as the JSON
/// side reads them.
fn server_options(c: &CellConfig, broker: &crate::config::Broker) -> Result<MqttOptions> {
    use crate::forwarder::options::{login, tls_transport};
    let m = &c.mqtt;
    let id = format!("{}-spb", crate::forwarder::client_id(c));
    let mut opts = MqttOptions::new(id, broker.url.host.clone(), broker.url.port);
    opts.set_clean_session(true);
    opts.set_keep_alive(Duration::from_secs(m.keep_alive_s));
    opts.set_inflight(m.inflight.max(1));
    // Above the largest command taken (MAX_COMMAND_BYTES): a bigger one is refused with a log
    // line instead of breaking the connection, as rumqttc does with a packet over its limit.
    opts.set_max_packet_size(MAX_INCOMING_PACKET, 1 << 20);
    if let Some((user, pass)) = login(broker)? {
        opts.set_credentials(user, pass);
    }
    if let Some(tls) = tls_transport(broker)? {
        opts.set_transport(tls);
    }
    Ok(opts)
}
