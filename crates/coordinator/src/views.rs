//! Read-only views of engine state, as served by the API.

use api::wire::{
    AccountView, BackingView, DelegationUnbondingView, DelegationView, JobView, NetworkView,
    ProviderView, StatusView, TaskView, UnbondingView,
};
use engine::{
    AccountId, DECIMALS, Hash, Job, JobStatus, Provider, ProviderStatus, RunOutcome, State,
    TOKEN_SYMBOL, TaskId, TaskState,
};
use std::collections::BTreeMap;

/// A `/v1/status` view as computed at `at` (`(applied, log length)`), and what computing it cost.
pub struct StatusCache {
    at: (u64, u64),
    computed: std::time::Instant,
    took: std::time::Duration,
    view: StatusView,
}

/// How many times its own cost a status computation stays current while the state changes: the
/// state hash of a big state takes tens to hundreds of milliseconds under the node lock, so
/// recomputing it at most once per this many times its cost keeps readers to a twentieth of the
/// lock, whatever their number.
const STATUS_REUSE: u32 = 19;

/// A status cheaper than this to compute is always computed afresh.
const STATUS_CHEAP: std::time::Duration = std::time::Duration::from_millis(2);

impl StatusCache {
    /// Whether it may be served although the state may have changed since: it was costly
    /// ([`STATUS_CHEAP`] or more) and computed less than [`STATUS_REUSE`] times its cost ago.
    fn recent(&self) -> bool {
        self.took >= STATUS_CHEAP && self.computed.elapsed() < self.took * STATUS_REUSE
    }
}

/// The status of `node`, from `cache` when the state has not changed since it was computed, or
/// when it is [`StatusCache::recent`] (then it may be a little behind:
/// its hash, counts and `log_length` are still of one and the same state). The role fields are
/// always current.
pub fn status_cached(
    cache: &std::sync::Mutex<Option<StatusCache>>,
    node: &crate::node::Node,
    role: &crate::consensus::Role,
) -> StatusView {
    let at = (node.state.applied, node.log_len());
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = cache.as_ref()
        && (c.at == at || c.recent())
    {
        return with_role(c.view.clone(), role);
    }
    let start = std::time::Instant::now();
    let view = status(&node.state, node.state_hash(), at.1, role);
    let took = start.elapsed();
    tracing::debug!(took_ms = took.as_millis() as u64, "status computed");
    *cache = Some(StatusCache {
        at,
        computed: std::time::Instant::now(),
        took,
        view: view.clone(),
    });
    with_role(view, role)
}

/// The cached status if it is [`StatusCache::recent`], without the node (the state may have
/// changed since: see [`status_cached`]).
pub fn status_recent(
    cache: &std::sync::Mutex<Option<StatusCache>>,
    role: &crate::consensus::Role,
) -> Option<StatusView> {
    let cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    let c = cache.as_ref()?;
    c.recent().then(|| with_role(c.view.clone(), role))
}

fn with_role(mut view: StatusView, role: &crate::consensus::Role) -> StatusView {
    view.clock = crate::now_ms().max(view.now);
    view.validator = Some(role.validator);
    view.role = role.name.to_string();
    view.leader = role.leader_id;
    view.leader_url = role.leader_url.clone();
    view.term = role.term;
    view
}

pub fn status(
    state: &State,
    state_hash: Hash,
    log_length: u64,
    role: &crate::consensus::Role,
) -> StatusView {
    StatusView {
        now: state.now,
        clock: crate::now_ms().max(state.now),
        log_length,
        state_hash,
        providers_active: state
            .providers
            .values()
            .filter(|p| p.status == ProviderStatus::Active)
            .count() as u64,
        providers_total: state.providers.len() as u64,
        jobs_total: state.jobs.len() as u64,
        jobs_unfinished: state
            .jobs
            .values()
            .filter(|j| !j.status.is_finished())
            .count() as u64,
        // Audit replicas (rules 6) wait among the re-executions, outside the queue.
        tasks_queued: state
            .queue
            .iter()
            .chain(state.recheck.difference(&state.queue))
            .chain(&state.disputes)
            .count() as u64,
        validator: Some(role.validator),
        role: role.name.to_string(),
        leader: role.leader_id,
        leader_url: role.leader_url.clone(),
        term: role.term,
    }
}

/// `warning`: [`State::job_outlook`] of the job. `tasks`: `(from, limit)` of the page of
/// per-task detail to include, if any.
pub fn job(
    state: &State,
    job: &Job,
    tasks: Option<(u32, u32)>,
    warning: Option<String>,
) -> JobView {
    let mut per_provider: BTreeMap<_, u64> = BTreeMap::new();
    let (mut done, mut running, mut queued, mut fuel) = (0, 0, 0, 0u64);
    let mut executions = 0u64;
    for task in &job.tasks {
        match task.state {
            TaskState::Done => done += 1,
            TaskState::Running => running += 1,
            TaskState::Queued => queued += 1,
            TaskState::Failed | TaskState::Dropped => {}
        }
        executions += task.executions() as u64;
        if let Some(r) = &task.result {
            for p in &r.providers {
                *per_provider.entry(*p).or_default() += 1;
            }
            fuel = fuel.saturating_add(r.fuel_used);
        }
    }
    let total = match (&job.status, &job.spec.aggregate) {
        // The reduce task is counted from the start so that progress never goes backwards.
        (JobStatus::Running, engine::Aggregate::Reduce(_)) => job.tasks.len() + 1,
        _ => job.tasks.len(),
    };
    let page = tasks.map(|(from, limit)| (from as usize, limit as usize));
    let tasks_next = page.and_then(|(from, limit)| {
        let next = from.saturating_add(limit);
        (next < job.tasks.len()).then(|| u32::try_from(next).ok())?
    });
    let tasks = if let Some((from, limit)) = page {
        job.tasks
            .iter()
            .enumerate()
            .skip(from)
            .take(limit)
            .map(|(i, t)| TaskView {
                task: TaskId {
                    job: job.id,
                    index: i as u32,
                },
                state: match t.state {
                    TaskState::Queued => "queued",
                    TaskState::Running => "running",
                    TaskState::Done => "done",
                    TaskState::Failed => "failed",
                    TaskState::Dropped => "dropped",
                }
                .into(),
                providers: match &t.result {
                    Some(r) => r.providers.clone(),
                    None => t
                        .runs
                        .iter()
                        .filter(|r| r.outcome == RunOutcome::Running)
                        .map(|r| r.provider)
                        .collect(),
                },
                queued: t.queued,
                runs: t.runs.clone(),
                failures: t.failures,
                last_error: t.last_error.clone(),
                output_hash: t.result.as_ref().map(|r| r.output_hash),
                fuel_used: t.result.as_ref().map(|r| r.fuel_used),
                exit_status: t.result.as_ref().map(|_| {
                    state.accepted_status(TaskId {
                        job: job.id,
                        index: i as u32,
                    })
                }),
            })
            .collect()
    } else {
        Vec::new()
    };
    JobView {
        id: job.id,
        owner: job.owner,
        status: job.status.clone(),
        tasks_total: total as u64,
        tasks_next,
        tasks_done: done,
        tasks_running: running,
        tasks_queued: queued,
        submitted_at: job.submitted_at,
        finished_at: job.finished_at,
        deadline: job.spec.deadline,
        fuel_used: fuel,
        tasks_per_provider: per_provider,
        redundancy: job.spec.redundancy,
        executions,
        output: job.output_parts(),
        escrow: job.escrow.clone(),
        tasks,
        warning,
        reopened: state
            .reopened
            .tasks
            .keys()
            .filter(|t| t.job == job.id)
            .count() as u64,
        corrected: u64::from(state.corrected.get(&job.id).copied().unwrap_or(0)),
        final_at: job
            .finished_at
            .filter(|_| state.correctable(job.id))
            .map(|f| f.saturating_add(state.storage.params.as_ref().map_or(0, |p| p.retention_ms))),
        storage: state.storage.jobs.get(&job.id).cloned(),
        success_exits: state
            .options
            .jobs
            .get(&job.id)
            .map(|o| o.success_exits.clone())
            .unwrap_or_default(),
        entry: state.entry(job.id).map(str::to_string),
        private: state
            .job_sealing(job.id)
            .map(|sealing| api::wire::PrivateView {
                key_check: sealing.key_check,
                providers: sealing.providers().copied().collect(),
            }),
        gpu: state.gpu_job(job.id).cloned(),
        gpu_class: state.gpu_class(job.id).map(str::to_string),
        gpu_tolerance: state.tolerance(job.id).copied(),
        energy: (state.rules >= 24).then(|| state.job_energy(job.id)),
        prefer_low_carbon: state.prefers_low_carbon(job.id),
    }
}

pub fn provider(state: &State, p: &Provider) -> ProviderView {
    ProviderView {
        reputation: p.reputation.clone(),
        trusted: state.is_trusted(&p.id),
        bonded: state.bonded(&p.id),
        audits_passed: state.audits.passed.get(&p.id).copied().unwrap_or(0),
        audit_bps: state.audit_bps(&p.id),
        audit_floor_bps: state.audit_floor_bps(&p.id),
        gpu_offer: state.gpu_offer(&p.id).cloned(),
        suspended: if state.is_suspended(&p.id) {
            state.energy.providers[&p.id].suspended.clone()
        } else {
            Vec::new()
        },
        grams_per_kwh: (state.rules >= 24).then(|| state.grams_per_kwh_of(p)),
        backing: backing(state, &p.id),
        gpu_class: state.gpu_class_of(&p.id),
        gpu_class_pending: state.gpu_class_pending(&p.id).map(|c| c.class.clone()),
        id: p.id,
        spec: p.spec.clone(),
        status: p.status,
        registered_at: p.registered_at,
        running: p.running.len() as u64,
        stats: p.stats.clone(),
    }
}

/// Rules 28: the proven GPU classes and the pending claims, of class `class` only and/or of
/// provider `provider` only; with `member`, of the proven entries only the member's own, and
/// at most [`api::wire::MAX_CLASS_CLAIMS`] pending claims, the oldest first (what a provider
/// polls: it does not grow with the class's members).
pub fn gpu_classes(
    state: &State,
    class: Option<&str>,
    provider: Option<AccountId>,
    member: Option<AccountId>,
) -> api::wire::GpuClassesView {
    let wanted = |p: &AccountId, c: &str| {
        provider.is_none_or(|want| want == *p) && class.is_none_or(|want| want == c)
    };
    let classes = state.gpu_classes();
    let mut pending: Vec<_> = classes
        .pending
        .iter()
        .filter(|(p, c)| wanted(p, &c.class))
        .collect();
    if let Some(member) = member {
        // Its own claim first, then the oldest.
        pending.sort_by_key(|(p, c)| (**p != member, c.since, **p));
        pending.truncate(api::wire::MAX_CLASS_CLAIMS);
    }
    api::wire::GpuClassesView {
        now: state.now,
        proven: classes
            .proven
            .iter()
            .filter(|(p, c)| wanted(p, &c.class) && member.is_none_or(|m| m == **p))
            .map(|(p, c)| api::wire::ProvenClassView {
                provider: *p,
                class: c.class.clone(),
                by: c.by,
                at: c.at,
            })
            .collect(),
        pending: pending
            .into_iter()
            .map(|(p, c)| api::wire::PendingClassView {
                provider: *p,
                operator: state
                    .providers
                    .get(p)
                    .map_or(*p, |pr| pr.spec.operator_of(*p)),
                class: c.class.clone(),
                since: c.since,
                checked_by: c.checked_by.iter().copied().collect(),
                challenge: c
                    .challenge
                    .as_ref()
                    .map(|open| api::wire::ClassChallengeView {
                        checker: open.checker,
                        challenge: open.challenge,
                        commitment: open.commitment,
                        at: open.at,
                        due: open.due(),
                    }),
            })
            .collect(),
    }
}

/// The pool backing `id` (a provider or a validator), if it has one.
pub fn backing(state: &State, id: &AccountId) -> Option<BackingView> {
    state.pool(id).map(|pool| BackingView {
        own: state.bonded(id),
        delegated: pool.tokens,
        delegators: pool.delegators,
        commission_bps: pool.commission_bps,
        unbonding: pool.unbonding_total().unwrap_or_default(),
        rewards_paid: pool.rewards_total,
        commission_earned: pool.commission_total,
        slashed: pool.slashed_total,
        return_day_bps: pool.return_bps(state.now, DAY_MS),
        return_week_bps: pool.return_bps(state.now, 7 * DAY_MS),
    })
}

/// Rules 27: the validators, their backing and earnings, and the fees' next payout.
pub fn validators(state: &State) -> api::wire::ValidatorsView {
    let staking = (state.rules >= 27).then(|| state.staking_params());
    api::wire::ValidatorsView {
        next_payout_at: staking.as_ref().map(|s| {
            state
                .staking
                .last_payout
                .saturating_add(s.validator_payout_every_ms)
        }),
        staking,
        fees_collected: state.staking.fees_collected,
        validators: state
            .validators
            .set
            .validators
            .iter()
            .map(|v| api::wire::ValidatorView {
                account: v.account,
                address: v.address.clone(),
                power: v.power,
                bonded: state.bonded(&v.account),
                earned: state
                    .staking
                    .validator_earned
                    .get(&v.account)
                    .copied()
                    .unwrap_or(0),
                backing: backing(state, &v.account),
            })
            .collect(),
    }
}

pub fn account(state: &State, id: AccountId) -> AccountView {
    let account = state.accounts.get(&id).cloned().unwrap_or_default();
    let in_escrow = state
        .jobs
        .values()
        .filter(|j| j.owner == id)
        .fold(0u128, |sum, j| sum.saturating_add(j.escrow.held()));
    let in_storage = state
        .storage
        .jobs
        .iter()
        .filter(|(job, s)| {
            s.released_at.is_none() && state.jobs.get(job).is_some_and(|j| j.owner == id)
        })
        .fold(0u128, |sum, (_, s)| sum.saturating_add(s.deposit));
    let reservations = &state.reservations;
    let in_reservations = reservations
        .reservations
        .values()
        .filter(|r| r.owner == id)
        .fold(0u128, |sum, r| {
            reservations
                .leases_of(r.id)
                .iter()
                .fold(sum.saturating_add(r.open_held), |s, (_, l)| {
                    s.saturating_add(l.held)
                })
        });
    AccountView {
        id,
        nonce: account.nonce,
        balance: account.balance,
        bonded: account.bonded,
        unbonding: account
            .unbonding
            .iter()
            .map(|u| UnbondingView {
                amount: u.amount,
                release_at: u.release_at,
            })
            .collect(),
        in_escrow,
        in_storage,
        delegations: state
            .delegations_of(&id)
            .into_iter()
            .filter_map(|(provider, d)| {
                let pool = state.pool(&provider)?;
                Some(DelegationView {
                    provider,
                    amount: pool.value(d.shares).unwrap_or(0),
                    shares: d.shares,
                    rewards: state.pending_rewards(&id, &provider),
                    commission_bps: pool.commission_bps,
                })
            })
            .collect(),
        delegation_unbonding: state
            .delegation_unbonding(&id)
            .into_iter()
            .map(|(provider, u)| DelegationUnbondingView {
                provider,
                amount: u.amount,
                release_at: u.release_at,
            })
            .collect(),
        in_reservations,
        backing: backing(state, &id),
    }
}

/// Rules 25: proposal `id` with its tally (final, or as the votes weigh now).
pub fn proposal(state: &State, id: u64) -> Option<api::wire::ProposalView> {
    let proposal = state.governance.proposals.get(&id)?.clone();
    let tally = match &proposal.tally {
        Some(t) => t.clone(),
        None => state.proposal_tally(id)?,
    };
    let effective_at = state.gov_schedule.effective_at.get(&id).copied();
    Some(api::wire::ProposalView {
        proposal,
        tally,
        effective_at,
    })
}

/// Rules 25: the governance parameters and the newest proposals.
pub fn governance(state: &State) -> api::wire::GovernanceView {
    api::wire::GovernanceView {
        params: state.gov_params(),
        proposals: state
            .governance
            .proposals
            .keys()
            .rev()
            .take(api::wire::PROPOSALS_PAGE_MAX)
            .filter_map(|id| proposal(state, *id))
            .collect(),
        staking: (state.rules >= 27).then(|| state.staking_params()),
        scheduling: (state.rules >= 27).then(|| state.config.schedule.clone()),
        validator_changes_queued: state.gov_schedule.validator_changes.clone(),
    }
}

/// Rules 26: reservation `r` and its leases running now.
pub fn reservation(state: &State, r: &engine::reserve::Reservation) -> api::wire::ReservationView {
    use api::wire::{LeaseView, ReservationStatus};
    let leases: Vec<LeaseView> = state
        .reservations
        .leases_of(r.id)
        .into_iter()
        .map(|(provider, l)| LeaseView {
            provider,
            slots: l.slots,
            period: l.period,
            period_start: l.period_start,
            period_end: l.period_start.saturating_add(r.spec.period_ms),
            held: l.held,
            missed: l.missed,
        })
        .collect();
    let status = if r.ended.is_some() {
        ReservationStatus::Ended
    } else if r.cancelled {
        ReservationStatus::Cancelling
    } else if leases.is_empty() {
        ReservationStatus::Open
    } else {
        ReservationStatus::Active
    };
    let s = &r.spec;
    api::wire::ReservationView {
        id: r.id,
        owner: r.owner,
        slots: s.slots,
        cores: s.cores,
        memory_bytes: s.memory_bytes,
        gpu: s.gpu,
        region: s.region.clone(),
        period_ms: s.period_ms,
        periods: s.periods,
        price_per_slot: s.price_per_slot,
        created: r.created,
        open_until: r.open_until,
        open_slots: r.open_slots,
        open_held: r.open_held,
        cancelled: r.cancelled,
        paid: r.paid,
        refunded: r.refunded,
        tasks_covered: r.tasks_covered,
        ended: r.ended,
        status,
        leases,
    }
}

/// Rules 26: the newest reservations (at most [`api::wire::RESERVATIONS_PAGE_MAX`]), of `owner`
/// only and/or of those `provider` holds a lease of now only.
pub fn reservations(
    state: &State,
    owner: Option<AccountId>,
    provider: Option<AccountId>,
) -> Vec<api::wire::ReservationView> {
    let leased = provider.map(|p| state.reservations.leases.get(&p));
    state
        .reservations
        .reservations
        .values()
        .rev()
        .filter(|r| owner.is_none_or(|o| o == r.owner))
        .filter(|r| leased.is_none_or(|m| m.is_some_and(|m| m.contains_key(&r.id))))
        .take(api::wire::RESERVATIONS_PAGE_MAX)
        .map(|r| reservation(state, r))
        .collect()
}

/// A day in milliseconds (the realised returns' periods).
const DAY_MS: u64 = 86_400_000;

pub fn network(state: &State, genesis_hash: Hash) -> NetworkView {
    let p = &state.ledger;
    NetworkView {
        chain_id: p.chain_id.clone(),
        token: TOKEN_SYMBOL.into(),
        decimals: DECIMALS,
        genesis_hash,
        treasury: p.treasury,
        fee_bps: p.fee_bps,
        min_stake: p.min_stake,
        slash_fraction_bps: p.slash.fraction_bps,
        slash_requester_bps: p.slash.requester_bps,
        slash_treasury_bps: p.slash.treasury_bps,
        unbonding_delay_ms: p.unbonding_delay_ms,
        faucet: p.faucet.as_ref().map(|f| f.amount),
        supply_genesis: state.supply.genesis,
        supply_minted: state.supply.minted,
        supply_burned: state.supply.burned,
        verification: state.verify.clone(),
        action_fee: if state.rules >= 8 {
            state.action_fee
        } else {
            0
        },
        storage: state.storage.params.clone(),
        rules: state.rules,
        carbon: (state.rules >= 24).then(|| state.energy.table.clone()),
    }
}

/// A log entry decoded, for `GET /v1/chain/inputs`.
pub fn entry(seq: u64, entry: engine::Entry) -> api::wire::EntryView {
    use engine::Input;
    let (kind, signer, name) = match &entry.input {
        Input::Signed(s) => ("action", Some(s.signer), variant(&s.body)),
        Input::Leader(c) => ("leader", None, variant(c)),
        Input::Evidence(_) => ("evidence", None, "equivocation".to_string()),
        Input::Lost(_) => ("lost", None, "provider_lost".to_string()),
        Input::Fetch(f) => (
            "fetch",
            match f.fetches.as_slice() {
                [one] => Some(one.signer),
                _ => None,
            },
            format!("{} fetches", f.fetches.len()),
        ),
    };
    api::wire::EntryView {
        seq,
        time: entry.time,
        kind: kind.to_string(),
        signer,
        name,
        input: entry.input,
    }
}

/// The name serde gives an externally tagged enum's variant (`submit_job`).
fn variant(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        Ok(serde_json::Value::Object(map)) => map.keys().next().cloned().unwrap_or_default(),
        _ => String::new(),
    }
}
