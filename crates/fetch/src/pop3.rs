//! A POP3 client (RFC 1939): USER/PASS, UIDL, RETR, DELE, QUIT.

use crate::Error;
use crate::wire::Conn;

/// A POP3 session in the TRANSACTION state.
#[derive(Debug)]
pub struct Pop3 {
    conn: Conn,
}

impl Pop3 {
    /// Connects and logs in with USER and PASS (RFC 1939 section 7).
    pub async fn login(conn: Conn, user: &str, password: &str) -> Result<Pop3, Error> {
        let mut pop = Pop3 { conn };
        pop.status("greeting").await?;
        pop.call(&format!("USER {user}"), "USER").await?;
        // The password is never logged: `call` logs nothing of what it sends.
        pop.call(&format!("PASS {password}"), "PASS").await?;
        Ok(pop)
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
