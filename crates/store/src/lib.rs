//! Durability for the coordinator: the command log ([`CommandLog`], SQLite by default), state
//! snapshots that bound replay time, and a content-addressed blob store ([`BlobStore`]).
//!
//! The log is the source of truth: the engine's state is whatever replaying it gives. An entry is
//! durable (fsync'd) when [`CommandLog::append`] returns, and only then is it acknowledged. Signed
//! blocks over the log ([`CommandLog::append_block`]) live in the same database. Accounts'
//! histories, derived from the log, are written after their entries by a thread of their own
//! and made again on start if a crash lost them (`history.rs`).

mod blobs;
mod history;
mod log;
mod raft;

pub use blobs::BlobStore;
pub use history::{EntryHistory, HistoryBarrier, history_rows};
pub use log::{
    CommandLog, HistoryRow, MemoryLog, SqliteLog, decode_entry, decode_genesis, decode_snapshot,
    recover, recover_with_history, set_validators, validators,
};
pub use raft::{RAFT_DB_VERSION, RaftDb};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("log entry {seq} is corrupt: {msg}")]
    Corrupt { seq: u64, msg: String },
    #[error("block {height} is corrupt: {msg}")]
    CorruptBlock { height: u64, msg: String },
    #[error("block {height} does not follow the last block {last}")]
    BlockOutOfOrder { height: u64, last: u64 },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} has stored-format version {found}; this gridmint reads version {supported}")]
    Version {
        what: String,
        found: String,
        supported: u32,
    },
    #[error("account history {path}: {msg}")]
    History { path: String, msg: String },
    #[error("this log already has a genesis")]
    GenesisSet,
    #[error("replaying log entry {seq} was rejected: {rejection}")]
    Replay {
        seq: u64,
        rejection: engine::Rejection,
    },
}
