//! Register encodings: how a value is laid out over 16-bit Modbus registers.
//!
//! Byte orders are named the way PLC and meter manuals name them, by where the bytes of a
//! big-endian value end up: ABCD is big-endian, DCBA little-endian, BADC swaps the bytes inside
//! each register, CDAB swaps the registers (the common "word swap" of many PLCs). A word swap
//! reverses all registers of the value, so a 64-bit CDAB value is GHEFCDAB, as pymodbus's
//! `word_order="little"` lays it out, and a string's registers come last-first.

use crate::{Text, Value};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    Bool,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
    /// Text over the tag's `length` registers, two bytes a register, ended by the first NUL.
    String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
pub enum ByteOrder {
    #[default]
    ABCD,
    BADC,
    CDAB,
    DCBA,
}

/// Longest string tag: what a [`Text`] value holds.
pub const MAX_STRING_REGISTERS: u16 = (Text::CAPACITY / 2) as u16;

impl DataType {
    /// Registers the type spans; a bool in a coil table spans one bit, counted as 1. A string
    /// spans its tag's `length`: this gives 1, use [`DataType::span`] where the length is known.
    pub fn registers(self) -> u16 {
        match self {
            DataType::Bool | DataType::U16 | DataType::I16 | DataType::String => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::U64 | DataType::I64 | DataType::F64 => 4,
        }
    }

    /// Registers a value of this type spans, with a string's length in registers.
    pub fn span(self, string_length: Option<u16>) -> u16 {
        match self {
            DataType::String => string_length.unwrap_or(1).max(1),
            other => other.registers(),
        }
    }

    /// Width of an unsigned counter of this type, for rollover arithmetic.
    pub fn counter_bits(self) -> Option<u32> {
        match self {
            DataType::U16 => Some(16),
            DataType::U32 => Some(32),
            DataType::U64 => Some(64),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DataType::Bool => "bool",
            DataType::U16 => "u16",
            DataType::I16 => "i16",
            DataType::U32 => "u32",
            DataType::I32 => "i32",
            DataType::U64 => "u64",
            DataType::I64 => "i64",
            DataType::F32 => "f32",
            DataType::F64 => "f64",
            DataType::String => "string",
        }
    }
}

impl std::str::FromStr for DataType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        use serde::de::value::{Error, StrDeserializer};
        use serde::de::IntoDeserializer;
        let lower = s.to_ascii_lowercase();
        let de: StrDeserializer<Error> = lower.as_str().into_deserializer();
        DataType::deserialize(de).map_err(|_| {
            format!("unknown type {s:?}; expected bool, u16, i16, u32, i32, u64, i64, f32, f64 or string")
        })
    }
}

impl std::str::FromStr for ByteOrder {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "ABCD" => Ok(ByteOrder::ABCD),
            "BADC" => Ok(ByteOrder::BADC),
            "CDAB" => Ok(ByteOrder::CDAB),
            "DCBA" => Ok(ByteOrder::DCBA),
            _ => Err(format!(
                "unknown byte order {s:?}; expected ABCD, BADC, CDAB or DCBA"
            )),
        }
    }
}

impl ByteOrder {
    fn swaps_bytes(self) -> bool {
        matches!(self, ByteOrder::BADC | ByteOrder::DCBA)
    }
    fn swaps_words(self) -> bool {
        matches!(self, ByteOrder::CDAB | ByteOrder::DCBA)
    }
}

/// The value's big-endian bytes, gathered from `regs` in the given order.
fn be_bytes(regs: &[u16], order: ByteOrder) -> Vec<u8> {
    let mut out = Vec::with_capacity(regs.len() * 2);
    let mut push = |r: u16| {
        let [hi, lo] = r.to_be_bytes();
        if order.swaps_bytes() {
            out.extend_from_slice(&[lo, hi]);
        } else {
            out.extend_from_slice(&[hi, lo]);
        }
    };
    if order.swaps_words() {
        regs.iter().rev().copied().for_each(&mut push);
    } else {
        regs.iter().copied().for_each(&mut push);
    }
    out
}

/// The first eight bytes [`be_bytes`] would give, on the stack: a number spans at most four
/// registers, and a poll decodes thousands of them a second.
fn be_bytes8(regs: &[u16], order: ByteOrder) -> [u8; 8] {
    let mut out = [0u8; 8];
    let mut n = 0;
    let mut push = |r: u16| {
        if n < 8 {
            let [hi, lo] = r.to_be_bytes();
            let pair = if order.swaps_bytes() {
                [lo, hi]
            } else {
                [hi, lo]
            };
            out[n..n + 2].copy_from_slice(&pair);
            n += 2;
        }
    };
    if order.swaps_words() {
        regs.iter().rev().copied().for_each(&mut push);
    } else {
        regs.iter().copied().for_each(&mut push);
    }
    out
}

/// The inverse of [`be_bytes`]: big-endian bytes (an even number of them) laid out in registers.
fn registers_of(be: &[u8], order: ByteOrder) -> Vec<u16> {
    let mut regs: Vec<u16> = be
        .chunks(2)
        .map(|c| {
            let (hi, lo) = (c[0], c.get(1).copied().unwrap_or(0));
            if order.swaps_bytes() {
                u16::from_be_bytes([lo, hi])
            } else {
                u16::from_be_bytes([hi, lo])
            }
        })
        .collect();
    if order.swaps_words() {
        regs.reverse();
    }
    regs
}

fn array<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    let n = b.len().min(N);
    out[..n].copy_from_slice(&b[..n]);
    out
}

/// Decodes registers into a value. `regs` should be exactly the type's span (missing registers
/// read as zero, extra ones are ignored: the caller checks lengths, this never panics). `bit`
/// picks one bit of a register for a bool kept in a holding or input register.
pub fn decode(regs: &[u16], ty: DataType, order: ByteOrder, bit: Option<u8>) -> Value {
    let b = be_bytes8(regs, order);
    match ty {
        DataType::Bool => {
            let word = u16::from_be_bytes(array(&b));
            Value::Bool(word.checked_shr(bit.unwrap_or(0) as u32).unwrap_or(0) & 1 != 0)
        }
        DataType::U16 => Value::UInt(u16::from_be_bytes(array(&b)) as u64),
        DataType::I16 => Value::Int(i16::from_be_bytes(array(&b)) as i64),
        DataType::U32 => Value::UInt(u32::from_be_bytes(array(&b)) as u64),
        DataType::I32 => Value::Int(i32::from_be_bytes(array(&b)) as i64),
        DataType::F32 => Value::Float(f32::from_be_bytes(array(&b)) as f64),
        DataType::U64 => Value::UInt(u64::from_be_bytes(array(&b))),
        DataType::I64 => Value::Int(i64::from_be_bytes(array(&b))),
        DataType::F64 => Value::Float(f64::from_be_bytes(array(&b))),
        DataType::String => {
            let b = be_bytes(regs, order);
            // C-string rule: a PLC that writes a shorter text over a longer one often leaves the
            // old bytes after the terminator.
            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
            Value::Text(Text::truncated(&String::from_utf8_lossy(&b[..end])))
        }
    }
}

/// Why a value cannot be written as a tag's type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EncodeError(pub String);

/// Encodes a value into registers, the inverse of [`decode`], for write-back. Refuses a value
/// the type cannot hold (out of range, a fraction for an integer, text too long) rather than
/// writing something else into the PLC. `string_registers` is a string tag's length.
pub fn encode(
    value: Value,
    ty: DataType,
    order: ByteOrder,
    string_registers: Option<u16>,
) -> Result<Vec<u16>, EncodeError> {
    let be: Vec<u8> = match ty {
        DataType::Bool => (bool_of(value)? as u16).to_be_bytes().to_vec(),
        DataType::U16 => (int_in(value, 0, u16::MAX as i128, ty)? as u16)
            .to_be_bytes()
            .to_vec(),
        DataType::I16 => (int_in(value, i16::MIN as i128, i16::MAX as i128, ty)? as i16)
            .to_be_bytes()
            .to_vec(),
        DataType::U32 => (int_in(value, 0, u32::MAX as i128, ty)? as u32)
            .to_be_bytes()
            .to_vec(),
        DataType::I32 => (int_in(value, i32::MIN as i128, i32::MAX as i128, ty)? as i32)
            .to_be_bytes()
            .to_vec(),
        DataType::U64 => (int_in(value, 0, u64::MAX as i128, ty)? as u64)
            .to_be_bytes()
            .to_vec(),
        DataType::I64 => (int_in(value, i64::MIN as i128, i64::MAX as i128, ty)? as i64)
            .to_be_bytes()
            .to_vec(),
        DataType::F32 => {
            let v = float_of(value)?;
            if v.is_finite() && v.abs() > f32::MAX as f64 {
                return Err(EncodeError(format!("{v} is out of range for f32")));
            }
            (v as f32).to_be_bytes().to_vec()
        }
        DataType::F64 => float_of(value)?.to_be_bytes().to_vec(),
        DataType::String => {
            let Value::Text(t) = value else {
                return Err(EncodeError(format!(
                    "expected text for a string, got {value:?}"
                )));
            };
            let n = string_registers.unwrap_or(1) as usize * 2;
            let s = t.as_str().as_bytes();
            if s.len() > n {
                return Err(EncodeError(format!(
                    "{:?} is {} bytes; the string holds {n}",
                    t.as_str(),
                    s.len()
                )));
            }
            // Padded with NULs over the whole length, so no old text is left behind.
            let mut b = s.to_vec();
            b.resize(n, 0);
            b
        }
    };
    Ok(registers_of(&be, order))
}

fn bool_of(value: Value) -> Result<bool, EncodeError> {
    match value {
        Value::Bool(b) => Ok(b),
        Value::Int(0) | Value::UInt(0) => Ok(false),
        Value::Int(1) | Value::UInt(1) => Ok(true),
        other => Err(EncodeError(format!(
            "expected true, false, 0 or 1 for a bool, got {other:?}"
        ))),
    }
}

fn float_of(value: Value) -> Result<f64, EncodeError> {
    match value {
        Value::Text(t) => Err(EncodeError(format!(
            "expected a number, got text {:?}",
            t.as_str()
        ))),
        other => Ok(other.as_f64()),
    }
}

fn int_in(value: Value, min: i128, max: i128, ty: DataType) -> Result<i128, EncodeError> {
    let v: i128 = match value {
        Value::Int(v) => v as i128,
        Value::UInt(v) => v as i128,
        Value::Bool(b) => b as i128,
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 1e20 => f as i128,
        other => {
            return Err(EncodeError(format!(
                "expected a whole number for {}, got {other:?}",
                ty.name()
            )))
        }
    };
    if v < min || v > max {
        return Err(EncodeError(format!(
            "{v} is out of range for {} ({min} to {max})",
            ty.name()
        )));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDERS: [ByteOrder; 4] = [
        ByteOrder::ABCD,
        ByteOrder::BADC,
        ByteOrder::CDAB,
        ByteOrder::DCBA,
    ];

    #[test]
    fn the_stack_bytes_are_the_first_eight_of_the_heap_ones() {
        let regs = [0x0102, 0x0304, 0x0506, 0x0708, 0x090A, 0x0B0C];
        for order in ORDERS {
            for n in 0..=regs.len() {
                let heap = be_bytes(&regs[..n], order);
                let stack = be_bytes8(&regs[..n], order);
                let k = heap.len().min(8);
                assert_eq!(stack[..k], heap[..k], "{order:?} {n}");
                assert!(stack[k..].iter().all(|&b| b == 0));
            }
        }
    }

    #[test]
    fn u32_in_all_four_orders() {
        // 0x11223344 as a manual would list it for each order.
        let cases = [
            (ByteOrder::ABCD, [0x1122, 0x3344]),
            (ByteOrder::BADC, [0x2211, 0x4433]),
            (ByteOrder::CDAB, [0x3344, 0x1122]),
            (ByteOrder::DCBA, [0x4433, 0x2211]),
        ];
        for (order, regs) in cases {
            assert_eq!(
                decode(&regs, DataType::U32, order, None),
                Value::UInt(0x1122_3344),
                "{order:?}"
            );
            assert_eq!(
                encode(Value::UInt(0x1122_3344), DataType::U32, order, None).unwrap(),
                regs.to_vec(),
                "{order:?}"
            );
        }
    }

    #[test]
    fn signed_and_float_round_trip() {
        for order in ORDERS {
            for (v, ty) in [
                (Value::Int(-2), DataType::I16),
                (Value::Int(-123_456), DataType::I32),
                (Value::Int(-9_000_000_000), DataType::I64),
                (Value::UInt(u64::MAX - 7), DataType::U64),
                (Value::Float(3.5), DataType::F32),
                (Value::Float(-1.0e300), DataType::F64),
            ] {
                let regs = encode(v, ty, order, None).unwrap();
                assert_eq!(regs.len(), ty.registers() as usize);
                assert_eq!(decode(&regs, ty, order, None), v, "{ty:?} {order:?}");
            }
        }
    }

    #[test]
    fn f32_matches_ieee_layout() {
        // 1.0f32 is 0x3F800000.
        assert_eq!(
            decode(&[0x3F80, 0x0000], DataType::F32, ByteOrder::ABCD, None),
            Value::Float(1.0)
        );
        assert_eq!(
            decode(&[0x0000, 0x3F80], DataType::F32, ByteOrder::CDAB, None),
            Value::Float(1.0)
        );
    }

    #[test]
    fn bool_from_register_bit() {
        assert_eq!(
            decode(&[0b100], DataType::Bool, ByteOrder::ABCD, Some(2)),
            Value::Bool(true)
        );
        assert_eq!(
            decode(&[0b100], DataType::Bool, ByteOrder::ABCD, Some(1)),
            Value::Bool(false)
        );
    }

    #[test]
    fn strings_in_each_order() {
        let text = |s: &str| Value::Text(Text::new(s).unwrap());
        // "ABCDE" over 4 registers: 'A'=0x41 ... padded with NULs.
        let cases = [
            (ByteOrder::ABCD, vec![0x4142, 0x4344, 0x4500, 0x0000]),
            (ByteOrder::BADC, vec![0x4241, 0x4443, 0x0045, 0x0000]),
            (ByteOrder::CDAB, vec![0x0000, 0x4500, 0x4344, 0x4142]),
            (ByteOrder::DCBA, vec![0x0000, 0x0045, 0x4443, 0x4241]),
        ];
        for (order, regs) in cases {
            assert_eq!(
                encode(text("ABCDE"), DataType::String, order, Some(4)).unwrap(),
                regs,
                "{order:?}"
            );
            assert_eq!(
                decode(&regs, DataType::String, order, None),
                text("ABCDE"),
                "{order:?}"
            );
        }
        // Stale bytes after the terminator are not part of the text.
        assert_eq!(
            decode(&[0x4142, 0x0044], DataType::String, ByteOrder::ABCD, None),
            text("AB")
        );
        assert!(encode(text("ABCDE"), DataType::String, ByteOrder::ABCD, Some(2)).is_err());
    }

    #[test]
    fn out_of_range_values_are_refused_not_wrapped() {
        assert!(encode(Value::UInt(70_000), DataType::U16, ByteOrder::ABCD, None).is_err());
        assert!(encode(Value::Int(-1), DataType::U32, ByteOrder::ABCD, None).is_err());
        assert!(encode(Value::Float(1.5), DataType::I16, ByteOrder::ABCD, None).is_err());
        assert!(encode(Value::Float(1e39), DataType::F32, ByteOrder::ABCD, None).is_err());
        assert!(encode(Value::UInt(2), DataType::Bool, ByteOrder::ABCD, None).is_err());
        assert_eq!(
            encode(Value::Float(42.0), DataType::U16, ByteOrder::ABCD, None).unwrap(),
            vec![42]
        );
    }

    #[test]
    fn short_input_never_panics() {
        for ty in [
            DataType::U64,
            DataType::F64,
            DataType::String,
            DataType::Bool,
        ] {
            let _ = decode(&[], ty, ByteOrder::DCBA, Some(15));
            let _ = decode(&[1], ty, ByteOrder::CDAB, Some(200));
        }
    }
}
