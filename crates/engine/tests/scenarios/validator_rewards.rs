//! Validators earn and can be backed (rules 27): the validators' share of the fees paid out by
//! voting power and split with their delegators, the payout before a change of the set, an
//! equivocation slash that takes the same fraction of the validator's pool, backing that lets an
//! account join the set, and the staking rules changed by governance. Every test checks that the
//! supply is conserved.

use crate::support::*;
use engine::{
    AccountId, Action, BlockHeader, Equivocation, Event, Genesis, Hash, Input, LeaderCommand,
    ParamChange, ProviderSpec, Rejection, SignedHeader, StakingParams, Validator, ValidatorChange,
    VoteOption,
};

const TREASURY: AccountId = AccountId([0xEE; 32]);
const PROVIDER: AccountId = AccountId([1; 32]);
const DELEGATOR: AccountId = AccountId([5; 32]);
const OWNER: AccountId = AccountId([9; 32]);
/// Validators 20 (power 2), 21 and 22 (power 1 each); none is a provider.
const V20: AccountId = AccountId([20; 32]);
const V21: AccountId = AccountId([21; 32]);
const V22: AccountId = AccountId([22; 32]);

fn validator(n: u8, power: u64) -> Validator {
    Validator {
        account: acct(n),
        power,
        address: format!("http://10.0.0.{n}:7700"),
        stake: 0,
    }
}

/// A 10% fee, half of it to the validators every 10 s.
fn genesis() -> Genesis {
    let mut g = ledger_genesis(TREASURY);
    for n in 20..=22 {
        g.allocations.insert(acct(n), 1_000);
    }
    g.validators = engine::Validators {
        equivocation_bps: 5_000,
        ..engine::Validators::new(engine::ValidatorSet {
            validators: vec![validator(20, 2), validator(21, 1), validator(22, 1)],
        })
    };
    g.staking = Some(StakingParams {
        validator_payout_every_ms: 10_000,
        ..StakingParams::for_min_stake(100)
    });
    g
}

/// Provider 1 (100 staked, 3 per fuel); validator 20 bonds 100 and delegator 5 backs it with
/// 300.
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
    w.act(V20, Action::Stake { amount: 100 });
    w.act(
        DELEGATOR,
        Action::Delegate {
            provider: V20,
            amount: 300,
        },
    );
    w
}

#[track_caller]
fn supply(w: &World) {
    assert_eq!(w.state.check_supply().unwrap(), 900_003_000);
}

/// One task of 1,000 fuel at 3 on provider 1: 3,000 paid, a fee of 300.
fn earn(w: &mut World) {
    let mut spec = job_spec(1);
    spec.deadline = w.time + 1_000_000;
    let job = w.submit(OWNER, spec);
    // A validator set assigns work only on a provider's own signed fetch.
    w.fetch(PROVIDER, 1);
    assert_eq!(w.running(PROVIDER), [tid(job, 0)]);
    let events = w.report(PROVIDER, vec![success(tid(job, 0), 1, 1_000)]);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::TaskPaid { fee: 300, .. }))
    );
}

fn paid(events: &[Event]) -> Vec<Event> {
    events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::ValidatorPaid { .. } | Event::DelegatorsPaid { .. }
            )
        })
        .cloned()
        .collect()
}

#[test]
fn validators_are_paid_half_the_fees_by_power_and_share_it_with_their_delegators() {
    let mut w = world();
    assert_eq!(w.state.backing(&V20), 400);
    let treasury = w.state.balance(&TREASURY);
    earn(&mut w);
    assert_eq!(w.state.staking.fees_collected, 300);
    assert_eq!(w.state.balance(&TREASURY), treasury + 300);
    // Not due before the period: nothing to settle.
    assert!(!w.state.validator_payout_due(w.time));
    assert!(matches!(
        w.lead_rejected(LeaderCommand::SettleReservations),
        Rejection::InvalidReservation(_)
    ));
    // Due: the leader's settlement entry pays out. Half of 300 is 150: 2/4 to validator 20,
    // 1/4 (37.5, rounded down) to each other. Of validator 20's 75, its 10% commission is 7
    // (7.5 rounded down) and its own 100 of its 400 backing keep a quarter of the other 68:
    // the pool gets 51, it keeps 7 + 17 = 24.
    w.time += 10_000;
    assert!(w.state.validator_payout_due(w.time));
    let events = w.lead(LeaderCommand::SettleReservations);
    assert_eq!(
        paid(&events),
        [
            Event::ValidatorPaid {
                validator: V20,
                amount: 24,
                share: 75
            },
            Event::DelegatorsPaid {
                provider: V20,
                amount: 51,
                commission: 7
            },
            Event::ValidatorPaid {
                validator: V21,
                amount: 37,
                share: 37
            },
            Event::ValidatorPaid {
                validator: V22,
                amount: 37,
                share: 37
            },
        ]
    );
    // The treasury keeps its half and the rounding: 300 − 149.
    assert_eq!(w.state.balance(&TREASURY), treasury + 151);
    assert_eq!(w.state.staking.fees_collected, 0);
    assert_eq!(w.state.staking.validator_earned[&V20], 75);
    assert_eq!(w.state.balance(&V21), 1_000 + 37);
    assert_eq!(w.state.pending_rewards(&DELEGATOR, &V20), 51);
    let before = w.state.balance(&DELEGATOR);
    let events = w.act(DELEGATOR, Action::WithdrawRewards { provider: V20 });
    assert_eq!(
        events,
        [Event::RewardsWithdrawn {
            delegator: DELEGATOR,
            provider: V20,
            amount: 51
        }]
    );
    assert_eq!(w.state.balance(&DELEGATOR), before + 51);
    // Nothing more is due until fees come again.
    w.time += 60_000;
    assert!(!w.state.validator_payout_due(w.time));
    supply(&w);
}

#[test]
fn a_validator_sets_its_commission_and_a_change_of_the_set_pays_the_old_set_first() {
    let mut w = world();
    w.act(
        V20,
        Action::SetCommission {
            commission_bps: 1_500,
        },
    );
    earn(&mut w);
    // Validators 20 and 21 vote validator 22 out before the payout is due: the fees so far are
    // paid to the set that served while they came, 22 included.
    let remove = ValidatorChange::Remove(V22);
    w.act(V20, Action::ValidatorVote(remove.clone()));
    let events = w.act(V21, Action::ValidatorVote(remove.clone()));
    // Validator 20's 75: commission 15% = 11 (11.25 rounded down); a quarter of the other 64
    // is its own.
    assert_eq!(
        paid(&events),
        [
            Event::ValidatorPaid {
                validator: V20,
                amount: 27,
                share: 75
            },
            Event::DelegatorsPaid {
                provider: V20,
                amount: 48,
                commission: 11
            },
            Event::ValidatorPaid {
                validator: V21,
                amount: 37,
                share: 37
            },
            Event::ValidatorPaid {
                validator: V22,
                amount: 37,
                share: 37
            },
        ]
    );
    assert!(events.contains(&Event::ValidatorSetChanged {
        change: remove,
        validators: 2
    }));
    assert_eq!(w.state.staking.last_payout, w.time);
    // A validator that left is no longer backable; the set's members are.
    let stranger = acct(7);
    assert_eq!(
        w.act_rejected(
            DELEGATOR,
            Action::Delegate {
                provider: stranger,
                amount: 10
            }
        ),
        Rejection::NotBackable(stranger)
    );
    assert_eq!(
        w.act_rejected(
            DELEGATOR,
            Action::Delegate {
                provider: V22,
                amount: 10
            }
        ),
        Rejection::NotBackable(V22)
    );
    w.act(
        DELEGATOR,
        Action::Delegate {
            provider: V21,
            amount: 10,
        },
    );
    supply(&w);
}

#[test]
fn an_equivocation_slashes_the_validators_pool_by_the_same_fraction() {
    let mut w = world();
    w.act(
        DELEGATOR,
        Action::Undelegate {
            provider: V20,
            amount: 100,
        },
    );
    let header = |state_hash: u8| BlockHeader {
        height: 3,
        prev_hash: Hash([1; 32]),
        time: 5,
        first_seq: 1,
        last_seq: 1,
        commands_root: Hash([2; 32]),
        state_hash: Hash([state_hash; 32]),
        validator: V20,
    };
    let signed = |h| SignedHeader {
        header: h,
        signature: engine::Sig([0; 64]),
    };
    let events = w.accept(Input::Evidence(Box::new(Equivocation {
        validator: V20,
        first: signed(header(3)),
        second: signed(header(4)),
    })));
    // Half of its own 100, of the pool's 200 bonded and of the 100 unbonding.
    assert_eq!(
        events[..2],
        [
            Event::ValidatorSlashed {
                validator: V20,
                height: 3,
                amount: 200,
                to_treasury: 50,
                burned: 150
            },
            Event::DelegationSlashed {
                provider: V20,
                amount: 150
            },
        ]
    );
    assert_eq!(w.state.bonded(&V20), 50);
    assert_eq!(w.state.delegated_to(&V20), 100);
    assert_eq!(w.state.delegation_unbonding(&DELEGATOR)[0].1.amount, 50);
    assert_eq!(w.state.check_supply().unwrap(), 900_003_000 - 150);
}

#[test]
fn backing_counts_toward_the_stake_a_validator_needs_to_join() {
    let mut w = world();
    // Account 7 bonds 40 of the minimum 100; the set cannot add it yet.
    w.act(acct(7), Action::Stake { amount: 40 });
    let add = ValidatorChange::Add(validator(7, 1));
    w.act(V20, Action::ValidatorVote(add.clone()));
    // Nobody can back it before it is a validator or a provider.
    assert_eq!(
        w.act_rejected(
            DELEGATOR,
            Action::Delegate {
                provider: acct(7),
                amount: 60
            }
        ),
        Rejection::NotBackable(acct(7))
    );
    assert!(matches!(
        w.act_rejected(V21, Action::ValidatorVote(add.clone())),
        Rejection::InsufficientStake {
            bonded: 40,
            need: 100
        }
    ));
    // As a provider it can be backed; with 60 delegated it joins.
    w.act(acct(7), Action::Stake { amount: 60 });
    w.register(acct(7), provider_spec());
    w.act(
        DELEGATOR,
        Action::Delegate {
            provider: acct(7),
            amount: 60,
        },
    );
    w.act(acct(7), Action::Unstake { amount: 60 });
    assert_eq!(w.state.backing(&acct(7)), 100);
    let events = w.act(V21, Action::ValidatorVote(add.clone()));
    assert!(events.contains(&Event::ValidatorSetChanged {
        change: add,
        validators: 4
    }));
    // Under rules 26 only its own bonded stake counted.
    let mut old = world().under_rules(26);
    old.act(acct(7), Action::Stake { amount: 40 });
    let add = ValidatorChange::Add(validator(7, 1));
    old.act(V20, Action::ValidatorVote(add.clone()));
    assert!(matches!(
        old.act_rejected(V21, Action::ValidatorVote(add)),
        Rejection::InsufficientStake { bonded: 40, .. }
    ));
}

#[test]
fn governance_changes_the_staking_rules_and_the_schedulers_tunables() {
    let mut w = world();
    w.act(
        V20,
        Action::SetCommission {
            commission_bps: 1_500,
        },
    );
    let rules = StakingParams {
        min_delegation: 50,
        max_commission_bps: 1_200,
        validator_fee_bps: 2_000,
        ..w.state.staking_params()
    };
    let schedule = engine::ScheduleParams {
        queue_per_slot: 8,
        urgent_ms: 5_000,
        ..w.state.config.schedule.clone()
    };
    let id = w.propose(
        V20,
        vec![
            ParamChange::Staking(rules.clone()),
            ParamChange::Scheduling(schedule.clone()),
        ],
    );
    // Validator 20's own 100 and its pool's 300 are over the quorum of a third.
    w.vote(V20, id, VoteOption::Yes);
    w.time += w.state.gov_params().voting_period_ms;
    let events = w.lead(LeaderCommand::DecideProposals);
    assert!(events.contains(&Event::CommissionSet {
        provider: V20,
        commission_bps: 1_200
    }));
    assert_eq!(w.state.staking_params(), rules);
    assert_eq!(w.state.config.schedule, schedule);
    assert!(matches!(
        w.act_rejected(
            V20,
            Action::SetCommission {
                commission_bps: 1_300
            }
        ),
        Rejection::InvalidCommission(_)
    ));
    assert!(matches!(
        w.act_rejected(
            DELEGATOR,
            Action::Delegate {
                provider: V20,
                amount: 49
            }
        ),
        Rejection::InvalidAmount(_)
    ));
    // A fifth of the fees now: of 300, 60, 30 to validator 20.
    earn(&mut w);
    w.time += 10_000;
    let events = w.lead(LeaderCommand::SettleReservations);
    assert!(events.contains(&Event::ValidatorPaid {
        validator: V20,
        amount: 30 - 20,
        share: 30
    }));

    // Refused: rules out of bounds, and under rules 26.
    let bad = [
        ParamChange::Scheduling(engine::ScheduleParams {
            hold_margin_pct: 99,
            ..schedule.clone()
        }),
        ParamChange::Scheduling(engine::ScheduleParams {
            queue_per_slot: 0,
            ..schedule.clone()
        }),
        ParamChange::Scheduling(engine::ScheduleParams {
            timeout_grace_ms: 10,
            ..schedule.clone()
        }),
        ParamChange::Staking(StakingParams {
            validator_fee_bps: 10_001,
            ..rules.clone()
        }),
        ParamChange::Staking(StakingParams {
            min_delegation: 0,
            ..rules.clone()
        }),
        ParamChange::Staking(StakingParams {
            validator_payout_every_ms: 999,
            ..rules.clone()
        }),
    ];
    for change in bad {
        assert!(matches!(
            w.act_rejected(
                V20,
                Action::Propose {
                    title: "bad".into(),
                    changes: vec![change],
                    deposit: 100,
                }
            ),
            Rejection::InvalidProposal(_)
        ));
    }
    let mut old = World::with_genesis(&Genesis {
        staking: None,
        ..genesis()
    })
    .under_rules(26);
    for change in [
        ParamChange::Staking(rules),
        ParamChange::Scheduling(schedule),
    ] {
        assert!(matches!(
            old.act_rejected(
                V20,
                Action::Propose {
                    title: "x".into(),
                    changes: vec![change],
                    deposit: 100,
                }
            ),
            Rejection::InvalidProposal(_)
        ));
    }
    // And under rules 26 a validator that is no provider cannot be backed, nor is paid.
    assert!(matches!(
        old.act_rejected(
            DELEGATOR,
            Action::Delegate {
                provider: V20,
                amount: 10
            }
        ),
        Rejection::UnknownProvider(_)
    ));
    assert_eq!(old.state.staking_params().validator_fee_bps, 0);
    supply(&w);
}
