//! Collecting exited children: any child, not just the components.
//!
//! The supervisor asks to be the subreaper of its descendants (PR_SET_CHILD_SUBREAPER), so a
//! process that a component leaves behind is re-parented to it rather than to init; as PID 1
//! every orphan of the system comes to it anyway. Either way `waitpid(-1)` collects them all, so
//! no zombie stays behind.

use std::fmt;

use rustix::io::Errno;
use rustix::process::{Pid, WaitOptions, WaitStatus};
use serde::{Deserialize, Serialize};

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// It called exit with this code.
    Exited(i32),
    /// A signal with this number killed it.
    Killed(i32),
}

/// What a round of reaping found.
#[derive(Debug, Default)]
pub struct Reaped {
    /// The children that ended.
    pub ended: Vec<(Pid, Ending)>,
    /// The supervisor has no children at all any more.
    pub none_left: bool,
}

/// Collects every child that has ended, without blocking.
pub fn reap() -> Reaped {
    let mut reaped = Reaped::default();
    loop {
        match rustix::process::wait(WaitOptions::NOHANG) {
            Ok(Some((pid, status))) => {
                if let Some(ending) = Ending::from_status(status) {
                    reaped.ended.push((pid, ending));
                }
            }
            Ok(None) => return reaped,
            Err(Errno::CHILD) => {
                reaped.none_left = true;
                return reaped;
            }
            Err(Errno::INTR) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "waitpid failed");
                return reaped;
            }
        }
    }
}

impl Ending {
    fn from_status(status: WaitStatus) -> Option<Ending> {
        if let Some(code) = status.exit_status() {
            Some(Ending::Exited(code))
        } else {
            status.terminating_signal().map(Ending::Killed)
        }
    }

    /// Whether this was a clean `exit(0)`.
    pub fn is_success(self) -> bool {
        self == Ending::Exited(0)
    }
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ending::Exited(code) => write!(f, "exit code {code}"),
            Ending::Killed(signal) => match signal_name(*signal) {
                Some(name) => write!(f, "killed by {name}"),
                None => write!(f, "killed by signal {signal}"),
            },
        }
    }
}

/// The usual name of the signals a supervisor meets.
fn signal_name(signal: i32) -> Option<&'static str> {
    // Numbers from signal(7); they are the same on x86_64 and aarch64.
    Some(match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endings_read_as_an_administrator_would_say_them() {
        assert_eq!(Ending::Exited(3).to_string(), "exit code 3");
        assert_eq!(Ending::Killed(9).to_string(), "killed by SIGKILL");
        assert_eq!(Ending::Killed(40).to_string(), "killed by signal 40");
    }
}
