//! The POP3 multidrop fetch against a real Dovecot as the ISP's domain mailbox, delivering to
//! a stand-in for our MX.

mod common;

use std::time::Duration;

use common::sink::Sink;
use postroom_fetch::{FetchConfig, Pop3Tls, fetch};
use postroom_testpeers::dovecot::{Dovecot, PASSWORD, USER};
use postroom_testpeers::require;

const USERS: &[&str] = &[
    "alice@office.example",
    "bob@office.example",
    "postmaster@office.example",
];

fn config(dovecot: &Dovecot, mx_port: u16, seen: &std::path::Path, delete: bool) -> FetchConfig {
    FetchConfig {
        pop3: format!("127.0.0.1:{}", dovecot.port),
        user: USER.into(),
        password: PASSWORD.into(),
        // This Dovecot speaks plain POP3 only; the TLS modes are in pop3_tls.rs.
        tls: Pop3Tls::None,
        ca_file: None,
        mx: format!("127.0.0.1:{mx_port}"),
        helo: "mail.office.example".into(),
        domains: vec!["office.example".into()],
        postmaster: "postmaster@office.example".into(),
        delete,
        seen_db: seen.to_owned(),
        timeout: Duration::from_secs(10),
    }
}

fn fill(dovecot: &Dovecot) {
    dovecot.deliver(
        "1.isp",
        "Return-Path: <carol@far.example>\nDelivered-To: office@isp.example\n\
         X-Original-To: alice@office.example\nFrom: carol@far.example\n\
         To: alice@office.example\nSubject: for alice\n\nhello alice\n.hidden line\n",
    );
    dovecot.deliver(
        "2.isp",
        "Return-Path: <dave@far.example>\nDelivered-To: office@isp.example\n\
         X-Original-To: bob@office.example\nFrom: dave@far.example\n\
         To: team@list.example\nSubject: for bob (Bcc)\n\nhello bob\n",
    );
    dovecot.deliver(
        "3.isp",
        "From: erin@far.example\nTo: Bob <bob@office.example>\nCc: alice@office.example\n\
         Subject: no envelope headers\n\nhello both\n",
    );
    dovecot.deliver(
        "4.isp",
        "Return-Path: <frank@far.example>\nX-Original-To: nobody@office.example\n\
         Subject: unroutable\n\nwho?\n",
    );
}

#[tokio::test]
async fn multidrop_splits_to_alice_and_bob_once_and_never_again() {
    if !require("dovecot") {
        return;
    }
    let dovecot = Dovecot::start();
    fill(&dovecot);
    let sink = Sink::start(0, USERS).await;
    let state = tempfile::tempdir().unwrap();
    let seen = state.path().join("mail.redb");

    // Keep the messages at the ISP: only the UIDs stop a second delivery.
    let report = fetch(&config(&dovecot, sink.port, &seen, false))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", dovecot.log()));
    assert_eq!(report.delivered.len(), 4, "{report:?}\n{}", dovecot.log());
    assert!(report.kept.is_empty(), "{report:?}");

    let got = sink.received();
    let by_subject = |s: &str| {
        got.iter()
            .find(|m| m.data.contains(&format!("Subject: {s}")))
            .unwrap()
    };
    let alice = by_subject("for alice");
    assert_eq!(alice.to, ["alice@office.example"]);
    assert_eq!(alice.from, "carol@far.example");
    assert!(
        alice.data.contains("\r\n.hidden line\r\n"),
        "dot-stuffing round trip: {:?}",
        alice.data
    );
    // Bob was only in Bcc: the envelope header finds him, To would not.
    assert_eq!(by_subject("for bob").to, ["bob@office.example"]);
    assert_eq!(
        by_subject("no envelope headers").to,
        ["bob@office.example", "alice@office.example"]
    );
    assert_eq!(by_subject("unroutable").to, ["postmaster@office.example"]);
    let to_alice = got
        .iter()
        .filter(|m| m.to.contains(&"alice@office.example".to_owned()))
        .count();
    let to_bob = got
        .iter()
        .filter(|m| m.to.contains(&"bob@office.example".to_owned()))
        .count();
    assert_eq!((to_alice, to_bob), (2, 3 - 1));

    // A second fetch brings nothing again.
    let again = fetch(&config(&dovecot, sink.port, &seen, false))
        .await
        .unwrap();
    assert!(again.delivered.is_empty(), "{again:?}");
    assert_eq!(again.already_seen, 4);
    assert_eq!(sink.received().len(), 4);
    assert_eq!(dovecot.count(), 4);

    // With deletion on, what was delivered is removed at the ISP.
    let cleanup = fetch(&config(&dovecot, sink.port, &seen, true))
        .await
        .unwrap();
    assert_eq!(cleanup.deleted, 4);
    assert_eq!(dovecot.count(), 0);
    assert_eq!(sink.received().len(), 4);
}

#[tokio::test]
async fn nothing_is_deleted_at_the_isp_while_our_mx_is_unreachable() {
    if !require("dovecot") {
        return;
    }
    let dovecot = Dovecot::start();
    fill(&dovecot);
    let state = tempfile::tempdir().unwrap();
    let seen = state.path().join("mail.redb");
    let dead_port = postroom_testpeers::free_port();

    let result = fetch(&config(&dovecot, dead_port, &seen, true)).await;
    assert!(result.is_err(), "{result:?}");
    assert_eq!(dovecot.count(), 4, "messages must stay at the ISP");

    // Once our MX is back, they all come, once.
    let sink = Sink::start(0, USERS).await;
    let report = fetch(&config(&dovecot, sink.port, &seen, true))
        .await
        .unwrap();
    assert_eq!(report.delivered.len(), 4);
    assert_eq!(dovecot.count(), 0);
}
