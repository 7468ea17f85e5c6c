//! Transcript tests of the IMAP core: bytes in, bytes out, no sockets.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use postroom_imap::{Action, Limits, Session};
use postroom_maildir::Store;
use postroom_maildir::access::{LoginLimiter, StaticUsers};

const CASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/cases");

struct Harness {
    _dir: tempfile::TempDir,
    store: Store,
    limiter: Arc<LoginLimiter>,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(redb::Database::create(dir.path().join("mail.redb")).unwrap());
        let store = Store::open(dir.path().join("mail"), db).unwrap();
        store.create_user("alice").unwrap();
        Harness {
            _dir: dir,
            store,
            limiter: Arc::new(LoginLimiter::default()),
        }
    }

    fn session(&self, tls: bool) -> Session {
        let users = StaticUsers(vec![("alice".into(), "secret".into())]);
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        Session::new(
            self.store.clone(),
            Arc::new(users),
            self.limiter.clone(),
            Limits::default(),
            peer,
            tls,
        )
    }

    /// A session logged in as alice.
    fn logged_in(&self) -> Session {
        let mut s = self.session(true);
        let out = send(&mut s, "a LOGIN alice secret\r\n");
        assert!(out.contains("a OK"), "{out}");
        s
    }

    fn deliver(&self, bytes: &[u8]) {
        self.store
            .deliver("alice", None, &mut &bytes[..], None)
            .unwrap();
    }

    fn root(&self) -> &Path {
        self.store.root()
    }
}

fn send(session: &mut Session, input: &str) -> String {
    send_bytes(session, input.as_bytes()).0
}

fn send_bytes(session: &mut Session, input: &[u8]) -> (String, Action) {
    let out = session.receive(input);
    (String::from_utf8_lossy(&out.bytes).into_owned(), out.action)
}

fn case(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(CASES).join(name)).unwrap()
}

#[test]
fn imap_idle_done_pipelined_answers_the_command_after_done() {
    let h = Harness::new();
    let mut s = h.logged_in();
    send(&mut s, "b SELECT INBOX\r\n");
    let out = send(&mut s, "A1 IDLE\r\n");
    assert_eq!(out, "+ idling\r\n");
    assert!(s.is_idle());
    let out = send(&mut s, "DONE\r\nA2 NOOP\r\n");
    let done = out.find("A1 OK").expect(&out);
    let noop = out.find("A2 OK").expect(&out);
    assert!(done < noop, "{out}");
    assert!(!s.is_idle());
}

#[test]
fn imap_idle_done_split_across_reads_still_ends_idle() {
    let h = Harness::new();
    let mut s = h.logged_in();
    send(&mut s, "A1 IDLE\r\n");
    assert_eq!(send(&mut s, "DO"), "");
    let out = send(&mut s, "NE\r\nA2 NOOP\r\n");
    assert!(out.contains("A1 OK") && out.contains("A2 OK"), "{out}");
}

#[test]
fn imap_mutf7_names_create_select_and_list_the_same_name() {
    let h = Harness::new();
    let mut s = h.logged_in();
    let out = send(&mut s, "c1 CREATE \"Entw&APw-rfe\"\r\n");
    assert!(out.contains("c1 OK"), "{out}");
    assert!(h.root().join("alice/.Entw&APw-rfe/cur").is_dir());
    let out = send(&mut s, "c2 SELECT \"Entw&APw-rfe\"\r\n");
    assert!(out.contains("c2 OK [READ-WRITE]"), "{out}");
    let out = send(&mut s, "c3 LIST \"\" \"*\"\r\n");
    assert!(out.contains("\".\" \"Entw&APw-rfe\"\r\n"), "{out}");
    assert!(!out.contains("Entwürfe"), "{out}");
}

#[test]
fn imap_mailbox_name_in_invalid_mutf7_is_refused() {
    let h = Harness::new();
    let mut s = h.logged_in();
    let out = send(&mut s, "c1 CREATE \"Entw&AGE-rfe\"\r\n");
    assert!(out.contains("c1 NO"), "{out}");
}

#[test]
fn imap_oversized_literal_is_refused_and_the_session_goes_on() {
    let h = Harness::new();
    let mut s = h.logged_in();
    let (out, action) = send_bytes(&mut s, b"A1 APPEND INBOX {999999999}\r\n");
    assert!(out.starts_with("A1 NO"), "{out}");
    assert!(!out.contains('+'), "no continuation may be offered: {out}");
    assert_eq!(action, Action::Continue);
    let out = send(&mut s, "A2 NOOP\r\n");
    assert!(out.contains("A2 OK"), "{out}");
}

#[test]
fn imap_oversized_nonsync_literal_closes_the_session_cleanly() {
    let h = Harness::new();
    let mut s = h.logged_in();
    let (out, action) = send_bytes(
        &mut s,
        b"A1 APPEND INBOX {999999999+}\r\nA2 DELETE INBOX\r\n",
    );
    assert!(out.contains("A1 NO") && out.contains("* BYE"), "{out}");
    assert!(!out.contains("A2"), "{out}");
    assert_eq!(action, Action::Close);
}

#[test]
fn imap_append_with_a_literal_is_stored_and_gets_appenduid() {
    let h = Harness::new();
    let mut s = h.logged_in();
    let msg = "Subject: hi\r\n\r\nhello\r\n";
    let out = send(
        &mut s,
        &format!("a1 APPEND Sent (\\Seen) {{{}}}\r\n", msg.len()),
    );
    assert_eq!(out, "+ Ready for literal data\r\n");
    let out = send(&mut s, &format!("{msg}\r\n"));
    assert!(out.contains("a1 OK [APPENDUID "), "{out}");
    assert!(out.contains(" 1] APPEND completed"), "{out}");
    let out = send(
        &mut s,
        &format!("a2 APPEND Sent {{{}+}}\r\n{msg}\r\n", msg.len()),
    );
    assert!(
        out.contains(" 2] APPEND completed") && !out.contains('+'),
        "{out}"
    );
}

#[test]
fn login_is_disabled_before_tls_and_capabilities_say_so() {
    let h = Harness::new();
    let mut s = h.session(false);
    assert!(String::from_utf8_lossy(&s.greeting()).contains("STARTTLS LOGINDISABLED"));
    let out = send(&mut s, "a LOGIN alice secret\r\n");
    assert!(out.starts_with("a NO [PRIVACYREQUIRED]"), "{out}");
    let out = send(&mut s, "b AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n");
    assert!(out.starts_with("b NO"), "{out}");
}

#[test]
fn starttls_drops_commands_pipelined_before_the_handshake() {
    let h = Harness::new();
    let mut s = h.session(false);
    let (out, action) = send_bytes(&mut s, b"a STARTTLS\r\nb LOGIN alice secret\r\n");
    assert_eq!(out, "a OK begin TLS negotiation now\r\n");
    assert_eq!(action, Action::StartTls);
    s.tls_started();
    let out = send(&mut s, "c CAPABILITY\r\n");
    assert!(
        out.contains("AUTH=PLAIN") && !out.contains("LOGINDISABLED"),
        "{out}"
    );
    assert!(!out.contains("b OK"), "{out}");
}

#[test]
fn authenticate_plain_with_a_continuation_logs_in() {
    let h = Harness::new();
    let mut s = h.session(true);
    assert_eq!(send(&mut s, "a AUTHENTICATE PLAIN\r\n"), "+ \r\n");
    let out = send(&mut s, "AGFsaWNlAHNlY3JldA==\r\n");
    assert!(out.starts_with("a OK"), "{out}");
}

#[test]
fn failed_logins_are_limited_per_address() {
    let h = Harness::new();
    let mut s = h.session(true);
    for i in 0..3 {
        let out = send(&mut s, &format!("x{i} LOGIN alice wrong\r\n"));
        assert!(out.contains("[AUTHENTICATIONFAILED]"), "{out}");
    }
    // Even the right password is refused while the address waits.
    let out = send(&mut s, "y LOGIN alice secret\r\n");
    assert!(out.contains("y NO [UNAVAILABLE]"), "{out}");
    // It says for how long: 2 s, the default first delay.
    assert!(out.contains("try again in 2 s\r\n"), "{out}");
}

#[test]
fn mime_unterminated_multipart_bodystructure_closes_parts_at_the_end() {
    let h = Harness::new();
    h.deliver(&case("mime-unterminated-multipart.eml"));
    let mut s = h.logged_in();
    send(&mut s, "s SELECT INBOX\r\n");
    let out = send(&mut s, "f FETCH 1 BODYSTRUCTURE\r\n");
    assert!(
        out.contains(
            "BODYSTRUCTURE ((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 17 1 NIL NIL NIL NIL)(\"TEXT\" \"CSV\""
        ),
        "{out}"
    );
    assert!(out.contains("\"MIXED\" (\"BOUNDARY\" \"XYZ\")"), "{out}");
    let out = send(&mut s, "g FETCH 1 BODY.PEEK[2]\r\n");
    assert!(
        out.contains("BODY[2] {24}\r\nregion,total\r\nnorth,12\r\n)"),
        "{out}"
    );
}

#[test]
fn mime_no_headers_is_served_whole() {
    let h = Harness::new();
    let msg = case("mime-no-headers.eml");
    h.deliver(&msg);
    let mut s = h.logged_in();
    send(&mut s, "s SELECT INBOX\r\n");
    let out = send(&mut s, "f FETCH 1 (RFC822.SIZE ENVELOPE BODY[])\r\n");
    assert!(out.contains(&format!("RFC822.SIZE {}", msg.len())), "{out}");
    assert!(
        out.contains("ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"),
        "{out}"
    );
    let body = format!(
        "BODY[] {{{}}}\r\n{}",
        msg.len(),
        String::from_utf8_lossy(&msg)
    );
    assert!(out.contains(&body), "{out}");
    let out = send(&mut s, "h FETCH 1 BODY.PEEK[HEADER]\r\n");
    assert!(out.contains("BODY[HEADER] {0}\r\n)"), "{out}");
}

#[test]
fn mime_latin2_envelope_keeps_encoded_words_and_charset() {
    let h = Harness::new();
    h.deliver(&case("mime-latin2-encoded-words.eml"));
    let mut s = h.logged_in();
    send(&mut s, "s SELECT INBOX\r\n");
    let out = send(&mut s, "f FETCH 1 (ENVELOPE BODYSTRUCTURE)\r\n");
    assert!(out.contains("\"=?iso-8859-2?Q?Objedn=E1vka?=\""), "{out}");
    assert!(
        out.contains("(\"CHARSET\" \"iso-8859-2\") NIL NIL \"QUOTED-PRINTABLE\""),
        "{out}"
    );
}

#[test]
fn idle_announces_a_delivery() {
    let h = Harness::new();
    let mut s = h.logged_in();
    send(&mut s, "s SELECT INBOX\r\n");
    send(&mut s, "i IDLE\r\n");
    assert_eq!(s.poll_idle(), b"");
    h.deliver(b"Subject: new\r\n\r\nx\r\n");
    assert!(s.watch().unwrap().try_recv().is_ok());
    let out = String::from_utf8(s.poll_idle()).unwrap();
    assert_eq!(out, "* 1 EXISTS\r\n* 1 RECENT\r\n");
}

#[test]
fn flags_stored_in_one_session_reach_another() {
    let h = Harness::new();
    h.deliver(b"Subject: a\r\n\r\nx\r\n");
    let mut one = h.logged_in();
    let mut two = h.logged_in();
    send(&mut one, "s SELECT INBOX\r\n");
    send(&mut two, "s SELECT INBOX\r\n");
    let out = send(&mut one, "t STORE 1 +FLAGS (\\Flagged \\Seen)\r\n");
    assert!(out.contains("* 1 FETCH (FLAGS (\\Flagged \\Seen"), "{out}");
    let out = send(&mut two, "n NOOP\r\n");
    assert!(
        out.contains("* 1 FETCH (UID 1 FLAGS (\\Flagged \\Seen"),
        "{out}"
    );
}

#[test]
fn expunge_search_copy_and_move_keep_uids_straight() {
    let h = Harness::new();
    for i in 1..=4 {
        h.deliver(
            format!("Subject: m{i}\r\nFrom: x{i}@example.org\r\n\r\nbody {i}\r\n").as_bytes(),
        );
    }
    let mut s = h.logged_in();
    send(&mut s, "s SELECT INBOX\r\n");
    let out = send(&mut s, "a UID SEARCH FROM x3@example.org\r\n");
    assert!(out.contains("* SEARCH 3\r\n"), "{out}");
    let out = send(&mut s, "b SEARCH OR SUBJECT m1 BODY \"body 4\"\r\n");
    assert!(out.contains("* SEARCH 1 4\r\n"), "{out}");
    let out = send(&mut s, "c UID COPY 1:2 Trash\r\n");
    assert!(
        out.contains("c OK [COPYUID ") && out.contains(" 1,2 1,2]"),
        "{out}"
    );
    let out = send(&mut s, "d UID MOVE 3 Junk\r\n");
    assert!(
        out.contains("* 3 EXPUNGE") && out.contains("d OK MOVE"),
        "{out}"
    );
    let out = send(&mut s, "e STORE 1 +FLAGS.SILENT (\\Deleted)\r\n");
    assert!(!out.contains("FETCH"), "{out}");
    let out = send(&mut s, "f EXPUNGE\r\n");
    assert!(out.contains("* 1 EXPUNGE") && out.contains("f OK"), "{out}");
    let out = send(&mut s, "g UID FETCH 1:* (FLAGS)\r\n");
    assert!(
        out.contains("* 1 FETCH (UID 2 FLAGS") && out.contains("* 2 FETCH (UID 4"),
        "{out}"
    );
    let out = send(&mut s, "h STATUS Junk (MESSAGES UIDNEXT UNSEEN)\r\n");
    assert!(
        out.contains("* STATUS \"Junk\" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)"),
        "{out}"
    );
}

#[test]
fn uidvalidity_and_uids_are_the_same_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let users = Arc::new(StaticUsers(vec![("alice".into(), "secret".into())]));
    let peer: IpAddr = "127.0.0.1".parse().unwrap();
    let mut answers = Vec::new();
    for round in 0..2 {
        let db = Arc::new(redb::Database::create(dir.path().join("mail.redb")).unwrap());
        let store = Store::open(dir.path().join("mail"), db).unwrap();
        if round == 0 {
            store.create_user("alice").unwrap();
            for i in 0..3 {
                store
                    .deliver(
                        "alice",
                        None,
                        &mut format!("Subject: {i}\r\n\r\n").as_bytes(),
                        None,
                    )
                    .unwrap();
            }
        }
        let limiter = Arc::new(LoginLimiter::default());
        let mut s = Session::new(store, users.clone(), limiter, Limits::default(), peer, true);
        send(&mut s, "a LOGIN alice secret\r\n");
        let select = send(&mut s, "b EXAMINE INBOX\r\n");
        let validity = select
            .lines()
            .find(|l| l.contains("UIDVALIDITY"))
            .unwrap()
            .to_owned();
        let uids = send(
            &mut s,
            "c FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n",
        );
        answers.push((validity, uids));
    }
    assert_eq!(answers[0], answers[1]);
}

#[test]
fn fetch_partial_and_header_fields_are_sliced() {
    let h = Harness::new();
    h.deliver(b"From: a@b.example\r\nSubject: s\r\n\r\n0123456789\r\n");
    let mut s = h.logged_in();
    send(&mut s, "s SELECT INBOX\r\n");
    let out = send(
        &mut s,
        "f FETCH 1 (BODY.PEEK[TEXT]<2.5> BODY.PEEK[HEADER.FIELDS (Subject)])\r\n",
    );
    assert!(out.contains("BODY[TEXT]<2> {5}\r\n23456"), "{out}");
    assert!(
        out.contains("BODY[HEADER.FIELDS (SUBJECT)] {14}\r\nSubject: s\r\n\r\n"),
        "{out}"
    );
    let out = send(&mut s, "g FETCH 1 (FLAGS)\r\n");
    assert!(!out.contains("\\Seen"), "PEEK must not set \\Seen: {out}");
    let out = send(&mut s, "h FETCH 1 BODY[TEXT]\r\n");
    assert!(out.contains("FLAGS (\\Seen"), "{out}");
}

#[test]
fn keywords_are_kept_in_the_file_name_shown_searched_and_copied() {
    let h = Harness::new();
    h.deliver(b"Subject: spam\r\n\r\nbuy\r\n");
    let mut one = h.logged_in();
    let mut two = h.logged_in();
    let out = send(&mut one, "s SELECT INBOX\r\n");
    assert!(out.contains("\\*)] flags and keywords kept"), "{out}");
    send(&mut two, "s SELECT INBOX\r\n");
    let out = send(&mut one, "k STORE 1 +FLAGS ($Junk)\r\n");
    assert!(
        out.contains("* FLAGS (") && out.contains("$Junk)\r\n"),
        "{out}"
    );
    assert!(out.contains("* 1 FETCH (FLAGS (\\Recent $Junk))"), "{out}");
    let cur = h.root().join("alice/cur");
    let name = std::fs::read_dir(&cur)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    assert!(name.to_string_lossy().ends_with(":2,a"), "{name:?}");
    let out = send(&mut two, "n NOOP\r\n");
    assert!(
        out.contains("$Junk)\r\n") && out.contains("FLAGS ($Junk))"),
        "{out}"
    );
    let out = send(&mut two, "f SEARCH KEYWORD $junk\r\n");
    assert!(out.contains("* SEARCH 1\r\n"), "{out}");
    let out = send(&mut two, "g SEARCH UNKEYWORD $Junk\r\n");
    assert!(out.contains("* SEARCH\r\n"), "{out}");
    send(&mut one, "c COPY 1 Junk\r\n");
    let out = send(&mut one, "e EXAMINE Junk\r\n");
    assert!(out.contains("$Junk"), "{out}");
    let out = send(&mut one, "x FETCH 1 FLAGS\r\n");
    assert!(out.contains("FLAGS ($Junk)"), "{out}");
    send(&mut two, "r STORE 1 -FLAGS ($Junk)\r\n");
    let out = send(&mut two, "y FETCH 1 FLAGS\r\n");
    assert!(out.contains("FLAGS ())"), "{out}");
}

#[test]
fn search_finds_text_inside_latin2_encoded_words() {
    let h = Harness::new();
    h.deliver(&case("mime-latin2-encoded-words.eml"));
    h.deliver(b"Subject: other\r\nFrom: x@y.example\r\n\r\nbody\r\n");
    let mut s = h.logged_in();
    send(&mut s, "s SELECT INBOX\r\n");
    let subject = "Objednávka".as_bytes();
    let mut command =
        format!("a SEARCH CHARSET UTF-8 SUBJECT {{{}+}}\r\n", subject.len()).into_bytes();
    command.extend_from_slice(subject);
    command.extend_from_slice(b"\r\n");
    let (out, _) = send_bytes(&mut s, &command);
    assert!(out.contains("* SEARCH 1\r\n"), "{out}");
    let name = "dvořáková".as_bytes();
    let mut command = format!("b SEARCH CHARSET UTF-8 FROM {{{}+}}\r\n", name.len()).into_bytes();
    command.extend_from_slice(name);
    command.extend_from_slice(b"\r\n");
    let (out, _) = send_bytes(&mut s, &command);
    assert!(out.contains("* SEARCH 1\r\n"), "{out}");
}

#[test]
fn search_body_looks_inside_quoted_printable_and_base64() {
    let h = Harness::new();
    h.deliver(&case("mime-latin2-encoded-words.eml"));
    h.deliver(b"Subject: b64\r\nContent-Transfer-Encoding: base64\r\n\r\nc2VjcmV0IHBsYW5z\r\n");
    let mut s = h.logged_in();
    send(&mut s, "s SELECT INBOX\r\n");
    let word = "Dobrý".as_bytes();
    let mut command = format!("a SEARCH CHARSET UTF-8 BODY {{{}+}}\r\n", word.len()).into_bytes();
    command.extend_from_slice(word);
    command.extend_from_slice(b"\r\n");
    let (out, _) = send_bytes(&mut s, &command);
    assert!(out.contains("* SEARCH 1\r\n"), "{out}");
    let out = send(&mut s, "b SEARCH TEXT \"secret plans\"\r\n");
    assert!(out.contains("* SEARCH 2\r\n"), "{out}");
}

#[test]
fn sections_of_an_attached_message_are_numbered_as_rfc3501_says() {
    let h = Harness::new();
    let msg = b"Subject: fwd\r\nContent-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n\r\nsee attached\r\n--o\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\n\r\nplain\r\n--i\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--i--\r\n--o--\r\n";
    h.deliver(msg);
    let mut s = h.logged_in();
    send(&mut s, "s SELECT INBOX\r\n");
    let out = send(
        &mut s,
        "f FETCH 1 (BODY.PEEK[2.HEADER] BODY.PEEK[2.1] BODY.PEEK[2.2] BODY.PEEK[1])\r\n",
    );
    assert!(
        out.contains("BODY[2.HEADER] {67}\r\nSubject: inner\r\n"),
        "{out}"
    );
    assert!(out.contains("BODY[2.1] {5}\r\nplain"), "{out}");
    assert!(out.contains("BODY[2.2] {11}\r\n<p>html</p>"), "{out}");
    assert!(out.contains("BODY[1] {12}\r\nsee attached"), "{out}");
    let out = send(&mut s, "g FETCH 1 BODYSTRUCTURE\r\n");
    assert!(
        out.contains("\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\""),
        "{out}"
    );
    assert!(
        out.contains("(\"inner\"") || out.contains("NIL \"inner\""),
        "{out}"
    );
    assert!(out.contains("\"ALTERNATIVE\""), "{out}");
}

/// The tester's case: after RENAME of a subscribed mailbox, LSUB still listed the old name
/// (which no longer exists) and not the new one; the same for its children.
#[test]
fn rename_moves_the_subscriptions_of_the_mailbox_and_its_children() {
    let h = Harness::new();
    let mut s = h.logged_in();
    let out = send(
        &mut s,
        "a CREATE Projects.Old\r\nb CREATE Projects.Old.Notes\r\nc CREATE Projects.Older\r\n\
         d SUBSCRIBE Projects.Old\r\ne SUBSCRIBE Projects.Old.Notes\r\n\
         f SUBSCRIBE Projects.Older\r\n",
    );
    assert!(out.contains("f OK"), "{out}");
    let out = send(&mut s, "g RENAME Projects.Old Archive\r\n");
    assert!(out.contains("g OK"), "{out}");

    let out = send(&mut s, "h LSUB \"\" \"*\"\r\n");
    assert!(out.contains("* LSUB () \".\" \"Archive\"\r\n"), "{out}");
    assert!(
        out.contains("* LSUB () \".\" \"Archive.Notes\"\r\n"),
        "{out}"
    );
    // A sibling that merely starts with the same letters keeps its name.
    assert!(
        out.contains("* LSUB () \".\" \"Projects.Older\"\r\n"),
        "{out}"
    );
    assert!(!out.contains("\"Projects.Old\""), "{out}");
    assert!(!out.contains("Projects.Old.Notes"), "{out}");

    // LIST marks them too (LIST-EXTENDED's `LIST (SUBSCRIBED)` is not offered).
    let out = send(&mut s, "i LIST \"\" \"*\"\r\n");
    assert!(
        out.contains("* LIST (\\HasNoChildren \\Subscribed) \".\" \"Archive.Notes\"\r\n"),
        "{out}"
    );
}

#[test]
fn renaming_inbox_moves_its_messages_and_leaves_it_empty() {
    let h = Harness::new();
    h.deliver(b"Subject: a\r\n\r\nx\r\n");
    let mut s = h.logged_in();
    let out = send(&mut s, "r RENAME INBOX Old\r\n");
    assert!(out.contains("r OK"), "{out}");
    let out = send(
        &mut s,
        "t STATUS INBOX (MESSAGES)\r\nu STATUS Old (MESSAGES)\r\n",
    );
    assert!(
        out.contains("\"INBOX\" (MESSAGES 0)") && out.contains("\"Old\" (MESSAGES 1)"),
        "{out}"
    );
}

#[test]
fn list_shows_a_deleted_parent_as_noselect_so_its_children_stay_reachable() {
    let h = Harness::new();
    let mut s = h.logged_in();
    let out = send(&mut s, "a CREATE Projects.2026\r\nb DELETE Projects\r\n");
    assert!(out.contains("b OK"), "{out}");

    // RFC 3501 section 6.3.8: `%` returns the level above Projects.2026 even though it is no
    // mailbox any more, or a client that lists one level at a time never finds the child.
    let out = send(&mut s, "c LIST \"\" \"%\"\r\n");
    assert!(
        out.contains("* LIST (\\Noselect \\HasChildren) \".\" \"Projects\"\r\n"),
        "{out}"
    );
    let out = send(&mut s, "d LIST \"\" \"Projects.%\"\r\n");
    assert!(
        out.contains("* LIST (\\HasNoChildren) \".\" \"Projects.2026\"\r\n"),
        "{out}"
    );
    let out = send(&mut s, "e SELECT Projects\r\n");
    assert!(out.contains("e NO"), "{out}");
}

#[test]
fn delete_inbox_says_inbox_is_kept() {
    let h = Harness::new();
    let mut s = h.logged_in();
    let out = send(&mut s, "a DELETE INBOX\r\nb DELETE inbox\r\n");
    assert!(out.contains("a NO INBOX cannot be deleted\r\n"), "{out}");
    assert!(out.contains("b NO INBOX cannot be deleted\r\n"), "{out}");
}

#[test]
fn unselect_is_advertised_and_leaves_deleted_messages_in_place() {
    let h = Harness::new();
    h.deliver(b"Subject: a\r\n\r\nx\r\n");
    let mut s = h.logged_in();
    let out = send(&mut s, "a CAPABILITY\r\n");
    assert!(out.contains(" UNSELECT ID"), "{out}");
    let out = send(
        &mut s,
        "b SELECT INBOX\r\nc STORE 1 +FLAGS (\\Deleted)\r\nd UNSELECT\r\n",
    );
    assert!(out.contains("d OK"), "{out}");
    let out = send(&mut s, "e STATUS INBOX (MESSAGES)\r\n");
    assert!(out.contains("(MESSAGES 1)"), "{out}");
}
