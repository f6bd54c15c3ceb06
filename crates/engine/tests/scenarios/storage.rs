//! Rules 10: storage deposits — locked with the job, returned on release (by the owner once the
//! job ended, by the leader after the retention time), the output room every result is held to.

use crate::support::*;
use engine::{
    AccountId, Action, Event, Genesis, JobStatus, LeaderCommand, Rejection, StorageClaim,
    StorageParams, TaskOutcome,
};

const OWNER: u8 = 1;
const PROVIDER: u8 = 2;

/// A network without fees whose storage costs 10 per KiB, kept 500 ms after a job ends, with at
/// most 4 KiB of output room per task.
fn world() -> World {
    let mut w = World::with_genesis(&Genesis {
        storage: Some(StorageParams {
            deposit_per_kib: 10,
            retention_ms: 500,
            max_output_bytes: 4096,
        }),
        ..Genesis {
            params: engine::LedgerParams::free(),
            allocations: (1..=5).map(|n| (acct(n), 100_000_000)).collect(),
            engine: Default::default(),
            verification: Default::default(),
            validators: Default::default(),
            rules: engine::RULES,
            action_fee: 0,
            storage: None,
            carbon: None,
            staking: None,
        }
    });
    w.money_events = true;
    w.register(acct(PROVIDER), provider_spec());
    w
}

/// 2 KiB of inputs and 1 KiB of output room per task: 5 KiB for three tasks, a deposit of 50.
fn claim() -> StorageClaim {
    StorageClaim {
        input_bytes: 2048,
        output_bytes: 1024,
    }
}

fn submit(w: &mut World, tasks: usize, claim: StorageClaim) -> u64 {
    let events = w.act(
        acct(OWNER),
        Action::SubmitJobWithStorage {
            spec: job_spec(tasks),
            storage: claim,
        },
    );
    events
        .iter()
        .find_map(|e| match e {
            Event::JobSubmitted { job, .. } => Some(*job),
            _ => None,
        })
        .expect("a job")
}

fn balance(w: &World, n: u8) -> u128 {
    w.state.balance(&acct(n))
}

/// Runs every task of job 1 (three tasks) on the provider, each returning `size` bytes.
fn run_all(w: &mut World, job: u64, size: u64) -> Vec<Event> {
    let tasks: Vec<_> = (0..3).map(|i| tid(job, i)).collect();
    w.assign(acct(PROVIDER), &tasks);
    w.report(
        acct(PROVIDER),
        tasks
            .iter()
            .map(|t| engine::TaskReport {
                output_size: size,
                ..success(*t, 7, 10)
            })
            .collect(),
    )
}

#[test]
fn a_deposit_is_locked_with_the_job_and_returned_on_the_owners_release() {
    let mut w = world();
    let supply = w.state.check_supply().unwrap();
    let before = balance(&w, OWNER);
    let job = submit(&mut w, 3, claim());
    let escrow = w.job(job).escrow.locked;
    assert_eq!(balance(&w, OWNER), before - escrow - 50);
    assert_eq!(w.state.storage.jobs[&job].deposit, 50);
    assert_eq!(w.state.check_supply().unwrap(), supply);
    assert_eq!(w.state.output_limit(job), Some(1024));
    assert_eq!(
        w.state.task_descriptor(tid(job, 0)).unwrap().output_limit,
        Some(1024)
    );

    // Not while the job runs.
    let running = w.act_rejected(acct(OWNER), Action::ReleaseJob(job));
    assert!(matches!(running, Rejection::StorageHeld(ref why) if why.contains("not ended")));
    run_all(&mut w, job, 1024);
    assert_eq!(w.job(job).status, JobStatus::Completed);
    // Only its owner.
    assert_eq!(
        w.act_rejected(acct(3), Action::ReleaseJob(job)),
        Rejection::NotJobOwner(job)
    );
    let paid = balance(&w, OWNER);
    let events = w.act(acct(OWNER), Action::ReleaseJob(job));
    assert_eq!(
        events,
        vec![Event::StorageReleased {
            job,
            owner: acct(OWNER),
            amount: 50
        }]
    );
    assert_eq!(balance(&w, OWNER), paid + 50);
    assert!(w.state.storage_released(job));
    assert_eq!(w.state.check_supply().unwrap(), supply);
    // Once.
    assert!(matches!(
        w.act_rejected(acct(OWNER), Action::ReleaseJob(job)),
        Rejection::StorageHeld(ref why) if why.contains("already")
    ));
    assert!(w.state.releasable_storage(u64::MAX).is_empty());
}

#[test]
fn the_leader_releases_storage_only_after_the_retention_time() {
    let mut w = world();
    let job = submit(&mut w, 3, claim());
    w.act(acct(OWNER), Action::CancelJob(job));
    let ended = w.job(job).finished_at.unwrap();
    assert!(w.state.releasable_storage(ended + 499).is_empty());
    let early = w.lead_rejected(LeaderCommand::ReleaseStorage { jobs: vec![job] });
    assert!(matches!(early, Rejection::StorageHeld(ref why) if why.contains("kept until")));
    w.time = ended + 500;
    assert_eq!(w.state.releasable_storage(w.time), vec![job]);
    // A list naming a job twice, or one with nothing to release, is refused whole.
    let twice = w.lead_rejected(LeaderCommand::ReleaseStorage {
        jobs: vec![job, job],
    });
    assert!(matches!(twice, Rejection::StorageHeld(ref why) if why.contains("twice")));
    w.lead_rejected(LeaderCommand::ReleaseStorage { jobs: vec![] });
    w.lead_rejected(LeaderCommand::ReleaseStorage {
        jobs: vec![job, 99],
    });
    let events = w.lead(LeaderCommand::ReleaseStorage { jobs: vec![job] });
    assert!(matches!(
        events[..],
        [Event::StorageReleased { amount: 50, .. }]
    ));
    w.state.check_supply().unwrap();
}

#[test]
fn a_network_that_prices_storage_refuses_jobs_without_a_claim_and_claims_beyond_its_rules() {
    let mut w = world();
    assert_eq!(
        w.act_rejected(acct(OWNER), Action::SubmitJob(job_spec(1))),
        Rejection::StorageUnclaimed
    );
    let big = w.act_rejected(
        acct(OWNER),
        Action::SubmitJobWithStorage {
            spec: job_spec(1),
            storage: StorageClaim {
                input_bytes: 0,
                output_bytes: 4097,
            },
        },
    );
    assert!(matches!(big, Rejection::InvalidJobSpec(ref why) if why.contains("output room")));
    // The deposit and the escrow are paid together, or not at all.
    let poor = w.act_rejected(
        acct(OWNER),
        Action::SubmitJobWithStorage {
            spec: job_spec(1),
            storage: StorageClaim {
                input_bytes: 1 << 40,
                output_bytes: 0,
            },
        },
    );
    assert!(matches!(poor, Rejection::InsufficientFunds { .. }));
    let overflow = w.act_rejected(
        acct(OWNER),
        Action::SubmitJobWithStorage {
            spec: job_spec(2),
            storage: StorageClaim {
                input_bytes: u64::MAX,
                output_bytes: 1,
            },
        },
    );
    assert!(matches!(overflow, Rejection::TooLarge(_)));
}

#[test]
fn a_result_larger_than_the_output_room_is_a_failed_attempt() {
    let mut w = world();
    let job = submit(&mut w, 3, claim());
    let events = run_all(&mut w, job, 1025);
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::TaskAttemptFailed { reason, .. } if reason.contains("output room")
        )),
        "{events:?}"
    );
    assert_ne!(w.job(job).status, JobStatus::Completed);
    // A failure may say anything about its size.
    let mut w = world();
    let job = submit(&mut w, 1, claim());
    w.assign(acct(PROVIDER), &[tid(job, 0)]);
    let events = w.report(
        acct(PROVIDER),
        vec![engine::TaskReport {
            output_size: 1 << 30,
            ..failure(tid(job, 0), TaskOutcome::Exit(1))
        }],
    );
    assert!(
        !events.iter().any(|e| matches!(
            e,
            Event::TaskAttemptFailed { reason, .. } if reason.contains("output room")
        )),
        "{events:?}"
    );
}

#[test]
fn a_network_without_a_storage_price_takes_claims_without_a_deposit_and_older_rules_none() {
    let mut w = World::new();
    w.money_events = true;
    let owner: AccountId = acct(OWNER);
    let events = w.act(
        owner,
        Action::SubmitJobWithStorage {
            spec: job_spec(1),
            storage: claim(),
        },
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::StorageDeposited { amount: 0, .. }))
    );
    w.act(owner, Action::SubmitJob(job_spec(1)));
    let mut old = World::new().under_rules(9);
    let refused = old.act_rejected(
        owner,
        Action::SubmitJobWithStorage {
            spec: job_spec(1),
            storage: claim(),
        },
    );
    assert!(matches!(refused, Rejection::NeedsRules { needs: 10, .. }));
}
