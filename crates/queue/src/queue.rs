//! The queue: enqueue, the runner that delivers, retries and notifies, and the operations of
//! the control API (list, flush, delete, bounce, hold).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redb::Database;
use serde::Serialize;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tracing::{Instrument, error, info, info_span, warn};

use crate::Error;
use crate::dsn::{self, Notice, NoticeKind, NoticeRecipient};
use crate::envelope::{Destination, Envelope, QueueId, Recipient};
use crate::schedule::{AfterDeferral, RetryPolicy};
use crate::spool::Spool;
use crate::store::{Op, QueueEntry, RecipientState, Status, Store};
use crate::summary;
use crate::transport::{DeliveryJob, Outcome, OutcomeKind, Transport, Transports};

/// The most recipients handed to a transport in one job (one SMTP transaction).
pub const MAX_RECIPIENTS_PER_JOB: usize = 100;

/// How long deliveries under way may take to finish at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Decides where a notice to a sender goes: the mail component's router (a local sender gets
/// it in their Maildir, an outside one by SMTP).
pub type SenderRoute = Arc<dyn Fn(&str) -> Destination + Send + Sync>;

/// A message body in pieces, so that the SMTP server can queue its Received header and the
/// received data without joining them first.
#[derive(Debug, Clone, Default)]
pub struct MessageBody(pub Vec<Bytes>);

impl From<Vec<u8>> for MessageBody {
    fn from(v: Vec<u8>) -> MessageBody {
        MessageBody(vec![Bytes::from(v)])
    }
}

impl From<Bytes> for MessageBody {
    fn from(b: Bytes) -> MessageBody {
        MessageBody(vec![b])
    }
}

impl From<&'static [u8]> for MessageBody {
    fn from(b: &'static [u8]) -> MessageBody {
        MessageBody(vec![Bytes::from_static(b)])
    }
}

/// How the queue behaves.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// `system.data_dir`: the spool lives in `<data_dir>/spool/queue`.
    pub data_dir: PathBuf,
    /// Our host name, for notices (Reporting-MTA, MAILER-DAEMON@).
    pub hostname: String,
    /// Retries, expiry, delay notices.
    pub policy: RetryPolicy,
    /// Deliveries at once per destination key.
    pub concurrency_per_destination: usize,
    /// Deliveries at once in total.
    pub concurrency_total: usize,
    /// Start with remote delivery held (on-demand link, link down).
    pub start_held: bool,
}

impl QueueSettings {
    /// Settings from the `[mail.queue]` section.
    pub fn from_config(
        data_dir: PathBuf,
        hostname: String,
        config: &postroom_config::mail::Queue,
    ) -> QueueSettings {
        QueueSettings {
            data_dir,
            hostname,
            policy: RetryPolicy::from_config(config),
            concurrency_per_destination: config.concurrency_per_destination.max(1),
            concurrency_total: config.concurrency_total.max(1),
            start_held: config.hold_when_link_down,
        }
    }
}

/// A queue entry as the control API and `postroom ctl queue` show it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct EntryView {
    /// Queue id.
    pub id: String,
    /// Envelope sender (empty: a notice).
    pub sender: String,
    /// The From header, decoded.
    pub from: Option<String>,
    /// The Subject header, decoded.
    pub subject: Option<String>,
    /// Unix seconds of arrival.
    pub arrived: u64,
    /// Size in octets.
    pub size: u64,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Unix seconds of the next attempt.
    pub next_attempt: u64,
    /// The last error.
    pub last_error: Option<String>,
    /// The recipients.
    pub recipients: Vec<RecipientView>,
}

/// A recipient in an [`EntryView`].
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct RecipientView {
    /// The address as given at RCPT TO.
    pub address: String,
    /// `local`, `remote` or `fax`.
    pub destination: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// The last reply or reason.
    pub last_reply: Option<String>,
}

/// The durable outbound queue. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

struct Inner {
    settings: QueueSettings,
    spool: Spool,
    store: Store,
    transports: Transports,
    sender_route: SenderRoute,
    next_id: AtomicU64,
    wake: Notify,
    held: AtomicBool,
    flush_requested: AtomicBool,
    /// Set at shutdown: deliveries not yet started are not started.
    stopping: AtomicBool,
    in_flight: Mutex<HashSet<QueueId>>,
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
    total: Arc<Semaphore>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("spool", &self.inner.spool.dir())
            .finish_non_exhaustive()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Queue {
    /// Opens the queue in `db` (the shared mail.redb) and `<data_dir>/spool/queue`. Spool files
    /// without a record (a crash between writing the body and committing it; the sender never
    /// got a 250 for them) are removed.
    pub fn open(
        db: Arc<Database>,
        settings: QueueSettings,
        transports: Transports,
        sender_route: SenderRoute,
    ) -> Result<Queue, Error> {
        let spool = Spool::open(&settings.data_dir)?;
        let store = Store::open(db, spool.clone())?;

        let known: HashSet<QueueId> = store.all()?.iter().map(|e| e.id).collect();
        for id in spool.list()? {
            if !known.contains(&id) {
                warn!(%id, "removing a spool file that has no queue record");
                spool.remove(id)?;
            }
        }

        // Ids grow: above every id in use and above the clock in microseconds, so ids of
        // earlier runs (and the Maildir names made from them) are not reused.
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let next = store.max_id()?.map_or(0, |m| m + 1).max(micros);

        let held = settings.start_held;
        let total = Arc::new(Semaphore::new(settings.concurrency_total));
        Ok(Queue {
            inner: Arc::new(Inner {
                settings,
                spool,
                store,
                transports,
                sender_route,
                next_id: AtomicU64::new(next),
                wake: Notify::new(),
                held: AtomicBool::new(held),
                flush_requested: AtomicBool::new(false),
                stopping: AtomicBool::new(false),
                in_flight: Mutex::new(HashSet::new()),
                limits: Mutex::new(HashMap::new()),
                total,
            }),
        })
    }

    /// Queues a message. Returns once its body (file and directory fsynced) and its record
    /// (redb commit) are on disk: only then may the SMTP server answer 250. Recipients that
    /// deliver to the same place are kept once.
    pub async fn enqueue(
        &self,
        envelope: Envelope,
        body: impl Into<MessageBody>,
    ) -> Result<QueueId, Error> {
        self.inner.enqueue(envelope, body.into()).await
    }

    /// Holds remote delivery (the link is down in on-demand mode). Local and fax delivery go on.
    pub fn hold(&self) {
        if !self.inner.held.swap(true, Ordering::SeqCst) {
            info!("queue held: remote delivery waits for the link");
        }
    }

    /// Whether remote delivery is held.
    pub fn is_held(&self) -> bool {
        self.inner.held.load(Ordering::SeqCst)
    }

    /// Releases the hold and tries every entry now, whatever its schedule (the link came up, or
    /// the administrator asked while it was not held).
    pub fn flush(&self) {
        self.inner.held.store(false, Ordering::SeqCst);
        self.inner.flush_requested.store(true, Ordering::SeqCst);
        info!("queue flush");
        self.inner.wake.notify_one();
    }

    /// Tries every entry now, whatever its schedule, but leaves a hold in place: remote
    /// recipients go on waiting for the link. What the administrator's flush does while the
    /// link is down, where trying them would only fail and push their next try further out.
    pub fn retry_now(&self) {
        self.inner.flush_requested.store(true, Ordering::SeqCst);
        info!(held = self.is_held(), "queue flush asked for");
        self.inner.wake.notify_one();
    }

    /// Whether remote mail is waiting: in on-demand mode the mail component asks for the link
    /// when this is true.
    pub fn wants_link(&self) -> Result<bool, Error> {
        Ok(self
            .inner
            .store
            .schedule()
            .iter()
            .any(|(_, due)| due.remote))
    }

    /// Every entry, with From and Subject decoded from the spooled headers.
    pub fn list(&self) -> Result<Vec<EntryView>, Error> {
        let entries = self.inner.store.all()?;
        Ok(entries
            .into_iter()
            .map(|e| {
                let head = self
                    .inner
                    .spool
                    .read_head(e.id, summary::HEAD_LIMIT)
                    .unwrap_or_default();
                let (from, subject) = summary::from_and_subject(&head);
                EntryView {
                    id: e.id.to_string(),
                    sender: e.reverse_path,
                    from,
                    subject,
                    arrived: e.arrived,
                    size: e.size,
                    attempts: e.attempts,
                    next_attempt: e.next_attempt,
                    last_error: e.last_error,
                    recipients: e
                        .recipients
                        .into_iter()
                        .map(|r| RecipientView {
                            address: r.recipient.address,
                            destination: match r.recipient.destination {
                                Destination::Local { .. } => "local",
                                Destination::Remote { .. } => "remote",
                                Destination::Fax { .. } => "fax",
                            }
                            .into(),
                            status: match r.status {
                                Status::Pending => "pending",
                                Status::Delivered => "delivered",
                                Status::Failed => "failed",
                            }
                            .into(),
                            last_reply: r.last_reply,
                        })
                        .collect(),
                }
            })
            .collect())
    }

    /// The raw record of an entry.
    pub fn entry(&self, id: QueueId) -> Result<Option<QueueEntry>, Error> {
        self.inner.store.get(id)
    }

    /// Removes an entry without any notice.
    pub async fn delete(&self, id: QueueId) -> Result<(), Error> {
        let _claim = self.claim(id)?;
        if self.inner.store.get(id)?.is_none() {
            return Err(Error::NotFound(id));
        }
        self.inner.store.apply(vec![Op::Delete(id)], false).await?;
        self.inner.spool.remove(id)?;
        info!(%id, "deleted by the administrator");
        Ok(())
    }

    /// Gives up on an entry's pending recipients now: the sender gets a failure notice.
    pub async fn bounce(&self, id: QueueId) -> Result<(), Error> {
        let _claim = self.claim(id)?;
        let Some(mut entry) = self.inner.store.get(id)? else {
            return Err(Error::NotFound(id));
        };
        for r in entry
            .recipients
            .iter_mut()
            .filter(|r| r.status == Status::Pending)
        {
            r.status = Status::Failed;
            r.status_code = Some("5.0.0".into());
            let why = "returned to sender by the administrator";
            r.last_reply = Some(match &r.last_reply {
                Some(last) => format!("{why}; last reply: {last}"),
                None => why.into(),
            });
            r.smtp_reply = false;
        }
        info!(%id, "bounced by the administrator");
        self.inner.clone().finish(entry, false).await;
        Ok(())
    }

    /// Runs the queue until `shutdown` resolves: delivers due entries, sleeps until the next
    /// is due or something is queued or flushed. At shutdown, deliveries under way get
    /// [`SHUTDOWN_GRACE`] to finish; any still running then are abandoned, and their entries
    /// are tried again after a restart.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let next_due = match self.dispatch(&mut tasks) {
                Ok(next) => next,
                Err(e) => {
                    error!(error = %e, "cannot read the queue");
                    Some(now() + 5)
                }
            };
            let sleep = next_due.map_or(3_600, |t| t.saturating_sub(now()).clamp(1, 3_600));
            tokio::select! {
                _ = self.inner.wake.notified() => {}
                _ = self.inner.store.added().notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(sleep)) => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = &mut shutdown => break,
            }
        }

        self.inner.stopping.store(true, Ordering::SeqCst);

        // Let deliveries under way finish and record their outcome, so that a restart does not
        // send again what a server already took; abandon them after a grace period.
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
            warn!("abandoning deliveries still under way at shutdown");
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
    }

    /// Starts a task for every due entry; returns when the next waiting one is due.
    fn dispatch(&self, tasks: &mut JoinSet<()>) -> Result<Option<u64>, Error> {
        let now = now();
        let flush = self.inner.flush_requested.swap(false, Ordering::SeqCst);
        let held = self.is_held();
        let mut next_due: Option<u64> = None;
        for (id, due) in self.inner.store.schedule() {
            if !(due.other || (due.remote && !held)) {
                continue;
            }
            if !flush && due.next_attempt > now {
                next_due = Some(next_due.map_or(due.next_attempt, |t| t.min(due.next_attempt)));
                continue;
            }
            // One round per entry at a time: an entry whose round is under way is skipped
            // here and looked at again when that round ends.
            let Ok(claim) = self.claim(id) else {
                continue;
            };
            // Read only now, under the claim: nobody else changes it until the round ends, so
            // the copy the round records again is never an older one.
            let Some(entry) = self.inner.store.get(id)? else {
                continue;
            };
            let inner = self.inner.clone();
            let span = info_span!("queue_entry", id = %entry.id, attempt = entry.attempts + 1);
            tasks.spawn(
                async move {
                    inner.attempt(claim, entry, held).await;
                }
                .instrument(span),
            );
        }
        Ok(next_due)
    }

    /// Marks an entry as being worked on, so the runner and the control API never work on it
    /// at once.
    fn claim(&self, id: QueueId) -> Result<Claim, Error> {
        let mut set = self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !set.insert(id) {
            return Err(Error::Busy(id));
        }
        Ok(Claim {
            inner: self.inner.clone(),
            id,
        })
    }
}

struct Claim {
    inner: Arc<Inner>,
    id: QueueId,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut set = self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        set.remove(&self.id);
    }
}

impl Inner {
    async fn enqueue(&self, mut envelope: Envelope, body: MessageBody) -> Result<QueueId, Error> {
        envelope.dedupe();
        if envelope.recipients.is_empty() {
            return Err(Error::NoRecipients);
        }
        let id = QueueId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let spool = self.spool.clone();
        let parts = body.0;
        let size = tokio::task::spawn_blocking(move || spool.write(id, &parts))
            .await
            .map_err(|e| Error::io(self.spool.dir(), std::io::Error::other(e)))??;

        let arrived = now();
        let entry = QueueEntry {
            id,
            reverse_path: envelope.reverse_path,
            return_headers_only: envelope.return_headers_only,
            arrived,
            size,
            attempts: 0,
            next_attempt: arrived,
            last_error: None,
            delay_notified: false,
            recipients: envelope
                .recipients
                .into_iter()
                .map(|recipient| RecipientState {
                    recipient,
                    status: Status::Pending,
                    last_reply: None,
                    smtp_reply: false,
                    status_code: None,
                    remote_mta: None,
                    notified: false,
                })
                .collect(),
        };
        let recipients = entry.recipients.len();
        if let Err(e) = self.store.apply(vec![Op::Put(entry)], true).await {
            let _ = self.spool.remove(id);
            return Err(e);
        }
        info!(%id, size, recipients, "queued");
        self.wake.notify_one();
        Ok(id)
    }

    /// One delivery round of one entry, `entry` as read from the store after `claim` was
    /// taken; the claim is held until the round has recorded (or removed) the entry.
    async fn attempt(self: Arc<Self>, claim: Claim, mut entry: QueueEntry, held: bool) {
        debug_assert_eq!(claim.id, entry.id);
        if !entry.has_pending() {
            // Finished but not removed (a crash, or a removal that failed): nothing to deliver
            // and no body needed; the failure notices it still owes, then removal.
            info!("nothing pending: finishing it");
            self.finish(entry, false).await;
            drop(claim);
            return;
        }
        let body = match self.spool.read(entry.id) {
            Ok(body) => body,
            Err(e) => {
                // Recipients are pending, so the entry stays (its body is never removed while
                // anything is pending; it may come back, e.g. after a full disk). Recorded
                // from the copy read under the claim, and it stays in the schedule.
                error!(error = %e, "cannot read the spooled message");
                let at = now() + self.settings.policy.pause(entry.attempts.max(1));
                entry.last_error = Some(e.to_string());
                entry.next_attempt = at;
                if let Err(e) = self.store.apply(vec![Op::Put(entry)], false).await {
                    error!(error = %e, "cannot record the queue entry");
                    self.store.defer(claim.id, at);
                }
                drop(claim);
                return;
            }
        };

        // Group the pending recipients by transport and destination key.
        let mut groups: Vec<(Arc<dyn Transport>, String, Vec<usize>)> = Vec::new();
        for (i, r) in entry.recipients.iter().enumerate() {
            if r.status != Status::Pending {
                continue;
            }
            if held && matches!(r.recipient.destination, Destination::Remote { .. }) {
                continue;
            }
            let transport = self
                .transports
                .for_destination(&r.recipient.destination)
                .clone();
            let key = transport.destination_key(&r.recipient);
            let kind = std::mem::discriminant(&r.recipient.destination);
            match groups.iter_mut().find(|(t, k, idx)| {
                *k == key
                    && Arc::ptr_eq(t, &transport)
                    && std::mem::discriminant(&entry.recipients[idx[0]].recipient.destination)
                        == kind
            }) {
                Some((_, _, idx)) => idx.push(i),
                None => groups.push((transport, key, vec![i])),
            }
        }

        // RFC 5321 section 4.5.3.1.8: a server need take no more than 100 recipients in one
        // transaction; more go in further jobs rather than drawing 452s round after round.
        let groups = groups.into_iter().flat_map(|(transport, key, indices)| {
            indices
                .chunks(MAX_RECIPIENTS_PER_JOB)
                .map(|chunk| (transport.clone(), key.clone(), chunk.to_vec()))
                .collect::<Vec<_>>()
        });

        let mut deliveries = JoinSet::new();
        for (transport, key, indices) in groups {
            let job = DeliveryJob {
                id: entry.id,
                arrived: entry.arrived,
                reverse_path: entry.reverse_path.clone(),
                recipients: indices
                    .iter()
                    .map(|&i| entry.recipients[i].recipient.clone())
                    .collect(),
                body: body.clone(),
            };
            let limit = self.limit(&key);
            let total = self.total.clone();
            let inner = self.clone();
            deliveries.spawn(async move {
                // Semaphores are never closed, so acquiring only fails if that changes.
                let _one = limit.acquire_owned().await.ok();
                let _all = total.acquire_owned().await.ok();
                if inner.stopping.load(Ordering::SeqCst) {
                    return (indices, None);
                }
                let outcomes = transport.deliver(&job).await;
                (indices, Some(outcomes))
            });
        }
        let mut attempted = false;

        // Each group's outcomes are committed as they come, so an accepted message is recorded
        // as soon as possible and not sent again after a crash.
        while let Some(done) = deliveries.join_next().await {
            let Ok((indices, Some(outcomes))) = done else {
                continue;
            };
            attempted = true;
            for (n, &i) in indices.iter().enumerate() {
                let outcome = outcomes.get(n).cloned().unwrap_or_else(|| {
                    Outcome::local(
                        OutcomeKind::Deferred,
                        "4.3.0",
                        "the transport gave no outcome",
                    )
                });
                apply_outcome(&mut entry, i, outcome);
            }
            if let Err(e) = self.store.apply(vec![Op::Put(entry.clone())], false).await {
                error!(error = %e, "cannot record delivery outcomes");
            }
        }

        if attempted {
            entry.attempts += 1;
        }
        self.finish(entry, attempted).await;
        drop(claim);
    }

    /// After a round: schedule the next, expire, send notices, remove the finished entry.
    async fn finish(self: Arc<Self>, mut entry: QueueEntry, attempted: bool) {
        let now = now();
        let policy = &self.settings.policy;

        if entry.has_pending() {
            match policy.after_deferral(entry.arrived, entry.attempts, now) {
                AfterDeferral::Expire => {
                    let days = policy.expire_after / 86_400;
                    for r in entry
                        .recipients
                        .iter_mut()
                        .filter(|r| r.status == Status::Pending)
                    {
                        r.status = Status::Failed;
                        r.status_code = Some("4.4.7".into());
                        let last = r.last_reply.clone().unwrap_or_else(|| "not tried".into());
                        r.last_reply = Some(format!(
                            "{last} (message expired after {days} days in the queue)"
                        ));
                        info!(rcpt = %r.recipient.address, "expired");
                    }
                }
                AfterDeferral::RetryAt(t) if attempted => entry.next_attempt = t,
                AfterDeferral::RetryAt(_) => {}
            }
        }

        if entry.has_pending()
            && !entry.reverse_path.is_empty()
            && policy.delay_notice_due(entry.arrived, now, entry.delay_notified)
        {
            let late: Vec<&RecipientState> = entry
                .recipients
                .iter()
                .filter(|r| r.status == Status::Pending && r.recipient.notify_delay)
                .collect();
            if !late.is_empty() {
                self.send_notice(&entry, NoticeKind::Delay, &late, now)
                    .await;
            }
            entry.delay_notified = true;
        }

        // RFC 3461 section 4.1 / RFC 5321 section 6.1: a notice for every recipient given up,
        // but never to the null sender.
        let failed: Vec<&RecipientState> = entry
            .recipients
            .iter()
            .filter(|r| r.status == Status::Failed && !r.notified && r.recipient.notify_failure)
            .collect();
        if !failed.is_empty() && !entry.reverse_path.is_empty() {
            self.send_notice(&entry, NoticeKind::Failure, &failed, now)
                .await;
        }
        for r in entry
            .recipients
            .iter_mut()
            .filter(|r| r.status == Status::Failed)
        {
            r.notified = true;
        }

        // A record or removal that cannot be committed leaves the entry in the table and in
        // the schedule as it was: it is tried again after a pause, not forgotten, not at once.
        let id = entry.id;
        let later = now + policy.pause(entry.attempts.max(1));
        if entry.has_pending() {
            if let Err(e) = self.store.apply(vec![Op::Put(entry)], false).await {
                error!(error = %e, "cannot record the queue entry");
                self.store.defer(id, later);
            }
        } else {
            // The body goes only after its record: never a record without its body.
            match self.store.apply(vec![Op::Delete(id)], false).await {
                Ok(()) => {
                    if let Err(e) = self.spool.remove(id) {
                        warn!(error = %e, "cannot remove the spool file");
                    }
                    info!(%id, "done, removed from the queue");
                }
                Err(e) => {
                    error!(error = %e, "cannot remove the finished queue entry");
                    self.store.defer(id, later);
                }
            }
        }
    }

    /// The concurrency limit of one destination key.
    fn limit(&self, key: &str) -> Arc<Semaphore> {
        let mut limits = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        limits
            .entry(key.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.settings.concurrency_per_destination)))
            .clone()
    }

    async fn send_notice(
        &self,
        entry: &QueueEntry,
        kind: NoticeKind,
        recipients: &[&RecipientState],
        now: u64,
    ) {
        let original = match self.spool.read(entry.id) {
            Ok(b) => b,
            Err(e) => {
                error!(error = %e, "cannot read the original for a notice");
                Bytes::new()
            }
        };
        let notice = Notice {
            kind,
            reporting_mta: &self.settings.hostname,
            queue_id: entry.id,
            arrived: entry.arrived,
            now,
            retry_until: entry.arrived + self.settings.policy.expire_after,
            sender: &entry.reverse_path,
            recipients: recipients
                .iter()
                .map(|r| NoticeRecipient {
                    address: r.recipient.address.clone(),
                    status: r.status_code.clone().unwrap_or_else(|| match kind {
                        NoticeKind::Failure => "5.0.0".into(),
                        NoticeKind::Delay => "4.0.0".into(),
                    }),
                    diagnostic: r
                        .last_reply
                        .clone()
                        .unwrap_or_else(|| "not delivered".into()),
                    diagnostic_is_smtp: r.smtp_reply,
                    remote_mta: r.remote_mta.clone(),
                })
                .collect(),
            original: &original,
            headers_only: entry.return_headers_only || kind == NoticeKind::Delay,
        };
        let bytes = dsn::build(&notice);
        let to = &entry.reverse_path;
        let envelope = Envelope::new(
            "",
            vec![Recipient::new(to.clone(), (self.sender_route)(to))],
        );
        match self.enqueue(envelope, MessageBody::from(bytes)).await {
            Ok(id) => {
                let kind = match kind {
                    NoticeKind::Failure => "failure",
                    NoticeKind::Delay => "delay",
                };
                info!(notice = %id, sender = %to, kind, "notice queued");
            }
            Err(e) => error!(error = %e, "cannot queue a notice"),
        }
    }
}

/// Records one recipient's outcome in its entry, and logs it.
fn apply_outcome(entry: &mut QueueEntry, i: usize, outcome: Outcome) {
    let r = &mut entry.recipients[i];
    let rcpt = r.recipient.address.as_str();
    match outcome.kind {
        OutcomeKind::Delivered => {
            r.status = Status::Delivered;
            info!(
                rcpt,
                reply = %outcome.reply,
                mta = outcome.remote_mta.as_deref().unwrap_or("-"),
                "delivered"
            );
        }
        OutcomeKind::Deferred => {
            info!(rcpt, reply = %outcome.reply, "deferred");
            entry.last_error = Some(format!("{rcpt}: {}", outcome.reply));
        }
        OutcomeKind::Failed => {
            r.status = Status::Failed;
            info!(rcpt, reply = %outcome.reply, "refused, will bounce");
            entry.last_error = Some(format!("{rcpt}: {}", outcome.reply));
        }
    }
    r.last_reply = Some(outcome.reply);
    r.smtp_reply = outcome.smtp;
    r.status_code = Some(outcome.status);
    r.remote_mta = outcome.remote_mta;
}
