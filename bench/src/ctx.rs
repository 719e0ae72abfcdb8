//! What every scenario is handed: the run's folder, the binaries, the peers available and how
//! long each scenario runs.

use anyhow::Result;
use std::path::PathBuf;

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
    /// S8: the cells of the plant (fewer if the machine's memory does not hold them).
    pub s8_cells: u64,
    /// S8: production before the active broker is killed, and after.
    pub s8_seconds: f64,
    pub s8_after_kill: f64,
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
            // The runtime hands back the start's pages 2 s after READY and the idle cell's code
            // comes back in over the next minute (docs/FOOTPRINT.md): idle is measured after it.
            s5_settle: 60.0,
            s5_seconds: 20.0,
            s6_seconds: 30.0,
            s7_events: 10_000_000,
            s8_cells: 100,
            s8_seconds: 30.0,
            s8_after_kill: 30.0,
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
            s8_cells: 100,
            s8_seconds: 10.0,
            s8_after_kill: 15.0,
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

impl Ctx {
    /// The bench/ folder of the source tree (for the peers' scripts).
    pub fn bench_dir(&self) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }
}
