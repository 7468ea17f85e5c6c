//! UUCP lock files: the convention pppd, mgetty, HylaFAX and minicom use to share a port.
//!
//! The lock for `/dev/ttyS0` is `LCK..ttyS0` in the lock directory (`/var/lock` in the
//! Filesystem Hierarchy Standard, section 5.9). It holds the owner's pid as ten ASCII
//! characters, right-aligned, and a newline (the HDB UUCP form). A lock whose pid no longer
//! exists is stale and may be removed.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rustix::process::{Pid, getpid, test_kill_process};

use crate::Error;

/// A held lock on a serial port; removed when dropped.
#[derive(Debug)]
pub struct PortLock {
    path: PathBuf,
}

impl PortLock {
    /// Takes the lock for `device` in `lock_dir`, removing a stale lock first.
    ///
    /// Fails with [`Error::PortLocked`] when a live process holds it.
    pub fn acquire(lock_dir: &Path, device: &Path) -> Result<PortLock, Error> {
        let path = lock_path(lock_dir, device);
        let me = getpid().as_raw_nonzero().get();

        // Write the whole content to a private file first and link it into place, so that
        // nobody ever reads a half-written lock and takes it for stale (the trick Taylor UUCP
        // and pppd use).
        let temp = lock_dir.join(format!("LTMP.{me}"));
        let io_err = |source| Error::Lock {
            path: path.clone(),
            source,
        };
        {
            let mut file = fs::File::create(&temp).map_err(io_err)?;
            file.write_all(format!("{me:>10}\n").as_bytes())
                .map_err(io_err)?;
        }
        let result = (|| {
            for _ in 0..2 {
                match fs::hard_link(&temp, &path) {
                    Ok(()) => return Ok(PortLock { path: path.clone() }),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(io_err(e)),
                }
                match owner(&path) {
                    Some(pid) if pid == me => return Ok(PortLock { path: path.clone() }),
                    Some(pid) if is_alive(pid) => {
                        return Err(Error::PortLocked {
                            path: path.clone(),
                            pid,
                        });
                    }
                    _ => {
                        tracing::warn!(lock = %path.display(), "removing stale lock file");
                        match fs::remove_file(&path) {
                            Ok(()) => {}
                            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                            Err(e) => return Err(io_err(e)),
                        }
                    }
                }
            }
            Err(Error::PortLocked {
                path: path.clone(),
                pid: owner(&path).unwrap_or(0),
            })
        })();
        let _ = fs::remove_file(&temp);
        result
    }

    /// Where the lock file is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PortLock {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.path) {
            tracing::warn!(lock = %self.path.display(), error = %e, "cannot remove lock file");
        }
    }
}

/// The lock file name for a device: `LCK..` and the device's last path component.
pub fn lock_path(lock_dir: &Path, device: &Path) -> PathBuf {
    let name = device
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    lock_dir.join(format!("LCK..{name}"))
}

/// The pid in a lock file, if it can be read. Binary (4-byte) locks from ancient UUCPs are
/// not read; they count as stale.
fn owner(path: &Path) -> Option<i32> {
    let text = fs::read_to_string(path).ok()?;
    text.trim().parse().ok().filter(|pid: &i32| *pid > 0)
}

/// `kill(pid, 0)`: ESRCH means gone; EPERM means alive but someone else's.
fn is_alive(pid: i32) -> bool {
    let Some(pid) = Pid::from_raw(pid) else {
        return false;
    };
    match test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e != rustix::io::Errno::SRCH,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_holds_ten_column_pid_and_newline() {
        let dir = tempfile::tempdir().unwrap();
        let lock = PortLock::acquire(dir.path(), Path::new("/dev/ttyS0")).unwrap();
        assert_eq!(lock.path(), dir.path().join("LCK..ttyS0"));
        let text = fs::read_to_string(lock.path()).unwrap();
        assert_eq!(text.len(), 11);
        assert_eq!(text, format!("{:>10}\n", std::process::id()));
        drop(lock);
        assert!(!dir.path().join("LCK..ttyS0").exists());
    }

    #[test]
    fn live_owner_keeps_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        // pid 1 is always alive (init, or the container's first process).
        fs::write(dir.path().join("LCK..ttyS1"), format!("{:>10}\n", 1)).unwrap();
        let err = PortLock::acquire(dir.path(), Path::new("/dev/ttyS1")).unwrap_err();
        assert!(matches!(err, Error::PortLocked { pid: 1, .. }), "{err}");
    }

    #[test]
    fn stale_lock_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        // A child that has exited and been reaped leaves a pid nobody owns.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        fs::write(dir.path().join("LCK..ttyUSB0"), format!("{dead:>10}\n")).unwrap();
        let lock = PortLock::acquire(dir.path(), Path::new("/dev/ttyUSB0")).unwrap();
        let text = fs::read_to_string(lock.path()).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
    }
}
