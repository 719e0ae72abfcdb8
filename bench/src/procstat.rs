//! CPU and memory of a process, as the kernel counts them: CPU time from /proc/PID/stat (user
//! plus system, all threads), resident memory from /proc/PID/status and /proc/PID/smaps_rollup.
//! Memory is in MB (a million bytes), as the targets are.

use std::time::Instant;

/// CPU seconds used so far by `pid` (all its threads): in its own code (user time) and in the
/// kernel on its behalf (system time: for a poller, mostly its sockets' sends, receives and
/// wake-ups).
pub fn cpu_split(pid: u32) -> Option<(f64, f64)> {
    stat_times(&format!("/proc/{pid}/stat"))
}

/// CPU seconds used so far by the threads of `pid` named `comm` (user and system time); None
/// if it has no thread of that name.
pub fn thread_cpu(pid: u32, comm: &str) -> Option<f64> {
    let mut sum = None;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let dir = task.path();
        if std::fs::read_to_string(dir.join("comm"))
            .ok()
            .as_deref()
            .map(str::trim)
            != Some(comm)
        {
            continue;
        }
        if let Some((user, system)) = stat_times(&dir.join("stat").to_string_lossy()) {
            *sum.get_or_insert(0.0) += user + system;
        }
    }
    sum
}

/// User and system seconds from a /proc stat file (a process's or a thread's).
fn stat_times(path: &str) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis
    // start at field 3 (state). utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let user = f.get(11)?.parse::<u64>().ok()?;
    let system = f.get(12)?.parse::<u64>().ok()?;
    Some((user as f64 / clock_ticks(), system as f64 / clock_ticks()))
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Bytes the process has caused to be sent to the block layer (/proc/PID/io `write_bytes`).
pub fn write_bytes(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

/// A field of /proc/PID/status in KiB (VmRSS, VmHWM).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub fn rss_mb(pid: u32) -> Option<f64> {
    status_kib(pid, "VmRSS").map(kib_to_mb)
}

/// Resident anonymous memory (heap, stacks): what the process allocated itself.
pub fn anon_mb(pid: u32) -> Option<f64> {
    status_kib(pid, "RssAnon").map(kib_to_mb)
}

/// Proportional set size: shared pages divided among the processes that map them.
pub fn pss_mb(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    text.lines()
        .find(|l| l.starts_with("Pss:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
        .map(kib_to_mb)
}

fn kib_to_mb(k: u64) -> f64 {
    k as f64 * 1024.0 / 1e6
}

/// The load averages over 1, 5 and 15 minutes.
pub fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut f = text
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(f64::NAN));
    [(); 3].map(|_| f.next().unwrap_or(f64::NAN))
}

/// CPU use of one process between two points in time.
pub struct CpuWindow {
    pid: u32,
    cpu0: (f64, f64),
    t0: Instant,
}

impl CpuWindow {
    pub fn start(pid: u32) -> CpuWindow {
        CpuWindow {
            pid,
            cpu0: cpu_split(pid).unwrap_or((0.0, 0.0)),
            t0: Instant::now(),
        }
    }

    /// Per cent of one core since the start.
    pub fn percent(&self) -> f64 {
        self.percents().0
    }

    /// Per cent of one core since the start: in all, and of it in the kernel (system time).
    pub fn percents(&self) -> (f64, f64) {
        let (user, system) = cpu_split(self.pid).unwrap_or(self.cpu0);
        let (user, system) = (user - self.cpu0.0, system - self.cpu0.1);
        let seconds = self.t0.elapsed().as_secs_f64();
        (100.0 * (user + system) / seconds, 100.0 * system / seconds)
    }
}

/// Resident memory sampled over a while: the least, the most, the first and the last.
#[derive(Debug, Clone, Default)]
pub struct RssTrace {
    pub samples: Vec<f64>,
    /// The most anonymous RSS and PSS seen.
    pub anon_max: f64,
    pub pss_max: f64,
}

impl RssTrace {
    pub fn sample(&mut self, pid: u32) {
        if let Some(r) = rss_mb(pid) {
            self.samples.push(r);
        }
        self.anon_max = self.anon_max.max(anon_mb(pid).unwrap_or(0.0));
        self.pss_max = self.pss_max.max(pss_mb(pid).unwrap_or(0.0));
    }
    pub fn max(&self) -> f64 {
        self.samples.iter().copied().fold(0.0, f64::max)
    }
    pub fn last(&self) -> f64 {
        self.samples.last().copied().unwrap_or(0.0)
    }
    pub fn first(&self) -> f64 {
        self.samples.first().copied().unwrap_or(0.0)
    }
}

/// Samples a process's resident memory on a thread until [`RssSampler::finish`].
pub struct RssSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<RssTrace>,
}

impl RssSampler {
    pub fn start(pid: u32, every: std::time::Duration) -> RssSampler {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut rss = RssTrace::default();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) && rss_mb(pid).is_some() {
                rss.sample(pid);
                std::thread::sleep(every);
            }
            rss
        });
        RssSampler { stop, thread }
    }

    pub fn finish(self) -> RssTrace {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}
