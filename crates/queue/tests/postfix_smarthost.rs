//! End to end against a real Postfix as the smarthost: the queue and the SMTP client are driven
//! directly (the mail component calls the same `Queue::enqueue` after DATA).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use mail_parser::{MessageParser, MimeHeaders};
use postroom_queue::Envelope;
use postroom_queue::transport::SmtpTransport;
use postroom_smtp_client::{CertCheck, Credentials, Relay, SendOptions, Timeouts, TlsMode};
use postroom_testpeers::message::{crlf_to_lf, strip_postfix_headers};
use postroom_testpeers::{Postfix, PostfixOptions, SASL_PASSWORD, SASL_USER, require};

fn smarthost(postfix: &Postfix) -> Arc<SmtpTransport> {
    smarthost_with_auth(postfix, None)
}

fn smarthost_with_auth(postfix: &Postfix, auth: Option<(&str, &str)>) -> Arc<SmtpTransport> {
    let relay = Relay::Smarthost {
        host: "127.0.0.1".into(),
        port: postfix.smtp_port,
        tls: TlsMode::Required,
        cert: CertCheck::Verify {
            extra_ca_file: Some(postfix.ca_file()),
        },
        auth: auth.map(|(u, p)| Credentials {
            username: u.into(),
            password: p.into(),
        }),
    };
    let options = SendOptions {
        helo_name: "gw.office.example".into(),
        timeouts: Timeouts {
            connect: Duration::from_secs(5),
            ..Timeouts::default()
        },
        resolver: None,
    };
    Arc::new(SmtpTransport::new(relay, options))
}

fn message(n: usize) -> Vec<u8> {
    // What the mail component queues: its Received header, then the client's message as sent,
    // with a dot-leading line, a long line and 8-bit text.
    format!(
        "Received: from pc1.office.example (pc1 [192.0.2.10])\r\n\tby gw.office.example \
         (Postroom) with ESMTPSA id {n}; Thu, 03 Dec 2026 16:00:00 +0000\r\n\
         From: Alice <alice@office.example>\r\nTo: bob@elsewhere.example\r\n\
         Subject: report {n}\r\nDate: Thu, 03 Dec 2026 16:00:00 +0000\r\n\
         Message-ID: <m{n}@office.example>\r\n\r\n\
         Hello Bob,\r\n.a line that starts with a dot\r\n..two dots\r\n{long}\r\nGrüße\r\n",
        long = "x".repeat(900)
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_message_arrives_byte_for_byte_over_starttls() {
    if !require("postfix") {
        return;
    }
    let postfix = Postfix::start(PostfixOptions::smarthost()).expect("postfix starts");
    let dir = tempfile::tempdir().unwrap();
    let h = open_queue(dir.path(), &config(60), smarthost(&postfix), None);
    let (runner, stop) = spawn_runner(&h.queue);

    let original = message(1);
    h.queue
        .enqueue(
            Envelope::new(
                "alice@office.example",
                vec![remote("bob@elsewhere.example")],
            ),
            original.clone(),
        )
        .await
        .unwrap();
    eventually("delivery at Postfix", 120, || {
        postfix.delivered("bob").len() == 1
    })
    .await;
    eventually("queue empty", 20, || h.queue.list().unwrap().is_empty()).await;

    let delivered = &postfix.delivered("bob")[0];
    let (added, rest) = strip_postfix_headers(delivered);
    assert_eq!(
        String::from_utf8_lossy(&rest),
        String::from_utf8_lossy(&crlf_to_lf(&original)),
        "the message arrives byte for byte (Postfix stores LF line ends)"
    );
    assert_eq!(rest, crlf_to_lf(&original));
    assert!(
        added
            .iter()
            .any(|l| l.starts_with("Return-Path: <alice@office.example>")),
        "{added:?}"
    );
    let received = added.iter().find(|l| l.starts_with("Received:")).unwrap();
    assert!(received.contains("gw.office.example"), "{received}");
    assert!(received.contains("ESMTPS"), "the hop used TLS: {received}");
    assert!(
        rest.starts_with(b"Received: from pc1.office.example"),
        "our Received header is kept"
    );

    let _ = stop.send(());
    runner.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smarthost_refusal_gives_the_sender_a_report_with_the_remote_reply() {
    if !require("postfix") {
        return;
    }
    let postfix = Postfix::start(PostfixOptions::smarthost()).expect("postfix starts");
    let dir = tempfile::tempdir().unwrap();
    let h = open_queue(dir.path(), &config(60), smarthost(&postfix), None);
    let (runner, stop) = spawn_runner(&h.queue);

    let env = Envelope::new(
        "alice@office.example",
        vec![
            remote("refuse@elsewhere.example"),
            remote("carol@elsewhere.example"),
        ],
    );
    h.queue.enqueue(env, message(2)).await.unwrap();
    eventually("failure notice for alice", 120, || {
        h.mailboxes.messages("alice").len() == 1
    })
    .await;
    eventually("carol's copy", 120, || {
        postfix.delivered("carol").len() == 1
    })
    .await;
    assert!(postfix.delivered("refuse").is_empty());

    let notice = &h.mailboxes.messages("alice")[0];
    let parsed = MessageParser::default()
        .parse(notice)
        .expect("notice parses");
    let ct = parsed.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    let status = parsed
        .parts
        .iter()
        .find(|p| {
            p.content_type()
                .is_some_and(|c| c.subtype() == Some("delivery-status"))
        })
        .expect("delivery-status part");
    let status = String::from_utf8_lossy(status.contents()).into_owned();
    assert!(
        status.contains("Final-Recipient: rfc822; refuse@elsewhere.example"),
        "{status}"
    );
    assert!(status.contains("Action: failed"), "{status}");
    assert!(status.contains("Status: 5.1.1"), "{status}");
    assert!(status.contains("Remote-MTA: dns; 127.0.0.1"), "{status}");
    // Postfix's own words, as it sent them at RCPT.
    assert!(
        status.contains("Diagnostic-Code: smtp; 550 5.1.1 <refuse@elsewhere.example>:")
            && status.contains("no such user here"),
        "{status}"
    );
    assert!(!status.contains("carol@elsewhere.example"));
    eventually("queue empty", 20, || h.queue.list().unwrap().is_empty()).await;

    let _ = stop.send(());
    runner.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smarthost_down_keeps_the_message_queued_until_it_is_back() {
    if !require("postfix") {
        return;
    }
    let mut postfix = Postfix::configure(PostfixOptions::smarthost()).expect("postfix set up");
    let dir = tempfile::tempdir().unwrap();
    let h = open_queue(dir.path(), &config(1), smarthost(&postfix), None);
    let (runner, stop) = spawn_runner(&h.queue);

    let id = h
        .queue
        .enqueue(
            Envelope::new(
                "alice@office.example",
                vec![remote("bob@elsewhere.example")],
            ),
            message(3),
        )
        .await
        .unwrap();
    eventually("two failed attempts", 30, || {
        h.queue.entry(id).unwrap().is_some_and(|e| e.attempts >= 2)
    })
    .await;
    let entry = h.queue.entry(id).unwrap().unwrap();
    assert!(entry.has_pending());
    assert!(
        entry.last_error.as_deref().unwrap_or("").contains("4.4.2"),
        "{:?}",
        entry.last_error
    );
    assert!(
        h.mailboxes.messages("alice").is_empty(),
        "no bounce for a temporary failure"
    );

    postfix.resume().expect("postfix starts");
    eventually("delivery once the smarthost is back", 120, || {
        postfix.delivered("bob").len() == 1
    })
    .await;
    eventually("queue empty", 20, || h.queue.list().unwrap().is_empty()).await;
    let (_, rest) = strip_postfix_headers(&postfix.delivered("bob")[0]);
    assert_eq!(
        String::from_utf8_lossy(&rest),
        String::from_utf8_lossy(&crlf_to_lf(&message(3)))
    );

    let _ = stop.send(());
    runner.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_a_full_queue_loses_nothing_and_sends_nothing_twice() {
    if !require("postfix") {
        return;
    }
    const N: usize = 12;
    let postfix = Postfix::start(PostfixOptions::smarthost()).expect("postfix starts");
    let dir = tempfile::tempdir().unwrap();
    let transport = smarthost(&postfix);

    {
        let h = open_queue(dir.path(), &config(1), transport.clone(), None);
        h.queue.hold();
        for n in 0..N {
            let env = Envelope::new(
                "alice@office.example",
                vec![remote("bob@elsewhere.example")],
            );
            h.queue.enqueue(env, message(100 + n)).await.unwrap();
        }
        assert_eq!(h.queue.list().unwrap().len(), N);
    }

    {
        // Restart with the full queue; deliver part of it, then stop in the middle.
        let h = open_queue(dir.path(), &config(1), transport.clone(), None);
        assert_eq!(
            h.queue.list().unwrap().len(),
            N,
            "nothing lost across the restart"
        );
        let (runner, stop) = spawn_runner(&h.queue);
        h.queue.flush();
        eventually("some delivered", 120, || h.queue.list().unwrap().len() < N).await;
        let _ = stop.send(());
        runner.await.unwrap();
    }

    let h = open_queue(dir.path(), &config(1), transport.clone(), None);
    let left = h.queue.list().unwrap().len();
    let sent = postfix.delivered("bob").len();
    eprintln!("after the second stop: {sent} delivered, {left} still queued");
    assert_eq!(
        left + sent,
        N,
        "every message is either delivered or still queued"
    );
    let (runner, stop) = spawn_runner(&h.queue);
    eventually("queue empty after restart", 120, || {
        h.queue.list().unwrap().is_empty()
    })
    .await;
    eventually("all delivered", 120, || postfix.delivered("bob").len() >= N).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut ids: Vec<String> = postfix
        .delivered("bob")
        .iter()
        .map(|m| {
            let text = String::from_utf8_lossy(m);
            text.lines()
                .find(|l| l.starts_with("Message-ID:"))
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), N, "nothing delivered twice: {ids:?}");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), N, "each message exactly once");

    let _ = stop.send(());
    runner.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smarthost_with_sasl_auth_relays_after_starttls_and_auth() {
    if !require("postfix") || !require("dovecot") {
        return;
    }
    let postfix = Postfix::start(PostfixOptions::smarthost().with_auth()).expect("postfix starts");
    let dir = tempfile::tempdir().unwrap();
    let transport = smarthost_with_auth(&postfix, Some((SASL_USER, SASL_PASSWORD)));
    let h = open_queue(dir.path(), &config(60), transport, None);
    let (runner, stop) = spawn_runner(&h.queue);

    let original = message(7);
    h.queue
        .enqueue(
            Envelope::new(
                "alice@office.example",
                vec![remote("bob@elsewhere.example")],
            ),
            original.clone(),
        )
        .await
        .unwrap();
    eventually("delivery at Postfix", 120, || {
        postfix.delivered("bob").len() == 1
    })
    .await;
    let (added, rest) = strip_postfix_headers(&postfix.delivered("bob")[0]);
    assert_eq!(
        String::from_utf8_lossy(&rest),
        String::from_utf8_lossy(&crlf_to_lf(&original))
    );
    let received = added.iter().find(|l| l.starts_with("Received:")).unwrap();
    // RFC 3848: ESMTPSA is ESMTP with STARTTLS and AUTH.
    assert!(received.contains("ESMTPSA"), "{received}");
    eventually("queue empty", 20, || h.queue.list().unwrap().is_empty()).await;
    let _ = stop.send(());
    runner.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smarthost_refusing_our_password_defers_instead_of_bouncing() {
    if !require("postfix") || !require("dovecot") {
        return;
    }
    let postfix = Postfix::start(PostfixOptions::smarthost().with_auth()).expect("postfix starts");
    let dir = tempfile::tempdir().unwrap();
    let transport = smarthost_with_auth(&postfix, Some((SASL_USER, "wrong")));
    let h = open_queue(dir.path(), &config(1), transport, None);
    let (runner, stop) = spawn_runner(&h.queue);

    let id = h
        .queue
        .enqueue(
            Envelope::new(
                "alice@office.example",
                vec![remote("bob@elsewhere.example")],
            ),
            message(8),
        )
        .await
        .unwrap();
    eventually("two refused attempts", 120, || {
        h.queue.entry(id).unwrap().is_some_and(|e| e.attempts >= 2)
    })
    .await;
    let entry = h.queue.entry(id).unwrap().unwrap();
    let error = entry.last_error.clone().unwrap_or_default();
    assert!(
        error.contains("535"),
        "the smarthost's refusal is kept: {error}"
    );
    assert!(entry.has_pending());
    assert!(postfix.delivered("bob").is_empty());
    assert!(
        h.mailboxes.messages("alice").is_empty(),
        "no bounce for our own password problem"
    );
    let _ = stop.send(());
    runner.await.unwrap();
}
