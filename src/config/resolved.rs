//! A cell config that passed its checks, with every value the checks parsed kept typed: the
//! broker's address, the drivers' specs, the signals as tag ids, the state and reason maps,
//! the shift calendar. Nothing downstream parses the file's text again, so nothing downstream
//! can fail on it.

use super::locate::Problem;
use super::parsed::Parsed;
use super::tag::TagDescription;
use super::types::*;
use super::Broker;
use crate::vocabulary::{CounterKind, MachineState, RestartSign};
use jiff::civil::Time;
use jiff::tz::TimeZone;
use mes_edge_drivers::{DriverSpec, TagId};
use std::collections::HashMap;

/// A checked cell config. It derefs to the file as written ([`CellFile`]) for the plain
/// settings; what needed parsing or cross-referencing is here, typed.
#[derive(Debug, Clone)]
pub struct CellConfig {
    file: CellFile,
    /// Every broker in order of preference (`[mqtt] url`, or each of `urls`), with the TLS
    /// files and login the cell uses there; one unless `urls` lists more.
    pub brokers: Vec<Broker>,
    /// One per Modbus line (the devices behind one connection) and one per OPC UA server, in
    /// config order; tag and device ids as [`CellFile::numbered_tags`] numbers them.
    pub drivers: Vec<DriverSpec>,
    pub roles: SignalRoles,
    pub calendar: Option<ShiftPlan>,
    /// The tags published as process values, with their reporting rules.
    pub values: super::values::ValuePlan,
}

impl std::ops::Deref for CellConfig {
    type Target = CellFile;
    fn deref(&self) -> &CellFile {
        &self.file
    }
}

/// The cell's signals, as the tags that carry them.
#[derive(Debug, Clone, Default)]
pub struct SignalRoles {
    pub counters: Vec<CounterPlan>,
    pub state: Option<StatePlan>,
    pub orders: Option<OrderTags>,
    /// The PLC's reject code, read with the scrap counter.
    pub reject: Option<RejectPlan>,
    /// The material lot loaded at the machine.
    pub material: Option<MaterialPlan>,
    /// Tags summarized per order, with their names.
    pub statistics: Vec<(TagId, String)>,
    pub part_record: Option<PartRecordPlan>,
    /// Where the write-back puts the active order's number and target, with the tags' names.
    pub write_back_number: Option<(TagId, String)>,
    pub write_back_target: Option<(TagId, String)>,
    /// Tags that tell a device's restarts, with the device's index.
    pub restart_tags: Vec<(TagId, usize, RestartSign)>,
}

#[derive(Debug, Clone)]
pub struct CounterPlan {
    pub kind: CounterKind,
    pub tag: TagId,
    /// The counter's width: where it rolls over.
    pub bits: u32,
    /// What the tag reads (device, address, type...): a baseline is only carried on while it
    /// stays the same.
    pub identity: String,
    /// The tag that tells a reset for certain, if any.
    pub reset_tag: Option<TagId>,
    pub settings: CounterSignal,
}

#[derive(Debug, Clone)]
pub struct StatePlan {
    pub tag: TagId,
    pub fault_tag: Option<TagId>,
    pub states: HashMap<i64, MachineState>,
    pub unmapped: MachineState,
    /// Fault code to downtime reason.
    pub reasons: HashMap<i64, String>,
}

#[derive(Debug, Clone)]
pub struct RejectPlan {
    pub tag: TagId,
    /// Reject code to scrap reason; code 0 means none given.
    pub reasons: HashMap<i64, String>,
}

#[derive(Debug, Clone)]
pub struct MaterialPlan {
    pub lot_tag: TagId,
    pub material: String,
    pub quantity_per_part: f64,
    pub unit: String,
}

/// What makes a part record, and what it carries.
#[derive(Debug, Clone)]
pub struct PartRecordPlan {
    pub trigger: PartTrigger,
    pub serial: Option<TagId>,
    /// (tag, name) in the config's order.
    pub tags: Vec<(TagId, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartTrigger {
    /// Each step of this counter.
    Counter(CounterKind),
    /// Each rising edge of this bool tag.
    Bit(TagId),
}

#[derive(Debug, Clone, Copy)]
pub struct OrderTags {
    pub start: TagId,
    pub number: TagId,
    pub end: Option<TagId>,
}

/// The shift calendar: shifts in the plant's local time.
#[derive(Debug, Clone)]
pub struct ShiftPlan {
    pub zone: TimeZone,
    /// (name, start, end); a shift whose end is not after its start runs past midnight.
    pub shifts: Vec<(String, Time, Time)>,
}

impl CellConfig {
    /// Builds the checked config from a file that passed every check and what the checks
    /// parsed. A reference the checks should have refused comes back as a problem, not a panic.
    pub(super) fn resolve(file: CellFile, parsed: Parsed) -> Result<CellConfig, Problem> {
        if parsed.brokers.is_empty() {
            return Err(Problem::internal("the broker url was not parsed"));
        }
        let drivers = driver_specs(&file, &parsed)?;
        let roles = roles(&file, &parsed.states, parsed.reasons, parsed.reject_reasons)?;
        let calendar = match (&file.shifts, parsed.zone) {
            (None, _) => None,
            (Some(_), Some(zone)) => Some(ShiftPlan {
                zone,
                shifts: parsed.shifts,
            }),
            (Some(_), None) => {
                return Err(Problem::internal("the shifts' time zone was not parsed"))
            }
        };
        Ok(CellConfig {
            file,
            brokers: parsed.brokers,
            drivers,
            roles,
            calendar,
            values: parsed.values,
        })
    }
}

impl CellConfig {
    /// The first broker (`[mqtt] url`, or the first of `urls`): the primary.
    pub fn primary(&self) -> &Broker {
        &self.brokers[0]
    }
}

/// Each device's driver, from the protocol it speaks (a device may join a driver already there,
/// when its protocol serializes devices on one connection). Tags are numbered as [`CellFile::numbered_tags`] numbers them.
fn driver_specs(file: &CellFile, parsed: &Parsed) -> Result<Vec<DriverSpec>, Problem> {
    let state_dir = file
        .store
        .path
        .parent()
        .unwrap_or(std::path::Path::new("."));
    let mut specs = Vec::new();
    let mut next_tag = 0u32;
    for (d, dev) in file.devices.iter().enumerate() {
        for protocol in crate::protocols::ALL {
            let count = protocol.tags(dev, next_tag).len() as u32;
            if protocol.names().contains(&dev.protocol.as_str()) {
                protocol.add_driver(d, dev, next_tag, parsed, state_dir, &mut specs)?;
            }
            next_tag += count;
        }
    }
    Ok(specs)
}

fn roles(
    file: &CellFile,
    states: &HashMap<i64, MachineState>,
    reasons: HashMap<i64, String>,
    reject_reasons: HashMap<i64, String>,
) -> Result<SignalRoles, Problem> {
    let numbered = file.numbered_tags();
    let by_name: HashMap<&str, (TagId, usize, &TagDescription)> = numbered
        .iter()
        .map(|(id, d, t)| (t.name(), (*id, *d, t)))
        .collect();
    let find = |name: &str| {
        by_name
            .get(name)
            .copied()
            .ok_or_else(|| Problem::internal(&format!("unknown tag {name:?}")))
    };
    let id = |name: &str| find(name).map(|(id, _, _)| id);
    let s = &file.signals;
    let mut counters = Vec::new();
    for (kind, signal) in [
        (CounterKind::Good, &s.good_count),
        (CounterKind::Scrap, &s.scrap_count),
    ] {
        let Some(signal) = signal else { continue };
        let (tag, _, cell_tag) = find(&signal.tag)?;
        let bits = cell_tag.counter_bits.ok_or_else(|| {
            Problem::internal(&format!("counter tag {:?} has no width", signal.tag))
        })?;
        counters.push(CounterPlan {
            kind,
            tag,
            bits,
            identity: cell_tag.identity.clone(),
            reset_tag: signal.reset_tag.as_deref().map(id).transpose()?,
            settings: signal.clone(),
        });
    }
    let state = match &s.machine_state {
        None => None,
        Some(m) => Some(StatePlan {
            tag: id(&m.tag)?,
            fault_tag: m.fault_tag.as_deref().map(id).transpose()?,
            states: states.clone(),
            unmapped: m.unmapped,
            reasons,
        }),
    };
    let orders = match &s.orders {
        None => None,
        Some(o) => Some(OrderTags {
            start: id(&o.start_tag)?,
            number: id(&o.number_tag)?,
            end: o.end_tag.as_deref().map(id).transpose()?,
        }),
    };
    let named = |name: &Option<String>| -> Result<Option<(TagId, String)>, Problem> {
        name.as_deref()
            .map(|n| Ok((id(n)?, n.to_string())))
            .transpose()
    };
    let reject = match s.scrap_count.as_ref().and_then(|c| c.reason_tag.as_deref()) {
        None => None,
        Some(tag) => Some(RejectPlan {
            tag: id(tag)?,
            reasons: reject_reasons,
        }),
    };
    let material = match &s.material {
        None => None,
        Some(m) => Some(MaterialPlan {
            lot_tag: id(&m.lot_tag)?,
            material: m.material.clone(),
            quantity_per_part: m.quantity_per_part,
            unit: m.unit.clone(),
        }),
    };
    let statistics = file
        .orders
        .statistics
        .iter()
        .map(|n| Ok((id(n)?, n.clone())))
        .collect::<Result<_, Problem>>()?;
    let part_record = match &file.part_record {
        None => None,
        Some(r) => Some(PartRecordPlan {
            trigger: match r.trigger.as_str() {
                "good_count" => PartTrigger::Counter(CounterKind::Good),
                "scrap_count" => PartTrigger::Counter(CounterKind::Scrap),
                bit => PartTrigger::Bit(id(bit)?),
            },
            serial: r.serial_tag.as_deref().map(id).transpose()?,
            tags: r
                .tags
                .iter()
                .map(|n| Ok((id(n)?, n.clone())))
                .collect::<Result<_, Problem>>()?,
        }),
    };
    let mut restart_tags = Vec::new();
    for (d, dev) in file.devices.iter().enumerate() {
        for (tag, sign) in [
            (&dev.uptime_tag, RestartSign::Uptime),
            (&dev.restart_count_tag, RestartSign::RestartCount),
        ] {
            if let Some(name) = tag {
                restart_tags.push((id(name)?, d, sign));
            }
        }
    }
    Ok(SignalRoles {
        counters,
        state,
        orders,
        reject,
        material,
        statistics,
        part_record,
        write_back_number: named(&file.orders.write_back.order_number_tag)?,
        write_back_target: named(&file.orders.write_back.target_tag)?,
        restart_tags,
    })
}
