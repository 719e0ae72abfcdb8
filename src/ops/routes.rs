//! What the health listener answers: `/health` and `/metrics` to anyone who reaches it, the
//! status page (`/`) and its API (`/api/v1/...`) to whom [`Access`] admits. GET only; a request
//! body is never read.

use super::access::Access;
use super::api::{Api, Query};
use super::response::Response;
use super::{health, metrics, page, Ops};
use crate::config::HealthConfig;
use hyper::header::{ACCEPT_ENCODING, ALLOW, AUTHORIZATION};
use hyper::{Method, Request};
use mes_edge_drivers::now_ms;
use std::net::SocketAddr;

pub struct Routes {
    ops: Ops,
    api: Api,
    access: Access,
}

impl Routes {
    pub fn new(ops: Ops, config: &HealthConfig, local: Option<SocketAddr>) -> Routes {
        Routes {
            api: Api::new(ops.clone(), ops.store_path().to_path_buf()),
            access: Access::new(config, local),
            ops,
        }
    }

    pub async fn answer<B>(&self, request: &Request<B>) -> Response {
        if request.method() != Method::GET {
            return Response::text(405, "GET only\n").with(ALLOW, "GET");
        }
        let path = request.uri().path();
        let query = request.uri().query().unwrap_or_default();
        match path {
            "/health" => {
                let h = health::health(&self.ops, now_ms());
                let mut body = serde_json::to_string_pretty(&h.body).unwrap_or_default();
                body.push('\n');
                Response::new(if h.ok { 200 } else { 503 }, "application/json", body)
            }
            "/metrics" => Response::new(
                200,
                metrics::CONTENT_TYPE,
                metrics::render(&self.ops, now_ms()),
            ),
            "/" | "/index.html" | "/favicon.ico" => {
                if let Err(refusal) = self.admit(request, query) {
                    return refusal;
                }
                if path == "/favicon.ico" {
                    return Response::new(204, "image/x-icon", Vec::new());
                }
                let encodings = request.headers().get(ACCEPT_ENCODING);
                page::response(page::accepts_gzip(encodings.and_then(|v| v.to_str().ok())))
            }
            _ if path.starts_with("/api/v1/") => {
                if let Err(refusal) = self.admit(request, query) {
                    return refusal;
                }
                self.api(&path["/api/v1/".len()..], query).await
            }
            _ => Response::text(
                404,
                "not here; try /, /health, /metrics or /api/v1/status\n",
            ),
        }
    }

    fn admit<B>(&self, request: &Request<B>, query: &str) -> Result<(), Response> {
        let authorization = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        self.access
            .admit(authorization, Query::parse(query).get("token"))
    }

    async fn api(&self, what: &str, query: &str) -> Response {
        let (api, what, query) = (self.api.clone(), what.to_string(), query.to_string());
        // SQLite blocks: off the async threads.
        let answer =
            tokio::task::spawn_blocking(move || api.answer(&what, &Query::parse(&query), now_ms()))
                .await;
        match answer {
            Ok(Ok(v)) => {
                let mut body = serde_json::to_vec(&v).unwrap_or_default();
                body.push(b'\n');
                Response::new(200, "application/json", body)
            }
            Ok(Err((code, why))) => Response::json_error(code, &why),
            Err(_) => Response::json_error(500, "the answer failed"),
        }
    }
}
