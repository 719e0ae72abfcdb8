//! An S7 tag: an address, the S7 type held there, and how its bytes become a value and back.
//! S7 CPUs store every multi-byte type big-endian.

use super::address::{Address, Width};
use super::clock;
use crate::{TagId, Text, Value};
use std::time::Duration;

/// The elementary S7 types the driver reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum S7Type {
    Bool,
    Byte,
    Word,
    DWord,
    Int,
    DInt,
    Real,
    LReal,
    /// An S7 STRING of at most `max` characters: a byte of its declared length, a byte of its
    /// current length, then `max` bytes.
    String {
        max: u8,
    },
    /// DATE_AND_TIME: 8 bytes of BCD, read as `YYYY-MM-DDTHH:MM:SS.mmm` in the PLC's own time.
    DateAndTime,
    /// DTL (S7-1200/1500): 12 bytes of binary fields, read as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnn`.
    Dtl,
}

impl S7Type {
    /// The type's name in a cell config (`type = "dint"`) and in messages.
    pub fn name(self) -> &'static str {
        match self {
            S7Type::Bool => "bool",
            S7Type::Byte => "byte",
            S7Type::Word => "word",
            S7Type::DWord => "dword",
            S7Type::Int => "int",
            S7Type::DInt => "dint",
            S7Type::Real => "real",
            S7Type::LReal => "lreal",
            S7Type::String { .. } => "string",
            S7Type::DateAndTime => "date_and_time",
            S7Type::Dtl => "dtl",
        }
    }

    /// Parses a type name; a string needs its declared length (`STRING[20]` in the PLC).
    pub fn parse(name: &str, length: Option<u8>) -> Result<S7Type, String> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "bool" => S7Type::Bool,
            "byte" => S7Type::Byte,
            "word" => S7Type::Word,
            "dword" => S7Type::DWord,
            "int" => S7Type::Int,
            "dint" => S7Type::DInt,
            "real" => S7Type::Real,
            "lreal" => S7Type::LReal,
            "date_and_time" | "dt" => S7Type::DateAndTime,
            "dtl" => S7Type::Dtl,
            "string" => match length {
                Some(max) if max > 0 => S7Type::String { max },
                _ => return Err("a string needs `length`, its declared length (STRING[20] has length 20)".into()),
            },
            other => return Err(format!(
                "unknown S7 type {other:?}; expected bool, byte, word, dword, int, dint, real, lreal, string, date_and_time or dtl"
            )),
        })
    }

    /// Bytes the type occupies.
    pub fn size(self) -> u32 {
        match self {
            S7Type::Bool | S7Type::Byte => 1,
            S7Type::Word | S7Type::Int => 2,
            S7Type::DWord | S7Type::DInt | S7Type::Real => 4,
            S7Type::LReal | S7Type::DateAndTime => 8,
            S7Type::String { max } => max as u32 + 2,
            S7Type::Dtl => 12,
        }
    }

    /// The type an address of this width holds when the config names none.
    pub fn default_for(width: Width) -> S7Type {
        match width {
            Width::Bit(_) => S7Type::Bool,
            Width::Byte => S7Type::Byte,
            Width::Word => S7Type::Word,
            Width::DWord => S7Type::DWord,
        }
    }

    /// Whether an address of this width can hold the type: a bool needs a bit address, a
    /// 2- or 4-byte type the W or D address of its size; the longer types start at a byte (B).
    pub fn fits(self, width: Width) -> Result<(), String> {
        let ok = match self {
            S7Type::Bool => matches!(width, Width::Bit(_)),
            S7Type::Byte => width == Width::Byte,
            S7Type::Word | S7Type::Int => width == Width::Word,
            S7Type::DWord | S7Type::DInt | S7Type::Real => width == Width::DWord,
            S7Type::LReal | S7Type::String { .. } | S7Type::DateAndTime | S7Type::Dtl => {
                width == Width::Byte
            }
        };
        if ok {
            return Ok(());
        }
        let want = match self {
            S7Type::Bool => "a bit address (DB1.DBX0.0, M0.1)",
            S7Type::Byte => "a byte address (DB1.DBB0, MB1)",
            S7Type::Word | S7Type::Int => "a word address (DB1.DBW0, MW2)",
            S7Type::DWord | S7Type::DInt | S7Type::Real => "a double word address (DB1.DBD0, MD4)",
            _ => "the address of its first byte (DB1.DBB20, MB20)",
        };
        Err(format!("a {} needs {want}", self.name()))
    }

    /// Width in bits of the unsigned counter the type can hold, if it can hold one.
    pub fn counter_bits(self) -> Option<u32> {
        match self {
            S7Type::Byte => Some(8),
            S7Type::Word => Some(16),
            S7Type::DWord => Some(32),
            // A signed counter counts up to its positive maximum, then wraps to the negative
            // half: as unsigned bits it still steps by one, like a WORD.
            S7Type::Int => Some(16),
            S7Type::DInt => Some(32),
            _ => None,
        }
    }
}

/// One value the driver reads.
#[derive(Debug, Clone, PartialEq)]
pub struct S7Tag {
    pub id: TagId,
    pub address: Address,
    pub data_type: S7Type,
    pub poll_interval: Duration,
    pub writable: bool,
}

impl S7Tag {
    pub fn new(id: TagId, address: Address, data_type: S7Type) -> S7Tag {
        S7Tag {
            id,
            address,
            data_type,
            poll_interval: Duration::from_millis(500),
            writable: false,
        }
    }

    /// First byte and one past the last, as the planner sees them.
    pub fn range(&self) -> (u32, u32) {
        (self.address.byte, self.address.byte + self.data_type.size())
    }

    /// The tag's value from `bytes`, which start at the tag's first byte; None if too short or
    /// not a valid value of the type (a DATE_AND_TIME that is not BCD, a DTL of no real date).
    pub fn decode(&self, bytes: &[u8]) -> Option<Value> {
        let b = bytes.get(..self.data_type.size() as usize)?;
        let be = |n: usize| b[..n].iter().fold(0u64, |acc, &x| (acc << 8) | x as u64);
        Some(match self.data_type {
            S7Type::Bool => {
                let Width::Bit(bit) = self.address.width else {
                    return None;
                };
                Value::Bool(b[0] >> bit & 1 == 1)
            }
            S7Type::Byte | S7Type::Word | S7Type::DWord => Value::UInt(be(b.len())),
            S7Type::Int => Value::Int(be(2) as u16 as i16 as i64),
            S7Type::DInt => Value::Int(be(4) as u32 as i32 as i64),
            S7Type::Real => Value::Float(f32::from_bits(be(4) as u32) as f64),
            S7Type::LReal => Value::Float(f64::from_bits(be(8))),
            S7Type::String { max } => {
                let len = b[1].min(b[0]).min(max) as usize;
                // S7 strings are single-byte characters (Latin-1 on the CPUs' panels).
                let s: String = b[2..2 + len].iter().map(|&c| c as char).collect();
                Value::Text(Text::truncated(&s))
            }
            S7Type::DateAndTime => Value::Text(Text::new(&clock::date_and_time(b)?)?),
            S7Type::Dtl => Value::Text(Text::new(&clock::dtl(b)?)?),
        })
    }

    /// The bytes to write for `value`; for a bool, the one byte whose bit is written (as 0 or 1).
    pub fn encode(&self, value: Value) -> Result<Vec<u8>, String> {
        let t = self.data_type;
        let int = |lo: i64, hi: i64| -> Result<i64, String> {
            let v = match value {
                Value::Int(v) => v,
                Value::UInt(v) => i64::try_from(v).unwrap_or(i64::MAX),
                Value::Bool(b) => b as i64,
                Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => f as i64,
                _ => {
                    return Err(format!(
                        "a {} takes a whole number, not {value:?}",
                        t.name()
                    ))
                }
            };
            if !(lo..=hi).contains(&v) {
                return Err(format!(
                    "{v} is outside a {}'s range {lo} to {hi}",
                    t.name()
                ));
            }
            Ok(v)
        };
        Ok(match t {
            S7Type::Bool => match value {
                Value::Bool(b) => vec![b as u8],
                Value::Int(0) | Value::UInt(0) => vec![0],
                Value::Int(1) | Value::UInt(1) => vec![1],
                _ => return Err(format!("a bool takes true or false, not {value:?}")),
            },
            S7Type::Byte => vec![int(0, 0xFF)? as u8],
            S7Type::Word => (int(0, 0xFFFF)? as u16).to_be_bytes().to_vec(),
            S7Type::DWord => (int(0, 0xFFFF_FFFF)? as u32).to_be_bytes().to_vec(),
            S7Type::Int => (int(i16::MIN as i64, i16::MAX as i64)? as i16)
                .to_be_bytes()
                .to_vec(),
            S7Type::DInt => (int(i32::MIN as i64, i32::MAX as i64)? as i32)
                .to_be_bytes()
                .to_vec(),
            S7Type::Real | S7Type::LReal => {
                let Value::Text(_) = value else {
                    let f = value.as_f64();
                    return Ok(if t == S7Type::Real {
                        (f as f32).to_be_bytes().to_vec()
                    } else {
                        f.to_be_bytes().to_vec()
                    });
                };
                return Err(format!("a {} takes a number, not text", t.name()));
            }
            S7Type::String { max } => {
                let Value::Text(text) = value else {
                    return Err(format!("a string takes text, not {value:?}"));
                };
                let chars: Vec<u8> = text
                    .as_str()
                    .chars()
                    .map(|c| {
                        u8::try_from(c as u32).map_err(|_| {
                            format!("{c:?} is not a Latin-1 character an S7 STRING holds")
                        })
                    })
                    .collect::<Result<_, _>>()?;
                if chars.len() > max as usize {
                    return Err(format!(
                        "{} characters do not fit a STRING[{max}]",
                        chars.len()
                    ));
                }
                // The declared length is written as the PLC declared it; the rest is padding.
                let mut out = vec![max, chars.len() as u8];
                out.extend_from_slice(&chars);
                out.resize(max as usize + 2, 0);
                out
            }
            S7Type::DateAndTime => {
                let Value::Text(text) = value else {
                    return Err("a date_and_time takes text like 2026-03-01T06:00:00.000".into());
                };
                clock::encode_date_and_time(text.as_str())?
            }
            S7Type::Dtl => {
                let Value::Text(text) = value else {
                    return Err("a dtl takes text like 2026-03-01T06:00:00.123456789".into());
                };
                clock::encode_dtl(text.as_str())?
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(addr: &str, t: S7Type) -> S7Tag {
        S7Tag::new(TagId(0), addr.parse().unwrap(), t)
    }

    #[test]
    fn every_type_decodes_big_endian_and_encodes_back() {
        let cases: Vec<(&str, S7Type, Vec<u8>, Value)> = vec![
            (
                "DB1.DBX0.3",
                S7Type::Bool,
                vec![0b0000_1000],
                Value::Bool(true),
            ),
            ("DB1.DBB0", S7Type::Byte, vec![200], Value::UInt(200)),
            (
                "DB1.DBW0",
                S7Type::Word,
                vec![0xAB, 0xCD],
                Value::UInt(0xABCD),
            ),
            (
                "DB1.DBD0",
                S7Type::DWord,
                vec![0xDE, 0xAD, 0xBE, 0xEF],
                Value::UInt(0xDEAD_BEEF),
            ),
            ("DB1.DBW0", S7Type::Int, vec![0xFF, 0xFE], Value::Int(-2)),
            (
                "DB1.DBD0",
                S7Type::DInt,
                vec![0xFF, 0xFF, 0xFF, 0xFD],
                Value::Int(-3),
            ),
            (
                "DB1.DBD0",
                S7Type::Real,
                21.5f32.to_be_bytes().to_vec(),
                Value::Float(21.5),
            ),
            (
                "DB1.DBB0",
                S7Type::LReal,
                (-1.25f64).to_be_bytes().to_vec(),
                Value::Float(-1.25),
            ),
        ];
        for (addr, t, bytes, value) in cases {
            let tg = tag(addr, t);
            assert_eq!(tg.decode(&bytes), Some(value), "{addr} {t:?}");
            if t != S7Type::Bool {
                assert_eq!(tg.encode(value).unwrap(), bytes, "{addr} {t:?}");
            }
        }
    }

    #[test]
    fn strings_keep_the_declared_length_header() {
        let t = tag("DB1.DBB0", S7Type::String { max: 6 });
        let bytes = [6, 3, b'A', b'B', b'C', 0, 0, 0];
        assert_eq!(
            t.decode(&bytes),
            Some(Value::Text(Text::new("ABC").unwrap()))
        );
        assert_eq!(
            t.encode(Value::Text(Text::new("ABC").unwrap())).unwrap(),
            bytes
        );
        // A current length past the declared one (a corrupt DB) is cut at the declared one.
        let bad = [2, 9, b'X', b'Y', b'Z', 0, 0, 0];
        let t2 = tag("DB1.DBB0", S7Type::String { max: 6 });
        assert_eq!(t2.decode(&bad), Some(Value::Text(Text::new("XY").unwrap())));
        assert!(t
            .encode(Value::Text(Text::new("TOOLONGX").unwrap()))
            .is_err());
    }

    #[test]
    fn writes_out_of_range_are_refused() {
        assert!(tag("MW0", S7Type::Int).encode(Value::Int(40_000)).is_err());
        assert!(tag("MB0", S7Type::Byte).encode(Value::Int(-1)).is_err());
        assert!(tag("MW0", S7Type::Word).encode(Value::Float(1.5)).is_err());
    }

    #[test]
    fn types_need_addresses_of_their_size() {
        let w = |s: &str| s.parse::<Address>().unwrap().width;
        assert!(S7Type::Int.fits(w("MW2")).is_ok());
        assert!(S7Type::Real
            .fits(w("MW2"))
            .unwrap_err()
            .contains("double word"));
        assert!(S7Type::Bool.fits(w("MB2")).is_err());
        assert!(S7Type::LReal.fits(w("DB1.DBB8")).is_ok());
    }
}
