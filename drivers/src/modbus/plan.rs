//! The request planner: packs a device's tags into as few read requests as the protocol and the
//! PLC allow. Fewer requests means fewer round trips, which is what bounds a Modbus poll cycle.
//!
//! Tags are grouped by poll interval first (a tag read every 5 s never rides along with one read
//! every 100 ms), then each group is swept per table in address order: a tag joins the open
//! request while the unused run before it is at most `max_gap`, the request stays within its size
//! limit and it covers no address the device is known to refuse. Sorted by start address, taking
//! each tag into the open request whenever it fits gives the fewest requests: a tag that does not
//! fit cannot share a request with the open one's first tag, and every later tag starts at or
//! after it (the unit tests check this against an exhaustive search).

use super::tag::{ModbusTag, Table, MAX_READ_BITS, MAX_READ_REGISTERS};
use std::collections::BTreeMap;
use std::time::Duration;

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

impl Limits {
    fn size(&self, table: Table) -> u32 {
        if table.is_bits() {
            self.max_bits.min(MAX_READ_BITS)
        } else {
            self.max_registers.min(MAX_READ_REGISTERS)
        }
        .max(1) as u32
    }
}

/// What a device has shown it refuses, learned by splitting requests it answered with an
/// exception. Requests are planned around it; it is forgotten when the device comes back after
/// an outage (a PLC restart may bring a new program and a new register map).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refusals {
    /// Address ranges `[start, end)` that no request may cover (except a lone tag's own probe).
    pub barriers: Vec<(Table, u32, u32)>,
    /// A smaller request size than configured, per table.
    pub size_caps: BTreeMap<Table, u16>,
}

impl Refusals {
    fn blocks(&self, table: Table, start: u32, end: u32) -> bool {
        self.barriers
            .iter()
            .any(|&(t, s, e)| t == table && s < end && start < e)
    }

    fn size(&self, table: Table, limits: &Limits) -> u32 {
        let configured = limits.size(table);
        match self.size_caps.get(&table) {
            Some(&cap) => configured.min(cap.max(1) as u32),
            None => configured,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.barriers.is_empty() && self.size_caps.is_empty()
    }
}

/// One read request and the tags it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBlock {
    pub table: Table,
    pub start: u16,
    pub count: u16,
    /// Indices into the device's tag list.
    pub tags: Vec<usize>,
}

impl ReadBlock {
    pub fn end(&self) -> u32 {
        self.start as u32 + self.count as u32
    }
}

/// Tags read at one poll interval, and the requests that read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollGroup {
    pub interval: Duration,
    pub tags: Vec<usize>,
    /// Shared, so that a poll holds on to its plan for the price of a reference count while a
    /// refusal learned mid-poll replans the device.
    pub blocks: std::sync::Arc<[ReadBlock]>,
}

/// Plans the reads for all of `tags`, as one group.
pub fn plan(tags: &[ModbusTag], limits: Limits) -> Vec<ReadBlock> {
    let all: Vec<usize> = (0..tags.len()).collect();
    plan_tags(tags, &all, limits, &Refusals::default())
}

/// The device's poll groups, fastest first, each planned.
pub fn plan_groups(tags: &[ModbusTag], limits: Limits, refusals: &Refusals) -> Vec<PollGroup> {
    crate::schedule::by_interval(tags.iter().map(|t| t.poll_interval))
        .into_iter()
        .map(|(interval, members)| PollGroup {
            interval,
            blocks: plan_tags(tags, &members, limits, refusals).into(),
            tags: members,
        })
        .collect()
}

/// Plans the reads for the tags at `which` (indices into `tags`).
pub fn plan_tags(
    tags: &[ModbusTag],
    which: &[usize],
    limits: Limits,
    refusals: &Refusals,
) -> Vec<ReadBlock> {
    let mut order: Vec<usize> = which.to_vec();
    order.sort_by_key(|&i| (tags[i].table, tags[i].address, tags[i].end()));
    let mut blocks: Vec<ReadBlock> = Vec::new();
    // The request tags may still join. A tag that covers a refused address is read alone (so it
    // turns good again when the PLC's program is fixed) and leaves the open request open.
    let mut open: Option<usize> = None;
    for i in order {
        let tag = &tags[i];
        let (start, end) = (tag.address as u32, tag.end());
        let alone = ReadBlock {
            table: tag.table,
            start: start as u16,
            count: (end - start) as u16,
            tags: vec![i],
        };
        if refusals.blocks(tag.table, start, end) {
            blocks.push(alone);
            continue;
        }
        if let Some(b) = open
            .map(|k| &mut blocks[k])
            .filter(|b| b.table == tag.table)
        {
            let b_start = b.start as u32;
            let new_end = b.end().max(end);
            if start <= b.end() + limits.max_gap as u32
                && new_end - b_start <= refusals.size(tag.table, &limits)
                && !refusals.blocks(tag.table, b_start, new_end)
            {
                b.count = (new_end - b_start) as u16;
                b.tags.push(i);
                continue;
            }
        }
        open = Some(blocks.len());
        blocks.push(alone);
    }
    blocks
}

/// The request that reads exactly the tags at `which` (all in one table).
pub fn block_for(tags: &[ModbusTag], which: &[usize]) -> Option<ReadBlock> {
    let first = *which.first()?;
    let start = which.iter().map(|&i| tags[i].address as u32).min()?;
    let end = which.iter().map(|&i| tags[i].end()).max()?;
    Some(ReadBlock {
        table: tags[first].table,
        start: start as u16,
        count: (end - start) as u16,
        tags: which.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modbus::encoding::DataType;
    use crate::TagId;

    fn tag(table: Table, address: u16, data_type: DataType) -> ModbusTag {
        ModbusTag::new(TagId(0), table, address, data_type)
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
        let small = Limits {
            max_bits: 100,
            ..Limits::default()
        };
        assert_eq!(plan(&tags, small).len(), 21);
    }

    #[test]
    fn strings_span_their_length() {
        let mut name = tag(Table::Holding, 10, DataType::String);
        name.length = Some(8);
        let tags = [name, tag(Table::Holding, 18, DataType::U16)];
        assert_eq!(
            spans(&plan(&tags, Limits::default())),
            vec![(Table::Holding, 10, 9)]
        );
    }

    #[test]
    fn poll_intervals_form_separate_groups() {
        let mut slow = tag(Table::Holding, 1, DataType::U16);
        slow.poll_interval = Duration::from_secs(5);
        let tags = [
            tag(Table::Holding, 0, DataType::U16),
            slow,
            tag(Table::Holding, 2, DataType::U16),
        ];
        let groups = plan_groups(&tags, Limits::default(), &Refusals::default());
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].interval, Duration::from_millis(500));
        assert_eq!(spans(&groups[0].blocks), vec![(Table::Holding, 0, 3)]);
        assert_eq!(groups[0].blocks[0].tags, vec![0, 2]);
        assert_eq!(groups[1].interval, Duration::from_secs(5));
        assert_eq!(spans(&groups[1].blocks), vec![(Table::Holding, 1, 1)]);
    }

    #[test]
    fn refused_addresses_are_planned_around() {
        let tags: Vec<_> = (0..6)
            .map(|a| tag(Table::Holding, a * 2, DataType::U16))
            .collect();
        // Address 4 (tag 2) raises illegal data address; 7 (a gap) too.
        let refusals = Refusals {
            barriers: vec![(Table::Holding, 4, 5), (Table::Holding, 7, 8)],
            ..Refusals::default()
        };
        let all: Vec<usize> = (0..6).collect();
        let blocks = plan_tags(&tags, &all, Limits::default(), &refusals);
        assert_eq!(
            spans(&blocks),
            vec![
                (Table::Holding, 0, 3),
                (Table::Holding, 4, 1),
                (Table::Holding, 6, 1),
                (Table::Holding, 8, 3)
            ]
        );
        // A learned size cap splits like a configured one.
        let capped = Refusals {
            size_caps: [(Table::Holding, 4)].into_iter().collect(),
            ..Refusals::default()
        };
        assert_eq!(plan_tags(&tags, &all, Limits::default(), &capped).len(), 3);
    }

    // ---- minimality against an exhaustive search ------------------------------------------

    struct Rng(u64);
    impl Rng {
        fn next(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    /// Whether the tags at `set` can be read by one request, checked from the definition (not
    /// by the planner's sweep): one table; from the lowest address to the highest end within the
    /// size limit; no unused run longer than the gap; no refused address unless the set is one tag.
    fn one_request(tags: &[ModbusTag], set: &[usize], limits: Limits, r: &Refusals) -> bool {
        let table = tags[set[0]].table;
        if set.iter().any(|&i| tags[i].table != table) {
            return false;
        }
        let start = set.iter().map(|&i| tags[i].address as u32).min().unwrap();
        let end = set.iter().map(|&i| tags[i].end()).max().unwrap();
        if end - start > r.size(table, &limits) {
            return false;
        }
        if set.len() > 1 && r.blocks(table, start, end) {
            return false;
        }
        let mut covered = vec![false; (end - start) as usize];
        for &i in set {
            for a in tags[i].address as u32..tags[i].end() {
                covered[(a - start) as usize] = true;
            }
        }
        let mut run = 0;
        for c in covered {
            run = if c { 0 } else { run + 1 };
            if run > limits.max_gap as u32 {
                return false;
            }
        }
        true
    }

    /// The fewest requests over every partition of the tags.
    fn fewest(tags: &[ModbusTag], limits: Limits, r: &Refusals) -> usize {
        fn go(
            tags: &[ModbusTag],
            next: usize,
            parts: &mut Vec<Vec<usize>>,
            best: &mut usize,
            limits: Limits,
            r: &Refusals,
        ) {
            if parts.len() >= *best {
                return;
            }
            if next == tags.len() {
                if parts.iter().all(|p| one_request(tags, p, limits, r)) {
                    *best = parts.len();
                }
                return;
            }
            for k in 0..parts.len() {
                // No pruning on validity: a later tag may fill a gap that is too long now.
                if tags[parts[k][0]].table != tags[next].table {
                    continue;
                }
                parts[k].push(next);
                go(tags, next + 1, parts, best, limits, r);
                parts[k].pop();
            }
            parts.push(vec![next]);
            go(tags, next + 1, parts, best, limits, r);
            parts.pop();
        }
        let mut best = usize::MAX;
        go(tags, 0, &mut Vec::new(), &mut best, limits, r);
        best
    }

    fn random_layout(rng: &mut Rng) -> (Vec<ModbusTag>, Limits, Refusals) {
        let types = [
            DataType::U16,
            DataType::U32,
            DataType::F64,
            DataType::I16,
            DataType::String,
        ];
        let n = 2 + rng.next(6) as usize;
        let tables = [Table::Holding, Table::Input, Table::Coil];
        let tags = (0..n)
            .map(|_| {
                let mixed = rng.next(4) == 0;
                let table = tables[rng.next(if mixed { 3 } else { 1 }) as usize];
                let ty = if table.is_bits() {
                    DataType::Bool
                } else {
                    types[rng.next(types.len() as u64) as usize]
                };
                let mut t = tag(table, rng.next(40) as u16, ty);
                if ty == DataType::String {
                    t.length = Some(1 + rng.next(5) as u16);
                }
                t
            })
            .collect();
        let limits = Limits {
            max_gap: rng.next(8) as u16,
            max_registers: 6 + rng.next(20) as u16,
            max_bits: 4 + rng.next(30) as u16,
        };
        let mut refusals = Refusals::default();
        for _ in 0..rng.next(3) {
            let s = rng.next(45) as u32;
            refusals
                .barriers
                .push((Table::Holding, s, s + 1 + rng.next(2) as u32));
        }
        (tags, limits, refusals)
    }

    #[test]
    fn plans_are_valid_and_as_few_as_an_exhaustive_search_finds() {
        let mut rng = Rng(0x5EED);
        for round in 0..1500 {
            let (tags, limits, refusals) = random_layout(&mut rng);
            let all: Vec<usize> = (0..tags.len()).collect();
            let blocks = plan_tags(&tags, &all, limits, &refusals);
            let mut seen: Vec<usize> = blocks.iter().flat_map(|b| b.tags.clone()).collect();
            seen.sort();
            assert_eq!(seen, all, "round {round}: every tag read exactly once");
            for b in &blocks {
                assert!(
                    one_request(&tags, &b.tags, limits, &refusals),
                    "round {round}: invalid request {b:?} for {tags:?} {limits:?} {refusals:?}"
                );
                assert_eq!(Some(b.clone()), block_for(&tags, &b.tags), "round {round}");
            }
            assert_eq!(
                blocks.len(),
                fewest(&tags, limits, &refusals),
                "round {round}: not minimal for {tags:?} {limits:?} {refusals:?}: {blocks:?}"
            );
        }
    }
}
