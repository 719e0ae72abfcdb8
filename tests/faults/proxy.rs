//! A TCP proxy on loopback between the runtime and the broker, with the faults of a plant
//! network: cut (connections reset, new ones refused), stalled (packets held, no RST: a switch
//! that black-holes traffic) and slowed (a thin, laggy link). Written here rather than taken
//! from a crate because it is a hundred lines of tokio and the suite needs exact control.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// Everything passes.
    Up,
    /// Existing connections are reset; new ones are accepted and reset at once.
    Cut,
    /// Nothing is read or forwarded; connections stay open; data waits in the kernel buffers.
    Stalled,
    /// Each chunk of at most `chunk` bytes is held `delay` before it is forwarded.
    Slow { delay: Duration, chunk: usize },
}

pub struct FaultProxy {
    port: u16,
    link: watch::Sender<Link>,
    /// Bumped by `cut`: every pump of an older generation resets its connection.
    generation: watch::Sender<u64>,
    connections: Arc<Mutex<u64>>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to 127.0.0.1:`upstream`.
    pub async fn start(upstream: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let (link, link_rx) = watch::channel(Link::Up);
        let (generation, gen_rx) = watch::channel(0u64);
        let connections = Arc::new(Mutex::new(0));
        let count = connections.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                *count.lock().unwrap() += 1;
                if *link_rx.borrow() == Link::Cut {
                    reset(client);
                    continue;
                }
                tokio::spawn(serve(client, upstream, link_rx.clone(), gen_rx.clone()));
            }
        });
        FaultProxy {
            port,
            link,
            generation,
            connections,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections accepted so far (the runtime's reconnects show here).
    pub fn connections(&self) -> u64 {
        *self.connections.lock().unwrap()
    }

    pub fn set(&self, link: Link) {
        if link == Link::Cut {
            self.generation.send_modify(|g| *g += 1);
        }
        self.link.send_replace(link);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.generation.send_modify(|g| *g += 1);
    }
}

/// Closes with RST (linger 0), as a router answering for a dead link would.
// Deprecated because a non-zero linger blocks the thread at drop; zero does not.
#[allow(deprecated)]
fn reset(stream: TcpStream) {
    let _ = stream.set_linger(Some(Duration::ZERO));
    drop(stream);
}

async fn serve(
    client: TcpStream,
    upstream: u16,
    link: watch::Receiver<Link>,
    mut generation: watch::Receiver<u64>,
) {
    let born = *generation.borrow_and_update();
    let server = match TcpStream::connect(("127.0.0.1", upstream)).await {
        Ok(s) => s,
        Err(_) => return reset(client),
    };
    // Every close of a proxied connection is a reset: that is what a cut must look like, and
    // the pumps own the sockets when a cut drops them.
    for s in [&client, &server] {
        let _ = s.set_nodelay(true);
        #[allow(deprecated)] // see reset()
        let _ = s.set_linger(Some(Duration::ZERO));
    }
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = pump(cr, sw, link.clone());
    let down = pump(sr, cw, link);
    tokio::pin!(up, down);
    // Either side closing ends the connection; a cut resets both.
    tokio::select! {
        _ = &mut up => {}
        _ = &mut down => {}
        _ = async { while generation.changed().await.is_ok() && *generation.borrow() == born {} } => {}
    }
}

type Halves = (
    tokio::net::tcp::OwnedReadHalf,
    tokio::net::tcp::OwnedWriteHalf,
);

/// Copies `from` to `to` under the link's current condition. Returns the halves when `from`
/// closes or a write fails; never while stalled.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut link: watch::Receiver<Link>,
) -> Option<Halves> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let now = *link.borrow_and_update();
        let limit = match now {
            Link::Up => buf.len(),
            Link::Slow { chunk, .. } => chunk.clamp(1, buf.len()),
            // Held: read nothing until the link changes.
            Link::Stalled | Link::Cut => {
                if link.changed().await.is_err() {
                    return None;
                }
                continue;
            }
        };
        let n = tokio::select! {
            r = from.read(&mut buf[..limit]) => match r {
                Ok(0) | Err(_) => return Some((from, to)),
                Ok(n) => n,
            },
            _ = link.changed() => continue,
        };
        // A chunk read before a stall is held until the link is up again.
        loop {
            let now = *link.borrow_and_update();
            match now {
                Link::Slow { delay, .. } => {
                    tokio::time::sleep(delay).await;
                    break;
                }
                Link::Stalled | Link::Cut => {
                    if link.changed().await.is_err() {
                        return None;
                    }
                }
                Link::Up => break,
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return Some((from, to));
        }
    }
}
