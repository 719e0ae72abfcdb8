//! `mes-edge-bench report A.json B.json ...`: one page from several runs. A full `bench/run`
//! takes the better part of an hour; a run of one or two scenarios must not cost the page the
//! other scenarios' rows. Every scenario keeps the run it was measured in: its figures, its
//! workload text, its windows, its load averages and its notes come from one file, the last one
//! given that holds it, and the merged results name that run (its times, commit, repetitions,
//! machine) per scenario, so that a reader sees which rows were measured together.

use crate::report::Results;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

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

/// `S4` of a scenario name, for ordering S10 after S9.
fn number(scenario: &str) -> u32 {
    scenario
        .trim_start_matches(['S', 's'])
        .parse()
        .unwrap_or(u32::MAX)
}

/// The scenarios a results file measured, in order.
pub fn scenarios_of(r: &Results) -> Vec<String> {
    let mut s: BTreeSet<&str> = r.scenarios.keys().map(String::as_str).collect();
    s.extend(r.figures.iter().map(|f| f.scenario.as_str()));
    s.extend(r.load.iter().map(|l| l.scenario.as_str()));
    let mut v: Vec<String> = s.into_iter().map(str::to_string).collect();
    v.sort_by_key(|s| number(s));
    v
}

/// The runs a results file holds: those it was merged from, or the one it is.
pub fn sources_of(r: &Results) -> Vec<Source> {
    if !r.sources.is_empty() {
        return r.sources.clone();
    }
    vec![Source {
        started: r.started.clone(),
        finished: r.finished.clone(),
        runs: r.runs,
        quick: r.quick,
        machine: r.machine.clone(),
        build: r.build.clone(),
        scenarios: scenarios_of(r),
    }]
}

/// The scenario a note is about (`run 2: S4 failed: ...` is about S4), if any.
fn note_about(note: &str) -> Option<&str> {
    let rest = match note.strip_prefix("run ") {
        Some(r) => r.split_once(": ").map_or(note, |(_, n)| n),
        None => note,
    };
    let end = rest
        .char_indices()
        .skip(1)
        .find(|(_, c)| !c.is_ascii_digit())
        .map_or(rest.len(), |(i, _)| i);
    (rest.starts_with('S') && end > 1).then(|| &rest[..end])
}

/// A window of `durations` belongs to a scenario by its prefix (`s4_seconds` to S4).
fn window_of(key: &str) -> Option<String> {
    let (head, _) = key.split_once('_')?;
    (head.len() > 1 && head.starts_with('s') && head[1..].chars().all(|c| c.is_ascii_digit()))
        .then(|| head.to_uppercase())
}

/// The files' results as one: a later file's scenarios replace an earlier one's.
pub fn merge(mut files: Vec<Results>) -> Results {
    if files.len() == 1 {
        return files.remove(0);
    }
    let mut out = Results::default();
    for r in files {
        let theirs: BTreeSet<String> = scenarios_of(&r).into_iter().collect();
        let replaced = |s: &str| theirs.contains(s);
        out.figures.retain(|f| !replaced(&f.scenario));
        out.scenarios.retain(|k, _| !replaced(k));
        out.load.retain(|l| !replaced(&l.scenario));
        out.durations
            .retain(|k, _| window_of(k).is_none_or(|s| !replaced(&s)));
        out.notes
            .retain(|n| note_about(n).is_none_or(|s| !replaced(s)));
        for s in &mut out.sources {
            s.scenarios.retain(|x| !replaced(x));
        }
        out.sources.retain(|s| !s.scenarios.is_empty());

        out.sources.extend(sources_of(&r));
        out.figures.extend(r.figures);
        out.scenarios.extend(r.scenarios);
        out.load.extend(r.load);
        // A run's windows for scenarios it did not run are only its defaults.
        out.durations.extend(
            r.durations
                .into_iter()
                .filter(|(k, _)| window_of(k).is_none_or(|s| replaced(&s))),
        );
        out.notes.extend(r.notes);
        out.machine = r.machine;
        out.build = r.build;
        out.runs = r.runs;
        out.quick = r.quick;
    }
    out.figures.sort_by_key(|f| number(&f.scenario));
    let src = &out.sources;
    out.started = src
        .iter()
        .map(|s| s.started.clone())
        .min()
        .unwrap_or_default();
    out.finished = src
        .iter()
        .map(|s| s.finished.clone())
        .max()
        .unwrap_or_default();
    if src.len() < 2 {
        // One run: the file it came from, with nothing to tell apart.
        out.sources.clear();
    }
    out
}

/// Ranges of scenario names: `S1–S7, S9` (consecutive numbers joined).
pub fn span(scenarios: &[String]) -> String {
    let mut parts: Vec<(String, String, u32)> = Vec::new();
    for s in scenarios {
        let n = number(s);
        match parts.last_mut() {
            Some((_, last, ln)) if *ln + 1 == n => {
                *last = s.clone();
                *ln = n;
            }
            _ => parts.push((s.clone(), s.clone(), n)),
        }
    }
    parts
        .into_iter()
        .map(|(a, b, _)| if a == b { a } else { format!("{a}–{b}") })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One table of facts over every run of the page: a fact the runs disagree on is shown per run.
pub fn facts(
    sources: &[Source],
    of: impl Fn(&Source) -> &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let keys: BTreeSet<&String> = sources.iter().flat_map(|s| of(s).keys()).collect();
    keys.into_iter()
        .map(|k| {
            let vals: Vec<(&Source, &str)> = sources
                .iter()
                .map(|s| (s, of(s).get(k).map_or("-", String::as_str)))
                .collect();
            let v = if vals.iter().all(|(_, v)| *v == vals[0].1) {
                vals[0].1.to_string()
            } else {
                vals.iter()
                    .map(|(s, v)| format!("{v} ({})", span(&s.scenarios)))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            (k.clone(), v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markdown::render;
    use crate::markdown::tests::{fixture, TEMPLATE};

    /// A later run of S4 alone, on another commit, with a figure of its own.
    fn later_s4() -> Results {
        let mut r = fixture();
        r.figures.retain(|f| f.scenario == "S4");
        for f in &mut r.figures {
            for v in f.values.values_mut() {
                *v = vec![Some(42.0)];
            }
        }
        r.scenarios.retain(|k, _| k == "S4");
        r.load.retain(|l| l.scenario == "S4");
        r.notes = vec!["S4: the later run".into()];
        r.started = "2026-12-09 10:00 UTC".into();
        r.finished = "2026-12-09 10:05 UTC".into();
        r.runs = 1;
        r.build.insert("commit".into(), "abc1234".into());
        r.durations.insert("s4_seconds".into(), 99.0);
        r
    }

    #[test]
    fn one_file_merges_to_itself() {
        let r = fixture();
        assert_eq!(merge(vec![r.clone()]), r);
    }

    #[test]
    fn a_later_run_replaces_its_scenarios_and_the_page_names_both_runs() {
        let (a, b) = (fixture(), later_s4());
        let m = merge(vec![a.clone(), b.clone()]);
        // S4's rows, notes and windows are the later run's, the others the first run's.
        for f in &m.figures {
            let from = if f.scenario == "S4" { &b } else { &a };
            assert_eq!(Some(f), from.figure(&f.key), "{}", f.key);
        }
        assert_eq!(
            m.figures.len(),
            a.figures.iter().filter(|f| f.scenario != "S4").count() + b.figures.len()
        );
        assert!(m.notes.contains(&"S4: the later run".to_string()));
        assert!(!m
            .notes
            .iter()
            .any(|n| n.contains("S4: mes-edge 78 changes")));
        assert!(m.notes.iter().any(|n| n.contains("S1: intake run")));
        assert_eq!(m.durations["s4_seconds"], 99.0);
        assert_eq!(m.durations["s2_seconds"], a.durations["s2_seconds"]);
        assert_eq!(m.sources.len(), 2);
        assert_eq!(m.sources[0].scenarios, ["S1", "S2", "S3", "S5"]);
        assert_eq!(m.sources[1].scenarios, ["S4"]);
        assert_eq!(
            (m.started.as_str(), m.finished.as_str()),
            (a.started.as_str(), b.finished.as_str())
        );

        let md = render(&m, TEMPLATE).unwrap();
        let row = |s: &str| {
            md.lines()
                .find(|l| l.starts_with(&format!("| {s} | ")) && l.contains(" UTC"))
                .unwrap_or_else(|| panic!("no provenance row for {s}:\n{md}"))
                .to_string()
        };
        assert!(row("S4").contains("2026-12-09 10:00 UTC") && row("S4").contains("abc1234"));
        assert!(row("S1").contains(&a.started) && row("S1").contains(a.build["commit"].as_str()));
        assert!(
            md.contains("not for the record) of S1–S3, S5 and 1 run of `--quick`"),
            "{md}"
        );
        assert!(md.contains(&format!("Run from {} (the first of the 2 runs", a.started)));
        assert!(
            md.contains("commit | 87edb6a with uncommitted changes (S1–S3, S5); abc1234 (S4) |"),
            "{md}"
        );

        // Merging the merged file with another run goes on the same way.
        let again = merge(vec![m.clone(), later_s4()]);
        assert_eq!(again.sources.len(), 2);
        assert_eq!(again.figures, m.figures);
    }

    #[test]
    fn notes_and_windows_are_told_apart_by_scenario() {
        assert_eq!(note_about("run 2: S4 failed: x"), Some("S4"));
        assert_eq!(note_about("S10: y"), Some("S10"));
        assert_eq!(note_about("Something general"), None);
        assert_eq!(window_of("s12_seconds").as_deref(), Some("S12"));
        assert_eq!(window_of("seconds"), None);
        assert_eq!(
            span(&["S1", "S2", "S3", "S5", "S8", "S9"].map(String::from)),
            "S1–S3, S5, S8–S9"
        );
    }
}
