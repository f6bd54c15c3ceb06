//! The consensus log of a validator: opaque, numbered entries plus a few durable values (the vote,
//! the committed and purged positions), in `<data dir>/raft.sqlite`. The store knows nothing about
//! the consensus engine: the coordinator encodes its entries and values, and this file keeps them
//! durable (WAL, `synchronous = FULL`: every write is fsync'd before it returns).

use crate::StoreError;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};

/// Stored-format version of `raft.sqlite`; a file written by another version is refused.
pub const RAFT_DB_VERSION: u32 = 1;

/// A validator's consensus log.
pub struct RaftDb {
    conn: Connection,
    path: PathBuf,
}

impl RaftDb {
    /// Opens (creating if needed) `<dir>/raft.sqlite`.
    pub fn open(dir: &Path) -> Result<RaftDb, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let path = dir.join("raft.sqlite");
        let err = |source| StoreError::Sqlite {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(&path).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS entries (
                 idx   INTEGER PRIMARY KEY,
                 entry BLOB NOT NULL
             );
             CREATE TABLE IF NOT EXISTS meta (
                 key   TEXT PRIMARY KEY,
                 value BLOB NOT NULL
             );",
        )
        .map_err(err)?;
        let db = RaftDb { conn, path };
        match db.get("version")? {
            None => db.set("version", &RAFT_DB_VERSION.to_le_bytes())?,
            Some(v) if v == RAFT_DB_VERSION.to_le_bytes() => {}
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_slice())
                    .map_or_else(|_| format!("{v:?}"), |b| u32::from_le_bytes(b).to_string());
                return Err(StoreError::Version {
                    what: db.path.display().to_string(),
                    found,
                    supported: RAFT_DB_VERSION,
                });
            }
        }
        Ok(db)
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Stores `entries` (index, bytes), replacing any stored at the same indexes, in one durable
    /// transaction.
    pub fn append(&mut self, entries: &[(u64, Vec<u8>)]) -> Result<(), StoreError> {
        let path = self.path.display().to_string();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut stmt = tx
                .prepare_cached("INSERT OR REPLACE INTO entries (idx, entry) VALUES (?1, ?2)")
                .map_err(err)?;
            for (idx, bytes) in entries {
                stmt.execute(params![to_sql(*idx), bytes]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// Removes every entry with index `>= from` (a conflicting suffix).
    pub fn truncate_from(&mut self, from: u64) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM entries WHERE idx >= ?1", [to_sql(from)])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Removes every entry with index `<= upto` (compacted into a snapshot).
    pub fn purge_upto(&mut self, upto: u64) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM entries WHERE idx <= ?1", [to_sql(upto)])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Entries with `start <= index < end`, in order.
    pub fn range(&self, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT idx, entry FROM entries WHERE idx >= ?1 AND idx < ?2 ORDER BY idx",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([to_sql(start), to_sql(end)], |r| {
                Ok((from_sql(r.get(0)?), r.get::<_, Vec<u8>>(1)?))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The entry with the greatest index.
    pub fn last(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        self.conn
            .query_row(
                "SELECT idx, entry FROM entries ORDER BY idx DESC LIMIT 1",
                [],
                |r| Ok((from_sql(r.get(0)?), r.get::<_, Vec<u8>>(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// A stored value.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Stores a value durably.
    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.conn
            .execute(crate::log::SET_META, params![key, value])
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

fn to_sql(idx: u64) -> i64 {
    i64::try_from(idx).unwrap_or(i64::MAX)
}

fn from_sql(idx: i64) -> u64 {
    u64::try_from(idx).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_values_survive_reopen_truncate_and_purge() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = RaftDb::open(dir.path()).unwrap();
        assert_eq!(db.last().unwrap(), None);
        db.append(&[(1, vec![1]), (2, vec![2]), (3, vec![3])])
            .unwrap();
        db.set("vote", b"v1").unwrap();
        drop(db);
        let mut db = RaftDb::open(dir.path()).unwrap();
        assert_eq!(db.last().unwrap(), Some((3, vec![3])));
        assert_eq!(db.get("vote").unwrap(), Some(b"v1".to_vec()));
        db.truncate_from(3).unwrap();
        db.append(&[(3, vec![30]), (4, vec![40])]).unwrap();
        db.purge_upto(1).unwrap();
        assert_eq!(
            db.range(0, 10).unwrap(),
            [(2, vec![2]), (3, vec![30]), (4, vec![40])]
        );
        assert_eq!(db.range(3, 4).unwrap(), [(3, vec![30])]);
    }

    #[test]
    fn a_file_of_another_version_is_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let db = RaftDb::open(dir.path()).unwrap();
        db.set("version", &99u32.to_le_bytes()).unwrap();
        drop(db);
        let err = RaftDb::open(dir.path()).err().expect("opened");
        let msg = err.to_string();
        assert!(msg.contains("raft.sqlite") && msg.contains('1'), "{msg}");
    }
}
