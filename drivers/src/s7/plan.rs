//! The read planner: packs a device's tags into byte runs (items) and the items into as few
//! read requests as the negotiated PDU allows. Like the Modbus planner, tags are grouped by
//! poll interval, then swept per area in address order: a tag joins the open item while the
//! unused run before it is at most `max_gap` bytes and the item still fits a reply on its own.
//! Items are then taken in order into the open request while its request and its reply both fit
//! the PDU and it holds fewer than [`MAX_ITEMS`] items.
//!
//! A tag the CPU refused inside a shared item is planned alone from then on ([`Refusals`]), so
//! that one missing DB or one address past the end of a DB costs only its own tag.

use super::address::Area;
use super::frame::{read_reply_size, read_request_size, ACK_HEADER, ITEM_REPLY_HEADER, MAX_ITEMS};
use super::tag::S7Tag;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// The smallest PDU an S7 CPU negotiates (S7-300); STRINGs longer than fits one item of it are
/// refused by the config check.
pub const MIN_PDU: u16 = 240;

/// Bytes one item can carry in a reply of `pdu` bytes.
pub fn item_capacity(pdu: u16) -> u32 {
    (pdu as usize).saturating_sub(ACK_HEADER + 2 + ITEM_REPLY_HEADER) as u32
}

/// Tags the CPU refused inside a shared item: each is read by an item of its own.
pub type Refusals = BTreeSet<usize>;

/// A run of bytes of one area, and the tags (indices into the device's tags) it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadItem {
    pub area: Area,
    pub start: u32,
    pub len: u16,
    pub tags: Vec<usize>,
}

/// One read var request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRequest {
    pub items: Vec<ReadItem>,
}

/// Tags read at one poll interval, and the requests that read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollGroup {
    pub interval: Duration,
    pub tags: Vec<usize>,
    /// Shared, so that a poll holds on to its plan while a refusal learned mid-poll replans.
    pub requests: Arc<[ReadRequest]>,
}

/// The device's poll groups, fastest first, each planned for a PDU of `pdu` bytes.
pub fn plan_groups(tags: &[S7Tag], max_gap: u32, pdu: u16, alone: &Refusals) -> Vec<PollGroup> {
    crate::schedule::by_interval(tags.iter().map(|t| t.poll_interval))
        .into_iter()
        .map(|(interval, members)| PollGroup {
            interval,
            requests: plan(tags, &members, max_gap, pdu, alone).into(),
            tags: members,
        })
        .collect()
}

/// Plans the reads of the tags at `which`.
pub fn plan(
    tags: &[S7Tag],
    which: &[usize],
    max_gap: u32,
    pdu: u16,
    alone: &Refusals,
) -> Vec<ReadRequest> {
    let capacity = item_capacity(pdu);
    let mut order: Vec<usize> = which.to_vec();
    order.sort_by_key(|&i| (tags[i].address.area, tags[i].range(), i));
    let mut items: Vec<ReadItem> = Vec::new();
    let mut open: Option<(ReadItem, u32)> = None;
    for i in order {
        let (start, end) = tags[i].range();
        let area = tags[i].address.area;
        if let Some((item, item_end)) = &mut open {
            let joins = item.area == area
                && !alone.contains(&i)
                && !item.tags.iter().any(|t| alone.contains(t))
                && start <= *item_end + max_gap
                && end.max(*item_end) - item.start <= capacity;
            if joins {
                *item_end = end.max(*item_end);
                item.len = (*item_end - item.start) as u16;
                item.tags.push(i);
                continue;
            }
        }
        if let Some((item, _)) = open.take() {
            items.push(item);
        }
        let item = ReadItem {
            area,
            start,
            len: (end - start) as u16,
            tags: vec![i],
        };
        open = Some((item, end));
    }
    items.extend(open.map(|(item, _)| item));
    pack(items, pdu)
}

/// Items into requests, in order, each request within the PDU both ways.
fn pack(items: Vec<ReadItem>, pdu: u16) -> Vec<ReadRequest> {
    let pdu = pdu as usize;
    let mut requests: Vec<ReadRequest> = Vec::new();
    for item in items {
        if let Some(last) = requests.last_mut() {
            let n = last.items.len() + 1;
            let reply = read_reply_size(last.items.iter().map(|i| i.len).chain([item.len]));
            if n <= MAX_ITEMS && read_request_size(n) <= pdu && reply <= pdu {
                last.items.push(item);
                continue;
            }
        }
        requests.push(ReadRequest { items: vec![item] });
    }
    requests
}

#[cfg(test)]
mod tests {
    use super::super::tag::S7Type;
    use super::*;
    use crate::TagId;

    fn tag(i: u32, addr: &str, t: S7Type) -> S7Tag {
        S7Tag::new(TagId(i), addr.parse().unwrap(), t)
    }

    fn all(tags: &[S7Tag]) -> Vec<usize> {
        (0..tags.len()).collect()
    }

    #[test]
    fn neighbours_share_an_item_and_a_wide_gap_or_another_area_splits() {
        let tags = vec![
            tag(0, "DB10.DBW0", S7Type::Int),
            tag(1, "DB10.DBX2.3", S7Type::Bool),
            tag(2, "DB10.DBD8", S7Type::Real),
            tag(3, "DB10.DBW200", S7Type::Word),
            tag(4, "MW0", S7Type::Word),
            tag(5, "DB11.DBW0", S7Type::Word),
        ];
        let reqs = plan(&tags, &all(&tags), 16, 480, &Refusals::new());
        assert_eq!(reqs.len(), 1, "{reqs:?}");
        let items: Vec<_> = reqs[0]
            .items
            .iter()
            .map(|i| (i.area, i.start, i.len, i.tags.clone()))
            .collect();
        assert_eq!(
            items,
            vec![
                (Area::Merker, 0, 2, vec![4]),
                (Area::Db(10), 0, 12, vec![0, 1, 2]),
                (Area::Db(10), 200, 2, vec![3]),
                (Area::Db(11), 0, 2, vec![5]),
            ]
        );
    }

    #[test]
    fn every_request_fits_the_negotiated_pdu_and_every_tag_is_read_once() {
        // 300 DINTs spread over 30 DBs with gaps, at the smallest and a common PDU.
        let tags: Vec<S7Tag> = (0..300u32)
            .map(|i| {
                tag(
                    i,
                    &format!("DB{}.DBD{}", 1 + i % 30, (i / 30) * 40),
                    S7Type::DInt,
                )
            })
            .collect();
        for pdu in [MIN_PDU, 480, 960] {
            let reqs = plan(&tags, &all(&tags), 8, pdu, &Refusals::new());
            let mut seen: Vec<usize> = Vec::new();
            for r in &reqs {
                assert!(r.items.len() <= MAX_ITEMS);
                assert!(read_request_size(r.items.len()) <= pdu as usize);
                assert!(
                    read_reply_size(r.items.iter().map(|i| i.len)) <= pdu as usize,
                    "pdu {pdu}"
                );
                for item in &r.items {
                    for &t in &item.tags {
                        let (s, e) = tags[t].range();
                        assert!(s >= item.start && e <= item.start + item.len as u32);
                        assert_eq!(tags[t].address.area, item.area);
                    }
                    seen.extend(&item.tags);
                }
            }
            seen.sort();
            assert_eq!(seen, all(&tags), "pdu {pdu}");
            // 300 items (gaps of 36 bytes exceed max_gap), at 20 per request, or the 19 whose
            // addresses fit a 240-byte request.
            let per_request = MAX_ITEMS.min((pdu as usize - 12) / 12);
            assert_eq!(reqs.len(), 300usize.div_ceil(per_request), "pdu {pdu}");
        }
    }

    #[test]
    fn a_large_pdu_takes_long_runs_in_one_item_a_small_one_splits_them() {
        let tags: Vec<S7Tag> = (0..100u32)
            .map(|i| tag(i, &format!("DB1.DBD{}", i * 4), S7Type::DWord))
            .collect();
        let big = plan(&tags, &all(&tags), 0, 960, &Refusals::new());
        assert_eq!(big.len(), 1);
        assert_eq!(big[0].items.len(), 1);
        let small = plan(&tags, &all(&tags), 0, MIN_PDU, &Refusals::new());
        let items: usize = small.iter().map(|r| r.items.len()).sum();
        assert_eq!(
            items,
            2,
            "400 bytes in items of at most {}",
            item_capacity(MIN_PDU)
        );
        assert_eq!(
            small.len(),
            2,
            "two full items do not fit one 240-byte reply"
        );
    }

    #[test]
    fn a_refused_tag_is_read_alone() {
        let tags = vec![
            tag(0, "DB1.DBW0", S7Type::Word),
            tag(1, "DB1.DBW2", S7Type::Word),
            tag(2, "DB1.DBW4", S7Type::Word),
        ];
        let alone: Refusals = [1].into();
        let reqs = plan(&tags, &all(&tags), 16, 480, &alone);
        let items: Vec<_> = reqs[0].items.iter().map(|i| i.tags.clone()).collect();
        assert_eq!(items, vec![vec![0], vec![1], vec![2]]);
    }
}
