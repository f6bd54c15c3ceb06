//! The network state and the one function that changes it: [`State::apply`].
//!
//! `apply` validates an input completely before it mutates anything, so a rejected input leaves the
//! state — and its hash — exactly as it was. Every collection is ordered (`BTreeMap`/`BTreeSet`), so
//! the postcard encoding of the state, and hence [`State::hash`], is a pure function of the inputs.

use crate::command::{Action, Entry, Event, Input, LeaderCommand, Rejection, Signed};
use crate::ledger::{Escrow, LedgerParams, Supply, Unbonding};
use crate::schedule::ScheduleParams;
use crate::types::{
    AccountId, Aggregate, Amount, Hash, InputFile, JobId, JobSpec, Limits, OutputSource,
    ProviderSpec, Redundancy, TaskDescriptor, TaskId, TaskOutcome, TaskReport, TaskSpec, Time,
    part_name, valid_file_name,
};
use crate::validators::Validators;
use crate::verify::{MAX_RESULTS, Reputation, Run, RunOutcome, VerifyParams};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;

/// Bounds on what one job may ask for. Part of the state so that replay uses the rules in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EngineConfig {
    pub max_tasks_per_job: u32,
    pub max_args_bytes_per_task: u64,
    pub max_fuel: u64,
    pub max_memory_bytes: u64,
    pub max_wall_ms: u64,
    /// Failed runs of one task before its job fails (BOINC's max_error_results).
    pub max_attempts: u32,
    pub max_tasks_per_assignment: u32,
    /// The scheduler's tunables.
    #[serde(default)]
    pub schedule: ScheduleParams,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_tasks_per_job: 1_000_000,
            max_args_bytes_per_task: 64 * 1024,
            max_fuel: 1_000_000_000_000,
            max_memory_bytes: 4 << 30,
            max_wall_ms: 24 * 3600 * 1000,
            max_attempts: 3,
            max_tasks_per_assignment: 4096,
            schedule: ScheduleParams::default(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Account {
    /// Highest nonce used in a logged action.
    pub nonce: u64,
    /// Spendable tokens, in base units.
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub balance: Amount,
    /// Stake bonded as a provider: slashable, and needed to be given work.
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub bonded: Amount,
    /// Stake on its way back to the balance, still slashable until released.
    pub unbonding: Vec<Unbonding>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ProviderStatus {
    Active,
    Lost,
    Left,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProviderStats {
    pub tasks_completed: u64,
    pub tasks_failed: u64,
    pub fuel_used: u64,
    pub times_lost: u64,
    /// Paid for accepted results, after fees.
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub earned: Amount,
    pub times_slashed: u64,
    /// Runs it did not report by their deadline.
    #[serde(default)]
    pub tasks_timed_out: u64,
    /// Stake lost to slashing.
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub slashed: Amount,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Provider {
    pub id: AccountId,
    pub spec: ProviderSpec,
    pub status: ProviderStatus,
    pub registered_at: Time,
    pub running: BTreeSet<TaskId>,
    pub stats: ProviderStats,
    pub reputation: Reputation,
}

impl Provider {
    /// The account that operates this provider (itself unless it declared one).
    pub fn operator(&self) -> AccountId {
        self.spec.operator_of(self.id)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
// Externally tagged (serde's default): postcard, used for snapshots, cannot decode internally
// tagged enums.
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting for a provider to take a replica.
    Queued,
    /// At least one replica is running (more may be queued).
    Running,
    /// A result was accepted.
    Done,
    Failed,
    /// The job ended before this task finished.
    Dropped,
}

/// The accepted result of a task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskResult {
    /// The providers whose matching results were accepted (one when accepted alone).
    pub providers: Vec<AccountId>,
    pub output_hash: Hash,
    pub output_size: u64,
    pub fuel_used: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Task {
    pub state: TaskState,
    /// Runs that ended in failure.
    pub failures: u32,
    pub result: Option<TaskResult>,
    pub last_error: Option<String>,
    /// Every run of the task, in the order they were assigned.
    pub runs: Vec<Run>,
    /// Replicas waiting in the queue for a provider.
    pub queued: u32,
    /// The spot-check draw picked this task's lone trusted result for re-execution.
    pub spot_check: bool,
}

impl Task {
    fn new(queued: u32) -> Task {
        Task {
            state: TaskState::Queued,
            failures: 0,
            result: None,
            last_error: None,
            runs: Vec::new(),
            queued,
            spot_check: false,
        }
    }

    /// Runs that ended with a result or a failure (cancelled and abandoned runs excluded).
    pub fn executions(&self) -> usize {
        self.runs
            .iter()
            .filter(|r| {
                matches!(
                    r.outcome,
                    RunOutcome::Returned { .. }
                        | RunOutcome::Answered { .. }
                        | RunOutcome::Failed
                        | RunOutcome::Failure { .. }
                )
            })
            .count()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Map tasks in progress.
    Running,
    /// All map tasks done; the reduce task is queued or running.
    Reducing,
    Completed,
    Failed {
        reason: String,
    },
    Cancelled,
}

impl JobStatus {
    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed { .. } | JobStatus::Cancelled
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Job {
    pub id: JobId,
    pub owner: AccountId,
    pub spec: JobSpec,
    pub submitted_at: Time,
    pub finished_at: Option<Time>,
    pub status: JobStatus,
    /// Map tasks in order, then the reduce task once it exists.
    pub tasks: Vec<Task>,
    pub maps_done: u32,
    /// Fuel of the accepted map results (their mean is the job's task cost estimate).
    pub fuel_accepted: u64,
    pub escrow: Escrow,
}

impl Job {
    pub(crate) fn map_count(&self) -> usize {
        self.spec.tasks.len()
    }

    /// The job's output: the ordered hashes to concatenate, or the reduce output. `None` until the
    /// job has completed.
    pub fn output_parts(&self) -> Option<Vec<Hash>> {
        if self.status != JobStatus::Completed {
            return None;
        }
        match self.spec.aggregate {
            Aggregate::Concat => self
                .tasks
                .iter()
                .map(|t| t.result.as_ref().map(|r| r.output_hash))
                .collect(),
            Aggregate::Reduce(_) => self
                .tasks
                .get(self.map_count())
                .and_then(|t| t.result.as_ref())
                .map(|r| vec![r.output_hash]),
        }
    }
}

/// The whole network state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct State {
    pub config: EngineConfig,
    /// The economic rules, fixed at genesis.
    pub ledger: LedgerParams,
    /// The verification rules, fixed at genesis.
    pub verify: VerifyParams,
    pub supply: Supply,
    /// Time of the latest applied input (never decreases).
    pub now: Time,
    /// Number of inputs applied.
    pub applied: u64,
    pub accounts: BTreeMap<AccountId, Account>,
    pub providers: BTreeMap<AccountId, Provider>,
    pub jobs: BTreeMap<JobId, Job>,
    pub next_job: JobId,
    /// Tasks with replicas waiting for a provider, in dispatch order (oldest job first, then task
    /// order).
    pub queue: BTreeSet<TaskId>,
    /// The part of `queue` whose waiting replicas are re-executions of a task already run
    /// (confirmations, spot checks, disputes): trusted providers take these first.
    pub recheck: BTreeSet<TaskId>,
    /// Fair-share accounting: the estimated fuel of the tasks dispatched for each requester.
    /// A requester that starts submitting again is brought up to the least service of those
    /// with queued work, so idle time banks no credit.
    pub service: BTreeMap<AccountId, u64>,
    /// The validator set and what it was slashed for. When empty (and the rules are the first
    /// ones) it is left out of [`State::hash`]: networks from before validators keep their hashes.
    pub validators: Validators,
    /// Which version of the engine's rules this network runs (from its genesis, see
    /// [`crate::RULES`]). A rule that changes how inputs apply is gated on it, so a chain replays
    /// under the rules it was written with. Keep this the last field: at 1 it is left out of
    /// [`State::hash`].
    pub rules: u32,
    /// Rules 5: the audit beacon, the results waiting for its next reveal, and the audits each
    /// provider passed (see [`crate::audit`]). Hashed only under rules 5 and later.
    pub audits: crate::audit::Audits,
    /// Rules 8: what every logged action a key signs costs its signer, paid to the treasury
    /// (from [`Genesis::action_fee`](crate::Genesis::action_fee); reports of assigned work and
    /// the faucet are free). Hashed only under rules 8 and later.
    #[serde(default, with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub action_fee: Amount,
    /// Rules 10: storage deposits (see [`crate::storage`]). Hashed only under rules 10 and later.
    #[serde(default)]
    pub storage: crate::storage::Storage,
    /// Rules 11: jobs' options and accepted results' non-zero exit statuses (see
    /// [`crate::options`]). Hashed only under rules 11 and later.
    #[serde(default)]
    pub options: crate::options::Options,
    /// Rules 12: jobs' mounted trees and scratch directories (see [`crate::files`]). Hashed only
    /// under rules 12 and later.
    #[serde(default)]
    pub files: crate::files::Files,
    /// Rules 13: private jobs' sealings (see [`crate::private`]). Hashed only under rules 13
    /// and later.
    #[serde(default)]
    pub private: crate::private::Private,
    /// Rules 16: results reopened because their provider was caught lying (backtracking, see
    /// [`crate::audit::Reopened`]). Hashed only under rules 16 and later.
    #[serde(default)]
    pub reopened: crate::audit::Reopened,
    /// Rules 18: tasks whose one waiting replica only an anchor may take (a dispute the
    /// validators' providers judge, [`State::for_anchors`]), kept apart from `recheck` so that
    /// no other provider's fetch looks at them: under attack they pile up faster than the
    /// anchors drain them, and every trusted provider's fetch used to walk them all. A task
    /// stays here until it is settled again (a result, a run timed out or lost, a slash of one
    /// of its providers, or a change of the anchors: [`State::resettle_disputes`]). Hashed
    /// only under rules 18 and later.
    #[serde(default)]
    pub disputes: BTreeSet<TaskId>,
    /// Rules 19: how many results of each job were corrected after the job had delivered them
    /// (its provider caught lying after the job completed, within the job's storage retention:
    /// see `State::reopen_lone_results`). Hashed only under rules 19 and later.
    #[serde(default)]
    pub corrected: BTreeMap<JobId, u32>,
    /// Rules 23: GPU jobs' declarations and the GPU class each float one runs on (see
    /// [`crate::gpu`]). Hashed only under rules 23 and later.
    #[serde(default)]
    pub gpu: crate::gpu::GpuJobs,
    /// Rules 24: runs' energy, the carbon table, providers' announcements and jobs' preferences
    /// (see [`crate::energy`]). Hashed only under rules 24 and later.
    #[serde(default)]
    pub energy: crate::energy::Energy,
    /// Rules 25: delegators' pools and delegations (see [`crate::delegation`]). Hashed only
    /// under rules 25 and later.
    #[serde(default)]
    pub delegation: crate::delegation::Delegations,
    /// Rules 25: proposals and the governance parameters (see [`crate::gov`]). Hashed only under
    /// rules 25 and later.
    #[serde(default)]
    pub governance: crate::gov::Governance,
    /// Rules 25: the price index, recent payments per resource class (see [`crate::market`]).
    /// Hashed only under rules 25 and later.
    #[serde(default)]
    pub market: crate::market::Market,
    /// Rules 26: reservations of capacity and their leases (see [`crate::reserve`]). Hashed
    /// only under rules 26 and later.
    #[serde(default)]
    pub reservations: crate::reserve::Reservations,
    /// Rules 26: when passed proposals made with a delay take effect (see [`crate::gov`]).
    /// Hashed only under rules 26 and later.
    #[serde(default)]
    pub gov_schedule: crate::gov::Schedule,
    /// Rules 27: the staking parameters in force and the validators' payouts (see
    /// [`crate::delegation`]). Hashed only under rules 27 and later.
    #[serde(default)]
    pub staking: crate::delegation::Staking,
    /// Rules 28: providers' proven and pending GPU classes (see [`crate::gpu_class`]). Hashed
    /// only under rules 28 and later.
    #[serde(default)]
    pub gpu_classes: crate::gpu_class::GpuClasses,
    /// Rules 30: tolerant GPU jobs and the outputs their comparisons need (see
    /// [`crate::tolerance`]). Hashed only under rules 30 and later.
    #[serde(default)]
    pub tolerances: crate::tolerance::Tolerances,
    /// Derived from `jobs`, never stored nor hashed: each provider's accepted map results
    /// ([`crate::audit::Accepted`]).
    #[serde(skip)]
    pub(crate) accepted: crate::audit::Accepted,
}

pub(crate) type Applied = Result<Vec<Event>, Rejection>;

/// What [`State::hash`] encodes: every field of the state in order, as its postcard encoding
/// does, but the trailing `validators` only when it is not empty or the rules are not the first,
/// and `rules` only when they are not the first — so that the state of a network without
/// validators, on the first rules, hashes exactly as it did before either field existed. (postcard encodes a
/// struct as its fields one after another, so the two encodings agree byte for byte otherwise;
/// a test holds them together.) Under rules 4 and later the hash has two parts
/// ([`State::hash_parts`]): this view without `validators` is the second.
struct HashView<'a> {
    state: &'a State,
    /// Whether `validators` is encoded (per the rule above) or left out (rules 4: hashed apart).
    validators: bool,
}

impl Serialize for HashView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let with_validators = self.validators;
        let State {
            config,
            ledger,
            verify,
            supply,
            now,
            applied,
            accounts,
            providers,
            jobs,
            next_job,
            queue,
            recheck,
            service,
            validators,
            rules,
            audits,
            action_fee,
            storage,
            options,
            files,
            private,
            reopened,
            disputes,
            corrected,
            gpu,
            energy,
            delegation,
            governance,
            market,
            reservations,
            gov_schedule,
            staking,
            gpu_classes,
            tolerances,
            accepted: _,
        } = self.state;
        let mut t = serializer.serialize_tuple(34)?;
        t.serialize_element(config)?;
        t.serialize_element(ledger)?;
        t.serialize_element(verify)?;
        t.serialize_element(supply)?;
        t.serialize_element(now)?;
        t.serialize_element(applied)?;
        t.serialize_element(accounts)?;
        t.serialize_element(providers)?;
        t.serialize_element(jobs)?;
        t.serialize_element(next_job)?;
        t.serialize_element(queue)?;
        t.serialize_element(recheck)?;
        t.serialize_element(service)?;
        let later_rules = *rules != crate::FIRST_RULES;
        if with_validators && (!validators.is_empty() || later_rules) {
            t.serialize_element(validators)?;
        }
        if later_rules {
            t.serialize_element(rules)?;
        }
        if *rules >= 5 {
            t.serialize_element(audits)?;
        }
        if *rules >= 8 {
            t.serialize_element(action_fee)?;
        }
        if *rules >= 10 {
            t.serialize_element(storage)?;
        }
        if *rules >= 11 {
            t.serialize_element(options)?;
        }
        if *rules >= 12 {
            t.serialize_element(files)?;
        }
        if *rules >= 13 {
            t.serialize_element(private)?;
        }
        if *rules >= 16 {
            t.serialize_element(reopened)?;
        }
        if *rules >= 18 {
            t.serialize_element(disputes)?;
        }
        if *rules >= 19 {
            t.serialize_element(corrected)?;
        }
        if *rules >= 23 {
            t.serialize_element(gpu)?;
        }
        if *rules >= 24 {
            t.serialize_element(energy)?;
        }
        if *rules >= 25 {
            t.serialize_element(delegation)?;
            t.serialize_element(governance)?;
            t.serialize_element(market)?;
        }
        if *rules >= 26 {
            t.serialize_element(reservations)?;
            t.serialize_element(gov_schedule)?;
        }
        if *rules >= 27 {
            t.serialize_element(staking)?;
        }
        if *rules >= 28 {
            t.serialize_element(gpu_classes)?;
        }
        if *rules >= 30 {
            t.serialize_element(tolerances)?;
        }
        t.end()
    }
}

impl State {
    /// A network with `config`, no tokens, no fees and no stake requirement. Real networks start
    /// from [`State::from_genesis`].
    pub fn new(config: EngineConfig) -> State {
        State {
            config,
            ledger: LedgerParams::free(),
            verify: VerifyParams::default(),
            supply: Supply::default(),
            now: 0,
            applied: 0,
            accounts: BTreeMap::new(),
            providers: BTreeMap::new(),
            jobs: BTreeMap::new(),
            next_job: 1,
            queue: BTreeSet::new(),
            recheck: BTreeSet::new(),
            service: BTreeMap::new(),
            validators: Validators::default(),
            rules: crate::RULES,
            audits: Default::default(),
            action_fee: 0,
            storage: Default::default(),
            options: Default::default(),
            files: Default::default(),
            private: Default::default(),
            reopened: Default::default(),
            disputes: Default::default(),
            corrected: Default::default(),
            gpu: Default::default(),
            energy: Default::default(),
            delegation: Default::default(),
            governance: Default::default(),
            market: Default::default(),
            reservations: Default::default(),
            gov_schedule: Default::default(),
            staking: Default::default(),
            gpu_classes: Default::default(),
            tolerances: Default::default(),
            accepted: Default::default(),
        }
    }

    /// The state's hash. Before rules 4: BLAKE3 over the canonical encoding of the whole state —
    /// without the `validators` field when it is empty (see [`HashView`]). Under rules 4 and
    /// later: [`State::hash_of_parts`] of [`State::hash_parts`], so that a block's state hash
    /// commits to the validator set in a way a light client can check with the set alone.
    pub fn hash(&self) -> Hash {
        match self.hash_parts() {
            Some((validators, rest)) => State::hash_of_parts(&validators, &rest),
            None => Self::stream_hash(&HashView {
                state: self,
                validators: true,
            }),
        }
    }

    /// Under rules 4 and later, the two parts of the state hash: [`Validators::hash`] of the
    /// validators field, and the hash of everything else. None under older rules (one part).
    pub fn hash_parts(&self) -> Option<(Hash, Hash)> {
        if self.rules < 4 {
            return None;
        }
        let rest = Self::stream_hash(&HashView {
            state: self,
            validators: false,
        });
        Some((self.validators.hash(), rest))
    }

    /// The state hash (rules 4 and later) of a state whose validators field hashes to
    /// `validators` and whose other fields hash to `rest`.
    pub fn hash_of_parts(validators: &Hash, rest: &Hash) -> Hash {
        let mut h = blake3::Hasher::new();
        h.update(b"gridmint/v4/state");
        h.update(&validators.0);
        h.update(&rest.0);
        Hash(*h.finalize().as_bytes())
    }

    /// BLAKE3 of `view`'s postcard encoding, streamed through a 64 KiB buffer: the encoding of a
    /// large state is never held in memory, and the hasher sees large writes (postcard writes
    /// field by field, and a call per field cost more than the hashing itself).
    fn stream_hash(view: &HashView<'_>) -> Hash {
        let mut hasher = blake3::Hasher::new();
        let mut buffered = std::io::BufWriter::with_capacity(1 << 16, &mut hasher);
        if postcard::to_io(view, &mut buffered).is_err() || buffered.flush().is_err() {
            return Hash::of(&[]);
        }
        drop(buffered);
        Hash(*hasher.finalize().as_bytes())
    }

    /// Applies one log entry. On `Err` nothing has changed.
    pub fn apply(&mut self, entry: &Entry) -> Applied {
        let now = self.now.max(entry.time);
        // Rules 18: the disputes wait for the anchors there were; when that changes, they are
        // settled again (see `State::disputes`).
        let roster = (self.rules >= 18 && !self.disputes.is_empty()).then(|| self.anchor_roster());
        let mut events = match &entry.input {
            Input::Signed(signed) => self.apply_signed(signed, now)?,
            Input::Leader(cmd) => self.apply_leader(cmd, now)?,
            Input::Evidence(ev) => self.punish_equivocation(ev)?,
            Input::Lost(ev) => self.apply_lost(ev, now)?,
            Input::Fetch(fetch) => self.apply_fetch(fetch, now)?,
        };
        if roster.is_some_and(|before| before != self.anchor_roster()) {
            self.resettle_disputes(None, now, &mut events)?;
        } else if self.rules >= 18 && !self.disputes.is_empty() {
            // A slash discredits the slashed provider's side of its disputes: the plain margin
            // may settle them now, without an anchor.
            let slashed: BTreeSet<AccountId> = events
                .iter()
                .filter_map(|e| match e {
                    Event::Slashed { provider, .. } => Some(*provider),
                    _ => None,
                })
                .collect();
            if !slashed.is_empty() {
                self.resettle_disputes(Some(&slashed), now, &mut events)?;
            }
        }
        // Rules 25: proposals whose voting ended are decided at the first entry applied at or
        // after the end, after its own effects.
        events.extend(self.decide_proposals(now)?);
        // Rules 26: likewise, offers that lapsed and lease periods that ended.
        events.extend(self.settle_reservations(now)?);
        // Rules 27: and the validators' share of the fees, when its payout is due.
        events.extend(self.pay_validators(now, false)?);
        self.now = now;
        self.applied = self.applied.saturating_add(1);
        Ok(events)
    }

    fn apply_signed(&mut self, signed: &Signed<Action>, now: Time) -> Applied {
        let last = self
            .accounts
            .get(&signed.signer)
            .map_or(0, |account| account.nonce);
        if signed.nonce <= last {
            return Err(Rejection::StaleNonce {
                got: signed.nonce,
                last,
            });
        }
        let who = signed.signer;
        let fee = self.action_fee_for(&signed.body);
        if fee > 0 {
            // Taken first, so the action sees the balance it leaves; given back if the action
            // is refused (which changed nothing else), so a refusal still changes nothing.
            let available = self.balance(&who);
            if available < fee {
                return Err(Rejection::FeeUnpaid { fee, available });
            }
            self.debit(&who, fee)?;
        }
        let events = match self.apply_action(who, &signed.body, now) {
            Ok(events) => events,
            Err(rejection) => {
                if fee > 0 {
                    self.credit(&who, fee)?;
                }
                return Err(rejection);
            }
        };
        let mut events = events;
        if fee > 0 {
            let treasury = self.ledger.treasury;
            self.credit(&treasury, fee)?;
            self.count_fee(fee)?;
            events.push(Event::ActionFeePaid {
                payer: who,
                amount: fee,
            });
        }
        self.accounts.entry(who).or_default().nonce = signed.nonce;
        Ok(events)
    }

    /// Rules 8: what `action` costs its signer to have logged. Reports are free (a provider can
    /// report only the work it was given, and its stake may be all it holds), and so are the
    /// faucet (it fills empty accounts) and (rules 28) GPU class checks and answers.
    fn action_fee_for(&self, action: &Action) -> Amount {
        // Rules 28: GPU class checks and answers are a service to the network (a member checks
        // whoever claims its class), bounded by the claims (`MAX_CLASS_CHECKS` each).
        if self.rules < 8
            || action.reports().is_some()
            || matches!(
                action,
                Action::Faucet | Action::ChallengeGpuClass { .. } | Action::AnswerGpuClass { .. }
            )
        {
            return 0;
        }
        self.action_fee
    }

    pub(crate) fn apply_action(&mut self, who: AccountId, action: &Action, now: Time) -> Applied {
        let events = match action {
            Action::RegisterProvider(spec) => {
                let events = self.register(who, spec, now)?;
                if self.rules >= 23 {
                    self.withdraw_gpu_offer(&who);
                }
                events
            }
            Action::RegisterGpuProvider { spec, gpu } => self.register_gpu(who, spec, gpu, now)?,
            Action::LeaveProvider => self.provider_gone(who, ProviderStatus::Left, now)?,
            Action::SubmitJob(_) if self.rules >= 10 && self.storage.params.is_some() => {
                return Err(Rejection::StorageUnclaimed);
            }
            Action::SubmitJob(spec) => self.submit(who, spec, now)?,
            Action::SubmitJobWithStorage { spec, storage } => {
                self.submit_with_storage(who, spec, storage, now)?
            }
            Action::SubmitJobWithOptions {
                spec,
                storage,
                options,
            } => self.submit_with_options(who, spec, storage.as_ref(), options, now)?,
            Action::SubmitJobWithFiles {
                spec,
                storage,
                options,
                files,
            } => self.submit_with_files(who, spec, storage.as_ref(), options, files, now)?,
            Action::SubmitPrivateJob {
                spec,
                storage,
                options,
                files,
                sealing,
            } => self.submit_private(who, spec, storage.as_ref(), options, files, sealing, now)?,
            Action::SubmitGpuJob { spec, storage, gpu } => {
                self.submit_gpu(who, spec, storage.as_ref(), gpu, now)?
            }
            Action::SubmitGpuJobWithTolerance {
                spec,
                storage,
                gpu,
                tolerance,
            } => {
                self.submit_gpu_with_tolerance(who, spec, storage.as_ref(), gpu, tolerance, now)?
            }
            Action::SealJobTo { job, recipients } => self.seal_job_to(who, *job, recipients)?,
            Action::ReleaseJob(job) => self.release_storage(*job, who, now)?,
            Action::ReportResults(reports) => {
                self.refuse_without_outputs(reports)?;
                self.report(who, reports, now)?
            }
            Action::CancelJob(job) => self.cancel(who, *job, now)?,
            Action::Transfer { to, amount } => self.transfer(who, *to, *amount)?,
            Action::Faucet => self.faucet(who)?,
            Action::Stake { amount } => self.stake(who, *amount)?,
            Action::Unstake { amount } => self.unstake(who, *amount, now)?,
            Action::ValidatorVote(change) => self.vote_validator(who, change, now)?,
            Action::ReportMeteredResults { reports, energy } => {
                self.refuse_without_outputs(reports)?;
                self.report_metered(who, reports, energy, now)?
            }
            Action::ReportResultsWithOutputs {
                reports,
                energy,
                outputs,
            } => self.report_with_outputs(who, reports, energy, outputs, now)?,
            Action::Announce(announcement) => self.announce(who, announcement)?,
            Action::SubmitWithPreferences {
                preferences,
                submission,
            } => self.submit_with_preferences(who, preferences, submission, now)?,
            Action::Delegate { provider, amount } => self.delegate(who, *provider, *amount)?,
            Action::Undelegate { provider, amount } => {
                self.undelegate(who, *provider, *amount, now)?
            }
            Action::WithdrawRewards { provider } => self.withdraw_rewards(who, *provider)?,
            Action::SetCommission { commission_bps } => {
                self.set_commission(who, *commission_bps, now)?
            }
            Action::Propose {
                title,
                changes,
                deposit,
            } => self.propose(who, title, changes, *deposit, None, now)?,
            Action::ProposeWithDelay {
                title,
                changes,
                deposit,
                delay_ms,
            } => self.propose(who, title, changes, *deposit, Some(*delay_ms), now)?,
            Action::Vote { proposal, option } => self.vote(who, *proposal, *option, now)?,
            Action::Reserve(spec) => self.reserve(who, spec, now)?,
            Action::AcceptReservation { reservation, slots } => {
                self.accept_reservation(who, *reservation, *slots, now)?
            }
            Action::CancelReservation { reservation } => {
                self.cancel_reservation(who, *reservation, now)?
            }
            Action::LeaveReservation { reservation } => {
                self.leave_reservation(who, *reservation, now)?
            }
            Action::ChallengeGpuClass {
                provider,
                challenge,
                commitment,
            } => self.challenge_gpu_class(who, *provider, *challenge, *commitment, now)?,
            Action::AnswerGpuClass { answer } => self.answer_gpu_class(who, *answer, now)?,
        };
        Ok(events)
    }

    fn apply_leader(&mut self, cmd: &LeaderCommand, now: Time) -> Applied {
        // A validator set takes no assignment or loss on a leader's word: tasks go out on
        // providers' signed fetches (`Input::Fetch`), and a provider is lost on a majority's
        // attestations (`Input::Lost`).
        if !self.validators.set.validators.is_empty()
            && matches!(
                cmd,
                LeaderCommand::AssignTasks { .. } | LeaderCommand::ProviderLost { .. }
            )
        {
            return Err(Rejection::NeedsEvidence(
                "a validator set assigns tasks only on providers' signed fetches and declares \
                 a provider lost only on validators' attestations"
                    .into(),
            ));
        }
        match cmd {
            LeaderCommand::AssignTasks { provider, tasks } => self.assign(*provider, tasks, now),
            LeaderCommand::ProviderLost { provider } => {
                self.provider_gone(*provider, ProviderStatus::Lost, now)
            }
            LeaderCommand::ExpireJob { job } => self.expire(*job, now),
            LeaderCommand::ReleaseStake { account } => self.release(*account, now),
            LeaderCommand::TimeOutRuns { provider, tasks } => self.time_out(*provider, tasks, now),
            LeaderCommand::Speculate { tasks } => self.speculate(tasks, now),
            LeaderCommand::Beacon { reveal, commit } => self.beacon(*reveal, *commit, now),
            LeaderCommand::ReleaseStorage { jobs } => self.release_storages(jobs, now),
            // Decided after every applied input (`State::apply`); this one only makes an entry.
            LeaderCommand::DecideProposals => {
                if self.rules >= 25 && self.proposals_due(now) {
                    Ok(Vec::new())
                } else {
                    Err(Rejection::InvalidProposal(
                        "no proposal's voting has ended".into(),
                    ))
                }
            }
            LeaderCommand::ChangeValidators => self.change_validators(now),
            // Settled after every applied input (`State::apply`); this one only makes an entry.
            LeaderCommand::SettleReservations => {
                if self.reservations_due(now) || self.validator_payout_due(now) {
                    Ok(Vec::new())
                } else {
                    Err(Rejection::InvalidReservation(
                        "no offer lapsed and no period ended".into(),
                    ))
                }
            }
        }
    }

    // ----- providers -----

    pub(crate) fn register(&mut self, who: AccountId, spec: &ProviderSpec, now: Time) -> Applied {
        if spec.slots == 0 || spec.slots > 1024 {
            return Err(Rejection::InvalidProviderSpec(
                "slots must be between 1 and 1024".into(),
            ));
        }
        if spec.cores == 0 || spec.memory_bytes == 0 {
            return Err(Rejection::InvalidProviderSpec(
                "cores and memory must be positive".into(),
            ));
        }
        if spec.region.len() > 64 || spec.gpu.as_ref().is_some_and(|g| g.len() > 256) {
            return Err(Rejection::InvalidProviderSpec(
                "region or gpu description too long".into(),
            ));
        }
        if !self.has_min_stake(&who) {
            return Err(Rejection::InsufficientStake {
                bonded: self.bonded(&who),
                need: self.ledger.min_stake,
            });
        }
        let leased = self.reservations.leased_slots(&who);
        if spec.slots < leased {
            return Err(Rejection::InvalidProviderSpec(format!(
                "the provider holds {leased} leased slots: it keeps at least as many (leave a \
                 reservation first)"
            )));
        }
        let requeued = match self.providers.get_mut(&who) {
            Some(provider) => {
                provider.spec = spec.clone();
                provider.status = ProviderStatus::Active;
                let running = std::mem::take(&mut provider.running);
                if self.rules >= 24 {
                    self.forget_announcement(&who);
                }
                running
            }
            None => {
                self.providers.insert(
                    who,
                    Provider {
                        id: who,
                        spec: spec.clone(),
                        status: ProviderStatus::Active,
                        registered_at: now,
                        running: BTreeSet::new(),
                        stats: ProviderStats::default(),
                        reputation: Reputation::default(),
                    },
                );
                BTreeSet::new()
            }
        };
        let mut events = Vec::new();
        let requeued = self.requeue(who, requeued, now, &mut events)?;
        events.insert(
            0,
            Event::ProviderRegistered {
                provider: who,
                requeued,
            },
        );
        Ok(events)
    }

    pub(crate) fn provider_gone(
        &mut self,
        who: AccountId,
        status: ProviderStatus,
        now: Time,
    ) -> Applied {
        let provider = self.active_provider(&who)?;
        let was_trusted = provider.reputation.streak >= self.verify.trust_after;
        let provider = self
            .providers
            .get_mut(&who)
            .ok_or(Rejection::UnknownProvider(who))?;
        provider.status = status;
        // Rules 26: its leases missed their periods.
        self.leases_missed(&who);
        let Some(provider) = self.providers.get_mut(&who) else {
            return Err(Rejection::UnknownProvider(who));
        };
        if status == ProviderStatus::Lost {
            provider.stats.times_lost = provider.stats.times_lost.saturating_add(1);
        }
        let running = std::mem::take(&mut provider.running);
        if self.rules >= 24 {
            self.forget_announcement(&who);
        }
        let mut events = Vec::new();
        let requeued = self.requeue(who, running, now, &mut events)?;
        // Rules 9: replicas held for trusted providers only may have lost their last possible
        // taker with this one: settled again, they go to anyone if no trusted provider is left
        // (rather than wait for good; the soak found a job stalled so).
        if self.rules >= 9 && (was_trusted || self.is_anchor(&who)) {
            let held: Vec<TaskId> = self
                .recheck
                .difference(&self.queue)
                .chain(&self.disputes)
                .copied()
                .collect();
            for id in held {
                self.settle(id, now, &mut events)?;
            }
        }
        events.insert(
            0,
            match status {
                ProviderStatus::Left => Event::ProviderLeft {
                    provider: who,
                    requeued,
                },
                _ => Event::ProviderLost {
                    provider: who,
                    requeued,
                },
            },
        );
        Ok(events)
    }

    /// Abandons `who`'s runs of `tasks` and queues replacement replicas (tasks of ended jobs are
    /// simply dropped). Returns the tasks whose run was abandoned.
    fn requeue(
        &mut self,
        who: AccountId,
        tasks: BTreeSet<TaskId>,
        now: Time,
        events: &mut Vec<Event>,
    ) -> Result<Vec<TaskId>, Rejection> {
        let mut out = Vec::new();
        for id in tasks {
            let Some(job) = self.jobs.get_mut(&id.job) else {
                continue;
            };
            if job.status.is_finished() {
                continue;
            }
            let Some(task) = job.tasks.get_mut(id.index as usize) else {
                continue;
            };
            let run = task
                .runs
                .iter_mut()
                .rev()
                .find(|r| r.provider == who && r.outcome == RunOutcome::Running);
            if let Some(run) = run {
                run.outcome = RunOutcome::Abandoned;
                out.push(id);
                self.settle(id, now, events)?;
            }
        }
        Ok(out)
    }

    // ----- jobs -----

    fn validate_limits(&self, limits: &Limits, what: &str) -> Result<(), Rejection> {
        let c = &self.config;
        let bad = |why: String| Err(Rejection::InvalidJobSpec(format!("{what}: {why}")));
        if limits.fuel == 0 || limits.fuel > c.max_fuel {
            return bad(format!("fuel must be between 1 and {}", c.max_fuel));
        }
        if limits.memory_bytes == 0 || limits.memory_bytes > c.max_memory_bytes {
            return bad(format!(
                "memory must be between 1 and {} bytes",
                c.max_memory_bytes
            ));
        }
        if limits.wall_ms == 0 || limits.wall_ms > c.max_wall_ms {
            return bad(format!(
                "wall time must be between 1 and {} ms",
                c.max_wall_ms
            ));
        }
        Ok(())
    }

    fn validate_job(&self, spec: &JobSpec, now: Time) -> Result<(), Rejection> {
        let bad = |why: String| Err(Rejection::InvalidJobSpec(why));
        if spec.tasks.is_empty() {
            return bad("a job needs at least one task".into());
        }
        if spec.tasks.len() > self.config.max_tasks_per_job as usize {
            return bad(format!(
                "{} tasks exceed the limit of {}",
                spec.tasks.len(),
                self.config.max_tasks_per_job
            ));
        }
        if spec.deadline <= now {
            return bad("deadline is already past".into());
        }
        self.validate_limits(&spec.limits, "task limits")?;
        if spec
            .requirements
            .region
            .as_ref()
            .is_some_and(|r| r.is_empty() || r.len() > 64)
        {
            return bad("requirements.region must be 1 to 64 characters".into());
        }
        if let Redundancy::Fixed {
            quorum,
            max_results,
        } = spec.redundancy
            && (quorum == 0 || max_results < quorum || max_results > MAX_RESULTS)
        {
            return bad(format!(
                "fixed redundancy needs 1 <= quorum <= max_results <= {MAX_RESULTS}"
            ));
        }
        if let Aggregate::Reduce(reduce) = &spec.aggregate {
            self.validate_limits(&reduce.limits, "reduce limits")?;
            let bytes: usize = reduce.args.iter().map(String::len).sum();
            if bytes as u64 > self.config.max_args_bytes_per_task {
                return bad("reduce arguments too large".into());
            }
            if reduce.args.iter().any(|a| a.contains('\0')) {
                return bad("reduce arguments may not contain NUL".into());
            }
        }
        if let OutputSource::File(name) = &spec.output
            && !valid_file_name(name)
        {
            return bad(format!(
                "output file name {name:?} is not a plain file name"
            ));
        }
        for (i, task) in spec.tasks.iter().enumerate() {
            let bytes: usize = task
                .args
                .iter()
                .map(String::len)
                .chain(
                    task.env
                        .iter()
                        .map(|(k, v)| k.len().saturating_add(v.len())),
                )
                .sum();
            if bytes as u64 > self.config.max_args_bytes_per_task {
                return bad(format!("task {i}: arguments and environment too large"));
            }
            let mut names = BTreeSet::new();
            for input in &task.inputs {
                if !valid_file_name(&input.name) {
                    return bad(format!(
                        "task {i}: input name {:?} is not a plain file name",
                        input.name
                    ));
                }
                if !names.insert(input.name.as_str()) {
                    return bad(format!("task {i}: input {:?} listed twice", input.name));
                }
            }
            if task
                .env
                .iter()
                .any(|(k, _)| k.is_empty() || k.contains('='))
            {
                return bad(format!("task {i}: invalid environment variable name"));
            }
            let mut strings = task
                .args
                .iter()
                .chain(task.env.iter().flat_map(|(k, v)| [k, v]));
            if strings.any(|s| s.contains('\0')) {
                return bad(format!(
                    "task {i}: arguments and environment may not contain NUL"
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn submit(&mut self, owner: AccountId, spec: &JobSpec, now: Time) -> Applied {
        self.validate_job(spec, now)?;
        let id = self.next_job;
        let next = id
            .checked_add(1)
            .ok_or(Rejection::TooLarge("job ids exhausted".into()))?;
        let count = u32::try_from(spec.tasks.len())
            .map_err(|_| Rejection::TooLarge("too many tasks".into()))?;
        let cost = self.check_escrow(&owner, spec)?;
        self.debit(&owner, cost)?;
        self.next_job = next;
        let least = self
            .queued_jobs()
            .filter_map(|j| self.jobs.get(&j))
            .map(|j| self.service_of(&j.owner))
            .min();
        if let Some(least) = least {
            let service = self.service.entry(owner).or_default();
            *service = (*service).max(least);
        }
        let first = Self::initial_replicas(spec.redundancy);
        let tasks = (0..count).map(|_| Task::new(first)).collect();
        self.queue
            .extend((0..count).map(|index| TaskId { job: id, index }));
        self.jobs.insert(
            id,
            Job {
                id,
                owner,
                spec: spec.clone(),
                submitted_at: now,
                finished_at: None,
                status: JobStatus::Running,
                tasks,
                maps_done: 0,
                fuel_accepted: 0,
                escrow: Escrow {
                    locked: cost,
                    ..Escrow::default()
                },
            },
        );
        Ok(vec![
            Event::JobSubmitted {
                job: id,
                owner,
                tasks: count,
            },
            Event::EscrowLocked {
                job: id,
                owner,
                amount: cost,
            },
        ])
    }

    /// Replicas a new task starts with: the quorum of a fixed policy; one under the adaptive
    /// policy, which queues more once it sees who took the first.
    fn initial_replicas(redundancy: Redundancy) -> u32 {
        match redundancy {
            Redundancy::Fixed { quorum, .. } => quorum,
            Redundancy::Adaptive => 1,
        }
    }

    fn cancel(&mut self, who: AccountId, id: JobId, now: Time) -> Applied {
        let job = self.jobs.get(&id).ok_or(Rejection::UnknownJob(id))?;
        if job.owner != who {
            return Err(Rejection::NotJobOwner(id));
        }
        if job.status.is_finished() {
            return Err(Rejection::JobEnded(id));
        }
        let mut events = vec![Event::JobCancelled { job: id }];
        self.finish_job(id, JobStatus::Cancelled, now, &mut events)?;
        Ok(events)
    }

    fn expire(&mut self, id: JobId, now: Time) -> Applied {
        let job = self.jobs.get(&id).ok_or(Rejection::UnknownJob(id))?;
        if job.status.is_finished() {
            return Err(Rejection::JobEnded(id));
        }
        if now <= job.spec.deadline || self.correcting(id) {
            return Err(Rejection::NotExpired {
                job: id,
                deadline: job.spec.deadline,
            });
        }
        let reason = format!(
            "deadline passed with {} of {} tasks done",
            job.maps_done,
            job.map_count()
        );
        let mut events = vec![Event::JobFailed {
            job: id,
            reason: reason.clone(),
        }];
        self.finish_job(id, JobStatus::Failed { reason }, now, &mut events)?;
        Ok(events)
    }

    /// Ends a job: unfinished tasks are dropped from the queue and from providers, and what the
    /// escrow still holds goes back to the owner.
    pub(crate) fn finish_job(
        &mut self,
        id: JobId,
        status: JobStatus,
        now: Time,
        events: &mut Vec<Event>,
    ) -> Result<(), Rejection> {
        let Some(job) = self.jobs.get_mut(&id) else {
            return Ok(());
        };
        for (index, task) in job.tasks.iter_mut().enumerate() {
            let task_id = TaskId {
                job: id,
                index: u32::try_from(index).unwrap_or(u32::MAX),
            };
            self.queue.remove(&task_id);
            self.recheck.remove(&task_id);
            self.disputes.remove(&task_id);
            task.queued = 0;
            for run in &mut task.runs {
                if run.outcome == RunOutcome::Running {
                    run.outcome = RunOutcome::Cancelled;
                    if let Some(p) = self.providers.get_mut(&run.provider) {
                        p.running.remove(&task_id);
                    }
                }
            }
            if matches!(task.state, TaskState::Queued | TaskState::Running) {
                task.state = TaskState::Dropped;
            }
        }
        job.status = status;
        self.audits.forget_job(id);
        self.reopened.forget_job(id);
        job.finished_at = Some(now);
        // Rules 19: a completed job that may yet be corrected keeps what re-running its lone
        // results would cost, until its storage is released.
        let keep = if self.correctable(id) {
            self.correction_reserve(id)?
        } else {
            // Rules 30: its results are final.
            self.forget_outputs(id);
            0
        };
        events.extend(self.refund_keeping(id, keep)?);
        Ok(())
    }

    /// Rules 19: whether job `id`'s delivered results may still be corrected: it completed under
    /// the adaptive policy, is not private, and its storage (rules 10) is not released yet.
    /// Its results are final once its storage is released (by its owner, or by the leader at
    /// the end of the retention time): a job submitted without storage is final at once.
    pub fn correctable(&self, id: JobId) -> bool {
        self.rules >= 19
            && self.jobs.get(&id).is_some_and(|j| {
                j.status == JobStatus::Completed && j.spec.redundancy == Redundancy::Adaptive
            })
            && self
                .storage
                .jobs
                .get(&id)
                .is_some_and(|s| s.released_at.is_none())
            && !self.private_job(id)
    }

    /// Rules 19: what job `id`'s escrow keeps at completion so that its lone results (accepted
    /// on one provider's run) can be re-run if that provider is caught lying later: each one's
    /// accepted fuel at the job's highest price, and the reduce's too when there is any (it
    /// runs again after a correction). At most what the escrow holds.
    pub(crate) fn correction_reserve(&self, id: JobId) -> Result<Amount, Rejection> {
        let Some(job) = self.jobs.get(&id) else {
            return Ok(0);
        };
        let maps = job.map_count();
        let mut fuel: u64 = 0;
        let mut lone = false;
        for task in job.tasks.iter().take(maps) {
            if let Some(r) = task.result.as_ref().filter(|r| r.providers.len() == 1) {
                lone = true;
                fuel = fuel.saturating_add(r.fuel_used);
            }
        }
        if lone && let Some(r) = job.tasks.get(maps).and_then(|t| t.result.as_ref()) {
            fuel = fuel.saturating_add(r.fuel_used);
        }
        let reserve = Amount::from(fuel)
            .checked_mul(job.spec.max_price)
            .ok_or_else(|| Rejection::TooLarge("correction reserve overflows".into()))?;
        Ok(reserve.min(job.escrow.held()))
    }

    // ----- tasks -----

    /// Whether `provider` may run task `id`: the job's rules ([`State::job_rules`]) and the
    /// task's ([`State::fits_task`]).
    pub fn fits(&self, provider: &Provider, id: TaskId) -> Result<(), String> {
        let job = self.jobs.get(&id.job).ok_or("unknown job")?;
        self.job_rules(provider, job)?;
        self.fits_task(provider, id)?;
        // Rules 14: a dispute between trusted providers goes only to an anchor. (Checked here,
        // where a provider takes a replica, not in `fits_task`, which also answers whether
        // anyone at all could still run a task.)
        if self.rules >= 14
            && !self.queue.contains(&id)
            && (self.disputes.contains(&id) || (self.recheck.contains(&id) && self.for_anchors(id)))
            && !self.is_anchor(&provider.id)
        {
            return Err("this replica goes only to a validator's provider (an anchor)".into());
        }
        Ok(())
    }

    /// Whether task `id` has a replica waiting for a provider: in the queue, or (rules 6, one
    /// offered to trusted providers only) among the re-executions, or (rules 18, one offered to
    /// anchors only) among the disputes.
    pub fn offered(&self, id: &TaskId) -> bool {
        self.queue.contains(id) || self.recheck.contains(id) || self.disputes.contains(id)
    }

    /// The task-level rules: the task's memory (a reduce task has its own limits), and no
    /// replica of the task already with the provider or its operator.
    pub fn fits_task(&self, provider: &Provider, id: TaskId) -> Result<(), String> {
        let job = self.jobs.get(&id.job).ok_or("unknown job")?;
        let limits = self.task_limits(job, id.index).ok_or("unknown task")?;
        let task = job.tasks.get(id.index as usize).ok_or("unknown task")?;
        // Rules 6: a replica offered only among the re-executions (an audit, or a task that
        // waits for nothing but a trusted member) goes only to a trusted provider; another's
        // run could not settle it and would only use up the task's room.
        if self.rules >= 6
            && !self.queue.contains(&id)
            && (self.recheck.contains(&id) || self.disputes.contains(&id))
            && !self.is_trusted(&provider.id)
        {
            return Err("this replica goes only to a trusted provider".into());
        }
        let operator = provider.operator();
        for run in task.runs.iter().filter(|r| r.counts()) {
            if run.provider == provider.id {
                return Err("the provider already ran a replica of this task".into());
            }
            let other = self
                .providers
                .get(&run.provider)
                .map_or(run.provider, Provider::operator);
            if other == operator {
                return Err(format!(
                    "provider {} of the same operator {operator} ran a replica of this task",
                    run.provider
                ));
            }
        }
        if limits.memory_bytes > provider.spec.memory_bytes {
            return Err(format!(
                "needs {} bytes of memory, provider has {}",
                limits.memory_bytes, provider.spec.memory_bytes
            ));
        }
        Ok(())
    }

    /// The fuel limit of task `index` of `job` (0 for a task that does not exist).
    pub(crate) fn task_fuel_limit(&self, job: &Job, index: u32) -> u64 {
        self.task_limits(job, index).map_or(0, |l| l.fuel)
    }

    fn task_limits(&self, job: &Job, index: u32) -> Option<Limits> {
        let index = index as usize;
        if index < job.map_count() {
            Some(job.spec.limits)
        } else if index == job.map_count() && index < job.tasks.len() {
            match &job.spec.aggregate {
                Aggregate::Reduce(r) => Some(r.limits),
                Aggregate::Concat => None,
            }
        } else {
            None
        }
    }

    /// Provider `who`, if it is active; else why not.
    pub(crate) fn active_provider(&self, who: &AccountId) -> Result<&Provider, Rejection> {
        let provider = self
            .providers
            .get(who)
            .ok_or(Rejection::UnknownProvider(*who))?;
        if provider.status != ProviderStatus::Active {
            return Err(Rejection::ProviderInactive(*who));
        }
        Ok(provider)
    }

    pub(crate) fn assign(&mut self, who: AccountId, tasks: &[TaskId], now: Time) -> Applied {
        let provider = self.active_provider(&who)?;
        if self.is_suspended(&who) {
            return Err(Rejection::ProviderSuspended(who));
        }
        if tasks.is_empty() {
            return Err(Rejection::Empty("no tasks to assign".into()));
        }
        let held = provider.running.len();
        let free = self.room(provider).saturating_sub(held);
        if tasks.len() > free {
            return Err(Rejection::TooLarge(format!(
                "{} tasks for a provider with room for {free} more",
                tasks.len()
            )));
        }
        if tasks.len() > self.config.max_tasks_per_assignment as usize {
            return Err(Rejection::TooLarge(format!(
                "{} tasks in one assignment",
                tasks.len()
            )));
        }
        let mut seen = BTreeSet::new();
        for id in tasks {
            if !seen.insert(*id) {
                return Err(Rejection::DuplicateTask(*id));
            }
            if !self.offered(id) {
                return Err(Rejection::TaskNotQueued(*id));
            }
            self.fits(provider, *id)
                .map_err(|why| Rejection::TaskDoesNotFit { task: *id, why })?;
        }
        // Rules 26: beyond one task per slot, no more work at risk than its backing covers.
        let covered = self.within_backing(provider, tasks);
        if let Some(id) = tasks.get(covered) {
            return Err(Rejection::TaskDoesNotFit {
                task: *id,
                why: format!(
                    "beyond one task per slot, a provider holds work worth at most {} times its \
                     backing ({}); it would hold more",
                    crate::schedule::HOLD_PER_BACKING,
                    crate::ledger::Tokens(self.backing(&who))
                ),
            });
        }
        // Rules 26: leased slots take their requester's tasks only, and the rest everyone
        // else's (see `crate::reserve`).
        if self.rules >= 26 {
            let leased = self.reservations.leased_by_owner(&who);
            if let Some(mut allow) = self.lease_allowances(provider, &leased) {
                for id in tasks {
                    let owner = self.jobs.get(&id.job).map(|j| j.owner);
                    let pool = owner.filter(|o| leased.contains_key(o));
                    let left = allow.get_mut(&pool).filter(|n| **n > 0).ok_or_else(|| {
                        Rejection::TaskDoesNotFit {
                            task: *id,
                            why: match pool {
                                Some(_) => "its owner's leased slots are full".into(),
                                None => "the provider's other slots are leased".into(),
                            },
                        }
                    })?;
                    *left = left.saturating_sub(1);
                }
            }
        }
        if let Some(p) = self.providers.get_mut(&who) {
            p.running.extend(tasks.iter().copied());
        }
        let mut events = vec![Event::TasksAssigned {
            provider: who,
            tasks: tasks.to_vec(),
        }];
        let slots = u64::from(self.providers.get(&who).map_or(1, |p| p.spec.slots.max(1)));
        let grace = self.config.schedule.timeout_grace_ms;
        for (i, id) in tasks.iter().enumerate() {
            // Tasks queued ahead of this one on the provider, per slot, each up to the wall limit.
            let waves = u64::try_from(held.saturating_add(i))
                .unwrap_or(u64::MAX)
                .checked_div(slots)
                .unwrap_or(0)
                .saturating_add(1);
            let cost = self.jobs.get(&id.job).map(|job| {
                let wall = self.task_limits(job, id.index).map_or(0, |l| l.wall_ms);
                (job.owner, self.fuel_estimate(job), wall)
            });
            let Some((owner, fuel, wall_ms)) = cost else {
                continue;
            };
            let service = self.service.entry(owner).or_default();
            *service = service.saturating_add(fuel);
            if let Some(task) = self.task_mut(*id) {
                task.queued = task.queued.saturating_sub(1);
                task.runs.push(Run {
                    provider: who,
                    started: now,
                    deadline: now
                        .saturating_add(wall_ms.saturating_mul(waves))
                        .saturating_add(grace),
                    outcome: RunOutcome::Running,
                });
            }
            if self.rules >= 23 {
                self.pin_gpu_class(id.job, &who);
            }
            if self.rules < 30 {
                self.settle(*id, now, &mut events)?;
            }
        }
        // Rules 30: settled once every run is started. Settling one task may settle another
        // (a loser distrusted re-settles its other open tasks); before, a task settled so could
        // then get this provider's run pushed onto it, done and still running.
        if self.rules >= 30 {
            for id in tasks {
                self.settle(*id, now, &mut events)?;
            }
        }
        Ok(events)
    }

    pub(crate) fn report(&mut self, who: AccountId, reports: &[TaskReport], now: Time) -> Applied {
        if !self.providers.contains_key(&who) {
            return Err(Rejection::UnknownProvider(who));
        }
        self.check_task_list(
            reports.iter().map(|r| r.task),
            "no results to report",
            "results in one report",
        )?;
        for r in reports {
            let job = self
                .jobs
                .get(&r.task.job)
                .ok_or(Rejection::UnknownJob(r.task.job))?;
            if r.task.index as usize >= job.tasks.len() {
                return Err(Rejection::UnknownTask(r.task));
            }
        }
        let mut events = Vec::new();
        for r in reports {
            self.report_one(who, r, now, &mut events)?;
        }
        Ok(events)
    }

    fn report_one(
        &mut self,
        who: AccountId,
        r: &TaskReport,
        now: Time,
        events: &mut Vec<Event>,
    ) -> Result<(), Rejection> {
        let id = r.task;
        let held = self
            .providers
            .get(&who)
            .is_some_and(|p| p.running.contains(&id));
        if !held {
            events.push(Event::ReportIgnored {
                task: id,
                provider: who,
                reason: "task is not assigned to this provider".into(),
            });
            return Ok(());
        }
        if let Some(p) = self.providers.get_mut(&who) {
            p.running.remove(&id);
        }
        // What a successful result weighs: its provider's credibility now, frozen in the run.
        let policy = self
            .jobs
            .get(&id.job)
            .map_or(Redundancy::Adaptive, |j| j.spec.redundancy);
        let weight = self.weight(policy, &who);
        let Some(task) = self.task_mut(id) else {
            return Ok(());
        };
        let Some(run) = task
            .runs
            .iter_mut()
            .rev()
            .find(|run| run.provider == who && run.outcome == RunOutcome::Running)
        else {
            return Ok(());
        };
        let started = run.started;
        // Rules 11: a run that exited with a status its job takes as an answer returned a
        // result; one that exited 0 when the job does not take 0 failed like any other status.
        let answer = self.answer_status(id, &r.outcome);
        let outcome = match &r.outcome {
            TaskOutcome::Success if answer.is_none() => TaskOutcome::Exit(0),
            other => other.clone(),
        };
        // Rules 2: a success claiming more fuel than the task's limit is impossible for an honest
        // sandbox; it counts as a failed attempt (its claim would otherwise feed the job's cost
        // estimate and its payment).
        // Rules 3: any outcome (a failure's fuel counts too).
        let over_fuel = (answer.is_some() || self.rules >= 3)
            && self.rules >= 2
            && self
                .jobs
                .get(&id.job)
                .and_then(|j| self.task_limits(j, id.index))
                .is_some_and(|l| r.fuel_used > l.fuel);
        // Rules 10: a success whose output is larger than the job's output room (the honest
        // sandbox runs the task under that limit, and fails it).
        let over_output = self.rules >= 10
            && answer.is_some()
            && self.output_limit(id.job).is_some_and(|l| r.output_size > l);
        let impossible = if over_fuel {
            Some(format!(
                "reported {} fuel, above the task's limit",
                r.fuel_used
            ))
        } else if over_output {
            Some(format!(
                "reported {} bytes of output, above the job's output room",
                r.output_size
            ))
        } else {
            None
        };
        let verifiable =
            self.rules >= 3 && crate::verify::failure_key(&outcome, r.fuel_used).is_some();
        let Some(run) = self.task_mut(id).and_then(|task| {
            task.runs
                .iter_mut()
                .rev()
                .find(|run| run.provider == who && run.outcome == RunOutcome::Running)
        }) else {
            return Ok(());
        };
        if let Some(why) = impossible {
            run.outcome = RunOutcome::Failed;
            return self.attempt_failed(id, who, why, now, events);
        }
        if let Some(status) = answer {
            run.outcome = if status == 0 {
                RunOutcome::Returned {
                    output_hash: r.output_hash,
                    output_size: r.output_size,
                    fuel_used: r.fuel_used,
                    weight,
                }
            } else {
                RunOutcome::Answered {
                    status,
                    output_hash: r.output_hash,
                    output_size: r.output_size,
                    fuel_used: r.fuel_used,
                    weight,
                }
            };
            if let Some(p) = self.providers.get_mut(&who) {
                p.stats.tasks_completed = p.stats.tasks_completed.saturating_add(1);
                p.stats.fuel_used = p.stats.fuel_used.saturating_add(r.fuel_used);
            }
            events.push(Event::TaskCompleted {
                task: id,
                provider: who,
                fuel_used: r.fuel_used,
            });
            self.maybe_spot_check(id, who, started, events);
            return self.settle(id, now, events);
        }
        // Rules 3: a failure the sandbox reproduces exactly is verified like a result rather
        // than counted as an attempt (see `verify::failure_key`).
        if verifiable {
            run.outcome = Run::failure(&outcome, r.fuel_used, weight);
            let reason = format!("{} after {} fuel (reported by {who})", outcome, r.fuel_used);
            if let Some(task) = self.task_mut(id) {
                task.last_error = Some(reason.clone());
            }
            let attempts = self.task_mut(id).map_or(0, |t| t.failures);
            if let Some(p) = self.providers.get_mut(&who) {
                p.stats.tasks_failed = p.stats.tasks_failed.saturating_add(1);
            }
            events.push(Event::TaskAttemptFailed {
                task: id,
                provider: who,
                reason,
                attempts,
            });
            return self.settle(id, now, events);
        }
        run.outcome = RunOutcome::Failed;
        self.attempt_failed(id, who, outcome.to_string(), now, events)
    }

    /// Counts a failed attempt of task `id` by `who` (its run already marked failed): the task
    /// is queued again, or its job fails once `max_attempts` attempts have failed.
    fn attempt_failed(
        &mut self,
        id: TaskId,
        who: AccountId,
        reason: String,
        now: Time,
        events: &mut Vec<Event>,
    ) -> Result<(), Rejection> {
        let max_attempts = self.config.max_attempts;
        let Some(task) = self.task_mut(id) else {
            return Ok(());
        };
        task.failures = task.failures.saturating_add(1);
        task.last_error = Some(reason.clone());
        let failures = task.failures;
        if let Some(p) = self.providers.get_mut(&who) {
            p.stats.tasks_failed = p.stats.tasks_failed.saturating_add(1);
        }
        events.push(Event::TaskAttemptFailed {
            task: id,
            provider: who,
            reason: reason.clone(),
            attempts: failures,
        });
        if failures >= max_attempts {
            if let Some(task) = self.task_mut(id) {
                task.state = TaskState::Failed;
            }
            let reason = format!("task {id} failed {failures} times; last: {reason}");
            events.push(Event::JobFailed {
                job: id.job,
                reason: reason.clone(),
            });
            self.finish_job(id.job, JobStatus::Failed { reason }, now, events)
        } else {
            self.settle(id, now, events)
        }
    }

    /// A list of tasks in one input: not empty (else `Empty(empty)`), within
    /// `max_tasks_per_assignment` (else "N `what`"), and without a task listed twice.
    pub(crate) fn check_task_list(
        &self,
        ids: impl ExactSizeIterator<Item = TaskId>,
        empty: &str,
        what: &str,
    ) -> Result<(), Rejection> {
        if ids.len() == 0 {
            return Err(Rejection::Empty(empty.into()));
        }
        if ids.len() > self.config.max_tasks_per_assignment as usize {
            return Err(Rejection::TooLarge(format!("{} {what}", ids.len())));
        }
        let mut seen = BTreeSet::new();
        for id in ids {
            if !seen.insert(id) {
                return Err(Rejection::DuplicateTask(id));
            }
        }
        Ok(())
    }

    /// Fails `who`'s runs of `tasks` that are past their deadline ([`LeaderCommand::TimeOutRuns`]).
    fn time_out(&mut self, who: AccountId, tasks: &[TaskId], now: Time) -> Applied {
        let provider = self
            .providers
            .get(&who)
            .ok_or(Rejection::UnknownProvider(who))?;
        self.check_task_list(
            tasks.iter().copied(),
            "no runs to time out",
            "runs in one time-out",
        )?;
        for id in tasks {
            let deadline = self.running_run(who, *id).map_or(0, |r| r.deadline);
            if !provider.running.contains(id) || deadline >= now {
                return Err(Rejection::NotOverdue {
                    task: *id,
                    deadline,
                });
            }
        }
        let mut events = Vec::new();
        for id in tasks {
            // An earlier time-out in this list may have failed the job and dropped this run.
            let held = self
                .providers
                .get_mut(&who)
                .is_some_and(|p| p.running.remove(id));
            let Some(run) = self.task_mut(*id).and_then(|t| {
                t.runs
                    .iter_mut()
                    .rev()
                    .find(|r| r.provider == who && r.outcome == RunOutcome::Running)
            }) else {
                continue;
            };
            if !held {
                continue;
            }
            run.outcome = RunOutcome::Failed;
            let waited = now.saturating_sub(run.started);
            if let Some(p) = self.providers.get_mut(&who) {
                p.stats.tasks_timed_out = p.stats.tasks_timed_out.saturating_add(1);
            }
            // Rules 26: a lease whose reserved run timed out missed its period.
            if let Some(owner) = self.jobs.get(&id.job).map(|j| j.owner) {
                self.lease_missed(&who, &owner);
            }
            let reason = format!("timed out: provider {who} did not report within {waited} ms");
            self.attempt_failed(*id, who, reason, now, &mut events)?;
        }
        Ok(events)
    }

    /// `who`'s run of task `id` that is still running, if any.
    fn running_run(&self, who: AccountId, id: TaskId) -> Option<&Run> {
        self.jobs
            .get(&id.job)?
            .tasks
            .get(id.index as usize)?
            .runs
            .iter()
            .rev()
            .find(|r| r.provider == who && r.outcome == RunOutcome::Running)
    }

    /// Runs past their deadline at `now`, per provider ([`LeaderCommand::TimeOutRuns`]).
    pub fn overdue_runs(&self, now: Time) -> Vec<(AccountId, Vec<TaskId>)> {
        self.providers
            .values()
            .filter(|p| p.status == ProviderStatus::Active)
            .filter_map(|p| {
                let late: Vec<TaskId> = p
                    .running
                    .iter()
                    .filter(|id| {
                        self.running_run(p.id, **id)
                            .is_some_and(|r| r.deadline < now)
                    })
                    .take(self.config.max_tasks_per_assignment as usize)
                    .copied()
                    .collect();
                (!late.is_empty()).then_some((p.id, late))
            })
            .collect()
    }

    pub(crate) fn maps_finished(
        &mut self,
        id: JobId,
        now: Time,
        events: &mut Vec<Event>,
    ) -> Result<(), Rejection> {
        let Some(job) = self.jobs.get_mut(&id) else {
            return Ok(());
        };
        match job.spec.aggregate {
            Aggregate::Concat => {
                events.push(Event::JobCompleted { job: id });
                self.finish_job(id, JobStatus::Completed, now, events)?;
            }
            Aggregate::Reduce(_) => {
                // Rules 19: a job whose reduce was dropped (`State::undeliver`) reduces afresh
                // in the same place.
                let maps = job.map_count();
                let index = u32::try_from(maps).unwrap_or(u32::MAX);
                let task = Task::new(Self::initial_replicas(job.spec.redundancy));
                match job.tasks.get_mut(maps) {
                    Some(dropped) => *dropped = task,
                    None => job.tasks.push(task),
                }
                job.status = JobStatus::Reducing;
                self.queue.insert(TaskId { job: id, index });
                events.push(Event::ReduceQueued { job: id });
            }
        }
        Ok(())
    }

    // ----- queries -----

    /// Everything a provider needs to run task `id`.
    pub fn task_descriptor(&self, id: TaskId) -> Option<TaskDescriptor> {
        let job = self.jobs.get(&id.job)?;
        let index = id.index as usize;
        let seed = {
            let mut h = blake3::Hasher::new();
            h.update(b"gridmint/seed");
            h.update(&id.job.to_le_bytes());
            h.update(&id.index.to_le_bytes());
            let bytes = h.finalize();
            let mut first = [0u8; 8];
            first.copy_from_slice(bytes.as_bytes().get(..8)?);
            u64::from_le_bytes(first)
        };
        if let Some(spec) = job.spec.tasks.get(index) {
            let TaskSpec {
                args,
                env,
                stdin,
                inputs,
            } = spec.clone();
            return Some(TaskDescriptor {
                task: id,
                module: job.spec.module,
                args,
                env,
                stdin,
                inputs,
                output: job.spec.output.clone(),
                limits: job.spec.limits,
                seed,
                output_limit: self.output_limit(id.job),
                success_exits: match self.success_exits(id.job) {
                    [0] => Vec::new(),
                    other => other.to_vec(),
                },
                entry: self.entry(id.job).map(str::to_string),
                mounts: self.job_files(id.job).mounts,
                scratch: self.job_files(id.job).scratch,
                private: self.job_sealing(id.job).cloned(),
                profile: self.sandbox_profile(),
                gpu: self.gpu_job(id.job).cloned(),
                tolerance: self
                    .is_tolerant(id)
                    .then(|| self.tolerance(id.job).copied())
                    .flatten(),
            });
        }
        let Aggregate::Reduce(reduce) = &job.spec.aggregate else {
            return None;
        };
        if index != job.map_count() || index >= job.tasks.len() {
            return None;
        }
        let inputs = job
            .tasks
            .iter()
            .take(job.map_count())
            .enumerate()
            .map(|(i, t)| {
                t.result.as_ref().map(|r| InputFile {
                    name: part_name(i),
                    hash: r.output_hash,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(TaskDescriptor {
            task: id,
            module: reduce.module,
            args: reduce.args.clone(),
            env: Vec::new(),
            stdin: None,
            inputs,
            output: OutputSource::Stdout,
            limits: reduce.limits,
            seed,
            output_limit: self.output_limit(id.job),
            success_exits: Vec::new(),
            entry: None,
            mounts: Vec::new(),
            scratch: None,
            private: self.job_sealing(id.job).cloned(),
            profile: self.sandbox_profile(),
            gpu: None,
            tolerance: None,
        })
    }

    /// Rules 20 to 29: the sandbox profile every task of this network runs under (5 from rules
    /// 29: host calls charged by the module, nothing else charged as one; 4 from rules 22: float vectors' NaNs made canonical where observable too; 3 from rules 21: fuel
    /// metered by the module's rewrite, counted loops charged once; 2 from rules 20: NaNs made
    /// canonical where observable; 1 before: after every float instruction).
    pub fn sandbox_profile(&self) -> u32 {
        if self.rules >= 29 {
            5
        } else if self.rules >= 22 {
            4
        } else if self.rules >= 21 {
            3
        } else if self.rules >= 20 {
            2
        } else {
            crate::types::FIRST_PROFILE
        }
    }

    /// Task `id`, for changing it.
    pub(crate) fn task_mut(&mut self, id: TaskId) -> Option<&mut Task> {
        self.jobs
            .get_mut(&id.job)
            .and_then(|j| j.tasks.get_mut(id.index as usize))
    }

    /// Jobs that are unfinished and past their deadline.
    pub fn expired_jobs(&self, now: Time) -> Vec<JobId> {
        self.jobs
            .values()
            .filter(|j| !j.status.is_finished() && now > j.spec.deadline)
            .map(|j| j.id)
            .filter(|&id| !self.correcting(id))
            .collect()
    }

    /// Rules 19: whether job `id` runs again to correct results it delivered (it was reopened
    /// after completing). Such a job delivered within its deadline, so the deadline no longer
    /// ends it: its re-runs are re-executions like audits, which trusted providers take first,
    /// and one that no trusted provider is left to run is settled without (`State::settle`).
    pub fn correcting(&self, id: JobId) -> bool {
        self.rules >= 19
            && self.corrected.contains_key(&id)
            && self.jobs.get(&id).is_some_and(|j| !j.status.is_finished())
    }

    /// Highest nonce an account has used in a logged action.
    pub fn nonce(&self, account: &AccountId) -> u64 {
        self.accounts.get(account).map_or(0, |a| a.nonce)
    }
}
