//! The three ways a Modbus request reaches a device: TCP, RTU over a serial line, and RTU
//! frames tunnelled through TCP (serial-to-Ethernet gateways that pass frames unchanged).

use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Modbus TCP (MBAP header); `address` is `host:port`, resolved at every connect.
    Tcp { address: String },
    /// RTU frames (unit, PDU, CRC) over a TCP connection.
    RtuOverTcp { address: String },
    /// RTU over a serial port (RS-485 / RS-232).
    Rtu(SerialSettings),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    None,
    /// The Modbus serial line default.
    #[default]
    Even,
    Odd,
}

impl std::str::FromStr for Parity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "none" | "n" => Ok(Parity::None),
            "even" | "e" => Ok(Parity::Even),
            "odd" | "o" => Ok(Parity::Odd),
            _ => Err(format!("unknown parity {s:?}; expected none, even or odd")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SerialSettings {
    /// e.g. `/dev/ttyUSB0`.
    pub port: String,
    pub baud_rate: u32,
    pub data_bits: u8,
    pub parity: Parity,
    pub stop_bits: u8,
    /// Silence kept on the line before each request (RTU needs at least 3.5 characters).
    pub frame_gap: Duration,
}

impl SerialSettings {
    /// The settings mbpoll and the Modbus serial line specification default to: 19200 baud,
    /// 8 data bits, even parity, 1 stop bit.
    pub fn new(port: impl Into<String>) -> SerialSettings {
        SerialSettings {
            port: port.into(),
            baud_rate: 19200,
            data_bits: 8,
            parity: Parity::Even,
            stop_bits: 1,
            frame_gap: default_frame_gap(19200, 8, Parity::Even, 1),
        }
    }
}

/// 3.5 character times, and 1.75 ms above 19200 baud (Modbus over serial line, 2.5.1.1).
pub fn default_frame_gap(baud_rate: u32, data_bits: u8, parity: Parity, stop_bits: u8) -> Duration {
    if baud_rate > 19200 || baud_rate == 0 {
        return Duration::from_micros(1750);
    }
    let bits_per_char = 1 + data_bits as u64 + (parity != Parity::None) as u64 + stop_bits as u64;
    Duration::from_micros(bits_per_char * 3_500_000 / baud_rate as u64)
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Tcp { address } => write!(f, "modbus-tcp {address}"),
            Transport::RtuOverTcp { address } => write!(f, "modbus-rtu-over-tcp {address}"),
            Transport::Rtu(s) => write!(
                f,
                "modbus-rtu {} {} {}{}{}",
                s.port,
                s.baud_rate,
                s.data_bits,
                match s.parity {
                    Parity::None => 'N',
                    Parity::Even => 'E',
                    Parity::Odd => 'O',
                },
                s.stop_bits
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_gap_is_three_and_a_half_characters() {
        // 11 bits a character at 9600 baud: 3.5 * 11 / 9600 s.
        assert_eq!(
            default_frame_gap(9600, 8, Parity::Even, 1),
            Duration::from_micros(4010)
        );
        assert_eq!(
            default_frame_gap(115200, 8, Parity::None, 1),
            Duration::from_micros(1750)
        );
    }
}
