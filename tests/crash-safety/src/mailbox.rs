//! Reading delivered messages back from a Maildir (ours, or the one Postfix's virtual delivery
//! agent writes at the smarthost): the Message-ID of each file and a hash of its body.

use std::path::{Path, PathBuf};

use crate::load::body_hash;

/// One delivered file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// Its path.
    pub path: PathBuf,
    /// The Message-ID header's value without angle brackets, if it has one.
    pub message_id: Option<String>,
    /// [`body_hash`] of everything after the header section.
    pub body_hash: u64,
}

/// Every message file in the `new` and `cur` directories of the Maildir at `maildir`. A missing
/// Maildir holds nothing. `tmp` is left out: a file there was never delivered (Maildir
/// protocol: a message is delivered once it has a name in `new`).
pub fn read_maildir(maildir: &Path) -> std::io::Result<Vec<Delivered>> {
    let mut found = Vec::new();
    for sub in ["new", "cur"] {
        let dir = maildir.join(sub);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let path = entry?.path();
            if !path.is_file() {
                continue;
            }
            let bytes = std::fs::read(&path)?;
            let (message_id, body_hash) = parse(&bytes);
            found.push(Delivered {
                path,
                message_id,
                body_hash,
            });
        }
    }
    Ok(found)
}

/// The Message-ID and the body hash of a message's text (CRLF or LF lines).
pub fn parse(bytes: &[u8]) -> (Option<String>, u64) {
    let (header, body) = split_header(bytes);
    let message_id = header
        .split(|&b| b == b'\n')
        .filter_map(|line| std::str::from_utf8(line).ok())
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim().eq_ignore_ascii_case("message-id").then(|| {
                value
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned()
            })
        });
    (message_id, body_hash(body))
}

/// The header section and the body: split at the first empty line.
fn split_header(bytes: &[u8]) -> (&[u8], &[u8]) {
    let mut start = 0;
    while start < bytes.len() {
        let end = bytes[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |p| start + p + 1);
        let line = &bytes[start..end];
        if line == b"\n" || line == b"\r\n" {
            return (&bytes[..start], &bytes[end..]);
        }
        start = end;
    }
    (bytes, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_and_body_are_found_in_crlf_and_lf_copies_alike() {
        let crlf = b"Return-Path: <a@b>\r\nMessage-ID: <x-1@client.test>\r\nSubject: s\r\n\r\n\
                     line 1\r\nline 2\r\n";
        let lf = b"Received: from x\n\tby y\nmessage-id:  <x-1@client.test>\n\nline 1\nline 2\n";
        let a = parse(crlf);
        let b = parse(lf);
        assert_eq!(a.0.as_deref(), Some("x-1@client.test"));
        assert_eq!(a, b);
        assert_eq!(a.1, body_hash(b"line 1\nline 2\n"));
    }

    #[test]
    fn a_cut_copy_has_another_body_hash() {
        let whole = parse(b"Message-ID: <m>\r\n\r\nline 1\r\nline 2\r\n");
        let cut = parse(b"Message-ID: <m>\r\n\r\nline 1\r\nli");
        assert_ne!(whole.1, cut.1);
    }

    #[test]
    fn files_in_new_and_cur_count_and_tmp_does_not() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
            std::fs::write(
                dir.path().join(sub).join("f"),
                format!("Message-ID: <{sub}>\r\n\r\nb\r\n"),
            )
            .unwrap();
        }
        let mut ids: Vec<_> = read_maildir(dir.path())
            .unwrap()
            .into_iter()
            .filter_map(|d| d.message_id)
            .collect();
        ids.sort();
        assert_eq!(ids, ["cur", "new"]);
        assert!(
            read_maildir(&dir.path().join("missing"))
                .unwrap()
                .is_empty()
        );
    }
}
