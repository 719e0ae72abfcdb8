//! S7comm frames over ISO-on-TCP: RFC 1006 TPKT, ISO 8073 COTP (connection request and data),
//! and the S7 PDUs the driver uses (setup communication, read var, write var). Pure functions
//! of bytes, so the parsers can be fuzzed (fuzz/fuzz_targets/s7_frame.rs): a reply from the
//! network is never trusted to be well formed.

use super::address::Area;

/// TPKT header plus COTP data header: what precedes every S7 PDU on the wire.
pub const DT_HEADER: usize = 7;
/// Header of a job PDU (what the driver sends).
pub const JOB_HEADER: usize = 10;
/// Header of an ack-data PDU (what the CPU answers), with the error class and code.
pub const ACK_HEADER: usize = 12;
/// One item's address in a read or write request.
pub const ITEM_SPEC: usize = 12;
/// One item's header in a read reply.
pub const ITEM_REPLY_HEADER: usize = 4;
/// Items per read request the CPUs accept (S7-300/400 and snap7 use 20).
pub const MAX_ITEMS: usize = 20;

const FN_SETUP: u8 = 0xF0;
const FN_READ: u8 = 0x04;
const FN_WRITE: u8 = 0x05;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("broken frame: {0}")]
    Malformed(&'static str),
    /// The CPU answered the whole request with an error (class and code).
    #[error("the PLC refused the request: {}", header_error_text(*.0))]
    Refused(u16),
    #[error("the PLC refused the connection (COTP {0:#04x} instead of a connection confirm): wrong rack/slot or TSAP?")]
    ConnectRefused(u8),
    #[error("reply to request {got}, expected {want}")]
    WrongReference { got: u16, want: u16 },
}

/// What an S7 CPU's header error class and code mean, where a commissioning engineer meets them.
pub fn header_error_text(code: u16) -> String {
    let what = match code {
        0x8104 => "function not supported or access denied (on an S7-1200/1500: allow PUT/GET access in the CPU's protection settings)",
        0x8500 => "the request is larger than the negotiated PDU",
        0xD401 => "syntax error in the request",
        0xD602 => "the CPU's protection level forbids it (password)",
        0x8000 => "the CPU failed to handle it",
        _ => "error",
    };
    format!(
        "{what} (class {:#04x}, code {:#04x})",
        code >> 8,
        code & 0xFF
    )
}

/// What an item's return code means.
pub fn item_error_text(code: u8) -> &'static str {
    match code {
        0x01 => "hardware fault",
        0x03 => "access denied (PUT/GET not allowed, or optimized block access on the DB)",
        0x05 => "address out of range (the DB or area is shorter)",
        0x06 => "data type not supported",
        0x07 => "data type inconsistent",
        0x0A => "object does not exist (no such DB)",
        _ => "refused",
    }
}

/// An RFC 1006 TPKT frame around `payload`.
pub fn tpkt(payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() + 4) as u16;
    let mut out = Vec::with_capacity(len as usize);
    out.extend_from_slice(&[3, 0]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The length a TPKT header announces (header included), checked.
pub fn tpkt_length(header: [u8; 4]) -> Result<usize, FrameError> {
    if header[0] != 3 {
        return Err(FrameError::Malformed("not a TPKT (version is not 3)"));
    }
    let len = u16::from_be_bytes([header[2], header[3]]) as usize;
    if len < 7 {
        return Err(FrameError::Malformed("TPKT shorter than a COTP header"));
    }
    Ok(len)
}

/// The TSAP of a CPU's rack and slot, as STEP 7 and snap7 address it (connection type PG).
pub fn remote_tsap(rack: u8, slot: u8) -> u16 {
    0x0100 | ((rack as u16 & 0x07) << 5) | (slot as u16 & 0x1F)
}

/// COTP connection request in a TPKT, asking for 1024-byte TPDUs.
pub fn connect_request(local_tsap: u16, remote_tsap: u16) -> Vec<u8> {
    let [lh, ll] = local_tsap.to_be_bytes();
    let [rh, rl] = remote_tsap.to_be_bytes();
    tpkt(&[
        17, 0xE0, 0, 0, 0, 1, 0, // length, CR, dst ref, src ref, class 0
        0xC1, 2, lh, ll, // calling (our) TSAP
        0xC2, 2, rh, rl, // called (the CPU's) TSAP
        0xC0, 1, 0x0A, // TPDU size 1024
    ])
}

/// Checks a COTP connection confirm (the TPKT payload).
pub fn check_connect_confirm(cotp: &[u8]) -> Result<(), FrameError> {
    match cotp.get(1) {
        Some(0xD0) => Ok(()),
        Some(&other) => Err(FrameError::ConnectRefused(other)),
        None => Err(FrameError::Malformed("empty COTP")),
    }
}

/// An S7 PDU in a COTP data TPDU in a TPKT.
pub fn data_frame(pdu: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(pdu.len() + 3);
    payload.extend_from_slice(&[2, 0xF0, 0x80]);
    payload.extend_from_slice(pdu);
    tpkt(&payload)
}

/// The user data of a COTP data TPDU (a TPKT payload), and whether it ends the PDU (EOT).
pub fn cotp_data(cotp: &[u8]) -> Result<(&[u8], bool), FrameError> {
    let hlen = *cotp.first().ok_or(FrameError::Malformed("empty COTP"))? as usize;
    let (Some(0xF0), Some(nr), true) = (cotp.get(1), cotp.get(2), hlen >= 2) else {
        return Err(FrameError::Malformed("expected a COTP data TPDU"));
    };
    let eot = nr & 0x80 != 0;
    let data = cotp
        .get(hlen + 1..)
        .ok_or(FrameError::Malformed("COTP header longer than its TPDU"))?;
    Ok((data, eot))
}

fn job(pdu_ref: u16, params: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(JOB_HEADER + params.len() + data.len());
    out.extend_from_slice(&[0x32, 0x01, 0, 0]);
    out.extend_from_slice(&pdu_ref.to_be_bytes());
    out.extend_from_slice(&(params.len() as u16).to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(params);
    out.extend_from_slice(data);
    out
}

/// Setup communication, offering `pdu_size`; the CPU answers with what it accepts.
pub fn setup_request(pdu_ref: u16, pdu_size: u16) -> Vec<u8> {
    let [ph, pl] = pdu_size.to_be_bytes();
    job(pdu_ref, &[FN_SETUP, 0, 0, 1, 0, 1, ph, pl], &[])
}

/// A run of bytes (or one bit) of one area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    pub area: Area,
    pub start: u32,
    /// Bytes, or None for the single bit `bit` of byte `start` (writes only).
    pub len: u16,
    pub bit: Option<u8>,
}

impl Item {
    pub fn bytes(area: Area, start: u32, len: u16) -> Item {
        Item {
            area,
            start,
            len,
            bit: None,
        }
    }

    fn spec(&self, out: &mut Vec<u8>) {
        let (transport, count, addr) = match self.bit {
            Some(bit) => (0x01, 1, self.start * 8 + bit as u32),
            None => (0x02, self.len, self.start * 8),
        };
        out.extend_from_slice(&[0x12, 0x0A, 0x10, transport]);
        out.extend_from_slice(&count.to_be_bytes());
        out.extend_from_slice(&self.area.db_number().to_be_bytes());
        out.push(self.area.code());
        out.extend_from_slice(&addr.to_be_bytes()[1..]);
    }
}

/// Read var for `items` (at most [`MAX_ITEMS`]).
pub fn read_request(pdu_ref: u16, items: &[Item]) -> Vec<u8> {
    let mut params = vec![FN_READ, items.len() as u8];
    items.iter().for_each(|i| i.spec(&mut params));
    job(pdu_ref, &params, &[])
}

/// Write var of one item: `data` is the item's bytes, or one byte 0/1 for a bit.
pub fn write_request(pdu_ref: u16, item: &Item, data: &[u8]) -> Vec<u8> {
    let mut params = vec![FN_WRITE, 1];
    item.spec(&mut params);
    let (transport, bits) = match item.bit {
        Some(_) => (0x03, 1u16),
        None => (0x04, data.len() as u16 * 8),
    };
    let mut body = vec![0, transport];
    body.extend_from_slice(&bits.to_be_bytes());
    body.extend_from_slice(data);
    job(pdu_ref, &params, &body)
}

/// Request bytes of a read of `items` items.
pub fn read_request_size(items: usize) -> usize {
    JOB_HEADER + 2 + ITEM_SPEC * items
}

/// Reply bytes of a read of items of these lengths (odd items but the last get a fill byte).
pub fn read_reply_size(lens: impl IntoIterator<Item = u16>) -> usize {
    let lens: Vec<usize> = lens.into_iter().map(|l| l as usize).collect();
    let fill = lens.iter().rev().skip(1).filter(|&&l| l % 2 == 1).count();
    ACK_HEADER + 2 + lens.iter().map(|l| ITEM_REPLY_HEADER + l).sum::<usize>() + fill
}

/// An answer of the CPU, split into its parts.
#[derive(Debug, PartialEq, Eq)]
pub struct Ack<'a> {
    pub pdu_ref: u16,
    pub params: &'a [u8],
    pub data: &'a [u8],
}

/// Parses an ack (type 2) or ack-data (type 3) PDU answering request `want_ref`; a header
/// error becomes [`FrameError::Refused`].
pub fn parse_ack(pdu: &[u8], want_ref: u16) -> Result<Ack<'_>, FrameError> {
    if pdu.len() < ACK_HEADER {
        return Err(FrameError::Malformed("S7 reply shorter than its header"));
    }
    if pdu[0] != 0x32 {
        return Err(FrameError::Malformed(
            "not S7comm (protocol id is not 0x32)",
        ));
    }
    if !matches!(pdu[1], 2 | 3) {
        return Err(FrameError::Malformed("not an acknowledgement"));
    }
    let pdu_ref = u16::from_be_bytes([pdu[4], pdu[5]]);
    if pdu_ref != want_ref {
        return Err(FrameError::WrongReference {
            got: pdu_ref,
            want: want_ref,
        });
    }
    let error = u16::from_be_bytes([pdu[10], pdu[11]]);
    if error != 0 {
        return Err(FrameError::Refused(error));
    }
    let plen = u16::from_be_bytes([pdu[6], pdu[7]]) as usize;
    let dlen = u16::from_be_bytes([pdu[8], pdu[9]]) as usize;
    let params = pdu
        .get(ACK_HEADER..ACK_HEADER + plen)
        .ok_or(FrameError::Malformed("parameters run past the reply"))?;
    let data = pdu
        .get(ACK_HEADER + plen..ACK_HEADER + plen + dlen)
        .ok_or(FrameError::Malformed("data run past the reply"))?;
    Ok(Ack {
        pdu_ref,
        params,
        data,
    })
}

/// The PDU size the CPU accepted.
pub fn parse_setup(ack: &Ack) -> Result<u16, FrameError> {
    match ack.params {
        [FN_SETUP, _, _, _, _, _, h, l, ..] => match u16::from_be_bytes([*h, *l]) {
            size if size >= 64 => Ok(size),
            _ => Err(FrameError::Malformed(
                "the PLC offered a PDU too small to read with",
            )),
        },
        _ => Err(FrameError::Malformed("not a setup communication reply")),
    }
}

/// Each item's bytes, or the return code with which the CPU refused it.
pub fn parse_read<'a>(
    ack: &Ack<'a>,
    items: usize,
) -> Result<Vec<Result<&'a [u8], u8>>, FrameError> {
    if ack.params != [FN_READ, items as u8] {
        return Err(FrameError::Malformed("not a reply to this read"));
    }
    let mut out = Vec::with_capacity(items);
    let mut rest = ack.data;
    for i in 0..items {
        let [code, transport, lh, ll, tail @ ..] = rest else {
            return Err(FrameError::Malformed(
                "read reply holds fewer items than asked",
            ));
        };
        if *code != 0xFF {
            out.push(Err(*code));
            rest = tail;
            continue;
        }
        let len = u16::from_be_bytes([*lh, *ll]) as usize;
        // Lengths are in bits but for REAL and octet strings, which count bytes.
        let len = match transport {
            0x03..=0x05 => len.div_ceil(8),
            0x07 | 0x09 => len,
            _ => {
                return Err(FrameError::Malformed(
                    "unknown transport size in a read reply",
                ))
            }
        };
        let data = tail
            .get(..len)
            .ok_or(FrameError::Malformed("item data runs past the reply"))?;
        out.push(Ok(data));
        let fill = usize::from(len % 2 == 1 && i + 1 < items);
        rest = tail.get(len + fill..).unwrap_or_default();
    }
    Ok(out)
}

/// Ok, or the return code with which the CPU refused the write.
pub fn parse_write(ack: &Ack) -> Result<Result<(), u8>, FrameError> {
    if ack.params != [FN_WRITE, 1] {
        return Err(FrameError::Malformed("not a reply to this write"));
    }
    match ack.data.first() {
        Some(0xFF) => Ok(Ok(())),
        Some(&code) => Ok(Err(code)),
        None => Err(FrameError::Malformed("write reply without a return code")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rack_and_slot_make_the_tsap_snap7_uses() {
        assert_eq!(remote_tsap(0, 2), 0x0102);
        assert_eq!(remote_tsap(0, 1), 0x0101);
        assert_eq!(remote_tsap(1, 3), 0x0123);
    }

    #[test]
    fn a_read_request_addresses_bytes_as_bit_offsets() {
        let req = read_request(7, &[Item::bytes(Area::Db(10), 4, 6)]);
        assert_eq!(
            req,
            [
                0x32, 1, 0, 0, 0, 7, 0, 14, 0, 0, // header
                4, 1, 0x12, 0x0A, 0x10, 2, 0, 6, 0, 10, 0x84, 0, 0, 32
            ]
        );
        assert_eq!(req.len(), read_request_size(1));
    }

    #[test]
    fn read_replies_split_into_items_with_fill_bytes_and_refusals() {
        let mut pdu = vec![0x32, 3, 0, 0, 0, 9, 0, 2, 0, 0, 0, 0, 4, 3];
        let data = [
            0xFF, 4, 0, 8, 0xAA, 0, // one byte and a fill byte
            0x0A, 0, 0, 0, // refused: no such DB
            0xFF, 9, 0, 2, 1, 2, // octet string counted in bytes
        ];
        pdu[8..10].copy_from_slice(&(data.len() as u16).to_be_bytes());
        pdu.extend_from_slice(&data);
        let ack = parse_ack(&pdu, 9).unwrap();
        let items = parse_read(&ack, 3).unwrap();
        assert_eq!(items, vec![Ok(&[0xAA][..]), Err(0x0A), Ok(&[1, 2][..])]);
        assert_eq!(read_reply_size([1, 0, 2]), 12 + 2 + 4 + 1 + 1 + 4 + 4 + 2);
    }

    #[test]
    fn header_errors_and_stale_replies_are_told_apart() {
        let refused = [0x32, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0x81, 0x04];
        assert_eq!(parse_ack(&refused, 1), Err(FrameError::Refused(0x8104)));
        assert!(matches!(
            parse_ack(&refused, 2),
            Err(FrameError::WrongReference { got: 1, want: 2 })
        ));
        assert!(FrameError::Refused(0x8104).to_string().contains("PUT/GET"));
    }

    #[test]
    fn a_cotp_header_cut_short_is_an_error_not_a_panic() {
        // Found by fuzz/fuzz_targets/s7_frame.rs.
        assert!(cotp_data(&[2, 0xF0]).is_err());
        assert_eq!(cotp_data(&[2, 0xF0, 0x80, 0x32]), Ok((&[0x32][..], true)));
    }

    #[test]
    fn a_bit_write_carries_one_bit() {
        let item = Item {
            area: Area::Merker,
            start: 2,
            len: 1,
            bit: Some(3),
        };
        let req = write_request(1, &item, &[1]);
        assert_eq!(
            &req[10..24],
            &[5, 1, 0x12, 0x0A, 0x10, 1, 0, 1, 0, 0, 0x83, 0, 0, 19]
        );
        assert_eq!(&req[24..], &[0, 3, 0, 1, 1]);
    }
}
