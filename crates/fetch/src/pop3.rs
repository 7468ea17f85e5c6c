//! A POP3 client (RFC 1939): USER/PASS, UIDL, RETR, DELE, QUIT; over implicit TLS (RFC 8314)
//! or upgraded with STLS (RFC 2595), or in plain text when asked for by name.

use std::sync::Arc;
use std::time::Duration;

use crate::Error;
use crate::tls::Pop3Tls;
use crate::wire::Conn;

/// A POP3 session: in the AUTHORIZATION state from [`Pop3::connect`], in the TRANSACTION state
/// after [`Pop3::login`].
#[derive(Debug)]
pub struct Pop3 {
    conn: Conn,
    /// `tls = "none"` was configured: a login in plain text is allowed.
    plain_allowed: bool,
}

impl Pop3 {
    /// Connects, reads the greeting and sets up TLS as `mode` says. `tls` is the client
    /// configuration for the implicit and STLS modes.
    pub async fn connect(
        addr: &str,
        mode: Pop3Tls,
        tls: Option<Arc<rustls::ClientConfig>>,
        timeout: Duration,
    ) -> Result<Pop3, Error> {
        let no_settings = || Error::Tls {
            peer: addr.to_owned(),
            why: "no TLS settings given".into(),
        };
        let conn = match mode {
            Pop3Tls::Implicit => {
                Conn::connect_tls(addr, tls.clone().ok_or_else(no_settings)?, timeout).await?
            }
            Pop3Tls::StartTls | Pop3Tls::None => Conn::connect(addr, timeout).await?,
        };
        let mut pop = Pop3 {
            conn,
            plain_allowed: mode == Pop3Tls::None,
        };
        pop.status("greeting").await?;
        if mode == Pop3Tls::StartTls {
            pop = pop.stls(tls.ok_or_else(no_settings)?).await?;
        }
        Ok(pop)
    }

    /// Upgrades to TLS with `STLS` (RFC 2595 section 4). The server's capabilities (`CAPA`,
    /// RFC 2449) are asked first; one that answers CAPA without STLS is not asked at all, and
    /// one that refuses STLS is left: never a fallback to plain text.
    async fn stls(mut self, tls: Arc<rustls::ClientConfig>) -> Result<Pop3, Error> {
        self.conn.command("CAPA").await?;
        let line = self.conn.read_line().await?;
        if line.starts_with(b"+OK") {
            let capabilities = self.multi_line().await?;
            let offered = capabilities.iter().any(|c| {
                c.split(|b| *b == b' ')
                    .next()
                    .is_some_and(|word| word.eq_ignore_ascii_case(b"STLS"))
            });
            if !offered {
                let listed: Vec<String> = capabilities
                    .iter()
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect();
                return Err(self.no_stls(format!("CAPA lists {}", listed.join(", "))));
            }
        }
        // A server without CAPA (-ERR) may still know STLS: asking costs nothing secret.

        self.conn.command("STLS").await?;
        let line = self.conn.read_line().await?;
        if !line.starts_with(b"+OK") {
            return Err(self.no_stls(String::from_utf8_lossy(&line).into_owned()));
        }
        let conn = self.conn.start_tls(tls).await?;
        // RFC 2595 section 4: what was learnt before TLS is forgotten; nothing of it is kept.
        Ok(Pop3 {
            conn,
            plain_allowed: self.plain_allowed,
        })
    }

    fn no_stls(&self, reply: String) -> Error {
        Error::NoStartTls {
            peer: self.conn.peer().to_owned(),
            reply,
        }
    }

    /// Logs in with USER and PASS (RFC 1939 section 7), only over TLS unless plain text was
    /// asked for.
    pub async fn login(&mut self, user: &str, password: &str) -> Result<(), Error> {
        if !self.conn.is_tls() && !self.plain_allowed {
            return Err(Error::Tls {
                peer: self.conn.peer().to_owned(),
                why: "not encrypted: the password is not sent".into(),
            });
        }
        self.call(&format!("USER {user}"), "USER").await?;
        // The password is never logged: `call` logs nothing of what it sends.
        self.call(&format!("PASS {password}"), "PASS").await?;
        Ok(())
    }

    /// `UIDL`: message number and unique id for every message (RFC 1939 section 7).
    pub async fn uidl(&mut self) -> Result<Vec<(u32, String)>, Error> {
        self.call("UIDL", "UIDL").await?;
        let mut list = Vec::new();
        for line in self.multi_line().await? {
            let text = String::from_utf8_lossy(&line);
            let mut parts = text.split_whitespace();
            let (Some(n), Some(uid)) = (parts.next(), parts.next()) else {
                return Err(self.protocol(format!("bad UIDL line {text:?}")));
            };
            let n = n
                .parse()
                .map_err(|_| self.protocol(format!("bad UIDL line {text:?}")))?;
            list.push((n, uid.to_owned()));
        }
        Ok(list)
    }

    /// `RETR n`: the message, dot-unstuffed, lines ending in CRLF.
    pub async fn retr(&mut self, n: u32) -> Result<Vec<u8>, Error> {
        self.call(&format!("RETR {n}"), "RETR").await?;
        let mut message = Vec::new();
        for line in self.multi_line().await? {
            message.extend_from_slice(&line);
            message.extend_from_slice(b"\r\n");
        }
        Ok(message)
    }

    /// `DELE n`: marked; the server removes it at QUIT.
    pub async fn dele(&mut self, n: u32) -> Result<(), Error> {
        self.call(&format!("DELE {n}"), "DELE").await.map(drop)
    }

    /// `QUIT`: the server enters the UPDATE state and removes what was marked (RFC 1939
    /// section 6); only a +OK here means the deletions happened.
    pub async fn quit(mut self) -> Result<(), Error> {
        self.call("QUIT", "QUIT").await.map(drop)
    }

    async fn call(&mut self, line: &str, what: &str) -> Result<String, Error> {
        self.conn.command(line).await?;
        self.status(what).await
    }

    async fn status(&mut self, what: &str) -> Result<String, Error> {
        let line = self.conn.read_line().await?;
        let text = String::from_utf8_lossy(&line).into_owned();
        if text.starts_with("+OK") {
            Ok(text)
        } else {
            Err(Error::Refused {
                peer: self.conn.peer().to_owned(),
                during: what.to_owned(),
                reply: text,
            })
        }
    }

    /// A multi-line response body: up to the lone `.`, with byte-stuffed dots removed
    /// (RFC 1939 section 3).
    async fn multi_line(&mut self) -> Result<Vec<Vec<u8>>, Error> {
        let mut lines = Vec::new();
        loop {
            let mut line = self.conn.read_line().await?;
            if line == b"." {
                return Ok(lines);
            }
            if line.first() == Some(&b'.') {
                line.remove(0);
            }
            lines.push(line);
        }
    }

    fn protocol(&self, why: String) -> Error {
        Error::Protocol {
            peer: self.conn.peer().to_owned(),
            why,
        }
    }
}
