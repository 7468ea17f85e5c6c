//! Bugs found by the fuzz targets in fuzz/ (modem_engine), one test each, named after the bug.
//! The crashing inputs are kept under fuzz/regressions/modem_engine/.

use postroom_modem::{Engine, Event, ResultCode};

/// A line from the modem whose first character is more than one byte long (line noise, or any
/// invalid byte, which becomes U+FFFD) panicked the echo check, which sliced the text at byte
/// 2 to compare it with "AT". The link component died on a noisy line.
#[test]
fn line_starting_with_multibyte_char_does_not_panic() {
    let mut engine = Engine::new();
    engine.command("ATE1");
    let events = engine.feed(b"A\xac\xb21\r\n\xff\xfeOK\r\n\xe2\x82\xac\r\nOK\r\n");
    assert_eq!(
        events,
        vec![
            Event::Info("A\u{fffd}\u{fffd}1".into()),
            Event::Info("\u{fffd}\u{fffd}OK".into()),
            Event::Info("\u{20ac}".into()),
            Event::Result(ResultCode::Ok),
        ]
    );
}
