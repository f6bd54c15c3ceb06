//! The ledger: transfers, the faucet, job escrow, payment with fees and refunds, staking and
//! unbonding. Every test here sees the money events ([`World::money_events`]) and checks that the
//! supply is conserved.

use crate::support::*;
use engine::{
    AccountId, Action, Event, FaucetParams, Genesis, JobStatus, LeaderCommand, ProviderSpec,
    Rejection, State, TaskOutcome,
};

const TREASURY: AccountId = AccountId([0xEE; 32]);

/// [`ledger_genesis`], with a faucet of 1,000 when `faucet`.
fn genesis(faucet: bool) -> Genesis {
    let mut g = ledger_genesis(TREASURY);
    g.params.faucet = faucet.then_some(FaucetParams { amount: 1_000 });
    g
}

fn world(faucet: bool) -> World {
    let mut w = World::with_genesis(&genesis(faucet));
    w.money_events = true;
    w
}

/// Checks conservation and returns the supply.
#[track_caller]
fn supply(w: &World) -> u128 {
    w.state.check_supply().unwrap()
}

/// Stakes the minimum and registers `who` with `price` per fuel.
fn staked_provider(w: &mut World, who: AccountId, price: u128) {
    w.act(who, Action::Stake { amount: 100 });
    w.register(
        who,
        ProviderSpec {
            price_per_fuel: price,
            ..provider_spec()
        },
    );
}

#[test]
fn genesis_allocates_and_fixes_the_rules() {
    let w = world(false);
    assert_eq!(supply(&w), 900_000_000);
    assert_eq!(w.state.balance(&acct(3)), 100_000_000);
    assert_eq!(w.state.balance(&acct(10)), 0);
    assert_eq!(w.state.ledger.fee_bps, 1_000);
    // The rules are part of the state, so of the genesis hash.
    let mut other = genesis(false);
    other.params.fee_bps = 999;
    assert_ne!(State::from_genesis(&other).unwrap().hash(), w.state.hash());
    let mut bad = genesis(false);
    bad.params.fee_bps = 20_000;
    assert!(State::from_genesis(&bad).unwrap_err().contains("fee_bps"));
}

#[test]
fn transfers_move_tokens_and_bad_ones_change_nothing() {
    let mut w = world(false);
    let events = w.act(
        acct(1),
        Action::Transfer {
            to: acct(20),
            amount: 2_500,
        },
    );
    assert_eq!(
        events,
        vec![Event::Transferred {
            from: acct(1),
            to: acct(20),
            amount: 2_500
        }]
    );
    assert_eq!(w.state.balance(&acct(1)), 99_997_500);
    assert_eq!(w.state.balance(&acct(20)), 2_500);
    let cases: Vec<(AccountId, u128, Rejection)> = vec![
        (
            acct(20),
            2_501,
            Rejection::InsufficientFunds {
                need: 2_501,
                available: 2_500,
            },
        ),
        (
            acct(30),
            1,
            Rejection::InsufficientFunds {
                need: 1,
                available: 0,
            },
        ),
    ];
    for (from, amount, expected) in cases {
        assert_eq!(
            w.act_rejected(
                from,
                Action::Transfer {
                    to: acct(1),
                    amount
                }
            ),
            expected
        );
    }
    assert!(matches!(
        w.act_rejected(
            acct(1),
            Action::Transfer {
                to: acct(2),
                amount: 0
            }
        ),
        Rejection::InvalidAmount(_)
    ));
    assert!(matches!(
        w.act_rejected(
            acct(1),
            Action::Transfer {
                to: acct(1),
                amount: 5
            }
        ),
        Rejection::InvalidAmount(_)
    ));
    assert!(matches!(
        w.act_rejected(
            acct(1),
            Action::Transfer {
                to: acct(2),
                amount: u128::MAX
            }
        ),
        Rejection::InsufficientFunds { .. }
    ));
    assert_eq!(supply(&w), 900_000_000);
}

#[test]
fn the_faucet_mints_only_on_networks_that_have_one() {
    let mut w = world(false);
    assert_eq!(
        w.act_rejected(acct(20), Action::Faucet),
        Rejection::FaucetDisabled
    );
    let mut w = world(true);
    assert_eq!(
        w.act(acct(20), Action::Faucet),
        vec![Event::FaucetPaid {
            to: acct(20),
            amount: 1_000
        }]
    );
    assert_eq!(w.state.supply.minted, 1_000);
    assert_eq!(supply(&w), 900_001_000);
    // A full account is refused; one that spent below the amount is topped up again.
    assert!(matches!(
        w.act_rejected(acct(20), Action::Faucet),
        Rejection::FaucetRefused(_)
    ));
    w.act(
        acct(20),
        Action::Transfer {
            to: acct(1),
            amount: 1,
        },
    );
    w.act(acct(20), Action::Faucet);
    assert_eq!(w.state.balance(&acct(20)), 1_999);
    assert_eq!(supply(&w), 900_002_000);
}

#[test]
fn a_job_locks_its_worst_case_cost_and_an_unfunded_one_is_rejected() {
    let mut w = world(false);
    // 4 tasks × 1,000,000 fuel × 10 per fuel.
    let job = w.submit(acct(9), job_spec(4));
    assert_eq!(w.job(job).escrow.locked, 40_000_000);
    let mut w = world(false);
    let before = w.state.balance(&acct(9));
    let events = w.act(acct(9), Action::SubmitJob(job_spec(1)));
    assert_eq!(
        events[1],
        Event::EscrowLocked {
            job: 1,
            owner: acct(9),
            amount: 10_000_000
        }
    );
    assert_eq!(w.state.balance(&acct(9)), before - 10_000_000);
    // A reduce job also locks its reduce task: 1 × 1,000,000 + 2,000,000 fuel at 10.
    w.act(
        acct(8),
        Action::Transfer {
            to: acct(7),
            amount: 10_000_000,
        },
    );
    let events = w.act(acct(7), Action::SubmitJob(reduce_job_spec(1)));
    assert!(matches!(
        events[1],
        Event::EscrowLocked {
            amount: 30_000_000,
            ..
        }
    ));
    // Nothing left: the next job is refused and takes no job id.
    assert_eq!(
        w.act_rejected(acct(20), Action::SubmitJob(job_spec(1))),
        Rejection::InsufficientFunds {
            need: 10_000_000,
            available: 0
        }
    );
    assert_eq!(w.state.next_job, 3);
    let mut huge = job_spec(1);
    huge.max_price = u128::MAX;
    assert!(matches!(
        w.act_rejected(acct(1), Action::SubmitJob(huge)),
        Rejection::TooLarge(_)
    ));
    assert_eq!(supply(&w), 900_000_000);
}

#[test]
fn accepted_results_pay_the_provider_less_the_fee_and_completion_refunds_the_rest() {
    let mut w = world(false);
    // The first rules, which accept a success claiming more fuel than the limit and cap its
    // payment (later rules count such a claim as a failed attempt: see `scenarios::reports`).
    w.state.rules = engine::FIRST_RULES;
    staked_provider(&mut w, acct(1), 3);
    let job = w.submit(acct(9), job_spec(2));
    let owner_after_lock = w.state.balance(&acct(9));
    let provider_before = w.state.balance(&acct(1));
    w.assign(acct(1), &[tid(job, 0), tid(job, 1)]);
    let events = w.report(acct(1), vec![success(tid(job, 0), 1, 1_000)]);
    // 1,000 fuel × 3 = 3,000, of which 10% is the fee.
    assert_eq!(
        events[1],
        Event::TaskPaid {
            task: tid(job, 0),
            provider: acct(1),
            amount: 2_700,
            fee: 300
        }
    );
    // A failed run earns nothing; the claimed fuel beyond the limit is not paid either.
    w.report(acct(1), vec![failure(tid(job, 1), TaskOutcome::OutOfFuel)]);
    w.assign(acct(1), &[tid(job, 1)]);
    let events = w.report(acct(1), vec![success(tid(job, 1), 2, u64::MAX)]);
    assert_eq!(
        events,
        vec![
            Event::TaskCompleted {
                task: tid(job, 1),
                provider: acct(1),
                fuel_used: u64::MAX
            },
            Event::TaskPaid {
                task: tid(job, 1),
                provider: acct(1),
                amount: 2_700_000,
                fee: 300_000
            },
            Event::JobCompleted { job },
            Event::EscrowRefunded {
                job,
                owner: acct(9),
                amount: 20_000_000 - 3_000 - 3_000_000
            },
        ]
    );
    let escrow = &w.job(job).escrow;
    assert_eq!(
        (escrow.paid, escrow.fees, escrow.held()),
        (3_003_000, 300_300, 0)
    );
    assert_eq!(w.state.balance(&acct(1)), provider_before + 2_702_700);
    assert_eq!(w.state.balance(&TREASURY), 300_300);
    assert_eq!(
        w.state.balance(&acct(9)),
        owner_after_lock + 20_000_000 - 3_003_000
    );
    assert_eq!(w.provider(acct(1)).stats.earned, 2_702_700);
    assert_eq!(supply(&w), 900_000_000);
}

#[test]
fn the_price_paid_never_exceeds_the_jobs_max_price() {
    let mut w = world(false);
    staked_provider(&mut w, acct(1), 10);
    let job = w.submit(acct(9), job_spec(1));
    w.assign(acct(1), &[tid(job, 0)]);
    let events = w.report(acct(1), vec![success(tid(job, 0), 1, 100)]);
    assert!(matches!(
        events[1],
        Event::TaskPaid {
            amount: 900,
            fee: 100,
            ..
        }
    ));
}

#[test]
fn cancel_and_expiry_refund_what_the_escrow_still_holds() {
    let mut w = world(false);
    staked_provider(&mut w, acct(1), 1);
    let cancelled = w.submit(acct(9), job_spec(2));
    let expired = w.submit(acct(8), job_spec(2));
    w.assign(acct(1), &[tid(cancelled, 0), tid(expired, 0)]);
    w.report(
        acct(1),
        vec![
            success(tid(cancelled, 0), 1, 10),
            success(tid(expired, 0), 1, 20),
        ],
    );
    let events = w.act(acct(9), Action::CancelJob(cancelled));
    assert_eq!(
        events,
        vec![
            Event::JobCancelled { job: cancelled },
            Event::EscrowRefunded {
                job: cancelled,
                owner: acct(9),
                amount: 20_000_000 - 10
            }
        ]
    );
    w.time = DEADLINE + 1;
    let events = w.lead(LeaderCommand::ExpireJob { job: expired });
    assert!(matches!(events[0], Event::JobFailed { .. }));
    assert_eq!(
        events[1],
        Event::EscrowRefunded {
            job: expired,
            owner: acct(8),
            amount: 20_000_000 - 20
        }
    );
    assert_eq!(w.job(expired).escrow.held(), 0);
    assert_eq!(supply(&w), 900_000_000);
}

#[test]
fn a_job_that_fails_refunds_its_owner() {
    // Rules 2: every failure counts as an attempt (rules 3 verify a deterministic one: see
    // `scenarios::failures`).
    let mut w = world(false).under_rules(2);
    staked_provider(&mut w, acct(1), 1);
    let job = w.submit(acct(9), job_spec(1));
    for _ in 0..3 {
        w.assign(acct(1), &[tid(job, 0)]);
        w.report(acct(1), vec![failure(tid(job, 0), TaskOutcome::Exit(1))]);
    }
    assert!(matches!(w.job(job).status, JobStatus::Failed { .. }));
    assert_eq!(w.state.balance(&acct(9)), 100_000_000);
    assert_eq!(supply(&w), 900_000_000);
}

#[test]
fn providers_need_the_minimum_stake_to_register_and_to_get_work() {
    let mut w = world(false);
    assert_eq!(
        w.act_rejected(acct(1), Action::RegisterProvider(provider_spec())),
        Rejection::InsufficientStake {
            bonded: 0,
            need: 100
        }
    );
    assert_eq!(
        w.act(acct(1), Action::Stake { amount: 60 }),
        vec![Event::Staked {
            account: acct(1),
            amount: 60,
            bonded: 60
        }]
    );
    assert!(matches!(
        w.act_rejected(acct(1), Action::RegisterProvider(provider_spec())),
        Rejection::InsufficientStake { bonded: 60, .. }
    ));
    w.act(acct(1), Action::Stake { amount: 40 });
    w.register(acct(1), provider_spec());
    assert_eq!(w.state.bonded(&acct(1)), 100);
    assert_eq!(w.state.balance(&acct(1)), 100_000_000 - 100);
    assert!(matches!(
        w.act_rejected(
            acct(2),
            Action::Stake {
                amount: 100_000_001
            }
        ),
        Rejection::InsufficientFunds { .. }
    ));
    assert!(matches!(
        w.act_rejected(acct(2), Action::Stake { amount: 0 }),
        Rejection::InvalidAmount(_)
    ));
    assert_eq!(supply(&w), 900_000_000);
}

#[test]
fn unstaking_waits_out_the_unbonding_delay() {
    let mut w = world(false);
    w.act(acct(1), Action::Stake { amount: 150 });
    w.register(acct(1), provider_spec());
    // An active provider keeps the minimum bonded.
    assert!(matches!(
        w.act_rejected(acct(1), Action::Unstake { amount: 51 }),
        Rejection::StakeLocked(_)
    ));
    assert_eq!(
        w.act(acct(1), Action::Unstake { amount: 50 }),
        vec![Event::UnbondingStarted {
            account: acct(1),
            amount: 50,
            release_at: 1050
        }]
    );
    w.act(acct(1), Action::LeaveProvider);
    w.time = 1020;
    w.act(acct(1), Action::Unstake { amount: 100 });
    assert!(matches!(
        w.act_rejected(acct(1), Action::Unstake { amount: 1 }),
        Rejection::InsufficientStake { bonded: 0, .. }
    ));
    assert_eq!(
        w.lead_rejected(LeaderCommand::ReleaseStake { account: acct(1) }),
        Rejection::NothingToRelease(acct(1))
    );
    w.time = 1050;
    assert_eq!(w.state.releasable_accounts(1050), vec![acct(1)]);
    assert_eq!(
        w.lead(LeaderCommand::ReleaseStake { account: acct(1) }),
        vec![Event::StakeReleased {
            account: acct(1),
            amount: 50
        }]
    );
    assert_eq!(w.state.accounts[&acct(1)].unbonding.len(), 1);
    w.time = 1070;
    w.lead(LeaderCommand::ReleaseStake { account: acct(1) });
    assert_eq!(w.state.balance(&acct(1)), 100_000_000);
    assert!(w.state.accounts[&acct(1)].unbonding.is_empty());
    assert_eq!(supply(&w), 900_000_000);
}

/// Rules 8: every logged action but a report or the faucet costs its signer the fee per action,
/// paid to the treasury; an action the signer cannot also pay the fee for is refused whole.
#[test]
fn every_logged_action_pays_the_fee_per_action_and_a_refused_one_pays_nothing() {
    const FEE: u128 = 7;
    let mut w = World::with_genesis(&Genesis {
        action_fee: FEE,
        storage: None,
        ..genesis(true)
    });
    w.money_events = true;
    let treasury = w.state.balance(&TREASURY);
    let events = w.act(
        acct(1),
        Action::Transfer {
            to: acct(20),
            amount: 100,
        },
    );
    assert_eq!(
        events,
        vec![
            Event::Transferred {
                from: acct(1),
                to: acct(20),
                amount: 100
            },
            Event::ActionFeePaid {
                payer: acct(1),
                amount: FEE
            }
        ]
    );
    assert_eq!(w.state.balance(&acct(1)), 100_000_000 - 100 - FEE);
    assert_eq!(w.state.balance(&TREASURY), treasury + FEE);
    assert_eq!(supply(&w), 900_000_000);

    // acct(20) holds 100: it cannot move all of it (the fee comes on top), nor act at all once
    // it holds less than the fee; and nothing changed.
    assert_eq!(
        w.act_rejected(
            acct(20),
            Action::Transfer {
                to: acct(1),
                amount: 100
            }
        ),
        Rejection::InsufficientFunds {
            need: 100,
            available: 100 - FEE
        }
    );
    w.act(
        acct(20),
        Action::Transfer {
            to: acct(1),
            amount: 100 - FEE - 3,
        },
    );
    assert_eq!(w.state.balance(&acct(20)), 3);
    assert_eq!(
        w.act_rejected(acct(20), Action::Stake { amount: 1 }),
        Rejection::FeeUnpaid {
            fee: FEE,
            available: 3
        }
    );
    // A refused action (here: a job nobody submitted) gives the fee back: nothing changes.
    assert!(matches!(
        w.act_rejected(acct(1), Action::CancelJob(999)),
        Rejection::UnknownJob(_)
    ));

    // The faucet and reports of assigned work are free: a provider whose balance is all staked
    // still reports.
    w.act(acct(30), Action::Faucet);
    assert_eq!(w.state.balance(&acct(30)), 1_000);
    w.act(
        acct(30),
        Action::Stake {
            amount: 1_000 - 2 * FEE,
        },
    );
    w.register(
        acct(30),
        ProviderSpec {
            price_per_fuel: 1,
            ..provider_spec()
        },
    );
    assert_eq!(w.state.balance(&acct(30)), 0);
    let job = w.submit(acct(9), job_spec(1));
    w.assign(acct(30), &[tid(job, 0)]);
    let events = w.report(acct(30), vec![success(tid(job, 0), 1, 10)]);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::ActionFeePaid { .. })),
        "{events:?}"
    );
    supply(&w);

    // The fee is a rule of rules 8: a genesis of older rules cannot name one.
    let older = Genesis {
        action_fee: FEE,
        storage: None,
        rules: 7,
        ..genesis(true)
    };
    assert!(
        State::from_genesis(&older)
            .unwrap_err()
            .contains("action_fee needs rules 8")
    );
}
