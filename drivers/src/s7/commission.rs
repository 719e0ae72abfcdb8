//! What `mes-edge s7 read|write|plan` does against a CPU, with the driver's own connection,
//! planner and encodings, so that a value read at the machine reads as the running cell reads it.

use super::device::write_item;
use super::frame::{item_error_text, Item};
use super::link::{Endpoint, Link};
use super::plan::{plan, ReadRequest, Refusals};
use super::tag::{S7Tag, S7Type};
use crate::{DriverError, Text, Value};
use std::time::Duration;

/// A value typed at the command line, as `ty`.
pub fn parse_value(s: &str, ty: S7Type) -> Result<Value, String> {
    let bad = || format!("cannot read {s:?} as {}", ty.name());
    Ok(match ty {
        S7Type::Bool => match s.to_ascii_lowercase().as_str() {
            "1" | "true" | "on" => Value::Bool(true),
            "0" | "false" | "off" => Value::Bool(false),
            _ => return Err(bad()),
        },
        S7Type::Byte | S7Type::Word | S7Type::DWord => Value::UInt(s.parse().map_err(|_| bad())?),
        S7Type::Int | S7Type::DInt => Value::Int(s.parse().map_err(|_| bad())?),
        S7Type::Real | S7Type::LReal => Value::Float(s.parse().map_err(|_| bad())?),
        S7Type::String { .. } | S7Type::DateAndTime | S7Type::Dtl => Value::Text(
            Text::new(s).ok_or_else(|| format!("{s:?} is longer than {} bytes", Text::CAPACITY))?,
        ),
    })
}

/// Connects, and says which PDU size the CPU accepted.
pub async fn connect(ep: &Endpoint, timeout: Duration) -> Result<Link, DriverError> {
    Link::open(ep, timeout).await.map_err(|e| DriverError {
        kind: e.kind(),
        message: format!("{ep}: {e}"),
    })
}

/// The requests the running cell would make for `tags` on a connection of `pdu` bytes.
pub fn requests(tags: &[S7Tag], max_gap: u32, pdu: u16) -> Vec<ReadRequest> {
    let all: Vec<usize> = (0..tags.len()).collect();
    plan(tags, &all, max_gap, pdu, &Refusals::new())
}

/// Reads every tag as planned; each tag's value or why it has none.
pub async fn read(
    link: &mut Link,
    tags: &[S7Tag],
    max_gap: u32,
) -> Result<Vec<Result<Value, String>>, DriverError> {
    let mut out: Vec<Result<Value, String>> = vec![Err("not read".into()); tags.len()];
    for req in requests(tags, max_gap, link.pdu_size) {
        let items: Vec<Item> = req
            .items
            .iter()
            .map(|i| Item::bytes(i.area, i.start, i.len))
            .collect();
        let results = link.read(&items).await?;
        for (item, result) in req.items.iter().zip(results) {
            for &i in &item.tags {
                let t = &tags[i];
                out[i] = match &result {
                    Ok(bytes) => bytes
                        .get((t.address.byte - item.start) as usize..)
                        .and_then(|b| t.decode(b))
                        .ok_or_else(|| {
                            format!(
                                "the bytes at {} are not a valid {}",
                                t.address,
                                t.data_type.name()
                            )
                        }),
                    Err(code) => Err(format!("refused: {}", item_error_text(*code))),
                };
            }
        }
    }
    Ok(out)
}

/// Writes `value` to `tag` as the driver would.
pub async fn write(link: &mut Link, tag: &S7Tag, value: Value) -> Result<(), DriverError> {
    let (item, data) = write_item(tag, value).map_err(DriverError::configuration)?;
    match link.write(&item, &data).await? {
        Ok(()) => Ok(()),
        Err(code) => Err(DriverError::refused(format!(
            "the PLC refused the write to {}: {}",
            tag.address,
            item_error_text(code)
        ))),
    }
}
