//! `State::task_descriptor`: what a provider runs for a map task, and its seed.

use crate::support::*;
use engine::{OutputSource, TaskDescriptor, TaskSpec};
use std::collections::BTreeSet;

#[test]
fn map_descriptor_comes_from_the_job_spec() {
    let mut w = World::new();
    let mut spec = job_spec(2);
    spec.output = OutputSource::File("out.bin".into());
    spec.tasks[1] = TaskSpec {
        args: vec!["--n".into(), "7".into()],
        env: vec![("MODE".into(), "fast".into())],
        stdin: Some(hash(5)),
        inputs: vec![input("a.txt", 6), input("b.txt", 7)],
    };
    let job = w.submit(acct(9), spec.clone());
    let d = w.state.task_descriptor(tid(job, 1)).unwrap();
    assert_eq!(
        d,
        TaskDescriptor {
            task: tid(job, 1),
            module: hash(0xAA),
            args: vec!["--n".into(), "7".into()],
            env: vec![("MODE".into(), "fast".into())],
            stdin: Some(hash(5)),
            inputs: vec![input("a.txt", 6), input("b.txt", 7)],
            output: OutputSource::File("out.bin".into()),
            limits: limits(),
            seed: d.seed,
            output_limit: None,
            success_exits: Vec::new(),
            entry: None,
            mounts: Vec::new(),
            scratch: None,
            private: None,
            profile: 5,
            gpu: None,
            tolerance: None,
        }
    );
    assert_eq!(
        w.state.task_descriptor(tid(job, 0)).unwrap().args,
        vec!["task-0".to_string()]
    );
}

#[test]
fn descriptor_of_an_unknown_task_is_none() {
    let mut w = World::new();
    let concat = w.submit(acct(9), job_spec(2));
    let reduce = w.submit(acct(9), reduce_job_spec(2));
    assert_eq!(w.state.task_descriptor(tid(concat, 2)), None);
    assert_eq!(w.state.task_descriptor(tid(reduce, 2)), None);
    assert_eq!(w.state.task_descriptor(tid(reduce, 3)), None);
    assert_eq!(w.state.task_descriptor(tid(99, 0)), None);
    assert_eq!(w.state.task_descriptor(tid(0, 0)), None);
}

#[test]
fn seeds_differ_between_tasks_and_are_stable() {
    let build = || {
        let mut w = World::new();
        w.submit(acct(9), job_spec(50));
        w.submit(acct(8), job_spec(50));
        w
    };
    let w = build();
    let ids: Vec<_> = (1..=2)
        .flat_map(|job| (0..50).map(move |i| tid(job, i)))
        .collect();
    let seeds: Vec<u64> = ids
        .iter()
        .map(|id| w.state.task_descriptor(*id).unwrap().seed)
        .collect();
    let distinct: BTreeSet<_> = seeds.iter().collect();
    assert_eq!(distinct.len(), seeds.len(), "every task has its own seed");
    // Asking again, or asking an independently built state, gives the same seeds.
    let again = build();
    for (id, seed) in ids.iter().zip(&seeds) {
        assert_eq!(w.state.task_descriptor(*id).unwrap().seed, *seed);
        assert_eq!(again.state.task_descriptor(*id).unwrap().seed, *seed);
    }
}

#[test]
fn the_sandbox_profile_follows_the_rules() {
    // Rules 29: profile 5 (host calls charged by the module); rules 22: profile 4 (float
    // vectors' NaNs canonical where observable); rules 21: profile
    // 3 (the module meters itself); rules 20: profile 2 (NaNs canonical where observable);
    // before, profile 1.
    for (rules, profile) in [
        (engine::RULES, 5),
        (29, 5),
        (28, 4),
        (22, 4),
        (21, 3),
        (20, 2),
        (19, 1),
        (engine::FIRST_RULES, 1),
    ] {
        let mut w = World::new().under_rules(rules);
        let job = w.submit(acct(9), job_spec(1));
        let d = w.state.task_descriptor(tid(job, 0)).unwrap();
        assert_eq!(d.profile, profile, "rules {rules}");
        assert_eq!(w.state.sandbox_profile(), profile);
    }
    // A descriptor from a coordinator that predates the field runs under profile 1.
    let mut w = World::new();
    let job = w.submit(acct(9), job_spec(1));
    let mut json = serde_json::to_value(w.state.task_descriptor(tid(job, 0)).unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("profile");
    let old: TaskDescriptor = serde_json::from_value(json).unwrap();
    assert_eq!(old.profile, engine::FIRST_PROFILE);
}
