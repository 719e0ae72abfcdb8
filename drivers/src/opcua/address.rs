//! Node ids and browse paths as written in a cell config. Parsed without the OPC UA client so
//! that `mes-edge check` catches a typo in any build, and resolved against the server's
//! namespace array at every connect (a server may renumber its namespaces when it restarts).

use std::fmt;

/// Where a node's namespace comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// `ns=3`: fixed index; breaks if the server renumbers its namespaces.
    Index(u16),
    /// `nsu=urn:...`: looked up in the server's namespace array at every connect.
    Uri(String),
}

/// A node id from the config: `i=2258`, `ns=2;i=1042`, `ns=3;s=Line1.Press.Count`,
/// `nsu=urn:acme:press;s=Count`, also `g=` (GUID) and `b=` (base64 opaque) identifiers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeAddress {
    pub namespace: Namespace,
    /// The identifier part as written, e.g. `s=Line1.Press.Count`; validated by [`parse_node_id`].
    pub identifier: String,
}

impl NodeAddress {
    /// The node id text with a namespace index in place of a URI.
    pub fn with_index(&self, index: u16) -> String {
        format!("ns={index};{}", self.identifier)
    }
}

impl fmt::Display for NodeAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Namespace::Index(0) => write!(f, "{}", self.identifier),
            Namespace::Index(i) => write!(f, "ns={i};{}", self.identifier),
            Namespace::Uri(u) => write!(
                f,
                "nsu={};{}",
                u.replace('%', "%25").replace(';', "%3b"),
                self.identifier
            ),
        }
    }
}

const FORMS: &str =
    "a node id like `ns=2;i=1042`, `ns=3;s=Line1.Press.Count` or `nsu=urn:vendor:plc;s=Count`";

/// Parses a node id; the error says what was expected.
pub fn parse_node_id(text: &str) -> Result<NodeAddress, String> {
    let fail = |why: &str| Err(format!("expected {FORMS}; {why} in {text:?}"));
    let t = text.trim();
    if t.is_empty() {
        return fail("it is empty");
    }
    let (namespace, ident) = if let Some(rest) = t.strip_prefix("nsu=") {
        let Some((uri, ident)) = rest.split_once(';') else {
            return fail("`nsu=URI` must be followed by `;` and an identifier");
        };
        if uri.is_empty() {
            return fail("the namespace URI is empty");
        }
        let uri = uri
            .replace("%3b", ";")
            .replace("%3B", ";")
            .replace("%25", "%");
        (Namespace::Uri(uri), ident)
    } else if let Some(rest) = t.strip_prefix("ns=") {
        let Some((ns, ident)) = rest.split_once(';') else {
            return fail("`ns=N` must be followed by `;` and an identifier");
        };
        match ns.parse::<u16>() {
            Ok(i) => (Namespace::Index(i), ident),
            Err(_) => return fail("the namespace index is not a number from 0 to 65535"),
        }
    } else {
        (Namespace::Index(0), t)
    };
    let Some((kind, value)) = ident.split_once('=') else {
        return fail("the identifier needs a type: `i=`, `s=`, `g=` or `b=`");
    };
    if value.is_empty() {
        return fail("the identifier is empty");
    }
    let ok = match kind {
        "i" => value.parse::<u32>().is_ok(),
        "s" => true,
        "g" => is_guid(value),
        "b" => value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')),
        _ => {
            return fail(&format!(
                "unknown identifier type `{kind}=` (expected i, s, g or b)"
            ))
        }
    };
    if !ok {
        let what = match kind {
            "i" => "a numeric identifier must be a number from 0 to 4294967295",
            "g" => "a GUID looks like 09087e75-8e5e-499b-954f-f2a9603db28a",
            _ => "an opaque identifier must be base64",
        };
        return fail(what);
    }
    Ok(NodeAddress {
        namespace,
        identifier: format!("{kind}={value}"),
    })
}

fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// One step of a browse path: a browse name with its namespace index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BrowseStep {
    pub namespace: u16,
    pub name: String,
}

/// Parses `/2:Press/2:GoodCount` (or without the leading `/`): browse names from the Objects
/// folder down, each `N:Name` or a plain `Name` in namespace 0.
pub fn parse_browse_path(text: &str) -> Result<Vec<BrowseStep>, String> {
    let t = text.trim().trim_start_matches('/');
    if t.is_empty() {
        return Err(format!(
            "expected a browse path from the Objects folder like `/2:Press/2:GoodCount`, found {text:?}"
        ));
    }
    t.split('/')
        .map(|step| {
            let (ns, name) = match step.split_once(':') {
                Some((ns, name)) if !ns.is_empty() && ns.bytes().all(|b| b.is_ascii_digit()) => {
                    let ns = ns.parse::<u16>().map_err(|_| {
                        format!("expected a namespace index from 0 to 65535 in browse path step {step:?}")
                    })?;
                    (ns, name)
                }
                _ => (0, step),
            };
            if name.is_empty() {
                return Err(format!(
                    "expected a browse name in every step of {text:?} (`N:Name` separated by `/`)"
                ));
            }
            Ok(BrowseStep {
                namespace: ns,
                name: name.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_forms_parse() {
        let a = parse_node_id("ns=3;s=Line1.Press.Count").unwrap();
        assert_eq!(a.namespace, Namespace::Index(3));
        assert_eq!(a.identifier, "s=Line1.Press.Count");
        let b = parse_node_id("ns=2;i=1042").unwrap();
        assert_eq!(b.with_index(2), "ns=2;i=1042");
        let c = parse_node_id("nsu=urn:acme%3bx:press;s=A;B").unwrap();
        assert_eq!(c.namespace, Namespace::Uri("urn:acme;x:press".into()));
        assert_eq!(c.identifier, "s=A;B");
        assert_eq!(c.to_string(), "nsu=urn:acme%3bx:press;s=A;B");
        assert_eq!(
            parse_node_id("i=2258").unwrap().namespace,
            Namespace::Index(0)
        );
        assert!(parse_node_id("ns=1;g=09087e75-8e5e-499b-954f-f2a9603db28a").is_ok());
    }

    #[test]
    fn mistakes_say_what_was_expected() {
        for bad in [
            "",
            "ns=x;i=1",
            "ns=2;i=abc",
            "ns=2;x=1",
            "ns=2",
            "nsu=;s=a",
            "ns=2;s=",
            "s",
        ] {
            let e = parse_node_id(bad).unwrap_err();
            assert!(e.starts_with("expected a node id like"), "{bad}: {e}");
        }
        assert!(parse_node_id("ns=70000;i=1")
            .unwrap_err()
            .contains("0 to 65535"));
    }

    #[test]
    fn browse_paths() {
        let p = parse_browse_path("/2:Press/2:GoodCount").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            p[1],
            BrowseStep {
                namespace: 2,
                name: "GoodCount".into()
            }
        );
        assert_eq!(parse_browse_path("Server").unwrap()[0].namespace, 0);
        assert!(parse_browse_path("/2:Press//x").is_err());
        assert!(parse_browse_path("").is_err());
    }
}
