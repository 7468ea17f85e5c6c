//! What the simulated modem does when dialled.

use std::time::Duration;

/// The final answer to a dial, once any BUSY answers are used up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Answer {
    /// CONNECT at this rate (`CONNECT 33600`); rate 0 means a bare `CONNECT`.
    Connect(u32),
    /// BUSY, every time.
    Busy,
    /// NO DIALTONE (or NO DIAL TONE, see [`Behaviour::spaced_dial_tone`]).
    NoDialtone,
    /// NO ANSWER.
    NoAnswer,
    /// NO CARRIER.
    NoCarrier,
    /// ERROR: a modem that refuses the dial (say, a dial string it cannot parse).
    Error,
    /// Nothing at all: the dial hangs until the caller aborts it.
    Silence,
}

/// How the simulated modem behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct Behaviour {
    /// Answer BUSY to this many dials first.
    pub busy_first: u32,
    /// Then answer this.
    pub answer: Answer,
    /// Write every result in two pieces, split inside the word, with a pause between.
    pub split: bool,
    /// Spell the no-dial-tone result `NO DIAL TONE` instead of `NO DIALTONE`.
    pub spaced_dial_tone: bool,
    /// A dial this soon after a hang-up gets NO DIALTONE: the exchange has not given the line
    /// back yet.
    pub line_rest: Duration,
    /// How long the dial takes before the result.
    pub dial_delay: Duration,
    /// The escape guard time (S12).
    pub guard: Duration,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            busy_first: 0,
            answer: Answer::Connect(33600),
            split: false,
            spaced_dial_tone: false,
            line_rest: Duration::ZERO,
            dial_delay: Duration::from_millis(200),
            guard: Duration::from_millis(500),
        }
    }
}
