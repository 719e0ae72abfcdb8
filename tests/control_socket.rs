//! The control socket on the real binary, against Mosquitto and a pymodbus PLC: a command's
//! events name the operator's Unix user (SO_PEERCRED); a user outside the socket's group is
//! refused by the kernel; a file at the socket's path that is not a socket is never removed.
//! (The operators' group of the package is checked by scripts/ops-checks.sh.)

mod common;

use common::cell::{write_config, Delivery, TOPIC_FILTER};
use common::{Collector, ModbusPeer, Mosquitto, RuntimeProcess};
use std::process::Command;
use std::time::Duration;

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
    assert!(
        collector
            .wait_for(
                |m| Delivery::of(m).of_type("device_status").count() == 1,
                Duration::from_secs(20)
            )
            .await,
        "{}",
        rt.logs()
    );
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
