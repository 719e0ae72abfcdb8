//! Poll groups: tags read at one interval are read together, and never ride along with tags
//! of another interval (a tag read every 5 s is not read every 100 ms because a neighbour is).

use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// The indices of `intervals` grouped by interval, fastest first, each in order.
pub fn by_interval(
    intervals: impl IntoIterator<Item = Duration>,
) -> BTreeMap<Duration, Vec<usize>> {
    let mut groups: BTreeMap<Duration, Vec<usize>> = BTreeMap::new();
    for (i, interval) in intervals.into_iter().enumerate() {
        groups.entry(interval).or_default().push(i);
    }
    groups
}

/// The group due first and when (the first of those due at once).
pub fn earliest(due: &[Instant]) -> Option<(Instant, usize)> {
    due.iter()
        .copied()
        .enumerate()
        .min_by_key(|&(_, at)| at)
        .map(|(g, at)| (at, g))
}
