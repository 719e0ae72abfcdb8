//! The request planner: packs a device's tags into as few read requests as the protocol and the
//! PLC allow. Fewer requests means fewer round trips, which is what bounds a Modbus poll cycle.

use super::tag::{ModbusTag, Table};

/// Protocol ceilings for one read request (Modbus application protocol, 6.1 to 6.4).
pub const MAX_READ_REGISTERS: u16 = 125;
pub const MAX_READ_BITS: u16 = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest run of unused addresses worth reading to save a request.
    pub max_gap: u16,
    /// Largest request in registers (some PLCs accept fewer than 125).
    pub max_registers: u16,
    pub max_bits: u16,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_gap: 16,
            max_registers: MAX_READ_REGISTERS,
            max_bits: MAX_READ_BITS,
        }
    }
}

/// One read request and the tags it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBlock {
    pub table: Table,
    pub start: u16,
    pub count: u16,
    /// Indices into the tag slice given to [`plan`].
    pub tags: Vec<usize>,
}

/// Plans the reads for `tags`. Each table is swept in address order; a tag joins the open block
/// if the gap before it is small enough and the block stays within its size limit.
pub fn plan(tags: &[ModbusTag], limits: Limits) -> Vec<ReadBlock> {
    let mut order: Vec<usize> = (0..tags.len()).collect();
    order.sort_by_key(|&i| (tags[i].table, tags[i].address));
    let mut blocks: Vec<ReadBlock> = Vec::new();
    for i in order {
        let tag = &tags[i];
        let (start, end) = (tag.address as u32, tag.address as u32 + tag.span() as u32);
        let limit = if tag.table.is_bits() {
            limits.max_bits
        } else {
            limits.max_registers
        } as u32;
        if let Some(b) = blocks.last_mut().filter(|b| b.table == tag.table) {
            let b_end = b.start as u32 + b.count as u32;
            let new_end = b_end.max(end);
            if start <= b_end + limits.max_gap as u32 && new_end - b.start as u32 <= limit {
                b.count = (new_end - b.start as u32) as u16;
                b.tags.push(i);
                continue;
            }
        }
        blocks.push(ReadBlock {
            table: tag.table,
            start: start as u16,
            count: (end - start) as u16,
            tags: vec![i],
        });
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modbus::encoding::{ByteOrder, DataType};
    use crate::TagId;

    fn tag(table: Table, address: u16, data_type: DataType) -> ModbusTag {
        ModbusTag {
            id: TagId(0),
            table,
            address,
            data_type,
            order: ByteOrder::ABCD,
            bit: None,
            scale: None,
            offset: None,
        }
    }

    fn spans(blocks: &[ReadBlock]) -> Vec<(Table, u16, u16)> {
        blocks.iter().map(|b| (b.table, b.start, b.count)).collect()
    }

    #[test]
    fn adjacent_tags_share_one_request() {
        let tags = [
            tag(Table::Holding, 2, DataType::U16),
            tag(Table::Holding, 0, DataType::U32),
            tag(Table::Holding, 3, DataType::F32),
        ];
        let blocks = plan(&tags, Limits::default());
        assert_eq!(spans(&blocks), vec![(Table::Holding, 0, 5)]);
        assert_eq!(blocks[0].tags, vec![1, 0, 2]);
    }

    #[test]
    fn gap_larger_than_allowed_splits() {
        let tags = [
            tag(Table::Holding, 0, DataType::U16),
            tag(Table::Holding, 10, DataType::U16),
        ];
        let tight = Limits {
            max_gap: 8,
            ..Limits::default()
        };
        assert_eq!(
            spans(&plan(&tags, tight)),
            vec![(Table::Holding, 0, 1), (Table::Holding, 10, 1)]
        );
        let loose = Limits {
            max_gap: 9,
            ..Limits::default()
        };
        assert_eq!(spans(&plan(&tags, loose)), vec![(Table::Holding, 0, 11)]);
    }

    #[test]
    fn tables_never_mix() {
        let tags = [
            tag(Table::Holding, 0, DataType::U16),
            tag(Table::Input, 1, DataType::U16),
            tag(Table::Coil, 0, DataType::Bool),
            tag(Table::DiscreteInput, 0, DataType::Bool),
        ];
        assert_eq!(plan(&tags, Limits::default()).len(), 4);
    }

    #[test]
    fn request_size_limit_is_respected() {
        // 130 consecutive u16 registers cannot go in one 125-register read.
        let tags: Vec<_> = (0..130)
            .map(|a| tag(Table::Holding, a, DataType::U16))
            .collect();
        assert_eq!(
            spans(&plan(&tags, Limits::default())),
            vec![(Table::Holding, 0, 125), (Table::Holding, 125, 5)]
        );
        let small = Limits {
            max_registers: 50,
            ..Limits::default()
        };
        assert_eq!(plan(&tags, small).len(), 3);
        // A u32 never straddles two requests.
        let tags = [
            tag(Table::Holding, 0, DataType::U16),
            tag(Table::Holding, 124, DataType::U32),
        ];
        assert_eq!(
            spans(&plan(&tags, Limits::default())),
            vec![(Table::Holding, 0, 1), (Table::Holding, 124, 2)]
        );
    }

    #[test]
    fn overlapping_tags_read_once() {
        // A u32 and a bit of its low word: one two-register read.
        let mut bit = tag(Table::Holding, 1, DataType::Bool);
        bit.bit = Some(3);
        let tags = [tag(Table::Holding, 0, DataType::U32), bit];
        assert_eq!(
            spans(&plan(&tags, Limits::default())),
            vec![(Table::Holding, 0, 2)]
        );
    }

    #[test]
    fn coils_pack_up_to_2000_bits() {
        let tags: Vec<_> = (0..2001)
            .map(|a| tag(Table::Coil, a, DataType::Bool))
            .collect();
        assert_eq!(
            spans(&plan(&tags, Limits::default())),
            vec![(Table::Coil, 0, 2000), (Table::Coil, 2000, 1)]
        );
    }
}
