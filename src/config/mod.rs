//! The cell config: one TOML file per cell. [`load`] parses and checks it; every problem is
//! reported as `file:line:column: what was expected`, because the person reading it is
//! commissioning a cell with the file open in an editor.

/// A location in the file, as the keys leading to it: `path!["signals", key, "tag"]`. Defined
/// before the modules below so that each of them can use it, and before `crate::protocols`
/// (`#[macro_use]` in `lib.rs`) so that each protocol's folder can.
macro_rules! path {
    ($($seg:expr),* $(,)?) => { vec![$(Seg::from($seg)),*] };
}

mod broker;
mod cell_path;
mod check;
mod commands;
mod defaults;
mod device;
mod device_keys;
pub mod lab;
pub(crate) mod locate;
pub(crate) mod need;
pub(crate) mod own_keys;
pub(crate) mod parsed;
pub(crate) mod protocol;
mod protocols;
mod resolved;
mod serde_keys;
mod sparkplug;
pub mod tag;
mod time;
pub(crate) mod types;
mod url;
pub mod values;
pub mod writes;

pub use broker::{Broker, BrokerAccess, BrokerEntry};
pub use cell_path::CellPath;
pub use commands::{AllowConfig, AllowedValue, CommandsConfig};
/// The command names `[commands]` lists may hold.
pub mod commands_names {
    pub use super::commands::{expand, COMMAND_NAMES, ORDER_COMMANDS, WRITE_SOURCES};
}
pub use locate::{Located, Problem, Seg};
pub use resolved::{
    CellConfig, CounterPlan, MaterialPlan, OrderTags, PartRecordPlan, PartTrigger, RejectPlan,
    ShiftPlan, SignalRoles, StatePlan,
};
pub use sparkplug::SparkplugConfig;
pub use tag::{TagDescription, ValueType};
pub use time::{parse_time, parse_zone};
pub use types::*;
pub use url::BrokerUrl;

use std::path::{Path, PathBuf};

/// A config that failed to load or check, with every problem found.
#[derive(Debug)]
pub struct ConfigError {
    pub problems: Vec<Located>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Reads, parses and checks a cell config. Relative paths inside it are taken relative to the
/// file's own folder, so a config works the same whatever directory the service starts in.
pub fn load(path: &Path) -> Result<CellConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        problems: vec![Located {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        }],
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    parse_in(path, &text, Some(&base))
}

/// What [`load`] gives, with the warnings (allowed, probably a mistake) located in the file.
pub fn load_with_warnings(path: &Path) -> Result<(CellConfig, Vec<Located>), ConfigError> {
    let config = load(path)?;
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut warnings: Vec<Located> = check::warnings(&config, path)
        .into_iter()
        .map(|p| locate::locate(path, &text, p))
        .collect();
    warnings.sort_by_key(|p| (p.line, p.column));
    Ok((config, warnings))
}

/// A cell of one Modbus device with one good counter, for unit tests: `tag` is added to the
/// counter's tag (e.g. `publish = true`), `more` to the end of the file (e.g. a section).
#[cfg(test)]
pub(crate) fn test_cell(tag: &str, more: &str) -> CellConfig {
    let text = format!(
        r#"
[cell]
enterprise = "e"
site = "s"
area = "a"
line = "l"
cell = "c"

[[devices]]
name = "plc"
protocol = "modbus-tcp"
host = "127.0.0.1"

[[devices.tags]]
name = "good"
table = "holding"
address = 0
type = "u32"
{tag}

[signals.good_count]
tag = "good"

[store]
path = "cell.db"

[mqtt]
url = "mqtt://127.0.0.1"
{more}"#
    );
    parse(Path::new("cell.toml"), &text).unwrap()
}

/// The sections every test config needs besides its devices: `[cell]`, `[store]`, `[mqtt]`.
#[cfg(test)]
pub(crate) const TEST_SECTIONS: &str = "[cell]\nenterprise = \"e\"\nsite = \"s\"\narea = \"a\"\n\
    line = \"l\"\ncell = \"c\"\n[store]\npath = \"cell.db\"\n[mqtt]\nurl = \"mqtt://127.0.0.1\"\n";

/// A cell without devices whose `[mqtt]` section is `mqtt`, for unit tests.
#[cfg(test)]
pub(crate) fn test_mqtt(mqtt: &str) -> CellConfig {
    let text = format!(
        "[cell]\nenterprise = \"a\"\nsite = \"b\"\narea = \"c\"\nline = \"d\"\ncell = \"e\"\n\
         [store]\npath = \"cell.db\"\n[mqtt]\n{mqtt}"
    );
    parse(Path::new("cell.toml"), &text).unwrap()
}

/// Parses and checks config text; `path` is only used in messages.
pub fn parse(path: &Path, text: &str) -> Result<CellConfig, ConfigError> {
    parse_in(path, text, None)
}

/// [`parse`], relative paths in the file taken from `base` if given.
fn parse_in(path: &Path, text: &str, base: Option<&Path>) -> Result<CellConfig, ConfigError> {
    let located = |problems: Vec<Problem>| {
        let mut problems: Vec<Located> = problems
            .into_iter()
            .map(|p| locate::locate(path, text, p))
            .collect();
        problems.sort_by_key(|p| (p.line, p.column));
        ConfigError { problems }
    };
    let toml_error = |e: toml::de::Error| {
        let problem = Problem::at_span(e.span(), e.message().trim_end().to_string());
        located(vec![problem])
    };
    let mut doc = toml::de::DeTable::parse(text).map_err(toml_error)?;
    let own = device_keys::take_own(doc.get_mut());
    let mut file = <CellFile as serde::Deserialize>::deserialize(toml::de::Deserializer::from(doc))
        .map_err(toml_error)?;
    let device_keys::Handed {
        mut problems,
        fatal,
    } = device_keys::hand_out(&mut file, own);
    if fatal {
        return Err(located(problems));
    }
    if let Some(base) = base {
        file.resolve_paths(base);
    }
    match check::check(&file) {
        Ok(parsed) if problems.is_empty() => {
            CellConfig::resolve(file, parsed).map_err(|p| located(vec![p]))
        }
        Ok(_) => Err(located(problems)),
        Err(more) => {
            problems.extend(more);
            Err(located(problems))
        }
    }
}

impl CellFile {
    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.store.path);
        for p in [
            &mut self.mqtt.ca_file,
            &mut self.mqtt.cert_file,
            &mut self.mqtt.key_file,
            &mut self.mqtt.password_file,
            &mut self.health.token_file,
        ]
        .into_iter()
        .flatten()
        {
            fix(p);
        }
        for entry in self.mqtt.urls.iter_mut().flatten() {
            if let BrokerEntry::Table(own) = entry {
                for (_, p) in own.files_mut() {
                    if let Some(p) = p {
                        fix(p);
                    }
                }
            }
        }
        for d in &mut self.devices {
            protocols::of(d).resolve_paths(d, base);
        }
    }
}
