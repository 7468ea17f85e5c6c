//! IMAP4rev1 (RFC 3501) over the Maildir++ store, with IDLE, UIDPLUS, MOVE, NAMESPACE,
//! SPECIAL-USE, LITERAL+, ENABLE, UNSELECT, ID and STARTTLS.
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

/// The failed-login limiter of `[mail.access]`, to share between the IMAP and POP3 listeners.
pub fn login_limiter(
    access: &postroom_config::mail::Access,
) -> postroom_maildir::access::LoginLimiter {
    postroom_maildir::access::LoginLimiter::new(
        access.free_login_failures,
        access.login_delay.duration(),
        access.max_login_delay.duration(),
    )
}

/// The connection limiter of `[mail.access]`, to share between the IMAP and POP3 listeners.
pub fn connection_limiter(
    access: &postroom_config::mail::Access,
) -> postroom_maildir::access::ConnectionLimiter {
    postroom_maildir::access::ConnectionLimiter::new(
        access.max_connections_per_client,
        access.max_connections,
    )
}
