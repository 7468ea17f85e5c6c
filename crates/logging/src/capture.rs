//! The supervisor's side: reading children's stderr, keeping recent lines, relaying them.

use std::collections::VecDeque;
use std::io;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tracing::Level;

/// The target of events re-emitted for a child, by [`relay`] or with a `component` field;
/// [`crate::LineFormat`] prints them under the child's name, and they are not the relaying
/// process's own lines ([`crate::init_with_own_lines`]).
pub const RELAY_TARGET: &str = "postroom::child";

/// One line a child wrote in [`crate::LineFormat`], taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The timestamp as written (RFC 3339, UTC).
    pub time: String,
    /// The event's level.
    pub level: Level,
    /// The component that wrote it.
    pub component: String,
    /// Spans, message and fields: everything after `component: `.
    pub text: String,
}

impl LogLine {
    /// Takes a line apart, or `None` if it is not in our format (a panic message, or output of
    /// something that is not Postroom).
    pub fn parse(line: &str) -> Option<LogLine> {
        let (time, rest) = line.split_once(' ')?;
        let looks_like_time = time.len() >= 20
            && time.as_bytes().get(4) == Some(&b'-')
            && time.as_bytes().get(10) == Some(&b'T')
            && time.ends_with('Z');
        if !looks_like_time {
            return None;
        }
        let (level, rest) = rest.trim_start().split_once(' ')?;
        let level: Level = level.parse().ok()?;
        let (component, text) = rest.split_once(": ")?;
        if component.is_empty() || component.contains(char::is_whitespace) {
            return None;
        }
        Some(LogLine {
            time: time.to_owned(),
            level,
            component: component.to_owned(),
            text: text.to_owned(),
        })
    }
}

/// Re-emits a line that the child `component` wrote through this process's subscriber, at the
/// child's level and with a `component` field. Lines not in our format (a panic, say) are
/// emitted as warnings, since a component writes nothing else to stderr when all is well.
pub fn relay(component: &str, line: &str) {
    let Some(parsed) = LogLine::parse(line) else {
        tracing::warn!(target: RELAY_TARGET, component, "{line}");
        return;
    };
    let text = parsed.text.as_str();
    // `event!` needs its level as a constant, hence one arm per level.
    match parsed.level {
        Level::ERROR => tracing::error!(target: RELAY_TARGET, component, "{text}"),
        Level::WARN => tracing::warn!(target: RELAY_TARGET, component, "{text}"),
        Level::INFO => tracing::info!(target: RELAY_TARGET, component, "{text}"),
        Level::DEBUG => tracing::debug!(target: RELAY_TARGET, component, "{text}"),
        Level::TRACE => tracing::trace!(target: RELAY_TARGET, component, "{text}"),
    }
}

/// Reads `reader` (a child's stderr) to its end and calls `each` with every line, without its
/// line ending and with invalid UTF-8 replaced. A line longer than `max_line` bytes is cut
/// there and marked ` [cut]`, so a child cannot make the supervisor hold unbounded memory.
pub async fn read_lines<R>(
    reader: R,
    max_line: usize,
    mut each: impl FnMut(String),
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
{
    let mut reader = BufReader::new(reader);
    let mut line: Vec<u8> = Vec::new();
    let mut cut = false;
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            if !line.is_empty() || cut {
                each(finish(&mut line, &mut cut));
            }
            return Ok(());
        }
        let (taken, ends_line) = match chunk.iter().position(|b| *b == b'\n') {
            Some(end) => (end, true),
            None => (chunk.len(), false),
        };
        let room = max_line.saturating_sub(line.len());
        if taken > room {
            cut = true;
        }
        line.extend_from_slice(&chunk[..taken.min(room)]);
        reader.consume(if ends_line { taken + 1 } else { taken });
        if ends_line {
            each(finish(&mut line, &mut cut));
        }
    }
}

fn finish(line: &mut Vec<u8>, cut: &mut bool) -> String {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    let mut text = String::from_utf8_lossy(line).into_owned();
    if *cut {
        text.push_str(" [cut]");
    }
    line.clear();
    *cut = false;
    text
}

/// The most recent lines of one component, oldest first, at most `capacity` of them.
#[derive(Debug, Clone)]
pub struct RecentLines {
    lines: VecDeque<String>,
    capacity: usize,
}

impl RecentLines {
    /// Keeps at most `capacity` lines.
    pub fn new(capacity: usize) -> RecentLines {
        RecentLines {
            lines: VecDeque::with_capacity(capacity.min(1024)),
            capacity,
        }
    }

    /// Adds a line, forgetting the oldest when full.
    pub fn push(&mut self, line: String) {
        if self.capacity == 0 {
            return;
        }
        if self.lines.len() == self.capacity {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    /// The last `n` lines, oldest first.
    pub fn last(&self, n: usize) -> Vec<String> {
        let skip = self.lines.len().saturating_sub(n);
        self.lines.iter().skip(skip).cloned().collect()
    }

    /// All kept lines, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(String::as_str)
    }

    /// How many lines are kept.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether no line is kept.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}
