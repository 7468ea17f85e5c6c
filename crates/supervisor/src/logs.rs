//! The recent log lines of every component, read from the children's stdout and stderr, and the
//! supervisor's own under [`OWN_LOG`].
//!
//! Each line goes into a ring of the last `capacity` lines of its component (for `ctl logs`,
//! the failing report, and later the web page and console), and on to the supervisor's own log
//! output with the component's name (through `postroom_logging::relay`, at the level the
//! component logged it), so journald or the terminal shows everything in one place. The
//! supervisor's own events reach its ring through [`LogBook::own_lines`], relayed ones left out.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// The name the supervisor's own lines are kept under, beside the components' names.
pub const OWN_LOG: &str = "supervisor";

/// A line longer than this is cut; a component printing a huge blob must not eat memory.
const MAX_LINE: usize = 4096;

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// The component's standard output.
    Stdout,
    /// The component's standard error, where its tracing output goes without journald.
    Stderr,
}

/// One line a component printed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// When the supervisor read it, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The process that printed it.
    pub pid: i32,
    /// Its pipe.
    pub stream: Stream,
    /// The text, without the line ending; invalid UTF-8 is replaced.
    pub text: String,
}

/// The rings of all components; cheap to clone, shared with the control server.
#[derive(Debug, Clone)]
pub struct LogBook {
    capacity: usize,
    rings: Arc<Mutex<BTreeMap<String, VecDeque<LogLine>>>>,
}

impl LogBook {
    /// Keeps the last `capacity` lines of each component.
    pub fn new(capacity: usize) -> LogBook {
        LogBook {
            capacity,
            rings: Arc::default(),
        }
    }

    /// Adds a line to `component`'s ring, dropping the oldest once it is full.
    pub fn push(&self, component: &str, line: LogLine) {
        if self.capacity == 0 {
            return;
        }
        let mut rings = self.lock();
        let ring = rings.entry(component.to_owned()).or_default();
        while ring.len() >= self.capacity {
            ring.pop_front();
        }
        ring.push_back(line);
    }

    /// A sink for `postroom_logging::init_with_own_lines` that keeps the supervisor's own
    /// events, each a line as on stderr, under [`OWN_LOG`].
    pub fn own_lines(&self) -> postroom_logging::OwnLines {
        let book = self.clone();
        let pid = std::process::id() as i32;
        Arc::new(move |text: &str| {
            let line = LogLine {
                at_ms: now_ms(),
                pid,
                stream: Stream::Stderr,
                text: text.to_owned(),
            };
            book.push(OWN_LOG, line);
        })
    }

    /// The names that have lines, in name order.
    pub fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// The last `limit` lines of `component`, oldest first.
    pub fn tail(&self, component: &str, limit: usize) -> Vec<LogLine> {
        let rings = self.lock();
        let Some(ring) = rings.get(component) else {
            return Vec::new();
        };
        ring.iter()
            .skip(ring.len().saturating_sub(limit))
            .cloned()
            .collect()
    }

    /// The last `limit` lines of every component.
    pub fn tails(&self, limit: usize) -> BTreeMap<String, Vec<LogLine>> {
        let names: Vec<String> = self.lock().keys().cloned().collect();
        names
            .into_iter()
            .map(|name| (name.clone(), self.tail(&name, limit)))
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, VecDeque<LogLine>>> {
        // A panic while holding the lock leaves whole lines behind; the data is still usable.
        self.rings
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Reads `pipe` line by line until the child closes it, keeping each line in `book` and
/// forwarding it to the supervisor's log.
pub async fn follow(
    book: LogBook,
    component: String,
    pid: i32,
    stream: Stream,
    pipe: impl AsyncRead + Unpin,
) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match read_line(&mut reader, &mut buf).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(component, pid, error = %e, "cannot read the component's output");
                break;
            }
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        let text = String::from_utf8_lossy(&buf).into_owned();
        match stream {
            // A component's tracing events, in postroom-logging's line format: re-emitted at
            // the component's own level.
            Stream::Stderr => postroom_logging::relay(&component, &text),
            Stream::Stdout => {
                tracing::info!(target: postroom_logging::RELAY_TARGET, component, pid, "{text}")
            }
        }
        book.push(
            &component,
            LogLine {
                at_ms: now_ms(),
                pid,
                stream,
                text,
            },
        );
    }
}

/// Reads up to a newline, keeping at most [`MAX_LINE`] bytes of it; returns the bytes consumed.
async fn read_line(
    reader: &mut BufReader<impl AsyncRead + Unpin>,
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let mut consumed = 0;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(consumed);
        }
        let (chunk, done) = match available.iter().position(|b| *b == b'\n') {
            Some(end) => (&available[..=end], true),
            None => (available, false),
        };
        let room = MAX_LINE.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len();
        reader.consume(used);
        consumed += used;
        if done {
            return Ok(consumed);
        }
    }
}

/// Milliseconds since the Unix epoch; 0 if the clock is before 1970.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> LogLine {
        LogLine {
            at_ms: 0,
            pid: 1,
            stream: Stream::Stderr,
            text: text.to_owned(),
        }
    }

    #[test]
    fn a_full_ring_drops_its_oldest_line() {
        let book = LogBook::new(2);
        for text in ["one", "two", "three"] {
            book.push("mail", line(text));
        }
        let texts: Vec<String> = book.tail("mail", 10).into_iter().map(|l| l.text).collect();
        assert_eq!(texts, ["two", "three"]);
    }

    #[tokio::test]
    async fn lines_are_split_cut_and_kept_per_component() {
        let book = LogBook::new(10);
        let long = "x".repeat(MAX_LINE + 10);
        let input = format!("first\r\n{long}\nno newline at the end");
        follow(
            book.clone(),
            "link".into(),
            7,
            Stream::Stdout,
            input.as_bytes(),
        )
        .await;
        let lines = book.tail("link", 10);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].text, "first");
        assert_eq!(lines[1].text.len(), MAX_LINE);
        assert_eq!(lines[2].text, "no newline at the end");
        assert!(book.tail("mail", 10).is_empty());
    }
}
