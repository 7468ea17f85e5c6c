//! A small SMTP client: replies (RFC 5321 4.2), ETRN (RFC 1985), and injecting a fetched
//! message into our own MX on loopback.

use crate::Error;
use crate::wire::Conn;

/// One SMTP reply: the code and its text lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// Each line's text after the code and separator.
    pub lines: Vec<String>,
}

impl Reply {
    /// 2xx.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// The text, lines joined by spaces.
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }
}

/// Assembles a reply from lines (sans I/O). RFC 5321 4.2.1: every line starts with the code;
/// a hyphen after it means more lines follow, a space (or nothing) ends the reply.
#[derive(Debug, Default)]
pub struct ReplyParser {
    code: Option<u16>,
    lines: Vec<String>,
}

impl ReplyParser {
    /// Feeds one line; returns the reply when it is complete.
    pub fn feed(&mut self, line: &[u8]) -> Result<Option<Reply>, String> {
        let text = String::from_utf8_lossy(line);
        let code: u16 = text
            .get(..3)
            .and_then(|c| c.parse().ok())
            .filter(|c| (200..600).contains(c))
            .ok_or_else(|| format!("not an SMTP reply line: {text:?}"))?;
        if self.code.is_some_and(|c| c != code) {
            return Err(format!("reply code changed within a reply: {text:?}"));
        }
        self.code = Some(code);
        let sep = text.as_bytes().get(3).copied();
        self.lines.push(text.get(4..).unwrap_or("").to_owned());
        if sep == Some(b'-') {
            return Ok(None);
        }
        let lines = std::mem::take(&mut self.lines);
        self.code = None;
        Ok(Some(Reply { code, lines }))
    }
}

/// An SMTP session as a client.
#[derive(Debug)]
pub struct Session {
    conn: Conn,
    extensions: Vec<String>,
}

impl Session {
    /// Connects, reads the greeting and says EHLO.
    pub async fn open(mut conn: Conn, helo: &str) -> Result<Session, Error> {
        let greeting = read_reply(&mut conn).await?;
        if greeting.code != 220 {
            return Err(refused(&conn, "greeting", &greeting));
        }
        conn.command(&format!("EHLO {helo}")).await?;
        let ehlo = read_reply(&mut conn).await?;
        if !ehlo.is_positive() {
            return Err(refused(&conn, "EHLO", &ehlo));
        }
        let extensions = ehlo
            .lines
            .iter()
            .skip(1)
            .map(|l| l.to_ascii_uppercase())
            .collect();
        Ok(Session { conn, extensions })
    }

    /// Whether EHLO listed `keyword`.
    pub fn has_extension(&self, keyword: &str) -> bool {
        self.extensions
            .iter()
            .any(|e| e.split_whitespace().next() == Some(keyword))
    }

    /// Sends a command and reads its reply.
    pub async fn call(&mut self, line: &str) -> Result<Reply, Error> {
        self.conn.command(line).await?;
        read_reply(&mut self.conn).await
    }

    /// Sends the message data after a 354, dot-stuffed (RFC 5321 4.5.2), and reads the reply.
    pub async fn data(&mut self, message: &[u8]) -> Result<Reply, Error> {
        let go = self.call("DATA").await?;
        if go.code != 354 {
            return Ok(go);
        }
        let mut out = Vec::with_capacity(message.len() + 64);
        for line in message.split_inclusive(|b| *b == b'\n') {
            if line.first() == Some(&b'.') {
                out.push(b'.');
            }
            let body = line.strip_suffix(b"\n").unwrap_or(line);
            let body = body.strip_suffix(b"\r").unwrap_or(body);
            out.extend_from_slice(body);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        self.conn.write(&out).await?;
        read_reply(&mut self.conn).await
    }

    /// QUIT, ignoring the answer.
    pub async fn quit(mut self) {
        let _ = self.call("QUIT").await;
    }

    /// The peer, for messages.
    pub fn peer(&self) -> &str {
        self.conn.peer()
    }
}

async fn read_reply(conn: &mut Conn) -> Result<Reply, Error> {
    let mut parser = ReplyParser::default();
    loop {
        let line = conn.read_line().await?;
        match parser.feed(&line) {
            Ok(Some(reply)) => return Ok(reply),
            Ok(None) => {}
            Err(why) => {
                return Err(Error::Protocol {
                    peer: conn.peer().to_owned(),
                    why,
                });
            }
        }
    }
}

fn refused(conn: &Conn, during: &str, reply: &Reply) -> Error {
    Error::Refused {
        peer: conn.peer().to_owned(),
        during: during.to_owned(),
        reply: format!("{} {}", reply.code, reply.text()),
    }
}

/// What the server said to one ETRN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtrnOutcome {
    /// The domain asked for.
    pub domain: String,
    /// The reply.
    pub reply: Reply,
}

impl EtrnOutcome {
    /// RFC 1985 section 5: 250 (queueing started), 251 (no messages waiting), 252 and 253
    /// (pending messages started) are success; 458, 459 and 5xx are not.
    pub fn started(&self) -> bool {
        matches!(self.reply.code, 250..=253)
    }
}

/// Asks the ISP's backup MX to start delivering the mail it holds for our domains (RFC 1985
/// section 3: `ETRN domain`). Every domain is asked in one session.
pub async fn etrn(
    addr: &str,
    helo: &str,
    domains: &[String],
    timeout: std::time::Duration,
) -> Result<Vec<EtrnOutcome>, Error> {
    let conn = Conn::connect(addr, timeout).await?;
    let mut session = Session::open(conn, helo).await?;
    if !session.has_extension("ETRN") {
        // RFC 1985 section 2 has servers announce ETRN; some do not but accept it anyway.
        tracing::warn!(
            peer = addr,
            "server does not announce ETRN; trying it anyway"
        );
    }
    let mut outcomes = Vec::new();
    for domain in domains {
        let reply = session.call(&format!("ETRN {domain}")).await?;
        let outcome = EtrnOutcome {
            domain: domain.clone(),
            reply,
        };
        if outcome.started() {
            tracing::info!(domain = %domain, reply = %outcome.reply.text(), "ETRN accepted");
        } else {
            tracing::warn!(domain = %domain, code = outcome.reply.code, reply = %outcome.reply.text(), "ETRN refused");
        }
        outcomes.push(outcome);
    }
    session.quit().await;
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_reply_is_assembled() {
        let mut p = ReplyParser::default();
        assert_eq!(p.feed(b"250-mx.example").unwrap(), None);
        assert_eq!(p.feed(b"250-ETRN").unwrap(), None);
        let reply = p.feed(b"250 8BITMIME").unwrap().unwrap();
        assert_eq!(reply.code, 250);
        assert_eq!(reply.lines, ["mx.example", "ETRN", "8BITMIME"]);
        assert_eq!(p.feed(b"354").unwrap().unwrap().lines, [""]);
    }

    #[test]
    fn garbage_and_changed_codes_are_errors() {
        let mut p = ReplyParser::default();
        assert!(p.feed(b"hello").is_err());
        p.feed(b"250-a").unwrap();
        assert!(p.feed(b"251 b").is_err());
    }

    #[test]
    fn etrn_codes_per_rfc_1985() {
        let o = |code| EtrnOutcome {
            domain: "d".into(),
            reply: Reply {
                code,
                lines: vec![],
            },
        };
        assert!(o(250).started() && o(251).started() && o(253).started());
        assert!(!o(458).started() && !o(459).started() && !o(501).started());
    }
}
