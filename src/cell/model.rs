use super::MachineState;
use crate::config::CellConfig;
use crate::event::CounterKind;
use mes_edge_drivers::{DeviceId, TagId};
use std::collections::HashMap;

/// What a tag means to the cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Counter {
        kind: CounterKind,
        bits: u32,
        rollover_window: u64,
    },
    StateWord,
    FaultCode,
}

/// The cell config compiled for the engine: tags and devices by index, roles by tag.
#[derive(Debug, Clone)]
pub struct CellModel {
    pub cell_path: String,
    pub tag_names: Vec<String>,
    pub device_names: Vec<String>,
    pub roles: HashMap<TagId, Role>,
    pub states: HashMap<i64, MachineState>,
    pub unmapped: MachineState,
}

impl CellModel {
    /// Tags are numbered in the order the config lists them, devices likewise; the runtime builds
    /// the drivers with the same numbering.
    pub fn from_config(c: &CellConfig) -> Self {
        let tag_names: Vec<String> = c
            .devices
            .iter()
            .flat_map(|d| d.tags.iter().map(|t| t.name.clone()))
            .collect();
        let tag_types: HashMap<&str, _> = c
            .devices
            .iter()
            .flat_map(|d| d.tags.iter())
            .map(|t| (t.name.as_str(), t.data_type))
            .collect();
        let id = |name: &str| {
            TagId(
                tag_names
                    .iter()
                    .position(|n| n == name)
                    .expect("checked config") as u32,
            )
        };
        let mut roles = HashMap::new();
        for (kind, signal) in [
            (CounterKind::Good, &c.signals.good_count),
            (CounterKind::Scrap, &c.signals.scrap_count),
        ] {
            if let Some(s) = signal {
                let bits = tag_types[s.tag.as_str()]
                    .counter_bits()
                    .expect("checked config");
                roles.insert(
                    id(&s.tag),
                    Role::Counter {
                        kind,
                        bits,
                        rollover_window: s.rollover_window,
                    },
                );
            }
        }
        let mut states = HashMap::new();
        let mut unmapped = MachineState::Unknown;
        if let Some(s) = &c.signals.machine_state {
            roles.insert(id(&s.tag), Role::StateWord);
            if let Some(f) = &s.fault_tag {
                roles.insert(id(f), Role::FaultCode);
            }
            states = s
                .states
                .iter()
                .map(|(k, v)| (k.parse().expect("checked config"), *v))
                .collect();
            unmapped = s.unmapped;
        }
        CellModel {
            cell_path: c.cell.joined(),
            tag_names,
            device_names: c.devices.iter().map(|d| d.name.clone()).collect(),
            roles,
            states,
            unmapped,
        }
    }

    pub fn tag_name(&self, t: TagId) -> &str {
        &self.tag_names[t.0 as usize]
    }

    pub fn device_name(&self, d: DeviceId) -> &str {
        &self.device_names[d.0 as usize]
    }
}
