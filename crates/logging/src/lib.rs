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

use tracing_subscriber::filter::Targets;
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

/// The environment variable that holds the filter.
pub const FILTER_ENV: &str = "RUST_LOG";

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
/// The filter comes from `RUST_LOG`: a default level and per-target levels, comma-separated
/// (`RUST_LOG=debug,hyper=info,postroom_queue=trace`), default [`DEFAULT_FILTER`]; an invalid
/// `RUST_LOG` falls back to the default with a warning rather than keeping a daemon from
/// starting. Span and field filters (`target[span]=level`) are not supported: the filter is a
/// [`Targets`], which needs no regular-expression engine in the firmware. The output is chosen by [`OUTPUT_ENV`]; on `auto` it is
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
///
/// Tests that set up their own subscriber use it too, so `RUST_LOG` means the same there.
pub fn filter_from_env() -> (Targets, Option<(String, String)>) {
    parse_filter(std::env::var(FILTER_ENV).ok().as_deref())
}

/// A `RUST_LOG` value as a filter; unset or blank gives [`DEFAULT_FILTER`], and so does an
/// invalid one, with the value and the reason.
fn parse_filter(value: Option<&str>) -> (Targets, Option<(String, String)>) {
    let default = || {
        DEFAULT_FILTER
            .parse::<Targets>()
            .expect("the default filter parses")
    };
    match value.map(str::trim) {
        Some(value) if !value.is_empty() => match value.parse::<Targets>() {
            Ok(filter) => (filter, None),
            Err(e) => (default(), Some((value.to_owned(), e.to_string()))),
        },
        _ => (default(), None),
    }
}

#[cfg(test)]
mod tests {
    use tracing::Level;
    use tracing::level_filters::LevelFilter;

    use super::parse_filter;

    #[test]
    fn unset_or_blank_filter_is_info() {
        for value in [None, Some(""), Some("  ")] {
            let (filter, refused) = parse_filter(value);
            assert!(refused.is_none());
            assert_eq!(filter.default_level(), Some(LevelFilter::INFO));
            assert!(filter.would_enable("postroom_queue", &Level::INFO));
            assert!(!filter.would_enable("postroom_queue", &Level::DEBUG));
        }
    }

    #[test]
    fn default_level_and_per_target_levels_are_kept() {
        let (filter, refused) = parse_filter(Some("debug,hyper=info,postroom_queue=trace"));
        assert!(refused.is_none());
        assert!(filter.would_enable("postroom_mail", &Level::DEBUG));
        assert!(!filter.would_enable("postroom_mail", &Level::TRACE));
        assert!(!filter.would_enable("hyper::proto", &Level::DEBUG));
        assert!(filter.would_enable("hyper::proto", &Level::INFO));
        assert!(filter.would_enable("postroom_queue::runner", &Level::TRACE));
    }

    #[test]
    fn invalid_filter_falls_back_to_info_and_says_why() {
        let (filter, refused) = parse_filter(Some("hyper=loud"));
        let (value, reason) = refused.expect("refused");
        assert_eq!(value, "hyper=loud");
        assert!(!reason.is_empty());
        assert_eq!(filter.default_level(), Some(LevelFilter::INFO));
    }
}
