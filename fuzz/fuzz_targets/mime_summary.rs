//! The MIME header decoding Postroom shows to people (postroom-queue `summary`, over
//! mail-parser): From and Subject of a queued message, RFC 2047 encoded words decoded.
//!
//! Input: the first bytes of a message. Checked, besides "never panics" and "never hangs":
//! - what is shown is one line: no CR or LF survives decoding (a folded or encoded line break
//!   must not break the queue list or a fax cover sheet);
//! - the summary does not depend on CRLF versus LF line endings, as Maildir files have LF and
//!   spool files CRLF.

#![no_main]

use libfuzzer_sys::fuzz_target;
use postroom_queue::summary::{HEAD_LIMIT, from_and_subject};

fuzz_target!(|input: &[u8]| {
    let head = &input[..input.len().min(HEAD_LIMIT)];
    let (from, subject) = from_and_subject(head);
    for shown in [&from, &subject].into_iter().flatten() {
        assert!(
            !shown.contains(['\r', '\n']),
            "line break in a one-line summary: {shown:?}"
        );
    }

    // Only for text whose line ends are all CRLF, and where no CR or LF is encoded inside
    // a word, is the LF form the same message.
    if !head.contains(&b'\r')
        || has_bare(head)
        || head
            .windows(3)
            .any(|w| w.eq_ignore_ascii_case(b"=0d") || w.eq_ignore_ascii_case(b"=0a"))
    {
        return;
    }
    let lf: Vec<u8> = head.iter().copied().filter(|&b| b != b'\r').collect();
    assert_eq!(
        from_and_subject(&lf),
        (from, subject),
        "CRLF and LF forms differ"
    );
});

/// True when a CR is not followed by LF or an LF not preceded by CR.
fn has_bare(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().any(|(i, &b)| match b {
        b'\r' => bytes.get(i + 1) != Some(&b'\n'),
        b'\n' => i == 0 || bytes[i - 1] != b'\r',
        _ => false,
    })
}
