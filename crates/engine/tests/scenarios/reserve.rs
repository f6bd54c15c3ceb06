//! Reserved capacity (rules 26): offers, leases, the scheduler serving leased slots first and
//! to nobody else, covered tasks, periods paid used or not, refunds when a provider misses a
//! period, cancellation by either side, lapses, and the refusals. Every test checks that the
//! supply is conserved.

use crate::support::*;
use engine::reserve::{LeaseEnd, ReservationSpec};
use engine::{AccountId, Action, Event, LeaderCommand, ProviderSpec, Rejection};

const TREASURY: AccountId = AccountId([0xEE; 32]);
const PROVIDER: AccountId = AccountId([1; 32]);
const OTHER_PROVIDER: AccountId = AccountId([2; 32]);
const REQUESTER: AccountId = AccountId([7; 32]);
const OWNER: AccountId = AccountId([9; 32]);
const START: u128 = 100_000_000;

/// Provider 1 (2 slots, eu-west, 3 per fuel) with its 100 staked, on the money network (10% fee).
fn world() -> World {
    let mut w = World::with_genesis(&ledger_genesis(TREASURY));
    w.money_events = true;
    w.act(PROVIDER, Action::Stake { amount: 100 });
    w.register(
        PROVIDER,
        ProviderSpec {
            slots: 2,
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

/// `slots` slots in eu-west, periods of a second, three of them, 500 per slot per period.
fn spec(slots: u32) -> ReservationSpec {
    ReservationSpec {
        slots,
        cores: 2,
        memory_bytes: 1 << 20,
        gpu: false,
        region: Some("eu-west".into()),
        period_ms: 1_000,
        periods: 3,
        price_per_slot: 500,
    }
}

/// `OWNER` reserves `spec`; the reservation's id.
fn reserve(w: &mut World, spec: ReservationSpec) -> u64 {
    match w.act(OWNER, Action::Reserve(spec)).as_slice() {
        [Event::Reserved { reservation, .. }] => *reservation,
        other => panic!("unexpected events {other:?}"),
    }
}

fn accept(w: &mut World, provider: AccountId, reservation: u64, slots: u32) -> Vec<Event> {
    w.act(provider, Action::AcceptReservation { reservation, slots })
}

/// A job of `owner`'s of `n` tasks of at most 1,000 fuel, paying at most `max_price`.
fn job(w: &mut World, owner: AccountId, n: usize, max_price: u128) -> u64 {
    let mut spec = job_spec(n);
    spec.max_price = max_price;
    spec.limits.fuel = 1_000;
    w.submit(owner, spec)
}

#[test]
fn a_lease_covers_its_owners_tasks_and_is_paid_every_period_used_or_not() {
    let mut w = world();
    let id = reserve(&mut w, spec(2));
    assert_eq!(w.state.balance(&OWNER), START - 1_000);
    supply(&w);
    let events = accept(&mut w, PROVIDER, id, 2);
    assert_eq!(
        events,
        [Event::ReservationAccepted {
            reservation: id,
            provider: PROVIDER,
            slots: 2,
            period_end: w.time + 1_000,
        }]
    );

    // Another requester's older job waits while the owner's runs first; a job of the owner's
    // that pays nothing runs on its lease (and only there).
    let other = job(&mut w, REQUESTER, 2, 10);
    let mine = job(&mut w, OWNER, 2, 0);
    assert_eq!(w.job(mine).escrow.locked, 0);
    assert_eq!(w.state.pick(PROVIDER, 1), [tid(mine, 0)]);
    assert_eq!(w.state.pick(PROVIDER, 8), [tid(mine, 0), tid(mine, 1)]);
    w.assign(PROVIDER, &[tid(mine, 0), tid(mine, 1)]);
    // Both slots are leased: nothing of anyone else's goes onto them, even with the owner's
    // queue empty.
    assert!(w.state.pick(PROVIDER, 8).is_empty());
    let r = w.lead_rejected(LeaderCommand::AssignTasks {
        provider: PROVIDER,
        tasks: vec![tid(other, 0)],
    });
    assert!(matches!(r, Rejection::TaskDoesNotFit { .. }), "{r:?}");
    let events = w.report(
        PROVIDER,
        vec![
            success(tid(mine, 0), 1, 1_000),
            success(tid(mine, 1), 2, 1_000),
        ],
    );
    assert!(events.contains(&Event::TaskCovered {
        task: tid(mine, 0),
        provider: PROVIDER,
        reservation: id
    }));
    assert!(!events.iter().any(|e| matches!(e, Event::TaskPaid { .. })));
    assert_eq!(w.job(mine).escrow.paid, 0);
    assert_eq!(w.state.reservations.reservations[&id].tasks_covered, 2);
    supply(&w);

    // Nothing is due before the period ends.
    w.time += 999;
    assert!(matches!(
        w.lead_rejected(LeaderCommand::SettleReservations),
        Rejection::InvalidReservation(_)
    ));
    let provider_before = w.state.balance(&PROVIDER);
    w.time += 1;
    let events = w.lead(LeaderCommand::SettleReservations);
    assert_eq!(
        events,
        [
            Event::ReservationPaid {
                reservation: id,
                provider: PROVIDER,
                period: 0,
                amount: 900,
                fee: 100
            },
            Event::ReservationRenewed {
                reservation: id,
                owner: OWNER,
                provider: PROVIDER,
                period: 1,
                amount: 1_000,
                period_end: w.time + 1_000
            },
        ]
    );
    assert_eq!(w.state.balance(&PROVIDER), provider_before + 900);
    assert_eq!(w.state.balance(&OWNER), START - 2_000);
    supply(&w);

    // An idle period is paid too, settled by whatever entry comes first after its end.
    w.time += 1_500;
    let events = w.act(
        REQUESTER,
        Action::Transfer {
            to: OWNER,
            amount: 1,
        },
    );
    assert!(events.contains(&Event::ReservationPaid {
        reservation: id,
        provider: PROVIDER,
        period: 1,
        amount: 900,
        fee: 100
    }));
    w.time += 500;
    let events = w.lead(LeaderCommand::SettleReservations);
    assert_eq!(
        events,
        [
            Event::ReservationPaid {
                reservation: id,
                provider: PROVIDER,
                period: 2,
                amount: 900,
                fee: 100
            },
            Event::LeaseEnded {
                reservation: id,
                provider: PROVIDER,
                reason: LeaseEnd::Completed
            },
        ]
    );
    let r = &w.state.reservations.reservations[&id];
    assert_eq!((r.paid, r.refunded, r.ended), (3_000, 0, Some(w.time)));
    assert_eq!(w.state.balance(&OWNER), START - 3_000 + 1);
    assert_eq!(w.state.balance(&TREASURY), 300);
    assert!(w.state.reservations.leases.is_empty());
    assert_eq!(w.state.reservations.next_due, None);
    supply(&w);

    // The slots are the network's again: the other requester's job runs, and the owner's
    // unpaid job no longer can.
    let unpaid = job(&mut w, OWNER, 1, 0);
    assert_eq!(w.state.pick(PROVIDER, 8), [tid(other, 0), tid(other, 1)]);
    assert!(w.state.fits(w.provider(PROVIDER), tid(unpaid, 0)).is_err());
}

#[test]
fn unleased_slots_take_other_work_and_the_owner_gets_its_leased_share_first() {
    let mut w = world();
    w.register(
        PROVIDER,
        ProviderSpec {
            slots: 4,
            price_per_fuel: 3,
            ..provider_spec()
        },
    );
    // Enough backing for all it can hold (`State::within_backing`).
    w.act(PROVIDER, Action::Stake { amount: 50_000_000 });
    let id = reserve(&mut w, spec(1));
    accept(&mut w, PROVIDER, id, 1);
    let other = job(&mut w, REQUESTER, 1_000, 10);
    let mine = job(&mut w, OWNER, 10, 10);
    let first = w.state.pick(PROVIDER, 4_000);
    assert_eq!(
        first[..10],
        (0..10).map(|i| tid(mine, i)).collect::<Vec<_>>()[..]
    );
    w.assign(PROVIDER, &first);
    loop {
        let picked = w.state.pick(PROVIDER, 4_000);
        if picked.is_empty() {
            break;
        }
        w.assign(PROVIDER, &picked);
    }
    // Everyone else's work fits in the three unleased slots and their local queues, and not
    // one task more, though the provider has room for more.
    let per_slot = 1 + w.state.config.schedule.queue_per_slot;
    let others = w
        .running(PROVIDER)
        .iter()
        .filter(|t| t.job == other)
        .count() as u32;
    let rest: Vec<_> = (others..3 * per_slot).map(|i| tid(other, i)).collect();
    w.assign(PROVIDER, &rest);
    let r = w.lead_rejected(LeaderCommand::AssignTasks {
        provider: PROVIDER,
        tasks: vec![tid(other, 3 * per_slot)],
    });
    assert!(
        matches!(&r, Rejection::TaskDoesNotFit { why, .. } if why.contains("leased")),
        "{r:?}"
    );
    assert!(w.state.pick(PROVIDER, 4_000).is_empty());
}

#[test]
fn a_provider_that_missed_a_period_is_not_paid_for_it_and_its_lease_ends() {
    let mut w = world();
    let id = reserve(&mut w, spec(1));
    accept(&mut w, PROVIDER, id, 1);
    let mine = job(&mut w, OWNER, 1, 0);
    w.assign(PROVIDER, &[tid(mine, 0)]);
    // The run is never reported: timed out past its deadline.
    let overdue = (w.time..w.time + 10_000_000)
        .step_by(1_000)
        .find(|t| !w.state.overdue_runs(*t).is_empty())
        .expect("the run falls overdue");
    w.time = overdue;
    let events = w.lead(LeaderCommand::TimeOutRuns {
        provider: PROVIDER,
        tasks: vec![tid(mine, 0)],
    });
    assert!(events.contains(&Event::ReservationRefunded {
        reservation: id,
        owner: OWNER,
        amount: 500
    }));
    assert!(events.contains(&Event::LeaseEnded {
        reservation: id,
        provider: PROVIDER,
        reason: LeaseEnd::Missed
    }));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::ReservationPaid { .. }))
    );
    assert_eq!(w.state.balance(&OWNER), START);
    supply(&w);

    // A provider that leaves the network misses its period too.
    let id = reserve(&mut w, spec(1));
    accept(&mut w, PROVIDER, id, 1);
    w.act(PROVIDER, Action::LeaveProvider);
    w.time += 1_000;
    let events = w.lead(LeaderCommand::SettleReservations);
    assert_eq!(
        events,
        [
            Event::ReservationRefunded {
                reservation: id,
                owner: OWNER,
                amount: 500
            },
            Event::LeaseEnded {
                reservation: id,
                provider: PROVIDER,
                reason: LeaseEnd::Missed
            },
        ]
    );
    supply(&w);
}

#[test]
fn cancelling_refunds_open_slots_at_once_and_lets_leases_run_out_their_period() {
    let mut w = world();
    let id = reserve(&mut w, spec(3));
    accept(&mut w, PROVIDER, id, 1);
    w.time += 400;
    let events = w.act(OWNER, Action::CancelReservation { reservation: id });
    assert_eq!(
        events,
        [
            Event::ReservationCancelled { reservation: id },
            Event::ReservationRefunded {
                reservation: id,
                owner: OWNER,
                amount: 1_000
            },
        ]
    );
    assert_eq!(w.state.balance(&OWNER), START - 500);
    // Cancelled: nobody may accept the rest.
    assert!(matches!(
        w.act_rejected(PROVIDER, Action::CancelReservation { reservation: id }),
        Rejection::NotReservationOwner(_)
    ));
    w.time += 600;
    let events = w.lead(LeaderCommand::SettleReservations);
    assert_eq!(
        events,
        [
            Event::ReservationPaid {
                reservation: id,
                provider: PROVIDER,
                period: 0,
                amount: 450,
                fee: 50
            },
            Event::LeaseEnded {
                reservation: id,
                provider: PROVIDER,
                reason: LeaseEnd::Cancelled
            },
        ]
    );
    assert!(w.state.reservations.reservations[&id].ended.is_some());
    supply(&w);

    // A provider leaving its lease forfeits the period: all of it goes back.
    let id = reserve(&mut w, spec(1));
    accept(&mut w, PROVIDER, id, 1);
    w.time += 900;
    let before = w.state.balance(&OWNER);
    let events = w.act(PROVIDER, Action::LeaveReservation { reservation: id });
    assert_eq!(
        events,
        [
            Event::ReservationRefunded {
                reservation: id,
                owner: OWNER,
                amount: 500
            },
            Event::LeaseEnded {
                reservation: id,
                provider: PROVIDER,
                reason: LeaseEnd::Left
            },
        ]
    );
    assert_eq!(w.state.balance(&OWNER), before + 500);
    supply(&w);

    // An offer nobody takes is refunded after one period.
    let id = reserve(&mut w, spec(2));
    w.time += 1_000;
    let events = w.lead(LeaderCommand::SettleReservations);
    assert_eq!(
        events,
        [Event::ReservationRefunded {
            reservation: id,
            owner: OWNER,
            amount: 1_000
        }]
    );
    assert!(w.state.reservations.reservations[&id].ended.is_some());
    supply(&w);
}

#[test]
fn a_lease_lapses_when_its_owner_cannot_pay_the_next_period_and_delegators_share_its_pay() {
    let mut w = world();
    w.act(
        acct(5),
        Action::Delegate {
            provider: PROVIDER,
            amount: 100,
        },
    );
    let id = reserve(&mut w, spec(1));
    accept(&mut w, PROVIDER, id, 1);
    let left = w.state.balance(&OWNER) - 499;
    w.act(
        OWNER,
        Action::Transfer {
            to: REQUESTER,
            amount: left,
        },
    );
    w.time += 1_000;
    let events = w.lead(LeaderCommand::SettleReservations);
    // 500 − 50 fee = 450; commission 45; the pool backs half of 200: 202.
    assert_eq!(
        events,
        [
            Event::ReservationPaid {
                reservation: id,
                provider: PROVIDER,
                period: 0,
                amount: 248,
                fee: 50
            },
            Event::DelegatorsPaid {
                provider: PROVIDER,
                amount: 202,
                commission: 45
            },
            Event::LeaseEnded {
                reservation: id,
                provider: PROVIDER,
                reason: LeaseEnd::Lapsed
            },
        ]
    );
    assert_eq!(w.state.balance(&OWNER), 499);
    supply(&w);
}

#[test]
fn bad_reservations_are_refused_and_change_nothing() {
    let mut w = world();
    w.act(OTHER_PROVIDER, Action::Stake { amount: 100 });
    w.register(
        OTHER_PROVIDER,
        ProviderSpec {
            region: "us-east".into(),
            ..provider_spec()
        },
    );
    let id = reserve(&mut w, spec(2));
    let mut too_long = spec(1);
    too_long.periods = 0;
    let mut dear = spec(1);
    dear.price_per_slot = START;
    type Case = (AccountId, Action, fn(&Rejection) -> bool);
    let cases: Vec<Case> = vec![
        (OWNER, Action::Reserve(too_long), |r| {
            matches!(r, Rejection::InvalidReservation(_))
        }),
        (OWNER, Action::Reserve(dear), |r| {
            matches!(r, Rejection::InsufficientFunds { .. })
        }),
        (
            PROVIDER,
            Action::AcceptReservation {
                reservation: 99,
                slots: 1,
            },
            |r| matches!(r, Rejection::UnknownReservation(99)),
        ),
        (
            acct(6),
            Action::AcceptReservation {
                reservation: id,
                slots: 1,
            },
            |r| matches!(r, Rejection::UnknownProvider(_)),
        ),
        (
            OTHER_PROVIDER,
            Action::AcceptReservation {
                reservation: id,
                slots: 1,
            },
            |r| matches!(r, Rejection::InvalidReservation(why) if why.contains("region")),
        ),
        (
            PROVIDER,
            Action::AcceptReservation {
                reservation: id,
                slots: 3,
            },
            |r| matches!(r, Rejection::InvalidReservation(_)),
        ),
        (
            PROVIDER,
            Action::AcceptReservation {
                reservation: id,
                slots: 0,
            },
            |r| matches!(r, Rejection::InvalidReservation(_)),
        ),
        (
            REQUESTER,
            Action::CancelReservation { reservation: id },
            |r| matches!(r, Rejection::NotReservationOwner(_)),
        ),
        (
            PROVIDER,
            Action::LeaveReservation { reservation: id },
            |r| matches!(r, Rejection::InvalidReservation(_)),
        ),
        (OWNER, Action::CancelReservation { reservation: 99 }, |r| {
            matches!(r, Rejection::UnknownReservation(99))
        }),
    ];
    for (who, action, expected) in cases {
        let r = w.act_rejected(who, action.clone());
        assert!(expected(&r), "{action:?} gave {r:?}");
    }
    // A provider leases at most its own slots, one lease per reservation, never its own.
    accept(&mut w, PROVIDER, id, 1);
    assert!(matches!(
        w.act_rejected(
            PROVIDER,
            Action::AcceptReservation {
                reservation: id,
                slots: 1
            }
        ),
        Rejection::InvalidReservation(why) if why.contains("already")
    ));
    let second = reserve(&mut w, spec(2));
    assert!(matches!(
        w.act_rejected(
            PROVIDER,
            Action::AcceptReservation {
                reservation: second,
                slots: 2
            }
        ),
        Rejection::InvalidReservation(why) if why.contains("leased")
    ));
    // Nor may it shrink below what it leased.
    assert!(matches!(
        w.act_rejected(
            PROVIDER,
            Action::RegisterProvider(ProviderSpec {
                slots: 0,
                ..provider_spec()
            })
        ),
        Rejection::InvalidProviderSpec(_)
    ));
    w.act(PROVIDER, Action::LeaveReservation { reservation: id });
    w.act(OTHER_PROVIDER, Action::Stake { amount: 1 });
    let mut own = spec(1);
    own.region = None;
    let own_id = match w.act(OTHER_PROVIDER, Action::Reserve(own)).as_slice() {
        [Event::Reserved { reservation, .. }] => *reservation,
        other => panic!("{other:?}"),
    };
    assert!(matches!(
        w.act_rejected(
            OTHER_PROVIDER,
            Action::AcceptReservation {
                reservation: own_id,
                slots: 1
            }
        ),
        Rejection::InvalidReservation(why) if why.contains("own")
    ));
    supply(&w);

    // Under rules 25 there are no reservations.
    let mut old = world().under_rules(25);
    assert!(matches!(
        old.act_rejected(OWNER, Action::Reserve(spec(1))),
        Rejection::NeedsRules { needs: 26, .. }
    ));
}
