//! The S7-1200/1500 DTL type against python-snap7's server (tests/peers/s7_server.py): the value
//! the peer holds, put there with snap7.util.set_dtl, is the truth of a read; a write is judged by
//! what the peer then holds, decoded by snap7.util.get_dtl, and by the bytes it recorded.
//! snap7.util keeps a DTL as a Python datetime, to the microsecond: the nanoseconds it writes
//! are whole microseconds, and what it reads back of ours is cut to microseconds.

use crate::common;

use common::modbus_lab::{cell_config, Drivers};
use common::s7::S7Peer;
use mes_edge_drivers::{Quality, Text, Value};
use std::time::Duration;

fn text(s: &str) -> Value {
    Value::Text(Text::new(s).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dtl_reads_as_the_plc_holds_it_and_a_written_one_lands_in_the_plc() {
    let mut peer = S7Peer::start(0);
    let config = cell_config(&format!(
        "[[devices]]\nname = \"cpu\"\nprotocol = \"s7\"\nhost = \"127.0.0.1\"\nport = {}\n\
         poll_interval_ms = 100\ntimeout_ms = 500\n\n\
         [[devices.s7_tags]]\nname = \"stamp\"\naddress = \"DB10.DBB48\"\ntype = \"dtl\"\nwrite = true\n",
        peer.port()
    ));
    let drivers = Drivers::start(&config);
    let read = |want: Value| {
        let drivers = &drivers;
        async move {
            common::eventually(Duration::from_secs(5), || {
                drivers
                    .latest("stamp")
                    .is_some_and(|s| s.quality == Quality::Good && s.value == Some(want))
            })
            .await
        }
    };
    // What the peer holds, as snap7.util.get_dtl reads it back, with its microseconds in
    // nanoseconds (set_dtl wrote microsecond * 1000).
    let held = peer.get("DB", 10, "dtl", 48);
    assert_eq!(held, "2026-03-01T06:07:08.123456");
    assert!(
        read(text(&format!("{held}000"))).await,
        "the peer holds {held}; the driver read {:?}\n{}",
        drivers.latest("stamp"),
        peer.logs()
    );

    // The PLC program sets another (snap7.util.set_dtl again): it shows at the next poll.
    peer.set("DB", 10, "dtl", 48, "2031-07-04T12:00:00.000001");
    assert!(
        read(text("2031-07-04T12:00:00.000001000")).await,
        "{:?}",
        drivers.latest("stamp")
    );

    // A write: the peer's own decoder says what landed, and the bytes it recorded hold the
    // nanoseconds a datetime cannot (987654321 = 0x3ADE68B1) and the weekday of that date
    // (2027-12-31 is a Friday: 6, counting from Sunday as 1).
    drivers
        .write("stamp", text("2027-12-31T23:59:58.987654321"))
        .await
        .expect("the write is accepted");
    assert_eq!(peer.get("DB", 10, "dtl", 48), "2027-12-31T23:59:58.987654");
    assert_eq!(
        peer.writes(),
        vec!["WRITE DB 10 48 07eb0c1f06173b3a3ade68b1".to_string()]
    );
    assert!(
        read(text("2027-12-31T23:59:58.987654321")).await,
        "{:?}",
        drivers.latest("stamp")
    );

    // Not a date: refused before anything reaches the PLC.
    let refused = drivers.write("stamp", text("2027-02-30T00:00:00")).await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(
        peer.writes().len(),
        1,
        "only the valid write reached the PLC"
    );
    drivers.stop().await;
}
