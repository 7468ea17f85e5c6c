//! Message bodies on disk: one file per queue entry under `<data_dir>/spool/queue/`.
//!
//! A body is written and fsynced, and its directory fsynced, before its queue record is
//! committed; the record is removed before the file. So every record has its file; a file
//! without a record (a crash in between) is removed when the queue opens.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::Error;
use crate::envelope::QueueId;

/// The spool directory of the queue.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// Opens (creating) `<data_dir>/spool/queue`.
    pub fn open(data_dir: &Path) -> Result<Spool, Error> {
        let dir = data_dir.join("spool").join("queue");
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(Spool { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of an entry.
    pub fn path(&self, id: QueueId) -> PathBuf {
        self.dir.join(id.to_string())
    }

    /// Writes a body and fsyncs the file (not yet the directory: see [`Spool::sync_dir`], which
    /// the committer does once for a whole batch).
    pub fn write(&self, id: QueueId, parts: &[Bytes]) -> Result<u64, Error> {
        let path = self.path(id);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let mut size = 0u64;
        for part in parts {
            file.write_all(part).map_err(|e| Error::io(&path, e))?;
            size += part.len() as u64;
        }
        file.sync_all().map_err(|e| Error::io(&path, e))?;
        Ok(size)
    }

    /// Makes the creation or removal of files durable.
    pub fn sync_dir(&self) -> Result<(), Error> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(&self.dir, e))
    }

    /// Reads a body whole.
    pub fn read(&self, id: QueueId) -> Result<Bytes, Error> {
        let path = self.path(id);
        fs::read(&path)
            .map(Bytes::from)
            .map_err(|e| Error::io(&path, e))
    }

    /// Reads at most `limit` bytes of the start of a body (for its headers).
    pub fn read_head(&self, id: QueueId, limit: usize) -> Result<Vec<u8>, Error> {
        use std::io::Read;
        let path = self.path(id);
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let mut head = Vec::with_capacity(limit.min(64 * 1024));
        file.take(limit as u64)
            .read_to_end(&mut head)
            .map_err(|e| Error::io(&path, e))?;
        Ok(head)
    }

    /// Removes a body; a missing file is fine (removed before a crash).
    pub fn remove(&self, id: QueueId) -> Result<(), Error> {
        let path = self.path(id);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    /// Ids of all files in the spool (names that are not queue ids are left alone).
    pub fn list(&self) -> Result<Vec<QueueId>, Error> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))? {
            let entry = entry.map_err(|e| Error::io(&self.dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.len() == 16
                && let Ok(id) = name.parse()
            {
                ids.push(id);
            }
        }
        Ok(ids)
    }
}
