//! `write_tag`: a command that sets a tag marked `write = true`, from MOM, the operator or a
//! Sparkplug host's DCMD. It comes through the same door as every command, gets a reply and a
//! `command_response` event, and the write goes to the driver once that is committed.

use super::Engine;
use crate::orders::{Command, Reply};
use mes_edge_drivers::{TagId, Text, Value};

/// A write the engine accepted, for the runtime to hand to the tag's driver after the commit.
#[derive(Debug, Clone, PartialEq)]
pub struct TagWrite {
    pub tag: TagId,
    pub name: String,
    pub value: Value,
}

fn value(v: &serde_json::Value) -> Option<Value> {
    Some(match v {
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Value::UInt(u),
            (None, Some(i)) => Value::Int(i),
            _ => Value::Float(n.as_f64()?),
        },
        serde_json::Value::String(s) => Value::Text(Text::new(s)?),
        _ => return None,
    })
}

impl Engine {
    pub(super) fn write_tag(&mut self, cmd: &Command) -> Reply {
        let name = cmd.tag.as_deref().unwrap_or_default();
        let Some(&tag) = self.model.writable.get(name) else {
            let why = if self.model.tag_names.iter().any(|t| t == name) {
                format!("tag {name:?} is not writable (it needs write = true in the cell config)")
            } else {
                format!("no tag {name:?} in the cell config")
            };
            return Reply::rejected(Some(cmd), why);
        };
        let Some(value) = cmd.value.as_ref().and_then(value) else {
            return Reply::rejected(
                Some(cmd),
                "write_tag needs a value: a bool, a number or a string",
            );
        };
        self.writes.push(TagWrite {
            tag,
            name: name.to_string(),
            value,
        });
        Reply::accepted(cmd, None)
    }

    /// The writes accepted since the last call: after a commit, for the drivers; after a failed
    /// commit, dropped (the batch is applied again and accepts them again).
    pub fn take_writes(&mut self) -> Vec<TagWrite> {
        std::mem::take(&mut self.writes)
    }
}
