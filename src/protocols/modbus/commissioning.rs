//! `mes-edge modbus plan|read|write`: the Modbus commissioning commands. `read` and `write`
//! talk to a device directly (no config needed) with the driver's own transports and encodings,
//! and print the way mbpoll does, so that a controls engineer can check an address, a type and a
//! byte order at the machine before putting them in the cell's config.

use crate::protocols::commissioning::with_port;
use crate::protocols::modbus::keys::ModbusKeysOf;
use anyhow::{anyhow, bail, Context, Result};
use clap::Subcommand;
use mes_edge_drivers::modbus::commission::{self, Commissioning};
use mes_edge_drivers::modbus::encoding::DataType;
use mes_edge_drivers::modbus::plan::plan_groups;
use mes_edge_drivers::modbus::{
    default_frame_gap, ModbusTag, Parity, SerialSettings, Table, Transport,
};
use mes_edge_drivers::{TagId, Value};
use std::path::PathBuf;
use std::time::Duration;

/// Modbus commissioning: the requests a config makes; read or write a device directly.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: ModbusCommand,
}

#[derive(Subcommand)]
enum ModbusCommand {
    /// Print the read requests a cell config makes, per device and poll interval.
    Plan { file: PathBuf },
    /// Read values from a device: `read HOST[:PORT] ADDRESS`, or `read ADDRESS --serial PORT`.
    Read {
        /// HOST[:PORT] and ADDRESS (the protocol address, 0-based: register 40001 is 0); with
        /// --serial, ADDRESS alone.
        #[arg(required = true, num_args = 1..=2, value_name = "[HOST[:PORT]] ADDRESS")]
        target: Vec<String>,
        /// How many consecutive values.
        #[arg(long, short = 'c', default_value_t = 1)]
        count: u16,
        #[command(flatten)]
        opts: Options,
    },
    /// Write values to a device: `write HOST[:PORT] ADDRESS VALUE...` (several values go to
    /// consecutive addresses in one request), or `write ADDRESS VALUE... --serial PORT`.
    Write {
        #[arg(
            required = true,
            num_args = 2..,
            allow_negative_numbers = true,
            value_name = "[HOST[:PORT]] ADDRESS VALUE"
        )]
        target: Vec<String>,
        #[command(flatten)]
        opts: Options,
    },
}

#[derive(clap::Args)]
struct Options {
    /// bool, u16, i16, u32, i32, u64, i64, f32, f64 or string (default: u16, bool for coils).
    #[arg(long = "type", short = 't')]
    data_type: Option<String>,
    /// Byte order of multi-register values: ABCD, BADC, CDAB or DCBA.
    #[arg(long, short = 'o', default_value = "ABCD")]
    order: String,
    /// holding, input, coil or discrete_input.
    #[arg(long, default_value = "holding")]
    table: String,
    /// Unit id (slave address).
    #[arg(long, short = 'u', default_value_t = 1)]
    unit: u8,
    /// A bool in one bit of a register (0 to 15).
    #[arg(long)]
    bit: Option<u8>,
    /// Registers of a string (two characters each).
    #[arg(long)]
    length: Option<u16>,
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Send RTU frames over the TCP connection (a transparent serial gateway).
    #[arg(long)]
    rtu_over_tcp: bool,
    /// Use Modbus RTU on this serial port instead of TCP.
    #[arg(long)]
    serial: Option<String>,
    #[arg(long, short = 'b', default_value_t = 19200)]
    baud: u32,
    /// none, even or odd.
    #[arg(long, short = 'P', default_value = "even")]
    parity: String,
    #[arg(long, short = 'd', default_value_t = 8)]
    data_bits: u8,
    #[arg(long, short = 's', default_value_t = 1)]
    stop_bits: u8,
    /// Always use FC 15 / FC 16, also for one coil or register.
    #[arg(long)]
    multiple_writes: bool,
}

/// The usual log filters (cli/commissioning.rs).
pub const QUIET_LOGS: Option<&[&str]> = None;

pub fn main(args: Args) -> Result<()> {
    match args.command {
        ModbusCommand::Plan { file } => plan(&file),
        ModbusCommand::Read {
            target,
            count,
            opts,
        } => {
            let (transport, rest) = opts.transport(&target)?;
            let [address] = rest else {
                bail!("expected HOST[:PORT] ADDRESS, or ADDRESS with --serial");
            };
            runtime()?.block_on(read(&opts, transport, parse_address(address)?, count))
        }
        ModbusCommand::Write { target, opts } => {
            let (transport, rest) = opts.transport(&target)?;
            let Some((address, values)) = rest.split_first().filter(|(_, v)| !v.is_empty()) else {
                bail!("expected HOST[:PORT] ADDRESS VALUE..., or ADDRESS VALUE... with --serial");
            };
            runtime()?.block_on(write(&opts, transport, parse_address(address)?, values))
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn parse_address(s: &str) -> Result<u16> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u16::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|_| anyhow!("expected an address from 0 to 65535 (0x0 to 0xFFFF), found {s:?}"))
}

impl Options {
    /// The transport, and the positional arguments after HOST[:PORT].
    fn transport<'a>(&self, target: &'a [String]) -> Result<(Transport, &'a [String])> {
        if let Some(port) = &self.serial {
            if self.rtu_over_tcp {
                bail!("--rtu-over-tcp goes with HOST[:PORT], not with --serial");
            }
            let parity: Parity = self.parity.parse().map_err(|e: String| anyhow!(e))?;
            if !(7..=8).contains(&self.data_bits) || !(1..=2).contains(&self.stop_bits) {
                bail!("expected 7 or 8 data bits and 1 or 2 stop bits");
            }
            let mut s = SerialSettings::new(port.clone());
            s.baud_rate = self.baud;
            s.data_bits = self.data_bits;
            s.parity = parity;
            s.stop_bits = self.stop_bits;
            s.frame_gap = default_frame_gap(s.baud_rate, s.data_bits, parity, s.stop_bits);
            return Ok((Transport::Rtu(s), target));
        }
        let Some((host, rest)) = target.split_first() else {
            bail!("expected HOST[:PORT]");
        };
        let address = with_port(host, 502);
        let transport = if self.rtu_over_tcp {
            Transport::RtuOverTcp { address }
        } else {
            Transport::Tcp { address }
        };
        Ok((transport, rest))
    }

    fn table(&self) -> Result<Table> {
        self.table.parse().map_err(|e: String| anyhow!(e))
    }

    fn data_type(&self, table: Table) -> Result<DataType> {
        let ty = match &self.data_type {
            Some(t) => t.parse().map_err(|e: String| anyhow!(e))?,
            None if table.is_bits() || self.bit.is_some() => DataType::Bool,
            None => DataType::U16,
        };
        if table.is_bits() && ty != DataType::Bool {
            bail!("coils and discrete inputs hold single bits: expected --type bool");
        }
        if ty == DataType::String && self.length.is_none() {
            bail!("a string needs --length (registers, two characters each)");
        }
        if ty == DataType::Bool && !table.is_bits() && self.bit.is_none() {
            bail!("a bool in a register table needs --bit (0 to 15)");
        }
        if self.bit.is_some_and(|b| b > 15) {
            bail!("expected --bit from 0 to 15");
        }
        Ok(ty)
    }

    /// One tag for the value at `address`, as a config entry would describe it.
    fn tag(&self, address: u16) -> Result<ModbusTag> {
        let table = self.table()?;
        let mut tag = ModbusTag::new(TagId(0), table, address, self.data_type(table)?);
        tag.order = self.order.parse().map_err(|e: String| anyhow!(e))?;
        tag.bit = self.bit;
        tag.length = self.length;
        tag.writable = true;
        Ok(tag)
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }

    /// The header mbpoll prints before the values.
    fn header(&self, transport: &Transport, tag: &ModbusTag, count: u16) -> String {
        let protocol = match transport {
            Transport::Tcp { .. } => "Modbus TCP",
            Transport::RtuOverTcp { .. } => "Modbus RTU over TCP",
            Transport::Rtu(_) => "Modbus RTU",
        };
        let link = match transport {
            Transport::Tcp { address } | Transport::RtuOverTcp { address } => {
                let (host, port) = address.rsplit_once(':').unwrap_or((address, "502"));
                format!("{host}, port {port}")
            }
            Transport::Rtu(s) => format!(
                "{}, {}-{}{}{}",
                s.port,
                s.baud_rate,
                s.data_bits,
                match s.parity {
                    Parity::None => "N",
                    Parity::Even => "E",
                    Parity::Odd => "O",
                },
                s.stop_bits
            ),
        };
        let table = match tag.table {
            Table::Coil => "discrete output (coil)",
            Table::DiscreteInput => "discrete input",
            Table::Holding => "output (holding) register",
            Table::Input => "input register",
        };
        let ty = match tag.data_type {
            DataType::Bool if tag.table.is_bits() => "bit".to_string(),
            DataType::Bool => format!("bit {} of a 16-bit register", tag.bit.unwrap_or(0)),
            DataType::String => format!(
                "string over {} registers ({:?})",
                tag.length.unwrap_or(1),
                tag.order
            ),
            t => format!("{} ({:?})", t.name(), tag.order),
        };
        format!(
            "Protocol configuration: {protocol}\n\
             Slave configuration...: address = [{}]\n\
             \x20                       start reference = {}, count = {count}\n\
             Communication.........: {link}, t/o {:.2} s\n\
             Data type.............: {ty}, {table} table\n",
            self.unit,
            tag.address,
            self.timeout().as_secs_f64(),
        )
    }
}

async fn read(opts: &Options, transport: Transport, address: u16, count: u16) -> Result<()> {
    let first = opts.tag(address)?;
    commission::read_size(&first, count).map_err(|e| anyhow!(e))?;
    print!("{}", opts.header(&transport, &first, count.max(1)));
    let device = Commissioning::open(&transport, opts.unit, opts.timeout())
        .await
        .map_err(|e| anyhow!(e))?;
    println!("\n-- Polling slave {}...", opts.unit);
    let values = device.read(&first, count).await.map_err(|e| anyhow!(e))?;
    for (address, value) in values {
        let value = value.ok_or_else(|| anyhow!("the reply is shorter than asked"))?;
        println!("[{address}]: \t{}", shown(value, first.data_type));
    }
    Ok(())
}

/// A value the way mbpoll shows it: bits as 0/1, f32 in its own precision.
fn shown(value: Value, ty: DataType) -> String {
    crate::protocols::commissioning::shown(value, ty == DataType::F32)
}

async fn write(
    opts: &Options,
    transport: Transport,
    address: u16,
    values: &[String],
) -> Result<()> {
    let first = opts.tag(address)?;
    let op = commission::write_request(&first, opts.unit, values, opts.multiple_writes)
        .map_err(|e| anyhow!(e))?;
    print!("{}", opts.header(&transport, &first, values.len() as u16));
    Commissioning::open(&transport, opts.unit, opts.timeout())
        .await
        .map_err(|e| anyhow!(e))?
        .write(&op)
        .await
        .map_err(|e| anyhow!(e))?;
    println!("\nWritten {} references.", values.len());
    Ok(())
}

fn plan(file: &std::path::Path) -> Result<()> {
    let config = crate::config::load(file).map_err(|e| anyhow!("invalid config:\n{e}"))?;
    let lines: Vec<_> = config.modbus_lines().collect();
    if lines.is_empty() {
        println!("{}: no Modbus devices", file.display());
        return Ok(());
    }
    for line in lines {
        println!("line {}", line.transport);
        for dev in &line.devices {
            let names = &config
                .devices
                .get(dev.id.0 as usize)
                .context("device numbering")?
                .modbus()
                .tags;
            println!("  device {:?}, unit {}", dev.name, dev.unit);
            let groups = plan_groups(&dev.tags, dev.limits, &Default::default());
            let mut per_second = 0.0;
            for g in &groups {
                println!(
                    "    every {} ms: {} request{}",
                    g.interval.as_millis(),
                    g.blocks.len(),
                    if g.blocks.len() == 1 { "" } else { "s" }
                );
                per_second += g.blocks.len() as f64 / g.interval.as_secs_f64().max(0.001);
                for b in g.blocks.iter() {
                    let tags: Vec<&str> = b.tags.iter().map(|&i| names[i].name.as_str()).collect();
                    println!(
                        "      FC {} {} {}..{} ({} {}): {}",
                        b.table.read_function(),
                        b.table.name(),
                        b.start,
                        b.end() - 1,
                        b.count,
                        match (b.table.is_bits(), b.count) {
                            (true, 1) => "bit",
                            (true, _) => "bits",
                            (false, 1) => "register",
                            (false, _) => "registers",
                        },
                        tags.join(", ")
                    );
                }
            }
            println!("    {per_second:.1} requests a second");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_show_like_mbpoll_and_addresses_parse() {
        assert_eq!(shown(Value::Float(0.1f32 as f64), DataType::F32), "0.1");
        assert_eq!(parse_address("0x10").unwrap(), 16);
        assert!(parse_address("70000").is_err());
    }
}
