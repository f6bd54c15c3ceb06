//! The node: the engine state, its durable log and the soft state (liveness, nonces of unlogged
//! requests) that stays out of the log. All changes go through [`Node::commit`]; [`Node::seal`]
//! batches the entries committed since the last block into the next signed block.

use crate::error::ApiError;
use anyhow::Context;
use api::Identity;
use api::wire::ChainView;
use engine::chain::leaf;
use engine::{
    AccountId, Block, BlockHeader, Entry, Event, Hash, Input, State, Time, genesis_hash,
    merkle_root,
};
use std::collections::HashMap;
use std::time::Instant;
use store::{CommandLog, StoreError, recover};

/// Entries read from the log per query while sealing.
const SEAL_PAGE: usize = 4096;

/// Soft state about an account: never logged, rebuilt from nothing after a restart.
#[derive(Clone, Copy, Debug)]
pub struct Soft {
    pub last_seen: Instant,
    /// Highest nonce seen in any signed request, logged or not.
    pub nonce: u64,
}

pub struct Node {
    pub state: State,
    log: Box<dyn CommandLog>,
    soft: HashMap<AccountId, Soft>,
    /// Liveness grace after start: providers known from the log count as seen at this instant.
    started: Instant,
    snapshot_every: u64,
    fresh: State,
    /// Signs the blocks.
    validator: Identity,
    genesis: Hash,
    /// Header of the newest block.
    last_block: Option<BlockHeader>,
}

/// Wall-clock time in milliseconds: read here, in the shell, and passed into the engine.
pub fn now_ms() -> Time {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Node {
    /// Rebuilds the state from `log` (snapshot + replay) and picks up the chain where its last
    /// block left it. Refuses a log whose blocks `validator` did not sign, whose last block covers
    /// entries the log does not have, or whose state after the last block's entries is not the
    /// one that block commits to.
    pub fn open(
        log: Box<dyn CommandLog>,
        fresh: State,
        snapshot_every: u64,
        validator: Identity,
    ) -> anyhow::Result<Node> {
        let state = recover(log.as_ref(), fresh.clone())?;
        let last_block = log
            .last_block()
            .context("reading the last block")?
            .map(|b| b.header);
        if let Some(last) = &last_block {
            anyhow::ensure!(
                last.validator == validator.id(),
                "block {} was signed by validator {}, but the validator key is {}",
                last.height,
                last.validator,
                validator.id()
            );
            anyhow::ensure!(
                last.last_seq <= log.len(),
                "block {} covers log entries up to {}, but the log has only {}",
                last.height,
                last.last_seq,
                log.len()
            );
            if last.last_seq == log.len() {
                anyhow::ensure!(
                    last.state_hash == state.hash(),
                    "the state rebuilt from the log does not match block {}'s state hash",
                    last.height
                );
            }
        }
        Ok(Node {
            state,
            log,
            soft: HashMap::new(),
            started: Instant::now(),
            snapshot_every: snapshot_every.max(1),
            genesis: genesis_hash(&fresh),
            fresh,
            validator,
            last_block,
        })
    }

    pub fn log_len(&self) -> u64 {
        self.log.len()
    }

    /// Last entry covered by a block.
    pub fn sealed_seq(&self) -> u64 {
        self.last_block.as_ref().map_or(0, |b| b.last_seq)
    }

    /// Seals every entry after the last block into the next block, signs it and makes it durable.
    /// Does nothing when there is nothing to seal. The state is exactly "after the last entry"
    /// because the caller holds the node.
    pub fn seal(&mut self) -> anyhow::Result<Option<BlockHeader>> {
        let after = self.sealed_seq();
        let len = self.log.len();
        if len <= after {
            return Ok(None);
        }
        let capacity = usize::try_from(len - after).unwrap_or(0);
        let mut leaves = Vec::with_capacity(capacity);
        let mut seq = after;
        while seq < len {
            let page = self.log.raw_entries(seq, SEAL_PAGE)?;
            if page.is_empty() {
                break;
            }
            for (got, bytes) in page {
                if got != seq + 1 {
                    return Err(StoreError::Corrupt {
                        seq: seq + 1,
                        msg: format!("missing; next entry is {got}"),
                    }
                    .into());
                }
                leaves.push(leaf(&bytes));
                seq = got;
            }
        }
        anyhow::ensure!(
            seq >= len,
            "log entries {}..={len} are missing while sealing",
            seq + 1
        );
        let header = BlockHeader::next(
            self.last_block.as_ref(),
            self.genesis,
            now_ms().max(self.state.now),
            seq,
            merkle_root(&leaves),
            self.state.hash(),
            self.validator.id(),
        )
        .context("no next block height")?;
        let block = api::chain::sign_block(&self.validator, header);
        self.log.append_block(&block)?;
        self.last_block = Some(block.header.clone());
        Ok(Some(block.header))
    }

    /// Where the chain stands.
    pub fn chain_view(&self) -> ChainView {
        let log_length = self.log.len();
        let sealed_seq = self.sealed_seq();
        ChainView {
            height: self.last_block.as_ref().map_or(0, |b| b.height),
            tip_hash: self
                .last_block
                .as_ref()
                .map_or(self.genesis, BlockHeader::hash),
            genesis_hash: self.genesis,
            validator: self.validator.id(),
            log_length,
            sealed_seq,
            unsealed: log_length.saturating_sub(sealed_seq),
        }
    }

    /// Up to `limit` blocks with height `> after`.
    pub fn blocks_after(&self, after: u64, limit: usize) -> Result<Vec<Block>, StoreError> {
        self.log.blocks_after(after, limit)
    }

    /// The stored bytes of up to `limit` entries with seq `> after`.
    pub fn raw_entries(&self, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.log.raw_entries(after, limit)
    }

    /// Applies `input` and makes it durable before returning. A rejection changes nothing.
    pub fn commit(&mut self, input: Input) -> Result<(u64, Vec<Event>), ApiError> {
        let entry = Entry {
            time: now_ms(),
            input,
        };
        let events = self.state.apply(&entry)?;
        match self.log.append(std::slice::from_ref(&entry)) {
            Ok(seq) => {
                if seq % self.snapshot_every == 0
                    && let Err(e) = self.log.save_snapshot(seq, &self.state)
                {
                    // A missing snapshot only makes the next start slower.
                    tracing::warn!(error = %e, seq, "snapshot failed");
                }
                Ok((seq, events))
            }
            Err(e) => {
                tracing::error!(error = %e, "command log append failed; rebuilding state from the log");
                // The entry was applied but is not durable: go back to what the log says.
                match recover(self.log.as_ref(), self.fresh.clone()) {
                    Ok(state) => self.state = state,
                    Err(e2) => tracing::error!(error = %e2, "rebuilding from the log failed"),
                }
                Err(ApiError::Unavailable(format!(
                    "could not write the command log: {e}"
                )))
            }
        }
    }

    /// Replay protection for every signed request: the nonce must exceed any nonce seen from the
    /// signer, logged or not.
    pub fn check_nonce(&self, who: &AccountId, nonce: u64) -> Result<(), ApiError> {
        let last = self
            .state
            .nonce(who)
            .max(self.soft.get(who).map_or(0, |s| s.nonce));
        if nonce <= last {
            return Err(ApiError::Replay(format!(
                "nonce {nonce} is not above the last nonce {last} of {who} (replayed request?)"
            )));
        }
        Ok(())
    }

    /// Records that `who` was heard from with `nonce`.
    pub fn seen(&mut self, who: AccountId, nonce: u64) {
        let now = Instant::now();
        let soft = self.soft.entry(who).or_insert(Soft {
            last_seen: now,
            nonce: 0,
        });
        soft.last_seen = now;
        soft.nonce = soft.nonce.max(nonce);
    }

    /// When `who` was last heard from (the coordinator's start for providers not heard from since).
    pub fn last_seen(&self, who: &AccountId) -> Instant {
        self.soft
            .get(who)
            .map_or(self.started, |s| s.last_seen.max(self.started))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::{Action, EngineConfig, ProviderSpec};
    use store::SqliteLog;

    fn register(who: &Identity) -> Input {
        Input::Signed(who.sign(Action::RegisterProvider(ProviderSpec {
            slots: 1,
            cores: 1,
            memory_bytes: 1 << 30,
            gpu: None,
            benchmark_score: 1,
            region: "local".into(),
            price_per_fuel: 1,
        })))
    }

    fn open(dir: &std::path::Path, key: u8) -> anyhow::Result<Node> {
        Node::open(
            Box::new(SqliteLog::open(dir)?),
            State::new(EngineConfig::default()),
            2,
            Identity::from_secret([key; 32]),
        )
    }

    #[test]
    fn blocks_seal_the_log_verify_and_resume_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (p1, p2) = (Identity::generate(), Identity::generate());
        let mut node = open(dir.path(), 5).unwrap();
        assert_eq!(node.seal().unwrap(), None, "an empty block was sealed");
        node.commit(register(&p1)).unwrap();
        node.commit(register(&p2)).unwrap();
        let first = node.seal().unwrap().expect("a block");
        assert_eq!((first.height, first.first_seq, first.last_seq), (1, 1, 2));
        assert_eq!(first.state_hash, node.state.hash());
        assert_eq!(node.seal().unwrap(), None);
        node.commit(Input::Signed(p1.sign(Action::LeaveProvider)))
            .unwrap();
        let view = node.chain_view();
        assert_eq!((view.height, view.unsealed, view.log_length), (1, 1, 3));
        assert_eq!(view.tip_hash, first.hash());
        drop(node); // a crash: entry 3 is durable but unsealed

        // Another key cannot take over the chain.
        let err = open(dir.path(), 6)
            .err()
            .expect("opened with the wrong key");
        assert!(format!("{err:#}").contains("validator"), "{err:#}");

        let mut node = open(dir.path(), 5).unwrap();
        let second = node.seal().unwrap().expect("the tail sealed after restart");
        assert_eq!(
            (second.height, second.first_seq, second.last_seq),
            (2, 3, 3)
        );
        assert_eq!(second.prev_hash, first.hash());

        let log = SqliteLog::open_read_only(dir.path()).unwrap();
        let blocks = log.blocks_after(0, 100).unwrap();
        let entries = log.raw_entries(0, 100).unwrap();
        let report = api::chain::verify_chain(
            State::new(EngineConfig::default()),
            Some(Identity::from_secret([5; 32]).id()),
            &blocks,
            entries,
        )
        .unwrap();
        assert_eq!(
            (report.blocks, report.entries, report.tail_entries),
            (2, 3, 0)
        );
        assert_eq!(report.state_hash, node.state.hash());
        assert_eq!(node.chain_view().unsealed, 0);
    }
}
