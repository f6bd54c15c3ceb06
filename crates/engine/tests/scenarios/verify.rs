//! Verification: every branch of the redundancy policies, the reputation rules and what a lost
//! quorum costs. Each test drives real inputs through `State::apply` on a network with stake, a
//! fee and slashing, and checks the events, the payments and the supply.

use crate::support::*;
use engine::{
    AccountId, Action, Event, Genesis, JobStatus, LedgerParams, ProviderSpec, Redundancy,
    Rejection, RunOutcome, SlashParams, TaskId, TaskOutcome, TaskState, VerifyParams,
};

const TREASURY: AccountId = AccountId([0xEE; 32]);
const STAKE: u128 = 1_000;
/// Fuel every honest run of the test tasks burns; the providers ask 1 per fuel, so one execution
/// costs 100, of which the 10% fee is 10.
const FUEL: u64 = 100;
const ADAPTIVE: Redundancy = Redundancy::Adaptive;
const TWO_OF_TWO: Redundancy = Redundancy::Fixed {
    quorum: 2,
    max_results: 2,
};

/// A network with a 10% fee, a minimum stake of [`STAKE`], slashes of half the stake (half of it
/// to the requester, a quarter to the treasury, the rest burned) and `verification`; accounts 1
/// to 9 are providers with stake, account 10 is the requester.
fn world(verification: VerifyParams) -> World {
    let mut w = World::with_genesis(&Genesis {
        params: LedgerParams {
            chain_id: "verify".into(),
            treasury: TREASURY,
            fee_bps: 1_000,
            min_stake: STAKE,
            slash: SlashParams {
                fraction_bps: 5_000,
                requester_bps: 5_000,
                treasury_bps: 2_500,
            },
            unbonding_delay_ms: 50,
            faucet: None,
        },
        allocations: (1..=10).map(|n| (acct(n), 1_000_000_000)).collect(),
        engine: Default::default(),
        verification,
        validators: Default::default(),
        rules: engine::RULES,
        action_fee: 0,
        storage: None,
        carbon: None,
        staking: None,
    });
    w.verify_events = true;
    w.money_events = true;
    for n in 1..=9 {
        w.act(acct(n), Action::Stake { amount: STAKE });
        w.register(acct(n), provider_spec());
    }
    w
}

fn params(trust_after: u32, spot_check_bps: u32) -> VerifyParams {
    VerifyParams {
        trust_after,
        spot_check_bps,
        ..VerifyParams::default()
    }
}

const REQUESTER: AccountId = AccountId([10; 32]);

fn submit(w: &mut World, tasks: usize, redundancy: Redundancy) -> u64 {
    w.submit(
        REQUESTER,
        engine::JobSpec {
            redundancy,
            ..job_spec(tasks)
        },
    )
}

/// `who` runs `task` (assigned now) and reports output `out`.
fn run(w: &mut World, who: u8, task: TaskId, out: u8) -> Vec<Event> {
    w.assign(acct(who), &[task]);
    w.report(acct(who), vec![success(task, out, FUEL)])
}

fn paid(events: &[Event]) -> Vec<(AccountId, u128)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TaskPaid {
                provider,
                amount,
                fee,
                ..
            } => Some((*provider, amount + fee)),
            _ => None,
        })
        .collect()
}

fn slashed(events: &[Event]) -> Vec<AccountId> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Slashed { provider, .. } => Some(*provider),
            _ => None,
        })
        .collect()
}

fn accepted(events: &[Event]) -> Option<Vec<AccountId>> {
    events.iter().find_map(|e| match e {
        Event::TaskAccepted { providers, .. } => Some(providers.clone()),
        _ => None,
    })
}

/// Makes `who` trusted under `trust_after` = 1 by having it confirm a fixed 2-of-2 task with
/// provider 9.
fn make_trusted(w: &mut World, who: u8) {
    let job = submit(w, 1, TWO_OF_TWO);
    run(w, who, tid(job, 0), 1);
    run(w, 9, tid(job, 0), 1);
    assert!(w.state.is_trusted(&acct(who)));
}

/// One row per fixed-policy outcome: who reports what, in order, and what must follow.
#[test]
fn fixed_voting_accepts_a_quorum_rejects_the_minority_and_fails_without_one() {
    struct Row {
        name: &'static str,
        quorum: u32,
        max_results: u32,
        /// (provider, output) in report order.
        reports: &'static [(u8, u8)],
        /// Accepted output's agreeing providers, or `None` if the task must fail.
        accepted: Option<&'static [u8]>,
        slashed: &'static [u8],
    }
    let rows = [
        Row {
            name: "quorum of one trusts the first result",
            quorum: 1,
            max_results: 1,
            reports: &[(1, 7)],
            accepted: Some(&[1]),
            slashed: &[],
        },
        Row {
            name: "two agreeing results form a 2-of-3 quorum",
            quorum: 2,
            max_results: 3,
            reports: &[(1, 7), (2, 7)],
            accepted: Some(&[1, 2]),
            slashed: &[],
        },
        Row {
            name: "a disagreement queues a third replica that decides",
            quorum: 2,
            max_results: 3,
            reports: &[(1, 7), (2, 8), (3, 7)],
            accepted: Some(&[1, 3]),
            slashed: &[2],
        },
        Row {
            name: "no quorum within max_results fails the task",
            quorum: 2,
            max_results: 3,
            reports: &[(1, 7), (2, 8), (3, 9)],
            accepted: None,
            slashed: &[],
        },
        Row {
            name: "three of five outvote two colluders",
            quorum: 3,
            max_results: 5,
            reports: &[(1, 6), (2, 6), (3, 7), (4, 7), (5, 7)],
            accepted: Some(&[3, 4, 5]),
            slashed: &[1, 2],
        },
    ];
    for row in rows {
        let mut w = world(params(5, 0));
        let job = submit(
            &mut w,
            1,
            Redundancy::Fixed {
                quorum: row.quorum,
                max_results: row.max_results,
            },
        );
        let task = tid(job, 0);
        assert_eq!(w.task(task).queued, row.quorum, "{}", row.name);
        let supply = w.state.check_supply().unwrap();
        let requester_before = w.state.balance(&REQUESTER);
        let mut events = Vec::new();
        for &(who, out) in row.reports {
            assert!(
                w.state.pick(acct(who), 1).contains(&task),
                "{}: provider {who} is offered a replica",
                row.name
            );
            events.extend(run(&mut w, who, task, out));
        }
        let total_burned: u128 = events
            .iter()
            .map(|e| match e {
                Event::Slashed { burned, .. } => *burned,
                _ => 0,
            })
            .sum();
        assert_eq!(
            w.state.check_supply().unwrap() + total_burned,
            supply,
            "{}",
            row.name
        );
        let expect_slashed: Vec<_> = row.slashed.iter().map(|n| acct(*n)).collect();
        assert_eq!(slashed(&events), expect_slashed, "{}", row.name);
        for p in &expect_slashed {
            assert_eq!(w.state.bonded(p), STAKE / 2, "{}", row.name);
            assert_eq!(w.provider(*p).reputation.rejected, 1);
        }
        match row.accepted {
            Some(members) => {
                let members: Vec<_> = members.iter().map(|n| acct(*n)).collect();
                assert_eq!(accepted(&events), Some(members.clone()), "{}", row.name);
                assert_eq!(w.job(job).status, JobStatus::Completed, "{}", row.name);
                // One execution's price, shared by the quorum.
                let share = 100 / members.len() as u128;
                let expect: Vec<_> = members.iter().map(|p| (*p, share)).collect();
                assert_eq!(paid(&events), expect, "{}", row.name);
                let verified = members.len() > 1;
                for p in &members {
                    let r = &w.provider(*p).reputation;
                    assert_eq!(
                        (r.verified, r.accepted_alone),
                        (u64::from(verified), u64::from(!verified))
                    );
                }
                // The requester paid one execution, got the rest of its escrow back, and half
                // of every slash.
                let back = expect_slashed.len() as u128 * STAKE / 2 / 2;
                let escrow = &w.job(job).escrow;
                assert_eq!(escrow.paid, share * members.len() as u128, "{}", row.name);
                assert_eq!(
                    w.state.balance(&REQUESTER),
                    requester_before + escrow.locked - escrow.paid + back,
                    "{}",
                    row.name
                );
            }
            None => {
                assert_eq!(w.task_state(task), TaskState::Failed);
                let JobStatus::Failed { reason } = &w.job(job).status else {
                    panic!("{}: job did not fail", row.name);
                };
                assert!(reason.contains("no quorum after 3 results"), "{reason}");
                assert!(paid(&events).is_empty());
                assert_eq!(
                    w.state.balance(&REQUESTER),
                    requester_before + w.job(job).escrow.locked
                );
            }
        }
        assert!(w.queue().is_empty(), "{}", row.name);
    }
}

/// One row per adaptive-policy branch, on a network where trust comes after `trust_after`
/// verified results and spot checks happen `spot_check_bps` of the time.
#[test]
fn adaptive_policy_replicates_new_providers_and_trusts_proven_ones() {
    // New providers: the first replica's taker is new, so two more are queued at once. (Rules
    // 5: under rules 6 a dispute is won by a lead of a full quorum over any group.)
    let mut w = world(params(5, 0)).under_rules(5);
    let job = submit(&mut w, 1, ADAPTIVE);
    let task = tid(job, 0);
    assert_eq!(w.task(task).queued, 1);
    let events = w.assign(acct(1), &[task]);
    assert!(events.contains(&Event::ReplicasQueued {
        task,
        queued: 2,
        reason: "result needs confirmation".into(),
    }));
    // A provider never gets a second replica of a task it holds.
    assert!(!w.state.pick(acct(1), 4).contains(&task));
    assert!(matches!(
        w.lead_rejected(engine::LeaderCommand::AssignTasks {
            provider: acct(1),
            tasks: vec![task]
        }),
        Rejection::TaskDoesNotFit { .. }
    ));
    w.report(acct(1), vec![success(task, 7, FUEL)]);
    assert_eq!(w.task_state(task), TaskState::Queued);
    let events = run(&mut w, 2, task, 7);
    assert_eq!(
        accepted(&events),
        None,
        "two new providers are not a quorum"
    );
    let events = run(&mut w, 3, task, 7);
    assert_eq!(accepted(&events), Some(vec![acct(1), acct(2), acct(3)]));
    assert_eq!(
        paid(&events),
        vec![(acct(1), 33), (acct(2), 33), (acct(3), 33)]
    );
    assert_eq!(w.task(task).executions(), 3);

    // Rules 4 (the public draw; rules 5 waits for the beacon: see
    // `a_trusted_lone_result_waits_for_the_beacon_which_decides_its_audit`).
    // Trusted and not drawn for a spot check: accepted alone, paid in full.
    let mut w = world(params(1, 0)).under_rules(4);
    make_trusted(&mut w, 1);
    let job = submit(&mut w, 1, ADAPTIVE);
    let task = tid(job, 0);
    let events = w.assign(acct(1), &[task]);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::ReplicasQueued { .. })),
        "a trusted taker needs no replica"
    );
    let events = w.report(acct(1), vec![success(task, 7, FUEL)]);
    assert_eq!(accepted(&events), Some(vec![acct(1)]));
    assert_eq!(paid(&events), vec![(acct(1), 100)]);
    assert_eq!(w.provider(acct(1)).reputation.accepted_alone, 1);

    // Trusted but drawn for a spot check: one more replica; a new provider's agreement (weight
    // 2 + 1) settles it and both share the payment.
    let mut w = world(params(1, 10_000)).under_rules(4);
    make_trusted(&mut w, 1);
    let job = submit(&mut w, 1, ADAPTIVE);
    let task = tid(job, 0);
    let events = run(&mut w, 1, task, 7);
    assert!(events.contains(&Event::SpotCheck {
        task,
        provider: acct(1)
    }));
    assert!(events.contains(&Event::ReplicasQueued {
        task,
        queued: 1,
        reason: "spot check".into()
    }));
    let events = run(&mut w, 2, task, 7);
    assert_eq!(accepted(&events), Some(vec![acct(1), acct(2)]));
    assert_eq!(paid(&events), vec![(acct(1), 50), (acct(2), 50)]);

    // Spot check catches a trusted cheater: it loses to new providers, is slashed, loses its
    // trust and its score drops to a quarter. Rules 2 take three newcomers' word; rules 3, as
    // the results disagree and a trusted provider (9) could take part, wait for a trusted
    // member in the winning group (so colluding newcomers can neither outvote nor slash an
    // honest provider).
    for rules in [2, 3] {
        let mut w = world(params(1, 10_000)).under_rules(rules);
        make_trusted(&mut w, 1);
        let score = w.provider(acct(1)).reputation.score;
        let job = submit(&mut w, 1, ADAPTIVE);
        let task = tid(job, 0);
        run(&mut w, 1, task, 6);
        let events = run(&mut w, 2, task, 7);
        assert!(events.contains(&Event::ReplicasQueued {
            task,
            queued: 1,
            reason: "results disagree".into()
        }));
        run(&mut w, 3, task, 7);
        let mut events = run(&mut w, 4, task, 7);
        let mut members = vec![acct(2), acct(3), acct(4)];
        if rules >= 3 {
            assert_eq!(accepted(&events), None, "no trusted member yet");
            assert_eq!(w.task(task).queued, 1);
            events = run(&mut w, 9, task, 7);
            members.push(acct(9));
        }
        assert_eq!(accepted(&events), Some(members), "rules {rules}");
        assert_eq!(slashed(&events), vec![acct(1)], "rules {rules}");
        let r = &w.provider(acct(1)).reputation;
        assert_eq!((r.streak, r.score, r.rejected), (0, score / 4, 1));
        assert!(!w.state.is_trusted(&acct(1)));
    }
    // Rules 3 (and 4): a trusted provider in the winning group slashes the loser.
    let mut w = world(params(1, 10_000)).under_rules(4);
    make_trusted(&mut w, 1);
    make_trusted(&mut w, 2);
    let job = submit(&mut w, 1, ADAPTIVE);
    let task = tid(job, 0);
    run(&mut w, 1, task, 6);
    run(&mut w, 2, task, 7);
    let events = run(&mut w, 3, task, 7);
    assert_eq!(accepted(&events), Some(vec![acct(2), acct(3)]));
    assert_eq!(slashed(&events), vec![acct(1)]);

    // Two colluding newcomers agree on a wrong output: weight 2 is not a quorum, so honest
    // replicas are queued until the right output reaches 3, and both colluders are slashed
    // (rules 2: three newcomers' word suffices; rules 3 need a trusted member).
    let mut w = world(params(5, 0)).under_rules(2);
    let job = submit(&mut w, 1, ADAPTIVE);
    let task = tid(job, 0);
    run(&mut w, 1, task, 6);
    run(&mut w, 2, task, 6);
    let events = run(&mut w, 3, task, 7);
    assert_eq!(accepted(&events), None);
    // One more replica could complete either output's quorum: queue the fewest that might.
    assert_eq!(w.task(task).queued, 1);
    run(&mut w, 4, task, 7);
    assert_eq!(w.task(task).queued, 1);
    let events = run(&mut w, 5, task, 7);
    assert_eq!(accepted(&events), Some(vec![acct(3), acct(4), acct(5)]));
    assert_eq!(slashed(&events), vec![acct(1), acct(2)]);
    assert_eq!(w.job(job).output_parts(), Some(vec![hash(7)]));

    // Endless disagreement fails the task once max_results results are in (rules 6 leaves a
    // dispute among newcomers room for three times as many).
    let mut w = world(VerifyParams {
        max_results: 4,
        ..params(5, 0)
    })
    .under_rules(5);
    let job = submit(&mut w, 1, ADAPTIVE);
    let task = tid(job, 0);
    for (who, out) in [(1, 1), (2, 2), (3, 3)] {
        run(&mut w, who, task, out);
    }
    let events = run(&mut w, 4, task, 4);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::TaskFailed { reason, .. } if reason.contains("no quorum after 4 results")))
    );
    assert!(matches!(w.job(job).status, JobStatus::Failed { .. }));
    assert!(slashed(&events).is_empty(), "no quorum, no evidence");
}

#[test]
fn a_trusted_taker_withdraws_replicas_and_late_replicas_are_cancelled() {
    // The trusted replica's result waits for the new provider's, under every rules version: a
    // run a new provider started must be confirmed (rules 3 accept a result alone while other
    // runs go on only when those are trusted providers': a straggler and its replica).
    for rules in [2, 3] {
        let mut w = world(params(1, 0)).under_rules(rules);
        make_trusted(&mut w, 4);
        let job = submit(&mut w, 1, ADAPTIVE);
        let task = tid(job, 0);
        w.assign(acct(1), &[task]);
        assert_eq!(w.task(task).queued, 2);
        // The trusted provider takes a recheck replica first and its weight covers the rest.
        assert_eq!(w.state.pick(acct(4), 4), vec![task]);
        w.assign(acct(4), &[task]);
        assert_eq!(w.task(task).queued, 0);
        assert!(w.queue().is_empty());
        let events = w.report(acct(4), vec![success(task, 7, FUEL)]);
        assert_eq!(accepted(&events), None, "rules {rules}");
        let events = w.report(acct(1), vec![success(task, 7, FUEL)]);
        assert_eq!(
            accepted(&events),
            Some(vec![acct(1), acct(4)]),
            "rules {rules}"
        );
    }
    let mut w = world(params(1, 0));

    // A lost provider's replica is abandoned and queued again for someone else.
    let job = submit(&mut w, 1, TWO_OF_TWO);
    let task = tid(job, 0);
    w.assign(acct(5), &[task]);
    w.assign(acct(6), &[task]);
    assert!(w.queue().is_empty());
    let events = w.lead(engine::LeaderCommand::ProviderLost { provider: acct(5) });
    assert!(matches!(&events[0], Event::ProviderLost { requeued, .. } if requeued == &vec![task]));
    assert_eq!(w.task(task).queued, 1);
    assert_eq!(w.task(task).runs[0].outcome, RunOutcome::Abandoned);
    run(&mut w, 7, task, 3);
    let events = w.report(acct(6), vec![success(task, 3, FUEL)]);
    // Members are listed in the order their runs were assigned.
    assert_eq!(accepted(&events), Some(vec![acct(6), acct(7)]));
}

#[test]
fn replicas_never_go_to_two_providers_of_one_operator() {
    let mut w = world(params(5, 0));
    let operator = acct(42);
    for n in [1, 2] {
        w.register(
            acct(n),
            ProviderSpec {
                operator: Some(operator),
                ..provider_spec()
            },
        );
    }
    let job = submit(&mut w, 1, TWO_OF_TWO);
    let task = tid(job, 0);
    w.assign(acct(1), &[task]);
    assert!(w.state.pick(acct(2), 4).is_empty());
    let rejection = w.lead_rejected(engine::LeaderCommand::AssignTasks {
        provider: acct(2),
        tasks: vec![task],
    });
    assert!(
        matches!(&rejection, Rejection::TaskDoesNotFit { why, .. } if why.contains("same operator")),
        "{rejection}"
    );
    assert_eq!(w.state.pick(acct(3), 4), vec![task]);
    // A failed run keeps the provider off a retry while another operator can take it (see
    // `scenarios::schedule` for the cases), not off the task for good: a replica rule counts
    // only runs that may still agree. (Rules 2: under rules 3 a deterministic failure is a
    // result, which keeps its operator off the task for good.)
    let mut w = world(params(5, 0)).under_rules(2);
    let job = submit(
        &mut w,
        1,
        Redundancy::Fixed {
            quorum: 1,
            max_results: 1,
        },
    );
    let task = tid(job, 0);
    w.assign(acct(1), &[task]);
    w.report(acct(1), vec![failure(task, TaskOutcome::Exit(1))]);
    assert!(w.state.pick(acct(1), 4).is_empty());
    assert_eq!(w.state.pick(acct(2), 4), vec![task]);
    let p1 = w.provider(acct(1)).clone();
    assert!(w.state.fits(&p1, task).is_ok());
}

#[test]
fn reputation_rises_with_verified_work_and_trust_cuts_replication() {
    let mut w = world(params(3, 0)).under_rules(4);
    let mut executions = Vec::new();
    let mut scores = Vec::new();
    // Providers 1 to 3 work through single-task jobs, always honestly.
    for round in 0..6 {
        let job = submit(&mut w, 1, ADAPTIVE);
        let task = tid(job, 0);
        let mut who = 1;
        while w.job(job).status != JobStatus::Completed {
            assert!(w.state.pick(acct(who), 1).contains(&task), "round {round}");
            run(&mut w, who, task, 7);
            who += 1;
        }
        executions.push(w.task(task).executions());
        scores.push(w.provider(acct(1)).reputation.score);
    }
    // Rules 4: three runs per task until provider 1 is trusted after 3 verified results; alone
    // after. (Rules 5 audits its first lone results: see `the_audit_rate_*`.)
    assert_eq!(executions, vec![3, 3, 3, 1, 1, 1]);
    assert_eq!(scores, vec![100, 190, 271, 271, 271, 271]);
}

// Rules 3: failures verified like results.

/// `who` runs `task` (assigned now) and reports `outcome` after `fuel` fuel.
fn fail(w: &mut World, who: u8, task: TaskId, outcome: TaskOutcome, fuel: u64) -> Vec<Event> {
    w.assign(acct(who), &[task]);
    w.report(
        acct(who),
        vec![engine::TaskReport {
            fuel_used: fuel,
            ..failure(task, outcome)
        }],
    )
}

#[track_caller]
fn supply(w: &World) {
    w.state.check_supply().expect("supply conserved");
}

/// One failure report never fails a job (under a policy that trusts one result, it needs a
/// confirmation); a success from another operator wins, and the failure that did not reproduce
/// is slashed like a wrong result.
#[test]
fn a_failure_alone_never_fails_a_job_and_one_that_does_not_reproduce_is_slashed() {
    let mut w = world(params(5, 0));
    let job = submit(&mut w, 1, SINGLE);
    let t = tid(job, 0);
    let events = fail(&mut w, 1, t, TaskOutcome::Exit(1), FUEL);
    assert!(
        events.contains(&Event::ReplicasQueued {
            task: t,
            queued: 1,
            reason: "failure needs confirmation".into()
        }),
        "{events:?}"
    );
    assert_eq!(w.task(t).failures, 0, "a verifiable failure is no attempt");
    assert!(
        w.state.pick(acct(1), 4).is_empty(),
        "its reporter never retakes it"
    );
    let events = run(&mut w, 2, t, 5);
    assert_eq!(accepted(&events), Some(vec![acct(2)]));
    assert_eq!(paid(&events), vec![(acct(2), 100)]);
    assert_eq!(slashed(&events), vec![acct(1)]);
    assert_eq!(w.job(job).status, JobStatus::Completed);
    supply(&w);
}

/// Table: what three reports of a task under a policy that trusts one result lead to (a
/// failure needs `max_attempts`, 3, matching reports there).
#[test]
fn matching_failures_fail_the_task_and_are_paid_and_disagreeing_ones_fail_it_unpaid() {
    struct Case {
        what: &'static str,
        second: (TaskOutcome, u64),
        /// The job's failure reason contains this.
        reason: &'static str,
        paid: Vec<(AccountId, u128)>,
    }
    let cases = [
        Case {
            what: "same exit status, same fuel",
            second: (TaskOutcome::Exit(1), FUEL),
            reason: "exited with status 1 on 3 provider(s), using 100 fuel (a verified failure",
            paid: vec![(acct(1), 33), (acct(3), 33), (acct(2), 33)],
        },
        Case {
            what: "a trap with another message at the same fuel (another sandbox version)",
            second: (TaskOutcome::Trap("wasm trap: unreachable".into()), FUEL),
            reason: "trapped: unreachable on 3 provider(s)",
            paid: vec![(acct(1), 33), (acct(3), 33), (acct(2), 33)],
        },
        Case {
            what: "another exit status",
            second: (TaskOutcome::Exit(2), FUEL),
            reason: "no quorum after 3 results (2 distinct outputs",
            paid: vec![],
        },
        Case {
            what: "the same failure at other fuel",
            second: (TaskOutcome::Trap("unreachable".into()), FUEL + 1),
            reason: "no quorum after 3 results",
            paid: vec![],
        },
    ];
    for case in cases {
        let mut w = world(params(5, 0));
        let job = submit(&mut w, 1, SINGLE);
        let t = tid(job, 0);
        let first = if case.what.contains("exit") {
            TaskOutcome::Exit(1)
        } else {
            TaskOutcome::Trap("unreachable".into())
        };
        fail(&mut w, 1, t, first.clone(), FUEL);
        let events = fail(&mut w, 3, t, first, FUEL);
        assert!(slashed(&events).is_empty());
        assert_eq!(
            w.task_state(t),
            TaskState::Queued,
            "{}: two are not enough",
            case.what
        );
        let (outcome, fuel) = case.second;
        let events = fail(&mut w, 2, t, outcome, fuel);
        assert!(
            matches!(&w.job(job).status, JobStatus::Failed { reason } if reason.contains(case.reason)),
            "{}: {:?}",
            case.what,
            w.job(job).status
        );
        assert_eq!(w.task_state(t), TaskState::Failed, "{}", case.what);
        assert_eq!(paid(&events), case.paid, "{}", case.what);
        assert_eq!(slashed(&events), vec![], "{}", case.what);
        assert_eq!(w.job(job).escrow.held(), 0, "{}: refunded", case.what);
        supply(&w);
    }
}

/// Under the adaptive policy a failure needs the full quorum weight and a trusted member: new
/// providers that agree on a failure cannot fail a job by themselves while other operators could
/// still run the task (unconfirmed failures do not use up the room successes need), while a
/// trusted provider's confirmation does.
#[test]
fn under_the_adaptive_policy_a_failure_needs_a_trusted_member() {
    // Fourteen staked providers. (Rules 5: under rules 6 a dispute is won by a lead of a full
    // quorum over any group.)
    let fourteen = || {
        let mut w = world(params(1, 0)).under_rules(5);
        for n in 11..=15 {
            w.act(
                REQUESTER,
                Action::Transfer {
                    to: acct(n),
                    amount: STAKE,
                },
            );
            w.act(acct(n), Action::Stake { amount: STAKE });
            w.register(acct(n), provider_spec());
        }
        w
    };
    let mut w = fourteen();
    let job = submit(&mut w, 1, ADAPTIVE);
    let t = tid(job, 0);
    // Six new providers agree on a failure, then one returns a result (weight 1 of 3).
    for who in 1..=6 {
        fail(&mut w, who, t, TaskOutcome::Exit(1), FUEL);
    }
    run(&mut w, 7, t, 1);
    assert_eq!(
        w.task_state(t),
        TaskState::Queued,
        "room left for the result's quorum"
    );
    run(&mut w, 8, t, 1);
    let events = run(&mut w, 9, t, 1);
    assert_eq!(accepted(&events), Some(vec![acct(7), acct(8), acct(9)]));
    // Rejected, and their trust lost, but not slashed: no trusted provider confirmed the result.
    assert_eq!(slashed(&events), vec![]);
    assert!((1..=6).all(|n| w.provider(acct(n)).reputation.rejected == 1));

    let mut w = fourteen();
    let job = submit(&mut w, 1, ADAPTIVE);
    let t = tid(job, 0);
    for who in [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15] {
        assert_eq!(w.job(job).status, JobStatus::Running, "before {who}");
        fail(&mut w, who, t, TaskOutcome::Exit(1), FUEL);
    }
    assert!(
        matches!(&w.job(job).status, JobStatus::Failed { reason } if reason.contains("exited with status 1 on 14 provider(s)")),
        "every able operator reported it: {:?}",
        w.job(job).status
    );

    let mut w = world(params(1, 0));
    make_trusted(&mut w, 1);
    let job = submit(&mut w, 1, ADAPTIVE);
    let t = tid(job, 0);
    let events = fail(&mut w, 1, t, TaskOutcome::OutOfFuel, FUEL);
    assert_eq!(
        w.task_state(t),
        TaskState::Queued,
        "a trusted failure is never alone"
    );
    assert!(slashed(&events).is_empty());
    let events = fail(&mut w, 2, t, TaskOutcome::OutOfFuel, FUEL);
    assert_eq!(w.task_state(t), TaskState::Failed);
    assert!(
        matches!(&w.job(job).status, JobStatus::Failed { reason } if reason.contains("ran out of fuel on 2 provider(s)")),
        "{:?}",
        w.job(job).status
    );
    assert_eq!(paid(&events), vec![(acct(1), 50), (acct(2), 50)]);
    assert_eq!(w.provider(acct(2)).reputation.streak, 1);
    supply(&w);
}

/// What stays an unverified attempt under rules 3: a wall-clock timeout (it depends on the
/// machine), a failure before guest code ran (no fuel: a download that failed), and a claim of
/// more fuel than the task's limit (which no honest sandbox makes). None is slashed; each
/// counts towards `max_attempts`.
#[test]
fn failures_that_cannot_be_verified_stay_attempts() {
    let cases = [
        ("timeout", TaskOutcome::Timeout, FUEL),
        (
            "before the guest ran",
            TaskOutcome::Trap("could not fetch blob".into()),
            0,
        ),
        (
            "above the fuel limit",
            TaskOutcome::Exit(1),
            limits().fuel + 1,
        ),
    ];
    for (what, outcome, fuel) in cases {
        let mut w = world(params(5, 0));
        let job = submit(&mut w, 1, SINGLE);
        let t = tid(job, 0);
        let events = fail(&mut w, 1, t, outcome, fuel);
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::TaskAttemptFailed { attempts: 1, .. })),
            "{what}: {events:?}"
        );
        assert_eq!(w.task(t).failures, 1, "{what}");
        assert_eq!(w.task(t).runs[0].outcome, RunOutcome::Failed, "{what}");
        assert_eq!(w.task_state(t), TaskState::Queued, "{what}");
        assert!(slashed(&events).is_empty(), "{what}");
    }
}

/// A trap's message is kept cut to `FAILURE_MESSAGE_MAX` bytes (on a character boundary).
#[test]
fn a_long_trap_message_is_cut() {
    let mut w = world(params(5, 0));
    let job = submit(&mut w, 1, SINGLE);
    let t = tid(job, 0);
    fail(&mut w, 1, t, TaskOutcome::Trap("é".repeat(10_000)), FUEL);
    let RunOutcome::Failure {
        outcome: TaskOutcome::Trap(msg),
        ..
    } = &w.task(t).runs[0].outcome
    else {
        panic!("{:?}", w.task(t).runs[0].outcome)
    };
    assert_eq!(msg.len(), engine::FAILURE_MESSAGE_MAX);
}

/// Rules 3: a trusted provider caught once loses the weight its results still waiting elsewhere
/// carried, so it cannot complete a wrong quorum with a colluder on another task.
#[test]
fn a_caught_provider_loses_the_weight_of_its_pending_results() {
    for (rules, wrong_accepted) in [(2, true), (3, false)] {
        let mut w = world(params(1, 0)).under_rules(rules);
        make_trusted(&mut w, 1);
        let job = submit(&mut w, 2, ADAPTIVE);
        let (a, b) = (tid(job, 0), tid(job, 1));
        // Task b: a new provider's right result, then the trusted cheater's wrong one (weight 2).
        run(&mut w, 4, b, 1);
        run(&mut w, 1, b, 7);
        // Task a: the cheater is outvoted (a new provider and trusted provider 9), and slashed.
        run(&mut w, 5, a, 1);
        run(&mut w, 1, a, 7);
        let events = run(&mut w, 9, a, 1);
        assert_eq!(slashed(&events), vec![acct(1)], "rules {rules}");
        let weight = w.task(b).runs.iter().find_map(|r| match r.outcome {
            RunOutcome::Returned { weight, .. } if r.provider == acct(1) => Some(weight),
            _ => None,
        });
        assert_eq!(
            weight,
            Some(if rules >= 3 { 1 } else { 2 }),
            "rules {rules}"
        );
        // A colluder's matching wrong result on b.
        let events = run(&mut w, 3, b, 7);
        assert_eq!(
            accepted(&events).is_some(),
            wrong_accepted,
            "rules {rules}: {events:?}"
        );
        supply(&w);
    }
}

/// On a network where no other operator could run a task, the failure every able operator
/// reported fails it at once rather than holding the job to its deadline.
#[test]
fn a_failure_no_other_operator_could_check_fails_the_task() {
    let mut w = World::new();
    w.register(acct(1), provider_spec());
    let job = w.submit(acct(9), job_spec(2));
    let t = tid(job, 0);
    w.assign(acct(1), &[t]);
    w.report(acct(1), vec![failure(t, TaskOutcome::Exit(2))]);
    assert!(
        matches!(&w.job(job).status, JobStatus::Failed { reason } if reason.contains("exited with status 2 on 1 provider(s)")),
        "{:?}",
        w.job(job).status
    );
}

/// Rules 5: a trusted provider's lone result is neither accepted nor re-run until the leader's
/// beacon reveal decides its audit; the reveal must open the standing commitment; a newly trusted
/// provider's lone results are all audited, and one it passes counts for it.
#[test]
fn a_trusted_lone_result_waits_for_the_beacon_which_decides_its_audit() {
    // Rules 6 keeps the untrusted provider 3 off the audit replica altogether.
    let mut w = world(params(1, 0)).under_rules(5);
    assert_eq!(w.state.rules, 5);
    make_trusted(&mut w, 1);
    make_trusted(&mut w, 2);
    let seed = [7u8; 32];
    // The leader commits first.
    let Some(commit) = w.state.beacon_due(&seed) else {
        panic!("a leader without a commitment commits")
    };
    assert!(matches!(
        commit,
        engine::LeaderCommand::Beacon { reveal: None, .. }
    ));
    w.lead(commit);
    assert_eq!(w.state.beacon_due(&seed), None, "nothing waits: no reveal");
    let job = submit(&mut w, 1, ADAPTIVE);
    let task = tid(job, 0);
    let events = run(&mut w, 1, task, 7);
    assert_eq!(accepted(&events), None, "held for the beacon");
    assert!(paid(&events).is_empty());
    assert_eq!(w.task_state(task), TaskState::Running);
    assert_eq!(w.task(task).queued, 0, "no replica before the draw");
    assert_eq!(w.state.audits.awaiting.get(&task), Some(&acct(1)));
    // A reveal that does not open the commitment, or another leader's, is refused.
    let Some(engine::LeaderCommand::Beacon { commit: next, .. }) = w.state.beacon_due(&seed) else {
        panic!("a reveal is due")
    };
    let forged = w.lead_rejected(engine::LeaderCommand::Beacon {
        reveal: Some(engine::Hash::of(b"guess")),
        commit: next,
    });
    assert!(matches!(forged, Rejection::NeedsEvidence(_)), "{forged}");
    // Provider 1 was trusted a moment ago: every lone result of it is audited.
    assert_eq!(w.state.audit_bps(&acct(1)), 10_000);
    let reveal = w.state.beacon_due(&seed).unwrap();
    let events = w.lead(reveal);
    assert!(events.contains(&Event::SpotCheck {
        task,
        provider: acct(1)
    }));
    assert_eq!(w.task(task).queued, 1);
    assert_eq!(w.state.audits.round, 1);
    // A new provider's agreement does not settle an audit: a trusted auditor's does, and the
    // audit passed counts for provider 1 only.
    let events = run(&mut w, 3, task, 7);
    assert_eq!(accepted(&events), None, "an audit needs a trusted auditor");
    let events = run(&mut w, 2, task, 7);
    assert_eq!(accepted(&events), Some(vec![acct(1), acct(3), acct(2)]));
    assert_eq!(w.state.audits.passed.get(&acct(1)), Some(&1));
    assert_eq!(w.state.audits.passed.get(&acct(2)), None);
    assert!(w.state.audits.auditing.is_empty() && w.state.audits.awaiting.is_empty());
    // Another leader (another seed) cannot reveal this one's secret: it replaces the commitment.
    let other = [8u8; 32];
    let replace = w.state.beacon_due(&other).unwrap();
    assert!(matches!(
        replace,
        engine::LeaderCommand::Beacon { reveal: None, .. }
    ));
    w.lead(replace);
    assert!(matches!(
        w.state.beacon_due(&seed),
        Some(engine::LeaderCommand::Beacon { reveal: None, .. })
    ));
}

/// Rules 5: once the draw clears a lone result it is accepted alone and paid in full.
#[test]
fn a_lone_result_the_beacon_clears_is_accepted_alone() {
    let mut w = world(params(1, 0));
    make_trusted(&mut w, 1);
    // Past the graduated rate: at the floor of 0 bps the draw never picks.
    w.state.audits.passed.insert(acct(1), 200);
    assert_eq!(w.state.audit_bps(&acct(1)), 0);
    let seed = [7u8; 32];
    let commit = w.state.beacon_due(&seed).unwrap();
    w.lead(commit);
    let job = submit(&mut w, 1, ADAPTIVE);
    let task = tid(job, 0);
    run(&mut w, 1, task, 7);
    let reveal = w.state.beacon_due(&seed).unwrap();
    let events = w.lead(reveal);
    assert_eq!(accepted(&events), Some(vec![acct(1)]));
    assert_eq!(paid(&events), vec![(acct(1), 100)]);
    assert!(w.state.audits.cleared.is_empty(), "forgotten once accepted");
}

/// Rules 5, one row per count of passed audits: the audit rate starts at every lone result and
/// halves every `AUDIT_HALVING` passed audits, never below `spot_check_bps`; losing a quorum
/// starts it over.
#[test]
fn the_audit_rate_halves_with_passed_audits_and_a_lost_quorum_starts_it_over() {
    let mut w = world(params(1, 1_000));
    make_trusted(&mut w, 1);
    for (passed, bps) in [
        (0, 10_000),
        (3, 10_000),
        (4, 5_000),
        (8, 2_500),
        (12, 1_250),
        (16, 1_000),
        (400, 1_000),
    ] {
        w.state.audits.passed.insert(acct(1), passed);
        assert_eq!(w.state.audit_bps(&acct(1)), bps, "{passed} passed");
    }
    // Provider 1 loses a fixed 2-of-2... a 3-of-3 quorum to providers 2 and 3.
    let job = submit(
        &mut w,
        1,
        Redundancy::Fixed {
            quorum: 2,
            max_results: 3,
        },
    );
    let task = tid(job, 0);
    run(&mut w, 1, task, 6);
    run(&mut w, 2, task, 7);
    let events = run(&mut w, 3, task, 7);
    assert_eq!(accepted(&events), Some(vec![acct(2), acct(3)]));
    assert_eq!(w.state.audits.passed.get(&acct(1)), None);
    assert_eq!(w.state.audit_bps(&acct(1)), 10_000);
    // Rules 6: the floor doubles with every slash a provider took (rules 5: it does not).
    w.state.audits.passed.insert(acct(1), 400);
    w.state
        .providers
        .get_mut(&acct(1))
        .unwrap()
        .stats
        .times_slashed = 2;
    assert_eq!(w.state.audit_bps(&acct(1)), 4_000);
    w.state.rules = 5;
    assert_eq!(w.state.audit_bps(&acct(1)), 1_000);
}

/// Rules 5, adaptive policy: in a dispute with a trusted side, the winner must lead by a full
/// quorum (a trusted colluder and one more cannot win against an honest trusted provider outright);
/// a loser is slashed when outweighed by a full quorum.
/// Makes providers `who` trusted and proven — audited at the floor (0 in these tests), so the
/// beacon clears their results — and has the leader commit to its first beacon secret, which it
/// returns.
fn proven(w: &mut World, who: &[u8]) -> [u8; 32] {
    for &p in who {
        make_trusted(w, p);
        w.state.audits.passed.insert(acct(p), 200);
    }
    let seed = [7u8; 32];
    let commit = w.state.beacon_due(&seed).unwrap();
    w.lead(commit);
    seed
}

#[test]
fn a_dispute_needs_a_winner_that_leads_by_a_quorum() {
    let mut w = world(params(1, 0)).under_rules(13);
    let seed = proven(&mut w, &[1, 2, 3]);
    let job = submit(&mut w, 1, ADAPTIVE);
    let task = tid(job, 0);
    // Provider 4 (new, weight 1) answers 6; provider 1 (trusted, weight 2) answers 7.
    run(&mut w, 4, task, 6);
    let events = run(&mut w, 1, task, 7);
    assert_eq!(accepted(&events), None);
    // Provider 2 (trusted) agrees with 4: weight 3 against 2 is not a lead of a full quorum.
    let events = run(&mut w, 2, task, 6);
    assert_eq!(
        accepted(&events),
        None,
        "3 against a trusted 2 is not decisive"
    );
    assert!(w.task(task).queued > 0);
    // Provider 3 (trusted) too: 5 against 2, a lead of 3. It rests on trusted weight, so it
    // waits for the beacon, which clears it.
    let events = run(&mut w, 3, task, 6);
    assert_eq!(accepted(&events), None, "waits for the beacon");
    let reveal = w.state.beacon_due(&seed).unwrap();
    let events = w.lead(reveal);
    assert_eq!(accepted(&events), Some(vec![acct(4), acct(2), acct(3)]));
    assert_eq!(slashed(&events), vec![acct(1)]);
    // Under rules 4 the first three would have settled it.
    let mut w = world(params(1, 0)).under_rules(4);
    for who in [1, 2, 3] {
        make_trusted(&mut w, who);
    }
    let job = submit(&mut w, 1, ADAPTIVE);
    let task = tid(job, 0);
    run(&mut w, 4, task, 6);
    run(&mut w, 1, task, 7);
    let events = run(&mut w, 2, task, 6);
    assert_eq!(accepted(&events), Some(vec![acct(4), acct(2)]));
}

/// Rules 14: a dispute's winner leads every other group by twice the threshold, so trusted
/// colluders must be every one of twice as many trusted runs to outvote (and slash) an honest
/// result: the rules-13 win above (5 against 2) is not enough; two more trusted runs are.
#[test]
fn a_dispute_needs_a_winner_that_leads_by_twice_a_quorum() {
    let mut w = world(params(1, 0));
    let seed = proven(&mut w, &[1, 2, 3, 5, 6]);
    let job = submit(&mut w, 1, ADAPTIVE);
    let task = tid(job, 0);
    run(&mut w, 4, task, 6);
    run(&mut w, 1, task, 7);
    run(&mut w, 2, task, 6);
    let events = run(&mut w, 3, task, 6);
    assert_eq!(accepted(&events), None, "5 against 2 is a lead of 3, not 6");
    assert!(w.task(task).queued > 0);
    assert_eq!(accepted(&run(&mut w, 5, task, 6)), None, "7 against 2");
    let events = run(&mut w, 6, task, 6);
    assert_eq!(accepted(&events), None, "9 against 2 waits for the beacon");
    let reveal = w.state.beacon_due(&seed).unwrap();
    let events = w.lead(reveal);
    assert_eq!(
        accepted(&events),
        Some(vec![acct(4), acct(2), acct(3), acct(5), acct(6)])
    );
    assert_eq!(slashed(&events), vec![acct(1)]);
    supply(&w);
}

/// Rules 14: when trusted providers' results disagree, only an anchor's run settles the task:
/// the replica goes to anchors only (a trusted provider's fetch gets nothing), more trusted
/// runs cannot outvote it, and the anchor's word slashes the trusted liar. Under rules 13 the
/// same task takes another trusted run.
#[test]
fn an_anchor_settles_a_dispute_between_trusted_providers() {
    for rules in [14, 13] {
        let mut w = world(params(1, 0)).under_rules(rules);
        proven(&mut w, &[2, 3, 4]);
        make_validator(&mut w, 1);
        let job = submit(&mut w, 1, ADAPTIVE);
        let task = tid(job, 0);
        // A newcomer answers 6; trusted 2 says 66; trusted 3 agrees with the newcomer.
        fetch_run(&mut w, 5, task, 6);
        fetch_run(&mut w, 2, task, 66);
        let events = fetch_run(&mut w, 3, task, 6);
        assert_eq!(accepted(&events), None);
        if rules < 14 {
            assert!(
                !w.state.pick(acct(4), 4).is_empty(),
                "a trusted run is asked for"
            );
            continue;
        }
        assert_eq!(w.task(task).queued, 1);
        assert!(w.state.recheck.contains(&task) && !w.state.queue.contains(&task));
        assert!(
            w.state.pick(acct(4), 4).is_empty(),
            "trusted 4 may not take it"
        );
        assert!(w.state.pick(acct(6), 4).is_empty(), "nor a newcomer");
        let events = fetch_run(&mut w, 1, task, 6);
        assert_eq!(accepted(&events), Some(vec![acct(5), acct(3), acct(1)]));
        assert_eq!(slashed(&events), vec![acct(2)]);
        supply(&w);
    }
}

/// `who` answers a task wrong and trusted 1, 2, 3 and 5 (from [`proven`], with the beacon's
/// `seed`) outvote it: it loses a quorum and is slashed, and bonds the minimum stake
/// again.
fn catch_lying(w: &mut World, seed: &[u8; 32], who: u8) {
    let job = submit(w, 1, ADAPTIVE);
    let task = tid(job, 0);
    run(w, who, task, 7);
    for p in [1, 2, 3, 5] {
        run(w, p, task, 6);
    }
    let reveal = w.state.beacon_due(seed).unwrap();
    let events = w.lead(reveal);
    assert_eq!(slashed(&events), vec![acct(who)]);
    assert!(!w.state.is_trusted(&acct(who)));
    w.act(acct(who), Action::Stake { amount: STAKE });
}

/// A network under `rules` with trusted providers 1, 2, 3 and 5 and newcomer 4 caught lying once
/// (and bonded again); the beacon's seed.
fn caught_newcomer(rules: u32) -> (World, [u8; 32]) {
    let mut w = world(params(1, 0)).under_rules(rules);
    let seed = proven(&mut w, &[1, 2, 3, 5]);
    catch_lying(&mut w, &seed, 4);
    (w, seed)
}

/// Rules 15: a provider that lost more quorums than it had results confirmed (newcomer 4, caught
/// lying once) and dissents from a trusted result is outvoted by the plain margin, a lead of one
/// quorum; a provider with confirmed work that was outvoted once (6) and a newcomer (7) still get
/// the wide margin of rules 14, and under rules 14 everyone does.
#[test]
fn a_discredited_dissent_is_settled_by_the_plain_margin() {
    for rules in [15, 14] {
        let (mut w, seed) = caught_newcomer(rules);
        // 6 has a result confirmed, then loses a fixed vote.
        make_trusted(&mut w, 6);
        let job = submit(&mut w, 1, TWO_OF_TWO_OF_THREE);
        run(&mut w, 6, tid(job, 0), 7);
        run(&mut w, 2, tid(job, 0), 6);
        assert_eq!(slashed(&run(&mut w, 3, tid(job, 0), 6)), vec![acct(6)]);
        w.act(acct(6), Action::Stake { amount: STAKE });
        assert!(!w.state.is_trusted(&acct(6)));
        for (liar, discredited) in [(4, true), (6, false), (7, false)] {
            let job = submit(&mut w, 1, ADAPTIVE);
            let task = tid(job, 0);
            run(&mut w, liar, task, 7);
            run(&mut w, 2, task, 6);
            let events = run(&mut w, 3, task, 6);
            assert_eq!(accepted(&events), None, "the beacon decides first");
            let plain = rules >= 15 && discredited;
            if plain {
                let reveal = w.state.beacon_due(&seed).unwrap();
                let events = w.lead(reveal);
                assert_eq!(accepted(&events), Some(vec![acct(2), acct(3)]));
                assert_eq!(slashed(&events), vec![acct(liar)]);
            } else {
                assert!(w.state.beacon_due(&seed).is_none(), "rules {rules}, {liar}");
                assert!(w.task(task).queued > 0, "4 against 1 is not a lead of 6");
            }
        }
        supply(&w);
    }
}

/// Rules 15: a provider that lost a quorum and is not trusted again is given one task at a
/// time — by the scheduler and in an assignment the leader logs — while a newcomer that never
/// lost one gets its full room; under rules 14 the caught provider gets its full room too. Once
/// trusted again it gets its full room back.
#[test]
fn a_caught_provider_is_given_one_task_at_a_time() {
    for rules in [15, 14] {
        let (mut w, seed) = caught_newcomer(rules);
        let job = submit(&mut w, 8, ADAPTIVE);
        let full = w.state.pick(acct(6), 8).len();
        assert!(full > 1, "a newcomer gets {full}");
        let caught = w.state.pick(acct(4), 8);
        if rules < 15 {
            assert_eq!(caught.len(), full);
            continue;
        }
        assert_eq!(caught.len(), 1);
        let rejection = w.lead_rejected(engine::LeaderCommand::AssignTasks {
            provider: acct(4),
            tasks: vec![tid(job, 0), tid(job, 1)],
        });
        assert!(
            matches!(&rejection, engine::Rejection::TooLarge(m) if m.contains("room for 1")),
            "{rejection:?}"
        );
        w.assign(acct(4), &[tid(job, 0)]);
        assert!(w.state.pick(acct(4), 8).is_empty(), "one at a time");
        // Its result is confirmed: trusted again (trust_after 1), it gets its full room.
        w.report(acct(4), vec![success(tid(job, 0), 6, FUEL)]);
        run(&mut w, 2, tid(job, 0), 6);
        w.lead(w.state.beacon_due(&seed).unwrap());
        assert!(w.state.is_trusted(&acct(4)));
        assert!(w.state.pick(acct(4), 8).len() > 1);
        supply(&w);
    }
}

/// Rules 5: each earlier slash doubles the fraction a provider loses, up to its whole stake;
/// under rules 4 every slash takes the same fraction. The provider bonds another 1,000 after each.
#[test]
fn slashes_escalate_with_every_offence() {
    for (rules, expected) in [(4, [500u128, 750, 875]), (5, [500, 1_500, 1_000])] {
        let mut w = world(params(5, 0)).under_rules(rules);
        let mut amounts = Vec::new();
        for round in 0..3 {
            if round > 0 {
                w.act(acct(1), Action::Stake { amount: STAKE });
            }
            let job = submit(&mut w, 1, TWO_OF_TWO_OF_THREE);
            let task = tid(job, 0);
            run(&mut w, 1, task, 6);
            run(&mut w, 2, task, 7);
            let events = run(&mut w, 3, task, 7);
            assert_eq!(slashed(&events), vec![acct(1)], "rules {rules}");
            amounts.extend(events.iter().filter_map(|e| match e {
                Event::Slashed { amount, .. } => Some(*amount),
                _ => None,
            }));
        }
        assert_eq!(amounts, expected, "rules {rules}");
    }
}

const TWO_OF_TWO_OF_THREE: Redundancy = Redundancy::Fixed {
    quorum: 2,
    max_results: 3,
};

/// Rules 5: a trusted provider's result that completes a quorum with others (not only a lone
/// one) waits for the beacon, and an audit drawn on it is settled only with an auditor's run:
/// a turncoat confirming a colluder cannot carry their wrong answer through.
#[test]
fn a_trusted_confirmation_is_audited_and_needs_the_auditors_agreement() {
    // Under rules 6 the new provider 5 could not take part (see the rules 6 scenario below).
    let mut w = world(params(1, 0)).under_rules(5);
    make_trusted(&mut w, 1);
    make_trusted(&mut w, 2);
    w.state.audits.passed.insert(acct(2), 200);
    let seed = [7u8; 32];
    let commit = w.state.beacon_due(&seed).unwrap();
    w.lead(commit);
    let job = submit(&mut w, 1, ADAPTIVE);
    let task = tid(job, 0);
    // A colluder (new, weight 1) answers 6 first; the newly trusted turncoat 1 confirms it
    // (2 + 1 = 3, a quorum with a trusted member).
    run(&mut w, 4, task, 6);
    let events = run(&mut w, 1, task, 6);
    assert_eq!(accepted(&events), None, "waits for the beacon");
    assert_eq!(w.state.audits.awaiting.get(&task), Some(&acct(1)));
    // Provider 1 was trusted a moment ago: audited for sure. One more replica is needed.
    let reveal = w.state.beacon_due(&seed).unwrap();
    let events = w.lead(reveal);
    assert!(events.contains(&Event::SpotCheck {
        task,
        provider: acct(1)
    }));
    assert_eq!(w.task(task).queued, 1);
    // The auditor (trusted 2) disagrees: a dispute, not an acceptance of the wrong answer.
    let events = run(&mut w, 2, task, 7);
    assert_eq!(accepted(&events), None);
    // Honest trusted 3 and new 5 join the auditor: 2 + 2 + 1 = 5 against 3 is no lead of 3;
    // honest 6 makes 6, and the colluders lose and are slashed.
    make_trusted(&mut w, 3);
    w.state.audits.passed.insert(acct(3), 200);
    run(&mut w, 3, task, 7);
    run(&mut w, 5, task, 7);
    let events = run(&mut w, 6, task, 7);
    let events = if accepted(&events).is_some() {
        events
    } else {
        let reveal = w.state.beacon_due(&seed).unwrap();
        w.lead(reveal)
    };
    assert_eq!(
        accepted(&events),
        Some(vec![acct(2), acct(3), acct(5), acct(6)])
    );
    let mut lost = slashed(&events);
    lost.sort();
    assert_eq!(lost, vec![acct(1), acct(4)]);
    assert_eq!(w.state.audits.passed.get(&acct(1)), None);
}

/// Rules 6, one row per network: once an active provider has passed an audit, a newcomer's
/// result gets its next replica from a trusted provider — offered to trusted providers only,
/// outside the queue untrusted providers fetch from — so agreeing newcomers cannot gather a
/// quorum among themselves, and the newcomer's trust grows from that trusted agreement. On a
/// network where nobody has passed an audit yet, agreement among newcomers is all there is: it
/// carries the task and builds trust.
#[test]
fn a_newcomers_result_waits_for_a_trusted_member_once_an_audited_provider_is_around() {
    for audited in [true, false] {
        let mut w = world(params(1, 0));
        assert!(w.state.rules >= 6);
        make_trusted(&mut w, 1);
        if audited {
            w.state.audits.passed.insert(acct(1), 200);
        }
        let seed = [7u8; 32];
        let commit = w.state.beacon_due(&seed).unwrap();
        w.lead(commit);
        let job = submit(&mut w, 1, ADAPTIVE);
        let task = tid(job, 0);
        if !audited {
            run(&mut w, 4, task, 6);
            run(&mut w, 5, task, 6);
            let events = run(&mut w, 6, task, 6);
            assert_eq!(accepted(&events), Some(vec![acct(4), acct(5), acct(6)]));
            assert_eq!(w.state.providers[&acct(4)].reputation.streak, 1);
            continue;
        }
        w.assign(acct(4), &[task]);
        // One more replica, for trusted providers only.
        assert_eq!(w.task(task).queued, 1);
        assert!(!w.state.queue.contains(&task) && w.state.recheck.contains(&task));
        let events = w.report(acct(4), vec![success(task, 6, FUEL)]);
        assert_eq!(accepted(&events), None);
        assert_eq!(w.task(task).queued, 1);
        assert!(!w.state.queue.contains(&task) && w.state.recheck.contains(&task));
        // An untrusted provider can neither fetch it nor be assigned it.
        assert!(w.state.pick(acct(7), 4).is_empty());
        let refused = w.lead_rejected(engine::LeaderCommand::AssignTasks {
            provider: acct(7),
            tasks: vec![task],
        });
        assert!(
            matches!(&refused, Rejection::TaskDoesNotFit { why, .. } if why.contains("trusted provider")),
            "{refused}"
        );
        // The trusted provider is offered it, and its agreement (audited at the floor, 0 here:
        // the beacon clears it) carries the task and builds the newcomer's trust.
        assert_eq!(w.state.pick(acct(1), 4), vec![task]);
        run(&mut w, 1, task, 6);
        let reveal = w.state.beacon_due(&seed).unwrap();
        let events = w.lead(reveal);
        assert_eq!(accepted(&events), Some(vec![acct(4), acct(1)]));
        assert_eq!(w.state.providers[&acct(4)].reputation.streak, 1);
        assert!(w.state.recheck.is_empty() && w.state.queue.is_empty());
        supply(&w);
    }
}

/// Makes provider `who` the network's one validator (so, under rules 7, an anchor).
fn make_validator(w: &mut World, who: u8) {
    w.state.validators.set = engine::ValidatorSet {
        validators: vec![engine::Validator {
            account: acct(who),
            power: 1,
            address: format!("http://validator-{who}"),
            stake: 0,
        }],
    };
}

/// `who` fetches one task on its own signed request (a validator set assigns no other way) and
/// reports output `out` for it, which must be `task`.
fn fetch_run(w: &mut World, who: u8, task: TaskId, out: u8) -> Vec<Event> {
    let signer = acct(who);
    w.fetch(signer, 1);
    assert_eq!(w.running(signer), vec![task], "{who} fetched");
    w.report(signer, vec![success(task, out, FUEL)])
}

/// Rules 7: a validator's provider anchors trust. On a network whose only history is none at
/// all, it is trusted from the start and never audited, so colluding newcomers cannot carry a
/// task among themselves even in the first round: their results wait for a trusted member,
/// and the anchor's disagreement slashes them. Its agreement builds a newcomer's streak. An
/// anchor that loses a quorum is an anchor no more; under rules 6 the same network trusts
/// nobody and three agreeing newcomers carry the task.
#[test]
fn a_validators_provider_anchors_trust_from_the_first_round() {
    for rules in [7, 6] {
        let mut w = world(params(2, 0)).under_rules(rules);
        make_validator(&mut w, 1);
        let seed = [7u8; 32];
        let commit = w.state.beacon_due(&seed).unwrap();
        w.lead(commit);
        assert_eq!(w.state.is_trusted(&acct(1)), rules >= 7);
        assert_eq!(w.state.is_anchor(&acct(1)), rules >= 7);
        assert_eq!(w.state.audited_around(), rules >= 7);
        // Three colluding newcomers agree on a wrong answer.
        let job = submit(&mut w, 1, ADAPTIVE);
        let task = tid(job, 0);
        let first = fetch_run(&mut w, 4, task, 66);
        if rules < 7 {
            fetch_run(&mut w, 5, task, 66);
            let events = fetch_run(&mut w, 6, task, 66);
            assert_eq!(accepted(&events), Some(vec![acct(4), acct(5), acct(6)]));
            continue;
        }
        assert_eq!(accepted(&first), None);
        // The one replica is for trusted providers only: a colluder's fetch gets nothing.
        assert!(w.state.recheck.contains(&task) && !w.state.queue.contains(&task));
        assert!(w.state.pick(acct(5), 4).is_empty());
        // The anchor disagrees: its word settles the task at once (no beacon: an anchor is
        // not audited) and is decisive, so the colluder is slashed.
        let events = fetch_run(&mut w, 1, task, 7);
        assert_eq!(accepted(&events), Some(vec![acct(1)]));
        assert_eq!(slashed(&events), vec![acct(4)]);
        assert!(w.state.audits.awaiting.is_empty());
        assert_eq!(w.state.providers[&acct(4)].reputation.streak, 0);
        // Agreement with the anchor builds newcomers' trust: two confirmations each make
        // providers 7 and 8 trusted (trust_after = 2).
        for who in [7, 7, 8, 8] {
            let job = submit(&mut w, 1, ADAPTIVE);
            fetch_run(&mut w, who, tid(job, 0), 5);
            let events = fetch_run(&mut w, 1, tid(job, 0), 5);
            assert_eq!(accepted(&events), Some(vec![acct(who), acct(1)]));
        }
        assert!(w.state.is_trusted(&acct(7)) && w.state.is_trusted(&acct(8)));
        assert!(!w.state.is_anchor(&acct(7)));
        // Newly trusted 7's lone result waits for the beacon, which audits it (every result
        // of a provider that just became trusted is). 7 lies; the anchor audits it, and its
        // word alone settles the audit and slashes 7.
        let job = submit(&mut w, 1, ADAPTIVE);
        let audited = tid(job, 0);
        assert_eq!(accepted(&fetch_run(&mut w, 7, audited, 66)), None);
        let reveal = w.state.beacon_due(&seed).unwrap();
        w.lead(reveal);
        assert!(w.state.audits.auditing.contains_key(&audited));
        let events = fetch_run(&mut w, 1, audited, 5);
        assert_eq!(accepted(&events), Some(vec![acct(1)]));
        assert_eq!(slashed(&events), vec![acct(7)]);
        assert!(!w.state.is_trusted(&acct(7)));
        // The anchor's lone result on a fresh task is accepted at once, unaudited.
        let job = submit(&mut w, 1, ADAPTIVE);
        let events = fetch_run(&mut w, 1, tid(job, 0), 9);
        assert_eq!(accepted(&events), Some(vec![acct(1)]));
        // An anchor that lost a quorum (counted in its reputation) is an anchor no more.
        w.state
            .providers
            .get_mut(&acct(1))
            .unwrap()
            .reputation
            .rejected = 1;
        assert!(!w.state.is_anchor(&acct(1)));
        supply(&w);
    }
}

/// Rules 7 on a small network: a validator's provider and one newcomer (every other provider
/// has left) finish a job under the default policy — no warning at submission, where three
/// newcomers' weight would be needed without the anchor. A colluder that joins and lies is
/// settled against by the anchor's word alone, and slashed; three operators are enough.
#[test]
fn a_small_network_with_a_validators_provider_finishes_jobs_and_slashes_a_liar() {
    let mut w = world(params(5, 0));
    make_validator(&mut w, 1);
    for n in [2, 3, 6, 7, 8, 9] {
        w.act(acct(n), Action::LeaveProvider);
    }
    let seed = [7u8; 32];
    let commit = w.state.beacon_due(&seed).unwrap();
    w.lead(commit);
    // Anchor 1 and newcomer 5: weight 2 + 1 reaches the quorum from two operators.
    w.act(acct(4), Action::LeaveProvider);
    let job = submit(&mut w, 2, ADAPTIVE);
    assert_eq!(w.state.job_outlook(job), None);
    let events = fetch_run(&mut w, 5, tid(job, 0), 7);
    assert_eq!(accepted(&events), None);
    let events = fetch_run(&mut w, 1, tid(job, 0), 7);
    assert_eq!(accepted(&events), Some(vec![acct(5), acct(1)]));
    let events = fetch_run(&mut w, 1, tid(job, 1), 7);
    assert_eq!(accepted(&events), Some(vec![acct(1)]));
    assert_eq!(w.job(job).status, JobStatus::Completed);
    // Colluder 4 comes back; it takes a task first.
    w.register(acct(4), provider_spec());
    let job = submit(&mut w, 1, ADAPTIVE);
    let task = tid(job, 0);
    assert_eq!(accepted(&fetch_run(&mut w, 4, task, 66)), None);
    let events = fetch_run(&mut w, 1, task, 7);
    assert_eq!(accepted(&events), Some(vec![acct(1)]));
    assert_eq!(slashed(&events), vec![acct(4)]);
    assert!(paid(&events).iter().all(|(p, _)| *p != acct(4)));
    supply(&w);
}

/// Rules 9: a replica held for trusted providers only goes to anyone once the last trusted
/// provider is lost; under rules 8 it waited for good (the soak found a job stalled so, after
/// churn took the trusted providers away).
#[test]
fn a_replica_held_for_trusted_providers_goes_to_anyone_once_none_is_left() {
    for rules in [8, engine::RULES] {
        let mut w = world(params(1, 0)).under_rules(rules);
        make_trusted(&mut w, 1);
        assert!(w.state.is_trusted(&acct(9)));
        w.state.audits.passed.insert(acct(1), 200);
        let job = submit(&mut w, 1, ADAPTIVE);
        let task = tid(job, 0);
        w.assign(acct(4), &[task]);
        assert!(!w.state.queue.contains(&task) && w.state.recheck.contains(&task));
        // Both trusted providers are lost.
        w.lead(engine::LeaderCommand::ProviderLost { provider: acct(1) });
        w.lead(engine::LeaderCommand::ProviderLost { provider: acct(9) });
        if rules < 9 {
            assert!(w.state.pick(acct(7), 4).is_empty());
            continue;
        }
        assert!(w.state.queue.contains(&task));
        assert_eq!(w.state.pick(acct(7), 4), vec![task]);
        // Newcomers' agreement carries it, as on a network that never had trusted providers.
        let events = w.report(acct(4), vec![success(task, 6, FUEL)]);
        assert_eq!(accepted(&events), None);
        run(&mut w, 5, task, 6);
        let events = run(&mut w, 6, task, 6);
        assert_eq!(accepted(&events), Some(vec![acct(4), acct(5), acct(6)]));
        supply(&w);
    }
}

/// Rules 13: a private job's requester chose its jury, so its verdicts decide results and
/// payments only. Two colluders it sealed a 2-of-3 job to outvote the third provider: the third
/// is rejected and unpaid, but neither slashed nor marked down, and the colluders gain no
/// reputation. The same job in the open slashes the loser.
#[test]
fn a_private_jobs_verdicts_never_touch_reputation_or_stake() {
    let two_of_three = Redundancy::Fixed {
        quorum: 2,
        max_results: 3,
    };
    for private in [true, false] {
        let mut w = world(params(1, 0));
        let spec = engine::JobSpec {
            redundancy: two_of_three,
            ..job_spec(1)
        };
        let job = if private {
            let job = w.state.next_job;
            w.act(
                REQUESTER,
                Action::SubmitPrivateJob {
                    spec,
                    storage: None,
                    options: Default::default(),
                    files: Default::default(),
                    sealing: engine::Sealing {
                        key_check: hash(1),
                        recipients: [1u8, 2, 3]
                            .iter()
                            .map(|p| engine::Recipient {
                                provider: acct(*p),
                                wrapped: vec![*p; 80],
                            })
                            .collect(),
                        clear: Vec::new(),
                    },
                },
            );
            job
        } else {
            w.submit(REQUESTER, spec)
        };
        let before: Vec<_> = (1..=3)
            .map(|p| w.provider(acct(p)).reputation.clone())
            .collect();
        run(&mut w, 3, tid(job, 0), 7);
        run(&mut w, 1, tid(job, 0), 1);
        let events = run(&mut w, 2, tid(job, 0), 1);
        assert_eq!(accepted(&events), Some(vec![acct(1), acct(2)]));
        assert_eq!(
            paid(&events).iter().map(|(p, _)| *p).collect::<Vec<_>>(),
            vec![acct(1), acct(2)],
            "the winners are paid either way"
        );
        assert!(events.iter().any(|e| matches!(
            e,
            Event::ResultRejected { provider, .. } if *provider == acct(3)
        )));
        let after: Vec<_> = (1..=3)
            .map(|p| w.provider(acct(p)).reputation.clone())
            .collect();
        if private {
            assert!(slashed(&events).is_empty(), "{events:?}");
            assert_eq!(
                after, before,
                "no reputation moves on a private job's verdict"
            );
            assert_eq!(w.state.bonded(&acct(3)), STAKE);
        } else {
            assert_eq!(slashed(&events), vec![acct(3)]);
            assert_eq!(after[2].rejected, 1);
            assert!(after[0].verified > before[0].verified);
        }
    }
}

fn reopened(events: &[Event]) -> Vec<TaskId> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ResultReopened { task, .. } => Some(*task),
            _ => None,
        })
        .collect()
}

/// The leader reveals the beacon's next secret (from [`proven`]'s `seed`); its events.
fn reveal(w: &mut World, seed: &[u8; 32]) -> Vec<Event> {
    let reveal = w.state.beacon_due(seed).expect("a reveal is due");
    w.lead(reveal)
}

/// Trusted providers from `auditors`, one after another, answer `task` right (6) until it is
/// accepted; the events of the run that settled it.
fn settle_with(w: &mut World, task: TaskId, auditors: &[u8]) -> Vec<Event> {
    for &p in auditors {
        let events = run(w, p, task, 6);
        if accepted(&events).is_some() {
            return events;
        }
    }
    panic!("{task} not settled by {auditors:?}: {:?}", w.task(task))
}

/// Rules 16, backtracking: trusted provider 1 had two results accepted alone in job A (one
/// wrong) and one in job C, which completed; then its audited lie on A's last task is caught.
/// Its lone results in A are reopened (A does not complete on that last task), re-run by trusted
/// providers like audits: the wrong one is rejected and slashed again, the right one confirmed
/// without paying 1 a second time. C's result was delivered and stays. Under rules 15 nothing
/// is reopened and A completes with the wrong result.
#[test]
fn a_caught_liars_lone_results_in_open_jobs_are_reopened() {
    for rules in [16, 15] {
        let mut w = world(params(1, 0)).under_rules(rules);
        let seed = proven(&mut w, &[1, 2, 3, 4, 5]);
        let c = submit(&mut w, 1, ADAPTIVE);
        run(&mut w, 1, tid(c, 0), 9);
        assert_eq!(accepted(&reveal(&mut w, &seed)), Some(vec![acct(1)]));
        assert_eq!(w.job(c).status, JobStatus::Completed);
        let a = submit(&mut w, 3, ADAPTIVE);
        run(&mut w, 1, tid(a, 0), 9);
        run(&mut w, 1, tid(a, 1), 6);
        let events = reveal(&mut w, &seed);
        assert_eq!(paid(&events), vec![(acct(1), 100), (acct(1), 100)]);
        // 1's next lone result is audited (as if it had passed none) and found wrong.
        w.state.audits.passed.insert(acct(1), 0);
        run(&mut w, 1, tid(a, 2), 9);
        assert!(reveal(&mut w, &seed).contains(&Event::SpotCheck {
            task: tid(a, 2),
            provider: acct(1)
        }));
        let events = settle_with(&mut w, tid(a, 2), &[2, 3, 4, 5]);
        assert_eq!(slashed(&events), vec![acct(1)]);
        if rules < 16 {
            assert!(reopened(&events).is_empty());
            assert_eq!(w.job(a).status, JobStatus::Completed);
            assert_eq!(
                w.task(tid(a, 0)).result.as_ref().unwrap().output_hash,
                hash(9)
            );
            continue;
        }
        assert_eq!(reopened(&events), vec![tid(a, 0), tid(a, 1)]);
        assert_eq!(
            w.job(a).status,
            JobStatus::Running,
            "A waits for its reopened tasks"
        );
        assert_eq!(w.job(a).maps_done, 1);
        for index in [0, 1] {
            let task = w.task(tid(a, index));
            assert_eq!(task.state, TaskState::Queued);
            assert!(task.result.is_none() && task.queued == 1);
            assert!(
                w.state.recheck.contains(&tid(a, index)),
                "for trusted providers only"
            );
        }
        assert!(
            w.state.pick(acct(6), 4).is_empty(),
            "a newcomer may not re-run them"
        );
        // The wrong one: outvoted by trusted runs, rejected and slashed again, paid nothing more.
        let events = settle_with(&mut w, tid(a, 0), &[2, 3, 4, 5]);
        assert_eq!(slashed(&events), vec![acct(1)]);
        assert!(paid(&events).iter().all(|(p, _)| *p != acct(1)));
        assert_eq!(
            w.task(tid(a, 0)).result.as_ref().unwrap().output_hash,
            hash(6)
        );
        // The right one: confirmed by the first trusted run; 1 is not paid twice, and the
        // confirmation is no audit passed.
        let events = settle_with(&mut w, tid(a, 1), &[3]);
        assert_eq!(accepted(&events), Some(vec![acct(1), acct(3)]));
        assert_eq!(paid(&events), vec![(acct(3), 50)]);
        assert_eq!(w.state.audits.passed.get(&acct(1)), None);
        assert_eq!(w.job(a).status, JobStatus::Completed);
        assert!(w.state.reopened.tasks.is_empty());
        // C was delivered before 1 was caught: its result stands.
        assert_eq!(
            w.task(tid(c, 0)).result.as_ref().unwrap().output_hash,
            hash(9)
        );
        supply(&w);
    }
}

/// A network under `rules` with trusted providers 1 to 5 (the beacon's seed returned) that
/// keeps jobs' storage for 10 s after they end, at no deposit: under rules 19 their results can
/// be corrected until then.
fn storing_world(rules: u32) -> (World, [u8; 32]) {
    let mut w = world(params(1, 0)).under_rules(rules);
    let seed = proven(&mut w, &[1, 2, 3, 4, 5]);
    w.state.storage.params = Some(engine::StorageParams {
        deposit_per_kib: 0,
        retention_ms: 10_000,
        max_output_bytes: 1 << 20,
    });
    (w, seed)
}

/// The requester submits `spec` with a storage claim (rules 10); the job's id.
fn submit_stored(w: &mut World, spec: engine::JobSpec) -> u64 {
    let job = w.state.next_job;
    w.act(
        REQUESTER,
        Action::SubmitJobWithStorage {
            spec,
            storage: engine::StorageClaim {
                input_bytes: 0,
                output_bytes: 1024,
            },
        },
    );
    job
}

/// Rules 19, correction after delivery: provider 1 (trusted) had a lie accepted alone in job C
/// (two maps, the other trusted provider 2's) and in job D (one map and a reduce), both
/// completed, their storage kept. When 1 is caught lying on a third job, C and D run again: the
/// lies are reopened, re-run by trusted providers and corrected (1 slashed again), D's reduce
/// runs afresh on the corrected map, and the re-runs are paid from what their escrows kept at
/// completion, returned once their storage is released. Under rules 18 both keep the lies, and
/// their escrows keep nothing.
#[test]
fn a_caught_liars_lone_results_in_delivered_jobs_are_corrected() {
    for rules in [19, 18] {
        let (mut w, seed) = storing_world(rules);
        let c = submit_stored(
            &mut w,
            engine::JobSpec {
                redundancy: ADAPTIVE,
                ..job_spec(2)
            },
        );
        let d = submit_stored(
            &mut w,
            engine::JobSpec {
                redundancy: ADAPTIVE,
                ..reduce_job_spec(1)
            },
        );
        run(&mut w, 1, tid(c, 0), 9);
        run(&mut w, 2, tid(c, 1), 6);
        run(&mut w, 1, tid(d, 0), 9);
        reveal(&mut w, &seed);
        run(&mut w, 2, tid(d, 1), 5);
        reveal(&mut w, &seed);
        for job in [c, d] {
            assert_eq!(w.job(job).status, JobStatus::Completed, "rules {rules}");
            // Kept: 100 fuel at the job's price of 10 per lone result (C's two maps; D's map
            // and its reduce).
            let kept = if rules >= 19 { 2_000 } else { 0 };
            assert_eq!(w.job(job).escrow.held(), kept, "rules {rules}, job {job}");
            assert_eq!(w.state.correctable(job), rules >= 19);
        }
        // 1's next lone result is audited and found wrong.
        let a = submit_stored(
            &mut w,
            engine::JobSpec {
                redundancy: ADAPTIVE,
                ..job_spec(1)
            },
        );
        w.state.audits.passed.insert(acct(1), 0);
        run(&mut w, 1, tid(a, 0), 9);
        reveal(&mut w, &seed);
        let events = settle_with(&mut w, tid(a, 0), &[2, 3, 4, 5]);
        assert_eq!(slashed(&events), vec![acct(1)]);
        if rules < 19 {
            assert!(reopened(&events).is_empty());
            for job in [c, d] {
                assert_eq!(w.job(job).status, JobStatus::Completed);
            }
            assert_eq!(
                w.task(tid(c, 0)).result.as_ref().unwrap().output_hash,
                hash(9)
            );
            supply(&w);
            continue;
        }
        assert_eq!(reopened(&events), vec![tid(c, 0), tid(d, 0)]);
        for job in [c, d] {
            assert!(events.contains(&Event::JobReopened { job, results: 1 }));
            assert_eq!(w.job(job).status, JobStatus::Running);
            assert_eq!(w.job(job).finished_at, None);
            assert_eq!(w.state.corrected.get(&job), Some(&1));
            assert!(!w.state.correctable(job));
        }
        assert_eq!(
            w.task(tid(d, 1)).state,
            TaskState::Dropped,
            "D's reduce is dropped"
        );
        assert!(!w.state.offered(&tid(d, 1)));
        // They delivered in time: their deadlines no longer end them.
        let late = w.job(c).spec.deadline + 1;
        assert!(w.state.correcting(c) && w.state.correcting(d));
        assert!(!w.state.expired_jobs(late).contains(&c));
        assert!(!w.state.expired_jobs(late).contains(&d));
        // Its storage cannot be released while it runs again.
        w.time += 20_000;
        assert_eq!(w.state.releasable_storage(w.time), vec![a]);
        // The lies are re-run by trusted providers, rejected and slashed again; C completes
        // with the right output, D reduces afresh.
        let events = settle_with(&mut w, tid(c, 0), &[2, 3, 4, 5]);
        assert_eq!(slashed(&events), vec![acct(1)]);
        assert_eq!(
            w.task(tid(c, 0)).result.as_ref().unwrap().output_hash,
            hash(6)
        );
        assert!(events.contains(&Event::JobCompleted { job: c }));
        let events = settle_with(&mut w, tid(d, 0), &[2, 3, 4, 5]);
        assert_eq!(slashed(&events), vec![acct(1)]);
        assert!(events.contains(&Event::ReduceQueued { job: d }));
        assert_eq!(w.job(d).status, JobStatus::Reducing);
        assert!(w.state.offered(&tid(d, 1)));
        run(&mut w, 3, tid(d, 1), 7);
        reveal(&mut w, &seed);
        assert_eq!(w.job(d).status, JobStatus::Completed);
        assert_eq!(
            w.task(tid(d, 1)).result.as_ref().unwrap().output_hash,
            hash(7)
        );
        // The re-runs were paid from what was kept; the results are lone again (the trusted
        // re-runs'), so C and D keep a reserve again until their storage is released.
        for job in [c, d] {
            assert!(w.state.correctable(job));
            assert_eq!(w.state.corrected.get(&job), Some(&1));
        }
        // At the end of the retention, the leader releases both and the rest goes back.
        w.time += 20_000;
        let due = w.state.releasable_storage(w.time);
        assert_eq!(due, vec![c, d, a]);
        let held: u128 = [c, d, a].iter().map(|j| w.job(*j).escrow.held()).sum();
        let events = w.lead(engine::LeaderCommand::ReleaseStorage { jobs: due });
        let refunded: u128 = events
            .iter()
            .filter_map(|e| match e {
                Event::EscrowRefunded { amount, .. } => Some(*amount),
                _ => None,
            })
            .sum();
        assert_eq!(refunded, held);
        for job in [c, d] {
            assert_eq!(w.job(job).escrow.held(), 0);
            assert!(!w.state.correctable(job));
        }
        supply(&w);
    }
}

/// Rules 19: colluders confirming each other — newcomer 6 answered 9 and trusted 1 confirmed
/// it, so job C completed with a wrong result agreed on by two. 6 is caught first (outvoted by
/// trusted runs on another job): C's result still rests on 1, not yet caught, and stands. When
/// 1 is caught too, the result rests on no honest word: C is reopened and corrected, neither
/// paid again. Under rules 18 it stands.
#[test]
fn a_result_agreed_on_by_providers_all_caught_is_corrected() {
    for rules in [19, 18] {
        let (mut w, seed) = storing_world(rules);
        let adaptive = |tasks| engine::JobSpec {
            redundancy: ADAPTIVE,
            ..job_spec(tasks)
        };
        let c = submit_stored(&mut w, adaptive(1));
        run(&mut w, 6, tid(c, 0), 9);
        run(&mut w, 1, tid(c, 0), 9);
        let events = reveal(&mut w, &seed);
        assert_eq!(
            accepted(&events),
            Some(vec![acct(6), acct(1)]),
            "rules {rules}"
        );
        assert_eq!(w.job(c).status, JobStatus::Completed);
        // 6 is caught lying on job A.
        let a = submit_stored(&mut w, adaptive(1));
        run(&mut w, 6, tid(a, 0), 66);
        // (6 is trusted by now, after one verified result: its lone result is audited.)
        reveal(&mut w, &seed);
        let events = settle_with(&mut w, tid(a, 0), &[2, 3, 4, 5]);
        assert!(slashed(&events).contains(&acct(6)), "{events:?}");
        assert!(reopened(&events).is_empty(), "C still rests on 1");
        // 1 is caught lying on job B.
        let b = submit_stored(&mut w, adaptive(1));
        w.state.audits.passed.insert(acct(1), 0);
        run(&mut w, 1, tid(b, 0), 9);
        reveal(&mut w, &seed);
        let events = settle_with(&mut w, tid(b, 0), &[2, 3, 4, 5]);
        assert_eq!(slashed(&events), vec![acct(1)]);
        if rules < 19 {
            assert!(reopened(&events).is_empty());
            assert_eq!(w.job(c).status, JobStatus::Completed);
            continue;
        }
        assert_eq!(reopened(&events), vec![tid(c, 0)]);
        assert!(events.contains(&Event::JobReopened { job: c, results: 1 }));
        let events = settle_with(&mut w, tid(c, 0), &[2, 3, 4, 5]);
        assert_eq!(
            w.task(tid(c, 0)).result.as_ref().unwrap().output_hash,
            hash(6)
        );
        assert!(events.contains(&Event::JobCompleted { job: c }));
        let mut caught = slashed(&events);
        caught.sort();
        assert_eq!(caught, vec![acct(1), acct(6)]);
        assert!(
            paid(&events)
                .iter()
                .all(|(p, _)| *p != acct(1) && *p != acct(6)),
            "{events:?}"
        );
        assert_eq!(w.state.corrected.get(&c), Some(&1));
        supply(&w);
    }
}

/// Rules 17: a newcomer's result that a trusted provider's disputes is settled by an anchor's
/// run, as a dispute between trusted providers is under rules 14 — the state cannot tell an
/// honest newcomer outvoted by trusted liars from a fresh account lying. Under rules 16 the
/// trusted side must lead by twice the quorum, from more trusted runs.
/// A network under `rules` with trusted providers 2, 3 and 4 and validator 1's provider (an
/// anchor), where newcomer 5 answered 66 and trusted 2, asked to confirm, 6: the beacon's seed,
/// the task and the events of 2's report.
fn newcomer_dispute(rules: u32) -> (World, [u8; 32], TaskId, Vec<Event>) {
    let mut w = world(params(1, 0)).under_rules(rules);
    let seed = proven(&mut w, &[2, 3, 4]);
    make_validator(&mut w, 1);
    let job = submit(&mut w, 1, ADAPTIVE);
    let task = tid(job, 0);
    fetch_run(&mut w, 5, task, 66);
    let events = fetch_run(&mut w, 2, task, 6);
    (w, seed, task, events)
}

#[test]
fn an_anchor_settles_a_newcomers_dispute_with_a_trusted_provider() {
    for rules in [17, 16] {
        let (mut w, seed, task, events) = newcomer_dispute(rules);
        assert_eq!(accepted(&events), None);
        assert!(
            w.state.beacon_due(&seed).is_none(),
            "nothing awaits the beacon"
        );
        if rules < 17 {
            assert!(!w.state.for_anchors(task));
            assert!(
                !w.state.pick(acct(3), 4).is_empty(),
                "trusted runs are asked for"
            );
            continue;
        }
        assert!(w.state.for_anchors(task));
        assert_eq!(w.task(task).queued, 1);
        assert!(
            w.state.pick(acct(3), 4).is_empty(),
            "trusted 3 may not take it"
        );
        assert!(w.state.pick(acct(6), 4).is_empty(), "nor a newcomer");
        let events = fetch_run(&mut w, 1, task, 6);
        assert_eq!(accepted(&events), Some(vec![acct(2), acct(1)]));
        assert_eq!(slashed(&events), vec![acct(5)]);
        supply(&w);
    }
}

/// Rules 18: a dispute only an anchor may settle waits among `State::disputes`, which only
/// anchors' fetches look at, not among the re-executions every trusted provider's fetch walks
/// (under 17 it waited there, refused to all but anchors). When the anchors go, it is settled
/// again and goes to trusted providers, as under 17.
#[test]
fn a_dispute_for_the_anchors_waits_apart_until_the_anchors_go() {
    for rules in [18, 17] {
        let (mut w, _, task, _) = newcomer_dispute(rules);
        assert!(w.state.for_anchors(task), "rules {rules}");
        assert!(w.state.offered(&task), "rules {rules}");
        assert_eq!(
            (
                w.state.disputes.contains(&task),
                w.state.recheck.contains(&task)
            ),
            (rules >= 18, rules < 18),
            "rules {rules}"
        );
        assert!(w.state.pick(acct(3), 4).is_empty(), "rules {rules}");
        assert_eq!(w.state.pick(acct(1), 4), vec![task], "rules {rules}");
        // The only anchor leaves: the dispute goes to the trusted providers.
        w.act(acct(1), engine::Action::LeaveProvider);
        assert!(!w.state.for_anchors(task), "rules {rules}");
        assert!(w.state.disputes.is_empty(), "rules {rules}");
        assert!(w.state.recheck.contains(&task), "rules {rules}");
        assert_eq!(w.state.pick(acct(3), 4), vec![task], "rules {rules}");
        supply(&w);
    }
}

/// Rules 18: a dispute waiting apart for an anchor is settled again when one of its providers is
/// slashed: newcomer 5's dissent, discredited by a slash on another job, no longer needs an
/// anchor, and the trusted providers may settle it by the plain margin, as under 17 (where
/// whether it is the anchors' is asked at every fetch).
#[test]
fn a_dispute_whose_dissent_is_slashed_elsewhere_leaves_the_anchors() {
    for rules in [18, 17] {
        let (mut w, seed, task, _) = newcomer_dispute(rules);
        assert!(w.state.for_anchors(task), "rules {rules}");
        assert!(w.state.pick(acct(3), 4).is_empty(), "rules {rules}");
        // 5 loses a fixed vote on another job.
        let other = tid(submit(&mut w, 1, TWO_OF_TWO_OF_THREE), 0);
        fetch_run(&mut w, 5, other, 77);
        fetch_run(&mut w, 2, other, 7);
        let events = fetch_run(&mut w, 3, other, 7);
        assert_eq!(slashed(&events), vec![acct(5)], "rules {rules}");
        assert!(!w.state.for_anchors(task), "rules {rules}");
        assert!(!w.state.disputes.contains(&task), "rules {rules}");
        assert_eq!(w.state.pick(acct(4), 4), vec![task], "rules {rules}");
        fetch_run(&mut w, 4, task, 6);
        // Two trusted results against a discredited one: the plain margin, at the beacon.
        let reveal = w.state.beacon_due(&seed).expect("the beacon decides");
        let events = w.lead(reveal);
        assert_eq!(
            accepted(&events),
            Some(vec![acct(2), acct(4)]),
            "rules {rules}"
        );
        assert_eq!(slashed(&events), vec![acct(5)], "rules {rules}");
        supply(&w);
    }
}
