//! The harness itself: the private Dovecot serves its one mailbox over POP3 and stops.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use postroom_testpeers::dovecot::{Dovecot, PASSWORD, USER};
use postroom_testpeers::require;

#[test]
fn dovecot_lists_a_delivered_message_to_its_user() {
    if !require("dovecot") {
        return;
    }
    let dovecot = Dovecot::start();
    dovecot.deliver("1.isp", "Subject: hello\n\nbody\n");
    assert_eq!(dovecot.count(), 1);

    let stream = TcpStream::connect(("127.0.0.1", dovecot.port)).expect("connect");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let mut say = |command: &str| {
        if !command.is_empty() {
            writer
                .write_all(format!("{command}\r\n").as_bytes())
                .expect("write");
        }
        let mut line = String::new();
        reader.read_line(&mut line).expect("read");
        line
    };
    assert!(say("").starts_with("+OK"));
    assert!(say(&format!("USER {USER}")).starts_with("+OK"));
    assert!(
        say(&format!("PASS {PASSWORD}")).starts_with("+OK"),
        "{}",
        dovecot.log()
    );
    let stat = say("STAT");
    assert!(stat.starts_with("+OK 1 "), "{stat}");
    assert!(say("QUIT").starts_with("+OK"));
}

#[test]
fn dovecot_with_tls_offers_stls_and_listens_for_pop3s() {
    if !require("dovecot") {
        return;
    }
    let dovecot = Dovecot::start_tls();
    let pop3s = dovecot.pop3s_port.expect("a POP3S port");
    assert!(TcpStream::connect(("127.0.0.1", pop3s)).is_ok());
    let ca = std::fs::read_to_string(dovecot.ca_file()).expect("the CA");
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    assert_ne!(ca, postroom_testpeers::unrelated_ca());

    let stream = TcpStream::connect(("127.0.0.1", dovecot.port)).expect("connect");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).expect("greeting");
    writer.write_all(b"CAPA\r\n").expect("CAPA");
    let mut capabilities = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).expect("CAPA reply") == 0 || line == ".\r\n" {
            break;
        }
        capabilities.push(line.trim_end().to_owned());
    }
    assert!(capabilities.iter().any(|c| c == "STLS"), "{capabilities:?}");
    assert_eq!(dovecot.logins(), (0, 0));
}
