//! The command log: an append-only sequence of engine [`Entry`]s, numbered from 1.

use crate::StoreError;
use engine::{Entry, State};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};

/// An append-only, durable sequence of entries plus occasional snapshots of the state they produce.
pub trait CommandLog: Send {
    /// Appends `entries` atomically and durably; returns the new length.
    fn append(&mut self, entries: &[Entry]) -> Result<u64, StoreError>;
    /// Number of entries.
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Entries with sequence number `> after`, in order.
    fn read_after(&self, after: u64) -> Result<Vec<Entry>, StoreError>;
    /// Records the state after entry `seq`.
    fn save_snapshot(&mut self, seq: u64, state: &State) -> Result<(), StoreError>;
    /// The newest snapshot, as `(seq, state)`.
    fn latest_snapshot(&self) -> Result<Option<(u64, State)>, StoreError>;
}

/// Rebuilds the engine from the newest snapshot plus the entries after it.
pub fn recover(log: &dyn CommandLog, fresh: State) -> Result<State, StoreError> {
    let (from, mut state) = match log.latest_snapshot()? {
        Some((seq, state)) => (seq, state),
        None => (0, fresh),
    };
    for (seq, entry) in (from + 1..).zip(log.read_after(from)?) {
        state
            .apply(&entry)
            .map_err(|rejection| StoreError::Replay { seq, rejection })?;
    }
    Ok(state)
}

/// The embedded default: one SQLite file in WAL mode with `synchronous=FULL`.
pub struct SqliteLog {
    conn: Connection,
    path: PathBuf,
    len: u64,
}

impl SqliteLog {
    /// Opens (creating if needed) `<dir>/gridmint.sqlite`.
    pub fn open(dir: &Path) -> Result<SqliteLog, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let path = dir.join("gridmint.sqlite");
        let err = |source| StoreError::Sqlite {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(&path).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS log (
                 seq   INTEGER PRIMARY KEY,
                 entry BLOB NOT NULL
             );
             CREATE TABLE IF NOT EXISTS snapshots (
                 seq   INTEGER PRIMARY KEY,
                 state BLOB NOT NULL
             );",
        )
        .map_err(err)?;
        let len: i64 = conn
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM log", [], |r| r.get(0))
            .map_err(err)?;
        let len = from_sql(len);
        Ok(SqliteLog { conn, path, len })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.display().to_string(),
            source,
        }
    }
}

/// SQLite integers are signed; sequence numbers never come near `i64::MAX`.
fn to_sql(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn from_sql(seq: i64) -> u64 {
    u64::try_from(seq).unwrap_or(0)
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("engine types always encode")
}

impl CommandLog for SqliteLog {
    fn append(&mut self, entries: &[Entry]) -> Result<u64, StoreError> {
        let tx = self.conn.transaction().map_err(|e| StoreError::Sqlite {
            path: self.path.display().to_string(),
            source: e,
        })?;
        let mut seq = self.len;
        {
            let mut stmt = tx
                .prepare_cached("INSERT INTO log (seq, entry) VALUES (?1, ?2)")
                .map_err(|e| StoreError::Sqlite {
                    path: self.path.display().to_string(),
                    source: e,
                })?;
            for entry in entries {
                seq += 1;
                stmt.execute(params![to_sql(seq), encode(entry)])
                    .map_err(|e| StoreError::Sqlite {
                        path: self.path.display().to_string(),
                        source: e,
                    })?;
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        self.len = seq;
        Ok(seq)
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn read_after(&self, after: u64) -> Result<Vec<Entry>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, entry FROM log WHERE seq > ?1 ORDER BY seq")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![to_sql(after)], |r| {
                Ok((from_sql(r.get(0)?), r.get::<_, Vec<u8>>(1)?))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for (expect, row) in (after + 1..).zip(rows) {
            let (seq, bytes) = row.map_err(|e| self.err(e))?;
            if seq != expect {
                return Err(StoreError::Corrupt {
                    seq: expect,
                    msg: format!("missing; next entry is {seq}"),
                });
            }
            let entry = postcard::from_bytes(&bytes).map_err(|e| StoreError::Corrupt {
                seq,
                msg: e.to_string(),
            })?;
            out.push(entry);
        }
        Ok(out)
    }

    fn save_snapshot(&mut self, seq: u64, state: &State) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO snapshots (seq, state) VALUES (?1, ?2)",
                params![to_sql(seq), encode(state)],
            )
            .map_err(|e| self.err(e))?;
        // Older snapshots are never read again.
        self.conn
            .execute("DELETE FROM snapshots WHERE seq < ?1", params![to_sql(seq)])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn latest_snapshot(&self) -> Result<Option<(u64, State)>, StoreError> {
        let row: Option<(u64, Vec<u8>)> = self
            .conn
            .query_row(
                "SELECT seq, state FROM snapshots ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((from_sql(r.get(0)?), r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        row.map(|(seq, bytes)| {
            postcard::from_bytes(&bytes)
                .map(|state| (seq, state))
                .map_err(|e| StoreError::Corrupt {
                    seq,
                    msg: format!("snapshot: {e}"),
                })
        })
        .transpose()
    }
}

/// In-memory log, for unit tests only.
#[derive(Default)]
pub struct MemoryLog {
    entries: Vec<Entry>,
    snapshot: Option<(u64, State)>,
}

impl CommandLog for MemoryLog {
    fn append(&mut self, entries: &[Entry]) -> Result<u64, StoreError> {
        self.entries.extend_from_slice(entries);
        Ok(self.len())
    }

    fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    fn read_after(&self, after: u64) -> Result<Vec<Entry>, StoreError> {
        let start = usize::try_from(after).unwrap_or(usize::MAX);
        Ok(self.entries.get(start..).unwrap_or_default().to_vec())
    }

    fn save_snapshot(&mut self, seq: u64, state: &State) -> Result<(), StoreError> {
        self.snapshot = Some((seq, state.clone()));
        Ok(())
    }

    fn latest_snapshot(&self) -> Result<Option<(u64, State)>, StoreError> {
        Ok(self.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::{AccountId, Action, EngineConfig, Input, ProviderSpec, Sig, Signed};

    fn register(n: u8, nonce: u64) -> Entry {
        Entry {
            time: 1000 + nonce,
            input: Input::Signed(Signed {
                signer: AccountId([n; 32]),
                nonce,
                body: Action::RegisterProvider(ProviderSpec {
                    slots: 2,
                    cores: 2,
                    memory_bytes: 1 << 30,
                    gpu: None,
                    benchmark_score: 10,
                    region: "local".into(),
                    price_per_fuel: 1,
                }),
                signature: Sig([0; 64]),
            }),
        }
    }

    fn replay_matches(log: &mut dyn CommandLog) {
        let mut live = State::new(EngineConfig::default());
        for i in 1..=5u8 {
            let e = register(i, 1);
            live.apply(&e).unwrap();
            log.append(&[e]).unwrap();
            if i == 3 {
                log.save_snapshot(log.len(), &live).unwrap();
            }
        }
        let e = register(1, 2);
        live.apply(&e).unwrap();
        log.append(&[e]).unwrap();
        assert_eq!(log.len(), 6);
        assert_eq!(log.read_after(4).unwrap().len(), 2);
        let rebuilt = recover(log, State::new(EngineConfig::default())).unwrap();
        assert_eq!(rebuilt.hash(), live.hash());
        assert_eq!(rebuilt.applied, 6);
    }

    #[test]
    fn memory_log_replays_to_same_state() {
        replay_matches(&mut MemoryLog::default());
    }

    #[test]
    fn sqlite_log_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = SqliteLog::open(dir.path()).unwrap();
            replay_matches(&mut log);
        }
        let log = SqliteLog::open(dir.path()).unwrap();
        assert_eq!(log.len(), 6);
        let state = recover(&log, State::new(EngineConfig::default())).unwrap();
        assert_eq!(state.providers.len(), 5);
        assert_eq!(state.nonce(&AccountId([1; 32])), 2);
    }

    #[test]
    fn corrupt_entry_is_reported_with_its_seq() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SqliteLog::open(dir.path()).unwrap();
        log.append(&[register(1, 1), register(2, 1)]).unwrap();
        log.conn
            .execute("UPDATE log SET entry = x'ff' WHERE seq = 2", [])
            .unwrap();
        match log.read_after(0) {
            Err(StoreError::Corrupt { seq: 2, .. }) => {}
            other => panic!("expected corrupt entry 2, got {other:?}"),
        }
    }

    #[test]
    fn a_rejected_entry_in_the_log_fails_recovery() {
        let mut log = MemoryLog::default();
        // The same nonce twice: the second is a replay the engine refuses.
        log.append(&[register(1, 1), register(1, 1)]).unwrap();
        match recover(&log, State::new(EngineConfig::default())) {
            Err(StoreError::Replay { seq: 2, .. }) => {}
            other => panic!(
                "expected replay failure at 2, got {:?}",
                other.map(|s| s.hash())
            ),
        }
    }
}
