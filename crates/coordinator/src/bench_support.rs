//! The commit path without the HTTP server, for `gridmint bench`: a node over a real, fsync'd
//! SQLite log in a data dir, committing groups of inputs exactly as `POST /v1/actions/batch` does
//! (signatures are the caller's to check, with `api::verify_batch`), timed in its two
//! halves.

pub use crate::node::Committed;
use crate::node::Node;
use anyhow::Context;
use engine::{Genesis, Input, State};
use std::path::Path;
use std::time::{Duration, Instant};
use store::{CommandLog, SqliteLog};

/// Where one group commit spent its time.
#[derive(Clone, Copy, Debug, Default)]
pub struct CommitTimes {
    /// Nonce checks, `State::apply` and the history rows of every input.
    pub apply: Duration,
    /// Encoding and writing the accepted entries, the fsync'd commit, and queuing their history
    /// rows for the log's history writer (a thread of its own).
    pub append: Duration,
}

/// A coordinator's node with nothing around it.
pub struct BenchNode {
    node: Node,
}

impl BenchNode {
    /// Opens the log in `data_dir` (recording `genesis` in a new one, as `coordinator::start`
    /// does) with the coordinator's default snapshot interval.
    pub fn open(data_dir: &Path, genesis: &Genesis) -> anyhow::Result<BenchNode> {
        let mut log = SqliteLog::open(data_dir)
            .with_context(|| format!("opening the command log in {}", data_dir.display()))?;
        if log.genesis()?.is_none() {
            log.set_genesis(genesis)?;
        }
        let fresh =
            State::from_genesis(genesis).map_err(|e| anyhow::anyhow!("invalid genesis: {e}"))?;
        let key_path = data_dir.join("validator.key");
        let validator = api::Identity::load_or_create(&key_path)
            .with_context(|| format!("loading the validator key {}", key_path.display()))?;
        let snapshot_every = crate::CoordinatorConfig::new(data_dir.to_path_buf()).snapshot_every;
        let node = Node::open(Box::new(log), fresh, snapshot_every, validator)?;
        Ok(BenchNode { node })
    }

    /// What `POST /v1/actions/batch` does after its signature checks (`Node::commit_batch`), with
    /// its two halves timed.
    pub fn commit_batch(&mut self, inputs: Vec<Input>) -> (Vec<Committed>, CommitTimes) {
        let start = Instant::now();
        let staged = self.node.apply_batch(inputs);
        let applied = Instant::now();
        let results = self.node.append_staged(staged);
        let times = CommitTimes {
            apply: applied - start,
            append: applied.elapsed(),
        };
        (results, times)
    }

    /// Waits until the history rows of every committed entry are written; returns how long
    /// that took.
    pub fn history_written(&self) -> anyhow::Result<Duration> {
        let start = Instant::now();
        self.node.history_barrier().wait()?;
        Ok(start.elapsed())
    }

    /// Up to `limit` history rows of `account`, newest first.
    pub fn history(
        &self,
        account: &engine::AccountId,
        limit: usize,
    ) -> anyhow::Result<Vec<store::HistoryRow>> {
        Ok(self.node.history(account, u64::MAX, limit)?)
    }

    pub fn state(&self) -> &State {
        &self.node.state
    }

    pub fn log_len(&self) -> u64 {
        self.node.log_len()
    }
}
