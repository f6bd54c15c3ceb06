//! Rules 11: exit statuses as answers — a job lists the statuses that are a successful answer,
//! a run exiting with one of them returned a result (its status compared like its output), and
//! any other status, 0 included when the job does not list it, is a failure.

use crate::support::*;
use engine::{
    Action, Event, JobOptions, JobSpec, Redundancy, Rejection, RunOutcome, TaskOutcome, TaskReport,
    TaskState,
};

const OWNER: u8 = 1;

fn submit(w: &mut World, spec: JobSpec, success_exits: &[i32]) -> u64 {
    let events = w.act(
        acct(OWNER),
        Action::SubmitJobWithOptions {
            spec,
            storage: None,
            options: JobOptions {
                success_exits: success_exits.to_vec(),
                entry: None,
            },
        },
    );
    events
        .iter()
        .find_map(|e| match e {
            Event::JobSubmitted { job, .. } => Some(*job),
            _ => None,
        })
        .expect("a job")
}

/// A run that exited with `status` (0: a success) and wrote output `hash(out)`.
fn exited(task: engine::TaskId, status: i32, out: u8) -> TaskReport {
    TaskReport {
        outcome: if status == 0 {
            TaskOutcome::Success
        } else {
            TaskOutcome::Exit(status)
        },
        ..success(task, out, 10)
    }
}

#[test]
fn a_listed_exit_status_is_an_answer_and_an_unlisted_one_a_failure() {
    let mut w = World::new();
    w.register(acct(2), provider_spec());
    let job = submit(&mut w, job_spec(3), &[20, 10]);
    assert_eq!(w.state.success_exits(job), &[10, 20]);
    assert_eq!(
        w.state.task_descriptor(tid(job, 0)).unwrap().success_exits,
        vec![10, 20],
        "providers are told which statuses keep their output"
    );
    let tasks = [tid(job, 0), tid(job, 1), tid(job, 2)];
    w.assign(acct(2), &tasks);
    w.report(
        acct(2),
        vec![
            exited(tasks[0], 10, 7),
            exited(tasks[1], 20, 8),
            exited(tasks[2], 0, 9),
        ],
    );
    for (task, status, out) in [(tasks[0], 10, 7), (tasks[1], 20, 8)] {
        assert_eq!(w.task_state(task), TaskState::Done);
        let result = w.task(task).result.clone().expect("accepted");
        assert_eq!(result.output_hash, hash(out), "the output is the result");
        assert_eq!(w.state.accepted_status(task), status);
    }
    // 0 is not an answer of this job: exiting 0 failed, verified like any exit status.
    assert_ne!(w.task_state(tasks[2]), TaskState::Done);
    let error = w.task(tasks[2]).last_error.clone().unwrap_or_default();
    assert!(error.contains("exited with status 0"), "{error}");
}

#[test]
fn runs_agree_only_on_the_same_status() {
    let mut w = World::new();
    for n in 2..=4 {
        w.register(acct(n), provider_spec());
    }
    let spec = JobSpec {
        redundancy: Redundancy::Fixed {
            quorum: 2,
            max_results: 3,
        },
        ..job_spec(1)
    };
    let job = submit(&mut w, spec, &[0, 10]);
    let task = tid(job, 0);
    w.assign(acct(2), &[task]);
    w.assign(acct(3), &[task]);
    // The same output and fuel, one run exiting 10 and one 0: no quorum, a third replica.
    w.report(acct(2), vec![exited(task, 10, 7)]);
    w.report(acct(3), vec![exited(task, 0, 7)]);
    assert_ne!(w.task_state(task), TaskState::Done);
    w.assign(acct(4), &[task]);
    w.report(acct(4), vec![exited(task, 10, 7)]);
    assert_eq!(w.task_state(task), TaskState::Done);
    let result = w.task(task).result.clone().unwrap();
    assert_eq!(result.providers, vec![acct(2), acct(4)]);
    assert_eq!(w.state.accepted_status(task), 10);
    assert!(matches!(
        w.task(task).runs[0].outcome,
        RunOutcome::Answered { status: 10, .. }
    ));
}

#[test]
fn without_options_only_zero_is_an_answer_and_a_reduce_task_answers_with_zero() {
    let mut w = World::new();
    w.register(acct(2), provider_spec());
    let plain = w.submit(acct(OWNER), job_spec(1));
    w.assign(acct(2), &[tid(plain, 0)]);
    w.report(acct(2), vec![exited(tid(plain, 0), 10, 7)]);
    assert_ne!(w.task_state(tid(plain, 0)), TaskState::Done);
    let error = w.task(tid(plain, 0)).last_error.clone().unwrap_or_default();
    assert!(error.contains("exited with status 10"), "{error}");

    let job = submit(&mut w, reduce_job_spec(1), &[10]);
    w.assign(acct(2), &[tid(job, 0)]);
    w.report(acct(2), vec![exited(tid(job, 0), 10, 7)]);
    let reduce = tid(job, 1);
    let descriptor = w
        .state
        .task_descriptor(reduce)
        .expect("the reduce task is ready");
    assert!(descriptor.success_exits.is_empty(), "{descriptor:?}");
    w.assign(acct(2), &[reduce]);
    w.report(acct(2), vec![exited(reduce, 0, 8)]);
    assert_eq!(w.task_state(reduce), TaskState::Done);
    assert_eq!(w.state.accepted_status(reduce), 0);
}

#[test]
fn bad_options_and_older_rules_are_refused_whole() {
    let mut w = World::new();
    for bad in [vec![126], vec![-1], vec![3, 3], vec![0; 17]] {
        let rejection = w.act_rejected(
            acct(OWNER),
            Action::SubmitJobWithOptions {
                spec: job_spec(1),
                storage: None,
                options: JobOptions {
                    success_exits: bad.clone(),
                    entry: None,
                },
            },
        );
        assert!(
            matches!(rejection, Rejection::InvalidJobSpec(_)),
            "{bad:?}: {rejection}"
        );
    }
    let mut old = World::new().under_rules(10);
    let rejection = old.act_rejected(
        acct(OWNER),
        Action::SubmitJobWithOptions {
            spec: job_spec(1),
            storage: None,
            options: JobOptions::default(),
        },
    );
    assert!(
        matches!(rejection, Rejection::NeedsRules { needs: 11, .. }),
        "{rejection}"
    );
}
