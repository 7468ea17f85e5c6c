//! Modified UTF-7 for mailbox names (RFC 3501 section 5.1.3).
//!
//! Printable ASCII other than `&` stands for itself, `&` is written `&-`, and every other run of
//! characters is UTF-16 in a modified base64 (`,` for `/`, no padding) between `&` and `-`.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Encodes a Unicode mailbox name.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

fn flush(pending: &mut Vec<u16>, out: &mut String) {
    if pending.is_empty() {
        return;
    }
    let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
    out.push('&');
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let digits = chunk.len() + 1;
        for i in 0..digits {
            let index = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out.push('-');
    pending.clear();
}

/// Decodes a modified UTF-7 name; `None` when it is not valid modified UTF-7.
pub fn decode(encoded: &str) -> Option<String> {
    let mut out = String::with_capacity(encoded.len());
    let bytes = encoded.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'&' {
            if !(0x20..=0x7e).contains(&b) {
                return None;
            }
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let end = i + 1 + bytes[i + 1..].iter().position(|&c| c == b'-')?;
        let run = &bytes[i + 1..end];
        if run.is_empty() {
            out.push('&');
        } else {
            let mut bits: u32 = 0;
            let mut nbits = 0;
            let mut units: Vec<u16> = Vec::new();
            let mut octets: Vec<u8> = Vec::new();
            for &c in run {
                let v = ALPHABET.iter().position(|&a| a == c)? as u32;
                bits = (bits << 6) | v;
                nbits += 6;
                if nbits >= 8 {
                    nbits -= 8;
                    octets.push((bits >> nbits) as u8);
                    bits &= (1 << nbits) - 1;
                }
            }
            // Left-over bits must be zero padding (RFC 2152 rules carried into RFC 3501).
            if bits != 0 || !octets.len().is_multiple_of(2) {
                return None;
            }
            for pair in octets.chunks(2) {
                units.push(u16::from_be_bytes([pair[0], pair[1]]));
            }
            let text = String::from_utf16(&units).ok()?;
            // A run that only holds printable ASCII is not the canonical form.
            if text.chars().all(|c| (' '..='~').contains(&c)) {
                return None;
            }
            out.push_str(&text);
        }
        i = end + 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entwuerfe_round_trips_as_in_the_case_file() {
        assert_eq!(encode("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(decode("Entw&APw-rfe").as_deref(), Some("Entwürfe"));
    }

    #[test]
    fn ampersand_is_escaped() {
        assert_eq!(encode("R&D"), "R&-D");
        assert_eq!(decode("R&-D").as_deref(), Some("R&D"));
    }

    #[test]
    fn rfc3501_example_decodes() {
        // RFC 3501 section 5.1.3: "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        assert_eq!(
            decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-").as_deref(),
            Some("~peter/mail/台北/日本語")
        );
        assert_eq!(
            encode("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
    }

    #[test]
    fn bad_encodings_are_refused() {
        assert_eq!(decode("&AGE-"), None);
        assert_eq!(decode("&APw"), None);
        assert_eq!(decode("ü"), None);
    }
}
