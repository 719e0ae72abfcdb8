//! The words of an OPC UA device section: security policy and mode, and the data type a node is
//! expected to have. Plain enums, so the config can be checked without the OPC UA client.

use serde::Deserialize;
use std::fmt;

/// The security policies we offer; the deprecated Basic128Rsa15 and Basic256 are left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum SecurityPolicy {
    None,
    Basic256Sha256,
    #[serde(rename = "Aes128_Sha256_RsaOaep")]
    Aes128Sha256RsaOaep,
    #[serde(rename = "Aes256_Sha256_RsaPss")]
    Aes256Sha256RsaPss,
}

impl SecurityPolicy {
    pub const ALL: [SecurityPolicy; 4] = [
        SecurityPolicy::None,
        SecurityPolicy::Basic256Sha256,
        SecurityPolicy::Aes128Sha256RsaOaep,
        SecurityPolicy::Aes256Sha256RsaPss,
    ];

    /// The name used in configs and on the command line (the OPC UA profile's short name).
    pub fn name(self) -> &'static str {
        match self {
            SecurityPolicy::None => "None",
            SecurityPolicy::Basic256Sha256 => "Basic256Sha256",
            SecurityPolicy::Aes128Sha256RsaOaep => "Aes128_Sha256_RsaOaep",
            SecurityPolicy::Aes256Sha256RsaPss => "Aes256_Sha256_RsaPss",
        }
    }

    /// The policy URI that endpoints advertise.
    pub fn uri(self) -> &'static str {
        match self {
            SecurityPolicy::None => "http://opcfoundation.org/UA/SecurityPolicy#None",
            SecurityPolicy::Basic256Sha256 => {
                "http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256"
            }
            SecurityPolicy::Aes128Sha256RsaOaep => {
                "http://opcfoundation.org/UA/SecurityPolicy#Aes128_Sha256_RsaOaep"
            }
            SecurityPolicy::Aes256Sha256RsaPss => {
                "http://opcfoundation.org/UA/SecurityPolicy#Aes256_Sha256_RsaPss"
            }
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|p| p.name()).collect();
                format!(
                    "unknown security policy {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

impl fmt::Display for SecurityPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum SecurityMode {
    None,
    Sign,
    SignAndEncrypt,
}

impl SecurityMode {
    pub fn name(self) -> &'static str {
        match self {
            SecurityMode::None => "None",
            SecurityMode::Sign => "Sign",
            SecurityMode::SignAndEncrypt => "SignAndEncrypt",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        [
            SecurityMode::None,
            SecurityMode::Sign,
            SecurityMode::SignAndEncrypt,
        ]
        .into_iter()
        .find(|m| m.name().eq_ignore_ascii_case(s))
        .ok_or_else(|| {
            format!("unknown security mode {s:?}; expected one of None, Sign, SignAndEncrypt")
        })
    }

    /// The mode that goes with a policy when the config names only the policy.
    pub fn default_for(policy: SecurityPolicy) -> Self {
        if policy == SecurityPolicy::None {
            SecurityMode::None
        } else {
            SecurityMode::SignAndEncrypt
        }
    }
}

impl fmt::Display for SecurityMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a policy and a mode do not go together, if they do not.
pub fn security_mismatch(policy: SecurityPolicy, mode: SecurityMode) -> Option<String> {
    match (policy, mode) {
        (SecurityPolicy::None, SecurityMode::None) => None,
        (SecurityPolicy::None, m) => Some(format!(
            "security mode {m} needs a security policy other than None (e.g. Basic256Sha256)"
        )),
        (p, SecurityMode::None) => Some(format!(
            "security policy {p} needs security mode Sign or SignAndEncrypt; mode None goes with policy None"
        )),
        _ => None,
    }
}

/// The built-in OPC UA type a node is expected to hold. Given for counters (the width decides
/// where the counter rolls over) and wherever a mistyped value should read as bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeType {
    Bool,
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
    String,
    DateTime,
}

impl NodeType {
    /// The width of an unsigned integer type that a counter can be.
    pub fn counter_bits(self) -> Option<u32> {
        match self {
            NodeType::U16 => Some(16),
            NodeType::U32 => Some(32),
            NodeType::U64 => Some(64),
            _ => None,
        }
    }

    pub fn is_integer(self) -> bool {
        !matches!(
            self,
            NodeType::F32 | NodeType::F64 | NodeType::String | NodeType::DateTime
        )
    }

    /// The config word.
    pub fn name(self) -> &'static str {
        match self {
            NodeType::Bool => "bool",
            NodeType::I8 => "i8",
            NodeType::U8 => "u8",
            NodeType::I16 => "i16",
            NodeType::U16 => "u16",
            NodeType::I32 => "i32",
            NodeType::U32 => "u32",
            NodeType::I64 => "i64",
            NodeType::U64 => "u64",
            NodeType::F32 => "f32",
            NodeType::F64 => "f64",
            NodeType::String => "string",
            NodeType::DateTime => "datetime",
        }
    }

    /// The OPC UA built-in type's name, for messages.
    pub fn ua_name(self) -> &'static str {
        match self {
            NodeType::Bool => "Boolean",
            NodeType::I8 => "SByte",
            NodeType::U8 => "Byte",
            NodeType::I16 => "Int16",
            NodeType::U16 => "UInt16",
            NodeType::I32 => "Int32",
            NodeType::U32 => "UInt32",
            NodeType::I64 => "Int64",
            NodeType::U64 => "UInt64",
            NodeType::F32 => "Float",
            NodeType::F64 => "Double",
            NodeType::String => "String",
            NodeType::DateTime => "DateTime",
        }
    }
}

/// A data-change deadband: changes smaller than this are not reported by the server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Deadband {
    /// In the value's own units.
    Absolute(f64),
    /// Percent of the node's EURange (the server must know the range).
    Percent(f64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_and_modes_pair_up() {
        assert!(security_mismatch(SecurityPolicy::None, SecurityMode::None).is_none());
        assert!(security_mismatch(SecurityPolicy::Basic256Sha256, SecurityMode::Sign).is_none());
        assert!(security_mismatch(SecurityPolicy::None, SecurityMode::Sign).is_some());
        assert!(
            security_mismatch(SecurityPolicy::Aes256Sha256RsaPss, SecurityMode::None).is_some()
        );
        assert_eq!(
            SecurityPolicy::parse("aes128_sha256_rsaoaep").unwrap(),
            SecurityPolicy::Aes128Sha256RsaOaep
        );
        assert!(SecurityPolicy::parse("Basic128Rsa15").is_err());
    }
}
