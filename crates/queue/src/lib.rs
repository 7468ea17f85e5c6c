//! Postroom's outbound queue: a message is on disk (spool file and redb record) before the
//! SMTP server says 250, and from then on it is delivered, relayed, bounced or handed to the
//! fax spool, also across crashes and restarts.
//!
//! - [`Queue::enqueue`] writes the body ([`spool`]) and the record ([`store`], group commit);
//! - [`Queue::run`] is the queue runner: it delivers through [`transport::Transports`], retries
//!   on the [`schedule`], and sends failure and delay notices ([`dsn`]);
//! - [`control::router`] is the queue's part of the mail component's control API.

#![forbid(unsafe_code)]

pub mod control;
pub mod dsn;
pub mod envelope;
mod queue;
pub mod schedule;
pub mod spool;
pub mod store;
pub mod summary;
pub mod transport;

use std::path::{Path, PathBuf};

pub use envelope::{Destination, Envelope, QueueId, Recipient};
pub use queue::{EntryView, MessageBody, Queue, QueueSettings, RecipientView, SenderRoute};
pub use schedule::RetryPolicy;
pub use store::{QueueEntry, RecipientState, Status};
pub use transport::{DeliveryJob, Outcome, OutcomeKind, Transport, Transports};

/// What went wrong in the queue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A spool file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The queue records in mail.redb could not be read or written.
    #[error("queue records: {what}: {reason}")]
    Store {
        /// What we were doing.
        what: &'static str,
        /// redb's words.
        reason: String,
    },
    /// Committing queue records failed; nothing of that commit is on disk.
    #[error("queue records could not be committed: {0}")]
    Commit(String),
    /// A queue record cannot be read back.
    #[error("queue record {id} is damaged: {reason}")]
    Corrupt {
        /// The entry.
        id: QueueId,
        /// What is wrong with it.
        reason: String,
    },
    /// The queue's committer has stopped (the process is shutting down).
    #[error("the queue is shutting down")]
    Stopped,
    /// A message with no recipients was offered.
    #[error("a message without recipients cannot be queued")]
    NoRecipients,
    /// No entry of that id.
    #[error("no queue entry {0}")]
    NotFound(QueueId),
    /// The entry is being delivered right now; try again in a moment.
    #[error("queue entry {0} is being delivered right now")]
    Busy(QueueId),
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn store(what: &'static str, e: impl std::fmt::Display) -> Error {
        Error::Store {
            what,
            reason: e.to_string(),
        }
    }
}
