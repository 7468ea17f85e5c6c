//! What can go wrong in the mail component.

use std::path::{Path, PathBuf};

/// An error of the mail component, in the administrator's words.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory under the data directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A listener could not be bound to its address.
    #[error("cannot listen on {addr} ({service}): {source}")]
    Bind {
        /// The service (smtp, submission...).
        service: &'static str,
        /// The address from `[mail.listen]`.
        addr: std::net::SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
    /// The certificate or key could not be loaded or made.
    #[error("TLS: {0}")]
    Tls(String),
    /// A Maildir delivery failed.
    #[error("mailbox: {0}")]
    Maildir(postroom_maildir::Error),
    /// The queue could not take a message, or could not be opened.
    #[error("queue: {0}")]
    Queue(String),
    /// mail.redb could not be opened.
    #[error("mail.redb: {0}")]
    Database(#[from] redb::Error),
    /// The configured user to run as does not exist, or switching to it failed.
    #[error("cannot run as user {user:?}: {reason}")]
    User {
        /// The user name from the configuration.
        user: String,
        /// Why not.
        reason: String,
    },
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_owned(),
            source,
        }
    }
}
