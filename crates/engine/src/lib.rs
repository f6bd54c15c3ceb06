//! Gridmint's engine: the deterministic state machine that holds all network state.
//!
//! An [`Entry`] (an input plus the time the leader accepted it) goes in through [`State::apply`];
//! [`Event`]s or a typed [`Rejection`] come out. The engine reads no clock, no random source, no
//! socket and no file, and does not panic on any input: the same entries always give the same state,
//! byte for byte, and the same [`State::hash`]. Persistence, replication and simulation are all built
//! on that one property.
#![cfg_attr(
    not(test),
    deny(
        clippy::arithmetic_side_effects,
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

/// The version of the engine's rules a new network runs. Every rule change that alters how an
/// input applies is gated on `State::rules`, so an older chain replays under its own rules.
///
/// - 1: the rules before versioning.
/// - 2: a success reported with more fuel than the task's limit is ignored (an honest sandbox
///   never exceeds it).
/// - 3: a failure the sandbox reproduces exactly (exit status, trap, out of fuel, memory or
///   output limit, after running guest code) is verified like a result: it fails its task only
///   when matching failures reach the policy's quorum (fixed voting: at least `max_attempts`;
///   adaptive: with a trusted member); a failure that loses to an accepted result is slashed; a
///   provider that loses a quorum loses the weight of its results pending elsewhere; a confirmed
///   failure is paid like a result. Any report claiming more fuel than the task's limit is a
///   failed attempt. `LeaderCommand::Speculate` queues a speculative replica of a straggler; a
///   trusted result is accepted alone when it is the only one returned and the other runs are
///   trusted providers'. Adaptive policy: a disputed task is settled only by a group with a
///   trusted member while a trusted provider could take part, and a loser is slashed only on
///   such a group's word.
/// - 4: a new network's default local queue is 256 tasks per slot
///   ([`ScheduleParams::for_rules`]; it was 64), so a fast provider of very short tasks is not
///   held to a round trip per 64 tasks; the state hash has two parts, the validators field's
///   and the rest's ([`State::hash_parts`]), so a block's state hash proves the validator set to
///   a light client that holds only the set; a validator's removal must leave the others more
///   than half of the voting power (the block that removes it stays certifiable). Inputs apply
///   as under 3 otherwise.
/// - 5: audits nobody can predict ([`audit`]): a trusted provider's lone result waits for the
///   leader's next beacon reveal ([`LeaderCommand::Beacon`]), which decides whether it is audited;
///   the audit rate starts at every result when a provider becomes trusted and halves every
///   [`AUDIT_HALVING`] audits it passes, down to `spot_check_bps`; losing a quorum starts it over.
/// - 6: trust comes from trusted providers, not from peers. Once an active provider has passed
///   an audit (`State::audited_around`), a success needs a trusted member to be accepted while
///   a trusted provider could take part (as a disputed one did since rules 3), and agreement
///   builds a provider's streak only in a group with a trusted member. A replica only a trusted
///   provider can settle (an audit's, or the missing trusted member of a group that has the
///   weight) goes only to trusted providers, and waits among the re-executions
///   (`State::recheck`) rather than in the queue, so untrusted providers neither use up the
///   task's room nor walk past it when they fetch. The audit rate's floor doubles with every
///   slash the provider took. A dispute's winner must lead every other group (not only one with
///   a trusted member) by a full quorum, so an outvoted newcomer is slashed on a decisive win.
/// - 7: validators' providers anchor trust. A provider registered under a validator's account
///   that has never lost a quorum (`State::is_anchor`) is trusted from its first result, its
///   results are never audited (a group with it as a member is accepted without the beacon's
///   draw), and it counts as audited for `State::audited_around`: on a network with validators,
///   a newcomer's result is confirmed by a trusted provider from the first round, and trust
///   grows out from the validators, never from agreement among newcomers alone. Under the
///   adaptive policy an anchor's success settles its task at once (its group wins whatever the
///   others weigh, and the losers are slashed). A dispute that only a group with a trusted
///   member may win gathers runs from trusted providers only (as many as the weight it needs),
///   so colluders cannot pile onto the wrong side and use up its room.
/// - 8: every logged action a key signs costs its signer the genesis's `action_fee`, paid to
///   the treasury (`State::action_fee`; reports of assigned work and the faucet are free), so
///   filling the log costs real tokens. An action its signer cannot also pay the fee for is
///   refused whole. Inputs apply as under 7 otherwise.
/// - 9: when a trusted provider (or an anchor) is lost or leaves, the tasks whose replicas are
///   held for trusted providers only are settled again, so that with no trusted provider left
///   they go to anyone instead of waiting for good. Inputs apply as under 8 otherwise.
/// - 10: storage deposits ([`storage`]): a job may be submitted with a storage claim
///   (`Action::SubmitJobWithStorage`), and must be on a network whose genesis prices storage;
///   its deposit is locked beside the escrow and returned when its storage is released (by its
///   owner's `Action::ReleaseJob` once it ended, or by `LeaderCommand::ReleaseStorage` once it
///   has been over for the retention time). A success whose output is larger than the claim's
///   output room counts as a failed attempt. Inputs apply as under 9 otherwise.
/// - 11: job options ([`options`]): a job may be submitted with options
///   (`Action::SubmitJobWithOptions`) that list the exit statuses that are a successful answer
///   (0 alone by default) and name the entry export of a module that is not a WASI command. A
///   run exiting with one of the statuses returned a result, compared on its status as well as
///   its output and fuel; any other exit status, 0 included when the job does not list it, is a
///   verified failure. Inputs apply as under 10 otherwise.
/// - 12: job files ([`files`]): a job may be submitted with files
///   (`Action::SubmitJobWithFiles`): directory trees (blobs) mounted read-only at paths it
///   chooses, and an empty writable scratch directory with a size quota. Inputs apply as under
///   11 otherwise.
/// - 13: private jobs ([`private`]): a job may be submitted private
///   (`Action::SubmitPrivateJob`), sealed to the providers that may run it; its tasks are
///   assigned to those providers only, and its descriptors carry the sealing; its verdicts
///   settle results and payments but never touch reputation, trust or stake; its owner may seal
///   it to more providers (`Action::SealJobTo`). Inputs apply as under 12 otherwise.
/// - 14: anchors judge disputes between trusted providers (`State::anchors_decide`): when two
///   groups of a task's results each hold a trusted member and an anchor could run the task,
///   only an anchor's run settles it. A disputed task's winner leads every other group by twice
///   the threshold. Inputs apply as under 13 otherwise.
/// - 15: the wide margin of 14 holds only over a group with a trusted member or a credible one
///   (it lost no more quorums than it had results confirmed), and a provider that lost a quorum
///   and has not earned trust again since is given one task at a time (`State::room`). Inputs
///   apply as under 14 otherwise.
/// - 16: backtracking. When a provider is slashed on trusted evidence, every result of its that
///   was accepted alone in an adaptive job still gathering its map results is reopened
///   (`State::reopen_lone_results`, `State::reopened`): its job cannot complete until a trusted
///   provider's run of the task, started after the reopening, settles it like an audit. The
///   provider was paid already and is not paid again if its result is confirmed; a result
///   found wrong is rejected and slashed like any other. Inputs apply as under 15 otherwise.
/// - 17: anchors also judge a dispute between a group with a trusted member and a credible one
///   without (`State::anchors_decide`), which 14 settled by the wide margin. Inputs apply as
///   under 16 otherwise.
/// - 18: a dispute waiting for an anchor waits among `State::disputes`, apart from the other
///   re-executions, and only anchors' fetches look there; it stays there until it is settled
///   again (a result, a run timed out or lost, a slash of one of its providers, or a change
///   among the anchors able to take it), even if what made it the anchors' has changed
///   otherwise meanwhile. Inputs apply as under 17 otherwise.
/// - 19: correction after delivery. Backtracking (16) also reopens lone results in a job whose
///   reduce began (the reduce is dropped and runs afresh once the maps are accepted again) and
///   in a completed job whose storage is not released yet (`State::correctable`): the job runs
///   again (`Event::JobReopened`, `State::corrected`). A result agreed on by several providers
///   is reopened too once every one of them has been slashed (colluders confirming each
///   other), and none of them is paid again when it is settled. A job running again so
///   (`State::correcting`) delivered within its deadline, which no longer ends it. To pay for
///   that, a completed job's
///   escrow keeps back what re-running its lone results would cost
///   (`State::correction_reserve`) until its storage is released, which returns it. Inputs
///   apply as under 18 otherwise.
/// - 20: tasks run under sandbox profile 2 (`TaskDescriptor::profile`, `State::sandbox_profile`):
///   a NaN is made canonical only where its bits become observable, by a rewrite of the module
///   that is metered like the guest's own code, instead of after every float instruction
///   (profile 1). A run's output is the same under both except for a NaN whose sign was flipped
///   after it was made; its fuel differs for a module that stores floats, so the profile is the
///   network's and never mixed. Inputs apply as under 19 otherwise.
/// - 21: tasks run under sandbox profile 3: profile 2's NaNs, and fuel metered by a rewrite of
///   the module instead of wasmtime's `consume_fuel`, which charges an innermost counted loop
///   once on entry when it fits. A call counts what wasmtime counts; instantiation is free and
///   every bulk memory operation is followed by a check, so fuel (and where a run stops out of
///   it) can differ from profile 2's, and the profile is again the network's. Inputs apply as
///   under 20 otherwise.
/// - 22: tasks run under sandbox profile 4: profile 3, except that a float SIMD result is made
///   canonical only where its bits become observable (stored, read as integers or by the other
///   lane shape, passed out of a block or function), as a scalar's is, instead of right after
///   the instruction that made it. Fuel differs from profile 3's for a module with float SIMD
///   code, and so does the sign of a NaN whose sign a vector `neg` or `abs` changed. Inputs
///   apply as under 21 otherwise.
/// - 23: GPU jobs ([`gpu`]): a job may be submitted as a GPU job (`Action::SubmitGpuJob`),
///   whose module is a WGSL compute shader dispatched with the buffers the job declares
///   (`TaskDescriptor::gpu`); its tasks go only to providers that declare a GPU, and a job whose
///   shader uses floats runs on one GPU class, the one the first provider to take one of its
///   tasks declared. A provider may register with a GPU offer (`Action::RegisterGpuProvider`:
///   its device's largest buffer and measured GPU fuel per millisecond); only providers with one
///   take GPU tasks, and the scheduler estimates a GPU task's time from the offer. Inputs apply
///   as under 22 otherwise.
/// - 24: energy, carbon and availability ([`energy`]): a provider may report each run's energy
///   with its result (`Action::ReportMeteredResults`), kept with its electricity's carbon
///   intensity (announced, or the genesis's table's for its region) so that a job's energy and
///   carbon are the sums over its accepted runs; a provider may announce that it is suspended
///   (`Action::Announce`), and the scheduler then gives it no work and does not count on it
///   (`State::counts_on`) until it announces otherwise, registers again, leaves or is lost; a
///   job may prefer low-carbon providers (`Action::SubmitWithPreferences`), softly. Inputs
///   apply as under 23 otherwise.
/// - 25: delegated staking ([`delegation`]): any account may back an active provider with
///   its tokens (`Action::Delegate`), buying shares of the provider's pool; the pool's bonded
///   tokens count toward the provider's minimum stake; of each payment the provider earns, its
///   commission (`Action::SetCommission`, at most 50%, raised by at most 5 points a day while it
///   has delegators) and its own stake's share stay with it and the pool's share goes to its
///   delegators, pro rata by an exact reward index (`Action::WithdrawRewards`); a slash takes
///   the same fraction of the pool, bonded and unbonding, as of the provider's own stake;
///   undelegated tokens (`Action::Undelegate`) wait out the unbonding delay and are released
///   with the account's own; governance ([`gov`]): stake-weighted proposals
///   (`Action::Propose`, `Action::Vote`) change the network's parameters or spend from the
///   treasury, decided at the first entry after their voting period ends; a price index
///   ([`market`]): each payment's price per fuel is kept per resource class. Inputs apply as
///   under 24 otherwise.
/// - 26: reserved capacity ([`reserve`]): a requester reserves slots for periods at a price per
///   slot per period (`Action::Reserve`, the first period prepaid), providers that meet its
///   requirements lease them (`Action::AcceptReservation`); the scheduler gives the leased
///   slots to the requester's tasks first and to no one else's, those tasks are paid by the
///   lease, and each period is paid to the provider at its end whether used or not (refunded
///   when the provider missed it); cancellation by either side (`Action::CancelReservation`,
///   `Action::LeaveReservation`); governance may change the validator set
///   (`ParamChange::Validator`, applied by `LeaderCommand::ChangeValidators` one per block) and
///   state a delay before a passed proposal takes effect (`Action::ProposeWithDelay`); beyond
///   one task per slot a provider holds work worth at most
///   `HOLD_PER_BACKING` times its backing. Inputs apply as under 25 otherwise.
/// - 27: validators earn and can be backed ([`delegation`]): `StakingParams::validator_fee_bps`
///   of every fee the treasury collects is paid out to the validators by voting power (at most
///   every `validator_payout_every_ms`, and before the set changes by vote or proposal), each
///   share split like a provider's payment between commission, own stake and pool; any account
///   may delegate to a validator (`Action::Delegate`), whose pool counts toward the stake it
///   needs to join and loses the same fraction as the validator in an equivocation slash; the
///   staking rules (minimum delegation, commission bounds, the validators' share and payout
///   period) are governance parameters (`ParamChange::Staking`, or the genesis's), and so are
///   the scheduler's tunables (`ParamChange::Scheduling`). Inputs apply as under 26 otherwise.
/// - 28: a provider's GPU class counts only once proven ([`gpu_class`]): the first of a class
///   founds it, anyone after is checked by a member (`Action::ChallengeGpuClass`, a challenge
///   and a commitment to the member's answer; `Action::AnswerGpuClass`, the answer within
///   `CLASS_ANSWER_MS`; at most `MAX_CLASS_CHECKS` checks a claim; neither pays the fee per
///   action), and a float GPU job's tasks go only to providers of a proven class.
///   Inputs apply as under 27 otherwise.
/// - 29: tasks run under sandbox profile 5: profile 4, except that the module charges each call
///   of a host function itself (`sandbox::HOSTCALL_FUEL`) and nothing else counts as one
///   (profile 4's host charged wasmtime's internal calls too, such as `memory.grow` and bulk
///   memory operations, against a counter the module had not stored, so its count depended on
///   where the host's slices of fuel ended). Fuel is wasmtime's for the module's own
///   instructions plus the host calls', the same in-thread and in a provider's worker
///   processes. Inputs apply as under 28 otherwise.
/// - 30: a float GPU job may declare a tolerance instead of one class ([`tolerance`]:
///   `Action::SubmitGpuJobWithTolerance`): its tasks run on any GPU provider, its providers
///   report results with their outputs (`Action::ReportResultsWithOutputs`), and a result
///   agrees with a group when its `f32` values are within the tolerance of the group's first
///   result's (same size, fuel and status). An assignment settles its tasks once all its runs
///   are started (before, settling one could settle another that then got the provider's run:
///   a done task still running). Inputs apply as under 29 otherwise.
pub const RULES: u32 = 30;
/// The rules of a network whose genesis predates the version.
pub const FIRST_RULES: u32 = 1;

pub mod audit;
pub mod chain;
pub mod command;
pub mod delegation;
pub mod energy;
pub mod files;
pub mod gov;
pub mod gpu;
pub mod gpu_class;
pub mod ledger;
pub mod market;
pub mod options;
pub mod private;
pub mod reserve;
pub mod schedule;
pub mod state;
pub mod storage;
pub mod tolerance;
pub mod types;
pub mod validators;
pub mod verify;

pub use audit::{AUDIT_HALVING, Audit, Audits, Reopened, beacon_secret};
pub use chain::{
    Block, BlockHeader, SetChange, Validator, ValidatorSet, decode_canonical, entry_leaf,
    genesis_hash, merkle_root,
};
pub use command::{
    Action, Entry, Event, FETCH_CACHED_MAX, Input, LeaderCommand, Rejection, Request, Signed,
    SignedBody, WAITING_MAX, Waiting, WorkFetch,
};
pub use delegation::{
    COMMISSION_PERIOD_MS, COMMISSION_STEP_BPS, DEFAULT_COMMISSION_BPS, Delegation, Delegations,
    INDEX_SCALE, MAX_COMMISSION_BPS, MIN_DELEGATION_DIVISOR, Pool, PoolUnbonding, Sample, Staking,
    StakingParams,
};
pub use energy::{
    Announcement, CarbonTable, EnergyMethod, EnergyReport, JobEnergy, JobPreferences, RunEnergy,
    Suspension,
};
pub use files::{
    Files, JobFiles, MAX_MOUNT_DEPTH, MAX_MOUNT_PATH, MAX_MOUNTS, MAX_SCRATCH_BYTES, Mount,
    Scratch, submission_blobs,
};
pub use gov::{
    GovParams, Governance, MAX_CHANGES, MAX_DELAY_MS, MAX_OPEN, MAX_TITLE, ParamChange, Proposal,
    ProposalStatus, Tally, VoteOption,
};
pub use gpu::{
    FINGERPRINT_CHALLENGE, GpuBuffer, GpuFill, GpuJob, GpuJobs, GpuOffer, MAX_GPU_BINDING,
    MAX_GPU_BUFFERS, MAX_GPU_ENTRY, MAX_GPU_WORKGROUPS,
};
pub use gpu_class::{
    CLASS_ANSWER_MS, ClassChallenge, GpuClasses, MAX_CLASS_CHECKS, PendingClass, ProvenClass,
    class_commitment,
};
pub use ledger::{
    BASE_UNITS_PER_TOKEN, DECIMALS, DEV_ACTION_FEE, Escrow, FaucetParams, Genesis, LedgerParams,
    SlashEvidence, SlashParams, Supply, TOKEN_SYMBOL, Tokens, Unbonding, parse_tokens, tokens,
};
pub use market::{Clearing, MARKET_REGIONS, MARKET_WINDOW, Market, PriceIndex};
pub use options::{JobOptions, MAX_ENTRY_LEN, MAX_EXIT_STATUS, MAX_SUCCESS_EXITS, Options};
pub use private::{MAX_CLEAR, MAX_RECIPIENTS, MAX_WRAPPED_KEY, Private, Recipient, Sealing};
pub use schedule::{Dispatch, ScheduleParams};
pub use state::{EngineConfig, Job, JobStatus, Provider, ProviderStatus, State, Task, TaskState};
pub use storage::{JobStorage, Storage, StorageClaim, StorageParams};
pub use tolerance::{MAX_TOLERANT_OUTPUT, MAX_ULPS, Output, Tolerance, Tolerances};
pub use types::*;
pub use validators::{
    Equivocation, Lost, SILENCE_MAX_SKEW_MS, SignedHeader, Silence, ValidatorChange, Validators,
};
pub use verify::{
    ANCHOR_DISPUTE, FAILURE_MESSAGE_MAX, MAX_RESULTS, MAX_SCORE, REOPENED, Reputation, Run,
    RunOutcome, VerifyParams, failure_key,
};
