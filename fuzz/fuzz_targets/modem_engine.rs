//! The Hayes / V.250 AT engine and result-code parser (postroom-modem).
//!
//! Input: byte 0 seeds how the modem's bytes are cut into reads; the rest is split at NUL
//! bytes into segments that alternate between a command line we send (`+++` stands for the
//! escape back to command state, an empty one for none) and the bytes the modem answers.
//! Checked, besides "never panics":
//! - the same answers cut into different reads give the same events and the same online data
//!   (modem-split-result: a result split over reads is one result);
//! - lines are reported without CR or LF, trimmed and non-empty, and an over-long line is cut;
//! - a CONNECT puts the engine online and every other result leaves it in command state;
//! - every result code reads back from its own verbal and numeric form.

#![no_main]

use libfuzzer_sys::fuzz_target;
use postroom_fuzz::cut;
use postroom_modem::engine::MAX_LINE;
use postroom_modem::{Engine, Event, Mode, ResultCode};

fuzz_target!(|input: &[u8]| {
    let [seed, script @ ..] = input else {
        return;
    };
    let segments: Vec<&[u8]> = script.split(|&b| b == 0).collect();

    let whole = run(&segments, None);
    let pieces = run(&segments, Some(*seed));
    assert_eq!(
        whole, pieces,
        "events depend on how the modem's bytes were cut"
    );

    for segment in &segments {
        let text = String::from_utf8_lossy(segment);
        for line in text.split(['\r', '\n']) {
            round_trip(ResultCode::from_verbal(line));
            round_trip(ResultCode::from_numeric(line));
        }
    }
});

/// Everything one run produced, per modem segment: the events and the online data.
type Transcript = Vec<(Vec<Event>, Vec<u8>)>;

fn run(segments: &[&[u8]], seed: Option<u8>) -> Transcript {
    let mut engine = Engine::new();
    let mut transcript = Transcript::new();
    for (i, segment) in segments.iter().enumerate() {
        if i % 2 == 0 {
            if segment.is_empty() {
                // Two answers in a row: no command between them.
            } else if *segment == b"+++" {
                engine.back_to_command_mode();
            } else {
                let line = String::from_utf8_lossy(segment);
                let bytes = engine.command(&line);
                assert_eq!(bytes.last(), Some(&b'\r'), "command line not ended with CR");
                assert_eq!(engine.mode(), Mode::Command);
            }
            continue;
        }
        let reads = match seed {
            Some(seed) => cut(segment, seed),
            None => vec![*segment],
        };
        let mut events = Vec::new();
        let mut data = Vec::new();
        for read in reads {
            let was_online = engine.mode() == Mode::Online;
            let new = engine.feed(read);
            if was_online {
                assert!(new.is_empty(), "lines read while online");
            }
            for event in &new {
                check_event(event);
            }
            if let Some(Event::Result(code)) = new.last() {
                let online = matches!(code, ResultCode::Connect(_));
                assert_eq!(engine.mode() == Mode::Online, online || was_online);
            }
            events.extend(new);
            data.extend(engine.take_data());
        }
        transcript.push((events, data));
    }
    transcript
}

fn check_event(event: &Event) {
    match event {
        Event::Result(code) => round_trip(Some(*code)),
        Event::Echo(text) | Event::Info(text) => {
            assert!(!text.is_empty(), "empty line reported");
            assert_eq!(text.trim(), text, "line not trimmed");
            assert!(
                !text.contains(['\r', '\n']),
                "line terminator inside a line"
            );
        }
        Event::Overlong(text) => {
            // Cut at MAX_LINE bytes, each of which may have become U+FFFD (3 bytes).
            assert!(text.len() <= 3 * MAX_LINE, "over-long line kept whole");
            assert!(
                !text.contains(['\r', '\n']),
                "line terminator inside a line"
            );
        }
    }
}

fn round_trip(code: Option<ResultCode>) {
    let Some(code) = code else {
        return;
    };
    assert_eq!(
        ResultCode::from_verbal(&code.to_string()),
        Some(code),
        "verbal form of {code}"
    );
    let numeric = ResultCode::from_numeric(&code.numeric().to_string());
    match code {
        // CONNECT with a rate that has no numeric code of its own reads back as plain CONNECT.
        ResultCode::Connect(Some(rate)) if rate != 1200 && rate != 2400 => {
            assert_eq!(numeric, Some(ResultCode::Connect(None)));
        }
        _ => assert_eq!(numeric, Some(code), "numeric form of {code}"),
    }
}
