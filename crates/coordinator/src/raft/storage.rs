//! openraft's two storage halves for a validator.
//!
//! - [`LogStore`]: the consensus log in `raft.sqlite` ([`store::RaftDb`]): proposals numbered by
//!   Raft, the vote and the committed position, each write fsync'd before it is reported done.
//! - [`StateMachine`]: the validator's [`Node`] — engine state, command log, blocks. Applying a
//!   committed proposal is [`Node::execute`], which appends what the engine accepted together
//!   with the Raft position it came from (`meta["raft_applied"]`) in one SQLite transaction, so a
//!   restart resumes exactly after the last proposal that changed anything. Proposals that
//!   changed nothing are simply executed again on restart, with the same (empty) result.

use super::TypeConfig;
use crate::node::Node;
use crate::proposal::Outcome;
use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    AnyError, Entry, EntryPayload, LogId, LogState, OptionalSend, RaftLogReader,
    RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StorageIOError, StoredMembership,
    Vote,
};
use std::fmt::Debug;
use std::io::Cursor;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex, MutexGuard};
use store::RaftDb;

type NodeId = u64;
type Membership = StoredMembership<NodeId, openraft::BasicNode>;

/// Meta key of the Raft position the command log is applied up to.
pub const APPLIED_KEY: &str = "raft_applied";

fn io_err(e: impl std::fmt::Display) -> AnyError {
    AnyError::error(e.to_string())
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, AnyError> {
    postcard::to_stdvec(value).map_err(io_err)
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, AnyError> {
    postcard::from_bytes(bytes).map_err(io_err)
}

/// The consensus log. Cheap to clone: clones share the database.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Mutex<RaftDb>>,
}

impl LogStore {
    pub fn new(db: RaftDb) -> LogStore {
        LogStore {
            db: Arc::new(Mutex::new(db)),
        }
    }

    fn db(&self) -> MutexGuard<'_, RaftDb> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, AnyError> {
        self.db()
            .get(key)
            .map_err(io_err)?
            .map(|b| decode(&b))
            .transpose()
    }

    fn set<T: serde::Serialize>(&self, key: &str, value: &T) -> Result<(), AnyError> {
        self.db().set(key, &encode(value)?).map_err(io_err)
    }

    /// Whether nothing was ever stored (a validator starting for the first time).
    pub fn is_new(&self) -> Result<bool, AnyError> {
        Ok(self.db().last().map_err(io_err)?.is_none()
            && self.get::<Vote<NodeId>>("vote")?.is_none())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let start = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => x.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(x) => x.saturating_add(1),
            Bound::Excluded(x) => *x,
            Bound::Unbounded => u64::MAX,
        };
        let rows = self
            .db()
            .range(start, end)
            .map_err(|e| StorageIOError::read_logs(io_err(e)))?;
        let mut entries = Vec::with_capacity(rows.len());
        for (_, bytes) in &rows {
            entries.push(decode(bytes).map_err(StorageIOError::read_logs)?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let purged: Option<LogId<NodeId>> = self
            .get("purged")
            .map_err(StorageIOError::read_logs)?
            .flatten();
        let last = self
            .db()
            .last()
            .map_err(|e| StorageIOError::read_logs(io_err(e)))?;
        let last = match last {
            Some((_, bytes)) => {
                let entry: Entry<TypeConfig> = decode(&bytes).map_err(StorageIOError::read_logs)?;
                Some(entry.log_id)
            }
            None => purged,
        };
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.set("vote", vote)
            .map_err(|e| StorageIOError::write_vote(e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        self.get("vote")
            .map_err(|e| StorageIOError::read_vote(e).into())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        self.set("committed", &committed)
            .map_err(|e| StorageIOError::write_logs(e).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self
            .get::<Option<LogId<NodeId>>>("committed")
            .map_err(StorageIOError::read_logs)?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let rows = entries
            .into_iter()
            .map(|e| Ok((e.log_id.index, encode(&e)?)))
            .collect::<Result<Vec<_>, AnyError>>()
            .map_err(StorageIOError::write_logs)?;
        let written = self.db().append(&rows);
        match written {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(StorageIOError::write_logs(io_err(e)).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.db()
            .truncate_from(log_id.index)
            .map_err(|e| StorageIOError::write_logs(io_err(e)).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.set("purged", &Some(log_id))
            .map_err(StorageIOError::write_logs)?;
        self.db()
            .purge_upto(log_id.index)
            .map_err(|e| StorageIOError::write_logs(io_err(e)).into())
    }
}

/// The validator's node, as Raft's state machine.
pub struct StateMachine {
    node: Arc<Mutex<Node>>,
    /// Woken after every applied proposal (parked fetches and job long polls look again).
    work: Arc<tokio::sync::Notify>,
    /// The membership as of the last applied entry.
    membership: Membership,
    /// The last applied entry.
    applied: Option<LogId<NodeId>>,
    /// The validator set, kept up with the state's after every applied proposal.
    set: crate::consensus::LiveSet,
}

/// What `meta["raft_applied"]` holds: where the command log is applied up to.
#[derive(serde::Serialize, serde::Deserialize)]
struct Applied {
    /// Format version of this record.
    version: u32,
    log_id: Option<LogId<NodeId>>,
    membership: Membership,
}

const APPLIED_VERSION: u32 = 1;

/// The consensus log id a `raft_applied` marker names (a checkpoint's position).
pub fn marker_log_id(marker: &[u8]) -> Result<Option<LogId<NodeId>>, AnyError> {
    let (version, _) = postcard::take_from_bytes::<u32>(marker).map_err(io_err)?;
    if version != APPLIED_VERSION {
        return Err(AnyError::error(format!(
            "a consensus position of format version {version}; this gridmint reads version {APPLIED_VERSION}"
        )));
    }
    let a: Applied = decode(marker)?;
    Ok(a.log_id)
}

/// Makes a new validator's consensus log start where a checkpoint was taken: everything up to
/// `log_id` counts as applied and purged, so the leader replicates only what follows.
pub fn start_from(db: &RaftDb, log_id: LogId<NodeId>) -> Result<(), AnyError> {
    db.set("purged", &encode(&Some(log_id))?).map_err(io_err)
}

impl StateMachine {
    /// The state machine over `node`, resuming from the position its log records.
    pub fn new(
        node: Arc<Mutex<Node>>,
        work: Arc<tokio::sync::Notify>,
        set: crate::consensus::LiveSet,
    ) -> Result<StateMachine, AnyError> {
        let stored = lock(&node).log_meta(APPLIED_KEY).map_err(io_err)?;
        let (applied, membership) = match stored {
            None => (None, Membership::default()),
            Some(bytes) => {
                let a: Applied = decode(&bytes)?;
                if a.version != APPLIED_VERSION {
                    return Err(AnyError::error(format!(
                        "{APPLIED_KEY} has format version {}; this gridmint reads version {APPLIED_VERSION}",
                        a.version
                    )));
                }
                (a.log_id, a.membership)
            }
        };
        Ok(StateMachine {
            node,
            work,
            membership,
            applied,
            set,
        })
    }
}

/// Mirrors the consensus position into the node, under its lock (for checkpoints), and takes a
/// checkpoint asked for if the node is at a block boundary now.
fn mirror(node: &mut Node, marker: Vec<u8>) {
    node.raft_marker = Some(marker);
    if node.capture.is_some()
        && let Some(checkpoint) = node.checkpoint()
        && let Some(tx) = node.capture.take()
    {
        let _ = tx.send(checkpoint);
    }
}

fn lock(node: &Mutex<Node>) -> MutexGuard<'_, Node> {
    node.lock().unwrap_or_else(|p| p.into_inner())
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, Membership), StorageError<NodeId>> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outcome>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut out = Vec::new();
        for entry in entries {
            let log_id = entry.log_id;
            let outcome = match entry.payload {
                EntryPayload::Blank => Outcome::Committed(Vec::new()),
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(log_id), m);
                    Outcome::Committed(Vec::new())
                }
                EntryPayload::Normal(proposal) => {
                    let marker = encode(&Applied {
                        version: APPLIED_VERSION,
                        log_id: Some(log_id),
                        membership: self.membership.clone(),
                    })
                    .map_err(|e| StorageIOError::apply(log_id, e))?;
                    let mut node = lock(&self.node);
                    let outcome = node
                        .execute(proposal, Some((APPLIED_KEY, &marker)))
                        .map_err(|e| StorageIOError::apply(log_id, io_err(e)))?;
                    self.set.update(&node.state.validators.set);
                    mirror(&mut node, marker);
                    self.applied = Some(log_id);
                    out.push(outcome);
                    continue;
                }
            };
            self.applied = Some(log_id);
            let marker = encode(&Applied {
                version: APPLIED_VERSION,
                log_id: self.applied,
                membership: self.membership.clone(),
            })
            .map_err(|e| StorageIOError::apply(log_id, e))?;
            mirror(&mut lock(&self.node), marker);
            out.push(outcome);
        }
        self.work.notify_waiters();
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            node: self.node.clone(),
            applied: self.applied,
            membership: self.membership.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        _snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        // A validator keeps the whole command log (it is the chain), so it catches up by
        // replicating log entries; the consensus log is never purged, so openraft never needs
        // to send one. Refused rather than half-installed: a state without its log would not
        // verify.
        Err(StorageIOError::write_snapshot(
            Some(meta.signature()),
            AnyError::error(
                "installing a consensus snapshot is not supported: validators catch up from the log",
            ),
        )
        .into())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(None)
    }
}

/// Builds a snapshot of the engine state at the applied position (on request only: the
/// snapshot policy never asks for one).
pub struct SnapshotBuilder {
    node: Arc<Mutex<Node>>,
    applied: Option<LogId<NodeId>>,
    membership: Membership,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let (state_hash, bytes) = {
            let node = lock(&self.node);
            (node.state.hash(), encode(&node.state))
        };
        let bytes = bytes.map_err(StorageIOError::read_state_machine)?;
        let meta = SnapshotMeta {
            last_log_id: self.applied,
            last_membership: self.membership.clone(),
            snapshot_id: format!("{}-{state_hash}", self.applied.map_or(0, |l| l.index)),
        };
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}
