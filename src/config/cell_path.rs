//! The cell's place in the ISA-95 equipment hierarchy: its name everywhere (topics, Sparkplug
//! ids, the store's cell).

use serde::Deserialize;

/// Where the cell sits in the ISA-95 equipment hierarchy; it names the cell's MQTT topics.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CellPath {
    pub enterprise: String,
    pub site: String,
    pub area: String,
    pub line: String,
    pub cell: String,
}

impl CellPath {
    pub fn levels(&self) -> [&str; 5] {
        [
            &self.enterprise,
            &self.site,
            &self.area,
            &self.line,
            &self.cell,
        ]
    }

    /// `enterprise/site/area/line/cell`.
    pub fn joined(&self) -> String {
        self.levels().join("/")
    }
}
