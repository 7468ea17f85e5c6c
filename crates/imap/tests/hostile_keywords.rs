//! Keywords a mailbox cannot keep are refused, never dropped behind an OK: a Maildir names
//! keywords with the letters a-z, so at most 26 fit, and the keywords file may fail to write.

use std::net::IpAddr;
use std::sync::Arc;

use postroom_imap::{Limits, Session};
use postroom_maildir::Store;
use postroom_maildir::access::{LoginLimiter, StaticUsers};

struct Harness {
    _dir: tempfile::TempDir,
    store: Store,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(redb::Database::create(dir.path().join("mail.redb")).unwrap());
        let store = Store::open(dir.path().join("mail"), db).unwrap();
        store.create_user("alice").unwrap();
        store
            .deliver(
                "alice",
                None,
                &mut &b"Subject: hi\r\n\r\nbody\r\n"[..],
                None,
            )
            .unwrap();
        Harness { _dir: dir, store }
    }

    /// Alice, logged in, with INBOX selected; returns the SELECT answer too.
    fn selected(&self) -> (Session, String) {
        let users = StaticUsers(vec![("alice".into(), "secret".into())]);
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let mut s = Session::new(
            self.store.clone(),
            Arc::new(users),
            Arc::new(LoginLimiter::default()),
            Limits::default(),
            peer,
            true,
        );
        let out = send(&mut s, "a LOGIN alice secret\r\n");
        assert!(out.contains("a OK"), "{out}");
        let out = send(&mut s, "b SELECT INBOX\r\n");
        assert!(out.contains("b OK"), "{out}");
        (s, out)
    }
}

fn send(session: &mut Session, input: &str) -> String {
    String::from_utf8_lossy(&session.receive(input.as_bytes()).bytes).into_owned()
}

fn permanent_flags(out: &str) -> &str {
    out.lines()
        .find(|l| l.contains("[PERMANENTFLAGS"))
        .unwrap_or_else(|| panic!("no PERMANENTFLAGS in {out}"))
}

/// The attacker's case: `STORE 1 +FLAGS (k0 .. k499)` answered OK yet kept 26 keywords, and
/// PERMANENTFLAGS still offered `\*` with every letter taken.
#[test]
fn store_of_more_keywords_than_maildir_letters_answers_no_and_stops_offering_new_ones() {
    let h = Harness::new();
    let (mut s, selected) = h.selected();
    assert!(permanent_flags(&selected).contains("\\*"), "{selected}");

    let many: Vec<String> = (0..500).map(|i| format!("k{i}")).collect();
    let out = send(
        &mut s,
        &format!("c STORE 1 +FLAGS ({})\r\n", many.join(" ")),
    );
    assert!(out.contains("c NO [LIMIT]"), "{out}");
    assert!(!out.contains("c OK"), "{out}");

    // Nothing was half-stored on the message.
    let out = send(&mut s, "d FETCH 1 FLAGS\r\n");
    assert!(out.contains("d OK"), "{out}");
    let fetched = out.lines().find(|l| l.starts_with("* 1 FETCH")).unwrap();
    assert!(!fetched.contains("k0"), "{out}");

    // Every letter is taken now: `\*` is no longer offered.
    let (mut s, selected) = h.selected();
    let offered = permanent_flags(&selected);
    assert!(!offered.contains("\\*"), "{offered}");
    assert!(offered.contains("k25"), "{offered}");

    // Known keywords are still stored; a new one is refused, by STORE and by APPEND.
    let out = send(&mut s, "e STORE 1 +FLAGS (k3)\r\n");
    assert!(out.contains("e OK"), "{out}");
    assert!(out.contains("k3"), "{out}");
    let out = send(&mut s, "f STORE 1 +FLAGS (brandnew)\r\n");
    assert!(out.contains("f NO [LIMIT]"), "{out}");
    let out = send(&mut s, "g APPEND INBOX (brandnew) {4+}\r\nhi\r\n\r\n");
    assert!(out.contains("g NO [LIMIT]"), "{out}");
    let out = send(&mut s, "h STORE 1 -FLAGS (k3 neverseen)\r\n");
    assert!(out.contains("h OK"), "{out}");
}

/// The attacker's case: a failure to write the keywords file was ignored
/// (`keyword_letter(..).ok().flatten()`) and the STORE still answered OK.
#[test]
fn keywords_file_that_cannot_be_written_makes_store_answer_no() {
    let h = Harness::new();
    let (mut s, _) = h.selected();
    let inbox = h.store.root().join("alice");
    assert!(
        inbox.join("cur").is_dir(),
        "INBOX is not at {}",
        inbox.display()
    );
    // The keywords file is written through this name and renamed: a directory there makes
    // the write fail, even for root.
    std::fs::create_dir(inbox.join("dovecot-keywords.tmp")).unwrap();

    let out = send(&mut s, "c STORE 1 +FLAGS (Important)\r\n");
    assert!(out.contains("c NO keywords could not be kept"), "{out}");
    let out = send(&mut s, "d FETCH 1 FLAGS\r\n");
    let fetched = out.lines().find(|l| l.starts_with("* 1 FETCH")).unwrap();
    assert!(!fetched.contains("Important"), "{out}");
}
