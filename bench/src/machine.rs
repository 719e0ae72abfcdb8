//! The facts results.json records beside the figures: the machine (cores, CPU, memory, kernel,
//! the disk's fsync rate, the peers' versions) and the build measured, so that BENCHMARKS.md
//! states them from the run, not from memory.

use crate::ctx::Ctx;
use crate::report::{Figure, Table};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn first_line(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    // `mosquitto -h` exits 3 after printing its version; a Python traceback is no version.
    if String::from_utf8_lossy(&out.stderr).contains("Traceback") {
        return None;
    }
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    let line = String::from_utf8_lossy(&text)
        .lines()
        .next()?
        .trim()
        .to_string();
    (!line.is_empty()).then_some(line)
}

fn cpuinfo(field: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    Some(line.split_once(':')?.1.trim().to_string())
}

fn package_version(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("package.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(v.get("version")?.as_str()?.to_string())
}

/// 4 KiB written and fsynced in a loop for ten seconds, in the run's folder (where the stores
/// are): the rate, and the slowest fsyncs, which are what a commit with synchronous = "full"
/// waits for at its worst (a latency figure's tail on a shared disk).
pub fn fsync_probe(dir: &Path) -> Option<(f64, f64, f64)> {
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path).ok()?;
    let block = [0u8; 4096];
    let start = Instant::now();
    let mut took = Vec::new();
    while start.elapsed() < Duration::from_secs(10) {
        let t = Instant::now();
        f.write_all(&block).ok()?;
        f.sync_all().ok()?;
        took.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let rate = took.len() as f64 / start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    let s = crate::stats::spread(took);
    Some((rate, s.p99, s.max))
}

/// The disk's slowest fsyncs (p99 of a ten-second probe in the run's folder) just before a
/// latency is measured, as the figure `key` of `scenario`: with synchronous = "full" each event
/// waits for its commit's fsync, so a latency target counts them beside the period, and the
/// page shows whether the runtime or the disk made the tail.
pub fn fsync_figure(ctx: &Ctx, table: &mut Table, scenario: &'static str, key: &'static str) {
    let Some((_, p99, _)) = fsync_probe(&ctx.dir) else {
        table.note(format!("{scenario}: the fsync probe failed"));
        return;
    };
    println!("  the disk's fsync p99 over ten seconds: {p99:.2} ms");
    let name = "the disk's slowest fsyncs just before (ten-second probe, the same disk), p99";
    table.add(
        Figure::mes_edge(
            scenario,
            key,
            name,
            "ms",
            p99,
            "the same disk for every tool",
        )
        .digits(2),
    );
}

pub fn facts(ctx: &Ctx) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: Option<String>| {
        m.insert(k.to_string(), v.unwrap_or_else(|| "?".into()));
    };
    put(
        "cores",
        std::thread::available_parallelism()
            .ok()
            .map(|n| n.to_string()),
    );
    put("CPU", cpuinfo("model name"));
    put("CPU MHz", cpuinfo("cpu MHz"));
    put("cache per core", cpuinfo("cache size"));
    put(
        "virtualised",
        cpuinfo("flags").map(|f| {
            if f.split_whitespace().any(|x| x == "hypervisor") {
                "yes (hypervisor flag)".to_string()
            } else {
                "no".to_string()
            }
        }),
    );
    let mem = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        let kib: f64 = t.lines().next()?.split_whitespace().nth(1)?.parse().ok()?;
        Some(format!("{:.1} GB", kib * 1024.0 / 1e9))
    });
    put("memory", mem);
    put("kernel", first_line("uname", &["-sr"]));
    let fsync = fsync_probe(&ctx.dir);
    put(
        "disk: 4 KiB write + fsync per second",
        fsync.map(|(r, _, _)| format!("{r:.0}")),
    );
    put(
        "disk: slowest fsyncs over ten seconds (p99, max)",
        fsync.map(|(_, p99, max)| format!("{p99:.2} ms, {max:.1} ms")),
    );
    put(
        "Mosquitto",
        first_line(&crate::procs::mosquitto_bin().to_string_lossy(), &["-h"]),
    );
    if let Some(py) = ctx.python.as_ref().filter(|_| ctx.peers) {
        let py = py.to_string_lossy().to_string();
        put("Python", first_line(&py, &["--version"]));
        let v = |pkg: &str| {
            first_line(
                &py,
                &[
                    "-c",
                    &format!("import importlib.metadata as m; print(m.version('{pkg}'))"),
                ],
            )
        };
        put("pymodbus", v("pymodbus"));
        put("paho-mqtt", v("paho-mqtt"));
    }
    if let Some(nr) = ctx.node_red.as_ref().filter(|_| ctx.peers) {
        put("Node", first_line("node", &["--version"]));
        put(
            "Node-RED",
            package_version(&nr.join("node_modules/node-red")),
        );
        put(
            "node-red-contrib-modbus",
            package_version(&nr.join("node_modules/node-red-contrib-modbus")),
        );
    }
    m
}

pub fn build(ctx: &Ctx) -> BTreeMap<String, String> {
    let src = ctx.bench_dir().join("..");
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(&src)
            .args(args)
            .output()
            .ok()?;
        Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let mut m = BTreeMap::new();
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "?".into());
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    m.insert(
        "commit".into(),
        format!(
            "{commit}{}",
            if dirty {
                " with uncommitted changes"
            } else {
                ""
            }
        ),
    );
    // bench/run says what it built the binary with; run by hand, the harness cannot know.
    m.insert(
        "mes-edge features".into(),
        std::env::var("MES_EDGE_BENCH_FEATURES")
            .unwrap_or_else(|_| "unknown (not started by bench/run)".into()),
    );
    m.insert(
        "S1/S3 pipeline features".into(),
        "the library with the shipped features (bench/Cargo.toml)".into(),
    );
    let profile = std::fs::read_to_string(src.join("Cargo.toml"))
        .ok()
        .and_then(|t| {
            let start = t.find("[profile.release]")?;
            let body = &t[start + "[profile.release]".len()..];
            let end = body.find("\n[").unwrap_or(body.len());
            Some(
                body[..end]
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        });
    m.insert(
        "release profile".into(),
        profile.unwrap_or_else(|| "?".into()),
    );
    m.insert(
        "rustc".into(),
        first_line("rustc", &["--version"]).unwrap_or_else(|| "?".into()),
    );
    m
}

pub fn utc_now() -> String {
    first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default()
}
