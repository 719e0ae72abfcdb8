use super::actuals::{add_scrap, DataValue, MaterialActual, MaterialUse, ScrapReasons, ValueStats};
use super::oee::{compute, Oee, StateTimes};
use super::state_machine::{JobState, SubState};
use crate::vocabulary::CounterKind;
use crate::vocabulary::MachineState;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What MOM (or the operator) says an order is: the ISA-95 job order's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderSpec {
    pub id: String,
    pub material: String,
    /// Target quantity of good parts; 0 means none.
    #[serde(default)]
    pub quantity: u64,
    /// Ideal cycle time per part; if absent, the config's product table is asked.
    pub ideal_cycle_s: Option<f64>,
    pub lot: Option<String>,
    /// Larger runs first among orders allowed to start; then the earlier stored.
    #[serde(default)]
    pub priority: i32,
}

/// A job order at the cell: its spec, its state and everything attributed to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobOrder {
    pub spec: OrderSpec,
    /// The ideal cycle time in force (the order's own, or the product table's), ms.
    pub ideal_cycle_ms: Option<f64>,
    pub state: JobState,
    pub substate: Option<SubState>,
    pub stored_ms: i64,
    pub started_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    pub good: u64,
    pub scrap: u64,
    /// Time in each machine state while the order was Running.
    pub times: StateTimes,
    /// Stop time by reason while the order was Running ("unexplained" until a reason is given).
    pub downtime: BTreeMap<String, i64>,
    pub ideal_production_ms: f64,
    /// Scrap by reason; sums to `scrap`. (Default: a store of an earlier release.)
    #[serde(default)]
    pub scrap_reasons: ScrapReasons,
    /// Material lots consumed.
    #[serde(default)]
    pub consumed: Vec<MaterialActual>,
    /// The configured process values while the order ran, by tag.
    #[serde(default)]
    pub process_data: BTreeMap<String, ValueStats>,
}

impl JobOrder {
    pub fn new(spec: OrderSpec, ideal_cycle_ms: Option<f64>, state: JobState, now_ms: i64) -> Self {
        JobOrder {
            spec,
            ideal_cycle_ms,
            state,
            substate: None,
            stored_ms: now_ms,
            started_ms: None,
            ended_ms: None,
            good: 0,
            scrap: 0,
            times: StateTimes::new(),
            downtime: BTreeMap::new(),
            ideal_production_ms: 0.0,
            scrap_reasons: ScrapReasons::new(),
            consumed: Vec::new(),
            process_data: BTreeMap::new(),
        }
    }

    pub fn id(&self) -> &str {
        &self.spec.id
    }

    /// Adds parts, or takes them back (`back`: the PLC corrected its counter); scrap goes under
    /// `reason` (the PLC's reject code), or "unexplained".
    pub fn add_parts(
        &mut self,
        kind: CounterKind,
        quantity: u64,
        back: bool,
        reason: Option<&str>,
    ) {
        let count = match kind {
            CounterKind::Good => &mut self.good,
            CounterKind::Scrap => &mut self.scrap,
        };
        let taken = adjust(count, quantity, back);
        if kind == CounterKind::Scrap {
            add_scrap(&mut self.scrap_reasons, reason, taken, back);
        }
        let ideal = taken as f64 * self.ideal_cycle_ms.unwrap_or(0.0);
        self.ideal_production_ms = if back {
            (self.ideal_production_ms - ideal).max(0.0)
        } else {
            self.ideal_production_ms + ideal
        };
    }

    pub fn add_time(&mut self, state: MachineState, ms: i64, stop_reason: Option<&str>) {
        *self.times.entry(state).or_default() += ms;
        if let Some(reason) = stop_reason {
            *self.downtime.entry(reason.to_string()).or_default() += ms;
        }
    }

    pub fn oee(&self) -> Oee {
        compute(&self.times, self.good, self.scrap, self.ideal_production_ms)
    }
}

/// The ISA-95 job response of an order that reached Ended or Aborted: what was actually made,
/// when, and where the time went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResponse {
    pub order_id: String,
    pub material: String,
    pub lot: Option<String>,
    pub target_quantity: u64,
    pub state: JobState,
    pub substate: Option<SubState>,
    pub good: u64,
    pub scrap: u64,
    pub stored: i64,
    pub started: Option<i64>,
    pub ended: Option<i64>,
    pub time_in_state_ms: StateTimes,
    pub downtime_ms: BTreeMap<String, i64>,
    pub oee: Oee,
    /// Scrap by reason ("unexplained" for parts given none); sums to `scrap`.
    pub scrap_by_reason: ScrapReasons,
    /// ISA-95 material actuals: the lots consumed, then the good parts produced.
    pub material_actuals: Vec<MaterialActual>,
    /// ISA-95 data values: each configured process value over the order's running time.
    pub process_data: BTreeMap<String, DataValue>,
}

impl JobResponse {
    pub fn of(o: &JobOrder) -> Self {
        JobResponse {
            order_id: o.spec.id.clone(),
            material: o.spec.material.clone(),
            lot: o.spec.lot.clone(),
            target_quantity: o.spec.quantity,
            state: o.state,
            substate: o.substate,
            good: o.good,
            scrap: o.scrap,
            stored: o.stored_ms,
            started: o.started_ms,
            ended: o.ended_ms,
            time_in_state_ms: o.times.clone(),
            downtime_ms: o.downtime.clone(),
            oee: o.oee(),
            scrap_by_reason: o.scrap_reasons.clone(),
            material_actuals: o
                .consumed
                .iter()
                .cloned()
                .chain(std::iter::once(MaterialActual {
                    material: o.spec.material.clone(),
                    lot: o.spec.lot.clone(),
                    quantity: o.good as f64,
                    unit: "pcs".into(),
                    use_: MaterialUse::Produced,
                }))
                .collect(),
            process_data: o
                .process_data
                .iter()
                .map(|(tag, s)| (tag.clone(), s.summary()))
                .collect(),
        }
    }
}

/// Adds `quantity` to `count`, or takes it off (never below zero); gives what was moved.
pub fn adjust(count: &mut u64, quantity: u64, back: bool) -> u64 {
    if back {
        let taken = quantity.min(*count);
        *count -= taken;
        taken
    } else {
        *count += quantity;
        quantity
    }
}
