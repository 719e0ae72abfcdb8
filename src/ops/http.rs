//! A small HTTP/1.1 responder for `/health`, `/metrics`, the status page (`/`) and its API
//! (`/api/v1/...`): GET only, one request per connection, the request head bounded in size and
//! time, a bounded number of connections at once, and the page and API bounded in rate.
//! Monitoring agents, curl and one polling page need nothing more; hyper was weighed and not
//! taken yet (docs/STATUS-PAGE.md).

use super::access::Access;
use super::api::{Api, Query};
use super::response::Response;
use super::{health, metrics, page, Ops};
use crate::config::HealthConfig;
use mes_edge_drivers::now_ms;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

/// The whole request head (request line and headers) must fit in this.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// The request head must arrive within this, and the response be taken within it again.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 16;

/// What every connection's answer needs.
#[derive(Clone)]
struct Server {
    ops: Ops,
    api: Api,
    access: Arc<Access>,
}

/// Serves until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    ops: Ops,
    config: HealthConfig,
    mut stop: watch::Receiver<bool>,
) {
    let local = listener.local_addr().ok();
    let server = Server {
        api: Api::new(ops.clone(), ops.store_path().to_path_buf()),
        access: Arc::new(Access::new(&config, local)),
        ops,
    };
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
        let server = server.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(2 * IO_TIMEOUT, answer(stream, &server)).await;
            drop(permit);
        });
    }
}

async fn answer(mut stream: TcpStream, server: &Server) {
    let response = match tokio::time::timeout(IO_TIMEOUT, read_head(&mut stream)).await {
        Err(_) => Response::text(
            408,
            "Request Timeout",
            "the request did not arrive in time\n",
        ),
        Ok(Err(resp)) => resp,
        Ok(Ok(head)) => route(&head, server).await,
    };
    let _ = tokio::time::timeout(IO_TIMEOUT, async {
        stream.write_all(&response.to_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

/// Reads up to the blank line that ends the head; a request body is never expected.
async fn read_head(stream: &mut TcpStream) -> Result<String, Response> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|_| Response::text(400, "Bad Request", "unreadable request\n"))?;
        if n == 0 {
            return Err(Response::text(400, "Bad Request", "incomplete request\n"));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find(&buf, b"\r\n\r\n").or_else(|| find(&buf, b"\n\n")) {
            buf.truncate(end);
            return String::from_utf8(buf)
                .map_err(|_| Response::text(400, "Bad Request", "request head is not UTF-8\n"));
        }
        if buf.len() > MAX_REQUEST_BYTES {
            return Err(Response::text(
                431,
                "Request Header Fields Too Large",
                "request head over 8 KiB\n",
            ));
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn route(head: &str, server: &Server) -> Response {
    let mut lines = head.lines();
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Response::text(400, "Bad Request", "malformed request line\n");
    };
    let is_token = !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase());
    if !is_token || !target.starts_with('/') || !version.starts_with("HTTP/") {
        return Response::text(400, "Bad Request", "malformed request line\n");
    }
    if !version.starts_with("HTTP/1.") {
        return Response::text(505, "HTTP Version Not Supported", "HTTP/1.x only\n");
    }
    if method != "GET" {
        let mut r = Response::text(405, "Method Not Allowed", "GET only\n");
        r.extra.push(("Allow", "GET".into()));
        return r;
    }
    let target = target.split('#').next().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let ops = &server.ops;
    match path {
        "/health" => {
            let h = health::health(ops, now_ms());
            let (code, reason) = if h.ok {
                (200, "OK")
            } else {
                (503, "Service Unavailable")
            };
            let mut body = serde_json::to_string_pretty(&h.body).unwrap_or_default();
            body.push('\n');
            Response::new(code, reason, "application/json", body.into_bytes())
        }
        "/metrics" => Response::new(
            200,
            "OK",
            metrics::CONTENT_TYPE,
            metrics::render(ops, now_ms()).into_bytes(),
        ),
        "/" | "/index.html" | "/favicon.ico" => {
            let q = Query::parse(query);
            if let Err(refusal) = server.access.admit(lines, q.get("token")) {
                return refusal;
            }
            if path == "/favicon.ico" {
                return Response::new(204, "No Content", "image/x-icon", Vec::new());
            }
            page::response()
        }
        _ if path.starts_with("/api/v1/") => {
            let q = Query::parse(query);
            if let Err(refusal) = server.access.admit(lines, q.get("token")) {
                return refusal;
            }
            let api = server.api.clone();
            let what = path["/api/v1/".len()..].to_string();
            let query = query.to_string();
            // SQLite blocks: off the async threads.
            let answer = tokio::task::spawn_blocking(move || {
                api.answer(&what, &Query::parse(&query), now_ms())
            })
            .await;
            match answer {
                Ok(Ok(v)) => {
                    let mut body = serde_json::to_vec(&v).unwrap_or_default();
                    body.push(b'\n');
                    Response::new(200, "OK", "application/json", body)
                }
                Ok(Err((code, why))) => Response::json_error(code, &why),
                Err(_) => Response::json_error(500, "the answer failed"),
            }
        }
        _ => Response::text(
            404,
            "Not Found",
            "not here; try /, /health, /metrics or /api/v1/status\n",
        ),
    }
}
