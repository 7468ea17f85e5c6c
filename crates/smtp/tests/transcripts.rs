//! Transcript tests: bytes in, replies out, one test per case in shared/cases (SMTP) and for
//! the limits of issue 3. A small driver stands in for the mail component: it knows the local
//! users alice and bob at office.example, refuses relaying unless authenticated, accepts
//! alice/dev-password, and "stores" messages in a Vec.

use postroom_smtp::{
    BareLineEndings, EnhancedStatus, Event, Message, Reply, ReversePath, Session, SessionConfig,
};

struct Driver {
    session: Session,
    stored: Vec<Message>,
    /// Every byte the session sent, in order.
    transcript: String,
    closed: bool,
    tls_upgrades: usize,
}

impl Driver {
    fn new(config: SessionConfig) -> Driver {
        let mut driver = Driver {
            session: Session::new(config),
            stored: Vec::new(),
            transcript: String::new(),
            closed: false,
            tls_upgrades: 0,
        };
        driver.run();
        driver
    }

    fn mx() -> Driver {
        Driver::new(SessionConfig {
            hostname: "mx.office.example".into(),
            ..Default::default()
        })
    }

    fn submission() -> Driver {
        Driver::new(SessionConfig {
            hostname: "mx.office.example".into(),
            starttls_available: true,
            auth_enabled: true,
            auth_required: true,
            ..Default::default()
        })
    }

    /// Sends bytes as one read; returns what the server answered to them.
    fn send(&mut self, bytes: &[u8]) -> String {
        let before = self.transcript.len();
        self.session.receive(bytes);
        self.run();
        self.transcript[before..].to_owned()
    }

    fn run(&mut self) {
        loop {
            let event = self.session.poll();
            self.flush();
            match event {
                Event::NeedInput => return,
                Event::Close => {
                    self.closed = true;
                    return;
                }
                Event::StartTls => {
                    self.tls_upgrades += 1;
                    self.session.tls_started();
                }
                Event::Authenticate(c) => {
                    let ok = c.username == "alice" && c.password == "dev-password";
                    self.session.auth_result(ok.then(|| c.username.clone()));
                }
                Event::CheckRecipient { address, envelope } => {
                    let verdict = if address.ends_with("@office.example") {
                        if address.starts_with("alice@") || address.starts_with("bob@") {
                            Ok(())
                        } else {
                            Err(Reply::new(550, EnhancedStatus(5, 1, 1), "No such user"))
                        }
                    } else if envelope.authenticated.is_some() {
                        Ok(())
                    } else {
                        Err(Reply::new(
                            554,
                            EnhancedStatus(5, 7, 1),
                            "Relay access denied",
                        ))
                    };
                    self.session.recipient_result(verdict);
                }
                Event::Message(message) => {
                    self.stored.push(*message);
                    let id = format!("Q{}", self.stored.len());
                    self.session.message_result(Ok(id), None);
                }
            }
        }
    }

    fn flush(&mut self) {
        self.transcript
            .push_str(&String::from_utf8_lossy(self.session.output()));
        self.session.clear_output();
    }
}

/// The reply codes (with enhanced codes) of each line, e.g. ["250-2.0.0", "250 2.1.0"].
fn codes(replies: &str) -> Vec<&str> {
    replies.lines().map(|l| l.get(..9).unwrap_or(l)).collect()
}

fn greeted_mx() -> Driver {
    let mut d = Driver::mx();
    d.send(b"EHLO c.example\r\n");
    d
}

#[test]
fn every_reply_after_the_ehlo_reply_carries_an_enhanced_status_code() {
    let mut d = Driver::mx();
    d.send(b"EHLO c.example\r\nMAIL FROM:<>\r\nRCPT TO:<alice@office.example>\r\nDATA\r\n");
    d.send(b"x\r\n.\r\nNOOP\r\nVRFY bob\r\nHELP\r\nFOO\r\nRSET\r\nQUIT\r\n");
    // RFC 2034 section 3: not in the greeting and the EHLO reply, whose text clients parse.
    let exempt =
        |l: &str| l.starts_with("220 mx.office") || l.starts_with("250-") || l == "250 DSN";
    for line in d.transcript.lines().filter(|l| !exempt(l)) {
        let (code, rest) = line.split_at(4);
        let status = rest.split(' ').next().unwrap_or_default();
        let parts: Vec<&str> = status.split('.').collect();
        assert_eq!(parts.len(), 3, "no enhanced status code in {line:?}");
        // RFC 3463 has classes 2, 4 and 5 only; 3xx replies carry 2.
        let class = if code.starts_with('3') {
            "2"
        } else {
            &code[..1]
        };
        assert_eq!(parts[0], class, "class differs from reply code in {line:?}");
    }
}

// smtp-pipelined-burst
#[test]
fn pipelined_burst_is_answered_in_order_then_message_is_accepted() {
    let mut d = Driver::mx();
    let replies =
        d.send(b"EHLO c.example\r\nMAIL FROM:<>\r\nRCPT TO:<alice@office.example>\r\nDATA\r\n");
    let got = codes(&replies);
    let last_ehlo = got
        .iter()
        .position(|c| c.starts_with("250 DSN"))
        .expect("EHLO end");
    assert!(got[..last_ehlo].iter().all(|c| c.starts_with("250-")));
    assert_eq!(
        &got[last_ehlo + 1..],
        ["250 2.1.0", "250 2.1.5", "354 2.0.0"]
    );
    assert!(replies.contains("PIPELINING"));

    let replies = d.send(b"Subject: burst\r\n\r\nhello\r\n.\r\n");
    assert_eq!(codes(&replies), ["250 2.0.0"]);
    assert_eq!(d.stored.len(), 1);
    assert_eq!(d.stored[0].content, b"Subject: burst\r\n\r\nhello\r\n");
}

#[test]
fn pipelined_burst_split_at_every_byte_gives_the_same_replies() {
    let input: &[u8] = b"EHLO c.example\r\nMAIL FROM:<>\r\nRCPT TO:<alice@office.example>\r\n\
        DATA\r\nhi\r\n.\r\nQUIT\r\n";
    let whole = {
        let mut d = Driver::mx();
        d.send(input);
        d.transcript
    };
    let mut d = Driver::mx();
    for byte in input {
        d.send(std::slice::from_ref(byte));
    }
    assert_eq!(d.transcript, whole);
    assert_eq!(d.stored.len(), 1);
    assert!(d.closed);
}

// smtp-null-sender
#[test]
fn null_reverse_path_is_accepted() {
    let mut d = greeted_mx();
    assert_eq!(codes(&d.send(b"MAIL FROM:<>\r\n")), ["250 2.1.0"]);
    d.send(b"RCPT TO:<bob@office.example>\r\nDATA\r\nbounce\r\n.\r\n");
    assert_eq!(d.stored[0].envelope.reverse_path, ReversePath::Null);
}

#[test]
fn postmaster_without_domain_is_a_recipient_not_a_null_path() {
    let mut d = greeted_mx();
    d.send(b"MAIL FROM:<b@x.example>\r\n");
    // The test driver refuses "postmaster" (not @office.example) as relaying: what matters is
    // that the session asked about "postmaster", not about an empty address.
    assert_eq!(codes(&d.send(b"RCPT TO:<Postmaster>\r\n")), ["554 5.7.1"]);
    let mut d = greeted_mx();
    assert_eq!(codes(&d.send(b"MAIL FROM:<postmaster>\r\n")), ["553 5.1.7"]);
}

// smtp-esmtp-params
#[test]
fn size_and_body_parameters_are_accepted() {
    let mut d = greeted_mx();
    let replies = d.send(b"MAIL FROM:<b@x.example> SIZE=1000 BODY=8BITMIME\r\n");
    assert_eq!(codes(&replies), ["250 2.1.0"]);
    d.send(b"RCPT TO:<alice@office.example>\r\nDATA\r\n8bit \xc3\xa9\r\n.\r\n");
    let env = &d.stored[0].envelope;
    assert_eq!(env.declared_size, Some(1000));
    assert_eq!(env.body_type, postroom_smtp::BodyType::EightBitMime);
}

#[test]
fn declared_size_over_limit_gets_552_at_mail() {
    let mut d = greeted_mx();
    let replies = d.send(b"MAIL FROM:<b@x.example> SIZE=999999999\r\n");
    assert_eq!(codes(&replies), ["552 5.3.4"]);
    // No transaction was started.
    assert_eq!(
        codes(&d.send(b"RCPT TO:<alice@office.example>\r\n")),
        ["503 5.5.1"]
    );
}

#[test]
fn message_growing_past_limit_during_data_gets_552() {
    let mut d = Driver::new(SessionConfig {
        max_message_size: 100,
        ..Default::default()
    });
    d.send(b"EHLO c\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<bob@office.example>\r\nDATA\r\n");
    let line = [b'x'; 60];
    d.send(&line);
    d.send(b"\r\n");
    d.send(&line);
    let replies = d.send(b"\r\n.\r\n");
    assert_eq!(codes(&replies), ["552 5.3.4"]);
    assert!(d.stored.is_empty());
    // The session goes on.
    assert_eq!(codes(&d.send(b"NOOP\r\n")), ["250 2.0.0"]);
}

// smtp-dsn-orcpt-without-domain
#[test]
fn dsn_orcpt_without_domain_is_accepted() {
    let mut d = greeted_mx();
    d.send(b"MAIL FROM:<b@x.example> RET=HDRS ENVID=abc\r\n");
    let replies = d.send(b"RCPT TO:<alice@office.example> NOTIFY=FAILURE ORCPT=rfc822;alice\r\n");
    assert_eq!(codes(&replies), ["250 2.1.5"]);
    d.send(b"DATA\r\nx\r\n.\r\n");
    let rcpt = &d.stored[0].envelope.recipients[0];
    assert_eq!(rcpt.original_recipient.as_deref(), Some("alice"));
    assert!(rcpt.notify.is_some_and(|n| n.failure && !n.success));
}

// smtp-bare-lf-dot
#[test]
fn bare_lf_dot_does_not_end_data_and_default_policy_rejects_once() {
    let mut d = greeted_mx();
    d.send(b"MAIL FROM:<a@x.example>\r\nRCPT TO:<alice@office.example>\r\nDATA\r\n");
    let replies = d.send(b"hello\n.\nMAIL FROM:<x@evil.example>\r\n");
    assert_eq!(replies, "", "the bare LF dot ended the data");
    let replies = d.send(b"\r\n.\r\n");
    assert_eq!(codes(&replies), ["554 5.6.0"]);
    assert!(d.stored.is_empty(), "never two messages, here none");
}

#[test]
fn bare_lf_dot_under_normalize_policy_is_one_message() {
    let mut d = Driver::new(SessionConfig {
        bare_line_endings: BareLineEndings::Normalize,
        ..Default::default()
    });
    d.send(b"EHLO c\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<alice@office.example>\r\nDATA\r\n");
    let replies = d.send(b"hello\n.\nMAIL FROM:<x@evil.example>\r\n\r\n.\r\n");
    assert_eq!(codes(&replies), ["250 2.0.0"]);
    assert_eq!(d.stored.len(), 1);
    assert_eq!(
        d.stored[0].content,
        b"hello\r\n.\r\nMAIL FROM:<x@evil.example>\r\n\r\n"
    );
}

#[test]
fn smuggled_commands_after_bare_lf_dot_in_one_packet_are_not_executed() {
    let mut d = greeted_mx();
    d.send(b"MAIL FROM:<a@x.example>\r\nRCPT TO:<alice@office.example>\r\nDATA\r\n");
    let replies = d.send(
        b"hi\n.\nMAIL FROM:<x@evil.example>\r\nRCPT TO:<bob@office.example>\r\nDATA\r\n\
          forged\r\n.\r\n",
    );
    assert_eq!(codes(&replies), ["554 5.6.0"]);
    assert!(d.stored.is_empty());
}

// smtp-duplicate-rcpt
#[test]
fn recipient_given_three_times_is_kept_once() {
    let mut d = greeted_mx();
    d.send(b"MAIL FROM:<a@x.example>\r\n");
    let replies = d.send(
        b"RCPT TO:<bob@office.example>\r\nRCPT TO:<bob@office.example>\r\n\
          RCPT TO:<Bob@Office.Example>\r\n",
    );
    assert_eq!(codes(&replies), ["250 2.1.5", "250 2.1.5", "250 2.1.5"]);
    d.send(b"DATA\r\nTo: bob@office.example\r\nCc: bob@office.example\r\n\r\nx\r\n.\r\n");
    assert_eq!(d.stored[0].envelope.recipients.len(), 1);
}

// smtp-long-line
#[test]
fn long_line_message_is_stored_byte_for_byte() {
    let eml = include_bytes!("data/mime-long-line.eml");
    let mut d = greeted_mx();
    d.send(b"MAIL FROM:<carl@sender.example>\r\nRCPT TO:<alice@office.example>\r\nDATA\r\n");
    // Sent in 1000-byte reads, as a socket might deliver it.
    for chunk in eml.chunks(1000) {
        d.send(chunk);
    }
    assert_eq!(codes(&d.send(b".\r\n")), ["250 2.0.0"]);
    assert_eq!(d.stored[0].content, eml.as_slice());
}

#[test]
fn line_over_configured_limit_is_refused_whole() {
    let mut d = Driver::new(SessionConfig {
        max_line_length: 1000,
        ..Default::default()
    });
    d.send(b"EHLO c\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<alice@office.example>\r\nDATA\r\n");
    let line = vec![b'y'; 1001];
    d.send(&line);
    assert_eq!(codes(&d.send(b"\r\n.\r\n")), ["554 5.6.0"]);
    assert!(d.stored.is_empty());
}

#[test]
fn dot_stuffed_lines_are_unstuffed() {
    let mut d = greeted_mx();
    d.send(b"MAIL FROM:<a@x.example>\r\nRCPT TO:<alice@office.example>\r\nDATA\r\n");
    d.send(b"..hidden\r\n...\r\n.\r\n");
    assert_eq!(d.stored[0].content, b".hidden\r\n..\r\n");
}

// smtp-unknown-local-user
#[test]
fn unknown_local_user_gets_550_5_1_1_at_rcpt() {
    let mut d = greeted_mx();
    d.send(b"MAIL FROM:<a@x.example>\r\n");
    assert_eq!(
        codes(&d.send(b"RCPT TO:<nobody@office.example>\r\n")),
        ["550 5.1.1"]
    );
    assert_eq!(codes(&d.send(b"DATA\r\n")), ["554 5.5.1"]);
    assert!(d.stored.is_empty());
}

// smtp-no-open-relay
#[test]
fn relay_without_auth_is_refused_and_nothing_is_stored() {
    let mut d = greeted_mx();
    d.send(b"MAIL FROM:<a@x.example>\r\n");
    assert_eq!(
        codes(&d.send(b"RCPT TO:<x@elsewhere.example>\r\n")),
        ["554 5.7.1"]
    );
    d.send(b"DATA\r\nx\r\n.\r\n");
    assert!(d.stored.is_empty());
}

// smtp-auth-needs-tls
#[test]
fn auth_is_not_offered_and_refused_before_starttls() {
    let mut d = Driver::submission();
    let ehlo = d.send(b"EHLO c.example\r\n");
    assert!(!ehlo.contains("AUTH"), "AUTH offered in plain text: {ehlo}");
    assert!(ehlo.contains("STARTTLS"));
    let auth = postroom_smtp::auth::encode_base64(b"\0alice\0dev-password");
    let replies = d.send(format!("AUTH PLAIN {auth}\r\n").as_bytes());
    assert_eq!(codes(&replies), ["530 5.7.0"]);
    assert_eq!(
        codes(&d.send(b"MAIL FROM:<alice@office.example>\r\n")),
        ["530 5.7.0"]
    );
}

#[test]
fn after_starttls_auth_plain_is_offered_and_works() {
    let mut d = Driver::submission();
    d.send(b"EHLO c.example\r\n");
    assert_eq!(codes(&d.send(b"STARTTLS\r\n")), ["220 2.0.0"]);
    assert_eq!(d.tls_upgrades, 1);
    let ehlo = d.send(b"EHLO c.example\r\n");
    assert!(ehlo.contains("AUTH PLAIN LOGIN"));
    assert!(!ehlo.contains("STARTTLS"));
    let bad = postroom_smtp::auth::encode_base64(b"\0alice\0wrong");
    assert_eq!(
        codes(&d.send(format!("AUTH PLAIN {bad}\r\n").as_bytes())),
        ["535 5.7.8"]
    );
    let good = postroom_smtp::auth::encode_base64(b"\0alice\0dev-password");
    assert_eq!(
        codes(&d.send(format!("AUTH PLAIN {good}\r\n").as_bytes())),
        ["235 2.7.0"]
    );
    d.send(b"MAIL FROM:<alice@office.example>\r\n");
    assert_eq!(
        codes(&d.send(b"RCPT TO:<x@elsewhere.example>\r\n")),
        ["250 2.1.5"]
    );
    d.send(b"DATA\r\nhi\r\n.\r\n");
    assert_eq!(d.stored[0].envelope.authenticated.as_deref(), Some("alice"));
}

#[test]
fn auth_login_and_plain_without_initial_response_use_334_prompts() {
    let b64 = postroom_smtp::auth::encode_base64;
    let mut d = Driver::submission();
    d.send(b"EHLO c\r\nSTARTTLS\r\n");
    d.send(b"EHLO c\r\n");
    assert_eq!(d.send(b"AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6\r\n");
    assert_eq!(
        d.send(format!("{}\r\n", b64(b"alice")).as_bytes()),
        "334 UGFzc3dvcmQ6\r\n"
    );
    let replies = d.send(format!("{}\r\n", b64(b"dev-password")).as_bytes());
    assert_eq!(codes(&replies), ["235 2.7.0"]);

    let mut d = Driver::submission();
    d.send(b"EHLO c\r\nSTARTTLS\r\n");
    d.send(b"EHLO c\r\n");
    assert_eq!(d.send(b"AUTH PLAIN\r\n"), "334 \r\n");
    assert_eq!(codes(&d.send(b"*\r\n")), ["501 5.7.0"]);
}

#[test]
fn commands_pipelined_after_starttls_are_discarded() {
    let mut d = Driver::submission();
    d.send(b"EHLO c\r\n");
    let replies = d.send(b"STARTTLS\r\nMAIL FROM:<evil@x.example>\r\n");
    assert_eq!(codes(&replies), ["220 2.0.0"]);
    // After the handshake the injected MAIL is gone: EHLO is needed again.
    assert_eq!(
        codes(&d.send(b"MAIL FROM:<a@x.example>\r\n")),
        ["503 5.5.1"]
    );
}

#[test]
fn too_many_bad_commands_end_with_421() {
    let mut d = Driver::new(SessionConfig {
        max_errors: 3,
        ..Default::default()
    });
    let replies = d.send(b"FOO\r\nBAR\r\nBAZ\r\nNOOP\r\n");
    // The third bad command is still answered, then the session ends.
    assert_eq!(
        codes(&replies),
        ["500 5.5.2", "500 5.5.2", "500 5.5.2", "421 4.7.0"]
    );
    assert!(d.closed);
}

#[test]
fn too_many_recipients_get_452() {
    let mut d = Driver::new(SessionConfig {
        max_recipients: 2,
        ..Default::default()
    });
    d.send(b"EHLO c\r\nMAIL FROM:<a@x.example>\r\n");
    let replies = d.send(
        b"RCPT TO:<alice@office.example>\r\nRCPT TO:<bob@office.example>\r\n\
          RCPT TO:<carol@office.example>\r\n",
    );
    assert_eq!(codes(&replies), ["250 2.1.5", "250 2.1.5", "452 4.5.3"]);
}

#[test]
fn over_long_command_line_gets_500_and_session_continues() {
    let mut d = Driver::new(SessionConfig {
        max_command_line: 100,
        ..Default::default()
    });
    let mut long = b"NOOP ".to_vec();
    long.extend(std::iter::repeat_n(b'a', 300));
    // The reply comes as soon as the limit is passed, not when the line finally ends.
    assert_eq!(codes(&d.send(&long)), ["500 5.5.2"]);
    assert_eq!(codes(&d.send(b"aaaa\r\nNOOP\r\n")), ["250 2.0.0"]);
}

#[test]
fn timeout_answers_421_and_closes() {
    let mut d = greeted_mx();
    assert_eq!(d.session.timeout().0, postroom_smtp::Wait::Command);
    d.send(b"MAIL FROM:<a@x.example>\r\nRCPT TO:<alice@office.example>\r\nDATA\r\n");
    assert_eq!(d.session.timeout().0, postroom_smtp::Wait::Data);
    d.session.timed_out();
    d.run();
    assert!(
        d.transcript
            .ends_with("421 4.4.2 Timeout waiting for input, closing\r\n")
    );
    assert!(d.closed);
}

#[test]
fn mail_before_ehlo_and_rcpt_before_mail_are_bad_sequence() {
    let mut d = Driver::mx();
    assert_eq!(
        codes(&d.send(b"MAIL FROM:<a@x.example>\r\n")),
        ["503 5.5.1"]
    );
    d.send(b"HELO c\r\n");
    assert_eq!(
        codes(&d.send(b"RCPT TO:<alice@office.example>\r\n")),
        ["503 5.5.1"]
    );
}

#[test]
fn two_messages_in_one_session_are_independent() {
    let mut d = greeted_mx();
    d.send(b"MAIL FROM:<a@x.example>\r\nRCPT TO:<alice@office.example>\r\nDATA\r\none\r\n.\r\n");
    d.send(b"MAIL FROM:<b@x.example>\r\nRCPT TO:<bob@office.example>\r\nDATA\r\ntwo\r\n.\r\n");
    assert_eq!(d.stored.len(), 2);
    assert_eq!(d.stored[1].envelope.recipients.len(), 1);
    assert_eq!(
        d.stored[1].envelope.recipients[0].address,
        "bob@office.example"
    );
    assert_eq!(d.stored[1].content, b"two\r\n");
}
