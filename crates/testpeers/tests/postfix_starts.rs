//! The harness itself: a private Postfix starts, answers SMTP on its port and stops.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;

use postroom_testpeers::{Postfix, PostfixOptions, require};

#[test]
fn private_postfix_greets_on_its_own_port_and_stops() {
    if !require("postfix") {
        return;
    }
    let mut postfix = Postfix::start(PostfixOptions::default()).expect("postfix starts");
    let stream = TcpStream::connect(("127.0.0.1", postfix.smtp_port)).expect("connect");
    let mut greeting = String::new();
    BufReader::new(stream)
        .read_line(&mut greeting)
        .expect("greeting");
    assert!(
        greeting.starts_with("220 sender.test.example"),
        "{greeting}"
    );
    postfix.stop().expect("stops");
}
