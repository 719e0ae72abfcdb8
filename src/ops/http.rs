//! The health listener's HTTP: hyper's HTTP/1.1 server, so that the one parser facing the plant
//! network is a well-kept, widely fuzzed one rather than our own. Around it, the bounds the
//! endpoint has always had: the request head at most 8 KiB and in within 5 s (a slow client is
//! dropped, it cannot hold a slot), each connection over within 10 s, at most 16 at once, one
//! request each; the page and API bounded in rate as well ([`super::access`]).

use super::routes::Routes;
use super::Ops;
use crate::config::HealthConfig;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// The whole request head (request line and headers) must fit in this; hyper answers 431 past
/// it. (8 KiB is also the least hyper allows.)
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// The request head must arrive within this, and the whole exchange end within twice it.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 16;

/// Serves until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    ops: Ops,
    config: HealthConfig,
    mut stop: watch::Receiver<bool>,
) {
    let routes = Arc::new(Routes::new(ops, &config, listener.local_addr().ok()));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(IO_TIMEOUT)
        .max_buf_size(MAX_REQUEST_BYTES)
        .keep_alive(false)
        // As the endpoint always wrote them; scripts grepping for "Content-Type:" keep working.
        .title_case_headers(true);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = super::stopped(&mut stop) => return,
        };
        let (stream, _) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, most likely: wait instead of spinning.
                    tracing::warn!("health endpoint: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
            _ = super::stopped(&mut stop) => return,
        };
        let routes = routes.clone();
        let service = service_fn(move |request| {
            let routes = routes.clone();
            async move { Ok::<_, Infallible>(routes.answer(&request).await.into_hyper()) }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            // An error here is the client's (gone, too slow, not HTTP): hyper has answered
            // what could be answered, and the connection is closed either way.
            let _ = tokio::time::timeout(2 * IO_TIMEOUT, connection).await;
            drop(permit);
        });
    }
}
