//! `mes-edge orders ...`, `downtime reason`, `scrap reason` and `material consume`: the
//! operator's door to the cell.
//! Reading (list, show) comes straight from the store, so it works with the service stopped;
//! commands go to the running service over its control socket.

use super::{load, tokio_runtime};
use crate::orders::{JobOrder, Reply};
use crate::store::Outbox;
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Args)]
pub struct OrdersArgs {
    #[arg(long, short, global = true, default_value = "/etc/mes-edge/cell.toml")]
    config: PathBuf,
    /// The cell's control socket (`/var/lib/mes-edge/press4.sock`), in place of --config: for
    /// operators of the `mes-edge-operators` group, who may command the cell but not read its
    /// config. Commands only; `list` and `show` read the store and need --config.
    #[arg(long, global = true)]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: OrdersCommand,
}

#[derive(Subcommand)]
enum OrdersCommand {
    /// The orders the cell holds, and the parts made with no order.
    List,
    /// One order in full, with its job response figures so far.
    Show {
        id: String,
    },
    /// Receive an order from the shop floor (when MOM cannot send it).
    Store {
        id: String,
        #[arg(long)]
        material: String,
        #[arg(long, default_value_t = 0)]
        quantity: u64,
        #[arg(long)]
        ideal_cycle_s: Option<f64>,
        #[arg(long)]
        lot: Option<String>,
        /// Allow it to start at once (StoreAndStart).
        #[arg(long)]
        start: bool,
    },
    Start {
        id: String,
    },
    Pause {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    Resume {
        id: String,
    },
    Stop {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    Abort {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Args)]
pub struct DowntimeArgs {
    #[arg(long, short, global = true, default_value = "/etc/mes-edge/cell.toml")]
    config: PathBuf,
    /// The cell's control socket, in place of --config (see `mes-edge orders --help`).
    #[arg(long, global = true)]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: DowntimeCommand,
}

#[derive(Subcommand)]
enum DowntimeCommand {
    /// Give the current stop (or the last one, if the cell runs again) a reason code.
    Reason { code: String },
}

#[derive(Args)]
pub struct ScrapArgs {
    #[arg(long, short, global = true, default_value = "/etc/mes-edge/cell.toml")]
    config: PathBuf,
    /// The cell's control socket, in place of --config (see `mes-edge orders --help`).
    #[arg(long, global = true)]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: ScrapCommand,
}

#[derive(Subcommand)]
enum ScrapCommand {
    /// Give scrap parts counted without a reason (of the active order, or --order) a reason.
    Reason {
        reason: String,
        #[arg(long)]
        quantity: u64,
        #[arg(long)]
        order: Option<String>,
    },
}

#[derive(Args)]
pub struct MaterialArgs {
    #[arg(long, short, global = true, default_value = "/etc/mes-edge/cell.toml")]
    config: PathBuf,
    /// The cell's control socket, in place of --config (see `mes-edge orders --help`).
    #[arg(long, global = true)]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: MaterialCommand,
}

#[derive(Subcommand)]
enum MaterialCommand {
    /// Record a material lot consumed by the running order (or --order).
    Consume {
        #[arg(long)]
        material: String,
        #[arg(long)]
        lot: String,
        #[arg(long)]
        quantity: f64,
        #[arg(long, default_value = "pcs")]
        unit: String,
        #[arg(long)]
        order: Option<String>,
    },
}

pub fn scrap(args: ScrapArgs) -> Result<()> {
    let ScrapCommand::Reason {
        reason,
        quantity,
        order,
    } = args.command;
    send(
        socket_of(args.socket, || load(&args.config))?,
        serde_json::json!({ "command": "scrap_reason", "reason": reason, "quantity": quantity, "order_id": order }),
    )
}

pub fn material(args: MaterialArgs) -> Result<()> {
    let MaterialCommand::Consume {
        material,
        lot,
        quantity,
        unit,
        order,
    } = args.command;
    send(
        socket_of(args.socket, || load(&args.config))?,
        serde_json::json!({
            "command": "consume_material",
            "material": { "material": material, "lot": lot, "quantity": quantity, "unit": unit },
            "order_id": order,
        }),
    )
}

pub fn orders(args: OrdersArgs) -> Result<()> {
    let socket = args.socket.clone();
    let config = || load(&args.config);
    let simple = |command: &str, id: &str, reason: Option<String>| serde_json::json!({ "command": command, "order_id": id, "reason": reason });
    let cmd = match args.command {
        OrdersCommand::List => return list(&config()?),
        OrdersCommand::Show { id } => return show(&config()?, &id),
        OrdersCommand::Store {
            id,
            material,
            quantity,
            ideal_cycle_s,
            lot,
            start,
        } => serde_json::json!({
            "command": if start { "store_and_start" } else { "store" },
            "order": { "id": id, "material": material, "quantity": quantity, "ideal_cycle_s": ideal_cycle_s, "lot": lot },
        }),
        OrdersCommand::Start { id } => simple("start", &id, None),
        OrdersCommand::Pause { id, reason } => simple("pause", &id, reason),
        OrdersCommand::Resume { id } => simple("resume", &id, None),
        OrdersCommand::Stop { id, reason } => simple("stop", &id, reason),
        OrdersCommand::Abort { id, reason } => simple("abort", &id, reason),
    };
    send(socket_of(socket, config)?, cmd)
}

pub fn downtime(args: DowntimeArgs) -> Result<()> {
    let DowntimeCommand::Reason { code } = args.command;
    send(
        socket_of(args.socket, || load(&args.config))?,
        serde_json::json!({ "command": "downtime_reason", "reason": code }),
    )
}

/// The control socket: given, or next to the config's store.
fn socket_of(
    socket: Option<PathBuf>,
    config: impl FnOnce() -> Result<crate::config::CellConfig>,
) -> Result<PathBuf> {
    match socket {
        Some(s) => Ok(s),
        None => Ok(crate::control::socket_path(&config()?.store.path)),
    }
}

fn send(socket: PathBuf, mut cmd: serde_json::Value) -> Result<()> {
    let obj = cmd.as_object_mut().expect("an object");
    obj.retain(|_, v| !v.is_null());
    if let Some(order) = obj.get_mut("order").and_then(|o| o.as_object_mut()) {
        order.retain(|_, v| !v.is_null());
    }
    obj.insert(
        "correlation_id".into(),
        format!("cli-{}", uuid::Uuid::now_v7()).into(),
    );
    let payload = serde_json::to_vec(&cmd)?;
    let reply: Reply = tokio_runtime()?.block_on(crate::control::request(&socket, &payload))?;
    println!("{}", serde_json::to_string(&reply)?);
    if !reply.accepted {
        bail!("rejected: {}", reply.reason.unwrap_or_default());
    }
    Ok(())
}

fn state(config: &crate::config::CellConfig) -> Result<crate::cell::CellState> {
    if !config.store.path.exists() {
        bail!(
            "no store at {} (the runtime creates it at its first start)",
            config.store.path.display()
        );
    }
    // Read-only: a look at the orders never creates, migrates or writes the store.
    Ok(Outbox::open_read_only(&config.store.path, &config.cell.joined())?.load_state()?)
}

fn list(config: &crate::config::CellConfig) -> Result<()> {
    let st = state(config)?;
    println!(
        "{:<20} {:<18} {:<10} {:>9} {:>9} {:>9}",
        "ORDER", "STATE", "MATERIAL", "TARGET", "GOOD", "SCRAP"
    );
    for o in &st.orders.orders {
        println!(
            "{:<20} {:<18} {:<10} {:>9} {:>9} {:>9}",
            o.id(),
            state_name(o),
            o.spec.material,
            o.spec.quantity,
            o.good,
            o.scrap
        );
    }
    println!(
        "{:<20} {:<18} {:<10} {:>9} {:>9} {:>9}",
        "(no order)", "", "", "", st.orders.no_order_good, st.orders.no_order_scrap
    );
    Ok(())
}

fn show(config: &crate::config::CellConfig, id: &str) -> Result<()> {
    let st = state(config)?;
    let Some(o) = st.orders.get(id) else {
        bail!("no order {id} at this cell")
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&crate::orders::JobResponse::of(o))?
    );
    Ok(())
}

fn state_name(o: &JobOrder) -> String {
    match o.substate {
        Some(sub) => format!("{:?}/{:?}", o.state, sub),
        None => format!("{:?}", o.state),
    }
}
