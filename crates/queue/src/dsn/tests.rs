//! The notices are read back with mail-parser, as a mail client would read them.

use mail_parser::{MessageParser, MimeHeaders, PartType};

use super::*;

const ORIGINAL: &[u8] = b"Received: from pc1 by gw\r\nFrom: alice@office.example\r\n\
To: bob@elsewhere.example\r\nSubject: quarterly numbers\r\n\r\nHello Bob,\r\n.dotline\r\n";

fn failure(original: &[u8], headers_only: bool) -> Vec<u8> {
    build(&Notice {
        kind: NoticeKind::Failure,
        reporting_mta: "gw.office.example",
        queue_id: QueueId(0xabc),
        arrived: 1_764_000_000,
        now: 1_764_000_600,
        retry_until: 0,
        sender: "alice@office.example",
        recipients: vec![NoticeRecipient {
            address: "bob@elsewhere.example".into(),
            status: "5.1.1".into(),
            diagnostic: "550 5.1.1 <bob@elsewhere.example>: Recipient address rejected: \
                         User unknown"
                .into(),
            diagnostic_is_smtp: true,
            remote_mta: Some("smarthost.isp.example".into()),
        }],
        original,
        headers_only,
    })
}

#[test]
fn failure_notice_is_a_multipart_report_with_the_remote_reply() {
    let bytes = failure(ORIGINAL, false);
    let msg = MessageParser::default()
        .parse(&bytes)
        .expect("the notice parses");

    let ct = msg.content_type().expect("Content-Type");
    assert_eq!(ct.ctype(), "multipart");
    assert_eq!(ct.subtype(), Some("report"));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    assert_eq!(msg.subject(), Some("Undelivered Mail Returned to Sender"));
    assert_eq!(
        msg.to().and_then(|a| a.first()).and_then(|a| a.address()),
        Some("alice@office.example")
    );

    let status = msg
        .parts
        .iter()
        .find(|p| {
            p.content_type()
                .is_some_and(|c| c.subtype() == Some("delivery-status"))
        })
        .expect("a message/delivery-status part");
    let text = String::from_utf8_lossy(status.contents());
    assert!(
        text.contains("Reporting-MTA: dns; gw.office.example"),
        "{text}"
    );
    assert!(
        text.contains("Final-Recipient: rfc822; bob@elsewhere.example"),
        "{text}"
    );
    assert!(text.contains("Action: failed"), "{text}");
    assert!(text.contains("Status: 5.1.1"), "{text}");
    assert!(
        text.contains("Remote-MTA: dns; smarthost.isp.example"),
        "{text}"
    );
    assert!(
        text.contains("Diagnostic-Code: smtp; 550 5.1.1 <bob@elsewhere.example>: Recipient"),
        "{text}"
    );

    let returned = msg
        .parts
        .iter()
        .find_map(|p| match &p.body {
            PartType::Message(m) => Some(m),
            _ => None,
        })
        .expect("the original as message/rfc822");
    assert_eq!(returned.subject(), Some("quarterly numbers"));
    assert!(returned.raw_message().ends_with(b".dotline\r\n"));
}

#[test]
fn large_original_or_ret_hdrs_returns_only_the_headers() {
    let mut big = ORIGINAL.to_vec();
    big.extend(std::iter::repeat_n(b'x', RETURN_FULL_LIMIT));
    for bytes in [failure(&big, false), failure(ORIGINAL, true)] {
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("Content-Type: text/rfc822-headers"));
        assert!(text.contains("Subject: quarterly numbers"));
        assert!(!text.contains("Hello Bob"));
    }
}

#[test]
fn delay_notice_says_delayed_and_until_when() {
    let bytes = build(&Notice {
        kind: NoticeKind::Delay,
        reporting_mta: "gw.office.example",
        queue_id: QueueId(1),
        arrived: 0,
        now: 4 * 3_600,
        retry_until: 5 * 86_400,
        sender: "alice@office.example",
        recipients: vec![NoticeRecipient {
            address: "bob@elsewhere.example".into(),
            status: "4.4.1".into(),
            diagnostic: "connection refused".into(),
            diagnostic_is_smtp: false,
            remote_mta: None,
        }],
        original: ORIGINAL,
        headers_only: true,
    });
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("Action: delayed"));
    assert!(text.contains("Will-Retry-Until: Tue, 06 Jan 1970 00:00:00 +0000"));
    assert!(text.contains("Diagnostic-Code: x-postroom; connection refused"));
    let msg = MessageParser::default().parse(&bytes).unwrap();
    assert_eq!(msg.content_type().unwrap().subtype(), Some("report"));
}

#[test]
fn long_diagnostic_is_folded_under_the_line_limit() {
    let long = "x ".repeat(1_000);
    let bytes = build(&Notice {
        recipients: vec![NoticeRecipient {
            address: "b@x".into(),
            status: "5.0.0".into(),
            diagnostic: format!("550 {long}"),
            diagnostic_is_smtp: true,
            remote_mta: None,
        }],
        ..Notice {
            kind: NoticeKind::Failure,
            reporting_mta: "gw",
            queue_id: QueueId(2),
            arrived: 0,
            now: 0,
            retry_until: 0,
            sender: "a@b",
            recipients: vec![],
            original: ORIGINAL,
            headers_only: false,
        }
    });
    assert!(bytes.split(|&b| b == b'\n').all(|l| l.len() < 998));
}

#[test]
fn dates_are_rfc5322() {
    assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
    assert_eq!(
        rfc5322_date(1_796_315_286),
        "Thu, 03 Dec 2026 16:28:06 +0000"
    );
    assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
}
