//! POP3 (RFC 1939) over the Maildir++ store, with CAPA (RFC 2449), STLS (RFC 2595), UIDL, TOP
//! and SASL PLAIN (RFC 5034).
//!
//! [`Session`] is the protocol core without I/O; [`server`] drives it over TCP with tokio and
//! rustls (implicit TLS on 995, STLS on 110).

#![forbid(unsafe_code)]

pub mod server;
mod session;

pub use session::{Action, Output, Session};
