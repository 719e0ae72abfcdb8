//! A DCMD metric's value read by its Sparkplug datatype, and held against the type the tag was
//! born with: a host writes a tag in the type its DBIRTH declared, or not at all. The value
//! goes to the engine as JSON faithful to that type (negative numbers negative, booleans
//! booleans); the engine checks it against the tag's range and limits.

use super::proto::payload::{metric::Value as Wire, Metric};
use super::proto::DataType;
use serde_json::{json, Value as Json};

/// The value of `m` for a tag born as `born`, or why it is refused.
pub fn command_value(m: &Metric, born: DataType) -> Result<Json, String> {
    if m.is_null == Some(true) {
        return Err("a null value cannot be written".into());
    }
    // A host may leave the datatype out of a command (the birth told it); if it says one, it
    // must be the born one: a Boolean is not a u16, an Int32 is not a UInt32.
    if let Some(sent) = m.datatype {
        if sent != born as u32 {
            return Err(format!(
                "datatype {}, the tag is born {}",
                type_name(sent),
                born.as_str_name()
            ));
        }
    }
    let Some(v) = m.value.as_ref() else {
        return Err("no value".into());
    };
    let wrong_field = || {
        Err(format!(
            "the value is not in the field Sparkplug B gives a {}",
            born.as_str_name()
        ))
    };
    let out_of_range = |shown: String| {
        Err(format!(
            "{shown} is out of range for a {}",
            born.as_str_name()
        ))
    };
    Ok(match (born, v) {
        (DataType::Int8, Wire::IntValue(u)) => {
            signed(*u, 8).map_or_else(|| out_of_range(u.to_string()), |i| Ok(json!(i)))?
        }
        (DataType::Int16, Wire::IntValue(u)) => {
            signed(*u, 16).map_or_else(|| out_of_range(u.to_string()), |i| Ok(json!(i)))?
        }
        (DataType::Int32, Wire::IntValue(u)) => json!(*u as i32),
        (DataType::Int64, Wire::LongValue(u)) => json!(*u as i64),
        (DataType::UInt8, Wire::IntValue(u)) if *u > u8::MAX as u32 => {
            return out_of_range(u.to_string())
        }
        (DataType::UInt16, Wire::IntValue(u)) if *u > u16::MAX as u32 => {
            return out_of_range(u.to_string())
        }
        (DataType::UInt8 | DataType::UInt16 | DataType::UInt32, Wire::IntValue(u)) => json!(u),
        // Some hosts put a UInt32 in long_value (Sparkplug 2.2 did): the number is the same.
        (DataType::UInt32, Wire::LongValue(u)) if *u <= u32::MAX as u64 => json!(u),
        (DataType::UInt64, Wire::LongValue(u)) => json!(u),
        (DataType::Float, Wire::FloatValue(f)) if f.is_finite() => json!(f),
        (DataType::Double, Wire::DoubleValue(f)) if f.is_finite() => json!(f),
        (DataType::Float | DataType::Double, Wire::FloatValue(_) | Wire::DoubleValue(_)) => {
            return Err("not a finite number".into())
        }
        (DataType::Boolean, Wire::BooleanValue(b)) => json!(b),
        (DataType::String | DataType::Text, Wire::StringValue(s)) => json!(s),
        (
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float
            | DataType::Double
            | DataType::Boolean
            | DataType::String
            | DataType::Text,
            _,
        ) => return wrong_field(),
        _ => return Err(format!("a {} tag cannot be written", born.as_str_name())),
    })
}

/// An Int8 or Int16 from `int_value`. Hosts disagree on the encoding: pysparkplug (and
/// Sparkplug 3.0's wording) send the N-bit two's complement (Int16 −5 as 65531), Eclipse Tahu
/// sends it sign-extended to 32 bits (4294967291); both are taken, anything else is out of
/// range.
fn signed(u: u32, bits: u32) -> Option<i64> {
    let (min, max) = (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1);
    let extended = u as i32 as i64;
    if (min..=max).contains(&extended) {
        return Some(extended);
    }
    if (u as u64) < (1u64 << bits) {
        let v = u as i64;
        return Some(if v > max { v - (1i64 << bits) } else { v });
    }
    None
}

fn type_name(code: u32) -> String {
    DataType::try_from(code as i32)
        .map(|t| t.as_str_name().to_string())
        .unwrap_or_else(|_| format!("#{code}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(datatype: Option<DataType>, v: Wire) -> Metric {
        Metric {
            name: Some("t".into()),
            datatype: datatype.map(|d| d as u32),
            value: Some(v),
            ..Default::default()
        }
    }

    #[test]
    fn signed_integers_are_sign_extended_in_either_encoding() {
        let cases = [
            (DataType::Int16, Wire::IntValue(65531), json!(-5)),
            (DataType::Int16, Wire::IntValue(-5i32 as u32), json!(-5)),
            (DataType::Int16, Wire::IntValue(32767), json!(32767)),
            (DataType::Int16, Wire::IntValue(32768), json!(-32768)),
            (DataType::Int8, Wire::IntValue(251), json!(-5)),
            (DataType::Int8, Wire::IntValue(-128i32 as u32), json!(-128)),
            (DataType::Int32, Wire::IntValue(u32::MAX), json!(-1)),
            (DataType::Int64, Wire::LongValue(-7i64 as u64), json!(-7)),
            (
                DataType::UInt32,
                Wire::IntValue(u32::MAX),
                json!(4294967295u32),
            ),
            (
                DataType::UInt64,
                Wire::LongValue(1 << 40),
                json!(1u64 << 40),
            ),
            (DataType::UInt16, Wire::IntValue(5), json!(5)),
            (DataType::Boolean, Wire::BooleanValue(true), json!(true)),
            (DataType::Double, Wire::DoubleValue(-2.5), json!(-2.5)),
        ];
        for (t, v, want) in cases {
            assert_eq!(
                command_value(&m(Some(t), v.clone()), t),
                Ok(want.clone()),
                "{t:?} {v:?}"
            );
            // Without a datatype, the born one reads the field.
            assert_eq!(
                command_value(&m(None, v.clone()), t),
                Ok(want),
                "{t:?} {v:?}"
            );
        }
    }

    #[test]
    fn another_datatype_than_the_birth_is_refused() {
        let refused = [
            (DataType::Int32, Wire::IntValue(u32::MAX), DataType::UInt32),
            (
                DataType::Boolean,
                Wire::BooleanValue(true),
                DataType::UInt16,
            ),
            (DataType::Int16, Wire::IntValue(65531), DataType::UInt16),
            (DataType::Double, Wire::DoubleValue(1.0), DataType::Float),
        ];
        for (sent, v, born) in refused {
            let why = command_value(&m(Some(sent), v), born).unwrap_err();
            assert!(why.contains("the tag is born"), "{why}");
        }
    }

    #[test]
    fn values_outside_their_type_or_field_are_refused() {
        let refused = [
            (DataType::Int16, Wire::IntValue(70_000)),
            (DataType::Int8, Wire::IntValue(300)),
            (DataType::UInt16, Wire::IntValue(65_536)),
            (DataType::UInt16, Wire::LongValue(5)),
            (DataType::Boolean, Wire::IntValue(1)),
            (DataType::Double, Wire::DoubleValue(f64::NAN)),
            (DataType::DateTime, Wire::LongValue(5)),
        ];
        for (t, v) in refused {
            assert!(
                command_value(&m(None, v.clone()), t).is_err(),
                "{t:?} {v:?}"
            );
        }
        let null = Metric {
            is_null: Some(true),
            ..m(Some(DataType::UInt16), Wire::IntValue(0))
        };
        assert!(command_value(&null, DataType::UInt16).is_err());
    }
}
