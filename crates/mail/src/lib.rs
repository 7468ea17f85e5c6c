//! `postroom mail`: the SMTP listeners (MX, submission, submissions), routing, delivery into
//! Maildir and hand-over to the outbound queue and the fax spool. IMAP and POP3 run in this
//! process too (see [`services`]).
//!
//! A message is answered 250 only once [`intake::Intake::accept`] has stored it durably.

#![forbid(unsafe_code)]

pub mod app;
pub mod cli;
pub mod control;
pub mod delivery;
mod error;
pub mod intake;
pub mod on_connect;
pub mod privileges;
pub mod router;
pub mod senders;
pub mod services;
pub mod smtp_server;
pub mod tls;
pub mod tmp_cleanup;
pub mod trace;
pub mod users;

pub use error::Error;
