//! Verification: redundancy policies, quorums, reputation, and what a lost quorum costs.
//!
//! Honest execution is deterministic (the sandbox guarantees it), so honest runs of a task agree
//! exactly on output hash, output size and fuel. Every run of a task is a [`Run`]; results that
//! agree form a group, and a group is accepted once its *weight* reaches the task's threshold:
//!
//! - [`Redundancy::Fixed`]`{ quorum, max_results }`: every result weighs 1, the threshold is
//!   `quorum`, and at most `max_results` successful runs are collected.
//! - [`Redundancy::Adaptive`] (the default): a result weighs [`VerifyParams::trusted_weight`] when
//!   its provider is *trusted* (at least [`VerifyParams::trust_after`] consecutive verified
//!   results since it last lost a quorum) and 1 otherwise; the threshold is
//!   [`VerifyParams::quorum_weight`]. One exception makes trust pay: a trusted provider's result
//!   that is the task's only run is accepted alone, unless the spot-check draw
//!   ([`VerifyParams::spot_check_bps`]) picks it for re-execution.
//!
//! After every change to a task (a replica assigned, a result or failure reported, a provider
//! lost) [`State::settle`] either accepts a group or keeps enough replicas queued for a quorum
//! still to form, counting running replicas as if they will agree with the leading group and
//! queued ones as weighing 1. When no quorum can form any more (`max_results` reached) the task
//! fails with a reason that says so.
//!
//! Accepting a group pays its members *one* execution, shared equally (each gets `1/m` of what it
//! would be paid alone), and every result that disagrees is rejected: not paid, its provider
//! slashed through [`State::slash`] with the evidence, and its reputation cut.

use crate::command::{Event, Rejection};
use crate::ledger::{BPS, SlashEvidence};
use crate::state::{JobStatus, Provider, State, TaskResult, TaskState};
use crate::types::{AccountId, Hash, JobId, Redundancy, TaskId, TaskOutcome, Time};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The network's verification rules, fixed at genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct VerifyParams {
    /// Consecutive verified results after which a provider is trusted (BOINC's adaptive
    /// replication uses the same idea).
    pub trust_after: u32,
    /// Share of a trusted provider's lone results re-executed anyway, in basis points.
    pub spot_check_bps: u32,
    /// Weight of matching results a task needs under the adaptive policy.
    pub quorum_weight: u32,
    /// Weight of a trusted provider's result (a new provider's weighs 1).
    pub trusted_weight: u32,
    /// Most successful runs one task may collect under the adaptive policy.
    pub max_results: u32,
}

impl Default for VerifyParams {
    /// Trust after 5 verified results in a row; 10% spot checks; a quorum weighs 3, so three new
    /// providers, or a trusted one and a new one, must agree — two colluding newcomers never
    /// suffice; at most 7 results per task.
    fn default() -> Self {
        VerifyParams {
            trust_after: 5,
            spot_check_bps: 1_000,
            quorum_weight: 3,
            trusted_weight: 2,
            max_results: 7,
        }
    }
}

impl VerifyParams {
    /// Checks that the rules make sense; the message names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        if self.spot_check_bps > BPS {
            return Err(format!(
                "verification.spot_check_bps {} is above {BPS}",
                self.spot_check_bps
            ));
        }
        if self.quorum_weight == 0 || self.trusted_weight == 0 {
            return Err("verification.quorum_weight and trusted_weight must be positive".into());
        }
        if self.max_results == 0 || self.max_results > MAX_RESULTS {
            return Err(format!(
                "verification.max_results must be between 1 and {MAX_RESULTS}"
            ));
        }
        Ok(())
    }
}

/// The most successful runs any policy may collect for one task.
pub const MAX_RESULTS: u32 = 32;
/// Reputation scores run from 0 to this.
pub const MAX_SCORE: u32 = 1_000;

/// A provider's standing, changed only by the rules in this module.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reputation {
    /// 0 to [`MAX_SCORE`]: each verified result closes a tenth of the gap to the maximum; each
    /// lost quorum divides it by four.
    pub score: u32,
    /// Verified results since the provider last lost a quorum.
    pub streak: u32,
    /// Results confirmed by matching results of other providers.
    pub verified: u64,
    /// Results accepted without re-execution (trusted and not spot-checked, or a job that asked
    /// for no redundancy).
    pub accepted_alone: u64,
    /// Results that lost a quorum.
    pub rejected: u64,
}

/// One run of a task on one provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Run {
    pub provider: AccountId,
    pub started: Time,
    /// When the run times out if its provider has not reported: the wall limit for each task
    /// queued ahead of it per slot, plus `timeout_grace_ms`.
    pub deadline: Time,
    pub outcome: RunOutcome,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Running,
    /// A successful run's signed result, and what it weighs: its provider's credibility when it
    /// arrived. Frozen then, so that a task's standing changes only through inputs about the
    /// task itself.
    Returned {
        output_hash: Hash,
        output_size: u64,
        fuel_used: u64,
        weight: u32,
    },
    /// The run ended in failure (the reason is the task's `last_error`).
    Failed,
    /// The provider was lost or left while running it.
    Abandoned,
    /// The task was settled (or its job ended) while this run was still going.
    Cancelled,
    /// Rules 3: the run ended in a failure the sandbox reproduces exactly (see [`failure_key`]),
    /// with the fuel it used and what the report weighs. Verified like a result: it groups
    /// with matching failures in the tally, and loses (and is slashed) when another result is
    /// accepted.
    Failure {
        outcome: TaskOutcome,
        fuel_used: u64,
        weight: u32,
    },
    /// Rules 11: a run that exited with a status other than 0 that its job takes as an answer
    /// (see [`crate::answers`]): a result like [`RunOutcome::Returned`], which agrees only with
    /// runs that exited with the same status.
    Answered {
        status: i32,
        output_hash: Hash,
        output_size: u64,
        fuel_used: u64,
        weight: u32,
    },
}

/// The longest trap message kept in a [`RunOutcome::Failure`].
pub const FAILURE_MESSAGE_MAX: usize = 200;

/// Rules 3: what a failure agrees on when the sandbox reproduces it exactly on every honest
/// provider — an exit status, a trap, running out of fuel, the memory limit, too much output —
/// and that ran guest code (`fuel_used > 0`). `None` for a success, for a wall-clock timeout
/// (it depends on the machine), and for a failure before the guest ran (a download that failed,
/// a host out of resources: `fuel_used == 0`), which stay unverified attempts. A trap's message is
/// not part of the key (it may differ between sandbox versions); the fuel at which it happened
/// is.
pub fn failure_key(outcome: &TaskOutcome, fuel_used: u64) -> Option<Hash> {
    if fuel_used == 0 {
        return None;
    }
    let what = match outcome {
        TaskOutcome::Success | TaskOutcome::Timeout => return None,
        TaskOutcome::Exit(code) => format!("exit {code}"),
        TaskOutcome::Trap(_) => "trap".into(),
        TaskOutcome::OutOfFuel => "out of fuel".into(),
        TaskOutcome::MemoryLimit => "memory limit".into(),
        TaskOutcome::OutputTooLarge => "output too large".into(),
    };
    Some(Hash::of(format!("gridmint/failure/v1/{what}").as_bytes()))
}

/// `outcome` as a failed run keeps it: a trap's message cut to [`FAILURE_MESSAGE_MAX`] bytes.
fn kept(outcome: &TaskOutcome) -> TaskOutcome {
    match outcome {
        TaskOutcome::Trap(msg) if msg.len() > FAILURE_MESSAGE_MAX => {
            let end = (0..=FAILURE_MESSAGE_MAX)
                .rev()
                .find(|i| msg.is_char_boundary(*i))
                .unwrap_or(0);
            TaskOutcome::Trap(msg.get(..end).unwrap_or_default().to_string())
        }
        other => other.clone(),
    }
}

impl Run {
    /// Running, or returned a result: what keeps this provider (and its operator) off further
    /// replicas of the task.
    pub fn counts(&self) -> bool {
        matches!(
            self.outcome,
            RunOutcome::Running
                | RunOutcome::Returned { .. }
                | RunOutcome::Failure { .. }
                | RunOutcome::Answered { .. }
        )
    }

    /// The result this run returned, if it returned one: output hash, size, fuel, weight and
    /// exit status (0 for [`RunOutcome::Returned`]).
    pub fn returned(&self) -> Option<(Hash, u64, u64, u32, i32)> {
        match self.outcome {
            RunOutcome::Returned {
                output_hash,
                output_size,
                fuel_used,
                weight,
            } => Some((output_hash, output_size, fuel_used, weight, 0)),
            RunOutcome::Answered {
                status,
                output_hash,
                output_size,
                fuel_used,
                weight,
            } => Some((output_hash, output_size, fuel_used, weight, status)),
            _ => None,
        }
    }

    /// Rules 3: the outcome a report of a verifiable failure leaves in its run.
    pub(crate) fn failure(outcome: &TaskOutcome, fuel_used: u64, weight: u32) -> RunOutcome {
        RunOutcome::Failure {
            outcome: kept(outcome),
            fuel_used,
            weight,
        }
    }
}

/// What results of a task agree on: output hash, size, fuel and exit status for a result (rules
/// 11: the status is 0 but for an answer with another); the [`failure_key`], 0, fuel and 0 for
/// a failure (`failed`).
type Key = (Hash, u64, u64, i32);

/// Matching results of a task.
#[derive(Clone)]
struct Group {
    key: Key,
    /// A group of verifiable failures (rules 3), never merged with successes.
    failed: bool,
    members: Vec<AccountId>,
    weight: u32,
    /// Some member's result weighed what a trusted provider's does when it arrived.
    trusted: bool,
    /// The first member's failure, for a failed group.
    outcome: Option<TaskOutcome>,
    /// The position in the task's runs of its latest trusted member's run (rules 5: an audit
    /// is settled by a trusted auditor's agreement).
    latest_trusted: Option<usize>,
    /// Some member is credible: it lost no more quorums than it had results confirmed (always,
    /// before rules 15) — a dissent that may be honest, such as a newcomer's or that of a
    /// provider with a record of confirmed work outvoted once, which the wide margin of rules
    /// 14 protects.
    credible: bool,
}

/// A task's position, computed by [`State::tally`].
struct Tally {
    /// Groups of matching results, in order of first arrival.
    groups: Vec<Group>,
    running: u32,
    running_weight: u32,
    returned: u32,
    threshold: u32,
    /// What a group of failures needs (rules 3): see [`State::failure_threshold`].
    failure_threshold: u32,
    max_results: u32,
    /// Rules 5: an audit was drawn when the task had this many runs: a group is settled only
    /// with a member whose run came after (see [`crate::audit`]).
    audit_mark: Option<usize>,
    /// Rules 5, adaptive policy: a disputed task's winner must lead by the threshold (see
    /// [`Tally::needs`]).
    margin: bool,
    /// Rules 6: the lead is over every other group, not only one with a trusted member, so a
    /// newcomer outvoted on a trusted provider's word is outweighed by a full quorum (and
    /// slashed), not by the one vote a trusted confirmation brings.
    lead_over_all: bool,
    /// Rules 14: a disputed task's winner leads by twice the threshold, so trusted colluders
    /// must be every one of twice as many trusted runs to outvote (and slash) an honest result.
    /// Rules 15: only over a group with a trusted member or a credible one
    /// ([`Group::credible`]); providers that lost more quorums than they had results confirmed
    /// get the plain margin.
    wide: bool,
}

impl Tally {
    /// Adds a returned result (a failure when `failure` is its outcome) to its group.
    fn join(
        &mut self,
        key: Key,
        failure: Option<&TaskOutcome>,
        who: AccountId,
        (trusted, credible): (bool, bool),
        w: u32,
        at: usize,
    ) {
        self.returned = self.returned.saturating_add(1);
        let failed = failure.is_some();
        match self
            .groups
            .iter_mut()
            .find(|g| g.key == key && g.failed == failed)
        {
            Some(g) => {
                g.members.push(who);
                g.weight = g.weight.saturating_add(w);
                g.trusted |= trusted;
                g.credible |= credible;
                if trusted {
                    g.latest_trusted = Some(at);
                }
            }
            None => self.groups.push(Group {
                key,
                failed,
                members: vec![who],
                weight: w,
                trusted,
                outcome: failure.cloned(),
                latest_trusted: trusted.then_some(at),
                credible,
            }),
        }
    }

    /// The weight group `g` needs before it is accepted, and whether it must hold a trusted
    /// member.
    /// `strict`: rules 3 on a disputed task under the adaptive policy, where a trusted provider
    /// could still take part — a success, too, needs a trusted member then.
    /// Rules 5 (`margin`): when results disagree with a group that has a trusted member, a group
    /// must outweigh it by the whole threshold, so trusted colluders who outnumber one honest
    /// trusted provider on a task do not win it outright (nor slash the honest one): the dispute
    /// gathers runs until one side leads by a full quorum. (Untrusted dissenters are handled by
    /// `strict`: a winner needs a trusted member.)
    fn needs(&self, g: &Group, adaptive: bool, strict: bool) -> u32 {
        let others = || {
            self.groups.iter().filter(|o| {
                (o.trusted || self.lead_over_all) && (o.key != g.key || o.failed != g.failed)
            })
        };
        let lead = if self.margin {
            others().map(|o| o.weight).max().unwrap_or(0)
        } else {
            0
        };
        let lead = if self.wide && lead > 0 && others().any(|o| o.trusted || o.credible) {
            lead.saturating_add(self.threshold)
        } else {
            lead
        };
        if !g.failed {
            let short = self.threshold.saturating_add(lead).saturating_sub(g.weight);
            // Rules 5: an audited task needs a trusted auditor's agreement (a run started after
            // the draw, by a provider trusted when it reported).
            let short = match self.audit_mark {
                Some(mark) if g.latest_trusted.is_none_or(|at| at < mark) => short.max(1),
                _ => short,
            };
            return if short == 0 && strict && !g.trusted {
                1
            } else {
                short
            };
        }
        let short = self
            .failure_threshold
            .saturating_add(lead)
            .saturating_sub(g.weight);
        if short == 0 && adaptive && !g.trusted {
            1
        } else {
            short
        }
    }
}

/// The reason of a [`Event::ReplicasQueued`] for a dispute only an anchor settles (rules 14).
pub const ANCHOR_DISPUTE: &str = "trusted results disagree: an anchor decides";
/// The reason of the replicas queued for a reopened result (rules 16).
pub const REOPENED: &str = "reopened: its provider was caught lying on another task";

/// Whether a draw hashed into `hash` falls below `bps` basis points: its first 8 bytes, little
/// endian, modulo [`BPS`]. Shared by the spot-check draw and the beacon's audit draw.
pub(crate) fn drawn_below(hash: &blake3::Hash, bps: u32) -> bool {
    let mut first = [0u8; 8];
    if let Some(b) = hash.as_bytes().get(..8) {
        first.copy_from_slice(b);
    }
    let draw = u64::from_le_bytes(first)
        .checked_rem(u64::from(BPS))
        .unwrap_or(0);
    draw < u64::from(bps)
}

/// Whether every loser of task `id` is slashed on the winners' word alone: fixed voting (the
/// requester's own quorum), or a task that is gone.
fn slash_any_loser(state: &State, id: TaskId) -> bool {
    state
        .jobs
        .get(&id.job)
        .is_none_or(|j| j.spec.redundancy != Redundancy::Adaptive)
}

impl State {
    /// Whether `provider`'s results count as trusted under the adaptive policy.
    pub fn is_trusted(&self, provider: &AccountId) -> bool {
        self.providers
            .get(provider)
            .is_some_and(|p| p.reputation.streak >= self.verify.trust_after || self.anchors(p))
    }

    /// Rules 7: whether `provider` anchors trust — it is registered under a validator's
    /// account and has never lost a quorum. An anchor is trusted without a history and never
    /// audited: the validators already hold the chain, so the network trusts their machines'
    /// results as it trusts their blocks, and a single lost quorum ends it for good.
    pub fn is_anchor(&self, provider: &AccountId) -> bool {
        self.providers
            .get(provider)
            .is_some_and(|p| self.anchors(p))
    }

    fn anchors(&self, p: &Provider) -> bool {
        self.rules >= 7 && p.reputation.rejected == 0 && self.validators.set.get(&p.id).is_some()
    }

    /// The output hash of the result `who` returned for task `id`, if it returned one.
    fn returned_output(&self, id: TaskId, who: &AccountId) -> Option<Hash> {
        self.jobs
            .get(&id.job)?
            .tasks
            .get(id.index as usize)?
            .runs
            .iter()
            .rev()
            .find(|r| r.provider == *who)
            .and_then(|r| r.returned())
            .map(|r| r.0)
    }

    pub(crate) fn weight(&self, policy: Redundancy, provider: &AccountId) -> u32 {
        match policy {
            Redundancy::Fixed { .. } => 1,
            Redundancy::Adaptive if self.is_trusted(provider) => self.verify.trusted_weight,
            Redundancy::Adaptive => 1,
        }
    }

    /// The weight a group of matching failures needs before a task fails (rules 3): the
    /// policy's full quorum — never the lone-trusted shortcut — and at least 2, so no single
    /// report can fail a job. Under fixed voting also `max_attempts` (3) matching failures, as
    /// many as failed attempts took before; under the adaptive policy one of its members must
    /// be trusted instead. Failing a job is worth more to a saboteur than one wrong output, and
    /// an honest deterministic failure is rare and cheap to confirm.
    fn failure_threshold(&self, policy: Redundancy) -> u32 {
        match policy {
            Redundancy::Fixed { quorum, .. } => quorum.max(self.config.max_attempts).max(2),
            Redundancy::Adaptive => self.verify.quorum_weight.max(2),
        }
    }

    fn tally(&self, id: TaskId) -> Option<Tally> {
        let job = self.jobs.get(&id.job)?;
        let task = job.tasks.get(id.index as usize)?;
        let policy = job.spec.redundancy;
        let mut tally = Tally {
            groups: Vec::new(),
            running: 0,
            running_weight: 0,
            returned: 0,
            threshold: 0,
            failure_threshold: self.failure_threshold(policy),
            max_results: 0,
            audit_mark: self.audits.auditing.get(&id).map(|a| a.runs as usize),
            margin: self.rules >= 5 && policy == Redundancy::Adaptive,
            lead_over_all: self.rules >= 6 && policy == Redundancy::Adaptive,
            wide: self.rules >= 14 && policy == Redundancy::Adaptive,
        };
        let trusted_weight = match policy {
            Redundancy::Adaptive => self.verify.trusted_weight,
            Redundancy::Fixed { .. } => 1,
        };
        // Rules 15: whether a member is credible (see `Group::credible`).
        let credible = |who: &AccountId| {
            self.rules < 15
                || self
                    .providers
                    .get(who)
                    .is_none_or(|p| p.reputation.rejected <= p.reputation.verified)
        };

        for (at, run) in task.runs.iter().enumerate() {
            match &run.outcome {
                RunOutcome::Running => {
                    let w = self.weight(policy, &run.provider);
                    tally.running = tally.running.saturating_add(1);
                    tally.running_weight = tally.running_weight.saturating_add(w);
                }
                RunOutcome::Returned { .. } | RunOutcome::Answered { .. } => {
                    if let Some((output_hash, output_size, fuel_used, w, status)) = run.returned() {
                        // Rules 30: a tolerant task's result joins the first group it agrees
                        // with (the state holds outputs for tolerant jobs only).
                        let key = self.tolerant_key(
                            id,
                            (output_hash, output_size, fuel_used, status),
                            tally.groups.iter().filter(|g| !g.failed).map(|g| g.key),
                        );
                        tally.join(
                            key,
                            None,
                            run.provider,
                            (w >= trusted_weight, credible(&run.provider)),
                            w,
                            at,
                        );
                    }
                }
                RunOutcome::Failure {
                    outcome,
                    fuel_used,
                    weight: w,
                } => {
                    if let Some(k) = failure_key(outcome, *fuel_used) {
                        let trusted = *w >= trusted_weight;
                        tally.join(
                            (k, 0, *fuel_used, 0),
                            Some(outcome),
                            run.provider,
                            (trusted, credible(&run.provider)),
                            *w,
                            at,
                        );
                    }
                }
                RunOutcome::Failed | RunOutcome::Abandoned | RunOutcome::Cancelled => {}
            }
        }
        (tally.threshold, tally.max_results) = match policy {
            Redundancy::Fixed {
                quorum,
                max_results,
            } => (quorum, max_results),
            Redundancy::Adaptive => {
                let counted: Vec<_> = task.runs.iter().filter(|r| r.counts()).collect();
                // Rules 3: alone also means the only result returned while the other runs still
                // going are trusted providers' (a straggler and its speculative replica, either
                // of which may settle the task alone); the other run is cancelled when the result
                // is accepted. A run a new provider started first still has to be confirmed.
                let returned: Vec<_> = counted
                    .iter()
                    .filter(|r| r.outcome != RunOutcome::Running)
                    .collect();
                let others_trusted = counted
                    .iter()
                    .filter(|r| r.outcome == RunOutcome::Running)
                    .all(|r| self.is_trusted(&r.provider));
                let lone = match counted.as_slice() {
                    _ if self.rules >= 3 && !returned.is_empty() && others_trusted => {
                        match returned.as_slice() {
                            [only] => {
                                !task.spot_check
                                    && only
                                        .returned()
                                        .is_some_and(|r| r.3 >= self.verify.trusted_weight)
                            }
                            _ => false,
                        }
                    }
                    [only] => {
                        !task.spot_check
                            && match only.outcome {
                                RunOutcome::Returned { weight, .. }
                                | RunOutcome::Answered { weight, .. } => {
                                    weight >= self.verify.trusted_weight
                                }
                                RunOutcome::Failure { .. } => false,
                                _ => self.is_trusted(&only.provider),
                            }
                    }
                    _ => false,
                };
                let threshold = if lone {
                    self.verify.trusted_weight
                } else {
                    self.verify.quorum_weight
                };
                (threshold, self.verify.max_results)
            }
        };
        Some(tally)
    }

    /// Why job `id` cannot finish on the network as it is now, if it cannot: too few operators
    /// whose providers are active and meet the job's rules (requirements, memory, price, stake)
    /// for its redundancy policy to reach a quorum (every replica of a task runs on a distinct
    /// operator). Such a job waits — for more providers, or until its deadline — so the
    /// requester is told at submission and in the job's status. `None` for a finished job.
    pub fn job_outlook(&self, id: crate::types::JobId) -> Option<String> {
        fn reach(operators: &std::collections::BTreeMap<AccountId, u32>) -> u32 {
            operators
                .values()
                .fold(0u32, |sum, w| sum.saturating_add(*w))
        }
        let job = self.jobs.get(&id).filter(|j| !j.status.is_finished())?;
        let (need, how) = match job.spec.redundancy {
            Redundancy::Fixed { quorum, .. } => (quorum, format!("{quorum} matching results")),
            Redundancy::Adaptive => (
                self.verify.quorum_weight,
                format!(
                    "matching results of weight {} (a new provider's weighs 1, a trusted one's {})",
                    self.verify.quorum_weight, self.verify.trusted_weight
                ),
            ),
        };
        // Per eligible operator, the most weight one replica of a task on it can carry; the
        // scan stops as soon as they reach the quorum (a healthy network looks at a few).
        // Rules 24: first among the providers that may work now, then with the suspended ones
        // too (a suspension is expected to end: the job waits for it, and says so).
        let eligible = |with_suspended: bool| {
            let mut operators: std::collections::BTreeMap<AccountId, u32> = Default::default();
            for p in self.providers.values() {
                let able = if with_suspended {
                    p.status == crate::state::ProviderStatus::Active
                } else {
                    self.counts_on(p)
                };
                if !able || self.job_rules(p, job).is_err() {
                    continue;
                }
                let w = self.weight(job.spec.redundancy, &p.id);
                let best = operators.entry(p.operator()).or_default();
                *best = (*best).max(w);
                if reach(&operators) >= need {
                    break;
                }
            }
            operators
        };
        if reach(&eligible(false)) >= need {
            return None;
        }
        let operators = eligible(true);
        let reach = reach(&operators);
        if reach >= need {
            return Some(
                "the providers that can run this job's tasks are suspended by their owners' rules now (they are in use, on battery or outside their hours): it waits until enough of them may work again, or until its deadline".into(),
            );
        }
        if operators.is_empty() {
            return Some(
                "no active provider can run this job's tasks now (requirements, memory, price or stake): it waits for one until its deadline".into(),
            );
        }
        (reach < need).then(|| {
            format!(
                "only {} operator(s) can run this job's tasks now, together weighing {reach}; its redundancy policy needs {how} from distinct operators, so it waits for more providers until its deadline (a job with policy = \"fixed\" and quorum = 1 is not verified and needs one)",
                operators.len()
            )
        })
    }

    /// Whether the spot-check draw picks `provider`'s lone result for task `id`, run since
    /// `started`. The draw hashes the chain id, the task, the provider and the time the leader
    /// assigned the run, so replay repeats it and the provider cannot steer it — but anyone who
    /// follows the chain can compute it (see ARCHITECTURE.md, Verification).
    pub fn spot_check_drawn(&self, id: TaskId, provider: &AccountId, started: Time) -> bool {
        let mut h = blake3::Hasher::new();
        h.update(b"gridmint/spot-check");
        h.update(self.ledger.chain_id.as_bytes());
        h.update(&id.job.to_le_bytes());
        h.update(&id.index.to_le_bytes());
        h.update(&provider.0);
        h.update(&started.to_le_bytes());
        drawn_below(&h.finalize(), self.verify.spot_check_bps)
    }

    /// Draws the spot check for a result that just arrived, when it would otherwise be accepted
    /// alone.
    pub(crate) fn maybe_spot_check(
        &mut self,
        id: TaskId,
        provider: AccountId,
        started: Time,
        events: &mut Vec<Event>,
    ) {
        // Rules 5: the beacon decides instead (see `crate::audit`).
        if self.rules >= 5 {
            return;
        }
        let Some(job) = self.jobs.get(&id.job) else {
            return;
        };
        if job.spec.redundancy != Redundancy::Adaptive {
            return;
        }
        let Some(task) = job.tasks.get(id.index as usize) else {
            return;
        };
        let alone = if self.rules >= 3 {
            // The only result returned while the others still going are trusted (see `tally`).
            task.runs
                .iter()
                .filter(|r| r.counts() && r.outcome != RunOutcome::Running)
                .count()
                == 1
                && task
                    .runs
                    .iter()
                    .filter(|r| r.outcome == RunOutcome::Running)
                    .all(|r| self.is_trusted(&r.provider))
        } else {
            task.runs.iter().filter(|r| r.counts()).count() == 1
        };
        if !alone || task.spot_check || !self.is_trusted(&provider) {
            return;
        }
        if self.spot_check_drawn(id, &provider, started)
            && let Some(task) = self.task_mut(id)
        {
            task.spot_check = true;
            events.push(Event::SpotCheck { task: id, provider });
        }
    }

    /// Brings task `id` up to date after a change: accepts a group that reached the threshold
    /// (a group of failures fails the task and its job), or keeps enough replicas queued for a
    /// quorum to form, or fails the task (and its job) when none can form any more.
    pub(crate) fn settle(
        &mut self,
        id: TaskId,
        now: Time,
        events: &mut Vec<Event>,
    ) -> Result<(), Rejection> {
        let Some(job) = self.jobs.get(&id.job).filter(|j| !j.status.is_finished()) else {
            return Ok(());
        };
        let adaptive = job.spec.redundancy == Redundancy::Adaptive;
        let open = job
            .tasks
            .get(id.index as usize)
            .is_some_and(|t| matches!(t.state, TaskState::Queued | TaskState::Running));
        if !open {
            return Ok(());
        }
        let Some(tally) = self.tally(id) else {
            return Ok(());
        };
        // Rules 3: when results disagree, the winning group needs a trusted member as long as a
        // trusted provider could still take part: colluding newcomers cannot outvote an honest
        // one (nor slash it), and a cheater outvoted is slashed on trusted evidence.
        // Rules 6: an undisputed result, too, once the network has an active provider that
        // passed an audit, gets its next replica from a trusted provider (below), so agreeing
        // colluders who are not trusted cannot gather a quorum among themselves.
        let disputed = tally.groups.len() > 1;
        let seek_trusted = adaptive
            && self.rules >= 3
            && (disputed
                || (self.rules >= 6
                    && (!tally.groups.is_empty() || tally.running > 0)
                    && self.audited_around()))
            && self.trusted_could_take_part(id);
        let strict = seek_trusted && disputed;
        // Rules 5: a dispute nobody is left to add runs to is decided without the margin.
        let mut tally = tally;
        if tally.margin && tally.groups.len() > 1 && !self.another_operator_could_run(id) {
            tally.margin = false;
        }
        // Rules 5: an audit no trusted provider is left to run is dropped: the task is settled
        // as if the draw had cleared it, rather than held to its deadline.
        if tally.audit_mark.is_some() && tally.running == 0 && !self.trusted_could_take_part(id) {
            self.audits.auditing.remove(&id);
            self.audits.cleared.insert(id);
            return self.settle(id, now, events);
        }
        // Rules 7: an anchor's result settles the task (adaptive policy): its group wins
        // outright, whatever weight the others gathered, unless two anchors disagree.
        let anchored: Vec<&Group> = if adaptive && self.rules >= 7 {
            tally
                .groups
                .iter()
                .filter(|g| !g.failed && g.members.iter().any(|m| self.is_anchor(m)))
                .collect()
        } else {
            Vec::new()
        };
        // Rules 14: results of trusted providers disagree — one of them lied, and trusted
        // colluders could outvote an honest one — so only an anchor's run settles the task.
        let anchor_dispute = anchored.is_empty() && self.anchors_decide(id, &tally);
        let winner = match anchored.as_slice() {
            [only] => Some((*only).clone()),
            _ if anchor_dispute => None,
            _ => tally
                .groups
                .iter()
                .filter(|g| tally.needs(g, adaptive, strict) == 0)
                .max_by_key(|g| g.weight)
                .cloned(),
        };
        // Rules 5: a success that rests on a trusted provider's weight (its lone result, or its
        // result completing a quorum) waits for the beacon's next reveal, which draws an audit
        // at the least proven trusted member's rate; nothing is accepted or queued until then.
        if let Some(w) = winner.as_ref().filter(|w| {
            adaptive
                && self.rules >= 5
                && !w.failed
                && w.trusted
                && !self.audits.cleared.contains(&id)
                && !self.audits.auditing.contains_key(&id)
                // Rules 7: an anchor's word needs no audit.
                && !w.members.iter().any(|m| self.is_anchor(m))
                // No audit where no trusted provider could run it (a network of few operators).
                && self.trusted_could_take_part(id)
        }) {
            let audited = w
                .members
                .iter()
                .filter(|m| self.is_trusted(m))
                .max_by_key(|m| self.audit_bps(m))
                .or(w.members.first())
                .copied();
            if let Some(provider) = audited {
                self.audits.awaiting.insert(id, provider);
                self.queue.remove(&id);
                self.recheck.remove(&id);
                self.disputes.remove(&id);
                if let Some(task) = self.task_mut(id) {
                    task.queued = 0;
                    task.state = TaskState::Running;
                }
                return Ok(());
            }
        }
        if let Some(winner) = winner {
            return self.conclude(id, winner, tally.groups, now, events);
        }
        if anchor_dispute {
            return self.await_anchor(id, events);
        }
        // Every operator able to run the task reported the same failure, and no other could run
        // it: waiting for a quorum that cannot form would only hold the job to its deadline (a
        // network of one provider; whoever runs every able provider decides the task anyway).
        if let [only] = tally.groups.as_slice()
            && only.failed
            && tally.running == 0
            && !self.another_operator_could_run(id)
        {
            let only = only.clone();
            return self.conclude(id, only, tally.groups, now, events);
        }
        let best = tally.groups.iter().map(|g| g.weight).max().unwrap_or(0);
        let failures = tally.groups.iter().any(|g| g.failed);
        // The fewest more weight any group (or a new success) needs.
        let need = tally
            .groups
            .iter()
            .map(|g| tally.needs(g, adaptive, strict))
            .fold(tally.threshold, u32::min)
            .saturating_sub(tally.running_weight);
        // A failure needs confirming even where the policy collects one result, and a group
        // waiting for a trusted member (a failure, or either side of a strict dispute) must not
        // use up the room the others need: up to `max_results` more runs then.
        let trusted_dispute = tally.margin
            && tally.groups.len() > 1
            && (tally.lead_over_all || tally.groups.iter().any(|g| g.trusted));
        let max_results = if failures || strict || trusted_dispute {
            let times = if trusted_dispute { 3 } else { 2 };
            tally
                .max_results
                .saturating_mul(times)
                .max(tally.failure_threshold)
                .min(MAX_RESULTS)
        } else {
            tally.max_results
        };
        let room = max_results
            .saturating_sub(tally.returned)
            .saturating_sub(tally.running);
        let queued = need.min(room);
        // Rules 6: a replica only a trusted provider can settle — an audit's, or a trusted member
        // for a group that one would complete (one such replica is enough) — waits
        // among the re-executions, which only trusted providers look at: an untrusted provider
        // neither takes it (using up the task's room) nor walks past it when it fetches.
        let trusted_weight = self.verify.trusted_weight;
        let completes =
            |g: &Group| !g.trusted && tally.needs(g, adaptive, strict) <= trusted_weight;
        // (With nothing returned yet, the runs going on are all untrusted ones: a trusted member
        // is what the task needs next, not more newcomers.)
        let untrusted_running = tally.groups.is_empty()
            && tally.running > 0
            && tally.running_weight == tally.running
            && tally.threshold.saturating_sub(tally.running_weight) <= trusted_weight;
        let for_member = self.rules >= 6
            && seek_trusted
            && (untrusted_running || tally.groups.iter().any(completes));
        // Rules 7: a dispute that must be settled by a group with a trusted member gathers
        // trusted runs only, as many as the weight it needs: more untrusted runs cannot settle
        // it, and colluders taking them would pile onto the wrong side and use up the room.
        let dispute_for_trusted = self.rules >= 7 && strict;
        let trusted_only =
            self.rules >= 6 && (tally.audit_mark.is_some() || for_member || dispute_for_trusted);
        let queued = if for_member {
            queued.min(1)
        } else if dispute_for_trusted {
            queued.min(need.div_ceil(trusted_weight.max(1)).max(1))
        } else {
            queued
        };
        // Rules 5: an audit that found no trusted auditor within the task's room is dropped (the
        // task is settled as if the draw had cleared it) rather than failing an honest job.
        if queued == 0 && tally.running == 0 && tally.audit_mark.is_some() {
            self.audits.auditing.remove(&id);
            self.audits.cleared.insert(id);
            return self.settle(id, now, events);
        }
        if queued == 0 && tally.running == 0 {
            let agreement = tally
                .groups
                .iter()
                .map(|g| g.members.len())
                .max()
                .unwrap_or(0);
            let mut reason = format!(
                "task {id}: no quorum after {} results ({} distinct outputs, at most {agreement} agreeing; weight {best} of {} needed)",
                tally.returned,
                tally.groups.len(),
                tally.threshold
            );
            if let Some(outcome) = tally.groups.iter().find_map(|g| g.outcome.as_ref()) {
                reason.push_str(&format!(
                    "; reported failure: {outcome}, confirmed by no trusted provider"
                ));
            }
            events.push(Event::TaskFailed {
                task: id,
                reason: reason.clone(),
            });
            if let Some(task) = self.task_mut(id) {
                task.state = TaskState::Failed;
                task.last_error = Some(reason.clone());
            }
            events.push(Event::JobFailed {
                job: id.job,
                reason: reason.clone(),
            });
            return self.finish_job(id.job, JobStatus::Failed { reason }, now, events);
        }
        let is_reopened = self.reopened.tasks.contains_key(&id);
        let Some(task) = self.task_mut(id) else {
            return Ok(());
        };
        // A re-execution of a task some provider is running or has answered (a retry after a
        // failure or a lost provider is not one).
        let replica = task.runs.iter().any(Run::counts);
        if replica && queued > task.queued {
            events.push(Event::ReplicasQueued {
                task: id,
                queued,
                reason: if tally.groups.len() > 1 {
                    "results disagree".into()
                } else if is_reopened {
                    REOPENED.into()
                } else if failures {
                    "failure needs confirmation".into()
                } else if task.spot_check {
                    "spot check".into()
                } else {
                    "result needs confirmation".into()
                },
            });
        }
        task.queued = queued;
        task.state = if tally.running > 0 {
            TaskState::Running
        } else {
            TaskState::Queued
        };
        self.disputes.remove(&id);
        if queued > 0 && trusted_only {
            self.queue.remove(&id);
            self.recheck.insert(id);
        } else if queued > 0 {
            self.queue.insert(id);
            if replica {
                self.recheck.insert(id);
            } else {
                self.recheck.remove(&id);
            }
        } else {
            self.queue.remove(&id);
            self.recheck.remove(&id);
        }
        Ok(())
    }

    /// Rules 3: a provider that just lost a quorum loses the trusted weight its results still
    /// waiting in other open tasks carried when they arrived (frozen otherwise), and those tasks
    /// are settled again, so a trusted cheater caught once cannot complete a wrong quorum
    /// elsewhere with the weight it earned before. Scans the unfinished jobs.
    fn distrust(
        &mut self,
        provider: AccountId,
        now: Time,
        events: &mut Vec<Event>,
    ) -> Result<(), Rejection> {
        let mut touched = Vec::new();
        for job in self.jobs.values_mut() {
            if job.status.is_finished() || job.spec.redundancy != Redundancy::Adaptive {
                continue;
            }
            for (index, task) in job.tasks.iter_mut().enumerate() {
                if !matches!(task.state, TaskState::Queued | TaskState::Running) {
                    continue;
                }
                for run in task.runs.iter_mut().filter(|r| r.provider == provider) {
                    if let RunOutcome::Returned { weight, .. }
                    | RunOutcome::Failure { weight, .. }
                    | RunOutcome::Answered { weight, .. } = &mut run.outcome
                        && *weight > 1
                    {
                        *weight = 1;
                        touched.push(TaskId {
                            job: job.id,
                            index: u32::try_from(index).unwrap_or(u32::MAX),
                        });
                    }
                }
            }
        }
        for id in touched {
            self.settle(id, now, events)?;
        }
        Ok(())
    }

    /// Rules 16, backtracking: `provider` was just slashed on trusted evidence for its result of
    /// task `caught`, so its other results that were accepted alone cannot be relied on either.
    /// Every one of them in a job that is still gathering its map results (adaptive policy, not
    /// private; `caught`'s own job too when `caught` is one of its maps, even its last) is
    /// reopened: the task goes back to the queue with the provider's result kept at the weight
    /// of an untrusted one, and is settled like an audit (`Audits::auditing`) — only a group
    /// holding a trusted run started after the reopening accepts it. Its job cannot complete
    /// meanwhile. A result its job already delivered (the job completed, or its reduce began) is
    /// not reopened. Each reopened task costs its job one or more executions; the provider,
    /// already paid, is not paid again if confirmed, and is rejected and slashed again if not.
    ///
    /// Rules 19, correction after delivery: a job whose reduce began, and a completed job whose
    /// storage is not released yet (`State::correctable`), are reopened too: the reduce is
    /// dropped (queued again once the maps are all accepted again) and a completed job runs
    /// again, counted in `State::corrected`, paid from the reserve its escrow kept at
    /// completion (`State::correction_reserve`). A result agreed on by several providers, all
    /// slashed by now (`provider` the last), is reopened like a lone one.
    fn reopen_lone_results(
        &mut self,
        provider: AccountId,
        caught: TaskId,
        caught_map: bool,
        now: Time,
        events: &mut Vec<Event>,
    ) -> Result<(), Rejection> {
        let delivered = self.rules >= 19;
        // Rules 19 scans the tasks of every job still correctable: a provider that never had a
        // result accepted (its lifetime counts, never reset) has nothing to reopen, which is
        // the case of most slashes under attack (measured: the warm simulation spent 86% of
        // its time in this scan before this check).
        if self
            .providers
            .get(&provider)
            .is_some_and(|p| p.reputation.verified == 0 && p.reputation.accepted_alone == 0)
        {
            return Ok(());
        }
        // Which jobs' results may be reopened (a decision on the job alone), ...
        let candidate = |state: &Self, id: JobId| {
            state.jobs.get(&id).is_some_and(|j| {
                j.spec.redundancy == Redundancy::Adaptive
                    && match j.status {
                        JobStatus::Running => {
                            (j.maps_done as usize) < j.spec.tasks.len()
                                || (caught_map && j.id == caught.job)
                        }
                        JobStatus::Reducing => delivered,
                        JobStatus::Completed => delivered && state.correctable(j.id),
                        _ => false,
                    }
            }) && !state.private_job(id)
        };
        // ... and whether a job that is not one now may become one later (a job still running,
        // or one that may complete and then be corrected under rules 19).
        let may_become = |state: &Self, id: JobId| {
            state.jobs.get(&id).is_some_and(|j| {
                j.spec.redundancy == Redundancy::Adaptive
                    && match j.status {
                        JobStatus::Running => true,
                        JobStatus::Reducing => delivered,
                        JobStatus::Completed => state.correctable(j.id),
                        _ => false,
                    }
            }) && !state.private_job(id)
        };
        // Rules 19: a result agreed on by several providers that have all been caught lying (the
        // last of them just now) rests on no honest word either: colluders confirming each
        // other are reopened too once the last of them is caught.
        let suspect = |state: &Self, providers: &[AccountId]| {
            providers == [provider]
                || (delivered
                    && providers.contains(&provider)
                    && providers.iter().all(|m| {
                        *m == provider
                            || state
                                .providers
                                .get(m)
                                .is_some_and(|p| p.stats.times_slashed > 0)
                    }))
        };
        fn accepted<'a>(
            state: &'a State,
            t: TaskId,
            provider: &AccountId,
        ) -> Option<&'a TaskResult> {
            let job = state.jobs.get(&t.job)?;
            let task = job.tasks.get(t.index as usize)?;
            let result = task.result.as_ref()?;
            ((t.index as usize) < job.map_count()
                && task.state == TaskState::Done
                && result.providers.contains(provider))
            .then_some(result)
        }
        // The provider's accepted results, from the index (`crate::audit::Accepted`): in task
        // order, as a walk of every job's tasks would find them.
        if !self.accepted.built() {
            let mut index = std::mem::take(&mut self.accepted);
            index.build(self.jobs.values());
            self.accepted = index;
        }
        let mut found: Vec<TaskId> = Vec::new();
        let mut stale: BTreeSet<TaskId> = BTreeSet::new();
        for t in self.accepted.of(&provider) {
            match accepted(self, t, &provider) {
                Some(r) if candidate(self, t.job) => {
                    if suspect(self, &r.providers) {
                        found.push(t);
                    }
                }
                Some(_) if may_become(self, t.job) => {}
                _ => {
                    stale.insert(t);
                }
            }
        }
        self.accepted.prune(&provider, |t| !stale.contains(&t));
        #[cfg(debug_assertions)]
        {
            // The index must find exactly what a walk of every job's tasks finds.
            let mut walked = Vec::new();
            for (&id, job) in &self.jobs {
                if !candidate(self, id) {
                    continue;
                }
                for (index, task) in job.tasks.iter().enumerate().take(job.map_count()) {
                    if let Some(r) = task.result.as_ref()
                        && task.state == TaskState::Done
                        && suspect(self, &r.providers)
                    {
                        let index = u32::try_from(index).unwrap_or(u32::MAX);
                        walked.push(TaskId { job: id, index });
                    }
                }
            }
            debug_assert_eq!(found, walked, "the index of accepted results missed some");
        }
        let mut reopened = Vec::new();
        for tasks in found.chunk_by(|a, b| a.job == b.job) {
            let Some(id) = tasks.first().map(|t| t.job) else {
                continue;
            };
            let before = reopened.len();
            let Some(job) = self.jobs.get_mut(&id) else {
                continue;
            };
            for &t in tasks {
                let Some(task) = job.tasks.get_mut(t.index as usize) else {
                    continue;
                };
                let Some(r) = task.result.take() else {
                    continue;
                };
                let (fuel, members) = (r.fuel_used, r.providers);
                task.state = TaskState::Queued;
                task.queued = 0;
                for run in task
                    .runs
                    .iter_mut()
                    .filter(|r| members.contains(&r.provider))
                {
                    if let RunOutcome::Returned { weight, .. } = &mut run.outcome {
                        *weight = 1;
                    }
                }
                let runs = u32::try_from(task.runs.len()).unwrap_or(u32::MAX);
                job.maps_done = job.maps_done.saturating_sub(1);
                job.fuel_accepted = job.fuel_accepted.saturating_sub(fuel);
                reopened.push((t, runs));
            }
            if delivered && reopened.len() > before {
                let results =
                    u32::try_from(reopened.len().saturating_sub(before)).unwrap_or(u32::MAX);
                self.undeliver(id, results, events);
            }
        }
        for (task, runs) in reopened {
            self.options.statuses.remove(&task);
            self.audits.forget_task(task);
            self.audits
                .auditing
                .insert(task, crate::audit::Audit { provider, runs });
            self.reopened.tasks.insert(task, provider);
            events.push(Event::ResultReopened {
                task,
                provider,
                caught,
            });
            self.settle(task, now, events)?;
        }
        Ok(())
    }

    /// Rules 19: job `id` had `results` of its map results reopened (`reopen_lone_results`)
    /// after it had delivered them: to its reduce, which is dropped (its runs cancelled; queued
    /// afresh once the maps are all accepted again), or to its owner, when it had completed: it
    /// runs again (`Event::JobReopened`, counted in `State::corrected`). A no-op for a job still
    /// gathering its maps.
    fn undeliver(&mut self, id: JobId, results: u32, events: &mut Vec<Event>) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        let completed = match job.status {
            JobStatus::Completed => true,
            JobStatus::Reducing => false,
            _ => return,
        };
        let maps = job.spec.tasks.len();
        let reduce = TaskId {
            job: id,
            index: u32::try_from(maps).unwrap_or(u32::MAX),
        };
        let mut running = Vec::new();
        if let Some(task) = job.tasks.get_mut(maps) {
            for run in &mut task.runs {
                if run.outcome == RunOutcome::Running {
                    run.outcome = RunOutcome::Cancelled;
                    running.push(run.provider);
                }
            }
            task.state = TaskState::Dropped;
            task.result = None;
            task.queued = 0;
        }
        job.status = JobStatus::Running;
        job.finished_at = None;
        for provider in running {
            if let Some(p) = self.providers.get_mut(&provider) {
                p.running.remove(&reduce);
            }
        }
        self.queue.remove(&reduce);
        self.recheck.remove(&reduce);
        self.disputes.remove(&reduce);
        self.options.statuses.remove(&reduce);
        self.audits.forget_task(reduce);
        if completed {
            let count = self.corrected.entry(id).or_default();
            *count = count.saturating_add(results);
            events.push(Event::JobReopened { job: id, results });
        }
    }

    /// Rules 14: whether only an anchor's run may settle task `id` (its `tally`): under the
    /// adaptive policy, on a job that is not private, two groups of results (successes or
    /// failures) each hold a trusted member, no anchor's success is among them, and an anchor
    /// could run the task. Trusted providers disagreeing means one of them lied; settling that
    /// by the weight of more trusted runs lets trusted colluders who outnumber the honest ones
    /// on a task win it and slash the honest (measured: every honest provider slashed in the
    /// collusion experiment was outvoted so). Such disputes are few — a provider must first earn
    /// trust to take part in one — so the validators' machines can afford to judge them all.
    ///
    /// Rules 17: also when one group holds a trusted member and another, with none, a credible
    /// one ([`Group::credible`]: a newcomer, or a provider with a record) — the dissent the wide
    /// margin protects. Who lied cannot be told from the state (an honest newcomer outvoted by
    /// trusted turncoats looks like a Sybil's fresh account lying against honest trusted
    /// providers), and where the wide margin takes three or four more trusted runs to settle
    /// it, one anchor's run does.
    fn anchors_decide(&self, id: TaskId, tally: &Tally) -> bool {
        let trusted = tally.groups.iter().filter(|g| g.trusted).count();
        let credible_dissent = self.rules >= 17
            && trusted >= 1
            && tally.groups.iter().any(|g| !g.trusted && g.credible);
        self.rules >= 14
            && tally.margin
            && (trusted >= 2 || credible_dissent)
            && !self.private_job(id.job)
            && self.anchor_could_take_part(id)
    }

    /// Whether task `id` is in a dispute only an anchor settles ([`State::anchors_decide`]).
    pub fn for_anchors(&self, id: TaskId) -> bool {
        // First without building the tally: at least two results of trusted weight (one under
        // rules 17), which most tasks waiting for a replica (one newcomer's result) do not have.
        let trusted_weight = self.verify.trusted_weight;
        let trusted_results = self
            .jobs
            .get(&id.job)
            .and_then(|j| j.tasks.get(id.index as usize))
            .map_or(0, |t| {
                t.runs
                    .iter()
                    .filter(|r| match r.outcome {
                        RunOutcome::Returned { weight, .. }
                        | RunOutcome::Answered { weight, .. }
                        | RunOutcome::Failure { weight, .. } => weight >= trusted_weight,
                        _ => false,
                    })
                    .count()
            });
        let needed = if self.rules >= 17 { 1 } else { 2 };
        self.rules >= 14
            && trusted_results >= needed
            && self.tally(id).is_some_and(|t| {
                !t.groups
                    .iter()
                    .any(|g| !g.failed && g.members.iter().any(|m| self.is_anchor(m)))
                    && self.anchors_decide(id, &t)
            })
    }

    /// Whether an anchor is running task `id`, or an active anchor that has not run it could.
    fn anchor_could_take_part(&self, id: TaskId) -> bool {
        let Some(job) = self.jobs.get(&id.job) else {
            return false;
        };
        let Some(task) = job.tasks.get(id.index as usize) else {
            return false;
        };
        self.anchor_running(task)
            || self.validators.set.validators.iter().any(|v| {
                self.providers.get(&v.account).is_some_and(|q| {
                    q.status == crate::state::ProviderStatus::Active
                        && self.anchors(q)
                        && self.has_min_stake(&q.id)
                        && self.job_rules(q, job).is_ok()
                        && self.fits_task(q, id).is_ok()
                })
            })
    }

    /// Whether an anchor is running `task`.
    fn anchor_running(&self, task: &crate::state::Task) -> bool {
        task.runs
            .iter()
            .any(|r| r.outcome == RunOutcome::Running && self.is_anchor(&r.provider))
    }

    /// Rules 14: task `id` waits for an anchor's run — one replica among the re-executions,
    /// which only an anchor may take (`State::fits`), unless an anchor is running it.
    fn await_anchor(&mut self, id: TaskId, events: &mut Vec<Event>) -> Result<(), Rejection> {
        let anchor_running = self
            .jobs
            .get(&id.job)
            .and_then(|j| j.tasks.get(id.index as usize))
            .is_some_and(|t| self.anchor_running(t));
        let queued = u32::from(!anchor_running);
        let Some(task) = self.task_mut(id) else {
            return Ok(());
        };
        if queued > task.queued {
            events.push(Event::ReplicasQueued {
                task: id,
                queued,
                reason: ANCHOR_DISPUTE.into(),
            });
        }
        task.queued = queued;
        task.state = if task.runs.iter().any(|r| r.outcome == RunOutcome::Running) {
            TaskState::Running
        } else {
            TaskState::Queued
        };
        self.queue.remove(&id);
        // Rules 18: kept apart, where only anchors' fetches look.
        if queued > 0 && self.rules >= 18 {
            self.recheck.remove(&id);
            self.disputes.insert(id);
        } else if queued > 0 {
            self.recheck.insert(id);
        } else {
            self.recheck.remove(&id);
            self.disputes.remove(&id);
        }
        Ok(())
    }

    /// Rules 18: each validator's account, and whether its provider could take a dispute now
    /// (active, an anchor, staked).
    pub(crate) fn anchor_roster(&self) -> Vec<(AccountId, bool)> {
        self.validators
            .set
            .validators
            .iter()
            .map(|v| {
                let able = self.providers.get(&v.account).is_some_and(|q| {
                    q.status == crate::state::ProviderStatus::Active
                        && self.anchors(q)
                        && self.has_min_stake(&q.id)
                });
                (v.account, able)
            })
            .collect()
    }

    /// Rules 18: settles the tasks among the disputes again — every one when the anchors
    /// changed, else those with a run of a provider in `involving` (just slashed): one that an
    /// anchor no longer decides goes back among the re-executions or to the queue.
    pub(crate) fn resettle_disputes(
        &mut self,
        involving: Option<&std::collections::BTreeSet<AccountId>>,
        now: Time,
        events: &mut Vec<Event>,
    ) -> Result<(), Rejection> {
        let disputes: Vec<TaskId> = self
            .disputes
            .iter()
            .filter(|id| {
                involving.is_none_or(|who| {
                    self.jobs
                        .get(&id.job)
                        .and_then(|j| j.tasks.get(id.index as usize))
                        .is_some_and(|t| t.runs.iter().any(|r| who.contains(&r.provider)))
                })
            })
            .copied()
            .collect();
        for id in disputes {
            self.settle(id, now, events)?;
        }
        Ok(())
    }

    /// Whether a trusted provider is running task `id`, or an active trusted provider of an
    /// operator that has not run it could run it.
    fn trusted_could_take_part(&self, id: TaskId) -> bool {
        let Some(job) = self.jobs.get(&id.job) else {
            return false;
        };
        let running = job.tasks.get(id.index as usize).is_some_and(|t| {
            t.runs
                .iter()
                .any(|r| r.outcome == RunOutcome::Running && self.is_trusted(&r.provider))
        });
        let able = |q: &Provider| {
            q.status == crate::state::ProviderStatus::Active
                && self.is_trusted(&q.id)
                && self.job_rules(q, job).is_ok()
                && self.fits_task(q, id).is_ok()
        };
        // The providers that passed an audit first (few, and trusted while they are listed):
        // the answer is the same, found without walking a big fleet of newcomers.
        running
            || self
                .audits
                .passed
                .keys()
                .filter_map(|p| self.providers.get(p))
                .any(able)
            || self.providers.values().any(able)
    }

    /// Rules 6: whether an active provider has passed an audit — past the network's first
    /// rounds, when nobody is trusted yet and agreement among newcomers is all there is. (A
    /// provider that passed an audit is trusted: losing a quorum clears both.)
    pub fn audited_around(&self) -> bool {
        let active = |p: &AccountId| {
            self.providers
                .get(p)
                .is_some_and(|q| q.status == crate::state::ProviderStatus::Active)
        };
        self.audits.passed.keys().any(active)
            || (self.rules >= 7
                && self
                    .validators
                    .set
                    .validators
                    .iter()
                    .any(|v| active(&v.account) && self.is_anchor(&v.account)))
    }

    /// Whether an active provider of an operator that has not run task `id` could run it.
    fn another_operator_could_run(&self, id: TaskId) -> bool {
        let Some(job) = self.jobs.get(&id.job) else {
            return false;
        };
        self.providers.values().any(|q| {
            q.status == crate::state::ProviderStatus::Active
                && self.job_rules(q, job).is_ok()
                && self.fits_task(q, id).is_ok()
        })
    }

    /// Ends task `id` with the group `winner`: a success is accepted and moves the job on; a
    /// group of matching failures (rules 3) fails the task and its job. Either way its members
    /// share one execution's pay, every result that disagrees is rejected and slashed, and
    /// replicas still running are cancelled.
    fn conclude(
        &mut self,
        id: TaskId,
        winner: Group,
        groups: Vec<Group>,
        now: Time,
        events: &mut Vec<Event>,
    ) -> Result<(), Rejection> {
        let (output_hash, output_size, fuel_used, status) = winner.key;
        // Rules 16: a reopened result's provider was paid when it was first accepted.
        let reopened = self.reopened.tasks.remove(&id);
        let members = winner.members.clone();
        let failure = winner.outcome.as_ref().filter(|_| winner.failed);
        let reason = failure.map(|outcome| {
            format!(
                "task {id}: {outcome} on {} provider(s), using {fuel_used} fuel (a verified failure: the program fails the same way everywhere it ran)",
                members.len()
            )
        });
        // Rules 3, adaptive policy: the results that lost are rejected, unpaid and cost their
        // providers' trust, but their stake is slashed only on the word of a group with a
        // trusted member — so colluders who outvote honest newcomers cannot slash them (on a
        // young network without trusted providers, nobody is slashed: measured, a fallback to
        // the quorum's word there slashed more honest providers and deterred no cheater).
        let slash = self.rules < 3
            || winner.trusted
            || self
                .jobs
                .get(&id.job)
                .is_some_and(|j| j.spec.redundancy != Redundancy::Adaptive);
        let Some(job) = self.jobs.get_mut(&id.job) else {
            return Ok(());
        };
        let map_count = job.spec.tasks.len();
        let Some(task) = job.tasks.get_mut(id.index as usize) else {
            return Ok(());
        };
        task.queued = 0;
        match &reason {
            Some(reason) => {
                task.state = TaskState::Failed;
                task.last_error = Some(reason.clone());
            }
            None => {
                task.state = TaskState::Done;
                task.result = Some(TaskResult {
                    providers: members.clone(),
                    output_hash,
                    output_size,
                    fuel_used,
                });
            }
        }
        let mut cancelled = Vec::new();
        for run in &mut task.runs {
            if run.outcome == RunOutcome::Running {
                run.outcome = RunOutcome::Cancelled;
                cancelled.push(run.provider);
            }
        }
        let is_map = (id.index as usize) < map_count;
        let maps_finished = if is_map && reason.is_none() {
            job.maps_done = job.maps_done.saturating_add(1);
            job.fuel_accepted = job.fuel_accepted.saturating_add(fuel_used);
            job.maps_done as usize == map_count
        } else {
            false
        };
        self.queue.remove(&id);
        self.recheck.remove(&id);
        self.disputes.remove(&id);
        if is_map && reason.is_none() {
            self.accepted.record(id, &members);
        }
        if reason.is_none() && status != 0 {
            self.options.statuses.insert(id, status);
        }
        for p in cancelled {
            if let Some(p) = self.providers.get_mut(&p) {
                p.running.remove(&id);
            }
        }
        events.push(match &reason {
            Some(reason) => Event::TaskFailed {
                task: id,
                reason: reason.clone(),
            },
            None => Event::TaskAccepted {
                task: id,
                output_hash,
                fuel_used,
                providers: members.clone(),
            },
        });
        let verified = members.len() > 1;
        // Rules 6: agreement builds trust (the streak) only when a trusted provider is in the
        // agreeing group — or while the network has no active provider that passed an audit
        // (its first rounds, when nobody is trusted yet). Colluders confirming one another earn
        // nothing towards trust once an audited provider is around.
        let builds_trust = self.rules < 6 || winner.trusted || !self.audited_around();
        // Rules 13: a private job's requester chose who runs it (and so who judges whom): its
        // verdicts decide its results and payments only, never a provider's reputation, trust
        // or stake — colluders cannot farm trust on their own private jobs, nor outvote and
        // slash a provider they sealed one to.
        let judged = !self.private_job(id.job);
        let share = u32::try_from(members.len()).unwrap_or(u32::MAX);
        // Rules 5: an audit passed counts for the provider whose lone result it checked.
        // (A reopened result confirmed is not an audit passed: it was reopened because its
        // provider had just been caught.)
        // Rules 19: a reopened result agreed on by several caught providers paid them all when
        // it was first accepted: none of them is paid again (a caught provider whose run
        // predates the reopening; an honest one is never caught, and is paid if its run wins).
        let paid_before: Vec<AccountId> = match (reopened, self.audits.auditing.get(&id)) {
            (Some(_), Some(audit)) if self.rules >= 19 => self
                .jobs
                .get(&id.job)
                .and_then(|j| j.tasks.get(id.index as usize))
                .map(|t| {
                    t.runs
                        .iter()
                        .take(audit.runs as usize)
                        .map(|r| r.provider)
                        .filter(|p| {
                            self.providers
                                .get(p)
                                .is_some_and(|p| p.stats.times_slashed > 0)
                        })
                        .collect()
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let audited = self
            .audits
            .forget_task(id)
            .filter(|p| members.contains(p) && judged && reopened != Some(*p));
        for member in &members {
            if let Some(p) = self.providers.get_mut(member).filter(|_| judged) {
                let r = &mut p.reputation;
                if verified {
                    r.verified = r.verified.saturating_add(1);
                    if builds_trust {
                        r.streak = r.streak.saturating_add(1);
                    }
                    let gap = MAX_SCORE.saturating_sub(r.score);
                    r.score = r.score.saturating_add((gap / 10).max(1)).min(MAX_SCORE);
                } else {
                    r.accepted_alone = r.accepted_alone.saturating_add(1);
                }
            }
            if audited == Some(*member) {
                let passed = self.audits.passed.entry(*member).or_default();
                *passed = passed.saturating_add(1);
            }
            if reopened == Some(*member) || paid_before.contains(member) {
                continue;
            }
            events.extend(self.pay(id.job, id, *member, fuel_used, share, now)?);
        }
        // Rules 5, adaptive policy: a loser's stake is slashed only when the winners outweigh
        // its group by a full quorum (`decisive`); a narrower win still rejects it, unpaid and
        // untrusted, but two trusted colluders outvoting one honest newcomer cannot slash it.
        let quorum = self.verify.quorum_weight;
        // Rules 7: an anchor's word is decisive.
        let margin = self.rules >= 5
            && !slash_any_loser(self, id)
            && !(self.rules >= 7 && winner.members.iter().any(|m| self.is_anchor(m)));
        let losers: Vec<(AccountId, Hash, bool)> = groups
            .iter()
            .filter(|g| g.key != winner.key || g.failed != winner.failed)
            .flat_map(|g| {
                let decisive = !margin || winner.weight >= g.weight.saturating_add(quorum);
                g.members.iter().map(move |p| (*p, g.key.0, decisive))
            })
            .collect();
        for (loser, wrong, decisive) in losers {
            // Rules 30: a tolerant group's key is its first result's; each loser's own output
            // is the evidence against it.
            let wrong = if self.is_tolerant(id) {
                self.returned_output(id, &loser).unwrap_or(wrong)
            } else {
                wrong
            };
            events.push(Event::ResultRejected {
                task: id,
                provider: loser,
                output_hash: wrong,
                agreed_output: output_hash,
            });
            if !judged {
                continue;
            }
            if let Some(p) = self.providers.get_mut(&loser) {
                let r = &mut p.reputation;
                r.rejected = r.rejected.saturating_add(1);
                r.streak = 0;
                r.score /= 4;
            }
            self.audits.passed.remove(&loser);
            if self.rules >= 3 {
                self.distrust(loser, now, events)?;
            }
            if !slash || !decisive {
                continue;
            }
            events.extend(self.slash(
                loser,
                SlashEvidence {
                    task: id,
                    wrong_output: wrong,
                    agreed_output: output_hash,
                    agreeing: members.clone(),
                },
            )?);
            if self.rules >= 16 {
                self.reopen_lone_results(loser, id, is_map, now, events)?;
            }
        }
        // Rules 16: backtracking may have reopened maps of this very job.
        let maps_finished = maps_finished
            && self
                .jobs
                .get(&id.job)
                .is_some_and(|j| j.maps_done as usize == map_count);
        if let Some(reason) = reason {
            events.push(Event::JobFailed {
                job: id.job,
                reason: reason.clone(),
            });
            self.finish_job(id.job, JobStatus::Failed { reason }, now, events)?;
        } else if maps_finished {
            self.maps_finished(id.job, now, events)?;
        } else if !is_map
            && self
                .jobs
                .get(&id.job)
                .is_some_and(|j| j.status == JobStatus::Reducing)
        {
            // (Rules 19: unless backtracking just reopened maps of this job, dropping its
            // reduce.)
            events.push(Event::JobCompleted { job: id.job });
            self.finish_job(id.job, JobStatus::Completed, now, events)?;
        }
        Ok(())
    }
}
