//! `State::job_outlook`: whether the network as it is can finish a job under its redundancy
//! policy, as a table.

use crate::support::*;
use engine::{ProviderSpec, Redundancy};

fn fixed(quorum: u32) -> Redundancy {
    Redundancy::Fixed {
        quorum,
        max_results: quorum,
    }
}

#[test]
fn a_job_is_flagged_when_too_few_operators_can_run_it() {
    struct Case {
        what: &'static str,
        /// (provider, operator, memory, trusted)
        providers: Vec<(u8, Option<u8>, u64, bool)>,
        policy: Redundancy,
        /// Part of the warning, or `None` for none.
        warns: Option<&'static str>,
    }
    let big = 1 << 30;
    let cases = vec![
        Case {
            what: "nobody",
            providers: vec![],
            policy: fixed(1),
            warns: Some("no active provider"),
        },
        Case {
            what: "one provider, one result",
            providers: vec![(1, None, big, false)],
            policy: fixed(1),
            warns: None,
        },
        Case {
            what: "one provider, two results",
            providers: vec![(1, None, big, false)],
            policy: fixed(2),
            warns: Some("only 1 operator(s)"),
        },
        Case {
            what: "two providers of one operator, two results",
            providers: vec![(1, Some(7), big, false), (2, Some(7), big, false)],
            policy: fixed(2),
            warns: Some("only 1 operator(s)"),
        },
        Case {
            what: "two operators, two results",
            providers: vec![(1, None, big, false), (2, None, big, false)],
            policy: fixed(2),
            warns: None,
        },
        Case {
            what: "adaptive, two new operators",
            providers: vec![(1, None, big, false), (2, None, big, false)],
            policy: Redundancy::Adaptive,
            warns: Some("weight 3"),
        },
        Case {
            what: "adaptive, three new operators",
            providers: vec![
                (1, None, big, false),
                (2, None, big, false),
                (3, None, big, false),
            ],
            policy: Redundancy::Adaptive,
            warns: None,
        },
        Case {
            what: "adaptive, a trusted operator alone (spot checks need a quorum)",
            providers: vec![(1, None, big, true)],
            policy: Redundancy::Adaptive,
            warns: Some("together weighing 2"),
        },
        Case {
            what: "adaptive, a trusted and a new operator",
            providers: vec![(1, None, big, true), (2, None, big, false)],
            policy: Redundancy::Adaptive,
            warns: None,
        },
        Case {
            what: "a provider with too little memory does not count",
            providers: vec![(1, None, big, false), (2, None, 1 << 20, false)],
            policy: fixed(2),
            warns: Some("only 1 operator(s)"),
        },
    ];
    for case in cases {
        let mut w = World::new();
        for (p, operator, memory, trusted) in &case.providers {
            w.register(
                acct(*p),
                ProviderSpec {
                    operator: operator.map(acct),
                    memory_bytes: *memory,
                    ..provider_spec()
                },
            );
            if *trusted {
                let after = w.state.verify.trust_after;
                w.state
                    .providers
                    .get_mut(&acct(*p))
                    .unwrap()
                    .reputation
                    .streak = after;
            }
        }
        let job = w.submit(
            acct(9),
            engine::JobSpec {
                redundancy: case.policy,
                ..job_spec(2)
            },
        );
        let got = w.state.job_outlook(job);
        match (case.warns, &got) {
            (None, None) => {}
            (Some(part), Some(msg)) => assert!(msg.contains(part), "{}: {msg}", case.what),
            _ => panic!("{}: expected {:?}, got {got:?}", case.what, case.warns),
        }
    }
}

#[test]
fn a_finished_job_has_no_outlook() {
    let mut w = World::new();
    let job = w.submit(acct(9), job_spec(1));
    assert!(w.state.job_outlook(job).is_some());
    w.act(acct(9), engine::Action::CancelJob(job));
    assert_eq!(w.state.job_outlook(job), None);
}
