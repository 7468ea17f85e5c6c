//! SASL PLAIN (RFC 4616) and LOGIN for SMTP AUTH (RFC 4954).

/// Credentials given by a client, to be checked by the driver.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The authorisation identity of PLAIN, if given.
    pub authzid: Option<String>,
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    // Never print a password, also not in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("authzid", &self.authzid)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Decodes a PLAIN response: base64 of `authzid NUL authcid NUL passwd` (RFC 4616 section 2).
pub(crate) fn decode_plain(encoded: &[u8]) -> Option<Credentials> {
    let raw = decode_base64(encoded)?;
    let mut parts = raw.split(|&b| b == 0);
    let authzid = parts.next()?;
    let username = parts.next()?;
    let password = parts.next()?;
    if parts.next().is_some() || username.is_empty() {
        return None;
    }
    let authzid = (!authzid.is_empty())
        .then(|| String::from_utf8(authzid.to_vec()))
        .transpose();
    Some(Credentials {
        authzid: authzid.ok()?,
        username: String::from_utf8(username.to_vec()).ok()?,
        password: String::from_utf8(password.to_vec()).ok()?,
    })
}

/// Decodes one base64 line of the LOGIN mechanism into UTF-8 text.
pub(crate) fn decode_text(encoded: &[u8]) -> Option<String> {
    String::from_utf8(decode_base64(encoded)?).ok()
}

/// Decodes standard base64 with padding (RFC 4648 section 4), as SASL uses it.
pub fn decode_base64(encoded: &[u8]) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }

    let trimmed = encoded.trim_ascii();
    if !trimmed.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(trimmed.len() / 4 * 3);
    let quads = trimmed.len() / 4;
    for (i, quad) in trimmed.chunks_exact(4).enumerate() {
        let last = i + 1 == quads;
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Some(out)
}

/// Encodes bytes as standard base64 with padding; for tests and clients.
pub fn encode_base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let mut n = 0u32;
        for (i, &b) in chunk.iter().enumerate() {
            n |= (b as u32) << (16 - 8 * i);
        }
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_every_padding() {
        for text in ["", "a", "ab", "abc", "abcd", "\0alice\0dev-password"] {
            let encoded = encode_base64(text.as_bytes());
            assert_eq!(
                decode_base64(encoded.as_bytes()).as_deref(),
                Some(text.as_bytes())
            );
        }
        assert_eq!(encode_base64(b"Username:"), "VXNlcm5hbWU6");
    }

    #[test]
    fn plain_splits_three_fields() {
        let c = decode_plain(encode_base64(b"\0alice\0secret").as_bytes()).expect("decodes");
        assert_eq!(
            (c.authzid, c.username.as_str(), c.password.as_str()),
            (None, "alice", "secret")
        );
        assert!(decode_plain(encode_base64(b"alice\0secret").as_bytes()).is_none());
        assert!(decode_plain(b"!!!!").is_none());
    }
}
