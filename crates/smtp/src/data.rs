//! The DATA phase: finding the end of a message and undoing dot-stuffing.
//!
//! RFC 5321 section 4.1.1.4: the mail data ends with a line holding only a period, that is the
//! sequence CRLF "." CRLF, where the first CRLF ends the last line of the message (or the DATA
//! command itself for an empty message). Section 4.5.2: a line starting with a period has that
//! period removed. Section 2.3.8: lines end with CRLF only; a bare CR or bare LF is not a line
//! ending. Servers that took `\n.\n` as the end let a second, forged message be smuggled behind
//! the first (the 2023 "SMTP smuggling" reports); here only CRLF "." CRLF ends the data.
//!
//! The scanner never allocates per byte: it finds CR and LF with memchr and appends whole runs
//! of bytes to the caller's body buffer.

/// What to do with a bare CR or a bare LF inside message data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BareLineEndings {
    /// Read the message to its real end, then refuse it with `554 5.6.0`. The default: a
    /// message with bare line endings is either broken or an attack, and the sender learns why.
    #[default]
    Reject,
    /// Store every bare CR and bare LF as CRLF. Such a line never ends the message and a period
    /// after it is kept as data (it is not at the start of a real line).
    Normalize,
}

/// Limits applied while reading message data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DataLimits {
    pub max_size: usize,
    pub max_line_length: usize,
    pub bare_line_endings: BareLineEndings,
}

/// Why the message data was refused; the data is still read to its end first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataProblem {
    /// The message is larger than the configured maximum.
    TooBig,
    /// A line is longer than the configured maximum.
    LineTooLong,
    /// A bare CR or LF was found and the policy is [`BareLineEndings::Reject`].
    BareLineEnding,
}

/// The state of one DATA phase.
#[derive(Debug)]
pub(crate) struct DataReader {
    limits: DataLimits,
    /// The next byte starts a line (the previous bytes were CRLF).
    at_line_start: bool,
    /// The current line so far is only the period that began it.
    dot_only: bool,
    /// A CR was read; whether it ends a line depends on the next byte.
    pending_cr: bool,
    line_len: usize,
    size: usize,
    problem: Option<DataProblem>,
}

/// The outcome of feeding bytes to a [`DataReader`].
pub(crate) enum Progress {
    /// All bytes were consumed; the message goes on.
    More,
    /// The end of data was found after this many bytes of the input.
    Done {
        consumed: usize,
        problem: Option<DataProblem>,
    },
}

impl DataReader {
    pub fn new(limits: DataLimits) -> DataReader {
        DataReader {
            limits,
            at_line_start: true,
            dot_only: false,
            pending_cr: false,
            line_len: 0,
            size: 0,
            problem: None,
        }
    }

    /// Consumes message data from `input`, appending the unstuffed message to `body`.
    pub fn feed(&mut self, input: &[u8], body: &mut Vec<u8>) -> Progress {
        let mut rest = input;

        while let Some(&first) = rest.first() {
            if self.pending_cr {
                self.pending_cr = false;
                if first == b'\n' {
                    rest = &rest[1..];
                    if self.dot_only {
                        let consumed = input.len() - rest.len();
                        return Progress::Done {
                            consumed,
                            problem: self.problem,
                        };
                    }
                    self.emit(body, b"\r\n");
                    self.end_line(true);
                    continue;
                }
                // A CR not followed by LF.
                self.bare_line_ending(body);
                continue;
            }

            if self.at_line_start {
                self.at_line_start = false;
                if first == b'.' {
                    // RFC 5321 section 4.5.2: drop the period that starts a line.
                    self.dot_only = true;
                    self.line_len += 1;
                    rest = &rest[1..];
                    continue;
                }
            }

            match memchr::memchr2(b'\r', b'\n', rest) {
                None => {
                    self.text(body, rest);
                    rest = &[];
                }
                Some(pos) => {
                    self.text(body, &rest[..pos]);
                    let ending = rest[pos];
                    rest = &rest[pos + 1..];
                    if ending == b'\r' {
                        self.pending_cr = true;
                    } else {
                        self.bare_line_ending(body);
                    }
                }
            }
        }
        Progress::More
    }

    /// Text within a line (no CR or LF).
    fn text(&mut self, body: &mut Vec<u8>, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.dot_only = false;
        self.line_len += bytes.len();

        // RFC 5321 section 4.5.3.1.6 sets 1000 octets as the least a server must take; the
        // configured limit is far above it, and a longer line is refused whole, never split.
        if self.line_len > self.limits.max_line_length {
            self.fail(DataProblem::LineTooLong);
        }
        self.emit(body, bytes);
    }

    fn bare_line_ending(&mut self, body: &mut Vec<u8>) {
        match self.limits.bare_line_endings {
            BareLineEndings::Reject => self.fail(DataProblem::BareLineEnding),
            BareLineEndings::Normalize => self.emit(body, b"\r\n"),
        }
        // Not a real line end: a period after it is data, and it never ends the message.
        self.end_line(false);
    }

    fn end_line(&mut self, real: bool) {
        self.line_len = 0;
        self.dot_only = false;
        self.at_line_start = real;
    }

    fn emit(&mut self, body: &mut Vec<u8>, bytes: &[u8]) {
        if self.problem.is_some() {
            return;
        }
        self.size += bytes.len();
        if self.size > self.limits.max_size {
            self.fail(DataProblem::TooBig);
            return;
        }
        body.extend_from_slice(bytes);
    }

    fn fail(&mut self, problem: DataProblem) {
        if self.problem.is_none() {
            self.problem = Some(problem);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(policy: BareLineEndings) -> DataLimits {
        DataLimits {
            max_size: 1 << 20,
            max_line_length: 100,
            bare_line_endings: policy,
        }
    }

    /// Feeds `chunks` one by one; returns the body, the problem, and the unconsumed tail.
    fn run(policy: BareLineEndings, chunks: &[&[u8]]) -> Option<(Vec<u8>, Option<DataProblem>)> {
        let mut reader = DataReader::new(limits(policy));
        let mut body = Vec::new();
        for chunk in chunks {
            if let Progress::Done { problem, .. } = reader.feed(chunk, &mut body) {
                return Some((body, problem));
            }
        }
        None
    }

    #[test]
    fn end_marker_split_over_every_boundary_is_found() {
        let msg = b"a: b\r\n\r\n..x\r\n.\r\n";
        for cut in 0..msg.len() {
            let (head, tail) = msg.split_at(cut);
            let (body, problem) = run(BareLineEndings::Reject, &[head, tail]).expect("end");
            assert_eq!(body, b"a: b\r\n\r\n.x\r\n", "cut at {cut}");
            assert_eq!(problem, None);
        }
    }

    #[test]
    fn empty_message_ends_at_first_dot_line() {
        let (body, _) = run(BareLineEndings::Reject, &[b".\r\n"]).expect("end");
        assert!(body.is_empty());
    }

    #[test]
    fn bare_lf_dot_never_ends_data_under_normalize() {
        let input: &[u8] = b"hello\n.\nMAIL FROM:<x@evil.example>\r\n";
        assert!(run(BareLineEndings::Normalize, &[input]).is_none());
        let (body, problem) = run(BareLineEndings::Normalize, &[input, b"\r\n.\r\n"]).expect("end");
        assert_eq!(body, b"hello\r\n.\r\nMAIL FROM:<x@evil.example>\r\n\r\n");
        assert_eq!(problem, None);
    }

    #[test]
    fn bare_cr_dot_never_ends_data() {
        let input: &[u8] = b"hello\r.\rX\r\n";
        assert!(run(BareLineEndings::Reject, &[input]).is_none());
        let (_, problem) = run(BareLineEndings::Reject, &[input, b".\r\n"]).expect("end");
        assert_eq!(problem, Some(DataProblem::BareLineEnding));
    }

    #[test]
    fn crlf_dot_bare_lf_does_not_end_data() {
        assert!(run(BareLineEndings::Reject, &[b"x\r\n.\nmore\r\n"]).is_none());
    }

    #[test]
    fn long_line_is_refused_not_split() {
        let line = vec![b'x'; 101];
        let (_, problem) = run(BareLineEndings::Reject, &[&line, b"\r\n.\r\n"]).expect("end");
        assert_eq!(problem, Some(DataProblem::LineTooLong));
        let line = vec![b'x'; 100];
        let (body, problem) = run(BareLineEndings::Reject, &[&line, b"\r\n.\r\n"]).expect("end");
        assert_eq!(problem, None);
        assert_eq!(body.len(), 102);
    }

    #[test]
    fn oversized_message_is_read_to_its_end_then_refused() {
        let mut reader = DataReader::new(DataLimits {
            max_size: 10,
            ..limits(Default::default())
        });
        let mut body = Vec::new();
        assert!(matches!(
            reader.feed(b"0123456789abc\r\n", &mut body),
            Progress::More
        ));
        match reader.feed(b".\r\nNEXT", &mut body) {
            Progress::Done { consumed, problem } => {
                assert_eq!(consumed, 3);
                assert_eq!(problem, Some(DataProblem::TooBig));
            }
            Progress::More => panic!("end not found"),
        }
    }
}
