//! UIDs of messages already delivered here, in redb, so a message left at the ISP (not yet
//! deleted, or a server that keeps mail) is never delivered twice.

use std::path::Path;

use redb::{Database, ReadableDatabase, TableDefinition};

use crate::Error;

/// `account \0 uidl` -> seconds since the epoch when it was delivered.
const SEEN: TableDefinition<&str, u64> = TableDefinition::new("pop3_seen");

/// The store of seen UIDs.
#[derive(Debug)]
pub struct Seen {
    db: Database,
}

fn key(account: &str, uid: &str) -> String {
    format!("{account}\0{uid}")
}

impl Seen {
    /// Opens (or creates) the store.
    pub fn open(path: &Path) -> Result<Seen, Error> {
        let db =
            Database::create(path).map_err(|e| Error::Store(format!("{}: {e}", path.display())))?;
        let tx = db.begin_write().map_err(store)?;
        tx.open_table(SEEN).map_err(store)?;
        tx.commit().map_err(store)?;
        Ok(Seen { db })
    }

    /// Whether this message was delivered already.
    pub fn contains(&self, account: &str, uid: &str) -> Result<bool, Error> {
        let tx = self.db.begin_read().map_err(store)?;
        let table = tx.open_table(SEEN).map_err(store)?;
        Ok(table
            .get(key(account, uid).as_str())
            .map_err(store)?
            .is_some())
    }

    /// Records a delivered message; durable when this returns (one redb commit).
    pub fn insert(&self, account: &str, uid: &str) -> Result<(), Error> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let tx = self.db.begin_write().map_err(store)?;
        {
            let mut table = tx.open_table(SEEN).map_err(store)?;
            table
                .insert(key(account, uid).as_str(), now)
                .map_err(store)?;
        }
        tx.commit().map_err(store)
    }
}

fn store(e: impl std::fmt::Display) -> Error {
    Error::Store(e.to_string())
}
