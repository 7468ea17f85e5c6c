//! The Maildir++ message store every part of `postroom mail` shares.
//!
//! - [`Maildir`] is one Maildir directory (`cur`, `new`, `tmp`): safe delivery (write to tmp,
//!   fsync, link into new, fsync the directory), listing, flags in file names (`:2,FRS`).
//! - [`Store`] is the tree of all users' Maildir++ roots plus the UID index kept in the shared
//!   `mail.redb`: UIDs and UIDVALIDITY survive restarts, and a per-mailbox broadcast channel
//!   tells IMAP sessions about deliveries and flag changes at once.
//!
//! Layout (Maildir++): `<root>/<user>/` is INBOX; a folder `Sent` is `<root>/<user>/.Sent/`, a
//! sub-folder `Archive.2024` is `.Archive.2024/`. Folder names on disk are in modified UTF-7
//! (RFC 3501 section 5.1.3), as Dovecot and Courier store them.

#![forbid(unsafe_code)]

pub mod access;
pub mod cleanup;
mod flags;
pub mod listener;
mod maildir;
pub mod mutf7;
mod store;

pub use flags::Flags;
pub use maildir::{Maildir, MessageFile};
pub use store::{Change, Mailbox, MailboxSnapshot, MaildropLock, Message, SPECIAL_FOLDERS, Store};

use std::path::PathBuf;

/// What went wrong in the message store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory of the store could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The path given is not a Maildir (it lacks `cur`, `new` or `tmp`).
    #[error("{0} is not a Maildir (cur, new and tmp are needed)")]
    NotMaildir(PathBuf),
    /// A unique name for delivery was empty or held `/`, `:` or a NUL, which Maildir forbids.
    #[error("{0:?} cannot be a Maildir file name")]
    BadUniqueName(String),
    /// A mailbox name is empty, holds a character the store cannot keep, or names INBOX's parent.
    #[error("{0:?} is not a valid mailbox name")]
    BadMailboxName(String),
    /// DELETE of INBOX, which every user keeps (RFC 3501 section 6.3.4).
    #[error("INBOX cannot be deleted")]
    InboxKept,
    /// The mailbox asked for does not exist.
    #[error("mailbox {0:?} does not exist")]
    NoMailbox(String),
    /// The mailbox to create exists already.
    #[error("mailbox {0:?} exists already")]
    MailboxExists(String),
    /// The user has no Maildir in the store.
    #[error("user {0:?} has no mailbox")]
    NoUser(String),
    /// A message was removed (by another session) before it could be read or changed.
    #[error("message {0} is gone")]
    MessageGone(String),
    /// The UID index in mail.redb could not be read or written.
    #[error("UID index in mail.redb: {0}")]
    Index(#[from] redb::Error),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

/// Results of the message store.
pub type Result<T, E = Error> = std::result::Result<T, E>;
