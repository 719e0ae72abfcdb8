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
