//! One Maildir directory: `tmp`, `new` and `cur` (cr.yp.to/proto/maildir.html).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{Error, Flags, Result};

/// A Maildir on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maildir {
    path: PathBuf,
}

/// One message file found in `new` or `cur`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageFile {
    /// The unique part of the file name, without `:2,` and flags.
    pub unique: String,
    /// The file's current path.
    pub path: PathBuf,
    /// True when the file is still in `new` (no client has seen it).
    pub in_new: bool,
    /// Flags from the file name.
    pub flags: Flags,
}

static DELIVERY_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Maildir {
    /// Opens an existing Maildir; fails when `cur`, `new` or `tmp` is missing.
    pub fn open(path: impl Into<PathBuf>) -> Result<Maildir> {
        let path = path.into();
        for sub in ["cur", "new", "tmp"] {
            if !path.join(sub).is_dir() {
                return Err(Error::NotMaildir(path));
            }
        }
        Ok(Maildir { path })
    }

    /// Creates the Maildir (and its parents) if needed, then opens it.
    pub fn create(path: impl Into<PathBuf>) -> Result<Maildir> {
        let path = path.into();
        for sub in ["cur", "new", "tmp"] {
            let dir = path.join(sub);
            fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        }
        sync_dir(&path)?;
        if let Some(parent) = path.parent() {
            // The new directory's own entry must reach the disk too; a parent we may not open
            // (read-only mount) is no reason to fail.
            let _ = sync_dir(parent);
        }
        Ok(Maildir { path })
    }

    /// The Maildir's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Delivers a message held in memory. See [`Maildir::deliver_from`].
    pub fn deliver(&self, message: &[u8], unique: Option<&str>) -> Result<PathBuf> {
        self.deliver_from(&mut &message[..], unique)
    }

    /// Delivers a message into `new`: write to `tmp`, fsync the file, link it into `new`,
    /// remove the tmp name, fsync `new`. Only then does the caller own a delivered message.
    ///
    /// With `unique` given, delivery is idempotent: when a message of that unique name is already
    /// in `new` or `cur` (with any flags) nothing is written and its path is returned, so a queue
    /// that retries after a crash never delivers twice. Without it a fresh name is made.
    pub fn deliver_from(&self, message: &mut dyn Read, unique: Option<&str>) -> Result<PathBuf> {
        let unique = match unique {
            Some(name) => {
                check_unique(name)?;
                if let Some(existing) = self.find(name)? {
                    return Ok(existing);
                }
                name.to_owned()
            }
            None => unique_name(),
        };
        self.deliver_as(message, &unique, None, None)
    }

    /// Writes a message straight into `cur` with flags and an internal date (file mtime), as
    /// IMAP APPEND and COPY need. Returns the new path.
    pub fn add_to_cur(
        &self,
        message: &mut dyn Read,
        flags: &Flags,
        modified: Option<SystemTime>,
    ) -> Result<PathBuf> {
        let unique = unique_name();
        self.deliver_as(message, &unique, Some(flags), modified)
    }

    fn deliver_as(
        &self,
        message: &mut dyn Read,
        unique: &str,
        cur_flags: Option<&Flags>,
        modified: Option<SystemTime>,
    ) -> Result<PathBuf> {
        let tmp = self.path.join("tmp").join(unique);
        let result = self.write_and_link(message, unique, &tmp, cur_flags, modified);
        // The tmp name is only a staging name; it goes whether the link worked or not.
        let _ = fs::remove_file(&tmp);
        result
    }

    fn write_and_link(
        &self,
        message: &mut dyn Read,
        unique: &str,
        tmp: &Path,
        cur_flags: Option<&Flags>,
        modified: Option<SystemTime>,
    ) -> Result<PathBuf> {
        let mut file = File::create(tmp).map_err(Error::io(tmp))?;
        std::io::copy(message, &mut file).map_err(Error::io(tmp))?;
        file.flush().map_err(Error::io(tmp))?;
        if let Some(time) = modified {
            file.set_modified(time).map_err(Error::io(tmp))?;
        }
        file.sync_all().map_err(Error::io(tmp))?;
        drop(file);

        let (dir, name) = match cur_flags {
            Some(flags) => ("cur", format!("{unique}:2,{}", flags.to_letters())),
            None => ("new", unique.to_owned()),
        };
        let target = self.path.join(dir).join(name);
        // link() never replaces an existing name, unlike rename(): two deliveries of one unique
        // name cannot overwrite each other.
        match fs::hard_link(tmp, &target) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(target),
            Err(e) => {
                return Err(Error::Io {
                    path: target,
                    source: e,
                });
            }
        }
        sync_dir(&self.path.join(dir))?;

        // A message of this name that a client moved from new to cur while we were writing
        // would now be there twice; the older copy wins.
        if cur_flags.is_none() && self.find_in(unique, "cur")?.is_some() {
            let _ = fs::remove_file(&target);
            sync_dir(&self.path.join(dir))?;
            return self
                .find(unique)?
                .ok_or_else(|| Error::MessageGone(unique.to_owned()));
        }
        tracing::debug!(maildir = %self.path.display(), unique, "delivered");
        Ok(target)
    }

    /// Finds the file of a unique name in `new` or `cur`.
    pub fn find(&self, unique: &str) -> Result<Option<PathBuf>> {
        if let Some(path) = self.find_in(unique, "new")? {
            return Ok(Some(path));
        }
        self.find_in(unique, "cur")
    }

    fn find_in(&self, unique: &str, sub: &str) -> Result<Option<PathBuf>> {
        let dir = self.path.join(sub);
        if sub == "new" {
            let path = dir.join(unique);
            return Ok(path.exists().then_some(path));
        }
        for entry in fs::read_dir(&dir).map_err(Error::io(&dir))? {
            let entry = entry.map_err(Error::io(&dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if Flags::split_file_name(name).0 == unique {
                return Ok(Some(entry.path()));
            }
        }
        Ok(None)
    }

    /// Lists the messages in `new` then `cur`. A name seen in both (moved meanwhile) is listed
    /// once, with its `cur` entry.
    pub fn list(&self) -> Result<Vec<MessageFile>> {
        let mut out: Vec<MessageFile> = Vec::new();
        // Where each unique name stands in `out`: a message seen twice (in `new` and in `cur`, as
        // a crash in the middle of a move can leave it) is listed once, as its later copy. A map
        // keeps this linear; a large mailbox is listed on every IMAP command.
        let mut position: HashMap<String, usize> = HashMap::new();
        for (sub, in_new) in [("new", true), ("cur", false)] {
            let dir = self.path.join(sub);
            for entry in fs::read_dir(&dir).map_err(Error::io(&dir))? {
                let entry = entry.map_err(Error::io(&dir))?;
                let name = entry.file_name();
                // Names that are not UTF-8 or start with a dot are not messages we wrote or can
                // name in the index; they are left alone.
                let Some(name) = name.to_str() else { continue };
                if name.starts_with('.') {
                    continue;
                }
                let (unique, flags) = if in_new {
                    (name, Flags::default())
                } else {
                    Flags::split_file_name(name)
                };
                let file = MessageFile {
                    unique: unique.to_owned(),
                    path: entry.path(),
                    in_new,
                    flags,
                };
                match position.get(unique) {
                    Some(&at) => out[at] = file,
                    None => {
                        position.insert(file.unique.clone(), out.len());
                        out.push(file);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Moves a message from `new` to `cur` (it has been seen by a client), keeping no flags.
    pub fn move_to_cur(&self, file: &MessageFile) -> Result<PathBuf> {
        let target = self.path.join("cur").join(format!("{}:2,", file.unique));
        rename(&file.path, &target, &file.unique)?;
        Ok(target)
    }

    /// Sets a message's flags by renaming it within `cur` (or from `new` into `cur`).
    pub fn set_flags(&self, file: &MessageFile, flags: &Flags) -> Result<PathBuf> {
        let target =
            self.path
                .join("cur")
                .join(format!("{}:2,{}", file.unique, flags.to_letters()));
        if target != file.path {
            rename(&file.path, &target, &file.unique)?;
        }
        Ok(target)
    }

    /// Removes a message file.
    pub fn remove(&self, file: &MessageFile) -> Result<()> {
        match fs::remove_file(&file.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::Io {
                path: file.path.clone(),
                source: e,
            }),
        }
    }

    /// Makes removals and renames in `cur` and `new` durable.
    pub fn sync(&self) -> Result<()> {
        sync_dir(&self.path.join("cur"))?;
        sync_dir(&self.path.join("new"))
    }
}

fn rename(from: &Path, to: &Path, unique: &str) -> Result<()> {
    match fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(Error::MessageGone(unique.to_owned()))
        }
        Err(e) => Err(Error::Io {
            path: from.to_owned(),
            source: e,
        }),
    }
}

fn check_unique(name: &str) -> Result<()> {
    if name.is_empty() || name.starts_with('.') || name.contains(['/', ':', '\0']) {
        return Err(Error::BadUniqueName(name.to_owned()));
    }
    Ok(())
}

/// A new unique name in the form the Maildir spec suggests: `<secs>.M<usecs>P<pid>Q<n>.<host>`.
/// The numbers are zero-padded so that names sort in delivery order: file times are coarse
/// (a few milliseconds), and the UID index breaks ties between equal times by name.
fn unique_name() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let n = DELIVERY_COUNTER.fetch_add(1, Ordering::Relaxed);
    let host = rustix::system::uname();
    let host = host
        .nodename()
        .to_string_lossy()
        .replace(['/', ':', '.'], "_");
    unique_name_at(now, n, std::process::id(), &host)
}

fn unique_name_at(now: std::time::Duration, n: u64, pid: u32, host: &str) -> String {
    let host = if host.is_empty() { "localhost" } else { host };
    format!(
        "{}.M{:06}P{pid}Q{n:08}.{host}",
        now.as_secs(),
        now.subsec_micros()
    )
}

/// fsync a directory so the names created, renamed or removed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    let handle = File::open(dir).map_err(Error::io(dir))?;
    handle.sync_all().map_err(Error::io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_lands_in_new_and_tmp_is_left_empty() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::create(dir.path().join("alice")).unwrap();
        let path = md.deliver(b"Subject: hi\r\n\r\nbody\r\n", None).unwrap();
        assert_eq!(path.parent().unwrap(), md.path().join("new"));
        assert_eq!(fs::read(&path).unwrap(), b"Subject: hi\r\n\r\nbody\r\n");
        assert_eq!(fs::read_dir(md.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn delivery_with_a_known_name_is_a_no_op_also_after_the_message_moved_to_cur() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::create(dir.path().join("alice")).unwrap();
        let first = md.deliver(b"one", Some("q-17")).unwrap();
        let again = md.deliver(b"two", Some("q-17")).unwrap();
        assert_eq!(first, again);
        assert_eq!(fs::read(&first).unwrap(), b"one");

        let listed = md.list().unwrap();
        md.set_flags(&listed[0], &Flags::from_letters("S")).unwrap();
        let third = md.deliver(b"three", Some("q-17")).unwrap();
        assert!(third.ends_with("cur/q-17:2,S"), "{third:?}");
        assert_eq!(md.list().unwrap().len(), 1);
    }

    #[test]
    fn names_with_slash_or_colon_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::create(dir.path().join("a")).unwrap();
        assert!(matches!(
            md.deliver(b"x", Some("../x")),
            Err(Error::BadUniqueName(_))
        ));
        assert!(matches!(
            md.deliver(b"x", Some("a:2,S")),
            Err(Error::BadUniqueName(_))
        ));
    }

    #[test]
    fn open_refuses_a_directory_without_cur_new_tmp() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Maildir::open(dir.path()),
            Err(Error::NotMaildir(_))
        ));
    }

    #[test]
    fn flags_are_kept_in_the_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::create(dir.path().join("a")).unwrap();
        md.deliver(b"x", Some("m1")).unwrap();
        let listed = md.list().unwrap();
        assert!(listed[0].in_new);
        let flags = Flags {
            seen: true,
            flagged: true,
            answered: true,
            ..Flags::default()
        };
        let path = md.set_flags(&listed[0], &flags).unwrap();
        assert!(path.ends_with("cur/m1:2,FRS"));
        let listed = md.list().unwrap();
        assert_eq!(listed[0].flags, flags);
        assert!(!listed[0].in_new);
    }

    #[test]
    fn generated_names_sort_in_delivery_order() {
        use std::time::Duration;
        let names = [
            unique_name_at(Duration::new(1_700_000_000, 99_999_000), 9, 42, "box"),
            unique_name_at(Duration::new(1_700_000_000, 100_000_000), 10, 42, "box"),
            unique_name_at(Duration::new(1_700_000_000, 100_000_000), 11, 42, "box"),
            unique_name_at(Duration::new(1_700_000_001, 0), 12, 42, "box"),
        ];
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sorted, names);
        assert_eq!(names[0], "1700000000.M099999P42Q00000009.box");
    }

    #[test]
    fn a_message_left_in_both_new_and_cur_is_listed_once_as_its_cur_copy() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::create(dir.path().join("a")).unwrap();
        md.deliver(b"x", Some("m1")).unwrap();
        md.deliver(b"y", Some("m2")).unwrap();
        // What a crash between link and unlink in a move to `cur` leaves behind.
        fs::copy(md.path().join("new/m1"), md.path().join("cur/m1:2,S")).unwrap();

        let listed = md.list().unwrap();
        assert_eq!(listed.len(), 2, "{listed:?}");
        let m1 = listed.iter().find(|m| m.unique == "m1").unwrap();
        assert!(!m1.in_new);
        assert!(m1.flags.seen);
        assert!(listed.iter().any(|m| m.unique == "m2" && m.in_new));
    }

    #[test]
    fn generated_names_are_unique() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::create(dir.path().join("a")).unwrap();
        for _ in 0..50 {
            md.deliver(b"x", None).unwrap();
        }
        assert_eq!(md.list().unwrap().len(), 50);
    }
}
