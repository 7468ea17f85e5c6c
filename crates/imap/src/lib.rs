//! IMAP4rev1 server (work in progress).
