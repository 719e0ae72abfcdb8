//! Drivers brought by a program that embeds the runtime as a library, in place of the drivers
//! of the config's devices. The config still describes the cell: its devices and tags number
//! the tags and its signals give them their meaning; the embedding program feeds driver events
//! for those tags. Nothing in a config file or on the command line reaches this: `mes-edge run`
//! always builds its drivers from the config. The benchmark (`bench/`, scenarios S1 and S3)
//! uses it to feed the engine, the store and the forwarder faster than any PLC would, so that
//! it measures them and not a protocol's round trip.

use mes_edge_drivers::DeviceEvent;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

pub type DriverFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Called at each start of the cell with the sender for driver events and the signal that
/// stops the drivers (true: stop). The cell's stop waits for the future to end; the engine
/// commits what was sent and stops once every sender is dropped.
pub type EmbeddedDrivers =
    Arc<dyn Fn(mpsc::Sender<DeviceEvent>, watch::Receiver<bool>) -> DriverFuture + Send + Sync>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Outbox;
    use mes_edge_drivers::{DeviceId, Quality, Sample, TagId, Value};

    /// The embedded driver's readings are counted and committed like a PLC's, and the config's
    /// own device is not polled (its address is one nothing answers on). No broker is needed:
    /// the events wait in the outbox.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded_readings_are_counted_and_committed() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[cell]\nenterprise = \"e\"\nsite = \"s\"\narea = \"a\"\nline = \"l\"\ncell = \"c\"\n\
             [[devices]]\nname = \"plc\"\nprotocol = \"modbus-tcp\"\nhost = \"127.0.0.1\"\nport = 1\n\
             [[devices.tags]]\nname = \"good\"\ntable = \"holding\"\naddress = 0\ntype = \"u32\"\n\
             [signals.good_count]\ntag = \"good\"\n\
             [store]\npath = \"{}\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:1\"\n[health]\nenabled = false\n",
            dir.path().join("cell.db").display()
        );
        let config = crate::config::parse(&dir.path().join("cell.toml"), &text).unwrap();
        let drivers: EmbeddedDrivers = Arc::new(|tx, mut stop| -> DriverFuture {
            Box::pin(async move {
                for n in [10u64, 11, 12, 15] {
                    let samples = vec![Sample {
                        tag: TagId(0),
                        value: Some(Value::UInt(n)),
                        quality: Quality::Good,
                        ts_ms: 1,
                        source_ts_ms: None,
                    }];
                    tx.send(DeviceEvent::Samples {
                        device: DeviceId(0),
                        samples,
                    })
                    .await
                    .unwrap();
                }
                let _ = stop.wait_for(|s| *s).await;
            })
        });
        let (stop_tx, stop) = watch::channel(false);
        let cell = tokio::spawn(crate::runtime::run_with_drivers(config, stop, drivers));
        let path = dir.path().join("cell.db");
        for _ in 0..100 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let outbox =
                Outbox::open(&path, crate::config::Synchronous::Normal, "e/s/a/l/c").unwrap();
            // The store's announcement (store_created) and three part counts.
            if outbox.last_seq() >= 4 {
                break;
            }
        }
        stop_tx.send(true).unwrap();
        cell.await.unwrap().unwrap();
        let outbox = Outbox::open(&path, crate::config::Synchronous::Normal, "e/s/a/l/c").unwrap();
        let rows = outbox.rows_after(0, 10).unwrap();
        // The new store's announcement; a baseline, then three readings with parts: 1, 1 and 3.
        // No device_status event: the config's device was never polled.
        let kinds: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["store_created", "part_count", "part_count", "part_count"],
            "{kinds:?}"
        );
        assert_eq!(outbox.load_state().unwrap().good_total, 5);
    }
}
