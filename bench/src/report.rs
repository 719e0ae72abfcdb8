//! The table every run ends with: one row per figure, a column per tool, the ratios, the
//! issue's target and whether it is met.

use serde::Serialize;
use std::fmt::Write;

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: &'static str,
    pub figure: String,
    pub mes_edge: String,
    pub python: String,
    pub node_red: String,
    /// peer / mes-edge, for figures where less is better (CPU, memory, latency).
    pub ratio_python: String,
    pub ratio_node_red: String,
    pub target: String,
    pub met: String,
}

#[derive(Default, Serialize)]
pub struct Table {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
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
    fn show(&self, digits: usize) -> String {
        match self {
            Cell::Value(v) if v.is_nan() => "-".into(),
            Cell::Value(v) => format!("{v:.digits$}"),
            Cell::Text(t) => t.clone(),
        }
    }
    fn value(&self) -> Option<f64> {
        match self {
            Cell::Value(v) if v.is_finite() => Some(*v),
            _ => None,
        }
    }
}

pub struct Figure<'a> {
    pub scenario: &'static str,
    pub name: &'a str,
    pub digits: usize,
    pub mes_edge: Cell,
    pub python: Cell,
    pub node_red: Cell,
    /// Ratios are peer / mes-edge when less is better, mes-edge / peer when more is better.
    pub less_is_better: bool,
    pub target: Option<(&'a str, bool)>,
}

impl Table {
    pub fn add(&mut self, f: Figure) {
        let ratio = |peer: &Cell| match (peer.value(), f.mes_edge.value()) {
            (Some(p), Some(m)) if p > 0.0 && m > 0.0 => {
                let r = if f.less_is_better { p / m } else { m / p };
                format!("{r:.1}x")
            }
            _ => "-".into(),
        };
        self.rows.push(Row {
            scenario: f.scenario,
            figure: f.name.to_string(),
            mes_edge: f.mes_edge.show(f.digits),
            python: f.python.show(f.digits),
            node_red: f.node_red.show(f.digits),
            ratio_python: ratio(&f.python),
            ratio_node_red: ratio(&f.node_red),
            target: f.target.map_or(String::new(), |t| t.0.to_string()),
            met: f.target.map_or(
                String::new(),
                |t| if t.1 { "yes".into() } else { "NO".into() },
            ),
        });
    }

    pub fn note(&mut self, n: String) {
        println!("  note: {n}");
        self.notes.push(n);
    }

    pub fn markdown(&self) -> String {
        let mut s = String::from(
            "| scenario | figure | mes-edge | Python poller | Node-RED | Python / mes-edge | Node-RED / mes-edge | target | met |\n\
             |---|---|---:|---:|---:|---:|---:|---|---|\n",
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.scenario,
                r.figure,
                r.mes_edge,
                r.python,
                r.node_red,
                r.ratio_python,
                r.ratio_node_red,
                r.target,
                r.met
            );
        }
        if !self.notes.is_empty() {
            s.push('\n');
            for n in &self.notes {
                let _ = writeln!(s, "- {n}");
            }
        }
        s
    }
}
