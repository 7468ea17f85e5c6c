//! Transcript tests: the session is fed server replies and must send the right commands.

use super::*;

fn reply(code: u16, lines: &[&str]) -> Reply {
    Reply {
        code,
        lines: lines.iter().map(|l| l.to_string()).collect(),
    }
}

fn transaction(rcpts: &[&str]) -> Transaction {
    Transaction {
        reverse_path: "alice@office.example".into(),
        recipients: rcpts.iter().map(|r| r.to_string()).collect(),
        size: 1234,
        eight_bit: false,
    }
}

fn config(tls: TlsMode, auth: bool) -> SessionConfig {
    SessionConfig {
        helo_name: "gw.office.example".into(),
        tls,
        auth: auth.then(|| Credentials {
            username: "alice".into(),
            password: "s3cret".into(),
        }),
    }
}

/// Runs the session against scripted replies; returns what it sent, as text.
fn run(session: &mut Session, mut replies: Vec<Reply>) -> Vec<String> {
    replies.reverse();
    let mut sent = Vec::new();
    loop {
        match session.next_action() {
            Action::Send(bytes) => sent.push(String::from_utf8(bytes).unwrap()),
            Action::ReadReply => {
                let r = replies
                    .pop()
                    .expect("the session wants more replies than scripted");
                session.on_reply(r).unwrap();
            }
            Action::StartTls => {
                sent.push("<tls>".into());
                session.on_tls_established();
            }
            Action::SendBody => sent.push("<body>".into()),
            Action::Close => break,
        }
    }
    assert!(replies.is_empty(), "replies left over: {replies:?}");
    sent
}

const EHLO_PIPE: &[&str] = &["mx.example", "PIPELINING", "SIZE 10000", "8BITMIME"];

#[test]
fn pipelining_server_gets_mail_rcpts_and_data_in_one_write() {
    let mut s = Session::new(config(TlsMode::Never, false), transaction(&["b@x", "c@x"]));
    let sent = run(
        &mut s,
        vec![
            reply(220, &["mx ESMTP"]),
            reply(250, EHLO_PIPE),
            reply(250, &["2.1.0 ok"]),
            reply(250, &["2.1.5 ok"]),
            reply(550, &["5.1.1 <c@x>: Recipient address rejected"]),
            reply(354, &["go"]),
            reply(250, &["2.0.0 queued as ABC"]),
            reply(221, &["bye"]),
        ],
    );
    assert_eq!(
        sent,
        [
            "EHLO gw.office.example\r\n",
            "MAIL FROM:<alice@office.example> SIZE=1234\r\nRCPT TO:<b@x>\r\nRCPT TO:<c@x>\r\nDATA\r\n",
            "<body>",
            "QUIT\r\n",
        ]
    );
    let out = s.outcomes(None);
    assert!(matches!(&out[0], RecipientOutcome::Delivered(r) if r.code == 250));
    assert!(matches!(&out[1], RecipientOutcome::Failed(r) if r.one_line().contains("rejected")));
}

#[test]
fn without_pipelining_commands_go_one_by_one_and_all_refused_means_no_data() {
    let mut s = Session::new(config(TlsMode::Never, false), transaction(&["b@x", "c@x"]));
    let sent = run(
        &mut s,
        vec![
            reply(220, &["mx"]),
            reply(250, &["mx"]),
            reply(250, &["ok"]),
            reply(450, &["4.2.0 greylisted"]),
            reply(550, &["5.1.1 unknown"]),
            reply(221, &["bye"]),
        ],
    );
    assert_eq!(
        sent,
        [
            "EHLO gw.office.example\r\n",
            "MAIL FROM:<alice@office.example>\r\n",
            "RCPT TO:<b@x>\r\n",
            "RCPT TO:<c@x>\r\n",
            "QUIT\r\n",
        ]
    );
    let out = s.outcomes(None);
    assert!(matches!(&out[0], RecipientOutcome::Deferred(r) if r.code == 450));
    assert!(matches!(&out[1], RecipientOutcome::Failed(r) if r.code == 550));
}

#[test]
fn null_sender_is_sent_as_empty_angle_brackets() {
    let mut t = transaction(&["b@x"]);
    t.reverse_path.clear();
    let mut s = Session::new(config(TlsMode::Never, false), t);
    let sent = run(
        &mut s,
        vec![
            reply(220, &["mx"]),
            reply(250, &["mx"]),
            reply(250, &["ok"]),
            reply(250, &["ok"]),
            reply(354, &["go"]),
            reply(250, &["ok"]),
            reply(221, &["bye"]),
        ],
    );
    assert_eq!(sent[1], "MAIL FROM:<>\r\n");
}

#[test]
fn starttls_then_ehlo_again_then_auth_plain() {
    let mut s = Session::new(config(TlsMode::Required, true), transaction(&["b@x"]));
    let sent = run(
        &mut s,
        vec![
            reply(220, &["smarthost"]),
            reply(250, &["smarthost", "STARTTLS", "PIPELINING"]),
            reply(220, &["2.0.0 go ahead"]),
            reply(250, &["smarthost", "PIPELINING", "AUTH PLAIN LOGIN"]),
            reply(235, &["2.7.0 ok"]),
            reply(250, &["ok"]),
            reply(250, &["ok"]),
            reply(354, &["go"]),
            reply(250, &["ok"]),
            reply(221, &["bye"]),
        ],
    );
    assert_eq!(sent[1], "STARTTLS\r\n");
    assert_eq!(sent[2], "<tls>");
    assert_eq!(sent[3], "EHLO gw.office.example\r\n");
    // base64("\0alice\0s3cret")
    assert_eq!(sent[4], "AUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n");
    assert!(s.tls_active());
    assert!(matches!(
        s.outcomes(None)[0],
        RecipientOutcome::Delivered(_)
    ));
}

#[test]
fn auth_login_sends_user_then_password_in_base64() {
    let mut s = Session::new(config(TlsMode::Never, true), transaction(&["b@x"]));
    let sent = run(
        &mut s,
        vec![
            reply(220, &["relay"]),
            reply(250, &["relay", "AUTH LOGIN"]),
            reply(334, &["VXNlcm5hbWU6"]),
            reply(334, &["UGFzc3dvcmQ6"]),
            reply(235, &["ok"]),
            reply(250, &["ok"]),
            reply(250, &["ok"]),
            reply(354, &["go"]),
            reply(250, &["ok"]),
            reply(221, &["bye"]),
        ],
    );
    assert_eq!(
        sent[1..4],
        ["AUTH LOGIN\r\n", "YWxpY2U=\r\n", "czNjcmV0\r\n"]
    );
}

#[test]
fn auth_refused_defers_instead_of_bouncing() {
    let mut s = Session::new(config(TlsMode::Never, true), transaction(&["b@x"]));
    run(
        &mut s,
        vec![
            reply(220, &["relay"]),
            reply(250, &["relay", "AUTH PLAIN"]),
            reply(535, &["5.7.8 bad credentials"]),
            reply(221, &["bye"]),
        ],
    );
    assert!(matches!(&s.outcomes(None)[0], RecipientOutcome::Deferred(r) if r.code == 451));
}

#[test]
fn required_tls_without_starttls_offer_defers_and_sends_no_mail() {
    let mut s = Session::new(config(TlsMode::Required, true), transaction(&["b@x"]));
    let sent = run(
        &mut s,
        vec![
            reply(220, &["relay"]),
            reply(250, &["relay", "AUTH PLAIN"]),
            reply(221, &["bye"]),
        ],
    );
    assert_eq!(sent, ["EHLO gw.office.example\r\n", "QUIT\r\n"]);
    assert!(s.nothing_decided());
    assert!(matches!(s.outcomes(None)[0], RecipientOutcome::Deferred(_)));
}

#[test]
fn password_is_not_sent_in_clear_when_tls_is_opportunistic_but_missing() {
    let mut s = Session::new(config(TlsMode::Opportunistic, true), transaction(&["b@x"]));
    let sent = run(
        &mut s,
        vec![
            reply(220, &["relay"]),
            reply(250, &["relay", "AUTH PLAIN"]),
            reply(221, &["bye"]),
        ],
    );
    assert!(!sent.iter().any(|l| l.starts_with("AUTH")));
}

#[test]
fn message_over_the_servers_size_is_refused_before_mail() {
    let mut t = transaction(&["b@x"]);
    t.size = 20_000;
    let mut s = Session::new(config(TlsMode::Never, false), t);
    let sent = run(
        &mut s,
        vec![
            reply(220, &["mx"]),
            reply(250, EHLO_PIPE),
            reply(221, &["bye"]),
        ],
    );
    assert_eq!(sent, ["EHLO gw.office.example\r\n", "QUIT\r\n"]);
    assert!(matches!(&s.outcomes(None)[0], RecipientOutcome::Failed(r) if r.code == 552));
}

#[test]
fn ehlo_refused_falls_back_to_helo() {
    let mut s = Session::new(config(TlsMode::Opportunistic, false), transaction(&["b@x"]));
    let sent = run(
        &mut s,
        vec![
            reply(220, &["old"]),
            reply(502, &["what"]),
            reply(250, &["old"]),
            reply(250, &["ok"]),
            reply(250, &["ok"]),
            reply(354, &["go"]),
            reply(250, &["ok"]),
            reply(221, &["bye"]),
        ],
    );
    assert_eq!(sent[1], "HELO gw.office.example\r\n");
    assert!(matches!(
        s.outcomes(None)[0],
        RecipientOutcome::Delivered(_)
    ));
}

#[test]
fn eight_bit_body_is_announced_when_offered() {
    let mut t = transaction(&["b@x"]);
    t.eight_bit = true;
    let mut s = Session::new(config(TlsMode::Never, false), t);
    let sent = run(
        &mut s,
        vec![
            reply(220, &["mx"]),
            reply(250, EHLO_PIPE),
            reply(250, &["ok"]),
            reply(250, &["ok"]),
            reply(354, &["go"]),
            reply(250, &["ok"]),
            reply(221, &["bye"]),
        ],
    );
    assert!(sent[1].starts_with("MAIL FROM:<alice@office.example> SIZE=1234 BODY=8BITMIME\r\n"));
}

#[test]
fn broken_connection_after_rcpt_defers_the_undecided() {
    let mut s = Session::new(config(TlsMode::Never, false), transaction(&["b@x"]));
    for r in [
        reply(220, &["mx"]),
        reply(250, &["mx"]),
        reply(250, &["ok"]),
    ] {
        while s.next_action() != Action::ReadReply {}
        s.on_reply(r).unwrap();
    }
    let failure = Reply::local(451, "4.4.2 connection reset");
    assert!(
        matches!(&s.outcomes(Some(&failure))[0], RecipientOutcome::Deferred(r) if r == &failure)
    );
}

#[test]
fn base64_matches_rfc4648_vectors() {
    for (input, expected) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(input.as_bytes()), expected);
    }
}

#[test]
fn internationalized_address_uses_smtputf8_when_offered() {
    let mut s = Session::new(
        config(TlsMode::Never, false),
        transaction(&["jürgen@x.example"]),
    );
    let sent = run(
        &mut s,
        vec![
            reply(220, &["mx"]),
            reply(250, &["mx", "PIPELINING", "SMTPUTF8"]),
            reply(250, &["ok"]),
            reply(250, &["ok"]),
            reply(354, &["go"]),
            reply(250, &["ok"]),
            reply(221, &["bye"]),
        ],
    );
    assert!(
        sent[1].starts_with("MAIL FROM:<alice@office.example> SMTPUTF8\r\n"),
        "{sent:?}"
    );
    assert!(matches!(
        s.outcomes(None)[0],
        RecipientOutcome::Delivered(_)
    ));
}

#[test]
fn internationalized_address_without_smtputf8_bounces_before_mail() {
    let mut s = Session::new(
        config(TlsMode::Never, false),
        transaction(&["jürgen@x.example"]),
    );
    let sent = run(
        &mut s,
        vec![
            reply(220, &["mx"]),
            reply(250, &["mx"]),
            reply(221, &["bye"]),
        ],
    );
    assert_eq!(sent, ["EHLO gw.office.example\r\n", "QUIT\r\n"]);
    assert!(matches!(&s.outcomes(None)[0], RecipientOutcome::Failed(r) if r.code == 553));
}
