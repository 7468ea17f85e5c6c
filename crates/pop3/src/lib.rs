//! POP3 server (work in progress).
