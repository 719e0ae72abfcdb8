//! The door the fuzz targets (fuzz/) go through: what an OPC UA server sends, as OPC UA binary,
//! mapped onto the cell's values the way the driver maps it. Not an API; hidden from the docs.

use super::argument::bounded_context;
use super::{convert, NodeType};
use crate::{Quality, Value};
use ::opcua::types::{BinaryDecodable, DataValue, NodeId};

/// What the driver makes of one reading.
#[derive(Debug)]
pub struct Mapped {
    pub value: Option<Value>,
    pub quality: Quality,
    pub problem: Option<String>,
}

/// Decodes a DataValue from OPC UA binary as a session of the driver does (None if it does not
/// decode) and maps it as a node of type `expect` (or of the type the value says) is mapped; a
/// good value also goes the write-back way, into the node's type and out again.
pub fn map_data_value(bytes: &[u8], expect: Option<NodeType>) -> Option<Mapped> {
    let ctx = bounded_context();
    let dv = DataValue::decode(&mut std::io::Cursor::new(bytes), &ctx.context()).ok()?;
    let r = convert::reading(&dv, expect);
    if let (Some(v), Some(t)) = (r.value, expect) {
        if let Ok(variant) = convert::variant_for(v, t) {
            let _ = convert::value_of(&variant);
        }
    }
    Some(Mapped {
        value: r.value,
        quality: r.quality,
        problem: r.problem,
    })
}

/// The node type a DataType attribute (a NodeId in OPC UA binary) names, if the cell knows it.
pub fn node_type_of(bytes: &[u8]) -> Option<NodeType> {
    let ctx = bounded_context();
    let id = NodeId::decode(&mut std::io::Cursor::new(bytes), &ctx.context()).ok()?;
    convert::builtin_of(&id)
}
