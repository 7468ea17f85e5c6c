//! Starting a component's process, so that it never outlives the supervisor.
//!
//! Every child gets `PR_SET_PDEATHSIG = SIGKILL` between fork and exec: when the supervisor dies,
//! even by SIGKILL, the kernel kills its children. That needs code in the child before exec,
//! which std only offers through the unsafe `CommandExt::pre_exec`; this module is the only
//! place of the crate that uses it (the other one is the watchdog ioctl). A process group alone
//! would not do: nobody is left to signal the group when the supervisor is killed.
//!
//! The death signal is tied to the *thread* that forked, not the process: the supervisor forks
//! only from its main thread (`supervise::run` drives its loop with `block_on` there), which
//! lives as long as the process.
//!
//! Each child also leads its own process group, so a terminal's Ctrl-C reaches only the
//! supervisor (which then stops the children in order), and stopping a component signals its
//! whole group.

#![allow(unsafe_code)]

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use rustix::process::{Pid, Signal};

/// A started component process.
#[derive(Debug)]
pub struct Spawned {
    /// Its process id, also its process group id.
    pub pid: Pid,
    /// The read end of its standard output.
    pub stdout: OwnedFd,
    /// The read end of its standard error.
    pub stderr: OwnedFd,
}

/// Environment variables the supervisor gets from systemd that are meant for it alone.
const PRIVATE_ENV: &[&str] = &[
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
];

/// Starts `program args... --config config` for the component `name`.
///
/// The child is not waited for here: the supervisor reaps every child itself with
/// `waitpid(-1)`, so dropping std's `Child` handle is intended.
pub fn spawn(
    name: &str,
    program: &OsString,
    args: &[OsString],
    config: &Path,
) -> std::io::Result<Spawned> {
    let mut command = Command::new(program);
    command
        .args(args)
        .arg("--config")
        .arg(config)
        .env("POSTROOM_COMPONENT", name)
        .env(postroom_logging::CHILD_ENV.0, postroom_logging::CHILD_ENV.1)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for var in PRIVATE_ENV {
        command.env_remove(var);
    }

    let parent = rustix::process::getpid();
    // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
    // work is allowed. It makes two raw system calls through rustix (prctl and getppid), which
    // neither allocate nor take locks, and builds an io::Error from a raw errno, which does not
    // allocate either. It touches no memory shared with other threads of the parent.
    unsafe {
        command.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
            // The parent may have died between fork and prctl; then no signal will come.
            if rustix::process::getppid() != Some(parent) {
                return Err(std::io::Error::from_raw_os_error(
                    rustix::io::Errno::SRCH.raw_os_error(),
                ));
            }
            Ok(())
        });
    }

    let mut child = command.spawn()?;
    let pid = Pid::from_raw(child.id() as i32)
        .ok_or_else(|| std::io::Error::other("the kernel gave the child process id 0"))?;
    // Both pipes were asked for above, so both are present.
    let stdout = child
        .stdout
        .take()
        .map(OwnedFd::from)
        .ok_or_else(missing_pipe)?;
    let stderr = child
        .stderr
        .take()
        .map(OwnedFd::from)
        .ok_or_else(missing_pipe)?;
    Ok(Spawned {
        pid,
        stdout,
        stderr,
    })
}

fn missing_pipe() -> std::io::Error {
    std::io::Error::other("the child's output pipe is missing")
}
