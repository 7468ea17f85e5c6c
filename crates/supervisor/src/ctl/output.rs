//! Everything ctl prints goes through [`out!`] and [`outln!`], so that a reader that stops
//! reading (`postroom ctl logs | head`) ends the command quietly: `println!` would panic on
//! the closed pipe. [`main`](super::main) turns [`StdoutClosed`] into a plain exit 0.

use std::fmt;
use std::io::{self, Write};

/// Standard output was closed by its reader (EPIPE): nobody wants the rest, which is no
/// failure of the command.
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed")]
pub struct StdoutClosed;

/// Writes to standard output and flushes, so that a closed pipe shows up here and not later.
pub fn write(args: fmt::Arguments<'_>) -> anyhow::Result<()> {
    let mut stdout = io::stdout().lock();
    match stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to standard output")),
    }
}

/// `print!` that returns an error instead of panicking; see the module.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::ctl::output::write(format_args!($($arg)*))
    };
}

/// `println!` that returns an error instead of panicking; see the module.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::ctl::output::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {out, outln};
