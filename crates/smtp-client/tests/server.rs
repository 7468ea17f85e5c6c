//! The tokio driver against a small scripted SMTP server in the test: STARTTLS with a
//! self-signed certificate, AUTH PLAIN and LOGIN, PIPELINING, per-recipient refusals, and
//! MX-style delivery to a domain literal with opportunistic TLS.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use postroom_smtp_client::client::base64;
use postroom_smtp_client::{
    CertCheck, Credentials, RecipientOutcome, Relay, SendOptions, Timeouts, TlsMode, Transaction,
    send,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Clone, Copy)]
enum Mechanism {
    Plain,
    Login,
}

struct Server {
    port: u16,
    transcript: Arc<Mutex<Vec<String>>>,
    messages: Arc<Mutex<Vec<Vec<u8>>>>,
    ca_file: tempfile::NamedTempFile,
}

/// Starts a server for one connection.
async fn server(mechanism: Mechanism) -> Server {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), cert.pem()).unwrap();

    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(cert.der().to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let transcript = Arc::new(Mutex::new(Vec::new()));
    let messages = Arc::new(Mutex::new(Vec::new()));
    let (t, m) = (transcript.clone(), messages.clone());
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut plain = BufReader::new(tcp);
        plain
            .get_mut()
            .write_all(b"220 test ESMTP\r\n")
            .await
            .unwrap();
        if let Some(()) = session(&mut plain, false, mechanism, &t, &m).await {
            let tls = acceptor.accept(plain.into_inner()).await.unwrap();
            let mut tls = BufReader::new(tls);
            session(&mut tls, true, mechanism, &t, &m).await;
        }
    });
    Server {
        port,
        transcript,
        messages,
        ca_file,
    }
}

/// Serves commands until QUIT (None) or STARTTLS (Some: upgrade now).
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<S>,
    tls: bool,
    mechanism: Mechanism,
    transcript: &Mutex<Vec<String>>,
    messages: &Mutex<Vec<Vec<u8>>>,
) -> Option<()> {
    let mut login_step = 0;
    loop {
        let mut line = String::new();
        if io.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let line = line.trim_end().to_owned();
        transcript.lock().unwrap().push(line.clone());
        let upper = line.to_ascii_uppercase();
        let reply: String = if login_step == 1 {
            login_step = 2;
            assert_eq!(line, base64(b"alice"));
            "334 UGFzc3dvcmQ6\r\n".into()
        } else if login_step == 2 {
            login_step = 0;
            if line == base64(b"s3cret") {
                "235 2.7.0 ok\r\n".into()
            } else {
                "535 5.7.8 no\r\n".into()
            }
        } else if upper.starts_with("EHLO") {
            let auth = match mechanism {
                Mechanism::Plain => "PLAIN",
                Mechanism::Login => "LOGIN",
            };
            if tls {
                format!("250-test\r\n250-PIPELINING\r\n250-AUTH {auth}\r\n250 SIZE 100000\r\n")
            } else {
                "250-test\r\n250-PIPELINING\r\n250 STARTTLS\r\n".into()
            }
        } else if upper == "STARTTLS" {
            io.get_mut()
                .write_all(b"220 2.0.0 go ahead\r\n")
                .await
                .ok()?;
            return Some(());
        } else if upper.starts_with("AUTH PLAIN ") {
            if line[11..] == base64(b"\0alice\0s3cret") {
                "235 2.7.0 ok\r\n".into()
            } else {
                "535 5.7.8 no\r\n".into()
            }
        } else if upper == "AUTH LOGIN" {
            login_step = 1;
            "334 VXNlcm5hbWU6\r\n".into()
        } else if upper.starts_with("MAIL FROM:") {
            "250 2.1.0 ok\r\n".into()
        } else if upper.starts_with("RCPT TO:<REJECT") {
            "550 5.1.1 no such user\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            "250 2.1.5 ok\r\n".into()
        } else if upper == "DATA" {
            io.get_mut().write_all(b"354 go\r\n").await.ok()?;
            let mut data = Vec::new();
            loop {
                let mut l = Vec::new();
                io.read_until(b'\n', &mut l).await.ok()?;
                if l == b".\r\n" {
                    break;
                }
                data.extend_from_slice(&l);
            }
            messages.lock().unwrap().push(data);
            "250 2.0.0 queued\r\n".into()
        } else if upper == "QUIT" {
            io.get_mut().write_all(b"221 bye\r\n").await.ok()?;
            return None;
        } else {
            "500 5.5.1 what\r\n".into()
        };
        io.get_mut().write_all(reply.as_bytes()).await.ok()?;
    }
}

fn options() -> SendOptions {
    SendOptions {
        helo_name: "gw.office.example".into(),
        timeouts: Timeouts {
            connect: Duration::from_secs(5),
            ..Timeouts::default()
        },
        resolver: None,
    }
}

fn transaction(rcpts: &[&str], body: &[u8]) -> Transaction {
    Transaction {
        reverse_path: "alice@office.example".into(),
        recipients: rcpts.iter().map(|r| r.to_string()).collect(),
        size: body.len() as u64,
        eight_bit: false,
    }
}

const BODY: &[u8] = b"Subject: hi\r\n\r\n.dot line\r\nend\r\n";

fn smarthost(s: &Server, verify: bool) -> Relay {
    Relay::Smarthost {
        host: "127.0.0.1".into(),
        port: s.port,
        tls: TlsMode::Required,
        cert: if verify {
            CertCheck::Verify {
                extra_ca_file: Some(s.ca_file.path().to_owned()),
            }
        } else {
            CertCheck::Verify {
                extra_ca_file: None,
            }
        },
        auth: Some(Credentials {
            username: "alice".into(),
            password: "s3cret".into(),
        }),
    }
}

#[tokio::test]
async fn smarthost_with_starttls_and_auth_plain_takes_the_message_byte_for_byte() {
    let s = server(Mechanism::Plain).await;
    let sent = send(
        &smarthost(&s, true),
        &options(),
        "y.example",
        transaction(&["b@y.example", "reject@y.example"], BODY),
        BODY,
    )
    .await;
    assert!(
        matches!(&sent.outcomes[0], RecipientOutcome::Delivered(r) if r.code == 250),
        "{sent:?}"
    );
    assert!(matches!(&sent.outcomes[1], RecipientOutcome::Failed(r) if r.code == 550));
    assert_eq!(sent.server.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        s.messages.lock().unwrap()[0],
        b"Subject: hi\r\n\r\n..dot line\r\nend\r\n".to_vec()
    );
    let transcript = s.transcript.lock().unwrap().clone();
    let auth_at = transcript
        .iter()
        .position(|l| l.starts_with("AUTH PLAIN"))
        .unwrap();
    let tls_at = transcript.iter().position(|l| l == "STARTTLS").unwrap();
    assert!(
        tls_at < auth_at,
        "the password goes only over TLS: {transcript:?}"
    );
}

#[tokio::test]
async fn smarthost_with_auth_login() {
    let s = server(Mechanism::Login).await;
    let sent = send(
        &smarthost(&s, true),
        &options(),
        "y.example",
        transaction(&["b@y.example"], BODY),
        BODY,
    )
    .await;
    assert!(
        matches!(&sent.outcomes[0], RecipientOutcome::Delivered(_)),
        "{sent:?}"
    );
    let transcript = s.transcript.lock().unwrap().clone();
    assert!(
        transcript.contains(&"AUTH LOGIN".to_owned()),
        "{transcript:?}"
    );
}

#[tokio::test]
async fn smarthost_certificate_that_does_not_verify_defers_without_sending() {
    let s = server(Mechanism::Plain).await;
    let sent = send(
        &smarthost(&s, false),
        &options(),
        "y.example",
        transaction(&["b@y.example"], BODY),
        BODY,
    )
    .await;
    assert!(
        matches!(&sent.outcomes[0], RecipientOutcome::Deferred(r) if r.one_line().contains("TLS")),
        "{sent:?}"
    );
    assert!(s.messages.lock().unwrap().is_empty());
    assert!(
        !s.transcript
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("AUTH"))
    );
}

#[tokio::test]
async fn mx_delivery_uses_opportunistic_tls_without_checking_the_certificate() {
    let s = server(Mechanism::Plain).await;
    let relay = Relay::Mx { port: s.port };
    // A domain literal names the server directly (RFC 5321 section 4.1.3), so no DNS is needed.
    let sent = send(
        &relay,
        &options(),
        "[127.0.0.1]",
        transaction(&["b@[127.0.0.1]"], BODY),
        BODY,
    )
    .await;
    assert!(
        matches!(&sent.outcomes[0], RecipientOutcome::Delivered(_)),
        "{sent:?}"
    );
    let transcript = s.transcript.lock().unwrap().clone();
    assert!(transcript.contains(&"STARTTLS".to_owned()));
    assert!(
        !transcript.iter().any(|l| l.starts_with("AUTH")),
        "no AUTH towards an MX"
    );
}

#[tokio::test]
async fn refused_connection_defers_every_recipient() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let relay = Relay::Smarthost {
        host: "127.0.0.1".into(),
        port,
        tls: TlsMode::Required,
        cert: CertCheck::None,
        auth: None,
    };
    let sent = send(
        &relay,
        &options(),
        "y.example",
        transaction(&["a@y.example", "b@y.example"], BODY),
        BODY,
    )
    .await;
    assert_eq!(sent.outcomes.len(), 2);
    assert!(
        sent.outcomes
            .iter()
            .all(|o| matches!(o, RecipientOutcome::Deferred(r) if r.code == 451))
    );
    assert_eq!(sent.server, None);
}
