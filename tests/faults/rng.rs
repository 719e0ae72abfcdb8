//! The seeded randomness of the suite: every random schedule comes from one printed seed, so a
//! failing run is repeated with `MES_EDGE_FAULT_SEED=<seed>`.

pub struct Rng(u64);

impl Rng {
    /// From `MES_EDGE_FAULT_SEED`, else the time; prints the seed either way.
    pub fn from_env(scenario: &str) -> (Rng, u64) {
        let seed = std::env::var("MES_EDGE_FAULT_SEED")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        println!("{scenario}: seed {seed} (repeat with MES_EDGE_FAULT_SEED={seed})");
        (Rng(seed ^ 0x9E37_79B9_7F4A_7C15), seed)
    }

    /// splitmix64
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in lo..hi.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }

    pub fn millis(&mut self, lo: u64, hi: u64) -> std::time::Duration {
        std::time::Duration::from_millis(self.range(lo, hi))
    }
}

/// A count from the environment (`MES_EDGE_FAULT_CYCLES` and the like), else `default`.
pub fn env_count(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}
