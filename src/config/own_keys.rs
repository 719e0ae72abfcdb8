//! A protocol's own device keys: the struct it parses them into (its `Keys`), named for the
//! registry by [`KeysOf::of`], and kept on the device as [`OwnKeys`].

use serde::de::DeserializeOwned;
use std::any::Any;
use std::sync::Arc;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

/// A protocol's own keys parsed, or where in the file (the span toml gives) and what is wrong.
pub(crate) type KeysParsed = Result<OwnKeys, (Option<std::ops::Range<usize>>, String)>;

/// How a protocol's own keys are named and parsed: `KeysOf::of::<S7Keys>()`.
pub(crate) struct KeysOf {
    /// The keys, as serde names them.
    pub names: fn() -> &'static [&'static str],
    /// The keys parsed, or where in the file and what is wrong.
    pub parse: fn(Spanned<DeTable<'_>>) -> KeysParsed,
}

impl KeysOf {
    pub fn of<T: DeserializeOwned + Send + Sync + 'static>() -> KeysOf {
        KeysOf {
            names: super::serde_keys::of::<T>,
            parse: parse::<T>,
        }
    }
}

/// A protocol's own keys parsed into its `T`, or where (the document's span) and what is wrong.
/// From the parsed document itself, its errors located by their own spans: through a toml
/// Value in between, the Value's transient tree, interleaved with the entries' strings, stayed
/// with the process (bench S6, 50,000 OPC UA nodes published, one run each: 205.8 MB against
/// 192.6); serde_path_to_error around the document's deserializer cost the binary 205 kB.
fn parse<T: DeserializeOwned + Send + Sync + 'static>(keys: Spanned<DeTable<'_>>) -> KeysParsed {
    let span = keys.span();
    let keys = ValueDeserializer::from(Spanned::new(span, DeValue::Table(keys.into_inner())));
    T::deserialize(keys)
        .map(OwnKeys::new::<T>)
        .map_err(|e| (e.span(), e.message().trim_end().to_string()))
}

/// The keys of a device's own protocol, as that protocol parsed them (its own struct). Only
/// the protocol knows their type, and asks for it with [`OwnKeys::get`].
#[derive(Clone, Default)]
pub struct OwnKeys(Option<Arc<dyn Any + Send + Sync>>);

impl OwnKeys {
    pub fn new<T: Any + Send + Sync>(keys: T) -> Self {
        OwnKeys(Some(Arc::new(keys)))
    }

    /// The keys, if the device's protocol parsed them into a `T`.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.as_deref()?.downcast_ref()
    }

    /// The keys to change, while no clone of the config shares them (relative paths are made
    /// absolute right after parsing).
    pub fn get_mut<T: Any>(&mut self) -> Option<&mut T> {
        Arc::get_mut(self.0.as_mut()?)?.downcast_mut()
    }
}

impl std::fmt::Debug for OwnKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "OwnKeys(..)"
        } else {
            "OwnKeys(none)"
        })
    }
}
