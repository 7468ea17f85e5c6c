//! The supervisor: starts every component, restarts what fails, pets the watchdog; and
//! `postroom ctl`, which talks to it.
//!
//! `postroom run --config FILE` starts each enabled component of `[supervisor.components]` as
//! `postroom NAME --config FILE` (or its `command`), and counts it up once
//! `<run_dir>/NAME.sock` answers `GET /health`. A component that ends, or whose `/health`
//! stays unanswered for `unhealthy_timeout`, is killed if need be and started again after a
//! wait that doubles with each crash in a row ([`policy`], after OpenWrt procd); after
//! `respawn_retry` crashes it is reported failing, with its last exit and log lines, and
//! retried every `failing_retry`. SIGTERM or SIGINT stops every component (SIGTERM, then
//! SIGKILL after `stop_timeout`); children die with the supervisor even when it is killed
//! (`PR_SET_PDEATHSIG`), and every child, orphans included, is reaped. A thread pets the
//! hardware watchdog (and systemd's) only while the main loop turns and no critical component
//! has been failing past `watchdog.critical_failing_limit`. The control socket
//! `<run_dir>/supervisor.sock` serves status, restart, reload and logs ([`ctl`] is its client).
//!
//! Unsafe code is denied in the whole crate except two small modules that cannot do without
//! it, each with its reasons: `spawn` (setting the parent-death signal between fork and exec)
//! and `watchdog::ioctl` (the two watchdog ioctls rustix has no safe wrapper for).

#![deny(unsafe_code)]

mod api;
pub mod cli;
pub mod ctl;
pub mod logs;
mod notify;
pub mod policy;
mod reap;
mod settings;
mod spawn;
pub mod status;
mod supervise;
mod watchdog;

pub use reap::Ending;
pub use watchdog::WatchdogStatus;

/// Why the supervisor could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The async runtime could not be started.
    #[error("cannot start the supervisor's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// A signal handler could not be installed.
    #[error("cannot handle signals: {0}")]
    Signals(#[source] std::io::Error),
    /// The supervisor's control socket could not be served.
    #[error(transparent)]
    Control(#[from] postroom_control::Error),
}
