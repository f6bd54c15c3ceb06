//! Reports of task results: success, Concat completion, ignored and rejected reports, and failures
//! up to `max_attempts`.

use crate::support::*;
use engine::state::{ProviderStats, TaskResult};
use engine::{
    Action, EngineConfig, Event, JobStatus, ProviderSpec, Rejection, TaskOutcome, TaskReport,
    TaskState,
};

#[test]
fn successes_complete_a_concat_job_with_parts_in_task_order() {
    let mut w = World::new();
    w.register(acct(1), provider_spec());
    w.register(acct(2), provider_spec());
    let job = w.submit(acct(9), job_spec(3));
    w.assign(acct(1), &[tid(job, 0), tid(job, 2)]);
    w.assign(acct(2), &[tid(job, 1)]);

    w.time = 1500;
    // Reported out of order: the output still follows task order.
    let events = w.report(acct(1), vec![success(tid(job, 2), 0x22, 30)]);
    assert_eq!(
        events,
        vec![Event::TaskCompleted {
            task: tid(job, 2),
            provider: acct(1),
            fuel_used: 30,
        }]
    );
    assert_eq!(w.task_state(tid(job, 2)), TaskState::Done);
    assert_eq!(
        w.task(tid(job, 2)).result,
        Some(TaskResult {
            providers: vec![acct(1)],
            output_hash: hash(0x22),
            output_size: 100,
            fuel_used: 30,
        })
    );
    assert_eq!(w.job(job).maps_done, 1);
    assert_eq!(w.job(job).status, JobStatus::Running);
    assert_eq!(w.job(job).output_parts(), None);
    assert_eq!(w.running(acct(1)), vec![tid(job, 0)]);

    let events = w.report(acct(2), vec![success(tid(job, 1), 0x11, 20)]);
    assert_eq!(events.len(), 1);
    w.time = 1600;
    let events = w.report(acct(1), vec![success(tid(job, 0), 0x00, 10)]);
    assert_eq!(
        events,
        vec![
            Event::TaskCompleted {
                task: tid(job, 0),
                provider: acct(1),
                fuel_used: 10,
            },
            Event::JobCompleted { job },
        ]
    );
    let j = w.job(job);
    assert_eq!(j.status, JobStatus::Completed);
    assert_eq!(j.finished_at, Some(1600));
    assert_eq!(j.maps_done, 3);
    assert_eq!(
        j.output_parts(),
        Some(vec![hash(0x00), hash(0x11), hash(0x22)])
    );
    assert!(w.queue().is_empty());
    assert!(w.running(acct(1)).is_empty());
    assert_eq!(
        w.provider(acct(1)).stats,
        ProviderStats {
            tasks_completed: 2,
            tasks_failed: 0,
            fuel_used: 40,
            times_lost: 0,
            // 40 fuel at the provider's price of 1, no fee on this network.
            earned: 40,
            times_slashed: 0,
            slashed: 0,
            tasks_timed_out: 0,
        }
    );
    assert_eq!(w.provider(acct(2)).stats.tasks_completed, 1);
}

#[test]
fn one_report_may_carry_several_results() {
    let mut w = World::new();
    w.register(acct(1), provider_spec());
    let job = w.submit(acct(9), job_spec(2));
    let other = w.submit(acct(9), job_spec(2));
    w.assign(acct(1), &[tid(job, 0), tid(job, 1), tid(other, 0)]);
    let events = w.report(
        acct(1),
        vec![
            success(tid(job, 1), 1, 1),
            failure(tid(other, 0), TaskOutcome::Timeout),
            success(tid(job, 0), 0, 1),
        ],
    );
    assert_eq!(
        events,
        vec![
            Event::TaskCompleted {
                task: tid(job, 1),
                provider: acct(1),
                fuel_used: 1,
            },
            Event::TaskAttemptFailed {
                task: tid(other, 0),
                provider: acct(1),
                reason: "hit its wall-clock limit".into(),
                attempts: 1,
            },
            Event::TaskCompleted {
                task: tid(job, 0),
                provider: acct(1),
                fuel_used: 1,
            },
            Event::JobCompleted { job },
        ]
    );
    assert_eq!(w.queue(), vec![tid(other, 0), tid(other, 1)]);
}

#[test]
fn report_for_a_task_the_provider_does_not_hold_is_ignored() {
    let mut w = World::new();
    w.register(acct(1), provider_spec());
    w.register(acct(2), provider_spec());
    let job = w.submit(acct(9), job_spec(3));
    w.assign(acct(1), &[tid(job, 0)]);
    w.assign(acct(2), &[tid(job, 2)]);
    w.report(acct(2), vec![success(tid(job, 2), 2, 2)]);
    // Held by another provider, still queued, and already done (by the reporter itself).
    for (task, outcome) in [
        (tid(job, 0), TaskOutcome::Success),
        (tid(job, 0), TaskOutcome::Exit(3)),
        (tid(job, 1), TaskOutcome::Success),
        (tid(job, 2), TaskOutcome::Success),
        (tid(job, 2), TaskOutcome::OutOfFuel),
    ] {
        let before = w.state.clone();
        let report = TaskReport {
            outcome: outcome.clone(),
            ..success(task, 9, 9)
        };
        let events = w.report(acct(2), vec![report]);
        assert_eq!(
            events,
            vec![Event::ReportIgnored {
                task,
                provider: acct(2),
                reason: "task is not assigned to this provider".into(),
            }],
            "{task} {outcome:?}"
        );
        // Accepted (it is logged, so the nonce and counters move) but nothing else changes.
        assert_eq!(w.state.jobs, before.jobs, "{task} {outcome:?}");
        assert_eq!(w.state.providers, before.providers, "{task} {outcome:?}");
        assert_eq!(w.state.queue, before.queue, "{task} {outcome:?}");
        assert_eq!(w.state.next_job, before.next_job);
        assert_eq!(w.state.applied, before.applied + 1);
        assert_eq!(w.state.nonce(&acct(2)), before.nonce(&acct(2)) + 1);
    }
}

#[test]
fn invalid_reports_are_rejected() {
    let mut w = World::new();
    w.register(acct(1), provider_spec());
    let job = w.submit(acct(9), job_spec(2));
    let reduce = w.submit(acct(9), reduce_job_spec(1));
    w.assign(acct(1), &[tid(job, 0), tid(job, 1)]);
    let ok = success(tid(job, 0), 1, 1);
    let cases: Vec<(&str, engine::AccountId, Vec<TaskReport>, Rejection)> = vec![
        (
            "not a provider",
            acct(9),
            vec![ok.clone()],
            Rejection::UnknownProvider(acct(9)),
        ),
        (
            "no results",
            acct(1),
            vec![],
            Rejection::Empty("no results to report".into()),
        ),
        (
            "unknown job",
            acct(1),
            vec![ok.clone(), success(tid(7, 0), 1, 1)],
            Rejection::UnknownJob(7),
        ),
        (
            "job 0",
            acct(1),
            vec![success(tid(0, 0), 1, 1)],
            Rejection::UnknownJob(0),
        ),
        (
            "task index past the map tasks of a concat job",
            acct(1),
            vec![ok.clone(), success(tid(job, 2), 1, 1)],
            Rejection::UnknownTask(tid(job, 2)),
        ),
        (
            "reduce task that does not exist yet",
            acct(1),
            vec![success(tid(reduce, 1), 1, 1)],
            Rejection::UnknownTask(tid(reduce, 1)),
        ),
        (
            "duplicate",
            acct(1),
            vec![ok.clone(), success(tid(job, 1), 1, 1), ok.clone()],
            Rejection::DuplicateTask(tid(job, 0)),
        ),
        (
            "duplicate with different outcomes",
            acct(1),
            vec![ok.clone(), failure(tid(job, 0), TaskOutcome::OutOfFuel)],
            Rejection::DuplicateTask(tid(job, 0)),
        ),
    ];
    for (name, who, reports, expected) in cases {
        assert_eq!(
            w.act_rejected(who, Action::ReportResults(reports)),
            expected,
            "{name}"
        );
    }
    assert_eq!(w.running(acct(1)), vec![tid(job, 0), tid(job, 1)]);
}

#[test]
fn failures_requeue_until_max_attempts_then_fail_the_job() {
    // Rules 2: every failure counts as an attempt (rules 3 verify a deterministic one: see
    // `scenarios::failures`).
    let mut w = World::new().under_rules(2);
    assert_eq!(w.state.config.max_attempts, 3);
    w.register(acct(1), provider_spec());
    w.register(acct(2), provider_spec());
    let job = w.submit(acct(9), job_spec(4));
    let other = w.submit(acct(9), job_spec(1));
    w.assign(acct(2), &[tid(job, 1), tid(job, 3)]);
    w.report(acct(2), vec![success(tid(job, 3), 3, 3)]);

    let outcomes = [
        (TaskOutcome::Exit(2), "exited with status 2"),
        (
            TaskOutcome::Trap("unreachable".into()),
            "trapped: unreachable",
        ),
        (TaskOutcome::OutOfFuel, "ran out of fuel"),
    ];
    for (attempt, (outcome, reason)) in outcomes.into_iter().enumerate() {
        let attempts = attempt as u32 + 1;
        w.time += 10;
        w.assign(acct(1), &[tid(job, 0)]);
        let events = w.report(acct(1), vec![failure(tid(job, 0), outcome)]);
        let failed = Event::TaskAttemptFailed {
            task: tid(job, 0),
            provider: acct(1),
            reason: reason.into(),
            attempts,
        };
        let task = w.task(tid(job, 0));
        assert_eq!(task.failures, attempts);
        assert_eq!(task.last_error.as_deref(), Some(reason));
        assert_eq!(task.result, None);
        if attempts < 3 {
            assert_eq!(events, vec![failed]);
            assert_eq!(task.state, TaskState::Queued);
            assert_eq!(w.queue()[0], tid(job, 0), "re-queued at its place in line");
            assert_eq!(w.job(job).status, JobStatus::Running);
        } else {
            let why = "task 1.0 failed 3 times; last: ran out of fuel".to_string();
            assert_eq!(
                events,
                vec![
                    failed,
                    Event::JobFailed {
                        job,
                        reason: why.clone(),
                    },
                ]
            );
            assert_eq!(task.state, TaskState::Failed);
            assert_eq!(w.job(job).status, JobStatus::Failed { reason: why });
        }
    }
    let j = w.job(job);
    assert_eq!(j.finished_at, Some(w.time));
    assert_eq!(j.output_parts(), None);
    assert_eq!(j.maps_done, 1);
    // The rest of the job is dropped: queued, running elsewhere; done work stays done.
    assert_eq!(w.task_state(tid(job, 1)), TaskState::Dropped);
    assert_eq!(w.task_state(tid(job, 2)), TaskState::Dropped);
    assert_eq!(w.task_state(tid(job, 3)), TaskState::Done);
    assert_eq!(w.queue(), vec![tid(other, 0)]);
    assert!(w.running(acct(2)).is_empty());
    assert_eq!(w.provider(acct(1)).stats.tasks_failed, 3);
    // The other provider's late result is ignored.
    let events = w.report(acct(2), vec![success(tid(job, 1), 1, 1)]);
    assert!(matches!(events.as_slice(), [Event::ReportIgnored { .. }]));
    assert_eq!(w.task_state(tid(job, 1)), TaskState::Dropped);
    // The other job is unaffected.
    assert_eq!(w.job(other).status, JobStatus::Running);
}

#[test]
fn max_attempts_of_one_fails_the_job_on_the_first_failure() {
    let mut w = World::with_config(EngineConfig {
        max_attempts: 1,
        ..EngineConfig::default()
    })
    .under_rules(2);
    w.register(acct(1), provider_spec());
    let job = w.submit(acct(9), job_spec(2));
    w.assign(acct(1), &[tid(job, 0), tid(job, 1)]);
    let events = w.report(
        acct(1),
        vec![
            failure(tid(job, 1), TaskOutcome::MemoryLimit),
            success(tid(job, 0), 0, 0),
        ],
    );
    let reason = "task 1.1 failed 1 times; last: hit its memory limit".to_string();
    assert_eq!(
        events,
        vec![
            Event::TaskAttemptFailed {
                task: tid(job, 1),
                provider: acct(1),
                reason: "hit its memory limit".into(),
                attempts: 1,
            },
            Event::JobFailed {
                job,
                reason: reason.clone(),
            },
            // The job ended before this result was looked at.
            Event::ReportIgnored {
                task: tid(job, 0),
                provider: acct(1),
                reason: "task is not assigned to this provider".into(),
            },
        ]
    );
    assert_eq!(w.job(job).status, JobStatus::Failed { reason });
    assert_eq!(w.task_state(tid(job, 0)), TaskState::Dropped);
}

#[test]
fn report_from_a_provider_that_left_and_came_back_is_ignored() {
    let mut w = World::new();
    w.register(acct(1), provider_spec());
    let job = w.submit(acct(9), job_spec(1));
    w.assign(acct(1), &[tid(job, 0)]);
    // Re-registering (e.g. after a restart) gives the task up.
    w.register(
        acct(1),
        ProviderSpec {
            slots: 8,
            ..provider_spec()
        },
    );
    let events = w.report(acct(1), vec![success(tid(job, 0), 0, 0)]);
    assert!(matches!(events.as_slice(), [Event::ReportIgnored { .. }]));
    assert_eq!(w.task_state(tid(job, 0)), TaskState::Queued);
}

/// Rules 2: a success claiming more fuel than the task's limit (impossible for an honest
/// sandbox) is a failed attempt, not a result: nothing is paid and the claim feeds no estimate.
/// On the first rules the same report was accepted (its payment capped at the limit).
#[test]
fn a_success_claiming_more_fuel_than_the_limit_is_a_failed_attempt() {
    for (rules, accepted) in [(engine::RULES, false), (engine::FIRST_RULES, true)] {
        let mut w = World::new();
        w.state.rules = rules;
        w.register(acct(1), provider_spec());
        let job = w.submit(acct(9), job_spec(2));
        let limit = limits().fuel;
        w.assign(acct(1), &[tid(job, 0), tid(job, 1)]);
        let events = w.report(
            acct(1),
            vec![
                success(tid(job, 0), 1, limit),
                success(tid(job, 1), 2, limit + 1),
            ],
        );
        assert!(
            matches!(events[0], Event::TaskCompleted { fuel_used, .. } if fuel_used == limit),
            "rules {rules}: {events:?}"
        );
        let refused = events.iter().any(|e| {
            matches!(e, Event::TaskAttemptFailed { task, reason, .. }
                if *task == tid(job, 1) && reason.contains("above the task's limit"))
        });
        assert_eq!(refused, !accepted, "rules {rules}: {events:?}");
        assert_eq!(
            w.task_state(tid(job, 1)),
            if accepted {
                TaskState::Done
            } else {
                TaskState::Queued
            },
            "rules {rules}"
        );
    }
}
