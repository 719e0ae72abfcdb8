//! Host commands that must not reach a machine as they came: a value of another type than the
//! tag's birth, a command retained on the broker, one too large, a flood of rebirth requests, a
//! primary host STATE from the future. The truth is the pymodbus PLC's registers and what the
//! pysparkplug host received.

use super::*;

/// Holding registers of the writable tags these tests add to the lab press's PLC.
const STROKE_OFFSET: u16 = 40;
const SPEED: u16 = 41;
const PIECE_TARGET: u16 = 42;

/// Three writable tags (i16, u16, u32), open to Sparkplug writes, and `/health` on `health`.
fn command_tags(health: u16) -> String {
    format!(
        r#"
[[devices.tags]]
name = "stroke_offset"
table = "holding"
address = {STROKE_OFFSET}
type = "i16"
write = true

[[devices.tags]]
name = "speed"
table = "holding"
address = {SPEED}
type = "u16"
write = true

[[devices.tags]]
name = "piece_target"
table = "holding"
address = {PIECE_TARGET}
type = "u32"
write = true

[commands.allow]
sparkplug = ["write_tag"]

[health]
listen = "127.0.0.1:{health}"
"#
    )
}

/// The edge node's MQTT client id (the test config's client id and `-spb`).
const SPARKPLUG_CLIENT: &str = "mes-edge-under-test-spb";

/// Waits until the PLC register `addr` holds `want` (read from the peer), for up to 10 s.
async fn register_becomes(plc: &mut Plc, addr: u16, want: u16) -> u16 {
    let mut got = 0;
    for _ in 0..100 {
        got = plc.read_u16(addr).await;
        if got == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    got
}

fn nbirths(l: &Lab) -> Vec<u64> {
    of_type(&l.host.node_messages(), "NBIRTH")
        .map(bd_seq)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dcmd_values_reach_the_plc_in_their_type_and_another_type_is_refused() {
    let health = common::free_port();
    let mut l = lab(0, None, &command_tags(health)).await;
    l.plc.write_u32(PIECE_TARGET, 1000).await;
    l.wait_births(1).await;
    let dbirth = of_type(&l.host.node_messages(), "DBIRTH")
        .next()
        .unwrap()
        .clone();
    assert_eq!(
        metric(&dbirth, "stroke_offset").unwrap()["datatype"],
        "INT16"
    );

    // Int16 −5 (pysparkplug sends it as 65531 in int_value): −5 in the PLC's register.
    l.host.dcmd("plc", "stroke_offset", "INT16", json!(-5));
    let got = register_becomes(&mut l.plc, STROKE_OFFSET, (-5i16) as u16).await;
    assert_eq!(got as i16, -5, "the PLC holds {got}\n{}", l.rt.logs());

    // Int32 −1 to a u32 tag: refused. The next command (same queue, in order) shows it was
    // taken in its turn and not applied.
    l.host.dcmd("plc", "piece_target", "INT32", json!(-1));
    l.host.dcmd("plc", "speed", "UINT16", json!(7));
    assert_eq!(
        register_becomes(&mut l.plc, SPEED, 7).await,
        7,
        "{}",
        l.rt.logs()
    );
    // A Boolean to a u16 tag: refused, the speed stays 7.
    l.host.dcmd("plc", "speed", "BOOLEAN", json!(true));
    l.host.dcmd("plc", "stroke_offset", "INT16", json!(3));
    assert_eq!(
        register_becomes(&mut l.plc, STROKE_OFFSET, 3).await,
        3,
        "{}",
        l.rt.logs()
    );
    assert_eq!(
        l.plc.read_u16(SPEED).await,
        7,
        "a Boolean wrote the u16\n{}",
        l.rt.logs()
    );
    assert_eq!(
        l.plc.read_u32(PIECE_TARGET).await,
        1000,
        "Int32 -1 reached the u32\n{}",
        l.rt.logs()
    );
    let logs = l.rt.logs();
    assert!(
        logs.contains("datatype Int32, the tag is born UInt32")
            && logs.contains("datatype Boolean, the tag is born UInt16"),
        "the refusals say why\n{logs}"
    );

    // /health and /metrics show the session and the refusals.
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], health));
    let h = ops_support::scrape(addr, "/health", false);
    let sp = &h.json["sparkplug"];
    assert_eq!(sp["connected"], true, "{}", h.body);
    assert_eq!(sp["commands"]["refused"], 2, "{}", h.body);
    assert!(sp["commands"]["queued"].as_u64() >= Some(3), "{}", h.body);
    assert_eq!(
        sp["bd_seq"].as_u64(),
        nbirths(&l).last().copied(),
        "{}",
        h.body
    );
    let m = ops_support::scrape(addr, "/metrics", true);
    assert_eq!(
        ops_support::sample(
            &m.families,
            "mes_edge_sparkplug_commands_refused_total",
            &[]
        ),
        Some(2.0),
        "{}",
        m.body
    );
    // JSON and Sparkplug on: both sinks, each with its own connection.
    let sinks: Vec<_> = h.json["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["connected"].as_bool()))
        .collect();
    assert_eq!(
        sinks,
        [("events", Some(true)), ("sparkplug", Some(true))],
        "{}",
        h.body
    );
    for sink in ["events", "sparkplug"] {
        assert_eq!(
            ops_support::sample(&m.families, "mes_edge_sink_connected", &[("sink", sink)]),
            Some(1.0),
            "{sink}: {}",
            m.body
        );
    }
    assert!(l.rt.terminate().success(), "{}", l.rt.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_dcmd_is_not_applied_again_after_a_broken_connection() {
    let mut l = lab(0, None, &command_tags(common::free_port())).await;
    l.wait_births(1).await;
    // Sent live, it is a command like any: applied.
    l.host.dcmd_retained("plc", "speed", "UINT16", json!(777));
    assert_eq!(
        register_becomes(&mut l.plc, SPEED, 777).await,
        777,
        "{}",
        l.rt.logs()
    );
    // The HMI sets the speed since.
    l.plc.write_u16(SPEED, 5).await;

    for round in 2..=3usize {
        // The broker drops the node's connection; at the new subscription it sends the
        // retained DCMD again, flagged retained.
        l.host.kick(SPARKPLUG_CLIENT);
        assert!(
            l.host
                .wait(|m| of_type(m, "NBIRTH").count() >= round, 30)
                .await,
            "no NBIRTH #{round} after the broken connection\n{}",
            l.rt.logs()
        );
        // A live command after it, on the same queue: once it is in the PLC, the retained one
        // had its turn.
        l.host
            .dcmd("plc", "stroke_offset", "INT16", json!(round as i64));
        assert_eq!(
            register_becomes(&mut l.plc, STROKE_OFFSET, round as u16).await,
            round as u16,
            "{}",
            l.rt.logs()
        );
        assert_eq!(
            l.plc.read_u16(SPEED).await,
            5,
            "the retained speed 777 overwrote the HMI's 5 (round {round})\n{}",
            l.rt.logs()
        );
    }
    let logs = l.rt.logs();
    assert_eq!(
        logs.matches("it is retained on the broker").count(),
        1,
        "said once, not once per reconnect\n{logs}"
    );
    assert!(l.rt.terminate().success(), "{}", l.rt.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_retained_dcmd_costs_no_reconnect_loop() {
    let mut l = lab(0, None, &command_tags(common::free_port())).await;
    l.wait_births(1).await;
    // 300 KB, over the 256 KiB a command may have, left on the broker.
    l.host.dcmd_oversized_retained("plc", "speed", 300_000);
    // The session lives on: a command after it is applied.
    l.host.dcmd("plc", "stroke_offset", "INT16", json!(-1));
    assert_eq!(
        register_becomes(&mut l.plc, STROKE_OFFSET, u16::MAX).await,
        u16::MAX,
        "{}",
        l.rt.logs()
    );
    // A broken connection: the retained 300 KB comes back at the subscription, and costs
    // nothing more than one birth.
    l.host.kick(SPARKPLUG_CLIENT);
    assert!(
        l.host.wait(|m| of_type(m, "NBIRTH").count() >= 2, 30).await,
        "{}",
        l.rt.logs()
    );
    let looped = l.host.wait(|m| of_type(m, "NBIRTH").count() >= 3, 10).await;
    let births = nbirths(&l);
    eprintln!("oversized DCMD: NBIRTH bdSeqs {births:?}");
    assert!(
        !looped,
        "reconnect loop: bdSeqs {births:?}\n{}",
        l.rt.logs()
    );
    assert_eq!(births.len(), 2, "{births:?}");
    assert_eq!(births[1], births[0] + 1, "one reconnect: {births:?}");
    assert_eq!(l.plc.read_u16(SPEED).await, 0, "nothing written");
    assert!(
        l.rt.logs().contains("more than 262144"),
        "no refusal logged\n{}",
        l.rt.logs()
    );
    assert!(l.rt.terminate().success(), "{}", l.rt.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebirth_flood_gives_a_few_rebirths_and_keeps_the_session() {
    let mut l = lab(0, None, "").await;
    l.wait_births(1).await;
    let sent_before = l.host.done();
    l.host.rebirth_flood(500);
    assert!(
        l.host.wait(|_| l.host.done() > sent_before, 20).await,
        "the host did not finish its flood"
    );
    // At most one rebirth per 3 s window (the first birth opens one): the requests inside a
    // window are answered by one rebirth at its end.
    assert!(
        l.host.wait(|m| of_type(m, "NBIRTH").count() >= 2, 10).await,
        "the last request is answered at the window's end: {:?}\n{}",
        nbirths(&l),
        l.rt.logs()
    );
    let more = l.host.wait(|m| of_type(m, "NBIRTH").count() >= 4, 8).await;
    let births = nbirths(&l);
    eprintln!("rebirth flood: NBIRTH bdSeqs {births:?}");
    assert!(!more, "500 requests gave {} rebirths", births.len() - 1);
    assert!(
        births.iter().all(|b| *b == births[0]),
        "the session was kept (one bdSeq): {births:?}"
    );
    assert_eq!(of_type(&l.host.node_messages(), "NDEATH").count(), 0);
    // And it still publishes.
    make_parts(&mut l.plc, 0, 2).await;
    assert!(l.good_total_reaches(2, 15).await, "{}", l.rt.logs());
    assert_eq!(seq_breaks(&l.host.node_messages()), Vec::<Value>::new());
    assert!(l.rt.terminate().success(), "{}", l.rt.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_stamped_far_ahead_is_refused_and_the_real_host_is_still_followed() {
    let mut l = lab(0, Some("scada"), "primary_host_id = \"scada\"\n").await;
    assert!(
        l.host.wait(|m| of_type(m, "NBIRTH").count() >= 1, 60).await,
        "{}",
        l.rt.logs()
    );
    // A forged offline STATE from the year 2255.
    let sent = l.host.done();
    l.host.send_state_at(false, 9_000_000_000_000_000);
    assert!(l.host.wait(|_| l.host.done() > sent, 10).await);
    let count = make_parts(&mut l.plc, 0, 2).await;
    assert!(
        l.good_total_reaches(count as u64, 15).await,
        "{}",
        l.rt.logs()
    );
    assert_eq!(
        of_type(&l.host.node_messages(), "NDEATH").count(),
        0,
        "the forged STATE took the node offline\n{}",
        l.rt.logs()
    );
    assert!(
        l.rt.logs().contains("primary host STATE refused"),
        "{}",
        l.rt.logs()
    );
    // The real host, now: offline, then online again. Both are followed.
    l.host.set_online(false);
    assert!(
        l.host.wait(|m| of_type(m, "NDEATH").count() >= 1, 10).await,
        "the real host's offline STATE is ignored\n{}",
        l.rt.logs()
    );
    l.host.set_online(true);
    assert!(
        l.host.wait(|m| of_type(m, "NBIRTH").count() >= 2, 10).await,
        "the real host's online STATE is ignored\n{}",
        l.rt.logs()
    );
    assert!(l.rt.terminate().success(), "{}", l.rt.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_names_from_the_network_cannot_forge_or_flood_log_lines() {
    let mut l = lab(0, None, &command_tags(common::free_port())).await;
    l.wait_births(1).await;
    let forged = "speed\n<3>mes-edge[1]: ERROR forged line";
    l.host.dcmd("plc", forged, "UINT16", json!(1));
    l.host.dcmd("plc", &"m".repeat(250_000), "UINT16", json!(1));
    // 300 refusals in a burst, then a command that is applied: by then all were handled.
    let sent = l.host.done();
    l.host
        .dcmd_flood("plc", "no_such_tag", "UINT16", json!(1), 300);
    assert!(l.host.wait(|_| l.host.done() > sent, 20).await);
    l.host.dcmd("plc", "speed", "UINT16", json!(9));
    assert_eq!(
        register_becomes(&mut l.plc, SPEED, 9).await,
        9,
        "{}",
        l.rt.logs()
    );
    let logs = l.rt.logs();
    assert!(
        !logs.lines().any(|line| line.starts_with("<3>")
            || (line.contains("ERROR forged") && !line.contains("speed\\n<3>"))),
        "a metric name forged a log line\n{logs}"
    );
    assert!(
        logs.contains("speed\\n<3>mes-edge"),
        "the name, escaped\n{logs}"
    );
    assert!(
        logs.lines().all(|line| line.len() < 2_000),
        "a 250 KB name logged whole"
    );
    assert!(logs.contains("(250000 bytes)"), "{logs}");
    let refusals = logs.matches("DCMD refused").count();
    assert!(
        refusals <= 25,
        "302 refusals made {refusals} warning lines\n{logs}"
    );
    assert!(l.rt.terminate().success(), "{}", l.rt.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sparkplug_only_runtime_is_healthy_with_its_session_connected() {
    let health = common::free_port();
    let l = lab(
        0,
        None,
        &format!("json = false\n[health]\nlisten = \"127.0.0.1:{health}\"\n"),
    )
    .await;
    l.wait_births(1).await;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], health));
    let mut h = ops_support::scrape(addr, "/health", false);
    for _ in 0..100 {
        if h.status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        h = ops_support::scrape(addr, "/health", false);
    }
    assert_eq!(h.status, 200, "{}\n{}", h.body, l.rt.logs());
    assert_eq!(h.json["broker"]["connected"], true, "{}", h.body);
    assert_eq!(h.json["sparkplug"]["connected"], true, "{}", h.body);
    assert_eq!(h.json["sparkplug"]["births"], 1, "{}", h.body);
}
