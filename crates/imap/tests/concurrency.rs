//! IMAP and POP3 sessions on one mailbox while messages are delivered: nothing lost, nothing
//! corrupted, UIDs unique and stable.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use postroom_maildir::Store;
use postroom_maildir::access::{LoginLimiter, StaticUsers};

const MESSAGES: usize = 60;

fn message(i: usize) -> Vec<u8> {
    format!(
        "Subject: message {i}\r\nMessage-ID: <{i}@test>\r\n\r\n{}\r\n",
        "x".repeat(i * 37)
    )
    .into_bytes()
}

fn imap(store: &Store) -> postroom_imap::Session {
    let users = Arc::new(StaticUsers(vec![("alice".into(), "secret".into())]));
    let peer: IpAddr = "127.0.0.1".parse().unwrap();
    let limiter = Arc::new(LoginLimiter::default());
    let mut s = postroom_imap::Session::new(
        store.clone(),
        users,
        limiter,
        Default::default(),
        peer,
        true,
    );
    let out = s.receive(b"a LOGIN alice secret\r\nb SELECT INBOX\r\n");
    assert!(String::from_utf8_lossy(&out.bytes).contains("b OK"));
    s
}

fn text(out: postroom_imap::Output) -> String {
    String::from_utf8_lossy(&out.bytes).into_owned()
}

#[test]
fn imap_and_pop3_sessions_with_concurrent_delivery_lose_and_corrupt_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(redb::Database::create(dir.path().join("mail.redb")).unwrap());
    let store = Store::open(dir.path().join("mail"), db).unwrap();
    store.create_user("alice").unwrap();
    let done = Arc::new(AtomicBool::new(false));

    let deliverer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for i in 0..MESSAGES {
                store
                    .deliver(
                        "alice",
                        None,
                        &mut &message(i)[..],
                        Some(&format!("m{i:03}")),
                    )
                    .unwrap();
            }
        })
    };
    let flagger = {
        let store = store.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut s = imap(&store);
            let mut round = 0;
            while !done.load(Ordering::Relaxed) {
                let sign = if round % 2 == 0 { '+' } else { '-' };
                let out = text(s.receive(
                    format!("f{round} STORE 1:* {sign}FLAGS (\\Seen \\Flagged)\r\n").as_bytes(),
                ));
                assert!(
                    out.contains(&format!("f{round} OK")) || out.contains(&format!("f{round} BAD")),
                    "{out}"
                );
                round += 1;
            }
        })
    };
    let reader = {
        let store = store.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut s = imap(&store);
            let mut round = 0;
            while !done.load(Ordering::Relaxed) {
                let out = text(
                    s.receive(
                        format!("r{round} UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n")
                            .as_bytes(),
                    ),
                );
                assert!(out.contains(&format!("r{round} OK")), "{out}");
                round += 1;
            }
        })
    };
    let pop = {
        let store = store.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let users = Arc::new(StaticUsers(vec![("alice".into(), "secret".into())]));
            let peer: IpAddr = "127.0.0.1".parse().unwrap();
            while !done.load(Ordering::Relaxed) {
                let mut s = postroom_pop3::Session::new(
                    store.clone(),
                    users.clone(),
                    Arc::new(LoginLimiter::default()),
                    peer,
                    true,
                );
                let out = s.receive(b"USER alice\r\nPASS secret\r\nRETR 1\r\nQUIT\r\n");
                let out = String::from_utf8_lossy(&out.bytes).into_owned();
                assert!(out.contains("+OK") && !out.contains("-ERR [SYS"), "{out}");
            }
        })
    };

    deliverer.join().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    done.store(true, Ordering::Relaxed);
    flagger.join().unwrap();
    reader.join().unwrap();
    pop.join().unwrap();

    // Every message is there once, byte for byte, with UIDs 1..=MESSAGES in delivery order.
    let snap = store
        .mailbox("alice", "INBOX")
        .unwrap()
        .snapshot(false)
        .unwrap();
    assert_eq!(snap.messages.len(), MESSAGES);
    for (i, m) in snap.messages.iter().enumerate() {
        assert_eq!(m.unique, format!("m{i:03}"));
        assert_eq!(std::fs::read(&m.path).unwrap(), message(i), "message {i}");
    }
    let uids: Vec<u32> = snap.messages.iter().map(|m| m.uid).collect();
    assert_eq!(uids, (1..=MESSAGES as u32).collect::<Vec<_>>());
    assert_eq!(
        std::fs::read_dir(store.root().join("alice/tmp"))
            .unwrap()
            .count(),
        0
    );

    // A new session sees the same.
    let mut s = imap(&store);
    let out = text(s.receive(b"c UID SEARCH ALL\r\n"));
    let expected: Vec<String> = (1..=MESSAGES).map(|n| n.to_string()).collect();
    assert!(
        out.contains(&format!("* SEARCH {}\r\n", expected.join(" "))),
        "{out}"
    );
}
