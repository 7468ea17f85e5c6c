//! Helpers shared by the queue's integration tests: a queue in a temp dir, its runner, and
//! transports that record what they were given.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postroom_config::mail::{Queue as QueueConfig, Span};
use postroom_queue::transport::{DeliveryFuture, LocalError, LocalTransport, Mailboxes};
use postroom_queue::{
    DeliveryJob, Destination, Outcome, OutcomeKind, Queue, QueueSettings, Recipient, Transport,
    Transports,
};

/// Mailboxes in plain directories: `<root>/<user>/new/<unique>`, idempotent by name.
pub struct DirMailboxes {
    pub root: PathBuf,
}

impl Mailboxes for DirMailboxes {
    fn deliver(
        &self,
        user: &str,
        _folder: Option<&str>,
        message: &[u8],
        unique: &str,
    ) -> Result<(), LocalError> {
        if user == "ghost" {
            return Err(LocalError::NoSuchUser);
        }
        let new = self.root.join(user).join("new");
        std::fs::create_dir_all(&new).map_err(|e| LocalError::Temporary(e.to_string()))?;
        let path = new.join(unique);
        if path.exists() {
            return Ok(());
        }
        std::fs::write(&path, message).map_err(|e| LocalError::Temporary(e.to_string()))
    }
}

impl DirMailboxes {
    /// The messages in a user's `new`.
    pub fn messages(&self, user: &str) -> Vec<Vec<u8>> {
        postroom_testpeers::message::maildir_new(&self.root.join(user))
    }
}

/// A remote transport that answers from a script and records every job.
#[derive(Default)]
pub struct ScriptedRemote {
    /// Per address, the outcome kind and reply; missing means delivered.
    pub script: Mutex<HashMap<String, (OutcomeKind, String)>>,
    pub jobs: Mutex<Vec<DeliveryJob>>,
    /// Addresses answered with "delivered", once per delivery.
    pub delivered: Mutex<Vec<String>>,
    pub running: AtomicUsize,
    pub max_running: AtomicUsize,
    pub delay: Mutex<Duration>,
}

impl ScriptedRemote {
    pub fn set(&self, address: &str, kind: OutcomeKind, reply: &str) {
        self.script
            .lock()
            .unwrap()
            .insert(address.into(), (kind, reply.into()));
    }

    pub fn clear(&self, address: &str) {
        self.script.lock().unwrap().remove(address);
    }

    pub fn delivered_to(&self, address: &str) -> usize {
        self.delivered
            .lock()
            .unwrap()
            .iter()
            .filter(|a| *a == address)
            .count()
    }

    pub fn attempts_for(&self, address: &str) -> usize {
        self.jobs
            .lock()
            .unwrap()
            .iter()
            .flat_map(|j| j.recipients.iter())
            .filter(|r| r.address == address)
            .count()
    }
}

impl Transport for ScriptedRemote {
    fn deliver<'a>(&'a self, job: &'a DeliveryJob) -> DeliveryFuture<'a> {
        Box::pin(async move {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_running.fetch_max(now, Ordering::SeqCst);
            let delay = *self.delay.lock().unwrap();
            tokio::time::sleep(delay).await;
            self.jobs.lock().unwrap().push(job.clone());
            let script = self.script.lock().unwrap().clone();
            self.running.fetch_sub(1, Ordering::SeqCst);
            job.recipients
                .iter()
                .map(|r| match script.get(&r.address) {
                    Some((kind, reply)) => Outcome {
                        kind: *kind,
                        reply: reply.clone(),
                        status: reply.split(' ').nth(1).unwrap_or("4.0.0").to_owned(),
                        smtp: true,
                        remote_mta: Some("smarthost.test".into()),
                    },
                    None => {
                        self.delivered.lock().unwrap().push(r.address.clone());
                        Outcome {
                            kind: OutcomeKind::Delivered,
                            reply: "250 2.0.0 ok".into(),
                            status: "2.0.0".into(),
                            smtp: true,
                            remote_mta: Some("smarthost.test".into()),
                        }
                    }
                })
                .collect()
        })
    }

    fn destination_key(&self, recipient: &postroom_queue::Recipient) -> String {
        recipient.destination.remote_domain().unwrap_or_default()
    }
}

pub fn config(retry_secs: u64) -> QueueConfig {
    QueueConfig {
        retry_schedule: vec![Span(retry_secs)],
        expire_after: Span(5 * 86_400),
        delay_notice_after: Span(4 * 3_600),
        concurrency_per_destination: 2,
        concurrency_total: 10,
        hold_when_link_down: false,
    }
}

/// Routes a notice's recipient: office.example senders are local users, others remote.
pub fn sender_route(address: &str) -> Destination {
    match address.split_once('@') {
        Some((user, "office.example")) => Destination::Local {
            user: user.into(),
            folder: None,
        },
        _ => Destination::Remote {
            address: address.into(),
        },
    }
}

/// A recipient with a remote destination.
pub fn remote(address: &str) -> Recipient {
    Recipient::new(
        address,
        Destination::Remote {
            address: address.into(),
        },
    )
}

/// Runs the queue until the returned sender is used (or dropped).
pub fn spawn_runner(
    queue: &Queue,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::oneshot::Sender<()>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let q = queue.clone();
    let handle = tokio::spawn(async move {
        q.run(async move {
            let _ = stopped.await;
        })
        .await
    });
    (handle, stop)
}

pub struct Harness {
    pub dir: PathBuf,
    pub db: Arc<redb::Database>,
    pub queue: Queue,
    pub mailboxes: Arc<DirMailboxes>,
}

pub fn open_queue(
    dir: &Path,
    config: &QueueConfig,
    remote: Arc<dyn Transport>,
    db: Option<Arc<redb::Database>>,
) -> Harness {
    let db = db.unwrap_or_else(|| Arc::new(redb::Database::create(dir.join("mail.redb")).unwrap()));
    let mailboxes = Arc::new(DirMailboxes {
        root: dir.join("mail"),
    });
    let transports = Transports {
        local: Arc::new(LocalTransport::new(mailboxes.clone())),
        remote,
        fax: Arc::new(postroom_queue::transport::FaxSpoolTransport::new(
            dir.join("spool/fax"),
        )),
    };
    let settings = QueueSettings::from_config(dir.to_owned(), "gw.office.example".into(), config);
    let queue = Queue::open(db.clone(), settings, transports, Arc::new(sender_route)).unwrap();
    Harness {
        dir: dir.to_owned(),
        db,
        queue,
        mailboxes,
    }
}

/// Waits (bounded) until `check` holds.
pub async fn eventually(what: &str, secs: u64, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !check() {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
