//! The README's first command: `mes-edge demo` on a machine with nothing else installed. It
//! needs no peers: its PLC and broker are built in.

use std::process::Command;

#[test]
fn the_demo_shows_production_events_as_the_broker_delivers_them() {
    let out = Command::new(env!("CARGO_BIN_EXE_mes-edge"))
        .args(["demo", "--duration", "8"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with('#') && !l.starts_with("#v"))
        .collect();
    // Value batches have their own sequence (`#v1`, ...): the die temperature is one.
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("#v") && l.contains("die_temperature = ")),
        "{stdout}"
    );
    assert!(
        events
            .iter()
            .any(|l| l.contains("device_status") && l.contains("online")),
        "{stdout}"
    );
    assert!(events.iter().any(|l| l.contains("part_count")), "{stdout}");
    assert!(
        events.iter().any(|l| l.contains("machine_state")),
        "{stdout}"
    );
    // Every line is an event with its sequence number, in order from 1.
    let seqs: Vec<u64> = events
        .iter()
        .map(|l| l[1..].split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "{stdout}"
    );
    assert!(stdout.contains("The press made"), "{stdout}");
}
