//! The one error type of the control API.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What went wrong while serving or calling a control socket.
///
/// Messages name the component (taken from the socket's file name, `mail.sock` is "mail") and say
/// what happened in an administrator's words, e.g. `cannot reach the mail component at
/// /run/postroom/mail.sock: connection refused`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Connecting to the socket failed: nothing listens there, it does not exist, or we may not.
    #[error(
        "cannot reach the {} component at {}: {}",
        component(socket),
        socket.display(),
        describe_io(cause)
    )]
    Unreachable {
        /// The socket we tried.
        socket: PathBuf,
        /// The error from `connect`.
        cause: io::Error,
    },

    /// The HTTP exchange broke off (the component closed the connection or sent garbage).
    #[error("the {} component at {} broke off the exchange for {path}: {cause}",
        component(socket), socket.display())]
    Exchange {
        /// The socket we talked to.
        socket: PathBuf,
        /// The request path.
        path: String,
        /// What hyper saw.
        cause: hyper::Error,
    },

    /// No complete answer arrived within the client's timeout.
    #[error("the {} component at {} did not answer {path} within {after:?}",
        component(socket), socket.display())]
    Timeout {
        /// The socket we talked to.
        socket: PathBuf,
        /// The request path.
        path: String,
        /// The timeout that passed.
        after: Duration,
    },

    /// The component answered with an error status; `message` is its `{"error": ...}` text.
    ///
    /// A 4xx reply is the component saying no in its own words ("no hold 7"), which is all an
    /// administrator needs; the request and status are shown only for a failure (5xx).
    #[error("{}", refused(socket, method, path, *status, message))]
    Refused {
        /// The socket we talked to.
        socket: PathBuf,
        /// The request method.
        method: http::Method,
        /// The request path.
        path: String,
        /// The HTTP status it answered with.
        status: http::StatusCode,
        /// The reason it gave, or the start of its body.
        message: String,
    },

    /// The reply was not the JSON the caller expected.
    #[error(
        "the {} component answered {path} with unexpected JSON: {cause}",
        component(socket)
    )]
    BadReply {
        /// The socket we talked to.
        socket: PathBuf,
        /// The request path.
        path: String,
        /// What serde_json said.
        cause: serde_json::Error,
    },

    /// A line of a streamed reply was longer than the limit (1 MiB).
    #[error(
        "the {} component sent a line longer than {limit} bytes on {path}",
        component(socket)
    )]
    LineTooLong {
        /// The socket we talked to.
        socket: PathBuf,
        /// The request path.
        path: String,
        /// The limit.
        limit: usize,
    },

    /// The request path is not a valid URI path (it must start with `/`).
    #[error("{path:?} is not a valid request path")]
    InvalidPath {
        /// The offending path.
        path: String,
    },

    /// The request body could not be encoded as JSON.
    #[error("cannot encode the request body for {path} as JSON: {cause}")]
    Encode {
        /// The request path.
        path: String,
        /// What serde_json said.
        cause: serde_json::Error,
    },

    /// The socket could not be created or prepared.
    #[error("cannot listen on {}: {}", socket.display(), describe_io(cause))]
    Listen {
        /// The socket path.
        socket: PathBuf,
        /// The underlying error.
        cause: io::Error,
    },

    /// A live process already answers on the socket; we do not steal it.
    #[error("{} is in use by a running process (is another {} running?)",
        socket.display(), component(socket))]
    InUse {
        /// The socket path.
        socket: PathBuf,
    },

    /// Something other than a socket sits at the socket path; we do not delete it.
    #[error("{} exists and is not a socket; refusing to replace it", socket.display())]
    NotASocket {
        /// The path.
        socket: PathBuf,
    },

    /// The server stopped with an error.
    #[error("serving {} failed: {cause}", socket.display())]
    Serve {
        /// The socket path.
        socket: PathBuf,
        /// The underlying error.
        cause: io::Error,
    },

    /// The private runtime of a [`crate::BlockingClient`] could not be started.
    #[error("cannot start the runtime for a blocking control call: {cause}")]
    Runtime {
        /// The underlying error.
        cause: io::Error,
    },
}

/// The component a socket belongs to: its file name without `.sock`.
pub(crate) fn component(socket: &Path) -> String {
    socket
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "unnamed".to_owned())
}

/// The text of [`Error::Refused`].
fn refused(
    socket: &Path,
    method: &http::Method,
    path: &str,
    status: http::StatusCode,
    message: &str,
) -> String {
    let component = component(socket);
    if status.is_client_error() && !message.is_empty() {
        format!("the {component} component refused: {message}")
    } else {
        format!("the {component} component failed {method} {path}: {status}: {message}")
    }
}

/// Short lowercase words for the errors people meet; the OS text for the rest.
pub(crate) fn describe_io(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::NotFound => "no such socket (is it running?)".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::AddrInUse => "address in use".to_owned(),
        _ => err.to_string(),
    }
}
