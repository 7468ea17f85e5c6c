//! The simulated modem's dialogue, without I/O: bytes and time in, bytes out.

use std::time::{Duration, Instant};

use crate::behaviour::{Answer, Behaviour};

/// Something for the pty side to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Write these bytes to the line.
    Write(Vec<u8>),
    /// Wait this long before the next output (to split a result across reads).
    Pause(Duration),
}

/// Counters a test can read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Every dial string, in order.
    pub dials: Vec<String>,
    /// Calls that reached CONNECT.
    pub connects: u32,
    /// Hang-ups (ATH, or escape then ATH).
    pub hangups: u32,
    /// Bytes carried while online.
    pub data_bytes: u64,
}

#[derive(Debug)]
enum State {
    Command,
    Dialling { answer_at: Instant, code: Code },
    Online { escape: Escape },
}

/// Progress through `+++`: data seen last at `quiet_since`, pluses counted.
#[derive(Debug)]
struct Escape {
    quiet_since: Instant,
    pluses: u8,
    plus_at: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Code {
    Ok,
    Connect(u32),
    NoCarrier,
    Error,
    NoDialtone,
    Busy,
    NoAnswer,
}

/// The simulated modem.
#[derive(Debug)]
pub struct SimModem {
    behaviour: Behaviour,
    state: State,
    line: Vec<u8>,
    echo: bool,
    verbose: bool,
    apn: Option<String>,
    last_hangup: Option<Instant>,
    stats: Stats,
}

impl SimModem {
    /// A modem in command state with factory settings E1 V1.
    pub fn new(behaviour: Behaviour) -> SimModem {
        SimModem {
            behaviour,
            state: State::Command,
            line: Vec::new(),
            echo: true,
            verbose: true,
            apn: None,
            last_hangup: None,
            stats: Stats::default(),
        }
    }

    /// What happened so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The next time [`SimModem::tick`] has something to do.
    pub fn next_wakeup(&self) -> Option<Instant> {
        match &self.state {
            State::Command => None,
            State::Dialling { answer_at, .. } => Some(*answer_at),
            State::Online { escape } if escape.pluses == 3 => {
                Some(escape.plus_at + self.behaviour.guard)
            }
            State::Online { .. } => None,
        }
    }

    /// Lets time pass: a dial result falls due, or a `+++` is confirmed by silence.
    pub fn tick(&mut self, now: Instant) -> Vec<Output> {
        match &self.state {
            State::Dialling { answer_at, code } if now >= *answer_at => {
                let code = *code;
                self.state = match code {
                    Code::Connect(_) => {
                        self.stats.connects += 1;
                        State::Online {
                            escape: Escape {
                                quiet_since: now,
                                pluses: 0,
                                plus_at: now,
                            },
                        }
                    }
                    _ => State::Command,
                };
                self.result(code)
            }
            State::Online { escape }
                if escape.pluses == 3 && now >= escape.plus_at + self.behaviour.guard =>
            {
                self.state = State::Command;
                self.result(Code::Ok)
            }
            _ => Vec::new(),
        }
    }

    /// Bytes from the computer.
    pub fn input(&mut self, now: Instant, bytes: &[u8]) -> Vec<Output> {
        let mut out = Vec::new();
        for &b in bytes {
            match &mut self.state {
                State::Dialling { .. } => {
                    // Any character aborts a dial (V.250 6.3.1).
                    self.state = State::Command;
                    out.extend(self.result(Code::NoCarrier));
                }
                State::Online { escape } => {
                    let guard = self.behaviour.guard;
                    let counts = b == b'+'
                        && escape.pluses < 3
                        && (escape.pluses > 0 || now.duration_since(escape.quiet_since) >= guard);
                    if counts {
                        escape.pluses += 1;
                        escape.plus_at = now;
                    } else {
                        escape.pluses = 0;
                        escape.quiet_since = now;
                        self.stats.data_bytes += 1;
                        // The far end is a loopback: whatever is sent comes back, so a
                        // stand-in for pppd can see that the line carries data.
                        out.push(Output::Write(vec![b]));
                    }
                }
                State::Command => {
                    if self.echo {
                        out.push(Output::Write(vec![b]));
                    }
                    match b {
                        b'\r' => {
                            let line = String::from_utf8_lossy(&self.line).trim().to_owned();
                            self.line.clear();
                            if !line.is_empty() {
                                out.extend(self.command(now, &line));
                            }
                        }
                        b'\n' => {}
                        // Backspace edits the line (V.250 5.2.2, S5).
                        8 => {
                            self.line.pop();
                        }
                        _ if self.line.len() < 256 => self.line.push(b),
                        _ => {}
                    }
                }
            }
        }
        out
    }

    fn command(&mut self, now: Instant, line: &str) -> Vec<Output> {
        let upper = line.to_ascii_uppercase();
        let Some(body) = upper.strip_prefix("AT") else {
            return self.result(Code::Error);
        };
        if let Some(rest) = body.strip_prefix("+CGDCONT=") {
            let apn = rest
                .split(',')
                .nth(2)
                .map(|s| s.trim_matches('"').to_owned());
            self.apn = apn.filter(|a| !a.is_empty());
            return self.result(Code::Ok);
        }
        if body.starts_with('+') {
            return self.result(Code::Error);
        }
        let mut chars = body.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                'D' => {
                    let dial: String = line[line.len() - body.len()..]
                        .chars()
                        .skip_while(|c| !c.eq_ignore_ascii_case(&'D'))
                        .skip(1)
                        .collect();
                    return self.dial(now, dial.trim());
                }
                'E' => self.echo = number(&mut chars) != 0,
                'V' => self.verbose = number(&mut chars) != 0,
                'Z' => {
                    number(&mut chars);
                    self.echo = true;
                    self.verbose = true;
                }
                'H' => {
                    number(&mut chars);
                    self.stats.hangups += 1;
                    self.last_hangup = Some(now);
                }
                'S' => {
                    number(&mut chars);
                    if chars.peek() == Some(&'=') {
                        chars.next();
                        number(&mut chars);
                    } else if chars.peek() == Some(&'?') {
                        chars.next();
                    }
                }
                '&' => {
                    if chars.next() == Some('F') {
                        self.echo = true;
                        self.verbose = true;
                    }
                    number(&mut chars);
                }
                'I' => {
                    number(&mut chars);
                    let mut out = self.info("Postroom modem simulator");
                    out.extend(self.result(Code::Ok));
                    return out;
                }
                c if c.is_ascii_alphabetic() => {
                    number(&mut chars);
                }
                ' ' => {}
                _ => return self.result(Code::Error),
            }
        }
        self.result(Code::Ok)
    }

    fn dial(&mut self, now: Instant, dial: &str) -> Vec<Output> {
        self.stats.dials.push(dial.to_owned());
        let b = &self.behaviour;
        let resting = self
            .last_hangup
            .is_some_and(|t| now.duration_since(t) < b.line_rest);
        let code = if dial.starts_with("*99") && self.apn.is_none() {
            Code::Error
        } else if resting {
            Code::NoDialtone
        } else if self.stats.dials.len() as u32 <= b.busy_first {
            Code::Busy
        } else {
            match b.answer {
                Answer::Connect(rate) => Code::Connect(rate),
                Answer::Busy => Code::Busy,
                Answer::NoDialtone => Code::NoDialtone,
                Answer::NoAnswer => Code::NoAnswer,
                Answer::NoCarrier => Code::NoCarrier,
                Answer::Error => Code::Error,
                Answer::Silence => {
                    self.state = State::Dialling {
                        answer_at: now + Duration::from_secs(86_400 * 365),
                        code: Code::NoCarrier,
                    };
                    return Vec::new();
                }
            }
        };
        self.state = State::Dialling {
            answer_at: now + b.dial_delay,
            code,
        };
        Vec::new()
    }

    fn info(&self, text: &str) -> Vec<Output> {
        vec![Output::Write(format!("\r\n{text}\r\n").into_bytes())]
    }

    /// Formats a result code: `CR LF text CR LF` in V1, `digits CR` in V0 (V.250 5.7.1).
    fn result(&mut self, code: Code) -> Vec<Output> {
        let text = match code {
            Code::Ok => "OK".to_owned(),
            Code::Connect(0) => "CONNECT".to_owned(),
            Code::Connect(rate) => format!("CONNECT {rate}"),
            Code::NoCarrier => "NO CARRIER".to_owned(),
            Code::Error => "ERROR".to_owned(),
            Code::NoDialtone if self.behaviour.spaced_dial_tone => "NO DIAL TONE".to_owned(),
            Code::NoDialtone => "NO DIALTONE".to_owned(),
            Code::Busy => "BUSY".to_owned(),
            Code::NoAnswer => "NO ANSWER".to_owned(),
        };
        let number = match code {
            Code::Ok => 0,
            Code::Connect(_) => 1,
            Code::NoCarrier => 3,
            Code::Error => 4,
            Code::NoDialtone => 6,
            Code::Busy => 7,
            Code::NoAnswer => 8,
        };
        let bytes = if self.verbose {
            format!("\r\n{text}\r\n").into_bytes()
        } else {
            format!("{number}\r").into_bytes()
        };
        if self.behaviour.split && bytes.len() > 2 {
            let cut = bytes.len() / 2;
            vec![
                Output::Write(bytes[..cut].to_vec()),
                Output::Pause(Duration::from_millis(30)),
                Output::Write(bytes[cut..].to_vec()),
            ]
        } else {
            vec![Output::Write(bytes)]
        }
    }
}

/// Reads the decimal parameter after a basic command letter (missing means 0, V.250 5.3.1).
fn number(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> u32 {
    let mut n = 0u32;
    while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
        n = n.saturating_mul(10).saturating_add(d);
        chars.next();
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(out: &[Output]) -> String {
        let mut s = Vec::new();
        for o in out {
            if let Output::Write(b) = o {
                s.extend_from_slice(b);
            }
        }
        String::from_utf8_lossy(&s).into_owned()
    }

    #[test]
    fn busy_then_connect() {
        let t0 = Instant::now();
        let mut m = SimModem::new(Behaviour {
            busy_first: 1,
            ..Behaviour::default()
        });
        assert_eq!(written(&m.input(t0, b"ATE0\r")), "ATE0\r\r\nOK\r\n");
        assert_eq!(written(&m.input(t0, b"ATDT1\r")), "");
        let due = m.next_wakeup().unwrap();
        assert_eq!(written(&m.tick(due)), "\r\nBUSY\r\n");
        m.input(due, b"ATDT1\r");
        let due = m.next_wakeup().unwrap();
        assert_eq!(written(&m.tick(due)), "\r\nCONNECT 33600\r\n");
        assert_eq!(written(&m.input(due, b"x")), "x");
    }

    #[test]
    fn escape_needs_guard_time_on_both_sides() {
        let t0 = Instant::now();
        let guard = Duration::from_millis(500);
        let mut m = SimModem::new(Behaviour {
            guard,
            ..Behaviour::default()
        });
        m.input(t0, b"ATDT1\r");
        let due = m.next_wakeup().unwrap();
        m.tick(due);
        // Pluses right after data are data.
        assert_eq!(written(&m.input(due, b"a+++")), "a+++");
        let later = due + guard * 2;
        assert!(m.input(later, b"+++").is_empty());
        let wake = m.next_wakeup().unwrap();
        assert_eq!(written(&m.tick(wake)), "\r\nOK\r\n");
        assert_eq!(written(&m.input(wake, b"ATH\r")), "ATH\r\r\nOK\r\n");
        assert_eq!(m.stats().hangups, 1);
    }

    #[test]
    fn numeric_mode_after_v0() {
        let t0 = Instant::now();
        let mut m = SimModem::new(Behaviour {
            answer: Answer::NoCarrier,
            ..Behaviour::default()
        });
        assert_eq!(written(&m.input(t0, b"ATE0V0\r")), "ATE0V0\r0\r");
        m.input(t0, b"ATDT1\r");
        let due = m.next_wakeup().unwrap();
        assert_eq!(written(&m.tick(due)), "3\r");
    }
}
