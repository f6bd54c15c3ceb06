//! Rules 5: audits nobody can predict, and trust earned only from audits.
//!
//! Under the adaptive policy a trusted provider's lone result may be accepted without being run
//! again; an audit (a spot check) runs it again on another operator instead. Before rules 5 the
//! draw hashed public values only (chain id, task, provider, assignment time), so anyone following
//! the chain knew which results would be audited, and a cheater could lie exactly on the others.
//!
//! Under rules 5 every acceptance that rests on a trusted provider's weight — its lone result,
//! or its result completing a quorum with others — waits for the draw, which uses a **beacon**: the leader commits to a secret (`BLAKE3(secret)` in a
//! [`crate::LeaderCommand::Beacon`]) and reveals it in a later beacon entry, committing to the next
//! one at the same time. A trusted lone result waits (`Audits::awaiting`) for the next reveal, and
//! the reveal, mixed into the running beacon value, decides for every waiting result whether it is
//! audited. The secret was fixed before the results it decides were reported, so the leader
//! cannot pick it after seeing them, and no provider knows it before it is revealed. Every
//! validator checks a reveal against the commitment in the state. What is left: the leader itself
//! knows its secret before revealing it (a leader colluding with providers could tell them), and it
//! may withhold a reveal (a new leader replaces the commitment; waiting results wait a round
//! longer). A threshold beacon signed by a majority of the validators would close both; not done.
//!
//! The audit rate is **graduated**: a provider that has just become trusted has every lone result
//! audited, and the rate halves for every [`AUDIT_HALVING`] audits it passes, down to the network's
//! `spot_check_bps`. Only audits count (`Audits::passed`), never agreement with peers it may have
//! chosen; losing a quorum wipes the count. So a provider that turns to cheating as soon as it is
//! trusted is caught on its first lie; one that waits passes 4 audits to halve its rate and about
//! 16 to reach the floor, and each lie still risks that floor's audit. An audit is settled only
//! by a group that includes a run started after the draw (the auditor's).

use crate::command::{Event, LeaderCommand, Rejection};
use crate::ledger::BPS;
use crate::state::{State, TaskState};
use crate::types::{AccountId, Hash, TaskId, Time};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Audits a provider must pass for its audit rate to halve (rules 5).
pub const AUDIT_HALVING: u32 = 4;

/// The audit state (rules 5; empty, and left out of the state hash, before).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Audits {
    /// The current leader's commitment: the BLAKE3 hash of the secret its next reveal must be.
    pub commit: Option<Hash>,
    /// Every revealed secret, chained: `BLAKE3(previous value, secret)`.
    pub beacon: Hash,
    /// Secrets revealed so far.
    pub round: u64,
    /// Tasks whose only result, a trusted provider's, waits for the next reveal to decide whether
    /// it is audited, with that provider.
    #[serde(with = "by_task")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub awaiting: BTreeMap<TaskId, AccountId>,
    /// Tasks whose lone result the draw did not pick: it is accepted alone.
    pub cleared: BTreeSet<TaskId>,
    /// Tasks whose result the draw picked for an audit: the provider audited, and how many runs
    /// the task had then. The task is accepted only with a run started after the draw among the
    /// agreeing ones; the provider passes the audit when its result is among them too.
    #[serde(with = "by_task")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub auditing: BTreeMap<TaskId, Audit>,
    /// Audits each provider passed since it last lost a quorum.
    pub passed: BTreeMap<AccountId, u32>,
}

/// An audit drawn on a task (see [`Audits::auditing`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Audit {
    pub provider: AccountId,
    /// Runs of the task when the audit was drawn: an auditor's run comes after them.
    pub runs: u32,
}

impl Default for Audits {
    fn default() -> Self {
        Audits {
            commit: None,
            beacon: Hash([0; 32]),
            round: 0,
            awaiting: BTreeMap::new(),
            cleared: BTreeSet::new(),
            auditing: BTreeMap::new(),
            passed: BTreeMap::new(),
        }
    }
}

/// Rules 16: results reopened because their provider was caught lying on another task
/// (backtracking, see `State::reopen_lone_results` in `verify.rs`). Empty, and left out of the
/// state hash, before rules 16.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reopened {
    /// Each reopened task, with the provider whose lone result it was accepted on (paid for it
    /// then, and not paid again when another run confirms it).
    #[serde(with = "by_task")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub tasks: BTreeMap<TaskId, AccountId>,
}

/// Rules 16 and 19: for each provider, the map tasks whose accepted result it is one of the
/// providers of — an index derived from the jobs, so that a catch (`reopen_lone_results`) looks
/// at the caught provider's results instead of every task of every job that may still be
/// corrected (measured: 86% of a warm simulation's time went to that walk). It is a superset:
/// an entry whose task has since been reopened, or whose job can no longer be corrected, is
/// dropped when it is next looked at; every decision is taken from the jobs themselves. Never
/// stored nor hashed (two states that differ only here are equal): built in full from the jobs
/// the first time it is needed after a state is decoded, then kept up to date as results are
/// accepted.
#[derive(Clone, Debug, Default)]
pub struct Accepted {
    built: bool,
    tasks: BTreeMap<AccountId, BTreeSet<TaskId>>,
}

impl PartialEq for Accepted {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Accepted {}

impl Accepted {
    /// Whether the index has been built (entries are recorded only then).
    pub(crate) fn built(&self) -> bool {
        self.built
    }

    /// Builds the index from every accepted map result of `jobs`.
    pub(crate) fn build<'a>(&mut self, jobs: impl Iterator<Item = &'a crate::state::Job>) {
        self.tasks.clear();
        for job in jobs {
            for (task, providers) in Self::results(job) {
                for provider in providers {
                    self.tasks.entry(*provider).or_default().insert(task);
                }
            }
        }
        self.built = true;
    }

    /// Job `job`'s accepted map results: each task with the providers of its result.
    fn results(job: &crate::state::Job) -> impl Iterator<Item = (TaskId, &[AccountId])> {
        job.tasks
            .iter()
            .take(job.map_count())
            .enumerate()
            .filter_map(|(index, task)| {
                let result = task.result.as_ref()?;
                let index = u32::try_from(index).ok()?;
                Some((TaskId { job: job.id, index }, result.providers.as_slice()))
            })
    }

    /// Records that map task `task` was accepted on `providers`' result.
    pub(crate) fn record(&mut self, task: TaskId, providers: &[AccountId]) {
        if self.built {
            for provider in providers {
                self.tasks.entry(*provider).or_default().insert(task);
            }
        }
    }

    /// The tasks recorded for `provider`, in order (job, then index).
    pub(crate) fn of(&self, provider: &AccountId) -> Vec<TaskId> {
        self.tasks
            .get(provider)
            .map(|t| t.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Drops `provider`'s entries that `keep` refuses.
    pub(crate) fn prune(&mut self, provider: &AccountId, mut keep: impl FnMut(TaskId) -> bool) {
        if let Some(tasks) = self.tasks.get_mut(provider) {
            tasks.retain(|t| keep(*t));
            if tasks.is_empty() {
                self.tasks.remove(provider);
            }
        }
    }

    /// Drops the entries of job `job`'s results (its results became final).
    pub(crate) fn forget_job(&mut self, job: &crate::state::Job) {
        for (task, providers) in Self::results(job) {
            for provider in providers {
                self.prune(provider, |t| t != task);
            }
        }
    }
}

impl Reopened {
    /// Forgets the tasks of a job that ended.
    pub(crate) fn forget_job(&mut self, job: crate::types::JobId) {
        self.tasks.retain(|t, _| t.job != job);
    }
}

impl Audits {
    /// Forgets the tasks of a job that ended.
    pub(crate) fn forget_job(&mut self, job: crate::types::JobId) {
        self.awaiting.retain(|t, _| t.job != job);
        self.cleared.retain(|t| t.job != job);
        self.auditing.retain(|t, _| t.job != job);
    }

    /// Forgets task `id`, which ended; the provider whose result it audited, if any.
    pub(crate) fn forget_task(&mut self, id: TaskId) -> Option<AccountId> {
        self.awaiting.remove(&id);
        self.cleared.remove(&id);
        self.auditing.remove(&id).map(|a| a.provider)
    }
}

/// The secret a leader holding `seed` (derived from its private key, never logged) reveals at
/// beacon round `round` of the network `chain_id`.
pub fn beacon_secret(seed: &[u8; 32], chain_id: &str, round: u64) -> Hash {
    let mut h = blake3::Hasher::new_keyed(seed);
    h.update(b"gridmint/beacon/v1");
    h.update(chain_id.as_bytes());
    h.update(&round.to_le_bytes());
    Hash(*h.finalize().as_bytes())
}

impl State {
    /// Rules 5: the probability, in basis points, that `provider`'s lone result is audited: all
    /// of them at first, halving every [`AUDIT_HALVING`] passed audits, never below
    /// `spot_check_bps`. Rules 6: the floor doubles with every slash the provider took, so one
    /// caught lying is never again audited as rarely as one never caught.
    pub fn audit_bps(&self, provider: &AccountId) -> u32 {
        let passed = self.audits.passed.get(provider).copied().unwrap_or(0);
        let halvings = (passed / AUDIT_HALVING).min(31);
        (BPS >> halvings).max(self.audit_floor_bps(provider))
    }

    /// The lowest audit rate `provider` can reach: `spot_check_bps`, doubled (rules 6) for
    /// every slash it took, at most every result.
    pub fn audit_floor_bps(&self, provider: &AccountId) -> u32 {
        if self.rules >= 6 {
            let slashed = self
                .providers
                .get(provider)
                .map_or(0, |p| p.stats.times_slashed)
                .min(14);
            let slashed = u32::try_from(slashed).unwrap_or(14);
            self.verify
                .spot_check_bps
                .saturating_mul(1u32 << slashed)
                .min(BPS)
        } else {
            self.verify.spot_check_bps
        }
    }

    /// The beacon entry the leader holding `seed` should log now, if any: a commitment when the
    /// state holds none of its own, a reveal (with the next commitment) when results wait for
    /// one. `None` before rules 5 and when nothing waits.
    pub fn beacon_due(&self, seed: &[u8; 32]) -> Option<LeaderCommand> {
        if self.rules < 5 {
            return None;
        }
        let round = self.audits.round;
        let secret = beacon_secret(seed, &self.ledger.chain_id, round);
        let ours = self.audits.commit == Some(Hash::of(&secret.0));
        if !ours {
            return Some(LeaderCommand::Beacon {
                reveal: None,
                commit: Hash::of(&secret.0),
            });
        }
        if self.audits.awaiting.is_empty() {
            return None;
        }
        let next = beacon_secret(seed, &self.ledger.chain_id, round.saturating_add(1));
        Some(LeaderCommand::Beacon {
            reveal: Some(secret),
            commit: Hash::of(&next.0),
        })
    }

    /// Applies [`LeaderCommand::Beacon`]: checks the reveal against the commitment, draws the audit
    /// of every waiting result, and keeps the new commitment.
    pub(crate) fn beacon(
        &mut self,
        reveal: Option<Hash>,
        commit: Hash,
        now: Time,
    ) -> Result<Vec<Event>, Rejection> {
        if self.rules < 5 {
            return Err(Rejection::NeedsRules {
                what: "a beacon".into(),
                needs: 5,
                runs: self.rules,
            });
        }
        let mut events = Vec::new();
        let Some(secret) = reveal else {
            // A leader without the secret of the standing commitment (a new one) replaces it.
            self.audits.commit = Some(commit);
            return Ok(events);
        };
        if self.audits.commit != Some(Hash::of(&secret.0)) {
            return Err(Rejection::NeedsEvidence(
                "the beacon's reveal does not open the standing commitment".into(),
            ));
        }
        let mut h = blake3::Hasher::new();
        h.update(b"gridmint/beacon/chain");
        h.update(&self.audits.beacon.0);
        h.update(&secret.0);
        self.audits.beacon = Hash(*h.finalize().as_bytes());
        self.audits.round = self.audits.round.saturating_add(1);
        self.audits.commit = Some(commit);
        let waiting = std::mem::take(&mut self.audits.awaiting);
        for (id, provider) in waiting {
            let open = self
                .jobs
                .get(&id.job)
                .and_then(|j| j.tasks.get(id.index as usize))
                .is_some_and(|t| matches!(t.state, TaskState::Queued | TaskState::Running));
            if !open {
                continue;
            }
            if self.audit_drawn(id, &provider) {
                let mut runs = 0;
                if let Some(task) = self.task_mut(id) {
                    task.spot_check = true;
                    runs = u32::try_from(task.runs.len()).unwrap_or(u32::MAX);
                }
                self.audits.auditing.insert(id, Audit { provider, runs });
                events.push(Event::SpotCheck { task: id, provider });
            } else {
                self.audits.cleared.insert(id);
            }
            self.settle(id, now, &mut events)?;
        }
        Ok(events)
    }

    /// Whether the beacon as it stands picks `provider`'s lone result of task `id` for an audit.
    fn audit_drawn(&self, id: TaskId, provider: &AccountId) -> bool {
        let mut h = blake3::Hasher::new();
        h.update(b"gridmint/audit");
        h.update(self.ledger.chain_id.as_bytes());
        h.update(&self.audits.beacon.0);
        h.update(&id.job.to_le_bytes());
        h.update(&id.index.to_le_bytes());
        h.update(&provider.0);
        crate::verify::drawn_below(&h.finalize(), self.audit_bps(provider))
    }
}

/// A map keyed by task, encoded as a list of pairs (JSON keys must be strings).
pub(crate) mod by_task {
    use crate::types::TaskId;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer, V: Serialize>(
        map: &BTreeMap<TaskId, V>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(map.iter())
    }

    pub fn deserialize<'de, D: Deserializer<'de>, V: Deserialize<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<TaskId, V>, D::Error> {
        let pairs: Vec<(TaskId, V)> = Vec::deserialize(deserializer)?;
        Ok(pairs.into_iter().collect())
    }
}
