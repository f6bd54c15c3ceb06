//! Accounts' histories, format 3: the rows behind [`crate::CommandLog::history`], kept in
//! `history.sqlite` beside the command log and written by a thread of their own after the
//! entries they come from are committed.
//!
//! Formats 1 and 2 (tables `history` and `history_v2` of `gridmint.sqlite`, still read) were
//! written in the commit's transaction: every group commit updated a page of the per-account
//! index for each account it touched and encoded each account's events as JSON on the committing
//! thread, most of a signed transfer's commit time. The rows are derived from the log (the events
//! of replaying it, under the accounts each concerns: [`history_rows`]), so they need not be
//! durable with their entry: the file records the entry its rows are complete through, and on
//! start the rows of the entries after it are made again by the replay that rebuilds the state
//! ([`crate::recover_with_history`]). A snapshot is saved only once the rows of the entries it
//! covers are on disk, so replaying from the newest snapshot always reaches back far enough.
//! Readers wait until the rows of every entry committed before they asked are written.

use crate::StoreError;
use engine::{AccountId, Event, State, Time};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// The file, in the log's directory.
pub(crate) const FILE: &str = "history.sqlite";

/// The history format `history.sqlite` holds (its `user_version`). Formats 1 and 2 live in
/// `gridmint.sqlite` and are read where they are.
pub(crate) const FORMAT: u32 = 3;

/// The writer writes what is queued once this many entries are waiting (or [`MAX_DELAY`] after
/// the oldest was queued, or at once when someone waits for the rows). A write touches a page of
/// the per-account index for each account it concerns, whatever the number of rows that go on
/// that page: writing many entries' rows in one transaction writes each such page once, where
/// one transaction per group commit wrote it again for every group (and its I/O slowed the
/// command log's own commits on the same disk).
const FLUSH_ENTRIES: u64 = 8192;

/// Longest the writer leaves queued rows unwritten when nobody waits for them.
const MAX_DELAY: std::time::Duration = std::time::Duration::from_millis(250);

/// Entries the committing thread may have queued, unwritten, before it waits for the writer.
const QUEUE_ENTRIES: u64 = 4 * FLUSH_ENTRIES;

/// The history rows of one logged entry (none for an entry that concerns no account).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryHistory {
    pub seq: u64,
    pub time: Time,
    /// Each event under every account it concerns, in the order they happened.
    pub rows: Vec<(AccountId, Event)>,
}

/// The history rows of `events` (what applying one entry to reach `state` gave): each event
/// under every account it concerns.
pub fn history_rows(state: &State, events: &[Event]) -> Vec<(AccountId, Event)> {
    let mut rows = Vec::with_capacity(2 * events.len());
    for event in events {
        for account in state.event_accounts(event) {
            rows.push((account, event.clone()));
        }
    }
    rows
}

/// One row per account, its events in the order they happened, accounts in order of first
/// appearance.
pub(crate) fn by_account(rows: &[(AccountId, Event)]) -> Vec<(&AccountId, Vec<&Event>)> {
    let mut accounts: Vec<(&AccountId, Vec<&Event>)> = Vec::new();
    let mut index: HashMap<&AccountId, usize> = HashMap::new();
    for (account, event) in rows {
        let at = *index.entry(account).or_insert_with(|| {
            accounts.push((account, Vec::new()));
            accounts.len() - 1
        });
        if let Some((_, events)) = accounts.get_mut(at) {
            events.push(event);
        }
    }
    accounts
}

/// How far the writer got, and what it has to write.
#[derive(Debug, Default)]
struct Progress {
    /// The last entry whose rows were queued.
    queued: u64,
    /// The last entry whose rows are written (and fsync'd).
    written: u64,
    /// Why the writer stopped: it writes nothing more (the next start writes the rows again).
    failed: Option<String>,
    /// Rows queued and not yet taken by the writer, in log order.
    pending: Vec<EntryHistory>,
    /// When the oldest of `pending` was queued.
    pending_since: Option<std::time::Instant>,
    /// Callers waiting for rows to be written: the writer writes at once.
    waiters: usize,
    /// No more rows come: the writer writes what is pending and stops.
    closed: bool,
}

impl Progress {
    /// Entries queued and not yet written (those pending and those being written).
    fn unwritten(&self) -> u64 {
        self.queued.saturating_sub(self.written)
    }
}

#[derive(Debug, Default)]
struct Shared {
    progress: Mutex<Progress>,
    /// Signalled when `written` moves or the writer fails (for waiters and the committer).
    changed: Condvar,
    /// Signalled when the writer has something to do (rows queued, a waiter, closing).
    work: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until the rows of every entry up to `seq` are written.
    fn wait(&self, seq: u64, path: &Path) -> Result<(), StoreError> {
        let mut progress = self.lock();
        progress.waiters += 1;
        self.work.notify_one();
        let result = loop {
            if let Some(why) = &progress.failed {
                break Err(StoreError::History {
                    path: path.display().to_string(),
                    msg: why.clone(),
                });
            }
            if progress.written >= seq {
                break Ok(());
            }
            progress = self
                .changed
                .wait(progress)
                .unwrap_or_else(|p| p.into_inner());
        };
        progress.waiters -= 1;
        result
    }
}

/// A point to wait for: the rows of every entry committed when it was taken are written.
/// Taken under whatever lock guards the log, waited for outside it.
#[derive(Debug, Default)]
pub struct HistoryBarrier(Option<(Arc<Shared>, u64, PathBuf)>);

impl HistoryBarrier {
    /// A barrier with nothing to wait for (a log that writes history with its entries).
    pub fn none() -> HistoryBarrier {
        HistoryBarrier(None)
    }

    /// Waits for it; an error if the writer stopped.
    pub fn wait(&self) -> Result<(), StoreError> {
        match &self.0 {
            Some((shared, seq, path)) => shared.wait(*seq, path),
            None => Ok(()),
        }
    }
}

/// The writing half: queues rows for the thread that writes them.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
}

impl Writer {
    /// Opens (creating it with rows complete through `through_if_new`) `path` for writing, for a
    /// log of `len` entries, and starts the writer thread.
    pub(crate) fn open(path: &Path, through_if_new: u64, len: u64) -> Result<Writer, StoreError> {
        let err = |source| StoreError::Sqlite {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        let format: u32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)?;
        if format != 0 && format != FORMAT {
            return Err(StoreError::Version {
                what: format!("the account history {}", path.display()),
                found: format.to_string(),
                supported: FORMAT,
            });
        }
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             -- 64 MiB of page cache (default 2 MiB): a write touches a page of the index per
             -- account, and pages that do not stay cached are spilled and read back.
             PRAGMA cache_size = -65536;
             BEGIN;
             -- One row per account per entry, its events in order as one JSON array (the rows
             -- of format 2); rows go in in log order, the index serves per-account pages.
             CREATE TABLE IF NOT EXISTS history (
                 account BLOB NOT NULL,
                 seq     INTEGER NOT NULL,
                 time    INTEGER NOT NULL,
                 events  BLOB NOT NULL
             );
             CREATE INDEX IF NOT EXISTS history_by_account ON history (account, seq);
             -- `through`: the rows of every entry up to it are here.
             CREATE TABLE IF NOT EXISTS meta (
                 key   TEXT PRIMARY KEY,
                 value INTEGER NOT NULL
             );
             INSERT OR IGNORE INTO meta (key, value) VALUES ('through', {through});
             PRAGMA user_version = {FORMAT};
             COMMIT;",
            through = to_sql(through_if_new)
        ))
        .map_err(err)?;
        let written: i64 = conn
            .query_row("SELECT value FROM meta WHERE key = 'through'", [], |r| {
                r.get(0)
            })
            .map_err(err)?;
        let mut written = u64::try_from(written).unwrap_or(0);
        if written > len {
            // Rows of entries the log no longer has: a validator's log (`synchronous = NORMAL`)
            // lost its last transactions to a power cut; they are executed again, and their
            // rows written again.
            conn.execute_batch(&format!(
                "BEGIN;
                 DELETE FROM history WHERE seq > {len};
                 UPDATE meta SET value = {len} WHERE key = 'through';
                 COMMIT;",
                len = to_sql(len)
            ))
            .map_err(err)?;
            written = len;
        }
        let shared = Arc::new(Shared::default());
        {
            let mut progress = shared.lock();
            progress.queued = written;
            progress.written = written;
        }
        let thread = std::thread::Builder::new()
            .name("history-writer".into())
            .spawn({
                let shared = shared.clone();
                move || run(conn, &shared)
            })
            .map_err(|source| StoreError::Io {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Writer {
            shared,
            thread: Some(thread),
            path: path.to_path_buf(),
        })
    }

    /// The last entry whose rows are written.
    pub(crate) fn written(&self) -> u64 {
        self.shared.lock().written
    }

    /// Queues the rows of entries logged in order after those queued before (an entry with no
    /// rows moves the mark on all the same). Waits while [`QUEUE_ENTRIES`] are unwritten,
    /// unless the writer failed (it writes nothing more).
    pub(crate) fn queue(&mut self, batch: Vec<EntryHistory>) {
        let Some(last) = batch.last().map(|e| e.seq) else {
            return;
        };
        let mut progress = self.shared.lock();
        while progress.unwritten() >= QUEUE_ENTRIES && progress.failed.is_none() {
            progress = self
                .shared
                .changed
                .wait(progress)
                .unwrap_or_else(|p| p.into_inner());
        }
        progress.queued = last;
        if progress.failed.is_some() {
            return;
        }
        if progress.pending.is_empty() {
            progress.pending_since = Some(std::time::Instant::now());
        }
        progress.pending.extend(batch);
        drop(progress);
        self.shared.work.notify_one();
    }

    /// A barrier that opens once the rows of every entry queued so far are written.
    pub(crate) fn barrier(&self) -> HistoryBarrier {
        let queued = self.shared.lock().queued;
        HistoryBarrier(Some((self.shared.clone(), queued, self.path.clone())))
    }
}

impl Drop for Writer {
    /// Writes what is queued, then stops the thread.
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.work.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread: everything queued since its last write goes in one transaction, once
/// [`FLUSH_ENTRIES`] are queued, [`MAX_DELAY`] after the oldest was, when someone waits for
/// the rows, or when the log closes.
fn run(mut conn: Connection, shared: &Shared) {
    let mut progress = shared.lock();
    loop {
        let due = match progress.pending_since {
            None => None,
            Some(since) => {
                if progress.waiters > 0 || progress.closed || progress.unwritten() >= FLUSH_ENTRIES
                {
                    Some(std::time::Duration::ZERO)
                } else {
                    Some(MAX_DELAY.saturating_sub(since.elapsed()))
                }
            }
        };
        match due {
            None if progress.closed => return,
            None => {
                progress = shared
                    .work
                    .wait(progress)
                    .unwrap_or_else(|p| p.into_inner());
            }
            Some(wait) if !wait.is_zero() => {
                progress = shared
                    .work
                    .wait_timeout(progress, wait)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            Some(_) => {
                let batch = std::mem::take(&mut progress.pending);
                progress.pending_since = None;
                drop(progress);
                let result = write(&mut conn, &batch);
                progress = shared.lock();
                match result {
                    Ok(Some(last)) => progress.written = last,
                    Ok(None) => {}
                    Err(e) => {
                        progress.failed = Some(e.to_string());
                        progress.pending = Vec::new();
                        progress.pending_since = None;
                    }
                }
                shared.changed.notify_all();
            }
        }
    }
}

/// Writes `batch` and moves `through` to its last entry, in one transaction.
fn write(conn: &mut Connection, batch: &[EntryHistory]) -> rusqlite::Result<Option<u64>> {
    let Some(last) = batch.last().map(|e| e.seq) else {
        return Ok(None);
    };
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO history (account, seq, time, events) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for entry in batch {
            for (account, events) in by_account(&entry.rows) {
                insert.execute(params![
                    &account.0[..],
                    to_sql(entry.seq),
                    to_sql(entry.time),
                    // JSON: events are internally tagged, which postcard cannot decode.
                    serde_json::to_vec(&events).unwrap_or_default()
                ])?;
            }
        }
    }
    tx.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'through'",
        params![to_sql(last)],
    )?;
    tx.commit()?;
    Ok(Some(last))
}

/// Opens `path` to read, if it exists: immutable when no write-ahead log is beside it (nobody
/// writes it), otherwise through the write-ahead log, as `SqliteLog::open_read_only` opens the log.
pub(crate) fn open_reader(path: &Path, read_only: bool) -> Result<Option<Connection>, StoreError> {
    use rusqlite::OpenFlags;
    if !path.is_file() {
        return Ok(None);
    }
    let err = |source| StoreError::Sqlite {
        path: path.display().to_string(),
        source,
    };
    let conn = if read_only {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let uri = format!(
            "file:{}{}",
            crate::log::uri_path(path),
            if Path::new(&wal).exists() {
                ""
            } else {
                "?immutable=1"
            }
        );
        Connection::open_with_flags(
            uri,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(err)?
    } else {
        Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?
    };
    let format: Option<u32> = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .optional()
        .map_err(err)?;
    match format {
        Some(FORMAT) => Ok(Some(conn)),
        found => Err(StoreError::Version {
            what: format!("the account history {}", path.display()),
            found: found.unwrap_or(0).to_string(),
            supported: FORMAT,
        }),
    }
}

fn to_sql(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
