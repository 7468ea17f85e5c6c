//! All users' Maildir++ trees, with the IMAP UID index in mail.redb and change notices.
//!
//! UIDs (RFC 3501 section 2.3.1.1) must stay the same for a message for as long as the mailbox
//! keeps its UIDVALIDITY, across restarts too, so they live in redb beside the queue's tables:
//! `imap_mailboxes` (mailbox key -> UIDVALIDITY, UIDNEXT), `imap_uids` ((key, uid) -> unique
//! name) and `imap_uniques` ((key, unique name) -> uid). A mailbox key is `<user>/<dir>`, where
//! `<dir>` is the Maildir++ folder directory (`.Sent`), or empty for INBOX.
//!
//! Every change to a mailbox that goes through a [`Mailbox`] handle (a flag rename, an expunge,
//! a scan that assigns UIDs) holds that mailbox's lock, so a directory scan never races with a
//! rename made by another session in this process. Deliveries only add files, so they need no
//! lock; they send a [`Change`] so that IDLE sessions look at once.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::broadcast;

use crate::maildir::sync_dir;
use crate::{Error, Flags, Maildir, MessageFile, Result, mutf7};

const MAILBOXES: TableDefinition<&str, (u32, u32)> = TableDefinition::new("imap_mailboxes");
const UIDS: TableDefinition<(&str, u32), &str> = TableDefinition::new("imap_uids");
const UNIQUES: TableDefinition<(&str, &str), u32> = TableDefinition::new("imap_uniques");
const META: TableDefinition<&str, u32> = TableDefinition::new("imap_meta");

/// Dovecot's keyword table in each Maildir.
const KEYWORDS_FILE: &str = "dovecot-keywords";

/// The folders every user gets, with their RFC 6154 special-use attribute.
pub const SPECIAL_FOLDERS: [(&str, &str); 4] = [
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
];

/// The hierarchy delimiter of mailbox names, as in Maildir++ folder directories.
pub const DELIMITER: char = '.';

/// Something changed in a mailbox; sessions watching it should rescan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A message was delivered, appended or copied in.
    Added,
    /// A message's flags changed.
    Flags,
    /// Messages were removed.
    Expunged,
}

/// The message store: a root directory with one Maildir++ tree per user, and the UID index.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    db: Arc<Database>,
    mailboxes: Mutex<HashMap<String, Arc<Shared>>>,
    /// Users whose maildrop a POP3 session holds (RFC 1939 section 4).
    maildrops: Mutex<std::collections::HashSet<String>>,
}

/// What all handles of one mailbox share in this process.
struct Shared {
    lock: Mutex<()>,
    changes: broadcast::Sender<Change>,
    /// RFC822.SIZE of messages read before, by unique name: see [`Mailbox::known_size`].
    sizes: Mutex<HashMap<String, KnownSize>>,
    /// The last scan, reused while the directories are unchanged: see [`Mailbox::snapshot`].
    scan: Mutex<Option<Scan>>,
}

/// A scan of a mailbox and the modification times of `new` and `cur` it was made at.
struct Scan {
    stamp: (SystemTime, SystemTime),
    /// Whether `new` held messages (a session that claims them cannot reuse the scan).
    has_new: bool,
    /// Held by the sessions that use it; gone when none does, so an idle process keeps no
    /// copy of a mailbox's listing.
    snapshot: Weak<MailboxSnapshot>,
}

/// How long `new` and `cur` must have been unchanged before a scan of them may be reused. A
/// directory's modification time has the granularity of the kernel's coarse clock (a few
/// milliseconds on ext4, f2fs, btrfs, tmpfs), so two changes close together may leave the same
/// time; once a directory has been quiet this long before a scan started, any later change
/// shows as a new time. Dovecot's Maildir code waits one second; two leave room for coarser
/// file systems.
const SETTLED: Duration = Duration::from_secs(2);

/// A message's IMAP size, with the length of the file it was counted from.
#[derive(Debug, Clone, Copy)]
struct KnownSize {
    file_len: u64,
    size: u64,
}

/// One message as a scan of its mailbox found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its UID, stable while the mailbox keeps its UIDVALIDITY.
    pub uid: u32,
    /// The unique part of its file name.
    pub unique: String,
    /// Its file.
    pub path: PathBuf,
    /// Its flags.
    pub flags: Flags,
    /// True when this scan took it out of `new` (IMAP `\Recent` for the session that scanned).
    pub recent: bool,
}

/// A mailbox's messages in UID order, with its UIDVALIDITY and UIDNEXT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxSnapshot {
    /// UIDVALIDITY (RFC 3501 section 2.3.1.1).
    pub uid_validity: u32,
    /// The UID the next message will get.
    pub uid_next: u32,
    /// The messages, ascending by UID.
    pub messages: Vec<Message>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("root", &self.inner.root)
            .finish()
    }
}

impl Store {
    /// Opens the store under `root` with the UID index in `db` (mail.redb, shared with the queue).
    pub fn open(root: impl Into<PathBuf>, db: Arc<Database>) -> Result<Store> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(Error::io(&root))?;
        let txn = db.begin_write().map_err(redb::Error::from)?;
        {
            txn.open_table(MAILBOXES).map_err(redb::Error::from)?;
            txn.open_table(UIDS).map_err(redb::Error::from)?;
            txn.open_table(UNIQUES).map_err(redb::Error::from)?;
            txn.open_table(META).map_err(redb::Error::from)?;
        }
        txn.commit().map_err(redb::Error::from)?;
        let inner = Inner {
            root,
            db,
            mailboxes: Mutex::new(HashMap::new()),
            maildrops: Mutex::new(std::collections::HashSet::new()),
        };
        Ok(Store {
            inner: Arc::new(inner),
        })
    }

    /// The root directory holding the users' Maildirs.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Creates a user's INBOX and the special folders (Sent, Drafts, Trash, Junk), subscribed.
    /// Safe to call again for an existing user: nothing present is touched.
    pub fn create_user(&self, user: &str) -> Result<()> {
        let home = self.home(user)?;
        Maildir::create(&home)?;
        for (name, _) in SPECIAL_FOLDERS {
            Maildir::create(home.join(folder_dir(name)?))?;
        }
        let mut subscribed = self.subscriptions(user)?;
        for (name, _) in SPECIAL_FOLDERS {
            if !subscribed.iter().any(|s| s == name) {
                subscribed.push(name.to_owned());
            }
        }
        self.write_subscriptions(user, &subscribed)
    }

    /// True when the user has a Maildir.
    pub fn has_user(&self, user: &str) -> bool {
        self.home(user)
            .map(|h| h.join("cur").is_dir())
            .unwrap_or(false)
    }

    /// A user's INBOX as a plain Maildir, for delivery.
    pub fn inbox(&self, user: &str) -> Result<Maildir> {
        Maildir::open(self.home(user)?).map_err(|_| Error::NoUser(user.to_owned()))
    }

    /// Delivers a message to a user's mailbox (`None` = INBOX) and tells its watchers. With a
    /// unique name, a repeated delivery is a no-op (see [`Maildir::deliver_from`]).
    pub fn deliver(
        &self,
        user: &str,
        folder: Option<&str>,
        message: &mut dyn Read,
        unique: Option<&str>,
    ) -> Result<PathBuf> {
        let mailbox = self.mailbox(user, folder.unwrap_or("INBOX"))?;
        let path = mailbox.maildir.deliver_from(message, unique)?;
        mailbox.notify(Change::Added);
        Ok(path)
    }

    /// Takes the exclusive-access lock on a user's maildrop that a POP3 session holds from
    /// login to QUIT (RFC 1939 section 4); None while another session holds it. IMAP does not
    /// take it: IMAP and POP3 work on one mailbox side by side.
    pub fn lock_maildrop(&self, user: &str) -> Option<MaildropLock> {
        let mut held = lock(&self.inner.maildrops);
        if !held.insert(user.to_owned()) {
            return None;
        }
        Some(MaildropLock {
            store: self.clone(),
            user: user.to_owned(),
        })
    }

    /// Opens a handle on one of a user's mailboxes (Unicode name, `.` between levels).
    pub fn mailbox(&self, user: &str, name: &str) -> Result<Mailbox> {
        let dir = mailbox_dir(name)?;
        let path = self.home(user)?.join(&dir);
        let maildir = Maildir::open(&path).map_err(|_| Error::NoMailbox(name.to_owned()))?;
        let key = format!("{user}/{dir}");
        let shared = self.shared(&key);
        Ok(Mailbox {
            store: self.clone(),
            key,
            name: canonical(name),
            maildir,
            shared,
        })
    }

    /// A user's mailboxes, INBOX first, then the folders sorted by name.
    pub fn list_mailboxes(&self, user: &str) -> Result<Vec<String>> {
        let home = self.home(user)?;
        let mut names = Vec::new();
        for entry in fs::read_dir(&home).map_err(Error::io(&home))? {
            let entry = entry.map_err(Error::io(&home))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(encoded) = name.strip_prefix('.') else {
                continue;
            };
            if encoded.is_empty() || !entry.path().join("cur").is_dir() {
                continue;
            }
            if let Some(decoded) = mutf7::decode(encoded) {
                names.push(decoded);
            }
        }
        names.sort();
        names.insert(0, "INBOX".to_owned());
        Ok(names)
    }

    /// Creates a mailbox. Missing parents are created too (RFC 3501 section 6.3.3).
    pub fn create_mailbox(&self, user: &str, name: &str) -> Result<()> {
        if is_inbox(name) {
            return Err(Error::MailboxExists(name.to_owned()));
        }
        let home = self.home(user)?;
        let name = name.trim_end_matches(DELIMITER);
        let mut prefix = String::new();
        for (i, level) in name.split(DELIMITER).enumerate() {
            if i > 0 {
                prefix.push(DELIMITER);
            }
            prefix.push_str(level);
            let path = home.join(folder_dir(&prefix)?);
            let last = prefix.len() == name.len();
            if path.is_dir() {
                if last {
                    return Err(Error::MailboxExists(name.to_owned()));
                }
                continue;
            }
            Maildir::create(&path)?;
        }
        Ok(())
    }

    /// Deletes a mailbox and its messages. INBOX cannot be deleted. Sub-folders stay.
    pub fn delete_mailbox(&self, user: &str, name: &str) -> Result<()> {
        if is_inbox(name) {
            return Err(Error::InboxKept);
        }
        let mailbox = self.mailbox(user, name)?;
        let _guard = mailbox.lock();
        let path = mailbox.maildir.path().to_owned();
        fs::remove_dir_all(&path).map_err(Error::io(&path))?;
        sync_dir(&self.home(user)?)?;
        self.forget(&mailbox.key)?;
        mailbox.notify(Change::Expunged);
        Ok(())
    }

    /// Renames a mailbox and its sub-folders. Renaming INBOX moves its messages into a new
    /// mailbox and leaves INBOX empty (RFC 3501 section 6.3.5).
    pub fn rename_mailbox(&self, user: &str, from: &str, to: &str) -> Result<()> {
        let home = self.home(user)?;
        if is_inbox(to) {
            return Err(Error::MailboxExists(to.to_owned()));
        }
        let target_dir = home.join(folder_dir(to)?);
        if target_dir.exists() {
            return Err(Error::MailboxExists(to.to_owned()));
        }
        if is_inbox(from) {
            self.create_mailbox(user, to)?;
            let inbox = self.mailbox(user, "INBOX")?;
            let target = self.mailbox(user, to)?;
            let _guard = inbox.lock();
            for file in inbox.maildir.list()? {
                let name = file
                    .path
                    .file_name()
                    .map(|n| n.to_owned())
                    .unwrap_or_default();
                let sub = if file.in_new { "new" } else { "cur" };
                let dest = target.maildir.path().join(sub).join(name);
                fs::rename(&file.path, &dest).map_err(Error::io(&file.path))?;
            }
            target.maildir.sync()?;
            inbox.maildir.sync()?;
            self.forget(&inbox.key)?;
            inbox.notify(Change::Expunged);
            return Ok(());
        }
        let source = self.mailbox(user, from)?;
        let old_prefix = format!(".{}", mutf7::encode(&canonical(from)));
        let new_prefix = format!(".{}", mutf7::encode(&canonical(to)));
        // The folder and every sub-folder: `.a` and `.a.b` become `.c` and `.c.b`.
        let mut moves = Vec::new();
        for entry in fs::read_dir(&home).map_err(Error::io(&home))? {
            let entry = entry.map_err(Error::io(&home))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name == old_prefix || name.starts_with(&format!("{old_prefix}.")) {
                let renamed = format!("{new_prefix}{}", &name[old_prefix.len()..]);
                moves.push((name.to_owned(), renamed));
            }
        }
        let _guard = source.lock();
        for (old, new) in &moves {
            fs::rename(home.join(old), home.join(new)).map_err(Error::io(home.join(old)))?;
            self.forget(&format!("{user}/{old}"))?;
        }
        sync_dir(&home)?;
        source.notify(Change::Expunged);
        self.rename_subscriptions(user, &canonical(from), &canonical(to))
    }

    /// Moves the subscriptions of a renamed mailbox and of its children to the new names, as
    /// Dovecot does: RFC 3501 section 6.3.5 leaves it open, and otherwise LSUB and LIST
    /// (SUBSCRIBED) would go on naming mailboxes that are gone and leave out the new ones.
    fn rename_subscriptions(&self, user: &str, from: &str, to: &str) -> Result<()> {
        let names = self.subscriptions(user)?;
        let mut renamed: Vec<String> = Vec::with_capacity(names.len());
        for name in &names {
            let name = match name.strip_prefix(from) {
                Some("") => to.to_owned(),
                Some(child) if child.starts_with(DELIMITER) => format!("{to}{child}"),
                _ => name.clone(),
            };
            if !renamed.contains(&name) {
                renamed.push(name);
            }
        }
        if renamed == names {
            return Ok(());
        }
        self.write_subscriptions(user, &renamed)
    }

    /// The mailboxes a user subscribed to (Courier's `subscriptions` file, one name a line).
    pub fn subscriptions(&self, user: &str) -> Result<Vec<String>> {
        let path = self.home(user)?.join("subscriptions");
        match fs::read_to_string(&path) {
            Ok(text) => Ok(text
                .lines()
                .filter(|l| !l.is_empty())
                .filter_map(mutf7::decode)
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::Io { path, source: e }),
        }
    }

    /// Subscribes to or unsubscribes from a mailbox name.
    pub fn set_subscribed(&self, user: &str, name: &str, subscribed: bool) -> Result<()> {
        let name = canonical(name);
        let mut names = self.subscriptions(user)?;
        names.retain(|n| *n != name);
        if subscribed {
            names.push(name);
        }
        self.write_subscriptions(user, &names)
    }

    fn write_subscriptions(&self, user: &str, names: &[String]) -> Result<()> {
        let home = self.home(user)?;
        let tmp = home.join("subscriptions.tmp");
        let text: String = names
            .iter()
            .map(|n| format!("{}\n", mutf7::encode(n)))
            .collect();
        fs::write(&tmp, text).map_err(Error::io(&tmp))?;
        fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(Error::io(&tmp))?;
        fs::rename(&tmp, home.join("subscriptions")).map_err(Error::io(&tmp))?;
        sync_dir(&home)
    }

    fn home(&self, user: &str) -> Result<PathBuf> {
        if user.is_empty() || user.starts_with('.') || user.contains(['/', '\0']) {
            return Err(Error::NoUser(user.to_owned()));
        }
        Ok(self.inner.root.join(user))
    }

    fn shared(&self, key: &str) -> Arc<Shared> {
        let mut map = lock(&self.inner.mailboxes);
        map.entry(key.to_owned())
            .or_insert_with(|| {
                let (changes, _) = broadcast::channel(64);
                Arc::new(Shared {
                    lock: Mutex::new(()),
                    changes,
                    sizes: Mutex::new(HashMap::new()),
                    scan: Mutex::new(None),
                })
            })
            .clone()
    }

    /// Drops a mailbox's UIDs and UIDVALIDITY; a mailbox made again under the name starts anew
    /// with a higher UIDVALIDITY.
    fn forget(&self, key: &str) -> Result<()> {
        *lock(&self.shared(key).scan) = None;
        let txn = self.inner.db.begin_write().map_err(redb::Error::from)?;
        {
            let mut mailboxes = txn.open_table(MAILBOXES).map_err(redb::Error::from)?;
            let mut uids = txn.open_table(UIDS).map_err(redb::Error::from)?;
            let mut uniques = txn.open_table(UNIQUES).map_err(redb::Error::from)?;
            mailboxes.remove(key).map_err(redb::Error::from)?;
            let mut names = Vec::new();
            for item in uids
                .range((key, 0u32)..=(key, u32::MAX))
                .map_err(redb::Error::from)?
            {
                let (k, v) = item.map_err(redb::Error::from)?;
                names.push((k.value().1, v.value().to_owned()));
            }
            for (uid, unique) in names {
                uids.remove((key, uid)).map_err(redb::Error::from)?;
                uniques
                    .remove((key, unique.as_str()))
                    .map_err(redb::Error::from)?;
            }
        }
        txn.commit().map_err(redb::Error::from)?;
        Ok(())
    }
}

/// A held POP3 maildrop lock; dropping it lets the next session in.
#[derive(Debug)]
pub struct MaildropLock {
    store: Store,
    user: String,
}

impl Drop for MaildropLock {
    fn drop(&mut self) {
        lock(&self.store.inner.maildrops).remove(&self.user);
    }
}

/// A handle on one mailbox.
pub struct Mailbox {
    store: Store,
    key: String,
    name: String,
    maildir: Maildir,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox").field("key", &self.key).finish()
    }
}

impl Mailbox {
    /// The mailbox's name (INBOX upper-cased).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Maildir behind this mailbox.
    pub fn maildir(&self) -> &Maildir {
        &self.maildir
    }

    /// Watches the mailbox for changes made in this process.
    pub fn watch(&self) -> broadcast::Receiver<Change> {
        self.shared.changes.subscribe()
    }

    fn notify(&self, change: Change) {
        // No receiver is no error: nobody is watching.
        let _ = self.shared.changes.send(change);
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        lock(&self.shared.lock)
    }

    /// The size IMAP gives a message (RFC822.SIZE: its bytes with CRLF line ends, which may
    /// differ from the file's length when the file ends lines in a bare LF), if a session of
    /// this process counted it before from a file of length `file_len`. A Maildir message's
    /// bytes never change under its unique name, so the size is known without reading the
    /// file again; the file length guards against a file replaced by hand all the same.
    pub fn known_size(&self, unique: &str, file_len: u64) -> Option<u64> {
        lock(&self.shared.sizes)
            .get(unique)
            .filter(|k| k.file_len == file_len)
            .map(|k| k.size)
    }

    /// Remembers a message's IMAP size (see [`Mailbox::known_size`]) for this process.
    pub fn remember_size(&self, unique: &str, file_len: u64, size: u64) {
        lock(&self.shared.sizes).insert(unique.to_owned(), KnownSize { file_len, size });
    }

    /// Drops remembered sizes of messages no longer in the mailbox, once they outnumber the
    /// messages there: the sizes of a busy mailbox stay bounded by its message count.
    fn prune_sizes(&self, files: &[MessageFile]) {
        let mut sizes = lock(&self.shared.sizes);
        if sizes.len() <= files.len() {
            return;
        }
        let present: std::collections::HashSet<&str> =
            files.iter().map(|f| f.unique.as_str()).collect();
        sizes.retain(|unique, _| present.contains(unique.as_str()));
    }

    /// Scans the mailbox and gives every message its UID. With `claim_new`, messages in `new`
    /// move to `cur` and come back with `recent` set: the caller is the session that saw them
    /// first (RFC 3501 section 2.3.2, `\Recent`).
    pub fn snapshot(&self, claim_new: bool) -> Result<MailboxSnapshot> {
        Ok(Arc::unwrap_or_clone(self.snapshot_shared(claim_new)?))
    }

    /// [`Mailbox::snapshot`], shared: while neither `new` nor `cur` has changed since the last
    /// scan that a session still holds (their modification times are the same, and were
    /// [`SETTLED`] before that scan), that scan is returned again, the same `Arc`, without
    /// listing the directories or reading the UID index. Every change to a Maildir's messages
    /// (delivery, flag rename, removal, by this process or another) changes one of the times.
    pub fn snapshot_shared(&self, claim_new: bool) -> Result<Arc<MailboxSnapshot>> {
        let _guard = self.lock();
        self.snapshot_locked(claim_new)
    }

    /// The modification times of `new` and `cur`; None when one cannot be read.
    fn stamp(&self) -> Option<(SystemTime, SystemTime)> {
        let time = |sub: &str| {
            fs::metadata(self.maildir.path().join(sub))
                .and_then(|m| m.modified())
                .ok()
        };
        Some((time("new")?, time("cur")?))
    }

    fn snapshot_locked(&self, claim_new: bool) -> Result<Arc<MailboxSnapshot>> {
        let started = SystemTime::now();
        let stamp = self.stamp();
        if let Some(stamp) = stamp {
            let scan = lock(&self.shared.scan);
            if let Some(scan) = scan.as_ref()
                && scan.stamp == stamp
                && !(claim_new && scan.has_new)
                && let Some(snapshot) = scan.snapshot.upgrade()
            {
                return Ok(snapshot);
            }
        }
        let mut files = self.maildir.list()?;
        let mut recent = std::collections::HashSet::new();
        if claim_new {
            for file in files.iter_mut().filter(|f| f.in_new) {
                match self.maildir.move_to_cur(file) {
                    Ok(path) => {
                        file.path = path;
                        file.in_new = false;
                        recent.insert(file.unique.clone());
                    }
                    // Moved by someone else meanwhile; the next scan finds it in cur.
                    Err(Error::MessageGone(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            if !recent.is_empty() {
                sync_dir(&self.maildir.path().join("cur"))?;
                sync_dir(&self.maildir.path().join("new"))?;
            }
        }
        let (uid_validity, uid_next, uids) = self.index(&files)?;
        self.prune_sizes(&files);
        let files_in_new = files.iter().any(|f| f.in_new);
        let mut messages: Vec<Message> = files
            .into_iter()
            .filter_map(|f| {
                let uid = *uids.get(&f.unique)?;
                let recent = recent.contains(&f.unique);
                Some(Message {
                    uid,
                    unique: f.unique,
                    path: f.path,
                    flags: f.flags,
                    recent,
                })
            })
            .collect();
        messages.sort_by_key(|m| m.uid);
        let snapshot = Arc::new(MailboxSnapshot {
            uid_validity,
            uid_next,
            messages,
        });
        let settled = |time: SystemTime| {
            started
                .duration_since(time)
                .is_ok_and(|quiet| quiet >= SETTLED)
        };
        // A scan that moved messages out of `new` changed both directories after `stamp`.
        *lock(&self.shared.scan) = match stamp {
            Some(stamp) if recent.is_empty() && settled(stamp.0) && settled(stamp.1) => {
                Some(Scan {
                    stamp,
                    has_new: files_in_new,
                    snapshot: Arc::downgrade(&snapshot),
                })
            }
            _ => None,
        };
        Ok(snapshot)
    }

    /// Brings the UID index in line with the files: new files get the next UIDs (oldest file
    /// first), files gone lose theirs. Writes to redb only when something changed.
    fn index(&self, files: &[MessageFile]) -> Result<(u32, u32, HashMap<String, u32>)> {
        let key = self.key.as_str();
        let db = &self.store.inner.db;
        let (record, known) = {
            let txn = db.begin_read().map_err(redb::Error::from)?;
            let mailboxes = txn.open_table(MAILBOXES).map_err(redb::Error::from)?;
            let uids = txn.open_table(UIDS).map_err(redb::Error::from)?;
            let record = mailboxes
                .get(key)
                .map_err(redb::Error::from)?
                .map(|v| v.value());
            let mut known = HashMap::new();
            for item in uids
                .range((key, 0u32)..=(key, u32::MAX))
                .map_err(redb::Error::from)?
            {
                let (k, v) = item.map_err(redb::Error::from)?;
                known.insert(v.value().to_owned(), k.value().1);
            }
            (record, known)
        };
        let mut missing: Vec<&MessageFile> = files
            .iter()
            .filter(|f| !known.contains_key(&f.unique))
            .collect();
        let present: std::collections::HashSet<&str> =
            files.iter().map(|f| f.unique.as_str()).collect();
        let stale: Vec<(String, u32)> = known
            .iter()
            .filter(|(unique, _)| !present.contains(unique.as_str()))
            .map(|(u, uid)| (u.clone(), *uid))
            .collect();
        if let Some((validity, next)) = record
            && missing.is_empty()
            && stale.is_empty()
        {
            return Ok((validity, next, known));
        }

        missing.sort_by_cached_key(|f| {
            let mtime = fs::metadata(&f.path)
                .and_then(|m| m.modified())
                .unwrap_or(UNIX_EPOCH);
            (mtime, f.unique.clone())
        });
        let mut known = known;
        *lock(&self.shared.scan) = None;
        let txn = db.begin_write().map_err(redb::Error::from)?;
        let result;
        {
            let mut mailboxes = txn.open_table(MAILBOXES).map_err(redb::Error::from)?;
            let mut uids = txn.open_table(UIDS).map_err(redb::Error::from)?;
            let mut uniques = txn.open_table(UNIQUES).map_err(redb::Error::from)?;
            let mut meta = txn.open_table(META).map_err(redb::Error::from)?;
            let (validity, mut next) = match record {
                Some(r) => r,
                None => {
                    let last = meta.get("last_uid_validity").map_err(redb::Error::from)?;
                    let last = last.map(|v| v.value()).unwrap_or(0);
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default();
                    let now = u32::try_from(now.as_secs()).unwrap_or(u32::MAX - 1);
                    let validity = now.max(last.saturating_add(1));
                    meta.insert("last_uid_validity", validity)
                        .map_err(redb::Error::from)?;
                    (validity, 1)
                }
            };
            for (unique, uid) in &stale {
                uids.remove((key, *uid)).map_err(redb::Error::from)?;
                uniques
                    .remove((key, unique.as_str()))
                    .map_err(redb::Error::from)?;
                known.remove(unique);
            }
            for file in missing {
                let uid = next;
                next = next.saturating_add(1);
                uids.insert((key, uid), file.unique.as_str())
                    .map_err(redb::Error::from)?;
                uniques
                    .insert((key, file.unique.as_str()), uid)
                    .map_err(redb::Error::from)?;
                known.insert(file.unique.clone(), uid);
            }
            mailboxes
                .insert(key, (validity, next))
                .map_err(redb::Error::from)?;
            result = (validity, next);
        }
        txn.commit().map_err(redb::Error::from)?;
        Ok((result.0, result.1, known))
    }

    /// The mailbox's keywords (IMAP flags without a backslash, such as `$Junk`), by Maildir
    /// letter: index 0 is `a`. They are kept in Dovecot's `dovecot-keywords` file, one
    /// `<index> <name>` a line, so other Maildir software reads them too.
    pub fn keywords(&self) -> Result<Vec<String>> {
        let path = self.maildir.path().join(KEYWORDS_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::Io { path, source: e }),
        };
        let mut names = vec![String::new(); 26];
        for line in text.lines() {
            let Some((index, name)) = line.split_once(' ') else {
                continue;
            };
            if let Ok(i) = index.parse::<usize>()
                && i < 26
                && !name.is_empty()
            {
                names[i] = name.to_owned();
            }
        }
        while names.last().is_some_and(String::is_empty) {
            names.pop();
        }
        Ok(names)
    }

    /// The Maildir letter of a keyword (case-insensitive, as IMAP compares flags), giving it
    /// the next free letter when it is new. None when all 26 letters are taken.
    pub fn keyword_letter(&self, name: &str) -> Result<Option<u8>> {
        let _guard = self.lock();
        let mut names = self.keywords()?;
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(name)) {
            return Ok(Some(b'a' + i as u8));
        }
        let index = match names.iter().position(String::is_empty) {
            Some(free) => free,
            None if names.len() < 26 => {
                names.push(String::new());
                names.len() - 1
            }
            None => return Ok(None),
        };
        names[index] = name.to_owned();
        let text: String = names
            .iter()
            .enumerate()
            .filter(|(_, n)| !n.is_empty())
            .map(|(i, n)| format!("{i} {n}\n"))
            .collect();
        let dir = self.maildir.path();
        let tmp = dir.join(format!("{KEYWORDS_FILE}.tmp"));
        fs::write(&tmp, text).map_err(Error::io(&tmp))?;
        fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(Error::io(&tmp))?;
        fs::rename(&tmp, dir.join(KEYWORDS_FILE)).map_err(Error::io(&tmp))?;
        sync_dir(dir)?;
        Ok(Some(b'a' + index as u8))
    }

    /// Sets a message's flags (found by its unique name). Returns the message as it is now.
    pub fn set_flags(&self, unique: &str, flags: &Flags) -> Result<PathBuf> {
        let _guard = self.lock();
        let path = self
            .maildir
            .find(unique)?
            .ok_or_else(|| Error::MessageGone(unique.to_owned()))?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let current = if path.parent() == Some(&self.maildir.path().join("new")) {
            Flags::default()
        } else {
            Flags::split_file_name(name).1
        };
        let file = MessageFile {
            unique: unique.to_owned(),
            in_new: path.parent() == Some(&self.maildir.path().join("new")),
            path: path.clone(),
            flags: current.clone(),
        };
        if current == *flags && !file.in_new {
            return Ok(path);
        }
        let new_path = self.maildir.set_flags(&file, flags)?;
        sync_dir(&self.maildir.path().join("cur"))?;
        drop(_guard);
        self.notify(Change::Flags);
        Ok(new_path)
    }

    /// Adds a message with flags and an internal date (APPEND, COPY, MOVE). Returns its UID.
    pub fn append(
        &self,
        message: &mut dyn Read,
        flags: &Flags,
        internal_date: Option<SystemTime>,
    ) -> Result<u32> {
        let path = self.maildir.add_to_cur(message, flags, internal_date)?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let unique = Flags::split_file_name(name).0.to_owned();
        let _guard = self.lock();
        let snapshot = self.snapshot_locked(false)?;
        drop(_guard);
        self.notify(Change::Added);
        snapshot
            .messages
            .iter()
            .find(|m| m.unique == unique)
            .map(|m| m.uid)
            .ok_or(Error::MessageGone(unique))
    }

    /// Removes messages (by unique name) and their UIDs. Missing ones are skipped.
    pub fn expunge(&self, uniques: &[String]) -> Result<()> {
        if uniques.is_empty() {
            return Ok(());
        }
        let _guard = self.lock();
        for unique in uniques {
            if let Some(path) = self.maildir.find(unique)? {
                let file = MessageFile {
                    unique: unique.clone(),
                    path,
                    in_new: false,
                    flags: Flags::default(),
                };
                self.maildir.remove(&file)?;
            }
        }
        self.maildir.sync()?;
        let files = self.maildir.list()?;
        self.index(&files)?;
        drop(_guard);
        self.notify(Change::Expunged);
        Ok(())
    }
}

/// The on-disk directory of a mailbox: empty for INBOX, `.<mutf7 name>` for a folder.
fn mailbox_dir(name: &str) -> Result<String> {
    if is_inbox(name) {
        Ok(String::new())
    } else {
        folder_dir(name)
    }
}

fn folder_dir(name: &str) -> Result<String> {
    let bad = name.is_empty()
        || name.contains(['/', '\0', '\r', '\n'])
        || name.starts_with(DELIMITER)
        || name.ends_with(DELIMITER)
        || name.contains("..")
        || name.chars().any(char::is_control);
    // A Maildir++ folder is one directory, however deep its hierarchy, and the name of a
    // directory has at most 255 bytes (NAME_MAX on Linux); a longer one is the client's mistake,
    // not an I/O error that would show the server's path.
    let dir = format!(".{}", mutf7::encode(name));
    if bad || dir.len() > 255 {
        return Err(Error::BadMailboxName(name.to_owned()));
    }
    Ok(dir)
}

fn is_inbox(name: &str) -> bool {
    name.eq_ignore_ascii_case("INBOX")
}

fn canonical(name: &str) -> String {
    if is_inbox(name) {
        "INBOX".to_owned()
    } else {
        name.to_owned()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in another session while it held the lock leaves no half-made state behind in
    // what the lock guards (file renames are atomic), so the poison is ignored.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> Store {
        let db = Arc::new(Database::create(dir.join("mail.redb")).unwrap());
        Store::open(dir.join("mail"), db).unwrap()
    }

    #[test]
    fn every_user_gets_the_special_folders_subscribed() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        store.create_user("alice").unwrap();
        assert_eq!(
            store.list_mailboxes("alice").unwrap(),
            ["INBOX", "Drafts", "Junk", "Sent", "Trash"]
        );
        assert!(dir.path().join("mail/alice/.Sent/cur").is_dir());
        assert_eq!(store.subscriptions("alice").unwrap().len(), 4);
    }

    #[test]
    fn uids_and_uidvalidity_survive_reopening_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let (validity, uids) = {
            let store = store(dir.path());
            store.create_user("alice").unwrap();
            for i in 0..3 {
                store
                    .deliver("alice", None, &mut &b"x"[..], Some(&format!("m{i}")))
                    .unwrap();
            }
            let snap = store
                .mailbox("alice", "INBOX")
                .unwrap()
                .snapshot(true)
                .unwrap();
            assert!(snap.messages.iter().all(|m| m.recent));
            let uids: Vec<(u32, String)> = snap
                .messages
                .iter()
                .map(|m| (m.uid, m.unique.clone()))
                .collect();
            (snap.uid_validity, uids)
        };
        let store = store(dir.path());
        let snap = store
            .mailbox("alice", "inbox")
            .unwrap()
            .snapshot(true)
            .unwrap();
        assert_eq!(snap.uid_validity, validity);
        let again: Vec<(u32, String)> = snap
            .messages
            .iter()
            .map(|m| (m.uid, m.unique.clone()))
            .collect();
        assert_eq!(again, uids);
        assert_eq!(uids.iter().map(|u| u.0).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(snap.messages.iter().all(|m| !m.recent));
    }

    #[test]
    fn expunged_uids_are_never_given_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        store.create_user("bob").unwrap();
        store.deliver("bob", None, &mut &b"1"[..], None).unwrap();
        store.deliver("bob", None, &mut &b"2"[..], None).unwrap();
        let inbox = store.mailbox("bob", "INBOX").unwrap();
        let snap = inbox.snapshot(false).unwrap();
        inbox.expunge(&[snap.messages[1].unique.clone()]).unwrap();
        store.deliver("bob", None, &mut &b"3"[..], None).unwrap();
        let snap = inbox.snapshot(false).unwrap();
        assert_eq!(
            snap.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
            [1, 3]
        );
        assert_eq!(snap.uid_next, 4);
    }

    #[test]
    fn a_recreated_mailbox_gets_a_new_uidvalidity() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        store.create_user("bob").unwrap();
        store.create_mailbox("bob", "Work").unwrap();
        let first = store
            .mailbox("bob", "Work")
            .unwrap()
            .snapshot(false)
            .unwrap()
            .uid_validity;
        store.delete_mailbox("bob", "Work").unwrap();
        store.create_mailbox("bob", "Work").unwrap();
        let second = store
            .mailbox("bob", "Work")
            .unwrap()
            .snapshot(false)
            .unwrap()
            .uid_validity;
        assert!(second > first);
    }

    #[test]
    fn folder_names_are_kept_in_modified_utf7_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        store.create_user("bob").unwrap();
        store.create_mailbox("bob", "Entwürfe.Alt").unwrap();
        assert!(dir.path().join("mail/bob/.Entw&APw-rfe.Alt/cur").is_dir());
        assert!(dir.path().join("mail/bob/.Entw&APw-rfe/cur").is_dir());
        let names = store.list_mailboxes("bob").unwrap();
        assert!(names.contains(&"Entwürfe.Alt".to_owned()));
        store.rename_mailbox("bob", "Entwürfe", "Drafts2").unwrap();
        let names = store.list_mailboxes("bob").unwrap();
        assert!(names.contains(&"Drafts2.Alt".to_owned()), "{names:?}");
    }

    #[test]
    fn flag_changes_and_deliveries_are_announced() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        store.create_user("carol").unwrap();
        let inbox = store.mailbox("carol", "INBOX").unwrap();
        let mut watch = inbox.watch();
        store
            .deliver("carol", None, &mut &b"x"[..], Some("m1"))
            .unwrap();
        assert_eq!(watch.try_recv().unwrap(), Change::Added);
        inbox.set_flags("m1", &Flags::from_letters("S")).unwrap();
        assert_eq!(watch.try_recv().unwrap(), Change::Flags);
        let snap = inbox.snapshot(false).unwrap();
        assert!(snap.messages[0].flags.seen);
    }

    #[test]
    fn keywords_get_letters_that_persist() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        store.create_user("erin").unwrap();
        let inbox = store.mailbox("erin", "INBOX").unwrap();
        assert_eq!(inbox.keyword_letter("$Junk").unwrap(), Some(b'a'));
        assert_eq!(inbox.keyword_letter("$label1").unwrap(), Some(b'b'));
        assert_eq!(inbox.keyword_letter("$junk").unwrap(), Some(b'a'));
        let again = store.mailbox("erin", "INBOX").unwrap();
        assert_eq!(again.keywords().unwrap(), ["$Junk", "$label1"]);
        let text = fs::read_to_string(dir.path().join("mail/erin/dovecot-keywords")).unwrap();
        assert_eq!(text, "0 $Junk\n1 $label1\n");
    }

    #[test]
    fn a_known_size_holds_for_the_same_file_length_and_goes_with_its_message() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        store.create_user("fred").unwrap();
        store
            .deliver("fred", None, &mut &b"1"[..], Some("m1"))
            .unwrap();
        store
            .deliver("fred", None, &mut &b"2"[..], Some("m2"))
            .unwrap();
        let inbox = store.mailbox("fred", "INBOX").unwrap();
        inbox.remember_size("m1", 10, 12);
        inbox.remember_size("m2", 20, 22);
        // Another handle on the same mailbox shares them.
        let again = store.mailbox("fred", "inbox").unwrap();
        assert_eq!(again.known_size("m1", 10), Some(12));
        assert_eq!(again.known_size("m1", 11), None);
        assert_eq!(again.known_size("m3", 10), None);
        inbox.expunge(&["m2".to_owned()]).unwrap();
        inbox.remember_size("gone", 1, 1);
        inbox.snapshot(false).unwrap();
        assert_eq!(inbox.known_size("m2", 20), None);
        assert_eq!(inbox.known_size("gone", 1), None);
        assert_eq!(inbox.known_size("m1", 10), Some(12));
    }

    /// Sets the modification time of `new` and `cur` to `secs` seconds ago.
    fn age_dirs(maildir: &Path, secs: u64) {
        let then = SystemTime::now() - Duration::from_secs(secs);
        for sub in ["new", "cur"] {
            fs::File::open(maildir.join(sub))
                .unwrap()
                .set_modified(then)
                .unwrap();
        }
    }

    #[test]
    fn a_scan_is_reused_only_while_new_and_cur_are_unchanged_and_settled() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        store.create_user("gina").unwrap();
        let home = dir.path().join("mail/gina");
        store
            .deliver("gina", None, &mut &b"1"[..], Some("m1"))
            .unwrap();
        let inbox = store.mailbox("gina", "INBOX").unwrap();

        // Directories changed a moment ago: every scan is made anew.
        let first = inbox.snapshot_shared(true).unwrap();
        assert!(first.messages[0].recent);
        let again = inbox.snapshot_shared(false).unwrap();
        assert!(!Arc::ptr_eq(&first, &again));

        // Quiet for a while: the scan a session holds is handed out again.
        age_dirs(&home, 5);
        let settled = inbox.snapshot_shared(false).unwrap();
        let reused = inbox.snapshot_shared(false).unwrap();
        assert!(Arc::ptr_eq(&settled, &reused));
        assert!(!reused.messages[0].recent);

        // A flag change made by another program (a rename in cur) is seen.
        let old = home.join("cur/m1:2,");
        fs::rename(&old, home.join("cur/m1:2,S")).unwrap();
        let renamed = inbox.snapshot_shared(false).unwrap();
        assert!(renamed.messages[0].flags.seen);

        // A delivery is seen, and a session that claims `new` gets its \Recent even when
        // the last scan (read-only) was made after the directories settled.
        store
            .deliver("gina", None, &mut &b"2"[..], Some("m2"))
            .unwrap();
        age_dirs(&home, 5);
        let read_only = inbox.snapshot_shared(false).unwrap();
        assert_eq!(read_only.messages.len(), 2);
        assert!(read_only.messages.iter().all(|m| !m.recent));
        let claimed = inbox.snapshot_shared(true).unwrap();
        assert!(claimed.messages[1].recent, "{claimed:?}");
        assert!(home.join("cur/m2:2,").exists());

        // Nobody holds a scan any more: nothing is kept.
        drop((first, again, settled, reused, renamed, read_only, claimed));
        age_dirs(&home, 5);
        let fresh = inbox.snapshot_shared(false).unwrap();
        assert_eq!(Arc::strong_count(&fresh), 1);
        assert!(inbox.shared.scan.lock().unwrap().is_some());
        drop(fresh);
        let scan = inbox.shared.scan.lock().unwrap();
        assert!(scan.as_ref().unwrap().snapshot.upgrade().is_none());
    }

    #[test]
    fn a_maildrop_lock_is_exclusive_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let first = store.lock_maildrop("alice").unwrap();
        assert!(store.lock_maildrop("alice").is_none());
        assert!(store.lock_maildrop("bob").is_some());
        drop(first);
        assert!(store.lock_maildrop("alice").is_some());
    }

    #[test]
    fn append_returns_the_new_uid() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        store.create_user("dave").unwrap();
        let sent = store.mailbox("dave", "Sent").unwrap();
        let uid = sent
            .append(&mut &b"a"[..], &Flags::from_letters("S"), None)
            .unwrap();
        assert_eq!(uid, 1);
        let uid = sent
            .append(&mut &b"b"[..], &Flags::default(), None)
            .unwrap();
        assert_eq!(uid, 2);
    }
}
