//! The control socket on the real binary, against Mosquitto and a pymodbus PLC: a command's
//! events name the operator's Unix user (SO_PEERCRED); a user outside the socket's group is
//! refused by the kernel; a file at the socket's path that is not a socket is never removed; a
//! flood of idle connections is capped and closed while `/health` and the CLI go on.
//! (The operators' group of the package is checked by scripts/ops-checks.sh.)

use crate::common;
use crate::ops_support;

use common::cell::{write_config, Delivery, TOPIC_FILTER};
use common::{Collector, ModbusPeer, Mosquitto, RuntimeProcess};
use mes_edge::control::{MAX_CONNECTIONS, READ_TIMEOUT};
use ops_support::{scrape, wait_online, with_health};
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mes-edge");

/// This process's user name, as `id -un` says.
fn me() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commands_events_name_the_operator_and_others_are_refused() {
    let peer = ModbusPeer::start();
    let broker = Mosquitto::start();
    let collector = Collector::start(broker.port(), TOPIC_FILTER).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), peer.port(), broker.port());
    let mut rt = RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()]);
    common::cell::wait_first_device_status(&collector, &rt).await;
    let socket = dir.path().join("cell.sock");
    // Commanded by socket path, without the config (as an operator who may not read it).
    let out = Command::new(BIN)
        .args(["orders", "--socket", socket.to_str().unwrap()])
        .args(["store", "WO-1", "--material", "BRK-220", "--quantity", "5"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let user = me();
    let named = collector
        .wait_for(
            |m| {
                let d = Delivery::of(m);
                let states: Vec<_> = d.of_type("order_state").collect();
                !states.is_empty()
                    && d.of_type("command_response").count() == 1
                    && states.iter().all(|e| e["user"] == user.as_str())
            },
            Duration::from_secs(10),
        )
        .await;
    let d = Delivery::of(&collector.snapshot());
    assert!(
        named,
        "order_state and command_response with \"user\": {user:?}: {:?}\n{}",
        d.by_seq.values().collect::<Vec<_>>(),
        rt.logs()
    );
    assert_eq!(
        d.of_type("command_response").next().unwrap()["user"],
        user.as_str()
    );
    // Events no person commanded carry no user.
    assert!(d.of_type("device_status").all(|e| e.get("user").is_none()));

    // The socket is 0660: a user outside its group gets no connection.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777,
        0o660
    );
    if me() == "root" {
        // Let nobody reach the socket's folder, so that the socket's own mode decides.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        let out = Command::new("runuser")
            .args(["-u", "nobody", "--", BIN, "orders", "--socket"])
            .arg(&socket)
            .args(["start", "WO-1"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("Permission denied"),
            "{err}"
        );
    }
    assert!(rt.terminate().success());
}

#[test]
fn a_file_at_the_sockets_path_that_is_not_a_socket_is_never_removed() {
    let dir = tempfile::tempdir().unwrap();
    // Any broker and PLC: the runtime stops before it talks to either.
    let config = write_config(dir.path(), 1, 1);
    let squatter = dir.path().join("cell.sock");
    std::fs::write(&squatter, b"not a socket").unwrap();
    let out = Command::new(BIN)
        .args(["run", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("it is not a socket"), "{err}");
    assert_eq!(std::fs::read(&squatter).unwrap(), b"not a socket");
}

/// The runtime's open file descriptors.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The most descriptors `pid` had open, sampled every 10 ms until `stop` is set.
fn peak_fds(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut peak = 0;
        while !stop.load(Ordering::Relaxed) {
            peak = peak.max(open_fds(pid));
            std::thread::sleep(Duration::from_millis(10));
        }
        peak
    })
}

/// What the runtime did with an idle connection: `Some(line)` once it closed it (the `busy`
/// refusal, or nothing), None if it was still open at `deadline`.
fn closed_by_runtime(mut conn: UnixStream, deadline: Instant) -> Option<String> {
    let left = deadline.saturating_duration_since(Instant::now());
    conn.set_read_timeout(Some(left.max(Duration::from_millis(1))))
        .unwrap();
    let mut got = Vec::new();
    conn.read_to_end(&mut got).ok()?;
    Some(String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_capped_and_closed_while_health_and_the_cli_go_on() {
    const IDLE: usize = 200;
    let peer = ModbusPeer::start();
    let broker = Mosquitto::start();
    let collector = Collector::start(broker.port(), TOPIC_FILTER).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), peer.port(), broker.port());
    let health = with_health(&config);
    let mut rt = RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()]);
    wait_online(&collector, 1).await;
    let socket = dir.path().join("cell.sock");
    let pid = rt.pid().unwrap();
    let fds_before = open_fds(pid);
    let sampling = Arc::new(AtomicBool::new(false));
    let sampler = peak_fds(pid, sampling.clone());

    // Connections that never send a byte, as the review's 1,100 did.
    let opened = Instant::now();
    let idle: Vec<UnixStream> = (0..IDLE)
        .map(|_| UnixStream::connect(&socket).unwrap())
        .collect();

    let h = scrape(health, "/health", false);
    assert_eq!(
        h.status,
        200,
        "/health during the flood: {}\n{}",
        h.body,
        rt.logs()
    );

    // The operator's CLI waits out the busy refusals until an idle connection's slot is freed.
    let cli = Instant::now();
    let out = Command::new(BIN)
        .args(["orders", "--socket", socket.to_str().unwrap()])
        .args(["store", "WO-9", "--material", "BRK-220", "--quantity", "5"])
        .output()
        .unwrap();
    let cli_took = cli.elapsed();
    assert!(
        out.status.success(),
        "the CLI during the flood: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        rt.logs()
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(r#""status":"accepted""#));

    // Every idle connection is closed by the runtime within the read timeout (and a margin
    // for a loaded machine): over the cap at once with a `busy` line, within the cap silently.
    let deadline = opened + READ_TIMEOUT + Duration::from_secs(3);
    let (mut busy, mut silent) = (0, 0);
    for (i, conn) in idle.into_iter().enumerate() {
        match closed_by_runtime(conn, deadline) {
            Some(line) if line.is_empty() => silent += 1,
            Some(line) => {
                let reply: serde_json::Value = serde_json::from_str(&line).unwrap();
                assert_eq!(reply["status"], "busy", "{line}");
                assert_eq!(reply["accepted"], false, "{line}");
                assert!(
                    line.ends_with('\n') && line.lines().count() == 1,
                    "{line:?}"
                );
                busy += 1;
            }
            None => panic!(
                "idle connection #{i} still open {:?} after it was opened\n{}",
                opened.elapsed(),
                rt.logs()
            ),
        }
    }
    sampling.store(true, Ordering::Relaxed);
    let fds_flooded = sampler.join().unwrap();
    eprintln!(
        "{IDLE} idle connections: {busy} refused busy, {silent} timed out; runtime fds {fds_before} before, {fds_flooded} during; the CLI's command took {cli_took:?}"
    );
    assert_eq!(busy + silent, IDLE);
    assert!(silent <= MAX_CONNECTIONS, "{silent} served at once");
    assert!(
        fds_flooded <= fds_before + MAX_CONNECTIONS + 4,
        "at most {fds_flooded} descriptors open during the flood, {fds_before} before"
    );
    // The refusals are logged, but not one line each.
    let logged = rt.stderr().matches("refused one as busy").count();
    assert!((1..=3).contains(&logged), "{logged} lines\n{}", rt.logs());
    assert!(rt.terminate().success());
}
