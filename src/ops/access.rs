//! Who may see the status page and its API. On loopback, whoever can reach the port is on the
//! PC itself, as for `/health` today. Anywhere else the plant network can reach it, so a token
//! is asked for (`[health] token_file`), as a bearer header or `?token=`; without a token file
//! the page and API refuse, never open up. `/health` and `/metrics` are not asked: monitoring
//! needs their status codes. The page and API are also bounded in rate, one budget for all
//! clients, so that no poller can take the runtime's CPU from production.

use super::response::Response;
use crate::config::HealthConfig;
use hyper::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Page and API requests a second, sustained, for all clients together (one open page makes
/// about three), and the burst allowed above it.
pub const RATE_PER_S: f64 = 30.0;
pub const BURST: f64 = 60.0;

pub struct Access {
    need: Need,
    bucket: Mutex<(f64, Instant)>,
}

enum Need {
    Nothing,
    Token(String),
    /// Bound beyond loopback with no usable token: refuse, saying why.
    Refuse(String),
}

impl Access {
    pub fn new(config: &HealthConfig, local: Option<SocketAddr>) -> Access {
        let loopback = local.is_some_and(|a| a.ip().is_loopback());
        let need = match (&config.token_file, loopback) {
            (None, true) => Need::Nothing,
            (None, false) => {
                tracing::warn!(
                    listen = %config.listen,
                    "the status page and /api/v1 refuse every request: [health] listen is not a \
                     loopback address and no [health] token_file is set"
                );
                Need::Refuse(
                    "set [health] token_file: the page is not served beyond this computer without a token"
                        .into(),
                )
            }
            (Some(file), _) => match read_token(file) {
                Ok(t) => Need::Token(t),
                Err(why) => {
                    tracing::error!("the status page and /api/v1 refuse every request: {why}");
                    Need::Refuse(why)
                }
            },
        };
        Access {
            need,
            bucket: Mutex::new((BURST, Instant::now())),
        }
    }

    /// Ok if the request may be answered; else the refusal to send. `authorization` is the
    /// request's Authorization header, if it has one.
    pub fn admit(
        &self,
        authorization: Option<&str>,
        query_token: Option<&str>,
    ) -> Result<(), Response> {
        if !self.take() {
            let r = Response::json_error(429, "too many requests; try again in a second");
            return Err(r.with(RETRY_AFTER, "1"));
        }
        match &self.need {
            Need::Nothing => Ok(()),
            Need::Refuse(why) => Err(Response::json_error(403, why)),
            Need::Token(want) => {
                let bearer = authorization
                    .and_then(|v| v.trim().strip_prefix("Bearer "))
                    .map(str::trim);
                let given = bearer.or(query_token).unwrap_or_default();
                if same(given.as_bytes(), want.as_bytes()) {
                    Ok(())
                } else {
                    let r = Response::json_error(
                        401,
                        "a token is required: Authorization: Bearer <token>, or ?token=<token>",
                    );
                    Err(r.with(WWW_AUTHENTICATE, "Bearer"))
                }
            }
        }
    }

    fn take(&self) -> bool {
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(b.1).as_secs_f64() * RATE_PER_S;
        *b = ((b.0 + refill).min(BURST), now);
        if b.0 >= 1.0 {
            b.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The token: the file's first line, trimmed; at least 16 characters, so that it cannot be
/// guessed at the rate the endpoint allows.
fn read_token(file: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read [health] token_file {}: {e}", file.display()))?;
    let token = text.lines().next().unwrap_or_default().trim().to_string();
    if token.len() < 16 {
        return Err(format!(
            "[health] token_file {} holds a token shorter than 16 characters",
            file.display()
        ));
    }
    Ok(token)
}

/// Compares in time independent of where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(token: Option<&str>, listen: &str) -> (Access, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let config = HealthConfig {
            token_file: token.map(|t| {
                let p = dir.path().join("token");
                std::fs::write(&p, format!("{t}\n")).unwrap();
                p
            }),
            ..HealthConfig::default()
        };
        (Access::new(&config, Some(listen.parse().unwrap())), dir)
    }

    #[test]
    fn loopback_needs_nothing_elsewhere_a_token_or_a_refusal() {
        let (a, _d) = access(None, "127.0.0.1:1");
        assert!(a.admit(None, None).is_ok());
        let (a, _d) = access(None, "0.0.0.0:1");
        assert_eq!(a.admit(None, None).unwrap_err().code(), 403);
        let (a, _d) = access(Some("0123456789abcdef"), "0.0.0.0:1");
        assert_eq!(a.admit(None, None).unwrap_err().code(), 401);
        assert_eq!(
            a.admit(None, Some("0123456789abcdeX")).unwrap_err().code(),
            401
        );
        assert!(a.admit(None, Some("0123456789abcdef")).is_ok());
        assert!(a.admit(Some(" Bearer 0123456789abcdef "), None).is_ok());
        let (a, _d) = access(Some("short"), "0.0.0.0:1");
        assert_eq!(a.admit(None, Some("short")).unwrap_err().code(), 403);
    }

    #[test]
    fn the_rate_is_bounded_for_all_clients_together() {
        let (a, _d) = access(None, "127.0.0.1:1");
        let admitted = (0..200).filter(|_| a.admit(None, None).is_ok()).count();
        assert!(
            (BURST as usize..BURST as usize + 5).contains(&admitted),
            "{admitted}"
        );
    }
}
