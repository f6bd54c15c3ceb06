//! The scheduling policy: which queued tasks a provider that asks for work should get.
//!
//! [`State::pick_tasks`] is pure: what the engine does not know (the time, which blobs providers
//! hold, which providers are waiting for work) comes in as a [`Dispatch`]. The engine calls it
//! itself when it applies a provider's signed fetch ([`WorkFetch`], logged), so every replay
//! derives the same choice. The rules and the reasons for their weights are in
//! `docs/scheduling.md`.
//!
//! In short, for a provider `p` asking for up to `max` tasks:
//!
//! 1. **Hard filters** ([`State::fits_job`], [`State::fits`]): memory, cores and GPU
//!    requirements; `p`'s price within the job's `max_price`; `p` bonded at least the minimum
//!    stake; no second replica of a task on `p` or its operator; and, once the job's task cost is
//!    known, `p` able to finish a task before the job's deadline.
//! 2. **Job order** ([`State::job_score`]): urgent jobs (deadline within `urgent_ms`) first, then
//!    fair share between requesters (the requester with the least service gets the next task;
//!    requesters within one quantum of the least count as equal), then data affinity (`p` holds
//!    the module) and proximity (`p` is in the job's data region), then the older job.
//! 3. **Hold** ([`State::holds`]): a young, non-urgent job is held back from `p` when a provider
//!    waiting for work right now is clearly better suited to it (speed, reputation, price,
//!    proximity, cache: [`State::suitability`]) — for at most `hold_ms` after submission.
//! 4. **How many** ([`State::batch_size`]): the free slots, plus — for short tasks — a local
//!    queue of up to `prefetch_ms` of estimated work per slot (at most `queue_per_slot` tasks per
//!    slot), so a fast provider is not idle while its report and next fetch cross the network.
//! 5. Trusted providers take re-executions (`recheck`) first: their results settle them sooner.
//! 6. Rules 26, reserved capacity ([`crate::reserve`]): where `p` leases slots to a requester,
//!    that requester's jobs go before all others (never held back) into the leased slots and
//!    their local queue, and everyone else's fit in `p`'s unleased slots only
//!    ([`State::lease_allowances`]; `assign` enforces the same split).
//! 7. Rules 26, backing: beyond one task per slot, what `p` holds is bounded by its backing
//!    ([`State::within_backing`]: worst-case payments at most [`HOLD_PER_BACKING`] times its
//!    own and delegated stake, where the network asks for stake).

use crate::command::{Event, FETCH_CACHED_MAX, Rejection, Request, Signed, WAITING_MAX, WorkFetch};
use crate::state::{Applied, Job, Provider, State};
use crate::types::{AccountId, Hash, JobId, TaskId, Time};
use crate::verify::RunOutcome;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The scheduler's tunables, set at genesis (`[scheduling]` in a genesis file) and, under rules
/// 27, by governance (`ParamChange::Scheduling`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleParams {
    /// Tasks a provider may hold beyond its slots, per slot (its local queue).
    pub queue_per_slot: u32,
    /// Estimated work per slot a provider is given beyond its free slots, in milliseconds.
    pub prefetch_ms: u64,
    /// How long after submission a job's tasks may be held back for a better-suited provider.
    pub hold_ms: u64,
    /// A waiting provider must be this much more suitable (percent) for a job to be held.
    pub hold_margin_pct: u32,
    /// A job whose deadline is closer than this is urgent: it goes first and is never held.
    pub urgent_ms: u64,
    /// A run is timed out when its provider has not reported this long after the run's wall
    /// limit (times the number of tasks queued ahead of it per slot) has passed.
    pub timeout_grace_ms: u64,
}

impl Default for ScheduleParams {
    /// The tunables of a new network: [`ScheduleParams::for_rules`] of [`crate::RULES`].
    fn default() -> Self {
        ScheduleParams::for_rules(crate::RULES)
    }
}

impl ScheduleParams {
    /// Rules 27: the bounds a governance proposal's tunables must keep (a network's genesis
    /// may set any): a local queue of 1 to 4,096 tasks per slot, prefetch and hold at most a
    /// minute, a margin of 100% to 1,000%, urgency at most a day, grace from a second to a day.
    pub fn validate(&self) -> Result<(), String> {
        const MINUTE: u64 = 60_000;
        const DAY: u64 = 86_400_000;
        if !(1..=4_096).contains(&self.queue_per_slot) {
            return Err("scheduling.queue_per_slot must be from 1 to 4096".into());
        }
        if self.prefetch_ms > MINUTE || self.hold_ms > MINUTE {
            return Err("scheduling.prefetch_ms and hold_ms are at most a minute".into());
        }
        if !(100..=1_000).contains(&self.hold_margin_pct) {
            return Err("scheduling.hold_margin_pct must be from 100 to 1000".into());
        }
        if self.urgent_ms > DAY {
            return Err("scheduling.urgent_ms is at most a day".into());
        }
        if !(1_000..=DAY).contains(&self.timeout_grace_ms) {
            return Err("scheduling.timeout_grace_ms must be from a second to a day".into());
        }
        Ok(())
    }

    /// The defaults a network created under rules `rules` got: a genesis file that names an
    /// older rules version and no `[scheduling]` gets its network's tunables back.
    pub fn for_rules(rules: u32) -> Self {
        ScheduleParams {
            queue_per_slot: if rules >= 4 { 256 } else { 64 },
            prefetch_ms: 20,
            hold_ms: 250,
            hold_margin_pct: 120,
            urgent_ms: 60_000,
            timeout_grace_ms: 10_000,
        }
    }
}

/// Fuel a provider burns per millisecond per benchmark point: the benchmark kernel costs about
/// 67 fuel per iteration and the score is iterations per millisecond.
pub const FUEL_PER_BENCHMARK_POINT: u64 = 67;
/// Fixed cost of one task beyond its fuel (instantiation, reporting), in microseconds.
pub const TASK_OVERHEAD_US: u64 = 50;

/// Job-order weights ([`State::job_score`]). Urgency outweighs everything else together, fair
/// share outweighs the locality terms together, so locality only breaks fairness ties.
pub const W_URGENT: u64 = 8_000;
pub const W_FAIR: u64 = 4_000;
pub const W_CACHED: u64 = 1_000;
pub const W_NEAR: u64 = 600;
pub const W_INPUTS: u64 = 300;
/// Rules 24: a job that prefers low-carbon providers, for a provider whose electricity is
/// under the carbon table's default: above the locality terms together, under fair share.
pub const W_LOW_CARBON: u64 = 2_000;
/// Rules 26: beyond one task per slot, a provider holds work whose worst-case payments add up
/// to at most this many times its backing (its own bonded stake and its delegators'), where the
/// network asks for stake: what it could be paid for results not yet checked stays within
/// reach of a slash, and delegators' backing is what lets it hold more.
pub const HOLD_PER_BACKING: u128 = 100;
/// Rules 26: a job whose owner leases slots of the provider: before everything else, urgent
/// jobs included (the slots are that requester's).
pub const W_RESERVED: u64 = 16_000;

/// Suitability weights ([`State::suitability`]), out of 1000.
pub const S_SPEED: u64 = 400;
pub const S_REPUTATION: u64 = 200;
pub const S_PRICE: u64 = 150;
pub const S_NEAR: u64 = 150;
pub const S_CACHED: u64 = 100;
/// Rules 24: for a job that prefers low-carbon providers, on top of the others: the whole of
/// it for electricity without carbon, none at the carbon table's default or above.
pub const S_CARBON: u64 = 600;

/// What the state does not know at the moment of a fetch: the time, and from the [`WorkFetch`]
/// entry, which blobs the providers hold and who else waits.
pub struct Dispatch<'a> {
    pub now: Time,
    /// Whether a provider holds a blob (module or input) locally.
    pub cached: &'a dyn Fn(&AccountId, &Hash) -> bool,
    /// Other providers waiting for work right now.
    pub idle: &'a [AccountId],
}

fn nothing_cached(_: &AccountId, _: &Hash) -> bool {
    false
}

impl Dispatch<'static> {
    /// A dispatch at `now` with no cache knowledge and nobody else waiting.
    pub fn at(now: Time) -> Dispatch<'static> {
        Dispatch {
            now,
            cached: &nothing_cached,
            idle: &[],
        }
    }
}

/// A job with queued tasks, as the policy sees it for one provider.
struct Candidate {
    job: JobId,
    owner: AccountId,
    score: u64,
    est_us: u64,
    exhausted: bool,
}

/// Which blobs each provider named in a [`WorkFetch`] holds: a fetch's own list, or what the
/// leader reported of a waiting provider.
type Caches = BTreeMap<AccountId, BTreeSet<Hash>>;

impl State {
    /// Applies an [`crate::Input::Fetch`]: see [`WorkFetch`].
    pub(crate) fn apply_fetch(&mut self, fetch: &WorkFetch, now: Time) -> Applied {
        let caches = fetch_caches(fetch)?;
        let mut named: Vec<AccountId> = Vec::new();
        for p in fetch
            .fetches
            .iter()
            .map(|f| f.signer)
            .chain(fetch.waiting.iter().map(|w| w.provider))
        {
            if !named.contains(&p) {
                named.push(p);
            }
        }
        let mut events: Vec<Event> = Vec::new();
        let mut served: BTreeSet<AccountId> = BTreeSet::new();
        for signed in &fetch.fetches {
            if !served.insert(signed.signer) {
                continue;
            }
            let picks = self.fetch_picks(signed, &caches, &named, now);
            if picks.is_empty() {
                continue;
            }
            // The picks fit by construction; a refusal would leave the state as it was.
            if let Ok(assigned) = self.assign(signed.signer, &picks, now) {
                events.extend(assigned);
                self.accounts.entry(signed.signer).or_default().nonce = signed.nonce;
            }
        }
        if events.is_empty() {
            return Err(Rejection::NothingToAssign);
        }
        Ok(events)
    }

    /// What one fetch of a [`WorkFetch`] gets on the current state (changes nothing): nothing
    /// for a fetch already served (its nonce is not above its signer's last), else the pick for
    /// its `max`, with the other providers of `named` waiting.
    fn fetch_picks(
        &self,
        signed: &Signed<Request>,
        caches: &Caches,
        named: &[AccountId],
        now: Time,
    ) -> Vec<TaskId> {
        let Request::Fetch { max, .. } = signed.body else {
            return Vec::new();
        };
        if signed.nonce <= self.nonce(&signed.signer) {
            return Vec::new();
        }
        let others: Vec<AccountId> = named
            .iter()
            .filter(|p| **p != signed.signer)
            .copied()
            .collect();
        let cached = |p: &AccountId, h: &Hash| caches.get(p).is_some_and(|set| set.contains(h));
        let ctx = Dispatch {
            now,
            cached: &cached,
            idle: &others,
        };
        self.pick_tasks(signed.signer, max, &ctx)
    }

    /// The tasks the first fetch of `fetch` would get if it were applied now (a dry run that
    /// changes nothing; an invalid fetch gets nothing).
    pub fn would_fetch(&self, fetch: &WorkFetch, now: Time) -> Vec<TaskId> {
        let (Ok(caches), Some(first)) = (fetch_caches(fetch), fetch.fetches.first()) else {
            return Vec::new();
        };
        let mut named: Vec<AccountId> = vec![first.signer];
        named.extend(fetch.waiting.iter().map(|w| w.provider));
        self.fetch_picks(first, &caches, &named, now)
    }

    /// Tasks that `provider` should take now, at most `max`: see the module documentation.
    pub fn pick_tasks(&self, provider: AccountId, max: u32, ctx: &Dispatch<'_>) -> Vec<TaskId> {
        let Some(p) = self.providers.get(&provider) else {
            return Vec::new();
        };
        if !self.counts_on(p) || !self.has_min_stake(&provider) {
            return Vec::new();
        }
        let capacity = self.room(p).saturating_sub(p.running.len());
        let limit = capacity
            .min(max as usize)
            .min(self.config.max_tasks_per_assignment as usize);
        let mut out = Vec::new();
        if limit == 0 {
            return out;
        }
        // Rules 26: the requesters leasing slots of `p` and what each may still be given, and
        // what everyone else may (`None`): see `crate::reserve`.
        let leased = if self.rules >= 26 {
            self.reservations.leased_by_owner(&provider)
        } else {
            BTreeMap::new()
        };
        let mut allow = self.lease_allowances(p, &leased);
        let pool_of = |owner: &AccountId| leased.contains_key(owner).then_some(*owner);
        let owner_of = |id: &TaskId| self.jobs.get(&id.job).map(|j| j.owner);
        // Re-executions first for a trusted provider, and for an anchor the disputes only it
        // may take (rules 18), in task order with the rest, as when they waited among them.
        if self.is_trusted(&provider) {
            let free = (p.spec.slots as usize).saturating_sub(p.running.len());
            let disputes = if self.is_anchor(&provider) {
                &self.disputes
            } else {
                &BTreeSet::new()
            };
            for id in self.recheck.union(disputes) {
                if out.len() >= free.min(limit) {
                    break;
                }
                let room = |allow: &mut Option<BTreeMap<Option<AccountId>, usize>>| {
                    allow.as_mut().is_none_or(|a| {
                        let left = owner_of(id).and_then(|o| a.get_mut(&pool_of(&o)));
                        left.is_some_and(|n| n.checked_sub(1).map(|m| *n = m).is_some())
                    })
                };
                if self.fits(p, *id).is_ok() && !self.retake_barred(p, *id) && room(&mut allow) {
                    out.push(*id);
                }
            }
        }
        // The waiting providers the hold rule compares against, looked up once per pick.
        let mut waiting: Option<Vec<&Provider>> = None;
        let mut candidates: Vec<Candidate> = self
            .queued_jobs()
            .filter_map(|job| self.jobs.get(&job))
            .filter(|job| self.fits_job(p, job, ctx.now).is_ok())
            .filter(|job| {
                !self.may_hold(job, ctx)
                    || leased.contains_key(&job.owner)
                    || !self.held_for(
                        p,
                        job,
                        ctx,
                        waiting.get_or_insert_with(|| self.waiting(p, ctx)),
                    )
            })
            .map(|job| Candidate {
                job: job.id,
                owner: job.owner,
                score: 0,
                est_us: self.est_us(p, job),
                exhausted: false,
            })
            .collect();
        if candidates.is_empty() {
            self.keep_within_backing(p, &mut out);
            return out;
        }
        // Service so far per requester, updated as this batch is handed out.
        let mut service: BTreeMap<AccountId, u64> = candidates
            .iter()
            .map(|c| (c.owner, self.service_of(&c.owner)))
            .collect();
        let mut want: Option<usize> = None;
        loop {
            let least = service.values().copied().min().unwrap_or(0);
            for c in candidates.iter_mut() {
                if let Some(job) = self.jobs.get(&c.job) {
                    let behind = service.get(&c.owner).copied().unwrap_or(0);
                    c.score = self.job_score(p, job, behind, least, ctx);
                    if leased.contains_key(&c.owner) {
                        c.score = c.score.saturating_add(W_RESERVED);
                    }
                }
            }
            // Ties go to the less-served requester, then to the older job.
            let served = |c: &Candidate| service.get(&c.owner).copied().unwrap_or(0);
            let Some(best) = candidates
                .iter_mut()
                .filter(|c| !c.exhausted)
                .max_by(|a, b| {
                    a.score
                        .cmp(&b.score)
                        .then(served(b).cmp(&served(a)))
                        .then(b.job.cmp(&a.job))
                })
            else {
                break;
            };
            // The batch size follows the best job's task length.
            let want = *want.get_or_insert_with(|| self.batch_size(p, best.est_us).min(limit));
            if out.len() >= want {
                break;
            }
            let owners = service.len().max(1);
            let mut chunk = want.saturating_sub(out.len()).div_ceil(owners).max(1);
            let pool = pool_of(&best.owner);
            if let Some(a) = &allow {
                chunk = chunk.min(a.get(&pool).copied().unwrap_or(0));
                if chunk == 0 {
                    best.exhausted = true;
                    continue;
                }
            }
            let before = out.len();
            self.take_from_job(p, best.job, chunk, &mut out, ctx);
            let taken = out.len().saturating_sub(before);
            if let Some(left) = allow.as_mut().and_then(|a| a.get_mut(&pool)) {
                *left = left.saturating_sub(taken);
            }
            if taken < chunk {
                best.exhausted = true;
            }
            if let Some(job) = self.jobs.get(&best.job) {
                let cost = self
                    .fuel_estimate(job)
                    .saturating_mul(u64::try_from(taken).unwrap_or(u64::MAX));
                let entry = service.entry(best.owner).or_default();
                *entry = entry.saturating_add(cost);
            }
        }
        self.keep_within_backing(p, &mut out);
        out
    }

    /// Rules 26: where `p` leases slots (`leased`: slots per requester), how many more tasks
    /// each leasing requester (`Some`) and everyone else together (`None`) may be given: its
    /// slots and their local queue, less what it holds already. `None` where nothing is leased.
    pub(crate) fn lease_allowances(
        &self,
        p: &Provider,
        leased: &BTreeMap<AccountId, u32>,
    ) -> Option<BTreeMap<Option<AccountId>, usize>> {
        if leased.is_empty() {
            return None;
        }
        let per_slot = (self.config.schedule.queue_per_slot as usize).saturating_add(1);
        let mut used: BTreeMap<Option<AccountId>, usize> = BTreeMap::new();
        for t in &p.running {
            let owner = self.jobs.get(&t.job).map(|j| j.owner);
            let pool = owner.filter(|o| leased.contains_key(o));
            let n = used.entry(pool).or_default();
            *n = n.saturating_add(1);
        }
        let left = |pool: Option<AccountId>, slots: u32| {
            (slots as usize)
                .saturating_mul(per_slot)
                .saturating_sub(used.get(&pool).copied().unwrap_or(0))
        };
        let total = leased.values().fold(0u32, |s, k| s.saturating_add(*k));
        let mut out: BTreeMap<Option<AccountId>, usize> = leased
            .iter()
            .map(|(owner, slots)| (Some(*owner), left(Some(*owner), *slots)))
            .collect();
        out.insert(None, left(None, p.spec.slots.saturating_sub(total)));
        Some(out)
    }

    /// Rules 26: the most `p` may hold in worst-case payments beyond one task per slot (see
    /// [`HOLD_PER_BACKING`]); `None` where the network asks for no stake.
    pub fn hold_limit(&self, p: &Provider) -> Option<crate::types::Amount> {
        if self.rules < 26 || self.ledger.min_stake == 0 {
            return None;
        }
        Some(self.backing(&p.id).saturating_mul(HOLD_PER_BACKING))
    }

    /// Rules 26: the most task `id` could pay `p`: its fuel limit at `p`'s price (within the
    /// job's `max_price`); nothing where a lease of `p` covers it.
    pub fn at_risk(&self, p: &Provider, id: TaskId) -> crate::types::Amount {
        let Some(job) = self.jobs.get(&id.job) else {
            return 0;
        };
        if self.covering_lease(&p.id, &job.owner).is_some() {
            return 0;
        }
        let price = self
            .price_per_fuel(p, job, Some(id.index))
            .min(job.spec.max_price);
        crate::types::Amount::from(self.task_fuel_limit(job, id.index)).saturating_mul(price)
    }

    /// Rules 26: how many of `tasks`, in order, `p` may take on top of what it holds: any that
    /// keep it within one task per slot, and beyond that as long as the worst-case payments of
    /// all it would hold stay within [`State::hold_limit`].
    pub fn within_backing(&self, p: &Provider, tasks: &[TaskId]) -> usize {
        let Some(limit) = self.hold_limit(p) else {
            return tasks.len();
        };
        let slots = p.spec.slots as usize;
        let mut held = p.running.len();
        if held.saturating_add(tasks.len()) <= slots {
            // All within one task per slot: no need to add up what it holds.
            return tasks.len();
        }
        let mut risk = p
            .running
            .iter()
            .fold(0u128, |sum, id| sum.saturating_add(self.at_risk(p, *id)));
        tasks
            .iter()
            .take_while(|id| {
                held = held.saturating_add(1);
                risk = risk.saturating_add(self.at_risk(p, **id));
                held <= slots || risk <= limit
            })
            .count()
    }

    /// Cuts `picked` where `p`'s backing stops covering it ([`State::within_backing`]).
    fn keep_within_backing(&self, p: &Provider, picked: &mut Vec<TaskId>) {
        if !picked.is_empty() {
            let keep = self.within_backing(p, picked);
            picked.truncate(keep);
        }
    }

    /// [`State::pick_tasks`] at the state's time, knowing no caches and no waiting providers.
    pub fn pick(&self, provider: AccountId, max: u32) -> Vec<TaskId> {
        self.pick_tasks(provider, max, &Dispatch::at(self.now))
    }

    /// Most tasks `p` may hold at once: its slots plus its local queue.
    pub fn capacity(&self, p: &Provider) -> usize {
        let slots = p.spec.slots as usize;
        let per_slot = self.config.schedule.queue_per_slot as usize;
        slots.saturating_add(slots.saturating_mul(per_slot))
    }

    /// Most tasks `p` may hold when it is given work: its [`State::capacity`], except, under
    /// rules 15, one for a provider that has lost a quorum and has not earned trust again since
    /// (BOINC cuts an erring host's quota alike). A caught cheater then costs the network the
    /// replicas of one task at a time, not of a slot-full and a local queue; a newcomer that
    /// never lost a quorum is not limited.
    pub fn room(&self, p: &Provider) -> usize {
        if self.rules >= 15 && p.reputation.rejected > 0 && !self.is_trusted(&p.id) {
            1
        } else {
            self.capacity(p)
        }
    }

    /// Jobs with replicas waiting in the queue, oldest first.
    pub(crate) fn queued_jobs(&self) -> impl Iterator<Item = JobId> + '_ {
        let mut next = self.queue.first().map(|t| t.job);
        std::iter::from_fn(move || {
            let job = next?;
            next = job.checked_add(1).and_then(|after| {
                self.queue
                    .range(
                        TaskId {
                            job: after,
                            index: 0,
                        }..,
                    )
                    .next()
                    .map(|t| t.job)
            });
            Some(job)
        })
    }

    /// Whether `p` must leave task `id` to others: `p`, or a provider of its operator, failed it,
    /// and another active operator that meets the job's rules and has not failed it could take
    /// it. So one provider that fails (or claims to fail) every task cannot exhaust a task's
    /// attempts alone — each failing operator costs a task at most one attempt while others
    /// remain — while a network whose every able operator failed a task still retries it there
    /// (and fails the job after `max_attempts`, as a deterministic failure should).
    pub fn retake_barred(&self, p: &Provider, id: TaskId) -> bool {
        let Some(job) = self.jobs.get(&id.job) else {
            return false;
        };
        let Some(task) = job.tasks.get(id.index as usize) else {
            return false;
        };
        let operator_of =
            |who: &AccountId| self.providers.get(who).map_or(*who, Provider::operator);
        let failed_by = |op: AccountId| {
            task.runs
                .iter()
                .any(|r| r.outcome == RunOutcome::Failed && operator_of(&r.provider) == op)
        };
        let mine = p.operator();
        if !failed_by(mine) {
            return false;
        }
        self.providers.values().any(|q| {
            self.counts_on(q)
                && q.operator() != mine
                && !failed_by(q.operator())
                && self.job_rules(q, job).is_ok()
                && self.fits_task(q, id).is_ok()
        })
    }

    /// Appends up to `n` of `job`'s queued tasks that `p` may run to `out`, those whose inputs
    /// `p` already holds first.
    fn take_from_job(
        &self,
        p: &Provider,
        job: JobId,
        n: usize,
        out: &mut Vec<TaskId>,
        ctx: &Dispatch<'_>,
    ) {
        let range = TaskId { job, index: 0 }..=TaskId {
            job,
            index: u32::MAX,
        };
        // Whether the job's tasks read inputs, judged by its next few queued tasks.
        let has_inputs = self.queue.range(range.clone()).take(8).any(|id| {
            self.jobs
                .get(&id.job)
                .and_then(|j| j.spec.tasks.get(id.index as usize))
                .is_some_and(|t| !t.inputs.is_empty())
        });
        let start = out.len();
        // Only re-executions picked first and tasks picked for their inputs can come up twice.
        let mut seen: BTreeSet<TaskId> = out.iter().copied().collect();
        let mut fits = |id: &TaskId, out: &mut Vec<TaskId>| {
            if out.len().saturating_sub(start) < n
                && (seen.is_empty() || !seen.contains(id))
                && self.fits_task(p, *id).is_ok()
                && !self.retake_barred(p, *id)
            {
                if has_inputs || !seen.is_empty() {
                    seen.insert(*id);
                }
                out.push(*id);
            }
        };
        if has_inputs {
            // Data affinity: look a little way into the job for tasks whose inputs are already
            // on the provider.
            let local = self.queue.range(range.clone()).take(256).filter(|id| {
                self.task_inputs(id)
                    .is_some_and(|hs| !hs.is_empty() && hs.iter().all(|h| (ctx.cached)(&p.id, h)))
            });
            for id in local {
                fits(id, out);
            }
        }
        for id in self.queue.range(range) {
            if out.len().saturating_sub(start) >= n {
                break;
            }
            fits(id, out);
        }
    }

    fn task_inputs(&self, id: &TaskId) -> Option<Vec<Hash>> {
        let job = self.jobs.get(&id.job)?;
        let task = job.spec.tasks.get(id.index as usize)?;
        Some(task.inputs.iter().map(|i| i.hash).collect())
    }

    /// The job-level filters of the policy: the rules ([`State::job_rules`]) and, once the job's
    /// task cost is known, whether `p` could finish a task before the job's deadline.
    pub fn fits_job(&self, p: &Provider, job: &Job, now: Time) -> Result<(), String> {
        self.job_rules(p, job)?;
        self.fast_enough(p, job, now)
    }

    /// Once the job's task cost is known: whether `p` could finish a task before its deadline —
    /// or, if it could not, nobody else could either. A provider too slow for the deadline is
    /// kept off only while another active provider that meets the job's rules could finish in
    /// time: when none can (a tight deadline, or an estimate inflated by a lying report), the
    /// job runs late rather than not at all.
    fn fast_enough(&self, p: &Provider, job: &Job, now: Time) -> Result<(), String> {
        if job.fuel_accepted == 0 || self.finishes_in_time(p, job, now) {
            return Ok(());
        }
        let faster = self.providers.values().any(|q| {
            q.id != p.id
                && self.counts_on(q)
                && self.finishes_in_time(q, job, now)
                && self.job_rules(q, job).is_ok()
        });
        if faster {
            return Err("the provider is too slow to finish a task before the deadline".into());
        }
        Ok(())
    }

    /// Whether `p` could finish one of `job`'s tasks before the deadline at its benchmarked
    /// speed, the task's cost taken as the mean of the accepted results — but never above the
    /// task's fuel limit, which no honest result exceeds.
    fn finishes_in_time(&self, p: &Provider, job: &Job, now: Time) -> bool {
        let fuel = self.fuel_estimate(job).min(job.spec.limits.fuel);
        let per_ms = self.fuel_per_ms(p, job);
        let ms = TASK_OVERHEAD_US.saturating_add(
            fuel.saturating_mul(1000)
                .checked_div(per_ms)
                .unwrap_or(u64::MAX),
        ) / 1000;
        now.saturating_add(ms) <= job.spec.deadline
    }

    /// The job-level rules every assignment must meet: requirements, memory, price and stake.
    pub fn job_rules(&self, p: &Provider, job: &Job) -> Result<(), String> {
        self.requirements_met(p, job)?;
        self.sealed_to(&p.id, job.id)?;
        self.gpu_fits(p, job)?;
        if !self.has_min_stake(&p.id) {
            return Err(format!(
                "provider has {} bonded, below the minimum stake {}",
                self.backing(&p.id),
                self.ledger.min_stake
            ));
        }
        Ok(())
    }

    /// The job's requirements, memory and price against `p`'s spec (stake aside).
    fn requirements_met(&self, p: &Provider, job: &Job) -> Result<(), String> {
        let need = &job.spec.requirements;
        if need.cores > p.spec.cores {
            return Err(format!(
                "needs {} cores, provider has {}",
                need.cores, p.spec.cores
            ));
        }
        if need.gpu && p.spec.gpu.is_none() {
            return Err("needs a GPU, provider declares none".into());
        }
        if job.spec.limits.memory_bytes > p.spec.memory_bytes {
            return Err(format!(
                "needs {} bytes of memory, provider has {}",
                job.spec.limits.memory_bytes, p.spec.memory_bytes
            ));
        }
        let price = self.price_per_fuel(p, job, None);
        // Rules 26: a lease of the job's owner pays for its tasks on `p`, whatever its price.
        if price > job.spec.max_price && self.covering_lease(&p.id, &job.owner).is_none() {
            return Err(format!(
                "provider asks {price} per fuel, job pays at most {}",
                job.spec.max_price
            ));
        }
        Ok(())
    }

    /// Fuel one of `job`'s tasks is expected to burn: the mean of its accepted results, or its
    /// fuel limit until there are any.
    pub fn fuel_estimate(&self, job: &Job) -> u64 {
        match u64::from(job.maps_done) {
            0 => job.spec.limits.fuel,
            done => job.fuel_accepted.checked_div(done).unwrap_or(0),
        }
    }

    /// Expected time for `p` to run one of `job`'s tasks, in microseconds.
    pub fn est_us(&self, p: &Provider, job: &Job) -> u64 {
        let per_ms = self.fuel_per_ms(p, job);
        let fuel_us = self
            .fuel_estimate(job)
            .saturating_mul(1000)
            .checked_div(per_ms)
            .unwrap_or(u64::MAX);
        TASK_OVERHEAD_US.saturating_add(fuel_us)
    }

    /// Tasks to give `p` now when each is expected to take `est_us`: its free slots plus up to
    /// `prefetch_ms` of work per slot, within its local queue.
    pub fn batch_size(&self, p: &Provider, est_us: u64) -> usize {
        let slots = p.spec.slots as usize;
        let free = slots.saturating_sub(p.running.len());
        let queued = p.running.len().saturating_sub(slots);
        let per_slot = self
            .config
            .schedule
            .prefetch_ms
            .saturating_mul(1000)
            .checked_div(est_us.max(1))
            .unwrap_or(0);
        let ahead = usize::try_from(per_slot)
            .unwrap_or(usize::MAX)
            .min(self.config.schedule.queue_per_slot as usize)
            .saturating_mul(slots)
            .saturating_sub(queued);
        free.saturating_add(ahead)
            .min(self.room(p).saturating_sub(p.running.len()))
    }

    /// Service requesters have received: the estimated fuel of the tasks dispatched for them.
    pub fn service_of(&self, owner: &AccountId) -> u64 {
        self.service.get(owner).copied().unwrap_or(0)
    }

    /// Whether `job`'s deadline is within `urgent_ms` of `now`.
    pub fn is_urgent(&self, job: &Job, now: Time) -> bool {
        job.spec.deadline.saturating_sub(now) < self.config.schedule.urgent_ms
    }

    /// How much `job` should go to `p` next, given its owner's service `behind` and the least
    /// service among requesters with queued work.
    fn job_score(
        &self,
        p: &Provider,
        job: &Job,
        behind: u64,
        least: u64,
        ctx: &Dispatch<'_>,
    ) -> u64 {
        let mut score = 0u64;
        if self.is_urgent(job, ctx.now) {
            // Earliest deadline first among urgent jobs.
            let left = job.spec.deadline.saturating_sub(ctx.now);
            let closeness = self
                .config
                .schedule
                .urgent_ms
                .saturating_sub(left)
                .saturating_mul(999)
                .checked_div(self.config.schedule.urgent_ms.max(1))
                .unwrap_or(0);
            score = score.saturating_add(W_URGENT).saturating_add(closeness);
        }
        // One quantum: a full batch of this job for this provider.
        let quantum = self
            .fuel_estimate(job)
            .saturating_mul(u64::from(p.spec.slots.max(1)))
            .max(1);
        if behind.saturating_sub(least) <= quantum {
            score = score.saturating_add(W_FAIR);
        }
        if (ctx.cached)(&p.id, &job.spec.module) {
            score = score.saturating_add(W_CACHED);
        }
        if self.near(p, job) == Some(true) {
            score = score.saturating_add(W_NEAR);
        }
        if job
            .spec
            .tasks
            .iter()
            .take(16)
            .any(|t| !t.inputs.is_empty() && t.inputs.iter().all(|i| (ctx.cached)(&p.id, &i.hash)))
        {
            score = score.saturating_add(W_INPUTS);
        }
        if self.prefers_low_carbon(job.id) && self.low_carbon(p) {
            score = score.saturating_add(W_LOW_CARBON);
        }
        score
    }

    /// Whether `p` is in the region where `job`'s data lives (`None`: the job names none).
    fn near(&self, p: &Provider, job: &Job) -> Option<bool> {
        job.spec
            .requirements
            .region
            .as_ref()
            .map(|r| *r == p.spec.region)
    }

    /// How well `q` suits `job`, out of 1000, relative to the fastest of `peers` (`fastest`: its
    /// `State::speed_score` on the job): speed 400, reputation 200, price 150, proximity 150,
    /// holding the module 100.
    pub fn suitability(&self, q: &Provider, job: &Job, fastest: u64, ctx: &Dispatch<'_>) -> u64 {
        let speed = self
            .speed_score(q, job)
            .min(fastest)
            .saturating_mul(S_SPEED)
            .checked_div(fastest)
            .unwrap_or(S_SPEED);
        let reputation = u64::from(q.reputation.score)
            .saturating_mul(S_REPUTATION)
            .checked_div(u64::from(crate::MAX_SCORE))
            .unwrap_or(0);
        let left = job
            .spec
            .max_price
            .saturating_sub(self.price_per_fuel(q, job, None));
        let price = left
            .saturating_mul(u128::from(S_PRICE))
            .checked_div(job.spec.max_price)
            .map_or(S_PRICE, |p| u64::try_from(p).unwrap_or(S_PRICE));
        let near = match self.near(q, job) {
            Some(true) | None => S_NEAR,
            Some(false) => 0,
        };
        let cached = if (ctx.cached)(&q.id, &job.spec.module) {
            S_CACHED
        } else {
            0
        };
        // Rules 24: how far under the table's default its electricity is.
        let carbon = if self.prefers_low_carbon(job.id) {
            let reference = u64::from(self.energy.table.default_grams_per_kwh);
            reference
                .saturating_sub(u64::from(self.grams_per_kwh_of(q)))
                .saturating_mul(S_CARBON)
                .checked_div(reference)
                .unwrap_or(0)
        } else {
            0
        };
        speed
            .saturating_add(reputation)
            .saturating_add(price)
            .saturating_add(near)
            .saturating_add(cached)
            .saturating_add(carbon)
    }

    /// Whether `job` is held back from `p` for a waiting provider that suits it clearly better.
    pub fn holds(&self, p: &Provider, job: &Job, ctx: &Dispatch<'_>) -> bool {
        self.may_hold(job, ctx) && self.held_for(p, job, ctx, &self.waiting(p, ctx))
    }

    /// Whether `job` is young and not urgent, with somebody waiting: only then can it be held.
    fn may_hold(&self, job: &Job, ctx: &Dispatch<'_>) -> bool {
        !ctx.idle.is_empty()
            && !self.is_urgent(job, ctx.now)
            && ctx.now
                < job
                    .submitted_at
                    .saturating_add(self.config.schedule.hold_ms)
    }

    /// The first 64 waiting providers other than `p` that are active, staked and have a free
    /// slot: the job-independent part of the hold rule's comparison set.
    fn waiting(&self, p: &Provider, ctx: &Dispatch<'_>) -> Vec<&Provider> {
        ctx.idle
            .iter()
            .filter(|q| **q != p.id)
            .take(64)
            .filter_map(|q| self.providers.get(q))
            .filter(|q| {
                self.counts_on(q)
                    && q.running.len() < q.spec.slots as usize
                    && self.has_min_stake(&q.id)
            })
            .collect()
    }

    /// The hold rule for one job against the waiting providers (see [`State::holds`]).
    fn held_for(&self, p: &Provider, job: &Job, ctx: &Dispatch<'_>, waiting: &[&Provider]) -> bool {
        let others: Vec<&Provider> = waiting
            .iter()
            .copied()
            // Stake was checked once for all jobs in `waiting`.
            .filter(|q| {
                self.requirements_met(q, job).is_ok() && self.fast_enough(q, job, ctx.now).is_ok()
            })
            .collect();
        let fastest = others
            .iter()
            .map(|q| self.speed_score(q, job))
            .chain(std::iter::once(self.speed_score(p, job)))
            .max()
            .unwrap_or(0);
        let mine = self.suitability(p, job, fastest, ctx);
        let bar = mine.saturating_mul(u64::from(self.config.schedule.hold_margin_pct)) / 100;
        others
            .iter()
            .any(|q| self.suitability(q, job, fastest, ctx) > bar)
    }
}

/// The blobs each provider named in `fetch` holds, after checking the fetch's shape: only
/// fetches, at most [`WAITING_MAX`] of them and of waiting providers, each listing at most
/// [`FETCH_CACHED_MAX`] blobs.
fn fetch_caches(fetch: &WorkFetch) -> Result<Caches, Rejection> {
    if fetch.fetches.is_empty() {
        return Err(Rejection::InvalidFetch("it holds no fetch".into()));
    }
    if fetch.fetches.len() > WAITING_MAX || fetch.waiting.len() > WAITING_MAX {
        return Err(Rejection::InvalidFetch(format!(
            "{} fetches and {} waiting providers; at most {WAITING_MAX} of each",
            fetch.fetches.len(),
            fetch.waiting.len()
        )));
    }
    let mut caches = Caches::new();
    for signed in &fetch.fetches {
        let Request::Fetch { cached, .. } = &signed.body else {
            return Err(Rejection::InvalidFetch(format!(
                "the request of {} (nonce {}) is not a fetch",
                signed.signer, signed.nonce
            )));
        };
        if cached.len() > FETCH_CACHED_MAX {
            return Err(Rejection::InvalidFetch(format!(
                "{} cached blobs listed; at most {FETCH_CACHED_MAX}",
                cached.len()
            )));
        }
        caches
            .entry(signed.signer)
            .or_default()
            .extend(cached.iter().copied());
    }
    for w in &fetch.waiting {
        if w.cached.len() > FETCH_CACHED_MAX {
            return Err(Rejection::InvalidFetch(format!(
                "{} cached blobs listed for a waiting provider; at most {FETCH_CACHED_MAX}",
                w.cached.len()
            )));
        }
        caches
            .entry(w.provider)
            .or_default()
            .extend(w.cached.iter().copied());
    }
    Ok(caches)
}

/// Rules 3: a run is a straggler once it has run this many times its provider's expected time
/// for the task ([`State::est_us`]) ...
pub const STRAGGLER_FACTOR: u64 = 3;
/// ... plus this long (and the provider's local queue, `prefetch_ms`), in milliseconds.
pub const STRAGGLER_SLACK_MS: u64 = 5_000;
/// Most speculative replicas one [`crate::LeaderCommand::Speculate`] queues (and so, as none is
/// issued while anything is queued, most waiting at once).
pub const SPECULATE_MAX: usize = 32;

/// Why a task is not straggling ([`State::straggling`] puts it in words).
enum NotStraggling {
    Ended,
    Queued,
    Runs,
    Early {
        elapsed: u64,
        expected: u64,
        allowed: u64,
    },
}

impl State {
    /// Whether task `id` may get a speculative replica at `now` (rules 3): its job is running,
    /// nothing is queued for it, its only run is still running (a task being verified is left
    /// to its policy), and that run has taken more than [`STRAGGLER_FACTOR`] times its
    /// provider's expected time for the job's tasks plus [`STRAGGLER_SLACK_MS`] and the
    /// provider's `prefetch_ms` — a stalled, overloaded or misreported machine. `Ok((elapsed,
    /// expected))` in milliseconds, or why not.
    pub fn straggling(&self, id: TaskId, now: Time) -> Result<(u64, u64), String> {
        self.straggle(id, now).map_err(|why| match why {
            NotStraggling::Ended => "its job or its run has ended, or it is unknown".into(),
            NotStraggling::Queued => "it has replicas queued".into(),
            NotStraggling::Runs => "it has more than one run, or none".into(),
            NotStraggling::Early {
                elapsed,
                expected,
                allowed,
            } => format!(
                "running {elapsed} ms, expected {expected} ms (a straggler after {allowed} ms)"
            ),
        })
    }

    /// [`State::straggling`] without the words (the timer asks it of every running task).
    fn straggle(&self, id: TaskId, now: Time) -> Result<(u64, u64), NotStraggling> {
        let job = self.jobs.get(&id.job).ok_or(NotStraggling::Ended)?;
        if job.status.is_finished() {
            return Err(NotStraggling::Ended);
        }
        let task = job
            .tasks
            .get(id.index as usize)
            .ok_or(NotStraggling::Ended)?;
        if task.queued > 0 {
            return Err(NotStraggling::Queued);
        }
        let mut counted = task.runs.iter().filter(|r| r.counts());
        let (Some(run), None) = (counted.next(), counted.next()) else {
            return Err(NotStraggling::Runs);
        };
        if run.outcome != RunOutcome::Running {
            return Err(NotStraggling::Ended);
        }
        let p = self
            .providers
            .get(&run.provider)
            .ok_or(NotStraggling::Ended)?;
        let expected = self.est_us(p, job).div_ceil(1000);
        let allowed = expected
            .saturating_mul(STRAGGLER_FACTOR)
            .saturating_add(STRAGGLER_SLACK_MS)
            .saturating_add(self.config.schedule.prefetch_ms);
        let elapsed = now.saturating_sub(run.started);
        if elapsed <= allowed {
            return Err(NotStraggling::Early {
                elapsed,
                expected,
                allowed,
            });
        }
        Ok((elapsed, expected))
    }

    /// The tasks the leader's timer may speculate on at `now` ([`crate::LeaderCommand::Speculate`]):
    /// none while anything waits in the queue (a speculative replica would take a slot from
    /// queued work) or under rules before 3; the longest-running first, no more than idle
    /// providers have free slots (so no replica waits for a provider) nor [`SPECULATE_MAX`].
    pub fn stragglers(&self, now: Time) -> Vec<TaskId> {
        if self.rules < 3 || !self.queue.is_empty() {
            return Vec::new();
        }
        let free: usize = self
            .providers
            .values()
            .filter(|p| self.counts_on(p) && self.has_min_stake(&p.id))
            .map(|p| (p.spec.slots as usize).saturating_sub(p.running.len()))
            .fold(0, usize::saturating_add);
        if free == 0 {
            return Vec::new();
        }
        // A straggling task has one run, so it is listed once (no need to deduplicate).
        let mut found: Vec<(u64, TaskId)> = Vec::new();
        for p in self.providers.values() {
            for id in &p.running {
                if let Ok((elapsed, _)) = self.straggle(*id, now) {
                    found.push((elapsed, *id));
                }
            }
        }
        found.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        found
            .into_iter()
            .take(free.min(SPECULATE_MAX))
            .map(|(_, id)| id)
            .collect()
    }

    /// Applies [`crate::LeaderCommand::Speculate`]: checks every task is straggling, then queues
    /// one replica of each.
    pub(crate) fn speculate(&mut self, tasks: &[TaskId], now: Time) -> Applied {
        if self.rules < 3 {
            return Err(Rejection::NeedsRules {
                what: "speculative replicas".into(),
                needs: 3,
                runs: self.rules,
            });
        }
        self.check_task_list(
            tasks.iter().copied(),
            "no tasks to speculate on",
            "tasks in one speculation",
        )?;
        if tasks.len() > SPECULATE_MAX {
            return Err(Rejection::TooLarge(format!(
                "{} tasks in one speculation (at most {SPECULATE_MAX})",
                tasks.len()
            )));
        }
        if !self.queue.is_empty() {
            return Err(Rejection::NotStraggling {
                task: tasks
                    .first()
                    .copied()
                    .unwrap_or(TaskId { job: 0, index: 0 }),
                why: "other work waits in the queue".into(),
            });
        }
        for id in tasks {
            self.straggling(*id, now)
                .map_err(|why| Rejection::NotStraggling { task: *id, why })?;
        }
        let mut events = Vec::with_capacity(tasks.len());
        for &id in tasks {
            if let Some(task) = self.task_mut(id) {
                task.queued = 1;
            }
            self.queue.insert(id);
            self.recheck.insert(id);
            events.push(Event::ReplicasQueued {
                task: id,
                queued: 1,
                reason: "straggler: its only run is overdue".into(),
            });
        }
        Ok(events)
    }
}
