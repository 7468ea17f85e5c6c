//! Where accepted messages go, and the durability contract.
//!
//! The SMTP server calls [`Intake::accept`] with every finished message, its recipients already
//! routed, and sends 250 only when it returns `Ok`: by then the message must be on disk so that
//! a crash or a power cut cannot lose it (fsync of the file and its directory; for the queue
//! also a redb commit).
//!
//! [`SpoolIntake`] is the intake used while the queue (crates/queue) has no enqueue API yet: it
//! delivers local copies straight into Maildir (idempotent file names), writes fax copies into
//! the fax spool, and keeps remote copies in `spool/outbound-hold/` for the queue to adopt.

use std::fs;
use std::future::Future;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;

use postroom_maildir::Store;
use postroom_smtp::Envelope;
use serde::Serialize;

use crate::Error;
use crate::router::{Destination, Routed};
use crate::trace;

/// A message accepted by SMTP, ready to be stored.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The message id (also in the Received header and the 250 reply).
    pub id: String,
    /// The envelope as received (sender, DSN parameters, authentication).
    pub envelope: Envelope,
    /// One entry per distinct destination.
    pub recipients: Vec<Routed>,
    /// The message with our Received header on top, CRLF line endings.
    pub content: Vec<u8>,
}

/// A boxed future, so intakes can be used as `Arc<dyn Intake>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Durable storage for accepted messages.
pub trait Intake: Send + Sync + 'static {
    /// Stores the message durably; returns only once it is safe on disk.
    fn accept(&self, message: Accepted) -> BoxFuture<'_, Result<(), Error>>;
}

/// The interim intake: Maildir for local copies, files for fax and held remote copies.
#[derive(Debug, Clone)]
pub struct SpoolIntake {
    store: Store,
    fax_spool: PathBuf,
    outbound_hold: PathBuf,
}

/// What is written beside a spooled message, for the component that picks it up.
#[derive(Debug, Serialize)]
struct SpoolEnvelope<'a> {
    id: &'a str,
    reverse_path: &'a str,
    recipient: &'a str,
    destination: &'a Destination,
}

impl SpoolIntake {
    /// An intake writing into `store` and under `spool` (`fax/`, `outbound-hold/`).
    pub fn new(store: Store, spool: &Path) -> Result<SpoolIntake, Error> {
        let fax_spool = spool.join("fax");
        let outbound_hold = spool.join("outbound-hold");
        for dir in [&fax_spool, &outbound_hold] {
            fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        Ok(SpoolIntake {
            store,
            fax_spool,
            outbound_hold,
        })
    }

    fn store_blocking(&self, message: &Accepted) -> Result<(), Error> {
        let reverse_path = message.envelope.reverse_path.as_str();
        for (index, routed) in message.recipients.iter().enumerate() {
            match &routed.destination {
                Destination::Local { user } => {
                    if !self.store.has_user(user) {
                        self.store.create_user(user).map_err(Error::Maildir)?;
                    }
                    let headers = trace::delivery_headers(reverse_path, &routed.recipient);
                    let mut reader = headers.as_bytes().chain(message.content.as_slice());
                    // A deterministic name makes a repeated delivery (after a crash) a no-op.
                    let unique = format!("{}.{index}", message.id);
                    self.store
                        .deliver(user, None, &mut reader, Some(&unique))
                        .map_err(Error::Maildir)?;
                }
                Destination::Fax { .. } => {
                    self.spool_copy(&self.fax_spool, message, routed, index)?;
                }
                Destination::Remote { .. } => {
                    self.spool_copy(&self.outbound_hold, message, routed, index)?;
                }
            }
        }
        Ok(())
    }

    /// Writes `<id>.<n>.eml`, then `<id>.<n>.json`; the envelope file appears last, so a
    /// reader that sees it also finds the whole message.
    fn spool_copy(
        &self,
        dir: &Path,
        message: &Accepted,
        routed: &Routed,
        index: usize,
    ) -> Result<(), Error> {
        let base = format!("{}.{index}", message.id);
        write_durably(dir, &format!("{base}.eml"), &message.content)?;
        let envelope = SpoolEnvelope {
            id: &message.id,
            reverse_path: message.envelope.reverse_path.as_str(),
            recipient: &routed.recipient,
            destination: &routed.destination,
        };
        let json = serde_json::to_vec_pretty(&envelope).map_err(|e| Error::Spool(e.to_string()))?;
        write_durably(dir, &format!("{base}.json"), &json)
    }
}

impl Intake for SpoolIntake {
    fn accept(&self, message: Accepted) -> BoxFuture<'_, Result<(), Error>> {
        let this = self.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || this.store_blocking(&message))
                .await
                .map_err(|e| Error::Spool(format!("storage task failed: {e}")))?
        })
    }
}

/// Writes a file so that it survives a power cut: temp file, fsync, rename, fsync directory.
pub fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), Error> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let mut file = fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    file.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    drop(file);
    fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use postroom_smtp::{BodyType, ReversePath};
    use std::sync::Arc;

    fn accepted(recipients: Vec<Routed>) -> Accepted {
        Accepted {
            id: "ABC".into(),
            envelope: Envelope {
                helo: "c".into(),
                esmtp: true,
                tls: false,
                authenticated: None,
                reverse_path: ReversePath::Mailbox("s@x.example".into()),
                declared_size: None,
                body_type: BodyType::Unspecified,
                smtputf8: false,
                dsn_return: None,
                dsn_envelope_id: None,
                recipients: Vec::new(),
            },
            recipients,
            content: b"Subject: t\r\n\r\nbody\r\n".to_vec(),
        }
    }

    #[test]
    fn local_delivery_is_idempotent_and_has_trace_headers() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(redb::Database::create(dir.path().join("mail.redb")).unwrap());
        let store = Store::open(dir.path().join("mail"), db).unwrap();
        let intake = SpoolIntake::new(store.clone(), &dir.path().join("spool")).unwrap();
        let msg = accepted(vec![Routed {
            destination: Destination::Local { user: "bob".into() },
            recipient: "bob@office.example".into(),
        }]);
        intake.store_blocking(&msg).unwrap();
        intake.store_blocking(&msg).unwrap();
        let files: Vec<_> = fs::read_dir(dir.path().join("mail/bob/new"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(files.len(), 1, "a repeated delivery made a second copy");
        let text = fs::read_to_string(files[0].path()).unwrap();
        assert!(text.starts_with(
            "Return-Path: <s@x.example>\r\nDelivered-To: bob@office.example\r\nSubject: t\r\n"
        ));
    }

    #[test]
    fn fax_copy_lands_in_fax_spool_with_envelope() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(redb::Database::create(dir.path().join("mail.redb")).unwrap());
        let store = Store::open(dir.path().join("mail"), db).unwrap();
        let intake = SpoolIntake::new(store, &dir.path().join("spool")).unwrap();
        let msg = accepted(vec![Routed {
            destination: Destination::Fax {
                number: "5551234".into(),
            },
            recipient: "5551234@fax.office.example".into(),
        }]);
        intake.store_blocking(&msg).unwrap();
        let json = fs::read_to_string(dir.path().join("spool/fax/ABC.0.json")).unwrap();
        assert!(json.contains("5551234"));
        let eml = fs::read(dir.path().join("spool/fax/ABC.0.eml")).unwrap();
        assert_eq!(eml, msg.content);
    }
}
