//! Rules 12: job files — directory trees mounted read-only and a scratch directory, told to
//! every provider that runs one of the job's map tasks, part of the state (and its hash).

use crate::support::*;
use engine::{Action, Aggregate, Event, JobFiles, JobOptions, JobSpec, Mount, Rejection, Scratch};

const OWNER: u8 = 1;

fn files() -> JobFiles {
    JobFiles {
        // Out of order on purpose: the state keeps them sorted by path.
        mounts: vec![
            Mount {
                path: "/usr/local/lib".into(),
                tree: hash(0x71),
            },
            Mount {
                path: "/data".into(),
                tree: hash(0x72),
            },
        ],
        scratch: Some(Scratch {
            path: "/tmp".into(),
            bytes: 1 << 20,
        }),
    }
}

fn submit(w: &mut World, spec: JobSpec, files: JobFiles) -> u64 {
    let events = w.act(
        acct(OWNER),
        Action::SubmitJobWithFiles {
            spec,
            storage: None,
            options: JobOptions::default(),
            files,
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

#[test]
fn map_tasks_see_the_jobs_mounts_and_scratch_and_its_blobs_include_the_trees() {
    let mut w = World::new();
    let mut spec = job_spec(2);
    spec.aggregate = Aggregate::Reduce(reduce_spec());
    let job = submit(&mut w, spec.clone(), files());
    let want = files().normalised().unwrap();
    assert_eq!(want.mounts[0].path, "/data", "sorted by path");
    assert_eq!(w.state.job_files(job), want);
    for index in 0..2 {
        let d = w.state.task_descriptor(tid(job, index)).unwrap();
        assert_eq!(d.mounts, want.mounts);
        assert_eq!(d.scratch, want.scratch);
    }
    let mut blobs = spec.blobs();
    blobs.extend([hash(0x71), hash(0x72)]);
    blobs.sort();
    assert_eq!(w.state.job_blobs(job), blobs);

    // The reduce step sees its map outputs only.
    let tasks = [tid(job, 0), tid(job, 1)];
    w.register(acct(2), provider_spec());
    w.assign(acct(2), &tasks);
    w.report(
        acct(2),
        vec![success(tasks[0], 1, 10), success(tasks[1], 2, 10)],
    );
    let reduce = w.state.task_descriptor(tid(job, 2)).unwrap();
    assert!(reduce.mounts.is_empty() && reduce.scratch.is_none());
}

#[test]
fn files_are_part_of_the_state_hash() {
    let mut with = World::new();
    let mut without = World::new();
    submit(&mut with, job_spec(1), files());
    submit(&mut without, job_spec(1), JobFiles::default());
    assert_eq!(without.state.job_files(1), JobFiles::default());
    assert_ne!(with.state.hash(), without.state.hash());
}

#[test]
fn bad_files_and_older_rules_are_refused_whole() {
    let mut w = World::new();
    let mut overlapping = files();
    overlapping.mounts[1].path = "/usr/local".into();
    let mut no_quota = files();
    no_quota.scratch.as_mut().unwrap().bytes = 0;
    let mut relative = files();
    relative.mounts[0].path = "usr".into();
    for bad in [overlapping, no_quota, relative] {
        let rejection = w.act_rejected(
            acct(OWNER),
            Action::SubmitJobWithFiles {
                spec: job_spec(1),
                storage: None,
                options: JobOptions::default(),
                files: bad.clone(),
            },
        );
        assert!(
            matches!(rejection, Rejection::InvalidJobSpec(_)),
            "{bad:?}: {rejection}"
        );
    }
    let mut old = World::new().under_rules(11);
    let rejection = old.act_rejected(
        acct(OWNER),
        Action::SubmitJobWithFiles {
            spec: job_spec(1),
            storage: None,
            options: JobOptions::default(),
            files: files(),
        },
    );
    assert!(
        matches!(rejection, Rejection::NeedsRules { needs: 12, .. }),
        "{rejection}"
    );
}
