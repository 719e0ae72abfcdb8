//! A PLC part counter and the rules that turn its readings into parts.
//!
//! Parts are the difference between readings, so a reading missed while the device or the
//! runtime was down is made up by the next one. The rules exist because a counter's readings
//! are not always the counter: a Modbus gateway answers 0 for a moment when its own link blips,
//! a PLC program takes a part back, a PLC restarts from zero, a 16-bit counter wraps. The one
//! thing the rules never do is invent parts: a reading that does not fit is held until it is
//! confirmed (it stays) or disproved (the counter comes back), and only then counted. Where
//! one counter's readings cannot tell a restart from a glitch or a correction, what the rest of
//! the cell saw decides (counter_company.rs: a reconnect, a sibling's restart, a reset tag).
//! docs/EVENTS.md "How counts are derived" states every rule with an example.

pub use crate::vocabulary::{Evidence, Rule};
pub use company::Company;
use serde::{Deserialize, Serialize};

#[path = "counter_company.rs"]
mod company;

/// The settings of one counter signal, from `[signals.good_count]` / `[signals.scrap_count]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterRules {
    /// Width of the PLC's counter: 16, 32 or 64.
    pub bits: u32,
    /// A step across the top of the range implying at most this many parts is a rollover; the
    /// same number bounds "near zero" for a counter that restarted from zero.
    pub rollover_window: u64,
    /// A reading below the baseline (or an implausible jump) is confirmed once it has lasted
    /// this many good readings and this long (a drop also once the counter has counted up twice
    /// below its old value); until then it may be a glitch.
    pub confirm_readings: u32,
    pub confirm_ms: i64,
    /// A step back of at most this many counts (to a value above zero) is the PLC taking parts
    /// back: a signed correction, at once.
    pub max_correction: u64,
    /// The most parts one reading may add; a larger step is held like a drop. None: no limit.
    pub max_step: Option<u64>,
    /// What the counter reads: device, table, address, type and byte order (or node id).
    pub tag: String,
    /// The device it is read from (its index in the config): counters of one device are
    /// each other's company (see [`Company`]).
    pub device: usize,
}

/// A counter as last counted from: committed with the events it produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counter {
    /// The raw value the committed counts were taken up to; None before the first reading.
    pub last: Option<u64>,
    /// The tag the baseline was read from. None in a store of a release that did not record it.
    pub tag: Option<String>,
    /// The runtime's clock at the last good reading, UTC ms.
    pub last_ms: i64,
    /// A reading that did not fit, waiting to be confirmed or disproved.
    pub pending: Option<Pending>,
    /// Everything this counter has counted (corrections taken off), for its rate.
    pub counted: u64,
    /// The machine's recent rate while it made parts, parts per minute, and where the current
    /// measuring window started (time, `counted`).
    pub rate_per_min: f64,
    pub rate_from: (i64, u64),
    /// False since a bad reading of the tag, until the next good one: a held reading is not
    /// confirmed by time while the counter cannot be read.
    pub readable: bool,
    /// The device's session at the last good reading (see [`Company::session`]).
    pub session: u64,
    /// When the last drop confirmed as a restart from zero was first seen: its sibling
    /// counters' drops at that moment are restarts too.
    pub restarted_at: Option<i64>,
    /// The last reading of the counter's `reset_tag` (a bool as 0 or 1), for its edges.
    pub reset_mark: Option<u64>,
    /// The reset tag told a reset that no reading of the counter has shown yet: its next
    /// reading counts from zero, whatever it is.
    pub reset_seen: bool,
}

impl Default for Counter {
    fn default() -> Self {
        Counter {
            last: None,
            tag: None,
            last_ms: 0,
            pending: None,
            counted: 0,
            rate_per_min: 0.0,
            rate_from: (0, 0),
            readable: true,
            session: 0,
            restarted_at: None,
            reset_mark: None,
            reset_seen: false,
        }
    }
}

/// A reading below the baseline (or above it by more than `max_step`) and those after it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub first: u64,
    pub lowest: u64,
    /// The highest reading since the first: parts are counted past it only, so that a dip
    /// inside the window (a glitch within a real reset) counts nothing twice.
    pub top: u64,
    /// The last reading.
    #[serde(default)]
    pub latest: u64,
    /// Parts the readings after the first show, should the first be real.
    pub since_first: u64,
    /// How often it counted up past `top`: a counter that counts below its old value is
    /// running from a new start, not glitching.
    #[serde(default)]
    pub rises: u32,
    pub since_ms: i64,
    pub readings: u32,
    /// How long the counter went unread before the first of these readings.
    pub unobserved_ms: i64,
    /// What says the drop is a restart, besides the readings; None: nothing so far.
    #[serde(default)]
    pub evidence: Option<Evidence>,
    /// A step back within `max_correction`, held only because a sibling counter was dropping:
    /// a correction after all unless evidence of a restart comes.
    #[serde(default)]
    pub correction: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// First reading ever, or the first of a newly mapped tag: it becomes the baseline.
    Baseline {
        previous_tag: Option<String>,
    },
    Unchanged,
    Parts {
        quantity: u64,
    },
    /// The PLC took `quantity` parts back (a small step back to above zero).
    Correction {
        quantity: u64,
        from: u64,
    },
    /// A step back held while a sibling counter's drop was judged, and no restart came of it:
    /// `quantity` parts taken back (`from` to `first`), then `parts` counted after it.
    HeldCorrection {
        quantity: u64,
        from: u64,
        first: u64,
        parts: u64,
    },
    /// A reading that does not fit is held; nothing counted yet.
    Held {
        from: u64,
    },
    /// A held reading was disproved: the counter came back to its baseline or above within the
    /// confirmation window. `quantity` parts counted from the old baseline.
    Glitch {
        quantity: u64,
        from: u64,
        low: u64,
        high: u64,
        readings: u32,
        duration_ms: i64,
    },
    /// A held reading was confirmed: `quantity` parts counted under `rule`.
    Confirmed {
        rule: Rule,
        quantity: u64,
        from: u64,
        first: u64,
        evidence: Evidence,
    },
}

impl Step {
    /// The parts this step counts (taken back for a correction: see [`Step::Correction`]).
    pub fn parts(&self) -> u64 {
        match *self {
            Step::Parts { quantity }
            | Step::Glitch { quantity, .. }
            | Step::Confirmed { quantity, .. }
            | Step::HeldCorrection {
                parts: quantity, ..
            } => quantity,
            _ => 0,
        }
    }
}

/// A drop is believed as soon as the counter has counted up this often below its old value:
/// a gateway's glitch reads 0 (or a frozen value), a restarted counter counts.
const RISES_TO_CONFIRM: u32 = 2;

/// Rate windows shorter than this are too noisy to predict an outage's parts.
const RATE_WINDOW_MS: i64 = 10_000;

impl Counter {
    /// Takes a good reading `raw` at `now_ms` (the runtime's clock), alone.
    pub fn observe(&mut self, raw: u64, now_ms: i64, rules: &CounterRules) -> Step {
        let alone = Company {
            session: self.session,
            ..Company::default()
        };
        self.observe_with(raw, now_ms, rules, &alone)
    }

    /// Takes a good reading `raw` at `now_ms` with what the rest of the cell knows.
    pub fn observe_with(
        &mut self,
        raw: u64,
        now_ms: i64,
        rules: &CounterRules,
        company: &Company,
    ) -> Step {
        self.readable = true;
        let step = self.decide(raw, now_ms, rules, company);
        self.account(&step, now_ms);
        self.last_ms = now_ms;
        self.session = company.session;
        step
    }

    /// A held reading that no new reading has disproved: confirmed once it has lasted
    /// `confirm_ms` while the counter reads good (drivers report changes only, so a value that
    /// holds brings no further readings). Gives the step and the reading it was confirmed at.
    pub fn confirm_held(
        &mut self,
        now_ms: i64,
        rules: &CounterRules,
        company: &Company,
    ) -> Option<(Step, u64)> {
        let p = self.pending.as_ref()?;
        if !self.readable || now_ms - p.since_ms < rules.confirm_ms {
            return None;
        }
        let latest = p.latest;
        let step = self.confirm_if_due(now_ms, rules, true, company);
        if let Step::Held { .. } = step {
            return None;
        }
        self.account(&step, now_ms);
        Some((step, latest))
    }

    fn account(&mut self, step: &Step, now_ms: i64) {
        match step {
            Step::Correction { quantity, .. } => {
                self.counted = self.counted.saturating_sub(*quantity)
            }
            Step::HeldCorrection {
                quantity, parts, ..
            } => self.counted = self.counted.saturating_sub(*quantity) + parts,
            s => self.counted += s.parts(),
        }
        // While a reading is held its parts are not known yet: no rate from that window.
        if self.pending.is_none() {
            self.measure_rate(now_ms, matches!(step, Step::Baseline { .. }));
        }
    }

    fn decide(&mut self, raw: u64, now_ms: i64, rules: &CounterRules, co: &Company) -> Step {
        if self.tag.as_deref() != Some(rules.tag.as_str()) {
            let previous = self.tag.replace(rules.tag.clone());
            // A store of a release that kept no tag: its baseline was read from the tag this
            // config names (an upgrade changes the binary, not the mapping), so it is kept.
            if previous.is_some() || self.last.is_none() {
                self.last = Some(raw);
                self.pending = None;
                return Step::Baseline {
                    previous_tag: previous,
                };
            }
        }
        let Some(last) = self.last else {
            self.last = Some(raw);
            return Step::Baseline { previous_tag: None };
        };
        if std::mem::take(&mut self.reset_seen) {
            // Told for certain: this reading is the count since the reset, even at or above
            // the old value (a counter at 1, reset, one part: 1 -> 1 is a part).
            self.pending = None;
            self.last = Some(raw);
            let (rule, quantity) = if raw <= rules.rollover_window {
                (Rule::RestartedFromZero, raw)
            } else {
                (Rule::JumpedBack, 0)
            };
            if rule == Rule::RestartedFromZero {
                self.restarted_at = Some(now_ms);
            }
            return Step::Confirmed {
                rule,
                quantity,
                from: last,
                first: raw,
                evidence: Evidence::ResetTag,
            };
        }
        let fits = raw >= last && rules.max_step.is_none_or(|m| raw - last <= m);
        if let Some(p) = &mut self.pending {
            p.listen(co, self.session, rules);
            // A drop after which the counter counted up: a restarted counter, also when it now
            // passes its old value (a reset at 2 reads 0, 1, 2, 3: three parts, not a glitch).
            let counted_below = p.first < last && p.rises > 0;
            // Told it restarted, a counter that counts up from its drop is counting from zero
            // even when its first count passes the old value (1 -> 0 -> 1): as far as a count
            // since zero can go (`rollover_window`, the bound of "near zero").
            let told = p.evidence.is_some()
                && p.first < last
                && raw > p.top
                && raw <= rules.rollover_window;
            if fits && !counted_below && !told {
                let p = self.pending.take().expect("pending");
                self.last = Some(raw);
                return Step::Glitch {
                    quantity: raw - last,
                    from: last,
                    low: p.lowest,
                    high: p.top,
                    readings: p.readings,
                    duration_ms: (now_ms - p.since_ms).max(0),
                };
            }
            p.latest = raw;
            if raw > p.top {
                p.since_first += raw - p.top;
                p.top = raw;
                p.rises += 1;
            }
            p.lowest = p.lowest.min(raw);
            p.readings += 1;
            return self.confirm_if_due(now_ms, rules, fits, co);
        }
        if fits {
            self.last = Some(raw);
            return if raw == last {
                Step::Unchanged
            } else {
                Step::Parts {
                    quantity: raw - last,
                }
            };
        }
        // Restart evidence at the drop: the device's session changed since the last reading, or
        // a sibling restarted from zero just now.
        let evidence = co.restarted_since(self.session).or_else(|| {
            co.sibling_restarted_near(now_ms, rules)
                .then_some(Evidence::SiblingRestarted)
        });
        let correction = raw < last && raw > 0 && last - raw <= rules.max_correction;
        if correction && evidence.is_none() && !co.sibling_dropping {
            self.last = Some(raw);
            return Step::Correction {
                quantity: last - raw,
                from: last,
            };
        }
        self.pending = Some(Pending {
            first: raw,
            latest: raw,
            lowest: raw,
            top: raw,
            since_first: 0,
            rises: 0,
            since_ms: now_ms,
            readings: 1,
            unobserved_ms: if self.last_ms > 0 {
                (now_ms - self.last_ms).max(0)
            } else {
                0
            },
            evidence,
            correction: correction && evidence.is_none(),
        });
        match self.confirm_if_due(now_ms, rules, false, co) {
            Step::Held { .. } => Step::Held { from: last },
            confirmed => confirmed,
        }
    }

    fn confirm_if_due(
        &mut self,
        now_ms: i64,
        rules: &CounterRules,
        now: bool,
        co: &Company,
    ) -> Step {
        let (Some(last), Some(p)) = (self.last, &mut self.pending) else {
            return Step::Unchanged;
        };
        p.listen(co, self.session, rules);
        let counting_below = p.first < last && p.rises >= RISES_TO_CONFIRM;
        let lasted =
            p.readings >= rules.confirm_readings && now_ms - p.since_ms >= rules.confirm_ms;
        // A step back held for a sibling's verdict waits for it: the sibling is confirmed or
        // disproved within its own window while the device reads good.
        let waiting = p.correction && p.evidence.is_none() && co.sibling_dropping;
        if !(now || counting_below || lasted) || waiting {
            return Step::Held { from: last };
        }
        let p = self.pending.take().expect("pending");
        // A reading below `top` now is a new drop of its own, judged from here on.
        self.last = Some(p.top);
        if p.correction && p.evidence.is_none() {
            return Step::HeldCorrection {
                quantity: last - p.first,
                from: last,
                first: p.first,
                parts: p.since_first,
            };
        }
        let told = p.evidence == Some(Evidence::ResetTag);
        let (rule, quantity) = if told && p.first <= rules.rollover_window {
            // A reset for certain: not a rollover, however close to the top it was.
            (Rule::RestartedFromZero, p.first + p.since_first)
        } else if told {
            (Rule::JumpedBack, p.since_first)
        } else if p.first > last {
            (Rule::ImplausibleJump, p.since_first)
        } else {
            let (rule, before_first) = self.classify_drop(last, &p, rules);
            (rule, before_first + p.since_first)
        };
        if rule == Rule::RestartedFromZero {
            self.restarted_at = Some(p.since_ms);
        }
        Step::Confirmed {
            rule,
            quantity,
            from: last,
            first: p.first,
            evidence: p.evidence.unwrap_or(Evidence::Readings),
        }
    }

    /// A confirmed drop from `last` to `p.first`: a rollover (the counter went past its top) or
    /// a restart. Gives the rule and the parts made up to the first reading after the drop.
    fn classify_drop(&self, last: u64, p: &Pending, rules: &CounterRules) -> (Rule, u64) {
        let range = 1u128 << rules.bits;
        let wrapped = (p.first as u128 + range - last as u128).min(u64::MAX as u128) as u64;
        let near_zero = p.first <= rules.rollover_window;
        let from_zero = if near_zero { p.first } else { 0 };
        if wrapped <= rules.rollover_window {
            return (Rule::Rollover, wrapped);
        }
        // Unread for a while (an outage): which story fits the parts the cell would have made
        // at its recent rate, the wrap or a restart from zero?
        let expected = self.rate_per_min * p.unobserved_ms as f64 / 60_000.0;
        if expected > 0.0 && (wrapped as f64 - expected).abs() < (from_zero as f64 - expected).abs()
        {
            return (Rule::RolloverWhileUnread, wrapped);
        }
        if near_zero {
            (Rule::RestartedFromZero, p.first)
        } else {
            (Rule::JumpedBack, 0)
        }
    }

    /// The runtime's clock stepped: the times this counter measures windows from move with it.
    pub fn clock_stepped(&mut self, step_ms: i64) {
        let shift = |t: &mut i64| {
            if *t != 0 {
                *t = t.saturating_add(step_ms);
            }
        };
        shift(&mut self.last_ms);
        shift(&mut self.rate_from.0);
        if let Some(p) = &mut self.pending {
            shift(&mut p.since_ms);
        }
        if let Some(t) = &mut self.restarted_at {
            shift(t);
        }
    }

    /// The rate over the last window of at least [`RATE_WINDOW_MS`] in which parts were made;
    /// an idle window keeps the rate the machine had while it ran.
    fn measure_rate(&mut self, now_ms: i64, restart: bool) {
        let (from_ms, from_counted) = self.rate_from;
        if restart || from_ms == 0 || now_ms < from_ms {
            self.rate_from = (now_ms, self.counted);
            return;
        }
        let elapsed = now_ms - from_ms;
        if elapsed < RATE_WINDOW_MS {
            return;
        }
        let made = self.counted.saturating_sub(from_counted);
        if made > 0 {
            self.rate_per_min = made as f64 * 60_000.0 / elapsed as f64;
        }
        self.rate_from = (now_ms, self.counted);
    }
}

#[cfg(test)]
#[path = "counter_tests.rs"]
mod tests;
