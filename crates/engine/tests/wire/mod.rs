//! Wire formats: every kind of entry survives JSON and postcard unchanged, ids are hex in JSON and
//! raw bytes in postcard, and signing bytes are domain-separated.

use crate::support::*;
use engine::{
    AccountId, Action, Aggregate, Entry, Event, Hash, Input, JobSpec, LeaderCommand, Limits,
    OutputSource, ProviderSpec, Rejection, Signed, TaskOutcome, TaskReport, TaskSpec,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::json;

/// One entry of every input kind, with every optional field filled somewhere.
fn sample_entries() -> Vec<Entry> {
    let rich_job = JobSpec {
        tasks: vec![
            TaskSpec {
                args: vec!["a".into(), "ünïcode ✓".into()],
                env: vec![("K".into(), "v=w".into())],
                stdin: Some(hash(3)),
                inputs: vec![input("in.txt", 4)],
            },
            TaskSpec::default(),
        ],
        max_price: u128::MAX,
        output: OutputSource::File("out.txt".into()),
        ..reduce_job_spec(0)
    };
    let outcomes = [
        TaskOutcome::Success,
        TaskOutcome::Exit(-1),
        TaskOutcome::Trap("wasm `unreachable` \"hit\"".into()),
        TaskOutcome::OutOfFuel,
        TaskOutcome::Timeout,
        TaskOutcome::MemoryLimit,
        TaskOutcome::OutputTooLarge,
    ];
    let reports = outcomes
        .into_iter()
        .enumerate()
        .map(|(i, outcome)| TaskReport {
            task: tid(u64::MAX, i as u32),
            outcome,
            output_hash: Hash::of(&[i as u8]),
            output_size: u64::MAX,
            fuel_used: i as u64,
        })
        .collect();
    let actions = vec![
        Action::RegisterProvider(ProviderSpec {
            gpu: Some("NVIDIA H100 80GB".into()),
            price_per_fuel: u128::MAX - 1,
            ..provider_spec()
        }),
        Action::RegisterProvider(provider_spec()),
        Action::LeaveProvider,
        Action::SubmitJob(job_spec(1)),
        Action::SubmitJob(rich_job),
        Action::ReportResults(reports),
        Action::CancelJob(u64::MAX),
    ];
    let leader = vec![
        LeaderCommand::AssignTasks {
            provider: acct(0xAB),
            tasks: vec![tid(1, 0), tid(2, u32::MAX)],
        },
        LeaderCommand::ProviderLost {
            provider: acct(0xCD),
        },
        LeaderCommand::ExpireJob { job: 0 },
    ];
    let mut entries: Vec<Entry> = actions
        .into_iter()
        .enumerate()
        .map(|(i, action)| {
            let input = Input::Signed(Signed {
                signer: acct(i as u8),
                nonce: u64::MAX - i as u64,
                body: action,
                signature: engine::Sig([i as u8; 64]),
            });
            entry(i as u64 * 1000, input)
        })
        .collect();
    entries.extend(
        leader
            .into_iter()
            .map(|cmd| entry(u64::MAX, Input::Leader(cmd))),
    );
    entries.push(entry(
        7,
        Input::Fetch(Box::new(engine::WorkFetch {
            fetches: vec![Signed {
                signer: acct(0xEF),
                nonce: 3,
                body: engine::Request::Fetch {
                    max: u32::MAX,
                    wait_ms: 5,
                    held: vec![tid(1, 1)],
                    cached: vec![hash(7)],
                },
                signature: engine::Sig([9; 64]),
            }],
            waiting: vec![engine::Waiting {
                provider: acct(0xAA),
                cached: vec![hash(8)],
            }],
        })),
    ));
    entries
}

#[test]
fn entries_round_trip_through_json_and_postcard() {
    for e in sample_entries() {
        let text = serde_json::to_string(&e).unwrap();
        let back: Entry = serde_json::from_str(&text).unwrap();
        assert_eq!(back, e, "json: {text}");
        let bytes = postcard::to_stdvec(&e).unwrap();
        let back: Entry = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, e, "postcard");
    }
}

#[test]
fn ids_are_hex_strings_in_json_and_raw_bytes_in_postcard() {
    let id = AccountId([0xAB; 32]);
    let h = Hash([0x0F; 32]);
    assert_eq!(serde_json::to_value(id).unwrap(), json!("ab".repeat(32)));
    assert_eq!(serde_json::to_value(h).unwrap(), json!("0f".repeat(32)));
    assert_eq!(
        serde_json::from_value::<AccountId>(json!("AB".repeat(32))).unwrap(),
        id,
        "upper case parses"
    );
    for bad in [json!("ab".repeat(31)), json!("zz".repeat(32)), json!(7)] {
        assert!(
            serde_json::from_value::<Hash>(bad.clone()).is_err(),
            "{bad}"
        );
    }
    assert_eq!(postcard::to_stdvec(&id).unwrap(), vec![0xAB; 32]);
    assert_eq!(
        postcard::to_stdvec(&engine::Sig([1; 64])).unwrap(),
        vec![1; 64]
    );

    // Inside an entry.
    let e = entry(
        5,
        signed(
            id,
            1,
            Action::ReportResults(vec![success(tid(1, 0), 0x0F, 2)]),
        ),
    );
    let v = serde_json::to_value(&e).unwrap();
    assert_eq!(v["input"]["signed"]["signer"], json!("ab".repeat(32)));
    assert_eq!(v["input"]["signed"]["signature"], json!("00".repeat(64)));
    let report = &v["input"]["signed"]["body"]["report_results"][0];
    assert_eq!(report["output_hash"], json!("0f".repeat(32)));
    assert_eq!(report["outcome"], json!("success"));
    assert_eq!(report["task"], json!({"job": 1, "index": 0}));
    let lead = entry(
        6,
        Input::Leader(LeaderCommand::ProviderLost { provider: id }),
    );
    assert_eq!(
        serde_json::to_value(&lead).unwrap(),
        json!({"time": 6, "input": {"leader": {"provider_lost": {"provider": "ab".repeat(32)}}}})
    );
}

#[test]
fn events_and_rejections_round_trip_through_json() {
    let events = vec![
        Event::ProviderRegistered {
            provider: acct(1),
            requeued: vec![tid(1, 2)],
        },
        Event::TaskCompleted {
            task: tid(3, 4),
            provider: acct(2),
            fuel_used: 5,
        },
        Event::JobFailed {
            job: 1,
            reason: "why".into(),
        },
        Event::TaskPaid {
            task: tid(1, 0),
            provider: acct(2),
            amount: u128::MAX,
            fee: 7,
        },
        Event::Slashed {
            provider: acct(1),
            requester: acct(2),
            amount: 4,
            to_requester: 2,
            to_treasury: 1,
            burned: 1,
            evidence: engine::SlashEvidence {
                task: tid(1, 0),
                wrong_output: hash(1),
                agreed_output: hash(2),
                agreeing: vec![acct(3)],
            },
        },
    ];
    for e in events {
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), e, "{text}");
    }
    let v = serde_json::to_value(Event::ReduceQueued { job: 9 }).unwrap();
    assert_eq!(v, json!({"event": "reduce_queued", "job": 9}));
    // Amounts are decimal strings of base units in JSON, exact at any size.
    let v = serde_json::to_value(Event::FaucetPaid {
        to: acct(1),
        amount: u128::MAX,
    })
    .unwrap();
    assert_eq!(v["amount"], json!(u128::MAX.to_string()));
    let paid: Event = serde_json::from_value(json!({
        "event": "faucet_paid", "to": acct(1).to_hex(), "amount": 12
    }))
    .unwrap();
    assert_eq!(
        paid,
        Event::FaucetPaid {
            to: acct(1),
            amount: 12
        }
    );

    let rejections = vec![
        Rejection::StaleNonce { got: 1, last: 2 },
        Rejection::UnknownProvider(acct(3)),
        Rejection::TaskDoesNotFit {
            task: tid(1, 1),
            why: "memory".into(),
        },
        Rejection::Empty("no tasks to assign".into()),
        Rejection::InsufficientFunds {
            need: u128::MAX,
            available: 3,
        },
        Rejection::FaucetDisabled,
    ];
    for r in rejections {
        // `Rejection::Empty` holds a `&'static str`, so a `Rejection` only deserializes from
        // `'static` input.
        let text: &'static str = Box::leak(serde_json::to_string(&r).unwrap().into_boxed_str());
        assert_eq!(
            serde_json::from_str::<Rejection>(text).unwrap(),
            r,
            "{text}"
        );
    }
    assert_eq!(
        serde_json::to_value(Rejection::UnknownJob(4)).unwrap(),
        json!({"rejection": "unknown_job", "detail": 4})
    );
}

#[test]
fn signing_bytes_separate_signer_nonce_and_body() {
    let body = Action::CancelJob(1);
    let base = Signed::<Action>::signing_bytes(&acct(1), 1, &body);
    assert!(!base.is_empty());
    assert_eq!(base, Signed::<Action>::signing_bytes(&acct(1), 1, &body));
    assert_ne!(base, Signed::<Action>::signing_bytes(&acct(2), 1, &body));
    assert_ne!(base, Signed::<Action>::signing_bytes(&acct(1), 2, &body));
    assert_ne!(
        base,
        Signed::<Action>::signing_bytes(&acct(1), 1, &Action::CancelJob(2))
    );
    let domain = b"gridmint/v1/action";
    assert!(base.windows(domain.len()).any(|w| w == domain));
}

fn arb_limits() -> impl Strategy<Value = Limits> {
    (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(fuel, memory_bytes, wall_ms)| Limits {
        fuel,
        memory_bytes,
        wall_ms,
    })
}

fn arb_entry() -> impl Strategy<Value = Entry> {
    let action = prop_oneof![
        (
            any::<u32>(),
            any::<u128>(),
            ".*",
            proptest::option::of(".*")
        )
            .prop_map(|(slots, price, region, gpu)| Action::RegisterProvider(
                ProviderSpec {
                    slots,
                    price_per_fuel: price,
                    region,
                    gpu,
                    ..provider_spec()
                }
            )),
        (
            proptest::collection::vec(proptest::collection::vec(".*", 0..3), 0..3),
            arb_limits(),
            any::<u64>(),
            any::<bool>(),
        )
            .prop_map(|(args, limits, deadline, reduce)| {
                let tasks = args
                    .into_iter()
                    .map(|args| TaskSpec {
                        args,
                        ..TaskSpec::default()
                    })
                    .collect();
                Action::SubmitJob(JobSpec {
                    tasks,
                    limits,
                    deadline,
                    aggregate: if reduce {
                        Aggregate::Reduce(reduce_spec())
                    } else {
                        Aggregate::Concat
                    },
                    ..job_spec(0)
                })
            }),
        (any::<u64>(), any::<u32>(), any::<[u8; 32]>(), any::<i32>()).prop_map(
            |(job, index, out, code)| Action::ReportResults(vec![TaskReport {
                task: tid(job, index),
                outcome: TaskOutcome::Exit(code),
                output_hash: Hash(out),
                output_size: 1,
                fuel_used: 2,
            }])
        ),
        any::<u64>().prop_map(Action::CancelJob),
        Just(Action::LeaveProvider),
    ];
    let input = prop_oneof![
        (any::<[u8; 32]>(), any::<u64>(), action).prop_map(|(signer, nonce, body)| {
            Input::Signed(Signed {
                signer: AccountId(signer),
                nonce,
                body,
                signature: engine::Sig([7; 64]),
            })
        }),
        (any::<[u8; 32]>(), any::<u64>(), any::<u32>()).prop_map(|(p, job, index)| {
            Input::Leader(LeaderCommand::AssignTasks {
                provider: AccountId(p),
                tasks: vec![tid(job, index)],
            })
        }),
        any::<u64>().prop_map(|job| Input::Leader(LeaderCommand::ExpireJob { job })),
    ];
    (any::<u64>(), input).prop_map(|(time, input)| Entry { time, input })
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    /// Ids order as their bytes do (the order the state's maps iterate in, so the state hash
    /// depends on it): the word-wise comparison agrees with the slices' own, including ids that
    /// share a long prefix.
    #[test]
    fn ids_order_as_their_bytes(
        a in any::<[u8; 32]>(),
        b in any::<[u8; 32]>(),
        shared in 0usize..=32,
        s in proptest::collection::vec(any::<u8>(), 64),
        t in proptest::collection::vec(any::<u8>(), 64),
    ) {
        let mut b = b;
        b[..shared].copy_from_slice(&a[..shared]);
        prop_assert_eq!(AccountId(a).cmp(&AccountId(b)), a[..].cmp(&b[..]));
        prop_assert_eq!(Hash(a).cmp(&Hash(b)), a[..].cmp(&b[..]));
        prop_assert_eq!(AccountId(a) == AccountId(b), a == b);
        let (mut s64, mut t64) = ([0u8; 64], [0u8; 64]);
        s64.copy_from_slice(&s);
        t64.copy_from_slice(&t);
        t64[..shared].copy_from_slice(&s64[..shared]);
        prop_assert_eq!(engine::Sig(s64).cmp(&engine::Sig(t64)), s64[..].cmp(&t64[..]));
    }

    /// Every id's hex form — `to_hex`, `Display`, JSON — is `hex::encode`'s and parses back.
    #[test]
    fn ids_print_as_hex_encode_does(a in any::<[u8; 32]>(), s in proptest::collection::vec(any::<u8>(), 64)) {
        let mut s64 = [0u8; 64];
        s64.copy_from_slice(&s);
        let want = hex::encode(a);
        prop_assert_eq!(AccountId(a).to_hex(), want.clone());
        prop_assert_eq!(Hash(a).to_string(), want.clone());
        prop_assert_eq!(serde_json::to_value(AccountId(a)).unwrap(), json!(want.clone()));
        prop_assert_eq!(AccountId::from_hex(&want).unwrap(), AccountId(a));
        prop_assert_eq!(engine::Sig(s64).to_hex(), hex::encode(s64));
        prop_assert_eq!(
            format!("{:?}", AccountId(a)),
            format!("AccountId({})", &want[..12])
        );
    }

    #[test]
    fn random_entries_round_trip(e in arb_entry()) {
        let text = serde_json::to_string(&e).unwrap();
        prop_assert_eq!(&serde_json::from_str::<Entry>(&text).unwrap(), &e);
        let bytes = postcard::to_stdvec(&e).unwrap();
        prop_assert_eq!(&postcard::from_bytes::<Entry>(&bytes).unwrap(), &e);
    }
}

/// Snapshots are postcard, so every type in the state must decode from postcard (no internally
/// tagged enums); JSON is what the API uses.
#[test]
fn state_round_trips_through_postcard_and_json() {
    let mut w = World::new();
    w.register(acct(1), provider_spec());
    w.register(acct(2), provider_spec());
    let job = w.submit(acct(9), reduce_job_spec(2));
    let failed = w.submit(acct(9), job_spec(1));
    w.assign(acct(1), &[tid(job, 0), tid(failed, 0)]);
    w.assign(acct(2), &[tid(job, 1)]);
    w.report(acct(2), vec![success(tid(job, 1), 1, 1)]);
    w.report(
        acct(1),
        vec![failure(tid(failed, 0), TaskOutcome::Trap("x".into()))],
    );
    w.lead(LeaderCommand::ProviderLost { provider: acct(1) });
    w.act(acct(9), Action::CancelJob(failed));
    let text = serde_json::to_string(&w.state).unwrap();
    let back: engine::State = serde_json::from_str(&text).unwrap();
    assert_eq!(back, w.state);
    assert_eq!(back.hash(), w.state.hash());
    let bytes = postcard::to_stdvec(&w.state).unwrap();
    let back: engine::State = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back, w.state);
    assert_eq!(back.hash(), w.state.hash());
}
