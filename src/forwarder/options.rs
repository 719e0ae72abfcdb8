use super::failover::{Brokers, Node};
use super::link::Options;
use crate::config::{Broker, BrokerAccess, CellConfig, MqttVersion};
use anyhow::{Context, Result};
use rumqttc::{LastWill, MqttOptions, QoS, TlsConfiguration, Transport};
use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use std::time::Duration;

/// `{topic_root}/{cell path}/status`: `online` (retained) while the runtime is connected,
/// `offline` after a clean stop or, as the Last Will, when the connection died.
pub fn status_topic(c: &CellConfig) -> String {
    format!("{}/{}/status", c.mqtt.topic_root, c.cell.joined())
}

/// The client id: configured, or derived from the cell path so that two cells never share one
/// (a broker disconnects the older of two clients with the same id).
pub fn client_id(c: &CellConfig) -> String {
    c.mqtt
        .client_id
        .clone()
        .unwrap_or_else(|| format!("mes-edge-{}", c.cell.levels().join("-")))
}

/// The largest packet the cell takes from the broker: 4 times the largest command the engine
/// accepts (64 KiB), so that a command somewhat over it still gets its rejection as a reply.
/// A packet over this breaks the connection (and, unacknowledged, comes back at the next one):
/// MOM must keep commands under it. With the engine's command queue (`COMMAND_QUEUE` in the
/// runtime) this bounds the memory commands can take: 64 × 256 KiB = 16 MiB.
pub const MAX_INCOMING_PACKET: usize = 256 * 1024;

/// The same under MQTT 3.1.1, which has no way to tell the broker (see `options_for`). The
/// intake keeps no more than 64 KiB of any command, so this costs memory only while one such
/// packet is read.
pub const MAX_INCOMING_PACKET_311: usize = 16 << 20;

/// Builds the client options, MQTT 5 unless the config says 3.1.1. Secrets are read here,
/// once, and never logged (a secret file others can read is warned of with the config's
/// warnings: config/check/secrets.rs).
/// One set per broker in `[mqtt] urls` (or the one `url`), in order, with what failover needs.
pub fn mqtt_options(c: &CellConfig) -> Result<Brokers> {
    let m = &c.mqtt;
    let nodes = c
        .brokers
        .iter()
        .map(|broker| {
            Ok(Node {
                url: broker.url.to_string(),
                options: options_for(c, broker, client_id(c), true)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    // The primary is asked whether it is back by a client of its own: the cell's id would take
    // over its session on a cluster that shares sessions.
    let primary_probe = options_for(c, c.primary(), format!("{}-probe", client_id(c)), false)?;
    Ok(Brokers {
        nodes,
        failover_after: Duration::from_secs(m.failover_after_s),
        prefer_primary: m.prefer_primary,
        resend_window: Duration::from_secs(m.resend_window_s),
        primary_probe,
    })
}

/// The options of the process values' own connection (forwarder/values.rs), one per broker:
/// its own client id (`{client id}-values`), a clean session, no Last Will (the events'
/// connection owns the status topic) and nothing subscribed.
pub fn values_options(c: &CellConfig) -> Result<Vec<Options>> {
    let id = format!("{}-values", client_id(c));
    c.brokers
        .iter()
        .map(|broker| options_for(c, broker, id.clone(), false))
        .collect()
}

fn options_for(c: &CellConfig, broker: &Broker, id: String, events: bool) -> Result<Options> {
    let m = &c.mqtt;
    let url = &broker.url;
    let login = login(broker)?;
    let tls = tls_transport(broker)?;
    let keep_alive = Duration::from_secs(m.keep_alive_s);
    // Incoming packets are bounded so that the command queue is bounded in bytes (see
    // MAX_INCOMING_PACKET); outgoing ones are our events.
    let (incoming_max, outgoing_max) = (MAX_INCOMING_PACKET, 1 << 20);
    Ok(match m.protocol_version {
        MqttVersion::V5 => {
            let mut opts = rumqttc::v5::MqttOptions::new(id, url.host.clone(), url.port);
            opts.set_keep_alive(keep_alive);
            opts.set_outgoing_inflight_upper_limit(m.inflight);
            opts.set_max_packet_size(Some(incoming_max as u32));
            if events {
                opts.set_receive_maximum(Some(super::commands::RECEIVE_MAXIMUM));
            }
            // A persistent session that outlives the connection: commands queued for the cell
            // while it is away are kept for it (MQTT 5 ends the session at the disconnect
            // without an expiry interval).
            opts.set_clean_start(!events);
            if events {
                opts.set_session_expiry_interval(Some(m.session_expiry_s));
            }
            // Commands are acknowledged after their effects are committed, not on arrival.
            opts.set_manual_acks(events);
            // The session publishes `online` to the same topic after each CONNACK (session.rs).
            if events {
                opts.set_last_will(rumqttc::v5::mqttbytes::v5::LastWill::new(
                    status_topic(c),
                    "offline",
                    rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                    true,
                    None,
                ));
            }
            if let Some((user, pass)) = login {
                opts.set_credentials(user, pass);
            }
            if let Some(t) = tls {
                opts.set_transport(t);
            }
            Options::V5(opts)
        }
        MqttVersion::V311 => {
            let mut opts = MqttOptions::new(id, url.host.clone(), url.port);
            opts.set_clean_session(!events);
            opts.set_keep_alive(keep_alive);
            opts.set_inflight(m.inflight);
            // 3.1.1 cannot tell the broker a size limit: a packet over the client's limit breaks
            // the connection, and a retained one breaks every next connection too. So the
            // client takes up to 16 MiB and the engine rejects a command over 64 KiB as usual.
            opts.set_max_packet_size(MAX_INCOMING_PACKET_311, outgoing_max);
            opts.set_manual_acks(events);
            if events {
                opts.set_last_will(LastWill::new(
                    status_topic(c),
                    "offline",
                    QoS::AtLeastOnce,
                    true,
                ));
            }
            if let Some((user, pass)) = login {
                opts.set_credentials(user, pass);
            }
            if let Some(t) = tls {
                opts.set_transport(t);
            }
            Options::V311(opts)
        }
    })
}

/// The username and password `broker` is logged in to with, if it has a username. Secrets are
/// read here, at every start and reload, and never logged.
pub(crate) fn login(broker: &Broker) -> Result<Option<(String, String)>> {
    let Some(user) = &broker.access.username else {
        return Ok(None);
    };
    let pass =
        password(&broker.access).with_context(|| format!("the login to broker {}", broker.url))?;
    Ok(Some((user.clone(), pass.unwrap_or_default())))
}

/// The TLS transport to `broker`, if its url is `mqtts://`.
pub(crate) fn tls_transport(broker: &Broker) -> Result<Option<Transport>> {
    if !broker.url.tls {
        return Ok(None);
    }
    let config = tls_config(&broker.access)
        .with_context(|| format!("the TLS settings of broker {}", broker.url))?;
    Ok(Some(Transport::Tls(TlsConfiguration::Rustls(Arc::new(
        config,
    )))))
}

fn password(a: &BrokerAccess) -> Result<Option<String>> {
    if let Some(p) = &a.password {
        return Ok(Some(p.clone()));
    }
    if let Some(var) = &a.password_env {
        // As OPC UA's `password_env`: e.g. from the unit's LoadCredential= or an
        // EnvironmentFile= readable by root only, so the config file holds no secret.
        return std::env::var(var)
            .map(Some)
            .with_context(|| format!("password_env: the environment variable {var} is not set"));
    }
    let Some(file) = &a.password_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading password_file {}", file.display()))?;
    Ok(Some(text.trim_end_matches(['\r', '\n']).to_string()))
}

fn tls_config(a: &BrokerAccess) -> Result<rustls::ClientConfig> {
    let ca = a
        .ca_file
        .as_ref()
        .context("an mqtts:// url needs `ca_file`, the CA that signed the broker's certificate")?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("reading ca_file {}", ca.display()))?
    {
        roots.add(cert.with_context(|| format!("parsing ca_file {}", ca.display()))?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    Ok(match (&a.cert_file, &a.key_file) {
        (Some(cert), Some(key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .with_context(|| format!("reading cert_file {}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .with_context(|| format!("reading key_file {}", key.display()))?;
            builder.with_client_auth_cert(certs, key)?
        }
        _ => builder.with_no_client_auth(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> CellConfig {
        crate::config::test_mqtt(&format!("url = \"mqtt://127.0.0.1:1\"\n{extra}"))
    }

    #[test]
    fn the_password_comes_from_the_environment_variable_named() {
        let var = format!("MES_EDGE_TEST_MQTT_PASSWORD_{}", std::process::id());
        let c = config(&format!(
            "username = \"press4\"\npassword_env = \"{var}\"\n"
        ));
        let err = match mqtt_options(&c) {
            Ok(_) => panic!("options without the password's variable set"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains(&var) && err.contains("not set"), "{err}");
        // SAFETY: the variable's name is this test's own; nothing else reads it.
        unsafe { std::env::set_var(&var, "s3cret") };
        assert_eq!(
            password(&c.primary().access).unwrap().as_deref(),
            Some("s3cret")
        );
        mqtt_options(&c).unwrap();
    }
}
