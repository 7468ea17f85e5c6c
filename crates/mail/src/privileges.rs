//! Dropping root once the ports are bound.
//!
//! This runs before the tokio runtime starts, while the process has one thread: Linux keeps
//! user and group ids per thread, and rustix's calls change only the calling thread's.

use std::path::Path;

use rustix::process::{Gid, Uid};

use crate::Error;

/// A user's ids from /etc/passwd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
}

/// Looks a user up in a passwd file.
pub fn lookup(passwd: &Path, user: &str) -> Result<Ids, Error> {
    let not_found = |reason: String| Error::User {
        user: user.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(passwd)
        .map_err(|e| not_found(format!("cannot read {}: {e}", passwd.display())))?;
    for line in text.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() >= 4 && fields[0] == user {
            let uid = fields[2]
                .parse()
                .map_err(|_| not_found("bad uid in passwd".into()))?;
            let gid = fields[3]
                .parse()
                .map_err(|_| not_found("bad gid in passwd".into()))?;
            return Ok(Ids { uid, gid });
        }
    }
    Err(not_found(format!("not in {}", passwd.display())))
}

/// Looks a group up in a group file.
pub fn lookup_group(group_file: &Path, group: &str) -> Result<u32, Error> {
    let fail = |reason: String| Error::User {
        user: format!("group {group}"),
        reason,
    };
    let text = std::fs::read_to_string(group_file)
        .map_err(|e| fail(format!("cannot read {}: {e}", group_file.display())))?;
    text.lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 3 && f[0] == group)
        .and_then(|f| f[2].parse().ok())
        .ok_or_else(|| fail(format!("not in {}", group_file.display())))
}

/// Hands `trees` (recursively) and `dirs` (only themselves) to the user and switches to it
/// (and to `group`, else the user's primary group), if running as root. Does nothing without a
/// user or when not root (dev mode).
pub fn drop_root(
    user: Option<&str>,
    group: Option<&str>,
    trees: &[&Path],
    dirs: &[&Path],
) -> Result<(), Error> {
    let Some(user) = user.filter(|u| !u.is_empty()) else {
        return Ok(());
    };
    if !rustix::process::getuid().is_root() {
        return Ok(());
    }
    let mut ids = lookup(Path::new("/etc/passwd"), user)?;
    if let Some(group) = group.filter(|g| !g.is_empty()) {
        ids.gid = lookup_group(Path::new("/etc/group"), group)?;
    }
    let fail = |what: &str, e: rustix::io::Errno| Error::User {
        user: user.to_owned(),
        reason: format!("{what}: {e}"),
    };
    let cannot = |path: &Path, e: std::io::Error| Error::User {
        user: user.to_owned(),
        reason: format!("cannot hand {} over: {e}", path.display()),
    };
    for path in trees {
        hand_over(path, ids).map_err(|e| cannot(path, e))?;
    }
    for path in dirs {
        std::os::unix::fs::lchown(path, Some(ids.uid), Some(ids.gid))
            .map_err(|e| cannot(path, e))?;
    }
    let (uid, gid) = (Uid::from_raw(ids.uid), Gid::from_raw(ids.gid));
    rustix::thread::set_thread_groups(&[gid]).map_err(|e| fail("setgroups", e))?;
    rustix::thread::set_thread_gid(gid).map_err(|e| fail("setgid", e))?;
    rustix::thread::set_thread_uid(uid).map_err(|e| fail("setuid", e))?;
    tracing::info!(user, "dropped root");
    Ok(())
}

/// Gives `path` and everything below it to the user, so that files made while still root
/// (the certificate, directories, an earlier run's files) stay writable. Symbolic links are not
/// followed; entries that are the user's already are left alone.
pub fn hand_over(path: &Path, ids: Ids) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path)?;
    if meta.uid() != ids.uid || meta.gid() != ids.gid {
        std::os::unix::fs::lchown(path, Some(ids.uid), Some(ids.gid))?;
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            hand_over(&entry?.path(), ids)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_entry_is_found_and_missing_user_reported() {
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        std::fs::write(
            &passwd,
            "root:x:0:0::/root:/bin/sh\npostroom:x:901:902::/:/bin/false\n",
        )
        .unwrap();
        assert_eq!(
            lookup(&passwd, "postroom").unwrap(),
            Ids { uid: 901, gid: 902 }
        );
        assert!(lookup(&passwd, "nobody-here").is_err());
    }

    #[test]
    fn hand_over_reaches_every_file_below() {
        use std::os::unix::fs::MetadataExt;
        if !rustix::process::getuid().is_root() {
            eprintln!("skipping: chown needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/file"), "x").unwrap();
        let ids = Ids {
            uid: 65534,
            gid: 65534,
        };
        hand_over(dir.path(), ids).unwrap();
        for p in ["", "a", "a/b", "a/b/file"] {
            let meta = std::fs::metadata(dir.path().join(p)).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "{p}");
        }
    }
}
