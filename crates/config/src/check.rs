//! Mistakes found in a configuration, and the semantic checks that find some of them.

use std::fmt;

/// One mistake in a configuration file: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mistake {
    /// The key path, as `link.schedule[2]` or `mail.catch_all."office.example"`; empty for a
    /// mistake in the TOML syntax itself.
    pub path: String,
    /// The line in the file, counted from 1, when known.
    pub line: Option<usize>,
    /// What is wrong, in the administrator's words.
    pub message: String,
}

impl fmt::Display for Mistake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Semantic checks of a section, run after it was read: what serde cannot see, such as two
/// listeners on one port or a watchdog petted slower than it bites.
///
/// A section plugs in by implementing `Check` in its module and adding one line to
/// `impl Check for Config` in lib.rs (`self.link.check("link", report);`). Paths are built
/// with [`key`] and [`index`] so that the loader finds their lines.
pub trait Check {
    /// Adds every mistake found to `report`, with paths under `at` (the section's own path,
    /// e.g. `supervisor`).
    fn check(&self, at: &str, report: &mut Report);
}

/// The mistakes found by [`Check`]s, each with its key path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    found: Vec<(String, String)>,
}

impl Report {
    /// An empty report.
    pub fn new() -> Report {
        Report::default()
    }

    /// Notes that the value at `path` is wrong because of `message`.
    pub fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.found.push((path.into(), message.into()));
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// The (path, message) pairs in the order they were found.
    pub fn into_inner(self) -> Vec<(String, String)> {
        self.found
    }
}

/// `prefix.key`, quoting `key` as TOML does when it is not a bare key; `key` alone when
/// `prefix` is empty.
pub fn key(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let key = if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}

/// `prefix[index]`.
pub fn index(prefix: &str, index: usize) -> String {
    format!("{prefix}[{index}]")
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Step {
    /// A key of a table.
    Key(String),
    /// An element of an array.
    Index(usize),
}

/// Renders steps as a key path (`link.schedule[2]`).
pub(crate) fn render(steps: &[Step]) -> String {
    let mut out = String::new();
    for step in steps {
        match step {
            Step::Key(k) => out = key(&out, k),
            Step::Index(i) => out = index(&out, *i),
        }
    }
    out
}

/// Reads a key path written by [`key`] and [`index`] back into steps; `None` if it is not one.
pub(crate) fn parse_path(path: &str) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let close = after.find(']')?;
            steps.push(Step::Index(after[..close].parse().ok()?));
            rest = &after[close + 1..];
            continue;
        }
        if !steps.is_empty() {
            rest = rest.strip_prefix('.')?;
        }
        if rest.starts_with('"') {
            // A quoted key as written by `{:?}`: find the closing quote not escaped.
            let bytes = rest.as_bytes();
            let mut end = 1;
            while end < bytes.len() && bytes[end] != b'"' {
                end += if bytes[end] == b'\\' { 2 } else { 1 };
            }
            let quoted = rest.get(1..end.min(rest.len()))?;
            steps.push(Step::Key(
                quoted.replace("\\\"", "\"").replace("\\\\", "\\"),
            ));
            rest = rest.get(end + 1..)?;
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            if end == 0 {
                return None;
            }
            steps.push(Step::Key(rest[..end].to_owned()));
            rest = &rest[end..];
        }
    }
    Some(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_and_parse_back() {
        let steps = vec![
            Step::Key("mail".into()),
            Step::Key("catch_all".into()),
            Step::Key("office.example".into()),
        ];
        assert_eq!(render(&steps), "mail.catch_all.\"office.example\"");
        assert_eq!(parse_path(&render(&steps)), Some(steps));

        let steps = vec![
            Step::Key("link".into()),
            Step::Key("schedule".into()),
            Step::Index(2),
        ];
        assert_eq!(render(&steps), "link.schedule[2]");
        assert_eq!(parse_path("link.schedule[2]"), Some(steps));
        assert_eq!(parse_path("a..b"), None);
    }
}
