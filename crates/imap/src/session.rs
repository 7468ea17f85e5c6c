//! The IMAP4rev1 session (RFC 3501) as a state machine without I/O.
//!
//! The connection driver feeds received bytes to [`Session::receive`] and writes what comes
//! back; it asks for [`Session::poll_idle`] when the selected mailbox may have changed during
//! IDLE. Framing (lines and literals) is done here, parsing by imap-codec.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use imap_codec::CommandCodec;
use imap_codec::decode::{CommandDecodeError, Decoder};
use imap_codec::imap_types::auth::AuthMechanism;
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::{AString, LiteralMode};
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::fetch::MacroOrMessageDataItemNames;
use imap_codec::imap_types::mailbox::Mailbox as WireMailbox;
use postroom_maildir::access::{Authenticator, LoginLimiter, decode_plain};
use postroom_maildir::{Flags, Mailbox, Store, mutf7};
use tokio::sync::broadcast;

mod mailboxes;
mod messages;

use messages::expand;
pub(crate) use messages::{contains, message_size, read_message, read_message_header};

/// The largest literal accepted before login (a user name or a password in LOGIN).
const MAX_LITERAL_BEFORE_LOGIN: u32 = 8 * 1024;

/// Limits and names for IMAP sessions.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest literal (APPEND message, long string) accepted, in bytes.
    pub max_literal: u32,
    /// The longest command line without literals, in bytes.
    pub max_line: usize,
}

impl Limits {
    /// The limits of `[mail.access]`.
    pub fn from_config(access: &postroom_config::mail::Access) -> Limits {
        Limits {
            max_literal: access.max_literal,
            max_line: access.max_command_line,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_literal: 50 * 1024 * 1024,
            max_line: 64 * 1024,
        }
    }
}

/// What the driver must do after writing a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Keep reading.
    Continue,
    /// Start the TLS handshake now (STARTTLS was answered OK).
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

enum Mode {
    Command,
    Idle { tag: String },
    AuthPlain { tag: String },
    Done,
}

enum State {
    NotAuthenticated,
    Authenticated {
        user: String,
    },
    Selected {
        user: String,
        selected: Box<Selected>,
    },
}

/// The selected mailbox as this session sees it.
struct Selected {
    mailbox: Mailbox,
    read_only: bool,
    uid_validity: u32,
    uid_next: u32,
    messages: Vec<View>,
    watch: broadcast::Receiver<postroom_maildir::Change>,
    /// The mailbox's keyword table, by Maildir letter.
    keywords: Vec<String>,
    /// The store's scan that `messages` matches, if it does: a refresh that gets the same
    /// scan back has nothing to do.
    scan: Option<Arc<postroom_maildir::MailboxSnapshot>>,
}

/// One message in the session's view; `seq` is its index + 1.
#[derive(Debug, Clone)]
pub(crate) struct View {
    pub uid: u32,
    pub unique: String,
    pub path: std::path::PathBuf,
    pub flags: Flags,
    pub recent: bool,
    /// The names of the keyword letters in `flags`.
    pub keywords: Vec<String>,
}

/// One IMAP connection's protocol state.
pub struct Session {
    store: Store,
    auth: Arc<dyn Authenticator>,
    limiter: Arc<LoginLimiter>,
    limits: Limits,
    peer: IpAddr,
    tls: bool,
    state: State,
    mode: Mode,
    buf: Vec<u8>,
    /// How much of the command at the start of `buf` is delimited so far.
    frame: Frame,
    /// A FETCH whose responses are not all written yet.
    pending: Option<Box<messages::FetchJob>>,
    /// Output size after which [`Session::receive`] returns with a FETCH unfinished.
    chunk: usize,
}

// UNSELECT (RFC 3691) and ID (RFC 2971) are answered below; a client uses them only when
// they are advertised (without UNSELECT it has no way to leave a mailbox without an expunge).
const CAPS_COMMON: &str =
    "IMAP4rev1 LITERAL+ ENABLE IDLE UIDPLUS MOVE NAMESPACE SPECIAL-USE UNSELECT ID";

impl Session {
    /// A new session; `tls` is true for implicit TLS (port 993).
    pub fn new(
        store: Store,
        auth: Arc<dyn Authenticator>,
        limiter: Arc<LoginLimiter>,
        limits: Limits,
        peer: IpAddr,
        tls: bool,
    ) -> Session {
        Session {
            store,
            auth,
            limiter,
            limits,
            peer,
            tls,
            state: State::NotAuthenticated,
            mode: Mode::Command,
            buf: Vec::new(),
            frame: Frame::default(),
            pending: None,
            chunk: usize::MAX,
        }
    }

    /// The greeting to send first.
    pub fn greeting(&self) -> Vec<u8> {
        format!(
            "* OK [CAPABILITY {}] Postroom IMAP ready\r\n",
            self.capabilities()
        )
        .into_bytes()
    }

    fn capabilities(&self) -> String {
        if self.tls {
            format!("{CAPS_COMMON} AUTH=PLAIN")
        } else {
            // RFC 3501 section 6.2.3 and RFC 2595 section 3.2: no plain-text login before TLS.
            format!("{CAPS_COMMON} STARTTLS LOGINDISABLED")
        }
    }

    /// Tells the session that the TLS handshake after STARTTLS succeeded.
    pub fn tls_started(&mut self) {
        self.tls = true;
    }

    /// True once the client has logged in.
    pub fn is_authenticated(&self) -> bool {
        !matches!(self.state, State::NotAuthenticated)
    }

    /// True while the client idles (RFC 2177).
    pub fn is_idle(&self) -> bool {
        matches!(self.mode, Mode::Idle { .. })
    }

    /// The selected mailbox's change notices, to wake the driver during IDLE.
    pub fn watch(&mut self) -> Option<&mut broadcast::Receiver<postroom_maildir::Change>> {
        match &mut self.state {
            State::Selected { selected, .. } => Some(&mut selected.watch),
            _ => None,
        }
    }

    /// During IDLE: rescans the mailbox and returns untagged updates (EXISTS, EXPUNGE, FETCH).
    pub fn poll_idle(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.is_idle() {
            self.refresh(&mut out, true);
        }
        out
    }

    /// Lets [`Session::receive`] return once its output reaches about `bytes` while a FETCH
    /// is unfinished, so that a large FETCH is written out piece by piece; the driver then
    /// calls `receive(&[])` again for as long as [`Session::has_more`] says. Without it (the
    /// default) every call answers all complete commands.
    pub fn set_output_chunk(&mut self, bytes: usize) {
        self.chunk = bytes.max(1);
    }

    /// True when a FETCH is partly answered: call [`Session::receive`] (with no new bytes, or
    /// more) for the rest before anything else is answered.
    pub fn has_more(&self) -> bool {
        self.pending.is_some()
    }

    /// Feeds received bytes; returns what to send back.
    pub fn receive(&mut self, bytes: &[u8]) -> Output {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            if self.pending.is_some() {
                if out.len() >= self.chunk {
                    return Output {
                        bytes: out,
                        action: Action::Continue,
                    };
                }
                if let Some(job) = self.pending.take() {
                    self.run_fetch(job, &mut out);
                }
                continue;
            }
            let step = match self.mode {
                Mode::Done => {
                    return Output {
                        bytes: out,
                        action: Action::Close,
                    };
                }
                Mode::Idle { .. } => self.step_idle(&mut out),
                Mode::AuthPlain { .. } => self.step_auth(&mut out),
                Mode::Command => self.step_command(&mut out),
            };
            match step {
                Step::More => {
                    return Output {
                        bytes: out,
                        action: Action::Continue,
                    };
                }
                Step::Again => continue,
                Step::Act(action) => {
                    if action == Action::Close {
                        self.mode = Mode::Done;
                    }
                    if action == Action::StartTls {
                        // RFC 3501 section 6.2.1 / RFC 2595 section 3.1: bytes the client sent
                        // after STARTTLS before the handshake must not be taken as commands.
                        self.buf.clear();
                    }
                    return Output { bytes: out, action };
                }
            }
        }
    }

    /// The next line (without its CRLF) read outside commands: IDLE's `DONE`, a SASL response.
    /// A line longer than `limit` is refused as soon as that is certain, whether or not its end
    /// is in yet, so the answer does not depend on how the bytes were cut into reads.
    fn take_line(&mut self, limit: usize) -> Line {
        match find_crlf(&self.buf, 0) {
            Some(end) if end > limit => Line::TooLong,
            Some(end) => {
                let line = self.buf[..end].to_vec();
                self.buf.drain(..end + 2);
                Line::Whole(line)
            }
            None if unfinished_line(&self.buf, 0) > limit => Line::TooLong,
            None => Line::Partial,
        }
    }

    fn step_idle(&mut self, out: &mut Vec<u8>) -> Step {
        let line = match self.take_line(1024) {
            Line::Whole(line) => line,
            Line::Partial => return Step::More,
            Line::TooLong => return Step::Act(self.bye(out, "line too long")),
        };
        let Mode::Idle { tag } = std::mem::replace(&mut self.mode, Mode::Command) else {
            return Step::Again;
        };
        if line.eq_ignore_ascii_case(b"DONE") {
            self.refresh(out, true);
            push(out, &format!("{tag} OK IDLE terminated\r\n"));
        } else {
            push(out, &format!("{tag} BAD expected DONE\r\n"));
        }
        Step::Again
    }

    fn step_auth(&mut self, out: &mut Vec<u8>) -> Step {
        let line = match self.take_line(8192) {
            Line::Whole(line) => line,
            Line::Partial => return Step::More,
            Line::TooLong => return Step::Act(self.bye(out, "line too long")),
        };
        let Mode::AuthPlain { tag } = std::mem::replace(&mut self.mode, Mode::Command) else {
            return Step::Again;
        };
        if line == b"*" {
            push(out, &format!("{tag} BAD AUTHENTICATE cancelled\r\n"));
        } else {
            self.finish_plain(out, &tag, &line);
        }
        Step::Again
    }

    /// Delimits the next command, its lines and the literals they announce (RFC 3501 sections
    /// 2.2 and 4.3, RFC 7888), and only then parses and runs it. Every decision is taken on a
    /// line once its CRLF is in, so the answers do not depend on how the bytes were cut into
    /// reads, and a literal's bytes are always taken as its data, never as commands.
    fn step_command(&mut self, out: &mut Vec<u8>) -> Step {
        loop {
            let line_start = self.frame.line_start;
            if self.buf.is_empty() || self.buf.len() < line_start {
                // Nothing yet, or a literal's data is still on its way.
                return Step::More;
            }
            let Some(line_end) = find_crlf(&self.buf, self.frame.searched) else {
                // A CR at the end may begin the CRLF: look there again next time.
                self.frame.searched = self.buf.len().saturating_sub(1).max(line_start);
                let text = self.frame.text + unfinished_line(&self.buf, line_start);
                if text > self.limits.max_line {
                    return Step::Act(self.bye(out, "command line too long"));
                }
                return Step::More;
            };
            let text = self.frame.text + (line_end - line_start);
            if text > self.limits.max_line {
                return Step::Act(self.bye(out, "command line too long"));
            }
            let data_start = line_end + 2;
            let Some((length, mode)) = literal_announced(&self.buf[line_start..line_end]) else {
                return self.run_framed(data_start, out);
            };
            let literals = self.frame.literals.saturating_add(length);
            let too_big = literals > u64::from(self.literal_limit());
            if mode == LiteralMode::Sync {
                // RFC 3501 section 7.5: the client waits for a continuation before it sends the
                // data, so a command that is already wrong, or a literal over the limit, is
                // refused now, the line is dropped and the session goes on.
                let tag = match CommandCodec::default().decode(&self.buf[..data_start]) {
                    Err(CommandDecodeError::LiteralFound { tag, .. }) => tag.as_ref().to_owned(),
                    _ => return self.refuse_framed(data_start, out),
                };
                if too_big {
                    self.buf.drain(..data_start);
                    self.frame = Frame::default();
                    self.too_big(out, &tag);
                    return Step::Again;
                }
                push(out, "+ Ready for literal data\r\n");
            } else if too_big {
                // RFC 7888 section 4: a non-synchronizing literal's data is already on its way
                // and cannot be told from commands: refuse it and close.
                let tag = first_token(&self.buf).unwrap_or_else(|| "*".to_owned());
                self.too_big(out, &tag);
                return Step::Act(self.bye(out, "literal too big"));
            }
            // Within the limit, which fits in a u32.
            let data_end = data_start + length as usize;
            self.frame = Frame {
                line_start: data_end,
                searched: data_end,
                text,
                literals,
            };
        }
    }

    /// Parses and runs the command that ends at `end` in the buffer.
    fn run_framed(&mut self, end: usize, out: &mut Vec<u8>) -> Step {
        let command = match CommandCodec::default().decode_static(&self.buf[..end]) {
            Ok((rest, command)) if rest.is_empty() => command,
            _ => return self.refuse_framed(end, out),
        };
        self.buf.drain(..end);
        self.frame = Frame::default();
        match self.command(command, out) {
            Action::Continue => Step::Again,
            action => Step::Act(action),
        }
    }

    /// Answers BAD to the command (or its part up to a synchronizing literal) that ends at `end`
    /// in the buffer, and drops it.
    fn refuse_framed(&mut self, end: usize, out: &mut Vec<u8>) -> Step {
        match first_token(&self.buf[..end]) {
            Some(tag) => push(out, &format!("{tag} BAD command not understood\r\n")),
            None => push(out, "* BAD command not understood\r\n"),
        }
        self.buf.drain(..end);
        self.frame = Frame::default();
        Step::Again
    }

    /// RFC 7888 section 4 / RFC 3501 section 7.1: the literal (or the command's literals
    /// together) exceed the limit.
    fn too_big(&self, out: &mut Vec<u8>, tag: &str) {
        push(
            out,
            &format!(
                "{tag} NO [TOOBIG] literal larger than {} bytes\r\n",
                self.literal_limit()
            ),
        );
    }

    fn bye(&mut self, out: &mut Vec<u8>, why: &str) -> Action {
        push(out, &format!("* BYE {why}\r\n"));
        Action::Close
    }

    /// The largest literal accepted now. Before login only a user name or password can be in a
    /// literal, so an unauthenticated client cannot make the server buffer `max_literal` bytes
    /// (50 MiB by default) on each of its connections.
    fn literal_limit(&self) -> u32 {
        if self.user().is_some() {
            self.limits.max_literal
        } else {
            self.limits.max_literal.min(MAX_LITERAL_BEFORE_LOGIN)
        }
    }

    fn user(&self) -> Option<&str> {
        match &self.state {
            State::Authenticated { user } | State::Selected { user, .. } => Some(user),
            State::NotAuthenticated => None,
        }
    }

    fn command(&mut self, command: Command<'static>, out: &mut Vec<u8>) -> Action {
        let tag = command.tag.as_ref().to_owned();
        let name = command.body.name();
        tracing::debug!(tag, command = name, "imap command");
        let authenticated = self.user().is_some();
        let selected = matches!(self.state, State::Selected { .. });
        use CommandBody as C;
        let needs = match &command.body {
            C::Capability | C::Noop | C::Logout | C::StartTLS | C::Id { .. } => 0,
            C::Login { .. } | C::Authenticate { .. } => 0,
            C::Check | C::Close | C::Unselect | C::Expunge | C::ExpungeUid { .. } => 2,
            C::Search { .. }
            | C::Fetch { .. }
            | C::Store { .. }
            | C::Copy { .. }
            | C::Move { .. } => 2,
            _ => 1,
        };
        if needs >= 1 && !authenticated {
            push(out, &format!("{tag} NO log in first\r\n"));
            return Action::Continue;
        }
        if needs == 2 && !selected {
            push(out, &format!("{tag} NO select a mailbox first\r\n"));
            return Action::Continue;
        }
        match command.body {
            C::Capability => {
                push(out, &format!("* CAPABILITY {}\r\n", self.capabilities()));
                push(out, &format!("{tag} OK CAPABILITY completed\r\n"));
            }
            C::Noop | C::Check => {
                self.refresh(out, true);
                push(out, &format!("{tag} OK {name} completed\r\n"));
            }
            C::Logout => {
                push(out, "* BYE logging out\r\n");
                push(out, &format!("{tag} OK LOGOUT completed\r\n"));
                return Action::Close;
            }
            C::StartTLS => {
                if self.tls {
                    push(out, &format!("{tag} BAD TLS is already on\r\n"));
                } else {
                    push(out, &format!("{tag} OK begin TLS negotiation now\r\n"));
                    return Action::StartTls;
                }
            }
            C::Login { username, password } => {
                let user = astring(&username);
                let pass = astring(password.declassify());
                self.login(out, &tag, &user, &pass);
            }
            C::Authenticate {
                mechanism,
                initial_response,
            } => {
                if authenticated {
                    push(out, &format!("{tag} BAD already authenticated\r\n"));
                } else if !self.tls {
                    push(
                        out,
                        &format!("{tag} NO [PRIVACYREQUIRED] start TLS first\r\n"),
                    );
                } else if mechanism != AuthMechanism::Plain {
                    push(out, &format!("{tag} NO only PLAIN is supported\r\n"));
                } else if let Some(initial) = initial_response {
                    let data = initial.declassify().to_vec();
                    // The parser hands over the decoded initial response; encode-free path.
                    self.finish_plain_raw(out, &tag, &data);
                } else {
                    push(out, "+ \r\n");
                    self.mode = Mode::AuthPlain { tag };
                }
            }
            C::Enable { .. } => {
                push(out, "* ENABLED\r\n");
                push(out, &format!("{tag} OK ENABLE completed\r\n"));
            }
            C::Namespace => {
                push(out, "* NAMESPACE ((\"\" \".\")) NIL NIL\r\n");
                push(out, &format!("{tag} OK NAMESPACE completed\r\n"));
            }
            C::Id { .. } => {
                push(out, "* ID (\"name\" \"Postroom\")\r\n");
                push(out, &format!("{tag} OK ID completed\r\n"));
            }
            C::Select { mailbox, .. } => self.select(out, &tag, &mailbox, false),
            C::Examine { mailbox, .. } => self.select(out, &tag, &mailbox, true),
            C::Create { mailbox } => {
                let result = self.mailbox_name(&mailbox).and_then(|(user, name)| {
                    self.store
                        .create_mailbox(&user, &name)
                        .map_err(|e| e.to_string())
                });
                self.done(out, &tag, "CREATE", result);
            }
            C::Delete { mailbox } => {
                let result = self.mailbox_name(&mailbox).and_then(|(user, name)| {
                    self.store
                        .delete_mailbox(&user, &name)
                        .map_err(|e| e.to_string())
                });
                self.done(out, &tag, "DELETE", result);
            }
            C::Rename { from, to } => {
                let result = self.mailbox_name(&from).and_then(|(user, from)| {
                    let (_, to) = self.mailbox_name(&to)?;
                    self.store
                        .rename_mailbox(&user, &from, &to)
                        .map_err(|e| e.to_string())
                });
                self.done(out, &tag, "RENAME", result);
            }
            C::Subscribe { mailbox } | C::Unsubscribe { mailbox } => {
                let on = name == "SUBSCRIBE";
                let result = self.mailbox_name(&mailbox).and_then(|(user, name)| {
                    self.store
                        .set_subscribed(&user, &name, on)
                        .map_err(|e| e.to_string())
                });
                self.done(out, &tag, name, result);
            }
            C::List {
                reference,
                mailbox_wildcard,
            } => self.list(out, &tag, &reference, &mailbox_wildcard, false),
            C::Lsub {
                reference,
                mailbox_wildcard,
            } => self.list(out, &tag, &reference, &mailbox_wildcard, true),
            C::Status {
                mailbox,
                item_names,
            } => self.status(out, &tag, &mailbox, &item_names),
            C::Append {
                mailbox,
                flags,
                date,
                message,
            } => {
                let data = match &message {
                    LiteralOrLiteral8::Literal(l) => l.as_ref().to_vec(),
                    LiteralOrLiteral8::Literal8(l) => l.data.to_vec(),
                };
                let date = date.map(|d| SystemTime::from(*d.as_ref()));
                self.append(out, &tag, &mailbox, &flags, date, &data);
            }
            C::Close | C::Unselect => {
                if name == "CLOSE"
                    && let State::Selected { selected, .. } = &self.state
                    && !selected.read_only
                {
                    let gone: Vec<String> = selected
                        .messages
                        .iter()
                        .filter(|m| m.flags.deleted)
                        .map(|m| m.unique.clone())
                        .collect();
                    if let Err(e) = selected.mailbox.expunge(&gone) {
                        tracing::warn!(error = %e, "expunge at CLOSE failed");
                    }
                }
                self.deselect();
                push(out, &format!("{tag} OK {name} completed\r\n"));
            }
            C::Expunge => self.expunge(out, &tag, None),
            C::ExpungeUid { sequence_set } => self.expunge(out, &tag, Some(&sequence_set)),
            C::Search {
                criteria,
                uid,
                charset,
            } => {
                // RFC 3501 section 6.4.4: an unknown charset is a tagged NO with BADCHARSET,
                // not a search that quietly compares bytes. UTF-8 and US-ASCII are what every
                // server must know.
                if let Some(charset) = charset
                    && !["UTF-8", "US-ASCII"]
                        .iter()
                        .any(|known| charset.as_ref().eq_ignore_ascii_case(known))
                {
                    push(
                        out,
                        &format!("{tag} NO [BADCHARSET (UTF-8 US-ASCII)] unknown charset\r\n"),
                    );
                    return Action::Continue;
                }
                self.refresh(out, uid);
                let keys = criteria.as_ref().to_vec();
                let result = self.search(&keys, uid);
                match result {
                    Ok(found) => {
                        let mut line = String::from("* SEARCH");
                        for n in found {
                            line.push_str(&format!(" {n}"));
                        }
                        push(out, &format!("{line}\r\n"));
                        push(out, &format!("{tag} OK SEARCH completed\r\n"));
                    }
                    Err(e) => push(out, &format!("{tag} NO {e}\r\n")),
                }
            }
            C::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                ..
            } => {
                self.refresh(out, uid);
                let items = match macro_or_item_names {
                    MacroOrMessageDataItemNames::Macro(m) => expand(&m),
                    MacroOrMessageDataItemNames::MessageDataItemNames(items) => items,
                };
                self.fetch(out, &tag, &sequence_set, items, uid);
            }
            C::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
                ..
            } => {
                self.refresh(out, uid);
                self.store_flags(out, &tag, &sequence_set, kind, response, &flags, uid);
            }
            C::Copy {
                sequence_set,
                mailbox,
                uid,
            } => {
                self.refresh(out, uid);
                self.copy(out, &tag, &sequence_set, &mailbox, uid, false);
            }
            C::Move {
                sequence_set,
                mailbox,
                uid,
            } => {
                self.refresh(out, uid);
                self.copy(out, &tag, &sequence_set, &mailbox, uid, true);
            }
            C::Idle => {
                if !authenticated {
                    push(out, &format!("{tag} NO log in first\r\n"));
                } else {
                    self.refresh(out, true);
                    push(out, "+ idling\r\n");
                    self.mode = Mode::Idle { tag };
                }
            }
            _ => push(out, &format!("{tag} BAD {name} is not supported\r\n")),
        }
        Action::Continue
    }

    fn done(&mut self, out: &mut Vec<u8>, tag: &str, name: &str, result: Result<(), String>) {
        match result {
            Ok(()) => push(out, &format!("{tag} OK {name} completed\r\n")),
            Err(e) => push(out, &format!("{tag} NO {}\r\n", one_line(&e))),
        }
    }

    fn login(&mut self, out: &mut Vec<u8>, tag: &str, user: &str, password: &str) {
        if self.user().is_some() {
            push(out, &format!("{tag} BAD already authenticated\r\n"));
            return;
        }
        if !self.tls {
            push(
                out,
                &format!("{tag} NO [PRIVACYREQUIRED] LOGIN is disabled before STARTTLS\r\n"),
            );
            return;
        }
        if let Some(wait) = self.limiter.wait(self.peer) {
            tracing::warn!(peer = %self.peer, "login refused: too many failures from this address");
            let secs = postroom_maildir::access::whole_seconds(wait);
            push(
                out,
                &format!(
                    "{tag} NO [UNAVAILABLE] too many failed logins from this address; \
                     try again in {secs} s\r\n"
                ),
            );
            return;
        }
        match self.auth.authenticate(user, password) {
            Some(owner) if self.store.has_user(&owner) => {
                self.limiter.record(self.peer, true);
                tracing::info!(user = %owner, peer = %self.peer, "imap login");
                self.state = State::Authenticated { user: owner };
                push(
                    out,
                    &format!(
                        "{tag} OK [CAPABILITY {}] logged in\r\n",
                        self.capabilities()
                    ),
                );
            }
            Some(owner) => {
                tracing::warn!(user = %owner, "imap login for a user without a mailbox");
                push(out, &format!("{tag} NO [UNAVAILABLE] no mailbox\r\n"));
            }
            None => {
                self.limiter.record(self.peer, false);
                // The user name is logged, the password never.
                tracing::info!(user, peer = %self.peer, "imap login failed");
                push(
                    out,
                    &format!("{tag} NO [AUTHENTICATIONFAILED] invalid credentials\r\n"),
                );
            }
        }
    }

    fn finish_plain(&mut self, out: &mut Vec<u8>, tag: &str, line: &[u8]) {
        match decode_plain(line) {
            Some(c) => self.login(out, tag, &c.user, &c.password),
            None => push(out, &format!("{tag} BAD malformed PLAIN response\r\n")),
        }
    }

    fn finish_plain_raw(&mut self, out: &mut Vec<u8>, tag: &str, raw: &[u8]) {
        let mut parts = raw.split(|&b| b == 0);
        let (Some(authz), Some(user), Some(pass), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            push(out, &format!("{tag} BAD malformed PLAIN response\r\n"));
            return;
        };
        if !(authz.is_empty() || authz == user) {
            push(
                out,
                &format!("{tag} NO [AUTHORIZATIONFAILED] cannot act as another user\r\n"),
            );
            return;
        }
        let user = String::from_utf8_lossy(user).into_owned();
        let pass = String::from_utf8_lossy(pass).into_owned();
        self.login(out, tag, &user, &pass);
    }

    /// The user and Unicode mailbox name of a wire mailbox name (modified UTF-7 decoded).
    fn mailbox_name(&self, mailbox: &WireMailbox<'_>) -> Result<(String, String), String> {
        let user = self.user().ok_or("log in first")?.to_owned();
        Ok((user, decode_mailbox(mailbox)?))
    }

    fn deselect(&mut self) {
        if let State::Selected { user, .. } = &self.state {
            self.state = State::Authenticated { user: user.clone() };
        }
    }

    fn select(&mut self, out: &mut Vec<u8>, tag: &str, mailbox: &WireMailbox<'_>, read_only: bool) {
        let name = match self.mailbox_name(mailbox) {
            Ok((_, name)) => name,
            Err(e) => {
                push(out, &format!("{tag} NO {e}\r\n"));
                return;
            }
        };
        self.deselect();
        let Some(user) = self.user().map(str::to_owned) else {
            return;
        };
        let opened = self.store.mailbox(&user, &name).and_then(|mb| {
            let snap = mb.snapshot_shared(!read_only)?;
            Ok((mb, snap))
        });
        let (mailbox, snap) = match opened {
            Ok(x) => x,
            Err(e) => {
                push(out, &format!("{tag} NO {}\r\n", one_line(&e.to_string())));
                return;
            }
        };
        let keywords = mailbox.keywords().unwrap_or_default();
        let messages: Vec<View> = snap
            .messages
            .iter()
            .map(|m| View {
                keywords: keyword_names(&m.flags, &keywords),
                uid: m.uid,
                unique: m.unique.clone(),
                path: m.path.clone(),
                flags: m.flags.clone(),
                recent: m.recent,
            })
            .collect();
        let exists = messages.len();
        let recent = messages.iter().filter(|m| m.recent).count();
        let first_unseen = messages.iter().position(|m| !m.flags.seen).map(|i| i + 1);
        push(out, &flags_response(&keywords));
        push(out, &format!("* {exists} EXISTS\r\n* {recent} RECENT\r\n"));
        if let Some(n) = first_unseen {
            push(out, &format!("* OK [UNSEEN {n}] first unseen\r\n"));
        }
        push(
            out,
            &format!("* OK [UIDVALIDITY {}] UIDs valid\r\n", snap.uid_validity),
        );
        push(
            out,
            &format!("* OK [UIDNEXT {}] predicted next UID\r\n", snap.uid_next),
        );
        if read_only {
            push(out, "* OK [PERMANENTFLAGS ()] read-only\r\n");
        } else {
            push(out, &permanent_flags(&keywords));
        }
        let watch = mailbox.watch();
        let selected = Selected {
            mailbox,
            read_only,
            uid_validity: snap.uid_validity,
            uid_next: snap.uid_next,
            messages,
            watch,
            keywords,
            scan: Some(snap),
        };
        self.state = State::Selected {
            user,
            selected: Box::new(selected),
        };
        let mode = if read_only { "READ-ONLY" } else { "READ-WRITE" };
        let verb = if read_only { "EXAMINE" } else { "SELECT" };
        push(out, &format!("{tag} OK [{mode}] {verb} completed\r\n"));
    }
}

enum Step {
    More,
    Again,
    Act(Action),
}

/// How far the command at the start of the buffer is delimited: its lines before `line_start`
/// are whole and the literals they announce are within the limit.
#[derive(Debug, Default)]
struct Frame {
    /// Where the current line starts: 0, or the end of a literal's data (which may not all be
    /// in yet).
    line_start: usize,
    /// Where to look for the current line's CRLF: there is none before it.
    searched: usize,
    /// Bytes of the command outside literal data before `line_start`, CRLFs not counted.
    text: usize,
    /// Bytes of literal data the command has announced so far.
    literals: u64,
}

/// A line read outside commands.
enum Line {
    Whole(Vec<u8>),
    Partial,
    TooLong,
}

fn push(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
}

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| from + p)
}

/// The tag at the start of a command line, if it looks like one.
fn first_token(line: &[u8]) -> Option<String> {
    line.split(|&b| b == b' ')
        .next()
        .filter(|t| {
            !t.is_empty()
                && t.iter()
                    .all(|b| b.is_ascii_alphanumeric() || b".-_".contains(b))
        })
        .map(|t| String::from_utf8_lossy(t).into_owned())
}

/// The length and mode of a literal announced at the end of a line: `{N}`, `{N+}` (RFC 7888)
/// or `~{N}` (RFC 3516). A length too large for a u64 is taken as u64::MAX: too big either way.
fn literal_announced(line: &[u8]) -> Option<(u64, LiteralMode)> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let (digits, mode) = match inner[open + 1..].strip_suffix(b"+") {
        Some(digits) => (digits, LiteralMode::NonSync),
        None => (&inner[open + 1..], LiteralMode::Sync),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let length = digits.iter().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    });
    Some((length, mode))
}

/// Bytes of the line that starts at `start` and has no CRLF yet, less a CR at the end that may
/// begin one.
fn unfinished_line(buf: &[u8], start: usize) -> usize {
    let line = buf.get(start..).unwrap_or_default();
    line.len() - usize::from(line.last() == Some(&b'\r'))
}

fn astring(s: &AString<'_>) -> String {
    String::from_utf8_lossy(s.as_ref()).into_owned()
}

/// A wire mailbox name, modified UTF-7 decoded (RFC 3501 section 5.1.3).
fn decode_mailbox(mailbox: &WireMailbox<'_>) -> Result<String, String> {
    match mailbox {
        WireMailbox::Inbox => Ok("INBOX".to_owned()),
        WireMailbox::Other(other) => {
            let raw = std::str::from_utf8(other.inner().as_ref())
                .map_err(|_| "mailbox name is not modified UTF-7")?;
            let raw = raw.trim_end_matches('.');
            mutf7::decode(raw).ok_or_else(|| "mailbox name is not modified UTF-7".to_owned())
        }
    }
}

/// The keyword names of a message's letters; letters without a name are not shown.
fn keyword_names(flags: &Flags, table: &[String]) -> Vec<String> {
    flags
        .other
        .iter()
        .filter(|l| l.is_ascii_lowercase())
        .filter_map(|&l| {
            table
                .get(usize::from(l - b'a'))
                .filter(|n| !n.is_empty())
                .cloned()
        })
        .collect()
}

const SYSTEM_FLAGS: &str = "\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded";

fn flags_response(keywords: &[String]) -> String {
    let mut list = SYSTEM_FLAGS.to_owned();
    for k in keywords.iter().filter(|k| !k.is_empty()) {
        list.push(' ');
        list.push_str(k);
    }
    format!("* FLAGS ({list})\r\n")
}

/// The most keywords a mailbox keeps: Maildir gives each a lower-case letter.
const MAX_KEYWORDS: usize = 26;

/// PERMANENTFLAGS, with `\*` while new keywords can still be kept (RFC 3501 section 7.1);
/// once every letter is taken only the keywords already known are offered.
fn permanent_flags(keywords: &[String]) -> String {
    let mut list = SYSTEM_FLAGS.to_owned();
    let mut known = 0;
    for k in keywords.iter().filter(|k| !k.is_empty()) {
        list.push(' ');
        list.push_str(k);
        known += 1;
    }
    if known < MAX_KEYWORDS {
        list.push_str(" \\*");
    }
    format!("* OK [PERMANENTFLAGS ({list})] flags and keywords kept\r\n")
}
