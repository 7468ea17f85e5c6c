//! Connection floods and slow clients against the IMAP and POP3 listeners: one connection limit
//! per client address and in total, shared by both protocols, and a short timeout before login
//! that covers a whole command line, so neither silence nor a trickle of bytes keeps a slot.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use postroom_maildir::Store;
use postroom_maildir::access::{ConnectionLimiter, LoginLimiter, StaticUsers};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Bounds every wait, with room for a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(20);

struct Servers {
    _dir: tempfile::TempDir,
    imap: SocketAddr,
    pop3: SocketAddr,
    _stop: tokio::sync::watch::Sender<bool>,
}

fn tls_config() -> Arc<rustls::ServerConfig> {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(rustls_pki_types::PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    Arc::new(config)
}

/// IMAP (143) and POP3 (110) listeners on loopback sharing one limiter.
async fn start(per_client: usize, total: usize, login_timeout: Duration) -> Servers {
    start_with_tls(per_client, total, login_timeout, false).await
}

/// As [`start`]; with `implicit_tls` the listeners are IMAPS (993) and POP3S (995).
async fn start_with_tls(
    per_client: usize,
    total: usize,
    login_timeout: Duration,
    implicit_tls: bool,
) -> Servers {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(redb::Database::create(dir.path().join("mail.redb")).unwrap());
    let store = Store::open(dir.path().join("mail"), db).unwrap();
    store.create_user("alice").unwrap();
    let auth = Arc::new(StaticUsers(vec![("alice".into(), "secret".into())]));
    let limiter = Arc::new(LoginLimiter::default());
    let connections = Arc::new(ConnectionLimiter::new(per_client, total));
    let tls = tls_config();
    let imap_ctx = Arc::new(postroom_imap::server::Context {
        store: store.clone(),
        auth: auth.clone(),
        limiter: limiter.clone(),
        limits: postroom_imap::Limits::default(),
        tls: tls.clone(),
        connections: connections.clone(),
        login_timeout,
    });
    let pop3_ctx = Arc::new(postroom_pop3::server::Context {
        store,
        auth,
        limiter,
        tls,
        connections,
        login_timeout,
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let imap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pop3 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let servers = Servers {
        _dir: dir,
        imap: imap.local_addr().unwrap(),
        pop3: pop3.local_addr().unwrap(),
        _stop: stop,
    };
    tokio::spawn(postroom_imap::server::serve(
        imap,
        implicit_tls,
        imap_ctx,
        stopped.clone(),
    ));
    tokio::spawn(postroom_pop3::server::serve(
        pop3,
        implicit_tls,
        pop3_ctx,
        stopped,
    ));
    servers
}

/// Connects from `from` (any 127.x.y.z address is loopback on Linux).
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    socket.connect(to).await.unwrap()
}

/// The first line the server sends.
async fn first_line(stream: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    tokio::time::timeout(WAIT, async {
        while !line.ends_with(b"\n") {
            match stream.read(&mut byte).await {
                Ok(1) => line.push(byte[0]),
                _ => break,
            }
        }
    })
    .await
    .expect("no line from the server");
    String::from_utf8_lossy(&line).into_owned()
}

/// Reads until the server closes; returns everything read and how long it took.
async fn until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut all = Vec::new();
    let mut buf = [0u8; 512];
    let closed = tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "still open after {limit:?}; read {:?}",
        String::from_utf8_lossy(&all)
    );
    (
        String::from_utf8_lossy(&all).into_owned(),
        started.elapsed(),
    )
}

/// The attacker's case: 300 connections from one address were all accepted by IMAP and POP3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_per_client_limit_get_bye_or_err_and_are_closed() {
    let servers = start(3, 100, Duration::from_secs(60)).await;
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut c = connect_from("127.0.0.1", servers.imap).await;
        assert!(first_line(&mut c).await.starts_with("* OK"));
        open.push(c);
    }
    let mut c = connect_from("127.0.0.1", servers.pop3).await;
    assert!(first_line(&mut c).await.starts_with("+OK"));
    open.push(c);

    // The limit counts IMAP and POP3 together.
    let mut refused = connect_from("127.0.0.1", servers.imap).await;
    let (said, _) = until_closed(&mut refused, WAIT).await;
    assert!(said.starts_with("* BYE"), "{said:?}");
    let mut refused = connect_from("127.0.0.1", servers.pop3).await;
    let (said, _) = until_closed(&mut refused, WAIT).await;
    assert!(said.starts_with("-ERR"), "{said:?}");

    // Another address is not affected, and a closed connection frees its slot.
    let mut other = connect_from("127.0.0.2", servers.imap).await;
    assert!(first_line(&mut other).await.starts_with("* OK"));
    let mut closing = open.pop().unwrap();
    closing.write_all(b"QUIT\r\n").await.unwrap();
    until_closed(&mut closing, WAIT).await;
    let started = Instant::now();
    loop {
        let mut again = connect_from("127.0.0.1", servers.pop3).await;
        if first_line(&mut again).await.starts_with("+OK") {
            break;
        }
        assert!(started.elapsed() < WAIT, "the slot was never given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The tester's case: IMAPS and POP3S wrote `* BYE` / `-ERR` in plaintext to a client over the
/// limit, which expects a TLS handshake and read it as garbage. They now close without a word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_ports_close_a_connection_over_the_limit_without_plaintext() {
    let servers = start_with_tls(1, 100, Duration::from_secs(60), true).await;

    // A client that has not started its handshake yet holds the address's only slot.
    let _holding = connect_from("127.0.0.1", servers.imap).await;
    let mut refused = connect_from("127.0.0.1", servers.imap).await;
    let (said, _) = until_closed(&mut refused, WAIT).await;
    assert_eq!(said, "", "plaintext before TLS on IMAPS");
    let mut refused = connect_from("127.0.0.1", servers.pop3).await;
    let (said, _) = until_closed(&mut refused, WAIT).await;
    assert_eq!(said, "", "plaintext before TLS on POP3S");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_total_limit_are_refused_whatever_the_address() {
    let servers = start(10, 3, Duration::from_secs(60)).await;
    let mut open = Vec::new();
    for from in ["127.0.0.1", "127.0.0.2", "127.0.0.3"] {
        let mut c = connect_from(from, servers.imap).await;
        assert!(first_line(&mut c).await.starts_with("* OK"));
        open.push(c);
    }
    let mut refused = connect_from("127.0.0.4", servers.pop3).await;
    let (said, _) = until_closed(&mut refused, WAIT).await;
    assert!(said.starts_with("-ERR"), "{said:?}");
}

/// The attacker's case: a silent connection was kept 31 minutes before login (IMAP).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_imap_client_before_login_is_dropped_after_the_login_timeout() {
    let servers = start(10, 100, Duration::from_secs(1)).await;
    let mut c = connect_from("127.0.0.1", servers.imap).await;
    assert!(first_line(&mut c).await.starts_with("* OK"));
    let (said, _) = until_closed(&mut c, WAIT).await;
    assert!(said.contains("* BYE"), "{said:?}");
}

/// The attacker's case: a silent connection was kept 10 minutes before login (POP3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_pop3_client_before_login_is_dropped_after_the_login_timeout() {
    let servers = start(10, 100, Duration::from_secs(1)).await;
    let mut c = connect_from("127.0.0.1", servers.pop3).await;
    assert!(first_line(&mut c).await.starts_with("+OK"));
    until_closed(&mut c, WAIT).await;
}

/// Sends one byte of a command every 200 ms, never finishing the line, until closed.
async fn trickle(c: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        assert!(
            started.elapsed() < WAIT,
            "a trickle of bytes kept the connection open"
        );
        if c.write_all(b"x").await.is_err() {
            return started.elapsed();
        }
        match tokio::time::timeout(Duration::from_millis(200), c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            _ => {}
        }
    }
}

/// The attacker's case: trickling a byte at a time restarted the timer on every read, so the
/// connection was kept for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_bytes_before_login_do_not_extend_the_login_timeout() {
    let servers = start(10, 100, Duration::from_secs(2)).await;
    let mut imap = connect_from("127.0.0.1", servers.imap).await;
    assert!(first_line(&mut imap).await.starts_with("* OK"));
    let mut pop3 = connect_from("127.0.0.1", servers.pop3).await;
    assert!(first_line(&mut pop3).await.starts_with("+OK"));
    let (a, b) = tokio::join!(trickle(&mut imap), trickle(&mut pop3));
    // Closed by the timeout, not by anything sooner.
    assert!(a >= Duration::from_secs(1), "{a:?}");
    assert!(b >= Duration::from_secs(1), "{b:?}");
}

/// A client that keeps answering commands is not cut off by the login timeout, which counts
/// from the last answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_timeout_counts_from_the_last_answer() {
    let servers = start(10, 100, Duration::from_secs(2)).await;
    let mut c = connect_from("127.0.0.1", servers.imap).await;
    assert!(first_line(&mut c).await.starts_with("* OK"));
    for n in 0..4 {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        c.write_all(format!("n{n} NOOP\r\n").as_bytes())
            .await
            .unwrap();
        let line = first_line(&mut c).await;
        assert!(line.starts_with(&format!("n{n} OK")), "{line:?}");
    }
}
