//! One SMTP server session, without I/O.
//!
//! The driver hands received bytes to [`Session::receive`], then calls [`Session::poll`] until
//! it returns [`Event::NeedInput`] or [`Event::Close`], sending [`Session::output`] to the peer
//! whenever it is about to wait for input. Events that need the outside world (TLS, a password
//! check, a recipient lookup, durable storage) stop the session until the driver answers with
//! the matching method. Pipelined commands (RFC 2920) are answered strictly in order: the
//! session works through the buffered input one command at a time, and the replies collect in
//! the output buffer.

use std::borrow::Cow;
use std::time::Duration;

use smtp_proto::{Error as ParseError, Request};

use crate::auth::{self, Credentials};
use crate::data::{BareLineEndings, DataLimits, DataProblem, DataReader, Progress};
use crate::envelope::{BodyType, DsnReturn, Envelope, Message, Notify, Recipient, ReversePath};
use crate::reply::{EnhancedStatus as S, Reply, canned, push_fmt, write_plain};
use crate::senders::AllowedSenders;

/// How a session behaves; one per listener.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Our host name, for the greeting and the EHLO reply.
    pub hostname: String,
    /// The largest message accepted, in octets; offered as `SIZE` (RFC 1870).
    pub max_message_size: usize,
    /// The most recipients in one transaction. RFC 5321 section 4.5.3.1.8 asks for at least 100.
    pub max_recipients: usize,
    /// The longest line of message data, without CRLF.
    pub max_line_length: usize,
    /// The longest command line, with CRLF. RFC 5321 section 4.5.3.1.4 sets 512 as the least;
    /// ESMTP parameters make lines longer, and AUTH lines carry base64 (RFC 4954 section 4).
    pub max_command_line: usize,
    /// How many bad commands are answered before the session is closed with 421.
    pub max_errors: u32,
    /// What to do with a bare CR or LF in message data.
    pub bare_line_endings: BareLineEndings,
    /// STARTTLS can be offered (a certificate is loaded).
    pub starttls_available: bool,
    /// The connection is TLS from its first byte (port 465, RFC 8314).
    pub implicit_tls: bool,
    /// AUTH PLAIN and LOGIN are offered on this listener once TLS is active.
    pub auth_enabled: bool,
    /// MAIL is refused until the client has authenticated (the submission ports).
    pub auth_required: bool,
    /// The server timeout while waiting for a command (RFC 5321 section 4.5.3.2.7: 5 minutes).
    pub command_timeout: Duration,
    /// The timeout while waiting for the next block of message data (RFC 5321 section
    /// 4.5.3.2.5 asks clients for 3 minutes per block; the server waits as long as for a
    /// command, 4.5.3.2.7).
    pub data_timeout: Duration,
}

impl Default for SessionConfig {
    fn default() -> SessionConfig {
        SessionConfig {
            hostname: "localhost".into(),
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 100,
            max_line_length: 64 * 1024,
            max_command_line: 4096,
            max_errors: 10,
            bare_line_endings: BareLineEndings::Reject,
            starttls_available: false,
            implicit_tls: false,
            auth_enabled: false,
            auth_required: false,
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(300),
        }
    }
}

/// What the session needs from its driver.
#[derive(Debug)]
pub enum Event {
    /// All buffered input is used up: send [`Session::output`], then read more bytes.
    NeedInput,
    /// Send [`Session::output`] (the 220 reply), then start the TLS handshake and call
    /// [`Session::tls_started`]. Input received before the handshake has been discarded.
    StartTls,
    /// Check these credentials and call [`Session::auth_result`].
    Authenticate(Credentials),
    /// Decide about this recipient and call [`Session::recipient_result`].
    CheckRecipient {
        /// The forward-path of the `RCPT TO` command.
        address: String,
        /// The envelope so far (sender, authentication, TLS) for the decision.
        envelope: Box<Envelope>,
    },
    /// A message is complete: store it durably, then call [`Session::message_result`].
    Message(Box<Message>),
    /// Send [`Session::output`] and close the connection.
    Close,
}

/// Which wait the driver is timing, for its timer (RFC 5321 section 4.5.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Waiting for a command.
    Command,
    /// Waiting for message data.
    Data,
}

#[derive(Debug)]
enum Phase {
    Command,
    Data(DataReader),
    AuthPlain,
    AuthLoginUser,
    AuthLoginPassword {
        username: String,
    },
    /// An event was returned; the driver's answer is due.
    Awaiting(Awaiting),
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaiting {
    Tls,
    Auth,
    Recipient,
    Message,
}

/// One SMTP server session.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    phase: Phase,
    input: Vec<u8>,
    input_pos: usize,
    output: Vec<u8>,
    /// A command line longer than the limit is being skipped up to its LF.
    skipping_long_line: bool,
    errors: u32,
    tls: bool,
    helo: Option<(String, bool)>,
    authenticated: Option<String>,
    /// What `MAIL FROM` may say, once the driver has restricted it ([`Session::restrict_senders`]).
    senders: Option<AllowedSenders>,
    /// Reverse-paths refused by that restriction, until the driver takes them for its log.
    refused_senders: Vec<ReversePath>,
    transaction: Option<Transaction>,
    /// The body buffer, reused from message to message when the driver gives it back.
    body: Vec<u8>,
    pending_recipient: Option<Recipient>,
}

#[derive(Debug, Clone)]
struct Transaction {
    reverse_path: ReversePath,
    declared_size: Option<usize>,
    body_type: BodyType,
    smtputf8: bool,
    dsn_return: Option<DsnReturn>,
    dsn_envelope_id: Option<String>,
    recipients: Vec<Recipient>,
}

impl Session {
    /// A new session; its greeting is already in [`Session::output`].
    pub fn new(config: SessionConfig) -> Session {
        let mut session = Session {
            tls: config.implicit_tls,
            config,
            phase: Phase::Command,
            input: Vec::with_capacity(4096),
            input_pos: 0,
            output: Vec::with_capacity(1024),
            skipping_long_line: false,
            errors: 0,
            helo: None,
            authenticated: None,
            senders: None,
            refused_senders: Vec::new(),
            transaction: None,
            body: Vec::new(),
            pending_recipient: None,
        };
        let greeting = format!("{} ESMTP Postroom", session.config.hostname);
        write_plain(&mut session.output, 220, &[greeting.into()]);
        session
    }

    /// Bytes to send to the client; call [`Session::clear_output`] once they are written.
    pub fn output(&self) -> &[u8] {
        &self.output
    }

    /// Forgets the output that has been sent.
    pub fn clear_output(&mut self) {
        self.output.clear();
    }

    /// True once the session has ended.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// True when TLS is active on the connection.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The user who authenticated, if any.
    pub fn authenticated_user(&self) -> Option<&str> {
        self.authenticated.as_deref()
    }

    /// Which timeout applies to the current wait for input, and how long it is.
    pub fn timeout(&self) -> (Wait, Duration) {
        match self.phase {
            Phase::Data(_) => (Wait::Data, self.config.data_timeout),
            _ => (Wait::Command, self.config.command_timeout),
        }
    }

    /// The driver's timer ran out: answer 421 (RFC 5321 section 4.5.3.2) and close.
    pub fn timed_out(&mut self) {
        self.reply(Reply::new(
            421,
            S(4, 4, 2),
            "Timeout waiting for input, closing",
        ));
        self.phase = Phase::Closed;
    }

    /// The server is going down: answer 421 and close (RFC 5321 section 3.8).
    pub fn shutdown(&mut self) {
        self.reply(Reply::new(
            421,
            S(4, 3, 2),
            "Service shutting down, closing",
        ));
        self.phase = Phase::Closed;
    }

    /// Adds received bytes to the input buffer.
    pub fn receive(&mut self, bytes: &[u8]) {
        if self.input_pos > 0 && self.input_pos == self.input.len() {
            self.input.clear();
            self.input_pos = 0;
        }
        self.input.extend_from_slice(bytes);
    }

    /// The client closed its side: the session ends without a reply.
    pub fn peer_closed(&mut self) {
        self.phase = Phase::Closed;
    }

    /// Works through buffered input until the driver is needed.
    pub fn poll(&mut self) -> Event {
        loop {
            match &self.phase {
                Phase::Closed => return Event::Close,
                Phase::Awaiting(_) => return Event::NeedInput,
                Phase::Data(_) => {
                    if let Some(event) = self.poll_data() {
                        return event;
                    }
                }
                Phase::Command
                | Phase::AuthPlain
                | Phase::AuthLoginUser
                | Phase::AuthLoginPassword { .. } => {
                    let Some((start, end)) = self.next_line() else {
                        self.compact_input();
                        // An over-long line can have used up the last error allowed.
                        if self.is_closed() {
                            return Event::Close;
                        }
                        return Event::NeedInput;
                    };
                    if let Some(event) = self.line(start, end) {
                        return event;
                    }
                }
            }
        }
    }

    /// The TLS handshake finished; the session starts over (RFC 3207 section 4.2).
    pub fn tls_started(&mut self) {
        if !self.awaiting(Awaiting::Tls) {
            return;
        }
        self.tls = true;
        self.helo = None;
        self.transaction = None;
        self.authenticated = None;
        self.senders = None;
        self.phase = Phase::Command;
    }

    /// The answer to [`Event::Authenticate`]: `Some(user)` when the credentials are good.
    pub fn auth_result(&mut self, user: Option<String>) {
        if !self.awaiting(Awaiting::Auth) {
            return;
        }
        self.phase = Phase::Command;
        match user {
            Some(user) => {
                self.authenticated = Some(user);
                self.reply(Reply::new(235, S(2, 7, 0), "Authentication successful"));
            }
            None => {
                self.reply(Reply::new(
                    535,
                    S(5, 7, 8),
                    "Authentication credentials invalid",
                ));
                self.error();
            }
        }
    }

    /// Limits the reverse-paths of every later `MAIL FROM` to `senders`; others are refused
    /// with 553 5.7.1 and the session goes on. The driver calls it right after a successful
    /// [`Session::auth_result`] on a submission listener (RFC 6409 section 6.1). It lasts until
    /// the session ends or starts over under TLS.
    pub fn restrict_senders(&mut self, senders: AllowedSenders) {
        self.senders = Some(senders);
    }

    /// The reverse-paths refused by [`Session::restrict_senders`] since the last call, for the
    /// driver's log.
    pub fn take_refused_senders(&mut self) -> Vec<ReversePath> {
        std::mem::take(&mut self.refused_senders)
    }

    /// The answer to [`Event::Authenticate`] when the credentials were not checked at all
    /// (too many failed logins from this address): the client gets `reply`, e.g. 454 4.7.0.
    pub fn auth_refused(&mut self, reply: Reply) {
        if !self.awaiting(Awaiting::Auth) {
            return;
        }
        self.phase = Phase::Command;
        self.reply(reply);
        self.error();
    }

    /// The answer to [`Event::CheckRecipient`]: `Ok(())` accepts, `Err(reply)` refuses with it.
    pub fn recipient_result(&mut self, verdict: Result<(), Reply>) {
        if !self.awaiting(Awaiting::Recipient) {
            return;
        }
        self.phase = Phase::Command;
        let Some(recipient) = self.pending_recipient.take() else {
            return;
        };
        match verdict {
            Ok(()) => {
                if let Some(tx) = self.transaction.as_mut() {
                    tx.recipients.push(recipient);
                }
                self.reply(canned::recipient_ok());
            }
            Err(reply) => self.reply(reply),
        }
    }

    /// The answer to [`Event::Message`]: `Ok(id)` once the message is durably stored (the only
    /// time 250 is sent), `Err(reply)` to refuse it. `body` gives the content buffer back for
    /// reuse, if the driver has it.
    pub fn message_result(&mut self, result: Result<String, Reply>, body: Option<Vec<u8>>) {
        if !self.awaiting(Awaiting::Message) {
            return;
        }
        self.phase = Phase::Command;
        self.transaction = None;
        if let Some(mut body) = body {
            body.clear();
            self.body = body;
        }
        match result {
            Ok(id) => self.reply(Reply::new(250, S(2, 0, 0), format!("Queued as {id}"))),
            Err(reply) => self.reply(reply),
        }
    }

    /// True when the session waits for this answer; an answer it does not wait for (a
    /// driver bug) is ignored rather than allowed to corrupt the state.
    fn awaiting(&self, what: Awaiting) -> bool {
        matches!(self.phase, Phase::Awaiting(w) if w == what)
    }

    fn reply(&mut self, reply: Reply) {
        reply.write_to(&mut self.output);
    }

    /// Counts a bad command; past the limit the session ends with 421.
    fn error(&mut self) -> Option<Event> {
        self.errors += 1;
        if self.errors >= self.config.max_errors {
            self.reply(Reply::new(
                421,
                S(4, 7, 0),
                "Too many errors, closing connection",
            ));
            self.phase = Phase::Closed;
            return Some(Event::Close);
        }
        None
    }

    fn fail(&mut self, reply: Reply) -> Option<Event> {
        self.reply(reply);
        self.error()
    }

    fn compact_input(&mut self) {
        if self.input_pos > 0 {
            self.input.drain(..self.input_pos);
            self.input_pos = 0;
        }
    }

    /// Finds the next complete line in the input, handling over-long lines.
    fn next_line(&mut self) -> Option<(usize, usize)> {
        loop {
            let rest = &self.input[self.input_pos..];
            match memchr::memchr(b'\n', rest) {
                Some(pos) => {
                    let start = self.input_pos;
                    self.input_pos += pos + 1;
                    if self.skipping_long_line {
                        self.skipping_long_line = false;
                        continue;
                    }
                    if pos + 1 > self.config.max_command_line {
                        // The whole line is here, LF and all: nothing of it is left to skip.
                        self.long_line();
                        continue;
                    }
                    return Some((start, self.input_pos));
                }
                None => {
                    if rest.len() > self.config.max_command_line || self.skipping_long_line {
                        if !self.skipping_long_line {
                            self.long_line();
                            // The rest of this line is still to come: drop it up to its LF.
                            self.skipping_long_line = true;
                        }
                        self.input_pos = self.input.len();
                    }
                    return None;
                }
            }
        }
    }

    fn long_line(&mut self) {
        // RFC 5321 section 4.5.3.1.10: "500 Line too long".
        self.reply(Reply::new(500, S(5, 5, 2), "Line too long"));
        if self.error().is_some() {
            self.input_pos = self.input.len();
        }
    }

    fn line(&mut self, start: usize, end: usize) -> Option<Event> {
        match std::mem::replace(&mut self.phase, Phase::Command) {
            Phase::AuthPlain => self.auth_plain_response(start, end),
            Phase::AuthLoginUser => self.auth_login_user(start, end),
            Phase::AuthLoginPassword { username } => self.auth_login_password(username, start, end),
            _ => self.command(start, end),
        }
    }

    fn command(&mut self, start: usize, end: usize) -> Option<Event> {
        // The parser borrows the line; lift out what outlives it before acting.
        let line = &self.input[start..end];
        let parsed = Request::parse(&mut line.iter()).map(Request::into_owned);
        let request = match parsed {
            Ok(request) => request,
            Err(err) => return self.parse_error(err),
        };
        match request {
            Request::Ehlo { host } => self.ehlo(host, true),
            Request::Helo { host } => self.ehlo(host, false),
            Request::Lhlo { .. } => self.fail(canned::unknown_command()),
            Request::Mail { from } => self.mail(from, start, end),
            Request::Rcpt { to } => self.rcpt(to),
            Request::Data => self.data(),
            Request::Rset => {
                self.transaction = None;
                self.reply(canned::ok("Reset"));
                None
            }
            Request::Noop { .. } => {
                self.reply(canned::ok("OK"));
                None
            }
            Request::Quit => {
                self.reply(canned::bye());
                self.phase = Phase::Closed;
                Some(Event::Close)
            }
            Request::StartTls => self.starttls(),
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, initial_response),
            Request::Vrfy { .. } => {
                // RFC 5321 section 3.5.3: 252 when the server will not verify.
                self.reply(Reply::new(252, S(2, 5, 0), "Cannot VRFY user; try RCPT"));
                None
            }
            Request::Help { .. } => {
                self.reply(Reply::new(214, S(2, 0, 0), "See RFC 5321"));
                None
            }
            Request::Expn { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. }
            | Request::Bdat { .. } => self.fail(canned::not_implemented()),
        }
    }

    fn parse_error(&mut self, err: ParseError) -> Option<Event> {
        let reply = match err {
            ParseError::UnknownCommand => canned::unknown_command(),
            ParseError::InvalidSenderAddress => {
                Reply::new(553, S(5, 1, 7), "Sender address is not valid")
            }
            ParseError::InvalidRecipientAddress => {
                Reply::new(553, S(5, 1, 3), "Recipient address is not valid")
            }
            ParseError::SyntaxError { syntax } => {
                canned::syntax(format!("Syntax error, expected: {syntax}"))
            }
            ParseError::InvalidParameter { param } => Reply::new(
                501,
                S(5, 5, 4),
                format!("Invalid value for parameter {param}"),
            ),
            ParseError::UnsupportedParameter { param } => {
                let param: String = param.chars().filter(|c| !c.is_control()).take(40).collect();
                Reply::new(555, S(5, 5, 4), format!("Parameter {param} not supported"))
            }
            ParseError::NeedsMoreData { .. }
            | ParseError::ResponseTooLong
            | ParseError::InvalidResponse { .. } => {
                // A whole line was given, so "needs more" means it was cut short.
                canned::syntax("Syntax error")
            }
        };
        self.fail(reply)
    }

    fn ehlo(&mut self, host: String, esmtp: bool) -> Option<Event> {
        // RFC 5321 section 4.1.4: EHLO resets the transaction.
        self.transaction = None;
        self.helo = Some((host.clone(), esmtp));
        if !esmtp {
            write_plain(
                &mut self.output,
                250,
                &[self.config.hostname.clone().into()],
            );
            return None;
        }
        let mut lines: Vec<Cow<'static, str>> = vec![
            format!("{} greets {}", self.config.hostname, host).into(),
            "PIPELINING".into(),
            format!("SIZE {}", self.config.max_message_size).into(),
            "8BITMIME".into(),
            "ENHANCEDSTATUSCODES".into(),
            "SMTPUTF8".into(),
            "DSN".into(),
        ];
        if self.config.starttls_available && !self.tls {
            lines.push("STARTTLS".into());
        }
        if self.auth_offered() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        write_plain(&mut self.output, 250, &lines);
        None
    }

    fn auth_offered(&self) -> bool {
        // RFC 4954 section 4 and RFC 8314: plain-text mechanisms only inside TLS.
        self.config.auth_enabled && self.tls && self.authenticated.is_none()
    }

    fn mail(
        &mut self,
        from: smtp_proto::MailFrom<String>,
        start: usize,
        end: usize,
    ) -> Option<Event> {
        if self.helo.is_none() {
            return self.fail(canned::bad_sequence("Send EHLO or HELO first"));
        }
        if self.transaction.is_some() {
            return self.fail(canned::bad_sequence("Sender already given"));
        }
        if self.config.auth_required && self.authenticated.is_none() {
            let reply = if self.tls || !self.config.starttls_available {
                Reply::new(530, S(5, 7, 0), "Authentication required")
            } else {
                Reply::new(530, S(5, 7, 0), "Must issue a STARTTLS command first")
            };
            return self.fail(reply);
        }

        // smtp-proto reads `<postmaster>` as the null path; only `<>` is the null path.
        let reverse_path = if from.address.is_empty() {
            let line = &self.input[start..end];
            if memchr::memmem::find(line, b"<>").is_none() {
                return self.fail(Reply::new(553, S(5, 1, 7), "Sender address is not valid"));
            }
            ReversePath::Null
        } else {
            ReversePath::Mailbox(from.address)
        };

        // RFC 1870 section 6.2: refuse at MAIL a message declared larger than the limit.
        let declared_size = (from.size > 0).then_some(from.size);
        let size_overflows = size_param_overflows(&self.input[start..end]);
        if from.size > self.config.max_message_size || size_overflows {
            self.reply(Reply::new(
                552,
                S(5, 3, 4),
                "Message size exceeds fixed maximum",
            ));
            return None;
        }

        let body_type = if from.flags & smtp_proto::MAIL_BODY_8BITMIME != 0 {
            BodyType::EightBitMime
        } else if from.flags & smtp_proto::MAIL_BODY_7BIT != 0 {
            BodyType::SevenBit
        } else if from.flags & smtp_proto::MAIL_BODY_BINARYMIME != 0 {
            return self.fail(Reply::new(555, S(5, 5, 4), "BODY=BINARYMIME not supported"));
        } else {
            BodyType::Unspecified
        };
        let dsn_return = if from.flags & smtp_proto::MAIL_RET_FULL != 0 {
            Some(DsnReturn::Full)
        } else if from.flags & smtp_proto::MAIL_RET_HDRS != 0 {
            Some(DsnReturn::Headers)
        } else {
            None
        };
        if from.flags & smtp_proto::MAIL_REQUIRETLS != 0 {
            return self.fail(Reply::new(555, S(5, 5, 4), "REQUIRETLS not supported"));
        }

        // RFC 6409 section 6.1: a submission server may refuse a sender the authenticated user
        // has no right to. 553 is "mailbox name not allowed" (RFC 5321 section 4.2.3), 5.7.1
        // "delivery not authorized" (RFC 3463 section 3.8), as Postfix answers it. A policy
        // refusal, not a protocol error: it does not count towards `max_errors`.
        if let Some(senders) = &self.senders
            && !senders.allows(&reverse_path)
        {
            let reply = sender_not_owned(&reverse_path, self.authenticated.as_deref());
            self.reply(reply);
            self.refused_senders.push(reverse_path);
            return None;
        }

        self.transaction = Some(Transaction {
            reverse_path,
            declared_size,
            body_type,
            smtputf8: from.flags & smtp_proto::MAIL_SMTPUTF8 != 0,
            dsn_return,
            dsn_envelope_id: from.env_id,
            recipients: Vec::new(),
        });
        self.reply(canned::sender_ok());
        None
    }

    fn rcpt(&mut self, to: smtp_proto::RcptTo<String>) -> Option<Event> {
        let Some(tx) = self.transaction.as_ref() else {
            return self.fail(canned::bad_sequence("Need MAIL before RCPT"));
        };

        // RFC 5321 section 4.5.1: <Postmaster> without a domain must be accepted; smtp-proto
        // hands it over as an empty address.
        let address = if to.address.is_empty() {
            "postmaster".to_owned()
        } else {
            to.address
        };

        // One copy per distinct recipient: a repeated RCPT is acknowledged, not added again.
        if tx
            .recipients
            .iter()
            .any(|r| r.address.eq_ignore_ascii_case(&address))
        {
            self.reply(Reply::new(250, S(2, 1, 5), "Recipient OK (duplicate)"));
            return None;
        }
        if tx.recipients.len() >= self.config.max_recipients {
            // RFC 5321 section 4.5.3.1.10: 452 for too many recipients.
            self.reply(Reply::new(452, S(4, 5, 3), "Too many recipients"));
            return None;
        }

        let notify = (to.flags
            & (smtp_proto::RCPT_NOTIFY_NEVER
                | smtp_proto::RCPT_NOTIFY_SUCCESS
                | smtp_proto::RCPT_NOTIFY_FAILURE
                | smtp_proto::RCPT_NOTIFY_DELAY)
            != 0)
            .then_some(Notify {
                never: to.flags & smtp_proto::RCPT_NOTIFY_NEVER != 0,
                success: to.flags & smtp_proto::RCPT_NOTIFY_SUCCESS != 0,
                failure: to.flags & smtp_proto::RCPT_NOTIFY_FAILURE != 0,
                delay: to.flags & smtp_proto::RCPT_NOTIFY_DELAY != 0,
            });
        self.pending_recipient = Some(Recipient {
            address: address.clone(),
            notify,
            original_recipient: to.orcpt,
        });
        self.phase = Phase::Awaiting(Awaiting::Recipient);
        Some(Event::CheckRecipient {
            address,
            envelope: Box::new(self.envelope()),
        })
    }

    fn envelope(&self) -> Envelope {
        let (helo, esmtp) = self.helo.clone().unwrap_or_default();
        let tx = self.transaction.clone();
        Envelope {
            helo,
            esmtp,
            tls: self.tls,
            authenticated: self.authenticated.clone(),
            reverse_path: tx
                .as_ref()
                .map_or(ReversePath::Null, |t| t.reverse_path.clone()),
            declared_size: tx.as_ref().and_then(|t| t.declared_size),
            body_type: tx.as_ref().map_or(BodyType::Unspecified, |t| t.body_type),
            smtputf8: tx.as_ref().is_some_and(|t| t.smtputf8),
            dsn_return: tx.as_ref().and_then(|t| t.dsn_return),
            dsn_envelope_id: tx.as_ref().and_then(|t| t.dsn_envelope_id.clone()),
            recipients: tx.map(|t| t.recipients).unwrap_or_default(),
        }
    }

    fn data(&mut self) -> Option<Event> {
        let Some(tx) = self.transaction.as_ref() else {
            return self.fail(canned::bad_sequence("Need MAIL before DATA"));
        };
        if tx.recipients.is_empty() {
            // RFC 2920 section 3.1: with no valid recipient, DATA gets 554.
            return self.fail(Reply::new(554, S(5, 5, 1), "No valid recipients"));
        }
        if let Some(size) = tx.declared_size {
            self.body.reserve(size.min(self.config.max_message_size));
        }
        self.reply(canned::start_data());
        self.phase = Phase::Data(DataReader::new(DataLimits {
            max_size: self.config.max_message_size,
            max_line_length: self.config.max_line_length,
            bare_line_endings: self.config.bare_line_endings,
        }));
        None
    }

    fn poll_data(&mut self) -> Option<Event> {
        let Phase::Data(reader) = &mut self.phase else {
            return None;
        };
        let input = &self.input[self.input_pos..];
        match reader.feed(input, &mut self.body) {
            Progress::More => {
                self.input.clear();
                self.input_pos = 0;
                Some(Event::NeedInput)
            }
            Progress::Done { consumed, problem } => {
                self.input_pos += consumed;
                self.phase = Phase::Command;
                match problem {
                    None => self.message_complete(),
                    Some(problem) => {
                        self.body.clear();
                        self.transaction = None;
                        self.reply(data_problem_reply(problem, &self.config));
                        None
                    }
                }
            }
        }
    }

    fn message_complete(&mut self) -> Option<Event> {
        let envelope = self.envelope();
        let content = std::mem::take(&mut self.body);
        self.phase = Phase::Awaiting(Awaiting::Message);
        Some(Event::Message(Box::new(Message { envelope, content })))
    }

    fn starttls(&mut self) -> Option<Event> {
        if self.tls {
            return self.fail(canned::bad_sequence("TLS already active"));
        }
        if !self.config.starttls_available {
            return self.fail(canned::not_implemented());
        }
        self.reply(Reply::new(220, S(2, 0, 0), "Ready to start TLS"));

        // RFC 3207 section 6: anything pipelined after STARTTLS came in plain text and must not
        // be taken as said inside TLS (CVE-2011-0411).
        self.input.clear();
        self.input_pos = 0;
        self.phase = Phase::Awaiting(Awaiting::Tls);
        Some(Event::StartTls)
    }

    fn auth(&mut self, mechanism: u64, initial: String) -> Option<Event> {
        if !self.config.auth_enabled {
            return self.fail(canned::not_implemented());
        }
        if !self.tls {
            // RFC 4954 section 4 and the smtp-auth-needs-tls case.
            return self.fail(Reply::new(
                530,
                S(5, 7, 0),
                "Must issue a STARTTLS command first",
            ));
        }
        if self.authenticated.is_some() {
            return self.fail(canned::bad_sequence("Already authenticated"));
        }
        if self.transaction.is_some() {
            return self.fail(canned::bad_sequence(
                "AUTH not allowed during a transaction",
            ));
        }
        if self.helo.is_none() {
            return self.fail(canned::bad_sequence("Send EHLO first"));
        }
        match mechanism {
            smtp_proto::AUTH_PLAIN if initial.is_empty() => {
                // RFC 4954 section 4: an empty challenge; no enhanced code in a 334 line, whose
                // text is base64.
                self.output.extend_from_slice(b"334 \r\n");
                self.phase = Phase::AuthPlain;
                None
            }
            smtp_proto::AUTH_PLAIN => self.auth_plain(initial.as_bytes().to_vec()),
            smtp_proto::AUTH_LOGIN if initial.is_empty() => {
                self.output.extend_from_slice(b"334 VXNlcm5hbWU6\r\n");
                self.phase = Phase::AuthLoginUser;
                None
            }
            smtp_proto::AUTH_LOGIN => match auth::decode_text(initial.as_bytes()) {
                Some(user) => {
                    self.output.extend_from_slice(b"334 UGFzc3dvcmQ6\r\n");
                    self.phase = Phase::AuthLoginPassword { username: user };
                    None
                }
                None => self.fail(auth_malformed()),
            },
            _ => self.fail(Reply::new(
                504,
                S(5, 5, 4),
                "Unrecognised authentication type",
            )),
        }
    }

    fn auth_line(&self, start: usize, end: usize) -> Result<Vec<u8>, Reply> {
        let line = trim_crlf(&self.input[start..end]);
        if line == b"*" {
            // RFC 4954 section 4: the client cancelled.
            return Err(Reply::new(501, S(5, 7, 0), "Authentication cancelled"));
        }
        Ok(line.to_vec())
    }

    fn auth_plain_response(&mut self, start: usize, end: usize) -> Option<Event> {
        match self.auth_line(start, end) {
            Ok(line) => self.auth_plain(line),
            Err(reply) => self.fail(reply),
        }
    }

    fn auth_plain(&mut self, encoded: Vec<u8>) -> Option<Event> {
        match auth::decode_plain(&encoded) {
            Some(credentials) => {
                self.phase = Phase::Awaiting(Awaiting::Auth);
                Some(Event::Authenticate(credentials))
            }
            None => self.fail(auth_malformed()),
        }
    }

    fn auth_login_user(&mut self, start: usize, end: usize) -> Option<Event> {
        let line = match self.auth_line(start, end) {
            Ok(line) => line,
            Err(reply) => return self.fail(reply),
        };
        match auth::decode_text(&line) {
            Some(user) => {
                self.output.extend_from_slice(b"334 UGFzc3dvcmQ6\r\n");
                self.phase = Phase::AuthLoginPassword { username: user };
                None
            }
            None => self.fail(auth_malformed()),
        }
    }

    fn auth_login_password(&mut self, username: String, start: usize, end: usize) -> Option<Event> {
        let line = match self.auth_line(start, end) {
            Ok(line) => line,
            Err(reply) => return self.fail(reply),
        };
        match auth::decode_text(&line) {
            Some(password) => {
                self.phase = Phase::Awaiting(Awaiting::Auth);
                Some(Event::Authenticate(Credentials {
                    authzid: None,
                    username,
                    password,
                }))
            }
            None => self.fail(auth_malformed()),
        }
    }
}

fn sender_not_owned(path: &ReversePath, user: Option<&str>) -> Reply {
    // The address is the client's own text: no control characters, and not too long a line.
    let address: String = path
        .as_str()
        .chars()
        .filter(|c| !c.is_control())
        .take(256)
        .collect();
    let user = user.unwrap_or("this client");
    Reply::new(
        553,
        S(5, 7, 1),
        format!("Sender address <{address}> is not owned by user {user}"),
    )
}

fn auth_malformed() -> Reply {
    Reply::new(501, S(5, 5, 2), "Cannot decode authentication data")
}

fn trim_crlf(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn data_problem_reply(problem: DataProblem, config: &SessionConfig) -> Reply {
    match problem {
        DataProblem::TooBig => Reply::new(552, S(5, 3, 4), "Message size exceeds fixed maximum"),
        DataProblem::LineTooLong => {
            let mut text = Vec::new();
            push_fmt(
                &mut text,
                format_args!(
                    "Message has a line longer than {} octets",
                    config.max_line_length
                ),
            );
            Reply::new(554, S(5, 6, 0), String::from_utf8_lossy(&text).into_owned())
        }
        DataProblem::BareLineEnding => Reply::new(
            554,
            S(5, 6, 0),
            "Message contains a bare CR or LF; lines must end with CRLF (RFC 5321 section 2.3.8)",
        ),
    }
}

/// True when the line's `SIZE=` value has more digits than a `usize` holds. smtp-proto reads
/// such a value wrongly (once it saturates it starts over from the next digit, so
/// `SIZE=999999999999999999999999` comes out small), and RFC 1870 section 6.2 wants the 552 for
/// it that any other too-large size gets. Only the parameters after the path are looked at.
fn size_param_overflows(line: &[u8]) -> bool {
    let params = line
        .iter()
        .rposition(|&b| b == b'>')
        .map_or(line, |i| &line[i + 1..]);
    params
        .split(|b| b.is_ascii_whitespace())
        .filter_map(|word| {
            let (name, value) = word.split_at_checked(5)?;
            name.eq_ignore_ascii_case(b"SIZE=").then_some(value)
        })
        .any(|digits| {
            !digits.is_empty()
                && digits.iter().all(u8::is_ascii_digit)
                && std::str::from_utf8(digits)
                    .ok()
                    .and_then(|d| d.parse::<usize>().ok())
                    .is_none()
        })
}
