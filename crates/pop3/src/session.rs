//! The POP3 session (RFC 1939) as a state machine without I/O.

use std::net::IpAddr;
use std::sync::Arc;

use postroom_maildir::access::{Authenticator, LoginLimiter, decode_plain};
use postroom_maildir::{Mailbox, MaildropLock, Store};

/// RFC 2449 section 4: a command line is at most 255 octets; we allow some slack for long
/// AUTH PLAIN responses.
const MAX_LINE: usize = 1024;

/// What the driver must do after writing a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Keep reading.
    Continue,
    /// Start the TLS handshake now (STLS was answered +OK).
    StartTls,
    /// Close the connection.
    Close,
}

/// Bytes to write and what to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Bytes to send.
    pub bytes: Vec<u8>,
    /// What to do after sending them.
    pub action: Action,
}

/// One message of the maildrop as it was when the session logged in.
struct Entry {
    unique: String,
    path: std::path::PathBuf,
    size: usize,
    uidl: String,
    deleted: bool,
}

enum State {
    Authorization {
        user: Option<String>,
    },
    AuthPlain,
    Transaction {
        inbox: Mailbox,
        entries: Vec<Entry>,
        /// Held until the session ends (RFC 1939 section 4: exclusive access to the maildrop).
        _lock: MaildropLock,
    },
    Done,
}

/// One POP3 connection's protocol state.
pub struct Session {
    store: Store,
    auth: Arc<dyn Authenticator>,
    limiter: Arc<LoginLimiter>,
    peer: IpAddr,
    tls: bool,
    state: State,
    buf: Vec<u8>,
}

impl Session {
    /// A new session; `tls` is true for implicit TLS (port 995).
    pub fn new(
        store: Store,
        auth: Arc<dyn Authenticator>,
        limiter: Arc<LoginLimiter>,
        peer: IpAddr,
        tls: bool,
    ) -> Session {
        Session {
            store,
            auth,
            limiter,
            peer,
            tls,
            state: State::Authorization { user: None },
            buf: Vec::new(),
        }
    }

    /// The greeting to send first.
    pub fn greeting(&self) -> Vec<u8> {
        b"+OK Postroom POP3 ready\r\n".to_vec()
    }

    /// True once the client has logged in (the TRANSACTION state).
    pub fn is_authenticated(&self) -> bool {
        matches!(self.state, State::Transaction { .. })
    }

    /// Tells the session that the TLS handshake after STLS succeeded.
    pub fn tls_started(&mut self) {
        self.tls = true;
    }

    /// Feeds received bytes; returns what to send back.
    pub fn receive(&mut self, bytes: &[u8]) -> Output {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            let Some(end) = self.buf.iter().position(|&b| b == b'\n') else {
                if self.buf.len() > MAX_LINE {
                    out.extend_from_slice(b"-ERR line too long\r\n");
                    self.state = State::Done;
                    return Output {
                        bytes: out,
                        action: Action::Close,
                    };
                }
                return Output {
                    bytes: out,
                    action: Action::Continue,
                };
            };
            let mut line: Vec<u8> = self.buf.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let action = self.line(&line, &mut out);
            match action {
                Action::Continue => continue,
                Action::StartTls => {
                    // RFC 2595 section 4: nothing sent before the handshake is a command.
                    self.buf.clear();
                    return Output { bytes: out, action };
                }
                Action::Close => {
                    self.state = State::Done;
                    return Output { bytes: out, action };
                }
            }
        }
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<u8>) -> Action {
        if matches!(self.state, State::AuthPlain) {
            self.state = State::Authorization { user: None };
            if line == b"*" {
                out.extend_from_slice(b"-ERR authentication cancelled\r\n");
            } else {
                self.plain(line, out);
            }
            return Action::Continue;
        }
        let text = String::from_utf8_lossy(line);
        let (verb, arg) = match text.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.to_owned()),
            None => (text.to_ascii_uppercase(), String::new()),
        };
        // The argument of PASS and AUTH is never logged.
        tracing::debug!(command = %verb, "pop3 command");
        let authorization = matches!(self.state, State::Authorization { .. });
        match (&self.state, verb.as_str()) {
            (State::Done, _) => return Action::Close,
            (State::Transaction { .. }, v) if v != "CAPA" => {
                return self.transaction(&verb, &arg, out);
            }
            _ => {}
        }
        let mut reply = |s: &str| out.extend_from_slice(s.as_bytes());
        match verb.as_str() {
            "CAPA" => {
                reply("+OK capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\n");
                if authorization {
                    if self.tls {
                        reply("USER\r\nSASL PLAIN\r\n");
                    } else {
                        reply("STLS\r\n");
                    }
                }
                reply("IMPLEMENTATION Postroom\r\n.\r\n");
            }
            "QUIT" => {
                reply("+OK bye\r\n");
                return Action::Close;
            }
            "STLS" => {
                if self.tls {
                    reply("-ERR TLS is already on\r\n");
                } else {
                    reply("+OK begin TLS negotiation\r\n");
                    return Action::StartTls;
                }
            }
            "USER" | "PASS" | "AUTH" if !self.tls => {
                // RFC 2595 section 4: no clear-text passwords before TLS.
                reply("-ERR [AUTH] use STLS first\r\n");
            }
            "USER" => {
                if arg.is_empty() {
                    reply("-ERR user name needed\r\n");
                } else {
                    reply("+OK send PASS\r\n");
                    self.state = State::Authorization { user: Some(arg) };
                }
            }
            "PASS" => {
                let user = match &mut self.state {
                    State::Authorization { user } => user.take(),
                    _ => None,
                };
                match user {
                    Some(name) => self.login(&name, &arg, out),
                    None => reply("-ERR USER first\r\n"),
                }
            }
            "AUTH" => {
                let mut words = arg.split_whitespace();
                let mechanism = words.next().unwrap_or_default().to_ascii_uppercase();
                let initial = words.next().map(str::to_owned);
                if mechanism != "PLAIN" {
                    reply("-ERR only PLAIN is supported\r\n");
                } else if let Some(initial) = initial {
                    self.plain(initial.as_bytes(), out);
                } else {
                    reply("+ \r\n");
                    self.state = State::AuthPlain;
                }
            }
            _ => reply("-ERR command not valid now\r\n"),
        }
        Action::Continue
    }

    fn plain(&mut self, encoded: &[u8], out: &mut Vec<u8>) {
        match decode_plain(encoded) {
            Some(c) => self.login(&c.user, &c.password, out),
            None => out.extend_from_slice(b"-ERR malformed PLAIN response\r\n"),
        }
    }

    fn login(&mut self, user: &str, password: &str, out: &mut Vec<u8>) {
        if let Some(wait) = self.limiter.wait(self.peer) {
            tracing::warn!(peer = %self.peer, "pop3 login refused: too many failures");
            let secs = postroom_maildir::access::whole_seconds(wait);
            let line = format!(
                "-ERR [AUTH] too many failed logins from this address; try again in {secs} s\r\n"
            );
            out.extend_from_slice(line.as_bytes());
            return;
        }
        let Some(owner) = self.auth.authenticate(user, password) else {
            self.limiter.record(self.peer, false);
            tracing::info!(user, peer = %self.peer, "pop3 login failed");
            out.extend_from_slice(b"-ERR [AUTH] invalid credentials\r\n");
            return;
        };
        self.limiter.record(self.peer, true);
        let Some(maildrop) = self.store.lock_maildrop(&owner) else {
            tracing::info!(user = %owner, peer = %self.peer, "pop3 maildrop in use");
            out.extend_from_slice(b"-ERR [IN-USE] another POP3 session holds the maildrop\r\n");
            return;
        };
        let opened = self.store.mailbox(&owner, "INBOX").and_then(|inbox| {
            let snap = inbox.snapshot(false)?;
            Ok((inbox, snap))
        });
        let (inbox, snap) = match opened {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(user = %owner, error = %e, "pop3 maildrop unavailable");
                out.extend_from_slice(b"-ERR [SYS/TEMP] maildrop unavailable\r\n");
                return;
            }
        };
        let mut entries = Vec::new();
        for m in snap.messages {
            // Sizes are of the message as sent: CRLF line ends (RFC 1939 section 11).
            let Ok(raw) = std::fs::read(&m.path) else {
                continue;
            };
            entries.push(Entry {
                size: crlf_size(&raw),
                uidl: format!("{:08x}{:08x}", m.uid, snap.uid_validity),
                unique: m.unique,
                path: m.path,
                deleted: false,
            });
        }
        tracing::info!(user = %owner, peer = %self.peer, messages = entries.len(), "pop3 login");
        let line = format!("+OK {}\r\n", messages(entries.len()));
        self.state = State::Transaction {
            inbox,
            entries,
            _lock: maildrop,
        };
        out.extend_from_slice(line.as_bytes());
    }

    fn transaction(&mut self, verb: &str, arg: &str, out: &mut Vec<u8>) -> Action {
        let State::Transaction { inbox, entries, .. } = &mut self.state else {
            return Action::Continue;
        };
        let mut reply = |s: String| out.extend_from_slice(s.as_bytes());
        let args: Vec<&str> = arg.split_whitespace().collect();
        let number = |i: usize| -> Option<usize> {
            let n: usize = args.get(i)?.parse().ok()?;
            // `then`, not `then_some`: the latter computes `n - 1` even for `LIST 0`.
            (n >= 1 && n <= entries.len() && !entries[n - 1].deleted).then(|| n - 1)
        };
        match verb {
            "STAT" => {
                let live = entries.iter().filter(|e| !e.deleted);
                let (count, size) = live.fold((0, 0), |(c, s), e| (c + 1, s + e.size));
                reply(format!("+OK {count} {size}\r\n"));
            }
            "LIST" | "UIDL" => {
                let show = |i: usize, e: &Entry| {
                    if verb == "LIST" {
                        format!("{} {}", i + 1, e.size)
                    } else {
                        format!("{} {}", i + 1, e.uidl)
                    }
                };
                if args.is_empty() {
                    reply("+OK\r\n".to_owned());
                    for (i, e) in entries.iter().enumerate().filter(|(_, e)| !e.deleted) {
                        reply(format!("{}\r\n", show(i, e)));
                    }
                    reply(".\r\n".to_owned());
                } else {
                    match number(0) {
                        Some(i) => reply(format!("+OK {}\r\n", show(i, &entries[i]))),
                        None => reply("-ERR no such message\r\n".to_owned()),
                    }
                }
            }
            "RETR" | "TOP" => {
                let Some(i) = number(0) else {
                    reply("-ERR no such message\r\n".to_owned());
                    return Action::Continue;
                };
                let lines = if verb == "TOP" {
                    match args.get(1).and_then(|n| n.parse::<usize>().ok()) {
                        Some(n) => Some(n),
                        None => {
                            reply("-ERR TOP needs a message and a line count\r\n".to_owned());
                            return Action::Continue;
                        }
                    }
                } else {
                    None
                };
                let entry = &entries[i];
                let raw = std::fs::read(&entry.path).or_else(|_| {
                    let path = inbox.maildir().find(&entry.unique).ok().flatten();
                    path.map_or(Err(std::io::ErrorKind::NotFound.into()), std::fs::read)
                });
                match raw {
                    Ok(raw) => {
                        reply(format!("+OK {} octets\r\n", entry.size));
                        out.extend_from_slice(&stuffed(&raw, lines));
                        out.extend_from_slice(b".\r\n");
                    }
                    Err(_) => reply("-ERR message was removed by another session\r\n".to_owned()),
                }
            }
            "NOOP" => reply("+OK\r\n".to_owned()),
            "DELE" => match number(0) {
                Some(i) => {
                    entries[i].deleted = true;
                    reply(format!("+OK message {} deleted\r\n", i + 1));
                }
                None => reply("-ERR no such message\r\n".to_owned()),
            },
            "RSET" => {
                entries.iter_mut().for_each(|e| e.deleted = false);
                reply(format!("+OK {}\r\n", messages(entries.len())));
            }
            "QUIT" => {
                // RFC 1939 section 6: the UPDATE state; only now are DELE marks carried out.
                let gone: Vec<String> = entries
                    .iter()
                    .filter(|e| e.deleted)
                    .map(|e| e.unique.clone())
                    .collect();
                match inbox.expunge(&gone) {
                    Ok(()) => reply(format!("+OK {} removed, bye\r\n", messages(gone.len()))),
                    Err(e) => {
                        tracing::warn!(error = %e, "pop3 could not remove deleted messages");
                        reply(
                            "-ERR [SYS/TEMP] some deleted messages were not removed\r\n".to_owned(),
                        );
                    }
                }
                return Action::Close;
            }
            _ => reply("-ERR unknown command\r\n".to_owned()),
        }
        Action::Continue
    }
}

/// The size of a message once its line ends are CRLF.
fn crlf_size(raw: &[u8]) -> usize {
    let bare = raw
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' && (i == 0 || raw[i - 1] != b'\r'))
        .count();
    raw.len() + bare + usize::from(!raw.is_empty() && !raw.ends_with(b"\n")) * 2
}

/// The message as it goes on the wire (RFC 1939 section 3): CRLF line ends, a line starting
/// with `.` gets another `.`, and it ends in CRLF so the terminating `.` line stands alone.
/// With `top`, only the header, the blank line and that many body lines.
fn stuffed(raw: &[u8], top: Option<usize>) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 64);
    let mut in_body = false;
    let mut body_lines = 0;
    // A message with no header section starts with its body.
    let first_is_field = raw
        .split(|&b| b == b'\n')
        .next()
        .and_then(|l| l.iter().position(|&b| b == b':'))
        .is_some_and(|c| c > 0 && raw[..c].iter().all(|&b| (33..=126).contains(&b)));
    if !first_is_field {
        in_body = true;
    }
    for line in raw.split_inclusive(|&b| b == b'\n') {
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if in_body {
            if let Some(max) = top
                && body_lines >= max
            {
                break;
            }
            body_lines += 1;
        }
        if content.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(content);
        out.extend_from_slice(b"\r\n");
        if !in_body && content.is_empty() {
            in_body = true;
        }
    }
    out
}

/// "1 message", "2 messages": the count in the replies to PASS, RSET and QUIT.
fn messages(n: usize) -> String {
    if n == 1 {
        "1 message".to_owned()
    } else {
        format!("{n} messages")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_lines_are_stuffed_and_lf_becomes_crlf() {
        assert_eq!(
            stuffed(b"A: b\n\n.hidden\nx", None),
            b"A: b\r\n\r\n..hidden\r\nx\r\n"
        );
        assert_eq!(
            crlf_size(b"A: b\n\n.hidden\nx"),
            b"A: b\r\n\r\n.hidden\r\nx\r\n".len()
        );
    }

    #[test]
    fn top_gives_header_and_n_body_lines() {
        let msg = b"A: b\r\nC: d\r\n\r\n1\r\n2\r\n3\r\n";
        assert_eq!(stuffed(msg, Some(2)), b"A: b\r\nC: d\r\n\r\n1\r\n2\r\n");
        assert_eq!(stuffed(msg, Some(0)), b"A: b\r\nC: d\r\n\r\n");
    }
}
