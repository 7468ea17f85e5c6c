//! With a permanent link there is no connect to wait for: the mail component fetches the ISP's
//! POP3 mailboxes every `[mail.on_connect] fetch_interval`, here from a real Dovecot over
//! POP3S, with no link component running at all.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::Server;
use postroom_config::link::Mode;
use postroom_config::mail::{Pop3Mailbox, Pop3Tls, Span};
use postroom_testpeers::{dovecot, require, wait_for};

/// Generous bounds for a loaded two-core machine.
const WAIT: Duration = Duration::from_secs(60);

fn for_alice(isp: &dovecot::Dovecot, name: &str, subject: &str) {
    isp.deliver(
        name,
        &format!(
            "Return-Path: <carol@far.example>\nDelivered-To: office@isp.example\n\
             X-Original-To: alice@office.example\nFrom: carol@far.example\n\
             To: alice@office.example\nSubject: {subject}\n\nhello alice\n"
        ),
    );
}

fn subjects(files: &[PathBuf]) -> Vec<String> {
    let mut subjects: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("read"))
        .map(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("Subject: ").map(str::to_owned))
                .unwrap_or_default()
        })
        .collect();
    subjects.sort();
    subjects
}

#[test]
fn permanent_link_fetches_pop3_on_its_interval_without_any_link_event() {
    if !require("dovecot") {
        return;
    }
    let isp = dovecot::Dovecot::start_tls();
    let server = Server::start(|c| {
        c.link.mode = Mode::Permanent;
        c.mail.on_connect.fetch_interval = Span(1);
        c.mail.on_connect.pop3 = vec![Pop3Mailbox {
            host: "127.0.0.1".into(),
            port: isp.pop3s_port,
            user: dovecot::USER.into(),
            password: dovecot::PASSWORD.into(),
            tls: Pop3Tls::Implicit,
            ca_file: Some(isp.ca_file()),
            ..Pop3Mailbox::default()
        }];
    });
    // No link component answers, so no link event can be what brings the mail.
    assert!(!server.config.socket("link").exists());

    // Placed in the mailbox after the start: only a fetch on the interval finds it.
    assert!(
        wait_for(WAIT, || isp.logins().0 >= 1),
        "no fetch at start:\n{}",
        isp.log()
    );
    for_alice(&isp, "1.isp", "first");
    let inbox = server.wait_inbox("alice", 1, WAIT);
    assert_eq!(subjects(&inbox), ["first"], "{}", isp.log());

    for_alice(&isp, "2.isp", "second");
    let inbox = server.wait_inbox("alice", 2, WAIT);
    assert_eq!(subjects(&inbox), ["first", "second"], "{}", isp.log());
    assert!(
        wait_for(WAIT, || isp.count() == 0),
        "deleted at the ISP once delivered"
    );

    let (logins, over_tls) = isp.logins();
    assert!(logins >= 3, "one login per fetch: {logins}");
    assert_eq!(logins, over_tls, "every login over TLS:\n{}", isp.log());
    assert!(server.inbox("bob").is_empty());
}

#[test]
fn on_demand_link_does_not_fetch_on_an_interval() {
    if !require("dovecot") {
        return;
    }
    // The control case: on demand, mailboxes are fetched only on connect, and with no link
    // component running there is none.
    let isp = dovecot::Dovecot::start_tls();
    for_alice(&isp, "1.isp", "waits for a call");
    let server = Server::start(|c| {
        c.link.mode = Mode::OnDemand;
        c.mail.on_connect.fetch_interval = Span(1);
        c.mail.on_connect.pop3 = vec![Pop3Mailbox {
            host: "127.0.0.1".into(),
            port: isp.pop3s_port,
            user: dovecot::USER.into(),
            password: dovecot::PASSWORD.into(),
            ca_file: Some(isp.ca_file()),
            ..Pop3Mailbox::default()
        }];
    });
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(isp.logins(), (0, 0), "{}", isp.log());
    assert_eq!(isp.count(), 1);
    assert!(server.inbox("alice").is_empty());
}
