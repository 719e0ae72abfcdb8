//! One module per kind of fault; each test is one scenario.

mod broker;
mod clock;
mod counters;
mod disk;
mod kill;
mod memory;
mod mixed;
mod network;
mod plc;
mod store_files;
