//! The engine thread's share of process values: the order and lot each value carries, and the
//! store's housekeeping of the value class (age, and the alarm for what was dropped).

use crate::cell::{Engine, Running};
use crate::event::{EventBody, NewEvent};
use crate::store::{StoreOwner, ValueDrops};

/// The order running at the cell, and its lot, for the values read now.
pub(super) fn running(engine: &Engine) -> Running {
    let order = engine.state.orders.active();
    Running {
        order_id: order.map(|o| o.id().to_string()),
        lot: order.and_then(|o| o.spec.lot.clone()),
    }
}

/// Drops process values past their retention, and reports the values dropped since the last
/// call, a `values_dropped` event for each reason (the cap, age).
pub(super) fn value_housekeeping(
    owner: &StoreOwner,
    store: &crate::config::StoreConfig,
    drops: &mut ValueDrops,
    probe: &crate::ops::ValueProbe,
    wall: i64,
) -> Vec<NewEvent> {
    let before = wall - store.values_retention_hours.saturating_mul(3_600_000) as i64;
    let (aged, held) = match owner.run(move |o| Ok((o.age_values(before)?, o.values_held()?))) {
        Ok(done) => done,
        Err(e) => {
            tracing::error!("dropping stale process values: {e}");
            (ValueDrops::default(), 0)
        }
    };
    probe.dropped(&aged);
    let mut out = Vec::new();
    for (reason, d) in [("cap", std::mem::take(drops)), ("age", aged)] {
        if d.is_empty() {
            continue;
        }
        tracing::warn!(
            reason,
            values = d.values,
            batches = d.batches,
            held,
            "process values dropped unsent"
        );
        out.push(NewEvent::new(
            wall,
            vec!["store".into()],
            EventBody::ValuesDropped {
                reason: reason.into(),
                values: d.values,
                batches: d.batches,
                by_tag: d.by_tag,
                held,
                cap: store.values_max_count,
            },
        ));
    }
    out
}
