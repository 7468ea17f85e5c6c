//! Outbound SMTP for Postroom: hands queued mail to the ISP's smarthost or straight to the
//! recipient domain's MX.
//!
//! [`client`] is the protocol as a state machine without I/O, [`reply`] parses server replies,
//! [`dot`] stuffs the body; [`driver`] runs a session over tokio with STARTTLS ([`tls`]), and
//! [`mx`] finds the servers of a domain (RFC 5321 section 5.1).

#![forbid(unsafe_code)]

pub mod client;
pub mod dot;
pub mod driver;
pub mod mx;
pub mod reply;
pub mod tls;

pub use hickory_resolver::TokioResolver;

pub use client::{Credentials, RecipientOutcome, SessionConfig, TlsMode, Transaction};
pub use driver::{Relay, SendOptions, Sent, Timeouts, send};
pub use reply::Reply;
pub use tls::CertCheck;

/// What went wrong talking to a server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server broke the protocol: a malformed or unexpected reply.
    #[error("the server broke the SMTP protocol: {0}")]
    Protocol(String),
    /// Reading or writing the connection failed.
    #[error("connection to {host} failed: {source}")]
    Io {
        /// The server's name and port.
        host: String,
        /// The failure.
        source: std::io::Error,
    },
    /// The server did not answer in time (RFC 5321 section 4.5.3.2 timeouts).
    #[error("{host} did not answer within {secs} s")]
    Timeout {
        /// The server's name and port.
        host: String,
        /// How long we waited.
        secs: u64,
    },
    /// TLS could not be set up: a bad CA file, a failed handshake, a certificate that does not
    /// check out.
    #[error("TLS: {0}")]
    Tls(String),
    /// The destination's servers could not be found in DNS.
    #[error("no server for {domain}: {reason}")]
    NoRoute {
        /// The recipient domain.
        domain: String,
        /// Why, in words.
        reason: String,
        /// Whether trying later could help (a DNS timeout) or not (no such domain, null MX).
        permanent: bool,
    },
}
