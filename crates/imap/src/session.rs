//! The IMAP4rev1 session (RFC 3501) as a state machine without I/O.
//!
//! The connection driver feeds received bytes to [`Session::receive`] and writes what comes
//! back; it asks for [`Session::poll_idle`] when the selected mailbox may have changed during
//! IDLE. Framing (lines and literals) is done here, parsing by imap-codec.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use imap_codec::CommandCodec;
use imap_codec::decode::{CommandDecodeError, Decoder};
use imap_codec::imap_types::auth::AuthMechanism;
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::{AString, LiteralMode};
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::fetch::{
    Macro, MacroOrMessageDataItemNames, MessageDataItemName, Section,
};
use imap_codec::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox as WireMailbox};
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use imap_codec::imap_types::status::StatusDataItemName;
use postroom_maildir::access::{Authenticator, LoginLimiter, decode_plain};
use postroom_maildir::{Flags, Mailbox, SPECIAL_FOLDERS, Store, mutf7};
use tokio::sync::broadcast;

use crate::fetch::{self, Loaded, SectionText};
use crate::search;
use crate::wire;

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
    /// End (in `buf`) of the literal data last agreed to; the decoder reports the same literal
    /// again until all its bytes are in.
    literal_end: Option<usize>,
    /// Where to look for the line ending of the next literal announcement.
    literal_resume: usize,
    sizes: HashMap<u32, usize>,
}

const CAPS_COMMON: &str = "IMAP4rev1 LITERAL+ ENABLE IDLE UIDPLUS MOVE NAMESPACE SPECIAL-USE";

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
            literal_end: None,
            literal_resume: 0,
            sizes: HashMap::new(),
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

    /// Feeds received bytes; returns what to send back.
    pub fn receive(&mut self, bytes: &[u8]) -> Output {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
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

    fn take_line(&mut self) -> Option<Vec<u8>> {
        let end = self.buf.windows(2).position(|w| w == b"\r\n")?;
        let line = self.buf[..end].to_vec();
        self.buf.drain(..end + 2);
        Some(line)
    }

    fn step_idle(&mut self, out: &mut Vec<u8>) -> Step {
        let Some(line) = self.take_line() else {
            return if self.buf.len() > 1024 {
                Step::Act(self.bye(out, "line too long"))
            } else {
                Step::More
            };
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
        let Some(line) = self.take_line() else {
            return if self.buf.len() > 8192 {
                Step::Act(self.bye(out, "line too long"))
            } else {
                Step::More
            };
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

    fn step_command(&mut self, out: &mut Vec<u8>) -> Step {
        if self.buf.is_empty() {
            return Step::More;
        }
        let decoded = CommandCodec::default().decode_static(&self.buf);
        match decoded {
            Ok((rest, command)) => {
                let consumed = self.buf.len() - rest.len();
                self.buf.drain(..consumed);
                self.literal_end = None;
                self.literal_resume = 0;
                let action = self.command(command, out);
                if action == Action::Continue {
                    Step::Again
                } else {
                    Step::Act(action)
                }
            }
            Err(CommandDecodeError::Incomplete) => self.incomplete(out),
            Err(CommandDecodeError::LiteralFound { tag, length, mode }) => {
                if let Some(end) = self.literal_end {
                    if self.buf.len() < end {
                        return Step::More;
                    }
                    self.literal_resume = end;
                }
                let Some(line_end) = find_crlf(&self.buf, self.literal_resume) else {
                    return Step::More;
                };
                let data_start = line_end + 2;
                if length > self.limits.max_literal {
                    // RFC 7888 section 4 / RFC 3501 section 7.1: refuse, and for a
                    // synchronizing literal the client sends no data, so the line is dropped
                    // and the session goes on. A non-synchronizing literal's data is already on
                    // its way and cannot be told from commands: close.
                    self.buf.drain(..data_start);
                    self.literal_end = None;
                    self.literal_resume = 0;
                    let tag = tag.as_ref().to_owned();
                    push(
                        out,
                        &format!(
                            "{tag} NO [TOOBIG] literal larger than {} bytes\r\n",
                            self.limits.max_literal
                        ),
                    );
                    if mode == LiteralMode::NonSync {
                        return Step::Act(self.bye(out, "literal too big"));
                    }
                    return Step::Again;
                }
                let end = data_start + length as usize;
                self.literal_end = Some(end);
                self.literal_resume = end;
                if mode == LiteralMode::Sync {
                    push(out, "+ Ready for literal data\r\n");
                }
                if self.buf.len() >= end {
                    Step::Again
                } else {
                    Step::More
                }
            }
            Err(CommandDecodeError::Failed) => {
                let Some(line_end) = find_crlf(&self.buf, self.literal_resume) else {
                    return Step::More;
                };
                let line = self.buf[..line_end].to_vec();
                self.buf.drain(..line_end + 2);
                self.literal_end = None;
                self.literal_resume = 0;
                let tag = line
                    .split(|&b| b == b' ')
                    .next()
                    .filter(|t| {
                        !t.is_empty()
                            && t.iter()
                                .all(|b| b.is_ascii_alphanumeric() || b".-_".contains(b))
                    })
                    .map(|t| String::from_utf8_lossy(t).into_owned());
                match tag {
                    Some(tag) => push(out, &format!("{tag} BAD command not understood\r\n")),
                    None => push(out, "* BAD command not understood\r\n"),
                }
                Step::Again
            }
        }
    }

    /// The decoder needs more bytes. It reports synchronizing literals itself but reads
    /// through non-synchronizing ones (RFC 7888), so their announcements are checked against
    /// the limit here, before their data arrives.
    fn incomplete(&mut self, out: &mut Vec<u8>) -> Step {
        loop {
            if let Some(end) = self.literal_end {
                if self.buf.len() < end {
                    return Step::More;
                }
                self.literal_resume = end;
            }
            let Some(line_end) = find_crlf(&self.buf, self.literal_resume) else {
                break;
            };
            let Some(length) = nonsync_literal(&self.buf[self.literal_resume..line_end]) else {
                break;
            };
            if length > u64::from(self.limits.max_literal) {
                let tag = first_token(&self.buf).unwrap_or_else(|| "*".to_owned());
                push(
                    out,
                    &format!(
                        "{tag} NO [TOOBIG] literal larger than {} bytes\r\n",
                        self.limits.max_literal
                    ),
                );
                // The data is already on its way and cannot be told from commands: close.
                return Step::Act(self.bye(out, "literal too big"));
            }
            let end = line_end + 2 + length as usize;
            self.literal_end = Some(end);
            self.literal_resume = end;
        }
        if self.buf.len().saturating_sub(self.literal_resume) > self.limits.max_line {
            return Step::Act(self.bye(out, "command line too long"));
        }
        Step::More
    }

    fn bye(&mut self, out: &mut Vec<u8>, why: &str) -> Action {
        push(out, &format!("* BYE {why}\r\n"));
        Action::Close
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
                if name == "CLOSE" {
                    if let State::Selected { selected, .. } = &self.state {
                        if !selected.read_only {
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
                    }
                }
                self.deselect();
                push(out, &format!("{tag} OK {name} completed\r\n"));
            }
            C::Expunge => self.expunge(out, &tag, None),
            C::ExpungeUid { sequence_set } => self.expunge(out, &tag, Some(&sequence_set)),
            C::Search { criteria, uid, .. } => {
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
                self.fetch(out, &tag, &sequence_set, &items, uid);
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
        if !self.limiter.allowed(self.peer) {
            tracing::warn!(peer = %self.peer, "login refused: too many failures from this address");
            push(
                out,
                &format!("{tag} NO [UNAVAILABLE] too many failed logins, wait\r\n"),
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
        self.sizes.clear();
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
            let snap = mb.snapshot(!read_only)?;
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
            .into_iter()
            .map(|m| View {
                keywords: keyword_names(&m.flags, &keywords),
                uid: m.uid,
                unique: m.unique,
                path: m.path,
                flags: m.flags,
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
        };
        self.state = State::Selected {
            user,
            selected: Box::new(selected),
        };
        let mode = if read_only { "READ-ONLY" } else { "READ-WRITE" };
        let verb = if read_only { "EXAMINE" } else { "SELECT" };
        push(out, &format!("{tag} OK [{mode}] {verb} completed\r\n"));
    }

    /// Brings the view up to date with the mailbox, writing untagged EXPUNGE (when allowed,
    /// RFC 3501 section 7.4.1), EXISTS, RECENT and FETCH FLAGS responses.
    fn refresh(&mut self, out: &mut Vec<u8>, allow_expunge: bool) {
        let State::Selected { selected, .. } = &mut self.state else {
            return;
        };
        while selected.watch.try_recv().is_ok() {}
        let snap = match selected.mailbox.snapshot(!selected.read_only) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "mailbox rescan failed");
                return;
            }
        };
        let table = selected.mailbox.keywords().unwrap_or_default();
        let table_changed = table != selected.keywords;
        if table_changed {
            // RFC 3501 section 7.2.6: a new keyword is announced with FLAGS.
            push(out, &flags_response(&table));
            if !selected.read_only {
                push(out, &permanent_flags(&table));
            }
            selected.keywords = table;
        }
        let by_uid: HashMap<u32, &postroom_maildir::Message> =
            snap.messages.iter().map(|m| (m.uid, m)).collect();
        if allow_expunge {
            let mut i = 0;
            while i < selected.messages.len() {
                if by_uid.contains_key(&selected.messages[i].uid) {
                    i += 1;
                } else {
                    self.sizes.remove(&selected.messages[i].uid);
                    selected.messages.remove(i);
                    push(out, &format!("* {} EXPUNGE\r\n", i + 1));
                }
            }
        }
        for (i, view) in selected.messages.iter_mut().enumerate() {
            if let Some(m) = by_uid.get(&view.uid) {
                view.path = m.path.clone();
                if m.flags != view.flags {
                    view.flags = m.flags.clone();
                    view.keywords = keyword_names(&view.flags, &selected.keywords);
                    push(
                        out,
                        &format!(
                            "* {} FETCH (UID {} FLAGS ({}))\r\n",
                            i + 1,
                            view.uid,
                            flag_list(view)
                        ),
                    );
                }
            }
        }
        let last = selected.messages.last().map_or(0, |m| m.uid);
        let before = selected.messages.len();
        for m in snap.messages.iter().filter(|m| m.uid > last) {
            selected.messages.push(View {
                keywords: keyword_names(&m.flags, &selected.keywords),
                uid: m.uid,
                unique: m.unique.clone(),
                path: m.path.clone(),
                flags: m.flags.clone(),
                recent: m.recent,
            });
        }
        if selected.messages.len() != before {
            let recent = selected.messages.iter().filter(|m| m.recent).count();
            push(
                out,
                &format!(
                    "* {} EXISTS\r\n* {recent} RECENT\r\n",
                    selected.messages.len()
                ),
            );
        }
        selected.uid_next = snap.uid_next;
        selected.uid_validity = snap.uid_validity;
    }

    fn list(
        &mut self,
        out: &mut Vec<u8>,
        tag: &str,
        reference: &WireMailbox<'_>,
        pattern: &ListMailbox<'_>,
        lsub: bool,
    ) {
        let Some(user) = self.user().map(str::to_owned) else {
            return;
        };
        let verb = if lsub { "LSUB" } else { "LIST" };
        let reference = match reference {
            WireMailbox::Inbox => "INBOX".to_owned(),
            WireMailbox::Other(o) => String::from_utf8_lossy(o.inner().as_ref()).into_owned(),
        };
        let pattern = match pattern {
            ListMailbox::Token(t) => String::from_utf8_lossy(t.as_ref()).into_owned(),
            ListMailbox::String(s) => String::from_utf8_lossy(s.as_ref()).into_owned(),
        };
        if pattern.is_empty() && !lsub {
            // RFC 3501 section 6.3.8: the hierarchy delimiter and root.
            push(out, "* LIST (\\Noselect) \".\" \"\"\r\n");
            push(out, &format!("{tag} OK LIST completed\r\n"));
            return;
        }
        let full = format!("{reference}{pattern}");
        let names = match self.store.list_mailboxes(&user) {
            Ok(n) => n,
            Err(e) => {
                push(out, &format!("{tag} NO {}\r\n", one_line(&e.to_string())));
                return;
            }
        };
        let subscribed = self.store.subscriptions(&user).unwrap_or_default();
        let candidates: Vec<String> = if lsub {
            subscribed
                .iter()
                .filter(|s| s.eq_ignore_ascii_case("INBOX") || names.contains(s))
                .cloned()
                .collect()
        } else {
            names.clone()
        };
        for name in candidates {
            let encoded = mutf7::encode(&name);
            let matched = if full.to_ascii_uppercase().starts_with("INBOX") && name == "INBOX" {
                wildcard(&full.to_ascii_uppercase(), "INBOX")
            } else {
                wildcard(&full, &encoded)
            };
            if !matched {
                continue;
            }
            let mut attrs: Vec<&str> = Vec::new();
            let children = names.iter().any(|n| n.starts_with(&format!("{name}.")));
            attrs.push(if children {
                "\\HasChildren"
            } else {
                "\\HasNoChildren"
            });
            if let Some((_, special)) = SPECIAL_FOLDERS.iter().find(|(n, _)| *n == name) {
                attrs.push(special);
            }
            if !lsub && subscribed.contains(&name) {
                attrs.push("\\Subscribed");
            }
            if lsub {
                attrs.retain(|a| *a != "\\HasChildren" && *a != "\\HasNoChildren");
            }
            let mut line = format!("* {verb} ({}) \".\" ", attrs.join(" ")).into_bytes();
            wire::mailbox(&mut line, &encoded);
            line.extend_from_slice(b"\r\n");
            out.extend_from_slice(&line);
        }
        push(out, &format!("{tag} OK {verb} completed\r\n"));
    }

    fn status(
        &mut self,
        out: &mut Vec<u8>,
        tag: &str,
        mailbox: &WireMailbox<'_>,
        items: &[StatusDataItemName],
    ) {
        let result = self.mailbox_name(mailbox).and_then(|(user, name)| {
            let mb = self
                .store
                .mailbox(&user, &name)
                .map_err(|e| e.to_string())?;
            let snap = mb.snapshot(false).map_err(|e| e.to_string())?;
            Ok((name, mb, snap))
        });
        let (name, mb, snap) = match result {
            Ok(x) => x,
            Err(e) => {
                push(out, &format!("{tag} NO {}\r\n", one_line(&e)));
                return;
            }
        };
        let new_dir = mb.maildir().path().join("new");
        let mut parts = Vec::new();
        for item in items {
            match item {
                StatusDataItemName::Messages => {
                    parts.push(format!("MESSAGES {}", snap.messages.len()))
                }
                StatusDataItemName::Recent => {
                    let n = snap
                        .messages
                        .iter()
                        .filter(|m| m.path.parent() == Some(&new_dir))
                        .count();
                    parts.push(format!("RECENT {n}"));
                }
                StatusDataItemName::UidNext => parts.push(format!("UIDNEXT {}", snap.uid_next)),
                StatusDataItemName::UidValidity => {
                    parts.push(format!("UIDVALIDITY {}", snap.uid_validity))
                }
                StatusDataItemName::Unseen => {
                    let n = snap.messages.iter().filter(|m| !m.flags.seen).count();
                    parts.push(format!("UNSEEN {n}"));
                }
                StatusDataItemName::Deleted => {
                    let n = snap.messages.iter().filter(|m| m.flags.deleted).count();
                    parts.push(format!("DELETED {n}"));
                }
                _ => {}
            }
        }
        let mut line = b"* STATUS ".to_vec();
        wire::mailbox(&mut line, &mutf7::encode(&name));
        line.extend_from_slice(format!(" ({})\r\n", parts.join(" ")).as_bytes());
        out.extend_from_slice(&line);
        push(out, &format!("{tag} OK STATUS completed\r\n"));
    }

    fn append(
        &mut self,
        out: &mut Vec<u8>,
        tag: &str,
        mailbox: &WireMailbox<'_>,
        flags: &[Flag<'_>],
        date: Option<SystemTime>,
        data: &[u8],
    ) {
        let result = self.mailbox_name(mailbox).and_then(|(user, name)| {
            self.store
                .mailbox(&user, &name)
                .map_err(|_| "[TRYCREATE] no such mailbox".to_owned())
        });
        let target = match result {
            Ok(mb) => mb,
            Err(e) => {
                push(out, &format!("{tag} NO {e}\r\n"));
                return;
            }
        };
        let mut new_flags = Flags::default();
        apply_flags(&mut new_flags, flags, StoreType::Replace, &mut |k| {
            target.keyword_letter(k).ok().flatten()
        });
        match target.append(&mut &data[..], &new_flags, date) {
            Ok(uid) => {
                let validity = target.snapshot(false).map(|s| s.uid_validity).unwrap_or(0);
                self.refresh(out, false);
                push(
                    out,
                    &format!("{tag} OK [APPENDUID {validity} {uid}] APPEND completed\r\n"),
                );
            }
            Err(e) => push(out, &format!("{tag} NO {}\r\n", one_line(&e.to_string()))),
        }
    }

    fn expunge(&mut self, out: &mut Vec<u8>, tag: &str, uids: Option<&SequenceSet>) {
        let State::Selected { selected, .. } = &mut self.state else {
            return;
        };
        if selected.read_only {
            push(out, &format!("{tag} NO mailbox is read-only\r\n"));
            return;
        }
        let max_uid = selected.messages.last().map_or(0, |m| m.uid);
        let gone: Vec<String> = selected
            .messages
            .iter()
            .filter(|m| m.flags.deleted)
            .filter(|m| uids.is_none_or(|set| contains(set, m.uid, max_uid)))
            .map(|m| m.unique.clone())
            .collect();
        if let Err(e) = selected.mailbox.expunge(&gone) {
            push(out, &format!("{tag} NO {}\r\n", one_line(&e.to_string())));
            return;
        }
        self.refresh(out, true);
        push(out, &format!("{tag} OK EXPUNGE completed\r\n"));
    }

    fn resolve(&self, set: &SequenceSet, uid: bool) -> Result<Vec<usize>, String> {
        let State::Selected { selected, .. } = &self.state else {
            return Ok(Vec::new());
        };
        let msgs = &selected.messages;
        if uid {
            let max = msgs.last().map_or(0, |m| m.uid);
            return Ok((0..msgs.len())
                .filter(|&i| contains(set, msgs[i].uid, max))
                .collect());
        }
        let count = u32::try_from(msgs.len()).unwrap_or(u32::MAX);
        for seq in set.0.as_ref() {
            let values = match seq {
                Sequence::Single(a) => vec![*a],
                Sequence::Range(a, b) => vec![*a, *b],
            };
            for v in values {
                if let SeqOrUid::Value(n) = v {
                    if n.get() > count {
                        return Err("invalid message sequence number".to_owned());
                    }
                }
            }
        }
        Ok((0..msgs.len())
            .filter(|&i| contains(set, i as u32 + 1, count))
            .collect())
    }

    fn search(
        &mut self,
        keys: &[imap_codec::imap_types::search::SearchKey<'_>],
        uid: bool,
    ) -> Result<Vec<u32>, String> {
        let State::Selected { selected, .. } = &self.state else {
            return Ok(Vec::new());
        };
        search::run(&selected.messages, keys, &mut self.sizes, uid)
    }

    fn fetch(
        &mut self,
        out: &mut Vec<u8>,
        tag: &str,
        set: &SequenceSet,
        items: &[MessageDataItemName<'_>],
        uid: bool,
    ) {
        let indices = match self.resolve(set, uid) {
            Ok(i) => i,
            Err(e) => {
                push(out, &format!("{tag} BAD {e}\r\n"));
                return;
            }
        };
        let State::Selected { selected, .. } = &mut self.state else {
            return;
        };
        let read_only = selected.read_only;
        let mut items: Vec<MessageDataItemName<'_>> = items
            .iter()
            .filter(|i| {
                !matches!(
                    i,
                    MessageDataItemName::Binary { .. } | MessageDataItemName::BinarySize { .. }
                )
            })
            .cloned()
            .collect();
        if uid && !items.contains(&MessageDataItemName::Uid) {
            items.insert(0, MessageDataItemName::Uid);
        }
        let sets_seen = !read_only
            && items.iter().any(|i| {
                matches!(
                    i,
                    MessageDataItemName::BodyExt { peek: false, .. }
                        | MessageDataItemName::Rfc822
                        | MessageDataItemName::Rfc822Text
                )
            });
        for i in indices {
            let mut flags_changed = false;
            if sets_seen && !selected.messages[i].flags.seen {
                let mut flags = selected.messages[i].flags.clone();
                flags.seen = true;
                match selected
                    .mailbox
                    .set_flags(&selected.messages[i].unique, &flags)
                {
                    Ok(path) => {
                        selected.messages[i].path = path;
                        selected.messages[i].flags = flags;
                        flags_changed = true;
                    }
                    Err(e) => tracing::debug!(error = %e, "cannot set \\Seen"),
                }
            }
            let view = selected.messages[i].clone();
            let needs_body = items.iter().any(|it| {
                !matches!(
                    it,
                    MessageDataItemName::Uid
                        | MessageDataItemName::Flags
                        | MessageDataItemName::InternalDate
                ) && !(matches!(it, MessageDataItemName::Rfc822Size)
                    && self.sizes.contains_key(&view.uid))
            });
            let loaded = if needs_body {
                match read_message(&selected.mailbox, &view) {
                    Some(l) => {
                        self.sizes.insert(view.uid, l.bytes.len());
                        Some(l)
                    }
                    None => {
                        // Expunged by another session; RFC 3501 allows answering with nothing.
                        continue;
                    }
                }
            } else {
                None
            };
            let mut line: Vec<u8> = format!("* {} FETCH (", i + 1).into_bytes();
            let mut first = true;
            let mut flags_written = false;
            for item in &items {
                if !first {
                    line.push(b' ');
                }
                first = false;
                match item {
                    MessageDataItemName::Uid => {
                        line.extend_from_slice(format!("UID {}", view.uid).as_bytes())
                    }
                    MessageDataItemName::Flags => {
                        flags_written = true;
                        line.extend_from_slice(format!("FLAGS ({})", flag_list(&view)).as_bytes());
                    }
                    MessageDataItemName::InternalDate => {
                        let date = std::fs::metadata(&view.path)
                            .and_then(|m| m.modified())
                            .unwrap_or(SystemTime::UNIX_EPOCH);
                        line.extend_from_slice(
                            format!("INTERNALDATE \"{}\"", internal_date(date)).as_bytes(),
                        );
                    }
                    MessageDataItemName::Rfc822Size => {
                        let size = self.sizes.get(&view.uid).copied().unwrap_or(0);
                        line.extend_from_slice(format!("RFC822.SIZE {size}").as_bytes());
                    }
                    MessageDataItemName::Envelope => {
                        line.extend_from_slice(b"ENVELOPE ");
                        if let Some(l) = &loaded {
                            fetch::envelope(&mut line, &l.bytes, &l.root);
                        }
                    }
                    MessageDataItemName::BodyStructure | MessageDataItemName::Body => {
                        let extended = matches!(item, MessageDataItemName::BodyStructure);
                        line.extend_from_slice(if extended {
                            b"BODYSTRUCTURE "
                        } else {
                            b"BODY "
                        });
                        if let Some(l) = &loaded {
                            fetch::body_structure(&mut line, &l.bytes, &l.root, extended);
                        }
                    }
                    MessageDataItemName::Rfc822
                    | MessageDataItemName::Rfc822Header
                    | MessageDataItemName::Rfc822Text => {
                        let (label, text) = match item {
                            MessageDataItemName::Rfc822 => ("RFC822", SectionText::Full),
                            MessageDataItemName::Rfc822Header => {
                                ("RFC822.HEADER", SectionText::Header)
                            }
                            _ => ("RFC822.TEXT", SectionText::Text),
                        };
                        line.extend_from_slice(format!("{label} ").as_bytes());
                        let data = loaded
                            .as_ref()
                            .and_then(|l| fetch::section(l, &[], &text))
                            .unwrap_or_default();
                        wire::literal(&mut line, &data);
                    }
                    MessageDataItemName::BodyExt {
                        section, partial, ..
                    } => {
                        let (part, text, label) = section_parts(section.as_ref());
                        let data = loaded
                            .as_ref()
                            .and_then(|l| fetch::section(l, &part, &text))
                            .unwrap_or_default();
                        match partial {
                            Some((origin, count)) => {
                                let start = (*origin as usize).min(data.len());
                                let end =
                                    start.saturating_add(count.get() as usize).min(data.len());
                                line.extend_from_slice(
                                    format!("BODY[{label}]<{origin}> ").as_bytes(),
                                );
                                wire::literal(&mut line, &data[start..end]);
                            }
                            None => {
                                line.extend_from_slice(format!("BODY[{label}] ").as_bytes());
                                wire::literal(&mut line, &data);
                            }
                        }
                    }
                    // BINARY and MODSEQ were filtered out above; nothing else is left.
                    _ => line.extend_from_slice(format!("UID {}", view.uid).as_bytes()),
                }
            }
            if flags_changed && !flags_written {
                line.extend_from_slice(format!(" FLAGS ({})", flag_list(&view)).as_bytes());
            }
            line.extend_from_slice(b")\r\n");
            out.extend_from_slice(&line);
        }
        push(
            out,
            &format!(
                "{tag} OK {}FETCH completed\r\n",
                if uid { "UID " } else { "" }
            ),
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn store_flags(
        &mut self,
        out: &mut Vec<u8>,
        tag: &str,
        set: &SequenceSet,
        kind: StoreType,
        response: StoreResponse,
        flags: &[Flag<'_>],
        uid: bool,
    ) {
        let indices = match self.resolve(set, uid) {
            Ok(i) => i,
            Err(e) => {
                push(out, &format!("{tag} BAD {e}\r\n"));
                return;
            }
        };
        let State::Selected { selected, .. } = &mut self.state else {
            return;
        };
        if selected.read_only {
            push(out, &format!("{tag} NO mailbox is read-only\r\n"));
            return;
        }
        // New keywords get their letters first, so the FLAGS announcement (RFC 3501 section
        // 7.2.6) comes before the FETCH responses that show them.
        for flag in flags {
            if let Flag::Keyword(k) = flag {
                let _ = selected.mailbox.keyword_letter(k.as_ref());
            }
        }
        let table = selected.mailbox.keywords().unwrap_or_default();
        if table != selected.keywords {
            push(out, &flags_response(&table));
            push(out, &permanent_flags(&table));
            selected.keywords = table;
        }
        for i in indices {
            let mut new_flags = selected.messages[i].flags.clone();
            let mailbox = &selected.mailbox;
            apply_flags(&mut new_flags, flags, kind, &mut |k| {
                mailbox.keyword_letter(k).ok().flatten()
            });
            if new_flags != selected.messages[i].flags {
                match selected
                    .mailbox
                    .set_flags(&selected.messages[i].unique, &new_flags)
                {
                    Ok(path) => {
                        if new_flags.other != selected.messages[i].flags.other {
                            selected.messages[i].keywords =
                                keyword_names(&new_flags, &selected.keywords);
                        }
                        selected.messages[i].path = path;
                        selected.messages[i].flags = new_flags;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "flag change failed");
                        continue;
                    }
                }
            }
            if response == StoreResponse::Answer {
                let view = &selected.messages[i];
                let uid_part = if uid {
                    format!("UID {} ", view.uid)
                } else {
                    String::new()
                };
                push(
                    out,
                    &format!(
                        "* {} FETCH ({uid_part}FLAGS ({}))\r\n",
                        i + 1,
                        flag_list(view)
                    ),
                );
            }
        }
        push(out, &format!("{tag} OK STORE completed\r\n"));
    }

    fn copy(
        &mut self,
        out: &mut Vec<u8>,
        tag: &str,
        set: &SequenceSet,
        mailbox: &WireMailbox<'_>,
        uid: bool,
        moving: bool,
    ) {
        let verb = if moving { "MOVE" } else { "COPY" };
        let indices = match self.resolve(set, uid) {
            Ok(i) => i,
            Err(e) => {
                push(out, &format!("{tag} BAD {e}\r\n"));
                return;
            }
        };
        let target = match self.mailbox_name(mailbox).and_then(|(user, name)| {
            self.store
                .mailbox(&user, &name)
                .map_err(|_| "[TRYCREATE] no such mailbox".to_owned())
        }) {
            Ok(t) => t,
            Err(e) => {
                push(out, &format!("{tag} NO {e}\r\n"));
                return;
            }
        };
        let State::Selected { selected, .. } = &mut self.state else {
            return;
        };
        if moving && selected.read_only {
            push(out, &format!("{tag} NO mailbox is read-only\r\n"));
            return;
        }
        let mut source_uids = Vec::new();
        let mut target_uids = Vec::new();
        let mut moved = Vec::new();
        for i in indices {
            let view = &selected.messages[i];
            let path = selected.mailbox.maildir().find(&view.unique).ok().flatten();
            let Some(path) = path else { continue };
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let date = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            let mut flags = view.flags.clone();
            flags.other = view
                .keywords
                .iter()
                .filter_map(|name| target.keyword_letter(name).ok().flatten())
                .collect();
            flags.other.sort_unstable();
            match target.append(&mut &bytes[..], &flags, date) {
                Ok(new_uid) => {
                    source_uids.push(view.uid);
                    target_uids.push(new_uid);
                    moved.push(view.unique.clone());
                }
                Err(e) => {
                    push(out, &format!("{tag} NO {}\r\n", one_line(&e.to_string())));
                    return;
                }
            }
        }
        let validity = target.snapshot(false).map(|s| s.uid_validity).unwrap_or(0);
        let code = if source_uids.is_empty() {
            String::new()
        } else {
            format!(
                "[COPYUID {validity} {} {}] ",
                uid_list(&source_uids),
                uid_list(&target_uids)
            )
        };
        if moving {
            // RFC 6851 section 4.3: COPYUID goes in an untagged OK before the expunges.
            if !code.is_empty() {
                push(out, &format!("* OK {code}moved\r\n"));
            }
            if let Err(e) = selected.mailbox.expunge(&moved) {
                push(out, &format!("{tag} NO {}\r\n", one_line(&e.to_string())));
                return;
            }
            self.refresh(out, true);
            push(out, &format!("{tag} OK {verb} completed\r\n"));
        } else {
            push(out, &format!("{tag} OK {code}{verb} completed\r\n"));
        }
    }
}

enum Step {
    More,
    Again,
    Act(Action),
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

/// The length of a `{N+}` announcement ending a line, if there is one.
fn nonsync_literal(line: &[u8]) -> Option<u64> {
    let inner = line.strip_suffix(b"+}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let digits = &inner[open + 1..];
    if digits.is_empty() || digits.len() > 12 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
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

fn expand(m: &Macro) -> Vec<MessageDataItemName<'static>> {
    use MessageDataItemName as I;
    match m {
        Macro::All => vec![I::Flags, I::InternalDate, I::Rfc822Size, I::Envelope],
        Macro::Fast => vec![I::Flags, I::InternalDate, I::Rfc822Size],
        Macro::Full => vec![
            I::Flags,
            I::InternalDate,
            I::Rfc822Size,
            I::Envelope,
            I::Body,
        ],
        _ => vec![I::Flags],
    }
}

fn read_message(mailbox: &Mailbox, view: &View) -> Option<Loaded> {
    let raw = match std::fs::read(&view.path) {
        Ok(raw) => raw,
        Err(_) => {
            let path = mailbox.maildir().find(&view.unique).ok().flatten()?;
            std::fs::read(path).ok()?
        }
    };
    Some(Loaded::new(raw))
}

pub(crate) fn flag_list(view: &View) -> String {
    let mut names = Vec::new();
    let f = &view.flags;
    for (on, name) in [
        (f.answered, "\\Answered"),
        (f.flagged, "\\Flagged"),
        (f.deleted, "\\Deleted"),
        (f.seen, "\\Seen"),
        (f.draft, "\\Draft"),
        (f.passed, "$Forwarded"),
        (view.recent, "\\Recent"),
    ] {
        if on {
            names.push(name);
        }
    }
    names.extend(view.keywords.iter().map(String::as_str));
    names.join(" ")
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

/// PERMANENTFLAGS with `\*`: new keywords are kept too (RFC 3501 section 7.1).
fn permanent_flags(keywords: &[String]) -> String {
    let mut list = SYSTEM_FLAGS.to_owned();
    for k in keywords.iter().filter(|k| !k.is_empty()) {
        list.push(' ');
        list.push_str(k);
    }
    format!("* OK [PERMANENTFLAGS ({list} \\*)] flags and keywords kept\r\n")
}

/// Applies a flag list; `letter` names the Maildir letter of a keyword (making one if new).
fn apply_flags(
    target: &mut Flags,
    flags: &[Flag<'_>],
    kind: StoreType,
    letter: &mut dyn FnMut(&str) -> Option<u8>,
) {
    let mut given = Flags::default();
    for flag in flags {
        match flag {
            Flag::Answered => given.answered = true,
            Flag::Deleted => given.deleted = true,
            Flag::Draft => given.draft = true,
            Flag::Flagged => given.flagged = true,
            Flag::Seen => given.seen = true,
            Flag::Keyword(k) if k.as_ref().eq_ignore_ascii_case("$Forwarded") => {
                given.passed = true
            }
            Flag::Keyword(k) => {
                if let Some(l) = letter(k.as_ref()) {
                    given.other.push(l);
                }
            }
            // Not yet: `\Foo` extension flags other than the system ones; no client uses them.
            _ => {}
        }
    }
    match kind {
        StoreType::Replace => {
            target.other.retain(|l| !l.is_ascii_lowercase());
            target.other.extend(&given.other);
        }
        StoreType::Add => target.other.extend(&given.other),
        StoreType::Remove => target.other.retain(|l| !given.other.contains(l)),
    }
    target.other.sort_unstable();
    target.other.dedup();
    let pairs: [(&mut bool, bool); 6] = [
        (&mut target.answered, given.answered),
        (&mut target.deleted, given.deleted),
        (&mut target.draft, given.draft),
        (&mut target.flagged, given.flagged),
        (&mut target.seen, given.seen),
        (&mut target.passed, given.passed),
    ];
    for (t, g) in pairs {
        match kind {
            StoreType::Replace => *t = g,
            StoreType::Add => *t |= g,
            StoreType::Remove => *t &= !g,
        }
    }
}

/// Whether `n` is in a sequence set, with `*` standing for `max` (RFC 3501 section 9,
/// seq-number; a range may be given high to low).
pub(crate) fn contains(set: &SequenceSet, n: u32, max: u32) -> bool {
    let value = |v: &SeqOrUid| match v {
        SeqOrUid::Value(x) => x.get(),
        SeqOrUid::Asterisk => max,
    };
    set.0.as_ref().iter().any(|seq| match seq {
        Sequence::Single(a) => value(a) == n,
        Sequence::Range(a, b) => {
            let (lo, hi) = (value(a).min(value(b)), value(a).max(value(b)));
            (lo..=hi).contains(&n)
        }
    })
}

fn uid_list(uids: &[u32]) -> String {
    uids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// RFC 3501 date-time: `dd-Mon-yyyy hh:mm:ss +zzzz`, in UTC.
pub(crate) fn internal_date(time: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = time.into();
    dt.format("%d-%b-%Y %H:%M:%S +0000").to_string()
}

/// Splits a section into its part path, what of the part is asked, and its label for the reply.
fn section_parts(section: Option<&Section<'_>>) -> (Vec<u32>, SectionText, String) {
    let path = |p: &imap_codec::imap_types::fetch::Part| -> Vec<u32> {
        p.0.as_ref().iter().map(|n| n.get()).collect()
    };
    let label_of = |p: &[u32]| p.iter().map(u32::to_string).collect::<Vec<_>>().join(".");
    let prefix = |p: &[u32]| {
        if p.is_empty() {
            String::new()
        } else {
            format!("{}.", label_of(p))
        }
    };
    match section {
        None => (Vec::new(), SectionText::Full, String::new()),
        Some(Section::Part(p)) => {
            let p = path(p);
            let label = label_of(&p);
            (p, SectionText::Full, label)
        }
        Some(Section::Header(p)) => {
            let p = p.as_ref().map(path).unwrap_or_default();
            let label = format!("{}HEADER", prefix(&p));
            (p, SectionText::Header, label)
        }
        Some(Section::Text(p)) => {
            let p = p.as_ref().map(path).unwrap_or_default();
            let label = format!("{}TEXT", prefix(&p));
            (p, SectionText::Text, label)
        }
        Some(Section::Mime(p)) => {
            let p = path(p);
            let label = format!("{}MIME", prefix(&p));
            (p, SectionText::Mime, label)
        }
        Some(Section::HeaderFields(p, names)) | Some(Section::HeaderFieldsNot(p, names)) => {
            let not = matches!(section, Some(Section::HeaderFieldsNot(..)));
            let p = p.as_ref().map(path).unwrap_or_default();
            let names: Vec<String> = names.as_ref().iter().map(astring).collect();
            let mut label = format!(
                "{}HEADER.FIELDS{} (",
                prefix(&p),
                if not { ".NOT" } else { "" }
            );
            label.push_str(
                &names
                    .iter()
                    .map(|n| n.to_ascii_uppercase())
                    .collect::<Vec<_>>()
                    .join(" "),
            );
            label.push(')');
            (p, SectionText::Fields { names, not }, label)
        }
    }
}

/// IMAP LIST wildcards (RFC 3501 section 6.3.8): `*` matches anything, `%` anything but the
/// hierarchy delimiter.
pub(crate) fn wildcard(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some((b'%', rest)) => {
                let stop = n.iter().position(|&c| c == b'.').unwrap_or(n.len());
                (0..=stop).any(|i| go(rest, &n[i..]))
            }
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}
