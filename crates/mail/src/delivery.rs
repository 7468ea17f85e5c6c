//! The hand-over to the durable queue (crates/queue) and the local transport it delivers with.
//!
//! Every accepted message goes into the queue with its recipients already routed; the queue's
//! runner hands local copies to [`MaildirTransport`] (Return-Path and Delivered-To added here,
//! idempotent file names from the queue id and recipient), remote ones to the SMTP transport
//! and fax copies to the fax spool.

use std::sync::Arc;

use bytes::Bytes;
use postroom_config::mail::{Mail, RelayMode, RelayTls};
use postroom_maildir::Store;
use postroom_queue::MessageBody;
use postroom_queue::transport::{
    DeliveryFuture, FaxSpoolTransport, SmtpTransport, local_unique_name,
};
use postroom_queue::{
    DeliveryJob, Destination as QueueDestination, Envelope, Outcome, OutcomeKind, Queue, Recipient,
    Transport, Transports,
};
use postroom_smtp::DsnReturn;
use postroom_smtp_client as client;

use crate::Error;
use crate::intake::{Accepted, BoxFuture, Intake};
use crate::router::{Destination, Routed, Router};
use crate::trace;

/// The intake: local copies go straight into their Maildirs, everything else into the queue;
/// `accept` returns once all of it is on disk.
///
/// A message only for local users never touches the queue: Maildir delivery (tmp, fsync, link
/// into new, fsync the directory) is as durable as a queue entry and costs a third of the
/// disk flushes. If the client is not told 250 (a crash, a failure of one of the steps), it
/// sends again and a local copy may arrive twice; never is one lost.
#[derive(Clone)]
pub struct QueueIntake {
    queue: Queue,
    store: Store,
}

impl QueueIntake {
    /// Delivers local copies into `store` and queues the rest into `queue`.
    pub fn new(queue: Queue, store: Store) -> QueueIntake {
        QueueIntake { queue, store }
    }
}

impl Intake for QueueIntake {
    fn accept(&self, mut message: Accepted) -> BoxFuture<'_, Result<String, Error>> {
        Box::pin(async move {
            // Moved, not copied: Bytes shares the buffers between Maildir and queue.
            let received = Bytes::from(std::mem::take(&mut message.received).into_bytes());
            let content = Bytes::from(std::mem::take(&mut message.content));

            // Local users with a Maildir now; a user without one goes through the queue, whose
            // local transport reports it properly.
            let (local, queued): (Vec<Routed>, Vec<Routed>) = message
                .recipients
                .iter()
                .cloned()
                .partition(|r| match &r.destination {
                    Destination::Local { user } => self.store.has_user(user),
                    _ => false,
                });

            if !local.is_empty() {
                let store = self.store.clone();
                let id = message.id.clone();
                let reverse_path = message.envelope.reverse_path.as_str().to_owned();
                let (received, content) = (received.clone(), content.clone());
                tokio::task::spawn_blocking(move || {
                    deliver_local(&store, &id, &reverse_path, &local, &received, &content)
                })
                .await
                .map_err(|e| Error::Queue(format!("local delivery task: {e}")))??;
            }
            if queued.is_empty() {
                return Ok(message.id);
            }

            let envelope = queue_envelope(&message, &queued);
            let id = self
                .queue
                .enqueue(envelope, MessageBody(vec![received, content]))
                .await
                .map_err(|e| Error::Queue(e.to_string()))?;
            Ok(id.to_string())
        })
    }
}

/// Delivers one copy per local recipient, with Return-Path and Delivered-To on top. The file
/// name comes from the message id and the user, so the same message is never stored twice
/// under two names.
fn deliver_local(
    store: &Store,
    id: &str,
    reverse_path: &str,
    recipients: &[Routed],
    received: &[u8],
    content: &[u8],
) -> Result<(), Error> {
    use std::io::Read;
    for routed in recipients {
        let Destination::Local { user } = &routed.destination else {
            continue;
        };
        let headers = trace::delivery_headers(reverse_path, &routed.recipient);
        let mut reader = headers.as_bytes().chain(received).chain(content);
        let unique = format!("{id}.{user}");
        store
            .deliver(user, None, &mut reader, Some(&unique))
            .map_err(Error::Maildir)?;
    }
    Ok(())
}

/// The queue's envelope for `recipients` of an accepted message, with DSN NOTIFY and RET.
fn queue_envelope(message: &Accepted, recipients: &[Routed]) -> Envelope {
    let recipients = recipients
        .iter()
        .map(|routed| {
            let destination = match &routed.destination {
                Destination::Local { user } => QueueDestination::Local {
                    user: user.clone(),
                    folder: None,
                },
                Destination::Remote { address } => QueueDestination::Remote {
                    address: address.clone(),
                },
                Destination::Fax { number } => QueueDestination::Fax {
                    number: number.clone(),
                },
            };
            let mut recipient = Recipient::new(routed.recipient.clone(), destination);
            // RFC 3461 section 4.1: without NOTIFY the server decides (failure and delay).
            let notify = message
                .envelope
                .recipients
                .iter()
                .find(|r| r.address.eq_ignore_ascii_case(&routed.recipient))
                .and_then(|r| r.notify);
            if let Some(notify) = notify {
                recipient.notify_failure = notify.failure && !notify.never;
                recipient.notify_delay = notify.delay && !notify.never;
            }
            recipient
        })
        .collect();
    let mut envelope = Envelope::new(message.envelope.reverse_path.as_str(), recipients);
    envelope.return_headers_only = message.envelope.dsn_return == Some(DsnReturn::Headers);
    envelope
}

/// Local delivery for the queue: Maildir with Return-Path and Delivered-To on top.
pub struct MaildirTransport {
    store: Store,
}

impl MaildirTransport {
    /// Delivers into `store`.
    pub fn new(store: Store) -> MaildirTransport {
        MaildirTransport { store }
    }

    fn deliver_one(&self, job: &DeliveryJob, recipient: &Recipient) -> Outcome {
        let QueueDestination::Local { user, folder } = &recipient.destination else {
            return Outcome::local(OutcomeKind::Failed, "5.3.5", "not a local destination");
        };
        if !self.store.has_user(user) {
            return Outcome::local(
                OutcomeKind::Failed,
                "5.1.1",
                format!("no mailbox for user {user}"),
            );
        }
        // The name depends only on the queue entry and the recipient: a delivery repeated
        // after a crash finds the first copy and makes no second one.
        let unique = local_unique_name(job.id, job.arrived, recipient);
        let headers = trace::delivery_headers(&job.reverse_path, &recipient.address);
        let mut reader = std::io::Read::chain(headers.as_bytes(), &job.body[..]);
        match self
            .store
            .deliver(user, folder.as_deref(), &mut reader, Some(&unique))
        {
            Ok(_) => Outcome::local(OutcomeKind::Delivered, "2.0.0", "delivered to Maildir"),
            Err(e) => Outcome::local(OutcomeKind::Deferred, "4.3.0", e.to_string()),
        }
    }
}

impl Transport for MaildirTransport {
    fn deliver<'a>(&'a self, job: &'a DeliveryJob) -> DeliveryFuture<'a> {
        Box::pin(async move {
            let n = job.recipients.len();
            let store = self.store.clone();
            let job = job.clone();
            tokio::task::spawn_blocking(move || {
                let transport = MaildirTransport { store };
                job.recipients
                    .iter()
                    .map(|r| transport.deliver_one(&job, r))
                    .collect()
            })
            .await
            .unwrap_or_else(|e| {
                vec![Outcome::local(OutcomeKind::Deferred, "4.3.0", format!("delivery: {e}")); n]
            })
        })
    }

    fn destination_key(&self, _recipient: &Recipient) -> String {
        "local".into()
    }
}

/// The outbound relay from `[mail.relay]`. A smarthost without a host name means direct MX
/// delivery, so a box with no ISP relay configured still sends.
pub fn relay(config: &Mail) -> client::Relay {
    let relay = &config.relay;
    if relay.mode == RelayMode::Mx || relay.host.is_empty() {
        return client::Relay::Mx {
            port: relay.mx_port,
        };
    }
    client::Relay::Smarthost {
        host: relay.host.clone(),
        port: relay.port,
        tls: match relay.tls {
            RelayTls::Required => client::TlsMode::Required,
            RelayTls::Opportunistic => client::TlsMode::Opportunistic,
            RelayTls::None => client::TlsMode::Never,
        },
        cert: if relay.verify_certificate {
            client::CertCheck::Verify {
                extra_ca_file: relay.ca_file.clone(),
            }
        } else {
            client::CertCheck::None
        },
        auth: (!relay.username.is_empty()).then(|| client::Credentials {
            username: relay.username.clone(),
            password: relay.password.clone(),
        }),
    }
}

/// The queue's transports for this configuration.
pub fn transports(config: &Mail, store: Store, fax_spool: std::path::PathBuf) -> Transports {
    let options = client::SendOptions {
        helo_name: config.hostname.clone(),
        timeouts: client::Timeouts::default(),
        resolver: None,
    };
    Transports {
        local: Arc::new(MaildirTransport::new(store)),
        remote: Arc::new(SmtpTransport::new(relay(config), options)),
        fax: Arc::new(FaxSpoolTransport::new(fax_spool)),
    }
}

/// Where a notice to a sender goes: the router's first destination for the address (a local
/// sender gets it in the Maildir), else the address itself, relayed.
pub fn sender_route(router: Router) -> postroom_queue::SenderRoute {
    Arc::new(move |address: &str| match router.resolve(address, true) {
        Ok(destinations) => match destinations.into_iter().next() {
            Some(Destination::Local { user }) => QueueDestination::Local { user, folder: None },
            Some(Destination::Fax { number }) => QueueDestination::Fax { number },
            Some(Destination::Remote { address }) => QueueDestination::Remote { address },
            None => QueueDestination::Remote {
                address: address.to_owned(),
            },
        },
        Err(_) => QueueDestination::Remote {
            address: address.to_owned(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use postroom_queue::QueueId;

    fn job(recipients: Vec<Recipient>) -> DeliveryJob {
        DeliveryJob {
            id: QueueId(42),
            arrived: 1_700_000_000,
            reverse_path: "carl@sender.example".into(),
            recipients,
            body: bytes::Bytes::from_static(b"Received: x\r\nSubject: t\r\n\r\nbody\r\n"),
        }
    }

    fn local(address: &str, user: &str) -> Recipient {
        Recipient::new(
            address,
            QueueDestination::Local {
                user: user.into(),
                folder: None,
            },
        )
    }

    #[tokio::test]
    async fn local_delivery_adds_trace_headers_and_a_retry_makes_no_second_copy() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(redb::Database::create(dir.path().join("mail.redb")).unwrap());
        let store = Store::open(dir.path().join("mail"), db).unwrap();
        store.create_user("bob").unwrap();
        let transport = MaildirTransport::new(store);
        let job = job(vec![
            local("bob@office.example", "bob"),
            local("x@office.example", "ghost"),
        ]);

        for _ in 0..2 {
            let outcomes = transport.deliver(&job).await;
            assert_eq!(outcomes[0].kind, OutcomeKind::Delivered);
            assert_eq!(
                (outcomes[1].kind, outcomes[1].status.as_str()),
                (OutcomeKind::Failed, "5.1.1")
            );
        }
        let files: Vec<_> = std::fs::read_dir(dir.path().join("mail/bob/new"))
            .unwrap()
            .flatten()
            .collect();
        assert_eq!(files.len(), 1, "the repeated delivery made a second copy");
        let text = std::fs::read_to_string(files[0].path()).unwrap();
        assert!(text.starts_with(
            "Return-Path: <carl@sender.example>\r\nDelivered-To: bob@office.example\r\nReceived: x\r\n"
        ));
    }

    #[test]
    fn notify_never_turns_off_both_notices_and_ret_hdrs_is_kept() {
        use postroom_smtp::{
            BodyType, Envelope as SmtpEnvelope, Notify, Recipient as Rcpt, ReversePath,
        };
        let message = Accepted {
            id: "A".into(),
            envelope: SmtpEnvelope {
                helo: "c".into(),
                esmtp: true,
                tls: false,
                authenticated: None,
                reverse_path: ReversePath::Null,
                declared_size: None,
                body_type: BodyType::Unspecified,
                smtputf8: false,
                dsn_return: Some(DsnReturn::Headers),
                dsn_envelope_id: None,
                recipients: vec![Rcpt {
                    address: "bob@office.example".into(),
                    notify: Some(Notify {
                        never: true,
                        ..Default::default()
                    }),
                    original_recipient: None,
                }],
            },
            recipients: vec![crate::router::Routed {
                destination: Destination::Local { user: "bob".into() },
                recipient: "bob@office.example".into(),
            }],
            received: String::new(),
            content: Vec::new(),
        };
        let envelope = queue_envelope(&message, &message.recipients);
        assert!(envelope.is_null_sender());
        assert!(envelope.return_headers_only);
        assert!(!envelope.recipients[0].notify_failure && !envelope.recipients[0].notify_delay);
    }
}

#[cfg(test)]
mod intake_tests {
    use super::*;
    use crate::router::Routed;
    use postroom_smtp::{BodyType, Envelope as SmtpEnvelope, ReversePath};

    #[tokio::test]
    async fn local_only_message_is_in_the_maildir_when_accept_returns_and_never_queued() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(redb::Database::create(dir.path().join("mail.redb")).unwrap());
        let store = Store::open(dir.path().join("mail"), Arc::clone(&db)).unwrap();
        store.create_user("bob").unwrap();
        let settings = postroom_queue::QueueSettings::from_config(
            dir.path().to_owned(),
            "mx.office.example".into(),
            &Default::default(),
        );
        let queue = Queue::open(
            db,
            settings,
            transports(&Mail::default(), store.clone(), dir.path().join("fax")),
            Arc::new(|a: &str| QueueDestination::Remote { address: a.into() }),
        )
        .unwrap();
        let intake = QueueIntake::new(queue.clone(), store);
        let message = Accepted {
            id: "M1".into(),
            envelope: SmtpEnvelope {
                helo: "c".into(),
                esmtp: true,
                tls: false,
                authenticated: None,
                reverse_path: ReversePath::Mailbox("carl@sender.example".into()),
                declared_size: None,
                body_type: BodyType::Unspecified,
                smtputf8: false,
                dsn_return: None,
                dsn_envelope_id: None,
                recipients: Vec::new(),
            },
            recipients: vec![Routed {
                destination: Destination::Local { user: "bob".into() },
                recipient: "bob@office.example".into(),
            }],
            received: "Received: x\r\n".into(),
            content: b"Subject: t\r\n\r\nhi\r\n".to_vec(),
        };
        assert_eq!(intake.accept(message).await.unwrap(), "M1");
        let files: Vec<_> = std::fs::read_dir(dir.path().join("mail/bob/new"))
            .unwrap()
            .flatten()
            .collect();
        assert_eq!(files.len(), 1);
        let text = std::fs::read_to_string(files[0].path()).unwrap();
        assert_eq!(
            text,
            "Return-Path: <carl@sender.example>\r\nDelivered-To: bob@office.example\r\n\
             Received: x\r\nSubject: t\r\n\r\nhi\r\n"
        );
        assert!(queue.list().unwrap().is_empty());
    }
}
