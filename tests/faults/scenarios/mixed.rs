//! Every fault, mixed at random from one printed seed: `MES_EDGE_FAULT_STEPS` faults (default
//! 12), each restored before the next, with MOM's order commands in between.

use crate::plant::{Options, Plant};
use crate::proxy::Link;
use crate::rng::{env_count, Rng};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_mixed_at_random() {
    let steps = env_count("MES_EDGE_FAULT_STEPS", 12);
    let (mut rng, seed) = Rng::from_env("mixed");
    let opts = Options {
        via_proxy: true,
        ..Options::default()
    };
    let mut plant = Plant::start("mixed at random", opts).await;
    plant.order_step().await;
    for step in 0..steps {
        tokio::time::sleep(rng.millis(300, 2000)).await;
        let fault = rng.range(0, 11);
        println!("mixed step {step}: fault {fault}");
        match fault {
            0 => {
                plant.kill_runtime();
                tokio::time::sleep(rng.millis(0, 1500)).await;
                plant.restart_runtime();
            }
            1 => {
                plant.broker.start_again();
                plant.faults += 1;
            }
            2 => {
                plant.broker.stop();
                plant.faults += 1;
                tokio::time::sleep(rng.millis(1000, 6000)).await;
                plant.broker.start_again();
            }
            3..=5 => {
                let (link, lo, hi) = match fault {
                    3 => (Link::Cut, 500, 4000),
                    4 => (Link::Stalled, 2000, 13000),
                    _ => (
                        Link::Slow {
                            delay: rng.millis(5, 80),
                            chunk: rng.range(64, 2048) as usize,
                        },
                        2000,
                        6000,
                    ),
                };
                plant.proxy().set(link);
                plant.faults += 1;
                tokio::time::sleep(rng.millis(lo, hi)).await;
                plant.proxy().set(Link::Up);
            }
            6 => {
                plant.machine().pause().await;
                let r = plant.machine().registers();
                plant.peer.kill9();
                plant.faults += 1;
                tokio::time::sleep(rng.millis(200, 3000)).await;
                plant.peer.start_again_with_init(json!({
                    "holding": { "0": [(r.good >> 16) as u16, r.good as u16, r.scrap, r.state, r.fault] }
                }));
                plant.machine().resume();
            }
            7 => {
                plant.pause_and_settle().await;
                let online = plant.online_count();
                let (was, resets) = (plant.machine().registers(), plant.resets());
                plant.peer.kill9();
                plant.faults += 1;
                tokio::time::sleep(rng.millis(200, 3000)).await;
                plant.peer.start_again_with_init(json!({}));
                plant.machine().jump_to(0, 0).await;
                // The runtime must read the counter back at zero (or below its old value)
                // before the machine runs again: a reset it never sees, because the counter
                // passed its old value first, counts as ordinary parts and loses that old value
                // (docs/RELIABILITY.md). Its reconnect backoff can reach 30 s.
                plant.wait_online(online + 1).await;
                plant
                    .wait_resets_confirmed(resets, (was.good, was.scrap))
                    .await;
                plant.machine().resume();
            }
            8 => {
                let hours = rng.range(0, 3) as i64;
                let ms =
                    rng.range(1_000, 3_600_000) as i64 * if rng.range(0, 2) == 0 { -1 } else { 1 };
                plant.step_clock(hours * 3_600_000 * ms.signum() + ms).await;
            }
            9 => {
                plant.pause_and_settle().await;
                let (was, resets) = (plant.machine().registers(), plant.resets());
                plant.machine().jump_to(0, 0).await;
                plant
                    .wait_resets_confirmed(resets, (was.good, was.scrap))
                    .await;
                plant.machine().resume();
                plant.faults += 1;
            }
            _ => {
                plant
                    .machine()
                    .set_mode(crate::machine::CounterMode::Frozen);
                plant.faults += 1;
                tokio::time::sleep(rng.millis(500, 3000)).await;
                plant
                    .machine()
                    .set_mode(crate::machine::CounterMode::Counting);
            }
        }
        if rng.range(0, 3) == 0 {
            plant.order_step().await;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    plant.finish(steps, Some(seed)).await;
}
