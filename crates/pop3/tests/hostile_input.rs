//! Hostile POP3 input found by poking a running appliance: each must get an `-ERR`, never a
//! panic. (Tests build with overflow checks, as the dev binary does.)

use std::net::IpAddr;
use std::sync::Arc;

use postroom_maildir::Store;
use postroom_maildir::access::{LoginLimiter, StaticUsers};
use postroom_pop3::{Action, Session};

fn setup() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(redb::Database::create(dir.path().join("mail.redb")).unwrap());
    let store = Store::open(dir.path().join("mail"), db).unwrap();
    store.create_user("alice").unwrap();
    store
        .deliver("alice", None, &mut &b"Subject: 1\r\n\r\none\r\n"[..], None)
        .unwrap();
    (dir, store)
}

fn logged_in(store: &Store) -> Session {
    let users = StaticUsers(vec![("alice".into(), "secret".into())]);
    let peer: IpAddr = "127.0.0.1".parse().unwrap();
    let limiter = Arc::new(LoginLimiter::default());
    let mut s = Session::new(store.clone(), Arc::new(users), limiter, peer, true);
    let out = s.receive(b"USER alice\r\nPASS secret\r\n");
    let text = String::from_utf8_lossy(&out.bytes);
    assert!(text.ends_with("+OK 1 message\r\n"), "{text}");
    s
}

fn send(s: &mut Session, input: &str) -> (String, Action) {
    let out = s.receive(input.as_bytes());
    (String::from_utf8_lossy(&out.bytes).into_owned(), out.action)
}

#[test]
fn message_number_zero_is_no_such_message_not_a_subtract_overflow_panic() {
    let (_dir, store) = setup();
    let mut s = logged_in(&store);
    for command in ["LIST 0", "UIDL 0", "RETR 0", "TOP 0 1", "DELE 0"] {
        let (out, action) = send(&mut s, &format!("{command}\r\n"));
        assert_eq!(out, "-ERR no such message\r\n", "{command}");
        assert_eq!(action, Action::Continue, "{command}");
    }
    let (out, _) = send(&mut s, "STAT\r\n");
    assert!(out.starts_with("+OK 1 "), "the session goes on: {out}");
}

#[test]
fn out_of_range_and_malformed_message_numbers_are_errors() {
    let (_dir, store) = setup();
    let mut s = logged_in(&store);
    for command in [
        "LIST -1",
        "LIST 2",
        "LIST 18446744073709551616",
        "LIST abc",
        "RETR",
        "RETR 4294967295",
        "TOP 1 -1",
        "TOP 1",
        "TOP 1 99999999999999999999",
    ] {
        let (out, action) = send(&mut s, &format!("{command}\r\n"));
        assert!(out.starts_with("-ERR "), "{command}: {out}");
        assert_eq!(action, Action::Continue, "{command}");
    }
}
