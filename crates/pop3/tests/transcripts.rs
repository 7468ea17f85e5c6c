//! Transcript tests of the POP3 core.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use postroom_maildir::Store;
use postroom_maildir::access::{LoginLimiter, StaticUsers};
use postroom_pop3::{Action, Session};

const CASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/cases");

fn setup() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(redb::Database::create(dir.path().join("mail.redb")).unwrap());
    let store = Store::open(dir.path().join("mail"), db).unwrap();
    store.create_user("alice").unwrap();
    (dir, store)
}

fn session(store: &Store, tls: bool) -> Session {
    let users = StaticUsers(vec![("alice".into(), "secret".into())]);
    let peer: IpAddr = "127.0.0.1".parse().unwrap();
    Session::new(
        store.clone(),
        Arc::new(users),
        Arc::new(LoginLimiter::default()),
        peer,
        tls,
    )
}

fn send(s: &mut Session, input: &str) -> (String, Action) {
    let out = s.receive(input.as_bytes());
    (String::from_utf8_lossy(&out.bytes).into_owned(), out.action)
}

fn logged_in(store: &Store) -> Session {
    let mut s = session(store, true);
    let (out, _) = send(&mut s, "USER alice\r\nPASS secret\r\n");
    assert!(
        out.contains(" message") && out.contains("+OK send PASS"),
        "{out}"
    );
    s
}

fn files(store: &Store) -> usize {
    let root = store.root().join("alice");
    ["new", "cur"]
        .iter()
        .map(|d| std::fs::read_dir(root.join(d)).unwrap().count())
        .sum()
}

#[test]
fn pop3_quit_answers_ok_and_only_then_removes_deleted_messages() {
    let (_dir, store) = setup();
    store
        .deliver("alice", None, &mut &b"Subject: 1\r\n\r\none\r\n"[..], None)
        .unwrap();
    store
        .deliver("alice", None, &mut &b"Subject: 2\r\n\r\ntwo\r\n"[..], None)
        .unwrap();
    let mut s = logged_in(&store);
    let (out, _) = send(&mut s, "DELE 1\r\n");
    assert!(out.starts_with("+OK"), "{out}");
    assert_eq!(
        files(&store),
        2,
        "DELE must not remove anything before QUIT"
    );
    let (out, _) = send(&mut s, "STAT\r\n");
    assert!(out.starts_with("+OK 1 "), "{out}");
    let (out, action) = send(&mut s, "QUIT\r\n");
    assert!(out.starts_with("+OK"), "{out}");
    assert_eq!(action, Action::Close);
    assert_eq!(files(&store), 1);
}

#[test]
fn pop3_quit_answers_ok_before_login_too() {
    let (_dir, store) = setup();
    let mut s = session(&store, false);
    let (out, action) = send(&mut s, "QUIT\r\n");
    assert!(out.starts_with("+OK"), "{out}");
    assert_eq!(action, Action::Close);
}

#[test]
fn pop3_dropped_connection_deletes_nothing() {
    let (_dir, store) = setup();
    store
        .deliver("alice", None, &mut &b"Subject: 1\r\n\r\none\r\n"[..], None)
        .unwrap();
    let mut s = logged_in(&store);
    send(&mut s, "DELE 1\r\n");
    drop(s);
    assert_eq!(files(&store), 1);
}

#[test]
fn pop3_rset_unmarks_deletions() {
    let (_dir, store) = setup();
    store
        .deliver("alice", None, &mut &b"Subject: 1\r\n\r\none\r\n"[..], None)
        .unwrap();
    let mut s = logged_in(&store);
    send(&mut s, "DELE 1\r\nRSET\r\n");
    send(&mut s, "QUIT\r\n");
    assert_eq!(files(&store), 1);
}

#[test]
fn pop3_dot_stuffing_doubles_a_leading_dot() {
    let (_dir, store) = setup();
    let msg = b"Subject: dots\r\n\r\nvisible\r\n.hidden\r\n..two\r\n";
    store.deliver("alice", None, &mut &msg[..], None).unwrap();
    let mut s = logged_in(&store);
    let (out, _) = send(&mut s, "RETR 1\r\n");
    assert_eq!(
        out,
        format!(
            "+OK {} octets\r\nSubject: dots\r\n\r\nvisible\r\n..hidden\r\n...two\r\n.\r\n",
            msg.len()
        )
    );
}

#[test]
fn mime_no_headers_is_served_by_retr_and_top() {
    let (_dir, store) = setup();
    let msg = std::fs::read(Path::new(CASES).join("mime-no-headers.eml")).unwrap();
    store.deliver("alice", None, &mut &msg[..], None).unwrap();
    let mut s = logged_in(&store);
    let (out, _) = send(&mut s, "LIST\r\n");
    assert!(out.contains(&format!("1 {}\r\n", msg.len())), "{out}");
    let (out, _) = send(&mut s, "RETR 1\r\n");
    let expected = format!(
        "+OK {} octets\r\n{}.\r\n",
        msg.len(),
        String::from_utf8_lossy(&msg)
    );
    assert_eq!(out, expected);
    let (out, _) = send(&mut s, "TOP 1 1\r\n");
    assert!(
        out.ends_with("This message has no header section at all.\r\n.\r\n"),
        "{out}"
    );
}

#[test]
fn uidl_is_stable_across_sessions() {
    let (_dir, store) = setup();
    store
        .deliver("alice", None, &mut &b"Subject: 1\r\n\r\none\r\n"[..], None)
        .unwrap();
    let mut a = logged_in(&store);
    let (first, _) = send(&mut a, "UIDL\r\n");
    send(&mut a, "QUIT\r\n");
    let mut b = logged_in(&store);
    let (second, _) = send(&mut b, "UIDL\r\n");
    assert_eq!(first, second);
    assert!(first.starts_with("+OK\r\n1 "), "{first}");
}

#[test]
fn user_pass_and_auth_need_tls_and_capa_says_stls() {
    let (_dir, store) = setup();
    let mut s = session(&store, false);
    let (out, _) = send(&mut s, "CAPA\r\n");
    assert!(
        out.contains("STLS\r\n") && !out.contains("USER\r\n"),
        "{out}"
    );
    let (out, _) = send(&mut s, "USER alice\r\n");
    assert!(out.starts_with("-ERR"), "{out}");
    let (out, _) = send(&mut s, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
    assert!(out.starts_with("-ERR"), "{out}");
    let (out, action) = send(&mut s, "STLS\r\nUSER alice\r\n");
    assert_eq!(out, "+OK begin TLS negotiation\r\n");
    assert_eq!(action, Action::StartTls);
    s.tls_started();
    let (out, _) = send(&mut s, "AUTH PLAIN\r\n");
    assert_eq!(out, "+ \r\n");
    let (out, _) = send(&mut s, "AGFsaWNlAHNlY3JldA==\r\n");
    assert!(out.starts_with("+OK 0 messages"), "{out}");
}

#[test]
fn a_second_pop3_session_waits_for_the_maildrop_lock() {
    let (_dir, store) = setup();
    let mut first = logged_in(&store);
    let mut second = session(&store, true);
    let (out, _) = send(&mut second, "USER alice\r\nPASS secret\r\n");
    assert!(out.contains("-ERR [IN-USE]"), "{out}");
    send(&mut first, "QUIT\r\n");
    drop(first);
    let (out, _) = send(&mut second, "USER alice\r\nPASS secret\r\n");
    assert!(out.ends_with("messages\r\n"), "{out}");
}

#[test]
fn one_message_is_counted_in_the_singular() {
    let (_dir, store) = setup();
    store
        .deliver("alice", None, &mut &b"Subject: 1\r\n\r\none\r\n"[..], None)
        .unwrap();
    let mut s = session(&store, true);
    let (out, _) = send(&mut s, "USER alice\r\nPASS secret\r\n");
    assert!(out.ends_with("+OK 1 message\r\n"), "{out}");
    let (out, _) = send(&mut s, "DELE 1\r\nQUIT\r\n");
    assert!(out.ends_with("+OK 1 message removed, bye\r\n"), "{out}");
}
