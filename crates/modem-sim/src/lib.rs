//! A Hayes modem simulator on a pseudo-terminal, for tests and for dev mode.
//!
//! [`Simulator::start`] creates a pty pair, answers the AT dialogue on the master side and
//! gives out the slave's path, which any program opens as if it were `/dev/ttyS0`. The
//! dialogue itself is [`SimModem`], a state machine without I/O. After CONNECT the far end is
//! a loopback until the escape sequence (`+++` between guard times) and ATH; a pty has no DTR
//! line, so DTR drops cannot be seen here.

#![forbid(unsafe_code)]

pub mod behaviour;
pub mod core;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, poll};
use rustix::fs::{Mode, OFlags};
use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};

pub use crate::behaviour::{Answer, Behaviour};
pub use crate::core::{Output, SimModem, Stats};

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The pseudo-terminal pair could not be created or set to raw mode.
    #[error("cannot create a pseudo-terminal: {0}")]
    Pty(#[from] rustix::io::Errno),
    /// The symlink to the slave side could not be made.
    #[error("cannot link {link} to the modem: {source}")]
    Link {
        link: PathBuf,
        source: std::io::Error,
    },
}

/// A running simulator; stopped when dropped.
#[derive(Debug)]
pub struct Simulator {
    path: PathBuf,
    link: Option<PathBuf>,
    modem: Arc<Mutex<SimModem>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Creates the pty and starts answering. With `link`, a symlink there points at the slave.
    pub fn start(behaviour: Behaviour, link: Option<&Path>) -> Result<Simulator, Error> {
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
        grantpt(&master)?;
        unlockpt(&master)?;
        let name = ptsname(&master, Vec::new())?;
        let path = PathBuf::from(name.to_string_lossy().into_owned());

        // Keep a slave descriptor open for the simulator's whole life: without one, the master
        // reads EIO each time the client closes its side (between calls, or while pppd takes
        // over), and the line settings would be lost. Raw mode so the line discipline neither
        // echoes nor turns CR into LF before a client sets its own modes.
        let slave = rustix::fs::open(
            &path,
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut modes = rustix::termios::tcgetattr(&slave)?;
        modes.make_raw();
        rustix::termios::tcsetattr(&slave, rustix::termios::OptionalActions::Now, &modes)?;

        if let Some(link) = link {
            let _ = std::fs::remove_file(link);
            std::os::unix::fs::symlink(&path, link).map_err(|source| Error::Link {
                link: link.to_owned(),
                source,
            })?;
        }

        let modem = Arc::new(Mutex::new(SimModem::new(behaviour)));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let modem = Arc::clone(&modem);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("modem-sim".into())
                .spawn(move || serve(master, slave, &modem, &stop))
                .map_err(|e| Error::Link {
                    link: path.clone(),
                    source: e,
                })?
        };
        tracing::info!(path = %path.display(), "modem simulator ready");
        Ok(Simulator {
            path,
            link: link.map(Path::to_owned),
            modem,
            stop,
            thread: Some(thread),
        })
    }

    /// The slave side's path, to open as a serial port.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A copy of the counters.
    pub fn stats(&self) -> Stats {
        match self.modem.lock() {
            Ok(m) => m.stats().clone(),
            Err(poisoned) => poisoned.into_inner().stats().clone(),
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Some(link) = &self.link {
            let _ = std::fs::remove_file(link);
        }
    }
}

fn serve(master: OwnedFd, _slave: OwnedFd, modem: &Mutex<SimModem>, stop: &AtomicBool) {
    let mut file = File::from(master);
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::Relaxed) {
        let wait = {
            let Ok(m) = modem.lock() else { return };
            m.next_wakeup()
                .map(|at| at.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_millis(50))
                .min(Duration::from_millis(50))
        };
        let timeout = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: i64::from(wait.subsec_nanos()),
        };
        let readable = {
            let mut fds = [PollFd::new(&file, PollFlags::IN)];
            match poll(&mut fds, Some(&timeout)) {
                Ok(n) => n > 0 && fds[0].revents().contains(PollFlags::IN),
                Err(rustix::io::Errno::INTR) => false,
                Err(e) => {
                    tracing::warn!(error = %e, "modem simulator poll failed");
                    return;
                }
            }
        };
        let outputs = {
            let Ok(mut m) = modem.lock() else { return };
            let now = Instant::now();
            let mut out = m.tick(now);
            if readable {
                match file.read(&mut buf) {
                    Ok(n) => out.extend(m.input(now, buf.get(..n).unwrap_or_default())),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "modem simulator read failed");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
            out
        };
        for output in outputs {
            match output {
                Output::Write(bytes) => {
                    if let Err(e) = file.write_all(&bytes) {
                        tracing::warn!(error = %e, "modem simulator write failed");
                    }
                }
                Output::Pause(d) => std::thread::sleep(d),
            }
        }
    }
}
