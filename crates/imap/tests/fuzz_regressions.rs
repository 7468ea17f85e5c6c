//! Framing bugs the `imap_session` fuzz target found (docs/RELIABILITY.md, reproducers in
//! fuzz/regressions/imap_session/). The session's answers must not depend on how the client's
//! bytes are cut into reads, so each test feeds its bytes whole, cut in two at every position,
//! and one byte at a time, and wants the same output and the same final action every time.

use std::net::IpAddr;
use std::sync::Arc;

use postroom_imap::{Action, Limits, Session};
use postroom_maildir::Store;
use postroom_maildir::access::{LoginLimiter, StaticUsers};

/// The limits of the fuzz target's "small limits" setting.
const SMALL: Limits = Limits {
    max_literal: 1024,
    max_line: 256,
};

struct Harness {
    _dir: tempfile::TempDir,
    store: Store,
    limits: Limits,
}

impl Harness {
    fn new(limits: Limits) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(redb::Database::create(dir.path().join("mail.redb")).unwrap());
        let store = Store::open(dir.path().join("mail"), db).unwrap();
        store.create_user("alice").unwrap();
        Harness {
            _dir: dir,
            store,
            limits,
        }
    }

    /// Feeds `input` in the given reads to a new session (implicit TLS, so LOGIN is allowed)
    /// and returns everything it sent after the greeting, and its last action. Reads after a
    /// close are not fed.
    fn run(&self, reads: &[&[u8]]) -> (String, Action) {
        let users = StaticUsers(vec![("alice".into(), "secret".into())]);
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let mut session = Session::new(
            self.store.clone(),
            Arc::new(users),
            Arc::new(LoginLimiter::default()),
            self.limits.clone(),
            peer,
            true,
        );
        let mut out = Vec::new();
        let mut action = Action::Continue;
        for read in reads {
            let output = session.receive(read);
            out.extend_from_slice(&output.bytes);
            action = output.action;
            if action == Action::Close {
                break;
            }
        }
        (String::from_utf8_lossy(&out).into_owned(), action)
    }

    /// The answer to `input` in one read, after checking that every other way of cutting it
    /// gives the same: in two at every position, and one byte at a time.
    fn same_however_cut(&self, input: &[u8]) -> (String, Action) {
        let whole = self.run(&[input]);
        for at in 1..input.len() {
            let (head, tail) = input.split_at(at);
            let cut = self.run(&[head, tail]);
            assert_eq!(
                cut,
                whole,
                "cut after byte {at} ({:?} | {:?})",
                String::from_utf8_lossy(head),
                String::from_utf8_lossy(tail)
            );
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(self.run(&bytes), whole, "one byte at a time");
        whole
    }
}

#[test]
fn nonsync_literal_of_a_failed_command_is_never_run_as_commands() {
    // fuzz/regressions/imap_session/nonsync-literal-logout-executed: the literal's ten bytes
    // are `b LOGOUT\r\n`; the command around it is bad (JUNK after the literal).
    let h = Harness::new(Limits::default());
    let input = b"a LOGIN alice secret\r\nA1 APPEND INBOX {10+}\r\nb LOGOUT\r\nJUNK\r\nA2 NOOP\r\n";
    let (out, action) = h.same_however_cut(input);
    assert!(out.contains("A1 BAD"), "{out}");
    assert!(!out.contains("b OK") && !out.contains("BYE"), "{out}");
    assert!(
        out.contains("A2 OK"),
        "the next real command is answered: {out}"
    );
    assert_eq!(action, Action::Continue);
}

#[test]
fn nonsync_literal_ending_inside_a_line_break_takes_its_bytes_as_data() {
    // fuzz/regressions/imap_session/nonsync-literal-of-failed-command-read-as-commands: the
    // literal's eleven bytes end on the CR of `Subject: x\r\n`, so the command goes on to the
    // next CRLF and `A2 NOOP` is part of it; nothing of it is a command of its own.
    let h = Harness::new(Limits::default());
    let input = b"a LOGIN alice secret\r\nA1 APPEND INBOX {11+}\r\nSubject: x\r\nA2 NOOP\r\n";
    let (out, action) = h.same_however_cut(input);
    assert!(out.contains("A1 BAD"), "{out}");
    assert!(!out.contains("A2"), "{out}");
    assert_eq!(action, Action::Continue);
}

#[test]
fn command_over_the_line_limit_is_refused_however_it_arrives() {
    let h = Harness::new(SMALL);
    let long = format!("b SEARCH TEXT \"{}\"\r\n", "x".repeat(300));
    let input = format!("a LOGIN alice secret\r\n{long}c NOOP\r\n");
    let (out, action) = h.same_however_cut(input.as_bytes());
    assert!(out.contains("a OK"), "{out}");
    assert!(out.ends_with("* BYE command line too long\r\n"), "{out}");
    assert!(!out.contains("b ") && !out.contains("c OK"), "{out}");
    assert_eq!(action, Action::Close);
}

#[test]
fn command_line_of_exactly_the_line_limit_is_carried_out_however_it_arrives() {
    let h = Harness::new(SMALL);
    // `b ID ("name" "xxx...")`: 14 bytes, the value, 2 bytes.
    let exact = format!("b ID (\"name\" \"{}\")", "x".repeat(256 - 16));
    assert_eq!(exact.len(), 256);
    let input = format!("a LOGIN alice secret\r\n{exact}\r\nc NOOP\r\n");
    let (out, action) = h.same_however_cut(input.as_bytes());
    assert!(out.contains("b OK") && out.contains("c OK"), "{out}");
    assert_eq!(action, Action::Continue);

    let over = format!("b ID (\"name\" \"{}\")", "x".repeat(256 - 15));
    let input = format!("a LOGIN alice secret\r\n{over}\r\nc NOOP\r\n");
    let (out, action) = h.same_however_cut(input.as_bytes());
    assert!(out.ends_with("* BYE command line too long\r\n"), "{out}");
    assert_eq!(action, Action::Close);
}

#[test]
fn nonsync_literal_over_the_size_limit_is_refused_however_it_arrives() {
    let h = Harness::new(SMALL);
    let message = format!("Subject: big\r\n\r\n{}\r\n", "x".repeat(1100));
    let input = format!(
        "a LOGIN alice secret\r\nb APPEND INBOX {{{}+}}\r\n{message}\r\nc NOOP\r\n",
        message.len()
    );
    let (out, action) = h.same_however_cut(input.as_bytes());
    assert!(out.contains("b NO [TOOBIG]"), "{out}");
    assert!(out.ends_with("* BYE literal too big\r\n"), "{out}");
    assert!(!out.contains("c OK"), "{out}");
    assert_eq!(action, Action::Close);
    for dir in ["new", "cur"] {
        let stored = std::fs::read_dir(h.store.root().join("alice").join(dir)).unwrap();
        assert_eq!(stored.count(), 0, "nothing may be appended");
    }
}

#[test]
fn oversized_literal_with_commands_behind_it_is_answered_however_it_arrives() {
    // fuzz/regressions/imap_session/oversized-sync-literal-pipelined-gets-no-answer and case
    // imap-oversized-literal: a synchronizing literal over the limit gets a tagged NO and no
    // continuation; its data is never sent, so what follows is the next command.
    let h = Harness::new(SMALL);
    let input = b"a LOGIN alice \x01 secret\r\nA1 APPEND INBOX {999999999}\r\nA2 NOOP\r\n";
    let (out, action) = h.same_however_cut(input);
    assert!(out.starts_with("a BAD"), "{out}");
    assert!(out.contains("A1 NO [TOOBIG]"), "{out}");
    assert!(!out.contains("+ "), "no continuation may be offered: {out}");
    assert!(out.contains("A2 OK"), "{out}");
    assert_eq!(action, Action::Continue);
}

#[test]
fn synchronizing_literals_get_one_continuation_each_however_they_arrive() {
    // Sent ahead of the continuations, as a careless client would: "+" is still sent for each,
    // so the answer is the same as for a client that waits.
    let h = Harness::new(Limits::default());
    let (out, action) = h.same_however_cut(b"a LOGIN {5}\r\nalice {6}\r\nsecret\r\nb NOOP\r\n");
    assert!(
        out.starts_with("+ Ready for literal data\r\n+ Ready for literal data\r\na OK"),
        "{out}"
    );
    assert!(out.contains("b OK"), "{out}");
    assert_eq!(action, Action::Continue);
}

#[test]
fn synchronizing_literal_of_a_wrong_command_gets_bad_and_no_continuation() {
    let h = Harness::new(Limits::default());
    let (out, action) = h.same_however_cut(b"A1 FROB {5}\r\nA2 NOOP\r\n");
    assert_eq!(
        out,
        "A1 BAD command not understood\r\nA2 OK NOOP completed\r\n"
    );
    assert_eq!(action, Action::Continue);
}

#[test]
fn literals_of_one_command_together_are_held_to_the_literal_limit() {
    // Before login the limit is 8 KiB: two literals of 5000 bytes are too much together.
    let h = Harness::new(Limits::default());
    let input = format!(
        "a LOGIN {{5000+}}\r\n{} {{5000+}}\r\n{}\r\nb NOOP\r\n",
        "u".repeat(5000),
        "p".repeat(5000)
    );
    let whole = h.run(&[input.as_bytes()]);
    assert_eq!(
        whole,
        (
            "a NO [TOOBIG] literal larger than 8192 bytes\r\n* BYE literal too big\r\n".to_owned(),
            Action::Close
        )
    );
    for at in (1..input.len()).step_by(97) {
        let (head, tail) = input.as_bytes().split_at(at);
        assert_eq!(h.run(&[head, tail]), whole, "cut after byte {at}");
    }
}

#[test]
fn command_text_around_literals_is_held_to_the_line_limit_together() {
    // Empty literals cannot make a command of endless lines: the text outside literals counts.
    let h = Harness::new(SMALL);
    let input = format!(
        "a LOGIN alice secret\r\nb SEARCH TEXT {{0+}}\r\n{} TEXT {{0+}}\r\n{} ALL\r\nc NOOP\r\n",
        " TEXT x".repeat(20),
        " TEXT y".repeat(20)
    );
    let (out, action) = h.same_however_cut(input.as_bytes());
    assert!(out.ends_with("* BYE command line too long\r\n"), "{out}");
    assert!(!out.contains("b ") && !out.contains("c OK"), "{out}");
    assert_eq!(action, Action::Close);
}

#[test]
fn idle_line_over_its_limit_is_refused_however_it_arrives() {
    let h = Harness::new(Limits::default());
    let input = format!(
        "a LOGIN alice secret\r\nb IDLE\r\n{}\r\nc NOOP\r\n",
        "x".repeat(1025)
    );
    let (out, action) = h.same_however_cut(input.as_bytes());
    assert!(out.contains("+ idling\r\n"), "{out}");
    assert!(out.ends_with("* BYE line too long\r\n"), "{out}");
    assert_eq!(action, Action::Close);
}
