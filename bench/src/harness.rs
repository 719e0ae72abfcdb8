//! What every scenario needs: where things are, the load server, and starting each tool on a
//! workload.

use crate::layout::Layout;
use crate::load_server::{DeviceReport, Mode, Spec};
use crate::procs::{free_port, Proc};
use crate::workload::{cell_config, peer_spec, Workload};
use anyhow::{Context, Result};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    MesEdge,
    Python,
    NodeRed,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::MesEdge => "mes-edge",
            Tool::Python => "python-poller",
            Tool::NodeRed => "node-red",
        }
    }
}

/// How long each scenario runs; `--quick` shortens all of them for a smoke run. The full
/// windows are sized so that `bench/run` (every scenario, both peers, three runs) fits in about
/// forty minutes on the two-core machine of BENCHMARKS.md.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Durations {
    /// S1: flat out, for the committed intake.
    pub s1_intake_seconds: f64,
    /// S1: the batching publisher, for the broker's ceiling.
    pub s1_ceiling_seconds: f64,
    /// S1: each probe of the search for the steady-state rate.
    pub s1_probe_seconds: f64,
    /// S1: the hold that confirms a steady-state rate.
    pub s1_hold_seconds: f64,
    /// S1: the most the search (probes and holds) may take.
    pub s1_search_budget_seconds: f64,
    pub s1_latency_seconds: f64,
    pub s2_warmup: f64,
    pub s2_seconds: f64,
    pub s3_events: u64,
    pub s4_seconds: f64,
    pub s5_settle: f64,
    pub s5_seconds: f64,
    pub s6_seconds: f64,
    pub s7_events: u64,
}

impl Durations {
    pub fn full() -> Self {
        Durations {
            s1_intake_seconds: 10.0,
            s1_ceiling_seconds: 10.0,
            s1_probe_seconds: 15.0,
            s1_hold_seconds: 60.0,
            s1_search_budget_seconds: 120.0,
            s1_latency_seconds: 20.0,
            s2_warmup: 5.0,
            s2_seconds: 30.0,
            s3_events: 500_000,
            s4_seconds: 30.0,
            s5_settle: 5.0,
            s5_seconds: 20.0,
            s6_seconds: 30.0,
            s7_events: 10_000_000,
        }
    }
    pub fn quick() -> Self {
        Durations {
            s1_intake_seconds: 3.0,
            s1_ceiling_seconds: 3.0,
            s1_probe_seconds: 3.0,
            s1_hold_seconds: 5.0,
            s1_search_budget_seconds: 15.0,
            s1_latency_seconds: 5.0,
            s2_warmup: 3.0,
            s2_seconds: 8.0,
            s3_events: 100_000,
            s4_seconds: 10.0,
            s5_settle: 2.0,
            s5_seconds: 5.0,
            s6_seconds: 5.0,
            s7_events: 1_000_000,
        }
    }

    /// As results.json records them.
    pub fn to_map(self) -> std::collections::BTreeMap<String, f64> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(m)) => m
                .into_iter()
                .filter_map(|(k, v)| Some((k, v.as_f64()?)))
                .collect(),
            _ => Default::default(),
        }
    }
}

pub struct Ctx {
    /// This run's folder: configs, stores, logs.
    pub dir: PathBuf,
    pub bench_bin: PathBuf,
    pub mes_edge_bin: PathBuf,
    pub python: Option<PathBuf>,
    pub node_red: Option<PathBuf>,
    pub durations: Durations,
    pub peers: bool,
}

impl Ctx {
    pub fn peer_available(&self, tool: Tool) -> Result<bool> {
        let (path, what) = match tool {
            Tool::MesEdge => return Ok(true),
            Tool::Python => (&self.python, "the Python poller's venv"),
            Tool::NodeRed => (&self.node_red, "Node-RED"),
        };
        if !self.peers {
            return Ok(false);
        }
        match path {
            Some(p) if p.exists() => Ok(true),
            _ => anyhow::bail!("{what} is not installed: run bench/run (or pass --no-peers)"),
        }
    }

    pub fn tools(&self) -> Result<Vec<Tool>> {
        let mut t = vec![Tool::MesEdge];
        for p in [Tool::Python, Tool::NodeRed] {
            if self.peer_available(p)? {
                t.push(p);
            }
        }
        Ok(t)
    }

    pub fn sub(&self, name: &str) -> Result<PathBuf> {
        let d = self.dir.join(name);
        std::fs::create_dir_all(&d)?;
        Ok(d)
    }
}

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
            let config = dir.join("cell.toml");
            let text = cell_config(
                w,
                &dir.join("store/cell.db"),
                &format!("mqtt://127.0.0.1:{mqtt_port}"),
                free_port(),
            );
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
        Tool::Python => {
            let spec = dir.join("python-spec.json");
            std::fs::write(
                &spec,
                serde_json::to_string_pretty(&peer_spec(w, mqtt_port, "plant/python"))?,
            )?;
            let script = ctx.bench_dir().join("peers/python_poller.py");
            let mut cmd = Command::new(ctx.python.as_ref().context("no python")?);
            cmd.arg(script).arg(&spec);
            Proc::spawn("python-poller", cmd, dir, false)
        }
        Tool::NodeRed => {
            crate::node_red::start(ctx, dir, &peer_spec(w, mqtt_port, "plant/node-red"))
        }
    }
}

impl Ctx {
    /// The bench/ folder of the source tree (for the peers' scripts).
    pub fn bench_dir(&self) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }
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
