//! mes-edge-bench: the benchmark harness (issue 7). `bench/run` installs the peers, builds in
//! release mode and runs `mes-edge-bench all`; see BENCHMARKS.md for what each scenario
//! measures and the figures of a run.
//!
//! The harness starts everything on loopback: Mosquitto, the load servers (this binary's
//! `load-server`, a separate process), the tool under test, and a collector (an MQTT
//! subscriber on a thread of the harness). `pipeline` is the runtime with an embedded driver
//! for S1 and S3.

mod bounds;
mod ceiling;
mod collector;
mod ctx;
mod harness;
mod layout;
mod load_server;
mod machine;
mod markdown;
mod merge;
mod node_red;
mod pipeline;
mod procs;
mod procstat;
mod report;
mod residency;
mod s1_pipeline;
mod s1_rig;
mod s1_steady;
mod s2_polling;
mod s3_backlog;
mod s4_latency;
mod s5_footprint;
mod s6_opcua;
mod s7_store;
mod s8_mom;
mod s8_plant;
mod s8_presses;
mod s9_polling;
mod s9_rig;
mod stats;
mod workload;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use ctx::{Ctx, Durations};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "mes-edge-bench",
    about = "Benchmarks of mes-edge beside Node-RED and a Python poller"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Args, Clone)]
struct RunArgs {
    /// Short runs of every scenario, to check the harness (figures are not for the record).
    #[arg(long)]
    quick: bool,
    /// Run mes-edge only.
    #[arg(long)]
    no_peers: bool,
    /// Repetitions of every scenario (default 3, or 1 with --quick); figures are their medians.
    #[arg(long)]
    runs: Option<usize>,
    /// The mes-edge binary (default: next to this one).
    #[arg(long)]
    mes_edge: Option<PathBuf>,
    /// The Python of the poller's venv (default: target/bench-peers/venv/bin/python).
    #[arg(long)]
    python: Option<PathBuf>,
    /// Where Node-RED is installed (default: target/bench-peers/node-red).
    #[arg(long)]
    node_red: Option<PathBuf>,
    /// Where to keep configs, stores, logs and the results (default: target/bench/<time>).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Every scenario, S1 to S8, then the table.
    All(RunArgs),
    /// One or more scenarios, e.g. `run s2 s4`.
    Run {
        #[arg(required = true)]
        scenarios: Vec<String>,
        #[command(flatten)]
        args: RunArgs,
    },
    /// BENCHMARKS.md from a run's results.json (to stdout, or --out); from several, merged: a
    /// later file's scenarios replace an earlier one's, and the page names each scenario's run.
    Report {
        #[arg(required = true)]
        results: Vec<PathBuf>,
        /// The narrative (default: bench/BENCHMARKS.template.md of the source tree).
        #[arg(long)]
        template: Option<PathBuf>,
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also write the results the page was made from (merged, with each scenario's run).
        #[arg(long)]
        results_out: Option<PathBuf>,
    },
    /// (internal) The Modbus load servers, one TCP port per device.
    LoadServer {
        #[arg(long)]
        spec: String,
    },
    /// (internal) A batching MQTT publisher: the broker's ceiling (S1).
    Publish {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        seconds: f64,
        #[arg(long, default_value_t = 10_000)]
        window: u32,
    },
    /// (internal) The runtime fed by an embedded driver (S1, S3).
    Pipeline {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, default_value_t = 0)]
        rate: u64,
        #[arg(long, default_value_t = u64::MAX)]
        count: u64,
        #[arg(long, default_value_t = 30.0)]
        seconds: f64,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::LoadServer { spec } => load_server::main(&spec),
        Cmd::Report {
            results,
            template,
            out,
            results_out,
        } => markdown::main(&results, template, out, results_out),
        Cmd::Publish {
            port,
            seconds,
            window,
        } => ceiling::publish(port, seconds, window),
        Cmd::Pipeline {
            config,
            rate,
            count,
            seconds,
        } => pipeline::main(
            &config,
            pipeline::Load {
                rate,
                count,
                seconds,
            },
        ),
        Cmd::All(args) => bench(
            &["s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9"].map(String::from),
            args,
        ),
        Cmd::Run { scenarios, args } => bench(&scenarios, args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn bench(scenarios: &[String], args: RunArgs) -> Result<()> {
    let exe = std::env::current_exe()?;
    let bin_dir = exe.parent().context("no folder")?.to_path_buf();
    // target/<profile>/mes-edge-bench: the workspace's target folder is two levels up.
    let target = bin_dir.parent().context("no target folder")?.to_path_buf();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| target.join(format!("bench/run-{stamp}")));
    std::fs::create_dir_all(&dir)?;
    // Absolute: a cell config's relative paths are relative to the config's own folder.
    let dir = dir.canonicalize()?;
    let python = args
        .python
        .clone()
        .or_else(|| Some(target.join("bench-peers/venv/bin/python")));
    let node_red = args
        .node_red
        .clone()
        .or_else(|| Some(target.join("bench-peers/node-red")));
    let ctx = Ctx {
        dir: dir.clone(),
        bench_bin: exe.clone(),
        mes_edge_bin: args
            .mes_edge
            .clone()
            .unwrap_or_else(|| bin_dir.join("mes-edge")),
        python: python.filter(|p| p.exists()),
        node_red: node_red.filter(|p| p.join("node_modules/node-red").exists()),
        durations: if args.quick {
            Durations::quick()
        } else {
            Durations::full()
        },
        peers: !args.no_peers,
    };
    anyhow::ensure!(
        ctx.mes_edge_bin.exists(),
        "no mes-edge binary at {}: build it (bench/run does)",
        ctx.mes_edge_bin.display()
    );
    ctx.tools()?;
    let runs = args.runs.unwrap_or(if args.quick { 1 } else { 3 }).max(1);
    let mut table = report::Table::default();
    let r = &mut table.results;
    r.runs = runs;
    r.quick = args.quick;
    r.durations = ctx.durations.to_map();
    r.machine = machine::facts(&ctx);
    r.build = machine::build(&ctx);
    r.started = machine::utc_now();
    for (k, v) in &r.machine {
        println!("{k}: {v}");
    }
    let save = |table: &report::Table| -> Result<()> {
        std::fs::write(
            dir.join("results.json"),
            serde_json::to_string_pretty(&table.results)?,
        )?;
        Ok(())
    };
    // Interleaved: a burst of load from elsewhere lands on one run of each scenario, not on
    // every run of one.
    for run in 0..runs {
        table.run = run;
        for s in scenarios {
            println!("== {} run {}/{runs}", s.to_uppercase(), run + 1);
            let before = procstat::load_average();
            let r = match s.as_str() {
                "s1" => s1_pipeline::run(&ctx, &mut table),
                "s2" => s2_polling::run(&ctx, &mut table),
                "s3" => s3_backlog::run(&ctx, &mut table),
                "s4" => s4_latency::run(&ctx, &mut table),
                "s5" => s5_footprint::run(&ctx, &mut table),
                "s6" => s6_opcua::run(&ctx, &mut table),
                "s7" => s7_store::run(&ctx, &mut table),
                "s8" => s8_plant::run(&ctx, &mut table),
                "s9" => s9_polling::run(&ctx, &mut table),
                other => anyhow::bail!("unknown scenario {other:?}; expected s1..s9"),
            };
            if let Err(e) = r {
                table.note(format!("{} failed: {e:#}", s.to_uppercase()));
            }
            table.results.load.push(report::LoadAverage {
                scenario: s.to_uppercase(),
                run,
                before,
                after: procstat::load_average(),
            });
            // Written after every scenario: an interrupted run keeps what it measured.
            table.results.finished = machine::utc_now();
            save(&table)?;
        }
    }
    let md = markdown::render(
        &table.results,
        &std::fs::read_to_string(ctx.bench_dir().join("BENCHMARKS.template.md"))?,
    )?;
    std::fs::write(dir.join("BENCHMARKS.md"), &md)?;
    println!("\n{md}");
    println!("results and logs in {}", dir.display());
    Ok(())
}
