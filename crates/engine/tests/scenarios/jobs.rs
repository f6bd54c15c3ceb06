//! Job submission: ids, the queue, and every way a job spec can be invalid.

use crate::support::*;
use engine::{
    Action, Aggregate, EngineConfig, Event, JobSpec, JobStatus, OutputSource, Rejection, TaskSpec,
    TaskState,
};

#[test]
fn submit_assigns_ids_from_one_and_queues_tasks_in_order() {
    let mut w = World::new();
    w.time = 77;
    let events = w.act(acct(1), Action::SubmitJob(job_spec(3)));
    assert_eq!(
        events,
        vec![Event::JobSubmitted {
            job: 1,
            owner: acct(1),
            tasks: 3,
        }]
    );
    let events = w.act(acct(2), Action::SubmitJob(reduce_job_spec(2)));
    assert_eq!(
        events,
        vec![Event::JobSubmitted {
            job: 2,
            owner: acct(2),
            tasks: 2,
        }]
    );
    assert_eq!(w.state.next_job, 3);
    assert_eq!(
        w.queue(),
        vec![tid(1, 0), tid(1, 1), tid(1, 2), tid(2, 0), tid(2, 1)]
    );
    let job = w.job(1);
    assert_eq!(job.id, 1);
    assert_eq!(job.owner, acct(1));
    assert_eq!(job.spec, job_spec(3));
    assert_eq!(job.submitted_at, 77);
    assert_eq!(job.finished_at, None);
    assert_eq!(job.status, JobStatus::Running);
    assert_eq!(job.maps_done, 0);
    assert_eq!(job.output_parts(), None);
    assert_eq!(job.tasks.len(), 3);
    for task in &job.tasks {
        assert_eq!(task.state, TaskState::Queued);
        assert_eq!(task.failures, 0);
        assert_eq!(task.result, None);
        assert_eq!(task.last_error, None);
    }
    // The reduce task does not exist until the maps are done.
    assert_eq!(w.job(2).tasks.len(), 2);
}

type Mutation = fn(&mut JobSpec);

/// Each case: a name, how to break the default job, and a word the rejection must contain.
fn invalid_job_cases() -> Vec<(&'static str, Mutation, &'static str)> {
    let max = EngineConfig::default();
    assert_eq!(
        max.max_fuel, 1_000_000_000_000,
        "cases below assume the default limits"
    );
    assert_eq!(max.max_memory_bytes, 4 << 30);
    assert_eq!(max.max_wall_ms, 24 * 3600 * 1000);
    assert_eq!(max.max_args_bytes_per_task, 64 * 1024);
    fn with_input(s: &mut JobSpec, name: &str) {
        s.tasks[0].inputs = vec![input(name, 1)];
    }
    vec![
        ("no tasks", |s| s.tasks.clear(), "at least one task"),
        ("deadline now", |s| s.deadline = 1000, "deadline"),
        ("deadline past", |s| s.deadline = 999, "deadline"),
        ("deadline zero", |s| s.deadline = 0, "deadline"),
        ("zero fuel", |s| s.limits.fuel = 0, "fuel"),
        (
            "fuel above max",
            |s| s.limits.fuel = 1_000_000_000_001,
            "fuel",
        ),
        ("zero memory", |s| s.limits.memory_bytes = 0, "memory"),
        (
            "memory above max",
            |s| s.limits.memory_bytes = (4 << 30) + 1,
            "memory",
        ),
        ("zero wall time", |s| s.limits.wall_ms = 0, "wall time"),
        (
            "wall time above max",
            |s| s.limits.wall_ms = 24 * 3600 * 1000 + 1,
            "wall time",
        ),
        (
            "reduce with zero fuel",
            |s| {
                let mut r = reduce_spec();
                r.limits.fuel = 0;
                s.aggregate = Aggregate::Reduce(r);
            },
            "reduce limits",
        ),
        (
            "reduce with too much memory",
            |s| {
                let mut r = reduce_spec();
                r.limits.memory_bytes = u64::MAX;
                s.aggregate = Aggregate::Reduce(r);
            },
            "reduce limits",
        ),
        (
            "reduce arguments too large",
            |s| {
                let mut r = reduce_spec();
                r.args = vec!["a".repeat(40 * 1024), "b".repeat(24 * 1024 + 1)];
                s.aggregate = Aggregate::Reduce(r);
            },
            "reduce arguments",
        ),
        (
            "task arguments too large",
            |s| s.tasks[0].args = vec!["a".repeat(64 * 1024 + 1)],
            "too large",
        ),
        (
            "task arguments and environment too large",
            |s| {
                s.tasks[1].args = vec!["a".repeat(32 * 1024)];
                s.tasks[1].env = vec![("K".into(), "v".repeat(32 * 1024))];
            },
            "task 1: arguments and environment too large",
        ),
        (
            "empty input name",
            |s| with_input(s, ""),
            "not a plain file name",
        ),
        (
            "input name .",
            |s| with_input(s, "."),
            "not a plain file name",
        ),
        (
            "input name ..",
            |s| with_input(s, ".."),
            "not a plain file name",
        ),
        (
            "input name ../x",
            |s| with_input(s, "../x"),
            "not a plain file name",
        ),
        (
            "input name a/b",
            |s| with_input(s, "a/b"),
            "not a plain file name",
        ),
        (
            "input name /etc",
            |s| with_input(s, "/etc"),
            "not a plain file name",
        ),
        (
            "input name a\\b",
            |s| with_input(s, "a\\b"),
            "not a plain file name",
        ),
        (
            "input name with NUL",
            |s| with_input(s, "a\0b"),
            "not a plain file name",
        ),
        (
            "input name with newline",
            |s| with_input(s, "a\nb"),
            "not a plain file name",
        ),
        (
            "input name too long",
            |s| with_input(s, &"n".repeat(256)),
            "not a plain file name",
        ),
        (
            "duplicate input names",
            |s| s.tasks[2].inputs = vec![input("data", 1), input("other", 2), input("data", 3)],
            "task 2: input \"data\" listed twice",
        ),
        (
            "empty output file name",
            |s| s.output = OutputSource::File(String::new()),
            "output file name",
        ),
        (
            "output file in a directory",
            |s| s.output = OutputSource::File("out/result".into()),
            "output file name",
        ),
        (
            "output file ..",
            |s| s.output = OutputSource::File("..".into()),
            "output file name",
        ),
        (
            "env key with =",
            |s| s.tasks[0].env = vec![("A=B".into(), "c".into())],
            "environment variable",
        ),
        (
            "empty env key",
            |s| s.tasks[0].env = vec![(String::new(), "c".into())],
            "environment variable",
        ),
    ]
}

#[test]
fn invalid_job_specs_are_rejected() {
    for (name, mutate, needle) in invalid_job_cases() {
        let mut w = World::new();
        // A job already in the system must be untouched by the rejection.
        w.submit(acct(1), job_spec(1));
        let mut spec = job_spec(3);
        mutate(&mut spec);
        match w.act_rejected(acct(1), Action::SubmitJob(spec)) {
            Rejection::InvalidJobSpec(why) => {
                assert!(why.contains(needle), "{name}: {why:?} lacks {needle:?}")
            }
            other => panic!("{name}: unexpected rejection {other:?}"),
        }
        assert_eq!(w.state.next_job, 2, "{name}");
    }
}

#[test]
fn job_spec_bounds_are_accepted() {
    type Case = (&'static str, Mutation);
    let cases: Vec<Case> = vec![
        ("deadline just ahead", |s| s.deadline = 1001),
        ("max fuel", |s| s.limits.fuel = 1_000_000_000_000),
        ("max memory", |s| s.limits.memory_bytes = 4 << 30),
        ("max wall time", |s| s.limits.wall_ms = 24 * 3600 * 1000),
        ("args exactly at the limit", |s| {
            s.tasks[0].args = vec!["a".repeat(64 * 1024)]
        }),
        ("free job", |s| s.max_price = 0),
        ("plain input names", |s| {
            s.tasks[0].inputs = vec![input("data.csv", 1), input(".hidden", 2), input("a b", 3)];
            // The same name in different tasks is fine.
            s.tasks[1].inputs = vec![input("data.csv", 4)];
        }),
        ("output file", |s| {
            s.output = OutputSource::File("out.txt".into())
        }),
        ("env with = in the value", |s| {
            s.tasks[0].env = vec![("K".into(), "a=b".into())]
        }),
        ("stdin", |s| s.tasks[0].stdin = Some(hash(3))),
        ("task without arguments", |s| {
            s.tasks[0] = TaskSpec::default()
        }),
    ];
    for (name, mutate) in cases {
        let mut w = World::new();
        let mut spec = job_spec(2);
        mutate(&mut spec);
        let job = w.submit(acct(1), spec.clone());
        assert_eq!(w.job(job).spec, spec, "{name}");
    }
}

#[test]
fn task_count_is_bounded_by_the_config() {
    let mut w = World::with_config(EngineConfig {
        max_tasks_per_job: 2,
        ..EngineConfig::default()
    });
    assert!(matches!(
        w.act_rejected(acct(1), Action::SubmitJob(job_spec(3))),
        Rejection::InvalidJobSpec(why) if why.contains("3 tasks exceed the limit of 2")
    ));
    assert_eq!(w.submit(acct(1), job_spec(2)), 1);
}
