//! SMTP replies: a three-digit code, an enhanced status code, and text.
//!
//! RFC 5321 section 4.2 gives the reply format; RFC 3463 the enhanced status codes, which
//! RFC 2034 says go at the start of the text of every reply once ENHANCEDSTATUSCODES is offered.
//! Postroom puts one on every reply, also the greeting and replies before EHLO.

use std::borrow::Cow;
use std::fmt;

/// One SMTP reply, possibly multi-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code (RFC 5321 section 4.2.1).
    pub code: u16,
    /// The enhanced status code, e.g. `5.1.1` (RFC 3463).
    pub status: EnhancedStatus,
    /// The text, one element per line; never empty.
    pub lines: Vec<Cow<'static, str>>,
}

/// An enhanced status code `class.subject.detail` (RFC 3463 section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnhancedStatus(pub u8, pub u16, pub u16);

impl fmt::Display for EnhancedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl Reply {
    /// A one-line reply.
    pub fn new(code: u16, status: EnhancedStatus, text: impl Into<Cow<'static, str>>) -> Reply {
        Reply {
            code,
            status,
            lines: vec![text.into()],
        }
    }

    /// True for 2xx and 3xx replies.
    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// True for 4xx replies.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// Appends the reply in wire form to `out`. Continuation lines use `code-`, the last
    /// `code ` (RFC 5321 section 4.2.1); each carries the enhanced status code.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            push_fmt(
                out,
                format_args!("{}{}{} {}\r\n", self.code, sep, self.status, line),
            );
        }
    }
}

/// Writes a reply without enhanced status codes: RFC 2034 section 3 leaves them out of the
/// greeting and the replies to EHLO and HELO, whose text is a domain and extension keywords
/// (RFC 5321 sections 4.2 and 4.1.1.1), which clients parse.
pub(crate) fn write_plain(out: &mut Vec<u8>, code: u16, lines: &[Cow<'static, str>]) {
    let last = lines.len().saturating_sub(1);
    for (i, line) in lines.iter().enumerate() {
        let sep = if i == last { ' ' } else { '-' };
        push_fmt(out, format_args!("{code}{sep}{line}\r\n"));
    }
}

/// Writes formatted text into a byte buffer without an intermediate String.
pub(crate) fn push_fmt(out: &mut Vec<u8>, args: fmt::Arguments<'_>) {
    use std::io::Write;
    // Writing into a Vec<u8> cannot fail.
    let _ = out.write_fmt(args);
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::new();
        self.write_to(&mut out);
        f.write_str(&String::from_utf8_lossy(&out))
    }
}

/// Shorthands for the replies the session gives, so codes are chosen in one place.
pub(crate) mod canned {
    use super::{EnhancedStatus as S, Reply};

    pub fn ok(text: &'static str) -> Reply {
        Reply::new(250, S(2, 0, 0), text)
    }
    pub fn sender_ok() -> Reply {
        Reply::new(250, S(2, 1, 0), "Sender OK")
    }
    pub fn recipient_ok() -> Reply {
        Reply::new(250, S(2, 1, 5), "Recipient OK")
    }
    pub fn start_data() -> Reply {
        Reply::new(354, S(2, 0, 0), "End data with <CR><LF>.<CR><LF>")
    }
    pub fn bye() -> Reply {
        Reply::new(221, S(2, 0, 0), "Bye")
    }
    pub fn bad_sequence(text: &'static str) -> Reply {
        Reply::new(503, S(5, 5, 1), text)
    }
    pub fn syntax(text: impl Into<std::borrow::Cow<'static, str>>) -> Reply {
        Reply::new(501, S(5, 5, 4), text)
    }
    pub fn unknown_command() -> Reply {
        Reply::new(500, S(5, 5, 2), "Command not recognised")
    }
    pub fn not_implemented() -> Reply {
        Reply::new(502, S(5, 5, 1), "Command not implemented")
    }
}
