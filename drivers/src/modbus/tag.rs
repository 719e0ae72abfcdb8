use super::encoding::{decode, encode, ByteOrder, DataType, EncodeError};
use crate::{TagId, Value};
use serde::Deserialize;
use std::time::Duration;

/// Protocol ceilings for one read request (Modbus application protocol, 6.1 to 6.4).
pub const MAX_READ_REGISTERS: u16 = 125;
pub const MAX_READ_BITS: u16 = 2000;

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

    /// The read function code.
    pub fn read_function(self) -> u8 {
        match self {
            Table::Coil => 1,
            Table::DiscreteInput => 2,
            Table::Holding => 3,
            Table::Input => 4,
        }
    }

    /// Protocol ceiling for one read of this table.
    pub fn max_read(self) -> u16 {
        if self.is_bits() {
            MAX_READ_BITS
        } else {
            MAX_READ_REGISTERS
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Table::Coil => "coil",
            Table::DiscreteInput => "discrete_input",
            Table::Holding => "holding",
            Table::Input => "input",
        }
    }
}

impl std::str::FromStr for Table {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "coil" | "coils" => Ok(Table::Coil),
            "discrete_input" | "discrete_inputs" => Ok(Table::DiscreteInput),
            "holding" => Ok(Table::Holding),
            "input" => Ok(Table::Input),
            _ => Err(format!(
                "unknown table {s:?}; expected holding, input, coil or discrete_input"
            )),
        }
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
    /// Registers of a string.
    pub length: Option<u16>,
    pub scale: Option<f64>,
    pub offset: Option<f64>,
    /// How often the tag is read; tags with different intervals are read by different requests.
    pub poll_interval: Duration,
    /// Whether write-back may set it (holding registers and coils only).
    pub writable: bool,
}

impl ModbusTag {
    /// A tag with the defaults of a config entry that gives only where and what.
    pub fn new(id: TagId, table: Table, address: u16, data_type: DataType) -> ModbusTag {
        ModbusTag {
            id,
            table,
            address,
            data_type,
            order: ByteOrder::ABCD,
            bit: None,
            length: None,
            scale: None,
            offset: None,
            poll_interval: Duration::from_millis(500),
            writable: false,
        }
    }

    /// Addresses the tag occupies in its table.
    pub fn span(&self) -> u16 {
        if self.table.is_bits() {
            1
        } else {
            self.data_type.span(self.length)
        }
    }

    /// One past the last address, as u32 so that a tag ending at 65535 does not overflow.
    pub fn end(&self) -> u32 {
        self.address as u32 + self.span() as u32
    }

    /// Decodes the tag from the registers of a block read that starts at `block_start`; None if
    /// the block does not hold it (a short reply).
    pub fn decode_registers(&self, block_start: u16, regs: &[u16]) -> Option<Value> {
        let from = self.address.checked_sub(block_start)? as usize;
        let words = regs.get(from..from + self.span() as usize)?;
        Some(self.scaled(decode(words, self.data_type, self.order, self.bit)))
    }

    pub fn decode_bits(&self, block_start: u16, bits: &[bool]) -> Option<Value> {
        let from = self.address.checked_sub(block_start)? as usize;
        bits.get(from).map(|&b| Value::Bool(b))
    }

    fn scaled(&self, raw: Value) -> Value {
        if self.scale.is_none() && self.offset.is_none() {
            return raw;
        }
        Value::Float(raw.as_f64() * self.scale.unwrap_or(1.0) + self.offset.unwrap_or(0.0))
    }

    /// The registers to write for `value` in engineering units: scale and offset undone, then
    /// rounded to the nearest raw value for an integer type.
    pub fn encode_registers(&self, value: Value) -> Result<Vec<u16>, EncodeError> {
        let raw = if self.scale.is_some() || self.offset.is_some() {
            let Value::Text(_) = value else {
                let scale = self.scale.unwrap_or(1.0);
                if scale == 0.0 {
                    return Err(EncodeError("a tag scaled by 0 cannot be written".into()));
                }
                let raw = (value.as_f64() - self.offset.unwrap_or(0.0)) / scale;
                let raw = match self.data_type {
                    DataType::F32 | DataType::F64 => raw,
                    _ => raw.round(),
                };
                return encode(Value::Float(raw), self.data_type, self.order, self.length);
            };
            value
        } else {
            value
        };
        encode(raw, self.data_type, self.order, self.length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_writes_undo_the_scale() {
        let mut t = ModbusTag::new(TagId(0), Table::Holding, 10, DataType::I16);
        t.scale = Some(0.1);
        t.offset = Some(-40.0);
        // 21.5 °C shown for a raw 615.
        assert_eq!(
            t.decode_registers(10, &[615]),
            Some(Value::Float(615.0 * 0.1 - 40.0))
        );
        assert_eq!(t.encode_registers(Value::Float(21.5)).unwrap(), vec![615]);
    }

    #[test]
    fn a_block_that_does_not_hold_the_tag_gives_none() {
        let t = ModbusTag::new(TagId(0), Table::Holding, 10, DataType::U32);
        assert_eq!(t.decode_registers(10, &[1]), None);
        assert_eq!(t.decode_registers(11, &[1, 2, 3]), None);
    }
}
