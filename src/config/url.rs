/// The broker address from `[mqtt] url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl BrokerUrl {
    /// `mqtt://host[:1883]`, `mqtts://host[:8883]` (`tcp://` and `ssl://` are accepted as aliases).
    pub fn parse(url: &str) -> Result<Self, String> {
        let expected = "expected a url like mqtt://broker:1883 or mqtts://broker:8883";
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("{expected}, found {url:?}"))?;
        let tls = match scheme {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            _ => return Err(format!("unknown scheme {scheme:?}; {expected}")),
        };
        let authority = rest.trim_end_matches('/');
        if authority.contains(['/', '@', '?']) {
            return Err(format!(
                "{expected} (no path or credentials in the url; use username and password_file)"
            ));
        }
        let (host, port) = match authority.rsplit_once(':') {
            // An IPv6 literal: [::1]:1883
            Some((h, p)) if !p.contains(']') => (
                h,
                p.parse::<u16>().map_err(|_| {
                    format!("port {p:?} is not a number from 1 to 65535; {expected}")
                })?,
            ),
            _ => (authority, if tls { 8883 } else { 1883 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port == 0 {
            return Err(format!("{expected}, found {url:?}"));
        }
        Ok(BrokerUrl {
            host: host.to_string(),
            port,
            tls,
        })
    }
}

/// The url as a person reads it in /health, /metrics and the log: `mqtt://host:port`.
impl std::fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_a_plant_uses() {
        assert_eq!(
            BrokerUrl::parse("mqtt://broker").unwrap(),
            BrokerUrl {
                host: "broker".into(),
                port: 1883,
                tls: false
            }
        );
        assert_eq!(
            BrokerUrl::parse("mqtts://10.1.2.3:8884").unwrap().port,
            8884
        );
        assert!(BrokerUrl::parse("mqtts://b").unwrap().tls);
        assert_eq!(BrokerUrl::parse("mqtt://[::1]:1884").unwrap().host, "::1");
        assert!(BrokerUrl::parse("http://b")
            .unwrap_err()
            .contains("unknown scheme"));
        assert!(BrokerUrl::parse("broker:1883").is_err());
        assert!(BrokerUrl::parse("mqtt://b:99999")
            .unwrap_err()
            .contains("port"));
        assert!(BrokerUrl::parse("mqtt://user:pw@b").is_err());
        assert_eq!(
            BrokerUrl::parse("tcp://[::1]").unwrap().to_string(),
            "mqtt://[::1]:1883"
        );
        assert_eq!(
            BrokerUrl::parse("ssl://b").unwrap().to_string(),
            "mqtts://b:8883"
        );
    }
}
