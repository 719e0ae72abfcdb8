//! One connection to a server: endpoint selection, the explicit trust check of the server's
//! certificate, the user identity, and a session whose event loop we watch but never let
//! reconnect by itself: the driver rebuilds the whole session after a loss, so namespaces,
//! browse paths and subscriptions are resolved afresh against whatever server came back.

use super::inbox::{Inbox, INBOX_BOUND};
use super::{Connection, Identity, SecurityMode, SecurityPolicy};
use ::opcua::client::{Client, ClientBuilder, IdentityToken, Session, SessionPollResult};
use ::opcua::crypto::{self, CertificateStore, X509};
use ::opcua::types::{EndpointDescription, MessageSecurityMode, StatusCode, UserTokenType};
use futures::StreamExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Timing of a connection.
#[derive(Debug, Clone, Copy)]
pub struct ClientSettings {
    pub request_timeout: Duration,
    pub keep_alive: Duration,
}

impl ClientSettings {
    /// Creating a session signs and encrypts with RSA, which a small PLC may take seconds over.
    fn connect_timeout(&self) -> Duration {
        (self.request_timeout * 4).max(Duration::from_secs(10))
    }
}

/// Why a connection could not be made, worded for the person commissioning the cell.
#[derive(Debug)]
pub enum ConnectError {
    /// The server's certificate is not in trusted/: it has been written to rejected/.
    Untrusted {
        rejected: PathBuf,
        trusted_dir: PathBuf,
        thumbprint: String,
        subject: String,
        endpoint: String,
    },
    Other(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Untrusted {
                rejected,
                trusted_dir,
                thumbprint,
                subject,
                endpoint,
            } => write!(
                f,
                "the server's certificate is not trusted (subject {subject}, SHA-1 thumbprint \
                 {thumbprint}); check the thumbprint with the server's owner, then move \"{}\" \
                 into \"{}\" (or run `mes-edge opcua trust {endpoint} --pki-dir {}`)",
                rejected.display(),
                trusted_dir.display(),
                trusted_dir.parent().unwrap_or(trusted_dir).display(),
            ),
            ConnectError::Other(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for ConnectError {}

fn other(e: impl std::fmt::Display) -> ConnectError {
    ConnectError::Other(e.to_string())
}

pub(crate) fn policy_of(p: SecurityPolicy) -> crypto::SecurityPolicy {
    match p {
        SecurityPolicy::None => crypto::SecurityPolicy::None,
        SecurityPolicy::Basic256Sha256 => crypto::SecurityPolicy::Basic256Sha256,
        SecurityPolicy::Aes128Sha256RsaOaep => crypto::SecurityPolicy::Aes128Sha256RsaOaep,
        SecurityPolicy::Aes256Sha256RsaPss => crypto::SecurityPolicy::Aes256Sha256RsaPss,
    }
}

pub(crate) fn mode_of(m: SecurityMode) -> MessageSecurityMode {
    match m {
        SecurityMode::None => MessageSecurityMode::None,
        SecurityMode::Sign => MessageSecurityMode::Sign,
        SecurityMode::SignAndEncrypt => MessageSecurityMode::SignAndEncrypt,
    }
}

/// `Basic256Sha256/SignAndEncrypt` for an endpoint, as our config spells it.
pub(crate) fn endpoint_security(e: &EndpointDescription) -> String {
    let policy = crypto::SecurityPolicy::from_uri(e.security_policy_uri.as_ref());
    let name = SecurityPolicy::ALL
        .into_iter()
        .find(|p| policy_of(*p) == policy)
        .map(|p| p.name().to_string())
        .unwrap_or_else(|| policy.to_string());
    format!("{name}/{:?}", e.security_mode)
}

/// A client with our application instance certificate (created in the PKI folder at the first
/// start) that never trusts an unknown server certificate by itself. Runs off the async
/// threads: making the key pair takes a while, and reading it is file I/O.
pub(crate) async fn build_client(
    conn: &Connection,
    s: &ClientSettings,
) -> Result<Client, ConnectError> {
    let (conn, s) = (conn.clone(), *s);
    tokio::task::spawn_blocking(move || build_client_now(&conn, &s))
        .await
        .map_err(|e| other(format!("building the OPC UA client: {e}")))?
}

/// The devices of a cell share one PKI folder: the first start must make one key pair, not
/// one per device racing to write the same files.
static PKI: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn build_client_now(conn: &Connection, s: &ClientSettings) -> Result<Client, ConnectError> {
    let _one_at_a_time = PKI.lock().unwrap_or_else(|e| e.into_inner());
    std::fs::create_dir_all(&conn.pki_dir).map_err(|e| {
        other(format!(
            "cannot create the PKI folder {}: {e}",
            conn.pki_dir.display()
        ))
    })?;
    ClientBuilder::new()
        .application_name("mes-edge")
        .application_uri("urn:mes-edge:client")
        .product_uri("urn:mes-edge")
        .pki_dir(&conn.pki_dir)
        .create_sample_keypair(true)
        .trust_server_certs(false)
        .verify_server_certs(true)
        .session_retry_limit(0)
        .keep_alive_interval(s.keep_alive)
        .max_failed_keep_alive_count(2)
        .request_timeout(s.request_timeout)
        .publish_timeout(s.request_timeout.max(Duration::from_secs(10)))
        .session_timeout(60_000)
        // A server that ignores MaxNotificationsPerPublish (asyncua does) sends all the changes
        // of an interval in one message: thousands of values, where async-opcua decodes at
        // most 1,000 array elements and 5 chunks by default and closes the connection.
        .max_array_length(100_000)
        .max_chunk_count(64)
        .max_message_size(64 * 65_535)
        .client()
        .map_err(|errors| other(format!("OPC UA client settings: {}", errors.join("; "))))
}

pub(crate) async fn endpoints(
    client: &Client,
    url: &str,
    s: &ClientSettings,
) -> Result<Vec<EndpointDescription>, ConnectError> {
    match timeout(
        s.connect_timeout(),
        client.get_server_endpoints_from_url(url),
    )
    .await
    {
        Ok(Ok(e)) => Ok(e),
        Ok(Err(e)) => Err(other(format!("get endpoints from {url}: {e}"))),
        Err(_) => Err(other(format!(
            "get endpoints from {url}: no answer within {:?}",
            s.connect_timeout()
        ))),
    }
}

/// The endpoint with the configured policy and mode that accepts our kind of identity.
pub(crate) fn choose_endpoint(
    conn: &Connection,
    offered: &[EndpointDescription],
) -> Result<EndpointDescription, ConnectError> {
    let list = || {
        let mut v: Vec<String> = offered.iter().map(endpoint_security).collect();
        v.dedup();
        v.join(", ")
    };
    let endpoint = Client::find_matching_endpoint(
        offered,
        &conn.endpoint,
        policy_of(conn.policy),
        mode_of(conn.mode),
    )
    .ok_or_else(|| {
        other(format!(
            "{} offers no endpoint with security {}/{}; it offers: {}",
            conn.endpoint,
            conn.policy,
            conn.mode,
            list()
        ))
    })?;
    let (wanted, label) = match conn.identity {
        Identity::Anonymous => (UserTokenType::Anonymous, "anonymous users"),
        Identity::UserName { .. } => (UserTokenType::UserName, "user names and passwords"),
        Identity::X509 { .. } => (UserTokenType::Certificate, "X.509 user certificates"),
    };
    let tokens = endpoint.user_identity_tokens.as_deref().unwrap_or_default();
    let accepted = tokens.is_empty() && wanted == UserTokenType::Anonymous
        || tokens.iter().any(|t| t.token_type == wanted);
    if !accepted {
        let kinds: Vec<String> = tokens
            .iter()
            .map(|t| format!("{:?}", t.token_type))
            .collect();
        return Err(other(format!(
            "the {}/{} endpoint of {} does not accept {label}; it accepts: {}",
            conn.policy,
            conn.mode,
            conn.endpoint,
            kinds.join(", ")
        )));
    }
    Ok(endpoint)
}

/// The server certificate a secure endpoint presents, with the file name our PKI gives it.
pub(crate) fn server_certificate(
    endpoint: &EndpointDescription,
) -> Result<(X509, String), ConnectError> {
    let cert = X509::from_byte_string(&endpoint.server_certificate)
        .map_err(|e| other(format!("the server sent no usable certificate: {e}")))?;
    let name = CertificateStore::cert_file_name(&cert);
    Ok((cert, name))
}

/// Trust is explicit: a server certificate not found in trusted/ is written to rejected/ and
/// the connection refused with the file to move. A server that comes back with a new
/// certificate is refused the same way, never trusted silently.
fn check_trust(
    client: &Client,
    conn: &Connection,
    endpoint: &EndpointDescription,
) -> Result<(), ConnectError> {
    let (cert, name) = server_certificate(endpoint)?;
    let store = client.certificate_store().read();
    let trusted_dir = store.trusted_certs_dir();
    if trusted_dir.join(&name).is_file() {
        return Ok(());
    }
    let rejected = store.store_rejected_cert(&cert).map_err(|e| {
        other(format!(
            "the server's certificate is not trusted, and writing it to {} failed: {e}",
            store.rejected_certs_dir().display()
        ))
    })?;
    Err(ConnectError::Untrusted {
        rejected,
        trusted_dir,
        thumbprint: cert.thumbprint().as_hex_string(),
        subject: cert.subject_name(),
        endpoint: conn.endpoint.clone(),
    })
}

fn identity_token(identity: &Identity) -> Result<IdentityToken, ConnectError> {
    match identity {
        Identity::Anonymous => Ok(IdentityToken::Anonymous),
        Identity::UserName { user, password } => Ok(IdentityToken::new_user_name(
            user.clone(),
            password.read().map_err(other)?,
        )),
        Identity::X509 { cert, key } => IdentityToken::new_x509_path(cert, key).map_err(|e| {
            other(format!(
                "user certificate {} / key {}: {e}",
                cert.display(),
                key.display()
            ))
        }),
    }
}

/// What the watched event loop reports after the session is up.
#[derive(Debug)]
pub(crate) enum SessionEnd {
    Lost(String),
}

/// A live session. Dropping it stops its event loop (the server drops the session on timeout).
pub(crate) struct Live {
    pub session: Arc<Session>,
    pub ended: mpsc::UnboundedReceiver<SessionEnd>,
    /// Where subscription callbacks put notifications; the event loop waits while it is full.
    pub inbox: Arc<Inbox>,
    task: tokio::task::JoinHandle<()>,
}

impl Live {
    /// Closes the session politely (bounded), then stops the event loop.
    pub async fn close(self) {
        self.inbox.unbound();
        let _ = timeout(Duration::from_secs(2), self.session.disconnect()).await;
        self.task.abort();
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connects, creates and activates a session.
pub(crate) async fn connect(conn: &Connection, s: &ClientSettings) -> Result<Live, ConnectError> {
    let client = build_client(conn, s).await?;
    let offered = endpoints(&client, &conn.endpoint, s).await?;
    let endpoint = choose_endpoint(conn, &offered)?;
    if conn.policy != SecurityPolicy::None {
        check_trust(&client, conn, &endpoint)?;
    }
    let token = identity_token(&conn.identity)?;
    let (session, event_loop) = client
        .session_builder()
        .connect_to_endpoint_directly(endpoint)
        .map_err(other)?
        .user_identity_token(token)
        .build(client.certificate_store().clone())
        .map_err(other)?;
    // Before the event loop decodes anything from the server.
    super::argument::bound(&mut session.encoding_context().write());

    let (up_tx, up_rx) = tokio::sync::oneshot::channel::<Result<(), StatusCode>>();
    let (end_tx, ended) = mpsc::unbounded_channel();
    let inbox = Arc::new(Inbox::new(INBOX_BOUND));
    let room = inbox.clone();
    let task = tokio::spawn(async move {
        let stream = event_loop.enter();
        tokio::pin!(stream);
        let mut up_tx = Some(up_tx);
        loop {
            // Back-pressure: no further message is taken from the server while the device loop
            // has a full inbox (see inbox.rs).
            room.room().await;
            let (code, end) = match stream.next().await {
                Some(Ok(SessionPollResult::Reconnected(_))) => {
                    if let Some(tx) = up_tx.take() {
                        let _ = tx.send(Ok(()));
                    }
                    continue;
                }
                Some(Ok(SessionPollResult::ConnectionLost(code))) => {
                    (code, format!("connection lost ({code})"))
                }
                Some(Ok(_)) => continue,
                Some(Err(code)) => (code, format!("session failed ({code})")),
                None => (
                    StatusCode::BadConnectionClosed,
                    "session closed".to_string(),
                ),
            };
            match up_tx.take() {
                Some(tx) => {
                    let _ = tx.send(Err(code));
                }
                None => {
                    let _ = end_tx.send(SessionEnd::Lost(end));
                }
            }
            // Stop polling: the event loop would otherwise reconnect on its own, and we rebuild
            // the session ourselves.
            return;
        }
    });
    let failed = |code: StatusCode| {
        let hint = match code {
            StatusCode::BadUserAccessDenied
            | StatusCode::BadIdentityTokenRejected
            | StatusCode::BadIdentityTokenInvalid => {
                "; the server refused the user identity (check user name and password or the user certificate)"
            }
            StatusCode::BadCertificateUntrusted
            | StatusCode::BadSecurityChecksFailed
            | StatusCode::BadCertificateInvalid => {
                "; the server may not trust our certificate yet: have it trust own/cert.der from the PKI folder"
            }
            _ => "",
        };
        other(format!(
            "connecting to {} ({}/{}) failed: {code}{hint}",
            conn.endpoint, conn.policy, conn.mode
        ))
    };
    // If this future is dropped while waiting (the runtime stops), the event loop must not
    // live on with a session nobody reads.
    let mut task = AbortOnDrop(Some(task));
    match timeout(s.connect_timeout(), up_rx).await {
        Ok(Ok(Ok(()))) => Ok(Live {
            session,
            ended,
            inbox,
            task: task.0.take().expect("the event loop task"),
        }),
        Ok(Ok(Err(code))) => Err(failed(code)),
        Ok(Err(_)) => Err(failed(StatusCode::BadConnectionClosed)),
        Err(_) => Err(other(format!(
            "connecting to {}: no session within {:?}",
            conn.endpoint,
            s.connect_timeout()
        ))),
    }
}

struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            t.abort();
        }
    }
}
