//! `mes-edge s7 plan|read|write`: the S7 commissioning commands. `read` and `write` talk to a
//! CPU directly (no config needed) with the driver's own connection, planner and encodings, so
//! that a controls engineer can check an address and a type at the machine before putting them
//! in the cell's config.

use crate::protocols::commissioning::with_port;
use anyhow::{anyhow, bail, Result};
use clap::Subcommand;
use mes_edge_drivers::s7::commission;
use mes_edge_drivers::s7::frame::remote_tsap;
use mes_edge_drivers::s7::{Address, Endpoint, S7Tag, S7Type};
use mes_edge_drivers::{TagId, Value};
use std::path::PathBuf;
use std::time::Duration;

/// Siemens S7 commissioning: the requests a config makes; read or write a CPU directly.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: S7Command,
}

#[derive(Subcommand)]
enum S7Command {
    /// Print the read requests a cell config makes per S7 device, at a PDU size.
    Plan {
        file: PathBuf,
        /// The PDU size the CPU accepts (typically 240 on an S7-300 or S7-1200, 480 on an S7-400,
        /// 960 on an S7-1500).
        #[arg(long, default_value_t = 480)]
        pdu: u16,
    },
    /// Read values: `read HOST[:PORT] ADDRESS[:TYPE]...`, e.g. `DB10.DBD14:real MW20 I0.1`.
    Read {
        host: String,
        #[arg(required = true, value_name = "ADDRESS[:TYPE]")]
        addresses: Vec<String>,
        #[command(flatten)]
        opts: Options,
    },
    /// Write one value: `write HOST[:PORT] ADDRESS[:TYPE] VALUE`.
    Write {
        host: String,
        #[arg(value_name = "ADDRESS[:TYPE]")]
        address: String,
        #[arg(allow_negative_numbers = true)]
        value: String,
        #[command(flatten)]
        opts: Options,
    },
}

#[derive(clap::Args)]
struct Options {
    /// Rack of the CPU.
    #[arg(long, default_value_t = 0)]
    rack: u8,
    /// Slot of the CPU: 2 on an S7-300, 1 (or 0) on an S7-1200/1500.
    #[arg(long, default_value_t = 1)]
    slot: u8,
    /// Our TSAP, instead of the default 0x0100 (hex, e.g. 0x1000).
    #[arg(long, value_parser = parse_tsap)]
    local_tsap: Option<u16>,
    /// The CPU's TSAP, instead of the one of --rack and --slot (hex, e.g. 0x0301).
    #[arg(long, value_parser = parse_tsap)]
    remote_tsap: Option<u16>,
    /// The PDU size offered; the CPU may accept less.
    #[arg(long, default_value_t = 960)]
    pdu: u16,
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
}

fn parse_tsap(s: &str) -> Result<u16, String> {
    let hex = s
        .trim_start_matches("0x")
        .trim_start_matches("0X")
        .replace('.', "");
    u16::from_str_radix(&hex, 16)
        .map_err(|_| format!("expected a TSAP in hex like 0x0102 or 01.02, found {s:?}"))
}

/// `DB10.DBD14:real`, `DB10.DBB26:string[10]` or `MW20` (its type from its width).
fn parse_tag(spec: &str) -> Result<S7Tag> {
    let (addr, ty) = match spec.split_once(':') {
        Some((a, t)) => (a, Some(t)),
        None => (spec, None),
    };
    let address: Address = addr.parse().map_err(|e: String| anyhow!(e))?;
    let data_type = match ty {
        None => S7Type::default_for(address.width),
        Some(t) => {
            let (name, length) = match t.split_once('[') {
                Some((n, rest)) => {
                    let len = rest
                        .trim_end_matches(']')
                        .parse()
                        .map_err(|_| anyhow!("expected string[N], found {t:?}"))?;
                    (n, Some(len))
                }
                None => (t, None),
            };
            S7Type::parse(name, length).map_err(|e| anyhow!(e))?
        }
    };
    data_type
        .fits(address.width)
        .map_err(|e| anyhow!("{spec}: {e}"))?;
    let mut tag = S7Tag::new(TagId(0), address, data_type);
    tag.writable = true;
    Ok(tag)
}

impl Options {
    fn endpoint(&self, host: &str) -> Result<Endpoint> {
        let address = with_port(host, 102);
        let (h, p) = address
            .rsplit_once(':')
            .ok_or_else(|| anyhow!("expected HOST[:PORT]"))?;
        Ok(Endpoint {
            host: h.trim_start_matches('[').trim_end_matches(']').to_string(),
            port: p
                .parse()
                .map_err(|_| anyhow!("expected a port number in {host:?}"))?,
            local_tsap: self.local_tsap.unwrap_or(0x0100),
            remote_tsap: self
                .remote_tsap
                .unwrap_or(remote_tsap(self.rack, self.slot)),
            pdu_size: self.pdu,
        })
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }
}

/// The usual log filters (cli/commissioning.rs).
pub const QUIET_LOGS: Option<&[&str]> = None;

pub fn main(args: Args) -> Result<()> {
    match args.command {
        S7Command::Plan { file, pdu } => plan(&file, pdu),
        S7Command::Read {
            host,
            addresses,
            opts,
        } => {
            let tags = addresses
                .iter()
                .map(|a| parse_tag(a))
                .collect::<Result<Vec<_>>>()?;
            runtime()?.block_on(read(&opts, &host, &tags))
        }
        S7Command::Write {
            host,
            address,
            value,
            opts,
        } => {
            let tag = parse_tag(&address)?;
            let value = commission::parse_value(&value, tag.data_type).map_err(|e| anyhow!(e))?;
            runtime()?.block_on(write(&opts, &host, &tag, value))
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn header(opts: &Options, ep: &Endpoint, pdu: u16) -> String {
    format!(
        "Connection: {ep}, local TSAP {:#06x}, remote TSAP {:#06x} (rack {}, slot {}), t/o {:.2} s\n\
         PDU size..: {pdu} bytes (offered {})\n",
        ep.local_tsap,
        ep.remote_tsap,
        opts.rack,
        opts.slot,
        opts.timeout().as_secs_f64(),
        ep.pdu_size,
    )
}

async fn read(opts: &Options, host: &str, tags: &[S7Tag]) -> Result<()> {
    let ep = opts.endpoint(host)?;
    let mut link = commission::connect(&ep, opts.timeout())
        .await
        .map_err(|e| anyhow!(e))?;
    print!("{}", header(opts, &ep, link.pdu_size));
    let values = commission::read(&mut link, tags, 0)
        .await
        .map_err(|e| anyhow!(e))?;
    link.close().await;
    let mut refused = 0;
    for (tag, value) in tags.iter().zip(values) {
        match value {
            Ok(v) => println!(
                "{} ({}): {}",
                tag.address,
                tag.data_type.name(),
                crate::protocols::commissioning::shown(v, tag.data_type == S7Type::Real)
            ),
            Err(e) => {
                refused += 1;
                println!("{} ({}): BAD, {e}", tag.address, tag.data_type.name());
            }
        }
    }
    if refused > 0 {
        bail!("{refused} of {} values could not be read", tags.len());
    }
    Ok(())
}

async fn write(opts: &Options, host: &str, tag: &S7Tag, value: Value) -> Result<()> {
    let ep = opts.endpoint(host)?;
    let mut link = commission::connect(&ep, opts.timeout())
        .await
        .map_err(|e| anyhow!(e))?;
    print!("{}", header(opts, &ep, link.pdu_size));
    let result = commission::write(&mut link, tag, value).await;
    link.close().await;
    result.map_err(|e| anyhow!(e))?;
    println!("Written {} ({}).", tag.address, tag.data_type.name());
    Ok(())
}

fn plan(file: &std::path::Path, pdu: u16) -> Result<()> {
    let config = crate::config::load(file).map_err(|e| anyhow!("invalid config:\n{e}"))?;
    let devices: Vec<_> = config.s7_devices().collect();
    if devices.is_empty() {
        println!("{}: no S7 devices", file.display());
        return Ok(());
    }
    for dev in devices {
        let names = crate::protocols::s7::device::tag_names(&config, dev.id);
        println!("device {:?} at {}, PDU {pdu} bytes", dev.name, dev.endpoint);
        let groups = mes_edge_drivers::s7::plan::plan_groups(
            &dev.tags,
            dev.max_gap,
            pdu,
            &Default::default(),
        );
        for g in &groups {
            let n = g.requests.len();
            println!(
                "  every {} ms: {n} request{}",
                g.interval.as_millis(),
                if n == 1 { "" } else { "s" }
            );
            for (r, req) in g.requests.iter().enumerate() {
                println!(
                    "    request {}: {} item{}",
                    r + 1,
                    req.items.len(),
                    if req.items.len() == 1 { "" } else { "s" }
                );
                for item in &req.items {
                    let tags: Vec<&str> = item
                        .tags
                        .iter()
                        .map(|&i| names.get(i).map_or("?", String::as_str))
                        .collect();
                    println!(
                        "      {} bytes {}..{} ({} byte{}): {}",
                        item.area,
                        item.start,
                        item.start + item.len as u32 - 1,
                        item.len,
                        if item.len == 1 { "" } else { "s" },
                        tags.join(", ")
                    );
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_take_a_type_after_a_colon_or_from_their_width() {
        assert_eq!(parse_tag("MW20").unwrap().data_type, S7Type::Word);
        assert_eq!(
            parse_tag("DB10.DBD14:real").unwrap().data_type,
            S7Type::Real
        );
        assert_eq!(
            parse_tag("DB10.DBB26:string[10]").unwrap().data_type,
            S7Type::String { max: 10 }
        );
        assert!(parse_tag("DB10.DBW4:real")
            .unwrap_err()
            .to_string()
            .contains("double word"));
        assert_eq!(parse_tsap("01.02").unwrap(), 0x0102);
        assert_eq!(parse_tsap("0x1000").unwrap(), 0x1000);
    }
}
