//! Requests: writes and method calls the runtime sends, waiting in their channels and answered
//! over the device's session (or refused while it has none).

use super::Attached;
use crate::opcua::convert::{builtin_of, value_of, variant_for};
use crate::opcua::resolve::node_id;
use crate::opcua::{parse_node_id, NodeType};
use crate::{DriverError, MethodCall, Value, WriteRequest};
use ::opcua::types::{
    AttributeId, BrowsePath, DataValue, NodeId, NumericRange, QualifiedName, ReadValueId,
    ReferenceTypeId, RelativePath, RelativePathElement, TimestampsToReturn, Variant, WriteValue,
};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Writes and method calls waiting for the driver; either channel may be closed by the runtime.
pub(super) struct Requests {
    writes: Option<mpsc::Receiver<WriteRequest>>,
    calls: Option<mpsc::Receiver<MethodCall>>,
}

pub(super) enum Request {
    Write(WriteRequest),
    Call(MethodCall),
}

impl Request {
    pub(super) fn refuse(self, why: &str) {
        match self {
            Request::Write(w) => {
                let _ = w.reply.send(Err(DriverError::transient(why)));
            }
            Request::Call(c) => {
                let _ = c.reply.send(Err(why.to_string()));
            }
        }
    }
}

async fn recv<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Requests {
    pub(super) fn new(
        writes: mpsc::Receiver<WriteRequest>,
        calls: mpsc::Receiver<MethodCall>,
    ) -> Self {
        Requests {
            writes: Some(writes),
            calls: Some(calls),
        }
    }

    /// The next request; pending forever once both channels are closed.
    pub(super) async fn next(&mut self) -> Request {
        loop {
            let (write, call) = tokio::select! {
                w = recv(&mut self.writes) => (Some(w), None),
                c = recv(&mut self.calls) => (None, Some(c)),
            };
            match (write, call) {
                (Some(Some(w)), _) => return Request::Write(w),
                (Some(None), _) => self.writes = None,
                (_, Some(Some(c))) => return Request::Call(c),
                (_, Some(None)) => self.calls = None,
                (None, None) => {}
            }
        }
    }
}

impl Attached<'_> {
    /// Makes the write or the call and replies with its result.
    pub(super) async fn answer(&mut self, req: Request) {
        match req {
            Request::Write(w) => {
                let result = self.write(&w).await;
                if let Err(e) = &result {
                    tracing::warn!(device = %self.dev.name, "write refused: {e}");
                }
                let _ = w.reply.send(result);
            }
            Request::Call(c) => {
                let result = self.call(&c).await;
                if let Err(e) = &result {
                    tracing::warn!(device = %self.dev.name, "method call failed: {e}");
                }
                let _ = c.reply.send(result);
            }
        }
    }

    /// A node the server does not have, or a value its type cannot take, is the config's to
    /// mend; no answer in time is transient; a Bad status is the server's refusal.
    async fn write(&mut self, w: &WriteRequest) -> Result<(), DriverError> {
        let i = self
            .dev
            .nodes
            .iter()
            .position(|n| n.id == w.tag)
            .ok_or_else(|| {
                DriverError::configuration(format!(
                    "tag {:?} is not a node of device {}",
                    w.tag, self.dev.name
                ))
            })?;
        let node = &self.dev.nodes[i];
        let id = self.ids[i].clone().ok_or_else(|| {
            DriverError::configuration(format!(
                "node {} is not available on the server",
                node.target
            ))
        })?;
        let t = match node.expect.or_else(|| self.write_types.get(&i).copied()) {
            Some(t) => t,
            None => {
                let t = self
                    .data_type(&id)
                    .await
                    .map_err(DriverError::configuration)?;
                self.write_types.insert(i, t);
                t
            }
        };
        let variant = variant_for(w.value, t).map_err(|e| {
            DriverError::configuration(format!("{} ({}): {e}", node.name, node.target))
        })?;
        let status = timeout(
            self.dev.timeout * 2,
            self.session().write(&[WriteValue {
                node_id: id,
                attribute_id: AttributeId::Value as u32,
                index_range: NumericRange::None,
                value: DataValue::value_only(variant),
            }]),
        )
        .await
        .map_err(|_| DriverError::transient(format!("write to {}: no answer", node.target)))?
        .map_err(|e| DriverError::transient(format!("write to {}: {e}", node.target)))?;
        match status.first() {
            Some(s) if s.is_good() => Ok(()),
            Some(s) => Err(DriverError::refused(format!(
                "the server refused the write to {}: {s}",
                node.target
            ))),
            None => Err(DriverError::refused(format!(
                "write to {}: no result",
                node.target
            ))),
        }
    }

    /// The built-in type of a variable, from its DataType attribute.
    async fn data_type(&self, id: &NodeId) -> Result<NodeType, String> {
        let r = self
            .session()
            .read(
                &[ReadValueId {
                    node_id: id.clone(),
                    attribute_id: AttributeId::DataType as u32,
                    ..Default::default()
                }],
                TimestampsToReturn::Neither,
                0.0,
            )
            .await
            .map_err(|e| format!("reading the data type of {id}: {e}"))?;
        match r.into_iter().next().and_then(|dv| dv.value) {
            Some(Variant::NodeId(t)) => builtin_of(&t).ok_or_else(|| {
                format!("node {id} has data type {t}, which the cell cannot write (only built-in scalar types)")
            }),
            other => Err(format!("node {id} has no readable data type ({other:?})")),
        }
    }

    async fn call(&self, c: &MethodCall) -> Result<Vec<Option<Value>>, String> {
        let resolve = |text: &str| parse_node_id(text).and_then(|a| node_id(&a, &self.namespaces));
        let object = resolve(&c.object)?;
        let method = resolve(&c.method)?;
        let types = self.input_types(&method).await?;
        if types.len() != c.args.len() {
            return Err(format!(
                "method {} takes {} arguments, {} given",
                c.method,
                types.len(),
                c.args.len()
            ));
        }
        let args = c
            .args
            .iter()
            .zip(&types)
            .enumerate()
            .map(|(k, (v, t))| variant_for(*v, *t).map_err(|e| format!("argument {}: {e}", k + 1)))
            .collect::<Result<Vec<_>, _>>()?;
        let result = timeout(
            self.dev.timeout * 2,
            self.session().call_one((object, method, Some(args))),
        )
        .await
        .map_err(|_| format!("call {}: no answer", c.method))?
        .map_err(|e| format!("call {}: {e}", c.method))?;
        if !result.status_code.is_good() {
            let per_arg: Vec<String> = result
                .input_argument_results
                .iter()
                .flatten()
                .map(|s| s.to_string())
                .collect();
            return Err(format!(
                "the server refused the call of {}: {}{}",
                c.method,
                result.status_code,
                if per_arg.is_empty() {
                    String::new()
                } else {
                    format!(" (arguments: {})", per_arg.join(", "))
                }
            ));
        }
        Ok(result
            .output_arguments
            .iter()
            .flatten()
            .map(|v| value_of(v).ok())
            .collect())
    }

    /// The built-in type of each input argument a method declares (none if it has no
    /// InputArguments property).
    async fn input_types(&self, method: &NodeId) -> Result<Vec<NodeType>, String> {
        let path = BrowsePath {
            starting_node: method.clone(),
            relative_path: RelativePath {
                elements: Some(vec![RelativePathElement {
                    reference_type_id: ReferenceTypeId::HasProperty.into(),
                    is_inverse: false,
                    include_subtypes: true,
                    target_name: QualifiedName::new(0, "InputArguments"),
                }]),
            },
        };
        let found = self
            .session()
            .translate_browse_paths_to_node_ids(&[path])
            .await
            .map_err(|e| format!("looking up the arguments of {method}: {e}"))?;
        let Some(prop) = found
            .first()
            .filter(|r| r.status_code.is_good())
            .and_then(|r| r.targets.as_deref())
            .and_then(|t| t.first())
            .map(|t| t.target_id.node_id.clone())
        else {
            return Ok(Vec::new());
        };
        let r = self
            .session()
            .read(&[ReadValueId::from(prop)], TimestampsToReturn::Neither, 0.0)
            .await
            .map_err(|e| format!("reading the arguments of {method}: {e}"))?;
        let Some(Variant::Array(a)) = r.into_iter().next().and_then(|dv| dv.value) else {
            return Ok(Vec::new());
        };
        a.values
            .iter()
            .map(|v| match v {
                Variant::ExtensionObject(o) => o
                    .inner_as::<::opcua::types::Argument>()
                    .and_then(|arg| builtin_of(&arg.data_type))
                    .ok_or_else(|| {
                        format!("method {method} takes an argument the cell cannot pass")
                    }),
                _ => Err(format!("method {method} declares its arguments oddly")),
            })
            .collect()
    }
}
