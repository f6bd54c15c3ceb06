//! Provider lifecycle: registration, re-registration, leaving and being declared lost.

use crate::support::*;
use engine::{
    Action, Event, LeaderCommand, ProviderSpec, ProviderStatus, Rejection, TaskOutcome, TaskState,
};

#[test]
fn register_emits_event_and_stores_the_provider() {
    let mut w = World::new();
    w.time = 1234;
    let events = w.register(acct(1), provider_spec());
    assert_eq!(
        events,
        vec![Event::ProviderRegistered {
            provider: acct(1),
            requeued: vec![],
        }]
    );
    let p = w.provider(acct(1));
    assert_eq!(p.id, acct(1));
    assert_eq!(p.spec, provider_spec());
    assert_eq!(p.status, ProviderStatus::Active);
    assert_eq!(p.registered_at, 1234);
    assert!(p.running.is_empty());
    assert_eq!(w.state.nonce(&acct(1)), 1);
    assert_eq!(w.state.applied, 1);
    assert_eq!(w.state.now, 1234);
}

#[test]
fn invalid_provider_specs_are_rejected() {
    let long = |n: usize| "x".repeat(n);
    type Case = (&'static str, fn(&mut ProviderSpec), &'static str);
    let cases: Vec<Case> = vec![
        ("zero slots", |s| s.slots = 0, "slots"),
        ("1025 slots", |s| s.slots = 1025, "slots"),
        ("zero cores", |s| s.cores = 0, "cores and memory"),
        ("zero memory", |s| s.memory_bytes = 0, "cores and memory"),
        (
            "long region",
            |s| s.region = "r".repeat(65),
            "region or gpu",
        ),
        (
            "long gpu",
            |s| s.gpu = Some("g".repeat(257)),
            "region or gpu",
        ),
    ];
    for (name, mutate, needle) in cases {
        let mut w = World::new();
        // An existing registration must survive a rejected update untouched.
        w.register(acct(1), provider_spec());
        let mut spec = provider_spec();
        mutate(&mut spec);
        for who in [acct(1), acct(2)] {
            match w.act_rejected(who, Action::RegisterProvider(spec.clone())) {
                Rejection::InvalidProviderSpec(why) => {
                    assert!(why.contains(needle), "{name}: {why:?} lacks {needle:?}")
                }
                other => panic!("{name}: unexpected rejection {other:?}"),
            }
        }
        assert!(!w.state.providers.contains_key(&acct(2)), "{name}");
    }
    // The bounds themselves are accepted.
    let mut w = World::new();
    w.register(
        acct(1),
        ProviderSpec {
            slots: 1024,
            region: long(64),
            gpu: Some(long(256)),
            ..provider_spec()
        },
    );
    w.register(
        acct(2),
        ProviderSpec {
            slots: 1,
            cores: 1,
            memory_bytes: 1,
            ..provider_spec()
        },
    );
    assert_eq!(w.state.providers.len(), 2);
}

#[test]
fn reregistering_requeues_running_tasks_and_updates_the_spec() {
    let mut w = World::new();
    w.time = 10;
    w.register(acct(1), provider_spec());
    let job = w.submit(acct(9), job_spec(3));
    w.assign(acct(1), &[tid(job, 0), tid(job, 2)]);
    w.time = 20;
    let spec = ProviderSpec {
        slots: 1,
        price_per_fuel: 2,
        ..provider_spec()
    };
    let events = w.register(acct(1), spec.clone());
    assert_eq!(
        events,
        vec![Event::ProviderRegistered {
            provider: acct(1),
            requeued: vec![tid(job, 0), tid(job, 2)],
        }]
    );
    let p = w.provider(acct(1));
    assert_eq!(p.spec, spec);
    assert_eq!(
        p.registered_at, 10,
        "re-registration keeps the first registration time"
    );
    assert!(p.running.is_empty());
    assert_eq!(w.queue(), vec![tid(job, 0), tid(job, 1), tid(job, 2)]);
    for i in 0..3 {
        assert_eq!(w.task_state(tid(job, i)), TaskState::Queued);
    }
    // Lowering the slots takes effect for the next pick.
    assert_eq!(w.state.pick(acct(1), 10), vec![tid(job, 0)]);
}

#[test]
fn reregistering_reactivates_a_lost_or_departed_provider() {
    let mut w = World::new();
    w.register(acct(1), provider_spec());
    w.register(acct(2), provider_spec());
    w.lead(LeaderCommand::ProviderLost { provider: acct(1) });
    w.act(acct(2), Action::LeaveProvider);
    for who in [acct(1), acct(2)] {
        assert_ne!(w.provider(who).status, ProviderStatus::Active);
        assert_eq!(
            w.register(who, provider_spec()),
            vec![Event::ProviderRegistered {
                provider: who,
                requeued: vec![],
            }]
        );
        assert_eq!(w.provider(who).status, ProviderStatus::Active);
    }
    assert_eq!(w.provider(acct(1)).stats.times_lost, 1);
    assert_eq!(w.provider(acct(2)).stats.times_lost, 0);
}

/// `ProviderLost` (a leader command) and `LeaveProvider` (a signed action) take the same path.
#[derive(Clone, Copy, Debug)]
enum Gone {
    Lost,
    Left,
}

fn gone(w: &mut World, how: Gone, who: engine::AccountId) -> Result<Vec<Event>, Rejection> {
    match how {
        Gone::Lost => w.apply(engine::Input::Leader(LeaderCommand::ProviderLost {
            provider: who,
        })),
        Gone::Left => {
            let input = w.action(who, Action::LeaveProvider);
            w.apply(input)
        }
    }
}

fn gone_rejected(w: &mut World, how: Gone, who: engine::AccountId) -> Rejection {
    match how {
        Gone::Lost => w.lead_rejected(LeaderCommand::ProviderLost { provider: who }),
        Gone::Left => w.act_rejected(who, Action::LeaveProvider),
    }
}

#[test]
fn lost_or_departed_provider_requeues_its_tasks_once() {
    for how in [Gone::Lost, Gone::Left] {
        let mut w = World::new();
        w.register(acct(1), provider_spec());
        w.register(acct(2), provider_spec());
        let job = w.submit(acct(9), job_spec(4));
        w.assign(acct(1), &[tid(job, 1), tid(job, 3)]);
        w.assign(acct(2), &[tid(job, 0)]);

        let events = gone(&mut w, how, acct(1)).unwrap();
        let requeued = vec![tid(job, 1), tid(job, 3)];
        let expected = match how {
            Gone::Lost => Event::ProviderLost {
                provider: acct(1),
                requeued,
            },
            Gone::Left => Event::ProviderLeft {
                provider: acct(1),
                requeued,
            },
        };
        assert_eq!(events, vec![expected], "{how:?}");
        let p = w.provider(acct(1));
        assert!(p.running.is_empty(), "{how:?}");
        let (status, lost) = match how {
            Gone::Lost => (ProviderStatus::Lost, 1),
            Gone::Left => (ProviderStatus::Left, 0),
        };
        assert_eq!(p.status, status, "{how:?}");
        assert_eq!(p.stats.times_lost, lost, "{how:?}");
        assert_eq!(w.queue(), vec![tid(job, 1), tid(job, 2), tid(job, 3)]);
        assert_eq!(w.task_state(tid(job, 1)), TaskState::Queued);
        // The other provider's work is untouched.
        assert_eq!(w.running(acct(2)), vec![tid(job, 0)]);

        // Gone is gone: neither a second loss nor a leave is accepted, nor new work.
        for again in [Gone::Lost, Gone::Left] {
            assert_eq!(
                gone_rejected(&mut w, again, acct(1)),
                Rejection::ProviderInactive(acct(1)),
                "{how:?} then {again:?}"
            );
        }
        assert!(w.state.pick(acct(1), 10).is_empty());
        assert_eq!(
            w.lead_rejected(LeaderCommand::AssignTasks {
                provider: acct(1),
                tasks: vec![tid(job, 1)],
            }),
            Rejection::ProviderInactive(acct(1))
        );
        // Unknown providers can be neither lost nor leave.
        assert_eq!(
            gone_rejected(&mut w, how, acct(3)),
            Rejection::UnknownProvider(acct(3))
        );
    }
}

#[test]
fn late_report_from_a_lost_provider_is_ignored() {
    for how in [Gone::Lost, Gone::Left] {
        let mut w = World::new();
        w.register(acct(1), provider_spec());
        w.register(acct(2), provider_spec());
        let job = w.submit(acct(9), job_spec(1));
        w.assign(acct(1), &[tid(job, 0)]);
        gone(&mut w, how, acct(1)).unwrap();
        w.assign(acct(2), &[tid(job, 0)]);

        for outcome in [TaskOutcome::Success, TaskOutcome::Exit(1)] {
            let jobs = w.state.jobs.clone();
            let queue = w.state.queue.clone();
            let report = engine::TaskReport {
                outcome: outcome.clone(),
                ..success(tid(job, 0), 5, 10)
            };
            let events = w.report(acct(1), vec![report]);
            assert_eq!(
                events,
                vec![Event::ReportIgnored {
                    task: tid(job, 0),
                    provider: acct(1),
                    reason: "task is not assigned to this provider".into(),
                }],
                "{how:?} {outcome:?}"
            );
            assert_eq!(w.state.jobs, jobs, "{how:?} {outcome:?}");
            assert_eq!(w.state.queue, queue);
            let stats = &w.provider(acct(1)).stats;
            assert_eq!(
                (stats.tasks_completed, stats.tasks_failed, stats.fuel_used),
                (0, 0, 0)
            );
        }
        assert_eq!(w.running(acct(2)), vec![tid(job, 0)]);
        assert_eq!(w.task_state(tid(job, 0)), TaskState::Running);
        let last = w.task(tid(job, 0)).runs.last().cloned().unwrap();
        assert_eq!((last.provider, last.started), (acct(2), w.time));
    }
}
