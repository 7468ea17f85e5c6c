//! End-to-end with Postfix as the sending MTA: a private Postfix instance relays to Postroom's
//! MX port (with STARTTLS, as Postfix does opportunistically), and the message lands exactly
//! once in bob's Maildir.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::Server;
use postroom_testpeers::{Postfix, PostfixOptions, require, wait_for};

fn reply(reader: &mut BufReader<TcpStream>) -> String {
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

/// Hands a message to Postfix by SMTP, checking each reply.
fn submit_to_postfix(port: u16, message: &str) {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to postfix");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    assert!(reply(&mut reader).starts_with("220"));
    for (command, expect) in [
        ("EHLO test.example\r\n", "250"),
        ("MAIL FROM:<carl@sender.example>\r\n", "250"),
        ("RCPT TO:<bob@office.example>\r\n", "250"),
        ("DATA\r\n", "354"),
    ] {
        writer.write_all(command.as_bytes()).unwrap();
        let got = reply(&mut reader);
        assert!(
            got.starts_with(expect),
            "postfix answered {command:?} with {got:?}"
        );
    }
    writer.write_all(message.as_bytes()).unwrap();
    writer.write_all(b".\r\n").unwrap();
    let got = reply(&mut reader);
    assert!(got.starts_with("250"), "postfix refused the message: {got}");
    writer.write_all(b"QUIT\r\n").unwrap();
}

#[test]
fn postfix_relays_to_mx_port_and_message_lands_once_in_bobs_maildir() {
    if !require("postfix") {
        return;
    }
    let server = Server::start(|_| {});
    let postfix = Postfix::start(PostfixOptions {
        relayhost: Some(server.addresses.smtp),
        ..Default::default()
    })
    .expect("postfix starts");

    let message = "From: carl@sender.example\r\nTo: bob@office.example\r\n\
                   Message-ID: <postfix-e2e@sender.example>\r\nSubject: via postfix\r\n\r\n\
                   relayed by Postfix\r\n";
    submit_to_postfix(postfix.smtp_port, message);

    let files = server.wait_inbox("bob", 1, Duration::from_secs(90));
    assert_eq!(
        files.len(),
        1,
        "not delivered; postfix log:\n{}",
        postfix.log()
    );

    // Postfix got our 250 and forgot the message; nothing comes a second time.
    assert!(
        wait_for(Duration::from_secs(60), || postfix.queue_is_empty()),
        "{}",
        postfix.log()
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(server.inbox("bob").len(), 1, "delivered twice");
    assert!(server.inbox("alice").is_empty());

    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        text.starts_with(
            "Return-Path: <carl@sender.example>\r\nDelivered-To: bob@office.example\r\n"
        ),
        "{text}"
    );
    assert!(text.contains("Received: from sender.test.example ([127.0.0.1])\r\n\tby mx.office.example (Postroom) with ESMTPS"), "{text}");
    assert!(
        text.contains("Message-ID: <postfix-e2e@sender.example>\r\n"),
        "{text}"
    );
    assert!(text.ends_with("\r\n\r\nrelayed by Postfix\r\n"), "{text}");
    assert!(postfix.log().contains("status=sent"), "{}", postfix.log());
}
