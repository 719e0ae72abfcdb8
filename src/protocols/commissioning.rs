//! What the protocols' commissioning commands (`mes-edge modbus|opcua|s7 ...`, each in its
//! protocol's folder) share: how a device's address and a value are written for the engineer.

/// `host:port`, with `port` unless one is given; an IPv6 address with a port is written
/// `[::1]:1502`.
pub(crate) fn with_port(host: &str, port: u16) -> String {
    if host.starts_with('[') {
        if host.contains("]:") {
            host.to_string()
        } else {
            format!("{host}:{port}")
        }
    } else {
        match host.matches(':').count() {
            0 => format!("{host}:{port}"),
            1 => host.to_string(),
            _ => format!("[{host}]:{port}"),
        }
    }
}

/// A value as the commissioning commands print it: bits as 0/1, text quoted, a 32-bit float
/// (`f32`) in its own precision (21.5, not 21.5000003...).
pub(crate) fn shown(value: mes_edge_drivers::Value, f32: bool) -> String {
    use mes_edge_drivers::Value;
    match value {
        Value::Bool(b) => (b as u8).to_string(),
        Value::Int(v) => v.to_string(),
        Value::UInt(v) => v.to_string(),
        Value::Float(v) if f32 => (v as f32).to_string(),
        Value::Float(v) => v.to_string(),
        Value::Text(t) => format!("{:?}", t.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_get_the_default_port_unless_they_name_one() {
        assert_eq!(with_port("plc1", 502), "plc1:502");
        assert_eq!(with_port("10.0.0.5:1502", 502), "10.0.0.5:1502");
        assert_eq!(with_port("[::1]", 502), "[::1]:502");
        assert_eq!(with_port("[::1]:1502", 502), "[::1]:1502");
        assert_eq!(with_port("fe80::1", 502), "[fe80::1]:502");
    }
}
