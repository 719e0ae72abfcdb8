//! OPC UA values to the cell's values and back. The cell keeps integers as integers (counters
//! never pass through a float); text is kept inline up to [`Text::CAPACITY`] bytes.

use super::NodeType;
use crate::{now_ms, Quality, Text, Value};
use ::opcua::types::{DataValue, DateTime, Identifier, NodeId, StatusCode, UAString, Variant};

/// 100-ns ticks from 1601-01-01 (OPC UA's epoch) to 1970-01-01.
const UNIX_EPOCH_TICKS: i64 = 116_444_736_000_000_000;

pub(crate) fn unix_ms(t: &DateTime) -> Option<i64> {
    let ticks = t.ticks();
    (ticks > 0).then(|| (ticks - UNIX_EPOCH_TICKS) / 10_000)
}

/// One reading of one node, with why it is bad if the server did not say so itself.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reading {
    pub value: Option<Value>,
    pub quality: Quality,
    /// The runtime's clock when the value came in.
    pub ts_ms: i64,
    /// The device's (or else the server's) timestamp, if it has a plausible one.
    pub source_ts_ms: Option<i64>,
    pub problem: Option<String>,
}

pub(crate) fn quality_of(status: StatusCode) -> Quality {
    if status.is_good() {
        Quality::Good
    } else if status.is_uncertain() {
        Quality::Uncertain
    } else {
        Quality::Bad
    }
}

/// The value stamped with the runtime's clock, and the device's own timestamp beside it for
/// information: the source timestamp is the PLC's, the server's the next best. Neither is ever
/// used to account time (a PLC's clock set to local time would add hours to a state).
pub(crate) fn reading(dv: &DataValue, expect: Option<NodeType>) -> Reading {
    let ts_ms = now_ms();
    let source_ts_ms = dv
        .source_timestamp
        .as_ref()
        .and_then(unix_ms)
        .or_else(|| dv.server_timestamp.as_ref().and_then(unix_ms))
        .and_then(crate::plausible_ts);
    let status = dv.status.unwrap_or(StatusCode::Good);
    let quality = quality_of(status);
    if quality == Quality::Bad {
        return Reading {
            value: None,
            quality,
            ts_ms,
            source_ts_ms,
            problem: Some(format!("the server reports {status}")),
        };
    }
    let variant = dv.value.as_ref().unwrap_or(&Variant::Empty);
    if let Some(want) = expect {
        if !has_type(variant, want) {
            return Reading {
                value: None,
                quality: Quality::Bad,
                ts_ms,
                source_ts_ms,
                problem: Some(format!(
                    "expected {} ({}), the server sends {}",
                    want.ua_name(),
                    want.name(),
                    type_name(variant)
                )),
            };
        }
    }
    match value_of(variant) {
        Ok(value) => Reading {
            value: Some(value),
            quality,
            ts_ms,
            source_ts_ms,
            problem: None,
        },
        Err(why) => Reading {
            value: None,
            quality: Quality::Bad,
            ts_ms,
            source_ts_ms,
            problem: Some(why),
        },
    }
}

fn has_type(v: &Variant, t: NodeType) -> bool {
    matches!(
        (v, t),
        (Variant::Boolean(_), NodeType::Bool)
            | (Variant::SByte(_), NodeType::I8)
            | (Variant::Byte(_), NodeType::U8)
            | (Variant::Int16(_), NodeType::I16)
            | (Variant::UInt16(_), NodeType::U16)
            | (Variant::Int32(_), NodeType::I32)
            | (Variant::UInt32(_), NodeType::U32)
            | (Variant::Int64(_), NodeType::I64)
            | (Variant::UInt64(_), NodeType::U64)
            | (Variant::Float(_), NodeType::F32)
            | (Variant::Double(_), NodeType::F64)
            | (Variant::String(_), NodeType::String)
            | (Variant::DateTime(_), NodeType::DateTime)
    )
}

pub(crate) fn type_name(v: &Variant) -> String {
    match v.scalar_type_id() {
        Some(t) if !matches!(v, Variant::Array(_)) => format!("{t:?}"),
        _ => match v {
            Variant::Empty => "no value".into(),
            Variant::Array(_) => "an array".into(),
            _ => format!("{:?}", v.type_id()),
        },
    }
}

/// A scalar as the cell's value; a DateTime is UTC ms.
pub(crate) fn value_of(v: &Variant) -> Result<Value, String> {
    Ok(match v {
        Variant::Boolean(b) => Value::Bool(*b),
        Variant::SByte(x) => Value::Int(*x as i64),
        Variant::Int16(x) => Value::Int(*x as i64),
        Variant::Int32(x) => Value::Int(*x as i64),
        Variant::Int64(x) => Value::Int(*x),
        Variant::Byte(x) => Value::UInt(*x as u64),
        Variant::UInt16(x) => Value::UInt(*x as u64),
        Variant::UInt32(x) => Value::UInt(*x as u64),
        Variant::UInt64(x) => Value::UInt(*x),
        Variant::Float(x) => Value::Float(*x as f64),
        Variant::Double(x) => Value::Float(*x),
        Variant::DateTime(t) => Value::Int(unix_ms(t).unwrap_or(0)),
        Variant::String(s) => match Text::new(s.as_ref()) {
            Some(t) => Value::Text(t),
            None => {
                return Err(format!(
                    "the text is {} bytes long; the cell keeps at most {}",
                    s.as_ref().len(),
                    Text::CAPACITY
                ))
            }
        },
        Variant::Empty => return Err("the server sends no value".into()),
        other => {
            return Err(format!(
                "{} is not a value the cell can use",
                type_name(other)
            ))
        }
    })
}

/// The built-in type behind a variable's DataType attribute, for the common standard types
/// and their well-known subtypes (UtcTime, Duration, Counter, IntegerId, enumerations).
pub(crate) fn builtin_of(data_type: &NodeId) -> Option<NodeType> {
    if data_type.namespace != 0 {
        return None;
    }
    let Identifier::Numeric(id) = data_type.identifier else {
        return None;
    };
    Some(match id {
        1 => NodeType::Bool,
        2 => NodeType::I8,
        3 => NodeType::U8,
        4 => NodeType::I16,
        5 => NodeType::U16,
        6 | 29 => NodeType::I32,
        7 | 288 | 289 => NodeType::U32,
        8 => NodeType::I64,
        9 => NodeType::U64,
        10 => NodeType::F32,
        11 | 290 => NodeType::F64,
        12 => NodeType::String,
        13 | 294 => NodeType::DateTime,
        _ => return None,
    })
}

/// A value as the variant a node of type `t` takes; out of range is an error, never a wrap.
pub(crate) fn variant_for(v: Value, t: NodeType) -> Result<Variant, String> {
    let range = |what: &str| Err(format!("{} does not fit a {what}", show(v)));
    let int = || -> Result<i128, String> {
        match v {
            Value::Text(t) => t
                .as_str()
                .trim()
                .parse::<i128>()
                .map_err(|_| format!("{} is not a whole number", show(v))),
            Value::Bool(b) => Ok(b as i128),
            Value::Int(i) => Ok(i as i128),
            Value::UInt(u) => Ok(u as i128),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.3e18 => Ok(f as i128),
            Value::Float(_) => Err(format!("{} is not a whole number", show(v))),
        }
    };
    macro_rules! fit {
        ($ty:ty, $variant:ident, $name:expr) => {{
            let i = int()?;
            match <$ty>::try_from(i) {
                Ok(x) => Variant::$variant(x),
                Err(_) => return range($name),
            }
        }};
    }
    Ok(match t {
        NodeType::Bool => match v {
            Value::Bool(b) => Variant::Boolean(b),
            _ => match int()? {
                0 => Variant::Boolean(false),
                1 => Variant::Boolean(true),
                _ => return range("Boolean (0 or 1)"),
            },
        },
        NodeType::I8 => fit!(i8, SByte, "SByte"),
        NodeType::U8 => fit!(u8, Byte, "Byte"),
        NodeType::I16 => fit!(i16, Int16, "Int16"),
        NodeType::U16 => fit!(u16, UInt16, "UInt16"),
        NodeType::I32 => fit!(i32, Int32, "Int32"),
        NodeType::U32 => fit!(u32, UInt32, "UInt32"),
        NodeType::I64 => fit!(i64, Int64, "Int64"),
        NodeType::U64 => fit!(u64, UInt64, "UInt64"),
        NodeType::F32 => Variant::Float(real(v)? as f32),
        NodeType::F64 => Variant::Double(real(v)?),
        NodeType::String => Variant::String(UAString::from(show(v))),
        NodeType::DateTime => {
            let ms = int()?;
            let ticks = i64::try_from(ms * 10_000 + UNIX_EPOCH_TICKS as i128)
                .map_err(|_| format!("{} is not a time in UTC ms", show(v)))?;
            Variant::DateTime(Box::new(DateTime::from(ticks)))
        }
    })
}

fn real(v: Value) -> Result<f64, String> {
    match v {
        Value::Text(t) => t
            .as_str()
            .trim()
            .parse()
            .map_err(|_| format!("{} is not a number", show(v))),
        _ => Ok(v.as_f64()),
    }
}

fn show(v: Value) -> String {
    match v {
        Value::Text(t) => t.as_str().to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dv(v: Variant, status: StatusCode) -> DataValue {
        DataValue {
            value: Some(v),
            status: Some(status),
            source_timestamp: Some(DateTime::from(
                UNIX_EPOCH_TICKS + 1_700_000_000_000 * 10_000,
            )),
            ..Default::default()
        }
    }

    #[test]
    fn status_codes_become_quality_and_the_source_time_is_kept() {
        let r = reading(
            &dv(Variant::UInt32(7), StatusCode::Good),
            Some(NodeType::U32),
        );
        assert_eq!(
            (r.value, r.quality, r.source_ts_ms),
            (Some(Value::UInt(7)), Quality::Good, Some(1_700_000_000_000))
        );
        // Stamped by the runtime's clock, whatever the device's says.
        assert!((r.ts_ms - now_ms()).abs() < 60_000);
        let r = reading(
            &dv(Variant::UInt32(7), StatusCode::UncertainLastUsableValue),
            None,
        );
        assert_eq!(
            (r.value, r.quality),
            (Some(Value::UInt(7)), Quality::Uncertain)
        );
        let r = reading(&dv(Variant::UInt32(7), StatusCode::BadSensorFailure), None);
        assert_eq!((r.value, r.quality), (None, Quality::Bad));
    }

    #[test]
    fn a_mistyped_counter_reads_bad() {
        let r = reading(
            &dv(Variant::Double(7.0), StatusCode::Good),
            Some(NodeType::U32),
        );
        assert_eq!(r.quality, Quality::Bad);
        assert!(r.problem.unwrap().contains("expected UInt32"));
        let r = reading(
            &dv(Variant::UInt16(7), StatusCode::Good),
            Some(NodeType::U32),
        );
        assert_eq!(r.quality, Quality::Bad);
    }

    #[test]
    fn scalar_types_map_onto_the_cells_values() {
        assert_eq!(value_of(&Variant::Int16(-3)), Ok(Value::Int(-3)));
        assert_eq!(
            value_of(&Variant::UInt64(u64::MAX)),
            Ok(Value::UInt(u64::MAX))
        );
        assert_eq!(value_of(&Variant::Float(0.5)), Ok(Value::Float(0.5)));
        assert_eq!(
            value_of(&Variant::String("ORD-1".into())),
            Ok(Value::Text(Text::new("ORD-1").unwrap()))
        );
        assert!(value_of(&Variant::String("x".repeat(65).into())).is_err());
        let t = DateTime::from(UNIX_EPOCH_TICKS + 5 * 10_000);
        assert_eq!(value_of(&Variant::DateTime(Box::new(t))), Ok(Value::Int(5)));
    }

    #[test]
    fn writes_fit_the_nodes_type_or_fail() {
        assert_eq!(
            variant_for(Value::UInt(500), NodeType::U16),
            Ok(Variant::UInt16(500))
        );
        assert!(variant_for(Value::UInt(70_000), NodeType::U16).is_err());
        assert!(variant_for(Value::Int(-1), NodeType::U32).is_err());
        assert_eq!(
            variant_for(Value::UInt(4711), NodeType::String),
            Ok(Variant::String("4711".into()))
        );
        assert_eq!(
            variant_for(Value::Float(2.5), NodeType::F64),
            Ok(Variant::Double(2.5))
        );
        assert!(variant_for(Value::Float(2.5), NodeType::I32).is_err());
        let order = Value::Text(Text::new("ORD-1").unwrap());
        assert_eq!(
            variant_for(order, NodeType::String),
            Ok(Variant::String("ORD-1".into()))
        );
        assert!(variant_for(order, NodeType::U32).is_err());
    }
}
