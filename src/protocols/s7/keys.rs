//! The keys of an S7 device (`protocol = "s7"`) beyond the common ones; see docs/S7.md.

use super::tag::S7TagConfig;
use crate::config::Device;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S7Keys {
    /// Rack and slot of the CPU (default 0 and 1), or the TSAPs instead.
    pub rack: Option<u8>,
    pub slot: Option<u8>,
    pub local_tsap: Option<u16>,
    pub remote_tsap: Option<u16>,
    /// The PDU size offered to the CPU (default 960; the CPU answers with what it accepts).
    pub pdu_size: Option<u16>,
    #[serde(default)]
    pub s7_tags: Vec<S7TagConfig>,
}

impl S7Keys {
    /// The S7 keys of `dev`, if it is an S7 device.
    pub fn of(dev: &Device) -> Option<&S7Keys> {
        dev.own.get()
    }

    /// The S7 tags of `dev`: none if it is not an S7 device.
    pub fn tags(dev: &Device) -> &[S7TagConfig] {
        S7Keys::of(dev).map_or(&[], |k| &k.s7_tags)
    }
}
