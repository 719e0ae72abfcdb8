//! The network between the runtime and the broker cut, stalled (packets held, no RST: the
//! runtime only learns from its keep-alive) and slowed, through the fault proxy.

use crate::plant::{must, Options, Plant};
use crate::proxy::Link;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_cut_stalled_and_slowed() {
    let opts = Options {
        via_proxy: true,
        ..Options::default()
    };
    let mut plant = Plant::start("network cut/stall/slow", opts).await;
    plant.order_step().await;
    plant.wait_replied().await;

    plant.proxy().set(Link::Cut);
    plant.faults += 1;
    // The outage's length is the fault: parts made and committed for 4 s with no broker.
    tokio::time::sleep(Duration::from_secs(4)).await;
    plant.order_step().await;
    plant.proxy().set(Link::Up);
    // The reply to the command sent during the cut: the runtime is connected again, so the
    // stall below starts on a link that works (and counts its reconnects from there).
    plant.wait_replied().await;

    // Until the runtime has noticed the silent link by itself (its keep-alive is 5 s) and
    // connected again, the stall going on: a deadline well past twice the keep-alive.
    plant.proxy().set(Link::Stalled);
    plant.faults += 1;
    let before = plant.proxy().connections();
    must(
        Duration::from_secs(30),
        "a reconnect during the stall",
        || plant.proxy().connections() > before,
    )
    .await;
    plant.order_step().await;
    plant.proxy().set(Link::Up);
    plant.wait_replied().await;
    assert!(
        plant.proxy().connections() > before,
        "the runtime reconnected after the stall"
    );

    // A thin, laggy link: 512 bytes per 40 ms each way, with a backlog to push through.
    plant.proxy().set(Link::Slow {
        delay: Duration::from_millis(40),
        chunk: 512,
    });
    plant.faults += 1;
    plant.order_step().await;
    // The slow link's length is the fault: 8 s of parts and the command's reply pushed
    // through it.
    tokio::time::sleep(Duration::from_secs(8)).await;
    plant.proxy().set(Link::Up);
    plant.finish(3, None).await;
}
