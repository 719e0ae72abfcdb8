//! Where an idle process's resident memory lies (S5), from /proc/PID/smaps and /proc/PID/status:
//! how much of RSS is pages of files (the executable, shared libraries), how much of that the
//! executable's own file, how much is private and written (heap, stacks, relocated data). The
//! binary's file pages are what the kernel maps in as code runs (and the neighbours of each
//! page it faults in, 64 KiB at a time); they cost the page cache, which other processes and
//! the kernel may share or drop, while private dirty pages are the process's alone.

/// A snapshot, in MB (a million bytes) as the targets are.
#[derive(Debug, Clone, Default)]
pub struct Residency {
    /// Resident pages read from files and not written (RSS minus the anonymous part).
    pub file: f64,
    /// Of `file`: the pages of the process's own executable.
    pub exe: f64,
    /// Pages this process alone holds written: heap, stacks, copies of relocated data. A file
    /// written in the last half minute and not yet written back (a binary just built or
    /// copied) counts here too: its pages are dirty in the page cache.
    pub private_dirty: f64,
    pub threads: u64,
}

pub fn residency(pid: u32) -> Option<Residency> {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let exe = exe.to_string_lossy();
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let (mut file, mut own, mut dirty) = (0u64, 0u64, 0u64);
    // The mapping the field lines below a header belong to: (backed by a file, the executable).
    let mut mapping = (false, false);
    let (mut rss, mut anon) = (0u64, 0u64);
    let mut close = |mapping: (bool, bool), rss: u64, anon: u64| {
        if mapping.0 {
            file += rss - anon.min(rss);
        }
        if mapping.1 {
            own += rss - anon.min(rss);
        }
    };
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let Some(first) = f.next() else { continue };
        match first {
            "Rss:" => rss = kib(f.next()),
            "Anonymous:" => anon = kib(f.next()),
            "Private_Dirty:" => dirty += kib(f.next()),
            // A header: `start-end perms offset dev inode [path]`.
            _ if !first.ends_with(':') => {
                close(mapping, rss, anon);
                (rss, anon) = (0, 0);
                let inode = f.nth(3).unwrap_or("0");
                mapping = (inode != "0", path_of(line) == exe);
            }
            _ => {}
        }
    }
    close(mapping, rss, anon);
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mb = |k: u64| k as f64 * 1024.0 / 1e6;
    Some(Residency {
        file: mb(file),
        exe: mb(own),
        private_dirty: mb(dirty),
        threads,
    })
}

/// The path of a smaps header line: what follows its five fields, less a " (deleted)".
fn path_of(header: &str) -> &str {
    let mut rest = header;
    for _ in 0..5 {
        rest = rest.trim_start();
        rest = &rest[rest.find(char::is_whitespace).unwrap_or(rest.len())..];
    }
    rest.trim().trim_end_matches(" (deleted)")
}

fn kib(v: Option<&str>) -> u64 {
    v.and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn own_process_has_its_executable_resident() {
        let r = super::residency(std::process::id()).unwrap();
        assert!(r.exe > 0.0 && r.exe <= r.file, "{r:?}");
        assert!(r.private_dirty > 0.0 && r.threads >= 1, "{r:?}");
    }
}
