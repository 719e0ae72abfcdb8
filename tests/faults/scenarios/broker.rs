//! The plant's broker stopped and started by IT, and restarted while the runtime publishes.

use crate::plant::{Options, Plant};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_stopped_started_and_restarted_while_publishing() {
    let mut plant = Plant::start("broker stop/restart", Options::default()).await;
    plant.order_step().await;
    plant.wait_replied().await;
    // Down for a while: the backlog builds in the store.
    plant.broker.stop();
    plant.faults += 1;
    tokio::time::sleep(Duration::from_secs(8)).await;
    plant.broker.start_again();
    plant.order_step().await;
    // Not the reply: it comes after the backlog, and the restarts below must find the backlog
    // still going out.
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Restarted three times in quick succession, while the backlog is still being re-published.
    for _ in 0..3 {
        plant.broker.start_again();
        plant.faults += 1;
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    plant.order_step().await;
    plant.wait_replied().await;
    plant.order_step().await;
    plant.finish(4, None).await;
}
