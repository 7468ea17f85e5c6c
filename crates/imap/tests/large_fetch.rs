//! FETCH over a whole mailbox: answered in chunks when the driver asks for them, with the same
//! bytes as in one piece; header-only reads that still give the right RFC822.SIZE.

use std::net::IpAddr;
use std::sync::Arc;

use postroom_imap::{Action, Session};
use postroom_maildir::Store;
use postroom_maildir::access::{LoginLimiter, StaticUsers};

fn store(dir: &std::path::Path) -> Store {
    let db = Arc::new(redb::Database::create(dir.join("mail.redb")).unwrap());
    let store = Store::open(dir.join("mail"), db).unwrap();
    store.create_user("alice").unwrap();
    store
}

/// A logged-in session with INBOX examined (read-only, so that two sessions see the same
/// flags: neither claims \Recent).
fn session(store: &Store) -> Session {
    let users = Arc::new(StaticUsers(vec![("alice".into(), "secret".into())]));
    let peer: IpAddr = "127.0.0.1".parse().unwrap();
    let mut s = Session::new(
        store.clone(),
        users,
        Arc::new(LoginLimiter::default()),
        Default::default(),
        peer,
        true,
    );
    let out = s.receive(b"a LOGIN alice secret\r\nb EXAMINE INBOX\r\n");
    assert!(String::from_utf8_lossy(&out.bytes).contains("b OK"));
    s
}

/// Feeds `input`, then asks for the rest while the session has more; returns all bytes and
/// how many calls it took.
fn receive_all(s: &mut Session, input: &[u8]) -> (Vec<u8>, usize) {
    let mut out = s.receive(input);
    let mut bytes = Vec::new();
    let mut calls = 1;
    loop {
        bytes.extend_from_slice(&out.bytes);
        assert_eq!(out.action, Action::Continue);
        if !s.has_more() {
            return (bytes, calls);
        }
        out = s.receive(&[]);
        calls += 1;
    }
}

fn message(i: usize) -> Vec<u8> {
    let body = format!("line {i} of the body\r\n").repeat(i * 7 + 1);
    match i % 3 {
        0 => format!("Subject: plain {i}\r\nFrom: a{i}@example.net\r\n\r\n{body}").into_bytes(),
        // Files written by other tools may end lines in a bare LF.
        1 => format!(
            "Subject: bare {i}\nFrom: b{i}@example.net\n\n{}",
            body.replace("\r\n", "\n")
        )
        .into_bytes(),
        _ => format!(
            "Subject: parts {i}\r\nContent-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n\
             --b{i}\r\nContent-Type: text/plain\r\n\r\n{body}\r\n--b{i}\r\n\
             Content-Type: application/octet-stream\r\n\r\nAAAA\r\n--b{i}--\r\n"
        )
        .into_bytes(),
    }
}

#[test]
fn a_fetch_answered_in_chunks_gives_the_same_bytes_as_in_one_piece() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    for i in 0..30 {
        store
            .deliver(
                "alice",
                None,
                &mut &message(i)[..],
                Some(&format!("m{i:02}")),
            )
            .unwrap();
    }
    let input: &[u8] = b"c FETCH 1:* (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER] BODY.PEEK[])\r\n\
        d NOOP\r\n\
        e UID FETCH 1:* (ENVELOPE BODYSTRUCTURE RFC822.SIZE BODY.PEEK[1]<2.10>)\r\n\
        f FETCH 2,5 (BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT])\r\n";

    let mut whole = session(&store);
    let (at_once, calls) = receive_all(&mut whole, input);
    assert_eq!(calls, 1);

    let mut chunked = session(&store);
    chunked.set_output_chunk(1000);
    let (in_chunks, calls) = receive_all(&mut chunked, input);
    assert!(calls > 10, "{calls} calls");
    assert_eq!(
        String::from_utf8_lossy(&in_chunks),
        String::from_utf8_lossy(&at_once)
    );
    let text = String::from_utf8_lossy(&at_once);
    for tag in ["c OK FETCH", "d OK", "e OK UID FETCH", "f OK FETCH"] {
        assert!(text.contains(tag), "{tag} missing");
    }
    assert_eq!(text.matches("* 30 FETCH").count(), 2);
}

#[test]
fn commands_sent_behind_a_chunked_fetch_wait_for_its_tagged_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    for i in 0..10 {
        store
            .deliver("alice", None, &mut &message(i)[..], None)
            .unwrap();
    }
    let mut s = session(&store);
    s.set_output_chunk(1);
    let first = s.receive(b"c FETCH 1:* (BODY.PEEK[])\r\nd NOOP\r\n");
    let text = String::from_utf8_lossy(&first.bytes).into_owned();
    assert!(text.starts_with("* 1 FETCH (BODY[] {"), "{text}");
    assert!(!text.contains("* 2 FETCH"), "{text}");
    assert!(s.has_more());
    let (rest, _) = receive_all(&mut s, b"");
    let rest = String::from_utf8_lossy(&rest);
    let ok = rest.find("c OK FETCH completed").unwrap();
    let noop = rest.find("d OK").unwrap();
    assert!(rest.find("* 10 FETCH").unwrap() < ok);
    assert!(ok < noop);
    assert!(!s.has_more());
}

/// The RFC822.SIZE in a response, and the length of the literal that follows `label`.
fn size_and_literal(text: &str, label: &str) -> (usize, usize) {
    let size: usize = text
        .split("RFC822.SIZE ")
        .nth(1)
        .and_then(|rest| rest.split([' ', ')']).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no RFC822.SIZE in {text}"));
    let literal: usize = text
        .split(&format!("{label} {{"))
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {label} literal in {text}"));
    (size, literal)
}

#[test]
fn rfc822_size_of_a_bare_lf_file_counts_crlf_also_when_only_the_header_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let raw = b"Subject: bare\nFrom: x@example.net\n\none\ntwo\nthree\n";
    store
        .deliver("alice", None, &mut &raw[..], Some("bare1"))
        .unwrap();
    let with_crlf = raw.len() + raw.iter().filter(|&&b| b == b'\n').count();

    // First read: the size is counted from the whole file.
    let mut s = session(&store);
    let out = s.receive(b"c FETCH 1 (RFC822.SIZE BODY.PEEK[])\r\n");
    let (size, literal) = size_and_literal(&String::from_utf8_lossy(&out.bytes), "BODY[]");
    assert_eq!((size, literal), (with_crlf, with_crlf));

    // Another session: the header is read alone, the size is the one counted before.
    let mut s = session(&store);
    let out = s.receive(b"c FETCH 1 (RFC822.SIZE BODY.PEEK[HEADER])\r\n");
    let text = String::from_utf8_lossy(&out.bytes).into_owned();
    let (size, header) = size_and_literal(&text, "BODY[HEADER]");
    assert_eq!(size, with_crlf);
    assert_eq!(header, "Subject: bare\r\nFrom: x@example.net\r\n\r\n".len());

    // The file replaced by hand with one of another length: counted anew.
    let path = dir.path().join("mail/alice/new/bare1");
    let longer = b"Subject: bare\nFrom: x@example.net\n\none\ntwo\nthree\nfour\n";
    std::fs::write(&path, longer).unwrap();
    let mut s = session(&store);
    let out = s.receive(b"c FETCH 1 (RFC822.SIZE BODY.PEEK[HEADER])\r\n");
    let (size, _) = size_and_literal(&String::from_utf8_lossy(&out.bytes), "BODY[HEADER]");
    assert_eq!(
        size,
        longer.len() + longer.iter().filter(|&&b| b == b'\n').count()
    );
}

#[test]
fn search_larger_uses_the_crlf_size() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    // 20 bytes in the file, 24 with CRLF.
    store
        .deliver("alice", None, &mut &b"Subject: a\n\n1\n2\n3\n4\n"[..], None)
        .unwrap();
    let mut s = session(&store);
    let out = s.receive(b"c SEARCH LARGER 22\r\nd SEARCH SMALLER 22\r\n");
    let text = String::from_utf8_lossy(&out.bytes);
    assert!(text.contains("* SEARCH 1\r\nc OK"), "{text}");
    assert!(text.contains("* SEARCH\r\nd OK"), "{text}");
}
