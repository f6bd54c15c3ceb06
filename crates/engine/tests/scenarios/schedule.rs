//! The scheduling policy (`engine::schedule`): table-driven cases of heterogeneous providers
//! asking for work, fair share between requesters, deadline urgency, the local queue, and run
//! timeouts.

use crate::support::*;
use engine::{
    AccountId, Dispatch, EngineConfig, Event, Hash, JobStatus, LeaderCommand, ProviderSpec,
    Rejection, Requirements, TaskId, TaskState,
};
use std::collections::BTreeSet;

/// A world whose providers hold no more tasks than their slots (so picks show the choice, not
/// the local queue), with `hold_ms` = 250.
fn world() -> World {
    let mut config = EngineConfig::default();
    config.schedule.queue_per_slot = 0;
    World::with_config(config)
}

/// What a provider is like, relative to [`provider_spec`].
#[derive(Clone, Copy, Debug)]
enum Kind {
    Plain,
    Slow,
    Fast,
    Far,
    Expensive,
    Gpu,
    TwoCores,
}

fn spec(kind: Kind) -> ProviderSpec {
    let base = provider_spec();
    match kind {
        Kind::Plain => base,
        Kind::Slow => ProviderSpec {
            benchmark_score: 10,
            ..base
        },
        Kind::Fast => ProviderSpec {
            benchmark_score: 1_000,
            ..base
        },
        Kind::Far => ProviderSpec {
            region: "ap-south".into(),
            ..base
        },
        Kind::Expensive => ProviderSpec {
            // The job's max price.
            price_per_fuel: 10,
            ..base
        },
        Kind::Gpu => ProviderSpec {
            gpu: Some("NVIDIA H100".into()),
            ..base
        },
        Kind::TwoCores => ProviderSpec { cores: 2, ..base },
    }
}

/// A dispatch at `now` in which `cached` lists (provider, blob) pairs held and `idle` the
/// providers waiting for work.
fn pick_with(
    w: &World,
    who: AccountId,
    max: u32,
    cached: &[(AccountId, Hash)],
    idle: &[AccountId],
) -> Vec<TaskId> {
    let set: BTreeSet<(AccountId, Hash)> = cached.iter().copied().collect();
    let has = move |p: &AccountId, h: &Hash| set.contains(&(*p, *h));
    let ctx = Dispatch {
        now: w.time,
        cached: &has,
        idle,
    };
    w.state.pick_tasks(who, max, &ctx)
}

/// Hard filters: requirements that a provider does not meet keep the job away from it entirely.
#[test]
fn requirements_filter_providers() {
    struct Case {
        name: &'static str,
        needs: Requirements,
        kind: Kind,
        gets: bool,
    }
    let gpu = Requirements {
        gpu: true,
        ..Requirements::default()
    };
    let four_cores = Requirements {
        cores: 4,
        ..Requirements::default()
    };
    let cases = [
        Case {
            name: "gpu job, gpu provider",
            needs: gpu.clone(),
            kind: Kind::Gpu,
            gets: true,
        },
        Case {
            name: "gpu job, cpu provider",
            needs: gpu,
            kind: Kind::Plain,
            gets: false,
        },
        Case {
            name: "4 cores, 4-core provider",
            needs: four_cores.clone(),
            kind: Kind::Plain,
            gets: true,
        },
        Case {
            name: "4 cores, 2-core provider",
            needs: four_cores,
            kind: Kind::TwoCores,
            gets: false,
        },
        Case {
            name: "no requirement, anyone",
            needs: Requirements::default(),
            kind: Kind::TwoCores,
            gets: true,
        },
    ];
    for case in cases {
        let mut w = world();
        w.register(acct(1), spec(case.kind));
        let job = w.submit(
            acct(9),
            engine::JobSpec {
                requirements: case.needs,
                ..job_spec(2)
            },
        );
        let picked = w.state.pick(acct(1), 4);
        let expected = if case.gets {
            vec![tid(job, 0), tid(job, 1)]
        } else {
            vec![]
        };
        assert_eq!(picked, expected, "{}", case.name);
    }
}

/// Hold: a young job is held back from a provider while a clearly better-suited one waits for
/// work, and goes to the better one; after `hold_ms` anyone may take it. Each row: the asking
/// provider's kind, the waiting provider's kind, the job's data region, who holds the module,
/// and whether the job is held from the asker.
#[test]
fn better_suited_waiting_providers_get_young_jobs_first() {
    struct Case {
        name: &'static str,
        asker: Kind,
        waiting: Kind,
        region: Option<&'static str>,
        waiting_cached: bool,
        reputable_waiting: bool,
        held: bool,
    }
    let cases = [
        Case {
            name: "slow asks, fast waits",
            asker: Kind::Slow,
            waiting: Kind::Fast,
            region: None,
            waiting_cached: false,
            reputable_waiting: false,
            held: true,
        },
        Case {
            name: "fast asks, slow waits",
            asker: Kind::Fast,
            waiting: Kind::Slow,
            region: None,
            waiting_cached: false,
            reputable_waiting: false,
            held: false,
        },
        Case {
            name: "equals",
            asker: Kind::Plain,
            waiting: Kind::Plain,
            region: None,
            waiting_cached: false,
            reputable_waiting: false,
            held: false,
        },
        Case {
            name: "far asks, near waits",
            asker: Kind::Far,
            waiting: Kind::Plain,
            region: Some("eu-west"),
            waiting_cached: false,
            reputable_waiting: false,
            held: true,
        },
        Case {
            name: "near asks, far waits",
            asker: Kind::Plain,
            waiting: Kind::Far,
            region: Some("eu-west"),
            waiting_cached: false,
            reputable_waiting: false,
            held: false,
        },
        Case {
            name: "expensive asks, cheap waits",
            asker: Kind::Expensive,
            waiting: Kind::Plain,
            region: None,
            waiting_cached: false,
            reputable_waiting: false,
            held: true,
        },
        Case {
            name: "cheap asks, expensive waits",
            asker: Kind::Plain,
            waiting: Kind::Expensive,
            region: None,
            waiting_cached: false,
            reputable_waiting: false,
            held: false,
        },
        Case {
            name: "new asks, reputable waits",
            asker: Kind::Plain,
            waiting: Kind::Plain,
            region: None,
            waiting_cached: false,
            reputable_waiting: true,
            held: true,
        },
        // Holding the module alone (100 of 1000) is not a 20% margin; with proximity it is.
        Case {
            name: "uncached asks, cached waits",
            asker: Kind::Plain,
            waiting: Kind::Plain,
            region: None,
            waiting_cached: true,
            reputable_waiting: false,
            held: false,
        },
        Case {
            name: "far uncached asks, near cached waits",
            asker: Kind::Far,
            waiting: Kind::Plain,
            region: Some("eu-west"),
            waiting_cached: true,
            reputable_waiting: false,
            held: true,
        },
    ];
    for case in cases {
        let mut w = world();
        w.register(acct(1), spec(case.asker));
        w.register(acct(2), spec(case.waiting));
        if case.reputable_waiting {
            w.state
                .providers
                .get_mut(&acct(2))
                .unwrap()
                .reputation
                .score = 900;
        }
        let spec = engine::JobSpec {
            requirements: Requirements {
                region: case.region.map(String::from),
                ..Requirements::default()
            },
            ..job_spec(2)
        };
        let module = spec.module;
        let job = w.submit(acct(9), spec);
        let cached: Vec<(AccountId, Hash)> = if case.waiting_cached {
            vec![(acct(2), module)]
        } else {
            vec![]
        };
        let all = vec![tid(job, 0), tid(job, 1)];
        let picked = pick_with(&w, acct(1), 4, &cached, &[acct(2)]);
        assert_eq!(
            picked.is_empty(),
            case.held,
            "{}: picked {picked:?}",
            case.name
        );
        // When the asker is held back, the provider it is held for gets the job.
        if case.held {
            assert_eq!(
                pick_with(&w, acct(2), 4, &cached, &[acct(1)]),
                all,
                "{}",
                case.name
            );
        }
        // Nobody waiting: nothing to hold for.
        assert_eq!(
            pick_with(&w, acct(1), 4, &cached, &[]),
            all,
            "{}",
            case.name
        );
        // The hold is bounded: hold_ms after submission anyone may take the job.
        w.time += EngineConfig::default().schedule.hold_ms;
        assert_eq!(
            pick_with(&w, acct(1), 4, &cached, &[acct(2)]),
            all,
            "{}",
            case.name
        );
    }
}

/// Among jobs of requesters equally served, a provider gets the job whose module it holds, then
/// the one whose data is near it, before older jobs.
#[test]
fn affinity_and_proximity_order_jobs_among_equals() {
    let mut w = world();
    w.register(
        acct(1),
        ProviderSpec {
            slots: 1,
            ..spec(Kind::Plain)
        },
    );
    let plain = w.submit(acct(9), job_spec(1));
    let near = w.submit(
        acct(10),
        engine::JobSpec {
            requirements: Requirements {
                region: Some("eu-west".into()),
                ..Requirements::default()
            },
            ..job_spec(1)
        },
    );
    let cached_module = hash(0xCC);
    let cached = w.submit(
        acct(11),
        engine::JobSpec {
            module: cached_module,
            ..job_spec(1)
        },
    );
    let holds = [(acct(1), cached_module)];
    assert_eq!(pick_with(&w, acct(1), 1, &holds, &[]), vec![tid(cached, 0)]);
    assert_eq!(pick_with(&w, acct(1), 1, &[], &[]), vec![tid(near, 0)]);
    // A provider in another region: oldest first.
    w.register(
        acct(2),
        ProviderSpec {
            slots: 1,
            ..spec(Kind::Far)
        },
    );
    assert_eq!(pick_with(&w, acct(2), 1, &[], &[]), vec![tid(plain, 0)]);
}

/// Fair share: a requester that submits a small job while another's huge job is running gets an
/// equal part of the next batch, and, once the huge job has been served more, the whole of it.
#[test]
fn fair_share_keeps_a_huge_job_from_starving_a_small_one() {
    let mut w = world();
    w.register(
        acct(1),
        ProviderSpec {
            slots: 8,
            ..spec(Kind::Plain)
        },
    );
    w.register(
        acct(2),
        ProviderSpec {
            slots: 8,
            ..spec(Kind::Plain)
        },
    );
    let huge = w.submit(acct(9), job_spec(1000));
    // The huge job's owner has been served 8 tasks already.
    let first = w.state.pick(acct(1), 8);
    assert_eq!(first, (0..8).map(|i| tid(huge, i)).collect::<Vec<_>>());
    w.assign(acct(1), &first);
    let small = w.submit(acct(10), job_spec(6));
    // The newcomer starts level with the least-served requester, so the batch is split...
    let batch = w.state.pick(acct(2), 8);
    let of = |job: u64| batch.iter().filter(|t| t.job == job).count();
    assert_eq!((of(huge), of(small)), (4, 4), "{batch:?}");
    w.assign(acct(2), &batch);
    // ...which leaves both equally served, so the next two free slots go one to each.
    assert_eq!(w.state.service_of(&acct(9)), w.state.service_of(&acct(10)));
    w.report(
        acct(1),
        vec![
            success(tid(huge, 0), 1, 1_000_000),
            success(tid(huge, 1), 1, 1_000_000),
        ],
    );
    let next = w.state.pick(acct(1), 2);
    assert_eq!(next, vec![tid(huge, 12), tid(small, 4)]);
}

/// A job whose deadline is near goes first, whoever submitted it, and is never held.
#[test]
fn urgent_jobs_go_first_and_are_not_held() {
    let mut w = world();
    w.register(
        acct(1),
        ProviderSpec {
            slots: 1,
            ..spec(Kind::Slow)
        },
    );
    w.register(acct(2), spec(Kind::Fast));
    let relaxed = w.submit(acct(9), job_spec(3));
    let urgent_deadline = w.time + 30_000;
    let urgent = w.submit(
        acct(9),
        engine::JobSpec {
            deadline: urgent_deadline,
            ..job_spec(1)
        },
    );
    // The slow provider would be held from both young jobs for the fast one, except the urgent.
    assert_eq!(
        pick_with(&w, acct(1), 1, &[], &[acct(2)]),
        vec![tid(urgent, 0)]
    );
    assert_eq!(pick_with(&w, acct(2), 1, &[], &[]), vec![tid(urgent, 0)]);
    assert_eq!(w.state.pick(acct(2), 4).first(), Some(&tid(urgent, 0)));
    assert!(w.state.pick(acct(2), 4).contains(&tid(relaxed, 0)));
}

/// The local queue: once a job's tasks are known to be short, a provider gets up to
/// `prefetch_ms` of them per slot beyond its free slots (at most `queue_per_slot` per slot);
/// long tasks only fill free slots.
#[test]
fn short_tasks_are_prefetched_long_ones_are_not() {
    let mut w = World::new();
    let schedule = EngineConfig::default().schedule;
    w.register(
        acct(1),
        ProviderSpec {
            slots: 2,
            ..spec(Kind::Fast)
        },
    );
    w.submit(acct(9), job_spec(1000));
    // Unknown cost: the fuel limit (1M fuel at 67k fuel/ms ≈ 15 ms) → one per slot free, plus
    // one more per slot within 20 ms.
    let first = w.state.pick(acct(1), 1000);
    assert_eq!(first.len(), 2 + 2, "{first:?}");
    w.assign(acct(1), &first[..1]);
    // The first result shows the tasks are tiny: now the local queue fills to its cap.
    w.report(acct(1), vec![success(first[0], 1, 10)]);
    let next = w.state.pick(acct(1), 10_000);
    let cap = 2 + 2 * schedule.queue_per_slot as usize;
    assert_eq!(next.len(), cap);
    w.assign(acct(1), &next);
    assert!(w.state.pick(acct(1), 10_000).is_empty(), "full");
    // A long job only gets free slots.
    let mut w = World::new();
    w.register(
        acct(1),
        ProviderSpec {
            slots: 2,
            ..spec(Kind::Slow)
        },
    );
    w.submit(acct(9), job_spec(1000));
    assert_eq!(w.state.pick(acct(1), 1000).len(), 2);
}

/// Once a job's task cost is known, a provider too slow to finish one before the deadline gets
/// none of it.
#[test]
fn too_slow_providers_are_kept_from_tight_deadlines() {
    let mut w = world();
    w.register(acct(1), spec(Kind::Fast));
    w.register(
        acct(2),
        ProviderSpec {
            benchmark_score: 1,
            ..spec(Kind::Plain)
        },
    );
    let deadline = w.time + 200_000;
    let job = w.submit(
        acct(9),
        engine::JobSpec {
            deadline,
            limits: engine::Limits {
                fuel: 200_000_000,
                ..limits()
            },
            ..job_spec(10)
        },
    );
    w.assign(acct(1), &[tid(job, 0)]);
    // 100M fuel at 67 fuel/ms is ~1500 s: beyond the deadline.
    w.report(acct(1), vec![success(tid(job, 0), 1, 100_000_000)]);
    assert!(w.state.pick(acct(2), 4).is_empty());
    assert_eq!(w.state.pick(acct(1), 1), vec![tid(job, 1)]);
    // Without the fast provider, the slow one takes it: late rather than never.
    w.act(acct(1), engine::Action::LeaveProvider);
    assert!(!w.state.pick(acct(2), 4).is_empty());
}

/// Runs not reported by their deadline time out: each is a failed attempt and the task is
/// queued again; `max_attempts` time-outs fail the job with a reason naming the time-out.
#[test]
fn overdue_runs_time_out_and_exhaust_retries() {
    let mut w = World::new();
    let grace = EngineConfig::default().schedule.timeout_grace_ms;
    w.register(
        acct(1),
        ProviderSpec {
            slots: 1,
            ..spec(Kind::Plain)
        },
    );
    w.register(
        acct(2),
        ProviderSpec {
            slots: 1,
            ..spec(Kind::Plain)
        },
    );
    let job = w.submit(acct(9), job_spec(1));
    let task = tid(job, 0);
    let wall = limits().wall_ms;
    w.assign(acct(1), &[task]);
    let due = w.time + wall + grace;
    assert!(w.state.overdue_runs(due).is_empty(), "due, not overdue");
    // Not overdue yet: refused, nothing changes.
    w.time = due;
    let r = w.lead_rejected(LeaderCommand::TimeOutRuns {
        provider: acct(1),
        tasks: vec![task],
    });
    assert!(matches!(r, Rejection::NotOverdue { .. }), "{r}");
    // Another provider's task: refused.
    w.time = due + 1;
    let r = w.lead_rejected(LeaderCommand::TimeOutRuns {
        provider: acct(2),
        tasks: vec![task],
    });
    assert!(matches!(r, Rejection::NotOverdue { .. }), "{r}");
    assert_eq!(w.state.overdue_runs(w.time), vec![(acct(1), vec![task])]);
    let events = w.lead(LeaderCommand::TimeOutRuns {
        provider: acct(1),
        tasks: vec![task],
    });
    assert!(
        matches!(
            &events[..],
            [Event::TaskAttemptFailed { attempts: 1, reason, .. }] if reason.contains("timed out")
        ),
        "{events:?}"
    );
    assert_eq!(w.task_state(task), TaskState::Queued);
    assert!(w.running(acct(1)).is_empty());
    assert_eq!(w.provider(acct(1)).stats.tasks_timed_out, 1);
    // A late report is ignored.
    let late = w.report(acct(1), vec![success(task, 1, 5)]);
    assert!(
        matches!(&late[..], [Event::ReportIgnored { .. }]),
        "{late:?}"
    );
    // Two more time-outs exhaust the attempts.
    for who in [acct(2), acct(1)] {
        w.assign(who, &[task]);
        w.time += wall + grace + 1;
        w.lead(LeaderCommand::TimeOutRuns {
            provider: who,
            tasks: vec![task],
        });
    }
    match &w.job(job).status {
        JobStatus::Failed { reason } => {
            assert!(
                reason.contains("failed 3 times") && reason.contains("timed out"),
                "{reason}"
            )
        }
        other => panic!("job is {other:?}"),
    }
}

/// A provider's local queue lengthens its runs' deadlines: the n-th task per slot is due after
/// n wall limits.
#[test]
fn queued_runs_are_due_later() {
    let mut w = World::new();
    let grace = EngineConfig::default().schedule.timeout_grace_ms;
    w.register(
        acct(1),
        ProviderSpec {
            slots: 2,
            ..spec(Kind::Plain)
        },
    );
    let job = w.submit(acct(9), job_spec(5));
    let tasks: Vec<TaskId> = (0..5).map(|i| tid(job, i)).collect();
    w.assign(acct(1), &tasks);
    let wall = limits().wall_ms;
    let deadlines: Vec<u64> = tasks
        .iter()
        .map(|t| w.task(*t).runs[0].deadline - w.time - grace)
        .collect();
    assert_eq!(deadlines, vec![wall, wall, 2 * wall, 2 * wall, 3 * wall]);
}

/// A provider that failed a task leaves it to any other operator able to run it, so one failing
/// (or lying) provider cannot use up a task's attempts alone; with nobody else able, it retries.
#[test]
fn a_provider_that_failed_a_task_leaves_it_to_others_able_to_run_it() {
    let small = |memory| engine::ProviderSpec {
        memory_bytes: memory,
        ..provider_spec()
    };
    struct Case {
        what: &'static str,
        /// The other provider beside the failing one (acct 1): memory, operator.
        other: Option<(u64, Option<u8>)>,
        /// Whether provider 1 may take the task again.
        retakes: bool,
    }
    let cases = [
        Case {
            what: "alone: retries",
            other: None,
            retakes: true,
        },
        Case {
            what: "another operator able to run it: leaves it",
            other: Some((1 << 30, None)),
            retakes: false,
        },
        Case {
            what: "another provider of its own operator: retries",
            other: Some((1 << 30, Some(1))),
            retakes: true,
        },
        Case {
            what: "another operator without the memory: retries",
            other: Some((1 << 20, None)),
            retakes: true,
        },
    ];
    for case in cases {
        // Rules 2: every failure counts as an attempt (rules 3 verify a deterministic one: see
        // `scenarios::failures`).
        let mut w = World::new().under_rules(2);
        w.register(acct(1), provider_spec());
        if let Some((memory, operator)) = case.other {
            w.register(
                acct(2),
                engine::ProviderSpec {
                    operator: operator.map(acct),
                    ..small(memory)
                },
            );
        }
        let job = w.submit(acct(9), job_spec(1));
        let t = tid(job, 0);
        w.assign(acct(1), &[t]);
        w.report(acct(1), vec![failure(t, engine::TaskOutcome::Exit(1))]);
        assert_eq!(w.queue(), vec![t], "{}", case.what);
        let picked = w.state.pick(acct(1), 8);
        assert_eq!(picked.contains(&t), case.retakes, "{}", case.what);
        if !case.retakes {
            assert_eq!(w.state.pick(acct(2), 8), vec![t], "{}", case.what);
        }
    }
}

/// Once every operator able to run a task has failed it, they retry it, and the job fails after
/// `max_attempts` with the task's error: a real failure of the requester's program still fails
/// its job, and promptly.
#[test]
fn a_task_every_able_operator_failed_is_retried_there_until_the_job_fails() {
    // Rules 2: every failure counts as an attempt (rules 3 verify a deterministic one: see
    // `scenarios::failures`).
    let mut w = World::new().under_rules(2);
    w.register(acct(1), provider_spec());
    w.register(acct(2), provider_spec());
    let job = w.submit(acct(9), job_spec(1));
    let t = tid(job, 0);
    let max = w.state.config.max_attempts;
    let mut fails = 0;
    for who in [1u8, 2, 1, 2, 1, 2].into_iter().take(max as usize) {
        assert!(w.state.pick(acct(who), 8).contains(&t), "attempt {fails}");
        w.assign(acct(who), &[t]);
        w.report(acct(who), vec![failure(t, engine::TaskOutcome::Exit(3))]);
        fails += 1;
    }
    assert_eq!(fails, max);
    assert!(
        matches!(&w.job(job).status, engine::JobStatus::Failed { reason } if reason.contains(&format!("failed {max} times"))),
        "{:?}",
        w.job(job).status
    );
}

/// One accepted report claiming absurd fuel (`u64::MAX`: its payment is capped, but the claim
/// feeds the job's cost estimate) used to make every provider "too slow" for the job, which then
/// froze. The estimate is capped at the task's fuel limit, and a provider is kept off a job for
/// slowness only while a faster one could take it.
#[test]
fn an_absurd_fuel_claim_does_not_freeze_a_job() {
    let mut w = World::new();
    // On the first rules such a claim is accepted (later ones refuse it as impossible).
    w.state.rules = engine::FIRST_RULES;
    w.register(acct(1), spec(Kind::Plain));
    w.register(acct(2), spec(Kind::Plain));
    let job = w.submit(
        acct(9),
        engine::JobSpec {
            deadline: w.time + 600_000,
            ..job_spec(10)
        },
    );
    w.assign(acct(1), &[tid(job, 0)]);
    w.report(acct(1), vec![success(tid(job, 0), 1, u64::MAX)]);
    assert_eq!(w.job(job).maps_done, 1, "the claim was accepted (quorum 1)");
    assert!(!w.state.pick(acct(2), 4).is_empty(), "the job froze");
}

/// Rules 3: a task whose only run takes far longer than its provider's expected time gets one
/// speculative replica while nothing else is queued; the first result wins and the straggler's
/// run is cancelled (its late report is ignored).
#[test]
fn a_straggler_gets_one_speculative_replica_and_the_first_result_wins() {
    let mut w = world();
    w.verify_events = true;
    w.register(acct(1), provider_spec());
    w.register(acct(2), provider_spec());
    let job = w.submit(acct(9), job_spec(1));
    let t = tid(job, 0);
    w.assign(acct(1), &[t]);
    let why = w.state.straggling(t, w.time).unwrap_err();
    assert!(why.contains("expected 150 ms"), "{why}");
    assert!(w.state.stragglers(w.time).is_empty());
    let rejection = w.lead_rejected(LeaderCommand::Speculate { tasks: vec![t] });
    assert!(
        matches!(&rejection, Rejection::NotStraggling { task, .. } if *task == t),
        "{rejection}"
    );

    w.time += 60_000;
    assert_eq!(w.state.stragglers(w.time), vec![t]);
    let events = w.lead(LeaderCommand::Speculate { tasks: vec![t] });
    assert!(
        matches!(&events[..], [Event::ReplicasQueued { queued: 1, reason, .. }] if reason == "straggler: its only run is overdue"),
        "{events:?}"
    );
    // One speculative replica, never on the straggler's operator; none more while it waits.
    assert!(w.state.stragglers(w.time).is_empty());
    w.lead_rejected(LeaderCommand::Speculate { tasks: vec![t] });
    assert!(w.state.pick(acct(1), 4).is_empty());
    assert_eq!(w.state.pick(acct(2), 4), vec![t]);
    w.assign(acct(2), &[t]);
    assert!(w.state.stragglers(w.time).is_empty(), "two runs: no more");
    w.report(acct(2), vec![success(t, 1, 100)]);
    assert_eq!(w.job(job).status, JobStatus::Completed);
    assert_eq!(
        w.task(t).result.as_ref().map(|r| r.providers.clone()),
        Some(vec![acct(2)])
    );
    let events = w.report(acct(1), vec![success(t, 1, 100)]);
    assert!(
        matches!(&events[..], [Event::ReportIgnored { .. }]),
        "{events:?}"
    );
}

/// No speculation while other work waits (a replica would take its slot), nor under rules
/// before 3.
#[test]
fn no_speculation_while_work_is_queued_or_under_older_rules() {
    let mut w = world();
    w.register(acct(1), provider_spec());
    let job = w.submit(acct(9), job_spec(2));
    let t = tid(job, 0);
    w.assign(acct(1), &[t]);
    w.time += 60_000;
    assert!(w.state.straggling(t, w.time).is_ok());
    assert!(w.state.stragglers(w.time).is_empty(), "task 1 is queued");
    let rejection = w.lead_rejected(LeaderCommand::Speculate { tasks: vec![t] });
    assert!(
        matches!(&rejection, Rejection::NotStraggling { why, .. } if why.contains("queue")),
        "{rejection}"
    );

    let mut w = world().under_rules(2);
    w.register(acct(1), provider_spec());
    let job = w.submit(acct(9), job_spec(1));
    let t = tid(job, 0);
    w.assign(acct(1), &[t]);
    w.time += 60_000;
    assert!(w.state.stragglers(w.time).is_empty());
    let rejection = w.lead_rejected(LeaderCommand::Speculate { tasks: vec![t] });
    assert!(
        matches!(
            rejection,
            Rejection::NeedsRules {
                needs: 3,
                runs: 2,
                ..
            }
        ),
        "{rejection}"
    );
}
