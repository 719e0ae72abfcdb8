//! Registers as a device answers them, decoded as every type, byte order and bit, through the
//! tag (with a block start and a response shorter or longer than asked) and directly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mes_edge_drivers::modbus::encoding::{decode, encode, ByteOrder, DataType};
use mes_edge_drivers::modbus::{ModbusTag, Table};
use mes_edge_drivers::TagId;

const TYPES: [DataType; 10] = [
    DataType::Bool,
    DataType::U16,
    DataType::I16,
    DataType::U32,
    DataType::I32,
    DataType::U64,
    DataType::I64,
    DataType::F32,
    DataType::F64,
    DataType::String,
];
const ORDERS: [ByteOrder; 4] = [ByteOrder::ABCD, ByteOrder::BADC, ByteOrder::CDAB, ByteOrder::DCBA];
const TABLES: [Table; 4] = [Table::Holding, Table::Input, Table::Coil, Table::DiscreteInput];

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let ty = TYPES[data[0] as usize % TYPES.len()];
    let order = ORDERS[data[1] as usize % ORDERS.len()];
    let bit = (data[2] & 0x80 != 0).then_some(data[2] & 0x7f);
    let address = u16::from_be_bytes([data[3], data[4]]);
    let table = TABLES[data[5] as usize % TABLES.len()];
    let regs: Vec<u16> = data[6..]
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
        .collect();
    let bits: Vec<bool> = data[6..].iter().map(|b| b & 1 == 1).collect();

    let value = decode(&regs, ty, order, bit);
    // What decodes, encodes back (write-back of the same tag) or is refused with a reason.
    if let Err(e) = encode(value, ty, order, Some(regs.len().clamp(1, 32) as u16)) {
        assert!(!e.0.is_empty());
    }

    let mut tag = ModbusTag::new(TagId(0), table, address, ty);
    tag.order = order;
    tag.bit = bit;
    let block_start = address.wrapping_sub(data[2] as u16 % 8);
    let _ = tag.decode_registers(block_start, &regs);
    let _ = tag.decode_bits(block_start, &bits);
});
