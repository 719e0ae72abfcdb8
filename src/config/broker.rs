//! The brokers of `[mqtt] url` or `urls`, each with the TLS files and login the cell uses there.
//!
//! An entry of `urls` is a url, reached with the `[mqtt]` section's TLS and login settings, or
//! a table holding the url and the keys that differ for that broker:
//! `{ url = "mqtts://broker-b:8883", ca_file = "...", username = "...", password_file = "..." }`.
//! A key the table leaves out comes from the section. Two settings are taken whole rather than
//! key by key, so that a broker never gets half of one and half of another: the password
//! (whichever of `password`, `password_file` or `password_env` the table sets replaces the
//! section's) and the client certificate (`cert_file` with `key_file`).

use super::url::BrokerUrl;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::path::PathBuf;

/// One entry of `[mqtt] urls`, as written.
#[derive(Debug, Clone, PartialEq)]
pub enum BrokerEntry {
    /// `"mqtt://broker-a:1883"`: the section's TLS and login settings.
    Url(String),
    /// `{ url = "...", ... }`: its own settings where it sets them.
    Table(BrokerAccess),
}

/// TLS files and login for a broker: the `[mqtt]` section's, or one entry's own (with its
/// `url`, which a section's never has: the section keeps its own `url` key).
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerAccess {
    pub url: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    /// The name of an environment variable holding the password.
    pub password_env: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

/// A broker as the cell reaches it: its address and the settings it uses there.
#[derive(Debug, Clone, PartialEq)]
pub struct Broker {
    pub url: BrokerUrl,
    /// The entry's own keys over the section's (`url` is the entry's text, if it had a table).
    pub access: BrokerAccess,
}

impl BrokerAccess {
    /// This entry's keys over `section`'s: each key the entry sets wins, the password and the
    /// client certificate as a whole.
    pub fn over(&self, section: &BrokerAccess) -> BrokerAccess {
        let own_password = self.password_keys().iter().any(|(_, set)| *set);
        let own_certificate = self.cert_file.is_some() || self.key_file.is_some();
        let (password_from, certificate_from) = (
            if own_password { self } else { section },
            if own_certificate { self } else { section },
        );
        BrokerAccess {
            url: self.url.clone(),
            username: self.username.clone().or_else(|| section.username.clone()),
            password: password_from.password.clone(),
            password_file: password_from.password_file.clone(),
            password_env: password_from.password_env.clone(),
            ca_file: self.ca_file.clone().or_else(|| section.ca_file.clone()),
            cert_file: certificate_from.cert_file.clone(),
            key_file: certificate_from.key_file.clone(),
        }
    }

    /// Which of the password keys are set, in the order a problem names them.
    pub fn password_keys(&self) -> [(&'static str, bool); 3] {
        [
            ("password", self.password.is_some()),
            ("password_file", self.password_file.is_some()),
            ("password_env", self.password_env.is_some()),
        ]
    }

    /// The files it names, by key: what `check` looks for and what is taken relative to the
    /// config file's folder.
    pub fn files_mut(&mut self) -> [(&'static str, &mut Option<PathBuf>); 4] {
        [
            ("ca_file", &mut self.ca_file),
            ("cert_file", &mut self.cert_file),
            ("key_file", &mut self.key_file),
            ("password_file", &mut self.password_file),
        ]
    }

    pub fn files(&self) -> [(&'static str, Option<&PathBuf>); 4] {
        [
            ("ca_file", self.ca_file.as_ref()),
            ("cert_file", self.cert_file.as_ref()),
            ("key_file", self.key_file.as_ref()),
            ("password_file", self.password_file.as_ref()),
        ]
    }
}

/// A password written in the config stays out of every `{:?}` (a log line, a panic message).
impl std::fmt::Debug for BrokerAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerAccess")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "(hidden)"))
            .field("password_file", &self.password_file)
            .field("password_env", &self.password_env)
            .field("ca_file", &self.ca_file)
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish()
    }
}

impl<'de> Deserialize<'de> for BrokerEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BrokerEntry;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a broker url like \"mqtts://broker-b:8883\", or a table like { url = \"mqtts://broker-b:8883\", ca_file = \"...\", username = \"...\", password_file = \"...\" }",
                )
            }
            fn visit_str<E: de::Error>(self, url: &str) -> Result<BrokerEntry, E> {
                Ok(BrokerEntry::Url(url.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<BrokerEntry, A::Error> {
                BrokerAccess::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(BrokerEntry::Table)
            }
        }
        d.deserialize_any(V)
    }
}

impl super::MqttConfig {
    /// The section's own TLS and login settings, which every entry starts from.
    pub fn section_access(&self) -> BrokerAccess {
        BrokerAccess {
            url: None,
            username: self.username.clone(),
            password: self.password.clone(),
            password_file: self.password_file.clone(),
            password_env: self.password_env.clone(),
            ca_file: self.ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
        }
    }

    /// The entries of `urls` written as tables, with their index in the list.
    pub fn own_settings(&self) -> impl Iterator<Item = (usize, &BrokerAccess)> {
        self.urls
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, e)| match e {
                BrokerEntry::Table(t) => Some((i, t)),
                BrokerEntry::Url(_) => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::test_mqtt as cell;
    use std::path::PathBuf;

    #[test]
    fn an_entry_inherits_what_it_leaves_out_and_overrides_what_it_sets() {
        let c = cell(
            r#"
urls = [
  "mqtts://broker-a:8883",
  { url = "mqtts://broker-b:8883", ca_file = "b-ca.pem", username = "press4-b", password_env = "B_PASSWORD" },
  { url = "mqtts://broker-c:8883", cert_file = "c.pem", key_file = "c.key" },
]
ca_file = "plant-ca.pem"
cert_file = "press4.pem"
key_file = "press4.key"
username = "press4"
password_file = "press4.password"
"#,
        );
        let [a, b, cc] = &c.brokers[..] else {
            panic!("three brokers: {:?}", c.brokers)
        };
        let p = |s: &str| Some(PathBuf::from(s));
        // A plain url: every key from the section.
        assert_eq!(a.url.host, "broker-a");
        assert_eq!(a.access.ca_file, p("plant-ca.pem"));
        assert_eq!(a.access.username.as_deref(), Some("press4"));
        assert_eq!(a.access.password_file, p("press4.password"));
        assert_eq!(a.access.cert_file, p("press4.pem"));
        // Its own CA and login; the section's client certificate.
        assert_eq!(b.access.ca_file, p("b-ca.pem"));
        assert_eq!(b.access.username.as_deref(), Some("press4-b"));
        assert_eq!(b.access.password_env.as_deref(), Some("B_PASSWORD"));
        assert_eq!(
            b.access.password_file, None,
            "the password is one setting: the entry's replaces the section's"
        );
        assert_eq!(b.access.key_file, p("press4.key"));
        // Its own client certificate; the section's CA and login.
        assert_eq!(cc.access.cert_file, p("c.pem"));
        assert_eq!(cc.access.key_file, p("c.key"));
        assert_eq!(cc.access.ca_file, p("plant-ca.pem"));
        assert_eq!(cc.access.password_file, p("press4.password"));
    }

    #[test]
    fn a_password_in_the_config_stays_out_of_debug_output() {
        let c =
            cell("urls = [{ url = \"mqtt://b\", username = \"u\", password = \"s3cret-Pw\" }]\n");
        let shown = format!("{:?}", c.brokers);
        assert!(!shown.contains("s3cret-Pw"), "{shown}");
        assert!(shown.contains("(hidden)"), "{shown}");
    }
}
