//! Postroom's modem AT engine: the Hayes / V.250 dialogue without I/O, a UUCP lock for the
//! port, and a tokio driver over tokio-serial.
//!
//! - [`Engine`]: feed it bytes, get [`Event`]s; assembles lines across reads, knows echo,
//!   verbal and numeric result codes, and when the modem went online.
//! - [`Modem`]: the engine on an async stream, with timeouts, dialling and hang-up.
//! - [`PortLock`]: the `/var/lock/LCK..ttyS0` convention.

#![forbid(unsafe_code)]

pub mod driver;
pub mod engine;
pub mod lock;
pub mod result;

use std::path::PathBuf;

pub use driver::{DialOutcome, DialTarget, MAX_INFO_LINES, Modem, Reply, open_port};
pub use engine::{Engine, Event, Mode};
pub use lock::PortLock;
pub use result::ResultCode;

/// What went wrong talking to a modem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The serial device could not be opened or set up.
    #[error("cannot open modem port {device}: {source}")]
    Open {
        device: PathBuf,
        source: tokio_serial::Error,
    },
    /// Reading or writing the port failed.
    #[error("modem port {during} failed: {source}")]
    Io {
        during: &'static str,
        source: std::io::Error,
    },
    /// The port reported end of file (the device went away).
    #[error("modem port closed")]
    Closed,
    /// The modem gave no final result in time.
    #[error("modem did not answer {command:?} in time")]
    Timeout { command: String },
    /// The modem answered a command with something other than OK.
    #[error("modem answered {code} to {command:?}")]
    Rejected { command: String, code: ResultCode },
    /// Another live process holds the port's lock file.
    #[error("port is locked by process {pid} ({path})")]
    PortLocked { path: PathBuf, pid: i32 },
    /// The lock file could not be created or removed.
    #[error("cannot write lock file {path}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
}
