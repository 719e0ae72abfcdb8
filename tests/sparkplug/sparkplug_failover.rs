//! Sparkplug's multiple MQTT servers (docs/SPARKPLUG.md "Several MQTT servers"), against peers we
//! did not write: two independent Mosquittos as the cell's `[mqtt] urls`, a pymodbus press making
//! parts, and pysparkplug as the primary host application with a session on each server. The
//! truth is the press's counter as the pymodbus peer serves it; the figure checked is the good
//! total the host received, never one the runtime computed.

use crate::common;
use crate::host;
use crate::ops_support;

use common::cell::{write_config_edited, GOOD};
use common::{ModbusPeer, Mosquitto, Plc, Press, RuntimeProcess};
use host::{metric, of_type, seq_breaks, Host};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mes-edge");

/// The failover time the cell is configured for in these tests.
const FAILOVER_AFTER_S: u64 = 3;

/// The edge node's messages that came through the server on `port`.
fn through(msgs: &[Value], port: u16) -> Vec<Value> {
    msgs.iter()
        .filter(|m| m["server"] == port)
        .cloned()
        .collect()
}

fn bd_seq(msg: &Value) -> u64 {
    metric(msg, "bdSeq")
        .and_then(|m| m["value"].as_u64())
        .expect("bdSeq")
}

/// The good total as a host shows it now: the last value that is not history.
fn live_good_total(msgs: &[Value]) -> Option<u64> {
    msgs.iter()
        .rev()
        .filter(|m| m["type"] == "NBIRTH" || m["type"] == "NDATA")
        .filter_map(|m| metric(m, "Production/Good Total"))
        .find(|m| m["is_historical"] != true)
        .and_then(|m| m["value"].as_u64())
}

/// Two servers, the press, the host on both, the cell with `urls = [a, b]` and a primary host.
struct Lab {
    a: Mosquitto,
    b: Mosquitto,
    peer: ModbusPeer,
    host: Host,
    rt: RuntimeProcess,
    /// The cell's `/health` and `/metrics`.
    health: SocketAddr,
    _dir: tempfile::TempDir,
}

fn config(dir: &Path, plc: u16, a: &Mosquitto, b: &Mosquitto) -> (PathBuf, SocketAddr) {
    let urls = [a.url(), b.url()];
    let cfg = write_config_edited(
        dir,
        plc,
        a.port(),
        |doc| {
            let mqtt = doc["mqtt"].as_table_mut().unwrap();
            mqtt.remove("url");
            mqtt["urls"] = toml_edit::value(toml_edit::Array::from_iter(urls.iter().cloned()));
            mqtt["failover_after_s"] = toml_edit::value(FAILOVER_AFTER_S as i64);
        },
        "[sparkplug]\nenabled = true\nprimary_host_id = \"scada\"\n",
    );
    let health = ops_support::with_health(&cfg);
    (cfg, health)
}

impl Lab {
    async fn start() -> Lab {
        Lab::with_host_on(&[0, 1]).await
    }

    /// The host with a session on the servers of `servers` (0: the first, 1: the second).
    async fn with_host_on(servers: &[usize]) -> Lab {
        let (a, b) = (Mosquitto::start(), Mosquitto::start());
        let peer = ModbusPeer::start();
        Plc::connect(peer.port(), 1).await.write_u32(GOOD, 0).await;
        let ports: Vec<u16> = servers.iter().map(|&i| [a.port(), b.port()][i]).collect();
        let host = Host::start_on(&ports, Some("scada")).await;
        let dir = tempfile::tempdir().unwrap();
        let (cfg, health) = config(dir.path(), peer.port(), &a, &b);
        let rt = RuntimeProcess::spawn(BIN, ["run", "--config", cfg.to_str().unwrap()]);
        Lab {
            a,
            b,
            peer,
            host,
            rt,
            health,
            _dir: dir,
        }
    }

    /// `/health` names `url` as the Sparkplug server in use, in the sparkplug sink and in the
    /// session's own part, and `/metrics` labels it with its role.
    fn assert_server_in_use(&self, url: &str, primary: bool) {
        let role = if primary { "primary" } else { "standby" };
        assert_eq!(
            self.server_in_use(url),
            (
                Value::from(url),
                serde_json::json!({ "url": url, "primary": primary }),
                Some(role)
            ),
            "/health and /metrics name {url} as the {role} server"
        );
    }

    /// The Sparkplug server in use as `/health` names it, in the sparkplug sink and in the
    /// session's own part, and as `/metrics` labels it: (sink's url, session's url and whether
    /// it is the primary, the role of `url` in `mes_edge_sparkplug_server_info`).
    fn server_in_use(&self, url: &str) -> (Value, Value, Option<&'static str>) {
        let health = ops_support::scrape(self.health, "/health", false).json;
        let sink = health["sinks"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == "sparkplug"))
            .map(|s| s["broker"].clone())
            .unwrap_or(Value::Null);
        let metrics = ops_support::scrape(self.health, "/metrics", true).families;
        let role = ["primary", "standby"].into_iter().find(|role| {
            ops_support::sample(
                &metrics,
                "mes_edge_sparkplug_server_info",
                &[("url", url), ("role", role)],
            ) == Some(1.0)
        });
        (sink, health["sparkplug"]["server"].clone(), role)
    }

    /// The `n`th NBIRTH through the server on `port`, waited for up to `secs`.
    async fn birth_on(&self, port: u16, n: usize, secs: u64) -> Value {
        let births = |m: &[Value]| {
            of_type(&through(m, port), "NBIRTH")
                .cloned()
                .collect::<Vec<_>>()
        };
        assert!(
            self.host.wait(|m| births(m).len() >= n, secs).await,
            "no NBIRTH #{n} through the server on port {port}: {:?}\n{}",
            self.host.node_messages(),
            self.rt.logs()
        );
        births(&self.host.node_messages())[n - 1].clone()
    }

    async fn death_on(&self, port: u16, secs: u64) -> Value {
        let death = |m: &[Value]| of_type(&through(m, port), "NDEATH").next().cloned();
        assert!(
            self.host.wait(|m| death(m).is_some(), secs).await,
            "no NDEATH through the server on port {port}\n{}",
            self.rt.logs()
        );
        death(&self.host.node_messages()).unwrap()
    }

    /// Stops the press, then checks the host's good total against the press's counter, the
    /// message order of each session, and a clean stop without an ERROR in the log.
    async fn finish(mut self, press: Press) -> u64 {
        let written = press.stop().await;
        let truth = Plc::connect(self.peer.port(), 1).await.read_u32(GOOD).await as u64;
        assert_eq!(truth, written as u64, "the peer holds what the press wrote");
        let reached = self
            .host
            .wait(
                |_| live_good_total(&self.host.node_messages()) == Some(truth),
                30,
            )
            .await;
        assert!(
            reached,
            "the host's good total is {:?}, the press made {truth}\n{}",
            live_good_total(&self.host.node_messages()),
            self.rt.logs()
        );
        for port in [self.a.port(), self.b.port()] {
            let breaks = seq_breaks(&through(&self.host.node_messages(), port));
            assert!(breaks.is_empty(), "seq broken on {port}: {breaks:?}");
        }
        assert!(self.rt.terminate().success(), "{}", self.rt.logs());
        let logs = self.rt.logs();
        let errors: Vec<&str> = logs.lines().filter(|l| l.contains(" ERROR ")).collect();
        assert!(errors.is_empty(), "errors logged: {errors:#?}");
        for line in logs.lines().filter(|l| l.contains("Sparkplug")) {
            println!("SPARKPLUG FAILOVER | log | {line}");
        }
        truth
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_production_moves_the_edge_node_to_the_next_with_a_new_bd_seq() {
    let mut l = Lab::start().await;
    let (a, b) = (l.a.port(), l.b.port());
    let first = l.birth_on(a, 1, 60).await;
    let (url_a, url_b) = (l.a.url(), l.b.url());
    l.assert_server_in_use(&url_a, true);
    let press = Press::start(l.peer.port(), Duration::from_millis(50)).await;
    assert!(
        l.host
            .wait(|m| live_good_total(&through(m, a)) >= Some(20), 20)
            .await,
        "production reached the host through the first server\n{}",
        l.rt.logs()
    );

    l.a.kill9();
    let killed = Instant::now();
    let second = l.birth_on(b, 1, FAILOVER_AFTER_S + 30).await;
    let moved = killed.elapsed();
    println!(
        "SPARKPLUG FAILOVER | server killed | configured failover_after_s {FAILOVER_AFTER_S} | NBIRTH on the next server {:.2} s after the kill -9 | bdSeq {} then {}",
        moved.as_secs_f64(),
        bd_seq(&first),
        bd_seq(&second)
    );
    // Refused attempts at the dead server sent no CONNECT: the next CONNECT's bdSeq is +1.
    assert_eq!(bd_seq(&second), (bd_seq(&first) + 1) % 256, "a fresh bdSeq");
    assert_eq!(second["seq"], 0);
    l.assert_server_in_use(&url_b, false);
    assert!(
        moved <= Duration::from_secs(FAILOVER_AFTER_S + 2),
        "born on the next server {moved:?} after the kill, configured {FAILOVER_AFTER_S} s"
    );

    // The first server comes back: the node stays where its session and the host are.
    tokio::time::sleep(Duration::from_secs(2)).await;
    l.a.start_again();
    tokio::time::sleep(Duration::from_secs(FAILOVER_AFTER_S + 2)).await;
    let births = of_type(&l.host.node_messages(), "NBIRTH").count();
    let truth = l.finish(press).await;
    println!("SPARKPLUG FAILOVER | server killed | parts made {truth} = the host's good total | NBIRTHs {births}");
    assert_eq!(births, 2, "one birth per server, no move back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_primary_host_offline_on_one_server_walks_the_edge_node_to_the_next_and_back() {
    let mut l = Lab::start().await;
    let (a, b) = (l.a.port(), l.b.port());
    let first = l.birth_on(a, 1, 60).await;
    let press = Press::start(l.peer.port(), Duration::from_millis(50)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The host loses its session to the first server only (its will there says offline).
    l.host.set_online_on(a, false);
    let asked = Instant::now();
    let death = l.death_on(a, 10).await;
    let second = l.birth_on(b, 1, 10).await;
    println!(
        "SPARKPLUG FAILOVER | host offline on one server | NBIRTH on the next server {:.2} s after the offline STATE",
        asked.elapsed().as_secs_f64()
    );
    assert_eq!(
        bd_seq(&death),
        bd_seq(&first),
        "the NDEATH of the first session"
    );
    assert_eq!(bd_seq(&second), (bd_seq(&first) + 1) % 256, "a fresh bdSeq");
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Back on the first server, then gone from the second: the node follows each server's
    // STATE on its own (the second's online STATE is older than the first's offline one).
    l.host.set_online_on(a, true);
    l.host.set_online_on(b, false);
    let third = l.birth_on(a, 2, 10).await;
    assert_eq!(bd_seq(&l.death_on(b, 10).await), bd_seq(&second));
    assert_eq!(bd_seq(&third), (bd_seq(&first) + 2) % 256);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let truth = l.finish(press).await;
    println!("SPARKPLUG FAILOVER | host offline on one server | parts made {truth} = the host's good total");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_the_primary_host_never_came_to_is_left_after_the_failover_time() {
    // The host is on the second server only: no STATE at all on the first.
    let l = Lab::with_host_on(&[1]).await;
    let started = Instant::now();
    let birth = l.birth_on(l.b.port(), 1, 30).await;
    let took = started.elapsed();
    println!(
        "SPARKPLUG FAILOVER | no host on the first server | NBIRTH on the second {:.2} s after the runtime's start",
        took.as_secs_f64()
    );
    assert!(
        took >= Duration::from_secs(FAILOVER_AFTER_S),
        "waited for the host on the first server first"
    );
    // The wait on the first server used one CONNECT.
    assert_eq!(bd_seq(&birth), 1);
    let press = Press::start(l.peer.port(), Duration::from_millis(50)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    l.finish(press).await;
}
