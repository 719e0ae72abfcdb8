//! `[mqtt] url` or `urls`: the brokers a cell may publish to, in order of preference, each with
//! the TLS files and login it is reached with (config/broker.rs), and the failover settings that
//! go with a list (docs/RELIABILITY.md "Brokers that fail over").

use crate::config::{Broker, BrokerAccess, BrokerEntry, BrokerUrl, CellConfig, MqttConfig};
use crate::config::{Problem, Seg};

/// One broker as written: where it is, its url's text, and its own settings if it has a table.
struct Listed<'a> {
    at: Vec<Seg>,
    url: Option<&'a str>,
    own: Option<&'a BrokerAccess>,
}

impl Listed<'_> {
    /// Where its url is written.
    fn url_at(&self) -> Vec<Seg> {
        let mut at = self.at.clone();
        if self.own.is_some() {
            at.push("url".into());
        }
        at
    }
}

fn listed<'a>(m: &'a MqttConfig, p: &mut Vec<Problem>) -> Vec<Listed<'a>> {
    match (&m.url, &m.urls) {
        (Some(_), Some(_)) => {
            p.push(Problem::at(
                path!["mqtt", "urls"],
                "expected `url` (one broker) or `urls` (a list), not both",
            ));
            Vec::new()
        }
        (None, None) => {
            p.push(Problem::at(
                path!["mqtt"],
                "expected `url = \"mqtt://broker:1883\"`, or `urls = [...]` for brokers that fail over",
            ));
            Vec::new()
        }
        (Some(url), None) => vec![Listed {
            at: path!["mqtt", "url"],
            url: Some(url),
            own: None,
        }],
        (None, Some(urls)) if urls.is_empty() => {
            p.push(Problem::at(
                path!["mqtt", "urls"],
                "expected at least one broker url",
            ));
            Vec::new()
        }
        (None, Some(urls)) => urls
            .iter()
            .enumerate()
            .map(|(i, entry)| match entry {
                BrokerEntry::Url(url) => Listed {
                    at: path!["mqtt", "urls", i],
                    url: Some(url),
                    own: None,
                },
                BrokerEntry::Table(own) => Listed {
                    at: path!["mqtt", "urls", i],
                    url: own.url.as_deref(),
                    own: Some(own),
                },
            })
            .collect(),
    }
}

/// Every broker whose entry checks, the first being the primary; a problem for each that does not.
pub(super) fn brokers(m: &MqttConfig, p: &mut Vec<Problem>) -> Vec<Broker> {
    let section = m.section_access();
    settings(&section, path!["mqtt"], p);
    let mut parsed: Vec<Broker> = Vec::new();
    for entry in listed(m, p) {
        if let Some(own) = entry.own {
            settings(own, entry.at.clone(), p);
        }
        let Some(text) = entry.url else {
            p.push(Problem::at(
                entry.at,
                "expected `url = \"mqtts://broker:8883\"` in the broker's table, beside the TLS and login keys that differ for it",
            ));
            continue;
        };
        let url = match BrokerUrl::parse(text) {
            Err(e) => {
                p.push(Problem::at(entry.url_at(), e));
                continue;
            }
            Ok(url) if parsed.iter().any(|b| b.url == url) => {
                p.push(Problem::at(
                    entry.url_at(),
                    format!("{text:?} is listed twice; each broker once"),
                ));
                continue;
            }
            Ok(url) => url,
        };
        // A list that mixes plaintext and TLS would carry the cell's data, and its login, in
        // clear after a failover.
        if let Some(first) = parsed.first().filter(|f| f.url.tls != url.tls) {
            let scheme = if first.url.tls { "mqtts://" } else { "mqtt://" };
            p.push(Problem::at(
                entry.url_at(),
                format!("expected {scheme} like the first broker: a list that mixes TLS and plaintext would fall back to plaintext on a failover"),
            ));
        }
        let access = entry
            .own
            .map_or_else(|| section.clone(), |o| o.over(&section));
        tls_files(&entry, &url, &access, p);
        parsed.push(Broker { url, access });
    }
    // The section's TLS files are said once, with the first broker (a list is all one scheme).
    if parsed.first().is_some_and(|b| !b.url.tls) {
        no_tls_files(&section, &[Seg::from("mqtt")], p);
    }
    failover_settings(m, p);
    parsed
}

/// An `mqtts://` broker needs a CA to check it by; a plaintext one has no use for TLS files.
fn tls_files(entry: &Listed, url: &BrokerUrl, access: &BrokerAccess, p: &mut Vec<Problem>) {
    // `run` cannot build the TLS connection without it (forwarder/options.rs).
    if url.tls && access.ca_file.is_none() {
        p.push(Problem::at(
            entry.url_at(),
            "an `mqtts://` url needs `ca_file`, the CA that signed the broker's certificate",
        ));
    }
    if let Some(own) = entry.own.filter(|_| !url.tls) {
        no_tls_files(own, &entry.at, p);
    }
}

fn no_tls_files(a: &BrokerAccess, at: &[Seg], p: &mut Vec<Problem>) {
    for (key, set) in [
        ("ca_file", a.ca_file.is_some()),
        ("cert_file", a.cert_file.is_some()),
    ] {
        if set {
            p.push(Problem::at(
                at_key(at, key),
                "TLS files go with an `mqtts://` url",
            ));
        }
    }
}

fn at_key(at: &[Seg], key: &str) -> Vec<Seg> {
    let mut at = at.to_vec();
    at.push(key.into());
    at
}

/// The section's settings, or an entry's own: a client certificate is a pair, a password has
/// one source.
fn settings(a: &BrokerAccess, at: Vec<Seg>, p: &mut Vec<Problem>) {
    let key = |k: &str| at_key(&at, k);
    if a.cert_file.is_some() != a.key_file.is_some() {
        p.push(Problem::at(
            at.clone(),
            "a client certificate needs both `cert_file` and `key_file`",
        ));
    }
    if let Some((second, _)) = a.password_keys().iter().filter(|(_, set)| *set).nth(1) {
        p.push(Problem::at(
            key(second),
            "expected one of `password`, `password_file` or `password_env`, not more",
        ));
    }
    if let Some(v) = &a.password_env {
        if v.is_empty() || v.contains(['=', '\0']) {
            p.push(Problem::at(
                key("password_env"),
                format!("expected the name of an environment variable, found {v:?}"),
            ));
        }
    }
}

fn failover_settings(m: &MqttConfig, p: &mut Vec<Problem>) {
    if !(1..=3600).contains(&m.failover_after_s) {
        p.push(Problem::at(
            path!["mqtt", "failover_after_s"],
            format!(
                "expected 1 to 3600 s (how long a lost broker has to come back), found {}",
                m.failover_after_s
            ),
        ));
    }
    if m.resend_window_s > 86_400 {
        p.push(Problem::at(
            path!["mqtt", "resend_window_s"],
            format!(
                "expected at most 86400 s (a day; 0 re-sends nothing), found {}",
                m.resend_window_s
            ),
        ));
    }
}

/// A password over plaintext, and a TLS or password file that is not there. The latter is a
/// warning, not an error: `check` also runs where the config is written, away from the PC
/// whose /etc holds the files, and `run` stops on it anyway, naming the broker and the file.
pub(super) fn warnings(c: &CellConfig, w: &mut Vec<Problem>) {
    let plaintext = !c.primary().url.tls;
    for (at, a) in written(&c.mqtt) {
        let key = |k: &str| at_key(&at, k);
        let password_key = a.password_keys().into_iter().find(|(_, set)| *set);
        if let Some((k, _)) = password_key.filter(|_| plaintext) {
            w.push(Problem::at(
                key(k),
                "warning: a broker password over plaintext `mqtt://` can be read by anyone on the network path; use `mqtts://` with `ca_file`",
            ));
        }
        for (k, file) in a.files() {
            let Some(file) = file else { continue };
            if std::fs::metadata(file).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
                w.push(Problem::at(
                    key(k),
                    format!(
                        "warning: {k} {} is not there: the cell cannot connect to the broker until it is",
                        file.display()
                    ),
                ));
            }
        }
    }
}

/// The TLS and login settings as written: the section's, then each entry's own, with where.
pub(super) fn written(m: &MqttConfig) -> Vec<(Vec<Seg>, BrokerAccess)> {
    let mut places = vec![(path!["mqtt"], m.section_access())];
    places.extend(
        m.own_settings()
            .map(|(i, own)| (path!["mqtt", "urls", i], own.clone())),
    );
    places
}
