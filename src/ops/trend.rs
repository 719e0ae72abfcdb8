//! A short trend of each published process value, for the status page's sparklines: the
//! readings the runtime took (the drivers hand on a value when it changes, so a point holds
//! until the next), thinned to one point per [`STEP_MS`] of time over the last [`WINDOW_MS`],
//! the newest reading always the last point. Kept in memory only (a restart starts it again):
//! the store keeps a value only until the broker has it.

use std::collections::VecDeque;

/// Points are at least this far apart, but for the last, which follows the newest reading.
pub const STEP_MS: i64 = 2_000;
/// The trend reaches back this far.
pub const WINDOW_MS: i64 = 600_000;
const POINTS: usize = (WINDOW_MS / STEP_MS) as usize + 2;

#[derive(Debug, Clone, Default)]
pub struct Trend(VecDeque<(i64, f64)>);

impl Trend {
    /// A reading at `ts_ms`. Not a number (text, a bad reading) leaves a gap rather than a
    /// point: the line then joins the readings either side of it.
    pub fn add(&mut self, ts_ms: i64, value: f64) {
        if !value.is_finite() {
            return;
        }
        let p = &mut self.0;
        if p.back().is_some_and(|&(t, _)| ts_ms < t) {
            return;
        }
        // One point a step of time, the step's newest reading: a value changing at every poll
        // leaves a point a step, a value held longer than a step is never overwritten, and the
        // newest reading is always drawn.
        match p.back_mut() {
            Some(last) if last.0.div_euclid(STEP_MS) == ts_ms.div_euclid(STEP_MS) => {
                *last = (ts_ms, value)
            }
            _ => p.push_back((ts_ms, value)),
        }
        // One point from before the window stays: it is the value the window starts with.
        while p.len() > POINTS || (p.len() > 1 && p[1].0 <= ts_ms - WINDOW_MS) {
            p.pop_front();
        }
    }

    /// `[[ts_ms, value], ...]`, oldest first.
    pub fn points(&self) -> Vec<(i64, f64)> {
        self.0.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_one_point_a_step_the_newest_reading_last_and_the_window_bounded() {
        let mut t = Trend::default();
        for i in 0..=50 {
            t.add(i * 100, i as f64); // a value changing at every poll, 5 s of it
        }
        let p = t.points();
        assert_eq!(p, [(1_900, 19.0), (3_900, 39.0), (5_000, 50.0)]);
        t.add(4_000, 1.0);
        assert_eq!(
            t.points().last(),
            Some(&(5_000, 50.0)),
            "an older reading is not drawn"
        );
        t.add(5_100, f64::NAN);
        assert_eq!(
            t.points().last(),
            Some(&(5_000, 50.0)),
            "nothing to draw is no point"
        );
        // A value reported at its changes only: each change held longer than a step is a point.
        t.add(9_000, 7.0);
        t.add(12_000, 8.0);
        let p = t.points();
        assert_eq!(
            &p[p.len() - 3..],
            &[(5_000, 50.0), (9_000, 7.0), (12_000, 8.0)]
        );
        for i in 0..2_000 {
            t.add(13_000 + i * 1_000, 1.0);
        }
        let p = t.points();
        assert!(p.len() <= POINTS, "{}", p.len());
        let newest = p.last().unwrap().0;
        assert!(
            p[0].0 < newest - WINDOW_MS && p[1].0 > newest - WINDOW_MS,
            "{:?}",
            &p[..2]
        );
    }
}
