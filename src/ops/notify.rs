//! The sd_notify protocol (sd_notify(3)): newline-separated `KEY=VALUE` assignments in one
//! datagram to the Unix socket systemd names in `$NOTIFY_SOCKET`. It is a dozen lines over
//! `UnixDatagram`, so no crate: the libsystemd bindings would add a C library for nothing.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// The connection to systemd's notify socket; absent when not started by systemd.
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`: a path, or `@name` for a socket in the abstract namespace.
    pub fn from_env() -> Option<Notifier> {
        let target = std::env::var_os("NOTIFY_SOCKET")?;
        match Self::connect(target.as_encoded_bytes()) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(socket = ?target, "NOTIFY_SOCKET unusable, systemd will not hear from us: {e}");
                None
            }
        }
    }

    /// To a socket path, or `@name` in the abstract namespace.
    pub fn connect(target: &[u8]) -> io::Result<Notifier> {
        let addr = match target {
            [] => return Err(io::Error::other("empty")),
            [b'@', name @ ..] => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name)?
            }
            path => {
                use std::os::unix::ffi::OsStrExt;
                SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(path))?
            }
        };
        Ok(Notifier {
            socket: UnixDatagram::unbound()?,
            addr,
        })
    }

    /// Sends one state change, e.g. `READY=1\nSTATUS=running`. Never blocks for long: systemd
    /// reads its socket promptly, and a full socket buffer is an error, not a wait.
    pub fn send(&self, state: &str) -> io::Result<()> {
        self.socket.set_nonblocking(true)?;
        self.socket.send_to_addr(state.as_bytes(), &self.addr)?;
        Ok(())
    }
}

/// The watchdog interval systemd expects pings within (`$WATCHDOG_USEC`, `WatchdogSec=`), if
/// it is meant for this process (`$WATCHDOG_PID`, when set, names the main process).
pub fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID") {
        if pid.to_str()?.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// One STATUS= value: a single line, as systemctl status shows it.
pub fn status_line(text: &str) -> String {
    format!("STATUS={}", text.replace('\n', " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_reaches_a_path_socket_and_an_abstract_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::connect(path.as_os_str().as_encoded_bytes()).unwrap();
        n.send("READY=1\nSTATUS=up").unwrap();
        let mut buf = [0u8; 128];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=up");

        let name = format!("mes-edge-test-{}", std::process::id());
        use std::os::linux::net::SocketAddrExt;
        let rx = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
        let n = Notifier::connect(format!("@{name}").as_bytes()).unwrap();
        n.send("WATCHDOG=1").unwrap();
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
    }

    #[test]
    fn status_stays_on_one_line() {
        assert_eq!(status_line("a\nb"), "STATUS=a b");
    }
}
