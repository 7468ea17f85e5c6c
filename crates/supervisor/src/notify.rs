//! Telling systemd how we are, by the sd_notify protocol (sd_notify(3)): datagrams such as
//! `READY=1` and `WATCHDOG=1` sent to the Unix socket named in `$NOTIFY_SOCKET`.
//!
//! Written here rather than taken from a crate: it is one `sendto` and two variables.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// The supervisor's line to systemd; absent when not started by systemd with `Type=notify`.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    address: SocketAddr,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`. Returns `None` when there
    /// is no notify socket or it cannot be used (then a warning is logged).
    pub fn from_env() -> Option<Notifier> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let bytes = path.as_encoded_bytes();
        // A leading '@' names a socket in the abstract namespace (sd_notify(3)).
        let address = match bytes.strip_prefix(b"@") {
            Some(name) => SocketAddr::from_abstract_name(name),
            None => SocketAddr::from_pathname(&path),
        };
        let address = match address {
            Ok(address) => address,
            Err(e) => {
                tracing::warn!(socket = %path.to_string_lossy(), error = %e, "NOTIFY_SOCKET is not usable");
                return None;
            }
        };
        let socket = match UnixDatagram::unbound() {
            Ok(socket) => socket,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open a socket to notify systemd");
                return None;
            }
        };
        Some(Notifier {
            socket,
            address,
            watchdog: watchdog_interval(),
        })
    }

    /// Sends one notification, e.g. `READY=1`; a failure is logged, never fatal.
    pub fn send(&self, message: &str) {
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.address) {
            tracing::warn!(message, error = %e, "cannot notify systemd");
        }
    }

    /// How often systemd wants `WATCHDOG=1`: half its `WatchdogSec`, as sd_watchdog_enabled(3)
    /// advises. `None` when systemd does not watch us.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }
}

/// `$WATCHDOG_USEC / 2`, if set and meant for this process (`$WATCHDOG_PID` absent or ours).
fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}
