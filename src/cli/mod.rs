//! The command line: `run`, `check`, `demo`, `outbox ...`, the commissioning commands.

mod orders;
mod outbox;

use crate::config::{self, CellConfig};
use crate::protocols::Commissioning;
use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "mes-edge",
    version,
    about = "MES edge runtime for one production cell"
)]
struct Cli {
    /// Log one JSON object per line instead of readable text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the cell described by a config file until SIGTERM or Ctrl-C.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check config files; print each problem as file:line:column and exit 1 if there are any.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run a simulated press, an embedded broker and the runtime, and print the events MOM gets.
    Demo {
        /// Stop after this many seconds (default: run until Ctrl-C).
        #[arg(long)]
        duration: Option<u64>,
        /// The cell is a Sparkplug B edge node too; its messages are shown decoded.
        #[arg(long)]
        sparkplug: bool,
    },
    /// Look into a cell's store.
    Outbox {
        #[command(subcommand)]
        command: outbox::OutboxCommand,
    },
    /// The cell's work orders: list and show them, or command the running service.
    Orders(orders::OrdersArgs),
    /// Give the current (or last) stop a reason.
    Downtime(orders::DowntimeArgs),
    /// Give scrap parts a reason.
    Scrap(orders::ScrapArgs),
    /// Record material consumed by an order.
    Material(orders::MaterialArgs),
    #[command(flatten)]
    Commissioning(Commissioning),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let usual = crate::protocols::log_filters();
    let quiet = match &cli.command {
        Command::Demo { .. } => &["rumqttd=off", "mes_edge=warn"],
        Command::Commissioning(c) => c.quiet_logs().unwrap_or(&usual),
        _ => &usual[..],
    };
    crate::logging::init(cli.log_json, quiet);
    let result = match cli.command {
        Command::Check { files } => return check(&files),
        Command::Run { config: path } => load(&path).and_then(|c| run(c, &path)),
        Command::Demo {
            duration,
            sparkplug,
        } => demo(duration, sparkplug),
        Command::Outbox { command } => outbox::main(command),
        Command::Orders(args) => orders::orders(args),
        Command::Downtime(args) => orders::downtime(args),
        Command::Scrap(args) => orders::scrap(args),
        Command::Material(args) => orders::material(args),
        Command::Commissioning(c) => c.main(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: &Path) -> Result<CellConfig> {
    let (config, warnings) =
        config::load_with_warnings(path).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    Ok(config)
}

fn check(files: &[PathBuf]) -> ExitCode {
    let mut ok = true;
    for f in files {
        match config::load_with_warnings(f) {
            Ok((_, warnings)) => {
                for w in warnings {
                    eprintln!("{w}");
                }
                println!("{}: ok", f.display())
            }
            Err(e) => {
                ok = false;
                eprintln!("{e}");
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn tokio_runtime() -> Result<tokio::runtime::Runtime> {
    // Two workers. One was measured (bench S2 and S5, 2026-12-01): CPU and idle memory within
    // the noise of two, and a worse poll-interval p99 in one run of two.
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn run(config: CellConfig, path: &Path) -> Result<()> {
    tokio_runtime()?.block_on(async {
        // SIGHUP first: until its handler is in place, a SIGHUP would end the process.
        let reload = crate::ops::reload::listen_for_hangup(path)?;
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(crate::ops::signals::stop_on_signal(tx));
        crate::runtime::run_reloadable(config, rx, Some(reload)).await
    })
}

#[cfg(feature = "demo")]
fn demo(duration: Option<u64>, sparkplug: bool) -> Result<()> {
    tokio_runtime()?.block_on(crate::demo::run(
        duration.map(std::time::Duration::from_secs),
        sparkplug,
    ))
}

#[cfg(not(feature = "demo"))]
fn demo(_: Option<u64>, _: bool) -> Result<()> {
    anyhow::bail!("this build has no demo (built without the `demo` feature)")
}
