//! The call log in `link.redb`: one row per dial attempt, keyed by a growing number.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::Error;
use crate::policy::CallRecord;

/// Call number -> the record as JSON (readable by any tool, and a new field does not need a
/// migration).
const CALLS: TableDefinition<u64, &[u8]> = TableDefinition::new("calls");

/// A call with its number.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoggedCall {
    /// The call's number in the log.
    pub id: u64,
    /// The call.
    #[serde(flatten)]
    pub record: CallRecord,
}

/// The call log.
#[derive(Debug)]
pub struct CallLog {
    db: Database,
}

impl CallLog {
    /// Opens (or creates) the log.
    pub fn open(path: &Path) -> Result<CallLog, Error> {
        let db =
            Database::create(path).map_err(|e| Error::Store(format!("{}: {e}", path.display())))?;
        let log = CallLog { db };
        // Create the table, so readers never meet a missing one.
        let tx = log.db.begin_write().map_err(store_err)?;
        tx.open_table(CALLS).map_err(store_err)?;
        tx.commit().map_err(store_err)?;
        Ok(log)
    }

    /// Appends a call; one durable commit.
    pub fn append(&self, record: &CallRecord) -> Result<u64, Error> {
        let bytes = serde_json::to_vec(record).map_err(|e| Error::Store(e.to_string()))?;
        let tx = self.db.begin_write().map_err(store_err)?;
        let id = {
            let mut table = tx.open_table(CALLS).map_err(store_err)?;
            let last = table.last().map_err(store_err)?.map(|(k, _)| k.value());
            let id = last.map_or(1, |k| k + 1);
            table.insert(id, bytes.as_slice()).map_err(store_err)?;
            id
        };
        tx.commit().map_err(store_err)?;
        Ok(id)
    }

    /// The newest `limit` calls, oldest first.
    pub fn recent(&self, limit: usize) -> Result<Vec<LoggedCall>, Error> {
        let tx = self.db.begin_read().map_err(store_err)?;
        let table = tx.open_table(CALLS).map_err(store_err)?;
        let mut calls = Vec::new();
        for row in table.iter().map_err(store_err)?.rev().take(limit) {
            let (k, v) = row.map_err(store_err)?;
            let id = k.value();
            match serde_json::from_slice(v.value()) {
                Ok(record) => calls.push(LoggedCall { id, record }),
                Err(e) => tracing::warn!(call = id, error = %e, "unreadable call log row skipped"),
            }
        }
        calls.reverse();
        Ok(calls)
    }
}

fn store_err(e: impl std::fmt::Display) -> Error {
    Error::Store(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::CallReason;

    #[test]
    fn calls_survive_reopening_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("link.redb");
        let t = "2026-12-03T09:00:00Z".parse().unwrap();
        let record = |result: &str| CallRecord {
            start: t,
            connected: None,
            end: t,
            duration_secs: 0,
            result: result.into(),
            answer: result.into(),
            hangup: None,
            cost: 0,
            attempt: 1,
            reason: CallReason::Hold,
            gave_up: false,
        };
        {
            let log = CallLog::open(&path).unwrap();
            assert_eq!(log.append(&record("BUSY")).unwrap(), 1);
            assert_eq!(log.append(&record("NO ANSWER")).unwrap(), 2);
        }
        let log = CallLog::open(&path).unwrap();
        let calls = log.recent(10).unwrap();
        assert_eq!(calls.iter().map(|c| c.id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(calls[1].record.result, "NO ANSWER");
        assert_eq!(log.recent(1).unwrap()[0].id, 2);
    }
}
