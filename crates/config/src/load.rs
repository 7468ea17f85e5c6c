//! Reading TOML into typed sections while collecting every mistake with its key path and line.
//!
//! serde stops at the first error. To report them all, the document is read, and on an error
//! the offending key (or array element) is noted and taken out of the document, and the document
//! is read again: sections default every missing key, so the rest is still checked. Lines come
//! from the spans toml keeps for every key and value.

use std::collections::{BTreeSet, HashMap};

use serde::de::DeserializeOwned;
use serde_spanned::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use crate::check::{Check, Mistake, Report, Step, parse_path, render};

/// How many mistakes are collected before giving up; a file with more is not worth reading on.
const MAX_MISTAKES: usize = 100;

/// Reads `text` as a `T`, reporting every mistake serde finds (unknown keys, wrong types, bad
/// values) with its key path and line, or the TOML syntax errors if the text is not TOML.
pub fn from_toml<T: DeserializeOwned>(text: &str) -> Result<T, Vec<Mistake>> {
    let read = read(text);
    match (read.value, read.mistakes) {
        (Some(value), mistakes) if mistakes.is_empty() => Ok(value),
        (_, mistakes) => Err(in_file_order(mistakes)),
    }
}

/// Like [`from_toml`], then runs `T`'s semantic [`Check`] and reports its mistakes too, with
/// lines. Mistakes of the check about keys already reported are left out.
pub fn from_toml_checked<T: DeserializeOwned + Check>(text: &str) -> Result<T, Vec<Mistake>> {
    let read: Read<'_, T> = read(text);
    let mut mistakes = read.mistakes;
    if let (Some(value), Some(doc)) = (&read.value, &read.doc) {
        let mut report = Report::new();
        value.check("", &mut report);
        for (path, message) in report.into_inner() {
            let steps = parse_path(&path).unwrap_or_default();
            // A check that looks at a key we took out (or at its default standing in for it)
            // would report a mistake that is not in the file.
            let already = read.taken_out.iter().any(|t| {
                (!steps.is_empty() && (starts_with(&steps, t) || starts_with(t, &steps)))
                    || message.contains(&render(t))
            });
            if already {
                continue;
            }
            let line = locate(doc.get_ref(), &steps).map(|offset| line_of(text, offset));
            mistakes.push(Mistake {
                path,
                line,
                message,
            });
        }
    }
    match read.value {
        Some(value) if mistakes.is_empty() => Ok(value),
        _ => Err(in_file_order(mistakes)),
    }
}

/// Mistakes sorted by line, the order a person fixes them in.
fn in_file_order(mut mistakes: Vec<Mistake>) -> Vec<Mistake> {
    mistakes.sort_by_key(|m| m.line.unwrap_or(usize::MAX));
    mistakes
}

/// What one [`read`] found.
struct Read<'t, T> {
    /// The value, read with the faulty keys taken out; `None` if it could not be read at all.
    value: Option<T>,
    /// The document as written, for lines; `None` after a syntax error.
    doc: Option<Spanned<DeTable<'t>>>,
    mistakes: Vec<Mistake>,
    /// Paths (in the file's own indices) taken out of the document.
    taken_out: Vec<Vec<Step>>,
}

fn read<T: DeserializeOwned>(text: &str) -> Read<'_, T> {
    let (doc, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        // The recovered document is a guess; reading it would report mistakes that are not there.
        let mistakes = syntax
            .iter()
            .map(|e| Mistake {
                path: String::new(),
                line: e.span().map(|span| line_of(text, span.start)),
                message: one_line(e.message()),
            })
            .collect();
        return Read {
            value: None,
            doc: None,
            mistakes,
            taken_out: Vec::new(),
        };
    }

    let mut working = doc.clone();
    let mut renumbering = Renumbering::default();
    let mut mistakes = Vec::new();
    let mut taken_out: Vec<Vec<Step>> = Vec::new();
    loop {
        let deserializer = toml::de::Deserializer::from(working.clone());
        let err = match serde_path_to_error::deserialize::<_, T>(deserializer) {
            Ok(value) => {
                return Read {
                    value: Some(value),
                    doc: Some(doc),
                    mistakes,
                    taken_out,
                };
            }
            Err(err) => err,
        };

        let mut steps = steps_of(err.path());
        let inner = err.into_inner();
        let message = plain_words(&one_line(inner.message()));
        if let Some(field) = quoted_after(&message, "unknown key ")
            && steps.last() != Some(&Step::Key(field.clone()))
        {
            steps.push(Step::Key(field));
        }
        let original = renumbering.original(&steps);

        // A required key that we took out ourselves is not a second mistake.
        let consequence = quoted_after(&message, "missing field ").is_some_and(|field| {
            let mut child = original.clone();
            child.push(Step::Key(field));
            taken_out.contains(&child)
        });
        if !consequence {
            let line = locate(doc.get_ref(), &original)
                .or_else(|| inner.span().map(|span| span.start))
                .map(|offset| line_of(text, offset));
            mistakes.push(Mistake {
                path: render(&original),
                line,
                message,
            });
        }

        if mistakes.len() >= MAX_MISTAKES || !take_out(working.get_mut(), &steps) {
            return Read {
                value: None,
                doc: Some(doc),
                mistakes,
                taken_out,
            };
        }
        renumbering.note_removed(&steps, &original);
        taken_out.push(original);
    }
}

/// The steps of a serde path. A step serde cannot name ends the path there.
fn steps_of(path: &serde_path_to_error::Path) -> Vec<Step> {
    let mut steps = Vec::new();
    for segment in path.iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => steps.push(Step::Index(*index)),
            serde_path_to_error::Segment::Map { key } => steps.push(Step::Key(key.clone())),
            serde_path_to_error::Segment::Enum { variant } => {
                steps.push(Step::Key(variant.clone()))
            }
            serde_path_to_error::Segment::Unknown => break,
        }
    }
    steps
}

/// Maps indices in the shrinking working document back to the file's own indices, so that
/// `schedule[3]` is still called `schedule[3]` after `schedule[1]` was taken out.
#[derive(Default)]
struct Renumbering {
    /// For each array (by its path in file indices), the file indices taken out of it.
    removed: HashMap<Vec<Step>, BTreeSet<usize>>,
}

impl Renumbering {
    fn original(&self, working: &[Step]) -> Vec<Step> {
        let mut out: Vec<Step> = Vec::with_capacity(working.len());
        for step in working {
            let step = match step {
                Step::Index(i) => Step::Index(match self.removed.get(&out) {
                    Some(gone) => {
                        let mut index = *i;
                        for g in gone {
                            if *g <= index {
                                index += 1;
                            }
                        }
                        index
                    }
                    None => *i,
                }),
                key => key.clone(),
            };
            out.push(step);
        }
        out
    }

    fn note_removed(&mut self, working: &[Step], original: &[Step]) {
        if let (Some(Step::Index(_)), Some(Step::Index(i))) = (working.last(), original.last()) {
            let array = original[..original.len() - 1].to_vec();
            self.removed.entry(array).or_default().insert(*i);
        }
    }
}

/// Takes the value at `steps` out of the document; false if there is nothing to take.
fn take_out(root: &mut DeTable<'_>, steps: &[Step]) -> bool {
    let Some((last, parents)) = steps.split_last() else {
        return false;
    };
    let mut table: Option<&mut DeTable<'_>> = Some(root);
    let mut array: Option<&mut DeArray<'_>> = None;
    for step in parents {
        let value = match (step, table.take(), array.take()) {
            (Step::Key(k), Some(t), _) => t.get_mut(k.as_str()),
            (Step::Index(i), _, Some(a)) => a.get_mut(*i),
            _ => None,
        };
        match value.map(Spanned::get_mut) {
            Some(DeValue::Table(t)) => table = Some(t),
            Some(DeValue::Array(a)) => array = Some(a),
            _ => return false,
        }
    }
    match (last, table, array) {
        (Step::Key(k), Some(t), _) => t.remove(k.as_str()).is_some(),
        (Step::Index(i), _, Some(a)) if *i < a.len() => {
            // DeArray cannot remove in place; build it again without the element.
            let mut kept = DeArray::new();
            for (n, item) in a.iter().enumerate() {
                if n != *i {
                    kept.push(item.clone());
                }
            }
            *a = kept;
            true
        }
        _ => false,
    }
}

/// The byte offset of the deepest part of `steps` found in the document: a key's own position
/// when the path ends at a key (where a person looks for it), else the value's.
fn locate(root: &DeTable<'_>, steps: &[Step]) -> Option<usize> {
    let mut found = None;
    let mut table = Some(root);
    let mut array: Option<&DeArray<'_>> = None;
    for step in steps {
        let value = match (step, table.take(), array.take()) {
            (Step::Key(k), Some(t), _) => match t.get_key_value(k.as_str()) {
                Some((key, value)) => {
                    found = Some(key.span().start);
                    value
                }
                None => break,
            },
            (Step::Index(i), _, Some(a)) => match a.get(*i) {
                Some(value) => {
                    found = Some(value.span().start);
                    value
                }
                None => break,
            },
            _ => break,
        };
        match value.get_ref() {
            DeValue::Table(t) => table = Some(t),
            DeValue::Array(a) => array = Some(a),
            _ => {}
        }
    }
    found
}

/// The line (from 1) holding byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// toml's messages may span lines; a mistake is one line.
fn one_line(message: &str) -> String {
    message
        .trim()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// serde's words for Rust types, in words for the file (`expected u16` names no range).
fn plain_words(message: &str) -> String {
    let mut out = message.replacen("unknown field `", "unknown key `", 1);
    for (rust, words) in [
        ("u8", "a whole number from 0 to 255"),
        ("u16", "a whole number from 0 to 65535"),
        ("u32", "a whole number from 0 to 4294967295"),
        ("u64", "a whole number, 0 or more"),
        ("usize", "a whole number, 0 or more"),
        ("i64", "a whole number"),
        ("f64", "a number"),
        ("a boolean", "true or false"),
    ] {
        let pattern = format!("expected {rust}");
        if out.ends_with(&pattern) {
            out.truncate(out.len() - rust.len());
            out.push_str(words);
        }
    }
    out
}

/// The name in backquotes after `prefix` in serde's messages (``unknown field `x` ``).
fn quoted_after(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?.strip_prefix('`')?;
    let end = rest.find('`')?;
    Some(rest[..end].to_owned())
}

fn starts_with(path: &[Step], prefix: &[Step]) -> bool {
    path.len() >= prefix.len() && path[..prefix.len()] == *prefix
}
