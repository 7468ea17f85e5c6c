//! Logging for every Postroom process.
//!
//! [`init`] sends tracing events to journald when the journal socket exists, and otherwise to
//! stderr as readable lines, one event per line:
//!
//! ```text
//! 2026-12-03T16:54:13.123456Z  INFO mail: smtp{peer=127.0.0.1:50112}: accepted msg_id=3f2a
//! ```
//!
//! The supervisor starts its children with `POSTROOM_LOG=stderr` ([`CHILD_ENV`]), reads their
//! stderr a line at a time ([`read_lines`]), keeps the recent ones ([`RecentLines`]) for
//! `ctl logs`, and re-emits each through its own subscriber ([`relay`]) so they still reach the
//! journal with the child's level. A newline inside a message or field is written as `\n`, so a
//! line is always a whole event.

#![forbid(unsafe_code)]

mod capture;
mod format;
mod own;

use std::path::Path;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub use capture::{LogLine, RELAY_TARGET, RecentLines, read_lines, relay};
pub use format::LineFormat;
pub use own::OwnLines;

/// The environment variable that chooses the output: `auto` (the default), `stderr` or
/// `journald`.
pub const OUTPUT_ENV: &str = "POSTROOM_LOG";

/// What the supervisor puts in each child's environment so that the child's events come to it
/// on stderr, whatever the machine has.
pub const CHILD_ENV: (&str, &str) = (OUTPUT_ENV, "stderr");

/// Where journald listens for native-protocol messages.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// The filter used when `RUST_LOG` is unset or invalid.
pub const DEFAULT_FILTER: &str = "info";

/// Where [`init`] sent the events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// To the systemd journal, with `SYSLOG_IDENTIFIER=postroom-<component>`.
    Journald,
    /// To stderr, one event per line.
    Stderr,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// This process already installed a global subscriber.
    #[error("logging was already set up in this process: {0}")]
    AlreadySet(String),
}

/// Sets up tracing for a process named `component` (`supervisor`, `mail`, `link`, ...).
///
/// The filter comes from `RUST_LOG` (e.g. `RUST_LOG=debug,hyper=info`), default
/// [`DEFAULT_FILTER`]; an invalid `RUST_LOG` falls back to the default with a warning rather
/// than keeping a daemon from starting. The output is chosen by [`OUTPUT_ENV`]; on `auto` it is
/// journald when [`JOURNAL_SOCKET`] exists. When journald cannot be reached, stderr is used.
pub fn init(component: &str) -> Result<Output, Error> {
    init_with(component, None)
}

/// Like [`init`], and every event of this process's own is also handed to `own`, as one line
/// in [`LineFormat`], whatever the output; the lines of children it relays are not. The
/// supervisor keeps them for `ctl logs supervisor`.
pub fn init_with_own_lines(component: &str, own: OwnLines) -> Result<Output, Error> {
    init_with(component, Some(own))
}

fn init_with(component: &str, own: Option<OwnLines>) -> Result<Output, Error> {
    let (filter, bad_filter) = filter_from_env();
    let wanted = std::env::var(OUTPUT_ENV).unwrap_or_default();
    let try_journald = match wanted.as_str() {
        "stderr" => false,
        "journald" => true,
        _ => Path::new(JOURNAL_SOCKET).exists(),
    };

    let journald = if try_journald {
        match tracing_journald::layer() {
            Ok(layer) => Some(layer.with_syslog_identifier(format!("postroom-{component}"))),
            Err(e) => {
                eprintln!("postroom {component}: journald unreachable ({e}), logging to stderr");
                None
            }
        }
    } else {
        None
    };

    let output = if journald.is_some() {
        Output::Journald
    } else {
        Output::Stderr
    };
    let stderr = journald.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .event_format(LineFormat::new(component))
            .fmt_fields(LineFormat::new(component))
            .with_writer(std::io::stderr)
    });

    tracing_subscriber::registry()
        .with(filter)
        .with(journald)
        .with(stderr)
        .with(own.map(|sink| own::layer(component, sink)))
        .try_init()
        .map_err(|e| Error::AlreadySet(e.to_string()))?;

    if let Some((value, reason)) = bad_filter {
        tracing::warn!(rust_log = %value, %reason, "ignoring invalid RUST_LOG, using {DEFAULT_FILTER}");
    }
    Ok(output)
}

/// The `RUST_LOG` filter, or the default and the reason the given one was refused.
fn filter_from_env() -> (EnvFilter, Option<(String, String)>) {
    match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(value) if !value.trim().is_empty() => match EnvFilter::try_new(&value) {
            Ok(filter) => (filter, None),
            Err(e) => (EnvFilter::new(DEFAULT_FILTER), Some((value, e.to_string()))),
        },
        _ => (EnvFilter::new(DEFAULT_FILTER), None),
    }
}
