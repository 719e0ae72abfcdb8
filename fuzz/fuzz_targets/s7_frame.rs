//! Bytes as a CPU (or anything listening on port 102) might answer them, through every parser of
//! the S7 client: TPKT header, COTP connection confirm and data TPDU, the S7 ack header, and
//! setup, read (with any number of items) and write replies; then every item decoded as each
//! S7 type. None may panic; a read reply that parses holds exactly the items asked for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mes_edge_drivers::s7::frame;
use mes_edge_drivers::s7::{Address, Area, S7Tag, S7Type, Width};
use mes_edge_drivers::TagId;

const TYPES: [S7Type; 11] = [
    S7Type::Bool,
    S7Type::Byte,
    S7Type::Word,
    S7Type::DWord,
    S7Type::Int,
    S7Type::DInt,
    S7Type::Real,
    S7Type::LReal,
    S7Type::String { max: 10 },
    S7Type::DateAndTime,
    S7Type::Dtl,
];

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let items = data[0] as usize % 24;
    let want_ref = u16::from_be_bytes([data[1], data[2]]);
    let body = &data[3..];
    if body.len() >= 4 {
        let _ = frame::tpkt_length([body[0], body[1], body[2], body[3]]);
    }
    let _ = frame::check_connect_confirm(body);
    let pdu = match frame::cotp_data(body) {
        Ok((pdu, _)) => pdu,
        Err(_) => body,
    };
    if let Ok(ack) = frame::parse_ack(pdu, want_ref) {
        let _ = frame::parse_setup(&ack);
        let _ = frame::parse_write(&ack);
        if let Ok(read) = frame::parse_read(&ack, items) {
            assert_eq!(read.len(), items);
            for (i, item) in read.iter().enumerate() {
                let Ok(bytes) = item else { continue };
                let ty = TYPES[i % TYPES.len()];
                let width = match ty {
                    S7Type::Bool => Width::Bit((i % 8) as u8),
                    S7Type::Word | S7Type::Int => Width::Word,
                    S7Type::DWord | S7Type::DInt | S7Type::Real => Width::DWord,
                    _ => Width::Byte,
                };
                let tag = S7Tag::new(TagId(0), Address { area: Area::Db(1), byte: 0, width }, ty);
                if let Some(v) = tag.decode(bytes) {
                    // What decodes can be written back, or is refused with a reason.
                    if let Err(e) = tag.encode(v) {
                        assert!(!e.is_empty());
                    }
                }
            }
        }
    }
    // The address parser, on the same bytes as text.
    if let Ok(s) = std::str::from_utf8(body) {
        if let Ok(a) = s.parse::<Address>() {
            assert_eq!(a.to_string().parse::<Address>(), Ok(a));
        }
    }
});
