//! What is queued: the envelope with resolved recipients, and the queue id.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A queue entry's id: unique and increasing within one `mail.redb`, shown as 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QueueId(pub u64);

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for QueueId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<QueueId, Self::Err> {
        u64::from_str_radix(s, 16).map(QueueId)
    }
}

/// Where the router decided a recipient's copy goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Destination {
    /// A local user's mailbox (Maildir++), `folder` None for INBOX.
    Local {
        /// The user who owns the Maildir.
        user: String,
        /// A folder such as `Sent`, or None for INBOX.
        #[serde(default)]
        folder: Option<String>,
    },
    /// An address outside: relayed to the smarthost or the domain's MX.
    Remote {
        /// The forward-path to use on the outbound connection.
        address: String,
    },
    /// A fax number (`<number>@fax.<domain>`); the message goes to the fax spool.
    Fax {
        /// The number to dial, digits as the router normalised them.
        number: String,
    },
}

impl Destination {
    /// The domain of a remote address (after the last `@`), lower case; empty for others.
    pub fn remote_domain(&self) -> Option<String> {
        match self {
            Destination::Remote { address } => Some(
                address
                    .rsplit_once('@')
                    .map(|(_, d)| d)
                    .unwrap_or("")
                    .to_ascii_lowercase(),
            ),
            _ => None,
        }
    }

    /// Two destinations that deliver to the same place compare equal here: remote domains are
    /// case-insensitive (RFC 5321 section 2.4), local parts are not.
    fn dedupe_key(&self) -> Destination {
        match self {
            Destination::Remote { address } => match address.rsplit_once('@') {
                Some((local, domain)) => Destination::Remote {
                    address: format!("{local}@{}", domain.to_ascii_lowercase()),
                },
                None => self.clone(),
            },
            Destination::Local { user, folder } => Destination::Local {
                user: user.to_ascii_lowercase(),
                folder: folder.clone(),
            },
            Destination::Fax { .. } => self.clone(),
        }
    }
}

/// One recipient of a queued message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// The address as given at RCPT TO (the DSN's Original-Recipient and Final-Recipient).
    pub address: String,
    /// Where it goes.
    pub destination: Destination,
    /// DSN NOTIFY (RFC 3461 section 4.1): send a failure notice for this recipient.
    #[serde(default = "yes")]
    pub notify_failure: bool,
    /// DSN NOTIFY: send a delay notice for this recipient.
    #[serde(default = "yes")]
    pub notify_delay: bool,
}

fn yes() -> bool {
    true
}

impl Recipient {
    /// A recipient with the default notices (failure and delay).
    pub fn new(address: impl Into<String>, destination: Destination) -> Recipient {
        Recipient {
            address: address.into(),
            destination,
            notify_failure: true,
            notify_delay: true,
        }
    }
}

/// The envelope of a message to queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The reverse-path, empty for the null sender (RFC 5321 section 4.5.5): then no notice
    /// is ever sent about this message.
    pub reverse_path: String,
    /// Recipients with their resolved destinations.
    pub recipients: Vec<Recipient>,
    /// DSN RET=HDRS (RFC 3461 section 4.3): a failure notice returns only the headers.
    #[serde(default)]
    pub return_headers_only: bool,
}

impl Envelope {
    /// An envelope with the default DSN behaviour.
    pub fn new(reverse_path: impl Into<String>, recipients: Vec<Recipient>) -> Envelope {
        Envelope {
            reverse_path: reverse_path.into(),
            recipients,
            return_headers_only: false,
        }
    }

    /// Whether this is the null sender of notices.
    pub fn is_null_sender(&self) -> bool {
        self.reverse_path.is_empty()
    }

    /// Drops recipients that deliver to the same place as an earlier one: To, Cc and Bcc of the
    /// same person, or two aliases of one mailbox, give one copy.
    pub fn dedupe(&mut self) {
        let mut seen = std::collections::HashSet::new();
        self.recipients
            .retain(|r| seen.insert(r.destination.dedupe_key()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_destination_three_times_is_kept_once() {
        let local = || Destination::Local {
            user: "alice".into(),
            folder: None,
        };
        let mut env = Envelope::new(
            "b@x.example",
            vec![
                Recipient::new("alice@office.example", local()),
                Recipient::new("Alice@office.example", local()),
                Recipient::new("sales@office.example", local()),
                Recipient::new(
                    "c@Y.example",
                    Destination::Remote {
                        address: "c@Y.example".into(),
                    },
                ),
                Recipient::new(
                    "c@y.example",
                    Destination::Remote {
                        address: "c@y.EXAMPLE".into(),
                    },
                ),
                Recipient::new(
                    "C@y.example",
                    Destination::Remote {
                        address: "C@y.example".into(),
                    },
                ),
            ],
        );
        env.dedupe();
        let addresses: Vec<_> = env.recipients.iter().map(|r| r.address.as_str()).collect();
        assert_eq!(
            addresses,
            ["alice@office.example", "c@Y.example", "C@y.example"]
        );
    }

    #[test]
    fn queue_id_prints_and_parses_as_hex() {
        let id = QueueId(0x1234_abcd);
        assert_eq!(id.to_string(), "000000001234abcd");
        assert_eq!("000000001234abcd".parse::<QueueId>().unwrap(), id);
    }
}
