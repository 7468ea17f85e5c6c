//! The harness itself: a private Postfix starts, answers SMTP on its port and stops; a
//! smarthost offers STARTTLS and AUTH only after it; a configured one is down until resumed.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use postroom_testpeers::{Postfix, PostfixOptions, require};

/// The greeting, then the EHLO reply lines.
fn greeting_and_ehlo(port: u16) -> (String, Vec<String>) {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let mut greeting = String::new();
    reader.read_line(&mut greeting).expect("greeting");
    writer.write_all(b"EHLO client.example\r\n").expect("EHLO");
    let mut ehlo = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).expect("EHLO reply") == 0 {
            break;
        }
        let last = line.as_bytes().get(3) == Some(&b' ');
        ehlo.push(line.trim_end().to_owned());
        if last {
            break;
        }
    }
    let _ = writer.write_all(b"QUIT\r\n");
    (greeting, ehlo)
}

#[test]
fn private_postfix_greets_on_its_own_port_and_stops() {
    if !require("postfix") {
        return;
    }
    let mut postfix = Postfix::start(PostfixOptions::default()).expect("postfix starts");
    let (greeting, ehlo) = greeting_and_ehlo(postfix.smtp_port);
    assert!(
        greeting.starts_with("220 sender.test.example"),
        "{greeting}"
    );
    assert!(!ehlo.iter().any(|l| l.contains("STARTTLS")), "{ehlo:?}");
    postfix.stop().expect("stops");
    assert!(TcpStream::connect(("127.0.0.1", postfix.smtp_port)).is_err());
}

#[test]
fn smarthost_with_auth_offers_starttls_and_no_auth_before_it() {
    if !require("postfix") || !require("dovecot") {
        return;
    }
    let postfix = Postfix::start(PostfixOptions::smarthost().with_auth()).expect("starts");
    let (greeting, ehlo) = greeting_and_ehlo(postfix.smtp_port);
    assert!(greeting.starts_with("220 smarthost.test"), "{greeting}");
    assert!(ehlo.iter().any(|l| l.ends_with("STARTTLS")), "{ehlo:?}");
    assert!(!ehlo.iter().any(|l| l.contains("AUTH")), "{ehlo:?}");
    let ca = std::fs::read_to_string(postfix.ca_file()).expect("its certificate");
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
}

#[test]
fn configured_smarthost_is_down_until_resumed_and_comes_back_after_a_stop() {
    if !require("postfix") {
        return;
    }
    let mut postfix = Postfix::configure(PostfixOptions::smarthost()).expect("set up");
    let port = postfix.smtp_port;
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    postfix.resume().expect("starts");
    assert!(greeting_and_ehlo(port).0.starts_with("220 "));
    postfix.stop().expect("stops");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    postfix.resume().expect("starts again");
    assert!(greeting_and_ehlo(port).0.starts_with("220 "));
    assert!(postfix.delivered("bob").is_empty());
}
