//! `mes-edge-bench report results.json`: BENCHMARKS.md from a run's results. The narrative is
//! a template (bench/BENCHMARKS.template.md) with `{{placeholders}}`; every figure, machine fact,
//! load average, median, spread, ratio and verdict comes from results.json, so the file cannot
//! disagree with the run it names.

use crate::merge;
use crate::report::{FigureData, Results, Summary, Target, TOOLS};
use anyhow::{Context, Result};
use std::fmt::Write;
use std::path::PathBuf;

/// `files`: one run's results.json, or several merged (a later file's scenarios replace an
/// earlier one's, merge.rs); `results_out`: where to write the results the page was made from.
pub fn main(
    files: &[PathBuf],
    template: Option<PathBuf>,
    out: Option<PathBuf>,
    results_out: Option<PathBuf>,
) -> Result<()> {
    let mut all = Vec::with_capacity(files.len());
    for path in files {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        all.push(serde_json::from_str::<Results>(&text).with_context(|| {
            format!("{} is not a results.json of this harness", path.display())
        })?);
    }
    let r = crate::merge::merge(all);
    if let Some(p) = results_out {
        std::fs::write(&p, serde_json::to_string_pretty(&r)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    let template = template.unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.template.md")
    });
    let tpl = std::fs::read_to_string(&template)
        .with_context(|| format!("reading {}", template.display()))?;
    let md = render(&r, &tpl)?;
    match out {
        Some(p) => std::fs::write(&p, md).with_context(|| format!("writing {}", p.display()))?,
        None => print!("{md}"),
    }
    Ok(())
}

/// Fills every `{{name}}` of the template; an unknown name is an error, not a blank.
pub fn render(r: &Results, template: &str) -> Result<String> {
    let mut out = String::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let end = rest[i..]
            .find("}}")
            .context("a {{ without }} in the template")?
            + i;
        let name = rest[i + 2..end].trim();
        out.push_str(&section(r, name)?);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn section(r: &Results, name: &str) -> Result<String> {
    Ok(match name {
        "machine" if r.sources.len() > 1 => facts(&merge::facts(&r.sources, |s| &s.machine)),
        "machine" => facts(&r.machine),
        "build" if r.sources.len() > 1 => facts(&merge::facts(&r.sources, |s| &s.build)),
        "build" => facts(&r.build),
        "runs" if r.sources.len() > 1 => r
            .sources
            .iter()
            .map(|s| format!("{} of {}", runs(s.runs, s.quick), merge::span(&s.scenarios)))
            .collect::<Vec<_>>()
            .join(" and "),
        "runs" => format!("{} of every scenario", runs(r.runs, r.quick)),
        "started" if r.sources.len() > 1 => format!(
            "{} (the first of the {} runs this page is merged from)",
            r.started,
            r.sources.len()
        ),
        "finished" if r.sources.len() > 1 => format!(
            "{} (the last; the table after the results names each scenario's run)",
            r.finished
        ),
        "provenance" => provenance(r),
        "started" => r.started.clone(),
        "finished" => r.finished.clone(),
        "durations" => durations(r),
        "scenarios" => {
            let mut s = String::from("| | workload |\n|---|---|\n");
            for (k, v) in &r.scenarios {
                let _ = writeln!(s, "| {k} | {v} |");
            }
            s
        }
        "results" => table(r),
        "verdicts" => verdicts(r),
        "load" => load(r),
        "notes" => r.notes.iter().map(|n| format!("- {n}\n")).collect(),
        other => anyhow::bail!("unknown placeholder {{{{{other}}}}} in the template"),
    })
}

fn runs(n: usize, quick: bool) -> String {
    format!(
        "{n} run{}{}",
        if n == 1 { "" } else { "s" },
        if quick {
            " of `--quick` (short windows, to check the harness: not for the record)"
        } else {
            ""
        }
    )
}

/// Per scenario, the run its figures come from: when, which commit, how many repetitions, and
/// how busy the machine was before each of them (the load average over one minute).
fn provenance(r: &Results) -> String {
    let mut s = String::from(
        "| scenario | run started | finished | commit | runs | load average before (1 min) |\n\
         |---|---|---|---|---:|---|\n",
    );
    for src in merge::sources_of(r) {
        for sc in &src.scenarios {
            let load: Vec<String> = r
                .load
                .iter()
                .filter(|l| &l.scenario == sc)
                .map(|l| num(l.before[0], 2))
                .collect();
            let _ = writeln!(
                s,
                "| {sc} | {} | {} | {} | {}{} | {} |",
                src.started,
                src.finished,
                src.commit(),
                src.runs,
                if src.quick { " (`--quick`)" } else { "" },
                load.join(", ")
            );
        }
    }
    s
}

fn facts(m: &std::collections::BTreeMap<String, String>) -> String {
    let mut s = String::from("| | |\n|---|---|\n");
    for (k, v) in m {
        let _ = writeln!(s, "| {k} | {v} |");
    }
    s
}

fn durations(r: &Results) -> String {
    let mut s = String::from("| window | value |\n|---|---:|\n");
    for (k, v) in &r.durations {
        let _ = writeln!(
            s,
            "| {k} | {} |",
            num(*v, if v.fract() == 0.0 { 0 } else { 1 })
        );
    }
    s
}

/// `1234567.8` with 0 digits is `1,234,568`.
pub fn num(v: f64, digits: usize) -> String {
    let s = format!("{:.digits$}", v.abs());
    let (int, frac) = s
        .split_once('.')
        .map_or((s.as_str(), None), |(a, b)| (a, Some(b)));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if v < 0.0 && s.chars().any(|c| c.is_ascii_digit() && c != '0') {
        "-"
    } else {
        ""
    };
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

fn shown(s: &Summary, digits: usize) -> String {
    if s.n > 1 {
        format!(
            "{} ({}–{})",
            num(s.median, digits),
            num(s.min, digits),
            num(s.max, digits)
        )
    } else {
        num(s.median, digits)
    }
}

fn cell(f: &FigureData, tool: &str) -> String {
    match f.summary(tool) {
        Some(s) => shown(&s, f.digits),
        None => f.why_none.get(tool).cloned().unwrap_or_else(|| "-".into()),
    }
}

/// peer / mes-edge when less is better, mes-edge / peer otherwise, of the medians.
fn ratio(f: &FigureData, peer: &str) -> String {
    if !f.ratios {
        return String::new();
    }
    match (f.summary(peer), f.summary("mes-edge")) {
        (Some(p), Some(m)) if p.median > 0.0 && m.median > 0.0 => {
            let r = if f.less_is_better {
                p.median / m.median
            } else {
                m.median / p.median
            };
            format!("{}x", num(r, 1))
        }
        _ => String::new(),
    }
}

fn peer_name(tool: &str) -> &str {
    match tool {
        "python-poller" => "Python poller",
        "node-red" => "Node-RED",
        t => t,
    }
}

fn target_text(r: &Results, f: &FigureData) -> String {
    let unit = |v: f64| {
        format!(
            "{} {}",
            num(v, f.digits.max(if v.fract() == 0.0 { 0 } else { 1 })),
            f.unit
        )
    };
    match &f.target {
        None => String::new(),
        Some(Target::Below { value }) => format!("< {}", unit(*value)),
        Some(Target::AtMost { value }) => format!("≤ {}", unit(*value)),
        Some(Target::AtLeast { value }) => format!("≥ {}", unit(*value)),
        Some(Target::EveryRunAtMost { value }) => format!("≤ {} in every run", unit(*value)),
        Some(Target::PeerTimes { times }) => times
            .iter()
            .map(|(peer, x)| format!("{} ≥ {}x", peer_name(peer), num(*x, 0)))
            .collect::<Vec<_>>()
            .join(", "),
        Some(Target::AtMostFigurePlus { figure, plus }) => {
            let other = r.figure(figure);
            let name = other.map_or(figure.as_str(), |c| c.name.as_str());
            match other.and_then(|c| c.summary("mes-edge")) {
                Some(m) => format!(
                    "≤ {} + {} ({}) = {}",
                    unit(*plus),
                    name,
                    unit(m.median),
                    unit(m.median + plus)
                ),
                None => format!("≤ {} + {name}", unit(*plus)),
            }
        }
        Some(Target::ShareOf { figure, share }) => format!(
            "{} {}% of {}",
            if f.less_is_better { "≤" } else { "≥" },
            num(share * 100.0, 0),
            r.figure(figure)
                .map_or(figure.as_str(), |c| c.name.as_str())
        ),
    }
}

/// The share a `ShareOf` target reached, for the verdict.
fn share(r: &Results, f: &FigureData) -> Option<f64> {
    let Some(Target::ShareOf { figure, .. }) = &f.target else {
        return None;
    };
    let c = r.figure(figure)?.summary("mes-edge")?.median;
    Some(f.summary("mes-edge")?.median / c)
}

fn verdict(r: &Results, f: &FigureData) -> String {
    let extra = share(r, f).map_or(String::new(), |s| format!(" ({}%)", num(s * 100.0, 0)));
    match r.met(f) {
        None if f.target.is_some() => "no data".into(),
        None => String::new(),
        Some(true) => format!("yes{extra}"),
        Some(false) => format!("**no**{extra}"),
    }
}

fn table(r: &Results) -> String {
    let mut s = String::from(
        "| scenario | figure | mes-edge | Python poller | Node-RED | Python / mes-edge | Node-RED / mes-edge | target | met |\n\
         |---|---|---:|---:|---:|---:|---:|---|---|\n",
    );
    for f in &r.figures {
        let name = if f.unit.is_empty() {
            f.name.clone()
        } else {
            format!("{}, {}", f.name, f.unit)
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            f.scenario,
            name,
            cell(f, TOOLS[0]),
            cell(f, TOOLS[1]),
            cell(f, TOOLS[2]),
            ratio(f, TOOLS[1]),
            ratio(f, TOOLS[2]),
            target_text(r, f),
            verdict(r, f)
        );
    }
    s
}

/// One line per target; for a target not met, the measured figures that bound it.
fn verdicts(r: &Results) -> String {
    let mut s = String::new();
    for f in r.figures.iter().filter(|f| f.target.is_some()) {
        let v = match r.met(f) {
            Some(true) => "met".to_string(),
            Some(false) => "**not met**".to_string(),
            None => "not measured in this run".to_string(),
        };
        let me = f.summary("mes-edge").map_or("-".into(), |m| {
            format!("{} {}", num(m.median, f.digits), f.unit)
        });
        let _ = write!(
            s,
            "- {} {}: {me} against {}: {v}",
            f.scenario,
            f.name,
            target_text(r, f)
        );
        // A results.json from before a bound was written down gets it from the harness's table.
        let bound = f.bound.clone().or_else(|| crate::bounds::of(&f.key));
        if let (Some(false), Some(b)) = (r.met(f), &bound) {
            let shown: Vec<String> = b
                .figures
                .iter()
                .filter_map(|k| r.figure(k))
                .map(|g| {
                    let v = g
                        .summary("mes-edge")
                        .map_or("-".into(), |m| shown(&m, g.digits));
                    format!("{} = {v} {}", g.name, g.unit)
                })
                .collect();
            let _ = write!(s, ". Bound: {} ({})", b.why, shown.join("; "));
        }
        s.push('\n');
    }
    s
}

fn load(r: &Results) -> String {
    let mut s =
        String::from("| scenario | run | before (1, 5, 15 min) | after |\n|---|---:|---|---|\n");
    let la = |l: &[f64; 3]| l.iter().map(|v| num(*v, 2)).collect::<Vec<_>>().join(" ");
    for l in &r.load {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            l.scenario,
            l.run + 1,
            la(&l.before),
            la(&l.after)
        );
    }
    s
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../fixtures/results-quick.json");
    pub(crate) const TEMPLATE: &str = include_str!("../BENCHMARKS.template.md");

    pub(crate) fn fixture() -> Results {
        serde_json::from_str(FIXTURE).expect("the fixture parses")
    }

    #[test]
    fn numbers_are_grouped_and_rounded() {
        assert_eq!(num(1234567.8, 0), "1,234,568");
        assert_eq!(num(999.94, 1), "999.9");
        assert_eq!(num(-0.04, 1), "0.0");
        assert_eq!(num(-1234.5, 1), "-1,234.5");
    }

    #[test]
    fn the_template_holds_no_figures() {
        // Digits in the narrative would be hand-typed figures; only the names of scenarios
        // (S1, s1 on a command line) and of percentiles (p99) may hold one.
        for w in TEMPLATE.split(|c: char| !c.is_alphanumeric()) {
            let named = (w.starts_with(['S', 's', 'p']))
                && w.len() > 1
                && w[1..].chars().all(|c| c.is_ascii_digit());
            assert!(
                named || !w.chars().any(|c| c.is_ascii_digit()),
                "the template holds {w:?}"
            );
        }
    }

    #[test]
    fn every_figure_of_the_fixture_is_in_the_page_with_its_verdict() {
        let r = fixture();
        let md = render(&r, TEMPLATE).unwrap();
        assert!(!md.contains("{{"), "a placeholder was left");
        assert!(!r.figures.is_empty());
        for f in &r.figures {
            let row = md
                .lines()
                .find(|l| l.starts_with(&format!("| {} | {}", f.scenario, f.name)))
                .unwrap_or_else(|| panic!("no row for {}", f.key));
            if let Some(m) = f.summary("mes-edge") {
                assert!(row.contains(&num(m.median, f.digits)), "{row}");
            }
            match r.met(f) {
                Some(true) => assert!(row.contains("| yes"), "{row}"),
                Some(false) => assert!(row.contains("| **no**"), "{row}"),
                None => {}
            }
        }
        for (k, v) in &r.machine {
            assert!(md.contains(&format!("| {k} | {v} |")));
        }
        for s in r.scenarios.values() {
            assert!(md.contains(s.as_str()));
        }
    }

    #[test]
    fn verdicts_follow_the_values_not_a_stored_flag() {
        let mut r = fixture();
        let f = r
            .figures
            .iter_mut()
            .find(|f| matches!(f.target, Some(Target::Below { .. } | Target::AtMost { .. })))
            .expect("the fixture has a threshold target");
        let key = f.key.clone();
        let med = f.summary("mes-edge").unwrap().median;
        f.target = Some(Target::AtMost { value: med * 2.0 });
        assert_eq!(r.met(r.figure(&key).unwrap()), Some(true));
        r.figures.iter_mut().find(|f| f.key == key).unwrap().target =
            Some(Target::AtMost { value: med / 2.0 });
        let f = r.figure(&key).unwrap();
        assert_eq!(r.met(f), Some(false));
        assert!(verdicts(&r).contains("**not met**"));
    }

    #[test]
    fn a_latency_is_judged_against_its_period_and_the_fsyncs_measured_beside_it() {
        let mut r = fixture();
        let (disk, lat) = (r.figures[0].clone(), r.figures[1].key.clone());
        let (d, l) = (
            disk.summary("mes-edge").unwrap().median,
            r.figure(&lat).unwrap().summary("mes-edge").unwrap().median,
        );
        let judge = |r: &mut Results, plus: f64| {
            let f = r.figures.iter_mut().find(|f| f.key == lat).unwrap();
            f.target = Some(Target::AtMostFigurePlus {
                figure: disk.key.clone(),
                plus,
            });
            let f = r.figure(&lat).unwrap();
            (r.met(f), target_text(r, f))
        };
        let (met, text) = judge(&mut r, l - d + 1.0);
        assert_eq!(met, Some(true), "{text}");
        assert!(
            text.contains(&disk.name),
            "the page names what it adds: {text}"
        );
        let (met, _) = judge(&mut r, l - d - 1.0);
        assert_eq!(met, Some(false));
    }

    #[test]
    fn a_bound_shows_the_measured_figure() {
        let mut r = fixture();
        let other = r.figures[0].clone();
        let f = r.figures.iter_mut().find(|f| f.target.is_some()).unwrap();
        f.target = Some(Target::AtLeast { value: f64::MAX });
        f.bound = Some(crate::report::Bound {
            figures: vec![other.key.clone()],
            why: "what holds it".into(),
        });
        let v = verdicts(&r);
        let m = other.summary("mes-edge").unwrap();
        assert!(
            v.contains(&format!(
                "Bound: what holds it ({} = {}",
                other.name,
                shown(&m, other.digits)
            )),
            "{v}"
        );
    }

    #[test]
    fn an_unknown_placeholder_is_an_error() {
        assert!(render(&fixture(), "{{nonsense}}").is_err());
    }
}
