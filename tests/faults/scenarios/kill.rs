//! kill -9 of the runtime at random moments: a power cut of the line-side PC as the process
//! sees it (the page cache survives, which `synchronous = full` does not need; see
//! docs/RELIABILITY.md).

use crate::plant::{Options, Plant};
use crate::rng::{env_count, Rng};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_nothing() {
    let cycles = env_count("MES_EDGE_FAULT_CYCLES", 50);
    let (mut rng, seed) = Rng::from_env("kill -9");
    let mut plant = Plant::start("kill -9", Options::default()).await;
    for i in 0..cycles {
        // Mostly short lives (a kill during start-up, recovery or a commit), some longer ones.
        let life = if rng.range(0, 4) == 0 {
            rng.millis(800, 2500)
        } else {
            rng.millis(50, 700)
        };
        tokio::time::sleep(life).await;
        plant.kill_runtime();
        tokio::time::sleep(rng.millis(0, 300)).await;
        plant.restart_runtime();
        if i % 10 == 5 {
            plant.order_step().await;
        }
    }
    plant.finish(cycles, Some(seed)).await;
}
