//! `[mqtt] url` or `urls`: the brokers a cell may publish to, in order of preference, and the
//! failover settings that go with a list (docs/RELIABILITY.md "Brokers that fail over").

use super::super::locate::{Problem, Seg};
use super::super::types::MqttConfig;
use super::super::BrokerUrl;

/// Every broker that parses, the first being the primary; a problem for each that does not.
pub(super) fn brokers(m: &MqttConfig, p: &mut Vec<Problem>) -> Vec<BrokerUrl> {
    let listed: Vec<(Vec<Seg>, &String)> = match (&m.url, &m.urls) {
        (Some(_), Some(_)) => {
            p.push(Problem::at(
                path!["mqtt", "urls"],
                "expected `url` (one broker) or `urls` (a list), not both",
            ));
            return Vec::new();
        }
        (None, None) => {
            p.push(Problem::at(
                path!["mqtt"],
                "expected `url = \"mqtt://broker:1883\"`, or `urls = [...]` for brokers that fail over",
            ));
            return Vec::new();
        }
        (Some(url), None) => vec![(path!["mqtt", "url"], url)],
        (None, Some(urls)) if urls.is_empty() => {
            p.push(Problem::at(
                path!["mqtt", "urls"],
                "expected at least one broker url",
            ));
            return Vec::new();
        }
        (None, Some(urls)) => urls
            .iter()
            .enumerate()
            .map(|(i, u)| (path!["mqtt", "urls", i], u))
            .collect(),
    };
    let mut parsed: Vec<BrokerUrl> = Vec::new();
    for (at, text) in listed {
        match BrokerUrl::parse(text) {
            Err(e) => p.push(Problem::at(at, e)),
            Ok(url) if parsed.contains(&url) => p.push(Problem::at(
                at,
                format!("{text:?} is listed twice; each broker once"),
            )),
            Ok(url) => {
                // One set of TLS settings serves every broker: a list that mixes plaintext
                // and TLS would fall back to plaintext on a failover.
                if let Some(first) = parsed.first().filter(|f| f.tls != url.tls) {
                    let scheme = |tls| if tls { "mqtts://" } else { "mqtt://" };
                    p.push(Problem::at(
                        at,
                        format!(
                            "expected {} like the first broker: every broker in `urls` shares the TLS settings",
                            scheme(first.tls)
                        ),
                    ));
                }
                parsed.push(url);
            }
        }
    }
    failover_settings(m, p);
    parsed
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
