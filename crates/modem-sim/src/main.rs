//! `postroom-modem-sim`: runs the modem simulator on a pty until interrupted.
//!
//! ```text
//! postroom-modem-sim --link /tmp/modem --busy 2 --answer connect --rate 33600
//! ```
//! prints the slave path (and makes the symlink), then answers the Hayes dialogue on it.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use postroom_modem_sim::{Answer, Behaviour, Simulator};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum AnswerArg {
    Connect,
    Busy,
    NoDialtone,
    NoAnswer,
    NoCarrier,
    Error,
    Silence,
}

/// A Hayes modem simulator on a pseudo-terminal.
#[derive(Debug, Parser)]
#[command(name = "postroom-modem-sim")]
struct Args {
    /// Make a symlink here pointing at the pty's slave side.
    #[arg(long)]
    link: Option<PathBuf>,
    /// Answer BUSY to this many dials first.
    #[arg(long, default_value_t = 0)]
    busy: u32,
    /// What to answer after that.
    #[arg(long, value_enum, default_value = "connect")]
    answer: AnswerArg,
    /// The rate in the CONNECT result (0 for a bare CONNECT).
    #[arg(long, default_value_t = 33600)]
    rate: u32,
    /// Write every result in two pieces.
    #[arg(long)]
    split: bool,
    /// Spell NO DIAL TONE with a space.
    #[arg(long)]
    spaced_dial_tone: bool,
    /// A dial this many milliseconds after a hang-up gets NO DIALTONE.
    #[arg(long, default_value_t = 0)]
    line_rest_ms: u64,
    /// How long a dial takes, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    dial_delay_ms: u64,
    /// The escape guard time, in milliseconds.
    #[arg(long, default_value_t = 500)]
    guard_ms: u64,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let behaviour = Behaviour {
        busy_first: args.busy,
        answer: match args.answer {
            AnswerArg::Connect => Answer::Connect(args.rate),
            AnswerArg::Busy => Answer::Busy,
            AnswerArg::NoDialtone => Answer::NoDialtone,
            AnswerArg::NoAnswer => Answer::NoAnswer,
            AnswerArg::NoCarrier => Answer::NoCarrier,
            AnswerArg::Error => Answer::Error,
            AnswerArg::Silence => Answer::Silence,
        },
        split: args.split,
        spaced_dial_tone: args.spaced_dial_tone,
        line_rest: Duration::from_millis(args.line_rest_ms),
        dial_delay: Duration::from_millis(args.dial_delay_ms),
        guard: Duration::from_millis(args.guard_ms),
    };
    let sim = match Simulator::start(behaviour, args.link.as_deref()) {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("postroom-modem-sim: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("{}", sim.path().display());
    // Runs until killed; the symlink is left behind then, and replaced on the next start.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
