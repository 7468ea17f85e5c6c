//! Bugs found by the fuzz targets in fuzz/ (smtp_session), one test each, named after the bug.
//! The crashing inputs are kept under fuzz/regressions/smtp_session/.

use postroom_smtp::{Event, Session, SessionConfig};

fn config() -> SessionConfig {
    SessionConfig {
        hostname: "mx.office.example".into(),
        max_command_line: 80,
        ..Default::default()
    }
}

/// Feeds `reads` one by one, polling after each; returns everything sent and the last event.
fn replies(session: &mut Session, reads: &[&[u8]]) -> (String, &'static str) {
    let mut out = Vec::new();
    let mut last = "NeedInput";
    for read in reads {
        session.receive(read);
        let event = session.poll();
        out.extend_from_slice(session.output());
        session.clear_output();
        last = match event {
            Event::NeedInput => "NeedInput",
            Event::Close => "Close",
            other => panic!("unexpected event {other:?}"),
        };
        if last == "Close" {
            break;
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), last)
}

/// An over-long command line that arrived whole, LF included, was answered 500, and then the
/// next command in the same read was dropped without a reply as if it were the long line's
/// tail. The same bytes in other reads got that command answered.
#[test]
fn over_long_line_in_one_read_does_not_swallow_the_next_command() {
    let long = format!("EHLO {}\r\n", "x".repeat(200));
    let input = format!("{long}NOOP\r\n");

    let mut whole = Session::new(config());
    let (whole_out, _) = replies(&mut whole, &[input.as_bytes()]);
    let mut split = Session::new(config());
    let (split_out, _) = replies(
        &mut split,
        &[
            &long.as_bytes()[..100],
            &long.as_bytes()[100..],
            b"NOOP\r\n",
        ],
    );

    let codes: Vec<&str> = whole_out.lines().map(|l| &l[..3]).collect();
    assert_eq!(codes, ["220", "500", "250"]);
    assert_eq!(whole_out, split_out);
}

/// An over-long line that used up the last error allowed wrote the 421 but the session said
/// NeedInput instead of Close, so a driver kept reading (and its timer added a second 421).
#[test]
fn over_long_line_using_up_the_last_error_closes_at_once() {
    let mut session = Session::new(SessionConfig {
        max_errors: 1,
        ..config()
    });
    let long = format!("EHLO {}\r\n", "x".repeat(200));
    let (out, last) = replies(&mut session, &[long.as_bytes()]);
    assert_eq!(last, "Close");
    assert!(
        out.ends_with("421 4.7.0 Too many errors, closing connection\r\n"),
        "{out}"
    );

    let mut session = Session::new(SessionConfig {
        max_errors: 1,
        ..config()
    });
    let (_, last) = replies(&mut session, &[&long.as_bytes()[..150]]);
    assert_eq!(last, "Close");
}
