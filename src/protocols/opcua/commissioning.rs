//! `mes-edge opcua endpoints|browse|read|trust`: commissioning an OPC UA device with the same
//! connection code and security options as the running cell.

use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;

/// OPC UA commissioning: a server's endpoints, browse and read nodes, trust its certificate.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: OpcuaCommand,
}

#[derive(Subcommand)]
enum OpcuaCommand {
    /// List the server's endpoints: security policy and mode, user identities, certificate.
    Endpoints {
        #[command(flatten)]
        server: Server,
    },
    /// List the children of a node (default: the Objects folder) with node id, browse name,
    /// node class and data type.
    Browse {
        #[command(flatten)]
        server: Server,
        /// `ns=2;s=Press`, `nsu=URI;s=Press`, `i=85`.
        #[arg(default_value = "i=85")]
        node: String,
    },
    /// Read a node's value, status, source timestamp and data type.
    Read {
        #[command(flatten)]
        server: Server,
        node: String,
    },
    /// Trust the server's certificate: fetch it and write it into the PKI folder's trusted/.
    Trust {
        #[command(flatten)]
        server: Server,
        /// Only trust a certificate with this SHA-1 thumbprint (hex, as `endpoints` shows it
        /// and as the server's owner reads it off the machine).
        #[arg(long)]
        thumbprint: Option<String>,
    },
}

/// The server and how to connect to it: the options of an `opcua` device in a cell config.
#[derive(clap::Args)]
struct Server {
    /// `opc.tcp://host:port[/path]`
    endpoint: String,
    /// Take the connection settings (security, identity, PKI folder) of a device of this cell
    /// config; options given here override them.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The device in --config (default: its only OPC UA device).
    #[arg(long)]
    device: Option<String>,
    /// None, Basic256Sha256, Aes128_Sha256_RsaOaep, Aes256_Sha256_RsaPss.
    #[arg(long)]
    security_policy: Option<String>,
    /// None, Sign, SignAndEncrypt (default: None with policy None, else SignAndEncrypt).
    #[arg(long)]
    security_mode: Option<String>,
    #[arg(long)]
    username: Option<String>,
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// The name of an environment variable holding the password.
    #[arg(long)]
    password_env: Option<String>,
    /// X.509 user identity: certificate file.
    #[arg(long)]
    user_cert: Option<PathBuf>,
    /// X.509 user identity: private key file.
    #[arg(long)]
    user_key: Option<PathBuf>,
    /// Our certificate and the trusted/ and rejected/ server certificates (default: the
    /// device's, with --config; else ./pki).
    #[arg(long)]
    pki_dir: Option<PathBuf>,
    /// Bound on each request.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
}

/// The commissioning commands say what went wrong themselves; async-opcua's logs would repeat it.
pub const QUIET_LOGS: Option<&[&str]> = Some(&[
    "opcua_client=off",
    "opcua_crypto=off",
    "opcua_core=off",
    "opcua_types=off",
]);

pub fn main(args: Args) -> Result<()> {
    imp::main(args)
}

#[cfg(not(feature = "opcua"))]
mod imp {
    pub fn main(_: super::Args) -> anyhow::Result<()> {
        anyhow::bail!("this build has no OPC UA (built without the `opcua` feature)")
    }
}

#[cfg(feature = "opcua")]
mod imp {
    use super::*;
    use anyhow::{bail, Context};
    use mes_edge_drivers::opcua::{
        commission, ClientSettings, Connection, Identity, Secret, SecurityMode, SecurityPolicy,
    };
    use std::time::Duration;

    pub fn main(args: Args) -> Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(run(args.command))
    }

    async fn run(cmd: OpcuaCommand) -> Result<()> {
        match cmd {
            OpcuaCommand::Endpoints { server } => {
                let (conn, s) = server.connection()?;
                let list = commission::endpoints(&conn, &s)
                    .await
                    .map_err(anyhow::Error::msg)?;
                for e in list {
                    println!(
                        "{}  {}  level {}  users: {}  certificate: {}",
                        e.url,
                        e.security,
                        e.security_level,
                        if e.user_tokens.is_empty() {
                            "Anonymous".to_string()
                        } else {
                            e.user_tokens.join(", ")
                        },
                        e.thumbprint.as_deref().unwrap_or("-")
                    );
                }
            }
            OpcuaCommand::Browse { server, node } => {
                let (conn, s) = server.connection()?;
                let children = commission::browse(&conn, &s, &node)
                    .await
                    .map_err(anyhow::Error::msg)?;
                let rows: Vec<[String; 4]> = children
                    .into_iter()
                    .map(|c| {
                        [
                            c.node_id,
                            c.browse_name,
                            c.node_class,
                            c.data_type.unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect();
                print_table(["NODE ID", "BROWSE NAME", "CLASS", "DATA TYPE"], &rows);
            }
            OpcuaCommand::Read { server, node } => {
                let (conn, s) = server.connection()?;
                let r = commission::read(&conn, &s, &node)
                    .await
                    .map_err(anyhow::Error::msg)?;
                println!("node:        {}", r.node_id);
                println!("data type:   {}", r.data_type.as_deref().unwrap_or("-"));
                println!("value:       {}", r.raw);
                println!("status:      {} ({:?})", r.status, r.quality);
                println!(
                    "source time: {}",
                    r.source_ts_ms
                        .map(crate::event::rfc3339_ms)
                        .unwrap_or_else(|| "-".into())
                );
                if let Some(p) = r.problem {
                    println!("the cell would read it as bad: {p}");
                }
            }
            OpcuaCommand::Trust { server, thumbprint } => {
                let (conn, s) = server.connection()?;
                let t = commission::trust(&conn, &s, thumbprint.as_deref())
                    .await
                    .map_err(anyhow::Error::msg)?;
                println!("trusted:     {}", t.subject);
                println!("thumbprint:  {}", t.thumbprint);
                println!("valid until: {}", t.valid_until);
                println!("written to:  {}", t.path.display());
                if thumbprint.is_none() {
                    println!(
                        "check the thumbprint with the server's owner; remove the file to withdraw the trust"
                    );
                }
            }
        }
        Ok(())
    }

    fn print_table<const N: usize>(head: [&str; N], rows: &[[String; N]]) {
        let mut width = head.map(str::len);
        for r in rows {
            for (w, c) in width.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cells: Vec<&str>| {
            let mut out = String::new();
            for (i, c) in cells.iter().enumerate() {
                if i + 1 == N {
                    out.push_str(c);
                } else {
                    out.push_str(&format!("{c:<w$}  ", w = width[i]));
                }
            }
            println!("{}", out.trim_end());
        };
        line(head.to_vec());
        for r in rows {
            line(r.iter().map(String::as_str).collect());
        }
    }

    impl Server {
        fn connection(&self) -> Result<(Connection, ClientSettings)> {
            let from_config = match &self.config {
                Some(path) => Some(device_connection(path, self.device.as_deref())?),
                None => None,
            };
            let endpoint = self.endpoint.clone();
            let policy = match &self.security_policy {
                Some(p) => SecurityPolicy::parse(p).map_err(anyhow::Error::msg)?,
                None => from_config
                    .as_ref()
                    .map_or(SecurityPolicy::None, |c| c.policy),
            };
            let mode = match &self.security_mode {
                Some(m) => SecurityMode::parse(m).map_err(anyhow::Error::msg)?,
                None => match (&from_config, &self.security_policy) {
                    (Some(c), None) => c.mode,
                    _ => SecurityMode::default_for(policy),
                },
            };
            if let Some(why) = mes_edge_drivers::opcua::security_mismatch(policy, mode) {
                bail!("{why}");
            }
            let identity = if let Some(user) = &self.username {
                let password = match (&self.password_file, &self.password_env) {
                    (Some(f), None) => Secret::File(f.clone()),
                    (None, Some(v)) => Secret::Env(v.clone()),
                    _ => bail!(
                        "--username needs its password from --password-file or --password-env"
                    ),
                };
                Identity::UserName {
                    user: user.clone(),
                    password,
                }
            } else if let (Some(cert), Some(key)) = (&self.user_cert, &self.user_key) {
                Identity::X509 {
                    cert: cert.clone(),
                    key: key.clone(),
                }
            } else if self.user_cert.is_some() || self.user_key.is_some() {
                bail!("an X.509 user identity needs both --user-cert and --user-key");
            } else {
                from_config
                    .as_ref()
                    .map_or(Identity::Anonymous, |c| c.identity.clone())
            };
            let pki_dir = match (&self.pki_dir, &from_config) {
                (Some(p), _) => p.clone(),
                (None, Some(c)) => c.pki_dir.clone(),
                (None, None) => PathBuf::from("pki"),
            };
            let timeout = Duration::from_millis(self.timeout_ms.max(1));
            Ok((
                Connection {
                    endpoint,
                    policy,
                    mode,
                    identity,
                    pki_dir,
                },
                ClientSettings {
                    request_timeout: timeout,
                    keep_alive: Duration::from_secs(5),
                },
            ))
        }
    }

    fn device_connection(path: &std::path::Path, name: Option<&str>) -> Result<Connection> {
        let config =
            crate::config::load(path).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))?;
        let devices: Vec<_> = config.opcua_devices().cloned().collect();
        let found = match name {
            Some(n) => devices.into_iter().find(|d| d.name == n),
            None if devices.len() == 1 => devices.into_iter().next(),
            None => bail!(
                "{} has {} OPC UA devices; name one with --device",
                path.display(),
                devices.len()
            ),
        };
        found.map(|d| d.connection).with_context(|| {
            format!(
                "no OPC UA device {:?} in {}",
                name.unwrap_or(""),
                path.display()
            )
        })
    }
}
