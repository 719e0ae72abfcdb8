//! S6's OPC UA load server: an async-opcua server on 127.0.0.1 with `--nodes` UInt32 variables
//! (`nsu=urn:mes-edge:s6-load;i=<1000+k>`, k from 0) that change `--rate` times a second in
//! all, in turn, each by one. A separate process, so that serving never competes inside the
//! process being measured; one thread, so that it takes at most one of the machine's cores.
//!
//! Protocol with the harness, as the Modbus load server's: it prints `READY port` once bound;
//! on stdin `reset` zeroes the count of changes, `report` prints
//! `REPORT {"changes":N,"seconds":S}` (changes made since the reset).
//!
//! `--items-per-call` is the server's MaxMonitoredItemsPerCall (stated and enforced);
//! `--notifications-per-publish` caps each publish response whatever the client asks.

use opcua::server::address_space::{AccessLevel, VariableBuilder};
use opcua::server::diagnostics::NamespaceMetadata;
use opcua::server::node_manager::memory::{simple_node_manager, SimpleNodeManager};
use opcua::server::ServerBuilder;
use opcua::types::{DataTypeId, DataValue, NodeId, ObjectId};
use std::io::Write;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

const NS: &str = "urn:mes-edge:s6-load";
const FIRST_ID: u32 = 1000;

struct Args {
    nodes: u32,
    rate: u64,
    items_per_call: usize,
    pki: std::path::PathBuf,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        nodes: 10_000,
        rate: 50_000,
        items_per_call: 1000,
        pki: std::env::temp_dir().join("mes-edge-opcua-load-pki"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: std::num::ParseIntError| format!("{flag}: {e}");
        match flag.as_str() {
            "--nodes" => a.nodes = value.parse().map_err(bad)?,
            "--rate" => a.rate = value.parse().map_err(bad)?,
            "--items-per-call" => a.items_per_call = value.parse().map_err(bad)?,
            "--pki" => a.pki = value.into(),
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    Ok(a)
}

fn main() -> std::process::ExitCode {
    let result = args().and_then(|a| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?
            .block_on(serve(a))
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(a: Args) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let mut builder = ServerBuilder::new_anonymous("mes-edge S6 load server")
        .application_uri("urn:mes-edge:s6-load:server")
        .product_uri("urn:mes-edge:s6-load")
        .host("127.0.0.1")
        .port(port)
        .pki_dir(&a.pki)
        .create_sample_keypair(true)
        .with_node_manager(simple_node_manager(
            NamespaceMetadata {
                namespace_uri: NS.into(),
                ..Default::default()
            },
            "s6",
        ));
    let limits = builder.limits_mut();
    limits.operational.max_monitored_items_per_call = a.items_per_call;
    limits.subscriptions.max_monitored_items_per_sub = a.nodes as usize + 100;
    limits.subscriptions.max_queued_notifications = 1000;
    let (server, handle) = builder.build()?;
    let nm = handle
        .node_managers()
        .get_of_type::<SimpleNodeManager>()
        .ok_or("no simple node manager")?;
    let ns = handle
        .get_namespace_index(NS)
        .ok_or("namespace not registered")?;
    let ids: Vec<NodeId> = (0..a.nodes)
        .map(|k| NodeId::new(ns, FIRST_ID + k))
        .collect();
    {
        let mut space = nm.address_space().write();
        let folder = NodeId::new(ns, "Load");
        space.add_folder(&folder, "Load", "Load", &ObjectId::ObjectsFolder.into());
        let vars = ids
            .iter()
            .enumerate()
            .map(|(k, id)| {
                VariableBuilder::new(id, format!("v{k}"), format!("v{k}"))
                    .data_type(DataTypeId::UInt32)
                    .value(0u32)
                    .access_level(AccessLevel::CURRENT_READ)
                    .user_access_level(AccessLevel::CURRENT_READ)
                    .build()
            })
            .collect();
        space.add_variables(vars, &folder);
    }
    let runner = tokio::spawn(async move { server.run_with(listener).await });
    println!("READY {port}");
    let _ = std::io::stdout().flush();

    let subscriptions = handle.subscriptions().clone();
    let mut values = vec![0u32; ids.len()];
    let mut next = 0usize;
    let mut made: u64 = 0;
    let mut since = Instant::now();
    let start = Instant::now();
    let mut done: u64 = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                // Catch up to the rate since the start: a late tick changes more nodes.
                let due = (start.elapsed().as_secs_f64() * a.rate as f64) as u64;
                let n = (due - done).min(ids.len() as u64) as usize;
                done = due;
                let batch = (0..n).map(|j| {
                    let k = (next + j) % ids.len();
                    values[k] = values[k].wrapping_add(1);
                    (&ids[k], None, DataValue::new_now(values[k]))
                });
                let batch: Vec<_> = batch.collect();
                nm.set_values(&subscriptions, batch.into_iter())
                    .map_err(|e| format!("set values: {e}"))?;
                next = (next + n) % ids.len();
                made += n as u64;
            }
            line = stdin.next_line() => match line.map_err(|e| e.to_string())?.as_deref().map(str::trim) {
                Some("reset") => {
                    made = 0;
                    since = Instant::now();
                }
                Some("report") => {
                    println!(
                        "REPORT {{\"changes\":{made},\"seconds\":{}}}",
                        since.elapsed().as_secs_f64()
                    );
                    let _ = std::io::stdout().flush();
                }
                Some("quit") | None => break,
                Some(_) => {}
            },
        }
    }
    handle.cancel();
    let _ = runner.await;
    Ok(())
}
