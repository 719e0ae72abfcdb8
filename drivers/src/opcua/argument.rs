//! A bound on one decoder of async-opcua 0.19 that a server can make allocate without limit.
//!
//! Its `Argument` decoder pads the array dimensions up to the value rank read off the wire
//! (`Vec::resize(value_rank)`, argument.rs): an Argument with a value rank near 2^31, inside any
//! value or a response header's extension object, makes the client allocate gigabytes, and the
//! process aborts (or meets its unit's MemoryMax) and starts again into the same value. Found by
//! fuzz/opcua_value (60 bytes asking for 5.8 GB); fixed upstream by FreeOpcUa/async-opcua#254,
//! not in a release we can take yet. This type loader comes before the generated one and
//! decodes Argument (ns=0;i=298, or its data type's id i=296) as upstream does, refusing a
//! value rank above 32 dimensions; the two structures whose decoders
//! decode Arguments inside them directly (program diagnostics) it refuses whole. Remove it with
//! the release that carries the fix.

use ::opcua::types::{
    Argument, BinaryDecodable, Context, ContextOwned, DataTypeId, DynEncodable, EncodingResult,
    Error, LocalizedText, NodeId, ObjectId, TypeLoader, TypeLoaderCollection, TypeLoaderPriority,
    UAString,
};
use std::cmp::Ordering;
use std::io::Read;
use std::sync::Arc;

/// Puts [`BoundedArgument`] before every loader `ctx` has. Adding it would not do: the generated
/// loader has the highest priority there is, and a loader of equal priority goes after it.
pub(crate) fn bound(ctx: &mut ContextOwned) {
    let before: Vec<Arc<dyn TypeLoader>> = ctx.loaders_mut().iter().cloned().collect();
    let mut loaders = TypeLoaderCollection::new_empty();
    loaders.add(Arc::new(BoundedArgument));
    for loader in before {
        loaders.add(loader);
    }
    *ctx.loaders_mut() = loaders;
}

/// A decoding context with the loaders a session of the driver has (for the fuzz targets).
pub(crate) fn bounded_context() -> ContextOwned {
    let mut ctx = ContextOwned::default();
    bound(&mut ctx);
    ctx
}

/// Decodes Argument with its value rank bounded and refuses the structures holding Arguments;
/// every other type is left to the loaders after it.
pub(crate) struct BoundedArgument;

/// Argument, by its encoding's id and by its data type's (the generated loader takes both).
const ARGUMENT: [u32; 2] = [
    ObjectId::Argument_Encoding_DefaultBinary as u32,
    DataTypeId::Argument as u32,
];

/// The only structures that hold Arguments, which their generated decoders decode directly,
/// past any loader: refused whole, a well-formed one too (upstream's fix errs only on the
/// oversized ones). mes-edge maps no structure onto a tag, so it loses nothing it could use.
const HOLDING_ARGUMENTS: [u32; 4] = [
    ObjectId::ProgramDiagnosticDataType_Encoding_DefaultBinary as u32,
    DataTypeId::ProgramDiagnosticDataType as u32,
    ObjectId::ProgramDiagnostic2DataType_Encoding_DefaultBinary as u32,
    DataTypeId::ProgramDiagnostic2DataType as u32,
];

impl TypeLoader for BoundedArgument {
    fn load_from_binary(
        &self,
        node_id: &NodeId,
        stream: &mut dyn Read,
        ctx: &Context<'_>,
        _length: Option<usize>,
    ) -> Option<EncodingResult<Box<dyn DynEncodable>>> {
        let is = |ids: &[u32]| ids.iter().any(|id| *node_id == (0u16, *id));
        if is(&ARGUMENT) {
            Some(decode(stream, ctx).map(|a| Box::new(a) as Box<dyn DynEncodable>))
        } else if is(&HOLDING_ARGUMENTS) {
            Some(Err(Error::decoding(format!(
                "a program diagnostic structure ({node_id}) is not decoded: its Arguments' value \
                 ranks would go unbounded (async-opcua 0.19), and mes-edge maps no structure"
            ))))
        } else {
            None
        }
    }

    fn priority(&self) -> TypeLoaderPriority {
        TypeLoaderPriority::Core
    }
}

/// The most dimensions an Argument may claim. Not the connection's max array length (100,000):
/// a 4 MB message holds about 200,000 Arguments of 20 bytes each, and padding every one to
/// 100,000 dimensions would still ask for tens of gigabytes. With 32 the padding is at most
/// 128 bytes an Argument, of the order of the Argument itself; real arguments have a few.
const MAX_RANK: usize = 32;

fn decode(stream: &mut dyn Read, ctx: &Context<'_>) -> EncodingResult<Argument> {
    let name = UAString::decode(stream, ctx)?;
    let data_type = NodeId::decode(stream, ctx)?;
    let value_rank = i32::decode(stream, ctx)?;
    let mut array_dimensions: Option<Vec<u32>> = BinaryDecodable::decode(stream, ctx)?;
    if value_rank > 0 {
        let rank = value_rank as usize;
        if rank > MAX_RANK {
            return Err(Error::decoding(format!(
                "an Argument's value rank {rank} is more than the {MAX_RANK} dimensions mes-edge takes"
            )));
        }
        if let Some(dims) = array_dimensions.as_mut() {
            match dims.len().cmp(&rank) {
                // Fewer dimensions than the rank: each missing one is "unknown" (0), as upstream.
                Ordering::Less => dims.resize(rank, 0),
                Ordering::Equal => {}
                Ordering::Greater => {
                    return Err(Error::decoding(format!(
                        "an Argument has {} array dimensions for value rank {rank}",
                        dims.len()
                    )))
                }
            }
        }
    }
    let description = LocalizedText::decode(stream, ctx)?;
    Ok(Argument {
        name,
        data_type,
        value_rank,
        array_dimensions,
        description,
    })
}

#[cfg(test)]
mod tests {
    use super::bounded_context as context;
    use ::opcua::types::{Argument, BinaryDecodable, DataValue, NodeId, Variant};

    fn decode(bytes: &[u8]) -> Result<DataValue, ::opcua::types::Error> {
        let ctx = context();
        DataValue::decode(&mut std::io::Cursor::new(bytes), &ctx.context())
    }

    /// The inputs fuzz/opcua_value found (without their first byte, the target's type
    /// selector): a DataValue holding an Argument, by its encoding's id and by its data type's,
    /// and one holding a ProgramDiagnostic2DataType with an Argument inside, each with a value
    /// rank asking for gigabytes of dimensions.
    #[test]
    fn a_value_rank_beyond_the_array_limit_is_a_decoding_error_not_an_allocation() {
        for name in [
            "argument-value-rank-5.8-gb",
            "argument-by-data-type-2.5-gb",
            "argument-in-program-diagnostic-3.2-gb",
        ] {
            let bytes = std::fs::read(format!(
                "{}/../fuzz/corpus/opcua_value/{name}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap();
            assert!(decode(&bytes[1..]).is_err(), "{name}");
        }
    }

    /// A DataValue holding an Argument as servers send it for a method's arguments: value rank
    /// `rank`, no dimensions given (each then unknown, 0), hand-encoded as OPC UA binary.
    fn argument_value(rank: i32) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend(6i32.to_le_bytes());
        body.extend(b"Groups");
        body.extend([0x00, 17]); // DataType: NodeId i=17, two-byte form
        body.extend(rank.to_le_bytes()); // ValueRank
        body.extend(0i32.to_le_bytes()); // ArrayDimensions: none
        body.push(0x00); // Description: empty LocalizedText
        let mut bytes = vec![0x01, 0x16, 0x01, 0x00, 0x2a, 0x01, 0x01]; // value, ExtensionObject i=298
        bytes.extend((body.len() as i32).to_le_bytes());
        bytes.extend(body);
        bytes
    }

    #[test]
    fn an_argument_of_ordinary_rank_decodes_with_its_dimensions_padded() {
        let back = decode(&argument_value(2)).unwrap();
        let Some(Variant::ExtensionObject(obj)) = back.value else {
            panic!("an extension object: {back:?}")
        };
        let got = obj.inner_as::<Argument>().expect("an Argument");
        assert_eq!(got.array_dimensions, Some(vec![0, 0]));
        assert_eq!((got.name.as_ref(), got.value_rank), ("Groups", 2));
        assert_eq!(got.data_type, NodeId::new(0, 17u32));
    }

    /// A rank within the connection's array limit but above 32 is refused too: a message full of
    /// small Arguments, each padded to 100,000 dimensions, would ask for gigabytes.
    #[test]
    fn a_rank_above_32_is_refused_and_32_is_taken() {
        assert!(decode(&argument_value(32)).is_ok());
        assert!(decode(&argument_value(33)).is_err());
        assert!(decode(&argument_value(100_000)).is_err());
    }
}
