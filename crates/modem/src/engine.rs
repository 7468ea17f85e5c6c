//! The sans-I/O half of the Hayes / V.250 dialogue: commands out, lines in, results found.
//!
//! The engine never touches a port or a clock. The caller writes what [`Engine::command`]
//! returns, feeds every byte read with [`Engine::feed`], and applies its own timeouts.

use crate::result::ResultCode;

/// The longest line the engine keeps; longer lines are cut and reported, never grown without
/// bound (a modem in the wrong state can stream anything).
pub const MAX_LINE: usize = 512;

/// What a line from the modem turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A result code: the answer to the last command, or an unsolicited RING.
    Result(ResultCode),
    /// The modem echoing our command line back (E1); not an answer to anything.
    Echo(String),
    /// Information text (V.250 5.7.2), such as the reply to `AT+CGDCONT?` or `ATI`.
    Info(String),
    /// A line longer than [`MAX_LINE`]; its start is kept.
    Overlong(String),
}

/// Whether the modem is reading commands or carrying data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Command state (V.250 5.1): lines are commands and results.
    Command,
    /// Online data state, entered with CONNECT: bytes belong to the far end.
    Online,
}

/// The AT dialogue state: line assembly, echo and verbose settings, data mode.
#[derive(Debug)]
pub struct Engine {
    line: Vec<u8>,
    overlong: bool,
    echo: bool,
    verbose: bool,
    mode: Mode,
    pending: Option<String>,
    data: Vec<u8>,
    just_connected: bool,
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new()
    }
}

impl Engine {
    /// A fresh engine, assuming the factory settings E1 V1 (V.250 6.2.4, 6.2.6).
    pub fn new() -> Engine {
        Engine {
            line: Vec::new(),
            overlong: false,
            echo: true,
            verbose: true,
            mode: Mode::Command,
            pending: None,
            data: Vec::new(),
            just_connected: false,
        }
    }

    /// Whether the modem is expected to echo command lines.
    pub fn echo(&self) -> bool {
        self.echo
    }

    /// Whether the modem answers with verbal (V1) or numeric (V0) result codes.
    pub fn verbose(&self) -> bool {
        self.verbose
    }

    /// Command state or online.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Prepares a command line and returns the bytes to write.
    ///
    /// `line` is the whole command with its `AT` prefix. The engine notes the E and V
    /// settings it contains so it reads the answers right. V.250 5.2.1: a command line ends
    /// with the S3 character, carriage return by default.
    pub fn command(&mut self, line: &str) -> Vec<u8> {
        let line = line.trim();
        self.apply_settings(line);
        self.pending = Some(line.to_owned());
        self.mode = Mode::Command;
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\r');
        bytes
    }

    /// Tells the engine the modem went back to command state (after `+++` or a hang-up).
    pub fn back_to_command_mode(&mut self) {
        self.mode = Mode::Command;
        self.line.clear();
        self.overlong = false;
    }

    /// Feeds bytes read from the port and returns the complete lines they finished.
    ///
    /// Lines may arrive split across any number of reads. After a CONNECT result the engine is
    /// online and keeps the remaining bytes for [`Engine::take_data`].
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        for (i, &b) in bytes.iter().enumerate() {
            if self.mode == Mode::Online {
                let mut rest = &bytes[i..];
                // The LF that closes a CR LF framed CONNECT is framing, not data.
                if std::mem::take(&mut self.just_connected) && rest.first() == Some(&b'\n') {
                    rest = &rest[1..];
                }
                self.data.extend_from_slice(rest);
                break;
            }
            if b == b'\r' || b == b'\n' {
                if let Some(event) = self.finish_line() {
                    if let Event::Result(ResultCode::Connect(_)) = event {
                        self.mode = Mode::Online;
                        self.pending = None;
                        self.just_connected = true;
                    }
                    events.push(event);
                }
                continue;
            }
            // A NUL carries nothing in a result code or information text, but modems send
            // them on power-up and with line noise; kept, `\0CONNECT 33600` would read as
            // information text and a call that is up would be taken for a dial timeout.
            if b == 0 {
                continue;
            }
            if self.line.len() < MAX_LINE {
                self.line.push(b);
            } else {
                self.overlong = true;
            }
        }
        events
    }

    /// Bytes that arrived after CONNECT, for whoever carries the data.
    pub fn take_data(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.data)
    }

    fn finish_line(&mut self) -> Option<Event> {
        // Verbal results are framed CR LF text CR LF (V.250 5.7.1), numeric ones end with a
        // lone CR: empty pieces between terminators carry nothing.
        if self.line.is_empty() {
            self.overlong = false;
            return None;
        }
        let text = String::from_utf8_lossy(&self.line).trim().to_owned();
        self.line.clear();
        if std::mem::take(&mut self.overlong) {
            return Some(Event::Overlong(text));
        }
        if text.is_empty() {
            return None;
        }
        if self.is_echo(&text) {
            return Some(Event::Echo(text));
        }
        let code = if self.verbose {
            ResultCode::from_verbal(&text)
        } else {
            // A modem that has just been told V1 answers that command in the new form
            // already, and one reset by a power cycle speaks verbally: accept both.
            ResultCode::from_numeric(&text).or_else(|| ResultCode::from_verbal(&text))
        };
        match code {
            Some(code) => {
                if code.is_final() {
                    self.pending = None;
                }
                Some(Event::Result(code))
            }
            None => Some(Event::Info(text)),
        }
    }

    fn is_echo(&self, text: &str) -> bool {
        // An echoed command is our own line coming back; any line starting with the AT
        // prefix is one (a result code never does), also with echo thought off, since a
        // modem reset by ATZ or a power cycle turns echo back on.
        if let Some(pending) = &self.pending
            && pending.eq_ignore_ascii_case(text)
        {
            return true;
        }
        // By bytes: a line of noise can start with a multi-byte character (U+FFFD for any
        // invalid byte), and slicing a str inside one panics.
        text.as_bytes()
            .get(..2)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"AT"))
    }

    /// Reads the E and V settings from a command line (V.250 6.2.4 and 6.2.6), and the
    /// resets Z and &F, which bring back the factory E1 V1.
    fn apply_settings(&mut self, line: &str) {
        let upper = line.to_ascii_uppercase();
        let Some(body) = upper.strip_prefix("AT") else {
            return;
        };
        let mut chars = body.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                // D takes the rest of the line as the dial string (V.250 6.3.1).
                'D' => return,
                // Extended commands (V.250 5.4.1) run to the next semicolon.
                '+' | '#' | '%' | '\\' => {
                    for c in chars.by_ref() {
                        if c == ';' {
                            break;
                        }
                    }
                }
                'E' | 'V' => {
                    let mut value = 0u32;
                    while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                        value = value.saturating_mul(10).saturating_add(d);
                        chars.next();
                    }
                    if c == 'E' {
                        self.echo = value != 0;
                    } else {
                        self.verbose = value != 0;
                    }
                }
                'Z' => {
                    self.echo = true;
                    self.verbose = true;
                }
                '&' if chars.peek() == Some(&'F') => {
                    chars.next();
                    self.echo = true;
                    self.verbose = true;
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(events: &[Event]) -> Vec<ResultCode> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Result(r) => Some(*r),
                _ => None,
            })
            .collect()
    }

    /// Case modem-split-result: the reply to ATDT arrives in two reads.
    #[test]
    fn modem_split_result() {
        let mut engine = Engine::new();
        engine.command("ATE0");
        engine.feed(b"\r\nOK\r\n");
        engine.command("ATDT5551234");
        assert!(engine.feed(b"\r\nCONN").is_empty());
        let events = engine.feed(b"ECT 33600\r\n");
        assert_eq!(
            events,
            vec![Event::Result(ResultCode::Connect(Some(33600)))]
        );
        assert_eq!(engine.mode(), Mode::Online);
    }

    /// Case modem-no-dialtone-spellings.
    #[test]
    fn modem_no_dialtone_spellings() {
        for spelling in ["NO DIALTONE", "NO DIAL TONE", "no dial tone"] {
            let mut engine = Engine::new();
            engine.command("ATDT5551234");
            let events = engine.feed(format!("\r\n{spelling}\r\n").as_bytes());
            assert_eq!(results(&events), vec![ResultCode::NoDialtone], "{spelling}");
        }
    }

    /// Case modem-numeric-codes: after ATV0, `3\r` is NO CARRIER and `7\r` is BUSY.
    #[test]
    fn modem_numeric_codes() {
        let mut engine = Engine::new();
        engine.command("ATE0V0");
        assert!(!engine.verbose());
        assert_eq!(results(&engine.feed(b"0\r")), vec![ResultCode::Ok]);
        engine.command("ATDT5551234");
        assert_eq!(results(&engine.feed(b"3\r")), vec![ResultCode::NoCarrier]);
        engine.command("ATDT5551234");
        assert_eq!(results(&engine.feed(b"7\r")), vec![ResultCode::Busy]);
    }

    /// In verbal mode a bare number is information text (the reply to ATI, say).
    #[test]
    fn number_in_verbal_mode_is_information() {
        let mut engine = Engine::new();
        engine.command("ATI");
        let events = engine.feed(b"\r\n56000\r\n\r\nOK\r\n");
        assert_eq!(
            events,
            vec![Event::Info("56000".into()), Event::Result(ResultCode::Ok)]
        );
    }

    /// Case modem-echo-on: the echoed dial command is not a result.
    #[test]
    fn modem_echo_on() {
        let mut engine = Engine::new();
        engine.command("ATE1");
        engine.feed(b"ATE1\r\r\nOK\r\n");
        engine.command("ATDT5551234");
        let events = engine.feed(b"ATDT5551234\r");
        assert_eq!(events, vec![Event::Echo("ATDT5551234".into())]);
        let events = engine.feed(b"\r\nBUSY\r\n");
        assert_eq!(results(&events), vec![ResultCode::Busy]);
    }

    /// NUL bytes around or inside a result are dropped, in verbal and numeric form; a line of
    /// NULs alone is no line at all.
    #[test]
    fn nul_bytes_in_command_state_are_ignored() {
        let mut engine = Engine::new();
        engine.command("ATDT5551234");
        let events = engine.feed(b"\r\n\0\0\r\n\0CONNECT 33600\0\r\n");
        assert_eq!(
            events,
            vec![Event::Result(ResultCode::Connect(Some(33600)))]
        );
        assert_eq!(engine.mode(), Mode::Online);

        let mut engine = Engine::new();
        engine.command("ATE0V0");
        assert_eq!(results(&engine.feed(b"\x000\0\r")), vec![ResultCode::Ok]);
        engine.command("ATI");
        let events = engine.feed(b"\r\nMo\0dem\r\n");
        assert_eq!(events, vec![Event::Info("Modem".into())]);
    }

    /// Online, a NUL is data like any other byte.
    #[test]
    fn nul_bytes_online_are_data() {
        let mut engine = Engine::new();
        engine.command("ATD*99#");
        engine.feed(b"\r\nCONNECT\r\n\0a\0");
        assert_eq!(engine.take_data(), b"\0a\0");
    }

    #[test]
    fn bytes_after_connect_are_data() {
        let mut engine = Engine::new();
        engine.command("ATD*99#");
        let events = engine.feed(b"\r\nCONNECT\r\n~\xff\x7d\x23");
        assert_eq!(results(&events), vec![ResultCode::Connect(None)]);
        // The LF after CONNECT's CR is framing, not data.
        let data = engine.take_data();
        assert_eq!(data, b"~\xff\x7d\x23");
    }

    /// However a transcript is cut into reads, the engine finds the same lines: every cut of a
    /// real dialogue (echo on, info text, split results, numeric mode) is tried.
    #[test]
    fn any_split_of_a_transcript_gives_the_same_events() {
        let script: &[(&str, &[u8])] = &[
            ("ATE1V1", b"ATE1V1\r\r\nOK\r\n"),
            ("ATI", b"ATI\r\r\nModem 3.1\r\n\r\nOK\r\n"),
            ("ATDT5551234", b"ATDT5551234\r\r\nNO DIAL TONE\r\n"),
            ("ATE0V0", b"ATE0V0\r0\r"),
            ("ATDT5551234", b"7\r"),
            ("ATDT5551234", b"1\r"),
        ];
        let run = |cut: &dyn Fn(usize) -> bool| {
            let mut engine = Engine::new();
            let mut events = Vec::new();
            for (command, reply) in script {
                engine.command(command);
                let mut start = 0;
                for i in 1..=reply.len() {
                    if i == reply.len() || cut(i) {
                        events.extend(engine.feed(&reply[start..i]));
                        start = i;
                    }
                }
            }
            events
        };
        let whole = run(&|_| false);
        assert_eq!(
            results(&whole),
            [
                ResultCode::Ok,
                ResultCode::Ok,
                ResultCode::NoDialtone,
                ResultCode::Ok,
                ResultCode::Busy,
                ResultCode::Connect(None)
            ]
        );
        for seed in 1..64usize {
            let cut = move |i: usize| (i * 7919 + seed * 104_729) % (seed % 5 + 2) == 0;
            assert_eq!(run(&cut), whole, "cut pattern {seed}");
        }
        assert_eq!(run(&|_| true), whole, "byte by byte");
    }

    #[test]
    fn overlong_line_is_cut_not_grown() {
        let mut engine = Engine::new();
        let mut junk = vec![b'x'; MAX_LINE * 4];
        junk.extend_from_slice(b"\r\nOK\r\n");
        let events = engine.feed(&junk);
        assert!(matches!(&events[0], Event::Overlong(s) if s.len() == MAX_LINE));
        assert_eq!(events[1], Event::Result(ResultCode::Ok));
    }

    #[test]
    fn reset_brings_back_verbal_and_echo() {
        let mut engine = Engine::new();
        engine.command("ATE0V0");
        engine.command("ATZ");
        assert!(engine.echo() && engine.verbose());
        engine.command("AT+CGDCONT=1,\"IP\",\"EV0\";E0");
        assert!(!engine.echo());
        assert!(engine.verbose());
    }
}
