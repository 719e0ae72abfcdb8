//! The local control socket: how the operator's CLI reaches the running service, so a cell can
//! be driven while MOM is unreachable. One JSON command per connection, the same shape as MQTT
//! commands; the reply comes back once the command is committed.
//!
//! A store request (`{"request": "replay", ...}`, control/replay.rs) is not a command to the
//! cell: the store's owner answers it.
//!
//! The socket sits next to the store (`press4.db` → `press4.sock`), owned by the service's user
//! and the operators' group (`mes-edge-operators`, mode 0660): file permissions decide who may
//! command the cell, and the operator's user (SO_PEERCRED) is recorded in the events of each
//! command (`"user"` in the envelope).

mod replay;

pub use replay::{ask_replay, StoreAnswer};

use crate::cell::CommandIn;
use crate::logging::Throttle;
use crate::orders::{CommandSource, Reply, ReplyStatus, MAX_PAYLOAD};
use crate::store::StoreOwner;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Connections served at once. Each holds a file descriptor for as long as its command takes:
/// without a cap, a flood of idle connections used up the process's descriptors and the
/// health endpoint, the store and the drivers could open none. One over the cap is told
/// `busy` and closed at once; the CLI tries again until its deadline.
pub const MAX_CONNECTIONS: usize = 16;
/// The whole command must arrive within this. The CLI sends it in one write; what trickles in
/// slower is holding a slot, not sending a command.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// The reply must be taken within this: a client that does not read gives its slot back.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a committed command's reply may take (the engine's queue, then the commit).
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the CLI keeps trying while the socket says `busy`.
const BUSY_DEADLINE: Duration = Duration::from_secs(10);

/// The group whose members may command the cell over its control socket (sysusers.d).
pub const OPERATORS_GROUP: &str = "mes-edge-operators";

/// The id of group `name` in /etc/group, if there is one.
pub fn group_id(name: &str) -> Option<u32> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}

pub fn socket_path(store: &Path) -> PathBuf {
    store.with_extension("sock")
}

/// Listens on the cell's control socket. Refuses to start if another runtime answers on it:
/// two runtimes on one store would count every part twice.
pub fn serve(
    store: &Path,
    engine: mpsc::Sender<CommandIn>,
    owner: StoreOwner,
) -> Result<tokio::task::JoinHandle<()>> {
    let path = socket_path(store);
    if std::os::unix::net::UnixStream::connect(&path).is_ok() {
        bail!(
            "another mes-edge is running this cell (it answers on {})",
            path.display()
        );
    }
    // A socket left by a runtime that died is replaced; anything else at that path is not
    // ours to delete (it could be the store itself).
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_socket() => {
            let _ = std::fs::remove_file(&path);
        }
        Ok(_) => bail!(
            "{} is where the control socket goes, and it is not a socket; move it away (is [store] path pointing at it?)",
            path.display()
        ),
        Err(_) => {}
    }
    let listener =
        UnixListener::bind(&path).with_context(|| format!("control socket {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))?;
    // The operators' group may command the cell, and nothing else: it cannot read the config
    // (broker passwords), the store or the OPC UA key, which belong to the `mes-edge` group.
    if let Some(gid) = group_id(OPERATORS_GROUP) {
        if let Err(e) = std::os::unix::fs::chown(&path, None, Some(gid)) {
            tracing::warn!(
                "control socket {}: cannot give it to the {OPERATORS_GROUP} group ({e}); only the mes-edge group can use it (is the service a member? the unit's SupplementaryGroups=)",
                path.display()
            );
        }
    }
    Ok(tokio::spawn(accept_loop(listener, engine, owner)))
}

async fn accept_loop(listener: UnixListener, engine: mpsc::Sender<CommandIn>, owner: StoreOwner) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // A flood must not become a flood of log lines as well.
    let mut refusals = Throttle::new(Duration::from_secs(60), 3);
    let mut failures = Throttle::new(Duration::from_secs(60), 3);
    loop {
        match listener.accept().await {
            Ok((conn, _)) => match slots.clone().try_acquire_owned() {
                Ok(slot) => {
                    let (engine, owner) = (engine.clone(), owner.clone());
                    tokio::spawn(async move {
                        handle(conn, engine, owner).await;
                        drop(slot);
                    });
                }
                Err(_) => {
                    refuse_busy(conn);
                    if let Some(held) = refusals.allow() {
                        tracing::warn!(
                            "control socket: {MAX_CONNECTIONS} connections already open; refused one as busy ({held} more refused since the last such line)"
                        );
                    }
                }
            },
            Err(e) => {
                // Out of file descriptors, most likely: wait instead of spinning.
                if let Some(held) = failures.allow() {
                    tracing::warn!(
                        "control socket: accept failed: {e} ({held} more since the last such line)"
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Says `busy` if the line fits in the socket's buffer now, and closes the connection either
/// way: a refused client must not hold a descriptor a moment longer.
fn refuse_busy(conn: UnixStream) {
    let reason =
        format!("the control socket has {MAX_CONNECTIONS} connections open; try again in a moment");
    let mut line = serde_json::to_vec(&Reply::refused(None, ReplyStatus::Busy, reason))
        .expect("a reply serializes");
    line.push(b'\n');
    // Through the std stream: tokio's try_write answers WouldBlock until the reactor has seen
    // the new socket writable, which it has not yet.
    if let Ok(conn) = conn.into_std() {
        use std::io::Write;
        let _ = (&conn).write(&line);
    }
}

async fn handle(mut conn: UnixStream, engine: mpsc::Sender<CommandIn>, owner: StoreOwner) {
    let mut payload = Vec::new();
    let mut limited = (&mut conn).take(MAX_PAYLOAD as u64 + 1);
    // One deadline for the whole command, however slowly it trickles in.
    let read = tokio::time::timeout(READ_TIMEOUT, limited.read_to_end(&mut payload)).await;
    // A connection that sends nothing (a second runtime looking for this one) is no command.
    if !matches!(read, Ok(Ok(_))) || payload.is_empty() {
        return;
    }
    // Who is asking, as the kernel says (SO_PEERCRED): recorded in the command's events.
    let user = conn.peer_cred().ok().map(|c| user_name(c.uid()));
    if let Some(request) = replay::StoreRequest::of(&payload) {
        let answer = replay::answer(request, &owner, user.as_deref()).await;
        send_line(&mut conn, &answer).await;
        return;
    }
    let (tx, rx) = oneshot::channel();
    let done = move |r: &Reply| {
        let _ = tx.send(r.clone());
    };
    let mut cmd = CommandIn::new(payload, CommandSource::Operator).on_reply(done);
    cmd.user = user;
    if engine.send(cmd).await.is_err() {
        return;
    }
    if let Ok(Ok(reply)) = tokio::time::timeout(REPLY_TIMEOUT, rx).await {
        send_line(&mut conn, &reply).await;
    }
}

/// One JSON line back to the client, if it takes it within [`WRITE_TIMEOUT`].
async fn send_line(conn: &mut UnixStream, answer: &impl serde::Serialize) {
    let mut text = serde_json::to_vec(answer).expect("an answer serializes");
    text.push(b'\n');
    let _ = tokio::time::timeout(WRITE_TIMEOUT, conn.write_all(&text)).await;
}

/// The login name of `uid` from /etc/passwd, or `uid N` if it has none there.
pub fn user_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                let id = f.nth(1)?.parse::<u32>().ok()?;
                (id == uid).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// Sends one command to the running service on its control socket `path` and waits for its
/// reply. A `busy` refusal from the socket's connection cap came before the command was read:
/// the command is sent again, until [`BUSY_DEADLINE`].
pub async fn request(path: &Path, payload: &[u8]) -> Result<Reply> {
    let deadline = Instant::now() + BUSY_DEADLINE;
    loop {
        let reply = request_once(path, payload).await?;
        let unread = reply.status() == ReplyStatus::Busy && reply.correlation_id.is_none();
        if !unread || Instant::now() >= deadline {
            return Ok(reply);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn request_once(path: &Path, payload: &[u8]) -> Result<Reply> {
    let conn = UnixStream::connect(&path)
        .await
        .with_context(|| format!("is the service running? no answer on {}", path.display()))?;
    let answer = exchange(conn, payload).await?;
    serde_json::from_slice(&answer)
        .with_context(|| format!("unreadable reply {:?}", String::from_utf8_lossy(&answer)))
}

/// Sends `payload` on `conn` and reads the answer to its end.
async fn exchange(mut conn: UnixStream, payload: &[u8]) -> Result<Vec<u8>> {
    // A connection refused as busy is closed before the runtime reads it: the write may fail
    // then, and the refusal is still there to read.
    let sent = async {
        conn.write_all(payload).await?;
        conn.shutdown().await
    }
    .await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(REPLY_TIMEOUT, conn.read_to_end(&mut answer))
        .await
        .context("no reply within 30 s")?;
    // The kernel reports the refused command's unread bytes as a reset after the refusal.
    if answer.is_empty() {
        read?;
        sent?;
    }
    Ok(answer)
}
