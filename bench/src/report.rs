//! What a run records: every figure of every repetition, per tool, with its target. This is
//! `results.json`, the single source of BENCHMARKS.md (`mes-edge-bench report`, in
//! `markdown.rs`): the medians, spreads, ratios and met / not met are all worked out there from
//! these values, never typed.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const TOOLS: [&str; 3] = ["mes-edge", "python-poller", "node-red"];

/// A threshold for one tool's median, or a ratio between a peer's median and mes-edge's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// mes-edge's median below `value` (strictly).
    Below { value: f64 },
    /// mes-edge's median at most `value`.
    AtMost { value: f64 },
    /// mes-edge's median at least `value`.
    AtLeast { value: f64 },
    /// mes-edge's worst run at most `value` (losses: one bad run is a failure).
    EveryRunAtMost { value: f64 },
    /// Each named peer's median at least so many times mes-edge's (less is better).
    PeerTimes { times: BTreeMap<String, f64> },
    /// mes-edge's median against another figure's median: at least `share` of it (a ceiling)
    /// where more is better, at most `share` of it (a baseline) where less is better.
    ShareOf { figure: String, share: f64 },
    /// mes-edge's median at most another figure's median plus `plus`: a latency judged against
    /// its period and the disk's slowest fsyncs measured in the same run, so that a reader sees
    /// whether the runtime or the disk made the tail.
    AtMostFigurePlus { figure: String, plus: f64 },
}

pub use crate::bounds::Bound;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FigureData {
    pub scenario: String,
    /// Stable name for targets and bounds to refer to (`s1.ceiling`).
    pub key: String,
    pub name: String,
    pub unit: String,
    pub digits: usize,
    pub less_is_better: bool,
    /// Per tool, one value per run (null where a run produced none).
    pub values: BTreeMap<String, Vec<Option<f64>>>,
    /// Per tool, why there is no figure (a peer without a durable store, a failure).
    pub why_none: BTreeMap<String, String>,
    pub target: Option<Target>,
    pub bound: Option<Bound>,
    /// Whether peer / mes-edge ratios mean anything (not for counts of different things).
    #[serde(default = "yes")]
    pub ratios: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoadAverage {
    pub scenario: String,
    pub run: usize,
    pub before: [f64; 3],
    pub after: [f64; 3],
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Results {
    /// Machine facts (cores, CPU, memory, kernel, disk fsync rate, peers' versions).
    pub machine: BTreeMap<String, String>,
    /// The build measured: commit, features, profile.
    pub build: BTreeMap<String, String>,
    pub runs: usize,
    pub quick: bool,
    /// Per scenario, its workload in words, with the parameters this run used.
    pub scenarios: BTreeMap<String, String>,
    /// Measured windows, seconds (or counts), as the run used them.
    pub durations: BTreeMap<String, f64>,
    pub started: String,
    pub finished: String,
    pub load: Vec<LoadAverage>,
    pub figures: Vec<FigureData>,
    pub notes: Vec<String>,
    /// A page merged from several runs (`mes-edge-bench report A.json B.json`): each run and
    /// the scenarios it gave. Empty for one run's results: the file is its own source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Source>,
}

/// A run that scenarios of the page come from.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Source {
    pub started: String,
    pub finished: String,
    pub runs: usize,
    pub quick: bool,
    pub machine: BTreeMap<String, String>,
    pub build: BTreeMap<String, String>,
    /// The scenarios of the page this run measured.
    pub scenarios: Vec<String>,
}

impl Source {
    pub fn commit(&self) -> &str {
        self.build.get("commit").map_or("-", String::as_str)
    }
}

/// A figure for a tool: measured, or why there is none.
#[derive(Debug, Clone)]
pub enum Cell {
    Value(f64),
    Text(String),
}

impl Cell {
    pub fn na(why: &str) -> Cell {
        Cell::Text(why.to_string())
    }
}

/// One figure of one run, as a scenario reports it.
pub struct Figure<'a> {
    pub scenario: &'static str,
    pub key: &'a str,
    pub name: &'a str,
    pub unit: &'a str,
    pub digits: usize,
    pub mes_edge: Cell,
    pub python: Cell,
    pub node_red: Cell,
    pub less_is_better: bool,
    pub target: Option<Target>,
}

/// Figures whose tools count different things: no ratio between them.
const NO_RATIO: [&str; 1] = ["s2.messages"];

impl<'a> Figure<'a> {
    /// A figure of mes-edge alone; the peers get `peers` as the reason.
    pub fn mes_edge(
        scenario: &'static str,
        key: &'a str,
        name: &'a str,
        unit: &'a str,
        value: f64,
        peers: &str,
    ) -> Figure<'a> {
        Figure {
            scenario,
            key,
            name,
            unit,
            digits: 0,
            mes_edge: Cell::Value(value),
            python: Cell::na(peers),
            node_red: Cell::na(peers),
            less_is_better: true,
            target: None,
        }
    }
    pub fn digits(mut self, d: usize) -> Self {
        self.digits = d;
        self
    }
    pub fn more_is_better(mut self) -> Self {
        self.less_is_better = false;
        self
    }
    pub fn target(mut self, t: Target) -> Self {
        self.target = Some(t);
        self
    }
}

/// Collects the figures of every run of every scenario.
#[derive(Default)]
pub struct Table {
    pub results: Results,
    /// The repetition being run (0-based).
    pub run: usize,
}

impl Table {
    pub fn add(&mut self, f: Figure) {
        let run = self.run;
        let i = match self.results.figures.iter().position(|x| x.key == f.key) {
            Some(i) => i,
            None => {
                self.results.figures.push(FigureData {
                    scenario: f.scenario.to_string(),
                    key: f.key.to_string(),
                    name: f.name.to_string(),
                    unit: f.unit.to_string(),
                    digits: f.digits,
                    less_is_better: f.less_is_better,
                    values: BTreeMap::new(),
                    why_none: BTreeMap::new(),
                    target: f.target.clone(),
                    bound: crate::bounds::of(f.key),
                    ratios: !NO_RATIO.contains(&f.key),
                });
                self.results.figures.len() - 1
            }
        };
        let fig = &mut self.results.figures[i];
        for (tool, cell) in TOOLS.iter().zip([f.mes_edge, f.python, f.node_red]) {
            match cell {
                Cell::Value(v) => {
                    let vs = fig.values.entry(tool.to_string()).or_default();
                    vs.resize(run, None);
                    vs.push(v.is_finite().then_some(v));
                }
                Cell::Text(t) => {
                    fig.why_none.entry(tool.to_string()).or_insert(t);
                }
            }
        }
    }

    pub fn note(&mut self, n: String) {
        println!("  note: {n}");
        let n = if self.results.runs > 1 {
            format!("run {}: {n}", self.run + 1)
        } else {
            n
        };
        self.results.notes.push(n);
    }
}

/// The median and the spread of one tool's runs (runs without a value left out).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

pub fn summary(values: &[Option<f64>]) -> Option<Summary> {
    let mut v: Vec<f64> = values.iter().flatten().copied().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Summary {
        median,
        min: v[0],
        max: v[n - 1],
        n,
    })
}

impl FigureData {
    pub fn summary(&self, tool: &str) -> Option<Summary> {
        self.values.get(tool).and_then(|v| summary(v))
    }
}

impl Results {
    pub fn figure(&self, key: &str) -> Option<&FigureData> {
        self.figures.iter().find(|f| f.key == key)
    }

    /// Whether a figure's target is met, from the recorded values; None without a target or
    /// without the values to judge it.
    pub fn met(&self, f: &FigureData) -> Option<bool> {
        let me = f.summary("mes-edge");
        Some(match f.target.as_ref()? {
            Target::Below { value } => me?.median < *value,
            Target::AtMost { value } => me?.median <= *value,
            Target::AtLeast { value } => me?.median >= *value,
            Target::EveryRunAtMost { value } => me?.max <= *value,
            Target::PeerTimes { times } => {
                let m = me?.median;
                let mut ok = m > 0.0;
                for (peer, x) in times {
                    ok &= f.summary(peer)?.median / m >= *x;
                }
                ok
            }
            Target::AtMostFigurePlus { figure, plus } => {
                me?.median <= self.figure(figure)?.summary("mes-edge")?.median + plus
            }
            Target::ShareOf { figure, share } => {
                let c = self.figure(figure)?.summary("mes-edge")?.median;
                let ratio = me?.median / c;
                c > 0.0
                    && if f.less_is_better {
                        ratio <= *share
                    } else {
                        ratio >= *share
                    }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_spread_leave_out_missing_runs() {
        let s = summary(&[Some(3.0), None, Some(1.0), Some(2.0)]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert_eq!(summary(&[Some(4.0), Some(2.0)]).unwrap().median, 3.0);
        assert!(summary(&[None]).is_none());
    }

    #[test]
    fn a_run_without_a_value_keeps_the_later_runs_in_place() {
        let mut t = Table::default();
        let fig = |v: f64| Figure::mes_edge("S9", "s9.x", "x", "ms", v, "n/a");
        t.add(fig(1.0));
        t.run = 2;
        t.add(fig(3.0));
        let v = &t.results.figures[0].values["mes-edge"];
        assert_eq!(v.len(), 3);
        assert_eq!(v[1], None);
        assert_eq!(t.results.figures[0].why_none["node-red"], "n/a");
    }
}
