//! Order changes become production events here: the order book says what changed, the cell
//! decides what is published (keys, envelope, event kinds in docs/EVENTS.md).

use crate::event::{EventBody, NewEvent};
use crate::orders::{by_name, OrderChange, OrderChanges};

impl OrderChanges for Vec<NewEvent> {
    fn record(&mut self, change: OrderChange) {
        self.push(order_event(change));
    }
}

fn order_event(change: OrderChange) -> NewEvent {
    match change {
        OrderChange::State {
            at_ms,
            order_id,
            material,
            state,
            substate,
            previous,
            command,
            by,
            reason,
            good,
            scrap,
        } => NewEvent::new(
            at_ms,
            vec![by_name(by).into()],
            EventBody::OrderState {
                order_id,
                material,
                state,
                substate,
                previous,
                command,
                by,
                reason,
                good,
                scrap,
            },
        ),
        OrderChange::Removed {
            at_ms,
            order_id,
            previous,
            command,
            by,
        } => NewEvent::new(
            at_ms,
            vec![by_name(by).into()],
            EventBody::OrderRemoved {
                order_id,
                previous,
                command,
                by,
            },
        ),
        OrderChange::Ended { at_ms, response } => {
            let key = response.order_id.clone();
            NewEvent::new(at_ms, vec![key], EventBody::JobResponse(*response))
        }
    }
}
