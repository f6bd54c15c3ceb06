//! Governance (rules 25): proposals, stake-weighted votes (delegators through their provider
//! unless they vote themselves), quorum, threshold and veto, changes that take effect at the
//! tally — mid-job included — and treasury spends. Every test checks the supply.

use crate::support::*;
use engine::{
    AccountId, Action, Event, Genesis, GovParams, LeaderCommand, ParamChange, ProposalStatus,
    ProviderSpec, Rejection, VoteOption,
};

const TREASURY: AccountId = AccountId([0xEE; 32]);
const PROVIDER: AccountId = AccountId([1; 32]);
const OWNER: AccountId = AccountId([9; 32]);
/// The voting period: the unbonding delay, at least a second.
const PERIOD: u64 = 1_000;

/// [`ledger_genesis`], the treasury holding 1,000 (votes last a second: the unbonding delay,
/// at least a second).
fn genesis() -> Genesis {
    let mut g = ledger_genesis(TREASURY);
    g.allocations.insert(TREASURY, 1_000);
    g
}

/// Provider 1 with 100 of its own bonded; accounts 2 and 3 stake 100 and 200 (voting power
/// without being providers); account 5 backs the provider with 300.
fn world() -> World {
    let mut w = World::with_genesis(&genesis());
    w.money_events = true;
    w.act(PROVIDER, Action::Stake { amount: 100 });
    w.register(
        PROVIDER,
        ProviderSpec {
            price_per_fuel: 3,
            ..provider_spec()
        },
    );
    w.act(acct(2), Action::Stake { amount: 100 });
    w.act(acct(3), Action::Stake { amount: 200 });
    w.act(
        acct(5),
        Action::Delegate {
            provider: PROVIDER,
            amount: 300,
        },
    );
    w
}

/// Moves past the voting period and applies one input (a transfer) so the tally runs; its
/// events.
fn end_voting(w: &mut World) -> Vec<Event> {
    w.time += PERIOD;
    w.act(
        acct(8),
        Action::Transfer {
            to: acct(7),
            amount: 1,
        },
    )
}

#[track_caller]
fn supply(w: &World) {
    assert_eq!(w.state.check_supply().unwrap(), 900_001_000);
}

#[test]
fn a_passed_proposal_lowers_the_fee_for_payments_after_it_even_mid_job() {
    let mut w = world();
    // Voting power: 100 + 300 delegated (provider 1), 100 (account 2), 200 (account 3): 700.
    let id = w.propose(acct(2), vec![ParamChange::FeeBps { bps: 200 }]);
    assert_eq!(w.state.balance(&acct(2)), 100_000_000 - 100 - 100);
    supply(&w);
    let mut spec = job_spec(2);
    spec.deadline = w.time + 1_000_000;
    let job = w.submit(OWNER, spec);
    w.assign(PROVIDER, &[tid(job, 0), tid(job, 1)]);
    let events = w.report(PROVIDER, vec![success(tid(job, 0), 1, 1_000)]);
    assert!(matches!(events[1], Event::TaskPaid { fee: 300, .. }));
    // The provider (400 with its delegator's) says yes: 400 of 700 voted, all yes.
    w.vote(PROVIDER, id, VoteOption::Yes);
    w.vote(acct(3), id, VoteOption::Abstain);
    let events = end_voting(&mut w);
    assert_eq!(
        events[1..],
        [
            Event::DepositReturned {
                proposal: id,
                proposer: acct(2),
                amount: 100
            },
            Event::ProposalDecided {
                proposal: id,
                status: ProposalStatus::Passed
            },
        ]
    );
    let p = &w.state.governance.proposals[&id];
    let tally = p.tally.clone().unwrap();
    assert_eq!((tally.yes, tally.abstain, tally.total), (400, 200, 700));
    assert_eq!(w.state.ledger.fee_bps, 200);
    // The same job's next payment pays the new fee: 3,000 × 2% = 60.
    let events = w.report(PROVIDER, vec![success(tid(job, 1), 1, 1_000)]);
    assert!(
        matches!(events[1], Event::TaskPaid { fee: 60, .. }),
        "{events:?}"
    );
    // A decided proposal takes no more votes.
    assert!(matches!(
        w.act_rejected(
            acct(3),
            Action::Vote {
                proposal: id,
                option: VoteOption::No
            }
        ),
        Rejection::InvalidProposal(_)
    ));
    supply(&w);
}

#[test]
fn a_proposal_with_a_stated_delay_takes_effect_then_and_not_at_the_vote() {
    let mut w = world();
    let events = w.act(
        acct(2),
        Action::ProposeWithDelay {
            title: "2% from an hour after the vote".into(),
            changes: vec![ParamChange::FeeBps { bps: 200 }],
            deposit: 100,
            delay_ms: 3_600_000,
        },
    );
    let (id, voting_end) = match events[0] {
        Event::Proposed {
            proposal,
            voting_end,
            ..
        } => (proposal, voting_end),
        ref other => panic!("{other:?}"),
    };
    let at = voting_end + 3_600_000;
    assert_eq!(w.state.gov_schedule.effective_at[&id], at);
    w.vote(PROVIDER, id, VoteOption::Yes);
    let events = end_voting(&mut w);
    // Passed (deposit back), but the fee stays until the stated time.
    assert!(events.contains(&Event::ProposalDecided {
        proposal: id,
        status: ProposalStatus::Scheduled { at }
    }));
    assert!(events.contains(&Event::DepositReturned {
        proposal: id,
        proposer: acct(2),
        amount: 100
    }));
    assert_eq!(w.state.ledger.fee_bps, 1_000);
    let mut spec = job_spec(2);
    spec.deadline = w.time + 10_000_000;
    let job = w.submit(OWNER, spec);
    w.assign(PROVIDER, &[tid(job, 0), tid(job, 1)]);
    let events = w.report(PROVIDER, vec![success(tid(job, 0), 1, 1_000)]);
    assert!(matches!(events[1], Event::TaskPaid { fee: 300, .. }));
    assert!(!w.state.proposals_due(at - 1));
    assert!(w.state.proposals_due(at));
    assert!(matches!(
        w.lead_rejected(LeaderCommand::DecideProposals),
        Rejection::InvalidProposal(_)
    ));
    // At the stated time, the first entry makes the change (the leader's, when none other
    // comes), and payments after it pay the new fee.
    w.time = at;
    let events = w.lead(LeaderCommand::DecideProposals);
    assert_eq!(
        events,
        [Event::ProposalExecuted {
            proposal: id,
            status: ProposalStatus::Passed
        }]
    );
    assert_eq!(w.state.ledger.fee_bps, 200);
    assert!(w.state.gov_schedule.effective_at.is_empty());
    let events = w.report(PROVIDER, vec![success(tid(job, 1), 1, 1_000)]);
    assert!(matches!(events[1], Event::TaskPaid { fee: 60, .. }));
    supply(&w);

    // A rejected one never takes effect; a delay over a year, or under rules 25, is refused.
    let id = match w.act(
        acct(2),
        Action::ProposeWithDelay {
            title: "t".into(),
            changes: vec![ParamChange::FeeBps { bps: 100 }],
            deposit: 100,
            delay_ms: 10,
        },
    )[0]
    {
        Event::Proposed { proposal, .. } => proposal,
        ref other => panic!("{other:?}"),
    };
    end_voting(&mut w);
    assert!(matches!(
        w.state.governance.proposals[&id].status,
        ProposalStatus::Rejected(_)
    ));
    assert!(w.state.gov_schedule.effective_at.is_empty());
    let late = Action::ProposeWithDelay {
        title: "t".into(),
        changes: vec![ParamChange::FeeBps { bps: 100 }],
        deposit: 100,
        delay_ms: engine::MAX_DELAY_MS + 1,
    };
    assert!(matches!(
        w.act_rejected(acct(2), late.clone()),
        Rejection::InvalidProposal(_)
    ));
    let mut old = world().under_rules(25);
    assert!(matches!(
        old.act_rejected(acct(2), late),
        Rejection::NeedsRules { needs: 26, .. }
    ));
    supply(&w);
}

#[test]
fn a_delegator_who_votes_takes_its_stake_out_of_its_providers_vote() {
    let mut w = world();
    let id = w.propose(acct(2), vec![ParamChange::MinStake { amount: 50 }]);
    w.vote(PROVIDER, id, VoteOption::Yes);
    w.vote(acct(5), id, VoteOption::No);
    w.vote(acct(2), id, VoteOption::No);
    let tally = w.state.proposal_tally(id).unwrap();
    // The provider keeps its own 100; its delegator's 300 count as the delegator's no.
    assert_eq!((tally.yes, tally.no, tally.total), (100, 400, 700));
    let events = end_voting(&mut w);
    assert!(events.contains(&Event::ProposalDecided {
        proposal: id,
        status: ProposalStatus::Rejected("below the threshold".into())
    }));
    assert_eq!(w.state.ledger.min_stake, 100);
    // A vote may be changed while voting is open.
    let id = w.propose(acct(2), vec![ParamChange::MinStake { amount: 50 }]);
    w.vote(acct(5), id, VoteOption::No);
    w.vote(acct(5), id, VoteOption::Yes);
    w.vote(acct(3), id, VoteOption::Yes);
    end_voting(&mut w);
    assert_eq!(w.state.ledger.min_stake, 50);
    supply(&w);
}

#[test]
fn the_leader_makes_an_entry_to_decide_only_when_a_vote_has_ended() {
    let mut w = world();
    assert!(matches!(
        w.lead_rejected(LeaderCommand::DecideProposals),
        Rejection::InvalidProposal(_)
    ));
    let id = w.propose(acct(2), vec![ParamChange::FeeBps { bps: 300 }]);
    w.vote(PROVIDER, id, VoteOption::Yes);
    w.time += PERIOD - 1;
    assert!(!w.state.proposals_due(w.time));
    assert!(matches!(
        w.lead_rejected(LeaderCommand::DecideProposals),
        Rejection::InvalidProposal(_)
    ));
    w.time += 1;
    assert!(w.state.proposals_due(w.time));
    let events = w.lead(LeaderCommand::DecideProposals);
    assert_eq!(
        events.last(),
        Some(&Event::ProposalDecided {
            proposal: id,
            status: ProposalStatus::Passed
        })
    );
    assert_eq!(w.state.ledger.fee_bps, 300);
    assert!(!w.state.proposals_due(w.time));
    supply(&w);
}

#[test]
fn without_quorum_a_proposal_fails_and_vetoes_burn_its_deposit() {
    let mut w = world();
    let id = w.propose(acct(2), vec![ParamChange::FeeBps { bps: 0 }]);
    // 200 of 700 is below a third.
    w.vote(acct(3), id, VoteOption::Yes);
    let events = end_voting(&mut w);
    assert!(events.contains(&Event::ProposalDecided {
        proposal: id,
        status: ProposalStatus::Rejected("no quorum".into())
    }));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::DepositReturned { .. }))
    );
    assert_eq!(w.state.ledger.fee_bps, 1_000);
    supply(&w);

    let id = w.propose(acct(2), vec![ParamChange::FeeBps { bps: 0 }]);
    w.vote(acct(3), id, VoteOption::Yes);
    w.vote(PROVIDER, id, VoteOption::NoWithVeto);
    let events = end_voting(&mut w);
    assert!(events.contains(&Event::DepositBurned {
        proposal: id,
        amount: 100
    }));
    assert_eq!(
        w.state.governance.proposals[&id].status,
        ProposalStatus::Vetoed
    );
    assert_eq!(w.state.supply.burned, 100);
    assert_eq!(w.state.check_supply().unwrap(), 900_001_000 - 100);
}

#[test]
fn treasury_spends_and_governance_parameters_change_by_vote() {
    let mut w = world();
    let params = GovParams {
        voting_period_ms: 5_000,
        ..w.state.gov_params()
    };
    let id = w.propose(
        acct(2),
        vec![
            ParamChange::TreasurySpend {
                to: acct(7),
                amount: 600,
            },
            ParamChange::Governance(params.clone()),
        ],
    );
    w.vote(PROVIDER, id, VoteOption::Yes);
    let events = end_voting(&mut w);
    assert!(events.contains(&Event::TreasurySpent {
        to: acct(7),
        amount: 600
    }));
    assert_eq!(w.state.balance(&TREASURY), 400);
    assert_eq!(w.state.gov_params(), params);
    // More than the treasury holds: passed, but nothing changes (all or nothing).
    let id = w.propose(
        acct(2),
        vec![
            ParamChange::FeeBps { bps: 1 },
            ParamChange::TreasurySpend {
                to: acct(7),
                amount: 1_000,
            },
        ],
    );
    w.vote(PROVIDER, id, VoteOption::Yes);
    w.time += 4_000;
    let events = end_voting(&mut w);
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::ProposalDecided {
                status: ProposalStatus::Failed(_),
                ..
            }
        )),
        "{events:?}"
    );
    assert_eq!(w.state.ledger.fee_bps, 1_000);
    assert_eq!(w.state.balance(&TREASURY), 400);
    supply(&w);
}

#[test]
fn bad_proposals_and_votes_are_refused_and_change_nothing() {
    let mut w = world();
    let good = vec![ParamChange::FeeBps { bps: 500 }];
    let propose_with = |title: &str, changes: Vec<ParamChange>, deposit| Action::Propose {
        title: title.into(),
        changes,
        deposit,
    };
    for (action, what) in [
        (propose_with("", good.clone(), 100), "empty title"),
        (propose_with("x", vec![], 100), "no change"),
        (propose_with("x", good.clone(), 99), "deposit too small"),
        (
            propose_with("x", vec![ParamChange::FeeBps { bps: 10_001 }], 100),
            "fee over 100%",
        ),
        (
            propose_with("x", vec![ParamChange::FaucetAmount { amount: 5 }], 100),
            "no faucet",
        ),
        (
            propose_with(
                "x",
                vec![ParamChange::Governance(GovParams {
                    quorum_bps: 0,
                    ..w.state.gov_params()
                })],
                100,
            ),
            "no quorum",
        ),
        (
            propose_with("x", vec![ParamChange::FeeBps { bps: 1 }; 17], 100),
            "too many changes",
        ),
    ] {
        let r = w.act_rejected(acct(2), action);
        assert!(matches!(r, Rejection::InvalidProposal(_)), "{what}: {r:?}");
    }
    assert!(matches!(
        w.act_rejected(acct(10), propose_with("x", good.clone(), 100)),
        Rejection::InsufficientFunds { .. }
    ));
    assert!(matches!(
        w.act_rejected(
            acct(2),
            Action::Vote {
                proposal: 9,
                option: VoteOption::Yes
            }
        ),
        Rejection::UnknownProposal(9)
    ));
    let id = w.propose(acct(2), good);
    // No stake, no vote.
    assert!(matches!(
        w.act_rejected(
            acct(8),
            Action::Vote {
                proposal: id,
                option: VoteOption::Yes
            }
        ),
        Rejection::InvalidProposal(_)
    ));
    supply(&w);
    let mut old = world().under_rules(24);
    assert!(matches!(
        old.act_rejected(
            acct(2),
            propose_with("x", vec![ParamChange::FeeBps { bps: 1 }], 100)
        ),
        Rejection::NeedsRules { needs: 25, .. }
    ));
}

#[test]
fn a_passed_proposal_changes_the_validator_set() {
    let validator = |n: u8| engine::Validator {
        account: acct(n),
        power: 1,
        address: format!("http://10.0.0.{n}:7700"),
        stake: 0,
    };
    let mut g = genesis();
    g.validators = engine::Validators::new(engine::ValidatorSet {
        validators: vec![validator(20), validator(21), validator(22)],
    });
    let mut w = World::with_genesis(&g);
    w.money_events = true;
    w.act(acct(2), Action::Stake { amount: 100 });
    w.act(acct(6), Action::Stake { amount: 100 });
    let add = engine::ValidatorChange::Add(validator(6));
    let id = w.propose(acct(2), vec![ParamChange::Validator(add.clone())]);
    w.vote(acct(2), id, VoteOption::Yes);
    let events = end_voting(&mut w);
    assert!(events.contains(&Event::ValidatorChangeQueued {
        change: add.clone()
    }));
    assert!(events.contains(&Event::ProposalDecided {
        proposal: id,
        status: ProposalStatus::Passed
    }));
    // Queued: the leader applies it once the block before is sealed (one change per block).
    assert!(w.state.validators.set.get(&acct(6)).is_none());
    assert!(w.state.proposals_due(w.time) || w.state.validator_change_queued());
    let events = w.lead(LeaderCommand::ChangeValidators);
    assert_eq!(
        events,
        [Event::ValidatorSetChanged {
            change: add,
            validators: 4
        }]
    );
    assert!(w.state.validators.set.get(&acct(6)).is_some());
    assert!(matches!(
        w.lead_rejected(LeaderCommand::ChangeValidators),
        Rejection::InvalidValidatorChange(_)
    ));

    // Removing one by vote of the stakers, as the set's majority could.
    let remove = engine::ValidatorChange::Remove(acct(20));
    let id = w.propose(acct(2), vec![ParamChange::Validator(remove.clone())]);
    w.vote(acct(2), id, VoteOption::Yes);
    end_voting(&mut w);
    let events = w.lead(LeaderCommand::ChangeValidators);
    assert_eq!(
        events,
        [Event::ValidatorSetChanged {
            change: remove,
            validators: 3
        }]
    );
    assert!(w.state.validators.set.get(&acct(20)).is_none());

    // The set's own rules hold: nobody twice, no stake claimed, a majority left; and an added
    // validator without the minimum stake when its turn comes is dropped.
    let bad: Vec<(engine::ValidatorChange, &str)> = vec![
        (engine::ValidatorChange::Add(validator(6)), "already"),
        (
            engine::ValidatorChange::Add(engine::Validator {
                stake: 5,
                ..validator(7)
            }),
            "stake",
        ),
        (engine::ValidatorChange::Remove(acct(20)), "not a validator"),
    ];
    for (change, word) in bad {
        let r = w.act_rejected(
            acct(2),
            Action::Propose {
                title: "bad".into(),
                changes: vec![ParamChange::Validator(change)],
                deposit: 100,
            },
        );
        assert!(
            matches!(&r, Rejection::InvalidProposal(why) if why.contains(word)),
            "{r:?}"
        );
    }
    let id = w.propose(
        acct(2),
        vec![ParamChange::Validator(engine::ValidatorChange::Add(
            validator(7),
        ))],
    );
    w.vote(acct(2), id, VoteOption::Yes);
    end_voting(&mut w);
    let events = w.lead(LeaderCommand::ChangeValidators);
    assert!(
        matches!(&events[..], [Event::ValidatorChangeDropped { why, .. }] if why.contains("minimum stake")),
        "{events:?}"
    );
    assert!(w.state.validators.set.get(&acct(7)).is_none());
    assert!(!w.state.validator_change_queued());

    // A network of one coordinator has no set to change, and rules 25 none by governance.
    let mut single = world();
    let r = single.act_rejected(
        acct(2),
        Action::Propose {
            title: "add".into(),
            changes: vec![ParamChange::Validator(engine::ValidatorChange::Add(
                validator(6),
            ))],
            deposit: 100,
        },
    );
    assert!(matches!(&r, Rejection::InvalidProposal(why) if why.contains("no validator set")));
    let mut old = World::with_genesis(&g).under_rules(25);
    old.act(acct(2), Action::Stake { amount: 100 });
    let r = old.act_rejected(
        acct(2),
        Action::Propose {
            title: "add".into(),
            changes: vec![ParamChange::Validator(engine::ValidatorChange::Add(
                validator(6),
            ))],
            deposit: 100,
        },
    );
    assert!(matches!(&r, Rejection::InvalidProposal(why) if why.contains("rules 26")));
}
