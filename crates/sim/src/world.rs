//! The discrete-event loop. Virtual time, simulated providers and requesters around the real
//! engine: every registration, submission, assignment, report, time-out and loss enters
//! [`engine::State::apply`] as the coordinator would log it, and every scheduling decision is
//! [`engine::State::pick_tasks`]. What the engine does not do — run tasks, cross the network,
//! crash — is simulated here.
//!
//! The model of one provider follows the real agent: it fetches work, runs what it is given on
//! its slots in order (the rest waits in its local queue), and reports finished tasks in one
//! exchange with the coordinator (report and next fetch together) at a time; results that finish
//! while an exchange is on its way wait for the next. A fetch that finds nothing while the
//! provider holds no task is parked (the long poll) and answered when work is queued. Messages
//! take half the provider's region round trip each way. A crashed provider sends nothing more;
//! the leader declares it lost one heartbeat timeout later, as the coordinator's liveness scan
//! would. Signatures are not simulated: the engine does not check them (the coordinator does),
//! so inputs carry a zero signature and correct nonces.

use crate::SimError;
use crate::config::{Play, PolicyConfig, SimConfig};
use crate::dist::{Draw, keyed_unit};
use crate::metrics::Metrics;
use crate::queue::EventQueue;
use engine::{
    AccountId, Action, Aggregate, Entry, Event, Genesis, Hash, Input, JobId, JobSpec,
    LeaderCommand, Limits, OutputSource, ProviderSpec, Redundancy, Requirements, Sig, Signed,
    State, TaskId, TaskOutcome, TaskReport, TaskSpec, Time, tokens,
};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::VecDeque;

const BANK: AccountId = AccountId([0xBA; 32]);
const TREASURY: AccountId = AccountId([0x7E; 32]);
const MODULE: Hash = Hash([0x5A; 32]);

/// The simulated providers' keys carry their index, so an engine event maps back to a provider
/// without a lookup table.
pub fn provider_id(index: u32) -> AccountId {
    provider_key(index, 0)
}

/// The key of machine `index`'s `incarnation`-th account: a sybil re-enters under a fresh one
/// after each slash (incarnation 0 is [`provider_id`]); [`provider_index`] maps every one of
/// them back to the machine.
pub fn provider_key(index: u32, incarnation: u32) -> AccountId {
    let mut b = [0u8; 32];
    b[..4].copy_from_slice(b"prov");
    b[4..8].copy_from_slice(&index.to_be_bytes());
    b[8..12].copy_from_slice(&incarnation.to_be_bytes());
    AccountId(b)
}

pub fn provider_index(id: &AccountId) -> Option<usize> {
    let (tag, rest) = id.0.split_first_chunk::<4>()?;
    if tag != b"prov" {
        return None;
    }
    let (index, _) = rest.split_first_chunk::<4>()?;
    Some(u32::from_be_bytes(*index) as usize)
}

fn requester_id(index: u32) -> AccountId {
    let mut b = [0u8; 32];
    b[..4].copy_from_slice(b"reqr");
    b[4..8].copy_from_slice(&index.to_be_bytes());
    AccountId(b)
}

/// What an honest run of `task` outputs (bit-identical on every honest provider).
pub fn correct_hash(task: TaskId) -> Hash {
    let mut b = [0u8; 32];
    b[0] = 1;
    b[1..9].copy_from_slice(&task.job.to_be_bytes());
    b[9..13].copy_from_slice(&task.index.to_be_bytes());
    Hash(b)
}

/// Whether a provider that knows everything public — the engine state — predicts that its result
/// for `task`, from the run the leader assigned it at `started`, will be accepted without any
/// audit: the job uses the adaptive policy, the provider is trusted, no other run of the task
/// counts (so its result will be accepted alone; under rules 3 it would be too if another run
/// were still running, but only if that one does not report first — a race this adversary does
/// not bet on), no spot check is pending on the task, and, before rules 5, the spot-check draw,
/// which hashes only public values (`State::spot_check_drawn`), does not pick it. Under rules 5
/// the draw uses the leader's next beacon reveal, which no provider knows; the adversary then
/// bets on the lowest audit rate it can have (`State::audit_bps` at the network's
/// `spot_check_bps`, reached after passing dozens of audits). The `predicting` strategy cheats
/// exactly then. It is asked when the run finishes; the engine decides when the report arrives,
/// half a round trip or more later.
///
/// This is the only place the simulated adversary predicts an audit, and it may use only what is
/// public when the report is made.
pub fn adversary_predicts_no_audit(
    state: &State,
    task: TaskId,
    provider: &AccountId,
    started: Time,
) -> bool {
    let Some(job) = state.jobs.get(&task.job) else {
        return false;
    };
    let Some(t) = job.tasks.get(task.index as usize) else {
        return false;
    };
    job.spec.redundancy == Redundancy::Adaptive
        && state.is_trusted(provider)
        && !t.spot_check
        && t.runs
            .iter()
            .all(|r| r.provider == *provider || !r.counts())
        && if state.rules >= 5 {
            // The draw uses the beacon's next reveal, which nobody but the leader knows: the
            // best the adversary can do is lie only once its audit rate is as low as it gets
            // (under rules 6 that floor rises with every slash it took).
            state.audit_bps(provider) <= state.audit_floor_bps(provider)
        } else {
            !state.spot_check_drawn(task, provider, started)
        }
}

/// When the leader assigned `provider`'s run of `task` that is still running (public: the
/// `AssignTasks` entry's time).
fn assigned_at(state: &State, task: TaskId, provider: &AccountId) -> Option<Time> {
    let t = state.jobs.get(&task.job)?.tasks.get(task.index as usize)?;
    t.runs
        .iter()
        .rev()
        .find(|r| r.provider == *provider && r.outcome == engine::RunOutcome::Running)
        .map(|r| r.started)
}

/// A wrong output: shared by colluders, otherwise particular to the provider.
fn wrong_hash(task: TaskId, provider: Option<u32>) -> Hash {
    let mut h = correct_hash(task);
    match provider {
        None => h.0[0] = 2,
        Some(p) => {
            h.0[0] = 3;
            h.0[13..17].copy_from_slice(&p.to_be_bytes());
        }
    }
    h
}

/// One simulated machine.
struct Prov {
    class: u16,
    region: u16,
    slots: u32,
    /// Benchmark score: fuel per millisecond is this times 67.
    score: u64,
    alive: bool,
    /// Left for good.
    gone: bool,
    /// Bumped at every crash, leave and rejoin; events of an older epoch are void.
    epoch: u32,
    nonce: u64,
    /// Assigned, not started.
    queue: VecDeque<TaskId>,
    busy: u32,
    /// An exchange is on its way (or parked at the coordinator).
    in_flight: bool,
    parked: bool,
    /// Listed in `World::parked_trusted` (parked and trusted when it was listed).
    listed_trusted: bool,
    /// Finished, not yet reported.
    pending: Vec<TaskReport>,
    /// When it last crashed or left.
    down_at: Time,
    /// Its account is `provider_key(index, incarnation)`: a sybil's changes after each slash.
    incarnation: u32,
    /// Any of its accounts was ever slashed.
    slashed: bool,
}

enum Kind {
    /// The next job of the workload is submitted.
    Arrival,
    /// The coordinator's answer reaches the provider.
    Assign {
        p: u32,
        epoch: u32,
        tasks: Vec<TaskId>,
    },
    /// A slot finishes a task.
    Done {
        p: u32,
        epoch: u32,
        task: TaskId,
        started: Time,
    },
    /// A provider's report and next fetch reach the coordinator.
    Exchange {
        p: u32,
        epoch: u32,
        reports: Vec<TaskReport>,
    },
    Crash {
        p: u32,
        epoch: u32,
    },
    Leave {
        p: u32,
        epoch: u32,
    },
    /// The heartbeat timeout after a crash.
    Lost {
        p: u32,
        epoch: u32,
    },
    Rejoin {
        p: u32,
    },
    /// A new provider arrives.
    Join,
    /// The leader's timer: overdue runs, expired jobs.
    Timer,
    /// Look again at parked providers (a hold may have lapsed).
    Wake,
    /// Rules 5: the leader reveals its beacon secret for the results waiting on it.
    Beacon,
}

/// Rules 5: how long after a trusted lone result arrives the leader reveals the beacon that
/// decides its audit (the coordinator's timer ticks about this often).
const BEACON_MS: Time = 1_000;

/// What the simulation remembers of a job (indexed by job id − 1).
struct JobMeta {
    submitted: Time,
    mean_fuel: f64,
    /// Rules 19: the job completed and was reopened to correct a result (its latency was
    /// counted at its first completion).
    corrected: bool,
}

pub struct World<'a> {
    cfg: &'a SimConfig,
    /// What each class does, resolved from its configuration.
    plays: Vec<Play>,
    pub state: State,
    /// Separate streams, so that changing one part (say, the crash rate) leaves the others'
    /// draws — the fleet, the workload — exactly as they were.
    fleet_draw: Draw,
    work_draw: Draw,
    churn_draw: Draw,
    queue: EventQueue<Kind>,
    now: Time,
    provs: Vec<Prov>,
    parked: VecDeque<u32>,
    /// The providers that were trusted when they parked (some may be parked no more): only
    /// they are asked when nothing but re-executions waits (rules 6 offers those to trusted
    /// providers only), so a big idle fleet is not walked for each.
    parked_trusted: VecDeque<u32>,
    jobs: Vec<JobMeta>,
    requester_nonce: Vec<u64>,
    bank_nonce: u64,
    tasks_submitted: u64,
    jobs_submitted: u64,
    jobs_finished: u64,
    last_submit: Time,
    wake_scheduled: bool,
    beacon_scheduled: bool,
    /// The simulated leader's beacon seed (never public: the adversary cannot see it).
    beacon_seed: [u8; 32],
    work_added: bool,
    alive_slots: u64,
    pub metrics: Metrics,
    pub events: u64,
    progress: ProgressBar,
}

/// Fuel per millisecond per benchmark point (see `engine::schedule`).
const FUEL_PER_POINT: u64 = engine::schedule::FUEL_PER_BENCHMARK_POINT;

impl<'a> World<'a> {
    pub fn new(cfg: &'a SimConfig, progress: bool) -> Result<World<'a>, SimError> {
        let n = &cfg.network;
        let mut genesis = Genesis::dev(TREASURY);
        genesis.params.chain_id = "gridmint-sim".into();
        genesis.params.fee_bps = n.fee_bps;
        genesis.params.min_stake = tokens(n.min_stake);
        genesis.params.slash.fraction_bps = n.slash_bps;
        genesis.params.faucet = None;
        genesis.verification = n.verification.clone();
        genesis.rules = n.rules;
        // The simulator models no fee per logged action (rules 8): its economics are those of
        // the work, and a fee would only move a few base units per action to the treasury.
        genesis.action_fee = 0;
        // Nor storage deposits (rules 10): they are returned whole, and it models no blobs.
        // But a job's storage is kept for the development network's retention time after it
        // completes, which (rules 19) is how long its results can be corrected: jobs are
        // submitted with a claim, at no deposit, and released by the leader when it ends.
        genesis.storage = (n.rules >= 10).then(|| engine::StorageParams {
            deposit_per_kib: 0,
            ..engine::StorageParams::dev()
        });
        genesis.engine.schedule = n.schedule();
        genesis.validators.set.validators = (0..n.validators)
            .map(|v| engine::Validator {
                account: provider_id(v),
                power: 1,
                address: format!("http://validator-{v}.sim"),
                stake: 0,
            })
            .collect();
        // The bank funds joining providers; requesters can pay for everything they submit.
        let plenty: u128 = 1 << 100;
        genesis.allocations.insert(BANK, plenty);
        for r in 0..cfg.workload.requesters {
            genesis.allocations.insert(requester_id(r), plenty);
        }
        let state = State::from_genesis(&genesis).map_err(SimError::Config)?;
        let bar = if progress {
            let bar = ProgressBar::new(cfg.workload.tasks);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {msg} [{bar:30}] {pos}/{len} tasks settled ({elapsed}, eta {eta})",
                )
                .map_err(|e| SimError::Config(e.to_string()))?
                .progress_chars("=> "),
            );
            bar
        } else {
            ProgressBar::hidden()
        };
        Ok(World {
            cfg,
            plays: cfg.classes.iter().map(|c| c.play()).collect(),
            state,
            fleet_draw: Draw::new(cfg.seed),
            work_draw: Draw::new(cfg.seed ^ 0x574F_524B),
            churn_draw: Draw::new(cfg.seed ^ 0x4348_5552),
            queue: EventQueue::new(),
            now: 0,
            provs: Vec::new(),
            parked: VecDeque::new(),
            parked_trusted: VecDeque::new(),
            jobs: Vec::new(),
            requester_nonce: vec![0; cfg.workload.requesters as usize],
            bank_nonce: 0,
            tasks_submitted: 0,
            jobs_submitted: 0,
            jobs_finished: 0,
            last_submit: 0,
            wake_scheduled: false,
            beacon_scheduled: false,
            beacon_seed: Hash::of(&cfg.seed.to_le_bytes()).0,
            work_added: false,
            alive_slots: 0,
            metrics: Metrics::new(cfg.classes.len()),
            events: 0,
            progress: bar,
        })
    }

    fn at(&mut self, time: Time, kind: Kind) {
        self.queue.push(time, kind);
    }

    fn apply(&mut self, input: Input) -> Result<Vec<Event>, SimError> {
        let entry = Entry {
            time: self.now,
            input,
        };
        match self.state.apply(&entry) {
            Ok(events) => {
                self.metrics.inputs += 1;
                self.absorb(&events);
                Ok(events)
            }
            Err(rejection) => Err(SimError::Rejected {
                at_ms: self.now,
                input: format!("{:?}", entry.input).chars().take(200).collect(),
                rejection,
            }),
        }
    }

    fn signed_request(
        signer: AccountId,
        nonce: &mut u64,
        body: engine::Request,
    ) -> Signed<engine::Request> {
        *nonce += 1;
        Signed {
            signer,
            nonce: *nonce,
            body,
            signature: Sig([0; 64]),
        }
    }

    fn signed(signer: AccountId, nonce: &mut u64, body: Action) -> Input {
        *nonce += 1;
        Input::Signed(Signed {
            signer,
            nonce: *nonce,
            body,
            signature: Sig([0; 64]),
        })
    }

    fn bank(&mut self, body: Action) -> Result<(), SimError> {
        let input = Self::signed(BANK, &mut self.bank_nonce, body);
        self.apply(input).map(|_| ())
    }

    fn as_provider(&mut self, p: u32, body: Action) -> Result<Vec<Event>, SimError> {
        let id = self.id(p);
        let prov = &mut self.provs[p as usize];
        let input = Self::signed(id, &mut prov.nonce, body);
        self.apply(input)
    }

    /// Machine `p`'s current account.
    pub fn id(&self, p: u32) -> AccountId {
        provider_key(p, self.provs[p as usize].incarnation)
    }

    /// Runs to the end: every job finished, or `max_time_s`.
    pub fn run(&mut self) -> Result<(), SimError> {
        for _ in 0..self.cfg.providers.count {
            self.join()?;
        }
        let c = &self.cfg.churn;
        if c.join_per_hour > 0.0 {
            let mean = 3_600_000.0 / (c.join_per_hour * self.cfg.providers.count as f64);
            let t = self.churn_draw.exp(mean) as Time;
            self.at(t, Kind::Join);
        }
        self.at(0, Kind::Arrival);
        self.at(self.cfg.network.timer_s * 1000, Kind::Timer);
        // The leader commits to its first beacon secret before any result arrives.
        self.beacon()?;
        let limit = match self.cfg.max_time_s {
            0 => Time::MAX,
            s => s.saturating_mul(1000),
        };
        while let Some((time, kind)) = self.queue.pop() {
            if time > limit {
                self.now = limit;
                break;
            }
            self.now = time;
            self.events += 1;
            self.handle(kind)?;
            if !self.metrics.restake.is_empty() {
                self.restake()?;
            }
            if self.work_added {
                self.work_added = false;
                self.wake()?;
            }
            if self.events.is_multiple_of(4096) {
                self.progress
                    .set_message(format!("t={:.0}s", self.now as f64 / 1000.0));
            }
            if self.finished() {
                break;
            }
        }
        self.metrics.timeline.capacity(self.now, self.alive_slots);
        self.metrics.end = self.now;
        self.progress.finish_and_clear();
        Ok(())
    }

    fn finished(&self) -> bool {
        self.tasks_submitted >= self.cfg.workload.tasks && self.jobs_finished == self.jobs_submitted
    }

    fn handle(&mut self, kind: Kind) -> Result<(), SimError> {
        match kind {
            Kind::Arrival => self.arrival(),
            Kind::Assign { p, epoch, tasks } => {
                self.assigned(p, epoch, tasks);
                Ok(())
            }
            Kind::Done {
                p,
                epoch,
                task,
                started,
            } => {
                self.done(p, epoch, task, started);
                Ok(())
            }
            Kind::Exchange { p, epoch, reports } => self.exchange(p, epoch, reports),
            Kind::Crash { p, epoch } => self.crash(p, epoch),
            Kind::Leave { p, epoch } => self.leave(p, epoch),
            Kind::Lost { p, epoch } => {
                let prov = &self.provs[p as usize];
                if prov.epoch == epoch && !prov.alive {
                    let provider = self.id(p);
                    if self.cfg.network.validators == 0 {
                        self.apply(Input::Leader(LeaderCommand::ProviderLost { provider }))?;
                    } else {
                        // Every validator attests the silence (signatures are the shell's
                        // concern; the engine checks who signed and when).
                        let attestations = (0..self.cfg.network.validators)
                            .map(|v| Signed {
                                signer: provider_id(v),
                                nonce: 0,
                                body: engine::Silence {
                                    provider,
                                    at: self.now,
                                },
                                signature: Sig([0; 64]),
                            })
                            .collect();
                        self.apply(Input::Lost(Box::new(engine::Lost {
                            provider,
                            attestations,
                        })))?;
                    }
                }
                Ok(())
            }
            Kind::Rejoin { p } => self.rejoin(p),
            Kind::Join => {
                self.join()?;
                let mean =
                    3_600_000.0 / (self.cfg.churn.join_per_hour * self.cfg.providers.count as f64);
                let t = self.now + self.churn_draw.exp(mean).max(1.0) as Time;
                self.at(t, Kind::Join);
                Ok(())
            }
            Kind::Timer => self.timer(),
            Kind::Beacon => {
                self.beacon_scheduled = false;
                self.beacon()
            }
            Kind::Wake => {
                self.wake_scheduled = false;
                self.work_added = true;
                Ok(())
            }
        }
    }

    // ---- requesters ----------------------------------------------------------------------

    fn arrival(&mut self) -> Result<(), SimError> {
        let w = &self.cfg.workload;
        let left = w.tasks - self.tasks_submitted;
        if left == 0 {
            return Ok(());
        }
        let count = self
            .work_draw
            .range(w.tasks_per_job.min, w.tasks_per_job.max)
            .min(left);
        // The fuel limit (1.5 × the mean) stays within the engine's bound.
        let most = self.state.config.max_fuel as f64 / 1.5 - 1.0;
        let mean_fuel = self
            .work_draw
            .log_normal(w.fuel.median, w.fuel.sigma)
            .clamp(1.0, most);
        let owner = (self.jobs_submitted % u64::from(w.requesters)) as u32;
        let redundancy = match w.policy {
            PolicyConfig::Adaptive => Redundancy::Adaptive,
            // m-first voting collects results until m agree; with two answers (the right one
            // and the colluders') that takes at most 2m − 1, with several wrong ones more.
            PolicyConfig::Voting { m } => Redundancy::Fixed {
                quorum: m,
                max_results: engine::MAX_RESULTS,
            },
            PolicyConfig::Single => Redundancy::Fixed {
                quorum: 1,
                max_results: 1,
            },
        };
        let spec = JobSpec {
            module: MODULE,
            tasks: vec![TaskSpec::default(); count as usize],
            limits: Limits {
                fuel: ((mean_fuel * 1.5).ceil() as u64 + 1).min(self.state.config.max_fuel),
                memory_bytes: w.memory_bytes,
                wall_ms: self.cfg.workload.deadline_s.saturating_mul(1000).max(1000),
            },
            deadline: self.now + w.deadline_s * 1000,
            max_price: u128::from(w.max_price),
            output: OutputSource::Stdout,
            aggregate: Aggregate::Concat,
            redundancy,
            requirements: Requirements::default(),
        };
        let nonce = &mut self.requester_nonce[owner as usize];
        let action = match &self.state.storage.params {
            Some(params) => Action::SubmitJobWithStorage {
                spec,
                storage: engine::StorageClaim {
                    input_bytes: 0,
                    output_bytes: params.max_output_bytes,
                },
            },
            None => Action::SubmitJob(spec),
        };
        let input = Self::signed(requester_id(owner), nonce, action);
        self.apply(input)?;
        self.jobs.push(JobMeta {
            submitted: self.now,
            mean_fuel,
            corrected: false,
        });
        self.jobs_submitted += 1;
        self.tasks_submitted += count;
        self.last_submit = self.now;
        if self.tasks_submitted < w.tasks {
            let gap = (self.work_draw.exp(w.mean_interarrival_s * 1000.0)) as Time;
            self.at(self.now + gap, Kind::Arrival);
        }
        Ok(())
    }

    /// The fuel task `id` burns: within ±50% of its job's mean, fixed per task.
    fn task_fuel(&self, id: TaskId) -> u64 {
        let mean = self
            .jobs
            .get((id.job - 1) as usize)
            .map_or(1.0, |j| j.mean_fuel);
        let u = keyed_unit(self.cfg.seed, (id.job << 32) | u64::from(id.index));
        (mean * (0.5 + u)).max(1.0) as u64
    }

    // ---- providers -----------------------------------------------------------------------

    fn join(&mut self) -> Result<(), SimError> {
        let cfg = self.cfg;
        let class = self
            .fleet_draw
            .weighted(&cfg.classes.iter().map(|c| c.share).collect::<Vec<_>>());
        let region = self
            .fleet_draw
            .weighted(&cfg.regions.iter().map(|r| r.share).collect::<Vec<_>>());
        let p = u32::try_from(self.provs.len())
            .map_err(|_| SimError::Config("too many providers".into()))?;
        // A validator's machine is honest (the class is still drawn, so the draws that follow
        // are the same with or without validators).
        let class = if p < cfg.network.validators {
            cfg.classes
                .iter()
                .position(|c| c.behaviour == crate::config::Behaviour::Honest)
                .unwrap_or(class)
        } else {
            class
        };
        let c = &cfg.classes[class];
        let slots = c.slots[self.fleet_draw.range(0, c.slots.len() as u64 - 1) as usize];
        let slots = match cfg.network.validator_slots {
            n if n > 0 && p < cfg.network.validators => n,
            _ => slots,
        };
        let score = self
            .fleet_draw
            .log_normal(c.speed.median, c.speed.sigma)
            .max(1.0) as u64;
        self.provs.push(Prov {
            class: class as u16,
            region: region as u16,
            slots,
            score,
            alive: true,
            gone: false,
            epoch: 0,
            nonce: 0,
            queue: VecDeque::new(),
            busy: 0,
            in_flight: false,
            parked: false,
            listed_trusted: false,
            pending: Vec::new(),
            down_at: 0,
            incarnation: 0,
            slashed: false,
        });
        // A validator's machine is counted apart from its class: it confirms newcomers from
        // the first round and earns far more than any one provider of the fleet.
        if p >= cfg.network.validators {
            self.metrics.class_providers[class] += 1;
        }
        self.enter(p)
    }

    /// Machine `p`'s current account is funded, bonds its stake, registers and fetches work.
    fn enter(&mut self, p: u32) -> Result<(), SimError> {
        let id = self.id(p);
        let stake = tokens(self.cfg.network.stake);
        self.bank(Action::Transfer {
            to: id,
            amount: stake,
        })?;
        self.as_provider(p, Action::Stake { amount: stake })?;
        let spec = self.spec(p);
        self.as_provider(p, Action::RegisterProvider(spec))?;
        self.came_up(p);
        Ok(())
    }

    fn spec(&self, p: u32) -> ProviderSpec {
        let prov = &self.provs[p as usize];
        let c = &self.cfg.classes[prov.class as usize];
        ProviderSpec {
            slots: prov.slots,
            cores: prov.slots,
            memory_bytes: 16 << 30,
            gpu: None,
            benchmark_score: prov.score,
            region: self.cfg.regions[prov.region as usize].name.clone(),
            price_per_fuel: u128::from(c.price),
            operator: None,
        }
    }

    /// A provider is up (joined or rejoined): count its slots, draw its fate, fetch work.
    fn came_up(&mut self, p: u32) {
        let slots = u64::from(self.provs[p as usize].slots);
        self.metrics.timeline.capacity(self.now, self.alive_slots);
        self.alive_slots += slots;
        let epoch = self.provs[p as usize].epoch;
        let c = &self.cfg.churn;
        if c.crash_per_hour > 0.0 {
            let t = self.now + self.churn_draw.exp(3_600_000.0 / c.crash_per_hour) as Time;
            self.at(t, Kind::Crash { p, epoch });
        }
        if c.leave_per_hour > 0.0 {
            let t = self.now + self.churn_draw.exp(3_600_000.0 / c.leave_per_hour) as Time;
            self.at(t, Kind::Leave { p, epoch });
        }
        self.send(p, Vec::new());
    }

    fn half_rtt(&self, p: u32) -> Time {
        let region = self.provs[p as usize].region as usize;
        self.cfg.regions[region].rtt_ms / 2
    }

    /// The provider sends an exchange: its reports and a fetch.
    fn send(&mut self, p: u32, reports: Vec<TaskReport>) {
        let t = self.now + self.half_rtt(p);
        let prov = &mut self.provs[p as usize];
        prov.in_flight = true;
        let epoch = prov.epoch;
        self.at(t, Kind::Exchange { p, epoch, reports });
    }

    fn assigned(&mut self, p: u32, epoch: u32, tasks: Vec<TaskId>) {
        let prov = &mut self.provs[p as usize];
        if prov.epoch != epoch || !prov.alive {
            return;
        }
        prov.in_flight = false;
        prov.queue.extend(tasks);
        self.start(p);
        let prov = &mut self.provs[p as usize];
        if !prov.pending.is_empty() {
            let reports = std::mem::take(&mut prov.pending);
            self.send(p, reports);
        }
    }

    /// Starts queued tasks on free slots.
    fn start(&mut self, p: u32) {
        loop {
            let prov = &mut self.provs[p as usize];
            if prov.busy >= prov.slots {
                return;
            }
            let Some(task) = prov.queue.pop_front() else {
                return;
            };
            prov.busy += 1;
            let per_ms = prov.score.saturating_mul(FUEL_PER_POINT).max(1);
            let epoch = prov.epoch;
            let fuel = self.task_fuel(task);
            let run_ms = fuel.div_ceil(per_ms).max(1);
            let started = self.now;
            self.at(
                self.now + run_ms,
                Kind::Done {
                    p,
                    epoch,
                    task,
                    started,
                },
            );
        }
    }

    fn done(&mut self, p: u32, epoch: u32, task: TaskId, started: Time) {
        let now = self.now;
        let prov = &mut self.provs[p as usize];
        if prov.epoch != epoch || !prov.alive {
            // It crashed or left while running this: the slot was busy until then.
            let end = prov.down_at.clamp(started, now);
            self.metrics.timeline.busy(started, end);
            return;
        }
        self.metrics.timeline.busy(started, now);
        prov.busy -= 1;
        let play = self.plays[prov.class as usize];
        let id = self.id(p);
        // The colluders' strategies decide on what is public: the engine state.
        let (wrong, collude) = match play {
            Play::Honest | Play::Failing => (false, true),
            Play::Wrong { rate, collude } => (
                keyed_unit(
                    self.cfg.seed ^ 0xBAD,
                    (u64::from(p) << 40) ^ (task.job << 20) ^ u64::from(task.index),
                ) < rate,
                collude,
            ),
            Play::Predicting => (
                assigned_at(&self.state, task, &id)
                    .is_some_and(|at| adversary_predicts_no_audit(&self.state, task, &id, at)),
                true,
            ),
            Play::Turncoat => (self.state.is_trusted(&id), true),
            Play::Sybil => (true, true),
        };
        let output_hash = if wrong {
            wrong_hash(task, if collude { None } else { Some(p) })
        } else {
            correct_hash(task)
        };
        let fuel_used = self.task_fuel(task);
        let outcome = if play == Play::Failing {
            TaskOutcome::Exit(1)
        } else {
            TaskOutcome::Success
        };
        let prov = &mut self.provs[p as usize];
        prov.pending.push(TaskReport {
            task,
            outcome,
            output_hash,
            output_size: 8,
            fuel_used,
        });
        self.start(p);
        let prov = &mut self.provs[p as usize];
        if !prov.in_flight {
            let reports = std::mem::take(&mut prov.pending);
            self.send(p, reports);
        }
    }

    /// The coordinator applies a provider's report and answers its fetch (or parks it).
    fn exchange(&mut self, p: u32, epoch: u32, reports: Vec<TaskReport>) -> Result<(), SimError> {
        let prov = &self.provs[p as usize];
        if prov.epoch != epoch || !prov.alive {
            return Ok(());
        }
        if !reports.is_empty() {
            self.as_provider(p, Action::ReportResults(reports))?;
        }
        if !self.state.audits.awaiting.is_empty() && !self.beacon_scheduled {
            self.beacon_scheduled = true;
            self.at(self.now + BEACON_MS, Kind::Beacon);
        }
        let idle = self.idle_sample();
        let tasks = self.pick(p, &idle)?;
        if tasks.is_empty() {
            let holds_none = self
                .state
                .providers
                .get(&self.id(p))
                .is_none_or(|e| e.running.is_empty());
            if holds_none && self.provs[p as usize].pending.is_empty() {
                self.provs[p as usize].parked = true;
                self.parked.push_back(p);
                self.list_trusted(p);
                return Ok(());
            }
        }
        let t = self.now + self.half_rtt(p);
        self.at(t, Kind::Assign { p, epoch, tasks });
        Ok(())
    }

    /// Up to 64 parked providers: the waiting providers the hold rule compares against. None
    /// once the newest job is past `hold_ms`: no job can be held then, and the engine would not
    /// look at them.
    fn idle_sample(&self) -> Vec<AccountId> {
        if self.now >= self.last_submit + self.state.config.schedule.hold_ms {
            return Vec::new();
        }
        self.parked
            .iter()
            .filter(|p| self.provs[**p as usize].parked)
            .take(64)
            .map(|p| self.id(*p))
            .collect()
    }

    /// The engine's choice for `p`, logged as `AssignTasks`.
    fn pick(&mut self, p: u32, idle: &[AccountId]) -> Result<Vec<TaskId>, SimError> {
        let dispatch = engine::Dispatch {
            now: self.now,
            cached: &|_, _| false,
            idle,
        };
        let id = self.id(p);
        let tasks = self.state.pick_tasks(id, u32::MAX, &dispatch);
        if tasks.is_empty() {
            return Ok(tasks);
        }
        if self.cfg.network.validators == 0 {
            self.apply(Input::Leader(LeaderCommand::AssignTasks {
                provider: id,
                tasks: tasks.clone(),
            }))?;
            return Ok(tasks);
        }
        // A validator set assigns only on the provider's signed fetch: the engine picks again,
        // from the same state with the same waiting providers, so it picks the same tasks.
        let prov = &mut self.provs[p as usize];
        let fetch = Self::signed_request(
            id,
            &mut prov.nonce,
            engine::Request::Fetch {
                max: u32::MAX,
                wait_ms: 0,
                held: Vec::new(),
                cached: Vec::new(),
            },
        );
        let waiting = idle
            .iter()
            .filter(|q| **q != id)
            .map(|q| engine::Waiting {
                provider: *q,
                cached: Vec::new(),
            })
            .collect();
        let events = self.apply(Input::Fetch(Box::new(engine::WorkFetch {
            fetches: vec![fetch],
            waiting,
        })))?;
        Ok(events
            .into_iter()
            .filter_map(|e| match e {
                Event::TasksAssigned { tasks, .. } => Some(tasks),
                _ => None,
            })
            .flatten()
            .collect())
    }

    /// Work was queued: offer it to parked providers, oldest first, until the queue is empty or
    /// every parked provider has been asked once.
    fn wake(&mut self) -> Result<(), SimError> {
        if self.state.queue.is_empty()
            && !(self.state.recheck.is_empty() && self.state.disputes.is_empty())
        {
            return self.wake_trusted();
        }
        if self.state.queue.is_empty() || self.parked.is_empty() {
            return Ok(());
        }
        let idle = self.idle_sample();
        let mut tries = self.parked.len();
        while tries > 0 && !self.state.queue.is_empty() {
            tries -= 1;
            let Some(p) = self.parked.pop_front() else {
                break;
            };
            let prov = &self.provs[p as usize];
            if !prov.parked || !prov.alive {
                continue;
            }
            if !self.state.has_min_stake(&self.id(p)) {
                // Slashed out of work for good: stop asking.
                self.provs[p as usize].parked = false;
                continue;
            }
            let tasks = self.pick(p, &idle)?;
            if tasks.is_empty() {
                self.parked.push_back(p);
                continue;
            }
            self.unpark(p, tasks);
        }
        // A young job may be held for a better provider: look again when holds lapse.
        let hold = self.state.config.schedule.hold_ms;
        if !self.state.queue.is_empty()
            && !self.parked.is_empty()
            && !self.wake_scheduled
            && self.now < self.last_submit + hold
        {
            self.wake_scheduled = true;
            self.at(self.last_submit + hold, Kind::Wake);
        }
        Ok(())
    }

    /// Nothing but re-executions waits (under rules 6 some are offered to trusted providers
    /// only): offer them to the parked providers that were trusted when they parked.
    fn wake_trusted(&mut self) -> Result<(), SimError> {
        let idle = self.idle_sample();
        let mut tries = self.parked_trusted.len();
        while tries > 0 && !(self.state.recheck.is_empty() && self.state.disputes.is_empty()) {
            tries -= 1;
            let Some(p) = self.parked_trusted.pop_front() else {
                break;
            };
            let prov = &mut self.provs[p as usize];
            prov.listed_trusted = false;
            if !prov.parked || !prov.alive || !self.state.has_min_stake(&self.id(p)) {
                continue;
            }
            let tasks = self.pick(p, &idle)?;
            if tasks.is_empty() {
                self.list_trusted(p);
                continue;
            }
            self.unpark(p, tasks);
        }
        Ok(())
    }

    /// Lists parked provider `p` among those asked for work only trusted providers may take,
    /// if it is trusted now (once: a provider that became trusted while parked is listed when
    /// its result is accepted).
    fn list_trusted(&mut self, p: u32) {
        let prov = &self.provs[p as usize];
        if prov.parked && !prov.listed_trusted && self.state.is_trusted(&self.id(p)) {
            self.provs[p as usize].listed_trusted = true;
            self.parked_trusted.push_back(p);
        }
    }

    /// Parked provider `p` was given `tasks`: the answer to its long poll is on its way.
    fn unpark(&mut self, p: u32, tasks: Vec<TaskId>) {
        let prov = &mut self.provs[p as usize];
        prov.parked = false;
        let epoch = prov.epoch;
        let t = self.now + self.half_rtt(p);
        self.at(t, Kind::Assign { p, epoch, tasks });
    }

    fn went_down(&mut self, p: u32) {
        let now = self.now;
        let slots = u64::from(self.provs[p as usize].slots);
        self.metrics.timeline.capacity(now, self.alive_slots);
        self.alive_slots -= slots;
        let prov = &mut self.provs[p as usize];
        prov.alive = false;
        prov.epoch += 1;
        prov.down_at = now;
        prov.queue.clear();
        prov.pending.clear();
        prov.busy = 0;
        prov.in_flight = false;
        prov.parked = false;
    }

    fn crash(&mut self, p: u32, epoch: u32) -> Result<(), SimError> {
        let prov = &self.provs[p as usize];
        if prov.epoch != epoch || !prov.alive {
            return Ok(());
        }
        self.went_down(p);
        self.metrics.crashes += 1;
        let epoch = self.provs[p as usize].epoch;
        let timeout = self.cfg.network.heartbeat_timeout_s * 1000;
        self.at(self.now + timeout, Kind::Lost { p, epoch });
        let back = self.cfg.churn.rejoin_after_s;
        if back > 0 {
            self.at(self.now + back * 1000, Kind::Rejoin { p });
        }
        Ok(())
    }

    fn leave(&mut self, p: u32, epoch: u32) -> Result<(), SimError> {
        let prov = &self.provs[p as usize];
        if prov.epoch != epoch || !prov.alive {
            return Ok(());
        }
        self.as_provider(p, Action::LeaveProvider)?;
        self.went_down(p);
        self.provs[p as usize].gone = true;
        Ok(())
    }

    fn rejoin(&mut self, p: u32) -> Result<(), SimError> {
        let prov = &mut self.provs[p as usize];
        if prov.alive || prov.gone {
            return Ok(());
        }
        prov.alive = true;
        prov.epoch += 1;
        let spec = self.spec(p);
        self.as_provider(p, Action::RegisterProvider(spec))?;
        self.came_up(p);
        Ok(())
    }

    // ---- the leader's timer and the bookkeeping -----------------------------------------

    /// Rules 5: the leader's beacon entry, when one is due (a commitment, or a reveal for the
    /// results waiting on it).
    fn beacon(&mut self) -> Result<(), SimError> {
        if let Some(command) = self.state.beacon_due(&self.beacon_seed) {
            self.apply(Input::Leader(command))?;
            self.work_added = true;
        }
        Ok(())
    }

    fn timer(&mut self) -> Result<(), SimError> {
        for (provider, tasks) in self.state.overdue_runs(self.now) {
            self.apply(Input::Leader(LeaderCommand::TimeOutRuns {
                provider,
                tasks,
            }))?;
        }
        // Rules 3: a speculative replica of each straggler while nothing else is queued.
        let stragglers = self.state.stragglers(self.now);
        if !stragglers.is_empty() {
            self.apply(Input::Leader(LeaderCommand::Speculate {
                tasks: stragglers,
            }))?;
        }
        for job in self.state.expired_jobs(self.now) {
            self.apply(Input::Leader(LeaderCommand::ExpireJob { job }))?;
        }
        let released = self.state.releasable_storage(self.now);
        if !released.is_empty() {
            self.apply(Input::Leader(LeaderCommand::ReleaseStorage {
                jobs: released,
            }))?;
        }
        self.metrics.sample(self.now);
        self.work_added = true;
        let every = self.cfg.network.timer_s * 1000;
        self.at(self.now + every, Kind::Timer);
        Ok(())
    }

    /// Reads the engine's events into the metrics and notes when work was queued.
    fn absorb(&mut self, events: &[Event]) {
        let now = self.now;
        for event in events {
            match event {
                Event::TaskAccepted {
                    task,
                    output_hash,
                    providers,
                    ..
                } => {
                    // A provider parked while new may have just become trusted.
                    for p in providers.iter().filter_map(provider_index) {
                        self.list_trusted(p as u32);
                    }
                    let submitted = self
                        .jobs
                        .get((task.job - 1) as usize)
                        .map_or(now, |j| j.submitted);
                    self.metrics.accepted(
                        *task,
                        now - submitted,
                        *output_hash != correct_hash(*task),
                    );
                    self.progress.inc(1);
                }
                Event::TaskFailed { .. } => {
                    self.metrics.tasks_failed += 1;
                    self.progress.inc(1);
                }
                Event::TaskPaid {
                    provider, amount, ..
                } => {
                    if let Some(p) = provider_index(provider)
                        .filter(|p| *p >= self.cfg.network.validators as usize)
                    {
                        let class = self.provs[p].class as usize;
                        self.metrics.class_earned[class] += *amount;
                    }
                }
                Event::Slashed {
                    provider, amount, ..
                } => {
                    if let Some(p) = provider_index(provider) {
                        let class = self.provs[p].class as usize;
                        self.provs[p].slashed = true;
                        self.metrics.class_slashed[class] += *amount;
                        self.metrics.slashes += 1;
                        if self.cfg.network.restake || self.plays[class] == Play::Sybil {
                            self.metrics.restake.push(*provider);
                        }
                    }
                }
                Event::SpotCheck { .. } => self.metrics.spot_checks += 1,
                Event::ResultReopened { task, .. } => self.metrics.reopened(*task),
                Event::JobCompleted { job } => self.job_over(*job, true),
                Event::JobReopened { job, .. } => {
                    self.jobs_finished -= 1;
                    self.metrics.jobs_corrected += 1;
                    if let Some(meta) = self.jobs.get_mut((job - 1) as usize) {
                        meta.corrected = true;
                    }
                    self.work_added = true;
                }
                Event::JobFailed { job, .. } | Event::JobCancelled { job } => {
                    self.job_over(*job, false)
                }
                Event::ReplicasQueued { reason, .. } => {
                    *self
                        .metrics
                        .replicas_queued
                        .entry(reason.clone())
                        .or_default() += 1;
                    self.work_added = true
                }
                Event::JobSubmitted { .. } | Event::TaskAttemptFailed { .. } => {
                    self.work_added = true
                }
                Event::ProviderLost { requeued, .. }
                | Event::ProviderLeft { requeued, .. }
                | Event::ProviderRegistered { requeued, .. }
                    if !requeued.is_empty() =>
                {
                    self.work_added = true
                }
                _ => {}
            }
        }
    }

    fn job_over(&mut self, job: JobId, completed: bool) {
        self.jobs_finished += 1;
        if self
            .jobs
            .get((job - 1) as usize)
            .is_some_and(|j| j.corrected)
        {
            return;
        }
        let submitted = self
            .jobs
            .get((job - 1) as usize)
            .map_or(self.now, |j| j.submitted);
        self.metrics.job_over(self.now - submitted, completed);
    }

    /// Slashed providers bond again from the bank (`network.restake`); a sybil's machine
    /// re-enters under a fresh account instead. What they bond counts as stake bought.
    pub fn restake(&mut self) -> Result<(), SimError> {
        let due = std::mem::take(&mut self.metrics.restake);
        for id in due {
            let Some(p) = provider_index(&id) else {
                continue;
            };
            let p = p as u32;
            if id != self.id(p) {
                // An account a sybil already left, slashed for a result it reported before.
                continue;
            }
            let class = self.provs[p as usize].class as usize;
            if self.plays[class] == Play::Sybil {
                self.reenter(p)?;
                continue;
            }
            let need = self
                .state
                .ledger
                .min_stake
                .saturating_sub(self.state.bonded(&id));
            if need == 0 {
                continue;
            }
            self.bank(Action::Transfer {
                to: id,
                amount: need,
            })?;
            self.as_provider(p, Action::Stake { amount: need })?;
            self.metrics.class_stake_bought[class] += need;
        }
        Ok(())
    }

    /// A slashed sybil's machine leaves under its account (its runs are queued again, what it
    /// holds or has finished is dropped, its remaining stake stays bonded there) and joins again
    /// under a fresh one: new key, fresh stake from the bank, no reputation.
    fn reenter(&mut self, p: u32) -> Result<(), SimError> {
        let prov = &self.provs[p as usize];
        if !prov.alive || prov.gone {
            return Ok(());
        }
        self.as_provider(p, Action::LeaveProvider)?;
        self.went_down(p);
        let prov = &mut self.provs[p as usize];
        prov.alive = true;
        prov.incarnation += 1;
        prov.nonce = 0;
        let class = prov.class as usize;
        self.metrics.class_stake_bought[class] += tokens(self.cfg.network.stake);
        self.metrics.reentries += 1;
        self.enter(p)
    }

    /// Per class: each machine's earnings and slashes at the end (over every account it had),
    /// from the engine's records.
    pub fn provider_earnings(&self) -> Vec<Vec<(u128, u128)>> {
        let mut out = vec![Vec::new(); self.cfg.classes.len()];
        for (i, prov) in self.provs.iter().enumerate() {
            let mut sum: Option<(u128, u128)> = None;
            for k in 0..=prov.incarnation {
                if let Some(e) = self.state.providers.get(&provider_key(i as u32, k)) {
                    let (earned, slashed) = sum.unwrap_or((0, 0));
                    sum = Some((
                        earned.saturating_add(e.stats.earned),
                        slashed.saturating_add(e.stats.slashed),
                    ));
                }
            }
            if let Some(sum) = sum {
                out[prov.class as usize].push(sum);
            }
        }
        out
    }

    /// Per class: machines any of whose accounts was ever slashed.
    pub fn slashed_providers(&self) -> Vec<u64> {
        let mut out = vec![0; self.cfg.classes.len()];
        for prov in self.provs.iter().filter(|p| p.slashed) {
            out[prov.class as usize] += 1;
        }
        out
    }

    pub fn provider_count(&self) -> usize {
        self.provs.len()
    }

    pub fn tasks_submitted(&self) -> u64 {
        self.tasks_submitted
    }

    pub fn jobs_submitted(&self) -> u64 {
        self.jobs_submitted
    }
}
