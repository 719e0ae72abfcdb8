//! What every scenario needs: where things are, the load server, and starting each tool on a
//! workload.

use crate::ctx::{Ctx, Tool};
use crate::layout::Layout;
use crate::load_server::{DeviceReport, Mode, Spec};
use crate::procs::{free_port, Proc};
use crate::workload::{cell_config, peer_spec, Workload};
use anyhow::{Context, Result};
use std::io::BufRead;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The load server process, and every line it printed after READY.
pub struct LoadServer {
    pub proc: Proc,
    pub ports: Vec<u16>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl LoadServer {
    pub fn start(ctx: &Ctx, dir: &Path, spec: &Spec) -> Result<LoadServer> {
        let mut cmd = Command::new(&ctx.bench_bin);
        cmd.arg("load-server")
            .arg("--spec")
            .arg(serde_json::to_string(spec)?);
        Self::from_command("load-server", cmd, dir)
    }

    /// Any load server that speaks the same lines (`READY ports`, `CHANGE ...`).
    pub fn from_command(name: &str, cmd: Command, dir: &Path) -> Result<LoadServer> {
        let mut proc = Proc::spawn(name, cmd, dir, true)?;
        let ports = proc
            .wait_line("READY", Duration::from_secs(30))?
            .split(',')
            .map(|p| p.parse::<u16>())
            .collect::<Result<Vec<_>, _>>()?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = proc.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in out.lines() {
                match line {
                    Ok(l) => sink.lock().unwrap().push(l),
                    Err(_) => return,
                }
            }
        });
        Ok(LoadServer { proc, ports, lines })
    }

    pub fn reset(&mut self) -> Result<()> {
        self.proc.send_line("reset")
    }

    pub fn report(&mut self) -> Result<Vec<DeviceReport>> {
        let before = self.lines.lock().unwrap().len();
        self.proc.send_line("report")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(r) = self.lines.lock().unwrap()[before..]
                .iter()
                .find_map(|l| l.strip_prefix("REPORT "))
            {
                return Ok(serde_json::from_str(r)?);
            }
            anyhow::ensure!(Instant::now() < deadline, "the load server sent no report");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `CHANGE device tag value unix_ns` lines so far, as (tag, value, unix_ns).
    pub fn changes(&self) -> Vec<(usize, f64, i64)> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| {
                let mut f = l.strip_prefix("CHANGE ")?.split_whitespace().skip(1);
                Some((
                    f.next()?.parse().ok()?,
                    f.next()?.parse().ok()?,
                    f.next()?.parse().ok()?,
                ))
            })
            .collect()
    }
}

pub fn load_spec(devices: usize, layout: &str, mode: Mode) -> Spec {
    Spec {
        devices,
        registers: 1000,
        layout: layout.to_string(),
        mode,
    }
}

/// The topic filter a tool's messages arrive under.
pub fn topic_filter(tool: Tool) -> &'static str {
    match tool {
        Tool::MesEdge => "mes/bench/site/area/line/cell/events/#",
        Tool::Python => "plant/python/#",
        Tool::NodeRed => "plant/node-red/#",
    }
}

/// Starts `tool` polling the workload and publishing to the broker on `mqtt_port`.
/// `notify`: for mes-edge, a NOTIFY_SOCKET path to hear READY=1 on.
pub fn start_tool(
    ctx: &Ctx,
    tool: Tool,
    dir: &Path,
    w: &Workload,
    mqtt_port: u16,
    notify: Option<&Path>,
) -> Result<Proc> {
    match tool {
        Tool::MesEdge => {
            let text = cell_config(
                w,
                &dir.join("store/cell.db"),
                &format!("mqtt://127.0.0.1:{mqtt_port}"),
                free_port(),
            );
            start_mes_edge(ctx, dir, &text, notify)
        }
        Tool::Python => start_python(
            ctx,
            dir,
            "python_poller.py",
            &peer_spec(w, mqtt_port, "plant/python"),
        ),
        Tool::NodeRed => {
            crate::node_red::start(ctx, dir, &peer_spec(w, mqtt_port, "plant/node-red"))
        }
    }
}

/// `mes-edge run` on the cell config `text` (written to `dir/cell.toml`).
pub fn start_mes_edge(ctx: &Ctx, dir: &Path, text: &str, notify: Option<&Path>) -> Result<Proc> {
    let config = dir.join("cell.toml");
    std::fs::write(&config, text)?;
    let mut cmd = Command::new(&ctx.mes_edge_bin);
    cmd.arg("run")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "warn");
    if let Some(n) = notify {
        cmd.env("NOTIFY_SOCKET", n);
    }
    Proc::spawn("mes-edge", cmd, dir, false)
}

/// A Python poller of bench/peers (`script`) in the peers' venv, given `spec` as a JSON file.
pub fn start_python(
    ctx: &Ctx,
    dir: &Path,
    script: &str,
    spec: &impl serde::Serialize,
) -> Result<Proc> {
    let path = dir.join("python-spec.json");
    std::fs::write(&path, serde_json::to_string_pretty(spec)?)?;
    let mut cmd = Command::new(ctx.python.as_ref().context("no python")?);
    cmd.arg(ctx.bench_dir().join("peers").join(script))
        .arg(&path);
    Proc::spawn("python-poller", cmd, dir, false)
}

pub fn layout(spec: &str) -> Layout {
    Layout::parse(spec).expect("a valid layout")
}

/// Waits until `cond` holds or `timeout` passes; returns whether it held.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
