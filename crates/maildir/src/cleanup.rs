//! Removing what interrupted deliveries leave in `tmp/`.
//!
//! A delivery writes its file in `tmp/` and links it into `new/` (or `cur/`) only once it is
//! complete; a kill or a power cut in between leaves the partial file in `tmp/` for ever. The
//! Maildir convention (cr.yp.to/proto/maildir.html) is to delete files in `tmp/` that have
//! not been accessed for 36 hours: no delivery takes that long, so such a file belongs to
//! nobody. `new/` and `cur/` are never touched here.
//!
//! "Accessed" is read as the later of the file's access and modification times. Neither alone
//! is enough: mounts with `noatime` never move atime after the file is made (writes still move
//! mtime), and a delivery may give its file an old modification time (IMAP APPEND with an
//! INTERNALDATE) a moment before linking it, while its atime stays the time it was made.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::Error;

/// How long a file in `tmp/` must have been left alone before it is removed (the Maildir
/// convention's 36 hours).
pub const STALE_AFTER: Duration = Duration::from_secs(36 * 3_600);

/// What one cleanup did.
#[derive(Debug, Default)]
pub struct TmpCleanup {
    /// The `tmp/` directories looked at.
    pub directories: usize,
    /// The files removed.
    pub removed: Vec<PathBuf>,
    /// Files or directories that could not be read or removed; the cleanup went on without them.
    pub failures: Vec<Error>,
}

/// Cleans the `tmp/` of every Maildir under a store root: `<root>/<user>/tmp` (INBOX) and
/// `<root>/<user>/.<folder>/tmp` (Maildir++ folders). Symbolic links are not followed, so
/// nothing outside the store is ever removed. `now` is the time to measure age against.
pub fn clean_store(root: &Path, now: SystemTime, stale_after: Duration) -> TmpCleanup {
    let mut report = TmpCleanup::default();
    for home in directories(root, &mut report) {
        clean_maildir(&home, now, stale_after, &mut report);
        for folder in directories(&home, &mut report) {
            let is_folder = folder
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if is_folder {
                clean_maildir(&folder, now, stale_after, &mut report);
            }
        }
    }
    report
}

/// Cleans the `tmp/` of one Maildir (nothing happens when it has none).
pub fn clean_maildir(
    maildir: &Path,
    now: SystemTime,
    stale_after: Duration,
    report: &mut TmpCleanup,
) {
    let tmp = maildir.join("tmp");
    match fs::symlink_metadata(&tmp) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => return report.failures.push(Error::io(&tmp)(e)),
    }
    report.directories += 1;
    let entries = match fs::read_dir(&tmp) {
        Ok(entries) => entries,
        Err(e) => return report.failures.push(Error::io(&tmp)(e)),
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                report.failures.push(Error::io(&tmp)(e));
                continue;
            }
        };
        let path = entry.path();
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            // Delivered (linked and unlinked) while we looked: not ours to worry about.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                report.failures.push(Error::io(&path)(e));
                continue;
            }
        };
        // Deliveries only ever make plain files here; anything else was put by hand.
        if !meta.is_file() || !is_stale(&meta, now, stale_after) {
            continue;
        }
        match fs::remove_file(&path) {
            Ok(()) => report.removed.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => report.failures.push(Error::io(&path)(e)),
        }
    }
}

/// True when the file was last accessed and last modified at least `stale_after` before `now`.
fn is_stale(meta: &fs::Metadata, now: SystemTime, stale_after: Duration) -> bool {
    let latest = [meta.accessed().ok(), meta.modified().ok()]
        .into_iter()
        // A time the file system cannot give counts as "just now": keep the file.
        .map(|t| t.unwrap_or(now))
        .max()
        .unwrap_or(now);
    now.duration_since(latest)
        .is_ok_and(|age| age >= stale_after)
}

/// The subdirectories of `dir`, without following symbolic links.
fn directories(dir: &Path, report: &mut TmpCleanup) -> Vec<PathBuf> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            report.failures.push(Error::io(dir)(e));
            return Vec::new();
        }
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{File, FileTimes};

    const HOUR: Duration = Duration::from_secs(3_600);

    /// A Maildir++ tree: alice with INBOX and `.Sent`, bob with INBOX.
    fn store() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for maildir in ["alice", "alice/.Sent", "bob"] {
            for sub in ["cur", "new", "tmp"] {
                fs::create_dir_all(dir.path().join(maildir).join(sub)).unwrap();
            }
        }
        dir
    }

    fn file(path: &Path, accessed: SystemTime, modified: SystemTime) {
        fs::write(path, b"Subject: partial\r\n").unwrap();
        let f = File::options().write(true).open(path).unwrap();
        f.set_times(
            FileTimes::new()
                .set_accessed(accessed)
                .set_modified(modified),
        )
        .unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn tmp_files_untouched_for_36_hours_go_in_every_users_inbox_and_folders() {
        let store = store();
        let root = store.path();
        let now = SystemTime::now();
        let old = now - 37 * HOUR;
        file(&root.join("alice/tmp/1.crashed"), old, old);
        file(&root.join("alice/.Sent/tmp/2.crashed"), old, old);
        file(&root.join("bob/tmp/3.crashed"), old, old);

        let report = clean_store(root, now, STALE_AFTER);

        assert_eq!(report.removed.len(), 3, "{report:?}");
        assert!(report.failures.is_empty(), "{report:?}");
        assert_eq!(report.directories, 3);
        for tmp in ["alice/tmp", "alice/.Sent/tmp", "bob/tmp"] {
            assert!(names(&root.join(tmp)).is_empty(), "{tmp}");
        }
    }

    #[test]
    fn recently_accessed_or_modified_tmp_files_stay() {
        let store = store();
        let root = store.path();
        let now = SystemTime::now();
        let old = now - 37 * HOUR;
        let recent = now - 35 * HOUR;
        file(&root.join("alice/tmp/read-lately"), recent, old);
        file(&root.join("alice/tmp/written-lately"), old, recent);
        file(&root.join("alice/tmp/stale"), old, old);

        let report = clean_store(root, now, STALE_AFTER);

        assert_eq!(report.removed, [root.join("alice/tmp/stale")]);
        assert_eq!(
            names(&root.join("alice/tmp")),
            ["read-lately", "written-lately"]
        );
    }

    #[test]
    fn a_file_just_written_with_an_old_modification_time_stays() {
        // An APPEND with an old INTERNALDATE sets mtime years back a moment before the link
        // into cur, as Maildir::deliver does; atime stays the time the file was made.
        let store = store();
        let root = store.path();
        let path = root.join("alice/tmp/appending");
        fs::write(&path, b"Subject: appended\r\n").unwrap();
        let ancient = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(ancient)
            .unwrap();

        let report = clean_store(root, SystemTime::now(), STALE_AFTER);

        assert!(report.removed.is_empty(), "{report:?}");
        assert_eq!(names(&root.join("alice/tmp")), ["appending"]);
    }

    #[test]
    fn new_and_cur_are_never_touched_however_old_their_files() {
        let store = store();
        let root = store.path();
        let now = SystemTime::now();
        let old = now - 100 * HOUR;
        file(&root.join("alice/new/1.msg"), old, old);
        file(&root.join("alice/cur/2.msg:2,S"), old, old);
        file(&root.join("alice/.Sent/cur/3.msg:2,S"), old, old);

        let report = clean_store(root, now, STALE_AFTER);

        assert!(report.removed.is_empty(), "{report:?}");
        assert_eq!(names(&root.join("alice/new")), ["1.msg"]);
        assert_eq!(names(&root.join("alice/cur")), ["2.msg:2,S"]);
        assert_eq!(names(&root.join("alice/.Sent/cur")), ["3.msg:2,S"]);
    }

    #[test]
    fn directories_and_symlinks_in_tmp_and_symlinked_maildirs_are_left_alone() {
        let store = store();
        let root = store.path();
        let now = SystemTime::now();
        let old = now - 37 * HOUR;
        // A Maildir outside the store, reachable through a symlink named like a user.
        let outside = tempfile::tempdir().unwrap();
        fs::create_dir_all(outside.path().join("tmp")).unwrap();
        file(&outside.path().join("tmp/precious"), old, old);
        std::os::unix::fs::symlink(outside.path(), root.join("carol")).unwrap();
        fs::create_dir(root.join("bob/tmp/subdir")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", root.join("bob/tmp/link")).unwrap();

        let report = clean_store(root, now, STALE_AFTER);

        assert!(report.removed.is_empty(), "{report:?}");
        assert_eq!(names(&outside.path().join("tmp")), ["precious"]);
        assert_eq!(names(&root.join("bob/tmp")), ["link", "subdir"]);
    }

    #[test]
    fn a_missing_store_is_a_failure_in_the_report_not_a_panic() {
        let report = clean_store(
            Path::new("/nonexistent/postroom"),
            SystemTime::now(),
            STALE_AFTER,
        );
        assert!(report.removed.is_empty());
        assert_eq!(report.failures.len(), 1);
    }
}
