//! The fault-injection suite: a production scenario (tests/faults/plant.rs) run through the
//! faults of a shop floor, each in its own test, then mixed at random from a printed seed.
//! Every test ends with the same pass criteria (tests/faults/verdict.rs) and prints one
//! `FAULT-SUITE | ...` line with its figures (run with `--nocapture` to see them).
//!
//! Longer runs by hand: `MES_EDGE_FAULT_CYCLES` (kill -9 cycles, default 50),
//! `MES_EDGE_FAULT_STEPS` (faults in the mixed run, default 12), `MES_EDGE_FAULT_SEED`.

#[path = "../common/mod.rs"]
mod common;
mod machine;
mod plant;
mod proxy;
mod rng;
mod scenarios;
mod verdict;
mod waits;
