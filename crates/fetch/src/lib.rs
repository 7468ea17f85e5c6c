//! Mail on connect: once the link is up, ask the ISP for the mail it holds.
//!
//! - [`smtp::etrn`]: ETRN (RFC 1985) to the ISP's backup MX for our domains.
//! - [`multidrop::fetch`]: a POP3 multidrop fetch from the ISP's domain mailbox, delivered to
//!   our own MX over SMTP on loopback, deduplicated by UIDL, deleted at the ISP only after
//!   our MX accepted it.
//!
//! - [`on_connect::while_held`] and [`on_connect::pull`]: hold the link, pull the mail,
//!   release the hold.
//!
//! `postroom mail` calls [`on_connect::pull`] once the link is up and its queue is flushed
//! (`crates/mail/src/on_connect.rs`).
//!
//! Not yet: POP3 over TLS (STLS or port 995); a mailbox configured with TLS is skipped with a
//! warning rather than sending its password in the clear.

#![forbid(unsafe_code)]

pub mod multidrop;
pub mod on_connect;
pub mod pop3;
pub mod recipients;
pub mod seen;
pub mod smtp;
pub mod wire;

pub use multidrop::{FetchConfig, FetchReport, fetch};
pub use on_connect::{Pull, PullReport, pull, while_held};
pub use smtp::{EtrnOutcome, etrn};

/// What went wrong fetching mail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection failed.
    #[error("{peer}: {source}")]
    Io {
        peer: String,
        source: std::io::Error,
    },
    /// The peer did not answer in time.
    #[error("{peer}: no answer in time ({during})")]
    Timeout { peer: String, during: String },
    /// The peer closed the connection.
    #[error("{peer} closed the connection")]
    Closed { peer: String },
    /// The peer said something that is not its protocol.
    #[error("{peer}: {why}")]
    Protocol { peer: String, why: String },
    /// The peer refused a step (login, a command).
    #[error("{peer} refused {during}: {reply}")]
    Refused {
        peer: String,
        during: String,
        reply: String,
    },
    /// The seen-UID store failed.
    #[error("seen-UID store: {0}")]
    Store(String),
}
