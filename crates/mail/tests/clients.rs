//! End-to-end: real SMTP clients (swaks, Python's smtplib, raw sockets) against the running
//! mail component on loopback.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{PASSWORD, Server, run};
use postroom_testpeers::require;

const WAIT: Duration = Duration::from_secs(20);

fn port(addr: std::net::SocketAddr) -> String {
    addr.port().to_string()
}

#[test]
fn swaks_mx_delivery_lands_once_in_bobs_maildir_with_trace_headers() {
    if !require("swaks") {
        return;
    }
    let server = Server::start(|_| {});
    let (ok, out) = run(
        "swaks",
        &[
            "--server",
            "127.0.0.1",
            "--port",
            &port(server.addresses.smtp),
            "--helo",
            "client.example",
            "--from",
            "carl@sender.example",
            "--to",
            "bob@office.example",
            "--header",
            "Subject: swaks mx",
            "--body",
            "hello bob",
        ],
        None,
    );
    assert!(ok, "swaks failed:\n{out}");
    // Local delivery is done before the 250: the file is there the moment swaks has its reply.
    let files = server.inbox("bob");
    assert_eq!(files.len(), 1, "{out}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.starts_with("Return-Path: <carl@sender.example>\r\nDelivered-To: bob@office.example\r\nReceived: from client.example ([127.0.0.1])\r\n\tby mx.office.example (Postroom) with ESMTP id "), "{text}");
    assert!(text.contains("Subject: swaks mx\r\n"));
    assert!(text.contains("\r\n\r\nhello bob\r\n"));
    assert!(server.inbox("alice").is_empty());
}

#[test]
fn swaks_starttls_auth_plain_on_submission_relays_to_outside() {
    if !require("swaks") {
        return;
    }
    let server = Server::start(|_| {});
    let (ok, out) = run(
        "swaks",
        &[
            "--server",
            "127.0.0.1",
            "--port",
            &port(server.addresses.submission),
            "-tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice",
            "--auth-password",
            PASSWORD,
            "--from",
            "alice@office.example",
            "--to",
            "friend@elsewhere.example",
        ],
        None,
    );
    assert!(ok, "swaks failed:\n{out}");
    assert!(out.contains("235 2.7.0"), "{out}");
    assert_eq!(
        server.queued_remote(),
        ["friend@elsewhere.example"],
        "{out}"
    );
}

#[test]
fn swaks_auth_login_over_implicit_tls_port() {
    if !require("swaks") {
        return;
    }
    let server = Server::start(|_| {});
    let (ok, out) = run(
        "swaks",
        &[
            "--server",
            "127.0.0.1",
            "--port",
            &port(server.addresses.submissions),
            "--tls-on-connect",
            "--auth",
            "LOGIN",
            "--auth-user",
            "alice",
            "--auth-password",
            PASSWORD,
            "--from",
            "alice@office.example",
            "--to",
            "bob@office.example",
        ],
        None,
    );
    assert!(ok, "swaks failed:\n{out}");
    assert_eq!(server.wait_inbox("bob", 1, WAIT).len(), 1);
}

#[test]
fn swaks_wrong_password_is_refused_with_535() {
    if !require("swaks") {
        return;
    }
    let server = Server::start(|_| {});
    let (ok, out) = run(
        "swaks",
        &[
            "--server",
            "127.0.0.1",
            "--port",
            &port(server.addresses.submission),
            "-tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice",
            "--auth-password",
            "wrong",
            "--to",
            "bob@office.example",
        ],
        None,
    );
    assert!(!ok);
    assert!(out.contains("535 5.7.8"), "{out}");
    assert!(server.inbox("bob").is_empty());
}

// smtp-no-open-relay, over a socket.
#[test]
fn mx_refuses_relay_for_untrusted_client_and_stores_nothing() {
    if !require("swaks") {
        return;
    }
    let server = Server::start(|_| {});
    let (ok, out) = run(
        "swaks",
        &[
            "--server",
            "127.0.0.1",
            "--port",
            &port(server.addresses.smtp),
            "--from",
            "spammer@x.example",
            "--to",
            "x@elsewhere.example",
        ],
        None,
    );
    assert!(!ok);
    assert!(out.contains("554 5.7.1"), "{out}");
    assert!(server.queue().entries.is_empty());
}

#[test]
fn trusted_lan_client_may_relay_without_auth() {
    if !require("swaks") {
        return;
    }
    let server = Server::start(|c| {
        c.mail.trusted_networks = vec!["127.0.0.0/8".parse().unwrap()];
    });
    let (ok, out) = run(
        "swaks",
        &[
            "--server",
            "127.0.0.1",
            "--port",
            &port(server.addresses.smtp),
            "--from",
            "scanner@office.example",
            "--to",
            "x@elsewhere.example",
        ],
        None,
    );
    assert!(ok, "{out}");
    assert_eq!(server.queued_remote(), ["x@elsewhere.example"]);
}

// smtp-unknown-local-user, over a socket.
#[test]
fn unknown_local_user_is_refused_at_rcpt_over_a_socket() {
    if !require("swaks") {
        return;
    }
    let server = Server::start(|_| {});
    let (ok, out) = run(
        "swaks",
        &[
            "--server",
            "127.0.0.1",
            "--port",
            &port(server.addresses.smtp),
            "--to",
            "nobody@office.example",
        ],
        None,
    );
    assert!(!ok);
    assert!(out.contains("550 5.1.1"), "{out}");
}

/// The tester's case: `bob+tag@` (RFC 5233 subaddressing) and `abuse@` (RFC 2142) were refused
/// with 550 5.1.1 at RCPT from the internet.
#[test]
fn subaddress_and_abuse_are_delivered_over_a_socket() {
    if !require("swaks") {
        return;
    }
    let server = Server::start(|_| {});
    for to in ["bob+lists@office.example", "abuse@office.example"] {
        let (ok, out) = run(
            "swaks",
            &[
                "--server",
                "127.0.0.1",
                "--port",
                &port(server.addresses.smtp),
                "--from",
                "carl@sender.example",
                "--to",
                to,
            ],
            None,
        );
        assert!(ok, "{to}: {out}");
    }
    let files = server.inbox("bob");
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    // Delivered-To keeps the address as sent, so the user can sort by its detail.
    assert!(
        text.contains("Delivered-To: bob+lists@office.example\r\n"),
        "{text}"
    );
    // abuse@ reaches the first user, as postmaster@ does.
    assert_eq!(server.inbox("alice").len(), 1);
}

const SMTPLIB_SCRIPT: &str = r#"
import smtplib, ssl, sys
host, port, mechanism, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP(host, port, timeout=30)
s.ehlo("py.example")
assert not s.has_extn("auth"), "AUTH offered before STARTTLS"
code, _ = s.docmd("AUTH", "PLAIN AGFsaWNlAGRldi1wYXNzd29yZA==")
assert code == 530, code
s.starttls(context=ctx)
s.ehlo("py.example")
assert "PLAIN" in s.esmtp_features["auth"] and "LOGIN" in s.esmtp_features["auth"]
if mechanism == "PLAIN":
    s.auth("PLAIN", lambda challenge=None: "\0alice\0" + password)
else:
    s.user, s.password = "alice", password
    s.auth("LOGIN", s.auth_login, initial_response_ok=False)
refused = s.sendmail("alice@office.example", ["bob@office.example", "Bob@office.example"],
                     "Subject: from smtplib " + mechanism + "\r\n\r\nhi\r\n")
assert refused == {}, refused
s.quit()
print("ok")
"#;

#[test]
fn python_smtplib_starttls_then_auth_plain_and_login() {
    if !require("python3") {
        return;
    }
    let server = Server::start(|_| {});
    let p = port(server.addresses.submission);
    for (n, mechanism) in ["PLAIN", "LOGIN"].into_iter().enumerate() {
        let (ok, out) = run(
            "python3",
            &["-c", SMTPLIB_SCRIPT, "127.0.0.1", &p, mechanism, PASSWORD],
            None,
        );
        assert!(ok && out.contains("ok"), "smtplib {mechanism}:\n{out}");
        // One copy per distinct recipient, also when given twice.
        assert_eq!(server.wait_inbox("bob", n + 1, WAIT).len(), n + 1);
    }
}

fn read_reply(reader: &mut BufReader<TcpStream>) -> String {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return all;
        }
        all.push_str(&line);
        if line.as_bytes().get(3) == Some(&b' ') {
            return all;
        }
    }
}

// smtp-pipelined-burst, over a socket.
#[test]
fn pipelined_burst_in_one_write_is_answered_in_order() {
    let server = Server::start(|_| {});
    let stream = TcpStream::connect(server.addresses.smtp).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    assert!(read_reply(&mut reader).starts_with("220 mx.office.example ESMTP"));
    writer
        .write_all(b"EHLO c.example\r\nMAIL FROM:<>\r\nRCPT TO:<alice@office.example>\r\nDATA\r\n")
        .unwrap();
    assert!(read_reply(&mut reader).contains("\r\n250 STARTTLS\r\n"));
    assert!(read_reply(&mut reader).starts_with("250 2.1.0"));
    assert!(read_reply(&mut reader).starts_with("250 2.1.5"));
    assert!(read_reply(&mut reader).starts_with("354"));
    writer
        .write_all(b"Subject: burst\r\n\r\nhello\r\n.\r\nQUIT\r\n")
        .unwrap();
    assert!(read_reply(&mut reader).starts_with("250 2.0.0 Queued as"));
    assert!(read_reply(&mut reader).starts_with("221"));
    assert_eq!(server.wait_inbox("alice", 1, WAIT).len(), 1);
}

// The .eml cases of shared/cases: each accepted and stored byte for byte after our headers.
#[test]
fn every_case_message_is_accepted_and_stored_byte_for_byte() {
    let server = Server::start(|_| {});
    let cases: [(&str, &[u8]); 4] = [
        (
            "mime-long-line",
            include_bytes!("../../smtp/tests/data/mime-long-line.eml"),
        ),
        (
            "mime-no-headers",
            include_bytes!("../../smtp/tests/data/mime-no-headers.eml"),
        ),
        (
            "mime-unterminated-multipart",
            include_bytes!("../../smtp/tests/data/mime-unterminated-multipart.eml"),
        ),
        (
            "mime-latin2-encoded-words",
            include_bytes!("../../smtp/tests/data/mime-latin2-encoded-words.eml"),
        ),
    ];
    for (n, (name, eml)) in cases.iter().enumerate() {
        let stream = TcpStream::connect(server.addresses.smtp).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        read_reply(&mut reader);
        writer
            .write_all(b"EHLO c\r\nMAIL FROM:<carl@sender.example>\r\nRCPT TO:<alice@office.example>\r\nDATA\r\n")
            .unwrap();
        for _ in 0..4 {
            read_reply(&mut reader);
        }
        // Dot-stuff as a client must (none of the cases has a leading dot, but be exact).
        let mut data = Vec::new();
        for line in eml.split_inclusive(|&b| b == b'\n') {
            if line.first() == Some(&b'.') {
                data.push(b'.');
            }
            data.extend_from_slice(line);
        }
        writer.write_all(&data).unwrap();
        writer.write_all(b".\r\nQUIT\r\n").unwrap();
        let reply = read_reply(&mut reader);
        assert!(reply.starts_with("250 "), "{name}: {reply}");
        let files = server.wait_inbox("alice", n + 1, WAIT);
        let newest = files
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .find(|content| content.ends_with(eml) && !content.is_empty())
            .unwrap_or_else(|| panic!("{name} not stored byte for byte"));
        // Only our trace headers are in front.
        let head = &newest[..newest.len() - eml.len()];
        let head = String::from_utf8_lossy(head);
        assert!(
            head.starts_with("Return-Path: <carl@sender.example>\r\n"),
            "{name}: {head}"
        );
        assert!(
            head.contains("Received: from c ([127.0.0.1])"),
            "{name}: {head}"
        );
    }
}

#[test]
fn connections_beyond_the_per_client_limit_get_421() {
    let server = Server::start(|c| c.mail.limits.max_connections_per_client = 2);
    let mut open = Vec::new();
    for _ in 0..2 {
        let s = TcpStream::connect(server.addresses.smtp).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut r = BufReader::new(s);
        assert!(read_reply(&mut r).starts_with("220"));
        open.push(r);
    }
    let s = TcpStream::connect(server.addresses.smtp).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut text = String::new();
    BufReader::new(s).read_to_string(&mut text).unwrap();
    assert!(text.starts_with("421 4.7.0"), "{text}");

    // A slot is given back when a connection ends.
    drop(open.pop());
    let ok = postroom_testpeers::wait_for(WAIT, || {
        let s = TcpStream::connect(server.addresses.smtp).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        read_reply(&mut BufReader::new(s)).starts_with("220")
    });
    assert!(ok);
}

#[test]
fn control_socket_answers_health_and_status() {
    let server = Server::start(|_| {});
    let client = postroom_control::Client::new(&server.socket);
    let health: postroom_control::Health =
        server.block_on(client.get_json("/health")).expect("health");
    assert!(health.ok);
    assert_eq!(health.component, "mail");
    let status: postroom_control::Status<postroom_mail::control::MailStatus> =
        server.block_on(client.get_json("/status")).expect("status");
    assert_eq!(status.component, "mail");
    let smtp = &status.detail.listeners[0];
    assert_eq!(smtp.1, server.addresses.smtp.to_string());
}

#[test]
fn idle_client_gets_421_after_the_command_timeout() {
    let server = Server::start(|c| {
        c.mail.limits.command_timeout = postroom_config::mail::Span(1);
    });
    let stream = TcpStream::connect(server.addresses.smtp).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut reader = BufReader::new(stream);
    assert!(read_reply(&mut reader).starts_with("220"));
    // Say nothing: the server ends the session with 421 (RFC 5321 section 4.5.3.2).
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    assert!(rest.starts_with("421 4.4.2"), "{rest}");
}

#[test]
fn authenticated_fax_lands_in_the_fax_spool_through_the_queue() {
    if !require("swaks") {
        return;
    }
    let server = Server::start(|_| {});
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
            "bob",
            "--auth-password",
            PASSWORD,
            "--from",
            "bob@office.example",
            "--to",
            "555-1234@fax.office.example",
            "--body",
            "fax me",
        ],
        None,
    );
    assert!(ok, "{out}");
    let fax_dir = server.data().join("spool/fax");
    let found = postroom_testpeers::wait_for(WAIT, || !common::files_in(&fax_dir).is_empty());
    assert!(found, "nothing in the fax spool");
    let files = common::files_in(&fax_dir);
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().contains("5551234")),
        "{files:?}"
    );
}

#[test]
fn reload_adds_a_user_who_can_receive_and_authenticate_at_once() {
    if !require("swaks") {
        return;
    }
    let mut server = Server::start(|_| {});
    let mx = port(server.addresses.smtp);
    let (ok, out) = run(
        "swaks",
        &[
            "--server",
            "127.0.0.1",
            "--port",
            &mx,
            "--to",
            "carol@office.example",
        ],
        None,
    );
    assert!(!ok && out.contains("550 5.1.1"), "{out}");

    server.reload(|c| {
        c.mail.users.push(postroom_config::mail::User {
            name: "carol".into(),
            password_hash: common::password_hash(),
            ..Default::default()
        });
    });
    let (ok, out) = run(
        "swaks",
        &[
            "--server",
            "127.0.0.1",
            "--port",
            &mx,
            "--to",
            "carol@office.example",
        ],
        None,
    );
    assert!(ok, "{out}");
    assert_eq!(server.wait_inbox("carol", 1, WAIT).len(), 1);
    let (ok, out) = run(
        "swaks",
        &[
            "--server",
            "127.0.0.1",
            "--port",
            &port(server.addresses.submission),
            "-tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "carol",
            "--auth-password",
            PASSWORD,
            // Her own address: submission refuses any other sender (553 5.7.1).
            "--from",
            "carol@office.example",
            "--to",
            "bob@office.example",
        ],
        None,
    );
    assert!(ok, "{out}");
}

#[test]
fn repeated_failed_auth_is_slowed_down_with_454_even_with_the_right_password() {
    if !require("swaks") {
        return;
    }
    let server = Server::start(|c| {
        c.mail.access.free_login_failures = 2;
        c.mail.access.login_delay = postroom_config::mail::Span(600);
    });
    let submission = port(server.addresses.submission);
    let attempt = |password: &str| {
        run(
            "swaks",
            &[
                "--server",
                "127.0.0.1",
                "--port",
                &submission,
                "-tls",
                "--auth",
                "PLAIN",
                "--auth-user",
                "alice",
                "--auth-password",
                password,
                "--to",
                "bob@office.example",
            ],
            None,
        )
    };
    for _ in 0..2 {
        let (ok, out) = attempt("wrong");
        assert!(!ok && out.contains("535 5.7.8"), "{out}");
    }
    let (ok, out) = attempt(PASSWORD);
    assert!(!ok && out.contains("454 4.7.0"), "{out}");
}

// smtp-bare-lf-dot, over a socket with the default policy.
#[test]
fn bare_lf_dot_smuggling_over_a_socket_is_one_refusal_and_nothing_delivered() {
    let server = Server::start(|_| {});
    let stream = TcpStream::connect(server.addresses.smtp).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    read_reply(&mut reader);
    writer
        .write_all(
            b"EHLO c\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<alice@office.example>\r\nDATA\r\n",
        )
        .unwrap();
    for _ in 0..4 {
        read_reply(&mut reader);
    }
    writer
        .write_all(
            b"hello\n.\nMAIL FROM:<x@evil.example>\r\nRCPT TO:<bob@office.example>\r\nDATA\r\n\
              smuggled\r\n\r\n.\r\nQUIT\r\n",
        )
        .unwrap();
    assert!(read_reply(&mut reader).starts_with("554 5.6.0"));
    assert!(read_reply(&mut reader).starts_with("221"));
    std::thread::sleep(Duration::from_secs(1));
    assert!(server.inbox("alice").is_empty());
    assert!(server.inbox("bob").is_empty());
    assert!(server.queue().entries.is_empty());
}

#[test]
fn open_session_gets_421_when_the_component_stops() {
    let server = Server::start(|_| {});
    let stream = TcpStream::connect(server.addresses.smtp).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    read_reply(&mut reader);
    writer.write_all(b"EHLO c\r\n").unwrap();
    read_reply(&mut reader);
    drop(server);
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    assert!(rest.starts_with("421 4.3.2"), "{rest}");
}

#[test]
fn mixed_message_is_in_the_maildir_at_once_and_its_remote_copy_in_the_queue() {
    if !require("swaks") {
        return;
    }
    let server = Server::start(|c| {
        c.mail.trusted_networks = vec!["127.0.0.0/8".parse().unwrap()];
    });
    let (ok, out) = run(
        "swaks",
        &[
            "--server",
            "127.0.0.1",
            "--port",
            &port(server.addresses.smtp),
            "--from",
            "scanner@office.example",
            "--to",
            "bob@office.example,x@elsewhere.example,Bob@office.example",
        ],
        None,
    );
    assert!(ok, "{out}");
    assert_eq!(server.inbox("bob").len(), 1);
    assert_eq!(server.queued_remote(), ["x@elsewhere.example"]);
    let listing = server.queue();
    assert_eq!(listing.entries.len(), 1);
    assert_eq!(
        listing.entries[0].recipients.len(),
        1,
        "the local copy was queued too"
    );
}
