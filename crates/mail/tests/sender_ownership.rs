//! End-to-end: sender ownership on submission with real clients (Python's smtplib, swaks).
//! After AUTH, `MAIL FROM` must be the user's own address, an alias or group that reaches
//! them, or a `send_as` entry; anything else gets 553 5.7.1 and the session goes on. Port 25
//! is unchanged.

mod common;

use std::time::Duration;

use common::{PASSWORD, Server, run};
use postroom_config::Config;
use postroom_config::mail::Alias;
use postroom_testpeers::require;

const WAIT: Duration = Duration::from_secs(20);

fn port(addr: std::net::SocketAddr) -> String {
    addr.port().to_string()
}

/// alice has a personal alias `a.smith`; the group `sales` reaches alice and bob.
fn with_aliases(config: &mut Config) {
    config.mail.aliases = vec![
        Alias {
            name: "a.smith".into(),
            members: vec!["alice".into()],
        },
        Alias {
            name: "sales".into(),
            members: vec!["alice".into(), "bob".into()],
        },
    ];
}

/// One smtplib session on the submission port: STARTTLS, AUTH PLAIN as `user`, then for each
/// sender MAIL FROM, and when that is taken RCPT TO bob and DATA. Prints one line per sender:
/// `<sender> <code> <text>` for MAIL, then `DATA <code>` when a message went.
const SUBMIT_SCRIPT: &str = r#"
import smtplib, ssl, sys
host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
senders = sys.argv[5:]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP(host, port, timeout=30)
s.ehlo("pc1.office.example")
s.starttls(context=ctx)
s.ehlo("pc1.office.example")
s.login(user, password)
for sender in senders:
    code, text = s.mail(sender)
    print(sender, code, text.decode())
    if code == 250:
        rcode, _ = s.rcpt("bob@office.example")
        assert rcode == 250, rcode
        dcode, _ = s.data("From: " + sender + "\r\nSubject: as " + sender + "\r\n\r\nhi\r\n")
        print("DATA", dcode)
    else:
        s.rset()
s.quit()
print("done")
"#;

fn submit(server: &Server, user: &str, senders: &[&str]) -> String {
    let p = port(server.addresses.submission);
    let mut args = vec!["-c", SUBMIT_SCRIPT, "127.0.0.1", &p, user, PASSWORD];
    args.extend_from_slice(senders);
    let (ok, out) = run("python3", &args, None);
    assert!(ok && out.contains("done"), "smtplib:\n{out}");
    out
}

#[test]
fn smtplib_alice_is_refused_as_bob_and_accepted_as_herself_and_her_aliases_in_one_session() {
    if !require("python3") {
        return;
    }
    let server = Server::start(with_aliases);
    let out = submit(
        &server,
        "alice",
        &[
            "bob@office.example",
            "alice@office.example",
            "a.smith@office.example",
            "sales@office.example",
            "ceo@office.example",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("bob@office.example 553 5.7.1 ")
            && lines[0].contains("not owned by user alice"),
        "{out}"
    );
    // The session goes on after the refusal: three messages, then one more refusal.
    assert_eq!(
        lines[1..8],
        [
            "alice@office.example 250 2.1.0 Sender OK",
            "DATA 250",
            "a.smith@office.example 250 2.1.0 Sender OK",
            "DATA 250",
            "sales@office.example 250 2.1.0 Sender OK",
            "DATA 250",
            "ceo@office.example 553 5.7.1 Sender address <ceo@office.example> is not owned by \
             user alice",
        ],
        "{out}"
    );
    let inbox = server.wait_inbox("bob", 3, WAIT);
    assert_eq!(inbox.len(), 3, "{out}");
    let texts: Vec<String> = inbox
        .iter()
        .map(|p| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned())
        .collect();
    assert!(!texts.iter().any(|t| t.contains("Return-Path: <bob@")));
    assert!(!texts.iter().any(|t| t.contains("Return-Path: <ceo@")));
}

#[test]
fn swaks_over_implicit_tls_as_someone_else_gets_553_5_7_1_and_nothing_is_queued() {
    if !require("swaks") {
        return;
    }
    let server = Server::start(with_aliases);
    let (ok, out) = run(
        "swaks",
        &[
            "--server",
            "127.0.0.1",
            "--port",
            &port(server.addresses.submissions),
            "--tls-on-connect",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice",
            "--auth-password",
            PASSWORD,
            "--from",
            "bob@office.example",
            "--to",
            "friend@elsewhere.example",
        ],
        None,
    );
    assert!(!ok, "swaks should fail:\n{out}");
    assert!(out.contains("235 2.7.0"), "{out}");
    assert!(out.contains("553 5.7.1"), "{out}");
    assert!(server.queued_remote().is_empty());
}

#[test]
fn mx_port_still_takes_any_sender_without_auth() {
    if !require("swaks") {
        return;
    }
    let server = Server::start(with_aliases);
    let (ok, out) = run(
        "swaks",
        &[
            "--server",
            "127.0.0.1",
            "--port",
            &port(server.addresses.smtp),
            "--from",
            "bob@office.example",
            "--to",
            "alice@office.example",
        ],
        None,
    );
    assert!(ok, "swaks failed:\n{out}");
    assert_eq!(server.wait_inbox("alice", 1, WAIT).len(), 1, "{out}");
}

#[test]
fn null_sender_follows_allow_null_sender_and_send_as_adds_addresses() {
    if !require("python3") {
        return;
    }
    let mut server = Server::start(|config| {
        config.mail.users[0].send_as = vec!["@shop.example".into(), "info".into()];
    });
    let out = submit(
        &server,
        "alice",
        &["", "orders@shop.example", "info@office.example"],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with(" 250 2.1.0"), "{out}");
    assert!(lines[2].starts_with("orders@shop.example 250"), "{out}");
    assert!(lines[4].starts_with("info@office.example 250"), "{out}");
    // bob has no send_as of his own.
    let out = submit(&server, "bob", &["orders@shop.example"]);
    assert!(out.starts_with("orders@shop.example 553 5.7.1"), "{out}");

    server.reload(|config| config.mail.submission.allow_null_sender = false);
    let out = submit(&server, "alice", &[""]);
    assert!(out.starts_with(" 553 5.7.1"), "{out}");
}

#[test]
fn sender_check_off_lets_an_authenticated_user_send_as_anyone_after_reload() {
    if !require("python3") {
        return;
    }
    let mut server = Server::start(|_| {});
    let out = submit(&server, "alice", &["bob@office.example"]);
    assert!(out.starts_with("bob@office.example 553 5.7.1"), "{out}");
    server.reload(|config| config.mail.submission.sender_check = false);
    let out = submit(&server, "alice", &["bob@office.example"]);
    assert!(out.starts_with("bob@office.example 250 2.1.0"), "{out}");
}

/// smtplib as alice with her own envelope sender and the given From: header; prints the reply
/// code of the message and then of a second, honest one in the same session.
const HEADER_SCRIPT: &str = r#"
import smtplib, ssl, sys
host, port, password, header_from = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP(host, port, timeout=30)
s.starttls(context=ctx)
s.login("alice", password)
for From in [header_from, "Alice <alice@office.example>"]:
    s.mail("alice@office.example")
    s.rcpt("bob@office.example")
    code, text = s.data("From: " + From + "\r\nSubject: header\r\n\r\nhi\r\n")
    print(code, text.decode())
s.quit()
"#;

#[test]
fn from_header_check_refuses_someone_elses_from_after_data_only_when_enabled() {
    if !require("python3") {
        return;
    }
    let mut server = Server::start(with_aliases);
    let p = port(server.addresses.submission);
    let send = |from: &str| {
        let (ok, out) = run(
            "python3",
            &["-c", HEADER_SCRIPT, "127.0.0.1", &p, PASSWORD, from],
            None,
        );
        assert!(ok, "smtplib:\n{out}");
        out
    };

    // Off by default: the envelope is hers, the header is not checked.
    let out = send("Bob <bob@office.example>");
    assert!(out.starts_with("250 "), "{out}");
    assert_eq!(server.wait_inbox("bob", 2, WAIT).len(), 2);

    server.reload(|config| config.mail.submission.from_header_check = true);
    let out = send("Bob <bob@office.example>");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], "550 5.7.1 From: header address <bob@office.example> is not owned by user alice",
        "{out}"
    );
    assert!(lines[1].starts_with("250 "), "{out}");
    let out = send("Sales <sales@office.example>");
    assert!(out.starts_with("250 "), "{out}");
    // 2 before, then the honest one after the refusal, then 2 more.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.wait_inbox("bob", 5, WAIT).len(), 5);
}
