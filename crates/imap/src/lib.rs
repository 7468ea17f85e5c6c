//! IMAP4rev1 (RFC 3501) over the Maildir++ store, with IDLE, UIDPLUS, MOVE, NAMESPACE,
//! SPECIAL-USE, LITERAL+, ENABLE and STARTTLS.
//!
//! [`Session`] is the protocol core without I/O; [`server`] drives it over TCP with tokio and
//! rustls (implicit TLS on 993, STARTTLS on 143).

#![forbid(unsafe_code)]

mod fetch;
mod mime;
mod search;
pub mod server;
mod session;
mod wire;

pub use session::{Action, Limits, Output, Session};
