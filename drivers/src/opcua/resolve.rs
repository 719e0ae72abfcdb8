//! From the config's node references to the server's node ids, afresh at every connect: a
//! `nsu=` node follows its namespace wherever the server puts it; a browse path follows the
//! server's address space; an `ns=` index is checked against the namespace array seen first.

use super::{Namespace, NodeAddress, NodeTarget};
use ::opcua::client::Session;
use ::opcua::types::{
    BrowsePath, NodeId, ObjectId, QualifiedName, ReadValueId, ReferenceTypeId, RelativePath,
    RelativePathElement, TimestampsToReturn, VariableId, Variant,
};

/// When the server started (`ServerStatus/StartTime`), UTC ms: a server that restarts starts
/// again, so a change tells a restart the connection alone does not (one that happened while
/// the runtime itself was down).
pub(crate) async fn start_time(session: &Session) -> Result<i64, String> {
    let value = server_value(
        session,
        VariableId::Server_ServerStatus_StartTime,
        "start time",
    );
    match value.await? {
        Some(Variant::DateTime(t)) => super::convert::unix_ms(&t)
            .and_then(crate::plausible_ts)
            .ok_or_else(|| format!("the server's start time {t} is not a plausible date")),
        other => Err(format!("the server's start time is not a date: {other:?}")),
    }
}

/// One value of the server's own object, read once.
async fn server_value(
    session: &Session,
    id: VariableId,
    what: &str,
) -> Result<Option<Variant>, String> {
    let id: NodeId = id.into();
    let result = session
        .read(&[ReadValueId::from(id)], TimestampsToReturn::Neither, 0.0)
        .await
        .map_err(|e| format!("reading the server's {what}: {e}"))?;
    Ok(result.into_iter().next().and_then(|dv| dv.value))
}

pub(crate) async fn namespace_array(session: &Session) -> Result<Vec<String>, String> {
    let value = server_value(
        session,
        VariableId::Server_NamespaceArray,
        "namespace array",
    );
    match value.await? {
        Some(Variant::Array(a)) => Ok(a
            .values
            .iter()
            .map(|v| match v {
                Variant::String(s) => s.as_ref().to_string(),
                _ => String::new(),
            })
            .collect()),
        other => Err(format!(
            "the server's namespace array is not a list of URIs: {other:?}"
        )),
    }
}

/// A node id with its namespace looked up.
pub(crate) fn node_id(addr: &NodeAddress, namespaces: &[String]) -> Result<NodeId, String> {
    let index = match &addr.namespace {
        Namespace::Index(i) => *i,
        Namespace::Uri(uri) => namespaces
            .iter()
            .position(|n| n == uri)
            .map(|i| i as u16)
            .ok_or_else(|| {
                format!(
                    "namespace {uri:?} is not in the server's namespace array ({})",
                    namespaces.join(", ")
                )
            })?,
    };
    <NodeId as std::str::FromStr>::from_str(&addr.with_index(index))
        .map_err(|e| format!("node id {addr}: {e}"))
}

/// Which `ns=` indexes now name another namespace than at the first connect. Nodes given by
/// index in those namespaces would silently read something else, so they are refused.
pub(crate) fn moved_namespaces(first: &[String], now: &[String]) -> Vec<(u16, String, String)> {
    first
        .iter()
        .enumerate()
        .filter_map(|(i, uri)| {
            let current = now.get(i).cloned().unwrap_or_default();
            (current != *uri).then(|| (i as u16, uri.clone(), current))
        })
        .collect()
}

/// Browse paths translated per call: async-opcua's server takes at most 100
/// (MaxNodesPerTranslateBrowsePathsToNodeIds), as do other small servers.
const PATHS_PER_CALL: usize = 100;

/// Node ids for all targets; each entry fails alone, so one bad node leaves the others alive.
pub(crate) async fn resolve_all(
    session: &Session,
    targets: &[&NodeTarget],
    namespaces: &[String],
    moved: &[(u16, String, String)],
) -> Vec<Result<NodeId, String>> {
    let mut out: Vec<Result<NodeId, String>> = targets
        .iter()
        .map(|t| match t {
            NodeTarget::Id(a) => {
                if let (Namespace::Index(i), Some((_, was, is))) = (
                    &a.namespace,
                    moved.iter().find(|m| Namespace::Index(m.0) == a.namespace),
                ) {
                    return Err(format!(
                        "the server's namespace {i} was {was:?} and is now {is:?}: node {a} may \
                         now be another node; write it as nsu={was};{} (or fix the server)",
                        a.identifier
                    ));
                }
                node_id(a, namespaces)
            }
            NodeTarget::Path(_) => Err(String::new()),
        })
        .collect();
    let paths: Vec<(usize, BrowsePath)> = targets
        .iter()
        .enumerate()
        .filter_map(|(i, t)| match t {
            NodeTarget::Path(steps) => Some((
                i,
                BrowsePath {
                    starting_node: ObjectId::ObjectsFolder.into(),
                    relative_path: RelativePath {
                        elements: Some(
                            steps
                                .iter()
                                .map(|s| RelativePathElement {
                                    reference_type_id: ReferenceTypeId::HierarchicalReferences
                                        .into(),
                                    is_inverse: false,
                                    include_subtypes: true,
                                    target_name: QualifiedName::new(s.namespace, s.name.as_str()),
                                })
                                .collect(),
                        ),
                    },
                },
            )),
            NodeTarget::Id(_) => None,
        })
        .collect();
    for chunk in paths.chunks(PATHS_PER_CALL) {
        let request: Vec<BrowsePath> = chunk.iter().map(|(_, p)| p.clone()).collect();
        match session.translate_browse_paths_to_node_ids(&request).await {
            Ok(results) => {
                for ((i, _), r) in chunk
                    .iter()
                    .zip(results.iter().map(Some).chain(std::iter::repeat(None)))
                {
                    out[*i] = match r {
                        Some(r) if r.status_code.is_good() => r
                            .targets
                            .as_deref()
                            .and_then(|t| t.first())
                            .map(|t| t.target_id.node_id.clone())
                            .ok_or_else(|| format!("browse path {} leads nowhere", targets[*i])),
                        Some(r) => Err(format!(
                            "browse path {} not found on the server ({})",
                            targets[*i], r.status_code
                        )),
                        None => Err(format!("browse path {}: no answer", targets[*i])),
                    };
                }
            }
            Err(e) => {
                for (i, _) in chunk {
                    out[*i] = Err(format!("browse path {}: {e}", targets[*i]));
                }
            }
        }
    }
    out
}
