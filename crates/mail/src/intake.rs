//! Where accepted messages go, and the durability contract.
//!
//! The SMTP server calls [`Intake::accept`] with every finished message, its recipients already
//! routed, and sends 250 only when it returns `Ok`: by then the message must be on disk so that
//! a crash or a power cut cannot lose it (fsync of the file and its directory; for the queue
//! also a redb commit).
//!
//! The intake of the running component is [`crate::delivery::QueueIntake`]; tests may put
//! their own behind the trait.

use std::fs;
use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::pin::Pin;

use postroom_smtp::Envelope;

use crate::Error;
use crate::router::Routed;

/// A message accepted by SMTP, ready to be stored.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// Our id of the message, in its Received header and the log.
    pub id: String,
    /// The envelope as received (sender, DSN parameters, authentication).
    pub envelope: Envelope,
    /// One entry per distinct destination.
    pub recipients: Vec<Routed>,
    /// Our Received header, with its CRLF; the stored message is this, then `content`.
    pub received: String,
    /// The message as received (CRLF line endings, dot-stuffing undone). Kept apart from the
    /// header so that no copy of the whole message is made to join them.
    pub content: Vec<u8>,
}

/// A boxed future, so intakes can be used as `Arc<dyn Intake>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Durable storage for accepted messages.
pub trait Intake: Send + Sync + 'static {
    /// Stores the message durably; returns only once it is safe on disk, with the id to
    /// name in the 250 reply.
    fn accept(&self, message: Accepted) -> BoxFuture<'_, Result<String, Error>>;
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
