//! `mes-edge outbox replay` while the service runs: the request comes over the control socket
//! and the store's owner writes it, in a transaction of the runtime's one read-write connection
//! (store/replay.rs), so it never races the forwarder's own writes of the events it holds.
//! Operators may ask for it: it only publishes again what MOM already had, byte for byte.

use crate::store::replay::Replayed;
use crate::store::StoreOwner;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tokio::net::UnixStream;

/// A request to the store's owner, told from a command by its `request` key:
/// `{"request": "replay", "from": 2, "to": 5}` (`to` null or left out: the last committed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case", deny_unknown_fields)]
pub enum StoreRequest {
    Replay { from: u64, to: Option<u64> },
}

impl StoreRequest {
    /// The payload as a store request, if it names a `request`: a malformed one is answered
    /// with its reason, not taken for a command.
    pub(super) fn of(payload: &[u8]) -> Option<Result<StoreRequest, String>> {
        let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
        v.get("request")?;
        Some(serde_json::from_value(v).map_err(|e| {
            format!(r#"expected {{"request": "replay", "from": SEQ, "to": SEQ or null}}: {e}"#)
        }))
    }
}

/// What the owner did with a store request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreAnswer {
    Replayed(Replayed),
    Refused(String),
}

pub(super) async fn answer(
    request: Result<StoreRequest, String>,
    owner: &StoreOwner,
    user: Option<&str>,
) -> StoreAnswer {
    let (from, to) = match request {
        Ok(StoreRequest::Replay { from, to }) => (from, to),
        Err(why) => return StoreAnswer::Refused(why),
    };
    match owner.ask(move |o| o.replay(from, to)).await {
        Ok(Ok(r)) => {
            tracing::info!(
                user,
                from,
                to,
                put_back = r.marked,
                already_pending = r.already_pending,
                "outbox replay asked on the control socket: events put back for publishing again"
            );
            StoreAnswer::Replayed(r)
        }
        Ok(Err(e)) => StoreAnswer::Refused(e.to_string()),
        Err(e) => StoreAnswer::Refused(e.to_string()),
    }
}

/// Asks the service answering on the control socket `path` to replay `from..=to`; `None` when
/// no service answers there (it is stopped, and the store may be written by the tool itself).
pub async fn ask_replay(path: &Path, from: u64, to: Option<u64>) -> Result<Option<StoreAnswer>> {
    use std::io::ErrorKind;
    let conn = match UnixStream::connect(path).await {
        Ok(conn) => conn,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
            return Ok(None)
        }
        Err(e) => return Err(e).with_context(|| format!("control socket {}", path.display())),
    };
    let payload = serde_json::to_vec(&StoreRequest::Replay { from, to })?;
    let answer = super::exchange(conn, &payload).await?;
    // The socket's own refusal (too many connections open) comes as a command reply.
    serde_json::from_slice(&answer).map(Some).with_context(|| {
        format!(
            "the service answered {:?}",
            String::from_utf8_lossy(&answer).trim()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_told_from_a_command_and_a_malformed_one_gets_its_reason() {
        assert_eq!(
            StoreRequest::of(br#"{"request": "replay", "from": 2, "to": 5}"#),
            Some(Ok(StoreRequest::Replay {
                from: 2,
                to: Some(5)
            }))
        );
        assert_eq!(
            StoreRequest::of(br#"{"request": "replay", "from": 2}"#),
            Some(Ok(StoreRequest::Replay { from: 2, to: None }))
        );
        for bad in [
            r#"{"request": "replay", "from": "2"}"#,
            r#"{"request": "replay", "from": 2, "rows": 9}"#,
            r#"{"request": "vacuum"}"#,
        ] {
            let why = StoreRequest::of(bad.as_bytes()).unwrap().unwrap_err();
            assert!(why.starts_with(r#"expected {"request": "replay""#), "{why}");
        }
        assert_eq!(
            StoreRequest::of(br#"{"correlation_id": "a", "command": "stop"}"#),
            None
        );
        assert_eq!(StoreRequest::of(b"not json"), None);
    }
}
