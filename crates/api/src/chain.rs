//! Offline verification of the chain: blocks over the command log, checked from genesis.
//!
//! [`Verifier`] takes blocks in order, each with the stored bytes of the log entries it covers, then
//! the unsealed tail. Per block it checks the height, the validator, the signature, the link to the
//! previous block (block 1 links to the genesis hash), that the covered entries follow on without a
//! gap, that every entry decodes canonically and every signed action in it verifies, the Merkle
//! root, that replay accepts every entry, the block time, and the state hash after the last entry.
//! [`verify_chain`] runs it over a whole chain. The first failure stops verification and names
//! the block it is in.
//!
//! The unsealed tail (entries after the last block) is decoded and replayed, but no block vouches
//! for it yet: a changed tail entry is caught only if it no longer decodes or replays, or it is a
//! signed action whose signature breaks. The coordinator seals the tail every block interval and on
//! shutdown.

use crate::auth::{Identity, verify};
use engine::chain::{DecodeError, leaf};
use engine::{
    AccountId, Block, BlockHeader, Entry, Equivocation, Hash, Input, Rejection, Sig, Signed, State,
    Time, ValidatorSet, decode_canonical, genesis_hash, merkle_root,
};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Signs `header` as its validator: the signature of `Signed<BlockHeader>` with the header's height
/// as the nonce. `identity` must be `header.validator`'s key for the block to verify.
pub fn sign_block(identity: &Identity, header: BlockHeader) -> Block {
    let nonce = header.height;
    let signed = identity.sign_with_nonce(nonce, header);
    Block {
        header: signed.body,
        signature: signed.signature,
    }
}

/// Whether `block.signature` is `block.header.validator`'s signature over the header.
pub fn block_signature_ok(block: &Block) -> bool {
    verify(&Signed {
        signer: block.header.validator,
        nonce: block.header.height,
        body: block.header.clone(),
        signature: block.signature,
    })
    .is_ok()
}

/// Whether `signature` is `signer`'s signature over `header` (the [`sign_block`] scheme): one
/// signature of a block's quorum certificate.
pub fn header_signed_by(header: &BlockHeader, signer: AccountId, signature: Sig) -> bool {
    verify(&Signed {
        signer,
        nonce: header.height,
        body: header.clone(),
        signature,
    })
    .is_ok()
}

/// The checks on equivocation evidence beyond the engine's (which needs no signature check): both
/// signatures are the accused validator's, and one of the two headers is this chain's block at
/// that height, whose hash is `ours` (`None`: the chain has no block there yet). The node runs
/// them before the evidence is applied, and `chain verify` again on replay.
pub fn check_evidence(ev: &Equivocation, ours: Option<Hash>) -> Result<(), String> {
    for signed in [&ev.first, &ev.second] {
        if !header_signed_by(&signed.header, ev.validator, signed.signature) {
            return Err(format!(
                "the signature by {} of a header of height {} does not verify",
                ev.validator, signed.header.height
            ));
        }
    }
    match ours {
        None => Err(format!(
            "this chain has no block at height {} yet",
            ev.height()
        )),
        Some(ours) if ev.first.header.hash() != ours && ev.second.header.hash() != ours => {
            Err(format!(
                "neither header is this chain's block at height {}",
                ev.height()
            ))
        }
        Some(_) => Ok(()),
    }
}

/// Where a verification failure is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Location {
    /// In the block at this height (or at the position where that block should be).
    Block(u64),
    /// In the unsealed entries after the block at this height.
    Tail { after: u64 },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Block(h) => write!(f, "block {h}"),
            Location::Tail { after } => write!(f, "unsealed entries after block {after}"),
        }
    }
}

/// What is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainErrorKind {
    #[error("out of order: the header says height {got}")]
    Height { got: u64 },
    #[error("signed by validator {got}, but the chain's validator is {expected}")]
    WrongValidator { expected: AccountId, got: AccountId },
    #[error("signature does not verify for validator {0}")]
    BadSignature(AccountId),
    #[error("previous-block hash mismatch (expected {expected}, header says {got})")]
    PrevHash { expected: Hash, got: Hash },
    #[error("covers entries from {got}, but the previous block ended at {}", expected.saturating_sub(1))]
    FirstSeq { expected: u64, got: u64 },
    #[error("covers no entries ({first}..={last})")]
    Empty { first: u64, last: u64 },
    #[error("time {time} is before the previous block's time {prev}")]
    TimeWentBack { time: Time, prev: Time },
    #[error("time {time} is before its last entry's time {state}")]
    TimeBeforeEntries { time: Time, state: Time },
    #[error("log entry {seq} is missing")]
    MissingEntry { seq: u64 },
    #[error("log entry {got} found where entry {expected} was expected")]
    UnexpectedEntry { expected: u64, got: u64 },
    #[error("log entry {seq} {error}")]
    BadEntry { seq: u64, error: DecodeError },
    #[error("log entry {seq}: signature of signer {signer} does not verify")]
    EntrySignature { seq: u64, signer: AccountId },
    #[error("commands root mismatch (header says {expected}, the entries give {got})")]
    CommandsRoot { expected: Hash, got: Hash },
    #[error("log entry {seq} is rejected on replay: {rejection}")]
    Rejected { seq: u64, rejection: Rejection },
    #[error("state hash mismatch (header says {expected}, replay gives {got})")]
    StateHash { expected: Hash, got: Hash },
    #[error("stored block is corrupt: {0}")]
    CorruptBlock(String),
    #[error("signed by {0}, which is not a validator of this network")]
    NotAValidator(AccountId),
    #[error(
        "no quorum certificate: signed by validators holding {power} of {total} voting power; a block is final with more than half"
    )]
    NoQuorum { power: u64, total: u64 },
    /// Tokens were created or destroyed outside the rules (the supply equation fails).
    #[error("token supply is not conserved: {0}")]
    Supply(String),
    #[error("log entry {seq}: evidence of equivocation that does not hold: {msg}")]
    Evidence { seq: u64, msg: String },
    #[error("too many blocks")]
    Overflow,
    /// Reading the chain failed (the store or the coordinator), so it could not be checked.
    #[error("could not read the chain: {0}")]
    Source(String),
}

/// A failed verification: where, and what.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {kind}")]
pub struct ChainError {
    pub at: Location,
    pub kind: ChainErrorKind,
}

impl ChainError {
    /// The height of the block the failure is in, if it is in a block.
    pub fn height(&self) -> Option<u64> {
        match self.at {
            Location::Block(h) => Some(h),
            Location::Tail { .. } => None,
        }
    }
}

/// What a successful verification established.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainReport {
    /// Blocks verified (the chain's height).
    pub blocks: u64,
    /// Log entries replayed, sealed and unsealed.
    pub entries: u64,
    /// Entries after the last block: replayed, but not yet vouched for by any block.
    pub tail_entries: u64,
    pub genesis_hash: Hash,
    /// The last block's hash (the genesis hash when there are no blocks).
    pub tip_hash: Hash,
    /// The state hash the last block commits to (the genesis hash when there are no blocks).
    pub sealed_state_hash: Hash,
    /// The state hash after replaying every entry, the tail included.
    pub state_hash: Hash,
    /// The validator that signed every block (a single coordinator's chain).
    pub validator: Option<AccountId>,
    /// A validator set's chain: the blocks after the last one with a quorum certificate (not
    /// final yet: their signatures are still being gathered). Their entries are replayed like
    /// the unsealed tail's and counted in `tail_entries`.
    #[serde(default)]
    pub uncertified_blocks: u64,
}

/// Verifies a chain incrementally: [`Verifier::block`] for each block in order, then
/// [`Verifier::tail`] for the entries after the last one, then [`Verifier::finish`]. After an error
/// the verifier's state is unspecified; stop there.
pub struct Verifier {
    state: State,
    genesis: Hash,
    validator: Option<AccountId>,
    /// A validator set's chain: blocks are final by quorum certificate, not by one signature.
    set: Option<ValidatorSet>,
    height: u64,
    tip: Hash,
    time: Time,
    /// Last entry replayed.
    seq: u64,
    sealed_seq: u64,
    sealed_state: Hash,
    tail_entries: u64,
    /// Hashes of the blocks verified, by height − 1 (evidence names one of them).
    hashes: Vec<Hash>,
}

impl Verifier {
    /// Starts at genesis: `initial` is the state before any entry. With `validator`, every block
    /// must be signed by that account; without, by whichever account signed block 1.
    pub fn new(initial: State, validator: Option<AccountId>) -> Verifier {
        let genesis = genesis_hash(&initial);
        Verifier {
            state: initial,
            genesis,
            validator,
            set: None,
            height: 0,
            tip: genesis,
            time: 0,
            seq: 0,
            sealed_seq: 0,
            sealed_state: genesis,
            tail_entries: 0,
            hashes: Vec::new(),
        }
    }

    /// Starts at genesis for the chain of a validator set: each block must carry a quorum
    /// certificate ([`Verifier::certified_block`]) from `set`; the header names the proposer.
    pub fn with_validators(initial: State, set: ValidatorSet) -> Verifier {
        let mut v = Verifier::new(initial, None);
        v.set = Some(set);
        v
    }

    pub fn genesis_hash(&self) -> Hash {
        self.genesis
    }

    /// Checks the next block of a validator set's chain: `signatures` (signer, signature) must
    /// all be members' valid signatures of its header, together holding more than half of the
    /// voting power; then everything [`Verifier::block`] checks but the single signature.
    pub fn certified_block(
        &mut self,
        block: &Block,
        signatures: &[(AccountId, Sig)],
        entries: &[(u64, Vec<u8>)],
    ) -> Result<(), ChainError> {
        let at = self.next_location();
        let fail = |kind| ChainError { at, kind };
        let set = self.validator_set().ok_or(fail(ChainErrorKind::Source(
            "a certified block, but no validator set to check it against".into(),
        )))?;
        // Signatures of accounts that were not members when the block began (one voted in by
        // this very block signs it) count for nothing; a member's must verify.
        let signatures: Vec<(AccountId, Sig)> = signatures
            .iter()
            .filter(|(signer, _)| set.get(signer).is_some())
            .copied()
            .collect();
        for (signer, signature) in &signatures {
            if !header_signed_by(&block.header, *signer, *signature) {
                return Err(fail(ChainErrorKind::BadSignature(*signer)));
            }
        }
        let signers: Vec<&AccountId> = signatures.iter().map(|(s, _)| s).collect();
        if !set.is_quorum(signers.iter().copied()) {
            let mut seen: Vec<&AccountId> = Vec::new();
            let mut power = 0u64;
            for s in signers {
                if !seen.contains(&s) {
                    seen.push(s);
                    power = power.saturating_add(set.get(s).map_or(0, |(_, v)| v.power));
                }
            }
            return Err(fail(ChainErrorKind::NoQuorum {
                power,
                total: set.total_power(),
            }));
        }
        self.check(block, entries, false)
    }

    /// The validator set the next block's certificate is checked against: the set in the state
    /// as the block begins (it changes when validators vote one in or out), or the one given to
    /// [`Verifier::with_validators`] for a state without one.
    pub fn validator_set(&self) -> Option<&ValidatorSet> {
        if self.state.validators.set.validators.is_empty() {
            self.set.as_ref()
        } else {
            Some(&self.state.validators.set)
        }
    }

    /// Height of the last block verified.
    pub fn height(&self) -> u64 {
        self.height
    }

    /// Last log entry covered by a verified block.
    pub fn sealed_seq(&self) -> u64 {
        self.sealed_seq
    }

    /// Where the next block goes.
    pub fn next_location(&self) -> Location {
        Location::Block(self.height.saturating_add(1))
    }

    /// Checks the next block. `entries` are the stored bytes of the log entries it covers, as
    /// `(seq, bytes)` in order; a missing or extra entry is an error.
    pub fn block(&mut self, block: &Block, entries: &[(u64, Vec<u8>)]) -> Result<(), ChainError> {
        if self.set.is_some() {
            return Err(ChainError {
                at: self.next_location(),
                kind: ChainErrorKind::Source(
                    "a validator set's block needs its quorum certificate".into(),
                ),
            });
        }
        self.check(block, entries, true)
    }

    /// [`Verifier::block`]; `signed`: also check the block's own signature and validator.
    fn check(
        &mut self,
        block: &Block,
        entries: &[(u64, Vec<u8>)],
        signed: bool,
    ) -> Result<(), ChainError> {
        let height = self.height.checked_add(1).ok_or(ChainError {
            at: Location::Block(self.height),
            kind: ChainErrorKind::Overflow,
        })?;
        let fail = |kind| ChainError {
            at: Location::Block(height),
            kind,
        };
        let h = &block.header;
        if h.height != height {
            return Err(fail(ChainErrorKind::Height { got: h.height }));
        }
        if signed {
            match self.validator {
                Some(expected) if expected != h.validator => {
                    return Err(fail(ChainErrorKind::WrongValidator {
                        expected,
                        got: h.validator,
                    }));
                }
                _ => {}
            }
            if !block_signature_ok(block) {
                return Err(fail(ChainErrorKind::BadSignature(h.validator)));
            }
        }
        if h.prev_hash != self.tip {
            return Err(fail(ChainErrorKind::PrevHash {
                expected: self.tip,
                got: h.prev_hash,
            }));
        }
        let first = self.seq.saturating_add(1);
        if h.first_seq != first {
            return Err(fail(ChainErrorKind::FirstSeq {
                expected: first,
                got: h.first_seq,
            }));
        }
        if h.last_seq < h.first_seq {
            return Err(fail(ChainErrorKind::Empty {
                first: h.first_seq,
                last: h.last_seq,
            }));
        }
        if h.time < self.time {
            return Err(fail(ChainErrorKind::TimeWentBack {
                time: h.time,
                prev: self.time,
            }));
        }

        let mut leaves = Vec::with_capacity(entries.len());
        let mut decoded = Vec::with_capacity(entries.len());
        let mut expect = h.first_seq;
        for (seq, bytes) in entries {
            if *seq != expect || *seq > h.last_seq {
                return Err(fail(if *seq > expect && expect <= h.last_seq {
                    ChainErrorKind::MissingEntry { seq: expect }
                } else {
                    ChainErrorKind::UnexpectedEntry {
                        expected: expect,
                        got: *seq,
                    }
                }));
            }
            decoded.push((*seq, decode_entry(*seq, bytes).map_err(fail)?));
            leaves.push(leaf(bytes));
            expect = expect.saturating_add(1);
        }
        if expect <= h.last_seq {
            return Err(fail(ChainErrorKind::MissingEntry { seq: expect }));
        }
        let root = merkle_root(&leaves);
        if root != h.commands_root {
            return Err(fail(ChainErrorKind::CommandsRoot {
                expected: h.commands_root,
                got: root,
            }));
        }
        for (seq, entry) in &decoded {
            self.check_evidence(*seq, entry).map_err(fail)?;
            self.state.apply(entry).map_err(|rejection| {
                fail(ChainErrorKind::Rejected {
                    seq: *seq,
                    rejection,
                })
            })?;
        }
        if h.time < self.state.now {
            return Err(fail(ChainErrorKind::TimeBeforeEntries {
                time: h.time,
                state: self.state.now,
            }));
        }
        let state_hash = self.state.hash();
        if state_hash != h.state_hash {
            return Err(fail(ChainErrorKind::StateHash {
                expected: h.state_hash,
                got: state_hash,
            }));
        }
        if let Err(e) = self.state.check_supply() {
            return Err(fail(ChainErrorKind::Supply(e)));
        }
        if signed {
            self.validator = Some(h.validator);
        }
        self.height = height;
        self.tip = h.hash();
        self.hashes.push(self.tip);
        self.time = h.time;
        self.seq = h.last_seq;
        self.sealed_seq = h.last_seq;
        self.sealed_state = state_hash;
        Ok(())
    }

    /// Replays unsealed entries (after the last block), continuing from the previous call.
    pub fn tail(&mut self, entries: &[(u64, Vec<u8>)]) -> Result<(), ChainError> {
        let at = Location::Tail { after: self.height };
        let fail = |kind| ChainError { at, kind };
        for (seq, bytes) in entries {
            let expect = self.seq.saturating_add(1);
            if *seq != expect {
                return Err(fail(if *seq > expect {
                    ChainErrorKind::MissingEntry { seq: expect }
                } else {
                    ChainErrorKind::UnexpectedEntry {
                        expected: expect,
                        got: *seq,
                    }
                }));
            }
            let entry = decode_entry(*seq, bytes).map_err(fail)?;
            self.check_evidence(*seq, &entry).map_err(fail)?;
            self.state.apply(&entry).map_err(|rejection| {
                fail(ChainErrorKind::Rejected {
                    seq: *seq,
                    rejection,
                })
            })?;
            self.seq = *seq;
            self.tail_entries = self.tail_entries.saturating_add(1);
        }
        Ok(())
    }

    /// [`check_evidence`] for an evidence entry, against the blocks verified so far.
    fn check_evidence(&self, seq: u64, entry: &Entry) -> Result<(), ChainErrorKind> {
        let Input::Evidence(ev) = &entry.input else {
            return Ok(());
        };
        let ours = usize::try_from(ev.height())
            .ok()
            .and_then(|h| h.checked_sub(1))
            .and_then(|i| self.hashes.get(i))
            .copied();
        check_evidence(ev, ours).map_err(|msg| ChainErrorKind::Evidence { seq, msg })
    }

    pub fn finish(self) -> ChainReport {
        ChainReport {
            blocks: self.height,
            entries: self.seq,
            tail_entries: self.tail_entries,
            genesis_hash: self.genesis,
            tip_hash: self.tip,
            sealed_state_hash: self.sealed_state,
            state_hash: self.state.hash(),
            validator: self.validator,
            uncertified_blocks: 0,
        }
    }
}

/// Decodes one stored entry and checks the signatures in it.
fn decode_entry(seq: u64, bytes: &[u8]) -> Result<Entry, ChainErrorKind> {
    let entry: Entry =
        decode_canonical(bytes).map_err(|error| ChainErrorKind::BadEntry { seq, error })?;
    if let Some(signer) = forged_signer(&entry.input) {
        return Err(ChainErrorKind::EntrySignature { seq, signer });
    }
    Ok(entry)
}

/// The signer of the first signature in `input` that does not verify, if any: a signed action,
/// validators' liveness attestations, providers' work fetches.
pub fn forged_signer(input: &Input) -> Option<AccountId> {
    match input {
        Input::Signed(signed) => verify(signed).err().map(|_| signed.signer),
        Input::Lost(lost) => lost
            .attestations
            .iter()
            .find(|a| verify(*a).is_err())
            .map(|a| a.signer),
        Input::Fetch(fetch) => fetch
            .fetches
            .iter()
            .find(|f| verify(*f).is_err())
            .map(|f| f.signer),
        Input::Leader(_) | Input::Evidence(_) => None,
    }
}

/// Verifies `blocks` (in order, from height 1) over `entries` (the stored bytes of the whole log,
/// `(seq, bytes)` from seq 1, in order), replaying from `initial`. Entries after the last block are
/// the unsealed tail.
pub fn verify_chain(
    initial: State,
    validator: Option<AccountId>,
    blocks: &[Block],
    entries: impl IntoIterator<Item = (u64, Vec<u8>)>,
) -> Result<ChainReport, ChainError> {
    let mut verifier = Verifier::new(initial, validator);
    let mut entries = entries.into_iter().peekable();
    for block in blocks {
        let last = block.header.last_seq;
        let mut covered = Vec::new();
        while let Some(entry) = entries.next_if(|(seq, _)| *seq <= last) {
            covered.push(entry);
        }
        verifier.block(block, &covered)?;
    }
    let tail: Vec<_> = entries.collect();
    verifier.tail(&tail)?;
    Ok(verifier.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::{
        Action, Aggregate, EngineConfig, JobSpec, LeaderCommand, Limits, OutputSource,
        ProviderSpec, TaskId, TaskOutcome, TaskReport, TaskSpec,
    };

    /// The state the test chains start from: a network without fees or stake on which the keys
    /// `[n; 32]`, n in 1..=9, are funded.
    fn initial() -> State {
        State::from_genesis(&engine::Genesis {
            params: engine::LedgerParams::free(),
            allocations: (1..=9u8)
                .map(|n| (Identity::from_secret([n; 32]).id(), 1u128 << 90))
                .collect(),
            engine: EngineConfig::default(),
            verification: Default::default(),
            validators: Default::default(),
            rules: engine::RULES,
            action_fee: 0,
            storage: None,
            carbon: None,
            staking: None,
        })
        .expect("a valid genesis")
    }

    /// A coordinator in miniature: applies entries, keeps their bytes, seals signed blocks.
    struct Chain {
        state: State,
        genesis: Hash,
        validator: Identity,
        entries: Vec<(u64, Vec<u8>)>,
        blocks: Vec<Block>,
        time: Time,
    }

    impl Chain {
        fn new() -> Chain {
            let state = initial();
            Chain {
                genesis: genesis_hash(&state),
                state,
                validator: Identity::from_secret([9; 32]),
                entries: Vec::new(),
                blocks: Vec::new(),
                time: 1_000,
            }
        }

        fn push(&mut self, input: Input) {
            self.time += 10;
            let entry = Entry {
                time: self.time,
                input,
            };
            self.state.apply(&entry).expect("test entries are valid");
            let seq = self.entries.len() as u64 + 1;
            self.entries
                .push((seq, postcard::to_stdvec(&entry).unwrap()));
        }

        fn seal(&mut self) {
            let prev = self.blocks.last().map(|b| &b.header);
            let from = prev.map_or(0, |p| p.last_seq) as usize;
            let leaves: Vec<Hash> = self.entries[from..].iter().map(|(_, b)| leaf(b)).collect();
            let header = BlockHeader::next(
                prev,
                self.genesis,
                self.time + 1,
                self.entries.len() as u64,
                merkle_root(&leaves),
                self.state.hash(),
                self.validator.id(),
            )
            .expect("something to seal");
            let block = sign_block(&self.validator, header);
            self.blocks.push(block);
        }

        fn verify(&self) -> Result<ChainReport, ChainError> {
            verify_chain(initial(), None, &self.blocks, self.entries.clone())
        }
    }

    fn provider_spec() -> ProviderSpec {
        ProviderSpec {
            slots: 4,
            cores: 4,
            memory_bytes: 1 << 30,
            gpu: None,
            benchmark_score: 100,
            region: "local".into(),
            price_per_fuel: 1,
            operator: None,
        }
    }

    fn job_spec(tasks: usize) -> JobSpec {
        JobSpec {
            module: Hash([0xaa; 32]),
            tasks: (0..tasks)
                .map(|i| TaskSpec {
                    args: vec![format!("{i}")],
                    ..TaskSpec::default()
                })
                .collect(),
            limits: Limits {
                fuel: 1_000_000,
                memory_bytes: 64 << 20,
                wall_ms: 10_000,
            },
            deadline: 10_000_000,
            max_price: 10,
            output: OutputSource::Stdout,
            aggregate: Aggregate::Concat,
            redundancy: engine::Redundancy::Fixed {
                quorum: 1,
                max_results: 1,
            },
            requirements: Default::default(),
        }
    }

    fn report(job: u64, index: u32) -> TaskReport {
        TaskReport {
            task: TaskId { job, index },
            outcome: TaskOutcome::Success,
            output_hash: Hash([index as u8; 32]),
            output_size: 10,
            fuel_used: 1_000,
        }
    }

    /// Three blocks (3, 2 and 3 entries) and a tail of 2 entries: a job of 3 tasks run to the end.
    fn sample() -> Chain {
        let provider = Identity::from_secret([1; 32]);
        let requester = Identity::from_secret([2; 32]);
        let mut c = Chain::new();
        c.push(Input::Signed(
            provider.sign(Action::RegisterProvider(provider_spec())),
        ));
        c.push(Input::Signed(
            requester.sign(Action::SubmitJob(job_spec(3))),
        ));
        c.push(Input::Leader(LeaderCommand::AssignTasks {
            provider: provider.id(),
            tasks: vec![TaskId { job: 1, index: 0 }, TaskId { job: 1, index: 1 }],
        }));
        c.seal();
        c.push(Input::Signed(
            provider.sign(Action::ReportResults(vec![report(1, 0)])),
        ));
        c.push(Input::Leader(LeaderCommand::AssignTasks {
            provider: provider.id(),
            tasks: vec![TaskId { job: 1, index: 2 }],
        }));
        c.seal();
        c.push(Input::Signed(
            provider.sign(Action::ReportResults(vec![report(1, 1)])),
        ));
        c.push(Input::Signed(
            provider.sign(Action::ReportResults(vec![report(1, 2)])),
        ));
        c.push(Input::Signed(
            requester.sign(Action::SubmitJob(job_spec(1))),
        ));
        c.seal();
        c.push(Input::Signed(requester.sign(Action::CancelJob(2))));
        c.push(Input::Signed(provider.sign(Action::LeaveProvider)));
        c
    }

    /// The block covering entry `seq`.
    fn covering(c: &Chain, seq: u64) -> u64 {
        c.blocks
            .iter()
            .find(|b| b.header.first_seq <= seq && seq <= b.header.last_seq)
            .map(|b| b.header.height)
            .expect("a sealed entry")
    }

    #[test]
    fn a_valid_chain_verifies_with_the_right_counts() {
        let c = sample();
        let report = c.verify().unwrap();
        assert_eq!(report.blocks, 3);
        assert_eq!(report.entries, 10);
        assert_eq!(report.tail_entries, 2);
        assert_eq!(report.state_hash, c.state.hash());
        assert_eq!(report.sealed_state_hash, c.blocks[2].header.state_hash);
        assert_ne!(report.sealed_state_hash, report.state_hash);
        assert_eq!(report.tip_hash, c.blocks[2].hash());
        assert_eq!(report.genesis_hash, c.genesis);
        assert_eq!(report.validator, Some(c.validator.id()));
        // The job really ran to the end in the replayed state.
        assert_eq!(
            c.state.jobs[&1].status,
            engine::JobStatus::Completed,
            "the sample does not exercise what it means to"
        );

        // No blocks at all: everything is tail.
        let mut bare = sample();
        bare.blocks.clear();
        let report = bare.verify().unwrap();
        assert_eq!(
            (report.blocks, report.entries, report.tail_entries),
            (0, 10, 10)
        );
        assert_eq!(report.tip_hash, report.genesis_hash);
    }

    #[test]
    fn every_flipped_byte_in_a_sealed_entry_is_caught_at_its_block() {
        let c = sample();
        let sealed = c.blocks.last().unwrap().header.last_seq as usize;
        let mut checked = 0;
        for i in 0..sealed {
            let (seq, ref bytes) = c.entries[i];
            let height = covering(&c, seq);
            for pos in 0..bytes.len() {
                for bit in [0x01u8, 0x80] {
                    let mut entries = c.entries.clone();
                    entries[i].1[pos] ^= bit;
                    let err = verify_chain(initial(), None, &c.blocks, entries)
                        .expect_err("a flipped bit went unnoticed");
                    assert_eq!(err.height(), Some(height), "entry {seq} byte {pos}: {err}");
                    assert!(err.to_string().starts_with(&format!("block {height}: ")));
                    checked += 1;
                }
            }
        }
        assert!(checked > 500, "only {checked} flips checked");
    }

    #[test]
    fn specific_entry_damage_is_named() {
        let c = sample();
        let run = |entries: Vec<(u64, Vec<u8>)>| {
            verify_chain(initial(), None, &c.blocks, entries).unwrap_err()
        };
        // Truncated: does not decode.
        let mut entries = c.entries.clone();
        entries[3].1.pop();
        let err = run(entries);
        assert_eq!(err.at, Location::Block(2));
        assert!(
            matches!(err.kind, ChainErrorKind::BadEntry { seq: 4, .. }),
            "{err}"
        );
        // A trailing byte: decodes, but not canonically.
        let mut entries = c.entries.clone();
        entries[0].1.push(0);
        let err = run(entries);
        assert_eq!(
            err.kind,
            ChainErrorKind::BadEntry {
                seq: 1,
                error: DecodeError::NotCanonical
            }
        );
        // A missing entry.
        let mut entries = c.entries.clone();
        entries.remove(4);
        assert_eq!(
            run(entries),
            ChainError {
                at: Location::Block(2),
                kind: ChainErrorKind::MissingEntry { seq: 5 }
            }
        );
        // The log ends before the last block does.
        let entries = c.entries[..7].to_vec();
        assert_eq!(
            run(entries),
            ChainError {
                at: Location::Block(3),
                kind: ChainErrorKind::MissingEntry { seq: 8 }
            }
        );
        // Two entries swapped within a block: the root no longer matches.
        let mut entries = c.entries.clone();
        let (a, b) = (entries[5].1.clone(), entries[6].1.clone());
        entries[5].1 = b;
        entries[6].1 = a;
        let err = run(entries);
        assert_eq!(err.at, Location::Block(3));
        assert!(
            matches!(err.kind, ChainErrorKind::CommandsRoot { .. }),
            "{err}"
        );
    }

    #[test]
    fn a_forged_entry_with_a_matching_root_fails_its_signature_check() {
        let mut c = sample();
        // The validator itself makes up an action: a job the requester never signed, sealed with a
        // correct root, state hash and block signature.
        let forged = Entry {
            time: 2_000,
            input: Input::Signed(Signed {
                signer: Identity::from_secret([2; 32]).id(),
                nonce: u64::MAX,
                body: Action::SubmitJob(job_spec(2)),
                signature: engine::Sig([0; 64]),
            }),
        };
        c.entries.push((11, postcard::to_stdvec(&forged).unwrap()));
        c.state.apply(&forged).unwrap();
        c.seal();
        let err = c.verify().unwrap_err();
        assert_eq!(err.at, Location::Block(4));
        assert!(
            matches!(err.kind, ChainErrorKind::EntrySignature { seq: 11, .. }),
            "{err}"
        );
    }

    #[test]
    fn every_flipped_byte_in_a_block_is_caught_at_its_height() {
        let c = sample();
        let mut checked = 0;
        for (i, block) in c.blocks.iter().enumerate() {
            let height = block.header.height;
            let bytes = postcard::to_stdvec(block).unwrap();
            for pos in 0..bytes.len() {
                for bit in [0x01u8, 0x40, 0x80] {
                    let mut damaged = bytes.clone();
                    damaged[pos] ^= bit;
                    // Bytes that no longer decode canonically are the store's to report, with the
                    // height they are stored under; the rest must fail verification.
                    let Ok(block) = decode_canonical::<Block>(&damaged) else {
                        continue;
                    };
                    let mut blocks = c.blocks.clone();
                    blocks[i] = block;
                    let err = verify_chain(initial(), None, &blocks, c.entries.clone())
                        .expect_err("a flipped bit in a block went unnoticed");
                    assert_eq!(
                        err.height(),
                        Some(height),
                        "block {height} byte {pos}: {err}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 500, "only {checked} flips checked");
    }

    #[test]
    fn header_fields_are_each_covered() {
        let c = sample();
        let tamper = |f: &dyn Fn(&mut BlockHeader)| {
            let mut blocks = c.blocks.clone();
            f(&mut blocks[1].header);
            verify_chain(initial(), None, &blocks, c.entries.clone()).unwrap_err()
        };
        for err in [
            tamper(&|h| h.state_hash.0[0] ^= 1),
            tamper(&|h| h.commands_root.0[5] ^= 1),
            tamper(&|h| h.prev_hash.0[31] ^= 1),
            tamper(&|h| h.time += 1),
            tamper(&|h| h.last_seq += 1),
        ] {
            assert_eq!(
                err,
                ChainError {
                    at: Location::Block(2),
                    kind: ChainErrorKind::BadSignature(c.validator.id())
                }
            );
        }
        let mut blocks = c.blocks.clone();
        blocks[2].signature.0[10] ^= 4;
        let err = verify_chain(initial(), None, &blocks, c.entries.clone()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "block 3: signature does not verify for validator {}",
                c.validator.id()
            )
        );
    }

    #[test]
    fn a_validator_resigning_a_wrong_header_is_caught_by_replay() {
        let c = sample();
        let run = |f: &dyn Fn(&mut BlockHeader)| {
            let mut blocks = c.blocks.clone();
            let mut header = blocks[1].header.clone();
            f(&mut header);
            blocks[1] = sign_block(&c.validator, header);
            // Relink the next block so that only the tampered one is wrong.
            let mut next = blocks[2].header.clone();
            next.prev_hash = blocks[1].hash();
            blocks[2] = sign_block(&c.validator, next);
            verify_chain(initial(), None, &blocks, c.entries.clone()).unwrap_err()
        };
        let err = run(&|h| h.state_hash.0[0] ^= 1);
        assert_eq!(err.at, Location::Block(2));
        assert!(
            matches!(err.kind, ChainErrorKind::StateHash { .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("block 2: state hash mismatch (header says ")
        );
        let err = run(&|h| h.commands_root.0[0] ^= 1);
        assert!(
            matches!(err.kind, ChainErrorKind::CommandsRoot { .. }),
            "{err}"
        );
        let err = run(&|h| h.time = 0);
        assert!(
            matches!(err.kind, ChainErrorKind::TimeWentBack { .. }),
            "{err}"
        );
        let err = run(&|h| h.prev_hash = Hash([0; 32]));
        assert!(matches!(err.kind, ChainErrorKind::PrevHash { .. }), "{err}");
        let err = run(&|h| h.first_seq += 1);
        assert!(matches!(err.kind, ChainErrorKind::FirstSeq { .. }), "{err}");
        // A block that claims one entry fewer leaves the state one entry short.
        let err = run(&|h| h.last_seq -= 1);
        assert_eq!(err.at, Location::Block(2));
    }

    #[test]
    fn reordered_dropped_or_repeated_blocks_are_caught() {
        let c = sample();
        let run = |blocks: Vec<Block>| {
            verify_chain(initial(), None, &blocks, c.entries.clone()).unwrap_err()
        };
        let b = &c.blocks;
        let err = run(vec![b[0].clone(), b[2].clone(), b[1].clone()]);
        assert_eq!(
            err,
            ChainError {
                at: Location::Block(2),
                kind: ChainErrorKind::Height { got: 3 }
            }
        );
        assert_eq!(run(vec![b[1].clone(), b[2].clone()]).at, Location::Block(1));
        let err = run(vec![b[0].clone(), b[0].clone(), b[1].clone()]);
        assert_eq!(err.kind, ChainErrorKind::Height { got: 1 });
        assert_eq!(err.at, Location::Block(2));

        // A block dropped from the middle and the rest renumbered and re-signed: the link breaks.
        let mut third = b[2].header.clone();
        third.height = 2;
        let err = run(vec![b[0].clone(), sign_block(&c.validator, third)]);
        assert_eq!(err.at, Location::Block(2));
        assert!(matches!(err.kind, ChainErrorKind::PrevHash { .. }), "{err}");

        // Dropping the last block is not an error: its entries become the unsealed tail.
        let report = verify_chain(initial(), None, &b[..2], c.entries.clone()).unwrap();
        assert_eq!((report.blocks, report.tail_entries), (2, 5));
    }

    #[test]
    fn wrong_validator_is_caught() {
        let c = sample();
        // Pinned to another validator.
        let other = Identity::from_secret([7; 32]);
        let err =
            verify_chain(initial(), Some(other.id()), &c.blocks, c.entries.clone()).unwrap_err();
        assert_eq!(err.at, Location::Block(1));
        assert!(
            matches!(err.kind, ChainErrorKind::WrongValidator { .. }),
            "{err}"
        );
        // Pinned to the right one.
        verify_chain(
            initial(),
            Some(c.validator.id()),
            &c.blocks,
            c.entries.clone(),
        )
        .unwrap();
        // A block in the middle, valid in itself, but signed by another key.
        let mut blocks = c.blocks.clone();
        let mut header = blocks[1].header.clone();
        header.validator = other.id();
        blocks[1] = sign_block(&other, header);
        let err = verify_chain(initial(), None, &blocks, c.entries.clone()).unwrap_err();
        assert_eq!(err.at, Location::Block(2));
        assert_eq!(
            err.kind,
            ChainErrorKind::WrongValidator {
                expected: c.validator.id(),
                got: other.id()
            }
        );
        // Claiming to be the validator without its key.
        let mut blocks = c.blocks.clone();
        let mut header = blocks[0].header.clone();
        header.time += 1;
        blocks[0] = sign_block(&other, header);
        let err = verify_chain(initial(), None, &blocks, c.entries.clone()).unwrap_err();
        assert_eq!(err.kind, ChainErrorKind::BadSignature(c.validator.id()));
    }

    #[test]
    fn another_genesis_breaks_the_first_link() {
        let c = sample();
        let config = EngineConfig {
            max_attempts: 5,
            ..EngineConfig::default()
        };
        let err = verify_chain(State::new(config), None, &c.blocks, c.entries.clone()).unwrap_err();
        assert_eq!(err.at, Location::Block(1));
        assert!(matches!(err.kind, ChainErrorKind::PrevHash { .. }), "{err}");
    }

    #[test]
    fn a_rejected_tail_entry_is_reported_in_the_tail() {
        let c = sample();
        let mut entries = c.entries.clone();
        // Entry 9 again as entry 11: a replayed nonce.
        let again = entries[8].1.clone();
        entries.push((11, again));
        let err = verify_chain(initial(), None, &c.blocks, entries).unwrap_err();
        assert_eq!(err.at, Location::Tail { after: 3 });
        assert_eq!(err.height(), None);
        assert!(
            matches!(err.kind, ChainErrorKind::Rejected { seq: 11, .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("unsealed entries after block 3: log entry 11 is rejected on replay")
        );
    }

    #[test]
    fn incremental_tail_continues_across_calls() {
        let c = sample();
        let mut v = Verifier::new(initial(), None);
        let mut rest = c.entries.as_slice();
        for block in &c.blocks {
            let n = block.header.entries() as usize;
            v.block(block, &rest[..n]).unwrap();
            rest = &rest[n..];
        }
        v.tail(&rest[..1]).unwrap();
        v.tail(&rest[1..]).unwrap();
        assert_eq!(
            v.tail(&rest[1..]).unwrap_err().kind,
            ChainErrorKind::UnexpectedEntry {
                expected: 11,
                got: 10
            }
        );
    }
}
