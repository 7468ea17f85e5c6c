//! SEARCH from a hostile IMAP client, found by poking a running appliance.

use std::net::IpAddr;
use std::sync::Arc;

use postroom_imap::{Limits, Session};
use postroom_maildir::Store;
use postroom_maildir::access::{LoginLimiter, StaticUsers};

fn selected() -> (tempfile::TempDir, Session) {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(redb::Database::create(dir.path().join("mail.redb")).unwrap());
    let store = Store::open(dir.path().join("mail"), db).unwrap();
    store.create_user("alice").unwrap();
    store
        .deliver(
            "alice",
            None,
            &mut &b"Subject: hello\r\n\r\nbody\r\n"[..],
            None,
        )
        .unwrap();
    let users = StaticUsers(vec![("alice".into(), "secret".into())]);
    let peer: IpAddr = "127.0.0.1".parse().unwrap();
    let limiter = Arc::new(LoginLimiter::default());
    let mut s = Session::new(
        store,
        Arc::new(users),
        limiter,
        Limits::default(),
        peer,
        true,
    );
    let out = send(&mut s, "a LOGIN alice secret\r\nb SELECT INBOX\r\n");
    assert!(out.contains("b OK"), "{out}");
    (dir, s)
}

fn send(session: &mut Session, input: &str) -> String {
    String::from_utf8_lossy(&session.receive(input.as_bytes()).bytes).into_owned()
}

#[test]
fn unknown_search_charset_is_no_badcharset_not_a_search() {
    let (_dir, mut s) = selected();
    let out = send(&mut s, "c SEARCH CHARSET X-BOGUS ALL\r\n");
    assert_eq!(
        out,
        "c NO [BADCHARSET (UTF-8 US-ASCII)] unknown charset\r\n"
    );
    for charset in ["UTF-8", "utf-8", "US-ASCII"] {
        let out = send(
            &mut s,
            &format!("d SEARCH CHARSET {charset} SUBJECT hello\r\n"),
        );
        assert_eq!(out, "* SEARCH 1\r\nd OK SEARCH completed\r\n", "{charset}");
    }
}

#[test]
fn deeply_nested_search_is_refused_without_overflowing_the_stack() {
    let (_dir, mut s) = selected();
    for keys in [
        format!("{}ALL{}", "(".repeat(1000), ")".repeat(1000)),
        format!("{}ALL", "NOT ".repeat(5000)),
        format!("{}ALL", "OR ALL ".repeat(3000)),
    ] {
        let out = send(&mut s, &format!("e SEARCH {keys}\r\n"));
        assert!(
            out.starts_with("e BAD ") || out.ends_with("e OK SEARCH completed\r\n"),
            "{out}"
        );
    }
    assert_eq!(send(&mut s, "f NOOP\r\n"), "f OK NOOP completed\r\n");
}
