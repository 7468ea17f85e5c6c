//! The SMTP client session as a state machine without I/O (RFC 5321 section 3, RFC 2920
//! PIPELINING, RFC 1870 SIZE, RFC 3207 STARTTLS, RFC 4954 AUTH).
//!
//! The driver asks [`Session::next_action`] what to do, does it, and feeds every reply it
//! reads to [`Session::on_reply`]. At the end [`Session::outcomes`] says, per recipient,
//! whether the server took the message, deferred it or refused it.

use std::collections::VecDeque;

use crate::Error;
use crate::reply::Reply;

/// When to use STARTTLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Never: plain text only (a LAN relay that has no TLS).
    Never,
    /// If the server offers it; go on in plain text if it does not (RFC 3207 section 4.1 leaves
    /// that to the client). Direct MX delivery uses this.
    Opportunistic,
    /// The server must offer STARTTLS and the handshake must succeed, or the attempt is deferred.
    Required,
}

/// A user name and password for AUTH PLAIN or AUTH LOGIN.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The authentication identity.
    pub username: String,
    /// The password. Never logged.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// How one session behaves.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The name we give in EHLO.
    pub helo_name: String,
    /// When to use STARTTLS.
    pub tls: TlsMode,
    /// AUTH credentials, if the server wants them (a smarthost).
    pub auth: Option<Credentials>,
}

/// The message to hand over: its envelope and what the server needs to know of its body.
#[derive(Debug, Clone)]
pub struct Transaction {
    /// The reverse-path; empty for the null sender of notices (RFC 5321 section 4.5.5).
    pub reverse_path: String,
    /// Forward-paths, each an address without angle brackets.
    pub recipients: Vec<String>,
    /// The body's size in octets, announced with SIZE (RFC 1870) when the server offers it.
    pub size: u64,
    /// Whether the body has octets above 127; then BODY=8BITMIME is announced (RFC 6152).
    pub eight_bit: bool,
}

/// What the server said about one recipient, finally, in this session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientOutcome {
    /// The server accepted the message for this recipient (250 after the final dot).
    Delivered(Reply),
    /// A temporary failure: try again later.
    Deferred(Reply),
    /// A permanent failure: the sender gets a notice.
    Failed(Reply),
}

impl RecipientOutcome {
    fn from_reply(reply: Reply) -> RecipientOutcome {
        if reply.is_positive() {
            RecipientOutcome::Delivered(reply)
        } else if reply.is_permanent() {
            RecipientOutcome::Failed(reply)
        } else {
            RecipientOutcome::Deferred(reply)
        }
    }

    /// The reply behind the outcome.
    pub fn reply(&self) -> &Reply {
        match self {
            RecipientOutcome::Delivered(r)
            | RecipientOutcome::Deferred(r)
            | RecipientOutcome::Failed(r) => r,
        }
    }
}

/// The next thing the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes.
    Send(Vec<u8>),
    /// Read one reply and pass it to [`Session::on_reply`].
    ReadReply,
    /// Start the TLS handshake on the connection, then call [`Session::on_tls_established`].
    StartTls,
    /// Write the message body, dot-stuffed and ended with `CRLF.CRLF` (see [`crate::dot`]).
    SendBody,
    /// The session is over; close the connection.
    Close,
}

/// What the server advertised in its EHLO reply (RFC 5321 section 4.1.1.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// STARTTLS (RFC 3207).
    pub starttls: bool,
    /// SIZE (RFC 1870): `Some(0)` means no fixed limit.
    pub size: Option<u64>,
    /// 8BITMIME (RFC 6152).
    pub eight_bit_mime: bool,
    /// AUTH mechanisms (RFC 4954), upper case.
    pub auth: Vec<String>,
    /// SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
}

impl Capabilities {
    /// Reads the keywords of an EHLO reply; the first line is the server's greeting.
    pub fn from_ehlo(reply: &Reply) -> Capabilities {
        let mut caps = Capabilities::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            let keyword = keyword.to_ascii_uppercase();
            match keyword.as_str() {
                "PIPELINING" => caps.pipelining = true,
                "STARTTLS" => caps.starttls = true,
                "8BITMIME" => caps.eight_bit_mime = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "SIZE" => caps.size = Some(words.next().and_then(|w| w.parse().ok()).unwrap_or(0)),
                "AUTH" => caps.auth.extend(words.map(|w| w.to_ascii_uppercase())),
                // Some old servers still write AUTH=PLAIN LOGIN.
                k if k.starts_with("AUTH=") => {
                    caps.auth.push(k["AUTH=".len()..].to_owned());
                    caps.auth.extend(words.map(|w| w.to_ascii_uppercase()));
                }
                _ => {}
            }
        }
        caps.auth.sort();
        caps.auth.dedup();
        caps
    }
}

/// Which reply we wait for next, in the order the commands were sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    AuthPlain,
    AuthLoginUser,
    AuthLoginPassword,
    AuthLoginDone,
    Mail,
    Rcpt(usize),
    Data,
    /// The reply to a lone dot sent when DATA was accepted but no recipient was (RFC 2920
    /// section 3.1); it delivers nothing.
    EmptyDataEnd,
    DataEnd,
    Quit,
}

/// One SMTP client session: greeting, EHLO, optional STARTTLS and AUTH, one transaction, QUIT.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    transaction: Transaction,
    outbox: VecDeque<Action>,
    expect: VecDeque<Expect>,
    caps: Capabilities,
    tls_active: bool,
    authenticated: bool,
    /// Per recipient: `None` while undecided, `Some(true)` while accepted at RCPT and waiting for
    /// the data, the final outcome in `outcomes`.
    accepted: Vec<bool>,
    outcomes: Vec<Option<RecipientOutcome>>,
    /// A failure of the session as a whole, before any recipient was decided.
    session_failure: Option<Reply>,
    mail_failed: bool,
    closed: bool,
}

impl Session {
    /// A session that waits for the server's greeting.
    pub fn new(config: SessionConfig, transaction: Transaction) -> Session {
        let n = transaction.recipients.len();
        Session {
            config,
            transaction,
            outbox: VecDeque::new(),
            expect: VecDeque::from([Expect::Greeting]),
            caps: Capabilities::default(),
            tls_active: false,
            authenticated: false,
            accepted: vec![false; n],
            outcomes: vec![None; n],
            session_failure: None,
            mail_failed: false,
            closed: false,
        }
    }

    /// What the server advertised in its latest EHLO reply.
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// Whether TLS was started on this session.
    pub fn tls_active(&self) -> bool {
        self.tls_active
    }

    /// The next thing to do.
    pub fn next_action(&mut self) -> Action {
        if let Some(action) = self.outbox.pop_front() {
            return action;
        }
        if !self.expect.is_empty() {
            return Action::ReadReply;
        }
        self.closed = true;
        Action::Close
    }

    /// The TLS handshake has succeeded; RFC 3207 section 4.2: forget everything learnt
    /// before and say EHLO again.
    pub fn on_tls_established(&mut self) {
        self.tls_active = true;
        self.caps = Capabilities::default();
        self.send_ehlo();
    }

    /// A reply read from the server.
    pub fn on_reply(&mut self, reply: Reply) -> Result<(), Error> {
        let Some(expect) = self.expect.pop_front() else {
            return Err(Error::Protocol(format!("unexpected reply {reply}")));
        };
        match expect {
            Expect::Greeting => {
                // RFC 5321 section 4.3.1: 220 is the greeting; 554 means no service here.
                if reply.code == 220 {
                    self.send_ehlo();
                } else {
                    self.fail_session(reply);
                }
            }
            Expect::Ehlo => {
                if reply.is_positive() {
                    self.caps = Capabilities::from_ehlo(&reply);
                    self.after_hello();
                } else if reply.is_permanent() && !self.tls_active {
                    // RFC 5321 section 3.2: fall back to HELO for a server without ESMTP.
                    self.send(format!("HELO {}\r\n", self.config.helo_name), Expect::Helo);
                } else {
                    self.fail_session(reply);
                }
            }
            Expect::Helo => {
                if reply.is_positive() {
                    self.caps = Capabilities::default();
                    self.after_hello();
                } else {
                    self.fail_session(reply);
                }
            }
            Expect::StartTls => {
                if reply.code == 220 {
                    self.outbox.push_back(Action::StartTls);
                } else if self.config.tls == TlsMode::Required {
                    self.fail_session(reply);
                } else {
                    self.after_tls_decided();
                }
            }
            Expect::AuthPlain | Expect::AuthLoginDone => {
                if reply.code == 235 {
                    self.authenticated = true;
                    self.start_transaction();
                } else {
                    self.fail_session(as_transient(reply));
                }
            }
            Expect::AuthLoginUser | Expect::AuthLoginPassword => {
                if reply.code != 334 {
                    self.fail_session(as_transient(reply));
                } else if let Some(auth) = self.config.auth.clone() {
                    if expect == Expect::AuthLoginUser {
                        let line = format!("{}\r\n", base64(auth.username.as_bytes()));
                        self.send(line, Expect::AuthLoginPassword);
                    } else {
                        let line = format!("{}\r\n", base64(auth.password.as_bytes()));
                        self.send(line, Expect::AuthLoginDone);
                    }
                }
            }
            Expect::Mail => {
                if !reply.is_positive() {
                    self.mail_failed = true;
                    for o in &mut self.outcomes {
                        *o = Some(RecipientOutcome::from_reply(reply.clone()));
                    }
                    if !self.caps.pipelining {
                        self.quit();
                    }
                } else if !self.caps.pipelining {
                    self.send_rcpt(0);
                }
            }
            Expect::Rcpt(i) => {
                if !self.mail_failed {
                    if reply.is_positive() {
                        self.accepted[i] = true;
                    } else {
                        self.outcomes[i] = Some(RecipientOutcome::from_reply(reply));
                    }
                }
                if !self.caps.pipelining {
                    if i + 1 < self.transaction.recipients.len() {
                        self.send_rcpt(i + 1);
                    } else if self.accepted.iter().any(|&a| a) {
                        self.send("DATA\r\n".into(), Expect::Data);
                    } else {
                        self.quit();
                    }
                }
            }
            Expect::Data => {
                let any = self.accepted.iter().any(|&a| a);
                if reply.code == 354 && any {
                    self.outbox.push_back(Action::SendBody);
                    self.expect.push_back(Expect::DataEnd);
                } else if reply.code == 354 {
                    self.send(".\r\n".into(), Expect::EmptyDataEnd);
                } else {
                    self.decide_accepted(&reply);
                    self.quit();
                }
            }
            Expect::EmptyDataEnd => self.quit(),
            Expect::DataEnd => {
                self.decide_accepted(&reply);
                self.quit();
            }
            Expect::Quit => {}
        }
        Ok(())
    }

    /// The outcome for each recipient, in the order of the transaction. A recipient that the
    /// session did not decide (the connection broke, the server failed the session) gets
    /// `failure` or the session's failure reply, as a deferral unless that reply was permanent.
    pub fn outcomes(&self, failure: Option<&Reply>) -> Vec<RecipientOutcome> {
        let fallback = self
            .session_failure
            .clone()
            .or_else(|| failure.cloned())
            .unwrap_or_else(|| Reply::local(451, "4.4.2 the connection ended early"));
        self.outcomes
            .iter()
            .map(|o| match o {
                Some(o) => o.clone(),
                None if fallback.is_permanent() => RecipientOutcome::Failed(fallback.clone()),
                None => RecipientOutcome::Deferred(as_transient(fallback.clone())),
            })
            .collect()
    }

    /// Whether no recipient has a final outcome yet: then another server (the next MX) may be
    /// tried for all of them.
    pub fn nothing_decided(&self) -> bool {
        self.outcomes.iter().all(Option::is_none)
    }

    /// The session failed as a whole (greeting, EHLO, TLS, AUTH); its reply.
    pub fn session_failure(&self) -> Option<&Reply> {
        self.session_failure.as_ref()
    }

    fn send(&mut self, line: String, expect: Expect) {
        self.outbox.push_back(Action::Send(line.into_bytes()));
        self.expect.push_back(expect);
    }

    fn send_ehlo(&mut self) {
        self.send(format!("EHLO {}\r\n", self.config.helo_name), Expect::Ehlo);
    }

    fn after_hello(&mut self) {
        if !self.tls_active && self.config.tls != TlsMode::Never {
            if self.caps.starttls {
                self.send("STARTTLS\r\n".into(), Expect::StartTls);
                return;
            }
            if self.config.tls == TlsMode::Required {
                let reply = Reply::local(421, "4.7.0 the server does not offer STARTTLS");
                self.fail_session(reply);
                return;
            }
        }
        self.after_tls_decided();
    }

    fn after_tls_decided(&mut self) {
        let Some(auth) = self.config.auth.clone() else {
            self.start_transaction();
            return;
        };
        if self.authenticated {
            self.start_transaction();
            return;
        }

        // A password goes out only over TLS, unless the administrator chose no TLS at all.
        if !self.tls_active && self.config.tls != TlsMode::Never {
            let reply = Reply::local(421, "4.7.0 not sending the password without TLS");
            self.fail_session(reply);
            return;
        }

        // RFC 4954 section 4 and RFC 4616: AUTH PLAIN with an initial response.
        if self.caps.auth.iter().any(|m| m == "PLAIN") {
            let mut token = vec![0u8];
            token.extend_from_slice(auth.username.as_bytes());
            token.push(0);
            token.extend_from_slice(auth.password.as_bytes());
            self.send(
                format!("AUTH PLAIN {}\r\n", base64(&token)),
                Expect::AuthPlain,
            );
        } else if self.caps.auth.iter().any(|m| m == "LOGIN") {
            self.send("AUTH LOGIN\r\n".into(), Expect::AuthLoginUser);
        } else {
            let reply = Reply::local(421, "4.7.0 the server offers no AUTH mechanism we speak");
            self.fail_session(reply);
        }
    }

    fn start_transaction(&mut self) {
        let t = &self.transaction;

        // RFC 1870 section 6: do not send a message larger than the declared fixed maximum.
        if let Some(max) = self.caps.size
            && max > 0
            && t.size > max
        {
            let reply = Reply::local(
                552,
                format!(
                    "5.3.4 message of {} octets exceeds the server's limit of {max}",
                    t.size
                ),
            );
            for o in &mut self.outcomes {
                *o = Some(RecipientOutcome::Failed(reply.clone()));
            }
            self.quit();
            return;
        }

        // RFC 6531 section 3.4: an address with non-ASCII characters needs SMTPUTF8; a server
        // without it cannot take the message, which is a permanent failure.
        let utf8 = !t.reverse_path.is_ascii() || t.recipients.iter().any(|r| !r.is_ascii());
        if utf8 && !self.caps.smtputf8 {
            let reply = Reply::local(
                553,
                "5.6.7 the server does not accept internationalized addresses (no SMTPUTF8)",
            );
            for o in &mut self.outcomes {
                *o = Some(RecipientOutcome::Failed(reply.clone()));
            }
            self.quit();
            return;
        }

        let mut mail = format!("MAIL FROM:<{}>", t.reverse_path);
        if self.caps.size.is_some() {
            mail.push_str(&format!(" SIZE={}", t.size));
        }
        if t.eight_bit && self.caps.eight_bit_mime {
            mail.push_str(" BODY=8BITMIME");
        }
        if utf8 {
            mail.push_str(" SMTPUTF8");
        }
        mail.push_str("\r\n");

        // RFC 2920 section 3.1: with PIPELINING, MAIL, every RCPT and DATA go in one write, and
        // the replies come back in order.
        if self.caps.pipelining {
            let mut batch = mail.into_bytes();
            self.expect.push_back(Expect::Mail);
            for (i, rcpt) in t.recipients.iter().enumerate() {
                batch.extend_from_slice(format!("RCPT TO:<{rcpt}>\r\n").as_bytes());
                self.expect.push_back(Expect::Rcpt(i));
            }
            batch.extend_from_slice(b"DATA\r\n");
            self.expect.push_back(Expect::Data);
            self.outbox.push_back(Action::Send(batch));
        } else {
            self.send(mail, Expect::Mail);
        }
    }

    fn send_rcpt(&mut self, i: usize) {
        let line = format!("RCPT TO:<{}>\r\n", self.transaction.recipients[i]);
        self.send(line, Expect::Rcpt(i));
    }

    fn decide_accepted(&mut self, reply: &Reply) {
        for (i, accepted) in self.accepted.iter_mut().enumerate() {
            if *accepted && self.outcomes[i].is_none() {
                self.outcomes[i] = Some(RecipientOutcome::from_reply(reply.clone()));
            }
            *accepted = false;
        }
    }

    fn fail_session(&mut self, reply: Reply) {
        self.session_failure = Some(reply);
        self.quit();
    }

    fn quit(&mut self) {
        if !self.expect.contains(&Expect::Quit) {
            self.send("QUIT\r\n".into(), Expect::Quit);
        }
    }
}

/// AUTH failures are settings problems at our end (a changed password), not a reason to bounce
/// mail: they are retried, as Postfix does.
fn as_transient(reply: Reply) -> Reply {
    if reply.is_permanent() {
        let mut lines = reply.lines;
        if let Some(first) = lines.first_mut() {
            *first = format!("(was {}) {first}", reply.code);
        }
        Reply { code: 451, lines }
    } else {
        reply
    }
}

/// RFC 4648 base64 with padding.
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
