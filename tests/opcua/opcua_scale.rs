//! The OPC UA driver with thousands of nodes against an independent server (Python asyncua)
//! that limits how many monitored items one call may create: the driver creates them in
//! chunks within the limit, whether the server states it or only enforces it, and every node
//! gets its value.

use crate::common;

use common::opcua::{bulk_node, OpcUaOptions, OpcUaPeer};
use mes_edge_drivers::opcua::{
    parse_node_id, Connection, Identity, NodeTarget, NodeType, OpcUaDevice, OpcUaNode,
    SecurityMode, SecurityPolicy, SubscriptionGroup,
};
use mes_edge_drivers::{DeviceEvent, DeviceId, DeviceStatus, Quality, TagId, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

const NODES: u32 = 2_500;
const LIMIT: u32 = 400;

fn device(peer: &OpcUaPeer, pki: &std::path::Path) -> OpcUaDevice {
    let nodes = (0..NODES)
        .map(|k| OpcUaNode {
            id: TagId(k),
            name: format!("bulk_{k}"),
            target: NodeTarget::Id(parse_node_id(&bulk_node(k)).unwrap()),
            expect: Some(NodeType::U32),
            sampling_interval: None,
            queue_size: 1,
            discard_oldest: true,
            deadband: None,
            poll: false,
            group: 0,
        })
        .collect();
    OpcUaDevice {
        id: DeviceId(0),
        name: "big_press".into(),
        connection: Connection {
            endpoint: peer.endpoint(),
            policy: SecurityPolicy::None,
            mode: SecurityMode::None,
            identity: Identity::Anonymous,
            pki_dir: pki.to_path_buf(),
        },
        // asyncua takes a while over 2,500 items; the keep-alive must not give up meanwhile.
        timeout: Duration::from_secs(10),
        poll_interval: Duration::from_secs(1),
        keep_alive: Duration::from_secs(5),
        groups: vec![SubscriptionGroup {
            name: "default".into(),
            publishing_interval: Duration::from_millis(200),
        }],
        nodes,
        metrics: Default::default(),
    }
}

/// Runs the driver until every node has a good value and then `Bulk.<last>` has `77777`;
/// returns each node's last good value and the statuses said.
async fn run_driver(peer: &mut OpcUaPeer) -> (HashMap<TagId, Value>, Vec<DeviceStatus>) {
    let pki = tempfile::tempdir().unwrap();
    // A small channel: the driver must wait for the runtime, not pile up.
    let (tx, mut rx) = mpsc::channel(4);
    let (_writes, write_rx) = mpsc::channel(1);
    let (_calls, call_rx) = mpsc::channel(1);
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(mes_edge_drivers::opcua::run(
        device(peer, pki.path()),
        tx,
        write_rx,
        call_rx,
        stop_rx,
    ));
    let values = Arc::new(Mutex::new(HashMap::new()));
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let (v, s) = (values.clone(), statuses.clone());
    tokio::spawn(async move {
        while let Some(e) = rx.recv().await {
            match e {
                DeviceEvent::Samples { samples, .. } => {
                    let mut v = v.lock().unwrap();
                    for x in samples.into_iter().filter(|x| x.quality == Quality::Good) {
                        v.insert(x.tag, x.value.unwrap());
                    }
                }
                DeviceEvent::Status { status, .. } => s.lock().unwrap().push(status),
            }
        }
    });
    let all = common::eventually(Duration::from_secs(90), || {
        values.lock().unwrap().len() == NODES as usize
    })
    .await;
    assert!(
        all,
        "{} of {NODES} nodes have a value; statuses {:?}\n{}",
        values.lock().unwrap().len(),
        statuses.lock().unwrap(),
        peer.logs()
    );
    peer.bulk(NODES - 1, 77777);
    let last = TagId(NODES - 1);
    let changed = common::eventually(Duration::from_secs(10), || {
        values.lock().unwrap().get(&last) == Some(&Value::UInt(77777))
    })
    .await;
    assert!(changed, "a change after start-up arrives");
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the driver stops")
        .unwrap();
    let values = values.lock().unwrap().clone();
    let statuses = statuses.lock().unwrap().clone();
    (values, statuses)
}

fn assert_every_value(values: &HashMap<TagId, Value>) {
    for k in 0..NODES - 1 {
        assert_eq!(
            values.get(&TagId(k)),
            Some(&Value::UInt(k as u64)),
            "node Bulk.{k} has its start value"
        );
    }
}

/// One session: online once, then the server's start time (`ServerStatus/StartTime`, read at
/// the connect), which the independent server set when it started, within the last minute.
fn assert_online_once(statuses: &[DeviceStatus]) {
    let now = mes_edge_drivers::now_ms();
    match statuses {
        [DeviceStatus::Online, DeviceStatus::Started { at_ms }] => assert!(
            (now - 60_000..=now).contains(at_ms),
            "the server's start time {at_ms}, now {now}"
        ),
        other => panic!("one session, online then its start time: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stated_limit_on_items_per_call_is_kept() {
    let mut peer = OpcUaPeer::start(OpcUaOptions {
        bulk: NODES,
        max_items_per_call: LIMIT,
        ..Default::default()
    });
    let (values, statuses) = run_driver(&mut peer).await;
    assert_every_value(&values);
    assert_online_once(&statuses);
    let (ok, refused) = peer.create_item_calls();
    assert!(refused.is_empty(), "no call over the limit: {refused:?}");
    assert_eq!(ok.iter().sum::<usize>(), NODES as usize);
    assert!(ok.iter().all(|&n| n <= LIMIT as usize), "{ok:?}");
    assert_eq!(ok.len(), NODES.div_ceil(LIMIT) as usize, "{ok:?}");
}

/// A server that enforces a limit it does not state: the driver halves its chunks until the
/// server takes them, and keeps that size for the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unstated_limit_is_found_by_halving() {
    let mut peer = OpcUaPeer::start(OpcUaOptions {
        bulk: NODES,
        max_items_per_call: LIMIT,
        hidden_limit: true,
        ..Default::default()
    });
    let (values, statuses) = run_driver(&mut peer).await;
    assert_every_value(&values);
    assert_online_once(&statuses);
    let (ok, refused) = peer.create_item_calls();
    // 1,000 and 500 are refused; 250 is taken, ten times (2,500 / 250).
    assert_eq!(refused, vec![1000, 500], "{ok:?}");
    assert_eq!(ok, vec![250; 10]);
}
