//! ETRN against a real Postfix acting as the ISP's backup MX: it holds mail for office.example
//! (deferred: our MX was unreachable, and its retry backoff is an hour), fast_flush_domains
//! covers the domain, and only our ETRN makes it deliver now.

mod common;

use std::time::{Duration, Instant};

use common::sink::Sink;
use postroom_testpeers::{Postfix, PostfixOptions, free_port, require};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

async fn submit(port: u16, rcpt: &str, subject: &str) {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    let mut expect = async |r: &mut BufReader<_>, code: &str| loop {
        line.clear();
        r.read_line(&mut line).await.unwrap();
        assert!(line.starts_with(code), "wanted {code}, got {line:?}");
        if line.as_bytes().get(3) != Some(&b'-') {
            break;
        }
    };
    expect(&mut r, "220").await;
    for (cmd, code) in [
        ("EHLO far.example".to_owned(), "250"),
        ("MAIL FROM:<sender@far.example>".to_owned(), "250"),
        (format!("RCPT TO:<{rcpt}>"), "250"),
        ("DATA".to_owned(), "354"),
    ] {
        w.write_all(format!("{cmd}\r\n").as_bytes()).await.unwrap();
        expect(&mut r, code).await;
    }
    let body = format!(
        "From: sender@far.example\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\nheld at the ISP\r\n.\r\n"
    );
    w.write_all(body.as_bytes()).await.unwrap();
    expect(&mut r, "250").await;
    w.write_all(b"QUIT\r\n").await.unwrap();
}

#[tokio::test]
async fn etrn_makes_the_backup_mx_deliver_what_it_holds() {
    if !require("postfix") {
        return;
    }
    let our_mx = free_port();
    // No retries of its own within the test: only ETRN can bring the mail.
    let postfix = Postfix::start(PostfixOptions::backup_mx("office.example", our_mx)).unwrap();

    // Our MX is down (the link is down): Postfix defers the mail.
    let submitted = tokio::time::timeout(
        Duration::from_secs(60),
        submit(postfix.smtp_port, "alice@office.example", "waiting"),
    )
    .await;
    assert!(
        submitted.is_ok(),
        "Postfix did not take the message:\n{}",
        postfix.log()
    );
    let started = Instant::now();
    while !postfix.log().contains("status=deferred") {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never deferred:\n{}",
            postfix.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The link comes up: our MX listens, and nothing arrives on its own.
    let sink = Sink::start(our_mx, &["alice@office.example"]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        sink.received().is_empty(),
        "Postfix retried by itself; ETRN proves nothing"
    );

    let addr = format!("127.0.0.1:{}", postfix.smtp_port);
    let outcomes = postroom_fetch::etrn(
        &addr,
        "mail.office.example",
        &["office.example".to_owned()],
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(outcomes.len(), 1);
    assert!(outcomes[0].started(), "{:?}", outcomes[0]);

    let started = Instant::now();
    while sink.received().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not delivered:\n{}",
            postfix.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let got = sink.received();
    assert_eq!(got[0].to, ["alice@office.example"]);
    assert!(got[0].data.contains("Subject: waiting"));
}

#[tokio::test]
async fn etrn_for_a_domain_not_held_is_refused() {
    if !require("postfix") {
        return;
    }
    let postfix = Postfix::start(PostfixOptions {
        main_cf: vec!["relay_domains = office.example".into()],
        ..PostfixOptions::default()
    })
    .unwrap();
    let addr = format!("127.0.0.1:{}", postfix.smtp_port);
    let outcomes = postroom_fetch::etrn(
        &addr,
        "mail.office.example",
        &["other.example".to_owned()],
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert!(!outcomes[0].started(), "{:?}", outcomes[0]);
    assert_eq!(outcomes[0].reply.code, 459);
}
