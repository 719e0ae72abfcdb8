//! What the checks parse on their way through the file, handed to [`super::CellConfig`]: the
//! general checks and each protocol's folder fill it in, the resolution reads it.

use super::Broker;
use crate::vocabulary::MachineState;
use jiff::civil::Time;
use jiff::tz::TimeZone;
use std::any::{Any, TypeId};
use std::collections::HashMap;

/// What the checks parsed on their way through the file.
#[derive(Default)]
pub(crate) struct Parsed {
    /// `[mqtt] url`, or every one of `urls` in order, if they parsed, with their settings.
    pub brokers: Vec<Broker>,
    pub zone: Option<TimeZone>,
    /// (name, start, end) of each shift whose times parsed.
    pub shifts: Vec<(String, Time, Time)>,
    pub states: HashMap<i64, MachineState>,
    pub reasons: HashMap<i64, String>,
    pub reject_reasons: HashMap<i64, String>,
    /// What a protocol's folder parsed for its own use (OPC UA: where each node is on its
    /// server), one value per type, which only that folder names: see [`Parsed::own_mut`].
    own: HashMap<TypeId, Box<dyn Any>>,
    pub values: super::values::ValuePlan,
}

impl Parsed {
    /// A protocol's own parsed values of type `T`, to fill in; empty at the first ask.
    pub fn own_mut<T: Any + Default>(&mut self) -> &mut T {
        self.own
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()))
            .downcast_mut()
            .expect("a value is kept under its own type's id")
    }

    /// A protocol's own parsed values of type `T`, if it filled any in.
    pub fn own<T: Any>(&self) -> Option<&T> {
        self.own.get(&TypeId::of::<T>())?.downcast_ref()
    }
}
