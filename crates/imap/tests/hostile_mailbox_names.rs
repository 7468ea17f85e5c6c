//! Mailbox names and commands from a hostile IMAP client, found by poking a running appliance:
//! each gets a tagged NO or BAD, nothing escapes the user's Maildir, and no reply shows a path of
//! the server.

use std::net::IpAddr;
use std::sync::Arc;

use postroom_imap::{Limits, Session};
use postroom_maildir::Store;
use postroom_maildir::access::{LoginLimiter, StaticUsers};

fn setup() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(redb::Database::create(dir.path().join("mail.redb")).unwrap());
    let store = Store::open(dir.path().join("mail"), db).unwrap();
    store.create_user("alice").unwrap();
    store.create_user("bob").unwrap();
    (dir, store)
}

fn logged_in(store: &Store) -> Session {
    let users = StaticUsers(vec![("alice".into(), "secret".into())]);
    let peer: IpAddr = "127.0.0.1".parse().unwrap();
    let limiter = Arc::new(LoginLimiter::default());
    let mut s = Session::new(
        store.clone(),
        Arc::new(users),
        limiter,
        Limits::default(),
        peer,
        true,
    );
    let out = send(&mut s, "a LOGIN alice secret\r\n");
    assert!(out.contains("a OK"), "{out}");
    s
}

fn send(session: &mut Session, input: &str) -> String {
    String::from_utf8_lossy(&session.receive(input.as_bytes()).bytes).into_owned()
}

/// Every directory under the store's root, relative to it.
fn dirs(store: &Store) -> Vec<String> {
    fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(store.root(), store.root(), &mut out);
    out.sort();
    out
}

#[test]
fn overlong_mailbox_name_is_refused_without_showing_the_servers_path() {
    let (dir, store) = setup();
    let mut s = logged_in(&store);
    let root = dir.path().display().to_string();

    let long = "A".repeat(5000);
    for command in [
        format!("c1 CREATE \"{long}\"\r\n"),
        format!("c2 CREATE \"x.{long}\"\r\n"),
        format!("c3 SELECT \"{long}\"\r\n"),
        format!("c4 RENAME INBOX \"{long}\"\r\n"),
        format!("c5 APPEND \"{long}\" {{3+}}\r\nabc\r\n"),
    ] {
        let out = send(&mut s, &command);
        let tag = &command[..2];
        assert!(
            out.starts_with(&format!("{tag} NO ")) || out.starts_with(&format!("{tag} BAD ")),
            "{}: {}",
            &command[..20],
            &out[..out.len().min(200)]
        );
        assert!(
            !out.contains(&root),
            "the reply shows the server's path: {}",
            &out[..200]
        );
    }

    let out = send(&mut s, "c6 NOOP\r\n");
    assert!(out.ends_with("c6 OK NOOP completed\r\n"), "{out}");
}

#[test]
fn longest_mailbox_name_that_fits_a_directory_name_still_works() {
    let (_dir, store) = setup();
    let mut s = logged_in(&store);
    // The directory is "." and the name: 255 bytes in all.
    let name = "B".repeat(254);
    let out = send(&mut s, &format!("c1 CREATE \"{name}\"\r\n"));
    assert_eq!(out, "c1 OK CREATE completed\r\n");
    let out = send(&mut s, &format!("c2 CREATE \"{name}B\"\r\n"));
    assert!(out.starts_with("c2 NO "), "{out}");
}

#[test]
fn traversal_in_mailbox_names_stays_inside_the_users_maildir() {
    let (_dir, store) = setup();
    let mut s = logged_in(&store);
    let before = dirs(&store);

    for (i, name) in [
        "../../etc",
        "..",
        ".",
        "/",
        "/etc",
        "a/b",
        "../bob",
        "INBOX/../../x",
        "&AC8-etc",
        "&AC4ALg-",
        "&AC4ALgAv-bob",
        "",
    ]
    .iter()
    .enumerate()
    {
        for verb in ["CREATE", "SELECT", "DELETE", "STATUS"] {
            let args = if verb == "STATUS" { " (MESSAGES)" } else { "" };
            let out = send(&mut s, &format!("t{i} {verb} \"{name}\"{args}\r\n"));
            let tagged = out.lines().last().unwrap_or_default().to_owned();
            assert!(
                tagged.starts_with(&format!("t{i} NO")) || tagged.starts_with(&format!("t{i} BAD")),
                "{verb} {name:?}: {out}"
            );
        }
        let out = send(&mut s, &format!("r{i} RENAME INBOX \"{name}\"\r\n"));
        assert!(!out.contains(" OK "), "RENAME INBOX {name:?}: {out}");
    }

    assert_eq!(dirs(&store), before, "a directory was made or removed");
}
