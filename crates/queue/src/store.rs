//! Queue records in redb (the shared `mail.redb`), written by one committer thread that
//! puts everything waiting into one transaction: group commit.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, oneshot};

use crate::Error;
use crate::envelope::{QueueId, Recipient};
use crate::spool::Spool;

/// queue id -> JSON of a [`QueueEntry`].
const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("queue_entries");

/// The most writes in one transaction; more wait for the next.
const MAX_BATCH: usize = 512;

/// Where a recipient stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Not delivered yet; will be tried.
    Pending,
    /// Delivered (into the Maildir, or accepted by the next server).
    Delivered,
    /// Given up: refused permanently, expired, or bounced by the administrator.
    Failed,
}

/// One recipient of a queued message and its delivery state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientState {
    /// The recipient and its destination.
    pub recipient: Recipient,
    /// Where it stands.
    pub status: Status,
    /// The last reply or reason, on one line (`451 4.3.0 try later`).
    pub last_reply: Option<String>,
    /// Whether `last_reply` is a server's SMTP reply rather than our own words.
    #[serde(default)]
    pub smtp_reply: bool,
    /// The RFC 3463 status of the last outcome.
    pub status_code: Option<String>,
    /// The server that gave the last reply.
    pub remote_mta: Option<String>,
    /// A failure notice covered this recipient already (or none is wanted).
    #[serde(default)]
    pub notified: bool,
}

/// A queued message: its envelope, delivery state and schedule. The body is in the spool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    /// Its id; also the spool file name.
    pub id: QueueId,
    /// The sender; empty for the null sender.
    pub reverse_path: String,
    /// DSN RET=HDRS.
    #[serde(default)]
    pub return_headers_only: bool,
    /// Unix seconds when it was queued.
    pub arrived: u64,
    /// Body size in octets.
    pub size: u64,
    /// Delivery attempts made so far (rounds, not connections).
    pub attempts: u32,
    /// Unix seconds of the next attempt.
    pub next_attempt: u64,
    /// The last error of any recipient, on one line.
    pub last_error: Option<String>,
    /// A delay notice was sent.
    #[serde(default)]
    pub delay_notified: bool,
    /// The recipients.
    pub recipients: Vec<RecipientState>,
}

impl QueueEntry {
    /// Whether any recipient is still to be delivered.
    pub fn has_pending(&self) -> bool {
        self.recipients.iter().any(|r| r.status == Status::Pending)
    }
}

/// One change to the store.
#[derive(Debug)]
pub enum Op {
    /// Insert or replace an entry.
    Put(QueueEntry),
    /// Remove an entry.
    Delete(QueueId),
}

struct Batch {
    ops: Vec<Op>,
    sync_spool: bool,
    done: oneshot::Sender<Result<(), String>>,
}

/// The queue's records.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    writer: Arc<Writer>,
    schedule: Schedule,
    /// Woken by the committer when a commit adds an entry to the schedule.
    added: Arc<Notify>,
}

/// What the runner needs to know of an entry, kept in memory so that choosing the due entries
/// does not read every record from disk. Every entry in the table has one: the schedule is the
/// table's shadow, changed by the committer in the order of its commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// Unix seconds of the next attempt (0 for a finished entry: at once).
    pub next_attempt: u64,
    /// Some pending recipient is remote (held while the link is down).
    pub remote: bool,
    /// Some pending recipient is local or fax (never held), or the entry is finished.
    pub other: bool,
    /// Nothing is pending: the runner is to send the failure notices it still owes and remove
    /// it with its body.
    pub finished: bool,
}

impl Due {
    /// The summary of an entry. An entry with nothing pending is due at once (and never held),
    /// so that whatever left it in the table (a crash after its outcomes were recorded, a
    /// failed removal), the runner finishes it rather than forgetting it.
    pub fn of(entry: &QueueEntry) -> Due {
        let pending = entry
            .recipients
            .iter()
            .filter(|r| r.status == Status::Pending);
        let (mut remote, mut other) = (false, false);
        for r in pending {
            match r.recipient.destination {
                crate::envelope::Destination::Remote { .. } => remote = true,
                _ => other = true,
            }
        }
        if remote || other {
            Due {
                next_attempt: entry.next_attempt,
                remote,
                other,
                finished: false,
            }
        } else {
            Due {
                next_attempt: 0,
                remote: false,
                other: true,
                finished: true,
            }
        }
    }
}

/// The in-memory schedule: queue id -> when it is due.
type Schedule = Arc<Mutex<BTreeMap<QueueId, Due>>>;

fn lock(schedule: &Schedule) -> std::sync::MutexGuard<'_, BTreeMap<QueueId, Due>> {
    // A panic while holding this lock leaves a map that is still whole.
    schedule.lock().unwrap_or_else(|p| p.into_inner())
}

/// The committer thread's inbox. When the last handle goes, the thread finishes what it has
/// and ends, and its handle on the database is released before the drop returns, so the same
/// file can be opened again at once (a restart within one process, as in tests).
struct Writer {
    tx: Option<mpsc::Sender<Batch>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the queue table in `db` (creating it) and starts the committer thread, which
    /// ends when the last `Store` clone is dropped.
    pub fn open(db: Arc<Database>, spool: Spool) -> Result<Store, Error> {
        let txn = db.begin_write().map_err(|e| Error::store("begin", e))?;
        txn.open_table(ENTRIES)
            .map_err(|e| Error::store("open table", e))?;
        txn.commit().map_err(|e| Error::store("commit", e))?;

        // Every entry is scheduled, before the committer can change any. One with nothing
        // pending is one whose round was cut off after recording its outcomes and before
        // finishing (a crash): due at once (see `Due::of`), so that the runner sends the
        // failure notices it still owes and removes it with its body.
        let schedule: Schedule = Arc::new(Mutex::new(BTreeMap::new()));
        {
            let txn = db.begin_read().map_err(|e| Error::store("begin read", e))?;
            let table = txn
                .open_table(ENTRIES)
                .map_err(|e| Error::store("open table", e))?;
            let mut map = lock(&schedule);
            for row in table.iter().map_err(|e| Error::store("read", e))? {
                let (key, value) = row.map_err(|e| Error::store("read", e))?;
                let entry = decode(key.value(), value.value())?;
                map.insert(entry.id, Due::of(&entry));
            }
        }

        let (tx, rx) = mpsc::channel::<Batch>();
        let thread_db = db.clone();
        let added = Arc::new(Notify::new());
        let shadow = Shadow {
            schedule: schedule.clone(),
            added: added.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("queue-commit".into())
            .spawn(move || committer(thread_db, spool, shadow, rx))
            .map_err(|e| Error::io(std::path::Path::new("queue-commit thread"), e))?;
        Ok(Store {
            db,
            writer: Arc::new(Writer {
                tx: Some(tx),
                thread: Some(thread),
            }),
            schedule,
            added,
        })
    }

    /// Notified when a commit adds an entry to the schedule (also when the one who asked for
    /// the commit stopped waiting for it): the runner waits on this.
    pub fn added(&self) -> &Notify {
        &self.added
    }

    /// Applies changes durably (one redb commit, shared with whatever else is waiting). With
    /// `sync_spool`, the spool directory is fsynced first, so new body files are durable
    /// before their records.
    ///
    /// The schedule follows in the committer, right after the commit and in commit order, so
    /// it matches the table even when the caller stops waiting (its future dropped).
    pub async fn apply(&self, ops: Vec<Op>, sync_spool: bool) -> Result<(), Error> {
        let (done, wait) = oneshot::channel();
        let tx = self.writer.tx.as_ref().ok_or(Error::Stopped)?;
        tx.send(Batch {
            ops,
            sync_spool,
            done,
        })
        .map_err(|_| Error::Stopped)?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(Error::Commit(reason)),
            Err(_) => Err(Error::Stopped),
        }
    }

    /// Every entry and when each is due, in id order: those with pending recipients and those
    /// finished but not yet removed.
    pub fn schedule(&self) -> Vec<(QueueId, Due)> {
        lock(&self.schedule)
            .iter()
            .map(|(id, due)| (*id, *due))
            .collect()
    }

    /// Moves an entry's next attempt to `at` in memory only: after a round whose record or
    /// removal could not be committed, so the runner tries again later instead of at once.
    pub fn defer(&self, id: QueueId, at: u64) {
        if let Some(due) = lock(&self.schedule).get_mut(&id) {
            due.next_attempt = at;
        }
    }

    /// Every entry, in id order.
    pub fn all(&self) -> Result<Vec<QueueEntry>, Error> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| Error::store("begin read", e))?;
        let table = txn
            .open_table(ENTRIES)
            .map_err(|e| Error::store("open table", e))?;
        let mut out = Vec::new();
        for row in table.iter().map_err(|e| Error::store("read", e))? {
            let (key, value) = row.map_err(|e| Error::store("read", e))?;
            out.push(decode(key.value(), value.value())?);
        }
        Ok(out)
    }

    /// One entry.
    pub fn get(&self, id: QueueId) -> Result<Option<QueueEntry>, Error> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| Error::store("begin read", e))?;
        let table = txn
            .open_table(ENTRIES)
            .map_err(|e| Error::store("open table", e))?;
        let row = table.get(id.0).map_err(|e| Error::store("read", e))?;
        row.map(|v| decode(id.0, v.value())).transpose()
    }

    /// The highest id in use, for choosing new ids after a restart.
    pub fn max_id(&self) -> Result<Option<u64>, Error> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| Error::store("begin read", e))?;
        let table = txn
            .open_table(ENTRIES)
            .map_err(|e| Error::store("open table", e))?;
        let last = table.last().map_err(|e| Error::store("read", e))?;
        Ok(last.map(|(k, _)| k.value()))
    }
}

fn decode(key: u64, bytes: &[u8]) -> Result<QueueEntry, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
        id: QueueId(key),
        reason: e.to_string(),
    })
}

/// What the committer keeps in step with the table.
struct Shadow {
    schedule: Schedule,
    added: Arc<Notify>,
}

fn committer(db: Arc<Database>, spool: Spool, shadow: Shadow, rx: mpsc::Receiver<Batch>) {
    while let Ok(first) = rx.recv() {
        let mut batches = vec![first];
        let mut count = batches[0].ops.len();
        while count < MAX_BATCH {
            match rx.try_recv() {
                Ok(b) => {
                    count += b.ops.len();
                    batches.push(b);
                }
                Err(_) => break,
            }
        }
        let result = commit(&db, &spool, &batches);
        tracing::trace!(batches = batches.len(), ops = count, "queue commit");
        if result.is_ok() {
            // Before anyone hears of the commit, and in the order of the ops in it.
            let mut added = false;
            let mut map = lock(&shadow.schedule);
            for op in batches.iter().flat_map(|b| &b.ops) {
                match op {
                    Op::Put(entry) => added |= map.insert(entry.id, Due::of(entry)).is_none(),
                    Op::Delete(id) => {
                        map.remove(id);
                    }
                }
            }
            drop(map);
            if added {
                shadow.added.notify_one();
            }
        }
        for b in batches {
            let _ = b.done.send(result.clone());
        }
    }
}

fn commit(db: &Database, spool: &Spool, batches: &[Batch]) -> Result<(), String> {
    if batches.iter().any(|b| b.sync_spool) {
        spool.sync_dir().map_err(|e| e.to_string())?;
    }
    let txn = db.begin_write().map_err(|e| e.to_string())?;
    {
        let mut table = txn.open_table(ENTRIES).map_err(|e| e.to_string())?;
        for op in batches.iter().flat_map(|b| &b.ops) {
            match op {
                Op::Put(entry) => {
                    let bytes = serde_json::to_vec(entry).map_err(|e| e.to_string())?;
                    table
                        .insert(entry.id.0, bytes.as_slice())
                        .map_err(|e| e.to_string())?;
                }
                Op::Delete(id) => {
                    table.remove(id.0).map_err(|e| e.to_string())?;
                }
            }
        }
    }
    txn.commit().map_err(|e| e.to_string())
}
