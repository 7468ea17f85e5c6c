//! The SMTP server session core (postroom-smtp), driven as the mail component drives it.
//!
//! Input: byte 0 chooses the listener settings, byte 1 seeds how the client bytes are cut into
//! reads, the rest is what the client sends. Checked, besides "never panics":
//! - every reply is a CRLF line `ddd ` or `ddd-` with a code from 200 to 599, a multi-line
//!   reply keeps its code, and 2xx/4xx/5xx replies other than the greeting and the EHLO
//!   reply carry an enhanced code of their class;
//! - the same bytes cut into different reads give the same replies and events (RFC 2920:
//!   pipelining must not depend on packet boundaries), up to a STARTTLS, which by design
//!   drops what was pipelined behind it;
//! - a message is handed over only with at least one recipient, no two recipients alike, no
//!   more than the limit, within the size limit, and with CRLF-only line endings;
//! - nothing is sent after the session closed;
//! - SASL base64 decodes what it encodes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use postroom_fuzz::{crlf_lines, cut};
use postroom_smtp::auth::{decode_base64, encode_base64};
use postroom_smtp::{BareLineEndings, EnhancedStatus, Event, Reply, Session, SessionConfig};

fuzz_target!(|input: &[u8]| {
    let [flags, seed, client @ ..] = input else {
        return;
    };
    let config = settings(*flags);

    let whole = run(&config, &[client]);
    let pieces = run(&config, &cut(client, *seed));
    check_replies(&whole.out);
    check_replies(&pieces.out);
    check_same(&whole, &pieces);

    assert_eq!(
        decode_base64(encode_base64(client).as_bytes()).as_deref(),
        Some(client)
    );
});

fn settings(flags: u8) -> SessionConfig {
    let small = flags & 0x20 != 0;
    let base = SessionConfig {
        hostname: "mx.office.example".into(),
        starttls_available: flags & 0x01 != 0,
        auth_enabled: flags & 0x02 != 0,
        auth_required: flags & 0x04 != 0,
        implicit_tls: flags & 0x08 != 0,
        bare_line_endings: if flags & 0x10 != 0 {
            BareLineEndings::Normalize
        } else {
            BareLineEndings::Reject
        },
        ..SessionConfig::default()
    };
    if !small {
        return base;
    }
    // Small limits, so that every limit is within the fuzzer's reach.
    SessionConfig {
        max_message_size: 300,
        max_recipients: 3,
        max_line_length: 60,
        max_command_line: 80,
        max_errors: 5,
        ..base
    }
}

/// What one run produced: every byte sent, and every event in order.
#[derive(Debug, Default)]
struct Log {
    out: Vec<u8>,
    events: Vec<String>,
    /// `(out.len(), events.len())` just after the first STARTTLS event.
    tls_at: Option<(usize, usize)>,
}

fn run(config: &SessionConfig, reads: &[&[u8]]) -> Log {
    let mut session = Session::new(config.clone());
    let mut log = Log::default();
    let mut stored = 0usize;
    let mut closed = drive(&mut session, config, &mut log, &mut stored);
    for read in reads {
        if closed {
            break;
        }
        session.receive(read);
        closed = drive(&mut session, config, &mut log, &mut stored);
    }
    if closed {
        // A closed session stays closed and silent.
        session.receive(b"NOOP\r\n");
        assert!(matches!(session.poll(), Event::Close));
        assert!(session.output().is_empty(), "output after close");
    } else {
        // The driver's timer: the 421 must be as well-formed as any reply.
        session.timed_out();
        log.out.extend_from_slice(session.output());
        session.clear_output();
        assert!(session.is_closed());
    }
    log
}

/// Polls until the session wants input (false) or is closed (true), answering every event as
/// the mail component would, deterministically.
fn drive(session: &mut Session, config: &SessionConfig, log: &mut Log, stored: &mut usize) -> bool {
    loop {
        let event = session.poll();
        log.out.extend_from_slice(session.output());
        session.clear_output();
        log.events.push(format!("{event:?}"));
        match event {
            Event::NeedInput => return false,
            Event::Close => return true,
            Event::StartTls => {
                if log.tls_at.is_none() {
                    log.tls_at = Some((log.out.len(), log.events.len()));
                }
                assert!(config.starttls_available && !session.is_tls());
                session.tls_started();
            }
            Event::Authenticate(credentials) => {
                assert!(config.auth_enabled && session.is_tls());
                let good =
                    credentials.username == "alice" && credentials.password == "dev-password";
                session.auth_result(good.then(|| credentials.username.clone()));
            }
            Event::CheckRecipient { address, envelope } => {
                let lower = address.to_ascii_lowercase();
                let verdict = if lower.starts_with("nobody@") {
                    Err(Reply::new(550, EnhancedStatus(5, 1, 1), "No such user"))
                } else if lower.ends_with("@office.example") || envelope.authenticated.is_some() {
                    Ok(())
                } else {
                    Err(Reply::new(
                        554,
                        EnhancedStatus(5, 7, 1),
                        "Relay access denied",
                    ))
                };
                session.recipient_result(verdict);
            }
            Event::Message(message) => {
                check_message(&message, config);
                *stored += 1;
                session.message_result(Ok(format!("Q{stored}")), Some(message.content));
            }
        }
    }
}

fn check_message(message: &postroom_smtp::Message, config: &SessionConfig) {
    let recipients = &message.envelope.recipients;
    assert!(!recipients.is_empty(), "message without recipients");
    assert!(
        recipients.len() <= config.max_recipients,
        "too many recipients"
    );
    for (i, r) in recipients.iter().enumerate() {
        assert!(
            !recipients[..i]
                .iter()
                .any(|e| e.address.eq_ignore_ascii_case(&r.address)),
            "recipient {} twice",
            r.address
        );
    }
    let content = &message.content;
    assert!(
        content.len() <= config.max_message_size,
        "message over the size limit"
    );
    for (i, &b) in content.iter().enumerate() {
        match b {
            b'\r' => assert_eq!(content.get(i + 1), Some(&b'\n'), "bare CR stored"),
            b'\n' => assert!(i > 0 && content[i - 1] == b'\r', "bare LF stored"),
            _ => {}
        }
    }
    if !content.is_empty() {
        assert!(
            content.ends_with(b"\r\n"),
            "stored message does not end with CRLF"
        );
    }
}

fn check_replies(out: &[u8]) {
    let mut open: Option<&[u8]> = None;
    for line in crlf_lines(out) {
        let text = String::from_utf8_lossy(line);
        assert!(line.len() >= 4, "short reply line {text:?}");
        let code = &line[..3];
        assert!(
            code.iter().all(u8::is_ascii_digit),
            "no reply code in {text:?}"
        );
        assert!(
            (b'2'..=b'5').contains(&code[0]),
            "reply code out of range in {text:?}"
        );
        if let Some(expected) = open {
            assert_eq!(
                code, expected,
                "multi-line reply changed its code: {text:?}"
            );
        }
        open = match line[3] {
            b'-' => Some(code),
            b' ' => None,
            _ => panic!("no space or hyphen after the code in {text:?}"),
        };
        if code[0] != b'3' {
            // RFC 2034 section 3: every reply but the greeting and the EHLO/HELO reply carries
            // an enhanced code, and RFC 3463 section 2: its class is that of the reply.
            match enhanced_class(&line[4..]) {
                Some(class) => {
                    assert_eq!(class, code[0], "enhanced code of another class: {text:?}")
                }
                None => assert!(
                    code == b"220" || code == b"250",
                    "no enhanced code in {text:?}"
                ),
            }
        }
    }
    assert!(open.is_none(), "multi-line reply without its last line");
}

/// The class digit of an enhanced status code `c.sss.ddd` starting `text`, if there is one.
fn enhanced_class(text: &[u8]) -> Option<u8> {
    let code = text.split(|&b| b == b' ').next()?;
    let mut parts = code.split(|&b| b == b'.');
    let class = parts.next()?;
    let valid =
        |p: &[u8], max: usize| (1..=max).contains(&p.len()) && p.iter().all(u8::is_ascii_digit);
    let ok = class.len() == 1
        && valid(class, 1)
        && parts.next().is_some_and(|p| valid(p, 3))
        && parts.next().is_some_and(|p| valid(p, 3))
        && parts.next().is_none();
    ok.then_some(class[0])
}

fn check_same(whole: &Log, pieces: &Log) {
    let (out_a, events_a, out_b, events_b) = match (whole.tls_at, pieces.tls_at) {
        (None, None) => (
            &whole.out[..],
            &whole.events[..],
            &pieces.out[..],
            &pieces.events[..],
        ),
        (Some((oa, ea)), Some((ob, eb))) => (
            &whole.out[..oa],
            &whole.events[..ea],
            &pieces.out[..ob],
            &pieces.events[..eb],
        ),
        _ => panic!("STARTTLS seen in one run only"),
    };
    // Reads only change where NeedInput falls; everything else must be the same.
    let not_waiting = |events: &[String]| -> Vec<String> {
        events
            .iter()
            .filter(|e| *e != "NeedInput")
            .cloned()
            .collect()
    };
    assert_eq!(
        String::from_utf8_lossy(out_a),
        String::from_utf8_lossy(out_b),
        "replies depend on how the input was cut"
    );
    assert_eq!(
        not_waiting(events_a),
        not_waiting(events_b),
        "events depend on the cut"
    );
}
