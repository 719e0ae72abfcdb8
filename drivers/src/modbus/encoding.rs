//! Register encodings: how a value is laid out over 16-bit Modbus registers.
//!
//! Byte orders are named the way PLC and meter manuals name them, by where the bytes of a
//! big-endian value end up: ABCD is big-endian, DCBA little-endian, BADC swaps the bytes inside
//! each register, CDAB swaps the registers (the common "word swap" of many PLCs).

use crate::Value;
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
pub enum ByteOrder {
    #[default]
    ABCD,
    BADC,
    CDAB,
    DCBA,
}

impl DataType {
    /// Registers the type spans (a bool in a coil table spans one bit, counted as 1).
    pub fn registers(self) -> u16 {
        match self {
            DataType::Bool | DataType::U16 | DataType::I16 => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::U64 | DataType::I64 | DataType::F64 => 4,
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

/// Decodes `regs` (exactly `ty.registers()` of them) into a value. `bit` picks one bit of a
/// register for a bool kept in a holding or input register.
pub fn decode(regs: &[u16], ty: DataType, order: ByteOrder, bit: Option<u8>) -> Value {
    debug_assert_eq!(regs.len(), ty.registers() as usize);
    let b = be_bytes(regs, order);
    match ty {
        DataType::Bool => {
            let word = u16::from_be_bytes([b[0], b[1]]);
            Value::Bool(word & (1 << bit.unwrap_or(0)) != 0)
        }
        DataType::U16 => Value::UInt(u16::from_be_bytes([b[0], b[1]]) as u64),
        DataType::I16 => Value::Int(i16::from_be_bytes([b[0], b[1]]) as i64),
        DataType::U32 => Value::UInt(u32::from_be_bytes(b[..4].try_into().unwrap()) as u64),
        DataType::I32 => Value::Int(i32::from_be_bytes(b[..4].try_into().unwrap()) as i64),
        DataType::F32 => Value::Float(f32::from_be_bytes(b[..4].try_into().unwrap()) as f64),
        DataType::U64 => Value::UInt(u64::from_be_bytes(b[..8].try_into().unwrap())),
        DataType::I64 => Value::Int(i64::from_be_bytes(b[..8].try_into().unwrap())),
        DataType::F64 => Value::Float(f64::from_be_bytes(b[..8].try_into().unwrap())),
    }
}

/// Encodes a value into registers, the inverse of [`decode`]; used for write-back.
pub fn encode(value: Value, ty: DataType, order: ByteOrder) -> Vec<u16> {
    let be: Vec<u8> = match ty {
        DataType::Bool => ((value.as_f64() != 0.0) as u16).to_be_bytes().to_vec(),
        DataType::U16 => (value.as_f64() as u16).to_be_bytes().to_vec(),
        DataType::I16 => (value.as_f64() as i16).to_be_bytes().to_vec(),
        DataType::U32 => (int(value) as u32).to_be_bytes().to_vec(),
        DataType::I32 => (int(value) as i32).to_be_bytes().to_vec(),
        DataType::F32 => (value.as_f64() as f32).to_be_bytes().to_vec(),
        DataType::U64 => (int(value) as u64).to_be_bytes().to_vec(),
        DataType::I64 => int(value).to_be_bytes().to_vec(),
        DataType::F64 => value.as_f64().to_be_bytes().to_vec(),
    };
    let mut regs: Vec<u16> = be
        .chunks(2)
        .map(|c| {
            if order.swaps_bytes() {
                u16::from_be_bytes([c[1], c[0]])
            } else {
                u16::from_be_bytes([c[0], c[1]])
            }
        })
        .collect();
    if order.swaps_words() {
        regs.reverse();
    }
    regs
}

fn int(value: Value) -> i64 {
    match value {
        Value::Int(v) => v,
        Value::UInt(v) => v as i64,
        other => other.as_f64() as i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                encode(Value::UInt(0x1122_3344), DataType::U32, order),
                regs.to_vec(),
                "{order:?}"
            );
        }
    }

    #[test]
    fn signed_and_float_round_trip() {
        for order in [
            ByteOrder::ABCD,
            ByteOrder::BADC,
            ByteOrder::CDAB,
            ByteOrder::DCBA,
        ] {
            for (v, ty) in [
                (Value::Int(-2), DataType::I16),
                (Value::Int(-123_456), DataType::I32),
                (Value::Int(-9_000_000_000), DataType::I64),
                (Value::UInt(u64::MAX - 7), DataType::U64),
                (Value::Float(3.5), DataType::F32),
                (Value::Float(-1.0e300), DataType::F64),
            ] {
                let regs = encode(v, ty, order);
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
}
