//! Literals from a hostile IMAP client, found by poking a running appliance: before login a
//! client cannot make the server buffer more than a password's worth of literal data.

use std::net::IpAddr;
use std::sync::Arc;

use postroom_imap::{Action, Limits, Session};
use postroom_maildir::Store;
use postroom_maildir::access::{LoginLimiter, StaticUsers};

fn setup() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(redb::Database::create(dir.path().join("mail.redb")).unwrap());
    let store = Store::open(dir.path().join("mail"), db).unwrap();
    store.create_user("alice").unwrap();
    (dir, store)
}

fn session(store: &Store) -> Session {
    let users = StaticUsers(vec![("alice".into(), "secret".into())]);
    let peer: IpAddr = "127.0.0.1".parse().unwrap();
    let limiter = Arc::new(LoginLimiter::default());
    Session::new(
        store.clone(),
        Arc::new(users),
        limiter,
        Limits::default(),
        peer,
        true,
    )
}

fn send(session: &mut Session, input: &[u8]) -> (String, Action) {
    let out = session.receive(input);
    (String::from_utf8_lossy(&out.bytes).into_owned(), out.action)
}

#[test]
fn megabyte_synchronizing_literal_before_login_is_refused_without_a_continuation() {
    let (_dir, store) = setup();
    let mut s = session(&store);
    let (out, action) = send(&mut s, b"a LOGIN {50000000}\r\n");
    assert!(out.starts_with("a NO [TOOBIG]"), "{out}");
    assert!(
        !out.contains("+ "),
        "no continuation may invite the data: {out}"
    );
    assert_eq!(action, Action::Continue);

    // The session goes on, and a literal password of normal size still works.
    let (out, _) = send(&mut s, b"b LOGIN alice {6}\r\n");
    assert!(out.starts_with("+ "), "{out}");
    let (out, _) = send(&mut s, b"secret\r\n");
    assert!(out.contains("b OK"), "{out}");
}

#[test]
fn megabyte_non_synchronizing_literal_before_login_closes_the_connection() {
    let (_dir, store) = setup();
    let mut s = session(&store);
    let (out, action) = send(&mut s, b"a LOGIN alice {1000000+}\r\n");
    assert!(out.starts_with("a NO [TOOBIG]"), "{out}");
    assert_eq!(action, Action::Close);
}

#[test]
fn after_login_large_literals_are_accepted_up_to_max_literal() {
    let (_dir, store) = setup();
    let mut s = session(&store);
    let (out, _) = send(&mut s, b"a LOGIN alice secret\r\n");
    assert!(out.contains("a OK"), "{out}");
    let body = format!("Subject: big\r\n\r\n{}\r\n", "x".repeat(100_000));
    let (out, _) = send(
        &mut s,
        format!("b APPEND INBOX {{{}}}\r\n", body.len()).as_bytes(),
    );
    assert!(out.starts_with("+ "), "{out}");
    let (out, _) = send(&mut s, format!("{body}\r\n").as_bytes());
    assert!(out.contains("b OK"), "{out}");
}
