//! What `mes-edge opcua endpoints|browse|read|trust` does, against a server, with the same
//! connection code (endpoint choice, trust check, identity) as the running driver.

use super::client::{
    build_client, connect, endpoint_security, endpoints as get_endpoints, server_certificate,
    ClientSettings, Live,
};
use super::convert::{builtin_of, reading, type_name, unix_ms};
use super::resolve::{namespace_array, node_id};
use super::{parse_node_id, Connection, SecurityPolicy};
use crate::Value;
use ::opcua::types::{
    AttributeId, BrowseDescription, BrowseDirection, BrowseResultMask, NodeClass, NodeId,
    ReadValueId, ReferenceDescription, ReferenceTypeId, TimestampsToReturn, Variant,
};
use std::path::PathBuf;

/// One endpoint a server offers.
#[derive(Debug, Clone)]
pub struct EndpointInfo {
    pub url: String,
    /// `Basic256Sha256/SignAndEncrypt`
    pub security: String,
    pub security_level: u8,
    /// Anonymous, UserName, Certificate, IssuedToken.
    pub user_tokens: Vec<String>,
    /// SHA-1 of the server certificate, if the endpoint carries one.
    pub thumbprint: Option<String>,
}

pub async fn endpoints(conn: &Connection, s: &ClientSettings) -> Result<Vec<EndpointInfo>, String> {
    let client = build_client(conn, s).await.map_err(|e| e.to_string())?;
    let list = get_endpoints(&client, &conn.endpoint, s)
        .await
        .map_err(|e| e.to_string())?;
    Ok(list
        .iter()
        .map(|e| EndpointInfo {
            url: e.endpoint_url.as_ref().to_string(),
            security: endpoint_security(e),
            security_level: e.security_level,
            user_tokens: e
                .user_identity_tokens
                .iter()
                .flatten()
                .map(|t| format!("{:?}", t.token_type))
                .collect(),
            thumbprint: server_certificate(e)
                .ok()
                .map(|(c, _)| c.thumbprint().as_hex_string()),
        })
        .collect())
}

/// A server certificate written into trusted/.
#[derive(Debug, Clone)]
pub struct Trusted {
    pub path: PathBuf,
    pub subject: String,
    pub thumbprint: String,
    pub valid_until: String,
}

/// Fetches the certificate the server presents on its endpoints (unauthenticated, as any client
/// first sees it) and writes it into trusted/. With `thumbprint`, refuses a certificate whose
/// SHA-1 thumbprint differs: the check against what the server's owner reads off the machine.
pub async fn trust(
    conn: &Connection,
    s: &ClientSettings,
    thumbprint: Option<&str>,
) -> Result<Trusted, String> {
    let client = build_client(conn, s).await.map_err(|e| e.to_string())?;
    let list = get_endpoints(&client, &conn.endpoint, s)
        .await
        .map_err(|e| e.to_string())?;
    let endpoint = list
        .iter()
        .filter(|e| !e.server_certificate.is_null())
        .find(|e| {
            conn.policy == SecurityPolicy::None
                || endpoint_security(e).starts_with(&format!("{}/", conn.policy.name()))
        })
        .or_else(|| list.iter().find(|e| !e.server_certificate.is_null()))
        .ok_or_else(|| format!("{} presents no certificate on any endpoint", conn.endpoint))?;
    let (cert, name) = server_certificate(endpoint).map_err(|e| e.to_string())?;
    let got = cert.thumbprint().as_hex_string();
    if let Some(want) = thumbprint {
        let norm = |t: &str| t.replace([':', ' '], "").to_ascii_lowercase();
        if norm(want) != norm(&got) {
            return Err(format!(
                "the server presents a certificate with thumbprint {got}, not {want}: nothing trusted"
            ));
        }
    }
    let store = client.certificate_store().read();
    let path = store.trusted_certs_dir().join(&name);
    let der = cert
        .to_der()
        .map_err(|e| format!("the server's certificate: {e}"))?;
    std::fs::write(&path, der).map_err(|e| format!("writing {}: {e}", path.display()))?;
    let _ = std::fs::remove_file(store.rejected_certs_dir().join(&name));
    Ok(Trusted {
        path,
        subject: cert.subject_name(),
        thumbprint: got,
        valid_until: cert
            .not_after()
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|_| "?".into()),
    })
}

/// One child of a browsed node.
#[derive(Debug, Clone)]
pub struct Child {
    /// In the config's form: `nsu=URI;s=...` outside namespace 0, so it survives renumbering.
    pub node_id: String,
    /// `2:GoodCount`
    pub browse_name: String,
    pub node_class: String,
    /// For variables: the data type (built-in name or node id).
    pub data_type: Option<String>,
}

/// A node id written the way a config should hold it.
fn config_form(id: &NodeId, namespaces: &[String]) -> String {
    let ident = id.identifier.to_string();
    match namespaces.get(id.namespace as usize) {
        Some(uri) if id.namespace != 0 && !uri.is_empty() => format!(
            "nsu={};{ident}",
            uri.replace('%', "%25").replace(';', "%3b")
        ),
        _ => id.to_string(),
    }
}

fn data_type_name(t: &NodeId, namespaces: &[String]) -> String {
    match builtin_of(t) {
        Some(b) => format!("{} ({})", b.ua_name(), b.name()),
        None => config_form(t, namespaces),
    }
}

async fn session_and_node(
    conn: &Connection,
    s: &ClientSettings,
    node: &str,
) -> Result<(Live, Vec<String>, NodeId), String> {
    let addr = parse_node_id(node)?;
    let live = connect(conn, s).await.map_err(|e| e.to_string())?;
    let namespaces = namespace_array(&live.session).await?;
    let id = node_id(&addr, &namespaces)?;
    Ok((live, namespaces, id))
}

pub async fn browse(
    conn: &Connection,
    s: &ClientSettings,
    node: &str,
) -> Result<Vec<Child>, String> {
    let (live, namespaces, id) = session_and_node(conn, s, node).await?;
    let result = browse_children(&live, &namespaces, id).await;
    live.close().await;
    result
}

async fn browse_children(
    live: &Live,
    namespaces: &[String],
    id: NodeId,
) -> Result<Vec<Child>, String> {
    let session = &live.session;
    let desc = BrowseDescription {
        node_id: id.clone(),
        browse_direction: BrowseDirection::Forward,
        reference_type_id: ReferenceTypeId::HierarchicalReferences.into(),
        include_subtypes: true,
        node_class_mask: 0,
        result_mask: BrowseResultMask::All as u32,
    };
    let mut refs: Vec<ReferenceDescription> = Vec::new();
    let mut results = session
        .browse(&[desc], 1000, None)
        .await
        .map_err(|e| format!("browse {id}: {e}"))?;
    while let Some(r) = results.into_iter().next() {
        if !r.status_code.is_good() {
            return Err(format!("browse {id}: {}", r.status_code));
        }
        refs.extend(r.references.into_iter().flatten());
        if r.continuation_point.is_null() {
            break;
        }
        results = session
            .browse_next(false, std::slice::from_ref(&r.continuation_point))
            .await
            .map_err(|e| format!("browse {id}: {e}"))?;
    }
    let variables: Vec<usize> = (0..refs.len())
        .filter(|&i| refs[i].node_class == NodeClass::Variable)
        .collect();
    let reads: Vec<ReadValueId> = variables
        .iter()
        .map(|&i| ReadValueId {
            node_id: refs[i].node_id.node_id.clone(),
            attribute_id: AttributeId::DataType as u32,
            ..Default::default()
        })
        .collect();
    let types = if reads.is_empty() {
        Vec::new()
    } else {
        session
            .read(&reads, TimestampsToReturn::Neither, 0.0)
            .await
            .map_err(|e| format!("reading data types: {e}"))?
    };
    let mut data_types: Vec<Option<String>> = vec![None; refs.len()];
    for (&i, dv) in variables.iter().zip(types.iter()) {
        if let Some(Variant::NodeId(t)) = &dv.value {
            data_types[i] = Some(data_type_name(t, namespaces));
        }
    }
    Ok(refs
        .iter()
        .zip(data_types)
        .map(|(r, data_type)| Child {
            node_id: config_form(&r.node_id.node_id, namespaces),
            browse_name: format!("{}:{}", r.browse_name.namespace_index, r.browse_name.name),
            node_class: format!("{:?}", r.node_class),
            data_type,
        })
        .collect())
}

/// One value read, with everything the commissioning engineer needs to write the node's config.
#[derive(Debug, Clone)]
pub struct ReadOut {
    pub node_id: String,
    pub data_type: Option<String>,
    /// The value as the cell sees it (None: bad, or not a value the cell can hold).
    pub value: Option<Value>,
    /// The value as the server sent it.
    pub raw: String,
    pub status: String,
    pub quality: crate::Quality,
    /// The PLC's timestamp of the value, UTC ms.
    pub source_ts_ms: Option<i64>,
    pub problem: Option<String>,
}

pub async fn read(conn: &Connection, s: &ClientSettings, node: &str) -> Result<ReadOut, String> {
    let (live, namespaces, id) = session_and_node(conn, s, node).await?;
    let reads = [
        ReadValueId::from(id.clone()),
        ReadValueId {
            node_id: id.clone(),
            attribute_id: AttributeId::DataType as u32,
            ..Default::default()
        },
    ];
    let result = live
        .session
        .read(&reads, TimestampsToReturn::Both, 0.0)
        .await
        .map_err(|e| format!("read {node}: {e}"));
    live.close().await;
    let values = result?;
    let (Some(value), data_type) = (values.first(), values.get(1)) else {
        return Err(format!("read {node}: no result"));
    };
    let r = reading(value, None);
    let data_type = match data_type.and_then(|d| d.value.as_ref()) {
        Some(Variant::NodeId(t)) => Some(data_type_name(t, &namespaces)),
        _ => None,
    };
    let raw = match &value.value {
        Some(v) => format!("{} ({})", variant_text(v), type_name(v)),
        None => "(no value)".into(),
    };
    Ok(ReadOut {
        node_id: config_form(&id, &namespaces),
        data_type,
        value: r.value,
        raw,
        status: value.status.unwrap_or_default().to_string(),
        quality: r.quality,
        source_ts_ms: value.source_timestamp.as_ref().and_then(unix_ms),
        problem: r.problem,
    })
}

fn variant_text(v: &Variant) -> String {
    match v {
        Variant::String(s) => format!("{:?}", s.as_ref()),
        Variant::DateTime(t) => t.as_chrono().to_rfc3339(),
        Variant::ByteString(b) => format!("{} bytes", b.value.as_ref().map_or(0, |v| v.len())),
        other => {
            let s = format!("{other:?}");
            // `UInt32(7)` → `7`
            match (s.find('('), s.ends_with(')')) {
                (Some(i), true) => s[i + 1..s.len() - 1].to_string(),
                _ => s,
            }
        }
    }
}
