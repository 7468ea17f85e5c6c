//! Log lines are read by administrators: an error or a value in a log call is written with
//! Display, in words ("No such file or directory (os error 2)"), never as a Debug dump
//! (`Os { code: 2, kind: NotFound, message: ".." }`, `Answered { code: .., answer: .. }`).
//! This test reads every crate's sources and fails on a `?field` or `{:?}` in a tracing call.

use std::path::{Path, PathBuf};

/// Debug on purpose: raw bytes and lines from outside, where Debug's quoting and escaping is
/// what keeps them readable. (file, text of the field)
const ALLOWED: &[(&str, &str)] = &[
    (
        "modem/src/driver.rs",
        "bytes = ?String::from_utf8_lossy(bytes)",
    ),
    ("supervisor/src/supervise.rs", "last_lines = ?lines"),
];

const MACROS: &[&str] = &[
    "trace!(", "debug!(", "info!(", "warn!(", "error!(", "event!(",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text of each log call in `text`: from the macro name to its closing parenthesis.
fn log_calls(text: &str) -> Vec<(usize, &str)> {
    let mut calls = Vec::new();
    for name in MACROS {
        let mut from = 0;
        while let Some(at) = text[from..].find(name) {
            let start = from + at;
            from = start + name.len();
            // `info!(` but not `self.info!(`-like identifiers ending in the same letters.
            let before = text[..start].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let mut depth = 1;
            let mut end = from;
            for (i, c) in text[from..].char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = from + i;
                    break;
                }
            }
            let line = text[..start].lines().count() + 1;
            calls.push((line, &text[start..end]));
        }
    }
    calls
}

/// Whether a log call formats a value with Debug: `= ?x`, `, ?x` or `{:?}` / `{x:?}`.
fn debug_formatted(call: &str) -> bool {
    let flat: String = call.split_whitespace().collect::<Vec<_>>().join(" ");
    flat.contains("= ?")
        || flat.contains(", ?")
        || flat.contains("(?")
        || flat.contains(":?}")
        || flat.contains(":#?}")
}

#[test]
fn no_log_call_writes_an_error_or_a_value_with_debug() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for krate in std::fs::read_dir(&crates).unwrap() {
        let src = krate.unwrap().path().join("src");
        if src.is_dir() {
            sources(&src, &mut files);
        }
    }
    assert!(files.len() > 50, "the sources were not found: {files:?}");

    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let name = file
            .strip_prefix(&crates)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for (line, call) in log_calls(&text) {
            let allowed = ALLOWED
                .iter()
                .any(|(f, field)| name == *f && call.contains(field));
            if debug_formatted(call) && !allowed {
                found.push(format!(
                    "{name}:{line}: {}",
                    call.lines().next().unwrap_or("")
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "log calls that print a value with Debug; use Display (%e, or the fields in words):\n{}",
        found.join("\n")
    );
}
