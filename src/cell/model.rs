use super::{CounterRules, MachineState};
use crate::config::{CellConfig, MaterialPlan, PartRecordPlan, PartTrigger, RejectPlan};
use crate::event::CounterKind;
use crate::orders::ShiftCalendar;
use mes_edge_drivers::{DeviceId, TagId};
use std::collections::HashMap;

/// What a tag means to the cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Its rules are in [`CellModel::counters`].
    Counter(CounterKind),
    StateWord,
    FaultCode,
    OrderStartBit,
    OrderNumber,
    OrderEndBit,
    /// The PLC's reject code for the scrap it counts.
    RejectCode,
    /// The material lot loaded at the machine.
    MaterialLot,
    /// Its rising edge makes a part record.
    PartTrigger,
    /// Tells a reset of this counter for certain: a rise of a bool, an increase of a count.
    ResetTag(CounterKind),
    /// Tells a restart of the device (its index): an uptime that went back, a restart count
    /// that went up.
    Restarts(usize, super::RestartSign),
}

/// What the cell knows of work orders beyond the tags: reasons, products, shifts.
#[derive(Debug, Clone)]
pub struct OrderModel {
    /// Fault code to downtime reason.
    pub reasons: HashMap<i64, String>,
    /// Material to ideal cycle time, ms.
    pub products: HashMap<String, f64>,
    pub calendar: Option<ShiftCalendar>,
    pub auto_complete: bool,
    pub oee_interval_ms: i64,
}

impl OrderModel {
    fn from_config(c: &CellConfig) -> Self {
        OrderModel {
            reasons: c
                .roles
                .state
                .as_ref()
                .map(|s| s.reasons.clone())
                .unwrap_or_default(),
            products: c
                .products
                .iter()
                .map(|p| (p.material.clone(), p.ideal_cycle_s * 1000.0))
                .collect(),
            calendar: c
                .calendar
                .as_ref()
                .map(|s| ShiftCalendar::new(s.zone.clone(), s.shifts.clone())),
            auto_complete: c.orders.auto_complete,
            oee_interval_ms: c.orders.oee_interval_s as i64 * 1000,
        }
    }
}

/// The cell config compiled for the engine: tags and devices by index, roles by tag.
#[derive(Debug, Clone)]
pub struct CellModel {
    pub cell_path: String,
    pub tag_names: Vec<String>,
    pub device_names: Vec<String>,
    pub roles: HashMap<TagId, Role>,
    pub counters: HashMap<CounterKind, CounterRules>,
    /// Per device: the farthest a source timestamp may be from the runtime's clock.
    pub clock_tolerance_ms: Vec<i64>,
    pub states: HashMap<i64, MachineState>,
    pub unmapped: MachineState,
    pub orders: OrderModel,
    pub reject: Option<RejectPlan>,
    pub material: Option<MaterialPlan>,
    /// Tags summarized per order, by name.
    pub statistics: HashMap<TagId, String>,
    pub part_record: Option<PartRecordPlan>,
    /// Tags marked `write = true`, by name: what a write_tag command may set, and its checks.
    pub writable: HashMap<String, super::policy::WritableTag>,
    /// Who may command what, and how old a command may be.
    pub policy: super::policy::CommandPolicy,
    /// Where the active order's number and target quantity are written, with the tags' names.
    pub write_back: [Option<(TagId, String)>; 2],
    /// The tags of `writable`, by id.
    pub written_tags: std::collections::HashSet<TagId>,
}

impl CellModel {
    /// Tags are numbered in the order the config lists them, devices likewise; the runtime builds
    /// the drivers with the same numbering.
    pub fn from_config(c: &CellConfig) -> Self {
        let tag_names: Vec<String> = c
            .numbered_tags()
            .iter()
            .map(|(_, _, t)| t.name().to_string())
            .collect();
        let device_of: HashMap<TagId, usize> =
            c.numbered_tags().iter().map(|(t, d, _)| (*t, *d)).collect();
        let mut roles = HashMap::new();
        let mut counters = HashMap::new();
        for counter in &c.roles.counters {
            let s = &counter.settings;
            roles.insert(counter.tag, Role::Counter(counter.kind));
            if let Some(t) = counter.reset_tag {
                roles.insert(t, Role::ResetTag(counter.kind));
            }
            counters.insert(
                counter.kind,
                CounterRules {
                    bits: counter.bits,
                    rollover_window: s.rollover_window,
                    confirm_readings: s.confirm_readings,
                    confirm_ms: s.confirm_ms.min(i64::MAX as u64) as i64,
                    max_correction: s.max_correction,
                    max_step: s.max_step,
                    tag: counter.identity.clone(),
                    device: device_of.get(&counter.tag).copied().unwrap_or(0),
                },
            );
        }
        for &(tag, device, sign) in &c.roles.restart_tags {
            roles.insert(tag, Role::Restarts(device, sign));
        }
        let (mut states, mut unmapped) = (HashMap::new(), MachineState::Unknown);
        if let Some(s) = &c.roles.state {
            roles.insert(s.tag, Role::StateWord);
            if let Some(f) = s.fault_tag {
                roles.insert(f, Role::FaultCode);
            }
            states = s.states.clone();
            unmapped = s.unmapped;
        }
        if let Some(r) = &c.roles.reject {
            roles.insert(r.tag, Role::RejectCode);
        }
        if let Some(m) = &c.roles.material {
            roles.insert(m.lot_tag, Role::MaterialLot);
        }
        if let Some(PartTrigger::Bit(t)) = c.roles.part_record.as_ref().map(|r| r.trigger) {
            roles.insert(t, Role::PartTrigger);
        }
        if let Some(o) = &c.roles.orders {
            roles.insert(o.start, Role::OrderStartBit);
            roles.insert(o.number, Role::OrderNumber);
            if let Some(end) = o.end {
                roles.insert(end, Role::OrderEndBit);
            }
        }
        let writable = super::policy::WritableTag::all(c);
        CellModel {
            written_tags: writable.values().map(|w| w.id).collect(),
            writable,
            policy: super::policy::CommandPolicy::from_config(&c.commands),
            write_back: [
                c.roles.write_back_number.clone(),
                c.roles.write_back_target.clone(),
            ],
            cell_path: c.cell.joined(),
            tag_names,
            device_names: c.devices.iter().map(|d| d.name.clone()).collect(),
            roles,
            counters,
            clock_tolerance_ms: c
                .devices
                .iter()
                .map(|d| d.clock_tolerance_ms.min(i64::MAX as u64) as i64)
                .collect(),
            states,
            unmapped,
            orders: OrderModel::from_config(c),
            reject: c.roles.reject.clone(),
            material: c.roles.material.clone(),
            statistics: c.roles.statistics.iter().cloned().collect(),
            part_record: c.roles.part_record.clone(),
        }
    }

    /// The tag a counter signal reads.
    pub fn counter_tag(&self, kind: CounterKind) -> Option<TagId> {
        self.roles
            .iter()
            .find(|(_, r)| **r == Role::Counter(kind))
            .map(|(t, _)| *t)
    }

    pub fn tag_name(&self, t: TagId) -> &str {
        &self.tag_names[t.0 as usize]
    }

    pub fn device_name(&self, d: DeviceId) -> &str {
        &self.device_names[d.0 as usize]
    }
}
