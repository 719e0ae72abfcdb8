use tracing_subscriber::EnvFilter;

/// Logs go to stderr (journald picks them up under systemd): readable lines, or one JSON object
/// per line for log shippers. `RUST_LOG` overrides the level, e.g. `RUST_LOG=mes_edge=debug`.
pub fn init(json: bool, extra_directives: &[&str]) {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if std::env::var_os("RUST_LOG").is_none() {
        for d in extra_directives {
            if let Ok(d) = d.parse() {
                filter = filter.add_directive(d);
            }
        }
    }
    // No colour codes into a file or a pipe.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    // Under systemd: `<N>` priority prefixes for journald, no timestamps (journald has its own).
    use crate::ops::journal::{stderr_is_journal, JournalPrefix};
    match (json, stderr_is_journal()) {
        (true, false) => builder.json().init(),
        (false, false) => builder.init(),
        (true, true) => builder.json().map_event_format(JournalPrefix).init(),
        (false, true) => builder
            .without_time()
            .with_ansi(false)
            .map_event_format(JournalPrefix)
            .init(),
    }
}

/// Longest text from the network that a log line carries.
const FIELD_MAX: usize = 240;

/// Text from the network (a topic, a metric name, a correlation id) made safe for a log line:
/// control characters escaped, so that a newline and a `<3>` after it cannot forge a journal
/// line of its own priority, and cut at [`FIELD_MAX`] characters with the length said.
pub fn field(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(FIELD_MAX + 32));
    for (n, c) in s.chars().enumerate() {
        if n == FIELD_MAX {
            out.push_str(&format!("… ({} bytes)", s.len()));
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Bytes from the network, as [`field`] shows text (invalid UTF-8 replaced).
pub fn field_bytes(b: &[u8]) -> String {
    field(&String::from_utf8_lossy(&b[..b.len().min(FIELD_MAX * 4)]))
}

/// A warning that a flood could repeat without end: at most `burst` lines per `period`; the
/// lines held back are counted and said by the next line let through.
pub struct Throttle {
    period: std::time::Duration,
    burst: u32,
    window_start: Option<std::time::Instant>,
    in_window: u32,
    held: u64,
}

impl Throttle {
    pub const fn new(period: std::time::Duration, burst: u32) -> Throttle {
        Throttle {
            period,
            burst,
            window_start: None,
            in_window: 0,
            held: 0,
        }
    }

    /// Some(lines held back since the last one let through) if this line may be logged.
    pub fn allow(&mut self) -> Option<u64> {
        let now = std::time::Instant::now();
        match self.window_start {
            Some(start) if now.duration_since(start) < self.period => {}
            _ => {
                self.window_start = Some(now);
                self.in_window = 0;
            }
        }
        if self.in_window < self.burst {
            self.in_window += 1;
            Some(std::mem::take(&mut self.held))
        } else {
            self.held += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_cannot_forge_a_journal_line_and_is_cut() {
        let forged = "speed\n<3>mes-edge ERROR forged";
        let f = field(forged);
        assert!(!f.contains('\n'), "{f}");
        assert!(f.starts_with("speed\\n<3>"), "{f}");
        let long = "x".repeat(250_000);
        let f = field(&long);
        assert!(f.len() < 300, "{}", f.len());
        assert!(f.ends_with("(250000 bytes)"), "{f}");
        assert_eq!(field("press-4/good"), "press-4/good");
    }

    #[test]
    fn a_throttle_lets_a_burst_through_then_counts() {
        let mut t = Throttle::new(std::time::Duration::from_secs(3600), 3);
        assert_eq!(t.allow(), Some(0));
        assert_eq!(t.allow(), Some(0));
        assert_eq!(t.allow(), Some(0));
        assert_eq!(t.allow(), None);
        assert_eq!(t.allow(), None);
        t.window_start = Some(std::time::Instant::now() - std::time::Duration::from_secs(7200));
        assert_eq!(
            t.allow(),
            Some(2),
            "the next line says how many were held back"
        );
    }
}
