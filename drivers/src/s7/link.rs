//! One ISO-on-TCP connection to a CPU: connect (COTP with the TSAPs, then setup communication
//! to agree the PDU size), then one request at a time, each bounded by the timeout.

use super::frame::{self, FrameError, Item};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where the CPU is and how the connection names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub local_tsap: u16,
    pub remote_tsap: u16,
    /// The PDU size offered; the CPU answers with what it accepts (typically 240 on an S7-300
    /// or S7-1200, 480 on an S7-400, 960 on an S7-1500).
    pub pdu_size: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// No answer, a closed connection or a broken reply: the connection is dropped and made
    /// again; the values are unknown meanwhile.
    #[error("{0}")]
    Lost(String),
    /// The CPU answered, refusing the whole request; the connection stays good.
    #[error("{0}")]
    Refused(FrameError),
}

impl LinkError {
    /// The CPU's refusal, or a fault of the connection.
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            LinkError::Lost(_) => crate::ErrorKind::Transient,
            LinkError::Refused(_) => crate::ErrorKind::Refused,
        }
    }
}

impl From<LinkError> for crate::DriverError {
    fn from(e: LinkError) -> Self {
        crate::DriverError {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

/// Largest S7 PDU the driver accepts from the wire (the protocol negotiates at most 960; a
/// reassembled reply far past that is garbage).
const MAX_REPLY: usize = 8 * 1024;

pub struct Link {
    stream: TcpStream,
    next_ref: u16,
    /// The PDU size the CPU accepted.
    pub pdu_size: u16,
    timeout: Duration,
}

fn lost(e: impl std::fmt::Display) -> LinkError {
    LinkError::Lost(e.to_string())
}

impl Link {
    /// Connects within `timeout` per step.
    pub async fn open(ep: &Endpoint, timeout: Duration) -> Result<Link, LinkError> {
        let bounded = |what: &'static str| {
            move |_| LinkError::Lost(format!("{what}: no answer within {timeout:?}"))
        };
        let stream = tokio::time::timeout(timeout, TcpStream::connect((ep.host.as_str(), ep.port)))
            .await
            .map_err(bounded("connect"))?
            .map_err(|e| lost(format!("connect to {ep}: {e}")))?;
        stream.set_nodelay(true).ok();
        let mut link = Link {
            stream,
            next_ref: 0,
            pdu_size: ep.pdu_size,
            timeout,
        };
        let cr = frame::connect_request(ep.local_tsap, ep.remote_tsap);
        let cc = tokio::time::timeout(timeout, async {
            link.stream.write_all(&cr).await.map_err(lost)?;
            link.read_tpkt().await
        })
        .await
        .map_err(bounded("ISO connection request"))??;
        frame::check_connect_confirm(&cc).map_err(lost)?;
        let pdu_ref = link.take_ref();
        let reply = link
            .exchange(frame::setup_request(pdu_ref, ep.pdu_size))
            .await?;
        let ack = frame::parse_ack(&reply, pdu_ref).map_err(|e| match e {
            FrameError::Refused(_) => LinkError::Refused(e),
            e => lost(e),
        })?;
        link.pdu_size = frame::parse_setup(&ack).map_err(lost)?.min(ep.pdu_size);
        Ok(link)
    }

    fn take_ref(&mut self) -> u16 {
        self.next_ref = self.next_ref.wrapping_add(1);
        self.next_ref
    }

    async fn read_tpkt(&mut self) -> Result<Vec<u8>, LinkError> {
        let mut header = [0u8; 4];
        self.stream
            .read_exact(&mut header)
            .await
            .map_err(|e| lost(format!("connection lost: {e}")))?;
        let len = frame::tpkt_length(header).map_err(lost)?;
        let mut payload = vec![0u8; len - 4];
        self.stream
            .read_exact(&mut payload)
            .await
            .map_err(|e| lost(format!("connection lost: {e}")))?;
        Ok(payload)
    }

    /// Sends one PDU and returns the reply PDU, reassembled from its COTP fragments.
    async fn exchange(&mut self, pdu: Vec<u8>) -> Result<Vec<u8>, LinkError> {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, async {
            self.stream
                .write_all(&frame::data_frame(&pdu))
                .await
                .map_err(lost)?;
            let mut reply = Vec::new();
            loop {
                let tpdu = self.read_tpkt().await?;
                let (data, eot) = frame::cotp_data(&tpdu).map_err(lost)?;
                reply.extend_from_slice(data);
                if reply.len() > MAX_REPLY {
                    return Err(lost("reply larger than any S7 PDU"));
                }
                if eot {
                    return Ok(reply);
                }
            }
        })
        .await
        .map_err(|_| LinkError::Lost(format!("no answer within {timeout:?}")))?
    }

    async fn request(
        &mut self,
        build: impl FnOnce(u16) -> Vec<u8>,
    ) -> Result<(Vec<u8>, u16), LinkError> {
        let pdu_ref = self.take_ref();
        let reply = self.exchange(build(pdu_ref)).await?;
        Ok((reply, pdu_ref))
    }

    /// Reads `items` in one request: each item's bytes, or the code the CPU refused it with.
    pub async fn read(&mut self, items: &[Item]) -> Result<Vec<Result<Vec<u8>, u8>>, LinkError> {
        let (reply, pdu_ref) = self.request(|r| frame::read_request(r, items)).await?;
        let ack = parse(&reply, pdu_ref)?;
        let out = frame::parse_read(&ack, items.len()).map_err(lost)?;
        Ok(out.into_iter().map(|r| r.map(<[u8]>::to_vec)).collect())
    }

    /// Writes one item: Ok(Err(code)) if the CPU refused it.
    pub async fn write(&mut self, item: &Item, data: &[u8]) -> Result<Result<(), u8>, LinkError> {
        let (reply, pdu_ref) = self
            .request(|r| frame::write_request(r, item, data))
            .await?;
        let ack = parse(&reply, pdu_ref)?;
        frame::parse_write(&ack).map_err(lost)
    }

    pub async fn close(mut self) {
        let _ = self.stream.shutdown().await;
    }
}

fn parse(reply: &[u8], pdu_ref: u16) -> Result<frame::Ack<'_>, LinkError> {
    frame::parse_ack(reply, pdu_ref).map_err(|e| match e {
        FrameError::Refused(_) => LinkError::Refused(e),
        e => lost(e),
    })
}
