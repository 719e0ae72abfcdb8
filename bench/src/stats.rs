//! Percentiles and the like over the samples a scenario collects.

/// The `p`-th percentile (0..=100) by nearest rank; NaN for no samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

pub fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.iter().sum::<f64>() / v.len() as f64
}

/// Standard deviation around `around` (the nominal value, not the mean).
pub fn deviation(v: &[f64], around: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    (v.iter().map(|x| (x - around).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
}

#[derive(Debug, Clone, Copy)]
pub struct Spread {
    pub n: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

pub fn spread(v: Vec<f64>) -> Spread {
    let s = sorted(v);
    Spread {
        n: s.len(),
        p50: percentile(&s, 50.0),
        p99: percentile(&s, 99.0),
        max: s.last().copied().unwrap_or(f64::NAN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
    }
}
