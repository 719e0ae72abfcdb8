//! The local control socket: how the operator's CLI reaches the running service, so a cell can
//! be driven while MOM is unreachable. One JSON command per connection, the same shape as MQTT
//! commands; the reply comes back once the command is committed.
//!
//! The socket sits next to the store (`press4.db` → `press4.sock`), owned by the service's user:
//! file permissions decide who may command the cell.

use crate::orders::{CommandSource, Reply, MAX_PAYLOAD};
use crate::runtime::CommandIn;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

pub fn socket_path(store: &Path) -> PathBuf {
    store.with_extension("sock")
}

/// Listens on the cell's control socket. Refuses to start if another runtime answers on it:
/// two runtimes on one store would count every part twice.
pub fn serve(store: &Path, engine: mpsc::Sender<CommandIn>) -> Result<tokio::task::JoinHandle<()>> {
    let path = socket_path(store);
    if std::os::unix::net::UnixStream::connect(&path).is_ok() {
        bail!(
            "another mes-edge is running this cell (it answers on {})",
            path.display()
        );
    }
    let _ = std::fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).with_context(|| format!("control socket {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))?;
    Ok(tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((conn, _)) => {
                    tokio::spawn(handle(conn, engine.clone()));
                }
                Err(e) => {
                    tracing::warn!("control socket: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }))
}

async fn handle(mut conn: UnixStream, engine: mpsc::Sender<CommandIn>) {
    let mut payload = Vec::new();
    let mut limited = (&mut conn).take(MAX_PAYLOAD as u64 + 1);
    let read =
        tokio::time::timeout(Duration::from_secs(5), limited.read_to_end(&mut payload)).await;
    if !matches!(read, Ok(Ok(_))) {
        return;
    }
    let (tx, rx) = oneshot::channel();
    let done = move |r: &Reply| {
        let _ = tx.send(r.clone());
    };
    let cmd = CommandIn {
        payload,
        by: CommandSource::Operator,
        received_ms: mes_edge_drivers::now_ms(),
        done: Some(Box::new(done)),
    };
    if engine.send(cmd).await.is_err() {
        return;
    }
    if let Ok(Ok(reply)) = tokio::time::timeout(Duration::from_secs(30), rx).await {
        let mut text = serde_json::to_vec(&reply).expect("a reply serializes");
        text.push(b'\n');
        let _ = conn.write_all(&text).await;
    }
}

/// Sends one command to the running service and waits for its reply.
pub async fn request(store: &Path, payload: &[u8]) -> Result<Reply> {
    let path = socket_path(store);
    let mut conn = UnixStream::connect(&path)
        .await
        .with_context(|| format!("is the service running? no answer on {}", path.display()))?;
    conn.write_all(payload).await?;
    conn.shutdown().await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), conn.read_to_end(&mut answer))
        .await
        .context("no reply within 30 s")??;
    serde_json::from_slice(&answer)
        .with_context(|| format!("unreadable reply {:?}", String::from_utf8_lossy(&answer)))
}
