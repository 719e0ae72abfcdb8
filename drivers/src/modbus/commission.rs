//! What `mes-edge modbus read|write` does against a device, with the driver's own transports,
//! encodings and write requests, so that a value read at the machine reads as the running cell
//! would read it. The command parses its arguments into a [`ModbusTag`] and prints; this talks to
//! the device.

use super::device::ModbusDevice;
use super::encoding::DataType;
use super::line::write_op;
use super::link::{Link, ReadData, WriteOp};
use super::tag::{ModbusTag, Table};
use super::transport::Transport;
use crate::{DeviceId, DriverError, Text, Value};
use std::time::Duration;

/// How many bits or registers `count` consecutive values like `first` take, if they fit one read.
pub fn read_size(first: &ModbusTag, count: u16) -> Result<u16, String> {
    let address = first.address;
    let total = first.span() as u32 * count.max(1) as u32;
    if address as u32 + total > 65536 {
        return Err(format!(
            "{count} values from address {address} run past 65535"
        ));
    }
    if total > first.table.max_read() as u32 {
        return Err(format!(
            "{total} {} do not fit one read (at most {})",
            if first.table.is_bits() {
                "bits"
            } else {
                "registers"
            },
            first.table.max_read()
        ));
    }
    Ok(total as u16)
}

/// A value typed at the command line, as `ty`.
pub fn parse_value(s: &str, ty: DataType) -> Result<Value, String> {
    let bad = || format!("cannot read {s:?} as {}", ty.name());
    Ok(match ty {
        DataType::Bool => match s.to_ascii_lowercase().as_str() {
            "1" | "true" | "on" => Value::Bool(true),
            "0" | "false" | "off" => Value::Bool(false),
            _ => return Err(bad()),
        },
        DataType::U16 | DataType::U32 | DataType::U64 => Value::UInt(s.parse().map_err(|_| bad())?),
        DataType::I16 | DataType::I32 | DataType::I64 => Value::Int(s.parse().map_err(|_| bad())?),
        DataType::F32 | DataType::F64 => Value::Float(s.parse().map_err(|_| bad())?),
        DataType::String => Value::Text(
            Text::new(s).ok_or_else(|| format!("{s:?} is longer than {} bytes", Text::CAPACITY))?,
        ),
    })
}

/// The one request that writes `values` (as typed) to consecutive addresses from `first`'s, made
/// as the driver makes its writes: a single coil or register with FC 5 or FC 6 unless
/// `multiple_writes`, a bit of a register with FC 22, several values end to end in one FC 15 or
/// FC 16 request.
pub fn write_request(
    first: &ModbusTag,
    unit: u8,
    values: &[String],
    multiple_writes: bool,
) -> Result<WriteOp, String> {
    let address = first.address;
    let ty = first.data_type;
    if first.bit.is_some() && values.len() > 1 {
        return Err("one bit of a register is written one at a time".into());
    }
    let mut device = ModbusDevice::new(DeviceId(0), "cli", unit, Vec::new());
    device.single_writes = !multiple_writes && values.len() == 1;
    let mut ops = Vec::new();
    for (k, text) in values.iter().enumerate() {
        let mut tag = first.clone();
        tag.address = address
            .checked_add(k as u16 * tag.span())
            .ok_or_else(|| "the values run past address 65535".to_string())?;
        device.tags = vec![tag];
        ops.push(write_op(&device, 0, parse_value(text, ty)?)?);
    }
    Ok(if ops.len() == 1 {
        ops.remove(0)
    } else if first.table == Table::Coil {
        let bits = ops
            .iter()
            .map(|o| match o {
                WriteOp::Coils(_, b) => b[0],
                _ => unreachable!("several coils are written with FC 15"),
            })
            .collect();
        WriteOp::Coils(address, bits)
    } else {
        let regs = ops
            .iter()
            .flat_map(|o| match o {
                WriteOp::Registers(_, r) => r.clone(),
                _ => unreachable!("several registers are written with FC 16"),
            })
            .collect();
        WriteOp::Registers(address, regs)
    })
}

/// One connection to one unit, for one read or one write.
pub struct Commissioning {
    link: Link,
    unit: u8,
    timeout: Duration,
}

impl Commissioning {
    pub async fn open(
        transport: &Transport,
        unit: u8,
        timeout: Duration,
    ) -> Result<Self, DriverError> {
        Ok(Commissioning {
            link: Link::open(transport, timeout)
                .await
                .map_err(DriverError::transient)?,
            unit,
            timeout,
        })
    }

    /// Reads `count` consecutive values like `first` in one request; each value with its
    /// address, None where the reply is shorter than asked.
    pub async fn read(
        mut self,
        first: &ModbusTag,
        count: u16,
    ) -> Result<Vec<(u16, Option<Value>)>, DriverError> {
        let address = first.address;
        let span = first.span();
        let total = read_size(first, count).map_err(DriverError::configuration)?;
        let data = self
            .link
            .read(
                self.unit,
                first.table,
                address,
                total,
                self.timeout,
                Duration::ZERO,
            )
            .await
            .map_err(|e| DriverError {
                kind: e.kind(),
                message: format!("read failed: {e}"),
            })?;
        self.link.close().await;
        Ok((0..count.max(1))
            .map(|k| {
                let mut tag = first.clone();
                tag.address = address + k * span;
                let value = match &data {
                    ReadData::Registers(regs) => tag.decode_registers(address, regs),
                    ReadData::Bits(bits) => tag.decode_bits(address, bits),
                };
                (tag.address, value)
            })
            .collect())
    }

    pub async fn write(mut self, op: &WriteOp) -> Result<(), DriverError> {
        self.link
            .write(self.unit, op, self.timeout, Duration::ZERO)
            .await
            .map_err(|e| DriverError {
                kind: e.kind(),
                message: format!("write failed (FC {}): {e}", op.function()),
            })?;
        self.link.close().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TagId;

    #[test]
    fn values_parse_as_their_type() {
        assert_eq!(parse_value("-3", DataType::I16).unwrap(), Value::Int(-3));
        assert_eq!(
            parse_value("on", DataType::Bool).unwrap(),
            Value::Bool(true)
        );
        assert!(parse_value("1.5", DataType::U16).is_err());
    }

    #[test]
    fn consecutive_values_are_one_request() {
        let tag = ModbusTag::new(TagId(0), Table::Holding, 10, DataType::U32);
        let op = write_request(&tag, 1, &["1".into(), "2".into()], false).unwrap();
        assert_eq!(op, WriteOp::Registers(10, vec![0, 1, 0, 2]));
        assert!(read_size(&tag, 62).is_ok());
        assert!(read_size(&tag, 63).is_err());
    }
}
