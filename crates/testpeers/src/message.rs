//! Reading what a peer delivered: Maildir files, the headers Postfix adds, line ends.

use std::path::Path;

/// The messages in a Maildir's `new`, sorted by file name; none when it does not exist yet.
pub fn maildir_new(maildir: &Path) -> Vec<Vec<u8>> {
    let Ok(dir) = std::fs::read_dir(maildir.join("new")) else {
        return vec![];
    };
    let mut paths: Vec<_> = dir.flatten().map(|e| e.path()).collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())))
        .collect()
}

/// Splits what Postfix's virtual agent wrote into the headers it added on top (Return-Path,
/// X-Original-To, Delivered-To, its own Received with its continuation lines) and the rest,
/// which is the message as it was sent, with LF line ends.
pub fn strip_postfix_headers(delivered: &[u8]) -> (Vec<String>, Vec<u8>) {
    let mut added: Vec<String> = Vec::new();
    let mut rest = delivered;
    while let Some(end) = rest.iter().position(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(&rest[..end]).into_owned();
        let has_received = added.iter().any(|l| l.starts_with("Received:"));
        let is_ours = line.starts_with("Return-Path:")
            || line.starts_with("X-Original-To:")
            || line.starts_with("Delivered-To:")
            || (line.starts_with("Received:") && !has_received);
        let is_continuation = line.starts_with(' ') || line.starts_with('\t');
        match added.last_mut() {
            Some(last) if is_continuation && last.starts_with("Received:") => {
                last.push('\n');
                last.push_str(&line);
            }
            _ if is_ours => added.push(line),
            _ => break,
        }
        rest = &rest[end + 1..];
    }
    (added, rest.to_vec())
}

/// CRLF to LF, as Postfix's virtual agent stores a message.
pub fn crlf_to_lf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some((&b, tail)) = rest.split_first() {
        if !(b == b'\r' && tail.first() == Some(&b'\n')) {
            out.push(b);
        }
        rest = tail;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_headers_with_a_folded_received_are_split_from_the_message() {
        let delivered = b"Return-Path: <a@x.example>\nX-Original-To: b@y.example\n\
            Delivered-To: b@y.example\nReceived: from gw (gw [127.0.0.1])\n\tby smarthost.test\n\
            Received: from pc1 by gw\nSubject: s\n\nbody\n";
        let (added, rest) = strip_postfix_headers(delivered);
        assert_eq!(added.len(), 4, "{added:?}");
        assert_eq!(
            added[3],
            "Received: from gw (gw [127.0.0.1])\n\tby smarthost.test"
        );
        assert_eq!(rest, b"Received: from pc1 by gw\nSubject: s\n\nbody\n");
    }

    #[test]
    fn crlf_becomes_lf_and_a_lone_cr_stays() {
        assert_eq!(crlf_to_lf(b"a\r\nb\rc\r\n\r"), b"a\nb\rc\n\r");
    }
}
