//! `postroom link`: the connection to the ISP.
//!
//! In permanent mode the link is always up. In on-demand mode a modem is dialled when a
//! component holds the link, on a schedule, or by hand; PPP runs on the line; the call is hung
//! up when idle and written to the call log (`link.redb`).
//!
//! - [`policy`]: the dialling policy, a deterministic state machine.
//! - [`calendar`]: schedules and tariffs in local time.

#![forbid(unsafe_code)]

pub mod api;
pub mod calendar;
pub mod line;
pub mod policy;
pub mod run;
pub mod service;
pub mod store;

pub use run::{run, serve};

/// What went wrong in the link component.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value in `[link]` makes no sense.
    #[error("[link] config: {0}")]
    Config(String),
    /// The call log could not be opened, read or written.
    #[error("call log: {0}")]
    Store(String),
    /// PPP could not be started.
    #[error("PPP: {0}")]
    Ppp(String),
    /// The control socket could not be served.
    #[error("control socket: {0}")]
    Control(String),
}
