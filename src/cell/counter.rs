use serde::{Deserialize, Serialize};

/// A PLC part counter as last counted from. Parts are the difference between readings, so a
/// reading missed while the device or the runtime was down is made up by the next one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    /// The raw value the committed counts were taken up to; None before the first reading.
    pub last: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// First reading ever: it becomes the baseline, counting nothing.
    Baseline,
    Unchanged,
    Parts {
        quantity: u64,
        rolled_over: bool,
    },
    /// The counter went back by more than the rollover window: a PLC restart or a manual reset.
    /// A counter that restarted from zero has counted `since_zero` parts since (a new value
    /// within the rollover window); a counter that jumped anywhere else counts nothing.
    Reset {
        from: u64,
        since_zero: u64,
    },
}

impl Counter {
    /// Takes a reading of a `bits`-wide counter. A step back of at most `rollover_window` past the
    /// top of the range is a rollover; anything else that goes back is a reset.
    pub fn observe(&mut self, raw: u64, bits: u32, rollover_window: u64) -> Step {
        let Some(last) = self.last.replace(raw) else {
            return Step::Baseline;
        };
        if raw == last {
            Step::Unchanged
        } else if raw > last {
            Step::Parts {
                quantity: raw - last,
                rolled_over: false,
            }
        } else {
            let range = 1u128 << bits;
            let wrapped = (raw as u128 + range - last as u128) as u64;
            if wrapped <= rollover_window {
                Step::Parts {
                    quantity: wrapped,
                    rolled_over: true,
                }
            } else {
                Step::Reset {
                    from: last,
                    since_zero: if raw <= rollover_window { raw } else { 0 },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_deltas_from_a_baseline() {
        let mut c = Counter::default();
        assert_eq!(c.observe(100, 16, 1000), Step::Baseline);
        assert_eq!(c.observe(100, 16, 1000), Step::Unchanged);
        assert_eq!(
            c.observe(103, 16, 1000),
            Step::Parts {
                quantity: 3,
                rolled_over: false
            }
        );
    }

    #[test]
    fn rolls_over_at_16_and_32_bits() {
        let mut c = Counter { last: Some(65_530) };
        assert_eq!(
            c.observe(4, 16, 1000),
            Step::Parts {
                quantity: 10,
                rolled_over: true
            }
        );
        let mut c = Counter {
            last: Some(u32::MAX as u64 - 1),
        };
        assert_eq!(
            c.observe(0, 32, 1000),
            Step::Parts {
                quantity: 2,
                rolled_over: true
            }
        );
        let mut c = Counter {
            last: Some(u64::MAX),
        };
        assert_eq!(
            c.observe(0, 64, 1000),
            Step::Parts {
                quantity: 1,
                rolled_over: true
            }
        );
    }

    #[test]
    fn a_jump_back_is_a_reset_not_a_count() {
        let mut c = Counter { last: Some(5_000) };
        assert_eq!(
            c.observe(0, 16, 1000),
            Step::Reset {
                from: 5_000,
                since_zero: 0
            }
        );
        assert_eq!(c.last, Some(0));
        assert_eq!(
            c.observe(7, 16, 1000),
            Step::Parts {
                quantity: 7,
                rolled_over: false
            }
        );
        // Just outside the window past the top: a reset as well.
        let mut c = Counter {
            last: Some(65_535 - 1000),
        };
        assert_eq!(
            c.observe(0, 16, 1000),
            Step::Reset {
                from: 64_535,
                since_zero: 0
            }
        );
    }

    #[test]
    fn a_counter_restarted_from_zero_counts_what_it_made_since() {
        // Power-cycled at 5000, made 3 parts before the first reading after the restart.
        let mut c = Counter { last: Some(5_000) };
        assert_eq!(
            c.observe(3, 32, 1000),
            Step::Reset {
                from: 5_000,
                since_zero: 3
            }
        );
        // Jumped back to somewhere that is not near zero: nothing can be known, nothing counted.
        let mut c = Counter { last: Some(50_000) };
        assert_eq!(
            c.observe(20_000, 32, 1000),
            Step::Reset {
                from: 50_000,
                since_zero: 0
            }
        );
    }
}
