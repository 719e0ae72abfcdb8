//! What a scenario waits for between its faults instead of a fixed time: MOM's reply to the
//! last order command, events committed after a moment, the runtime's own word for a fault.
//! Each is something MOM or the runtime's log shows, so a scenario goes on as soon as the plant
//! is where the next fault needs it, and fails with the reason when it never gets there.

use crate::common::cell::Delivery;
use crate::plant::Plant;
use crate::verdict::committed;
use std::time::Duration;

/// Long enough for a runtime backing off from a lost broker or PLC (its backoff grows to 30 s).
const DEADLINE: Duration = Duration::from_secs(60);

impl Plant {
    /// Waits until MOM has the reply to the last order command: the runtime received it,
    /// committed the reply and delivered it over the cell's link.
    pub async fn wait_replied(&self) {
        let correlation = self.commands().last().expect("a command sent").clone();
        let ok = self
            .collector
            .wait_for(
                |m| {
                    Delivery::of(m)
                        .of_type("command_response")
                        .any(|e| e["data"]["correlation_id"] == correlation.as_str())
                },
                DEADLINE,
            )
            .await;
        assert!(
            ok,
            "{}: no reply to {correlation} within {DEADLINE:?}\n{}",
            self.name,
            self.runtime.logs()
        );
    }

    /// Waits until MOM has `n` events committed after this call: the runtime goes on reading
    /// the machine, committing and delivering under whatever the last fault changed.
    pub async fn wait_fresh_events(&self, n: u64) {
        let after = committed(self.store_path()).0;
        let ok = self
            .collector
            .wait_for(|m| Delivery::of(m).last_seq() >= after + n, DEADLINE)
            .await;
        assert!(
            ok,
            "{}: MOM did not get {n} events after seq {after} within {DEADLINE:?}\n{}",
            self.name,
            self.runtime.logs()
        );
    }

    /// Waits until the runtime's log (every start) holds `needle` `n` times.
    pub async fn wait_logged(&self, needle: &str, n: usize) {
        let ok = crate::common::eventually(DEADLINE, || {
            self.runtime.stderr().matches(needle).count() >= n
        })
        .await;
        assert!(
            ok,
            "{}: the runtime did not log {needle:?} {n} times within {DEADLINE:?}\n{}",
            self.name,
            self.runtime.logs()
        );
    }
}
