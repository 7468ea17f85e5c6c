//! SMTP replies as the server sends them (RFC 5321 section 4.2), parsed from a byte stream.

use std::fmt;

use crate::Error;

/// The longest reply line we accept. RFC 5321 section 4.5.3.1.5 allows 512 octets; servers in
/// the wild send longer EHLO lines, so we are generous, but a line without end is an error.
const MAX_LINE: usize = 8192;

/// The most lines one multi-line reply may have before we stop listening.
const MAX_LINES: usize = 256;

/// One complete reply: its three-digit code and its text lines (without the code prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The reply code, 200..=599.
    pub code: u16,
    /// The text of each line, without the code and its separator.
    pub lines: Vec<String>,
}

impl Reply {
    /// A reply we make up ourselves for a failure that has no server reply (a timeout, a
    /// refused connection), so that every recipient outcome carries a reply.
    pub fn local(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            lines: vec![text.into()],
        }
    }

    /// 2yz: the command was accepted.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 3yz: the server waits for more (354 after DATA, 334 during AUTH).
    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }

    /// 4yz: a temporary failure; the same command may succeed later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5yz: a permanent failure.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// The whole reply on one line, as a person (and a DSN Diagnostic-Code) reads it:
    /// `550 5.1.1 <x@y>: Recipient address rejected`.
    pub fn one_line(&self) -> String {
        let mut out = self.code.to_string();
        for line in &self.lines {
            out.push(' ');
            out.push_str(line.trim());
        }
        out
    }

    /// The enhanced status code (RFC 3463) at the start of the first line, if the server sent
    /// one, e.g. `5.1.1`.
    pub fn enhanced_status(&self) -> Option<&str> {
        let first = self.lines.first()?;
        let word = first.split_whitespace().next()?;
        let mut parts = word.split('.');
        let class = parts.next()?;
        let subject = parts.next()?;
        let detail = parts.next()?;
        let ok = matches!(class, "2" | "4" | "5")
            && parts.next().is_none()
            && [subject, detail]
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
        ok.then_some(word)
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.one_line())
    }
}

/// Collects bytes from the server and hands out complete replies.
#[derive(Debug, Default)]
pub struct ReplyParser {
    buf: Vec<u8>,
    partial: Option<Reply>,
}

impl ReplyParser {
    /// An empty parser.
    pub fn new() -> ReplyParser {
        ReplyParser::default()
    }

    /// Adds bytes read from the connection.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Whether bytes are buffered that are not yet a complete reply. Before STARTTLS this must
    /// be false: bytes the server sent ahead of the TLS handshake are an injection attempt
    /// (the STARTTLS command-injection class of bugs, CVE-2011-0411 and friends).
    pub fn has_pending(&self) -> bool {
        !self.buf.is_empty() || self.partial.is_some()
    }

    /// The next complete reply, `Ok(None)` when more bytes are needed.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, Error> {
        loop {
            let Some(end) = self.buf.iter().position(|&b| b == b'\n') else {
                if self.buf.len() > MAX_LINE {
                    return Err(Error::Protocol(
                        "the server sent a reply line without end".into(),
                    ));
                }
                return Ok(None);
            };
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            let line = line.strip_suffix(b"\n").unwrap_or(&line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() > MAX_LINE {
                return Err(Error::Protocol(
                    "the server sent an overlong reply line".into(),
                ));
            }

            // RFC 5321 section 4.2: Reply-code [ SP textstring ] CRLF, or Reply-code "-" text
            // for every line but the last.
            let (code, last, text) = split_reply_line(line)?;
            let reply = self.partial.get_or_insert_with(|| Reply {
                code,
                lines: Vec::new(),
            });
            if reply.code != code {
                return Err(Error::Protocol(format!(
                    "a multi-line reply changed its code from {} to {code}",
                    reply.code
                )));
            }
            reply.lines.push(text);
            if reply.lines.len() > MAX_LINES {
                return Err(Error::Protocol(
                    "the server sent a reply with too many lines".into(),
                ));
            }
            if last {
                return Ok(self.partial.take());
            }
        }
    }
}

fn split_reply_line(line: &[u8]) -> Result<(u16, bool, String), Error> {
    let bad = || {
        Error::Protocol(format!(
            "malformed reply line {:?}",
            String::from_utf8_lossy(line)
        ))
    };
    if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let code = u16::from(line[0] - b'0') * 100
        + u16::from(line[1] - b'0') * 10
        + u16::from(line[2] - b'0');
    if !(200..600).contains(&code) {
        return Err(bad());
    }
    let (last, text) = match line.get(3) {
        None => (true, &[][..]),
        Some(b' ') => (true, &line[4..]),
        Some(b'-') => (false, &line[4..]),
        Some(_) => return Err(bad()),
    };
    Ok((code, last, String::from_utf8_lossy(text).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_reply_split_across_reads_is_one_reply() {
        let mut p = ReplyParser::new();
        p.feed(b"250-mx.example\r\n250-PIPE");
        assert_eq!(p.next_reply().unwrap(), None);
        p.feed(b"LINING\r\n250 SIZE 1000\r\n220 ");
        let r = p.next_reply().unwrap().unwrap();
        assert_eq!(r.code, 250);
        assert_eq!(r.lines, ["mx.example", "PIPELINING", "SIZE 1000"]);
        assert_eq!(p.next_reply().unwrap(), None);
        assert!(p.has_pending());
    }

    #[test]
    fn bare_code_line_is_a_complete_reply() {
        let mut p = ReplyParser::new();
        p.feed(b"250\r\n");
        assert_eq!(p.next_reply().unwrap().unwrap().lines, [""]);
    }

    #[test]
    fn garbage_and_changing_codes_are_protocol_errors() {
        let mut p = ReplyParser::new();
        p.feed(b"hello\r\n");
        assert!(p.next_reply().is_err());
        let mut p = ReplyParser::new();
        p.feed(b"250-a\r\n550 b\r\n");
        assert!(p.next_reply().is_err());
    }

    #[test]
    fn enhanced_status_is_read_from_the_first_line() {
        let r = Reply {
            code: 550,
            lines: vec!["5.1.1 <x@y>: Recipient address rejected".into()],
        };
        assert_eq!(r.enhanced_status(), Some("5.1.1"));
        assert_eq!(r.one_line(), "550 5.1.1 <x@y>: Recipient address rejected");
        let r = Reply {
            code: 550,
            lines: vec!["no such user".into()],
        };
        assert_eq!(r.enhanced_status(), None);
    }
}
