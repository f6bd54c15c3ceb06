//! Replay protection and the clock: nonces strictly increase per signer, rejected actions do not use
//! one up, and the state's time never goes backwards.

use crate::support::*;
use engine::{Action, JobSpec, LeaderCommand, Rejection};

#[test]
fn stale_and_replayed_nonces_are_rejected() {
    let mut w = World::new();
    // Nonce 0 is never valid: a fresh account's last nonce is 0.
    assert_eq!(
        w.reject(signed(
            acct(1),
            0,
            Action::RegisterProvider(provider_spec())
        )),
        Rejection::StaleNonce { got: 0, last: 0 }
    );
    // Nonces may skip ahead.
    w.accept(signed(
        acct(1),
        5,
        Action::RegisterProvider(provider_spec()),
    ));
    assert_eq!(w.state.nonce(&acct(1)), 5);
    // The very same entry again is a replay.
    assert_eq!(
        w.reject(signed(
            acct(1),
            5,
            Action::RegisterProvider(provider_spec())
        )),
        Rejection::StaleNonce { got: 5, last: 5 }
    );
    // So is any lower nonce, whatever the action.
    for nonce in [1, 4] {
        assert_eq!(
            w.reject(signed(acct(1), nonce, Action::SubmitJob(job_spec(1)))),
            Rejection::StaleNonce {
                got: nonce,
                last: 5
            }
        );
    }
    // The nonce check comes before the action's own checks.
    assert_eq!(
        w.reject(signed(acct(1), 3, Action::CancelJob(42))),
        Rejection::StaleNonce { got: 3, last: 5 }
    );
    // Nonces are per signer.
    w.accept(signed(acct(2), 1, Action::SubmitJob(job_spec(1))));
    w.accept(signed(acct(1), 6, Action::SubmitJob(job_spec(1))));
    assert_eq!(w.state.nonce(&acct(1)), 6);
    assert_eq!(w.state.nonce(&acct(2)), 1);
    assert_eq!(w.state.jobs.len(), 2);
}

#[test]
fn rejected_action_does_not_use_up_its_nonce() {
    let mut w = World::new();
    let mut bad = job_spec(1);
    bad.tasks.clear();
    assert!(matches!(
        w.reject(signed(acct(1), 1, Action::SubmitJob(bad))),
        Rejection::InvalidJobSpec(_)
    ));
    assert_eq!(w.state.nonce(&acct(1)), 0);
    w.accept(signed(acct(1), 1, Action::SubmitJob(job_spec(1))));
    assert_eq!(w.state.nonce(&acct(1)), 1);
}

#[test]
fn leader_commands_do_not_touch_nonces() {
    let mut w = World::new();
    w.accept(signed(
        acct(1),
        1,
        Action::RegisterProvider(provider_spec()),
    ));
    w.lead(LeaderCommand::ProviderLost { provider: acct(1) });
    assert_eq!(w.state.nonce(&acct(1)), 1);
    assert!(w.state.accounts.values().filter(|a| a.nonce > 0).count() == 1);
}

#[test]
fn time_never_goes_backwards_and_rejections_do_not_move_it() {
    let mut w = World::new();
    w.time = 500;
    w.register(acct(1), provider_spec());
    assert_eq!(w.state.now, 500);
    // An entry stamped earlier is applied at the state's time.
    w.time = 100;
    let job = w.submit(acct(2), job_spec(1));
    assert_eq!(w.state.now, 500);
    assert_eq!(w.job(job).submitted_at, 500);
    // ...so a deadline between the entry's time and the state's is already past.
    let spec = JobSpec {
        deadline: 300,
        ..job_spec(1)
    };
    assert!(matches!(
        w.act_rejected(acct(2), Action::SubmitJob(spec)),
        Rejection::InvalidJobSpec(why) if why.contains("deadline")
    ));
    // A rejected entry stamped later does not advance the clock either.
    w.time = 900;
    w.act_rejected(acct(2), Action::CancelJob(99));
    assert_eq!(w.state.now, 500);
    assert_eq!(w.state.applied, 2);
    w.act(acct(2), Action::CancelJob(job));
    assert_eq!(w.state.now, 900);
    assert_eq!(w.state.applied, 3);
    assert_eq!(w.job(job).finished_at, Some(900));
}
