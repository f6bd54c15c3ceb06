//! Builders and a small driver shared by the engine's integration tests.
//!
//! Specs come with defaults that are valid and that fit each other (the default provider can run the
//! default job's tasks at the default price), so a test only spells out what it is about.
//! [`World`] applies entries with the next nonce of each signer and checks, for every rejection, that
//! the state (and its hash) did not change.

use engine::{
    AccountId, Action, Aggregate, Amount, EngineConfig, Entry, Event, Genesis, Hash, Input,
    InputFile, Job, JobSpec, LeaderCommand, LedgerParams, Limits, OutputSource, Provider,
    ProviderSpec, ReduceSpec, Redundancy, Rejection, Sig, Signed, State, Task, TaskId, TaskOutcome,
    TaskReport, TaskSpec, TaskState, Time,
};

/// The money scenarios' network (ledger, delegation, governance): a 10% fee, a minimum stake of
/// 100, half the stake slashed (half of that to the requester, a quarter to the treasury), a 50-ms
/// unbonding delay, no faucet; accounts 1 to 9 hold 100,000,000. Current rules, no fee per action.
pub fn ledger_genesis(treasury: AccountId) -> Genesis {
    Genesis {
        params: LedgerParams {
            chain_id: "test".into(),
            treasury,
            fee_bps: 1_000,
            min_stake: 100,
            slash: engine::SlashParams {
                fraction_bps: 5_000,
                requester_bps: 5_000,
                treasury_bps: 2_500,
            },
            unbonding_delay_ms: 50,
            faucet: None,
        },
        allocations: (1..=9).map(|n| (acct(n), 100_000_000)).collect(),
        engine: Default::default(),
        verification: Default::default(),
        validators: Default::default(),
        rules: engine::RULES,
        action_fee: 0,
        storage: None,
        carbon: None,
        staking: None,
    }
}

/// The account whose key is `n` repeated.
pub fn acct(n: u8) -> AccountId {
    AccountId([n; 32])
}

/// A content hash whose bytes are all `n`.
pub fn hash(n: u8) -> Hash {
    Hash([n; 32])
}

/// Task `index` of job `job`.
pub fn tid(job: u64, index: u32) -> TaskId {
    TaskId { job, index }
}

/// A provider with 4 slots, 1 GiB of memory, asking 1 per fuel.
pub fn provider_spec() -> ProviderSpec {
    ProviderSpec {
        slots: 4,
        cores: 4,
        memory_bytes: 1 << 30,
        gpu: None,
        benchmark_score: 100,
        region: "eu-west".into(),
        price_per_fuel: 1,
        operator: None,
    }
}

/// Limits well inside the default engine configuration: 64 MiB, fits [`provider_spec`].
pub fn limits() -> Limits {
    Limits {
        fuel: 1_000_000,
        memory_bytes: 64 << 20,
        wall_ms: 10_000,
    }
}

/// The deadline of [`job_spec`]: far in the future of every scenario.
pub const DEADLINE: Time = 1_000_000;

/// A Concat job of `n` map tasks, task `i` run with argument `task-i`, paying at most 10 per fuel.
pub fn job_spec(n: usize) -> JobSpec {
    JobSpec {
        module: hash(0xAA),
        tasks: (0..n)
            .map(|i| TaskSpec {
                args: vec![format!("task-{i}")],
                ..TaskSpec::default()
            })
            .collect(),
        limits: limits(),
        deadline: DEADLINE,
        max_price: 10,
        output: OutputSource::Stdout,
        aggregate: Aggregate::Concat,
        redundancy: SINGLE,
        requirements: Default::default(),
    }
}

/// Trust the first result: what the scenarios about other things use, so one provider finishes a
/// job. The verification scenarios set the policy they are about.
pub const SINGLE: Redundancy = Redundancy::Fixed {
    quorum: 1,
    max_results: 1,
};

/// The reduce step used by reduce jobs: module `0xBB`, argument `sum`.
pub fn reduce_spec() -> ReduceSpec {
    ReduceSpec {
        module: hash(0xBB),
        args: vec!["sum".into()],
        limits: Limits {
            fuel: 2_000_000,
            memory_bytes: 128 << 20,
            wall_ms: 20_000,
        },
    }
}

/// [`job_spec`] with a reduce step.
pub fn reduce_job_spec(n: usize) -> JobSpec {
    JobSpec {
        aggregate: Aggregate::Reduce(reduce_spec()),
        ..job_spec(n)
    }
}

/// A file input named `name` with content hash `hash(h)`.
pub fn input(name: &str, h: u8) -> InputFile {
    InputFile {
        name: name.into(),
        hash: hash(h),
    }
}

/// An action signed (with a dummy signature: the engine does not check them) by `who`.
pub fn signed(who: AccountId, nonce: u64, body: Action) -> Input {
    Input::Signed(Signed {
        signer: who,
        nonce,
        body,
        signature: Sig([0; 64]),
    })
}

/// A log entry at `time`.
pub fn entry(time: Time, input: Input) -> Entry {
    Entry { time, input }
}

/// A successful report whose output hash is `hash(out)` and which used `fuel` fuel.
pub fn success(task: TaskId, out: u8, fuel: u64) -> TaskReport {
    TaskReport {
        task,
        outcome: TaskOutcome::Success,
        output_hash: hash(out),
        output_size: 100,
        fuel_used: fuel,
    }
}

/// A report with outcome `outcome` and no useful output.
pub fn failure(task: TaskId, outcome: TaskOutcome) -> TaskReport {
    TaskReport {
        task,
        outcome,
        output_hash: hash(0),
        output_size: 0,
        fuel_used: 7,
    }
}

/// What [`World::new`] gives each of accounts 1 to 20: more than any scenario spends.
pub const RICH: Amount = 1 << 80;

/// A state plus the clock of the next entry. Actions are signed with the signer's next nonce.
///
/// Scenario tests about scheduling are not about money: unless [`World::money_events`] is set, the
/// ledger's events (escrow, payments, refunds, transfers, stake) are left out of what `accept` and
/// the helpers built on it return. The ledger scenarios set it and assert those events exactly; the
/// property tests see every event. Likewise the verification events (a result accepted, replicas
/// queued, a spot check, a rejected result) appear only with [`World::verify_events`], which the
/// verification scenarios set.
pub struct World {
    pub state: State,
    pub time: Time,
    pub money_events: bool,
    pub verify_events: bool,
}

/// Whether `event` is one of the verification rules'.
pub fn is_verify_event(event: &Event) -> bool {
    matches!(
        event,
        Event::TaskAccepted { .. }
            | Event::ReplicasQueued { .. }
            | Event::SpotCheck { .. }
            | Event::ResultRejected { .. }
            | Event::ResultReopened { .. }
    )
}

/// Whether `event` is one of the ledger's.
pub fn is_money_event(event: &Event) -> bool {
    matches!(
        event,
        Event::Transferred { .. }
            | Event::FaucetPaid { .. }
            | Event::EscrowLocked { .. }
            | Event::TaskPaid { .. }
            | Event::EscrowRefunded { .. }
            | Event::Staked { .. }
            | Event::UnbondingStarted { .. }
            | Event::StakeReleased { .. }
            | Event::Slashed { .. }
            | Event::ActionFeePaid { .. }
            | Event::Delegated { .. }
            | Event::Undelegated { .. }
            | Event::DelegatorsPaid { .. }
            | Event::RewardsWithdrawn { .. }
            | Event::DelegationSlashed { .. }
            | Event::RewardDustSwept { .. }
    )
}

impl World {
    /// A fresh state with the default configuration, at time 1000.
    pub fn new() -> World {
        World::with_config(EngineConfig::default())
    }

    /// A network without fees or stake on which accounts 1 to 20 each hold [`RICH`].
    pub fn with_config(config: EngineConfig) -> World {
        World::with_genesis(&Genesis {
            params: LedgerParams::free(),
            allocations: (1..=20).map(|n| (acct(n), RICH)).collect(),
            engine: config,
            verification: Default::default(),
            validators: Default::default(),
            rules: engine::RULES,
            action_fee: 0,
            storage: None,
            carbon: None,
            staking: None,
        })
    }

    pub fn with_genesis(genesis: &Genesis) -> World {
        World {
            state: State::from_genesis(genesis).expect("valid genesis"),
            time: 1000,
            money_events: false,
            verify_events: false,
        }
    }

    /// The same world under an older version of the rules (see `engine::RULES`), for the
    /// scenarios of a rule a later version changed.
    pub fn under_rules(mut self, rules: u32) -> World {
        self.state.rules = rules;
        self
    }

    /// Applies `input` at the current time.
    pub fn apply(&mut self, input: Input) -> Result<Vec<Event>, Rejection> {
        self.state.apply(&entry(self.time, input))
    }

    /// Applies `input`, which must be rejected without changing anything; returns the rejection.
    #[track_caller]
    pub fn reject(&mut self, input: Input) -> Rejection {
        let before = self.state.clone();
        let hash = self.state.hash();
        let rejection = match self.apply(input.clone()) {
            Ok(events) => panic!("{input:?} was accepted with events {events:?}"),
            Err(rejection) => rejection,
        };
        assert_eq!(
            self.state.hash(),
            hash,
            "rejection {rejection} changed the hash"
        );
        assert_eq!(
            self.state, before,
            "rejection {rejection} changed the state"
        );
        rejection
    }

    /// Applies `input`, which must be accepted; returns its events.
    #[track_caller]
    pub fn accept(&mut self, input: Input) -> Vec<Event> {
        match self.apply(input.clone()) {
            Ok(events) => events
                .into_iter()
                .filter(|e| self.money_events || !is_money_event(e))
                .filter(|e| self.verify_events || !is_verify_event(e))
                .collect(),
            Err(rejection) => panic!("{input:?} was rejected: {rejection}"),
        }
    }

    /// `who` signs `action` with its next nonce.
    pub fn action(&self, who: AccountId, action: Action) -> Input {
        signed(who, self.state.nonce(&who) + 1, action)
    }

    /// `who` does `action` with its next nonce; it must be accepted.
    #[track_caller]
    pub fn act(&mut self, who: AccountId, action: Action) -> Vec<Event> {
        let input = self.action(who, action);
        self.accept(input)
    }

    /// `who` does `action` with its next nonce; it must be rejected without changing anything.
    #[track_caller]
    pub fn act_rejected(&mut self, who: AccountId, action: Action) -> Rejection {
        let input = self.action(who, action);
        self.reject(input)
    }

    /// The leader issues `cmd`; it must be accepted.
    #[track_caller]
    pub fn lead(&mut self, cmd: LeaderCommand) -> Vec<Event> {
        self.accept(Input::Leader(cmd))
    }

    /// The leader issues `cmd`; it must be rejected without changing anything.
    #[track_caller]
    pub fn lead_rejected(&mut self, cmd: LeaderCommand) -> Rejection {
        self.reject(Input::Leader(cmd))
    }

    /// `who` proposes `changes` with a deposit of 100; the proposal's id.
    #[track_caller]
    pub fn propose(&mut self, who: AccountId, changes: Vec<engine::ParamChange>) -> u64 {
        let events = self.act(
            who,
            Action::Propose {
                title: "a change".into(),
                changes,
                deposit: 100,
            },
        );
        match events[0] {
            Event::Proposed { proposal, .. } => proposal,
            ref other => panic!("{other:?}"),
        }
    }

    /// `who` votes `option` on `proposal`.
    #[track_caller]
    pub fn vote(&mut self, who: AccountId, proposal: u64, option: engine::VoteOption) {
        self.act(who, Action::Vote { proposal, option });
    }

    /// `provider` fetches up to `max` tasks on its own signed request (a validator set assigns
    /// no other way); the entry's events.
    #[track_caller]
    pub fn fetch(&mut self, provider: AccountId, max: u32) -> Vec<Event> {
        let fetch = engine::Signed {
            signer: provider,
            nonce: self.state.nonce(&provider) + 1,
            body: engine::Request::Fetch {
                max,
                wait_ms: 0,
                held: Vec::new(),
                cached: Vec::new(),
            },
            signature: engine::Sig([0; 64]),
        };
        self.accept(Input::Fetch(Box::new(engine::WorkFetch {
            fetches: vec![fetch],
            waiting: Vec::new(),
        })))
    }

    /// Registers `who` with `spec`.
    #[track_caller]
    pub fn register(&mut self, who: AccountId, spec: ProviderSpec) -> Vec<Event> {
        self.act(who, Action::RegisterProvider(spec))
    }

    /// `owner` submits `spec`; returns the new job's id.
    #[track_caller]
    pub fn submit(&mut self, owner: AccountId, spec: JobSpec) -> u64 {
        match self.act(owner, Action::SubmitJob(spec)).as_slice() {
            [Event::JobSubmitted { job, .. }] => *job,
            [
                Event::JobSubmitted { job, .. },
                Event::EscrowLocked { job: locked, .. },
            ]
            | [
                Event::JobSubmitted { job, .. },
                Event::EscrowLocked { job: locked, .. },
                Event::ActionFeePaid { .. },
            ] if job == locked => *job,
            other => panic!("unexpected events for a submission: {other:?}"),
        }
    }

    /// The leader assigns `tasks` to `provider`; it must be accepted.
    #[track_caller]
    pub fn assign(&mut self, provider: AccountId, tasks: &[TaskId]) -> Vec<Event> {
        self.lead(LeaderCommand::AssignTasks {
            provider,
            tasks: tasks.to_vec(),
        })
    }

    /// `provider` reports `reports`; it must be accepted.
    #[track_caller]
    pub fn report(&mut self, provider: AccountId, reports: Vec<TaskReport>) -> Vec<Event> {
        self.act(provider, Action::ReportResults(reports))
    }

    pub fn job(&self, id: u64) -> &Job {
        &self.state.jobs[&id]
    }

    pub fn task(&self, id: TaskId) -> &Task {
        &self.job(id.job).tasks[id.index as usize]
    }

    pub fn provider(&self, id: AccountId) -> &Provider {
        &self.state.providers[&id]
    }

    /// The queue, in dispatch order.
    pub fn queue(&self) -> Vec<TaskId> {
        self.state.queue.iter().copied().collect()
    }

    /// The tasks `id` runs, in order.
    pub fn running(&self, id: AccountId) -> Vec<TaskId> {
        self.provider(id).running.iter().copied().collect()
    }

    /// The state of task `id`.
    pub fn task_state(&self, id: TaskId) -> TaskState {
        self.task(id).state.clone()
    }
}
