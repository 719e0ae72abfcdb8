//! The PLC's counters rolling over (32-bit good, 16-bit scrap), jumping back (to some other
//! value, and to zero) and frozen.

use crate::machine::{CounterMode, Registers};
use crate::plant::{must, Options, Plant};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_roll_over_jump_back_and_freeze() {
    let opts = Options {
        start: Registers {
            good: u32::MAX - 150,
            scrap: u16::MAX - 15,
            ..Registers::default()
        },
        // Fast enough to roll over within seconds.
        cycle: Duration::from_millis(5),
        ..Options::default()
    };
    let mut plant = Plant::start("counters rollover/jump/freeze", opts).await;

    // Jumped back by more than the rollover window (a program download): a reset that counts
    // nothing, so the machine waits until the runtime has read the new value.
    plant.pause_and_settle().await;
    let r = plant.machine().registers();
    plant.machine().jump_to(u32::MAX - 1400, r.scrap).await;
    plant.faults += 1;
    tokio::time::sleep(Duration::from_millis(600)).await;
    plant.machine().resume();

    // Both counters pass the top of their range.
    must(
        Duration::from_secs(40),
        "both counters to roll over",
        || {
            let r = plant.machine().registers();
            r.good < 1000 && r.scrap < 1000
        },
    )
    .await;
    plant.faults += 2;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Reset to zero by an operator: what is made after the reset is counted.
    plant.pause_and_settle().await;
    plant.machine().jump_to(0, 0).await;
    plant.machine().resume();
    plant.faults += 1;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Frozen: running, but the counters do not move.
    // Between two steps, so that no step still counts a part after the freeze.
    plant.machine().pause().await;
    plant.machine().set_mode(CounterMode::Frozen);
    plant.machine().resume();
    plant.faults += 1;
    let frozen = (plant.machine().good(), plant.machine().scrap());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(frozen, (plant.machine().good(), plant.machine().scrap()));
    plant.machine().set_mode(CounterMode::Counting);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let report = plant.finish(5, None).await;
    for (counter, jumps) in [("good", 2), ("scrap", 1)] {
        assert!(
            report
                .of_type("part_count")
                .any(|e| e["data"]["counter"] == counter && e["data"]["rolled_over"] == true),
            "{counter} rolled over"
        );
        let resets = report
            .of_type("counter_reset")
            .filter(|e| e["data"]["counter"] == counter)
            .count();
        assert_eq!(resets, jumps, "{counter}: every jump back is one reset");
    }
}
