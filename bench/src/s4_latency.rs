//! S4, change to publish: two counters on one Modbus device (the load server) each step by one
//! at random moments (every 150-350 ms, independently, so the phase against the poll is
//! random); each tool polls every 100 ms. Latency is from the moment the load server changed the
//! register (it prints the time) to the moment the collector receives the message that carries
//! the new value: for mes-edge the part_count event (committed with synchronous = "full" before
//! it is published), for the peers their change message.

use crate::collector::{Collector, Rec};
use crate::ctx::{Ctx, Tool};
use crate::harness::{layout, load_spec, start_tool, topic_filter, LoadServer};
use crate::load_server::{unix_ns, Mode};
use crate::procs::Broker;
use crate::report::{Cell, Figure, Table, Target};
use crate::stats::{spread, Spread};
use crate::workload::Workload;
use anyhow::Result;
use std::time::Duration;

const POLL_MS: u64 = 100;

/// The counter a message is about (0 good, 1 scrap) and the value it carries.
fn about(tool: Tool, r: &Rec) -> Option<(usize, f64)> {
    let idx = match (tool, r.tag.as_deref()?) {
        (Tool::MesEdge, "good") | (Tool::Python | Tool::NodeRed, "d0_t0") => 0,
        (Tool::MesEdge, "scrap") | (Tool::Python | Tool::NodeRed, "d0_t1") => 1,
        _ => return None,
    };
    Some((idx, r.value?))
}

pub struct Result4 {
    pub latency: Spread,
    pub changes: usize,
    pub unmatched: usize,
}

/// Latency of each change: to the first message for its counter carrying its value or a later
/// one (two changes within one poll arrive together, and both are delivered then).
pub fn match_changes(tool: Tool, changes: &[(usize, f64, i64)], recs: &[Rec]) -> (Vec<f64>, usize) {
    let msgs: Vec<(usize, f64, i64)> = recs
        .iter()
        .filter_map(|r| about(tool, r).map(|(i, v)| (i, v, r.recv_ns)))
        .collect();
    let mut lat = Vec::new();
    let mut unmatched = 0;
    for &(tag, value, t) in changes {
        match msgs
            .iter()
            .find(|&&(i, v, recv)| i == tag && v >= value && recv >= t)
        {
            Some(&(_, _, recv)) => lat.push((recv - t) as f64 / 1e6),
            None => unmatched += 1,
        }
    }
    (lat, unmatched)
}

pub fn run_tool(ctx: &Ctx, tool: Tool, run: usize) -> Result<Result4> {
    let d = ctx.durations;
    let dir = ctx.sub(&format!("s4/{}/run{}", tool.name(), run + 1))?;
    let mut broker = Broker::new(&dir, false)?;
    broker.start()?;
    let spec = load_spec(
        1,
        "u32x2",
        Mode::Counters {
            tags: vec![0, 1],
            min_ms: 150,
            max_ms: 350,
        },
    );
    let server = LoadServer::start(ctx, &dir, &spec)?;
    let l = layout("u32x2");
    let w = Workload {
        ports: &server.ports,
        layout: &l,
        poll_ms: POLL_MS,
        good: Some(0),
        scrap: Some(1),
        publish: false,
    };
    let collector = Collector::start(broker.port, topic_filter(tool), None);
    collector.wait_subscribed(Duration::from_secs(10))?;
    let mut p = start_tool(ctx, tool, &dir, &w, broker.port, None)?;
    // Connected and past the first readings (baselines) before changes are counted.
    std::thread::sleep(Duration::from_secs(5));
    let from = unix_ns();
    std::thread::sleep(Duration::from_secs_f64(d.s4_seconds));
    let until = unix_ns();
    // Room for the last changes to arrive.
    std::thread::sleep(Duration::from_secs(2));
    anyhow::ensure!(
        p.running(),
        "{} ended during the run; see {}",
        tool.name(),
        p.log.display()
    );
    p.stop(Duration::from_secs(10));
    let changes: Vec<_> = server
        .changes()
        .into_iter()
        .filter(|c| c.2 >= from && c.2 <= until)
        .collect();
    let recs = collector.take();
    crate::collector::dump(&dir.join("collector.csv"), &recs)?;
    let (lat, unmatched) = match_changes(tool, &changes, &recs);
    Ok(Result4 {
        latency: spread(lat),
        changes: changes.len(),
        unmatched,
    })
}

pub fn run(ctx: &Ctx, table: &mut Table) -> Result<()> {
    table.results.scenarios.insert(
        "S4".into(),
        format!(
            "one device, two u32 counters each stepping by one at a random moment every 150-350 ms, polled every {POLL_MS} ms, \
             {} s; then the same counters on an OPC UA server (asyncua) at 10 ms sampling and publishing, mes-edge only",
            ctx.durations.s4_seconds
        ),
    );
    crate::machine::fsync_figure(ctx, table, "S4", "s4.fsync_p99");
    let mut results = Vec::new();
    for tool in ctx.tools()? {
        println!(
            "S4 change to publish, Modbus at {POLL_MS} ms: {}",
            tool.name()
        );
        let r = run_tool(ctx, tool, table.run);
        match &r {
            Ok(r) => println!(
                "  {} changes ({} not delivered): p50 {:.1} / p99 {:.1} / max {:.1} ms",
                r.changes, r.unmatched, r.latency.p50, r.latency.p99, r.latency.max
            ),
            Err(e) => println!("  failed: {e:#}"),
        }
        results.push((tool, r));
    }
    let get = |tool: Tool, f: &dyn Fn(&Result4) -> f64| -> Cell {
        match results.iter().find(|(t, _)| *t == tool) {
            Some((_, Ok(r))) => Cell::Value(f(r)),
            Some((_, Err(e))) => Cell::Text(format!("failed: {e}")),
            None => Cell::na("not run"),
        }
    };
    type Row<'a> = (
        &'a str,
        &'a str,
        &'a dyn Fn(&Result4) -> f64,
        Option<Target>,
    );
    let rows: [Row; 4] = [
        (
            "s4.modbus_p50",
            "Modbus change -> collector, p50",
            &|r| r.latency.p50,
            None,
        ),
        (
            "s4.modbus_p99",
            "Modbus change -> collector, p99",
            &|r| r.latency.p99,
            // The poll period, plus the disk's slowest fsyncs, plus 10 ms.
            Some(Target::AtMostFigurePlus {
                figure: "s4.fsync_p99".into(),
                plus: POLL_MS as f64 + 10.0,
            }),
        ),
        (
            "s4.modbus_max",
            "Modbus change -> collector, max",
            &|r| r.latency.max,
            None,
        ),
        (
            "s4.modbus_undelivered",
            "Modbus changes never delivered",
            &|r| r.unmatched as f64,
            Some(Target::EveryRunAtMost { value: 0.0 }),
        ),
    ];
    for (key, name, f, target) in rows {
        let unit = if key.ends_with("undelivered") {
            "changes"
        } else {
            "ms"
        };
        table.add(Figure {
            scenario: "S4",
            key,
            name,
            unit,
            digits: if unit == "ms" { 1 } else { 0 },
            mes_edge: get(Tool::MesEdge, f),
            python: get(Tool::Python, f),
            node_red: get(Tool::NodeRed, f),
            less_is_better: true,
            target,
        });
    }
    println!("S4 change to publish, OPC UA at 10 ms sampling: mes-edge");
    let opcua = run_opcua(ctx, table.run);
    let peers = "not set up for OPC UA";
    let f = |key, name, unit, v| Figure::mes_edge("S4", key, name, unit, v, peers);
    match &opcua {
        Ok(r) => {
            println!(
                "  {} changes ({} not delivered): p50 {:.1} / p99 {:.1} / max {:.1} ms",
                r.changes, r.unmatched, r.latency.p50, r.latency.p99, r.latency.max
            );
            table.add(
                f(
                    "s4.opcua_p50",
                    "OPC UA change -> collector at 10 ms sampling, p50",
                    "ms",
                    r.latency.p50,
                )
                .digits(1),
            );
            table.add(
                f(
                    "s4.opcua_p99",
                    "OPC UA change -> collector at 10 ms sampling, p99",
                    "ms",
                    r.latency.p99,
                )
                .digits(1)
                // A change waits for a sampling and a publishing interval (10 ms each), plus
                // the disk's slowest fsyncs, plus 10 ms.
                .target(Target::AtMostFigurePlus {
                    figure: "s4.fsync_p99".into(),
                    plus: 20.0 + 10.0,
                }),
            );
            table.add(
                f(
                    "s4.opcua_max",
                    "OPC UA change -> collector at 10 ms sampling, max",
                    "ms",
                    r.latency.max,
                )
                .digits(1),
            );
            table.add(
                f(
                    "s4.opcua_undelivered",
                    "OPC UA changes never delivered",
                    "changes",
                    r.unmatched as f64,
                )
                .target(Target::EveryRunAtMost { value: 0.0 }),
            );
        }
        Err(e) => {
            println!("  failed: {e:#}");
            table.note(format!("S4 OPC UA failed: {e:#}"));
        }
    }
    let counts: Vec<String> = results
        .iter()
        .filter_map(|(t, r)| {
            r.as_ref()
                .ok()
                .map(|r| format!("{} {} changes", t.name(), r.changes))
        })
        .chain(
            opcua
                .iter()
                .map(|r| format!("mes-edge over OPC UA {} changes", r.changes)),
        )
        .collect();
    table.note(format!("S4: {}.", counts.join("; ")));
    Ok(())
}

/// S4 for OPC UA: the same two counters on an asyncua server (bench/peers/opcua_load.py),
/// subscribed by mes-edge with 10 ms sampling and a 10 ms publishing interval. mes-edge only:
/// neither peer is set up for OPC UA here.
pub fn run_opcua(ctx: &Ctx, run: usize) -> Result<Result4> {
    let d = ctx.durations;
    let dir = ctx.sub(&format!("s4/mes-edge-opcua/run{}", run + 1))?;
    let python = ctx
        .python
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("the bench venv is not installed: run bench/run"))?;
    let mut broker = Broker::new(&dir, false)?;
    broker.start()?;
    let port = crate::procs::free_port();
    let mut cmd = std::process::Command::new(python);
    cmd.arg(ctx.bench_dir().join("peers/opcua_load.py"))
        .arg(port.to_string());
    let server = LoadServer::from_command("opcua-load", cmd, &dir)?;
    let collector = Collector::start(broker.port, topic_filter(Tool::MesEdge), None);
    collector.wait_subscribed(Duration::from_secs(10))?;
    let node = |name: &str, id: &str| {
        format!("[[devices.nodes]]\nname = \"{name}\"\nnode_id = \"nsu=urn:mes-edge:bench;s={id}\"\ntype = \"u32\"\nsampling_interval_ms = 10\n\n")
    };
    let config = format!(
        "[cell]\nenterprise = \"bench\"\nsite = \"site\"\narea = \"area\"\nline = \"line\"\ncell = \"cell\"\n\n\
         [[devices]]\nname = \"plc0\"\nprotocol = \"opcua\"\nendpoint = \"opc.tcp://127.0.0.1:{port}/\"\npublishing_interval_ms = 10\n\n{}{}\
         [signals.good_count]\ntag = \"d0_t0\"\n\n[signals.scrap_count]\ntag = \"d0_t1\"\n\n\
         [store]\npath = \"{}\"\n\n[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\n\n[health]\nlisten = \"127.0.0.1:{}\"\n",
        node("d0_t0", "Bench.Good"),
        node("d0_t1", "Bench.Scrap"),
        dir.join("store/cell.db").display(),
        broker.port,
        crate::procs::free_port()
    );
    let path = dir.join("cell.toml");
    std::fs::write(&path, config)?;
    let mut cmd = std::process::Command::new(&ctx.mes_edge_bin);
    cmd.arg("run")
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "warn");
    let mut p = crate::procs::Proc::spawn("mes-edge", cmd, &dir, false)?;
    std::thread::sleep(Duration::from_secs(5));
    let from = unix_ns();
    std::thread::sleep(Duration::from_secs_f64(d.s4_seconds));
    let until = unix_ns();
    std::thread::sleep(Duration::from_secs(2));
    anyhow::ensure!(
        p.running(),
        "mes-edge ended during the run; see {}",
        p.log.display()
    );
    p.stop(Duration::from_secs(10));
    let changes: Vec<_> = server
        .changes()
        .into_iter()
        .filter(|c| c.2 >= from && c.2 <= until)
        .collect();
    let recs = collector.take();
    crate::collector::dump(&dir.join("collector.csv"), &recs)?;
    let (lat, unmatched) = match_changes(Tool::MesEdge, &changes, &recs);
    Ok(Result4 {
        latency: spread(lat),
        changes: changes.len(),
        unmatched,
    })
}
