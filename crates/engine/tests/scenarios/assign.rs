//! Assignment (`AssignTasks`) and the scheduling choice behind it (`State::pick_tasks`).

use crate::support::*;
use engine::{
    AccountId, EngineConfig, Event, JobSpec, LeaderCommand, Limits, ProviderSpec, Rejection,
    TaskId, TaskState,
};

fn assign_cmd(provider: AccountId, tasks: &[TaskId]) -> LeaderCommand {
    LeaderCommand::AssignTasks {
        provider,
        tasks: tasks.to_vec(),
    }
}

#[test]
fn assign_moves_tasks_from_the_queue_to_the_provider() {
    let mut w = World::new();
    w.register(acct(1), provider_spec());
    let job = w.submit(acct(9), job_spec(3));
    w.time = 2000;
    // The listed order is kept in the event.
    let events = w.assign(acct(1), &[tid(job, 2), tid(job, 0)]);
    assert_eq!(
        events,
        vec![Event::TasksAssigned {
            provider: acct(1),
            tasks: vec![tid(job, 2), tid(job, 0)],
        }]
    );
    assert_eq!(w.queue(), vec![tid(job, 1)]);
    assert_eq!(w.running(acct(1)), vec![tid(job, 0), tid(job, 2)]);
    for i in [0, 2] {
        assert_eq!(w.task_state(tid(job, i)), TaskState::Running);
        let runs = &w.task(tid(job, i)).runs;
        assert_eq!(
            runs.iter()
                .map(|r| (r.provider, r.started))
                .collect::<Vec<_>>(),
            vec![(acct(1), 2000)]
        );
    }
    assert_eq!(w.task_state(tid(job, 1)), TaskState::Queued);
    assert_eq!(w.state.now, 2000);
}

#[test]
fn invalid_assignments_are_rejected() {
    let mut w = World::with_config(EngineConfig {
        max_tasks_per_assignment: 3,
        ..EngineConfig::default()
    });
    w.register(acct(1), provider_spec());
    w.register(acct(2), provider_spec());
    w.register(
        acct(3),
        ProviderSpec {
            memory_bytes: (64 << 20) - 1,
            ..provider_spec()
        },
    );
    w.register(
        acct(4),
        ProviderSpec {
            price_per_fuel: 11,
            ..provider_spec()
        },
    );
    w.register(acct(5), provider_spec());
    w.lead(LeaderCommand::ProviderLost { provider: acct(5) });
    let job = w.submit(acct(9), job_spec(4));
    w.assign(acct(2), &[tid(job, 3)]);

    let q = |i| tid(job, i);
    let cases: Vec<(&str, LeaderCommand, Rejection)> = vec![
        (
            "unknown provider",
            assign_cmd(acct(7), &[q(0)]),
            Rejection::UnknownProvider(acct(7)),
        ),
        (
            "inactive provider",
            assign_cmd(acct(5), &[q(0)]),
            Rejection::ProviderInactive(acct(5)),
        ),
        (
            "empty list",
            assign_cmd(acct(1), &[]),
            Rejection::Empty("no tasks to assign".into()),
        ),
        (
            "more than max_tasks_per_assignment",
            assign_cmd(acct(1), &[q(0), q(1), q(2), tid(job, 4)]),
            Rejection::TooLarge("4 tasks in one assignment".into()),
        ),
        (
            "duplicate",
            assign_cmd(acct(1), &[q(0), q(1), q(0)]),
            Rejection::DuplicateTask(q(0)),
        ),
        (
            "task running elsewhere",
            assign_cmd(acct(1), &[q(0), q(3)]),
            Rejection::TaskNotQueued(q(3)),
        ),
        (
            "unknown job",
            assign_cmd(acct(1), &[tid(42, 0)]),
            Rejection::TaskNotQueued(tid(42, 0)),
        ),
        (
            "unknown task index",
            assign_cmd(acct(1), &[tid(job, 4)]),
            Rejection::TaskNotQueued(tid(job, 4)),
        ),
        (
            "not enough memory",
            assign_cmd(acct(3), &[q(0)]),
            Rejection::TaskDoesNotFit {
                task: q(0),
                why: format!(
                    "needs {} bytes of memory, provider has {}",
                    64 << 20,
                    (64 << 20) - 1
                ),
            },
        ),
        (
            "price above the job's max",
            assign_cmd(acct(4), &[q(0)]),
            Rejection::TaskDoesNotFit {
                task: q(0),
                why: "provider asks 11 per fuel, job pays at most 10".into(),
            },
        ),
    ];
    for (name, cmd, expected) in cases {
        assert_eq!(w.lead_rejected(cmd), expected, "{name}");
    }
    // A bad task anywhere in the list rejects the whole assignment: the good ones stay queued.
    assert_eq!(
        w.lead_rejected(assign_cmd(acct(1), &[q(0), q(1), q(3)])),
        Rejection::TaskNotQueued(q(3))
    );
    assert_eq!(w.queue(), vec![q(0), q(1), q(2)]);
    // Done tasks are not queued either.
    w.report(acct(2), vec![success(q(3), 1, 1)]);
    assert_eq!(
        w.lead_rejected(assign_cmd(acct(1), &[q(3)])),
        Rejection::TaskNotQueued(q(3))
    );
}

#[test]
fn price_equal_to_max_price_fits() {
    let mut w = World::new();
    w.register(
        acct(1),
        ProviderSpec {
            price_per_fuel: 10,
            memory_bytes: 64 << 20,
            ..provider_spec()
        },
    );
    let job = w.submit(acct(9), job_spec(1));
    assert_eq!(w.state.pick(acct(1), 1), vec![tid(job, 0)]);
    w.assign(acct(1), &[tid(job, 0)]);
}

/// A provider declares how many tasks it runs at once, and may queue `queue_per_slot` more per
/// slot; an assignment beyond that must not be accepted, just as one beyond its memory is not.
/// (Which rejection is the engine's choice; the state must be unchanged, which `lead_rejected`
/// checks.) Here without a local queue, so the capacity is the slots.
#[test]
fn assign_beyond_capacity_is_rejected() {
    let mut w = no_local_queue();
    w.register(
        acct(1),
        ProviderSpec {
            slots: 2,
            ..provider_spec()
        },
    );
    let job = w.submit(acct(9), job_spec(4));
    // More tasks than slots at once.
    w.lead_rejected(assign_cmd(
        acct(1),
        &[tid(job, 0), tid(job, 1), tid(job, 2)],
    ));
    // More tasks than the slots still free.
    w.assign(acct(1), &[tid(job, 0)]);
    w.lead_rejected(assign_cmd(acct(1), &[tid(job, 1), tid(job, 2)]));
    // Filling the last slot is fine; one more is not.
    w.assign(acct(1), &[tid(job, 1)]);
    w.lead_rejected(assign_cmd(acct(1), &[tid(job, 2)]));
    assert_eq!(w.running(acct(1)), vec![tid(job, 0), tid(job, 1)]);
}

/// A world whose providers hold no more tasks than their slots.
fn no_local_queue() -> World {
    let mut config = EngineConfig::default();
    config.schedule.queue_per_slot = 0;
    World::with_config(config)
}

#[test]
fn pick_tasks_respects_free_slots_and_max() {
    let mut w = no_local_queue();
    w.register(
        acct(1),
        ProviderSpec {
            slots: 3,
            ..provider_spec()
        },
    );
    let job = w.submit(acct(9), job_spec(5));
    assert_eq!(w.state.pick(acct(1), 0), vec![]);
    assert_eq!(w.state.pick(acct(1), 2), vec![tid(job, 0), tid(job, 1)]);
    assert_eq!(
        w.state.pick(acct(1), 100),
        vec![tid(job, 0), tid(job, 1), tid(job, 2)]
    );
    w.assign(acct(1), &[tid(job, 1), tid(job, 3)]);
    assert_eq!(w.state.pick(acct(1), 100), vec![tid(job, 0)]);
    w.assign(acct(1), &[tid(job, 0)]);
    assert_eq!(w.state.pick(acct(1), 100), vec![]);
    // A finished task frees its slot.
    w.report(acct(1), vec![success(tid(job, 3), 3, 1)]);
    assert_eq!(w.state.pick(acct(1), 100), vec![tid(job, 2)]);
}

#[test]
fn pick_tasks_respects_max_tasks_per_assignment() {
    let mut w = World::with_config(EngineConfig {
        max_tasks_per_assignment: 2,
        ..EngineConfig::default()
    });
    w.register(acct(1), provider_spec());
    let job = w.submit(acct(9), job_spec(4));
    assert_eq!(w.state.pick(acct(1), 10), vec![tid(job, 0), tid(job, 1)]);
}

#[test]
fn pick_tasks_skips_what_does_not_fit_and_keeps_queue_order() {
    let mut w = World::new();
    w.register(
        acct(1),
        ProviderSpec {
            slots: 10,
            memory_bytes: 100 << 20,
            price_per_fuel: 5,
            ..provider_spec()
        },
    );
    let big = w.submit(
        acct(9),
        JobSpec {
            limits: Limits {
                memory_bytes: 200 << 20,
                ..limits()
            },
            ..job_spec(2)
        },
    );
    let cheap = w.submit(
        acct(9),
        JobSpec {
            max_price: 4,
            ..job_spec(2)
        },
    );
    let ok1 = w.submit(acct(9), job_spec(2));
    let ok2 = w.submit(acct(8), job_spec(1));
    assert_eq!(w.queue().len(), 7);
    assert_eq!(
        w.state.pick(acct(1), 10),
        vec![tid(ok1, 0), tid(ok1, 1), tid(ok2, 0)]
    );
    // Two requesters, two tasks: one each (fair share).
    assert_eq!(w.state.pick(acct(1), 2), vec![tid(ok1, 0), tid(ok2, 0)]);
    // Whatever it picks is assignable.
    let picked = w.state.pick(acct(1), 10);
    w.assign(acct(1), &picked);
    assert_eq!(
        w.queue(),
        vec![tid(big, 0), tid(big, 1), tid(cheap, 0), tid(cheap, 1)]
    );
    assert_eq!(w.state.pick(acct(1), 10), vec![]);
}

#[test]
fn pick_tasks_puts_requeued_tasks_of_older_jobs_first() {
    let mut w = World::new();
    w.register(acct(1), provider_spec());
    w.register(
        acct(2),
        ProviderSpec {
            slots: 2,
            ..provider_spec()
        },
    );
    let first = w.submit(acct(9), job_spec(2));
    let second = w.submit(acct(9), job_spec(2));
    w.assign(acct(1), &[tid(first, 0), tid(first, 1)]);
    assert_eq!(
        w.state.pick(acct(2), 10),
        vec![tid(second, 0), tid(second, 1)]
    );
    w.lead(LeaderCommand::ProviderLost { provider: acct(1) });
    assert_eq!(
        w.state.pick(acct(2), 10),
        vec![tid(first, 0), tid(first, 1)]
    );
}

#[test]
fn pick_tasks_for_unknown_or_inactive_provider_is_empty() {
    let mut w = World::new();
    w.register(acct(1), provider_spec());
    w.submit(acct(9), job_spec(2));
    assert_eq!(w.state.pick(acct(2), 10), vec![]);
    w.act(acct(1), engine::Action::LeaveProvider);
    assert_eq!(w.state.pick(acct(1), 10), vec![]);
}
