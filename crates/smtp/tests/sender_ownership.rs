//! Transcript tests for sender ownership on submission (RFC 6409 section 6.1): once the driver
//! has restricted the senders after AUTH, `MAIL FROM` with an address the user does not own is
//! answered 553 5.7.1 and the session goes on; the listener without a restriction (MX) is
//! unchanged.

use postroom_smtp::{AllowedSenders, Event, ReversePath, Session, SessionConfig};

/// A driver that accepts alice/dev-password and restricts her to her own address and an
/// alias, like the mail component does; every recipient and message is accepted.
struct Driver {
    session: Session,
    transcript: String,
    stored: usize,
    null_allowed: bool,
    restrict: bool,
}

impl Driver {
    fn new(config: SessionConfig, restrict: bool, null_allowed: bool) -> Driver {
        let mut d = Driver {
            session: Session::new(config),
            transcript: String::new(),
            stored: 0,
            null_allowed,
            restrict,
        };
        d.run();
        d
    }

    fn submission(null_allowed: bool) -> Driver {
        let mut d = Driver::new(
            SessionConfig {
                starttls_available: true,
                auth_enabled: true,
                auth_required: true,
                ..Default::default()
            },
            true,
            null_allowed,
        );
        d.send(b"EHLO c.example\r\nSTARTTLS\r\n");
        // base64 of "\0alice\0dev-password".
        d.send(b"EHLO c.example\r\nAUTH PLAIN AGFsaWNlAGRldi1wYXNzd29yZA==\r\n");
        assert!(d.transcript.contains("235 2.7.0"), "{}", d.transcript);
        d
    }

    fn send(&mut self, bytes: &[u8]) -> String {
        let before = self.transcript.len();
        self.session.receive(bytes);
        self.run();
        self.transcript[before..].to_owned()
    }

    fn run(&mut self) {
        loop {
            let event = self.session.poll();
            self.transcript
                .push_str(&String::from_utf8_lossy(self.session.output()));
            self.session.clear_output();
            match event {
                Event::NeedInput | Event::Close => return,
                Event::StartTls => self.session.tls_started(),
                Event::Authenticate(c) => {
                    let ok = c.username == "alice" && c.password == "dev-password";
                    self.session.auth_result(ok.then(|| c.username.clone()));
                    if ok && self.restrict {
                        let mut senders = AllowedSenders::new();
                        senders.add_address("alice@office.example");
                        senders.add_address("sales@office.example");
                        senders.allow_null(self.null_allowed);
                        self.session.restrict_senders(senders);
                    }
                }
                Event::CheckRecipient { .. } => self.session.recipient_result(Ok(())),
                Event::Message(m) => {
                    self.stored += 1;
                    self.session
                        .message_result(Ok(format!("Q{}", self.stored)), Some(m.content));
                }
            }
        }
    }
}

fn codes(replies: &str) -> Vec<&str> {
    replies.lines().map(|l| l.get(..9).unwrap_or(l)).collect()
}

#[test]
fn someone_elses_address_is_refused_553_5_7_1_and_the_session_goes_on() {
    let mut d = Driver::submission(false);
    let replies = d.send(b"MAIL FROM:<bob@office.example>\r\n");
    assert_eq!(codes(&replies), ["553 5.7.1"]);
    assert!(
        replies.contains("<bob@office.example> is not owned by user alice"),
        "{replies}"
    );
    assert_eq!(
        d.session.take_refused_senders(),
        [ReversePath::Mailbox("bob@office.example".into())]
    );
    assert!(d.session.take_refused_senders().is_empty());

    // The same session can send with her own address afterwards.
    let replies = d.send(
        b"MAIL FROM:<alice@office.example>\r\nRCPT TO:<x@elsewhere.example>\r\nDATA\r\nhi\r\n.\r\n",
    );
    assert_eq!(
        codes(&replies),
        ["250 2.1.0", "250 2.1.5", "354 2.0.0", "250 2.0.0"]
    );
    assert_eq!(d.stored, 1);
}

#[test]
fn own_address_and_alias_are_accepted_in_any_case() {
    let mut d = Driver::submission(false);
    assert_eq!(
        codes(&d.send(b"MAIL FROM:<Alice@Office.Example>\r\n")),
        ["250 2.1.0"]
    );
    d.send(b"RSET\r\n");
    assert_eq!(
        codes(&d.send(b"MAIL FROM:<sales@office.example>\r\n")),
        ["250 2.1.0"]
    );
}

#[test]
fn pipelined_commands_after_a_refused_sender_get_503_and_nothing_is_stored() {
    let mut d = Driver::submission(false);
    let replies = d.send(
        b"MAIL FROM:<ceo@office.example>\r\nRCPT TO:<x@elsewhere.example>\r\nDATA\r\nhi\r\n.\r\n",
    );
    let got = codes(&replies);
    assert_eq!(got[..3], ["553 5.7.1", "503 5.5.1", "503 5.5.1"]);
    assert_eq!(d.stored, 0);
}

#[test]
fn refused_senders_do_not_use_up_the_error_limit() {
    let mut d = Driver::submission(false);
    for _ in 0..SessionConfig::default().max_errors + 2 {
        assert_eq!(
            codes(&d.send(b"MAIL FROM:<bob@office.example>\r\n")),
            ["553 5.7.1"]
        );
    }
    assert!(!d.session.is_closed());
}

#[test]
fn null_sender_follows_the_drivers_choice() {
    let mut d = Driver::submission(false);
    assert_eq!(codes(&d.send(b"MAIL FROM:<>\r\n")), ["553 5.7.1"]);
    let mut d = Driver::submission(true);
    assert_eq!(codes(&d.send(b"MAIL FROM:<>\r\n")), ["250 2.1.0"]);
}

#[test]
fn restriction_ends_when_the_session_starts_over_under_tls() {
    // A restriction set before STARTTLS (a driver bug or a plain-text AUTH) does not outlive
    // the session reset of RFC 3207 section 4.2: the new session needs AUTH again anyway.
    let mut d = Driver::new(
        SessionConfig {
            starttls_available: true,
            ..Default::default()
        },
        false,
        false,
    );
    d.session.restrict_senders(AllowedSenders::new());
    assert_eq!(
        codes(&d.send(b"EHLO c\r\nMAIL FROM:<a@x.example>\r\n"))
            .last()
            .copied(),
        Some("553 5.7.1")
    );
    d.send(b"STARTTLS\r\n");
    assert_eq!(
        codes(&d.send(b"EHLO c\r\nMAIL FROM:<a@x.example>\r\n"))
            .last()
            .copied(),
        Some("250 2.1.0")
    );
}

#[test]
fn mx_session_without_restriction_takes_any_sender() {
    let mut d = Driver::new(SessionConfig::default(), false, false);
    let replies = d.send(b"EHLO c\r\nMAIL FROM:<bob@office.example>\r\nRSET\r\nMAIL FROM:<>\r\n");
    let got = codes(&replies);
    assert_eq!(
        got[got.len() - 3..],
        ["250 2.1.0", "250 2.0.0", "250 2.1.0"]
    );
}
