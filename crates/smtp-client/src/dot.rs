//! Dot-stuffing of the message body for DATA (RFC 5321 section 4.5.2).
//!
//! The body is otherwise sent byte for byte: no line ending is rewritten, no line is folded.

/// Dot-stuffs a body in pieces, so that a large spool file need not be copied whole.
#[derive(Debug, Clone)]
pub struct DotStuffer {
    at_line_start: bool,
    last_two: [u8; 2],
}

impl Default for DotStuffer {
    fn default() -> DotStuffer {
        DotStuffer::new()
    }
}

impl DotStuffer {
    /// A stuffer at the start of the body, which is the start of a line.
    pub fn new() -> DotStuffer {
        DotStuffer {
            at_line_start: true,
            last_two: [b'\r', b'\n'],
        }
    }

    /// Appends `chunk` to `out`, doubling a dot at the start of every line.
    ///
    /// A line starts after LF. A bare LF is not a line end in SMTP, but receivers such as
    /// Postfix treat it as one when they remove the stuffing, so we stuff there as well; a
    /// stuffed dot after a bare LF is never read as the end of data by anyone.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let mut start = 0;
        for (i, &b) in chunk.iter().enumerate() {
            if self.at_line_start && b == b'.' {
                out.extend_from_slice(&chunk[start..i]);
                out.push(b'.');
                start = i;
            }
            self.at_line_start = b == b'\n';
        }
        out.extend_from_slice(&chunk[start..]);
        match chunk.len() {
            0 => {}
            1 => self.last_two = [self.last_two[1], chunk[0]],
            n => self.last_two = [chunk[n - 2], chunk[n - 1]],
        }
    }

    /// Ends the data: a CRLF if the body did not end with one, then `.CRLF`.
    pub fn finish(self, out: &mut Vec<u8>) {
        if self.last_two != *b"\r\n" {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// Dot-stuffs a whole body and appends the end-of-data marker.
pub fn dot_stuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 64 + 5);
    let mut s = DotStuffer::new();
    s.push(body, &mut out);
    s.finish(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_dots_are_doubled_and_the_rest_is_byte_for_byte() {
        let body = b".first\r\nmiddle . dot\r\n..two\r\n.\r\nend\r\n";
        assert_eq!(
            dot_stuff(body),
            b"..first\r\nmiddle . dot\r\n...two\r\n..\r\nend\r\n.\r\n".to_vec()
        );
    }

    #[test]
    fn stuffing_is_the_same_whatever_the_chunking() {
        let body = b"a\r\n.b\r\n.\r\n\r\n.c";
        let whole = dot_stuff(body);
        for split in 0..body.len() {
            let mut out = Vec::new();
            let mut s = DotStuffer::new();
            s.push(&body[..split], &mut out);
            s.push(&body[split..], &mut out);
            s.finish(&mut out);
            assert_eq!(out, whole, "split at {split}");
        }
    }

    #[test]
    fn body_without_final_crlf_gets_one_before_the_dot() {
        assert_eq!(dot_stuff(b"no end"), b"no end\r\n.\r\n".to_vec());
        assert_eq!(dot_stuff(b"x\r\n"), b"x\r\n.\r\n".to_vec());
        assert_eq!(dot_stuff(b""), b".\r\n".to_vec());
    }
}
