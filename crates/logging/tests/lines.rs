//! The stderr line format, and the supervisor's side of children's stderr.

use std::io::Write;
use std::process::Command;
use std::sync::{Arc, Mutex};

use postroom_logging::{LineFormat, LogLine, RecentLines, read_lines};
use tracing::Level;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture(format: LineFormat, body: impl FnOnce()) -> String {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .event_format(format.clone())
        .fmt_fields(format)
        .with_writer(move || writer.clone())
        .with_max_level(Level::TRACE)
        .finish();
    tracing::subscriber::with_default(subscriber, body);
    let bytes = buffer.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn event_in_a_span_is_one_readable_line() {
    let out = capture(LineFormat::new("mail").without_time(), || {
        let span = tracing::info_span!("smtp", peer = "127.0.0.1:50112");
        let _entered = span.enter();
        tracing::info!(msg_id = "3f2a", size = 1234, "message accepted");
    });
    assert_eq!(
        out,
        " INFO mail: smtp{peer=127.0.0.1:50112}: message accepted msg_id=3f2a size=1234\n"
    );
}

#[test]
fn line_breaks_in_messages_and_fields_stay_on_one_line() {
    let out = capture(LineFormat::new("link").without_time(), || {
        tracing::warn!(reply = "OK\r\nNO CARRIER", "modem said\nsomething odd");
    });
    assert_eq!(out.lines().count(), 1, "{out:?}");
    assert_eq!(
        out,
        " WARN link: modem said\\nsomething odd reply=\"OK\\r\\nNO CARRIER\"\n"
    );
}

#[test]
fn written_lines_parse_back() {
    let out = capture(LineFormat::new("fax"), || {
        tracing::error!(job = 7, "page 2 failed");
    });
    let line = LogLine::parse(out.trim_end()).expect("our own line parses");
    assert_eq!(line.level, Level::ERROR);
    assert_eq!(line.component, "fax");
    assert_eq!(line.text, "page 2 failed job=7");
    assert!(line.time.ends_with('Z'));
}

#[test]
fn foreign_lines_do_not_parse() {
    assert_eq!(
        LogLine::parse("thread 'main' panicked at src/main.rs:3:5:"),
        None
    );
    assert_eq!(LogLine::parse(""), None);
    assert_eq!(LogLine::parse("2026-12-03T16:54:13.1Z LOUD mail: x"), None);
}

#[tokio::test]
async fn read_lines_splits_and_cuts_overlong_lines() {
    let input: &[u8] = b"first\r\nsecond\n0123456789abcdef\nlast without newline";
    let mut lines = Vec::new();
    read_lines(input, 10, |line| lines.push(line))
        .await
        .unwrap();
    assert_eq!(
        lines,
        ["first", "second", "0123456789 [cut]", "last witho [cut]"]
    );
}

#[test]
fn recent_lines_keeps_the_newest() {
    let mut recent = RecentLines::new(3);
    for n in 1..=5 {
        recent.push(format!("line {n}"));
    }
    assert_eq!(recent.len(), 3);
    assert_eq!(
        recent.iter().collect::<Vec<_>>(),
        ["line 3", "line 4", "line 5"]
    );
    assert_eq!(recent.last(2), ["line 4", "line 5"]);
}

/// Runs in a child process (this test binary again) so that `init` can install the global
/// subscriber without disturbing other tests.
#[test]
fn init_logs_to_stderr_with_the_component_name() {
    if std::env::var_os("POSTROOM_LOGGING_CHILD").is_some() {
        let output = postroom_logging::init("mail").unwrap();
        assert_eq!(output, postroom_logging::Output::Stderr);
        tracing::debug!("hidden at the default level");
        tracing::info!(user = "alice", "logged in");
        assert!(
            postroom_logging::init("mail").is_err(),
            "second init must fail"
        );
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let child = Command::new(exe)
        .args([
            "--exact",
            "init_logs_to_stderr_with_the_component_name",
            "--nocapture",
        ])
        .env("POSTROOM_LOGGING_CHILD", "1")
        .env("POSTROOM_LOG", "stderr")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(child.status.success(), "{child:?}");
    let stderr = String::from_utf8_lossy(&child.stderr);
    let ours: Vec<LogLine> = stderr.lines().filter_map(LogLine::parse).collect();
    assert_eq!(ours.len(), 1, "{stderr}");
    assert_eq!(ours[0].level, Level::INFO);
    assert_eq!(ours[0].component, "mail");
    assert_eq!(ours[0].text, "logged in user=alice");
}

#[test]
fn relayed_child_lines_read_as_the_child_wrote_them() {
    let child_line = "2026-12-03T16:54:13.123456Z  WARN mail: smtp{peer=127.0.0.1:50112}: slow";
    let out = capture(LineFormat::new("supervisor").without_time(), || {
        postroom_logging::relay("mail", child_line);
        postroom_logging::relay("mail", "thread 'main' panicked at src/main.rs:3:5:");
    });
    assert_eq!(
        out,
        " WARN mail: smtp{peer=127.0.0.1:50112}: slow\n WARN mail: thread 'main' panicked at \
         src/main.rs:3:5:\n"
    );
}
