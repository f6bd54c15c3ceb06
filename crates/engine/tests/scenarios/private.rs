//! Rules 13: private jobs — sealed to the providers that may run them, assigned to those only
//! (by the leader and by providers' own fetches alike), the sealing in every descriptor and in
//! the state's hash.

use crate::support::*;
use engine::{
    Action, Aggregate, JobFiles, JobOptions, JobSpec, LeaderCommand, Recipient, Redundancy,
    Rejection, Sealing,
};

const OWNER: u8 = 1;

fn sealing(providers: &[u8]) -> Sealing {
    Sealing {
        key_check: hash(0x5e),
        // Out of order on purpose: the state keeps them sorted.
        recipients: providers
            .iter()
            .rev()
            .map(|p| Recipient {
                provider: acct(*p),
                wrapped: vec![*p; 80],
            })
            .collect(),
        // Out of order and twice: kept sorted, once.
        clear: vec![hash(0x72), hash(0x71), hash(0x72)],
    }
}

fn private(spec: JobSpec, sealing: Sealing) -> Action {
    Action::SubmitPrivateJob {
        spec,
        storage: None,
        options: JobOptions::default(),
        files: JobFiles::default(),
        sealing,
    }
}

fn submit(w: &mut World, spec: JobSpec, sealing: Sealing) -> u64 {
    let job = w.state.next_job;
    w.act(acct(OWNER), private(spec, sealing));
    job
}

#[test]
fn a_private_jobs_tasks_go_only_to_its_providers_and_carry_its_sealing() {
    let mut w = World::new();
    for p in [2, 3, 4] {
        w.register(acct(p), provider_spec());
    }
    let mut spec = job_spec(2);
    spec.aggregate = Aggregate::Reduce(reduce_spec());
    let job = submit(&mut w, spec, sealing(&[2, 3]));
    let want = sealing(&[2, 3]).normalised().unwrap();
    assert_eq!(want.recipients[0].provider, acct(2), "sorted");
    assert_eq!(want.clear, vec![hash(0x71), hash(0x72)]);
    assert_eq!(w.state.job_sealing(job), Some(&want));
    assert_eq!(
        w.state.task_descriptor(tid(job, 0)).unwrap().private,
        Some(want.clone())
    );

    // Provider 4 was not sealed to: the scheduler offers it nothing, and a leader that
    // assigns it a task anyway is refused.
    assert!(w.state.pick(acct(4), 8).is_empty());
    let rejection = w.lead_rejected(LeaderCommand::AssignTasks {
        provider: acct(4),
        tasks: vec![tid(job, 0)],
    });
    assert!(
        matches!(&rejection, Rejection::TaskDoesNotFit { why, .. } if why.contains("not sealed to this provider")),
        "{rejection}"
    );
    assert_eq!(w.state.pick(acct(2), 8).len(), 2);

    // The reduce task is the job's too: sealed the same, to the same providers.
    w.assign(acct(2), &[tid(job, 0), tid(job, 1)]);
    w.report(
        acct(2),
        vec![success(tid(job, 0), 1, 10), success(tid(job, 1), 2, 10)],
    );
    let reduce = w.state.task_descriptor(tid(job, 2)).unwrap();
    assert_eq!(reduce.private, Some(want));
    assert!(w.state.pick(acct(4), 8).is_empty());
    assert_eq!(w.state.pick(acct(3), 8), vec![tid(job, 2)]);
}

#[test]
fn a_job_sealed_to_too_few_providers_says_so() {
    let mut w = World::new();
    for p in [2, 3, 4] {
        w.register(acct(p), provider_spec());
    }
    // Two matching results needed: one provider cannot give them.
    let mut spec = job_spec(1);
    spec.redundancy = Redundancy::Fixed {
        quorum: 2,
        max_results: 2,
    };
    let job = submit(&mut w, spec.clone(), sealing(&[2]));
    let outlook = w.state.job_outlook(job).expect("a warning");
    assert!(outlook.contains("matching results"), "{outlook}");
    // The same job sealed to all three can finish.
    let job = submit(&mut w, spec, sealing(&[2, 3, 4]));
    assert_eq!(w.state.job_outlook(job), None);
}

#[test]
fn the_sealing_is_part_of_the_state_hash() {
    let mut a = World::new();
    let mut b = World::new();
    submit(&mut a, job_spec(1), sealing(&[2, 3]));
    submit(&mut b, job_spec(1), sealing(&[2, 4]));
    assert_ne!(a.state.hash(), b.state.hash());
}

#[test]
fn bad_sealings_and_older_rules_are_refused_whole() {
    let mut w = World::new();
    let mut twice = sealing(&[2, 3]);
    twice.recipients[1].provider = acct(3);
    let mut empty_key = sealing(&[2]);
    empty_key.recipients[0].wrapped.clear();
    for bad in [sealing(&[]), twice, empty_key] {
        let rejection = w.act_rejected(acct(OWNER), private(job_spec(1), bad.clone()));
        assert!(
            matches!(rejection, Rejection::InvalidJobSpec(_)),
            "{bad:?}: {rejection}"
        );
    }
    let mut old = World::new().under_rules(12);
    let rejection = old.act_rejected(acct(OWNER), private(job_spec(1), sealing(&[2])));
    assert!(
        matches!(rejection, Rejection::NeedsRules { needs: 13, .. }),
        "{rejection}"
    );
}

fn seal_to(job: u64, providers: &[u8]) -> Action {
    Action::SealJobTo {
        job,
        recipients: providers
            .iter()
            .map(|p| Recipient {
                provider: acct(*p),
                wrapped: vec![*p; 80],
            })
            .collect(),
    }
}

#[test]
fn its_owner_seals_an_unfinished_private_job_to_more_providers() {
    let mut w = World::new();
    for p in [2, 3, 4] {
        w.register(acct(p), provider_spec());
    }
    let job = submit(&mut w, job_spec(1), sealing(&[2]));
    assert!(w.state.pick(acct(4), 8).is_empty());
    let events = w.act(acct(OWNER), seal_to(job, &[4, 3]));
    assert!(
        events.contains(&engine::Event::JobSealedTo {
            job,
            providers: vec![acct(3), acct(4)],
        }),
        "{events:?}"
    );
    let sealing = w.state.job_sealing(job).unwrap();
    let providers: Vec<_> = sealing.providers().copied().collect();
    assert_eq!(providers, vec![acct(2), acct(3), acct(4)]);
    assert_eq!(sealing.key_check, hash(0x5e));
    assert_eq!(w.state.pick(acct(4), 8), vec![tid(job, 0)]);

    // Refused whole: someone else, a provider it has, nobody, a public job, an ended one.
    let plain = w.submit(acct(OWNER), job_spec(1));
    let table: Vec<(u8, Action, &str)> = vec![
        (9, seal_to(job, &[5]), "only the owner"),
        (OWNER, seal_to(job, &[2]), "already sealed to provider"),
        (OWNER, seal_to(job, &[]), "no provider"),
        (OWNER, seal_to(plain, &[5]), "is not private"),
        (OWNER, seal_to(99, &[5]), "unknown job"),
    ];
    for (who, action, says) in table {
        let rejection = w.act_rejected(acct(who), action);
        assert!(
            rejection.to_string().contains(says),
            "{rejection} lacks {says}"
        );
    }
    w.act(acct(OWNER), Action::CancelJob(job));
    let rejection = w.act_rejected(acct(OWNER), seal_to(job, &[5]));
    assert!(matches!(rejection, Rejection::JobEnded(_)), "{rejection}");
}
