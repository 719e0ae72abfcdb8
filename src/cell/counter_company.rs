//! What the cell knows of a counter besides its own readings (docs/EVENTS.md rule 7): the
//! device's session, the other counter of the same device, the counter's reset tag. The rules
//! that use it are in counter.rs; this is what they are told.

use super::{Counter, CounterRules, Evidence, Step};

/// What the cell knows at a reading besides this counter's own readings: a drop that the
/// counter alone would call a glitch or a correction is a restart when its company says so.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Company {
    /// The device's session: one more each time it came back online after being offline.
    pub session: u64,
    /// Another counter of the same device is dropping (in this read, or held) by more than a
    /// correction: its verdict may be a restart that explains this counter's step back.
    pub sibling_dropping: bool,
    /// When another counter of the same device last restarted from zero (its drop first seen).
    pub sibling_restarted_at: Option<i64>,
}

impl Company {
    pub(super) fn sibling_restarted_near(&self, t_ms: i64, rules: &CounterRules) -> bool {
        self.sibling_restarted_at
            .is_some_and(|at| (t_ms - at).abs() <= rules.confirm_ms)
    }
}

impl Counter {
    /// A reading `mark` of the counter's reset tag (a bool as 0 or 1, or a count of resets).
    /// A rise tells a reset: a drop held now is a restart at once (the step it makes, with the
    /// reading it was confirmed at); with none held, the next reading counts from zero.
    pub fn reset_tag(
        &mut self,
        mark: u64,
        now_ms: i64,
        rules: &CounterRules,
        company: &Company,
    ) -> Option<(Step, u64)> {
        let rose = self.reset_mark.is_some_and(|m| mark > m);
        self.reset_mark = Some(mark);
        if !rose || self.last.is_none() {
            return None;
        }
        let Some(p) = &mut self.pending else {
            self.reset_seen = true;
            return None;
        };
        p.evidence = Some(Evidence::ResetTag);
        let latest = p.latest;
        let step = self.confirm_if_due(now_ms, rules, true, company);
        self.account(&step, now_ms);
        Some((step, latest))
    }
}
