//! How the queue runner hands a message to its destinations: a [`Transport`] per kind of
//! destination (local Maildir, remote SMTP, fax spool).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use postroom_smtp_client::{self as smtp, RecipientOutcome, Relay, SendOptions};

use crate::envelope::{Destination, QueueId, Recipient};

/// One delivery to do: some recipients of one message that share a destination.
#[derive(Debug, Clone)]
pub struct DeliveryJob {
    /// The message's queue id.
    pub id: QueueId,
    /// When the message arrived (Unix seconds).
    pub arrived: u64,
    /// The sender, empty for the null sender.
    pub reverse_path: String,
    /// The recipients; all have the same kind of destination and the same destination key.
    pub recipients: Vec<Recipient>,
    /// The message, byte for byte as queued.
    pub body: Bytes,
}

/// What a delivery came to for one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    /// Done.
    Delivered,
    /// Try again later.
    Deferred,
    /// Permanently refused: notify the sender.
    Failed,
}

/// The outcome for one recipient of a [`DeliveryJob`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Delivered, deferred or failed.
    pub kind: OutcomeKind,
    /// The reply or reason on one line.
    pub reply: String,
    /// RFC 3463 status code, e.g. `5.1.1`.
    pub status: String,
    /// Whether `reply` is an SMTP server's reply.
    pub smtp: bool,
    /// The server that replied.
    pub remote_mta: Option<String>,
}

impl Outcome {
    /// An outcome in our own words, with a status code such as `4.3.0`.
    pub fn local(kind: OutcomeKind, status: &str, reason: impl Into<String>) -> Outcome {
        Outcome {
            kind,
            reply: reason.into(),
            status: status.to_owned(),
            smtp: false,
            remote_mta: None,
        }
    }
}

/// The future a transport returns.
pub type DeliveryFuture<'a> = Pin<Box<dyn Future<Output = Vec<Outcome>> + Send + 'a>>;

/// Delivers jobs of one kind of destination.
pub trait Transport: Send + Sync + 'static {
    /// Delivers and returns one outcome per recipient, in the job's order. Must not fail as a
    /// whole: an error is a deferral (or a failure) of each recipient.
    fn deliver<'a>(&'a self, job: &'a DeliveryJob) -> DeliveryFuture<'a>;

    /// Deliveries with the same key share the per-destination concurrency limit, and one job
    /// carries recipients of one key.
    fn destination_key(&self, recipient: &Recipient) -> String;
}

/// The transports of the queue runner, one per kind of destination.
#[derive(Clone)]
pub struct Transports {
    /// For [`Destination::Local`].
    pub local: Arc<dyn Transport>,
    /// For [`Destination::Remote`].
    pub remote: Arc<dyn Transport>,
    /// For [`Destination::Fax`].
    pub fax: Arc<dyn Transport>,
}

impl Transports {
    /// The transport for a destination.
    pub fn for_destination(&self, destination: &Destination) -> &Arc<dyn Transport> {
        match destination {
            Destination::Local { .. } => &self.local,
            Destination::Remote { .. } => &self.remote,
            Destination::Fax { .. } => &self.fax,
        }
    }
}

/// The Maildir unique name for one recipient's copy of a queued message. It depends only on
/// the queue id and the destination, so a delivery repeated after a crash (between the rename
/// into `new` and the queue record update) finds the earlier copy instead of making a second.
pub fn local_unique_name(id: QueueId, arrived: u64, recipient: &Recipient) -> String {
    // FNV-1a over the destination: stable across versions of Rust, unlike DefaultHasher.
    let key = match &recipient.destination {
        Destination::Local { user, folder } => {
            format!("{user}\0{}", folder.as_deref().unwrap_or(""))
        }
        other => format!("{other:?}"),
    };
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{arrived}.Q{id}R{hash:016x}.postroom")
}

/// Local mailboxes as the local transport sees them; the mail component implements this with
/// the Maildir store (postroom-maildir), whose delivery with a unique name is idempotent.
pub trait Mailboxes: Send + Sync + 'static {
    /// Delivers `message` to `user`'s `folder` (None = INBOX) under the unique name `unique`;
    /// when a message of that name is there already, does nothing and succeeds.
    fn deliver(
        &self,
        user: &str,
        folder: Option<&str>,
        message: &[u8],
        unique: &str,
    ) -> Result<(), LocalError>;
}

/// Why a local delivery failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalError {
    /// The user does not exist (any more): a permanent failure, 5.1.1.
    NoSuchUser,
    /// A temporary problem (disk full, I/O error): retried.
    Temporary(String),
}

/// Delivers [`Destination::Local`] recipients into Maildirs, idempotently.
pub struct LocalTransport<M> {
    mailboxes: Arc<M>,
}

impl<M: Mailboxes> LocalTransport<M> {
    /// A local transport over these mailboxes.
    pub fn new(mailboxes: Arc<M>) -> LocalTransport<M> {
        LocalTransport { mailboxes }
    }
}

impl<M: Mailboxes> Transport for LocalTransport<M> {
    fn deliver<'a>(&'a self, job: &'a DeliveryJob) -> DeliveryFuture<'a> {
        Box::pin(async move {
            let mailboxes = self.mailboxes.clone();
            let job = job.clone();
            let n = job.recipients.len();
            let result = tokio::task::spawn_blocking(move || {
                job.recipients
                    .iter()
                    .map(|r| {
                        let Destination::Local { user, folder } = &r.destination else {
                            return Outcome::local(
                                OutcomeKind::Failed,
                                "5.3.5",
                                "not a local destination",
                            );
                        };
                        let unique = local_unique_name(job.id, job.arrived, r);
                        match mailboxes.deliver(user, folder.as_deref(), &job.body, &unique) {
                            Ok(()) => Outcome::local(
                                OutcomeKind::Delivered,
                                "2.0.0",
                                "delivered to Maildir",
                            ),
                            Err(LocalError::NoSuchUser) => Outcome::local(
                                OutcomeKind::Failed,
                                "5.1.1",
                                format!("no mailbox for user {user}"),
                            ),
                            Err(LocalError::Temporary(reason)) => {
                                Outcome::local(OutcomeKind::Deferred, "4.3.0", reason)
                            }
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .await;
            result.unwrap_or_else(|e| {
                vec![
                    Outcome::local(
                        OutcomeKind::Deferred,
                        "4.3.0",
                        format!("local delivery: {e}")
                    );
                    n
                ]
            })
        })
    }

    fn destination_key(&self, _recipient: &Recipient) -> String {
        "local".into()
    }
}

/// Delivers [`Destination::Remote`] recipients by SMTP, to the smarthost or each domain's MX.
pub struct SmtpTransport {
    relay: Relay,
    options: SendOptions,
    /// For MX delivery without a resolver in `options`: one built on first use and shared.
    resolver: std::sync::OnceLock<Option<Arc<smtp::TokioResolver>>>,
}

impl SmtpTransport {
    /// An SMTP transport.
    pub fn new(relay: Relay, options: SendOptions) -> SmtpTransport {
        SmtpTransport {
            relay,
            options,
            resolver: std::sync::OnceLock::new(),
        }
    }
}

impl Transport for SmtpTransport {
    fn deliver<'a>(&'a self, job: &'a DeliveryJob) -> DeliveryFuture<'a> {
        Box::pin(async move {
            let addresses: Vec<String> = job
                .recipients
                .iter()
                .map(|r| match &r.destination {
                    Destination::Remote { address } => address.clone(),
                    _ => r.address.clone(),
                })
                .collect();
            let domain = job
                .recipients
                .first()
                .and_then(|r| r.destination.remote_domain())
                .unwrap_or_default();
            let transaction = smtp::Transaction {
                reverse_path: job.reverse_path.clone(),
                recipients: addresses,
                size: job.body.len() as u64,
                eight_bit: job.body.iter().any(|&b| b >= 0x80),
            };
            let mut options = self.options.clone();
            if matches!(self.relay, Relay::Mx { .. }) && options.resolver.is_none() {
                let shared = self.resolver.get_or_init(|| match smtp::mx::system_resolver() {
                    Ok(r) => Some(r),
                    Err(e) => {
                        tracing::warn!(error = %e, "no DNS resolver; MX delivery will be retried");
                        None
                    }
                });
                options.resolver = shared.clone();
            }
            let sent = smtp::send(&self.relay, &options, &domain, transaction, &job.body).await;
            sent.outcomes
                .into_iter()
                .map(|o| {
                    let kind = match &o {
                        RecipientOutcome::Delivered(_) => OutcomeKind::Delivered,
                        RecipientOutcome::Deferred(_) => OutcomeKind::Deferred,
                        RecipientOutcome::Failed(_) => OutcomeKind::Failed,
                    };
                    let reply = o.reply();
                    let status = reply
                        .enhanced_status()
                        .map(str::to_owned)
                        .unwrap_or_else(|| format!("{}.0.0", reply.code / 100));
                    Outcome {
                        kind,
                        reply: reply.one_line(),
                        status,
                        smtp: sent.server.is_some(),
                        remote_mta: sent.server.clone(),
                    }
                })
                .collect()
        })
    }

    fn destination_key(&self, recipient: &Recipient) -> String {
        self.relay
            .destination_key(&recipient.destination.remote_domain().unwrap_or_default())
    }
}

/// Hands [`Destination::Fax`] recipients to the fax spool: one file per message and number,
/// `<dir>/<queue id>.<number>.eml`, written to a temporary name, fsynced and renamed, so the
/// fax component sees only complete files. Idempotent: an existing file counts as delivered.
pub struct FaxSpoolTransport {
    dir: PathBuf,
}

impl FaxSpoolTransport {
    /// A fax spool transport writing into `dir` (created when needed).
    pub fn new(dir: PathBuf) -> FaxSpoolTransport {
        FaxSpoolTransport { dir }
    }
}

impl Transport for FaxSpoolTransport {
    fn deliver<'a>(&'a self, job: &'a DeliveryJob) -> DeliveryFuture<'a> {
        Box::pin(async move {
            let dir = self.dir.clone();
            let job = job.clone();
            let n = job.recipients.len();
            let done = tokio::task::spawn_blocking(move || {
                job.recipients
                    .iter()
                    .map(|r| match &r.destination {
                        Destination::Fax { number } => {
                            match write_fax(&dir, job.id, number, &job.body) {
                                Ok(()) => Outcome::local(
                                    OutcomeKind::Delivered,
                                    "2.0.0",
                                    "in the fax spool",
                                ),
                                Err(e) => Outcome::local(
                                    OutcomeKind::Deferred,
                                    "4.3.0",
                                    format!("fax spool: {e}"),
                                ),
                            }
                        }
                        _ => Outcome::local(OutcomeKind::Failed, "5.3.5", "not a fax destination"),
                    })
                    .collect::<Vec<_>>()
            })
            .await;
            done.unwrap_or_else(|e| {
                vec![Outcome::local(OutcomeKind::Deferred, "4.3.0", e.to_string()); n]
            })
        })
    }

    fn destination_key(&self, _recipient: &Recipient) -> String {
        "fax".into()
    }
}

fn write_fax(dir: &std::path::Path, id: QueueId, number: &str, body: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit() || b == b'+') {
        return Err(std::io::Error::other(format!("bad fax number {number:?}")));
    }
    std::fs::create_dir_all(dir)?;
    let target = dir.join(format!("{id}.{number}.eml"));
    if target.exists() {
        return Ok(());
    }
    let tmp = dir.join(format!(".{id}.{number}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(body)?;
    file.sync_all()?;
    std::fs::rename(&tmp, &target)?;
    std::fs::File::open(dir)?.sync_all()
}
