//! A small HTTP/1.1 responder for `/health` and `/metrics`: GET only, one request per
//! connection, the request head bounded in size and time, a bounded number of connections at
//! once. Monitoring agents and curl need nothing more, and a web framework would be most of the
//! binary's dependencies for two read-only pages.

use super::{health, metrics, Ops};
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

/// Serves until `stop` turns true.
pub async fn serve(listener: TcpListener, ops: Ops, mut stop: watch::Receiver<bool>) {
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
        let ops = ops.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(2 * IO_TIMEOUT, answer(stream, &ops)).await;
            drop(permit);
        });
    }
}

async fn answer(mut stream: TcpStream, ops: &Ops) {
    let response = match tokio::time::timeout(IO_TIMEOUT, read_head(&mut stream)).await {
        Err(_) => Response::text(
            408,
            "Request Timeout",
            "the request did not arrive in time\n",
        ),
        Ok(Err(resp)) => resp,
        Ok(Ok(head)) => route(&head, ops),
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

fn route(head: &str, ops: &Ops) -> Response {
    let line = head.lines().next().unwrap_or_default();
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
        r.extra = Some(("Allow", "GET"));
        return r;
    }
    let path = target.split(['?', '#']).next().unwrap_or_default();
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
            Response {
                code,
                reason,
                content_type: "application/json",
                body,
                extra: None,
            }
        }
        "/metrics" => Response {
            code: 200,
            reason: "OK",
            content_type: metrics::CONTENT_TYPE,
            body: metrics::render(ops, now_ms()),
            extra: None,
        },
        _ => Response::text(404, "Not Found", "not here; try /health or /metrics\n"),
    }
}

struct Response {
    code: u16,
    reason: &'static str,
    content_type: &'static str,
    body: String,
    extra: Option<(&'static str, &'static str)>,
}

impl Response {
    fn text(code: u16, reason: &'static str, body: &str) -> Response {
        Response {
            code,
            reason,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            extra: None,
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
            self.code,
            self.reason,
            self.content_type,
            self.body.len()
        );
        if let Some((k, v)) = self.extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(self.body.as_bytes());
        out
    }
}
