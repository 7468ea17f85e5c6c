//! Bugs found by the fuzz targets in fuzz/ (mime_summary), one test each, named after the bug.
//! The inputs are kept under fuzz/regressions/mime_summary/.

use postroom_queue::summary::from_and_subject;

/// An RFC 2047 encoded word can carry CR LF (`=0D=0A` in Q, or inside base64); decoded as-is
/// it split the queue list's one-line From and Subject, so a sender could forge extra lines.
#[test]
fn encoded_line_break_in_summary_is_shown_as_space() {
    let head =
        b"Subject: =?utf-8?q?a=0D=0Ab?=\r\nFrom: =?utf-8?b?WA0KWQ==?= <a@b.example>\r\n\r\nx\r\n";
    let (from, subject) = from_and_subject(head);
    assert_eq!(from.as_deref(), Some("X  Y <a@b.example>"));
    assert_eq!(subject.as_deref(), Some("a  b"));
}
