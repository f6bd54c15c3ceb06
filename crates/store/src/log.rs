//! The command log: an append-only sequence of engine [`Entry`]s, numbered from 1, and the signed
//! [`Block`]s that batch it into a hash chain (see `engine::chain`), kept in the same database.

use crate::StoreError;
use crate::history::{self, EntryHistory, HistoryBarrier};
use engine::{AccountId, Block, Entry, Event, Genesis, SetChange, Sig, State, Time, ValidatorSet};
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
    /// The newest snapshot of the state after an entry `<= seq`, if one is kept.
    fn snapshot_at_or_before(&self, seq: u64) -> Result<Option<(u64, State)>, StoreError> {
        Ok(self.latest_snapshot()?.filter(|(at, _)| *at <= seq))
    }
    /// The stored bytes of up to `limit` entries with sequence number `> after`, in order and
    /// undecoded: what the chain's Merkle roots are computed over.
    fn raw_entries(&self, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
    /// Appends `block` durably. Its height must be the last block's plus one (1 for the first).
    fn append_block(&mut self, block: &Block) -> Result<(), StoreError>;
    /// Up to `limit` blocks with height `> after`, in order.
    fn blocks_after(&self, after: u64, limit: usize) -> Result<Vec<Block>, StoreError>;
    /// The block with the greatest height.
    fn last_block(&self) -> Result<Option<Block>, StoreError>;
    /// Appends one entry like [`CommandLog::append`], and indexes `history` (the accounts each of
    /// its events concerns) for [`CommandLog::history`]: in the same transaction, or (SQLite)
    /// after it, see [`CommandLog::history_through`].
    fn append_with_history(
        &mut self,
        entry: &Entry,
        history: &[(AccountId, Event)],
    ) -> Result<u64, StoreError>;
    /// Group commit: appends `entries` in order, each with its history rows (as
    /// [`CommandLog::append_with_history`] does for one), the entries in one durable transaction,
    /// so that one fsync covers them all. Returns the new length; on error nothing was appended.
    fn append_batch_with_history(
        &mut self,
        entries: Vec<(Entry, Vec<(AccountId, Event)>)>,
    ) -> Result<u64, StoreError>;
    /// Up to `limit` history rows of `account` from entries with seq `< before`, newest first,
    /// once the rows of every entry appended before the call are written.
    fn history(
        &self,
        account: &AccountId,
        before: u64,
        limit: usize,
    ) -> Result<Vec<HistoryRow>, StoreError>;
    /// The entry the history rows are complete through. Below [`CommandLog::len`] only for a log
    /// that writes them after the entries' transaction (`SqliteLog`) and stopped before it
    /// wrote them: [`recover_with_history`] makes them again.
    fn history_through(&self) -> u64 {
        self.len()
    }
    /// Queues the history rows of entries already logged, in order, after those of every entry
    /// before them (for [`recover_with_history`]; a log that writes the rows with their entries
    /// never needs it).
    fn add_history(&mut self, entries: Vec<EntryHistory>) -> Result<(), StoreError> {
        let _ = entries;
        Ok(())
    }
    /// A barrier that opens once the history rows of every entry appended so far are written:
    /// taken under whatever lock guards the log, waited on outside it.
    fn history_barrier(&self) -> HistoryBarrier {
        HistoryBarrier::none()
    }
    /// The genesis the log starts from, once set.
    fn genesis(&self) -> Result<Option<Genesis>, StoreError>;
    /// Records the genesis of a new log. Refused once set (a log has one genesis).
    fn set_genesis(&mut self, genesis: &Genesis) -> Result<(), StoreError>;
    /// [`CommandLog::append_batch_with_history`] that also sets `meta[key] = value` in the same
    /// transaction (a replicated log records which consensus entry the log is applied up to).
    fn append_batch_marked(
        &mut self,
        entries: Vec<(Entry, Vec<(AccountId, Event)>)>,
        key: &str,
        value: &[u8],
    ) -> Result<u64, StoreError>;
    /// The value of `meta[key]`, if set.
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Sets `meta[key] = value` durably.
    fn set_meta(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Stores validators' signatures of blocks, `(height, signer, signature)`: a block's quorum
    /// certificate grows as they arrive. A second signature by one signer at one height is
    /// ignored (the first is kept).
    fn add_signatures(&mut self, signatures: &[(u64, AccountId, Sig)]) -> Result<(), StoreError>;
    /// The stored signatures of blocks `from..=to`, by height, then signer.
    fn signatures(&self, from: u64, to: u64) -> Result<Vec<(u64, AccountId, Sig)>, StoreError>;
    /// Records a block at which the validator set changed, with its proof (replacing a record
    /// of the same height: the block at a height is always the same).
    fn record_set_change(&mut self, change: &SetChange) -> Result<(), StoreError>;
    /// Every recorded set change, by height.
    fn set_changes(&self) -> Result<Vec<SetChange>, StoreError>;
}

/// Format of a stored [`SetChange`] record.
const SET_CHANGE_FORMAT: u32 = 1;

/// Sets one `meta` value (`?1` key, `?2` value), replacing any.
pub(crate) const SET_META: &str = "INSERT INTO meta (key, value) VALUES (?1, ?2)
     ON CONFLICT (key) DO UPDATE SET value = excluded.value";

/// Meta key of the validator set.
const VALIDATORS_KEY: &str = "validators";
/// Format version of the stored validator set.
/// 2: validators carry their genesis stake (and the genesis holds the set, as format 2).
const VALIDATORS_VERSION: u32 = 2;

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredValidators {
    version: u32,
    set: ValidatorSet,
}

/// The validator set a log records (empty: a single coordinator's log).
pub fn validators(log: &dyn CommandLog) -> Result<ValidatorSet, StoreError> {
    let Some(bytes) = log.meta(VALIDATORS_KEY)? else {
        return Ok(ValidatorSet::default());
    };
    let stored: StoredValidators =
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            seq: 0,
            msg: format!("the stored validator set does not decode: {e}"),
        })?;
    if stored.version != VALIDATORS_VERSION {
        return Err(StoreError::Version {
            what: "the stored validator set".into(),
            found: stored.version.to_string(),
            supported: VALIDATORS_VERSION,
        });
    }
    Ok(stored.set)
}

/// Records the validator set of a new log.
pub fn set_validators(log: &mut dyn CommandLog, set: &ValidatorSet) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(&StoredValidators {
        version: VALIDATORS_VERSION,
        set: set.clone(),
    })
    .map_err(|e| StoreError::Corrupt {
        seq: 0,
        msg: format!("encoding the validator set: {e}"),
    })?;
    log.set_meta(VALIDATORS_KEY, &bytes)
}

/// One event in an account's history.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HistoryRow {
    /// The log entry that caused it.
    pub seq: u64,
    pub time: Time,
    pub event: Event,
}

/// [`recover`], which also makes again the history rows of the entries after
/// [`CommandLog::history_through`] (lost when the log stopped before writing them) and queues them.
/// Replay starts from the newest snapshot before those entries (`SqliteLog` keeps the newest
/// snapshot older than the rows on disk until the rows pass a newer one), unless the history file
/// was lost: then the log is replayed from `fresh`, or, for a log that starts at a checkpoint,
/// the rows of the entries before the newest snapshot stay missing.
pub fn recover_with_history(log: &mut dyn CommandLog, fresh: State) -> Result<State, StoreError> {
    let through = log.history_through();
    if through >= log.len() {
        return recover(log, fresh);
    }
    let (from, mut state) = match log.latest_snapshot()? {
        Some((seq, state)) if seq <= through => (seq, state),
        Some((seq, state)) => {
            if let Some(older) = log.snapshot_at_or_before(through)? {
                older
            } else {
                replay_start(log, seq, state, fresh)?
            }
        }
        None => (0, fresh),
    };
    let mut batch = Vec::new();
    for (seq, entry) in (from + 1..).zip(log.read_after(from)?) {
        let events = state
            .apply(&entry)
            .map_err(|rejection| StoreError::Replay { seq, rejection })?;
        if seq > through {
            batch.push(EntryHistory {
                seq,
                time: entry.time,
                rows: history::history_rows(&state, &events),
            });
            if batch.len() >= 1024 {
                log.add_history(std::mem::take(&mut batch))?;
            }
        }
    }
    log.add_history(batch)?;
    Ok(state)
}

/// Where [`recover_with_history`] replays from when no snapshot is kept from before the first
/// entry whose history rows are missing (the newest is `(seq, state)`): the log's start, or,
/// for a log that starts at a checkpoint, the newest snapshot, the rows before it missing.
fn replay_start(
    log: &mut dyn CommandLog,
    seq: u64,
    state: State,
    fresh: State,
) -> Result<(u64, State), StoreError> {
    let starts_at_one = log.raw_entries(0, 1)?.first().is_some_and(|(s, _)| *s == 1);
    if starts_at_one {
        Ok((0, fresh))
    } else {
        // Nothing to make the rows up to the snapshot from: they stay missing.
        log.add_history(vec![EntryHistory {
            seq,
            time: 0,
            rows: Vec::new(),
        }])?;
        Ok((seq, state))
    }
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

/// The embedded default: one SQLite file in WAL mode with `synchronous=FULL`, and the accounts'
/// histories (format 3) beside it in `history.sqlite`, written after the entries' transactions
/// by a thread of their own (see `history.rs`).
pub struct SqliteLog {
    conn: Connection,
    path: PathBuf,
    len: u64,
    /// Reads `history.sqlite`, if there is one. (Dropped before the writer, whose connection
    /// closes last and so removes the write-ahead log.)
    history_reader: Option<Connection>,
    /// Writes the history rows; none when opened read-only.
    history: Option<history::Writer>,
}

/// Meta key: the entry after which history rows are in `history.sqlite` (format 3); those of
/// entries up to it are in the tables of formats 1 and 2 here. Set when a log is first opened by
/// a gridmint that writes format 3 (to the log's length then: older ones wrote every entry's
/// rows with it).
const HISTORY_V3_FROM: &str = "history_v3_from";

impl SqliteLog {
    /// The entry, among the last `window`, that is `signer`'s signed action with `nonce`: how a
    /// client whose write went unanswered learns whether it was logged before sending it again.
    /// Rows are prefiltered in SQLite by the bytes a signed entry of that signer and nonce holds
    /// (the signer's 32 bytes, then the nonce's varint), then decoded to confirm.
    pub fn find_signed(
        &self,
        signer: &AccountId,
        nonce: u64,
        window: u64,
    ) -> Result<Option<(u64, Entry)>, StoreError> {
        let mut needle = signer.0.to_vec();
        needle.extend(encode(&nonce));
        let from = self.len.saturating_sub(window);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, entry FROM log WHERE seq > ?1 AND instr(entry, ?2) > 0 \
                 ORDER BY seq DESC",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt
            .query(params![to_sql(from), needle])
            .map_err(|e| self.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let seq = from_sql(row.get(0).map_err(|e| self.err(e))?);
            let bytes: Vec<u8> = row.get(1).map_err(|e| self.err(e))?;
            let entry = decode_entry(seq, &bytes)?;
            if let engine::Input::Signed(signed) = &entry.input
                && signed.signer == *signer
                && signed.nonce == nonce
            {
                return Ok(Some((seq, entry)));
            }
        }
        Ok(None)
    }

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
             );
             -- State format 2 (the state gained its validators); `snapshots` holds format 1.
             CREATE TABLE IF NOT EXISTS snapshots_v2 (
                 seq   INTEGER PRIMARY KEY,
                 state BLOB NOT NULL
             );
             -- State format 3 (the state gained its rules version).
             CREATE TABLE IF NOT EXISTS snapshots_v3 (
                 seq   INTEGER PRIMARY KEY,
                 state BLOB NOT NULL
             );
             -- State format 4 (the state gained its audits, rules 5).
             CREATE TABLE IF NOT EXISTS snapshots_v4 (
                 seq   INTEGER PRIMARY KEY,
                 state BLOB NOT NULL
             );
             -- State format 5 (the state gained its fee per action, rules 8).
             CREATE TABLE IF NOT EXISTS snapshots_v5 (
                 seq   INTEGER PRIMARY KEY,
                 state BLOB NOT NULL
             );
             -- State format 6 (the state gained its storage deposits, rules 10).
             CREATE TABLE IF NOT EXISTS snapshots_v6 (
                 seq   INTEGER PRIMARY KEY,
                 state BLOB NOT NULL
             );
             -- State format 7 (the state gained its answer statuses, rules 11).
             CREATE TABLE IF NOT EXISTS snapshots_v7 (
                 seq   INTEGER PRIMARY KEY,
                 state BLOB NOT NULL
             );
             -- State format 8 (the state gained its jobs' files, rules 12).
             CREATE TABLE IF NOT EXISTS snapshots_v8 (
                 seq   INTEGER PRIMARY KEY,
                 state BLOB NOT NULL
             );
             -- State format 9 (the state gained its private jobs' sealings, rules 13).
             CREATE TABLE IF NOT EXISTS snapshots_v9 (
                 seq   INTEGER PRIMARY KEY,
                 state BLOB NOT NULL
             );
             -- State format 10 (the state gained its reopened results, rules 16).
             CREATE TABLE IF NOT EXISTS snapshots_v10 (
                 seq   INTEGER PRIMARY KEY,
                 state BLOB NOT NULL
             );
             -- State format 11 (the state gained its disputes for the anchors, rules 18).
             CREATE TABLE IF NOT EXISTS snapshots_v11 (
                 seq   INTEGER PRIMARY KEY,
                 state BLOB NOT NULL
             );
             -- State format 12 (the state gained its corrections after delivery, rules 19).
             CREATE TABLE IF NOT EXISTS snapshots_v12 (
                 seq   INTEGER PRIMARY KEY,
                 state BLOB NOT NULL
             );
             -- State format 13 (the state gained its GPU jobs, rules 23).
             CREATE TABLE IF NOT EXISTS snapshots_v13 (
                 seq   INTEGER PRIMARY KEY,
                 state BLOB NOT NULL
             );
             -- State format 14 (the state gained its energy and announcements, rules 24).
             CREATE TABLE IF NOT EXISTS snapshots_v14 (
                 seq   INTEGER PRIMARY KEY,
                 state BLOB NOT NULL
             );
             -- State format 15 (the state gained its delegations and governance, rules 25).
             CREATE TABLE IF NOT EXISTS snapshots_v15 (
                 seq   INTEGER PRIMARY KEY,
                 state BLOB NOT NULL
             );
             -- State format 16 (the state gained its reservations and governance schedule, rules 26).
             CREATE TABLE IF NOT EXISTS snapshots_v16 (
                 seq   INTEGER PRIMARY KEY,
                 state BLOB NOT NULL
             );
             -- State format 17 (the state gained its staking parameters and validator payouts,
             -- rules 27).
             CREATE TABLE IF NOT EXISTS snapshots_v17 (
                 seq   INTEGER PRIMARY KEY,
                 state BLOB NOT NULL
             );
             -- State format 18 (the state gained its proven and pending GPU classes, rules 28).
             CREATE TABLE IF NOT EXISTS snapshots_v18 (
                 seq   INTEGER PRIMARY KEY,
                 state BLOB NOT NULL
             );
             -- State format 19 (the state gained tolerant GPU jobs and their outputs, rules 30).
             CREATE TABLE IF NOT EXISTS snapshots_v19 (
                 seq   INTEGER PRIMARY KEY,
                 state BLOB NOT NULL
             );
             CREATE TABLE IF NOT EXISTS blocks (
                 height INTEGER PRIMARY KEY,
                 block  BLOB NOT NULL
             );
             CREATE TABLE IF NOT EXISTS meta (
                 key   TEXT PRIMARY KEY,
                 value BLOB NOT NULL
             );
             -- Accounts' histories: formats 1 (`history`, one row per event) and 2
             -- (`history_v2`, one row per account per entry) were tables here, written in the
             -- entries' transactions; logs that have them are still read. Format 3 is in
             -- `history.sqlite` (see history.rs).
             -- Blocks at which the validator set changed, with the proof of the new set
             -- (engine::SetChange, postcard; format 1).
             CREATE TABLE IF NOT EXISTS set_changes (
                 height INTEGER PRIMARY KEY,
                 format INTEGER NOT NULL,
                 record BLOB NOT NULL
             );
             -- Validators' signatures of blocks: the quorum certificates.
             CREATE TABLE IF NOT EXISTS signatures (
                 height    INTEGER NOT NULL,
                 validator BLOB NOT NULL,
                 signature BLOB NOT NULL,
                 PRIMARY KEY (height, validator)
             );",
        )
        .map_err(err)?;
        let len = log_length(&conn).map_err(err)?;
        let from: Option<Vec<u8>> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                [HISTORY_V3_FROM],
                |r| r.get(0),
            )
            .optional()
            .map_err(err)?;
        let from = match from {
            Some(bytes) => {
                postcard::from_bytes::<u64>(&bytes).map_err(|e| StoreError::Corrupt {
                    seq: len,
                    msg: format!("meta {HISTORY_V3_FROM}: {e}"),
                })?
            }
            None => {
                conn.execute(SET_META, params![HISTORY_V3_FROM, encode(&len)])
                    .map_err(err)?;
                len
            }
        };
        let history_path = dir.join(history::FILE);
        let writer = history::Writer::open(&history_path, from, len)?;
        let history_reader = history::open_reader(&history_path, false)?;
        Ok(SqliteLog {
            conn,
            path,
            len,
            history: Some(writer),
            history_reader,
        })
    }

    /// Lets commits return before they reach the disk (`synchronous = NORMAL`: a power loss may
    /// roll back the last transactions, never leave a half one). For a validator, whose
    /// command log is a deterministic function of the consensus log, which is fsync'd: the
    /// position the log is applied up to is written in the same transactions, so whatever is
    /// rolled back is executed again from the consensus log.
    pub fn relax_durability(&self) -> Result<(), StoreError> {
        self.conn
            .execute_batch("PRAGMA synchronous = NORMAL;")
            .map_err(|e| self.err(e))
    }

    /// Opens an existing `<dir>/gridmint.sqlite` read-only, for inspection and verification while
    /// (or after) a coordinator uses it: changes nothing, and writing through it fails. A log with
    /// no `-wal` file beside it (its coordinator stopped) is opened immutable, creating no files;
    /// a coordinator that starts on it while it is open is not seen.
    pub fn open_read_only(dir: &Path) -> Result<SqliteLog, StoreError> {
        use rusqlite::OpenFlags;
        let path = dir.join("gridmint.sqlite");
        if !path.is_file() {
            return Err(StoreError::Io {
                path: path.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no command log here (is this a coordinator's data dir?)",
                ),
            });
        }
        let err = |source| StoreError::Sqlite {
            path: path.display().to_string(),
            source,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        // With no write-ahead log beside it, nobody is writing and everything is in the main file
        // (a coordinator checkpoints and removes the log when it stops): open it immutable, so
        // that SQLite does not even create `-wal`/`-shm` files. Otherwise read through the WAL.
        let wal = dir.join("gridmint.sqlite-wal");
        let uri = format!(
            "file:{}{}",
            uri_path(&path),
            if wal.exists() { "" } else { "?immutable=1" }
        );
        let conn = Connection::open_with_flags(uri, flags).map_err(err)?;
        let len = log_length(&conn).map_err(err)?;
        let history_reader = history::open_reader(&dir.join(history::FILE), true)?;
        Ok(SqliteLog {
            conn,
            path,
            len,
            history: None,
            history_reader,
        })
    }

    /// Starts an empty log from a checkpoint: the state after `block`'s last entry (as a
    /// snapshot at that seq), the block and its signatures, in one transaction. The log then
    /// continues after the block; it holds no entries and no blocks before it (a validator that
    /// joined from a checkpoint serves the chain from there on). The caller has checked the
    /// checkpoint.
    pub fn install_checkpoint(
        &mut self,
        state: &State,
        block: &Block,
        signatures: &[(u64, AccountId, Sig)],
    ) -> Result<(), StoreError> {
        if self.len != 0 || self.last_block()?.is_some() {
            return Err(StoreError::Corrupt {
                seq: self.len,
                msg: "a checkpoint goes only into an empty log".into(),
            });
        }
        let seq = block.header.last_seq;
        let tx = self
            .conn
            .transaction()
            .map_err(|e| sqlite_err(&self.path, e))?;
        tx.execute(
            "INSERT INTO snapshots_v7 (seq, state) VALUES (?1, ?2)",
            params![to_sql(seq), encode(state)],
        )
        .and_then(|_| {
            tx.execute(
                "INSERT INTO blocks (height, block) VALUES (?1, ?2)",
                params![to_sql(block.header.height), encode(block)],
            )
        })
        .map_err(|e| sqlite_err(&self.path, e))?;
        for (height, validator, signature) in signatures {
            tx.execute(
                "INSERT OR IGNORE INTO signatures (height, validator, signature) VALUES (?1, ?2, ?3)",
                params![to_sql(*height), validator.0.to_vec(), signature.0.to_vec()],
            )
            .map_err(|e| sqlite_err(&self.path, e))?;
        }
        tx.commit().map_err(|e| sqlite_err(&self.path, e))?;
        self.len = seq;
        // The log holds nothing before the checkpoint, and so has no history before it either.
        if let Some(writer) = &mut self.history {
            writer.queue(vec![EntryHistory {
                seq,
                time: 0,
                rows: Vec::new(),
            }]);
            writer.barrier().wait()?;
        }
        Ok(())
    }

    /// Appends `entries` and, if given, sets one meta key, all in one durable transaction, then
    /// queues their history rows.
    fn append_batch_meta(
        &mut self,
        entries: Vec<(Entry, Vec<(AccountId, Event)>)>,
        meta: Option<(&str, &[u8])>,
    ) -> Result<u64, StoreError> {
        let mut seq = self.len;
        let tx = self
            .conn
            .transaction()
            .map_err(|e| sqlite_err(&self.path, e))?;
        {
            let mut insert = tx
                .prepare_cached(INSERT_ENTRY)
                .map_err(|e| sqlite_err(&self.path, e))?;
            let mut bytes = Vec::new();
            for (entry, _) in &entries {
                seq += 1;
                bytes.clear();
                bytes = postcard::to_extend(entry, bytes).expect("engine types always encode");
                insert
                    .execute(params![to_sql(seq), &bytes[..]])
                    .map_err(|e| sqlite_err(&self.path, e))?;
            }
        }
        if let Some((key, value)) = meta {
            tx.prepare_cached(SET_META)
                .and_then(|mut stmt| stmt.execute(params![key, value]))
                .map_err(|e| sqlite_err(&self.path, e))?;
        }
        tx.commit().map_err(|e| sqlite_err(&self.path, e))?;
        let first = self.len + 1;
        self.len = seq;
        self.queue_history(
            (first..)
                .zip(entries)
                .map(|(seq, (entry, rows))| EntryHistory {
                    seq,
                    time: entry.time,
                    rows,
                })
                .collect(),
        );
        Ok(seq)
    }

    /// Queues the history rows of entries just committed.
    fn queue_history(&mut self, entries: Vec<EntryHistory>) {
        if let Some(writer) = &mut self.history {
            writer.queue(entries);
        }
    }

    /// Up to `limit` history events of `account` before `before`, newest first, from `table` of
    /// `conn` through `query` (`?1` account, `?2` before, `?3` limit; columns seq, time,
    /// events), each row's events decoded by `decode` (in the order they happened).
    #[allow(clippy::too_many_arguments)]
    fn history_rows(
        &self,
        conn: &Connection,
        table: &str,
        query: &str,
        account: &AccountId,
        before: u64,
        limit: usize,
        decode: impl Fn(&[u8]) -> Result<Vec<Event>, serde_json::Error>,
    ) -> Result<Vec<HistoryRow>, StoreError> {
        if !has_table(conn, table).map_err(|e| self.err(e))? {
            return Ok(Vec::new());
        }
        let mut stmt = conn.prepare_cached(query).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(
                params![
                    &account.0[..],
                    to_sql(before),
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |r| {
                    Ok((
                        from_sql(r.get(0)?),
                        from_sql(r.get(1)?),
                        r.get::<_, Vec<u8>>(2)?,
                    ))
                },
            )
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, time, bytes) = row.map_err(|e| self.err(e))?;
            let events = decode(&bytes).map_err(|e| StoreError::Corrupt {
                seq,
                msg: format!("history row: {e}"),
            })?;
            out.extend(
                events
                    .into_iter()
                    .rev()
                    .map(|event| HistoryRow { seq, time, event }),
            );
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Whether `table` exists (a log written by an older version may lack one).
    fn has_table(&self, table: &str) -> Result<bool, StoreError> {
        has_table(&self.conn, table).map_err(|e| self.err(e))
    }

    /// Whether the blocks table exists (a log written before blocks existed has none).
    fn has_blocks_table(&self) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'blocks'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    /// Decodes the stored bytes of the block at `height` (its canonical encoding, saying that
    /// height). Public for the fuzz targets (`fuzz/`): stored bytes are outside bytes.
    pub fn decode_block(height: u64, bytes: &[u8]) -> Result<Block, StoreError> {
        let block: Block =
            engine::decode_canonical(bytes).map_err(|e| StoreError::CorruptBlock {
                height,
                msg: e.to_string(),
            })?;
        if block.header.height != height {
            return Err(StoreError::CorruptBlock {
                height,
                msg: format!("stored as height {height} but says {}", block.header.height),
            });
        }
        Ok(block)
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.display().to_string(),
            source,
        }
    }
}

/// `path` for a `file:` URI: everything but unreserved characters and `/` percent-encoded.
/// Whether `conn` has a table named `table`.
fn has_table(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        params![table],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

pub(crate) fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for b in path.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// SQLite integers are signed; sequence numbers never come near `i64::MAX`.
/// The log's length: its last entry's seq, or the seq of a checkpoint it starts from
/// ([`SqliteLog::install_checkpoint`]) while it holds no entry after it.
fn log_length(conn: &Connection) -> rusqlite::Result<u64> {
    let mut last: i64 =
        conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM log", [], |r| r.get(0))?;
    for table in [
        "snapshots_v2",
        "snapshots_v3",
        "snapshots_v4",
        "snapshots_v5",
        "snapshots_v6",
        "snapshots_v7",
        "snapshots_v8",
        "snapshots_v9",
        "snapshots_v10",
        "snapshots_v11",
        "snapshots_v12",
        "snapshots_v13",
        "snapshots_v14",
        "snapshots_v15",
        "snapshots_v16",
        "snapshots_v17",
        "snapshots_v18",
        "snapshots_v19",
    ] {
        let exists: i64 = conn.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get(0),
        )?;
        if exists > 0 {
            let seq: i64 = conn.query_row(
                &format!("SELECT COALESCE(MAX(seq), 0) FROM {table}"),
                [],
                |r| r.get(0),
            )?;
            last = last.max(seq);
        }
    }
    Ok(from_sql(last))
}

fn to_sql(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn from_sql(seq: i64) -> u64 {
    u64::try_from(seq).unwrap_or(0)
}

fn sqlite_err(path: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Sqlite {
        path: path.display().to_string(),
        source,
    }
}

/// Most snapshots a log keeps: the newest, and while the history rows lag behind it, older ones
/// back to the newest before them (see `SqliteLog::save_snapshot`).
const KEPT_SNAPSHOTS: i64 = 4;

/// Inserts an entry: `?1` its seq, `?2` its bytes.
const INSERT_ENTRY: &str = "INSERT INTO log (seq, entry) VALUES (?1, ?2)";

/// Inserts entry `seq` inside the caller's transaction.
fn insert_entry(
    tx: &rusqlite::Transaction<'_>,
    seq: u64,
    entry: &Entry,
) -> Result<(), rusqlite::Error> {
    tx.prepare_cached(INSERT_ENTRY)?
        .execute(params![to_sql(seq), encode(entry)])?;
    Ok(())
}

/// Meta key of the genesis, format 7 (with the staking parameters). Format 6 (`genesis_v6`,
/// with the carbon table) had none, format 5 (`genesis_v5`, with the storage deposit's price)
/// had no table, format 4 (`genesis_v4`, with the fee per action) had
/// no price, format 3 (`genesis_v3`, with the rules version) had no
/// fee, and formats 2 (`genesis_v2`, with validators) and 1 (`genesis`) are read and converted
/// too: they ran the first rules.
const GENESIS_KEY: &str = "genesis_v7";

/// The genesis as format 1 stored it (before validators).
#[derive(serde::Deserialize)]
struct GenesisV1 {
    params: engine::LedgerParams,
    allocations: std::collections::BTreeMap<AccountId, engine::Amount>,
    engine: engine::EngineConfig,
    verification: engine::VerifyParams,
}

/// The genesis as format 2 stored it (before the rules version).
#[derive(serde::Deserialize)]
struct GenesisV2 {
    params: engine::LedgerParams,
    allocations: std::collections::BTreeMap<AccountId, engine::Amount>,
    engine: engine::EngineConfig,
    verification: engine::VerifyParams,
    validators: engine::Validators,
}

/// Decodes a stored genesis of `format` (1 to 7), converting the older formats. Public for the
/// fuzz targets (`fuzz/`).
pub fn decode_genesis(bytes: &[u8], format: u32) -> Result<Genesis, postcard::Error> {
    let v2 = match format {
        1 => {
            let v1: GenesisV1 = postcard::from_bytes(bytes)?;
            GenesisV2 {
                params: v1.params,
                allocations: v1.allocations,
                engine: v1.engine,
                verification: v1.verification,
                validators: engine::Validators::default(),
            }
        }
        2 => postcard::from_bytes(bytes)?,
        // Format 3 is format 4 without the trailing fee per action, which was none, format 4
        // is format 5 without the trailing storage price, which was none, format 5 is format 6
        // without the trailing carbon table, which was the default, and format 6 is format 7
        // without the trailing staking parameters, which were the defaults.
        3..=6 => {
            let mut v7 = bytes.to_vec();
            if format == 3 {
                v7.extend(encode(&0u128));
            }
            if format <= 4 {
                v7.extend(encode(&None::<engine::StorageParams>));
            }
            if format <= 5 {
                v7.extend(encode(&None::<engine::CarbonTable>));
            }
            v7.extend(encode(&None::<engine::StakingParams>));
            return postcard::from_bytes(&v7);
        }
        _ => return postcard::from_bytes(bytes),
    };
    Ok(Genesis {
        params: v2.params,
        allocations: v2.allocations,
        engine: v2.engine,
        verification: v2.verification,
        validators: v2.validators,
        rules: engine::FIRST_RULES,
        action_fee: 0,
        storage: None,
        carbon: None,
        staking: None,
    })
}

/// Decodes a stored state. Format 1 is format 2 without the trailing `validators` field, which a
/// network of that time never had, format 2 is format 3 without the trailing `rules`, which
/// were the first, format 3 is format 4 without the trailing `audits`, empty before rules 5,
/// format 4 is format 5 without the trailing `action_fee`, none before rules 8, format 5 is
/// format 6 without the trailing `storage`, empty before rules 10, and format 6 is format 7
/// without the trailing `options`, empty before rules 11, format 7 is format 8 without the
/// trailing `files`, empty before rules 12, format 8 is format 9 without the trailing
/// `private`, empty before rules 13, format 9 is format 10 without the trailing `reopened`,
/// empty before rules 16, format 10 is format 11 without the trailing `disputes`, empty
/// before rules 18, format 11 is format 12 without the trailing `corrected`, empty before
/// rules 19, format 12 is format 13 without the trailing `gpu`, empty before rules 23, and
/// format 13 is format 14 without the trailing `energy`, empty before rules 24, and format 14
/// is format 15 without the trailing `delegation`, `governance` and `market`, empty before rules
/// 25, and format 15 is format 16 without the trailing `reservations` and `gov_schedule`,
/// empty before rules 26, and format 16 is format 17 without the trailing `staking`, empty
/// before rules 27, and format 17 is format 18 without the trailing `gpu_classes`, empty
/// before rules 28, and format 18 is format 19 without the trailing `tolerances`, empty before
/// rules 30:
/// their encodings are appended (the migration).
///
/// Public for the fuzz targets (`fuzz/`).
pub fn decode_snapshot(bytes: &[u8], format: u32) -> Result<State, postcard::Error> {
    let mut v5 = bytes.to_vec();
    if format == 1 {
        v5.extend(encode(&engine::Validators::default()));
    }
    if format <= 2 {
        v5.extend(encode(&engine::FIRST_RULES));
    }
    if format <= 3 {
        v5.extend(encode(&engine::Audits::default()));
    }
    if format <= 4 {
        v5.extend(encode(&0u128));
    }
    if format <= 5 {
        v5.extend(encode(&engine::Storage::default()));
    }
    if format <= 6 {
        v5.extend(encode(&engine::Options::default()));
    }
    if format <= 7 {
        v5.extend(encode(&engine::Files::default()));
    }
    if format <= 8 {
        v5.extend(encode(&engine::Private::default()));
    }
    if format <= 9 {
        v5.extend(encode(&engine::Reopened::default()));
    }
    if format <= 10 {
        v5.extend(encode(&std::collections::BTreeSet::<engine::TaskId>::new()));
    }
    if format <= 11 {
        v5.extend(encode(
            &std::collections::BTreeMap::<engine::JobId, u32>::new(),
        ));
    }
    if format <= 12 {
        v5.extend(encode(&engine::gpu::GpuJobs::default()));
    }
    if format <= 13 {
        v5.extend(encode(&engine::energy::Energy::default()));
    }
    if format <= 14 {
        v5.extend(encode(&engine::Delegations::default()));
        v5.extend(encode(&engine::Governance::default()));
        v5.extend(encode(&engine::Market::default()));
    }
    if format <= 15 {
        v5.extend(encode(&engine::reserve::Reservations::default()));
        v5.extend(encode(&engine::gov::Schedule::default()));
    }
    if format <= 16 {
        v5.extend(encode(&engine::Staking::default()));
    }
    if format <= 17 {
        v5.extend(encode(&engine::GpuClasses::default()));
    }
    if format <= 18 {
        v5.extend(encode(&engine::Tolerances::default()));
    }
    postcard::from_bytes(&v5)
}

/// Decodes the stored bytes of log entry `seq`. Public for the fuzz targets (`fuzz/`).
pub fn decode_entry(seq: u64, bytes: &[u8]) -> Result<Entry, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt {
        seq,
        msg: e.to_string(),
    })
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
            out.push(decode_entry(seq, &bytes)?);
        }
        Ok(out)
    }

    fn save_snapshot(&mut self, seq: u64, state: &State) -> Result<(), StoreError> {
        // Replay starts from the newest snapshot, and must reach back to the first entry whose
        // history rows are not on disk (see `recover_with_history`): the newest snapshot at or
        // before the rows' mark is kept with any newer one, older ones go. The commit does not
        // wait for the history writer.
        let through = self.history_through();
        let tx = self
            .conn
            .transaction()
            .map_err(|e| sqlite_err(&self.path, e))?;
        tx.execute(
            "INSERT OR REPLACE INTO snapshots_v19 (seq, state) VALUES (?1, ?2)",
            params![to_sql(seq), encode(state)],
        )
        .and_then(|_| {
            tx.query_row(
                "SELECT max(seq) FROM snapshots_v19 WHERE seq <= ?1",
                params![to_sql(through)],
                |r| r.get::<_, Option<i64>>(0),
            )
        })
        .and_then(|keep| match keep {
            Some(keep) => tx.execute("DELETE FROM snapshots_v19 WHERE seq < ?1", params![keep]),
            // None old enough yet: every snapshot stays.
            None => Ok(0),
        })
        .and_then(|_| {
            // At most `KEPT_SNAPSHOTS` (rows that stopped being written, a failed history
            // writer, do not keep every snapshot: a replay then starts from the genesis).
            tx.execute(
                "DELETE FROM snapshots_v19 WHERE seq < (SELECT seq FROM snapshots_v19
                     ORDER BY seq DESC LIMIT 1 OFFSET ?1)",
                params![KEPT_SNAPSHOTS - 1],
            )
        })
        .and_then(|_| {
            // Those of the older formats are never read again (`snapshot_at_or_before` reads
            // format 19 first, and they are older).
            for table in [
                "snapshots_v18",
                "snapshots_v17",
                "snapshots_v16",
                "snapshots_v15",
                "snapshots_v14",
                "snapshots_v13",
                "snapshots_v12",
                "snapshots_v11",
                "snapshots_v10",
                "snapshots_v9",
                "snapshots_v8",
                "snapshots_v7",
                "snapshots_v6",
                "snapshots_v5",
                "snapshots_v4",
                "snapshots_v3",
                "snapshots_v2",
                "snapshots",
            ] {
                tx.execute(&format!("DELETE FROM {table}"), [])?;
            }
            Ok(())
        })
        .and_then(|_| tx.commit())
        .map_err(|e| sqlite_err(&self.path, e))?;
        Ok(())
    }

    fn snapshot_at_or_before(&self, seq: u64) -> Result<Option<(u64, State)>, StoreError> {
        // Formats 12 to 19 keep several snapshots (a log written in an older one may still hold
        // them until its first snapshot in the newest); logs written before format 12 hold one
        // at most.
        for (table, format) in [
            ("snapshots_v19", 19),
            ("snapshots_v18", 18),
            ("snapshots_v17", 17),
            ("snapshots_v16", 16),
            ("snapshots_v15", 15),
            ("snapshots_v14", 14),
            ("snapshots_v13", 13),
            ("snapshots_v12", 12),
        ] {
            if !self.has_table(table)? {
                continue;
            }
            let row: Option<(u64, Vec<u8>)> = self
                .conn
                .query_row(
                    &format!(
                        "SELECT seq, state FROM {table} WHERE seq <= ?1 ORDER BY seq DESC LIMIT 1"
                    ),
                    params![to_sql(seq)],
                    |r| Ok((from_sql(r.get(0)?), r.get(1)?)),
                )
                .optional()
                .map_err(|e| self.err(e))?;
            if let Some((at, bytes)) = row {
                return decode_snapshot(&bytes, format)
                    .map(|state| Some((at, state)))
                    .map_err(|e| StoreError::Corrupt {
                        seq: at,
                        msg: format!("snapshot (state format {format}): {e}"),
                    });
            }
        }
        Ok(self.latest_snapshot()?.filter(|(at, _)| *at <= seq))
    }

    fn latest_snapshot(&self) -> Result<Option<(u64, State)>, StoreError> {
        // Format 19 first; a log written before it may hold a format-18, 17, 16, 15, 14, 13, 12, 11, 10,
        // 9, 8, 7, 6, 5, 4, 3, 2 or 1 snapshot instead.
        for (table, format) in [
            ("snapshots_v19", 19),
            ("snapshots_v18", 18),
            ("snapshots_v17", 17),
            ("snapshots_v16", 16),
            ("snapshots_v15", 15),
            ("snapshots_v14", 14),
            ("snapshots_v13", 13),
            ("snapshots_v12", 12),
            ("snapshots_v11", 11),
            ("snapshots_v10", 10),
            ("snapshots_v9", 9),
            ("snapshots_v8", 8),
            ("snapshots_v7", 7),
            ("snapshots_v6", 6),
            ("snapshots_v5", 5),
            ("snapshots_v4", 4),
            ("snapshots_v3", 3),
            ("snapshots_v2", 2),
            ("snapshots", 1),
        ] {
            if !self.has_table(table)? {
                continue;
            }
            let row: Option<(u64, Vec<u8>)> = self
                .conn
                .query_row(
                    &format!("SELECT seq, state FROM {table} ORDER BY seq DESC LIMIT 1"),
                    [],
                    |r| Ok((from_sql(r.get(0)?), r.get(1)?)),
                )
                .optional()
                .map_err(|e| self.err(e))?;
            if let Some((seq, bytes)) = row {
                return decode_snapshot(&bytes, format)
                    .map(|state| Some((seq, state)))
                    .map_err(|e| StoreError::Corrupt {
                        seq,
                        msg: format!("snapshot (state format {format}): {e}"),
                    });
            }
        }
        Ok(None)
    }

    fn raw_entries(&self, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, entry FROM log WHERE seq > ?1 ORDER BY seq LIMIT ?2")
            .map_err(|e| self.err(e))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![to_sql(after), limit], |r| {
                Ok((from_sql(r.get(0)?), r.get::<_, Vec<u8>>(1)?))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn append_block(&mut self, block: &Block) -> Result<(), StoreError> {
        let height = block.header.height;
        let last = self.last_block()?.map_or(0, |b| b.header.height);
        if Some(height) != last.checked_add(1) {
            return Err(StoreError::BlockOutOfOrder { height, last });
        }
        self.conn
            .execute(
                "INSERT INTO blocks (height, block) VALUES (?1, ?2)",
                params![to_sql(height), encode(block)],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn blocks_after(&self, after: u64, limit: usize) -> Result<Vec<Block>, StoreError> {
        if !self.has_blocks_table()? {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT height, block FROM blocks WHERE height > ?1 ORDER BY height LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![to_sql(after), limit], |r| {
                Ok((from_sql(r.get(0)?), r.get::<_, Vec<u8>>(1)?))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (height, bytes) = row.map_err(|e| self.err(e))?;
            out.push(Self::decode_block(height, &bytes)?);
        }
        Ok(out)
    }

    fn last_block(&self) -> Result<Option<Block>, StoreError> {
        if !self.has_blocks_table()? {
            return Ok(None);
        }
        let row: Option<(u64, Vec<u8>)> = self
            .conn
            .query_row(
                "SELECT height, block FROM blocks ORDER BY height DESC LIMIT 1",
                [],
                |r| Ok((from_sql(r.get(0)?), r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        row.map(|(height, bytes)| Self::decode_block(height, &bytes))
            .transpose()
    }

    fn append_with_history(
        &mut self,
        entry: &Entry,
        history: &[(AccountId, Event)],
    ) -> Result<u64, StoreError> {
        let seq = self.len + 1;
        let tx = self
            .conn
            .transaction()
            .map_err(|e| sqlite_err(&self.path, e))?;
        insert_entry(&tx, seq, entry).map_err(|e| sqlite_err(&self.path, e))?;
        tx.commit().map_err(|e| sqlite_err(&self.path, e))?;
        self.len = seq;
        self.queue_history(vec![EntryHistory {
            seq,
            time: entry.time,
            rows: history.to_vec(),
        }]);
        Ok(seq)
    }

    fn append_batch_with_history(
        &mut self,
        entries: Vec<(Entry, Vec<(AccountId, Event)>)>,
    ) -> Result<u64, StoreError> {
        self.append_batch_meta(entries, None)
    }

    fn append_batch_marked(
        &mut self,
        entries: Vec<(Entry, Vec<(AccountId, Event)>)>,
        key: &str,
        value: &[u8],
    ) -> Result<u64, StoreError> {
        self.append_batch_meta(entries, Some((key, value)))
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if !self.has_table("meta")? {
            return Ok(None);
        }
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    fn set_meta(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.conn
            .execute(SET_META, params![key, value])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn add_signatures(&mut self, signatures: &[(u64, AccountId, Sig)]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = |e| sqlite_err(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO signatures (height, validator, signature)
                     VALUES (?1, ?2, ?3)",
                )
                .map_err(err)?;
            for (height, validator, sig) in signatures {
                stmt.execute(params![to_sql(*height), &validator.0[..], &sig.0[..]])
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    fn record_set_change(&mut self, change: &SetChange) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO set_changes (height, format, record) VALUES (?1, ?2, ?3)
                 ON CONFLICT (height) DO UPDATE SET format = excluded.format,
                 record = excluded.record",
                params![
                    to_sql(change.block.header.height),
                    SET_CHANGE_FORMAT,
                    encode(change)
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn set_changes(&self) -> Result<Vec<SetChange>, StoreError> {
        if !self.has_table("set_changes")? {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT height, format, record FROM set_changes ORDER BY height")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    from_sql(r.get(0)?),
                    r.get::<_, u32>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (height, format, bytes) = row.map_err(|e| self.err(e))?;
            if format != SET_CHANGE_FORMAT {
                return Err(StoreError::CorruptBlock {
                    height,
                    msg: format!(
                        "set change record format {format}; this gridmint reads {SET_CHANGE_FORMAT}"
                    ),
                });
            }
            let change: SetChange =
                postcard::from_bytes(&bytes).map_err(|e| StoreError::CorruptBlock {
                    height,
                    msg: format!("set change record: {e}"),
                })?;
            out.push(change);
        }
        Ok(out)
    }

    fn signatures(&self, from: u64, to: u64) -> Result<Vec<(u64, AccountId, Sig)>, StoreError> {
        if !self.has_table("signatures")? {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT height, validator, signature FROM signatures
                 WHERE height >= ?1 AND height <= ?2 ORDER BY height, validator",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([to_sql(from), to_sql(to)], |r| {
                Ok((
                    from_sql(r.get(0)?),
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (height, validator, sig) = row.map_err(|e| self.err(e))?;
            let corrupt = || StoreError::CorruptBlock {
                height,
                msg: "a stored signature is malformed".into(),
            };
            let validator = AccountId(validator.try_into().map_err(|_| corrupt())?);
            let sig = Sig(sig.try_into().map_err(|_| corrupt())?);
            out.push((height, validator, sig));
        }
        Ok(out)
    }

    fn history(
        &self,
        account: &AccountId,
        before: u64,
        limit: usize,
    ) -> Result<Vec<HistoryRow>, StoreError> {
        // Format 3 rows (an entry's events per account, in history.sqlite), newest first, each
        // row's events last to first; then the format 2 rows (the same) and format 1 rows (one
        // event each) that a log written before holds, merged by seq (an entry's rows are all of
        // one format).
        self.history_barrier().wait()?;
        let mut out = match &self.history_reader {
            Some(reader) => self.history_rows(
                reader,
                "history",
                "SELECT seq, time, events FROM history WHERE account = ?1 AND seq < ?2
                 ORDER BY seq DESC LIMIT ?3",
                account,
                before,
                limit,
                |bytes| serde_json::from_slice::<Vec<Event>>(bytes),
            )?,
            None => Vec::new(),
        };
        let v2 = self.history_rows(
            &self.conn,
            "history_v2",
            "SELECT seq, time, events FROM history_v2 WHERE account = ?1 AND seq < ?2
             ORDER BY seq DESC LIMIT ?3",
            account,
            before,
            limit,
            |bytes| serde_json::from_slice::<Vec<Event>>(bytes),
        )?;
        let v1 = self.history_rows(
            &self.conn,
            "history",
            "SELECT seq, time, event FROM history WHERE account = ?1 AND seq < ?2
             ORDER BY seq DESC, idx DESC LIMIT ?3",
            account,
            before,
            limit,
            |bytes| serde_json::from_slice::<Event>(bytes).map(|e| vec![e]),
        )?;
        if !v2.is_empty() || !v1.is_empty() {
            out.extend(v2);
            out.extend(v1);
            // Stable: the events of one entry keep their (newest first) order.
            out.sort_by_key(|row| std::cmp::Reverse(row.seq));
        }
        out.truncate(limit);
        Ok(out)
    }

    fn history_through(&self) -> u64 {
        self.history
            .as_ref()
            .map_or(self.len, history::Writer::written)
    }

    fn add_history(&mut self, entries: Vec<EntryHistory>) -> Result<(), StoreError> {
        self.queue_history(entries);
        Ok(())
    }

    fn history_barrier(&self) -> HistoryBarrier {
        self.history
            .as_ref()
            .map_or_else(HistoryBarrier::none, history::Writer::barrier)
    }

    fn genesis(&self) -> Result<Option<Genesis>, StoreError> {
        if !self.has_table("meta")? {
            return Ok(None);
        }
        for (key, format) in [
            (GENESIS_KEY, 7),
            ("genesis_v6", 6),
            ("genesis_v5", 5),
            ("genesis_v4", 4),
            ("genesis_v3", 3),
            ("genesis_v2", 2),
            ("genesis", 1),
        ] {
            let bytes: Option<Vec<u8>> = self
                .conn
                .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(|e| self.err(e))?;
            if let Some(bytes) = bytes {
                return decode_genesis(&bytes, format)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt {
                        seq: 0,
                        msg: format!("genesis (format {format}): {e}"),
                    });
            }
        }
        Ok(None)
    }

    fn set_genesis(&mut self, genesis: &Genesis) -> Result<(), StoreError> {
        if self.genesis()?.is_some() {
            return Err(StoreError::GenesisSet);
        }
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                params![GENESIS_KEY, encode(genesis)],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

/// In-memory log, for unit tests only.
#[derive(Default)]
pub struct MemoryLog {
    entries: Vec<Entry>,
    snapshot: Option<(u64, State)>,
    blocks: Vec<Block>,
    history: Vec<(AccountId, HistoryRow)>,
    genesis: Option<Genesis>,
    meta: std::collections::BTreeMap<String, Vec<u8>>,
    signatures: std::collections::BTreeMap<(u64, AccountId), Sig>,
    set_changes: std::collections::BTreeMap<u64, SetChange>,
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

    fn raw_entries(&self, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let start = usize::try_from(after).unwrap_or(usize::MAX);
        Ok((after + 1..)
            .zip(self.entries.get(start..).unwrap_or_default())
            .take(limit)
            .map(|(seq, entry)| (seq, encode(entry)))
            .collect())
    }

    fn append_block(&mut self, block: &Block) -> Result<(), StoreError> {
        let height = block.header.height;
        let last = self.blocks.last().map_or(0, |b| b.header.height);
        if Some(height) != last.checked_add(1) {
            return Err(StoreError::BlockOutOfOrder { height, last });
        }
        self.blocks.push(block.clone());
        Ok(())
    }

    fn blocks_after(&self, after: u64, limit: usize) -> Result<Vec<Block>, StoreError> {
        Ok(self
            .blocks
            .iter()
            .filter(|b| b.header.height > after)
            .take(limit)
            .cloned()
            .collect())
    }

    fn last_block(&self) -> Result<Option<Block>, StoreError> {
        Ok(self.blocks.last().cloned())
    }

    fn append_with_history(
        &mut self,
        entry: &Entry,
        history: &[(AccountId, Event)],
    ) -> Result<u64, StoreError> {
        let seq = self.append(std::slice::from_ref(entry))?;
        for (account, event) in history {
            let row = HistoryRow {
                seq,
                time: entry.time,
                event: event.clone(),
            };
            self.history.push((*account, row));
        }
        Ok(seq)
    }

    fn append_batch_with_history(
        &mut self,
        entries: Vec<(Entry, Vec<(AccountId, Event)>)>,
    ) -> Result<u64, StoreError> {
        for (entry, history) in &entries {
            self.append_with_history(entry, history)?;
        }
        Ok(self.len())
    }

    fn append_batch_marked(
        &mut self,
        entries: Vec<(Entry, Vec<(AccountId, Event)>)>,
        key: &str,
        value: &[u8],
    ) -> Result<u64, StoreError> {
        let len = self.append_batch_with_history(entries)?;
        self.meta.insert(key.to_string(), value.to_vec());
        Ok(len)
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(key).cloned())
    }

    fn set_meta(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(key.to_string(), value.to_vec());
        Ok(())
    }

    fn add_signatures(&mut self, signatures: &[(u64, AccountId, Sig)]) -> Result<(), StoreError> {
        for (height, validator, sig) in signatures {
            self.signatures.entry((*height, *validator)).or_insert(*sig);
        }
        Ok(())
    }

    fn record_set_change(&mut self, change: &SetChange) -> Result<(), StoreError> {
        self.set_changes
            .insert(change.block.header.height, change.clone());
        Ok(())
    }

    fn set_changes(&self) -> Result<Vec<SetChange>, StoreError> {
        Ok(self.set_changes.values().cloned().collect())
    }

    fn signatures(&self, from: u64, to: u64) -> Result<Vec<(u64, AccountId, Sig)>, StoreError> {
        Ok(self
            .signatures
            .range((from, AccountId([0; 32]))..=(to, AccountId([0xff; 32])))
            .map(|((h, v), s)| (*h, *v, *s))
            .collect())
    }

    fn history(
        &self,
        account: &AccountId,
        before: u64,
        limit: usize,
    ) -> Result<Vec<HistoryRow>, StoreError> {
        Ok(self
            .history
            .iter()
            .rev()
            .filter(|(a, row)| a == account && row.seq < before)
            .take(limit)
            .map(|(_, row)| row.clone())
            .collect())
    }

    fn genesis(&self) -> Result<Option<Genesis>, StoreError> {
        Ok(self.genesis.clone())
    }

    fn set_genesis(&mut self, genesis: &Genesis) -> Result<(), StoreError> {
        if self.genesis.is_some() {
            return Err(StoreError::GenesisSet);
        }
        self.genesis = Some(genesis.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::{AccountId, Action, EngineConfig, Input, ProviderSpec, Sig, Signed};

    pub(super) fn register(n: u8, nonce: u64) -> Entry {
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
                    operator: None,
                }),
                signature: Sig([0; 64]),
            }),
        }
    }

    #[test]
    fn a_signed_action_is_found_by_signer_and_nonce_within_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SqliteLog::open(dir.path()).unwrap();
        // Signer 1's nonces 1..=3 and signer 2's 1..=3, interleaved; nonce 300 is a multi-byte
        // varint.
        for n in [1, 2, 3, 300] {
            log.append(&[register(1, n), register(2, n)]).unwrap();
        }
        let find = |signer: u8, nonce: u64, window: u64| {
            log.find_signed(&AccountId([signer; 32]), nonce, window)
                .unwrap()
                .map(|(seq, _)| seq)
        };
        assert_eq!(find(1, 1, 100), Some(1));
        assert_eq!(find(2, 3, 100), Some(6));
        assert_eq!(find(1, 300, 100), Some(7));
        assert_eq!(find(2, 300, 100), Some(8));
        assert_eq!(find(1, 4, 100), None);
        assert_eq!(find(3, 1, 100), None);
        // Only the last `window` entries are searched.
        assert_eq!(find(1, 1, 7), None);
        assert_eq!(find(1, 1, 8), Some(1));
    }

    #[test]
    fn logs_of_older_formats_read_their_genesis_and_snapshot_after_migration() {
        for format in [1u32, 2] {
            let dir = tempfile::tempdir().unwrap();
            let mut genesis = Genesis::dev(AccountId([9; 32]));
            // Both formats predate the rules version: their networks run the first rules.
            genesis.rules = engine::FIRST_RULES;
            genesis.action_fee = 0;
            genesis.storage = None;
            genesis.params.min_stake = 0;
            genesis.allocations.insert(AccountId([1; 32]), 5);
            let mut state = State::from_genesis(&genesis).unwrap();
            state.apply(&register(1, 1)).unwrap();
            let hash_then = state.hash();
            {
                // What a gridmint of that format wrote: format 1, the genesis without validators
                // under `genesis` and the state without its trailing validators and rules in
                // `snapshots`; format 2, the genesis without the rules under `genesis_v2` and the
                // state without its trailing rules in `snapshots_v2`.
                let log = SqliteLog::open(dir.path()).unwrap();
                let rules = encode(&engine::FIRST_RULES);
                let full = encode(&state);
                // Every format before 4 lacks the trailing audits (before 5, the fee; before 6,
                // the storage; before 7, the options; before 8, the files).
                let cut = encode(&engine::Audits::default()).len()
                    + encode(&0u128).len()
                    + encode(&engine::Storage::default()).len()
                    + encode(&engine::Options::default()).len()
                    + encode(&engine::Files::default()).len()
                    + encode(&engine::Private::default()).len()
                    + encode(&engine::Reopened::default()).len()
                    + encode(&std::collections::BTreeSet::<engine::TaskId>::new()).len()
                    + encode(&std::collections::BTreeMap::<engine::JobId, u32>::new()).len()
                    + encode(&engine::GpuJobs::default()).len()
                    + encode(&engine::energy::Energy::default()).len()
                    + encode(&engine::Delegations::default()).len()
                    + encode(&engine::Governance::default()).len()
                    + encode(&engine::Market::default()).len()
                    + encode(&engine::reserve::Reservations::default()).len()
                    + encode(&engine::gov::Schedule::default()).len()
                    + encode(&engine::Staking::default()).len()
                    + encode(&engine::GpuClasses::default()).len()
                    + encode(&engine::Tolerances::default()).len();
                let full = full[..full.len() - cut].to_vec();
                let (key, table, old_genesis, old_state) = if format == 1 {
                    let cut = encode(&engine::Validators::default()).len() + rules.len();
                    (
                        "genesis",
                        "snapshots",
                        encode(&(
                            &genesis.params,
                            &genesis.allocations,
                            &genesis.engine,
                            &genesis.verification,
                        )),
                        full[..full.len() - cut].to_vec(),
                    )
                } else {
                    (
                        "genesis_v2",
                        "snapshots_v2",
                        encode(&(
                            &genesis.params,
                            &genesis.allocations,
                            &genesis.engine,
                            &genesis.verification,
                            &genesis.validators,
                        )),
                        full[..full.len() - rules.len()].to_vec(),
                    )
                };
                log.conn
                    .execute(
                        "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                        params![key, old_genesis],
                    )
                    .unwrap();
                log.conn
                    .execute(
                        &format!("INSERT INTO {table} (seq, state) VALUES (1, ?1)"),
                        params![old_state],
                    )
                    .unwrap();
            }
            let mut log = SqliteLog::open(dir.path()).unwrap();
            assert_eq!(
                log.genesis().unwrap(),
                Some(genesis.clone()),
                "format {format}"
            );
            let (seq, read) = log.latest_snapshot().unwrap().unwrap();
            assert_eq!((seq, read.hash()), (1, hash_then), "format {format}");
            assert_eq!(read, state, "format {format}");
            // A new snapshot is written in format 19 and replaces the old one.
            log.save_snapshot(1, &state).unwrap();
            for table in [
                "snapshots",
                "snapshots_v2",
                "snapshots_v3",
                "snapshots_v4",
                "snapshots_v5",
                "snapshots_v6",
                "snapshots_v7",
                "snapshots_v8",
                "snapshots_v9",
                "snapshots_v10",
                "snapshots_v11",
                "snapshots_v12",
                "snapshots_v13",
                "snapshots_v14",
                "snapshots_v15",
                "snapshots_v16",
                "snapshots_v17",
                "snapshots_v18",
            ] {
                let old: i64 = log
                    .conn
                    .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
                    .unwrap();
                assert_eq!(old, 0, "format {format}: {table}");
            }
            assert_eq!(log.latest_snapshot().unwrap().unwrap().1, state);
            assert!(matches!(
                log.set_genesis(&genesis),
                Err(StoreError::GenesisSet)
            ));
        }
    }

    #[test]
    fn format_3_to_18_snapshots_read_with_what_they_lacked_and_are_replaced_by_format_19() {
        for format in [3u32, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18] {
            let dir = tempfile::tempdir().unwrap();
            let mut genesis = Genesis::dev(AccountId([9; 32]));
            // The rules of the formats' times: 4 (format 3), 7 (format 4), 9 (format 5), 10
            // (format 6), 11 (format 7), 12 (format 8), 15 (format 9), 17 (format 10), 18
            // (format 11), 22 (format 12), 23 (format 13), 24 (format 14), 25 (format 15), 26
            // (format 16), 27 (format 17) and 28 (format 18).
            genesis.rules =
                [4, 7, 9, 10, 11, 12, 15, 17, 18, 22, 23, 24, 25, 26, 27, 28][format as usize - 3];
            genesis.action_fee = if format >= 5 { 3 } else { 0 };
            if format < 6 {
                genesis.storage = None;
            }
            genesis.params.min_stake = 0;
            genesis.allocations.insert(AccountId([1; 32]), 5);
            let mut state = State::from_genesis(&genesis).unwrap();
            state.apply(&register(1, 1)).unwrap();
            let hash_then = state.hash();
            let mut log = SqliteLog::open(dir.path()).unwrap();
            // The genesis as genesis format 3 wrote it (without the trailing fee per action,
            // storage price, carbon table and staking parameters), format 4 (without the
            // storage price, the table and the parameters), format 5 (without the table and the
            // parameters) or format 6 (without the parameters).
            let full_genesis = encode(&genesis);
            let fee = encode(&0u128);
            let no_price = encode(&None::<engine::StorageParams>);
            let no_table = encode(&None::<engine::CarbonTable>);
            let no_staking = encode(&None::<engine::StakingParams>).len();
            let (key, cut) = if format >= 17 {
                ("genesis_v7", 0)
            } else if format >= 16 {
                ("genesis_v6", no_staking)
            } else if format >= 6 {
                ("genesis_v5", no_table.len() + no_staking)
            } else if format == 5 {
                ("genesis_v4", no_price.len() + no_table.len() + no_staking)
            } else {
                (
                    "genesis_v3",
                    fee.len() + no_price.len() + no_table.len() + no_staking,
                )
            };
            log.conn
                .execute(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                    params![key, &full_genesis[..full_genesis.len() - cut]],
                )
                .unwrap();
            let full = encode(&state);
            let mut cut = encode(&engine::Tolerances::default()).len();
            if format <= 17 {
                cut += encode(&engine::GpuClasses::default()).len();
            }
            if format <= 16 {
                cut += encode(&engine::Staking::default()).len();
            }
            if format <= 15 {
                cut += encode(&engine::reserve::Reservations::default()).len()
                    + encode(&engine::gov::Schedule::default()).len();
            }
            if format <= 14 {
                cut += encode(&engine::Delegations::default()).len()
                    + encode(&engine::Governance::default()).len()
                    + encode(&engine::Market::default()).len();
            }
            if format <= 13 {
                cut += encode(&engine::energy::Energy::default()).len();
            }
            if format <= 12 {
                cut += encode(&engine::GpuJobs::default()).len();
            }
            if format <= 11 {
                cut += encode(&std::collections::BTreeMap::<engine::JobId, u32>::new()).len();
            }
            if format <= 10 {
                cut += encode(&std::collections::BTreeSet::<engine::TaskId>::new()).len();
            }
            if format <= 9 {
                cut += encode(&engine::Reopened::default()).len();
            }
            if format <= 8 {
                cut += encode(&engine::Private::default()).len();
            }
            if format <= 7 {
                cut += encode(&engine::Files::default()).len();
            }
            if format <= 6 {
                cut += encode(&engine::Options::default()).len();
            }
            if format <= 5 {
                cut += encode(&engine::Storage::default()).len();
            }
            if format <= 4 {
                cut += fee.len();
            }
            if format == 3 {
                cut += encode(&engine::Audits::default()).len();
            }
            log.conn
                .execute(
                    &format!("INSERT INTO snapshots_v{format} (seq, state) VALUES (1, ?1)"),
                    params![&full[..full.len() - cut]],
                )
                .unwrap();
            assert_eq!(log.genesis().unwrap(), Some(genesis.clone()));
            let (seq, read) = log.latest_snapshot().unwrap().unwrap();
            assert_eq!((seq, read.hash()), (1, hash_then), "format {format}");
            assert_eq!(read, state, "format {format}");
            log.save_snapshot(1, &state).unwrap();
            let old: i64 = log
                .conn
                .query_row(
                    &format!("SELECT COUNT(*) FROM snapshots_v{format}"),
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(old, 0);
            assert_eq!(log.latest_snapshot().unwrap().unwrap().1, state);
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

    fn history_and_genesis(log: &mut dyn CommandLog) {
        let (a, b) = (AccountId([1; 32]), AccountId([2; 32]));
        assert_eq!(log.genesis().unwrap(), None);
        let genesis = engine::Genesis::dev(a);
        log.set_genesis(&genesis).unwrap();
        assert!(matches!(
            log.set_genesis(&genesis),
            Err(StoreError::GenesisSet)
        ));
        assert_eq!(log.genesis().unwrap(), Some(genesis));
        let paid = |to: AccountId, amount| Event::FaucetPaid { to, amount };
        for n in 1..=3u64 {
            let rows = [(a, paid(a, u128::from(n))), (b, paid(b, 10))];
            let seq = log.append_with_history(&register(3, n), &rows).unwrap();
            assert_eq!(seq, n);
        }
        log.append_with_history(&register(3, 4), &[]).unwrap();
        assert_eq!(log.len(), 4);
        let rows = log.history(&a, u64::MAX, 10).unwrap();
        let seqs: Vec<u64> = rows.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, vec![3, 2, 1], "newest first");
        assert_eq!(rows[0].event, paid(a, 3));
        assert_eq!(rows[0].time, 1003);
        let page: Vec<u64> = log
            .history(&a, 3, 1)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(page, vec![2]);
        assert!(
            log.history(&AccountId([9; 32]), u64::MAX, 10)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn memory_log_keeps_history_and_genesis() {
        history_and_genesis(&mut MemoryLog::default());
    }

    #[test]
    fn sqlite_log_keeps_history_and_genesis_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        history_and_genesis(&mut SqliteLog::open(dir.path()).unwrap());
        let log = SqliteLog::open_read_only(dir.path()).unwrap();
        assert_eq!(
            log.history(&AccountId([2; 32]), u64::MAX, 10)
                .unwrap()
                .len(),
            3
        );
        assert!(log.genesis().unwrap().is_some());
    }

    fn batch_with_history(log: &mut dyn CommandLog) {
        let (a, b) = (AccountId([1; 32]), AccountId([2; 32]));
        let paid = |to: AccountId, amount| Event::FaucetPaid { to, amount };
        log.append(&[register(9, 1)]).unwrap();
        assert_eq!(log.append_batch_with_history(Vec::new()).unwrap(), 1);
        let batch = vec![
            (register(3, 1), vec![(a, paid(a, 1)), (b, paid(b, 2))]),
            (register(3, 2), vec![]),
            (register(3, 3), vec![(a, paid(a, 3))]),
        ];
        assert_eq!(log.append_batch_with_history(batch.clone()).unwrap(), 4);
        assert_eq!(log.len(), 4);
        let stored: Vec<Entry> = log.read_after(1).unwrap();
        let appended: Vec<Entry> = batch.iter().map(|(e, _)| e.clone()).collect();
        assert_eq!(stored, appended);
        let rows = log.history(&a, u64::MAX, 10).unwrap();
        let seqs: Vec<(u64, Time)> = rows.iter().map(|r| (r.seq, r.time)).collect();
        assert_eq!(
            seqs,
            vec![(4, 1003), (2, 1001)],
            "each row carries its own entry's seq"
        );
        assert_eq!(rows[0].event, paid(a, 3));
        assert_eq!(log.history(&b, u64::MAX, 10).unwrap()[0].seq, 2);
    }

    #[test]
    fn memory_log_appends_a_batch_with_history() {
        batch_with_history(&mut MemoryLog::default());
    }

    #[test]
    fn sqlite_log_appends_a_batch_with_history_atomically() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = SqliteLog::open(dir.path()).unwrap();
            batch_with_history(&mut log);
            // Entry 6 is taken behind the log's back: a batch for 5..=7 fails at its second entry
            // and must leave nothing of itself behind, history included.
            log.conn
                .execute("INSERT INTO log (seq, entry) VALUES (6, x'00')", [])
                .unwrap();
            let c = AccountId([7; 32]);
            let batch = vec![
                (
                    register(4, 1),
                    vec![(c, Event::FaucetPaid { to: c, amount: 1 })],
                ),
                (register(4, 2), vec![]),
                (register(4, 3), vec![]),
            ];
            assert!(log.append_batch_with_history(batch.clone()).is_err());
            assert_eq!(log.len(), 4);
            assert!(log.history(&c, u64::MAX, 10).unwrap().is_empty());
            log.conn
                .execute("DELETE FROM log WHERE seq = 6", [])
                .unwrap();
            assert_eq!(log.append_batch_with_history(batch.clone()).unwrap(), 7);
        }
        let log = SqliteLog::open(dir.path()).unwrap();
        assert_eq!(log.len(), 7);
        assert_eq!(log.read_after(0).unwrap().len(), 7);
        assert_eq!(
            log.history(&AccountId([7; 32]), u64::MAX, 10).unwrap()[0].seq,
            5
        );
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

    fn block(height: u64, last_seq: u64) -> Block {
        Block {
            header: engine::BlockHeader {
                height,
                prev_hash: engine::Hash([height as u8; 32]),
                time: 1000 + height,
                first_seq: last_seq,
                last_seq,
                commands_root: engine::Hash([1; 32]),
                state_hash: engine::Hash([2; 32]),
                validator: AccountId([3; 32]),
            },
            signature: Sig([4; 64]),
        }
    }

    fn blocks_and_raw_entries(log: &mut dyn CommandLog) {
        assert_eq!(log.last_block().unwrap(), None);
        log.append(&[register(1, 1), register(2, 1), register(3, 1)])
            .unwrap();
        let raw = log.raw_entries(1, 10).unwrap();
        assert_eq!(raw.len(), 2);
        assert_eq!(raw[0].0, 2);
        assert_eq!(raw[0].1, postcard::to_stdvec(&register(2, 1)).unwrap());
        assert_eq!(log.raw_entries(0, 1).unwrap().len(), 1);
        assert!(log.raw_entries(3, 10).unwrap().is_empty());

        // Heights must run 1, 2, 3…: a gap or a repeat is refused.
        assert!(matches!(
            log.append_block(&block(2, 1)),
            Err(StoreError::BlockOutOfOrder { height: 2, last: 0 })
        ));
        log.append_block(&block(1, 1)).unwrap();
        log.append_block(&block(2, 3)).unwrap();
        assert!(log.append_block(&block(2, 3)).is_err());
        assert_eq!(log.last_block().unwrap(), Some(block(2, 3)));
        assert_eq!(
            log.blocks_after(0, 10).unwrap(),
            vec![block(1, 1), block(2, 3)]
        );
        assert_eq!(log.blocks_after(1, 10).unwrap(), vec![block(2, 3)]);
        assert_eq!(log.blocks_after(0, 1).unwrap(), vec![block(1, 1)]);
        assert!(log.blocks_after(2, 10).unwrap().is_empty());
    }

    #[test]
    fn memory_log_keeps_blocks() {
        blocks_and_raw_entries(&mut MemoryLog::default());
    }

    #[test]
    fn sqlite_log_keeps_blocks_and_opens_read_only() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = SqliteLog::open(dir.path()).unwrap();
            blocks_and_raw_entries(&mut log);
        }
        let mut ro = SqliteLog::open_read_only(dir.path()).unwrap();
        assert_eq!(ro.len(), 3);
        assert_eq!(ro.last_block().unwrap(), Some(block(2, 3)));
        assert_eq!(ro.raw_entries(0, 10).unwrap().len(), 3);
        // Nothing can be written through it.
        assert!(ro.append(&[register(4, 1)]).is_err());
        assert!(ro.append_block(&block(3, 3)).is_err());
        drop(ro);
        {
            let log = SqliteLog::open(dir.path()).unwrap();
            assert_eq!(log.len(), 3);
            // A damaged block is reported with its height.
            log.conn
                .execute("UPDATE blocks SET block = x'01' WHERE height = 2", [])
                .unwrap();
        }
        let ro = SqliteLog::open_read_only(dir.path()).unwrap();
        match ro.blocks_after(0, 10) {
            Err(StoreError::CorruptBlock { height: 2, .. }) => {}
            other => panic!("expected corrupt block 2, got {other:?}"),
        }

        let missing = tempfile::tempdir().unwrap();
        assert!(SqliteLog::open_read_only(missing.path()).is_err());
        assert!(!missing.path().join("gridmint.sqlite").exists());
    }

    #[test]
    fn read_only_open_of_a_closed_log_leaves_no_files_behind() {
        let root = tempfile::tempdir().unwrap();
        // Characters that mean something in a URI.
        let dir = root.path().join("a dir?x=1#%");
        SqliteLog::open(&dir)
            .unwrap()
            .append(&[register(1, 1)])
            .unwrap();
        let names = || {
            let mut v: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(), ["gridmint.sqlite", "history.sqlite"]);
        let ro = SqliteLog::open_read_only(&dir).unwrap();
        assert_eq!(ro.raw_entries(0, 10).unwrap().len(), 1);
        assert_eq!(ro.last_block().unwrap(), None);
        drop(ro);
        assert_eq!(names(), ["gridmint.sqlite", "history.sqlite"]);
    }

    #[test]
    fn read_only_open_sees_what_a_live_writer_has_committed() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = SqliteLog::open(dir.path()).unwrap();
        writer.append(&[register(1, 1)]).unwrap();
        let ro = SqliteLog::open_read_only(dir.path()).unwrap();
        writer.append(&[register(2, 1)]).unwrap();
        writer.append_block(&block(1, 2)).unwrap();
        assert_eq!(ro.raw_entries(0, 10).unwrap().len(), 2);
        assert_eq!(ro.last_block().unwrap(), Some(block(1, 2)));
    }

    #[test]
    fn a_log_from_before_blocks_reads_as_having_none() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = SqliteLog::open(dir.path()).unwrap();
            log.conn.execute("DROP TABLE blocks", []).unwrap();
        }
        let ro = SqliteLog::open_read_only(dir.path()).unwrap();
        assert_eq!(ro.last_block().unwrap(), None);
        assert!(ro.blocks_after(0, 10).unwrap().is_empty());
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

#[cfg(test)]
mod set_change_tests {
    use super::*;

    fn change(height: u64) -> SetChange {
        SetChange {
            block: Block {
                header: engine::BlockHeader {
                    height,
                    prev_hash: engine::Hash([1; 32]),
                    time: height,
                    first_seq: height,
                    last_seq: height,
                    commands_root: engine::Hash([2; 32]),
                    state_hash: engine::Hash([3; 32]),
                    validator: AccountId([4; 32]),
                },
                signature: Sig([5; 64]),
            },
            validators: engine::Validators::default(),
            rest: engine::Hash([6; 32]),
            signatures: vec![(AccountId([7; 32]), Sig([8; 64]))],
        }
    }

    /// Set changes are kept by height (a second record of one height replaces the first), read
    /// back in order, survive a reopen, and a record of an unknown format is refused by name.
    #[test]
    fn set_changes_are_recorded_by_height_and_an_unknown_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = SqliteLog::open(dir.path()).unwrap();
            assert!(log.set_changes().unwrap().is_empty());
            log.record_set_change(&change(9)).unwrap();
            log.record_set_change(&change(4)).unwrap();
            let mut again = change(9);
            again.signatures.clear();
            log.record_set_change(&again).unwrap();
        }
        let log = SqliteLog::open(dir.path()).unwrap();
        let got = log.set_changes().unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], change(4));
        assert!(got[1].signatures.is_empty());
        log.conn
            .execute("UPDATE set_changes SET format = 7 WHERE height = 4", [])
            .unwrap();
        let err = log.set_changes().unwrap_err().to_string();
        assert!(err.contains("format 7") && err.contains("reads 1"), "{err}");
    }
}

#[cfg(test)]
mod history_format_tests {
    use super::tests::register;
    use super::*;
    use crate::history_rows;
    use engine::{Action, Input, Signed};

    fn paid(to: AccountId, amount: u128) -> Event {
        Event::FaucetPaid { to, amount }
    }

    /// A log written before history format 3 keeps its format 1 rows (one event each) and format
    /// 2 rows (one per account per entry) in `gridmint.sqlite`; entries appended since have their
    /// rows (one per account per entry) in `history.sqlite`, and a page reads all three, newest
    /// first, an entry's events last to first, cut at the limit.
    #[test]
    fn history_reads_format_1_and_2_rows_beside_format_3_rows() {
        let dir = tempfile::tempdir().unwrap();
        let a = AccountId([1; 32]);
        let mut log = SqliteLog::open(dir.path()).unwrap();
        // The tables as a gridmint before format 3 created them, with a row of each format.
        log.conn
            .execute_batch(
                "CREATE TABLE history (
                     account BLOB NOT NULL, seq INTEGER NOT NULL, idx INTEGER NOT NULL,
                     time INTEGER NOT NULL, event BLOB NOT NULL);
                 CREATE INDEX history_by_account ON history (account, seq, idx);
                 CREATE TABLE history_v2 (
                     account BLOB NOT NULL, seq INTEGER NOT NULL, time INTEGER NOT NULL,
                     events BLOB NOT NULL);
                 CREATE INDEX history_v2_by_account ON history_v2 (account, seq);",
            )
            .unwrap();
        for (idx, amount) in [1u128, 2].into_iter().enumerate() {
            log.conn
                .execute(
                    "INSERT INTO history (account, seq, idx, time, event)
                     VALUES (?1, 1, ?2, 1001, ?3)",
                    params![
                        &a.0[..],
                        idx as i64,
                        serde_json::to_vec(&paid(a, amount)).unwrap()
                    ],
                )
                .unwrap();
        }
        log.conn
            .execute(
                "INSERT INTO history_v2 (account, seq, time, events) VALUES (?1, 2, 1002, ?2)",
                params![
                    &a.0[..],
                    serde_json::to_vec(&[paid(a, 3), paid(a, 4)]).unwrap()
                ],
            )
            .unwrap();
        log.append(&[register(3, 1), register(3, 2)]).unwrap();
        let rows = [(a, paid(a, 5)), (a, paid(a, 6)), (a, paid(a, 7))];
        assert_eq!(log.append_with_history(&register(3, 3), &rows).unwrap(), 3);
        log.history_barrier().wait().unwrap();
        let stored: i64 = log
            .history_reader
            .as_ref()
            .unwrap()
            .query_row("SELECT COUNT(*) FROM history", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, 1, "one row for the account's three events");
        let amounts = |rows: Vec<HistoryRow>| {
            rows.into_iter()
                .map(|r| match r.event {
                    Event::FaucetPaid { amount, .. } => (r.seq, amount),
                    other => panic!("{other:?}"),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            amounts(log.history(&a, u64::MAX, 10).unwrap()),
            [(3, 7), (3, 6), (3, 5), (2, 4), (2, 3), (1, 2), (1, 1)]
        );
        assert_eq!(
            amounts(log.history(&a, u64::MAX, 2).unwrap()),
            [(3, 7), (3, 6)]
        );
        assert_eq!(
            amounts(log.history(&a, 3, 10).unwrap()),
            [(2, 4), (2, 3), (1, 2), (1, 1)]
        );
        let ro = SqliteLog::open_read_only(dir.path()).unwrap();
        assert_eq!(amounts(ro.history(&a, u64::MAX, 3).unwrap()).len(), 3);
    }

    /// A faucet payment to `who` at `time`, its first signed action.
    fn faucet(who: AccountId, time: u64) -> Entry {
        Entry {
            time,
            input: Input::Signed(Signed {
                signer: who,
                nonce: 1,
                body: Action::Faucet,
                signature: Sig([0; 64]),
            }),
        }
    }

    /// What a crash does to the history file of the log in `dir`: the rows of the entries
    /// after `seq` are gone, and it says it is complete through `seq`.
    fn lose_history_after(dir: &Path, seq: i64) {
        let conn = Connection::open(dir.join(history::FILE)).unwrap();
        conn.execute("DELETE FROM history WHERE seq > ?1", [seq])
            .unwrap();
        conn.execute("UPDATE meta SET value = ?1 WHERE key = 'through'", [seq])
            .unwrap();
    }

    /// A log in a new directory with the dev genesis and faucet payments to `count` accounts,
    /// each appended with its history rows and followed by `after(log, seq, state)`. Returns the
    /// directory, the open log, the genesis state, the state after the payments and the accounts
    /// whose histories they wrote (the treasury last).
    fn faucet_log(
        count: u8,
        mut after: impl FnMut(&mut SqliteLog, u64, &State),
    ) -> (tempfile::TempDir, SqliteLog, State, State, Vec<AccountId>) {
        let dir = tempfile::tempdir().unwrap();
        let treasury = AccountId([0xee; 32]);
        let genesis = engine::Genesis::dev(treasury);
        let fresh = State::from_genesis(&genesis).unwrap();
        let mut live = fresh.clone();
        let mut log = SqliteLog::open(dir.path()).unwrap();
        log.set_genesis(&genesis).unwrap();
        let mut whose: Vec<AccountId> = (1..=count).map(|n| AccountId([n; 32])).collect();
        for (n, who) in (1u64..).zip(&whose) {
            let entry = faucet(*who, 1000 + n);
            let events = live.apply(&entry).unwrap();
            let rows = history_rows(&live, &events);
            assert!(!rows.is_empty());
            log.append_with_history(&entry, &rows).unwrap();
            after(&mut log, n, &live);
        }
        whose.push(treasury);
        (dir, log, fresh, live, whose)
    }

    /// The histories of `whose` in `log`.
    fn histories(log: &SqliteLog, whose: &[AccountId]) -> Vec<Vec<HistoryRow>> {
        whose
            .iter()
            .map(|who| log.history(who, u64::MAX, 100).unwrap())
            .collect()
    }

    /// The history rows are written after their entries' transactions: rows a crash lost are
    /// made again on the next start, by replaying from the snapshot when it is not past them,
    /// and from the genesis when it is.
    #[test]
    fn history_rows_lost_in_a_crash_are_made_again_on_start() {
        let (dir, log, fresh, live, whose) = faucet_log(6, |log, n, live| {
            if n == 3 {
                log.save_snapshot(3, live).unwrap();
            }
        });
        let expected = histories(&log, &whose);
        assert_eq!(log.history_through(), 6);
        drop(log);
        for lost_after in [4, 2] {
            lose_history_after(dir.path(), lost_after);
            let mut log = SqliteLog::open(dir.path()).unwrap();
            assert_eq!(log.history_through(), lost_after as u64);
            let state = recover_with_history(&mut log, fresh.clone()).unwrap();
            assert_eq!(state.hash(), live.hash());
            log.history_barrier().wait().unwrap();
            assert_eq!(log.history_through(), 6);
            assert_eq!(histories(&log, &whose), expected, "lost after {lost_after}");
        }
    }

    /// A log in `dir` with three entries, each with a history row paying `a`.
    fn paid_thrice(dir: &Path, a: AccountId) -> SqliteLog {
        let mut log = SqliteLog::open(dir).unwrap();
        for n in 1..=3 {
            log.append_with_history(&register(1, n), &[(a, paid(a, u128::from(n as u8)))])
                .unwrap();
        }
        log
    }

    /// The writer writes queued rows on its own (after at most `MAX_DELAY`), not only when
    /// someone waits for them.
    #[test]
    fn history_rows_are_written_without_a_reader() {
        let dir = tempfile::tempdir().unwrap();
        let a = AccountId([1; 32]);
        let log = paid_thrice(dir.path(), a);
        let start = std::time::Instant::now();
        while log.history_through() < 3 {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "the rows were never written"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(log.history(&a, u64::MAX, 10).unwrap().len(), 3);
    }

    /// A snapshot does not wait for the history rows: while they lag, the newest snapshot
    /// before them is kept, and a crash that loses them replays from it.
    #[test]
    fn a_snapshot_past_the_history_rows_keeps_the_one_before_them() {
        let (dir, mut log, fresh, live, whose) = faucet_log(5, |log, n, live| {
            if n == 3 {
                log.history_barrier().wait().unwrap();
                log.save_snapshot(3, live).unwrap();
            }
        });
        let expected = {
            // The rows of 4 and 5 are queued, and written within `MAX_DELAY` unless waited for.
            log.save_snapshot(5, &live).unwrap();
            let through = log.history_through();
            assert_eq!(log.latest_snapshot().unwrap().unwrap().0, 5);
            if through < 5 {
                // They had not been written when the snapshot was saved (nor since).
                assert_eq!(log.snapshot_at_or_before(through).unwrap().unwrap().0, 3);
            }
            let expected = histories(&log, &whose);
            // Once the rows pass the newest snapshot, the next snapshot drops the older ones.
            log.save_snapshot(5, &live).unwrap();
            assert!(log.snapshot_at_or_before(4).unwrap().is_none());
            expected
        };
        drop(log);
        // A crash lost the rows after 3: replayed from snapshot 3 (kept again for the test,
        // as the lagging save kept it), they are all made again.
        lose_history_after(dir.path(), 3);
        let mut log = SqliteLog::open(dir.path()).unwrap();
        let mut at_three = fresh.clone();
        for entry in log.read_after(0).unwrap().iter().take(3) {
            at_three.apply(entry).unwrap();
        }
        log.conn
            .execute(
                "INSERT INTO snapshots_v19 (seq, state) VALUES (3, ?1)",
                [encode(&at_three)],
            )
            .unwrap();
        assert_eq!(log.snapshot_at_or_before(3).unwrap().unwrap().0, 3);
        let state = recover_with_history(&mut log, fresh).unwrap();
        assert_eq!(state.hash(), live.hash());
        log.history_barrier().wait().unwrap();
        assert_eq!(histories(&log, &whose), expected);
    }

    /// Snapshots past rows that are never written (a failed writer) are not all kept.
    #[test]
    fn at_most_four_snapshots_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SqliteLog::open(dir.path()).unwrap();
        let state = State::new(engine::EngineConfig::default());
        for seq in 10..=15 {
            log.save_snapshot(seq, &state).unwrap();
        }
        let kept: Vec<i64> = log
            .conn
            .prepare("SELECT seq FROM snapshots_v19 ORDER BY seq")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(kept, [12, 13, 14, 15]);
        assert_eq!(log.snapshot_at_or_before(13).unwrap().unwrap().0, 13);
        assert!(log.snapshot_at_or_before(11).unwrap().is_none());
    }

    /// A validator's log (`synchronous = NORMAL`) may lose its last transactions to a power cut
    /// while their history rows survive: the rows of entries it no longer has are dropped, and
    /// written again when the entries are.
    #[test]
    fn history_rows_past_the_end_of_the_log_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let a = AccountId([1; 32]);
        {
            let log = paid_thrice(dir.path(), a);
            log.history_barrier().wait().unwrap();
            log.conn
                .execute("DELETE FROM log WHERE seq = 3", [])
                .unwrap();
        }
        let mut log = SqliteLog::open(dir.path()).unwrap();
        assert_eq!((log.len(), log.history_through()), (2, 2));
        assert_eq!(log.history(&a, u64::MAX, 10).unwrap().len(), 2);
        log.append_with_history(&register(1, 3), &[(a, paid(a, 3))])
            .unwrap();
        let seqs: Vec<u64> = log
            .history(&a, u64::MAX, 10)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(seqs, [3, 2, 1]);
    }

    #[test]
    fn a_history_file_of_another_format_is_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteLog::open(dir.path()).unwrap());
        Connection::open(dir.path().join(history::FILE))
            .unwrap()
            .execute_batch("PRAGMA user_version = 9;")
            .unwrap();
        let err = SqliteLog::open(dir.path()).err().unwrap().to_string();
        assert!(
            err.contains("version 9") && err.contains("reads version 3"),
            "{err}"
        );
        let err = SqliteLog::open_read_only(dir.path())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("version 9") && err.contains("reads version 3"),
            "{err}"
        );
    }
}
