//! `[sparkplug]`: the cell as a Sparkplug B edge node beside (or instead of) its JSON events.

use super::cell_path::CellPath;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparkplugConfig {
    /// Publish the cell as a Sparkplug B edge node (its own MQTT session on `[mqtt] url`).
    #[serde(default)]
    pub enabled: bool,
    /// Keep publishing the JSON events too; false: Sparkplug B only.
    #[serde(default = "yes")]
    pub json: bool,
    /// Default: the cell's enterprise, site, area and line joined by `:`.
    pub group_id: Option<String>,
    /// Default: the cell's name.
    pub edge_node_id: Option<String>,
    /// The host application whose `spBv1.0/STATE/{id}` the edge node follows: data waits in the
    /// store while it is offline. None: publish whenever the broker is there.
    pub primary_host_id: Option<String>,
    /// QoS of births and data: 1 (default) keeps the outbox's at-least-once; 0 is what the
    /// specification asks for (docs/SPARKPLUG.md, "QoS").
    #[serde(default = "one")]
    pub qos: u8,
}

fn yes() -> bool {
    true
}
fn one() -> u8 {
    1
}

impl SparkplugConfig {
    pub fn group_id(&self, cell: &CellPath) -> String {
        self.group_id
            .clone()
            .unwrap_or_else(|| cell.levels()[..4].join(":"))
    }

    pub fn edge_node_id(&self, cell: &CellPath) -> String {
        self.edge_node_id
            .clone()
            .unwrap_or_else(|| cell.cell.clone())
    }
}
