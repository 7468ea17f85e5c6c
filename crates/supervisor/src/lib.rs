//! The supervisor: starts every component, restarts what fails, pets the watchdog; and
//! `postroom ctl`, which talks to it.
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
