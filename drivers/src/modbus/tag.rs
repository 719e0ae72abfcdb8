use super::encoding::{decode, ByteOrder, DataType};
use crate::{TagId, Value};
use serde::Deserialize;

/// The four Modbus data tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    Coil,
    DiscreteInput,
    Holding,
    Input,
}

impl Table {
    pub fn is_bits(self) -> bool {
        matches!(self, Table::Coil | Table::DiscreteInput)
    }
}

/// One value the driver reads: where it lives and how it is encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct ModbusTag {
    pub id: TagId,
    pub table: Table,
    /// Protocol (0-based) address.
    pub address: u16,
    pub data_type: DataType,
    pub order: ByteOrder,
    /// For a bool kept in one bit of a register.
    pub bit: Option<u8>,
    pub scale: Option<f64>,
    pub offset: Option<f64>,
}

impl ModbusTag {
    /// Addresses the tag occupies in its table.
    pub fn span(&self) -> u16 {
        if self.table.is_bits() {
            1
        } else {
            self.data_type.registers()
        }
    }

    /// Decodes the tag from the registers of a block read that starts at `block_start`.
    pub fn decode_registers(&self, block_start: u16, regs: &[u16]) -> Option<Value> {
        let from = (self.address - block_start) as usize;
        let words = regs.get(from..from + self.span() as usize)?;
        Some(self.scaled(decode(words, self.data_type, self.order, self.bit)))
    }

    pub fn decode_bits(&self, block_start: u16, bits: &[bool]) -> Option<Value> {
        bits.get((self.address - block_start) as usize)
            .map(|&b| Value::Bool(b))
    }

    fn scaled(&self, raw: Value) -> Value {
        if self.scale.is_none() && self.offset.is_none() {
            return raw;
        }
        Value::Float(raw.as_f64() * self.scale.unwrap_or(1.0) + self.offset.unwrap_or(0.0))
    }
}
