//! Delegated staking (rules 25): backing a provider, the payment split and its rounding, rewards,
//! undelegation through the unbonding delay, commission rules, and backing counted as stake.
//! Every test sees the money events and checks that the supply is conserved.

use crate::support::*;
use engine::{AccountId, Action, Event, Genesis, LeaderCommand, ProviderSpec, Rejection};

const TREASURY: AccountId = AccountId([0xEE; 32]);
const PROVIDER: AccountId = AccountId([1; 32]);
const DELEGATOR: AccountId = AccountId([5; 32]);
const OWNER: AccountId = AccountId([9; 32]);

fn genesis() -> Genesis {
    ledger_genesis(TREASURY)
}

/// Provider 1 with its own 100 staked, at 3 per fuel.
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
    w
}

#[track_caller]
fn supply(w: &World) {
    assert_eq!(w.state.check_supply().unwrap(), 900_000_000);
}

/// Runs one task of a new job on provider 1 for 1,000 fuel; the report's events.
fn earn(w: &mut World) -> Vec<Event> {
    let mut spec = job_spec(1);
    spec.deadline = w.time + 1_000_000;
    let job = w.submit(OWNER, spec);
    w.assign(PROVIDER, &[tid(job, 0)]);
    w.report(PROVIDER, vec![success(tid(job, 0), 1, 1_000)])
}

#[test]
fn a_delegator_earns_its_share_of_payments_exactly_and_dust_stays_in_the_pool() {
    let mut w = world();
    let events = w.act(
        DELEGATOR,
        Action::Delegate {
            provider: PROVIDER,
            amount: 300,
        },
    );
    assert_eq!(
        events,
        [Event::Delegated {
            delegator: DELEGATOR,
            provider: PROVIDER,
            amount: 300,
            shares: 300
        }]
    );
    assert_eq!(w.state.balance(&DELEGATOR), 100_000_000 - 300);
    assert_eq!(w.state.backing(&PROVIDER), 400);
    supply(&w);

    let provider_before = w.state.balance(&PROVIDER);
    let events = earn(&mut w);
    // 1,000 fuel × 3 = 3,000; fee 300; net 2,700; commission 10% = 270; of the other 2,430 the
    // pool backs 300 of 400: 1,822.5, rounded down. The provider keeps 2,700 − 1,822.
    assert_eq!(
        events[1..3],
        [
            Event::TaskPaid {
                task: tid(1, 0),
                provider: PROVIDER,
                amount: 878,
                fee: 300
            },
            Event::DelegatorsPaid {
                provider: PROVIDER,
                amount: 1_822,
                commission: 270
            },
        ]
    );
    assert_eq!(w.state.balance(&PROVIDER), provider_before + 878);
    assert_eq!(w.provider(PROVIDER).stats.earned, 878);
    // 1,822 over 300 shares is 6.0733… per share; the index keeps 12 decimals, so 300 shares
    // claim 1,821, and one base unit of dust stays in the pool.
    assert_eq!(w.state.pending_rewards(&DELEGATOR, &PROVIDER), 1_821);
    assert_eq!(w.state.pool(&PROVIDER).unwrap().rewards, 1_822);
    supply(&w);

    let events = w.act(DELEGATOR, Action::WithdrawRewards { provider: PROVIDER });
    assert_eq!(
        events,
        [Event::RewardsWithdrawn {
            delegator: DELEGATOR,
            provider: PROVIDER,
            amount: 1_821
        }]
    );
    assert_eq!(w.state.balance(&DELEGATOR), 100_000_000 - 300 + 1_821);
    // Nothing more to withdraw now.
    assert!(matches!(
        w.act_rejected(DELEGATOR, Action::WithdrawRewards { provider: PROVIDER }),
        Rejection::NothingToRelease(_)
    ));
    supply(&w);

    // Taking everything back: the last share leaves, the dust goes to the treasury, and the
    // tokens wait out the unbonding delay (still counted, still slashable).
    let events = w.act(
        DELEGATOR,
        Action::Undelegate {
            provider: PROVIDER,
            amount: 300,
        },
    );
    assert_eq!(
        events,
        [
            Event::RewardDustSwept {
                provider: PROVIDER,
                amount: 1
            },
            Event::Undelegated {
                delegator: DELEGATOR,
                provider: PROVIDER,
                amount: 300,
                release_at: w.time + 50
            },
        ]
    );
    assert_eq!(w.state.balance(&TREASURY), 300 + 1);
    assert_eq!(w.state.backing(&PROVIDER), 100);
    assert_eq!(w.state.releasable(&DELEGATOR, w.time), 0);
    assert!(matches!(
        w.lead_rejected(LeaderCommand::ReleaseStake { account: DELEGATOR }),
        Rejection::NothingToRelease(_)
    ));
    supply(&w);
    w.time += 50;
    assert_eq!(w.state.releasable_accounts(w.time), [DELEGATOR]);
    let events = w.lead(LeaderCommand::ReleaseStake { account: DELEGATOR });
    assert_eq!(
        events,
        [Event::StakeReleased {
            account: DELEGATOR,
            amount: 300
        }]
    );
    assert_eq!(w.state.balance(&DELEGATOR), 100_000_000 + 1_821);
    assert!(w.state.delegation_unbonding(&DELEGATOR).is_empty());
    supply(&w);
    // Without delegators the provider keeps its whole net payment again.
    let events = earn(&mut w);
    assert!(matches!(events[1], Event::TaskPaid { amount: 2_700, .. }));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::DelegatorsPaid { .. }))
    );
}

#[test]
fn delegators_share_pro_rata_and_a_newcomer_earns_only_from_its_arrival() {
    let mut w = world();
    w.act(
        acct(5),
        Action::Delegate {
            provider: PROVIDER,
            amount: 100,
        },
    );
    earn(&mut w);
    // 2,430 × 100 / 200 = 1,215 to the pool, all acct 5's.
    assert_eq!(w.state.pending_rewards(&acct(5), &PROVIDER), 1_215);
    w.act(
        acct(6),
        Action::Delegate {
            provider: PROVIDER,
            amount: 300,
        },
    );
    assert_eq!(w.state.pending_rewards(&acct(6), &PROVIDER), 0);
    earn(&mut w);
    // Now 2,430 × 400 / 500 = 1,944 to the pool: a quarter to acct 5, three quarters to acct 6.
    assert_eq!(w.state.pending_rewards(&acct(5), &PROVIDER), 1_215 + 486);
    assert_eq!(w.state.pending_rewards(&acct(6), &PROVIDER), 1_458);
    // Delegating more settles what was earned first.
    let events = w.act(
        acct(5),
        Action::Delegate {
            provider: PROVIDER,
            amount: 100,
        },
    );
    assert_eq!(
        events[0],
        Event::RewardsWithdrawn {
            delegator: acct(5),
            provider: PROVIDER,
            amount: 1_701
        }
    );
    assert_eq!(w.state.pool(&PROVIDER).unwrap().delegators, 2);
    supply(&w);
}

#[test]
fn backing_counts_toward_the_minimum_stake() {
    let mut w = world();
    // Alone, the provider cannot go below the minimum while active.
    assert!(matches!(
        w.act_rejected(PROVIDER, Action::Unstake { amount: 60 }),
        Rejection::StakeLocked(_)
    ));
    w.act(
        DELEGATOR,
        Action::Delegate {
            provider: PROVIDER,
            amount: 80,
        },
    );
    // 40 of its own and 80 delegated: 120, above the minimum of 100.
    w.act(PROVIDER, Action::Unstake { amount: 60 });
    assert!(w.state.has_min_stake(&PROVIDER));
    let job = w.submit(OWNER, job_spec(1));
    w.assign(PROVIDER, &[tid(job, 0)]);
    // When the delegator leaves, the provider is below the minimum and gets no more work.
    w.act(
        DELEGATOR,
        Action::Undelegate {
            provider: PROVIDER,
            amount: 80,
        },
    );
    assert!(!w.state.has_min_stake(&PROVIDER));
    let job = w.submit(OWNER, job_spec(1));
    let r = w.lead_rejected(LeaderCommand::AssignTasks {
        provider: PROVIDER,
        tasks: vec![tid(job, 0)],
    });
    assert!(
        matches!(&r, Rejection::TaskDoesNotFit { why, .. } if why.contains("40 bonded")),
        "{r:?}"
    );
    supply(&w);
}

#[test]
fn bad_delegations_are_refused_and_change_nothing() {
    let mut w = world();
    type Case = (AccountId, Action, fn(&Rejection) -> bool);
    let cases: Vec<Case> = vec![
        (
            DELEGATOR,
            Action::Delegate {
                provider: PROVIDER,
                amount: 0,
            },
            |r| matches!(r, Rejection::InvalidAmount(_)),
        ),
        (
            DELEGATOR,
            Action::Delegate {
                provider: acct(8),
                amount: 10,
            },
            // Rules 27: neither a provider nor a validator (before, an unknown provider).
            |r| matches!(r, Rejection::NotBackable(_)),
        ),
        (
            PROVIDER,
            Action::Delegate {
                provider: PROVIDER,
                amount: 10,
            },
            |r| matches!(r, Rejection::InvalidAmount(_)),
        ),
        (
            acct(10),
            Action::Delegate {
                provider: PROVIDER,
                amount: 10,
            },
            |r| matches!(r, Rejection::InsufficientFunds { .. }),
        ),
        (
            DELEGATOR,
            Action::Delegate {
                provider: PROVIDER,
                amount: u128::MAX,
            },
            |r| matches!(r, Rejection::InsufficientFunds { .. }),
        ),
        (
            DELEGATOR,
            Action::Undelegate {
                provider: PROVIDER,
                amount: 1,
            },
            |r| matches!(r, Rejection::NotDelegated { .. }),
        ),
        (
            DELEGATOR,
            Action::WithdrawRewards { provider: PROVIDER },
            |r| matches!(r, Rejection::NotDelegated { .. }),
        ),
        (
            DELEGATOR,
            Action::SetCommission {
                commission_bps: 100,
            },
            |r| matches!(r, Rejection::UnknownProvider(_)),
        ),
        (
            PROVIDER,
            Action::SetCommission {
                commission_bps: 5_001,
            },
            |r| matches!(r, Rejection::InvalidCommission(_)),
        ),
    ];
    for (who, action, expected) in cases {
        let r = w.act_rejected(who, action.clone());
        assert!(expected(&r), "{action:?} gave {r:?}");
    }
    w.act(
        DELEGATOR,
        Action::Delegate {
            provider: PROVIDER,
            amount: 10,
        },
    );
    for amount in [0, 11] {
        let r = w.act_rejected(
            DELEGATOR,
            Action::Undelegate {
                provider: PROVIDER,
                amount,
            },
        );
        assert!(
            matches!(
                r,
                Rejection::InvalidAmount(_) | Rejection::InsufficientStake { .. }
            ),
            "{amount}: {r:?}"
        );
    }
    // A provider that left takes no new delegations.
    w.act(PROVIDER, Action::LeaveProvider);
    assert!(matches!(
        w.act_rejected(
            acct(6),
            Action::Delegate {
                provider: PROVIDER,
                amount: 10,
            }
        ),
        Rejection::ProviderInactive(_)
    ));
    supply(&w);
}

#[test]
fn commissions_are_bounded_and_rise_slowly_once_there_are_delegators() {
    let mut w = world();
    // Without delegators, anything up to the maximum.
    let events = w.act(
        PROVIDER,
        Action::SetCommission {
            commission_bps: 3_000,
        },
    );
    assert_eq!(
        events,
        [Event::CommissionSet {
            provider: PROVIDER,
            commission_bps: 3_000
        }]
    );
    w.act(
        DELEGATOR,
        Action::Delegate {
            provider: PROVIDER,
            amount: 100,
        },
    );
    let raise = |bps| Action::SetCommission {
        commission_bps: bps,
    };
    assert!(matches!(
        w.act_rejected(PROVIDER, raise(3_501)),
        Rejection::InvalidCommission(_)
    ));
    w.act(PROVIDER, raise(3_500));
    // Once a day.
    w.time += engine::COMMISSION_PERIOD_MS - 1;
    assert!(matches!(
        w.act_rejected(PROVIDER, raise(3_600)),
        Rejection::InvalidCommission(_)
    ));
    // A cut is always allowed, at once, and does not start the day over.
    w.act(PROVIDER, raise(1_000));
    w.time += 1;
    w.act(PROVIDER, raise(1_500));
    // The payment uses the commission in force: 2,700 × 15% = 405.
    let events = earn(&mut w);
    assert!(matches!(
        events[2],
        Event::DelegatorsPaid {
            commission: 405,
            ..
        }
    ));
    supply(&w);
}

#[test]
fn before_rules_25_there_is_no_delegation() {
    let mut w = world().under_rules(24);
    for action in [
        Action::Delegate {
            provider: PROVIDER,
            amount: 10,
        },
        Action::Undelegate {
            provider: PROVIDER,
            amount: 10,
        },
        Action::WithdrawRewards { provider: PROVIDER },
    ] {
        assert!(matches!(
            w.act_rejected(DELEGATOR, action),
            Rejection::NeedsRules { needs: 25, .. }
        ));
    }
    assert!(matches!(
        w.act_rejected(PROVIDER, Action::SetCommission { commission_bps: 10 }),
        Rejection::NeedsRules { needs: 25, .. }
    ));
}

#[test]
fn backing_bounds_the_work_a_provider_holds_beyond_its_slots() {
    let mut w = world();
    // Tasks of 1,000 fuel at 3 per fuel: 3,000 each at risk. The provider's own 100 covers
    // 100 × 100 = 10,000 of work: three tasks.
    let mut spec = job_spec(40);
    spec.limits.fuel = 1_000;
    let job = w.submit(OWNER, spec);
    let p = w.provider(PROVIDER);
    assert_eq!(w.state.hold_limit(p), Some(10_000));
    assert_eq!(w.state.at_risk(p, tid(job, 0)), 3_000);
    // Its four slots it always fills; beyond them, only as far as its backing covers.
    let all: Vec<_> = (0..40).map(|i| tid(job, i)).collect();
    assert_eq!(w.state.within_backing(p, &all), 4);
    assert_eq!(w.state.pick(PROVIDER, 40).len(), 4);
    let r = w.lead_rejected(LeaderCommand::AssignTasks {
        provider: PROVIDER,
        tasks: all[..5].to_vec(),
    });
    assert!(
        matches!(&r, Rejection::TaskDoesNotFit { task, why } if *task == tid(job, 4) && why.contains("backing")),
        "{r:?}"
    );
    w.assign(PROVIDER, &all[..4]);
    // Delegators backing it with 200 more let it hold 30,000: ten tasks.
    w.act(
        DELEGATOR,
        Action::Delegate {
            provider: PROVIDER,
            amount: 200,
        },
    );
    assert_eq!(w.state.pick(PROVIDER, 40), all[4..10]);
    w.assign(PROVIDER, &all[4..10]);
    assert!(w.state.pick(PROVIDER, 40).is_empty());
    // Under rules 25, or on a network that asks for no stake, backing bounds nothing.
    let old = world().under_rules(25);
    assert_eq!(old.state.hold_limit(old.provider(PROVIDER)), None);
    supply(&w);
}
