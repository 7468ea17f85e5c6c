//! Postroom's SMTP server core, without I/O.
//!
//! A [`Session`] is fed the bytes a client sends and answers with the bytes to send back and
//! with [`Event`]s for what only the driver can do: start TLS, check a password, decide about
//! a recipient, store a finished message durably. Command lines are parsed by smtp-proto; the
//! DATA phase (end of data, dot-stuffing, bare line endings, limits) is our own, in [`data`].
//!
//! What it offers in EHLO: PIPELINING, SIZE, 8BITMIME, ENHANCEDSTATUSCODES, SMTPUTF8, DSN,
//! STARTTLS (when a certificate is there and TLS is not yet active) and AUTH PLAIN LOGIN (only
//! inside TLS, on listeners that take authentication). Not offered: CHUNKING (BDAT), so BDAT is
//! answered 502.
//!
//! On submission the driver may restrict `MAIL FROM` after AUTH to the addresses the user owns
//! ([`AllowedSenders`], [`Session::restrict_senders`]); others get 553 5.7.1.

#![forbid(unsafe_code)]

pub mod auth;
pub mod data;
mod envelope;
mod reply;
mod senders;
mod session;

pub use auth::Credentials;
pub use data::{BareLineEndings, DataProblem};
pub use envelope::{BodyType, DsnReturn, Envelope, Message, Notify, Recipient, ReversePath};
pub use reply::{EnhancedStatus, Reply};
pub use senders::AllowedSenders;
pub use session::{Event, Session, SessionConfig, Wait};
