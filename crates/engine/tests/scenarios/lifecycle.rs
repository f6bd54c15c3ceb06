//! How jobs end besides Concat completion: the reduce step, the deadline (`ExpireJob`) and
//! cancellation by the owner.

use crate::support::*;
use engine::{
    Action, Event, InputFile, JobSpec, JobStatus, LeaderCommand, OutputSource, ProviderSpec,
    Rejection, TaskDescriptor, TaskOutcome, TaskState, part_name,
};

#[test]
fn reduce_runs_after_the_maps_over_their_outputs() {
    let mut w = World::new();
    w.register(acct(1), provider_spec());
    let job = w.submit(acct(9), reduce_job_spec(3));
    let later = w.submit(acct(9), job_spec(1));
    let reduce = tid(job, 3);
    assert_eq!(
        w.state.task_descriptor(reduce),
        None,
        "no reduce before the maps"
    );

    w.assign(acct(1), &[tid(job, 0), tid(job, 1), tid(job, 2)]);
    let events = w.report(
        acct(1),
        vec![success(tid(job, 2), 0x32, 1), success(tid(job, 0), 0x30, 1)],
    );
    assert_eq!(events.len(), 2);
    assert_eq!(w.job(job).status, JobStatus::Running);
    assert_eq!(w.state.task_descriptor(reduce), None);
    // A report for the reduce task before it exists is an unknown task.
    assert_eq!(
        w.act_rejected(acct(1), Action::ReportResults(vec![success(reduce, 1, 1)])),
        Rejection::UnknownTask(reduce)
    );

    let events = w.report(acct(1), vec![success(tid(job, 1), 0x31, 1)]);
    assert_eq!(
        events,
        vec![
            Event::TaskCompleted {
                task: tid(job, 1),
                provider: acct(1),
                fuel_used: 1,
            },
            Event::ReduceQueued { job },
        ]
    );
    let j = w.job(job);
    assert_eq!(j.status, JobStatus::Reducing);
    assert_eq!(j.maps_done, 3);
    assert_eq!(j.tasks.len(), 4);
    assert_eq!(j.output_parts(), None);
    assert_eq!(w.task_state(reduce), TaskState::Queued);
    // The reduce task joins the queue at its job's place, ahead of later jobs.
    assert_eq!(w.queue(), vec![reduce, tid(later, 0)]);

    let spec = reduce_spec();
    assert_eq!(
        w.state.task_descriptor(reduce),
        Some(TaskDescriptor {
            task: reduce,
            module: hash(0xBB),
            args: vec!["sum".into()],
            env: vec![],
            stdin: None,
            inputs: vec![
                InputFile {
                    name: "part-00000".into(),
                    hash: hash(0x30),
                },
                InputFile {
                    name: "part-00001".into(),
                    hash: hash(0x31),
                },
                InputFile {
                    name: "part-00002".into(),
                    hash: hash(0x32),
                },
            ],
            output: OutputSource::Stdout,
            limits: spec.limits,
            seed: w.state.task_descriptor(reduce).unwrap().seed,
            output_limit: None,
            success_exits: Vec::new(),
            entry: None,
            mounts: Vec::new(),
            scratch: None,
            private: None,
            profile: 5,
            gpu: None,
            tolerance: None,
        })
    );

    assert_eq!(w.state.pick(acct(1), 1), vec![reduce]);
    w.assign(acct(1), &[reduce]);
    w.time = 5000;
    let events = w.report(acct(1), vec![success(reduce, 0xEE, 99)]);
    assert_eq!(
        events,
        vec![
            Event::TaskCompleted {
                task: reduce,
                provider: acct(1),
                fuel_used: 99,
            },
            Event::JobCompleted { job },
        ]
    );
    let j = w.job(job);
    assert_eq!(j.status, JobStatus::Completed);
    assert_eq!(j.finished_at, Some(5000));
    assert_eq!(j.maps_done, 3, "the reduce task is not a map");
    assert_eq!(j.output_parts(), Some(vec![hash(0xEE)]));
    assert_eq!(w.queue(), vec![tid(later, 0)]);
    assert_eq!(w.provider(acct(1)).stats.tasks_completed, 4);
}

#[test]
fn part_names_are_zero_padded() {
    assert_eq!(part_name(0), "part-00000");
    assert_eq!(part_name(42), "part-00042");
    assert_eq!(part_name(99_999), "part-99999");
    assert_eq!(part_name(100_000), "part-100000");
}

#[test]
fn reduce_task_uses_the_reduce_limits_for_fit() {
    let mut w = World::new();
    // Enough memory for the maps (64 MiB) but not for the reduce (128 MiB).
    let small = ProviderSpec {
        memory_bytes: 100 << 20,
        ..provider_spec()
    };
    w.register(acct(1), small);
    let job = w.submit(acct(9), reduce_job_spec(1));
    w.assign(acct(1), &[tid(job, 0)]);
    w.report(acct(1), vec![success(tid(job, 0), 1, 1)]);
    assert_eq!(w.state.pick(acct(1), 4), vec![]);
    assert!(matches!(
        w.lead_rejected(LeaderCommand::AssignTasks {
            provider: acct(1),
            tasks: vec![tid(job, 1)],
        }),
        Rejection::TaskDoesNotFit { task, .. } if task == tid(job, 1)
    ));
    w.register(acct(2), provider_spec());
    assert_eq!(w.state.pick(acct(2), 4), vec![tid(job, 1)]);
}

#[test]
fn failing_reduce_is_retried_then_fails_the_job() {
    // Rules 2: every failure counts as an attempt (rules 3 verify a deterministic one: see
    // `scenarios::failures`).
    let mut w = World::new().under_rules(2);
    w.register(acct(1), provider_spec());
    let job = w.submit(acct(9), reduce_job_spec(2));
    w.assign(acct(1), &[tid(job, 0), tid(job, 1)]);
    w.report(
        acct(1),
        vec![success(tid(job, 0), 1, 1), success(tid(job, 1), 2, 1)],
    );
    let reduce = tid(job, 2);
    for attempt in 1..=3 {
        w.assign(acct(1), &[reduce]);
        let events = w.report(acct(1), vec![failure(reduce, TaskOutcome::Exit(1))]);
        assert!(matches!(
            &events[0],
            Event::TaskAttemptFailed { task, attempts, .. } if *task == reduce && *attempts == attempt
        ));
        if attempt < 3 {
            assert_eq!(events.len(), 1);
            assert_eq!(w.job(job).status, JobStatus::Reducing);
            assert_eq!(w.queue(), vec![reduce]);
        }
    }
    let reason = "task 1.2 failed 3 times; last: exited with status 1".to_string();
    assert_eq!(w.job(job).status, JobStatus::Failed { reason });
    assert_eq!(w.task_state(reduce), TaskState::Failed);
    assert!(w.queue().is_empty());
}

#[test]
fn expire_job_fails_it_after_the_deadline_and_drops_unfinished_work() {
    let mut w = World::new();
    w.register(acct(1), provider_spec());
    let spec = JobSpec {
        deadline: 2000,
        ..job_spec(4)
    };
    let job = w.submit(acct(9), spec);
    let other = w.submit(acct(9), job_spec(1));
    w.assign(acct(1), &[tid(job, 0), tid(job, 1), tid(other, 0)]);
    w.report(acct(1), vec![success(tid(job, 0), 0, 0)]);
    let expire = LeaderCommand::ExpireJob { job };

    for time in [1999, 2000] {
        w.time = time;
        assert_eq!(
            w.lead_rejected(expire.clone()),
            Rejection::NotExpired {
                job,
                deadline: 2000,
            },
            "at {time}"
        );
        assert!(w.state.expired_jobs(time).is_empty());
    }
    assert_eq!(
        w.lead_rejected(LeaderCommand::ExpireJob { job: 99 }),
        Rejection::UnknownJob(99)
    );

    w.time = 2001;
    assert_eq!(w.state.expired_jobs(2001), vec![job]);
    let reason = "deadline passed with 1 of 4 tasks done".to_string();
    assert_eq!(
        w.lead(expire.clone()),
        vec![Event::JobFailed {
            job,
            reason: reason.clone(),
        }]
    );
    let j = w.job(job);
    assert_eq!(j.status, JobStatus::Failed { reason });
    assert_eq!(j.finished_at, Some(2001));
    assert_eq!(w.task_state(tid(job, 0)), TaskState::Done);
    for i in 1..4 {
        assert_eq!(w.task_state(tid(job, i)), TaskState::Dropped, "task {i}");
    }
    assert_eq!(w.queue(), vec![]);
    assert_eq!(w.running(acct(1)), vec![tid(other, 0)]);
    assert!(w.state.expired_jobs(5000).is_empty());
    assert_eq!(w.lead_rejected(expire), Rejection::JobEnded(job));
    // The provider's late result for a dropped task is ignored.
    let events = w.report(acct(1), vec![success(tid(job, 1), 1, 1)]);
    assert!(matches!(events.as_slice(), [Event::ReportIgnored { .. }]));
}

#[test]
fn expire_uses_the_state_clock_not_a_stale_entry_time() {
    let mut w = World::new();
    let job = w.submit(
        acct(9),
        JobSpec {
            deadline: 2000,
            ..job_spec(1)
        },
    );
    w.time = 3000;
    w.act(acct(8), Action::SubmitJob(job_spec(1)));
    // Stamped before the deadline, but the state is already past it.
    w.time = 1500;
    assert!(matches!(
        w.lead(LeaderCommand::ExpireJob { job }).as_slice(),
        [Event::JobFailed { .. }]
    ));
    assert_eq!(w.job(job).finished_at, Some(3000));
}

#[test]
fn expire_a_reducing_job() {
    let mut w = World::new();
    w.register(acct(1), provider_spec());
    let job = w.submit(
        acct(9),
        JobSpec {
            deadline: 2000,
            ..reduce_job_spec(1)
        },
    );
    w.assign(acct(1), &[tid(job, 0)]);
    w.report(acct(1), vec![success(tid(job, 0), 0, 0)]);
    w.assign(acct(1), &[tid(job, 1)]);
    w.time = 2001;
    assert_eq!(
        w.lead(LeaderCommand::ExpireJob { job }),
        vec![Event::JobFailed {
            job,
            reason: "deadline passed with 1 of 1 tasks done".into(),
        }]
    );
    assert_eq!(w.task_state(tid(job, 1)), TaskState::Dropped);
    assert!(w.running(acct(1)).is_empty());
}

#[test]
fn only_the_owner_may_cancel_an_unfinished_job() {
    let mut w = World::new();
    w.register(acct(1), provider_spec());
    let job = w.submit(acct(9), job_spec(3));
    let done = w.submit(acct(9), job_spec(1));
    w.assign(acct(1), &[tid(job, 1), tid(done, 0)]);
    w.report(acct(1), vec![success(tid(done, 0), 0, 0)]);

    assert_eq!(
        w.act_rejected(acct(8), Action::CancelJob(job)),
        Rejection::NotJobOwner(job)
    );
    // A provider running the job's tasks is no owner either.
    assert_eq!(
        w.act_rejected(acct(1), Action::CancelJob(job)),
        Rejection::NotJobOwner(job)
    );
    assert_eq!(
        w.act_rejected(acct(9), Action::CancelJob(77)),
        Rejection::UnknownJob(77)
    );
    assert_eq!(
        w.act_rejected(acct(9), Action::CancelJob(done)),
        Rejection::JobEnded(done)
    );

    w.time = 3000;
    // There is no cancellation event: the effect shows in the state only.
    assert_eq!(
        w.act(acct(9), Action::CancelJob(job)),
        vec![Event::JobCancelled { job }]
    );
    let j = w.job(job);
    assert_eq!(j.status, JobStatus::Cancelled);
    assert_eq!(j.finished_at, Some(3000));
    assert_eq!(j.output_parts(), None);
    for i in 0..3 {
        assert_eq!(w.task_state(tid(job, i)), TaskState::Dropped);
    }
    assert!(w.queue().is_empty());
    assert!(w.running(acct(1)).is_empty());
    assert_eq!(
        w.act_rejected(acct(9), Action::CancelJob(job)),
        Rejection::JobEnded(job)
    );
    assert_eq!(
        w.lead_rejected(LeaderCommand::ExpireJob { job }),
        Rejection::JobEnded(job)
    );
}
