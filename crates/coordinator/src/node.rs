//! The node: the engine state, its durable log and the soft state (liveness, nonces of unlogged
//! requests) that stays out of the log. All changes go through [`Node::commit`] (one input) or
//! [`Node::commit_batch`] (a group commit: many inputs, one durable transaction); [`Node::seal`]
//! batches the entries committed since the last block into the next signed block.

use crate::error::ApiError;
use crate::proposal::Refusal;
use anyhow::Context;
use api::Identity;
use api::wire::ChainView;
use engine::chain::leaf;
use engine::{
    AccountId, Block, BlockHeader, Entry, Event, Hash, Input, Rejection, Request, SetChange,
    Signed, State, Time, ValidatorSet, genesis_hash, merkle_root,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;
use store::{CommandLog, StoreError, recover};

/// Entries read from the log per query while sealing.
const SEAL_PAGE: usize = 4096;

/// How far ahead of its own clock a validator lets a block's time be and still signs the block.
/// Every validator seals every block (its boundaries and time are in the consensus log); one
/// that finds the leader's time too far ahead withholds its signature, so a leader that runs its
/// clock ahead (to expire jobs or time out runs early) gets no certificate unless a majority's
/// clocks agree with it.
pub const MAX_CLOCK_AHEAD_MS: u64 = 5_000;

/// Soft state about an account: never logged, rebuilt from nothing after a restart.
#[derive(Clone, Copy, Debug)]
pub struct Soft {
    pub last_seen: Instant,
    /// Highest nonce seen in any signed request, logged or not.
    pub nonce: u64,
}

pub struct Node {
    pub state: State,
    /// Commit and append timings for `GET /metrics`.
    pub live: crate::metrics::Live,
    log: Box<dyn CommandLog>,
    soft: HashMap<AccountId, Soft>,
    /// Blobs each provider said it holds in its latest fetch (soft: for the scheduler).
    pub cached: HashMap<AccountId, HashSet<Hash>>,
    /// Providers waiting in a fetch for work right now, with the fetch they signed (soft: for
    /// the scheduler, and served when a job arrives).
    pub idle: BTreeMap<AccountId, Signed<Request>>,
    /// The state's hash, with the (entries applied, log length) it was taken at: `GET /v1/status`
    /// hashes the whole state at most once per change, not once per request.
    state_hash: std::sync::Mutex<Option<((u64, u64), Hash)>>,
    /// Woken whenever a job finishes (for long polls on jobs).
    pub jobs_finished: Arc<tokio::sync::Notify>,
    /// Liveness grace after start: providers known from the log count as seen at this instant.
    started: Instant,
    snapshot_every: u64,
    fresh: State,
    /// Signs the blocks.
    validator: Identity,
    genesis: Hash,
    /// Header of the newest block.
    last_block: Option<BlockHeader>,
    /// A validator of a set (not a single coordinator): it checks every signed input's
    /// signature when it is applied (it must not trust the leader's admission checks; a single
    /// coordinator checks at admission), its blocks name the leader that proposed them, and it
    /// keeps every validator's signature of each block (the quorum certificate).
    pub replicated: bool,
    /// A validator's consensus position, as its state machine records it (the encoded
    /// `raft_applied` marker), kept current under the same lock as the state: read together
    /// with the state, it is a consistent checkpoint.
    pub raft_marker: Option<Vec<u8>>,
    /// A checkpoint asked for, taken at the next block boundary (see [`Node::checkpoint`]).
    pub capture: Option<tokio::sync::oneshot::Sender<Checkpoint>>,
    /// The validator set as of the last block: the newest recorded set change's, or the
    /// genesis set's. A block after which the set differs is recorded as a [`SetChange`].
    sealed_set: ValidatorSet,
    /// Told of every input logged here, for the blobs it names (`blob_quota`).
    pub quota: Option<Arc<crate::blob_quota::BlobQuota>>,
}

/// A validator's state at a block boundary with the block and its consensus position: what a
/// joining validator starts from. Stored nowhere; sent as postcard.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// Format version of this message.
    pub version: u32,
    /// The state after `block`'s last entry: `block.header.state_hash` is its hash.
    pub state: State,
    pub block: Block,
    /// Validators' signatures of `block` (its quorum certificate).
    pub signatures: Vec<(AccountId, engine::Sig)>,
    /// The consensus position the state is at (the state machine's `raft_applied` record).
    pub marker: Vec<u8>,
    /// Every change of the validator set at a block before `block`, with its proof: the chain
    /// of certificates from the genesis set to the set that signs `block` (rules 4 and later).
    pub set_changes: Vec<SetChange>,
}

/// Format version of [`Checkpoint`] (2: with `set_changes`; 3: its state with the audits of
/// rules 5, state format 4; 4: its state with the fee per action of rules 8, state format 5;
/// 5: its state with the storage deposits of rules 10, state format 6; 6: its state with the
/// answer statuses of rules 11, state format 7; 7: its state with the jobs' files of rules 12,
/// state format 8; 8: its state with the private jobs' sealings of rules 13, state format 9; 9:
/// its state with the reopened results of rules 16, state format 10; 10: its state with the
/// disputes of rules 18, state format 11; 11: its state with the corrections after delivery of
/// rules 19, state format 12; 12: its state with the GPU jobs of rules 23, state format 13;
/// 13: its state with the energy and announcements of rules 24, state format 14; 14: its state
/// with the delegations of rules 25, state format 15; 15: its state with the reservations of
/// rules 26, state format 16; 16: its state with the staking rules and validator payouts of
/// rules 27, state format 17; 17: its state with the GPU classes of rules 28, state format
/// 18; 18: its state with the tolerant GPU jobs of rules 30, state format 19). Its first field
/// in every format, so a reader names both versions when they differ.
pub const CHECKPOINT_VERSION: u32 = 18;

/// What committing one input gave: its seq and events, or why it was refused.
pub type Committed = Result<(u64, Vec<Event>), ApiError>;

/// A group of inputs applied to the state but not yet durable ([`Node::apply_batch`]); only
/// [`Node::append_staged`] may follow, with nothing in between.
#[derive(Default)]
pub(crate) struct Staged {
    /// Per input, in order: its events if the engine accepted it.
    pub(crate) outcomes: Vec<Result<Vec<Event>, Refusal>>,
    /// The accepted inputs' entries with their history rows, in order.
    entries: Vec<(Entry, Vec<(AccountId, Event)>)>,
}

/// The wall clock in milliseconds.
pub fn wall_ms() -> Time {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The chain's time when this process recovered it, and the monotonic instant it did
/// ([`hold_time_from`]).
static FLOOR: std::sync::Mutex<Option<(Time, Instant)>> = std::sync::Mutex::new(None);

/// The wall clock when [`now_ms`] last read it.
static LAST_WALL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A wall-clock step back larger than this is logged as a warning.
const CLOCK_STEP_WARN_MS: u64 = 60_000;

/// Time in milliseconds as this coordinator passes it into the engine: read here, in the shell.
/// The wall clock, but never behind the chain's time as this process found it
/// ([`hold_time_from`]): while the wall clock is behind, time goes on from the chain's at the
/// monotonic clock's rate. So a coordinator restarted on a clock set back (it ran fast, and was
/// corrected) keeps timing runs out and accepting deadlines as before, instead of standing still
/// until the wall clock catches up. One per process (a process runs one coordinator).
pub fn now_ms() -> Time {
    let wall = wall_ms();
    let last = LAST_WALL.swap(wall, std::sync::atomic::Ordering::Relaxed);
    if last > wall.saturating_add(CLOCK_STEP_WARN_MS) {
        tracing::warn!(
            back_ms = last - wall,
            "this machine's clock stepped back by {}: network time does not go back with it",
            humantime_ms(last - wall)
        );
    }
    let floor = *FLOOR.lock().unwrap_or_else(|p| p.into_inner());
    network_time(
        wall,
        floor.map(|(time, at)| {
            (
                time,
                u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX),
            )
        }),
    )
}

/// [`now_ms`] given the wall clock and, if held, the chain's time with the milliseconds the
/// monotonic clock counted since.
fn network_time(wall: Time, floor: Option<(Time, u64)>) -> Time {
    match floor {
        Some((time, since)) => wall.max(time.saturating_add(since)),
        None => wall,
    }
}

/// Keeps [`now_ms`] from going below `chain_time` (the recovered state's time) from now on,
/// warning when the wall clock is behind it by more than [`CLOCK_STEP_WARN_MS`].
pub fn hold_time_from(chain_time: Time) {
    let wall = wall_ms();
    let behind = chain_time.saturating_sub(wall);
    if behind > CLOCK_STEP_WARN_MS {
        tracing::warn!(
            behind_ms = behind,
            "this machine's clock is {} behind the chain's last time: network time goes on \
             from the chain's, at the rate of the monotonic clock, until the clock catches up \
             (was the clock set back after running fast?)",
            humantime_ms(behind)
        );
    }
    let mut floor = FLOOR.lock().unwrap_or_else(|p| p.into_inner());
    *floor = Some((chain_time.max(floor.map_or(0, |(t, _)| t)), Instant::now()));
}

fn humantime_ms(ms: u64) -> String {
    let s = ms / 1000;
    format!("{}h {:02}m {:02}s", s / 3600, s / 60 % 60, s % 60)
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
        let mut log = log;
        let state = store::recover_with_history(log.as_mut(), fresh.clone())?;
        let last_block = log
            .last_block()
            .context("reading the last block")?
            .map(|b| b.header);
        if let Some(last) = &last_block {
            // A validator's blocks name their proposer; a single coordinator's, itself.
            let replicated = !store::validators(log.as_ref())?.validators.is_empty();
            anyhow::ensure!(
                replicated || last.validator == validator.id(),
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
        let sealed_set = log
            .set_changes()
            .context("reading the recorded validator set changes")?
            .pop()
            .map_or_else(|| fresh.validators.set.clone(), |c| c.validators.set);
        Ok(Node {
            live: crate::metrics::Live::default(),
            sealed_set,
            quota: None,
            state,
            log,
            soft: HashMap::new(),
            cached: HashMap::new(),
            idle: BTreeMap::new(),
            state_hash: std::sync::Mutex::new(None),
            jobs_finished: Arc::new(tokio::sync::Notify::new()),
            started: Instant::now(),
            raft_marker: None,
            capture: None,
            snapshot_every: snapshot_every.max(1),
            genesis: genesis_hash(&fresh),
            fresh,
            validator,
            last_block,
            replicated: false,
        })
    }

    /// The current state's hash, computed once per change of the state.
    pub fn state_hash(&self) -> Hash {
        let at = (self.state.applied, self.log_len());
        let mut cached = self.state_hash.lock().unwrap_or_else(|p| p.into_inner());
        match *cached {
            Some((when, hash)) if when == at => hash,
            _ => {
                let hash = self.state.hash();
                *cached = Some((at, hash));
                hash
            }
        }
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
        self.seal_at(now_ms(), self.validator.id())
    }

    /// [`Node::seal`] at a given time (raised to the state's time), naming `proposer` in the
    /// header: what every validator does at a `Seal` proposal, so their headers agree. A
    /// validator of a set also records its own signature as the first of the block's quorum
    /// certificate.
    pub fn seal_at(
        &mut self,
        time: Time,
        proposer: AccountId,
    ) -> anyhow::Result<Option<BlockHeader>> {
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
            time.max(self.state.now),
            seq,
            merkle_root(&leaves),
            self.state_hash(),
            proposer,
        )
        .context("no next block height")?;
        let block = api::chain::sign_block(&self.validator, header);
        // Rules 4: a block after which the validator set differs is recorded with the proof of
        // the new set, for joining validators (before the block itself: a crash in between
        // seals the same block again, and the record stands).
        if self.state.validators.set != self.sealed_set
            && let Some((_, rest)) = self.state.hash_parts()
        {
            self.log.record_set_change(&SetChange {
                block: block.clone(),
                validators: self.state.validators.clone(),
                rest,
                signatures: Vec::new(),
            })?;
            self.sealed_set = self.state.validators.set.clone();
        }
        self.log.append_block(&block)?;
        // A validator signs only the blocks it is a member at (a joining validator replaying
        // the log does not sign the blocks before it was voted in; one voted out stops).
        if self.replicated
            && self
                .state
                .validators
                .set
                .get(&self.validator.id())
                .is_some()
        {
            // The wall clock: a leader's times must not vouch for themselves.
            let ahead = block.header.time.saturating_sub(wall_ms());
            if ahead > MAX_CLOCK_AHEAD_MS {
                tracing::warn!(
                    height = block.header.height,
                    proposer = %proposer,
                    ahead_ms = ahead,
                    "not signing block {}: its time is {ahead} ms ahead of this validator's clock (at most {MAX_CLOCK_AHEAD_MS} ms)",
                    block.header.height
                );
            } else {
                self.log.add_signatures(&[(
                    block.header.height,
                    self.validator.id(),
                    block.signature,
                )])?;
            }
        }
        self.last_block = Some(block.header.clone());
        Ok(Some(block.header))
    }

    /// A barrier, to wait on outside the node lock, that opens once the history rows of every
    /// entry committed so far are written (they are written after the commit: see `store`).
    pub fn history_barrier(&self) -> store::HistoryBarrier {
        self.log.history_barrier()
    }

    /// Up to `limit` history rows of `account` from entries before `before`, newest first (once
    /// the rows of every entry committed so far are written: wait for
    /// [`Node::history_barrier`] first, not to wait under the node lock).
    pub fn history(
        &self,
        account: &AccountId,
        before: u64,
        limit: usize,
    ) -> Result<Vec<store::HistoryRow>, StoreError> {
        self.log.history(account, before, limit)
    }

    /// The genesis hash.
    pub fn genesis_hash(&self) -> Hash {
        self.genesis
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

    /// The signatures of blocks `from..=to` this validator holds.
    pub fn signatures(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, AccountId, engine::Sig)>, StoreError> {
        self.log.signatures(from, to)
    }

    /// Stores other validators' signatures of blocks (checked by the caller).
    pub fn add_signatures(
        &mut self,
        signatures: &[(u64, AccountId, engine::Sig)],
    ) -> Result<(), StoreError> {
        self.log.add_signatures(signatures)
    }

    /// The hash of this chain's block at `height`, if it has one. A store that cannot be read
    /// answers `None` (logged).
    pub fn block_hash(&self, height: u64) -> Option<Hash> {
        if let Some(last) = &self.last_block
            && last.height <= height
        {
            return (last.height == height).then(|| last.hash());
        }
        match self.log.blocks_after(height.checked_sub(1)?, 1) {
            Ok(blocks) => blocks
                .first()
                .filter(|b| b.header.height == height)
                .map(|b| b.hash()),
            Err(e) => {
                tracing::error!(error = %e, height, "reading a block failed");
                None
            }
        }
    }

    /// Signs this validator's liveness attestation.
    pub(crate) fn sign_silence(&self, silence: engine::Silence) -> engine::Signed<engine::Silence> {
        self.validator.sign(silence)
    }

    /// This validator's signature of `header` (tests: the `equivocate` setting signs headers
    /// that are not the chain's).
    pub(crate) fn sign_header(&self, header: BlockHeader) -> engine::Sig {
        api::chain::sign_block(&self.validator, header).signature
    }

    /// A checkpoint, if the state is at a block boundary now (every entry sealed) and the
    /// consensus position is known; certificates are added by the caller.
    pub fn checkpoint(&self) -> Option<Checkpoint> {
        let marker = self.raft_marker.clone()?;
        let last = self.last_block.as_ref()?;
        if last.last_seq != self.log.len() {
            return None;
        }
        let block = self
            .log
            .blocks_after(last.height.saturating_sub(1), 1)
            .ok()?
            .into_iter()
            .next()?;
        Some(Checkpoint {
            version: CHECKPOINT_VERSION,
            state: self.state.clone(),
            block,
            signatures: Vec::new(),
            marker,
            set_changes: Vec::new(),
        })
    }

    /// The recorded validator set changes at blocks below `height`, each with every signature
    /// of its block this validator holds: how a joining validator anchors a checkpoint at
    /// `height` in its genesis set.
    /// Whether the validator set changed since the last sealed block (a second change must
    /// wait for the next block: each block is certified by the set before it).
    pub fn set_changed_since_block(&self) -> bool {
        self.state.validators.set != self.sealed_set
    }

    pub fn set_changes_below(&self, height: u64) -> Result<Vec<SetChange>, StoreError> {
        let mut changes = self.log.set_changes()?;
        changes.retain(|c| c.block.header.height < height);
        for change in &mut changes {
            let h = change.block.header.height;
            for (_, validator, sig) in self.log.signatures(h, h)? {
                if !change.signatures.iter().any(|(v, _)| *v == validator) {
                    change.signatures.push((validator, sig));
                }
            }
        }
        Ok(changes)
    }

    /// This validator's account.
    pub fn validator_id(&self) -> AccountId {
        self.validator.id()
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
        let started = Instant::now();
        let entry = Entry {
            time: now_ms(),
            input,
        };
        let events = self.state.apply(&entry)?;
        self.tell_quota(&entry.input, &events);
        let history = self.history_rows(&events);
        let appending = Instant::now();
        let appended = self.log.append_with_history(&entry, &history);
        self.live.append(appending.elapsed());
        match appended {
            Ok(seq) => {
                self.live.commit(started.elapsed());
                self.announce(&events);
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

    /// Group commit: applies `inputs` in order, as [`Node::commit`] would one by one (signed
    /// inputs nonce-checked as by [`Node::check_nonce`]; a refused input changes nothing), then
    /// makes all the accepted ones durable in one transaction before returning. One result per
    /// input, in order. If that transaction fails, the state is rebuilt from the log and every
    /// accepted input is answered `Unavailable`.
    pub fn commit_batch(&mut self, inputs: Vec<Input>) -> Vec<Committed> {
        let started = Instant::now();
        let staged = self.apply_batch(inputs);
        let committed = self.append_staged(staged);
        self.live.commit(started.elapsed());
        committed
    }

    /// The first half of [`Node::commit_batch`]: applies every input, makes nothing durable.
    pub(crate) fn apply_batch(&mut self, inputs: Vec<Input>) -> Staged {
        let mut staged = Staged {
            outcomes: Vec::with_capacity(inputs.len()),
            entries: Vec::with_capacity(inputs.len()),
        };
        let time = now_ms();
        for input in inputs {
            if let Input::Signed(signed) = &input
                && let Err(e) = self.check_nonce(&signed.signer, signed.nonce)
            {
                staged.outcomes.push(Err(Refusal::Replay(e.to_string())));
                continue;
            }
            self.stage(&mut staged, time, input);
        }
        staged
    }

    /// Applies one more input to a group being staged, at `time`; returns whether the engine
    /// accepted it.
    /// Soft nonces are not checked here (that would make execution depend on what one node
    /// saw): callers check them first.
    pub(crate) fn stage(&mut self, staged: &mut Staged, time: Time, input: Input) -> bool {
        // Evidence carries signatures and names a block: checked here on every node alike (the
        // same log gives every validator the same blocks at this point).
        if let Input::Evidence(ev) = &input
            && let Err(msg) = api::chain::check_evidence(ev, self.block_hash(ev.height()))
        {
            staged
                .outcomes
                .push(Err(Refusal::Rejected(engine::Rejection::NotEquivocation(
                    msg,
                ))));
            return false;
        }
        // Signatures are checked here on every validator alike: validators' liveness
        // attestations always; signed actions and work fetches when replicated (a single
        // coordinator checked them on arrival).
        let check = match &input {
            Input::Lost(_) => true,
            Input::Signed(_) | Input::Fetch(_) => self.replicated,
            Input::Leader(_) | Input::Evidence(_) => false,
        };
        if check && let Some(signer) = api::chain::forged_signer(&input) {
            staged.outcomes.push(Err(Refusal::BadSignature(format!(
                "a signature of {signer} in the input does not verify"
            ))));
            return false;
        }
        // Rules 4: at most one change of the validator set per block, so that the set before
        // each block (which certifies it) is known from the block before. The same log gives
        // every validator the same blocks, so they all refuse alike.
        let changes_set = match &input {
            Input::Signed(signed) => matches!(signed.body, engine::Action::ValidatorVote(_)),
            // Rules 26: a change of the set a passed proposal queued.
            Input::Leader(cmd) => matches!(cmd, engine::LeaderCommand::ChangeValidators),
            _ => false,
        };
        if changes_set && self.state.rules >= 4 && self.set_changed_since_block() {
            staged
                .outcomes
                .push(Err(Refusal::Rejected(Rejection::InvalidValidatorChange(
                    "the validator set changed since the last block: vote again once it is \
                     sealed (one change per block, within a second)"
                        .into(),
                ))));
            return false;
        }
        let entry = Entry { time, input };
        match self.state.apply(&entry) {
            Ok(events) => {
                self.tell_quota(&entry.input, &events);
                let history = self.history_rows(&events);
                staged.outcomes.push(Ok(events));
                staged.entries.push((entry, history));
                true
            }
            Err(rejection) => {
                staged.outcomes.push(Err(Refusal::Rejected(rejection)));
                false
            }
        }
    }

    /// The second half of [`Node::commit_batch`]: one durable append of everything staged.
    pub(crate) fn append_staged(&mut self, staged: Staged) -> Vec<Committed> {
        self.append_staged_marked(staged, None)
            .into_iter()
            .map(|r| r.map_err(ApiError::from))
            .collect()
    }

    /// [`Node::append_staged`] that also sets `meta[marker.0] = marker.1` in the same
    /// transaction (only when something is appended: a marker records how far the log got).
    pub(crate) fn append_staged_marked(
        &mut self,
        staged: Staged,
        marker: Option<(&str, &[u8])>,
    ) -> crate::proposal::Results {
        let Staged { outcomes, entries } = staged;
        let count = entries.len();
        let appending = Instant::now();
        let appended = match (entries.is_empty(), marker) {
            (true, _) => Ok(self.log.len()),
            (false, Some((key, value))) => self.log.append_batch_marked(entries, key, value),
            (false, None) => self.log.append_batch_with_history(entries),
        };
        if count > 0 {
            self.live.append(appending.elapsed());
        }
        match appended {
            Ok(last) => {
                let before = last.saturating_sub(count as u64);
                if last / self.snapshot_every > before / self.snapshot_every
                    && let Err(e) = self.log.save_snapshot(last, &self.state)
                {
                    tracing::warn!(error = %e, seq = last, "snapshot failed");
                }
                for events in outcomes.iter().flatten() {
                    self.announce(events);
                }
                let mut seq = before;
                outcomes
                    .into_iter()
                    .map(|o| {
                        o.map(|events| {
                            seq += 1;
                            (seq, events)
                        })
                    })
                    .collect()
            }
            Err(e) => {
                tracing::error!(error = %e, entries = count, "command log group append failed; rebuilding state from the log");
                match recover(self.log.as_ref(), self.fresh.clone()) {
                    Ok(state) => self.state = state,
                    Err(e2) => tracing::error!(error = %e2, "rebuilding from the log failed"),
                }
                let detail = format!("could not write the command log: {e}");
                outcomes
                    .into_iter()
                    .map(|o| o.and_then(|_| Err(Refusal::Unavailable(detail.clone()))))
                    .collect()
            }
        }
    }

    /// Wakes the long polls waiting for a job when durable `events` finished one.
    /// Tells the blob quota of an applied input: the blobs it names are referenced for good,
    /// and those of a job whose storage it released are referenced no more (rules 10): they
    /// expire, unless something else names them when the sweep comes.
    fn tell_quota(&self, input: &Input, events: &[Event]) {
        let Some(q) = &self.quota else {
            return;
        };
        q.logged(input);
        for event in events {
            if let Event::StorageReleased { job, .. } = event
                && let Some(job) = self.state.jobs.get(job)
            {
                q.adopt(crate::blob_quota::job_blobs(&self.state, job));
            }
        }
    }

    fn announce(&self, events: &[Event]) {
        if events.iter().any(|e| {
            matches!(
                e,
                Event::JobCompleted { .. } | Event::JobFailed { .. } | Event::JobCancelled { .. }
            )
        }) {
            self.jobs_finished.notify_waiters();
        }
    }

    /// The history rows of `events`: each event under every account it concerns.
    fn history_rows(&self, events: &[Event]) -> Vec<(AccountId, Event)> {
        store::history_rows(&self.state, events)
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

    /// Starts the liveness grace again: every provider counts as heard from now (a validator
    /// that just became leader has heard from nobody).
    pub fn reset_liveness(&mut self) {
        self.started = Instant::now();
    }

    /// A value the command log's database keeps beside the log.
    pub fn log_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.log.meta(key)
    }

    /// When `who` was last heard from (the coordinator's start for providers not heard from since).
    pub fn last_seen(&self, who: &AccountId) -> Instant {
        self.soft
            .get(who)
            .map_or(self.started, |s| s.last_seen.max(self.started))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn network_time_never_goes_behind_the_chain_and_moves_on_while_the_clock_is_behind() {
        let chain = 10_000_000;
        // No floor: the wall clock.
        assert_eq!(network_time(5, None), 5);
        // The clock is two hours behind the chain: time goes on from the chain's.
        let behind = chain - 2 * 3_600_000;
        assert_eq!(network_time(behind, Some((chain, 0))), chain);
        assert_eq!(
            network_time(behind + 30_000, Some((chain, 30_000))),
            chain + 30_000
        );
        // Once the clock is past the chain's time, it is the clock again.
        assert_eq!(network_time(chain + 50, Some((chain, 10))), chain + 50);
    }
    use engine::{Action, EngineConfig, ProviderSpec};
    use store::SqliteLog;

    /// A validator set of `keys`, one vote each, on loopback ports from 7000.
    pub(crate) fn validator_set(keys: &[Identity]) -> ValidatorSet {
        ValidatorSet {
            validators: keys
                .iter()
                .zip(7000u16..)
                .map(|(k, port)| engine::Validator {
                    account: k.id(),
                    power: 1,
                    address: format!("http://127.0.0.1:{port}"),
                    stake: 0,
                })
                .collect(),
        }
    }

    /// `who` registers as a provider with one slot (a signed input).
    pub(crate) fn register(who: &Identity) -> Input {
        Input::Signed(who.sign(Action::RegisterProvider(ProviderSpec {
            slots: 1,
            cores: 1,
            memory_bytes: 1 << 30,
            gpu: None,
            benchmark_score: 1,
            region: "local".into(),
            price_per_fuel: 1,
            operator: None,
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

    fn funded(accounts: &[&Identity]) -> engine::Genesis {
        let mut genesis = engine::Genesis::dev(AccountId([9; 32]));
        genesis.action_fee = 0; // (fees per action are the engine tests' subject)
        for who in accounts {
            genesis.allocations.insert(who.id(), engine::tokens(100));
        }
        genesis
    }

    fn transfer(from: &Identity, nonce: u64, to: &Identity, n: u64) -> Input {
        Input::Signed(from.sign_with_nonce(
            nonce,
            Action::Transfer {
                to: to.id(),
                amount: engine::tokens(n),
            },
        ))
    }

    #[test]
    fn a_group_commit_applies_in_order_refuses_singly_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, poor, soft) = (
            Identity::from_secret([1; 32]),
            Identity::from_secret([2; 32]),
            Identity::from_secret([3; 32]),
            Identity::from_secret([4; 32]),
        );
        let genesis = funded(&[&a, &b, &soft]);
        let fresh = State::from_genesis(&genesis).unwrap();
        let open = |fresh: State| {
            Node::open(
                Box::new(SqliteLog::open(dir.path()).unwrap()),
                fresh,
                4,
                Identity::from_secret([5; 32]),
            )
            .unwrap()
        };
        let mut node = open(fresh.clone());
        node.commit(transfer(&a, 1, &b, 1)).unwrap();
        // `soft` sent an unlogged request with nonce 50: a logged action must go above it too.
        node.seen(soft.id(), 50);
        let results = node.commit_batch(vec![
            transfer(&a, 2, &b, 10),
            transfer(&poor, 1, &a, 1),  // no funds
            transfer(&a, 2, &b, 10),    // the same nonce again
            transfer(&b, 1, &a, 105),   // only possible with the 10 received just before
            transfer(&soft, 40, &a, 1), // below its soft nonce
            transfer(&a, 3, &a, 1),     // to itself
            transfer(&soft, 51, &b, 1),
            Input::Leader(engine::LeaderCommand::ReleaseStake { account: a.id() }),
        ]);
        let seqs: Vec<Option<u64>> = results
            .iter()
            .map(|r| r.as_ref().ok().map(|(seq, _)| *seq))
            .collect();
        assert_eq!(
            seqs,
            [Some(2), None, None, Some(3), None, None, Some(4), None]
        );
        let kinds: Vec<&str> = results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .map(|e| match e {
                ApiError::Rejected(engine::Rejection::InsufficientFunds { .. }) => "funds",
                ApiError::Rejected(engine::Rejection::InvalidAmount(_)) => "amount",
                ApiError::Replay(_) => "replay",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["funds", "replay", "replay", "amount", "other"]);
        assert_eq!(
            results[3].as_ref().unwrap().1,
            [Event::Transferred {
                from: b.id(),
                to: a.id(),
                amount: engine::tokens(105)
            }]
        );
        assert_eq!(node.log_len(), 4);
        assert_eq!(node.state.balance(&a.id()), engine::tokens(100 - 11 + 105));
        assert_eq!(
            node.state.balance(&b.id()),
            engine::tokens(100 + 11 - 105 + 1)
        );
        assert_eq!(node.state.nonce(&a.id()), 2);
        node.state.check_supply().unwrap();
        let history: Vec<u64> = node
            .history(&b.id(), u64::MAX, 10)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(history, [4, 3, 2, 1]);
        // Nothing accepted: nothing appended.
        let refused = node.commit_batch(vec![transfer(&poor, 2, &a, 1)]);
        assert!(refused[0].is_err());
        assert_eq!(node.log_len(), 4);
        let hash = node.state.hash();
        drop(node);

        // The batch crossed seq 4, a multiple of snapshot_every: the restart starts from there.
        let log = SqliteLog::open_read_only(dir.path()).unwrap();
        assert_eq!(log.latest_snapshot().unwrap().map(|(seq, _)| seq), Some(4));
        assert_eq!(recover(&log, fresh.clone()).unwrap().hash(), hash);
        let mut replayed = fresh.clone();
        for entry in log.read_after(0).unwrap() {
            replayed.apply(&entry).unwrap();
        }
        assert_eq!(replayed.hash(), hash, "the log alone gives the same state");
        drop(log);
        let node = open(fresh);
        assert_eq!(node.state.hash(), hash);
        assert_eq!(node.log_len(), 4);
    }

    /// A log whose group appends fail while `fail` is set.
    struct Flaky {
        log: store::MemoryLog,
        fail: std::sync::Arc<std::sync::atomic::AtomicBool>,
    }

    impl CommandLog for Flaky {
        fn append(&mut self, entries: &[Entry]) -> Result<u64, StoreError> {
            self.log.append(entries)
        }
        fn len(&self) -> u64 {
            self.log.len()
        }
        fn read_after(&self, after: u64) -> Result<Vec<Entry>, StoreError> {
            self.log.read_after(after)
        }
        fn save_snapshot(&mut self, seq: u64, state: &State) -> Result<(), StoreError> {
            self.log.save_snapshot(seq, state)
        }
        fn latest_snapshot(&self) -> Result<Option<(u64, State)>, StoreError> {
            self.log.latest_snapshot()
        }
        fn raw_entries(&self, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
            self.log.raw_entries(after, limit)
        }
        fn append_block(&mut self, block: &Block) -> Result<(), StoreError> {
            self.log.append_block(block)
        }
        fn blocks_after(&self, after: u64, limit: usize) -> Result<Vec<Block>, StoreError> {
            self.log.blocks_after(after, limit)
        }
        fn last_block(&self) -> Result<Option<Block>, StoreError> {
            self.log.last_block()
        }
        fn append_with_history(
            &mut self,
            entry: &Entry,
            history: &[(AccountId, Event)],
        ) -> Result<u64, StoreError> {
            self.log.append_with_history(entry, history)
        }
        fn append_batch_with_history(
            &mut self,
            entries: Vec<(Entry, Vec<(AccountId, Event)>)>,
        ) -> Result<u64, StoreError> {
            if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(StoreError::Io {
                    path: "flaky".into(),
                    source: std::io::Error::other("disk full"),
                });
            }
            self.log.append_batch_with_history(entries)
        }
        fn append_batch_marked(
            &mut self,
            entries: Vec<(Entry, Vec<(AccountId, Event)>)>,
            key: &str,
            value: &[u8],
        ) -> Result<u64, StoreError> {
            self.log.append_batch_marked(entries, key, value)
        }
        fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.log.meta(key)
        }
        fn set_meta(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
            self.log.set_meta(key, value)
        }
        fn add_signatures(
            &mut self,
            signatures: &[(u64, AccountId, engine::Sig)],
        ) -> Result<(), StoreError> {
            self.log.add_signatures(signatures)
        }
        fn record_set_change(&mut self, change: &SetChange) -> Result<(), StoreError> {
            self.log.record_set_change(change)
        }
        fn set_changes(&self) -> Result<Vec<SetChange>, StoreError> {
            self.log.set_changes()
        }
        fn signatures(
            &self,
            from: u64,
            to: u64,
        ) -> Result<Vec<(u64, AccountId, engine::Sig)>, StoreError> {
            self.log.signatures(from, to)
        }
        fn history(
            &self,
            account: &AccountId,
            before: u64,
            limit: usize,
        ) -> Result<Vec<store::HistoryRow>, StoreError> {
            self.log.history(account, before, limit)
        }
        fn genesis(&self) -> Result<Option<engine::Genesis>, StoreError> {
            self.log.genesis()
        }
        fn set_genesis(&mut self, genesis: &engine::Genesis) -> Result<(), StoreError> {
            self.log.set_genesis(genesis)
        }
    }

    #[test]
    fn a_failed_group_append_fails_the_batch_and_leaves_the_state_as_the_log_says() {
        let (a, b) = (
            Identity::from_secret([1; 32]),
            Identity::from_secret([2; 32]),
        );
        let fresh = State::from_genesis(&funded(&[&a])).unwrap();
        let fail = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let log = Flaky {
            log: store::MemoryLog::default(),
            fail: fail.clone(),
        };
        let mut node =
            Node::open(Box::new(log), fresh, 100, Identity::from_secret([5; 32])).unwrap();
        assert!(node.commit_batch(vec![transfer(&a, 1, &b, 1)])[0].is_ok());
        let hash = node.state.hash();
        fail.store(true, std::sync::atomic::Ordering::SeqCst);
        let results = node.commit_batch(vec![
            transfer(&a, 2, &b, 1),
            transfer(&b, 1, &a, 1000),
            transfer(&a, 3, &b, 1),
        ]);
        assert!(matches!(results[0], Err(ApiError::Unavailable(_))));
        assert!(matches!(results[1], Err(ApiError::Rejected(_))));
        assert!(matches!(results[2], Err(ApiError::Unavailable(_))));
        assert_eq!(
            node.state.hash(),
            hash,
            "the state is back to what the log holds"
        );
        assert_eq!(node.log_len(), 1);
        // The same nonces are still free once the log works again.
        fail.store(false, std::sync::atomic::Ordering::SeqCst);
        let results = node.commit_batch(vec![transfer(&a, 2, &b, 1)]);
        assert_eq!(results[0].as_ref().map(|(seq, _)| *seq).ok(), Some(2));
    }

    #[test]
    fn a_validator_does_not_sign_a_block_from_the_future() {
        let dir = tempfile::tempdir().unwrap();
        let key = Identity::from_secret([5; 32]);
        let mut state = State::new(EngineConfig::default());
        state.validators = engine::Validators::new(engine::ValidatorSet {
            validators: vec![engine::Validator {
                account: key.id(),
                power: 1,
                address: "http://127.0.0.1:7000".into(),
                stake: 0,
            }],
        });
        let mut node = Node::open(
            Box::new(SqliteLog::open(dir.path()).unwrap()),
            state,
            2,
            key,
        )
        .unwrap();
        node.replicated = true;
        let me = node.validator_id();
        let proposer = Identity::generate().id();
        // Within the bound: sealed and signed.
        node.commit(register(&Identity::generate())).unwrap();
        let first = node
            .seal_at(now_ms() + MAX_CLOCK_AHEAD_MS / 2, proposer)
            .unwrap()
            .expect("a block");
        let sigs = node.signatures(1, 1).unwrap();
        assert_eq!(sigs.len(), 1);
        assert_eq!(sigs[0].1, me);
        assert!(api::chain::header_signed_by(&first, me, sigs[0].2));
        // A minute ahead of this validator's clock: sealed all the same (every validator seals
        // where the log says), but this one withholds its signature.
        node.commit(register(&Identity::generate())).unwrap();
        let ahead = now_ms() + 60_000;
        let second = node.seal_at(ahead, proposer).unwrap().expect("a block");
        assert_eq!(
            (second.height, second.time, second.validator),
            (2, ahead, proposer)
        );
        assert!(node.signatures(2, 2).unwrap().is_empty());
        // The time never goes back (raised to the previous block's), so the next block is
        // from the future too.
        node.commit(register(&Identity::generate())).unwrap();
        let third = node.seal_at(now_ms(), proposer).unwrap().expect("a block");
        assert_eq!(third.time, ahead);
        assert!(node.signatures(3, 3).unwrap().is_empty());
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
