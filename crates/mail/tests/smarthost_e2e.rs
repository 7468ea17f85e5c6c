//! Issue 3, end to end through the real `postroom mail` process (the built binary, started with
//! a temporary config) with a private Postfix as the ISP's smarthost (STARTTLS, AUTH through a
//! private Dovecot, virtual Maildirs for `elsewhere.example`):
//!
//! - alice submits (STARTTLS + AUTH) to an outside address; Postfix stores it byte for byte
//!   below its own Received header and ours;
//! - the smarthost refuses a recipient with 5xx: alice gets an RFC 3464 report in her Maildir;
//! - the smarthost is down: the message waits in the queue, is retried on schedule, and goes
//!   through once the smarthost is back;
//! - restarts (SIGTERM and SIGKILL) with a full queue lose nothing and send each message once;
//!   a restart in the middle of a flush sends nothing again that Postfix had already taken.

mod common;
mod smarthost;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mail_parser::{MessageParser, MimeHeaders};
use postroom_config::mail::Span;
use postroom_testpeers::message::{crlf_to_lf, strip_postfix_headers};
use postroom_testpeers::{Postfix, PostfixOptions, SASL_PASSWORD, SASL_USER, require, wait_for};
use smarthost::{Instance, message_id, submit_with_smtplib};

/// Bounds for waiting on deliveries; generous for a loaded 2-core machine.
const DELIVERY: Duration = Duration::from_secs(120);

/// True when every peer these tests need is installed (under CI a missing one fails).
fn peers() -> bool {
    ["postfix", "dovecot", "python3", "swaks"]
        .into_iter()
        .all(require)
}

/// A Postfix smarthost (not started) on a free port that relays for SASL-authenticated clients
/// only, and a `postroom mail` instance (not started) relaying through it with AUTH.
fn setup(customize: impl FnOnce(&mut postroom_config::Config)) -> (Postfix, Instance) {
    let postfix =
        Postfix::configure(PostfixOptions::smarthost().with_auth()).expect("postfix set up");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = smarthost::config(
        dir.path(),
        postfix.smtp_port,
        &postfix.ca_file(),
        Some((SASL_USER, SASL_PASSWORD)),
    );
    customize(&mut config);
    (postfix, Instance::new(dir, config))
}

/// Message `n` from alice to `to`, CRLF line ends, with a dot-leading line, a long line and
/// 8-bit text, so that transparency and 8BITMIME are exercised on the way.
fn message(n: usize, to: &str) -> Vec<u8> {
    format!(
        "From: Alice <alice@office.example>\r\nTo: {to}\r\nSubject: report {n}\r\n\
         Date: Thu, 03 Dec 2026 16:00:00 +0000\r\nMessage-ID: <e2e-{n}@office.example>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n\
         Hello,\r\n.a line that starts with a dot\r\n..two dots\r\n.\r\n{long}\r\nGr\u{fc}\u{df}e\r\n",
        long = "x".repeat(900)
    )
    .into_bytes()
}

fn to_bob(range: std::ops::Range<usize>) -> Vec<(Vec<String>, Vec<u8>)> {
    range
        .map(|n| {
            (
                vec!["bob@elsewhere.example".to_owned()],
                message(n, "bob@elsewhere.example"),
            )
        })
        .collect()
}

/// Splits Postroom's Received header (with its continuation lines, LF line ends as Postfix
/// stores them) off the front of `rest`.
fn split_our_received(rest: &[u8]) -> (String, &[u8]) {
    assert!(
        rest.starts_with(b"Received: "),
        "no Received header of ours: {}",
        String::from_utf8_lossy(rest)
    );
    let mut end = 0;
    loop {
        let line_end = rest[end..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| end + i + 1);
        end = line_end;
        if !matches!(rest.get(end), Some(b' ' | b'\t')) {
            break;
        }
    }
    (
        String::from_utf8_lossy(&rest[..end]).into_owned(),
        &rest[end..],
    )
}

/// How many copies of each Message-ID Postfix delivered to bob.
fn copies_at_postfix(postfix: &Postfix) -> BTreeMap<String, usize> {
    let mut copies = BTreeMap::new();
    for m in postfix.delivered("bob") {
        let id = message_id(&strip_postfix_headers(&m).1).unwrap_or_else(|| "(none)".into());
        *copies.entry(id).or_insert(0) += 1;
    }
    copies
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The Message-IDs the queue lists with a remote recipient still pending (read from each
/// entry's subject: "report N").
fn pending_reports(instance: &Instance) -> Vec<String> {
    let mut pending: Vec<String> = instance
        .queue()
        .entries
        .iter()
        .filter(|e| {
            e.recipients
                .iter()
                .any(|r| r.destination == "remote" && r.status == "pending")
        })
        .filter_map(|e| e.subject.clone())
        .collect();
    pending.sort();
    pending
}

/// Waits until Postfix has every one of `ids` and Postroom's queue is empty, then checks that
/// each arrived exactly once, byte for byte.
fn assert_each_delivered_once(postfix: &Postfix, instance: &Instance, n: usize) {
    let arrived = wait_for(DELIVERY, || copies_at_postfix(postfix).len() >= n);
    assert!(
        arrived,
        "only {} of {n} arrived at Postfix\npostfix log:\n{}\npostroom:\n{}",
        copies_at_postfix(postfix).len(),
        postfix.log(),
        instance.logs()
    );
    assert!(
        wait_for(DELIVERY, || instance.queue().entries.is_empty()),
        "the queue did not empty: {:?}",
        instance.queue()
    );
    // Anything sent twice would have come by now: the queue is empty, nothing is under way.
    std::thread::sleep(Duration::from_secs(3));
    let copies = copies_at_postfix(postfix);
    let expected: BTreeMap<String, usize> = (0..n)
        .map(|i| (format!("e2e-{i}@office.example"), 1))
        .collect();
    assert_eq!(copies, expected, "each message exactly once");
    for delivered in postfix.delivered("bob") {
        let (_, rest) = strip_postfix_headers(&delivered);
        let (_, original) = split_our_received(&rest);
        let id = message_id(original).expect("a Message-ID");
        let i: usize = id
            .trim_start_matches("e2e-")
            .trim_end_matches("@office.example")
            .parse()
            .expect("a number");
        assert_eq!(
            original,
            crlf_to_lf(&message(i, "bob@elsewhere.example")),
            "message {i} arrives byte for byte"
        );
    }
}

#[test]
fn submission_with_starttls_and_auth_reaches_postfix_byte_for_byte_below_our_received_header() {
    if !peers() {
        return;
    }
    let (mut postfix, mut instance) = setup(|_| {});
    postfix.resume().expect("postfix starts");
    let listeners = instance.start();

    let original = message(0, "bob@elsewhere.example");
    let (ok, out) = submit_with_smtplib(
        listeners.submission.port(),
        &[(vec!["bob@elsewhere.example".into()], original.clone())],
    );
    assert!(ok, "smtplib: {out}");
    assert!(out.contains("refused: {}"), "{out}");

    assert!(
        wait_for(DELIVERY, || postfix.delivered("bob").len() == 1),
        "not delivered\npostfix log:\n{}\npostroom:\n{}",
        postfix.log(),
        instance.logs()
    );
    let delivered = postfix.delivered("bob").remove(0);
    let (added, rest) = strip_postfix_headers(&delivered);

    // Postfix's own trace: it got the message from us, over TLS, authenticated.
    assert!(
        added
            .iter()
            .any(|l| l == "Return-Path: <alice@office.example>"),
        "{added:?}"
    );
    let theirs = added
        .iter()
        .find(|l| l.starts_with("Received:"))
        .expect("Postfix's Received header");
    assert!(
        theirs.starts_with("Received: from mx.office.example"),
        "{theirs}"
    );
    assert!(
        theirs.contains("by smarthost.test (Postfix) with ESMTPSA"),
        "{theirs}"
    );

    // Ours: alice's client, submission with TLS and AUTH, the single recipient.
    let (ours, body) = split_our_received(&rest);
    assert!(
        ours.starts_with(
            "Received: from pc1.office.example ([127.0.0.1])\n\tby mx.office.example (Postroom) \
             with ESMTPSA id "
        ),
        "{ours}"
    );
    assert!(
        ours.contains("\n\tfor <bob@elsewhere.example>;\n\t"),
        "{ours}"
    );
    assert!(
        ours.matches('\n').count() == 4 && ours.ends_with(" +0000\n"),
        "{ours}"
    );

    // The message itself, byte for byte (Postfix stores LF line ends).
    assert_eq!(
        String::from_utf8_lossy(body),
        String::from_utf8_lossy(&crlf_to_lf(&original))
    );
    assert_eq!(body, crlf_to_lf(&original).as_slice());

    assert!(
        wait_for(DELIVERY, || instance.queue().entries.is_empty()),
        "{:?}",
        instance.queue()
    );
    assert!(
        instance.inbox("alice").is_empty(),
        "no notice for a delivered message"
    );
    let status = instance.terminate();
    assert!(
        status.success(),
        "exit after SIGTERM: {status}\n{}",
        instance.logs()
    );
}

#[test]
fn smarthost_refusing_a_recipient_gives_alice_a_multipart_report_with_its_reply() {
    if !peers() {
        return;
    }
    let (mut postfix, mut instance) = setup(|_| {});
    postfix.resume().expect("postfix starts");
    let listeners = instance.start();

    let (ok, out) = postroom_testpeers::run(
        "swaks",
        &[
            "--server",
            "127.0.0.1",
            "--port",
            &listeners.submission.port().to_string(),
            "--helo",
            "pc1.office.example",
            "-tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice",
            "--auth-password",
            smarthost::PASSWORD,
            "--from",
            "alice@office.example",
            "--to",
            "refuse@elsewhere.example,carol@elsewhere.example",
            "--header",
            "Subject: for refuse and carol",
            "--header",
            "Message-ID: <refused-1@office.example>",
            "--body",
            "one of you does not exist",
        ],
        b"",
    );
    assert!(ok, "swaks: {out}");
    assert!(out.contains("235 2.7.0"), "AUTH PLAIN: {out}");

    assert!(
        wait_for(DELIVERY, || instance.inbox("alice").len() == 1),
        "no failure notice for alice\npostfix log:\n{}\npostroom:\n{}",
        postfix.log(),
        instance.logs()
    );
    assert!(
        wait_for(DELIVERY, || postfix.delivered("carol").len() == 1),
        "carol's copy did not arrive"
    );
    assert!(postfix.delivered("refuse").is_empty());

    let notice = std::fs::read(&instance.inbox("alice")[0]).expect("read the notice");
    let text = String::from_utf8_lossy(&notice).into_owned();
    assert!(
        text.starts_with("Return-Path: <>\r\nDelivered-To: alice@office.example\r\n"),
        "{text}"
    );
    let parsed = MessageParser::default()
        .parse(&notice)
        .expect("the notice parses");
    let ct = parsed.content_type().expect("a Content-Type");
    assert_eq!(
        (ct.ctype(), ct.subtype()),
        ("multipart", Some("report")),
        "{text}"
    );
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));

    let status_part = parsed
        .parts
        .iter()
        .find(|p| {
            p.content_type()
                .is_some_and(|c| c.ctype() == "message" && c.subtype() == Some("delivery-status"))
        })
        .expect("a message/delivery-status part");
    let status = String::from_utf8_lossy(status_part.contents()).into_owned();
    for field in [
        "Reporting-MTA: dns; mx.office.example",
        "Final-Recipient: rfc822; refuse@elsewhere.example",
        "Action: failed",
        "Status: 5.1.1",
        "Remote-MTA: dns; ",
        "Diagnostic-Code: smtp; 550 5.1.1",
        "refuse@elsewhere.example: no such user here",
    ] {
        assert!(status.contains(field), "{field:?} missing in:\n{status}");
    }
    assert!(
        !status.contains("carol@elsewhere.example"),
        "only the refused recipient is reported:\n{status}"
    );
    let original = parsed
        .parts
        .iter()
        .find(|p| {
            p.content_type()
                .is_some_and(|c| c.ctype() == "message" && matches!(c.subtype(), Some("rfc822")))
        })
        .expect("the original as message/rfc822");
    let original = String::from_utf8_lossy(original.contents()).into_owned();
    assert!(
        original.contains("Message-ID: <refused-1@office.example>"),
        "{original}"
    );

    assert!(
        wait_for(DELIVERY, || instance.queue().entries.is_empty()),
        "{:?}",
        instance.queue()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(instance.inbox("alice").len(), 1, "one notice, once");
    assert_eq!(postfix.delivered("carol").len(), 1);
}

#[test]
fn smarthost_down_keeps_the_message_queued_retries_on_schedule_and_delivers_when_back() {
    if !peers() {
        return;
    }
    // Retries every 2 s (the default schedule would wait 5 minutes).
    let (mut postfix, mut instance) = setup(|c| c.mail.queue.retry_schedule = vec![Span(2)]);
    let listeners = instance.start();

    let (ok, out) = submit_with_smtplib(listeners.submission.port(), &to_bob(0..1));
    assert!(ok, "smtplib: {out}");

    // Queued, pending, retried: attempts keep growing while the smarthost is away, each failure
    // recorded, and the next try is at most one pause of the configured schedule away.
    let mut seen_attempts = Vec::new();
    let retried = wait_for(DELIVERY, || {
        let listing = instance.queue();
        let [entry] = listing.entries.as_slice() else {
            panic!("one entry expected: {listing:?}");
        };
        assert_eq!(entry.recipients.len(), 1);
        assert_eq!(entry.recipients[0].address, "bob@elsewhere.example");
        assert_eq!(entry.recipients[0].status, "pending");
        if entry.attempts > 0 {
            assert!(entry.last_error.is_some(), "{entry:?}");
            assert!(
                entry.next_attempt <= now() + 2,
                "next try beyond the 2 s schedule: {entry:?}"
            );
        }
        if seen_attempts.last() != Some(&entry.attempts) {
            seen_attempts.push(entry.attempts);
        }
        entry.attempts >= 3
    });
    assert!(
        retried,
        "not retried: attempts seen {seen_attempts:?}\n{}",
        instance.logs()
    );
    let (ok, out) = instance.ctl_queue(&["list"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("bob@elsewhere.example") && out.contains("report 0"),
        "{out}"
    );
    assert!(postfix.delivered("bob").is_empty());

    // Back: the next scheduled retry delivers it, no flush needed.
    postfix.resume().expect("postfix starts");
    assert_each_delivered_once(&postfix, &instance, 1);
    let status = instance.terminate();
    assert!(status.success(), "{status}");
}

/// 30 messages wait while the smarthost is down; `postroom mail` is stopped with SIGTERM and
/// started, then killed with SIGKILL and started: the queue lists the same 30 each time, and
/// once the smarthost is up each arrives exactly once.
#[test]
fn restarts_with_a_full_queue_lose_nothing_and_deliver_each_message_once() {
    if !peers() {
        return;
    }
    let (mut postfix, mut instance) = setup(|c| c.mail.queue.retry_schedule = vec![Span(2)]);
    let listeners = instance.start();
    let (ok, out) = submit_with_smtplib(listeners.submission.port(), &to_bob(0..30));
    assert!(ok, "smtplib: {out}");
    let before = pending_reports(&instance);
    assert_eq!(before.len(), 30, "{:?}", instance.queue());

    let status = instance.terminate();
    assert!(
        status.success(),
        "exit after SIGTERM: {status}\n{}",
        instance.logs()
    );
    instance.start();
    assert_eq!(pending_reports(&instance), before, "after SIGTERM");

    // Let it try (and fail) again before the kill, so the kill may hit an attempt.
    std::thread::sleep(Duration::from_secs(3));
    instance.kill();
    instance.start();
    assert_eq!(pending_reports(&instance), before, "after SIGKILL");

    postfix.resume().expect("postfix starts");
    assert_each_delivered_once(&postfix, &instance, 30);
    let status = instance.terminate();
    assert!(status.success(), "{status}");
}

/// Queues 30 messages while the smarthost is down (tried once at arrival, then not again for an
/// hour), starts it, flushes with `postroom ctl queue flush`, and waits until Postfix has taken
/// some but not all of them. Returns the reports the queue still had pending just before.
fn queue_30_and_flush_until_half_way(postfix: &mut Postfix, instance: &mut Instance) -> usize {
    let listeners = instance.start();
    let (ok, out) = submit_with_smtplib(listeners.submission.port(), &to_bob(0..30));
    assert!(ok, "smtplib: {out}");
    assert!(
        wait_for(DELIVERY, || instance
            .queue()
            .entries
            .iter()
            .all(|e| e.attempts >= 1)),
        "the first attempts did not happen: {:?}",
        instance.queue()
    );
    assert_eq!(pending_reports(instance).len(), 30);
    postfix.resume().expect("postfix starts");
    let (ok, out) = instance.ctl_queue(&["flush"]);
    assert!(ok && out.contains("\"flushed\":true"), "{out}");
    let mut left = 30;
    let half_way = wait_for(DELIVERY, || {
        left = pending_reports(instance).len();
        left <= 25
    });
    assert!(half_way, "the flush did not get going\n{}", instance.logs());
    assert!(
        left > 0,
        "the flush ended before the restart could interrupt it; the test proves nothing"
    );
    left
}

#[test]
fn sigterm_in_the_middle_of_a_flush_sends_nothing_twice() {
    if !peers() {
        return;
    }
    let (mut postfix, mut instance) = setup(|c| {
        c.mail.queue.retry_schedule = vec![Span(3_600)];
        c.mail.queue.concurrency_per_destination = 1;
    });
    queue_30_and_flush_until_half_way(&mut postfix, &mut instance);
    let status = instance.terminate();
    assert!(
        status.success(),
        "exit after SIGTERM: {status}\n{}",
        instance.logs()
    );
    instance.start();
    let after_stop = pending_reports(&instance);
    assert!(after_stop.len() < 30, "{after_stop:?}");
    let (ok, out) = instance.ctl_queue(&["flush"]);
    assert!(ok, "{out}");
    assert_each_delivered_once(&postfix, &instance, 30);
    let status = instance.terminate();
    assert!(status.success(), "{status}");
}

#[test]
fn sigkill_in_the_middle_of_a_flush_resends_nothing_recorded_as_sent() {
    if !peers() {
        return;
    }
    let (mut postfix, mut instance) = setup(|c| {
        c.mail.queue.retry_schedule = vec![Span(3_600)];
        c.mail.queue.concurrency_per_destination = 1;
    });
    queue_30_and_flush_until_half_way(&mut postfix, &mut instance);
    // What the queue has recorded as sent before the kill (more may be recorded after this
    // look, never less).
    let pending = pending_reports(&instance);
    instance.kill();
    instance.start();
    let after = pending_reports(&instance);
    assert!(
        after.iter().all(|p| pending.contains(p)),
        "a message recorded as sent is pending again: {after:?} vs {pending:?}"
    );
    let (ok, out) = instance.ctl_queue(&["flush"]);
    assert!(ok, "{out}");

    let arrived = wait_for(DELIVERY, || copies_at_postfix(&postfix).len() >= 30);
    assert!(arrived, "lost messages:\n{}", instance.logs());
    assert!(
        wait_for(DELIVERY, || instance.queue().entries.is_empty()),
        "{:?}",
        instance.queue()
    );
    std::thread::sleep(Duration::from_secs(3));
    let copies = copies_at_postfix(&postfix);
    assert_eq!(copies.len(), 30, "{copies:?}");
    // Recorded as sent before the kill: never sent again.
    for (id, n) in &copies {
        let i: usize = id
            .trim_start_matches("e2e-")
            .trim_end_matches("@office.example")
            .parse()
            .expect("a number");
        let subject = format!("report {i}");
        if !pending.contains(&subject) {
            assert_eq!(*n, 1, "{id} was recorded as sent and came again");
        }
    }
    // One delivery was under way at most (one per destination): a kill between Postfix's 250
    // and our record of it can repeat that one message (RFC 5321 6.1: a duplicate rather than a
    // loss), never more.
    let twice: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.len() <= 1, "sent twice: {twice:?}");
    let status = instance.terminate();
    assert!(status.success(), "{status}");
}
