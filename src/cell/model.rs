use super::{CounterRules, MachineState};
use crate::config::CellConfig;
use crate::event::CounterKind;
use crate::orders::{parse_time, parse_zone, ShiftCalendar};
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
        let reasons = c
            .signals
            .machine_state
            .iter()
            .flat_map(|s| s.reasons.iter())
            .map(|(code, reason)| (code.parse().expect("checked config"), reason.clone()))
            .collect();
        let calendar = c.shifts.as_ref().map(|s| {
            let tz = parse_zone(s.timezone.as_deref()).expect("checked config");
            let shifts = s
                .shift
                .iter()
                .map(|d| {
                    (
                        d.name.clone(),
                        parse_time(&d.start).expect("checked"),
                        parse_time(&d.end).expect("checked"),
                    )
                })
                .collect();
            ShiftCalendar::new(tz, shifts)
        });
        OrderModel {
            reasons,
            products: c
                .products
                .iter()
                .map(|p| (p.material.clone(), p.ideal_cycle_s * 1000.0))
                .collect(),
            calendar,
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
}

impl CellModel {
    /// Tags are numbered in the order the config lists them, devices likewise; the runtime builds
    /// the drivers with the same numbering.
    pub fn from_config(c: &CellConfig) -> Self {
        let numbered = c.numbered_tags();
        let tag_names: Vec<String> = numbered
            .iter()
            .map(|(_, _, t)| t.name().to_string())
            .collect();
        let tag_types: HashMap<&str, _> = numbered
            .iter()
            .map(|(_, d, t)| (t.name(), (*t, c.devices[*d].name.as_str())))
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
        let mut counters = HashMap::new();
        for (kind, signal) in [
            (CounterKind::Good, &c.signals.good_count),
            (CounterKind::Scrap, &c.signals.scrap_count),
        ] {
            if let Some(s) = signal {
                let (tag, device) = tag_types[s.tag.as_str()];
                let rules = CounterRules {
                    bits: tag.counter_bits().expect("checked config"),
                    rollover_window: s.rollover_window,
                    confirm_readings: s.confirm_readings,
                    confirm_ms: s.confirm_ms.min(i64::MAX as u64) as i64,
                    max_correction: s.max_correction,
                    max_step: s.max_step,
                    tag: tag.identity(device),
                };
                roles.insert(id(&s.tag), Role::Counter(kind));
                counters.insert(kind, rules);
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
        if let Some(o) = &c.signals.orders {
            roles.insert(id(&o.start_tag), Role::OrderStartBit);
            roles.insert(id(&o.number_tag), Role::OrderNumber);
            if let Some(end) = &o.end_tag {
                roles.insert(id(end), Role::OrderEndBit);
            }
        }
        CellModel {
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
