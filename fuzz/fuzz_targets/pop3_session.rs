//! The POP3 session core (postroom-pop3) over a real Maildir++ store.
//!
//! Input: byte 0 bit 0 = implicit TLS (USER/PASS/AUTH allowed at once), byte 1 seeds how the
//! client bytes are cut into reads, the rest is what the client sends. The store (one per
//! process, in a temporary directory) holds user alice (password dev-password) with the
//! messages of shared/cases and one with a `.hidden` body line; it is filled again whenever a
//! run's QUIT removed something, so every run starts from the same maildrop. Checked, besides
//! "never panics":
//! - the output is CRLF lines only, and each command line gets exactly one response: `+OK`,
//!   `-ERR`, or `+ ` for the SASL challenge; the multi-line ones (CAPA, LIST and UIDL without
//!   argument, RETR, TOP) end with a lone `.` and dot-stuff every line that starts with `.`
//!   (RFC 1939 section 3, case pop3-dot-stuffing);
//! - QUIT is answered `+OK` in every state (case pop3-quit-answers) unless the removal failed;
//! - the same bytes cut into different reads give the same output (UIDL values aside, which a
//!   refill renews), up to an STLS, after which bytes pipelined behind it are dropped by design.

#![no_main]

use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use postroom_fuzz::{crlf_lines, cut};
use postroom_maildir::Store;
use postroom_maildir::access::{LoginLimiter, StaticUsers};
use postroom_pop3::{Action, Session};

/// The maildrop every run starts from.
const MESSAGES: &[&[u8]] = &[
    include_bytes!("../../../shared/cases/mime-latin2-encoded-words.eml"),
    include_bytes!("../../../shared/cases/mime-no-headers.eml"),
    include_bytes!("../../../shared/cases/mime-unterminated-multipart.eml"),
    b"Subject: dots\r\n\r\n.hidden\r\n..two\r\n.\r\nend\r\n",
    b"Subject: bare LF\n\nline one\nline two\n",
];

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
}

fn fixture() -> &'static Mutex<Fixture> {
    static FIXTURE: OnceLock<Mutex<Fixture>> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary directory");
        let db = redb::Database::create(dir.path().join("mail.redb")).expect("mail.redb");
        let store = Store::open(dir.path().join("mail"), Arc::new(db)).expect("store");
        store.create_user("alice").expect("user alice");
        let fixture = Fixture { _dir: dir, store };
        refill(&fixture.store);
        Mutex::new(fixture)
    })
}

/// Empties alice's INBOX and delivers [`MESSAGES`] again.
fn refill(store: &Store) {
    let inbox = store.mailbox("alice", "INBOX").expect("INBOX");
    let present: Vec<String> = inbox
        .snapshot(false)
        .expect("snapshot")
        .messages
        .into_iter()
        .map(|m| m.unique)
        .collect();
    inbox.expunge(&present).expect("expunge");
    for message in MESSAGES {
        store
            .deliver("alice", None, &mut &message[..], None)
            .expect("deliver");
    }
}

fuzz_target!(|input: &[u8]| {
    let [flags, seed, client @ ..] = input else {
        return;
    };
    let tls = flags & 1 != 0;
    let fixture = fixture().lock().unwrap_or_else(|e| e.into_inner());

    let whole = run(&fixture.store, tls, &[client]);
    let pieces = run(&fixture.store, tls, &cut(client, *seed));
    check_responses(client, &whole);

    let (a, b) = match (whole.tls_at, pieces.tls_at) {
        (None, None) => (&whole.out[..], &pieces.out[..]),
        (Some(a), Some(b)) => (&whole.out[..a], &pieces.out[..b]),
        _ => panic!("STLS seen in one run only"),
    };
    assert_eq!(
        uidls_masked(a),
        uidls_masked(b),
        "output depends on how the input was cut"
    );
});

/// The output as text with the UIDL values masked: a refill after QUIT delivers the same
/// messages under new UIDs, so the two runs of one input may see different ones.
fn uidls_masked(out: &[u8]) -> String {
    let text = String::from_utf8_lossy(out);
    let mut masked = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches("\r\n");
        let listing = body.strip_prefix("+OK ").unwrap_or(body);
        match listing.split_once(' ') {
            Some((n, uidl))
                if n.bytes().all(|b| b.is_ascii_digit())
                    && uidl.len() == 16
                    && uidl.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                masked.push_str(&line.replace(uidl, "UIDL"));
            }
            _ => masked.push_str(line),
        }
    }
    masked
}

#[derive(Default)]
struct Log {
    out: Vec<u8>,
    /// Output length when the first STLS was answered.
    tls_at: Option<usize>,
    closed: bool,
}

fn run(store: &Store, tls: bool, reads: &[&[u8]]) -> Log {
    let users = StaticUsers(vec![("alice".into(), "dev-password".into())]);
    let peer: IpAddr = [192, 0, 2, 1].into();
    let mut session = Session::new(
        store.clone(),
        Arc::new(users),
        Arc::new(LoginLimiter::default()),
        peer,
        tls,
    );
    let mut log = Log {
        out: session.greeting(),
        ..Log::default()
    };
    for read in reads {
        let output = session.receive(read);
        log.out.extend_from_slice(&output.bytes);
        match output.action {
            Action::Continue => {}
            Action::StartTls => {
                log.tls_at.get_or_insert(log.out.len());
                session.tls_started();
            }
            Action::Close => {
                log.closed = true;
                break;
            }
        }
    }
    if log.closed && contains(&log.out, b" messages removed, bye\r\n") {
        refill(store);
    }
    log
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Walks the client's command lines and the server's responses side by side.
fn check_responses(client: &[u8], log: &Log) {
    let lines = crlf_lines(&log.out);
    let mut responses = lines.iter();
    assert_eq!(
        responses.next().copied(),
        Some(&b"+OK Postroom POP3 ready"[..])
    );

    // Command lines as the session frames them: up to LF, less a CR before it.
    let mut commands: Vec<&[u8]> = client.split_inclusive(|&b| b == b'\n').collect();
    if commands.last().is_some_and(|l| !l.ends_with(b"\n")) {
        commands.pop();
    }
    let mut challenged = false;
    for command in commands {
        if log.tls_at.is_some() {
            // STLS drops what was pipelined behind it; the check stops there.
            return;
        }
        let command = command.strip_suffix(b"\n").unwrap_or(command);
        let command = command.strip_suffix(b"\r").unwrap_or(command);
        let Some(first) = responses.next() else {
            // Closed (QUIT, too long a line) or STLS: no more responses.
            assert!(
                log.closed || log.tls_at.is_some(),
                "no response to {:?}",
                show(command)
            );
            return;
        };
        let ok = first.starts_with(b"+OK");
        assert!(
            ok || first.starts_with(b"-ERR") || *first == b"+ ",
            "not a POP3 response: {:?} to {:?}",
            show(first),
            show(command)
        );
        if challenged {
            challenged = false;
            continue;
        }
        challenged = *first == b"+ ";
        let text = String::from_utf8_lossy(command);
        let (verb, arg) = text.split_once(' ').unwrap_or((&text, ""));
        let verb = verb.to_ascii_uppercase();
        if verb == "QUIT" {
            assert!(
                ok || first.starts_with(b"-ERR [SYS/TEMP]"),
                "QUIT not answered +OK: {:?}",
                show(first)
            );
        }
        let no_args = arg.split_whitespace().next().is_none();
        let multi = ok
            && match verb.as_str() {
                "CAPA" | "RETR" | "TOP" => true,
                "LIST" | "UIDL" => no_args,
                _ => false,
            };
        if multi {
            loop {
                let line = responses.next().unwrap_or_else(|| {
                    panic!("multi-line response to {:?} not ended", show(command))
                });
                if *line == b"." {
                    break;
                }
                if line.starts_with(b".") {
                    assert!(
                        line.starts_with(b".."),
                        "line not dot-stuffed: {:?}",
                        show(line)
                    );
                }
            }
        }
    }
    if let Some(extra) = responses.next() {
        assert!(
            *extra == b"-ERR line too long" && log.closed,
            "response without a command: {:?}",
            show(extra)
        );
    }
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).chars().take(120).collect()
}
