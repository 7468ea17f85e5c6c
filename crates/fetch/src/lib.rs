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
//! POP3 runs over implicit TLS (POP3S, port 995, RFC 8314) or is upgraded with STLS (RFC 2595)
//! on port 110, with the server's certificate checked ([`tls`]); plain text only for a mailbox
//! configured so by name. A server that does not offer STLS where it was asked for is refused,
//! and the password is never sent.

#![forbid(unsafe_code)]

pub mod multidrop;
pub mod on_connect;
pub mod pop3;
pub mod recipients;
pub mod seen;
pub mod smtp;
pub mod tls;
pub mod wire;

pub use multidrop::{FetchConfig, FetchReport, fetch};
pub use on_connect::{Pull, PullReport, pull, while_held};
pub use smtp::{EtrnOutcome, etrn};
pub use tls::Pop3Tls;

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
    /// TLS failed: the handshake, or the server's certificate is not trusted for its name.
    #[error("{peer}: TLS: {why}")]
    Tls { peer: String, why: String },
    /// STLS was asked for and the server does not offer it or refused it; nothing secret was
    /// sent, and there is no fallback to plain text.
    #[error(
        "{peer} does not offer STLS ({reply}): not logging in without TLS; use tls = \"implicit\" \
         if it has POP3S on port 995, or tls = \"none\" to send the password in plain text"
    )]
    NoStartTls { peer: String, reply: String },
    /// A mailbox's CA file cannot be used.
    #[error("CA file {}: {why}", path.display())]
    CaFile {
        path: std::path::PathBuf,
        why: String,
    },
    /// The seen-UID store failed.
    #[error("seen-UID store: {0}")]
    Store(String),
}
