//! The engine's inputs (what the log holds), its outputs (events) and its typed rejections.

use crate::ledger::SlashEvidence;
use crate::types::{
    AccountId, Amount, Hash, JobId, JobSpec, ProviderSpec, Sig, TaskId, TaskReport, Time,
};
use crate::validators::{Equivocation, Lost, ValidatorChange};
use serde::{Deserialize, Serialize};

/// A body signed by an account. The signature covers [`Signed::signing_bytes`]: a domain tag naming
/// the body type, the signer, the nonce and the body, all postcard-encoded — canonical because the
/// encoding of a typed value is unique.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Signed<T> {
    pub signer: AccountId,
    /// Strictly increasing per signer: a request whose nonce is not above the last one seen is a replay.
    pub nonce: u64,
    pub body: T,
    pub signature: Sig,
}

/// A type that may be signed. The domain keeps a signature over one type from being valid for another.
pub trait SignedBody: Serialize {
    const DOMAIN: &'static str;
}

impl<T: SignedBody> Signed<T> {
    /// The exact bytes the signature is over.
    pub fn signing_bytes(signer: &AccountId, nonce: u64, body: &T) -> Vec<u8> {
        // postcard only fails on a writer error or an unsupported type; neither happens for our
        // plain data into a Vec, and an empty result would make every signature check fail.
        postcard::to_stdvec(&(T::DOMAIN, signer, nonce, body)).unwrap_or_default()
    }
}

/// State changes an account asks for. These enter the log signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Register (or re-register, updating the spec) the signer as a provider.
    RegisterProvider(ProviderSpec),
    /// The signing provider leaves; its tasks in flight go back to the queue.
    LeaveProvider,
    /// Submit a job owned by the signer.
    SubmitJob(JobSpec),
    /// Results of tasks the signing provider ran.
    ReportResults(Vec<TaskReport>),
    /// The job's owner gives up on it.
    CancelJob(JobId),
    /// Move tokens from the signer's balance to `to`.
    Transfer {
        to: AccountId,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
    },
    /// Development networks only: credit the signer the faucet amount.
    Faucet,
    /// Bond `amount` of the signer's balance as provider stake.
    Stake {
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
    },
    /// Start unbonding `amount` of the signer's stake; it is released after the unbonding delay.
    Unstake {
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
    },
    /// A validator's vote for a change to the validator set (made once a majority of the voting
    /// power voted for it).
    ValidatorVote(ValidatorChange),
    /// Rules 10: submit a job owned by the signer, with what its storage takes (the basis of its
    /// deposit; see [`crate::storage`]). A network that charges for storage takes jobs only so.
    SubmitJobWithStorage {
        spec: JobSpec,
        storage: crate::storage::StorageClaim,
    },
    /// Rules 10: the owner of an ended job is done with its blobs: the job's storage is
    /// released and its deposit returned.
    ReleaseJob(JobId),
    /// Rules 11: submit a job owned by the signer with options beyond its spec (which exit
    /// statuses are answers, which export is the entry: see [`crate::options`]), and its storage claim where the network
    /// prices storage.
    SubmitJobWithOptions {
        spec: JobSpec,
        storage: Option<crate::storage::StorageClaim>,
        options: crate::options::JobOptions,
    },
    /// Rules 12: submit a job owned by the signer with options and files beyond its spec
    /// (directory trees mounted read-only, a scratch directory: see [`crate::files`]), and its
    /// storage claim where the network prices storage (its input bytes count the trees too).
    SubmitJobWithFiles {
        spec: JobSpec,
        storage: Option<crate::storage::StorageClaim>,
        options: crate::options::JobOptions,
        files: crate::files::JobFiles,
    },
    /// Rules 13: submit a private job owned by the signer (see [`crate::private`]): as
    /// [`Action::SubmitJobWithFiles`], its blobs encrypted under a job key that `sealing` wraps
    /// to each provider allowed to run its tasks (and to no other).
    SubmitPrivateJob {
        spec: JobSpec,
        storage: Option<crate::storage::StorageClaim>,
        options: crate::options::JobOptions,
        files: crate::files::JobFiles,
        sealing: crate::private::Sealing,
    },
    /// Rules 23: register (or re-register) the signer as a provider that runs GPU tasks on the
    /// device `gpu` describes (see [`crate::gpu::GpuOffer`]).
    RegisterGpuProvider {
        spec: crate::types::ProviderSpec,
        gpu: crate::gpu::GpuOffer,
    },
    /// Rules 23: submit a GPU job owned by the signer (see [`crate::gpu`]): its module is a
    /// WGSL compute shader run as `gpu` declares; with its storage claim where the network
    /// prices storage.
    SubmitGpuJob {
        spec: JobSpec,
        storage: Option<crate::storage::StorageClaim>,
        gpu: crate::gpu::GpuJob,
    },
    /// Rules 13: the owner of an unfinished private job seals it to more providers (the same
    /// key wrapped to each: see [`crate::private`]), which may then take its tasks.
    SealJobTo {
        job: JobId,
        recipients: Vec<crate::private::Recipient>,
    },
    /// Rules 24: results of tasks the signing provider ran, each with the energy its run used
    /// (`energy[i]` is `reports[i]`'s, `None` where the provider did not meter the run; see
    /// [`crate::energy`]).
    ReportMeteredResults {
        reports: Vec<TaskReport>,
        energy: Vec<Option<crate::energy::EnergyReport>>,
    },
    /// Rules 24: the signing provider says whether (and why) it is suspended and what its
    /// electricity's carbon intensity is (see [`crate::energy::Announcement`]).
    Announce(crate::energy::Announcement),
    /// Rules 24: a job submission (any of the `Submit…` actions but this one) with what the job
    /// asks of the scheduler beyond it.
    SubmitWithPreferences {
        preferences: crate::energy::JobPreferences,
        /// Decoded one level deep only: a wrapper inside a wrapper is refused as it is read,
        /// so no input can nest them until decoding runs out of stack.
        #[serde(with = "one_level")]
        #[cfg_attr(feature = "openapi", schema(no_recursion))]
        submission: Box<Action>,
    },
    /// Rules 25: the signer backs `provider` with `amount` of its balance (see
    /// [`crate::delegation`]).
    Delegate {
        provider: AccountId,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
    },
    /// Rules 25: the signer takes `amount` of its delegation to `provider` back (released after
    /// the unbonding delay, slashable until then).
    Undelegate {
        provider: AccountId,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
    },
    /// Rules 25: the signer withdraws what its delegation to `provider` earned.
    WithdrawRewards { provider: AccountId },
    /// Rules 25: the signing provider's commission, in basis points of each payment it earns,
    /// kept before its delegators share the rest.
    SetCommission { commission_bps: u32 },
    /// Rules 25: the signer proposes `changes` (see [`crate::gov`]), holding `deposit` until the
    /// proposal is decided.
    Propose {
        title: String,
        changes: Vec<crate::gov::ParamChange>,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        deposit: Amount,
    },
    /// Rules 25: the signer votes on an open proposal (again: its vote changes).
    Vote {
        proposal: u64,
        option: crate::gov::VoteOption,
    },
    /// Rules 26: as `Action::Propose`, its changes (if it passes) taking effect `delay_ms` after
    /// its vote ends rather than at once.
    ProposeWithDelay {
        title: String,
        changes: Vec<crate::gov::ParamChange>,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        deposit: Amount,
        delay_ms: u64,
    },
    /// Rules 26: the signer reserves task slots (see [`crate::reserve`]), the first period of
    /// every slot prepaid.
    Reserve(crate::reserve::ReservationSpec),
    /// Rules 26: the signing provider leases `slots` of reservation `reservation`'s open slots
    /// at its price.
    AcceptReservation { reservation: u64, slots: u32 },
    /// Rules 26: the reservation's owner cancels it: open slots refunded now, leases not renewed.
    CancelReservation { reservation: u64 },
    /// Rules 26: the signing provider gives its lease up now, its current period refunded.
    LeaveReservation { reservation: u64 },
    /// Rules 28: the signing provider, a proven member of the GPU class `provider` claims,
    /// checks the claim: `provider`'s device must fingerprint `challenge` to an answer whose
    /// [`crate::gpu_class::class_commitment`] is `commitment` (see [`crate::gpu_class`]).
    ChallengeGpuClass {
        provider: AccountId,
        challenge: u64,
        commitment: Hash,
    },
    /// Rules 28: the signing provider answers its open class check with its device's
    /// fingerprint of the challenge.
    AnswerGpuClass { answer: Hash },
    /// Rules 30: submit a GPU job owned by the signer, as [`Action::SubmitGpuJob`], whose
    /// results agree within `tolerance` from any GPU (see [`crate::tolerance`]).
    SubmitGpuJobWithTolerance {
        spec: JobSpec,
        storage: Option<crate::storage::StorageClaim>,
        gpu: crate::gpu::GpuJob,
        tolerance: crate::tolerance::Tolerance,
    },
    /// Rules 30: results of tasks the signing provider ran, as
    /// [`Action::ReportMeteredResults`], with the output of each result of a job compared within
    /// a tolerance (`outputs[i]` is `reports[i]`'s; `None` for any other: see
    /// [`crate::tolerance`]).
    ReportResultsWithOutputs {
        reports: Vec<TaskReport>,
        energy: Vec<Option<crate::energy::EnergyReport>>,
        outputs: Vec<Option<crate::tolerance::Output>>,
    },
}

/// The submission inside `Action::SubmitWithPreferences`, decoded only where no other is being
/// decoded around it on this thread.
mod one_level {
    use super::Action;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::cell::Cell;

    thread_local! {
        static INSIDE: Cell<bool> = const { Cell::new(false) };
    }

    /// Leaves the wrapper (restores the flag) however its decoding ends.
    struct Inside;

    impl Drop for Inside {
        fn drop(&mut self) {
            INSIDE.with(|c| c.set(false));
        }
    }

    pub fn serialize<S: Serializer>(action: &Action, serializer: S) -> Result<S::Ok, S::Error> {
        action.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Box<Action>, D::Error> {
        if INSIDE.with(|c| c.replace(true)) {
            return Err(serde::de::Error::custom(
                "a submission with preferences inside another one",
            ));
        }
        let _inside = Inside;
        Action::deserialize(deserializer).map(Box::new)
    }
}

impl SignedBody for Action {
    const DOMAIN: &'static str = "gridmint/v1/action";
}

impl Action {
    /// The results a report carries (`ReportResults`, rules 24's `ReportMeteredResults` or rules
    /// 30's `ReportResultsWithOutputs`).
    pub fn reports(&self) -> Option<&[TaskReport]> {
        match self {
            Action::ReportResults(reports)
            | Action::ReportMeteredResults { reports, .. }
            | Action::ReportResultsWithOutputs { reports, .. } => Some(reports),
            _ => None,
        }
    }

    /// The submission itself: the one a `SubmitWithPreferences` wraps, or this action.
    pub fn unwrapped(&self) -> &Action {
        match self {
            Action::SubmitWithPreferences { submission, .. } => submission,
            other => other,
        }
    }

    /// The job a submission carries, with its storage claim if it has one.
    pub fn submission(&self) -> Option<(&JobSpec, Option<&crate::storage::StorageClaim>)> {
        match self.unwrapped() {
            Action::SubmitJob(spec) => Some((spec, None)),
            Action::SubmitJobWithStorage { spec, storage } => Some((spec, Some(storage))),
            Action::SubmitJobWithOptions { spec, storage, .. }
            | Action::SubmitJobWithFiles { spec, storage, .. }
            | Action::SubmitPrivateJob { spec, storage, .. }
            | Action::SubmitGpuJob { spec, storage, .. }
            | Action::SubmitGpuJobWithTolerance { spec, storage, .. } => {
                Some((spec, storage.as_ref()))
            }
            _ => None,
        }
    }

    /// The files a submission carries (rules 12), if it carries any.
    pub fn submission_files(&self) -> Option<&crate::files::JobFiles> {
        match self.unwrapped() {
            Action::SubmitJobWithFiles { files, .. } | Action::SubmitPrivateJob { files, .. } => {
                Some(files)
            }
            _ => None,
        }
    }

    /// The options a submission carries (rules 11), if it carries any.
    pub fn submission_options(&self) -> Option<&crate::options::JobOptions> {
        match self.unwrapped() {
            Action::SubmitJobWithOptions { options, .. }
            | Action::SubmitJobWithFiles { options, .. }
            | Action::SubmitPrivateJob { options, .. } => Some(options),
            _ => None,
        }
    }

    /// The GPU declaration of a GPU job's submission (rules 23).
    pub fn submission_gpu(&self) -> Option<&crate::gpu::GpuJob> {
        match self.unwrapped() {
            Action::SubmitGpuJob { gpu, .. } | Action::SubmitGpuJobWithTolerance { gpu, .. } => {
                Some(gpu)
            }
            _ => None,
        }
    }

    /// The tolerance of a GPU job's submission that declares one (rules 30).
    pub fn submission_tolerance(&self) -> Option<&crate::tolerance::Tolerance> {
        match self.unwrapped() {
            Action::SubmitGpuJobWithTolerance { tolerance, .. } => Some(tolerance),
            _ => None,
        }
    }

    /// The sealing of a private job's submission (rules 13).
    pub fn submission_sealing(&self) -> Option<&crate::private::Sealing> {
        match self.unwrapped() {
            Action::SubmitPrivateJob { sealing, .. } => Some(sealing),
            _ => None,
        }
    }

    /// Every blob a submission names: its spec's and its mounted trees' (sorted, each once).
    pub fn submission_blobs(&self) -> Vec<crate::types::Hash> {
        match self.submission() {
            Some((spec, _)) => crate::files::submission_blobs(spec, self.submission_files()),
            None => Vec::new(),
        }
    }
}

/// Decisions that depend on timing, made by the coordinator (the leader) and logged so that replay
/// never re-decides them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LeaderCommand {
    /// Hand these queued tasks to this provider.
    AssignTasks {
        provider: AccountId,
        tasks: Vec<TaskId>,
    },
    /// The provider missed its heartbeat deadline.
    ProviderLost { provider: AccountId },
    /// The job is past its deadline.
    ExpireJob { job: JobId },
    /// The account's unbonding delay has passed: its unbonded stake returns to its balance.
    ReleaseStake { account: AccountId },
    /// The provider has not reported these runs by their deadline: each counts as a failed
    /// attempt and the task is queued again.
    TimeOutRuns {
        provider: AccountId,
        tasks: Vec<TaskId>,
    },
    /// Rules 3: these tasks' only runs are stragglers ([`crate::State::straggling`]) while
    /// nothing else waits in the queue: each gets one speculative replica on another operator;
    /// the first result that settles the task wins and the other run is cancelled.
    Speculate { tasks: Vec<TaskId> },
    /// Rules 5: the leader's audit beacon (see [`crate::audit`]). `reveal`, when present, must
    /// hash to the standing commitment: it decides the audit of every trusted lone result waiting
    /// for it. `commit` is the hash of the next secret. A leader without the standing
    /// commitment's secret (a new one) sends no reveal, only its own commitment.
    Beacon { reveal: Option<Hash>, commit: Hash },
    /// Rules 10: these jobs have been over for the retention time: their storage is released
    /// and their deposits returned ([`crate::storage`]).
    ReleaseStorage { jobs: Vec<JobId> },
    /// Rules 25: voting on a proposal has ended and no other entry has come since to decide it
    /// (see [`crate::gov`]): an entry that only decides the proposals due. Refused when none is.
    DecideProposals,
    /// Rules 26: an offer lapsed or a lease's period ended and no other entry has come since to
    /// settle it (see [`crate::reserve`]); rules 27: or the validators' payout of their share of
    /// the fees is due (see [`crate::delegation`]). Refused when nothing is due.
    SettleReservations,
    /// Rules 26: applies the first change of the validator set that passed proposals queued
    /// (see [`crate::gov::Schedule`]); the leader sends it only once the block before has been
    /// sealed with the set unchanged since. Refused when none is queued.
    ChangeValidators,
}

/// One input to the state machine.
// Most inputs are signed actions, so boxing the large variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Input {
    Signed(Signed<Action>),
    Leader(LeaderCommand),
    /// Evidence that a validator signed two different blocks at one height: anyone may submit
    /// it, and it needs no signature of its own (see [`crate::validators`]).
    Evidence(Box<Equivocation>),
    /// A provider silent to validators holding a majority of the voting power (a validator
    /// set's way of declaring one lost; a single coordinator uses
    /// [`LeaderCommand::ProviderLost`]).
    Lost(Box<Lost>),
    /// Providers' own signed work fetches: the engine picks the tasks each gets (see
    /// [`WorkFetch`]).
    Fetch(Box<WorkFetch>),
}

/// Signed requests that are not actions: a provider asks for work, proves it is alive, or asks
/// to store a blob. Only fetches are ever logged (inside an [`Input::Fetch`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// A provider asks for up to `max` tasks, waiting up to `wait_ms` for work to appear. `held`
    /// lists the tasks it is running or has results for: any task assigned to it but not held (an
    /// answer lost to a crash or a network failure) is delivered again.
    Fetch {
        max: u32,
        wait_ms: u32,
        held: Vec<TaskId>,
        /// Blobs (modules, inputs) the provider holds locally, at most [`FETCH_CACHED_MAX`]: the
        /// scheduler prefers giving it tasks that use them.
        #[serde(default)]
        cached: Vec<Hash>,
    },
    /// A provider is alive.
    Heartbeat,
    /// Store a blob of `size` bytes whose BLAKE3 hash is `hash`.
    PutBlob { hash: Hash, size: u64 },
    /// Start (or resume) a chunked upload of blob `hash`, `size` bytes in all.
    StartUpload { hash: Hash, size: u64 },
    /// The `size` bytes of blob `hash`'s upload from byte `offset` on.
    PutChunk { hash: Hash, offset: u64, size: u64 },
}

impl SignedBody for Request {
    const DOMAIN: &'static str = "gridmint/v1/request";
}

/// The most cached blobs a fetch may list.
pub const FETCH_CACHED_MAX: usize = 1024;

/// The most fetches, and the most other waiting providers, one [`WorkFetch`] may name.
pub const WAITING_MAX: usize = 64;

/// Work handed out on providers' own requests. For each fetch in order, the engine picks the
/// tasks with [`crate::State::pick_tasks`], as if every other provider named here (the other
/// fetches' signers and `waiting`) were waiting for work at the entry's time, and assigns them.
///
/// A fetch whose nonce is not above its signer's last logged nonce gets nothing (it was served
/// already, or is older than an action its signer has since logged); one that gets tasks uses
/// its nonce up, so no fetch is ever served twice. The signatures are checked by whoever applies
/// the entry (every validator, and `chain verify`), like those of [`Input::Signed`].
///
/// The only thing here that is not signed by the provider concerned is `waiting`: the leader's
/// view of who else waits, which the scheduler's hold rule compares against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkFetch {
    pub fetches: Vec<Signed<Request>>,
    pub waiting: Vec<Waiting>,
}

/// A provider waiting for work, and which of the blobs the scheduler looks at it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Waiting {
    pub provider: AccountId,
    pub cached: Vec<Hash>,
}

/// A log entry: an input with the time the leader accepted it at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Entry {
    pub time: Time,
    pub input: Input,
}

/// What happened as a result of an input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum Event {
    ProviderRegistered {
        provider: AccountId,
        /// Tasks it had in flight before re-registering, now queued again.
        requeued: Vec<TaskId>,
    },
    ProviderLeft {
        provider: AccountId,
        requeued: Vec<TaskId>,
    },
    ProviderLost {
        provider: AccountId,
        requeued: Vec<TaskId>,
    },
    JobSubmitted {
        job: JobId,
        owner: AccountId,
        tasks: u32,
    },
    TasksAssigned {
        provider: AccountId,
        tasks: Vec<TaskId>,
    },
    TaskCompleted {
        task: TaskId,
        provider: AccountId,
        fuel_used: u64,
    },
    /// A replica of the task was drawn for re-execution although its provider is trusted.
    SpotCheck {
        task: TaskId,
        provider: AccountId,
    },
    /// Rules 16: a result accepted alone was reopened because its provider was caught lying on
    /// another task (`caught`); its job waits for a trusted run to settle it again.
    ResultReopened {
        task: TaskId,
        provider: AccountId,
        caught: TaskId,
    },
    /// More replicas of a task were queued to verify its results.
    ReplicasQueued {
        task: TaskId,
        /// Replicas now waiting for a provider.
        queued: u32,
        reason: String,
    },
    /// A result was accepted: `providers` returned it, and share one payment.
    TaskAccepted {
        task: TaskId,
        output_hash: Hash,
        fuel_used: u64,
        providers: Vec<AccountId>,
    },
    /// A result lost its quorum: not paid, its provider slashed (a `Slashed` event follows).
    ResultRejected {
        task: TaskId,
        provider: AccountId,
        output_hash: Hash,
        agreed_output: Hash,
    },
    /// No quorum can form for the task any more; its job fails.
    TaskFailed {
        task: TaskId,
        reason: String,
    },
    TaskAttemptFailed {
        task: TaskId,
        provider: AccountId,
        reason: String,
        attempts: u32,
    },
    /// A report for a task the provider no longer holds (it was declared lost, the job ended…).
    ReportIgnored {
        task: TaskId,
        provider: AccountId,
        reason: String,
    },
    ReduceQueued {
        job: JobId,
    },
    JobCompleted {
        job: JobId,
    },
    JobFailed {
        job: JobId,
        reason: String,
    },
    JobCancelled {
        job: JobId,
    },
    /// Rules 13: a private job was sealed to more providers.
    JobSealedTo {
        job: JobId,
        providers: Vec<AccountId>,
    },
    Transferred {
        from: AccountId,
        to: AccountId,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
    },
    FaucetPaid {
        to: AccountId,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
    },
    /// The job's worst-case cost left its owner's balance.
    EscrowLocked {
        job: JobId,
        owner: AccountId,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
    },
    /// An accepted result was paid from the job's escrow: `amount` to the provider and `fee` to
    /// the treasury.
    TaskPaid {
        task: TaskId,
        provider: AccountId,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        fee: Amount,
    },
    /// Rules 10: a job's storage deposit was locked from its owner.
    StorageDeposited {
        job: JobId,
        owner: AccountId,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
        /// The bytes it pays for: inputs plus every task's output room.
        bytes: u64,
    },
    /// Rules 10: a job's storage was released (it names no blob any more) and its deposit went
    /// back to its owner.
    StorageReleased {
        job: JobId,
        owner: AccountId,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
    },
    /// What a finished job's escrow still held went back to its owner.
    EscrowRefunded {
        job: JobId,
        owner: AccountId,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
    },
    Staked {
        account: AccountId,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
        /// Bonded stake after this.
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        bonded: Amount,
    },
    UnbondingStarted {
        account: AccountId,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
        release_at: Time,
    },
    StakeReleased {
        account: AccountId,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
    },
    /// A provider lost `amount` of stake for a wrong result.
    Slashed {
        provider: AccountId,
        /// The owner of the job the wrong result was for.
        requester: AccountId,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        to_requester: Amount,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        to_treasury: Amount,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        burned: Amount,
        evidence: SlashEvidence,
    },
    /// A validator voted for a change to the set; `power` of `total` voting power now has.
    ValidatorVoted {
        validator: AccountId,
        change: ValidatorChange,
        power: u64,
        total: u64,
    },
    /// The validator set changed; it now has `validators` members.
    ValidatorSetChanged {
        change: ValidatorChange,
        validators: u32,
    },
    /// A validator lost `amount` of stake for signing two different blocks at `height`.
    ValidatorSlashed {
        validator: AccountId,
        height: u64,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        to_treasury: Amount,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        burned: Amount,
    },
    /// Rules 8: the signer of a logged action paid the network's fee per action to the treasury.
    ActionFeePaid {
        payer: AccountId,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
    },
    /// Rules 19: a completed job runs again: `results` of the results it delivered were reopened
    /// (their provider was caught lying on another task) and are re-run; the job completes again
    /// with them corrected.
    JobReopened {
        job: JobId,
        results: u32,
    },
    /// Rules 24: a provider announced why it is suspended (none: it may work).
    ProviderAnnounced {
        provider: AccountId,
        suspended: Vec<crate::energy::Suspension>,
    },
    /// Rules 25: `delegator` backed `provider` with `amount`, buying `shares` of its pool.
    Delegated {
        delegator: AccountId,
        provider: AccountId,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        shares: u128,
    },
    /// Rules 25: `delegator` took `amount` back from `provider`'s pool; released at
    /// `release_at`.
    Undelegated {
        delegator: AccountId,
        provider: AccountId,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
        release_at: Time,
    },
    /// Rules 25: of a payment `provider` earned, `amount` went to its delegators (after its
    /// `commission`); `TaskPaid` says what it kept.
    DelegatorsPaid {
        provider: AccountId,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        commission: Amount,
    },
    /// Rules 25: `delegator` was paid `amount` of rewards from `provider`'s pool.
    RewardsWithdrawn {
        delegator: AccountId,
        provider: AccountId,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
    },
    /// Rules 25: a slash of `provider` took `amount` from its pool (within `Slashed`'s amount).
    DelegationSlashed {
        provider: AccountId,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
    },
    /// Rules 25: what rounding left in `provider`'s pool when its last share left, paid to the
    /// treasury.
    RewardDustSwept {
        provider: AccountId,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
    },
    /// Rules 25: `provider` set its commission.
    CommissionSet {
        provider: AccountId,
        commission_bps: u32,
    },
    /// Rules 25: `proposer` opened proposal `proposal`, holding `deposit`, for votes until
    /// `voting_end`.
    Proposed {
        proposal: u64,
        proposer: AccountId,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        deposit: Amount,
        voting_end: Time,
    },
    /// Rules 25: `voter` voted on `proposal`.
    Voted {
        proposal: u64,
        voter: AccountId,
        option: crate::gov::VoteOption,
    },
    /// Rules 25: a decided proposal's deposit went back to its proposer.
    DepositReturned {
        proposal: u64,
        proposer: AccountId,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
    },
    /// Rules 25: a vetoed proposal's deposit was burned.
    DepositBurned {
        proposal: u64,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
    },
    /// Rules 25: a passed proposal paid `amount` from the treasury to `to`.
    TreasurySpent {
        to: AccountId,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
    },
    /// Rules 25: voting on `proposal` ended; `status` is what was decided (a passed one's
    /// changes took effect at this entry).
    ProposalDecided {
        proposal: u64,
        status: crate::gov::ProposalStatus,
    },
    /// Rules 26: a passed proposal queued `change` of the validator set, which the leader
    /// applies at the next block (`ValidatorSetChanged` then, or `ValidatorChangeDropped`).
    ValidatorChangeQueued {
        change: crate::validators::ValidatorChange,
    },
    /// Rules 26: a queued change of the validator set could no longer be made when its turn
    /// came.
    ValidatorChangeDropped {
        change: crate::validators::ValidatorChange,
        why: String,
    },
    /// Rules 26: the changes of a proposal that passed with a stated time were made at it
    /// (`Passed`) or could not be (`Failed`, nothing changed).
    ProposalExecuted {
        proposal: u64,
        status: crate::gov::ProposalStatus,
    },
    /// Rules 26: `owner` reserved `slots`, holding `held` (their first period) until they are
    /// accepted or `open_until`.
    Reserved {
        reservation: u64,
        owner: AccountId,
        slots: u32,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        held: Amount,
        open_until: Time,
    },
    /// Rules 26: `provider` leased `slots` of the reservation; its first period ends at
    /// `period_end`.
    ReservationAccepted {
        reservation: u64,
        provider: AccountId,
        slots: u32,
        period_end: Time,
    },
    /// Rules 26: the owner cancelled the reservation.
    ReservationCancelled {
        reservation: u64,
    },
    /// Rules 26: `provider` was paid for holding its leased slots through `period` (`amount`
    /// kept after the `fee` and its delegators' share, which `DelegatorsPaid` follows with).
    ReservationPaid {
        reservation: u64,
        provider: AccountId,
        period: u32,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        fee: Amount,
    },
    /// Rules 26: `amount` of the reservation's escrow went back to `owner`.
    ReservationRefunded {
        reservation: u64,
        owner: AccountId,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
    },
    /// Rules 26: `provider`'s lease went on into `period`, `amount` taken from `owner`'s balance
    /// for it.
    ReservationRenewed {
        reservation: u64,
        owner: AccountId,
        provider: AccountId,
        period: u32,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
        period_end: Time,
    },
    /// Rules 26: `provider`'s lease of the reservation ended.
    LeaseEnded {
        reservation: u64,
        provider: AccountId,
        reason: crate::reserve::LeaseEnd,
    },
    /// Rules 26: an accepted result of `task` that `provider` ran in a lease of the task's
    /// owner: paid by the reservation, not from the job's escrow.
    TaskCovered {
        task: TaskId,
        provider: AccountId,
        reservation: u64,
    },
    /// Rules 27: `validator`'s part of the validators' share of the fees, `share`, paid from the
    /// treasury: `amount` to its balance (its commission and its own stake's part), the rest to
    /// its delegators (a `DelegatorsPaid` follows).
    ValidatorPaid {
        validator: AccountId,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        share: Amount,
    },
    /// Rules 28: `provider`'s claim to GPU class `class` waits for a member to check it.
    GpuClassPending {
        provider: AccountId,
        class: String,
    },
    /// Rules 28: `provider`'s class is proven: it passed `by`'s check, or (`None`) it founded
    /// the class.
    GpuClassProven {
        provider: AccountId,
        class: String,
        by: Option<AccountId>,
    },
    /// Rules 28: `checker` checks `provider`'s claim with `challenge`.
    GpuClassChallenged {
        provider: AccountId,
        checker: AccountId,
        challenge: u64,
    },
    /// Rules 28: `provider`'s answer did not match `checker`'s; it stays pending.
    GpuClassCheckFailed {
        provider: AccountId,
        checker: AccountId,
    },
}

/// Why an input was refused. A rejected input changes nothing and is never logged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", tag = "rejection", content = "detail")]
pub enum Rejection {
    #[error("nonce {got} is not above the last nonce {last} of this account (replayed request?)")]
    StaleNonce { got: u64, last: u64 },
    #[error("unknown provider {0}")]
    UnknownProvider(AccountId),
    #[error("provider {0} is not active")]
    ProviderInactive(AccountId),
    #[error("unknown job {0}")]
    UnknownJob(JobId),
    #[error("unknown task {0}")]
    UnknownTask(TaskId),
    #[error("job {0} has already ended")]
    JobEnded(JobId),
    #[error("only the owner of job {0} may do that")]
    NotJobOwner(JobId),
    #[error("job {0} is not private")]
    NotPrivate(JobId),
    #[error("task {0} is not queued")]
    TaskNotQueued(TaskId),
    #[error("task {task} does not fit provider: {why}")]
    TaskDoesNotFit { task: TaskId, why: String },
    #[error("task {0} is listed twice")]
    DuplicateTask(TaskId),
    #[error("invalid provider spec: {0}")]
    InvalidProviderSpec(String),
    #[error("invalid job spec: {0}")]
    InvalidJobSpec(String),
    #[error("empty request: {0}")]
    Empty(String),
    #[error("job {job} is not past its deadline {deadline}")]
    NotExpired { job: JobId, deadline: u64 },
    #[error(
        "task {task} is not overdue on this provider (not running there, or due at {deadline})"
    )]
    NotOverdue { task: TaskId, deadline: u64 },
    #[error("limit exceeded: {0}")]
    TooLarge(String),
    #[error("insufficient funds: needs {need} base units, {available} available")]
    InsufficientFunds {
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        need: Amount,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        available: Amount,
    },
    #[error("insufficient stake: {bonded} base units bonded, {need} needed")]
    InsufficientStake {
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        bonded: Amount,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        need: Amount,
    },
    #[error("invalid amount: {0}")]
    InvalidAmount(String),
    #[error("this network has no faucet")]
    FaucetDisabled,
    #[error("faucet refused: {0}")]
    FaucetRefused(String),
    #[error("stake is locked: {0}")]
    StakeLocked(String),
    #[error("account {0} has no unbonded stake due for release")]
    NothingToRelease(AccountId),
    #[error("{0} is not a validator of this network")]
    NotAValidator(AccountId),
    #[error("not lost: {0}")]
    NotLost(String),
    #[error("invalid change to the validator set: {0}")]
    InvalidValidatorChange(String),
    #[error("validator {0} already voted for this change")]
    AlreadyVoted(AccountId),
    #[error("not evidence of equivocation: {0}")]
    NotEquivocation(String),
    #[error("validator {validator} was already slashed for equivocating (at height {height})")]
    AlreadyPunished { validator: AccountId, height: u64 },
    #[error("invalid work fetch: {0}")]
    InvalidFetch(String),
    #[error("no fetch gets any task")]
    NothingToAssign,
    #[error("not on a leader's word: {0}")]
    NeedsEvidence(String),
    #[error("task {task} is not straggling: {why}")]
    NotStraggling { task: TaskId, why: String },
    #[error("{what} needs rules version {needs}; this network runs {runs}")]
    NeedsRules { what: String, needs: u32, runs: u32 },
    /// Rules 8: the signer cannot pay the network's fee per logged action.
    #[error(
        "cannot pay the fee per action: needs {fee} base units, {available} available (every logged action but reports, the faucet and GPU class checks pays it)"
    )]
    FeeUnpaid {
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        fee: Amount,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        available: Amount,
    },
    /// Rules 10: a job's storage cannot be released (yet).
    #[error("storage not released: {0}")]
    StorageHeld(String),
    /// Rules 10: this network charges a deposit for storage, so a job needs a storage claim.
    #[error(
        "this network charges a deposit for a job's storage: submit it with a storage claim (SubmitJobWithStorage; gridmint job submit does)"
    )]
    StorageUnclaimed,
    /// Rules 24: a report whose energy figures do not fit its results.
    #[error("invalid report: {0}")]
    InvalidReport(String),
    /// Rules 24: a provider's announcement that cannot be.
    #[error("invalid announcement: {0}")]
    InvalidAnnouncement(String),
    /// Rules 24: the provider announced that it is suspended; it takes no work until it
    /// announces otherwise.
    #[error("provider {0} is suspended by its owner's rules")]
    ProviderSuspended(AccountId),
    /// Rules 25: the signer has no delegation to this provider.
    #[error("no delegation to provider {provider}")]
    NotDelegated { provider: AccountId },
    /// Rules 25: a commission out of bounds or changed too fast.
    #[error("invalid commission: {0}")]
    InvalidCommission(String),
    /// Rules 25: a proposal or vote that cannot be.
    #[error("invalid proposal: {0}")]
    InvalidProposal(String),
    #[error("unknown proposal {0}")]
    UnknownProposal(u64),
    /// Rules 26: a reservation, acceptance or cancellation that cannot be.
    #[error("invalid reservation: {0}")]
    InvalidReservation(String),
    #[error("unknown reservation {0}")]
    UnknownReservation(u64),
    #[error("reservation {0} belongs to another account")]
    NotReservationOwner(u64),
    /// Rules 27: a delegation to an account that is neither an active provider nor a validator.
    #[error("{0} is neither a provider nor a validator: nobody can delegate to it")]
    NotBackable(AccountId),
    /// Rules 28: a GPU class check or answer that cannot be.
    #[error("invalid GPU class check: {0}")]
    InvalidClassCheck(String),
}
