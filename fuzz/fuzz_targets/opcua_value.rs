//! A DataValue as an OPC UA server sends it (binary encoding), mapped onto the cell's values as
//! every node type expects it, and a DataType attribute mapped onto a node type.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mes_edge_drivers::opcua::fuzzing::{map_data_value, node_type_of};
use mes_edge_drivers::opcua::NodeType;

const TYPES: [Option<NodeType>; 14] = [
    None,
    Some(NodeType::Bool),
    Some(NodeType::I8),
    Some(NodeType::U8),
    Some(NodeType::I16),
    Some(NodeType::U16),
    Some(NodeType::I32),
    Some(NodeType::U32),
    Some(NodeType::I64),
    Some(NodeType::U64),
    Some(NodeType::F32),
    Some(NodeType::F64),
    Some(NodeType::String),
    Some(NodeType::DateTime),
];

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else { return };
    let expect = TYPES[which as usize % TYPES.len()];
    if let Some(m) = map_data_value(bytes, expect) {
        // A bad reading carries no value and says why.
        if m.value.is_none() {
            assert!(m.problem.is_some() || m.quality != mes_edge_drivers::Quality::Good);
        }
    }
    let _ = node_type_of(bytes);
});
