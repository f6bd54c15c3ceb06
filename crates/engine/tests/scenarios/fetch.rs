//! Work handed out on providers' own signed fetches (`Input::Fetch`): the engine picks the tasks,
//! so a replay of the log (and every validator) derives the same assignment.

use crate::support::*;
use engine::{
    AccountId, Dispatch, Event, Genesis, Hash, Input, LeaderCommand, LedgerParams, Rejection,
    Request, Sig, Signed, TaskId, Validator, ValidatorSet, Validators, Waiting, WorkFetch,
};

/// `who`'s fetch for up to `max` tasks, signed (with a dummy signature: the engine does not check
/// them) with `nonce`.
fn fetch_of(who: AccountId, nonce: u64, max: u32, cached: Vec<Hash>) -> Signed<Request> {
    Signed {
        signer: who,
        nonce,
        body: Request::Fetch {
            max,
            wait_ms: 0,
            held: Vec::new(),
            cached,
        },
        signature: Sig([0; 64]),
    }
}

fn serve(fetches: Vec<Signed<Request>>, waiting: Vec<Waiting>) -> Input {
    Input::Fetch(Box::new(WorkFetch { fetches, waiting }))
}

fn assigned(events: &[Event]) -> Vec<(AccountId, Vec<TaskId>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TasksAssigned { provider, tasks } => Some((*provider, tasks.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_fetch_gets_what_the_scheduler_picks_and_uses_its_nonce_up() {
    let mut w = World::new();
    w.register(acct(1), provider_spec());
    let job = w.submit(acct(9), job_spec(3));
    w.time = 2000;
    let nonce = w.state.nonce(&acct(1)) + 1;
    let fetch = fetch_of(acct(1), nonce, 2, Vec::new());
    let expected = w.state.pick_tasks(acct(1), 2, &Dispatch::at(2000));
    assert_eq!(expected.len(), 2);
    let dry = WorkFetch {
        fetches: vec![fetch.clone()],
        waiting: Vec::new(),
    };
    assert_eq!(w.state.would_fetch(&dry, 2000), expected);
    let events = w.accept(serve(vec![fetch.clone()], Vec::new()));
    assert_eq!(assigned(&events), vec![(acct(1), expected.clone())]);
    assert_eq!(w.running(acct(1)).len(), 2);
    assert_eq!(w.state.nonce(&acct(1)), nonce);
    // The same fetch again (a replay by the leader): nothing, and nothing changes.
    assert_eq!(w.state.would_fetch(&dry, 2000), Vec::<TaskId>::new());
    assert_eq!(
        w.reject(serve(vec![fetch], Vec::new())),
        Rejection::NothingToAssign
    );
    // A fresh fetch takes the last task.
    let events = w.accept(serve(vec![fetch_of(acct(1), nonce + 1, 8, vec![])], vec![]));
    assert_eq!(assigned(&events), vec![(acct(1), vec![tid(job, 2)])]);
}

/// Issue 16's finding: 200 providers that asked for 0 tasks were handed 64 each by the eager
/// dispatch of the time. A fetch's `max` bounds what it gets, also when a submission serves the
/// waiting fetches in the same commit.
#[test]
fn a_fetch_never_gets_more_tasks_than_it_asked_for() {
    for max in [0u32, 1, 3, 64] {
        let mut w = World::new();
        let mut spec = provider_spec();
        spec.slots = 64;
        w.register(acct(1), spec);
        w.submit(acct(9), job_spec(200));
        w.time = 2000;
        let fetch = fetch_of(acct(1), w.state.nonce(&acct(1)) + 1, max, Vec::new());
        let got: usize = match w.apply(serve(vec![fetch], Vec::new())) {
            Ok(events) => assigned(&events).iter().map(|(_, t)| t.len()).sum(),
            Err(Rejection::NothingToAssign) => 0,
            Err(other) => panic!("max {max}: {other:?}"),
        };
        assert!(got <= max as usize, "asked for {max}, got {got}");
        assert_eq!(w.running(acct(1)).len(), got);
        if max > 0 {
            assert!(got > 0, "asked for {max} with 200 tasks queued, got none");
        }
    }
}

#[test]
fn a_fetch_signed_before_the_signers_last_logged_action_gets_nothing() {
    let mut w = World::new();
    w.register(acct(1), provider_spec());
    w.submit(acct(9), job_spec(2));
    let old = fetch_of(acct(1), w.state.nonce(&acct(1)), 4, Vec::new());
    assert_eq!(
        w.reject(serve(vec![old], Vec::new())),
        Rejection::NothingToAssign
    );
    assert!(w.running(acct(1)).is_empty());
}

#[test]
fn one_input_serves_many_fetches_each_once_in_order() {
    let mut w = World::new();
    for p in 1..=3 {
        w.register(acct(p), provider_spec());
    }
    let job = w.submit(acct(9), job_spec(3));
    let f = |p: u8| fetch_of(acct(p), w.state.nonce(&acct(p)) + 1, 1, Vec::new());
    let fetches = vec![f(2), f(1), f(2), f(3)];
    let events = w.accept(serve(fetches, Vec::new()));
    let got = assigned(&events);
    // In the fetches' order, the second fetch of provider 2 ignored.
    assert_eq!(
        got.iter().map(|(p, t)| (*p, t.len())).collect::<Vec<_>>(),
        vec![(acct(2), 1), (acct(1), 1), (acct(3), 1)]
    );
    let mut all: Vec<TaskId> = got.into_iter().flat_map(|(_, t)| t).collect();
    all.sort();
    assert_eq!(all, vec![tid(job, 0), tid(job, 1), tid(job, 2)]);
    assert!(w.queue().is_empty());
}

#[test]
fn malformed_fetch_inputs_are_rejected() {
    let mut w = World::new();
    w.register(acct(1), provider_spec());
    w.submit(acct(9), job_spec(2));
    let nonce = w.state.nonce(&acct(1)) + 1;
    let not_a_fetch = Signed {
        body: Request::Heartbeat,
        ..fetch_of(acct(1), nonce, 1, Vec::new())
    };
    let too_many_cached = fetch_of(
        acct(1),
        nonce,
        1,
        vec![hash(1); engine::FETCH_CACHED_MAX + 1],
    );
    let waiting = |n: usize| {
        (0..n)
            .map(|i| Waiting {
                provider: acct((i % 200) as u8),
                cached: Vec::new(),
            })
            .collect::<Vec<_>>()
    };
    let cases: Vec<(&str, Input, &str)> = vec![
        ("no fetch", serve(Vec::new(), Vec::new()), "no fetch"),
        (
            "a heartbeat",
            serve(vec![not_a_fetch], Vec::new()),
            "not a fetch",
        ),
        (
            "too many blobs",
            serve(vec![too_many_cached], Vec::new()),
            "cached",
        ),
        (
            "too many waiting",
            serve(
                vec![fetch_of(acct(1), nonce, 1, Vec::new())],
                waiting(engine::WAITING_MAX + 1),
            ),
            "at most",
        ),
    ];
    for (what, input, why) in cases {
        let rejection = w.reject(input);
        assert!(
            matches!(&rejection, Rejection::InvalidFetch(m) if m.contains(why)),
            "{what}: {rejection}"
        );
    }
}

#[test]
fn a_validator_set_takes_no_assignment_or_loss_on_the_leaders_word() {
    let mut genesis = Genesis {
        params: LedgerParams::free(),
        allocations: (1..=20).map(|n| (acct(n), RICH)).collect(),
        engine: Default::default(),
        verification: Default::default(),
        validators: Validators::new(ValidatorSet {
            validators: vec![Validator {
                account: acct(100),
                power: 1,
                address: "http://127.0.0.1:1".into(),
                stake: 0,
            }],
        }),
        rules: engine::RULES,
        action_fee: 0,
        storage: None,
        carbon: None,
        staking: None,
    };
    genesis.params.min_stake = 0;
    let mut w = World::with_genesis(&genesis);
    w.register(acct(1), provider_spec());
    let job = w.submit(acct(9), job_spec(2));
    for cmd in [
        LeaderCommand::AssignTasks {
            provider: acct(1),
            tasks: vec![tid(job, 0)],
        },
        LeaderCommand::ProviderLost { provider: acct(1) },
    ] {
        let rejection = w.lead_rejected(cmd);
        assert!(
            matches!(rejection, Rejection::NeedsEvidence(_)),
            "{rejection}"
        );
    }
    // The provider's own fetch is how it gets work.
    let nonce = w.state.nonce(&acct(1)) + 1;
    let events = w.accept(serve(vec![fetch_of(acct(1), nonce, 1, vec![])], vec![]));
    assert_eq!(assigned(&events), vec![(acct(1), vec![tid(job, 0)])]);
}
