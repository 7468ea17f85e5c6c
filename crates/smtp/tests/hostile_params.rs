//! Hostile MAIL FROM parameters found by poking a running appliance.

use postroom_smtp::{Event, Session, SessionConfig};

/// Feeds `input` to a fresh MX session as one read; returns everything it answered.
fn transcript(input: &[u8]) -> String {
    let mut session = Session::new(SessionConfig {
        hostname: "mx.office.example".into(),
        ..Default::default()
    });
    let mut out = String::new();
    let mut fed = false;
    loop {
        let event = session.poll();
        out.push_str(&String::from_utf8_lossy(session.output()));
        session.clear_output();
        match event {
            Event::NeedInput if !fed => {
                session.receive(input);
                fed = true;
            }
            Event::NeedInput | Event::Close => return out,
            other => panic!("unexpected event {other:?}"),
        }
    }
}

fn mail_reply(mail: &str) -> String {
    let out = transcript(format!("EHLO c.example\r\n{mail}\r\n").as_bytes());
    out.lines().last().unwrap_or_default().to_owned()
}

#[test]
fn size_too_long_for_a_number_is_never_accepted() {
    // smtp-proto starts over after saturating, so the first once came out as a small size and
    // got 250. Values it sees as overflowing get its 501; both refusals are right.
    for size in [
        "999999999999999999999999",
        "184467440737095516150000",
        "18446744073709551616",
        "18446744073709551615",
    ] {
        let reply = mail_reply(&format!("MAIL FROM:<b@x.example> SIZE={size}"));
        assert!(
            reply.starts_with("552 5.3.4 ") || reply.starts_with("501 5.5.4 "),
            "SIZE={size}: {reply}"
        );
    }
    let reply = mail_reply("MAIL FROM:<b@x.example> SIZE=999999999999999999999999");
    assert!(reply.starts_with("552 5.3.4 "), "{reply}");
}

#[test]
fn size_within_the_limit_and_size_like_text_in_the_address_are_still_accepted() {
    for mail in [
        "MAIL FROM:<b@x.example> SIZE=1000 BODY=8BITMIME",
        "MAIL FROM:<b@x.example> size=000000000000000000000000000000000000000000000000009",
        "MAIL FROM:<\"SIZE=99999999999999999999999\"@x.example>",
    ] {
        let reply = mail_reply(mail);
        assert!(reply.starts_with("250 "), "{mail}: {reply}");
    }
}
