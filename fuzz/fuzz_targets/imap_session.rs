//! The IMAP command path (postroom-imap `Session`: framing, literals, imap-codec parsing,
//! dispatch) over a real Maildir++ store.
//!
//! Input: byte 0 bit 0 = implicit TLS (LOGIN allowed at once), bit 1 = small limits (1 KiB
//! literals, 256-byte lines); byte 1 seeds how the client bytes are cut into reads; the rest is
//! what the client sends. Two stores (one per process, renewed every few thousand runs and
//! whenever the two runs may have diverged) hold user alice (password dev-password) with the
//! messages of shared/cases; one run feeds the bytes whole to a session on store A, the other
//! cut into reads to a session on store B, so both stores see the same commands in the same
//! order. Checked, besides "never panics":
//! - the output is a sequence of responses, each `* ...`, `+ ...` or `TAG OK|NO|BAD ...`, with
//!   CRLF line ends, where a line ending in `{n}` is followed by n bytes of literal data;
//! - the tagged results (tag and OK/NO/BAD, in order) do not depend on how the input was cut
//!   (case imap-idle-done-pipelined: nothing after `DONE` is lost), up to a STARTTLS, which
//!   drops what was pipelined behind it; literals, over-long lines and limits included. Texts
//!   are not compared: they carry UIDVALIDITY and dates, which differ between the two stores.

#![no_main]

use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use postroom_fuzz::cut;
use postroom_imap::{Action, Limits, Session};
use postroom_maildir::Store;
use postroom_maildir::access::{LoginLimiter, StaticUsers};

const MESSAGES: &[&[u8]] = &[
    include_bytes!("../../../shared/cases/mime-latin2-encoded-words.eml"),
    include_bytes!("../../../shared/cases/mime-no-headers.eml"),
    include_bytes!("../../../shared/cases/mime-unterminated-multipart.eml"),
    include_bytes!("../../../shared/cases/mime-long-line.eml"),
];

/// Runs after which both stores are made anew, so that what the fuzzer appends and creates
/// does not pile up.
const RENEW_AFTER: u32 = 2000;

struct Stores {
    _dir: tempfile::TempDir,
    a: Store,
    b: Store,
    runs: u32,
}

fn stores() -> Stores {
    let dir = tempfile::tempdir().expect("temporary directory");
    let open = |name: &str| {
        let db = redb::Database::create(dir.path().join(format!("{name}.redb"))).expect("redb");
        let store = Store::open(dir.path().join(name), Arc::new(db)).expect("store");
        store.create_user("alice").expect("user alice");
        for message in MESSAGES {
            store
                .deliver("alice", None, &mut &message[..], None)
                .expect("deliver");
        }
        store
    };
    let (a, b) = (open("a"), open("b"));
    Stores {
        _dir: dir,
        a,
        b,
        runs: 0,
    }
}

fn shared() -> &'static Mutex<Option<Stores>> {
    static STORES: OnceLock<Mutex<Option<Stores>>> = OnceLock::new();
    STORES.get_or_init(|| Mutex::new(None))
}

fuzz_target!(|input: &[u8]| {
    let [flags, seed, client @ ..] = input else {
        return;
    };
    let tls = flags & 1 != 0;
    let limits = if flags & 2 != 0 {
        Limits {
            max_literal: 1024,
            max_line: 256,
        }
    } else {
        Limits::default()
    };

    let mut guard = shared().lock().unwrap_or_else(|e| e.into_inner());
    if guard.as_ref().is_none_or(|s| s.runs >= RENEW_AFTER) {
        *guard = None;
        *guard = Some(stores());
    }
    let Some(stores) = guard.as_mut() else {
        return;
    };
    stores.runs += 1;

    let whole = run(&stores.a, tls, &limits, &[client]);
    let pieces = run(&stores.b, tls, &limits, &cut(client, *seed));
    let whole_results = responses(&whole.out);
    let pieces_results = responses(&pieces.out);

    if whole.tls_at.is_some() {
        // What was pipelined behind STARTTLS is dropped in one run and not in the other, so A
        // and B may have seen different commands: both start afresh next time.
        stores.runs = RENEW_AFTER;
    }
    let (a, b) = match (whole.tls_at, pieces.tls_at) {
        (None, None) => (
            tagged(&whole_results, usize::MAX),
            tagged(&pieces_results, usize::MAX),
        ),
        (Some(a), Some(b)) => (tagged(&whole_results, a), tagged(&pieces_results, b)),
        _ => panic!("STARTTLS seen in one run only"),
    };
    assert_eq!(
        a,
        b,
        "tagged results depend on how the input was cut\n--- whole:\n{}\n--- in pieces:\n{}",
        show(&whole.out[..whole.out.len().min(2000)]),
        show(&pieces.out[..pieces.out.len().min(2000)])
    );
});

#[derive(Default)]
struct Log {
    out: Vec<u8>,
    /// How many responses had been sent when STARTTLS was answered.
    tls_at: Option<usize>,
}

fn run(store: &Store, tls: bool, limits: &Limits, reads: &[&[u8]]) -> Log {
    let users = StaticUsers(vec![("alice".into(), "dev-password".into())]);
    let peer: IpAddr = [192, 0, 2, 1].into();
    let limiter = Arc::new(LoginLimiter::default());
    let mut session = Session::new(
        store.clone(),
        Arc::new(users),
        limiter,
        limits.clone(),
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
                if log.tls_at.is_none() {
                    log.tls_at = Some(responses(&log.out).len());
                }
                session.tls_started();
            }
            Action::Close => break,
        }
    }
    log
}

/// The tagged results among the first `count` responses.
fn tagged(results: &[String], count: usize) -> Vec<&str> {
    results
        .iter()
        .take(count)
        .map(String::as_str)
        .filter(|r| !r.is_empty())
        .collect()
}

/// Parses the server's output into responses, checking their form, and returns for each
/// tagged one `TAG STATUS` and for each other an empty string.
fn responses(out: &[u8]) -> Vec<String> {
    let mut results = Vec::new();
    let mut rest = out;
    while !rest.is_empty() {
        // One response: lines joined by literals.
        let start = rest;
        let mut len = 0;
        loop {
            let line_end = find_crlf(&rest[len..]).unwrap_or_else(|| {
                panic!(
                    "response not ended with CRLF: {:?}",
                    show(&start[..start.len().min(200)])
                )
            });
            let line = &rest[len..len + line_end];
            assert!(
                !line.contains(&b'\n'),
                "bare LF in a response line: {:?}",
                show(line)
            );
            len += line_end + 2;
            match literal_length(line) {
                Some(n) => {
                    assert!(rest.len() >= len + n, "literal of {n} bytes cut short");
                    len += n;
                }
                None => break,
            }
        }
        let response = &rest[..len];
        rest = &rest[len..];
        results.push(classify(response));
    }
    results
}

fn classify(response: &[u8]) -> String {
    if response.starts_with(b"* ") || response.starts_with(b"+") {
        return String::new();
    }
    let text = String::from_utf8_lossy(response);
    let mut words = text.splitn(3, ' ');
    let tag = words.next().unwrap_or_default();
    let status = words.next().unwrap_or_default();
    assert!(
        !tag.is_empty() && matches!(status, "OK" | "NO" | "BAD"),
        "neither untagged, continuation nor tagged result: {:?}",
        show(response)
    );
    format!("{tag} {status}")
}

/// `n` when a line ends with the literal announcement `{n}` (or `~{n}`, RFC 3516).
fn literal_length(line: &[u8]) -> Option<usize> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let digits = &inner[open + 1..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn find_crlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|w| w == b"\r\n")
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).chars().take(2000).collect()
}
