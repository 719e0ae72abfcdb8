//! `mes-edge outbox ...`: the integrator's tools on a cell's store. `stats` and `tail` look,
//! `replay` re-publishes a range on MOM's request, `verify` checks the store's integrity.

use crate::config::CellConfig;
use crate::control::StoreAnswer;
use crate::store::inspect::{self, StoredEvent};
use crate::store::{lock, replay, Outbox, StoreError};
use anyhow::{bail, Result};
use clap::Subcommand;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Subcommand)]
pub enum OutboxCommand {
    /// Depth, oldest undelivered event, last delivered sequence.
    Stats {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// The last events committed, one JSON payload a line, oldest first.
    Tail {
        #[arg(long, short)]
        config: PathBuf,
        /// How many events.
        #[arg(short = 'n', long, default_value_t = 10)]
        lines: u64,
        /// Keep printing events as they are committed, until Ctrl-C.
        #[arg(long, short)]
        follow: bool,
        /// Prefix each line with its sequence number and whether the broker has acknowledged it.
        #[arg(long)]
        status: bool,
    },
    /// Publish a range of events again, byte for byte as committed (MOM asked for them again).
    /// Puts them back in the JSON forwarder's hands (held, as a refused event is): the running
    /// service sends them within a second, a stopped one at its next start.
    Replay {
        #[arg(long, short)]
        config: PathBuf,
        /// First sequence number to publish again.
        #[arg(long)]
        from: u64,
        /// Last one (default: the last committed).
        #[arg(long)]
        to: Option<u64>,
    },
    /// Check the store: SQLite's integrity check, a gap-free sequence, every payload readable
    /// and matching its row. Exit code 1 if anything is wrong.
    Verify {
        #[arg(long, short)]
        config: PathBuf,
    },
}

impl OutboxCommand {
    fn config(&self) -> &PathBuf {
        match self {
            OutboxCommand::Stats { config }
            | OutboxCommand::Tail { config, .. }
            | OutboxCommand::Replay { config, .. }
            | OutboxCommand::Verify { config } => config,
        }
    }
}

pub fn main(cmd: OutboxCommand) -> Result<()> {
    let c = super::load(cmd.config())?;
    match cmd {
        OutboxCommand::Stats { .. } => stats(&c),
        OutboxCommand::Tail {
            lines,
            follow,
            status,
            ..
        } => tail(&c, lines, follow, status),
        OutboxCommand::Replay { from, to, .. } => replay(&c, from, to),
        OutboxCommand::Verify { .. } => verify(&c),
    }
}

fn stats(c: &CellConfig) -> Result<()> {
    if !c.store.path.exists() {
        bail!(
            "no store at {} (the runtime creates it at its first start)",
            c.store.path.display()
        );
    }
    let outbox = Outbox::open_read_only(&c.store.path, &c.cell.joined())?;
    let s = outbox.stats()?;
    let age = s.oldest_undelivered_ts.map(|ts| {
        format!(
            "{} ({} s ago)",
            crate::event::rfc3339_ms(ts),
            (mes_edge_drivers::now_ms() - ts) / 1000
        )
    });
    println!("store:               {}", c.store.path.display());
    println!("store id:            {}", s.store_id);
    println!("depth (undelivered): {}", s.depth);
    println!("oldest undelivered:  {}", age.as_deref().unwrap_or("-"));
    println!(
        "last delivered seq:  {}",
        s.last_delivered_seq
            .map(|v| v.to_string())
            .as_deref()
            .unwrap_or("-")
    );
    println!("last committed seq:  {}", s.last_seq);
    println!("rows kept:           {}", s.rows);
    println!("process values held: {}", s.values_held);
    println!("last value batch:    {}", s.last_value_batch);
    println!(
        "size in use:         {:.1} MB of {} MB",
        s.used_bytes as f64 / 1048576.0,
        c.store.max_size_mb
    );
    Ok(())
}

fn print_event(e: &StoredEvent, status: bool) {
    let payload = String::from_utf8_lossy(&e.payload);
    if status {
        let state = if e.delivered_ms.is_some() {
            "delivered"
        } else {
            "pending"
        };
        println!("{} {state} {payload}", e.seq);
    } else {
        println!("{payload}");
    }
}

fn tail(c: &CellConfig, lines: u64, follow: bool, status: bool) -> Result<()> {
    let conn = inspect::open_existing(&c.store.path)?;
    let mut last = 0;
    for e in inspect::tail(&conn, lines)? {
        print_event(&e, status);
        last = e.seq;
    }
    if !follow {
        return Ok(());
    }
    last = last.max(inspect::last_seq(&conn)?);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        for e in inspect::after(&conn, last, 1000)? {
            print_event(&e, status);
            last = e.seq;
        }
    }
}

/// The running service's store owner replays, asked on its control socket; a stopped
/// service's store is written here, with its store file locked so that none starts meanwhile.
fn replay(c: &CellConfig, from: u64, to: Option<u64>) -> Result<()> {
    let socket = crate::control::socket_path(&c.store.path);
    let asked = super::tokio_runtime()?.block_on(crate::control::ask_replay(&socket, from, to))?;
    let (r, when) = match asked {
        Some(StoreAnswer::Replayed(r)) => (r, "the running service publishes them within a second"),
        Some(StoreAnswer::Refused(why)) => bail!("{why}"),
        None => {
            let _held = lock::hold_store_file(&c.store.path).map_err(|e| match e {
                StoreError::Locked { .. } => anyhow::anyhow!(
                    "{e}\n(a service holds the store but does not answer on {}: starting or stopping? try again in a moment)",
                    socket.display()
                ),
                e => e.into(),
            })?;
            let mut conn = inspect::open_existing(&c.store.path)?;
            let r = replay::replay(&mut conn, from, to)?;
            (
                r,
                "the service is stopped: it publishes them at its next start",
            )
        }
    };
    println!(
        "{} events put back for publishing again, {} already on their way (not yet delivered, or put back before); {when}",
        r.marked, r.already_pending
    );
    if !r.missing.is_empty() {
        let ranges: Vec<String> = r
            .missing
            .iter()
            .map(|(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}..{b}")
                }
            })
            .collect();
        bail!(
            "not in the store any more (pruned after delivery, see [store] retention_hours): {}",
            ranges.join(", ")
        );
    }
    Ok(())
}

fn verify(c: &CellConfig) -> Result<()> {
    let conn = inspect::open_existing(&c.store.path)?;
    let v = inspect::verify(&conn)?;
    let range = match v.first_seq {
        Some(first) => format!("seq {first}..{}", v.last_seq),
        None => "none kept".into(),
    };
    println!("store:     {}", c.store.path.display());
    println!("rows:      {} ({range})", v.rows);
    println!("committed: {}", v.last_seq);
    if v.problems.is_empty() {
        println!("ok");
        return Ok(());
    }
    for p in &v.problems {
        println!("problem:   {p}");
    }
    bail!(
        "{} problems found in {}",
        v.problems.len(),
        c.store.path.display()
    )
}
