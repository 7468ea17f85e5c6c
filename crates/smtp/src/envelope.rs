//! The envelope of one mail transaction: who sent it, to whom, with which ESMTP parameters.

/// The reverse-path of `MAIL FROM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReversePath {
    /// `MAIL FROM:<>`: the null reverse-path of bounces and delivery reports (RFC 5321 section
    /// 4.5.5). No notice may ever be sent to it.
    Null,
    /// A mailbox address.
    Mailbox(String),
}

impl ReversePath {
    /// The address as written between the angle brackets (empty for the null path).
    pub fn as_str(&self) -> &str {
        match self {
            ReversePath::Null => "",
            ReversePath::Mailbox(a) => a,
        }
    }
}

/// The `BODY=` parameter (RFC 6152).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyType {
    /// Not given by the client.
    #[default]
    Unspecified,
    /// `BODY=7BIT`.
    SevenBit,
    /// `BODY=8BITMIME`.
    EightBitMime,
}

/// The `RET=` parameter of DSN (RFC 3461 section 4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsnReturn {
    /// Return the whole message in a failure notice.
    Full,
    /// Return only the headers.
    Headers,
}

/// The `NOTIFY=` parameter of DSN (RFC 3461 section 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Notify {
    /// `NOTIFY=NEVER`.
    pub never: bool,
    /// `SUCCESS` was listed.
    pub success: bool,
    /// `FAILURE` was listed.
    pub failure: bool,
    /// `DELAY` was listed.
    pub delay: bool,
}

/// One accepted `RCPT TO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The forward-path as the client wrote it.
    pub address: String,
    /// `NOTIFY=`, if given.
    pub notify: Option<Notify>,
    /// `ORCPT=` as decoded xtext, without its `rfc822;` type; not necessarily an address.
    pub original_recipient: Option<String>,
}

/// Everything known about a message besides its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The name the client gave in EHLO or HELO.
    pub helo: String,
    /// True after EHLO, false after HELO.
    pub esmtp: bool,
    /// True when the session ran over TLS.
    pub tls: bool,
    /// The user who authenticated, if any.
    pub authenticated: Option<String>,
    /// `MAIL FROM`.
    pub reverse_path: ReversePath,
    /// `SIZE=` as declared by the client.
    pub declared_size: Option<usize>,
    /// `BODY=`.
    pub body_type: BodyType,
    /// `SMTPUTF8` was given (RFC 6531).
    pub smtputf8: bool,
    /// `RET=`.
    pub dsn_return: Option<DsnReturn>,
    /// `ENVID=`.
    pub dsn_envelope_id: Option<String>,
    /// The accepted recipients, each once, in the order given.
    pub recipients: Vec<Recipient>,
}

/// A complete message as received: envelope and unstuffed content (with CRLF line endings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The envelope.
    pub envelope: Envelope,
    /// The content, exactly as sent, less dot-stuffing and the end-of-data line.
    pub content: Vec<u8>,
}
