//! POP3 over TLS: implicit TLS (POP3S, RFC 8314) and STLS (RFC 2595) against a real Dovecot
//! with a certificate from a private CA made in the test; an untrusted certificate stops the
//! fetch before the login with nothing deleted; a server without STLS is refused and never sees
//! the password (a real Dovecot without TLS, and a fake server that records every byte).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::sink::Sink;
use postroom_fetch::{Error, FetchConfig, Pop3Tls, fetch};
use postroom_testpeers::dovecot::{Dovecot, PASSWORD, USER, unrelated_ca};
use postroom_testpeers::require;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const USERS: &[&str] = &["alice@office.example", "postmaster@office.example"];

fn config(
    port: u16,
    tls: Pop3Tls,
    ca_file: Option<std::path::PathBuf>,
    mx_port: u16,
    seen: &std::path::Path,
) -> FetchConfig {
    FetchConfig {
        pop3: format!("127.0.0.1:{port}"),
        user: USER.into(),
        password: PASSWORD.into(),
        tls,
        ca_file,
        mx: format!("127.0.0.1:{mx_port}"),
        helo: "mail.office.example".into(),
        domains: vec!["office.example".into()],
        postmaster: "postmaster@office.example".into(),
        delete: true,
        seen_db: seen.to_owned(),
        timeout: Duration::from_secs(10),
    }
}

fn for_alice(dovecot: &Dovecot, name: &str, subject: &str) {
    dovecot.deliver(
        name,
        &format!(
            "Return-Path: <carol@far.example>\nX-Original-To: alice@office.example\n\
             From: carol@far.example\nTo: alice@office.example\nSubject: {subject}\n\nhello\n"
        ),
    );
}

#[tokio::test]
async fn pop3s_fetches_over_implicit_tls_with_the_certificate_checked_against_ca_file() {
    if !require("dovecot") {
        return;
    }
    let dovecot = Dovecot::start_tls();
    for_alice(&dovecot, "1.isp", "over pop3s");
    let sink = Sink::start(0, USERS).await;
    let state = tempfile::tempdir().unwrap();
    let pop3s = dovecot.pop3s_port.unwrap();

    let cfg = config(
        pop3s,
        Pop3Tls::Implicit,
        Some(dovecot.ca_file()),
        sink.port,
        &state.path().join("seen.redb"),
    );
    let report = fetch(&cfg)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", dovecot.log()));

    assert_eq!(report.delivered.len(), 1, "{report:?}");
    assert_eq!(report.deleted, 1, "{report:?}");
    assert_eq!(dovecot.count(), 0);
    let got = sink.received();
    assert_eq!(got.len(), 1);
    assert!(got[0].data.contains("Subject: over pop3s"), "{got:?}");
    assert_eq!(got[0].to, ["alice@office.example"]);
    assert_eq!(
        dovecot.logins(),
        (1, 1),
        "one login, over TLS:\n{}",
        dovecot.log()
    );
}

#[tokio::test]
async fn stls_upgrades_plain_pop3_before_the_login() {
    if !require("dovecot") {
        return;
    }
    let dovecot = Dovecot::start_tls();
    for_alice(&dovecot, "1.isp", "after stls");
    let sink = Sink::start(0, USERS).await;
    let state = tempfile::tempdir().unwrap();

    let cfg = config(
        dovecot.port,
        Pop3Tls::StartTls,
        Some(dovecot.ca_file()),
        sink.port,
        &state.path().join("seen.redb"),
    );
    let report = fetch(&cfg)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", dovecot.log()));

    assert_eq!(report.delivered.len(), 1, "{report:?}");
    assert_eq!(dovecot.count(), 0);
    assert!(sink.received()[0].data.contains("Subject: after stls"));
    assert_eq!(
        dovecot.logins(),
        (1, 1),
        "one login, over TLS:\n{}",
        dovecot.log()
    );
}

#[tokio::test]
async fn an_untrusted_certificate_stops_the_fetch_before_the_login_and_nothing_is_deleted() {
    if !require("dovecot") {
        return;
    }
    let dovecot = Dovecot::start_tls();
    for_alice(&dovecot, "1.isp", "stays at the isp");
    let sink = Sink::start(0, USERS).await;
    let state = tempfile::tempdir().unwrap();
    let wrong_ca = state.path().join("wrong-ca.pem");
    std::fs::write(&wrong_ca, unrelated_ca()).unwrap();
    let seen = state.path().join("seen.redb");

    let pop3s = dovecot.pop3s_port.unwrap();
    let cases = [
        (pop3s, Pop3Tls::Implicit, Some(wrong_ca.clone())),
        (dovecot.port, Pop3Tls::StartTls, Some(wrong_ca.clone())),
        // The Mozilla roots alone do not know the ISP's private CA either.
        (pop3s, Pop3Tls::Implicit, None),
    ];
    for (port, tls, ca_file) in cases {
        let result = fetch(&config(port, tls, ca_file.clone(), sink.port, &seen)).await;
        let Err(Error::Tls { why, .. }) = &result else {
            panic!("{tls:?} with CA {ca_file:?}: not a TLS error: {result:?}");
        };
        assert!(
            why.contains("not trusted") && why.contains("ca_file"),
            "the error says what is wrong and what to do: {why}"
        );
    }

    assert_eq!(dovecot.count(), 1, "deleted at the ISP");
    assert!(sink.received().is_empty());
    assert_eq!(dovecot.logins(), (0, 0), "logged in:\n{}", dovecot.log());
}

#[tokio::test]
async fn a_dovecot_without_stls_is_refused_and_never_logged_in_to() {
    if !require("dovecot") {
        return;
    }
    let dovecot = Dovecot::start();
    for_alice(&dovecot, "1.isp", "stays at the isp");
    let sink = Sink::start(0, USERS).await;
    let state = tempfile::tempdir().unwrap();

    let cfg = config(
        dovecot.port,
        Pop3Tls::StartTls,
        None,
        sink.port,
        &state.path().join("seen.redb"),
    );
    let result = fetch(&cfg).await;

    let Err(e @ Error::NoStartTls { .. }) = &result else {
        panic!("not refused for want of STLS: {result:?}");
    };
    let message = e.to_string();
    assert!(
        message.contains("does not offer STLS") && message.contains("tls = \"none\""),
        "{message}"
    );
    assert_eq!(dovecot.count(), 1);
    assert!(sink.received().is_empty());
    assert_eq!(dovecot.logins(), (0, 0), "logged in:\n{}", dovecot.log());
}

/// A POP3 server with an empty mailbox that answers every command with +OK (so a client that did send USER and PASS
/// would get on), except CAPA and STLS which answer as told, and keeps every byte it receives.
struct Fake {
    port: u16,
    received: Arc<Mutex<Vec<u8>>>,
}

impl Fake {
    async fn start(capa: &'static str, stls: &'static str) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&received);
        tokio::spawn(async move {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.write_all(b"+OK fake POP3 ready\r\n").await;
            let mut pending = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                keep.lock().unwrap().extend_from_slice(&buf[..n]);
                pending.extend_from_slice(&buf[..n]);
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    let command = String::from_utf8_lossy(&line).trim().to_ascii_uppercase();
                    let reply = match command.as_str() {
                        "CAPA" => capa,
                        "STLS" => stls,
                        "UIDL" => "+OK\r\n.\r\n",
                        _ => "+OK\r\n",
                    };
                    if stream.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            }
        });
        Fake { port, received }
    }

    fn received(&self) -> String {
        String::from_utf8_lossy(&self.received.lock().unwrap()).into_owned()
    }
}

async fn fetch_from_fake(fake: &Fake, tls: Pop3Tls) -> Result<postroom_fetch::FetchReport, Error> {
    let state = tempfile::tempdir().unwrap();
    let ca = state.path().join("ca.pem");
    std::fs::write(&ca, unrelated_ca()).unwrap();
    let dead_mx = postroom_testpeers::free_port();
    fetch(&config(
        fake.port,
        tls,
        Some(ca),
        dead_mx,
        &state.path().join("seen.redb"),
    ))
    .await
}

fn assert_password_never_sent(fake: &Fake) {
    let received = fake.received();
    assert!(
        !received.contains("USER") && !received.contains("PASS") && !received.contains(PASSWORD),
        "credentials sent: {received:?}"
    );
}

#[tokio::test]
async fn a_server_whose_capa_lacks_stls_is_refused_without_the_password() {
    let fake = Fake::start("+OK\r\nUSER\r\nUIDL\r\nTOP\r\n.\r\n", "+OK go ahead\r\n").await;
    let result = fetch_from_fake(&fake, Pop3Tls::StartTls).await;
    assert!(
        matches!(&result, Err(Error::NoStartTls { reply, .. }) if reply.contains("USER")),
        "{result:?}"
    );
    assert_password_never_sent(&fake);
    assert!(!fake.received().contains("STLS"), "{:?}", fake.received());
}

#[tokio::test]
async fn a_server_without_capa_that_refuses_stls_is_refused_without_the_password() {
    let fake = Fake::start("-ERR what?\r\n", "-ERR not here\r\n").await;
    let result = fetch_from_fake(&fake, Pop3Tls::StartTls).await;
    assert!(
        matches!(&result, Err(Error::NoStartTls { reply, .. }) if reply.contains("not here")),
        "{result:?}"
    );
    assert_password_never_sent(&fake);
    assert!(fake.received().contains("STLS"), "{:?}", fake.received());
}

#[tokio::test]
async fn plain_text_after_the_stls_go_ahead_is_refused_without_the_password() {
    // A man in the middle appends a line to the server's go-ahead, hoping it is read as coming
    // through TLS.
    let fake = Fake::start(
        "+OK\r\nSTLS\r\nUSER\r\n.\r\n",
        "+OK begin TLS\r\n+OK injected\r\n",
    )
    .await;
    let result = fetch_from_fake(&fake, Pop3Tls::StartTls).await;
    // Both lines come in one segment on loopback and are seen as injected (Protocol); were they
    // split, the second would break the handshake instead (Tls). Either way no login.
    assert!(
        matches!(&result, Err(Error::Protocol { .. } | Error::Tls { .. })),
        "{result:?}"
    );
    assert_password_never_sent(&fake);
}

#[tokio::test]
async fn implicit_tls_to_a_plain_server_fails_without_the_password() {
    let fake = Fake::start("+OK\r\nUSER\r\n.\r\n", "-ERR\r\n").await;
    let result = fetch_from_fake(&fake, Pop3Tls::Implicit).await;
    assert!(matches!(&result, Err(Error::Tls { .. })), "{result:?}");
    assert_password_never_sent(&fake);
}

#[tokio::test]
async fn plain_pop3_only_when_asked_for_by_name() {
    // The control case for the fakes above: with tls = "none" the same server gets the login.
    let fake = Fake::start("+OK\r\nUSER\r\n.\r\n", "-ERR\r\n").await;
    let result = fetch_from_fake(&fake, Pop3Tls::None).await;
    assert_eq!(result.ok(), Some(postroom_fetch::FetchReport::default()));
    let received = fake.received();
    assert!(
        received.contains(&format!("USER {USER}\r\n")) && received.contains("PASS "),
        "{received:?}"
    );
}
