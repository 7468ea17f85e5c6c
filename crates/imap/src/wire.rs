//! Writing IMAP strings (RFC 3501 section 4.3): quoted where safe, a literal otherwise.

/// Appends `value` as a quoted string, or as a literal when it holds CR, LF, `"`-heavy or
/// non-ASCII bytes that a quoted string cannot carry.
pub fn string(out: &mut Vec<u8>, value: &[u8]) {
    let quotable = value.len() < 1024 && value.iter().all(|&b| (0x20..0x7f).contains(&b));
    if quotable {
        out.push(b'"');
        for &b in value {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        literal(out, value);
    }
}

/// Appends `value` as a synchronizing-form literal `{n}\r\n<bytes>`.
pub fn literal(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", value.len()).as_bytes());
    out.extend_from_slice(value);
}

/// Appends a string or NIL.
pub fn nstring(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(v) => string(out, v),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// Appends `value` as an astring for mailbox names in LIST and STATUS: quoted always, which
/// every client accepts.
pub fn mailbox(out: &mut Vec<u8>, encoded: &str) {
    string(out, encoded.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_backslashes_are_escaped() {
        let mut out = Vec::new();
        string(&mut out, br#"a "b" \c"#);
        assert_eq!(out, br#""a \"b\" \\c""#);
    }

    #[test]
    fn eight_bit_text_goes_as_a_literal() {
        let mut out = Vec::new();
        string(&mut out, "Grüße".as_bytes());
        assert_eq!(out, b"{7}\r\nGr\xc3\xbc\xc3\x9fe");
    }
}
