//! What orders use and measure beyond their counts: scrap reasons (the PLC's reject code read
//! with the scrap counter, or given later by the operator or MOM), material lots consumed (the
//! lot loaded at the machine, or reported by command), and statistics of process values while
//! an order runs. See docs/ORDERS.md "Scrap reasons, material and process data".

use super::engine::{Engine, LotInUse};
use crate::event::{EventBody, NewEvent};
use crate::orders::{add_consumed, by_name, explain_scrap, Command, CommandSource, Reply};
use mes_edge_drivers::{Quality, Sample, Value};

impl Engine {
    /// The reason scrap counted now goes under: the PLC's reject code, mapped by the config;
    /// code 0 (or none read) gives none, an unmapped code its number, so nothing is lost.
    pub(super) fn scrap_reason_now(&self) -> Option<String> {
        let plan = self.model.reject.as_ref()?;
        match self.state.reject_code? {
            0 => None,
            code => Some(
                plan.reasons
                    .get(&code)
                    .cloned()
                    .unwrap_or_else(|| format!("code {code}")),
            ),
        }
    }

    /// A reading of a tag summarized per order: added to the running order's statistics.
    pub(super) fn observe_statistic(&mut self, s: &Sample) {
        let Some(name) = self.model.statistics.get(&s.tag) else {
            return;
        };
        let Some(v) = s.value.filter(|_| s.quality == Quality::Good) else {
            return;
        };
        if matches!(v, Value::Text(_)) {
            return;
        }
        if let Some(o) = self.state.orders.running_mut() {
            o.process_data
                .entry(name.clone())
                .or_default()
                .add(v.as_f64());
        }
    }

    /// A reading of the PLC's loaded-lot tag. A new lot closes the consumption of the old one.
    pub(super) fn lot_reading(&mut self, s: &Sample, out: &mut Vec<NewEvent>) {
        let lot = match s.value.filter(|_| s.quality == Quality::Good) {
            Some(Value::Text(t)) => Some(t.as_str().trim().to_string()).filter(|l| !l.is_empty()),
            Some(Value::Bool(_)) | None => return,
            Some(v) => Some(format!("{}", v.as_f64() as i64)),
        };
        if lot != self.state.loaded_lot {
            self.flush_lot(s.ts_ms, out);
            self.state.loaded_lot = lot;
        }
    }

    /// Parts made consume the loaded lot (taken back: the consumption is taken back too).
    pub(super) fn consume_for_parts(
        &mut self,
        quantity: u64,
        back: bool,
        ts_ms: i64,
        out: &mut Vec<NewEvent>,
    ) {
        let Some(plan) = self.model.material.clone() else {
            return;
        };
        let Some(lot) = self.state.loaded_lot.clone() else {
            return;
        };
        let running = self.running_id();
        if self.state.lot_in_use.as_ref().map(|l| &l.order_id) != running.as_ref() {
            self.flush_lot(ts_ms, out);
        }
        let Some(o) = self.state.orders.running_mut() else {
            return;
        };
        let sign = if back { -1.0 } else { 1.0 };
        let quantity = sign * quantity as f64 * plan.quantity_per_part;
        add_consumed(
            &mut o.consumed,
            &plan.material,
            Some(&lot),
            quantity,
            &plan.unit,
        );
        let id = o.id().to_string();
        let used = self.state.lot_in_use.get_or_insert(LotInUse {
            order_id: id,
            lot,
            quantity: 0.0,
        });
        used.quantity += quantity;
    }

    /// Publishes what the order consumed of the lot since it was loaded (or since the order
    /// started): at a lot change, and when the order stops running (checked at each tick).
    pub(super) fn flush_lot(&mut self, ts_ms: i64, out: &mut Vec<NewEvent>) {
        let (Some(used), Some(plan)) = (self.state.lot_in_use.take(), &self.model.material) else {
            return;
        };
        if used.quantity <= 0.0 {
            return;
        }
        let body = EventBody::MaterialConsumed {
            order_id: Some(used.order_id.clone()),
            material: plan.material.clone(),
            lot: used.lot,
            quantity: used.quantity,
            unit: plan.unit.clone(),
            by: CommandSource::Plc,
        };
        out.push(NewEvent::new(ts_ms, vec![used.order_id], body));
    }

    /// At each tick: an order that stopped running has its lot consumption published.
    pub(super) fn flush_lot_of_stopped_order(&mut self, ts_ms: i64, out: &mut Vec<NewEvent>) {
        let running = self.running_id();
        if self
            .state
            .lot_in_use
            .as_ref()
            .is_some_and(|l| Some(&l.order_id) != running.as_ref())
        {
            self.flush_lot(ts_ms, out);
        }
    }

    /// scrap_reason: moves unexplained scrap parts of the order (default: the active one) to
    /// the reason, in the order and, as far as it has them, in the current shift.
    pub(super) fn give_scrap_reason(
        &mut self,
        cmd: &Command,
        by: CommandSource,
        now_ms: i64,
        out: &mut Vec<NewEvent>,
    ) -> Reply {
        let reason = cmd.reason.clone().unwrap_or_default();
        let quantity = cmd.quantity.unwrap_or(0);
        let Some(o) = self.order_for(cmd) else {
            return Reply::rejected(Some(cmd), no_order(cmd));
        };
        if let Err(open) = explain_scrap(&mut o.scrap_reasons, &reason, quantity) {
            return Reply::rejected(
                Some(cmd),
                format!(
                    "order {} has {open} scrap parts without a reason; {quantity} cannot be given one",
                    o.id()
                ),
            );
        }
        let id = o.id().to_string();
        if let Some(shift) = &mut self.state.shift {
            let open = shift
                .scrap_reasons
                .get(crate::orders::UNEXPLAINED)
                .copied()
                .unwrap_or(0);
            let _ = explain_scrap(&mut shift.scrap_reasons, &reason, quantity.min(open));
        }
        let body = EventBody::ScrapReason {
            order_id: id.clone(),
            reason,
            quantity,
            by,
        };
        out.push(NewEvent::new(now_ms, vec![by_name(by).into()], body));
        accepted(cmd, id)
    }

    /// consume_material: records a lot consumed by the order (default: the running one).
    pub(super) fn consume_material(
        &mut self,
        cmd: &Command,
        by: CommandSource,
        now_ms: i64,
        out: &mut Vec<NewEvent>,
    ) -> Reply {
        let Some(m) = cmd.material.clone() else {
            return Reply::rejected(Some(cmd), "consume_material needs `material`");
        };
        let Some(o) = self.order_for(cmd) else {
            return Reply::rejected(Some(cmd), no_order(cmd));
        };
        add_consumed(
            &mut o.consumed,
            &m.material,
            Some(&m.lot),
            m.quantity,
            &m.unit,
        );
        let id = o.id().to_string();
        let body = EventBody::MaterialConsumed {
            order_id: Some(id.clone()),
            material: m.material,
            lot: m.lot,
            quantity: m.quantity,
            unit: m.unit,
            by,
        };
        out.push(NewEvent::new(now_ms, vec![by_name(by).into()], body));
        accepted(cmd, id)
    }

    fn running_id(&mut self) -> Option<String> {
        self.state.orders.running_mut().map(|o| o.id().to_string())
    }

    /// The order a scrap or material command names, or else the active one.
    fn order_for(&mut self, cmd: &Command) -> Option<&mut crate::orders::JobOrder> {
        let id = match &cmd.order_id {
            Some(id) => id.clone(),
            None => self.state.orders.active()?.id().to_string(),
        };
        self.state.orders.orders.iter_mut().find(|o| o.id() == id)
    }
}

fn no_order(cmd: &Command) -> String {
    match &cmd.order_id {
        Some(id) => format!("unknown order {id}"),
        None => "no order is active at the cell; name one with `order_id`".into(),
    }
}

fn accepted(cmd: &Command, order_id: String) -> Reply {
    Reply::accepted(cmd, Some(order_id))
}
