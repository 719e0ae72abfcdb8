//! Work orders at the cell: ISA-95 job orders received from MOM (or started by the operator or
//! the PLC), executed through the OPC 10031-4 job order state machine, with every part and every
//! minute of the cell attributed to an order and a state, and OEE per ISO 22400-2.

mod actuals;
mod book;
mod change;
mod command;
mod oee;
mod order;
mod shifts;
mod state_machine;

pub use actuals::{
    add_consumed, add_scrap, explain_scrap, DataValue, MaterialActual, MaterialUse, ScrapReasons,
    ValueStats, UNEXPLAINED,
};
pub use book::{by_name, OrderBook};
pub use change::{OrderChange, OrderChanges};
pub use command::{
    parse as parse_command, Command, CommandName, CommandSource, MaterialIn, Reply, ReplyStatus,
    ResponseRoute, MAX_PAYLOAD,
};
pub use oee::{compute as compute_oee, Oee, StateTimes};
pub use order::{adjust, JobOrder, JobResponse, OrderSpec};
pub use shifts::{ShiftAccount, ShiftCalendar, ShiftInstance};
pub use state_machine::{transition, JobCommand, JobState, SubState};
