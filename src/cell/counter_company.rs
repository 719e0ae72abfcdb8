//! What the cell knows of a counter besides its own readings (docs/EVENTS.md rule 7): the
//! device's session, the other counter of the same device, the counter's reset tag. The rules
//! that use it are in counter.rs; this is what they are told.

use super::{Counter, CounterRules, Evidence, Pending, Step};

/// What the cell knows at a reading besides this counter's own readings: a drop that the
/// counter alone would call a glitch or a correction is a restart when its company says so.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Company {
    /// The device's session: one more at each restart told (counter_sessions.rs).
    pub session: u64,
    /// What told the session's latest restart (None: a reconnect).
    pub session_evidence: Option<Evidence>,
    /// Another counter of the same device is dropping (in this read, or held) by more than a
    /// correction: its verdict may be a restart that explains this counter's step back.
    pub sibling_dropping: bool,
    /// When another counter of the same device last restarted from zero (its drop first seen).
    pub sibling_restarted_at: Option<i64>,
}

impl Company {
    /// What says the device restarted since a reading made in session `since`, if anything.
    pub(super) fn restarted_since(&self, since: u64) -> Option<Evidence> {
        (since != self.session).then(|| self.session_evidence.unwrap_or(Evidence::SessionRestarted))
    }

    pub(super) fn sibling_restarted_near(&self, t_ms: i64, rules: &CounterRules) -> bool {
        self.sibling_restarted_at
            .is_some_and(|at| (t_ms - at).abs() <= rules.confirm_ms)
    }
}

impl Pending {
    /// What the company says while the drop is held: a restart told since the counter's last
    /// reading (in `session`; a tag of the device read after the counter explains the drop as
    /// well as one read before it), or a sibling's restart from zero at the drop's moment.
    pub(super) fn listen(&mut self, co: &Company, session: u64, rules: &CounterRules) {
        if self.evidence.is_none() {
            self.evidence = co.restarted_since(session);
        }
        if self.evidence.is_none() && co.sibling_restarted_near(self.since_ms, rules) {
            self.evidence = Some(Evidence::SiblingRestarted);
        }
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
