//! Rules 24: runs' energy in reports and a job's sum over its accepted runs, providers'
//! announcements (suspension, carbon intensity) and the scheduler's soft preference for
//! low-carbon providers.

use crate::support::*;
use engine::{
    AccountId, Action, Announcement, Dispatch, EnergyMethod, EnergyReport, JobPreferences,
    ProviderSpec, Redundancy, Rejection, Suspension, TaskReport,
};

fn metered(reports: Vec<TaskReport>, millijoules: &[u64], method: EnergyMethod) -> Action {
    Action::ReportMeteredResults {
        energy: millijoules
            .iter()
            .map(|mj| {
                Some(EnergyReport {
                    millijoules: *mj,
                    method,
                })
            })
            .collect(),
        reports,
    }
}

fn in_region(region: &str) -> ProviderSpec {
    ProviderSpec {
        region: region.into(),
        ..provider_spec()
    }
}

fn announce(suspended: &[Suspension], grams_per_kwh: Option<u32>) -> Action {
    Action::Announce(Announcement {
        suspended: suspended.to_vec(),
        grams_per_kwh,
    })
}

fn low_carbon(submission: Action) -> Action {
    Action::SubmitWithPreferences {
        preferences: JobPreferences {
            prefer_low_carbon: true,
        },
        submission: Box::new(submission),
    }
}

/// What `who` picks at the world's time with `idle` waiting for work.
fn pick_waiting(w: &World, who: AccountId, idle: &[AccountId]) -> Vec<engine::TaskId> {
    let none = |_: &AccountId, _: &engine::Hash| false;
    w.state.pick_tasks(
        who,
        4,
        &Dispatch {
            now: w.time,
            cached: &none,
            idle,
        },
    )
}

/// A job's energy is the sum over the runs whose results were accepted: a replica that
/// disagreed with the quorum does not count, and each run's carbon is its energy times its
/// provider's intensity (announced, or its region's in the table).
#[test]
fn a_jobs_energy_sums_its_accepted_runs() {
    let mut w = World::new();
    for p in 2..=4 {
        w.register(acct(p), in_region("eu-west"));
    }
    // Provider 4 runs on its own solar panels.
    w.act(acct(4), announce(&[], Some(30)));
    let spec = engine::JobSpec {
        redundancy: Redundancy::Fixed {
            quorum: 2,
            max_results: 3,
        },
        ..job_spec(1)
    };
    let job = w.submit(acct(9), spec);
    let task = tid(job, 0);
    w.assign(acct(2), &[task]);
    w.assign(acct(3), &[task]);
    w.act(
        acct(2),
        metered(
            vec![success(task, 0x11, 50)],
            &[5_000],
            EnergyMethod::Modelled,
        ),
    );
    w.act(
        acct(3),
        metered(
            vec![success(task, 0x22, 50)],
            &[7_000],
            EnergyMethod::Modelled,
        ),
    );
    assert_eq!(w.state.job_energy(job), engine::JobEnergy::default());
    w.assign(acct(4), &[task]);
    w.act(
        acct(4),
        metered(
            vec![success(task, 0x22, 50)],
            &[9_000],
            EnergyMethod::Measured,
        ),
    );
    assert_eq!(w.job(job).status, engine::JobStatus::Completed);
    let energy = w.state.job_energy(job);
    // 7 J at eu-west's 280 g/kWh and 9 J at 30 g/kWh: (7000 × 280 + 9000 × 30) / 3600 µg.
    assert_eq!(
        energy,
        engine::JobEnergy {
            millijoules: 16_000,
            co2e_micrograms: 619,
            runs: 2,
            measured: 1,
            unreported: 0,
        }
    );
    // Provider 2's disagreeing run is kept, but is not the job's.
    assert_eq!(w.state.energy.runs[&task].len(), 3);
}

/// A report without energy (a provider from before rules 24) counts as an accepted run whose
/// energy is unknown; one for a task the provider does not hold leaves no figure.
#[test]
fn runs_reported_without_energy_are_counted_as_unreported() {
    let mut w = World::new();
    w.register(acct(2), provider_spec());
    let job = w.submit(acct(9), job_spec(2));
    w.assign(acct(2), &[tid(job, 0), tid(job, 1)]);
    w.report(acct(2), vec![success(tid(job, 0), 1, 10)]);
    w.act(
        acct(2),
        metered(
            vec![success(tid(job, 1), 2, 10), success(tid(job, 0), 1, 10)],
            &[3_600_000, 1],
            EnergyMethod::Modelled,
        ),
    );
    let energy = w.state.job_energy(job);
    assert_eq!((energy.runs, energy.unreported), (1, 1));
    // 3.6 kJ = 1 Wh at 280 g/kWh: 0.28 g.
    assert_eq!(
        (energy.millijoules, energy.co2e_micrograms),
        (3_600_000, 280_000)
    );
    assert!(!w.state.energy.runs.contains_key(&tid(job, 0)));
}

/// Every new input is refused whole, with a reason, when it cannot be, and before rules 24.
#[test]
fn bad_reports_announcements_and_preferences_are_refused() {
    let mut w = World::new();
    w.register(acct(2), provider_spec());
    let job = w.submit(acct(9), job_spec(1));
    w.assign(acct(2), &[tid(job, 0)]);
    let report = || vec![success(tid(job, 0), 1, 10)];
    let rejection = w.act_rejected(acct(2), metered(report(), &[], EnergyMethod::Modelled));
    assert!(
        matches!(rejection, Rejection::InvalidReport(ref why) if why.contains("1 results with 0"))
    );
    let too_much = engine::energy::MAX_RUN_MILLIJOULES + 1;
    let rejection = w.act_rejected(
        acct(2),
        metered(report(), &[too_much], EnergyMethod::Measured),
    );
    assert!(
        matches!(rejection, Rejection::InvalidReport(_)),
        "{rejection}"
    );
    let twice = announce(&[Suspension::OnBattery, Suspension::OnBattery], None);
    assert!(matches!(
        w.act_rejected(acct(2), twice),
        Rejection::InvalidAnnouncement(_)
    ));
    assert!(matches!(
        w.act_rejected(acct(2), announce(&[], Some(2_001))),
        Rejection::InvalidAnnouncement(_)
    ));
    assert_eq!(
        w.act_rejected(acct(7), announce(&[], None)),
        Rejection::UnknownProvider(acct(7))
    );
    let nested = low_carbon(low_carbon(Action::SubmitJob(job_spec(1))));
    assert!(matches!(
        w.act_rejected(acct(9), nested),
        Rejection::InvalidJobSpec(_)
    ));
    assert!(matches!(
        w.act_rejected(acct(9), low_carbon(Action::Faucet)),
        Rejection::InvalidJobSpec(_)
    ));
    // Rules 23 knows none of them.
    let mut old = World::new().under_rules(23);
    old.register(acct(2), provider_spec());
    let job = old.submit(acct(9), job_spec(1));
    old.assign(acct(2), &[tid(job, 0)]);
    for action in [
        metered(
            vec![success(tid(job, 0), 1, 10)],
            &[1],
            EnergyMethod::Modelled,
        ),
        announce(&[Suspension::Paused], None),
        low_carbon(Action::SubmitJob(job_spec(1))),
    ] {
        assert!(matches!(
            old.act_rejected(acct(2), action),
            Rejection::NeedsRules { needs: 24, .. }
        ));
    }
}

/// A suspended provider gets no work and is not waited for, but still reports what it ran;
/// announcing again, registering again or leaving ends the suspension (and forgets the
/// announced intensity).
#[test]
fn a_suspended_provider_takes_no_work_and_is_not_counted_on() {
    let mut w = World::new();
    w.register(acct(1), provider_spec());
    // Fast, and the only one with 4 GiB.
    let fast = ProviderSpec {
        benchmark_score: 10_000,
        memory_bytes: 4 << 30,
        ..provider_spec()
    };
    w.register(acct(2), fast.clone());
    let first = w.submit(acct(9), job_spec(1));
    w.assign(acct(2), &[tid(first, 0)]);
    let events = w.act(acct(2), announce(&[Suspension::OwnerActive], None));
    assert!(events.iter().any(|e| matches!(
        e,
        engine::Event::ProviderAnnounced { suspended, .. } if suspended == &[Suspension::OwnerActive]
    )));
    assert!(w.state.is_suspended(&acct(2)));
    let job = w.submit(acct(9), job_spec(2));
    assert!(w.state.pick(acct(2), 4).is_empty());
    assert_eq!(
        w.lead_rejected(engine::LeaderCommand::AssignTasks {
            provider: acct(2),
            tasks: vec![tid(job, 0)],
        }),
        Rejection::ProviderSuspended(acct(2))
    );
    // The slow provider is not held back for a fast one that is suspended.
    assert_eq!(
        pick_waiting(&w, acct(1), &[acct(2)]),
        vec![tid(job, 0), tid(job, 1)]
    );
    // Its run in flight is still its own to report.
    w.act(
        acct(2),
        metered(
            vec![success(tid(first, 0), 1, 10)],
            &[10],
            EnergyMethod::Modelled,
        ),
    );
    assert_eq!(w.job(first).status, engine::JobStatus::Completed);
    // A job only the suspended provider can run says so while it waits.
    let big = engine::JobSpec {
        limits: engine::Limits {
            memory_bytes: 2 << 30,
            ..limits()
        },
        ..job_spec(1)
    };
    let waiting = w.submit(acct(9), big);
    assert!(w.state.job_outlook(job).is_none());
    let outlook = w.state.job_outlook(waiting).expect("a warning");
    assert!(
        outlook.contains("suspended by their owners' rules"),
        "{outlook}"
    );
    w.act(acct(2), announce(&[], None));
    assert!(!w.state.is_suspended(&acct(2)));
    assert_eq!(w.state.job_outlook(waiting), None);
    w.act(
        acct(2),
        announce(&[Suspension::OutsideHours, Suspension::Paused], Some(20)),
    );
    assert_eq!(w.state.grams_per_kwh_of(w.provider(acct(2))), 20);
    w.register(acct(2), fast);
    assert!(!w.state.is_suspended(&acct(2)));
    // Its intensity is forgotten too (eu-west's again) until it announces it again.
    assert_eq!(w.state.grams_per_kwh_of(w.provider(acct(2))), 280);
    w.act(acct(2), announce(&[Suspension::OnBattery], None));
    w.act(acct(2), Action::LeaveProvider);
    assert!(!w.state.is_suspended(&acct(2)));
}

/// A job that prefers low-carbon providers is held back from a provider on dirty electricity
/// for a waiting clean one while it is young, goes to the dirty one when no clean one waits,
/// and a clean provider takes it before other work of equal standing.
#[test]
fn low_carbon_jobs_prefer_clean_providers_softly() {
    let mut w = World::new();
    // Poland's grid (660 g/kWh, in the table), and Sweden's north (30 g/kWh).
    w.register(acct(1), in_region("pl"));
    w.register(acct(2), in_region("eu-north"));
    assert!(!w.state.low_carbon(w.provider(acct(1))));
    assert!(w.state.low_carbon(w.provider(acct(2))));
    let plain = w.submit(acct(8), job_spec(1));
    let green = w.state.next_job;
    w.act(acct(9), low_carbon(Action::SubmitJob(job_spec(1))));
    assert!(w.state.prefers_low_carbon(green));
    assert!(!w.state.prefers_low_carbon(plain));
    // The dirty provider is held off the green job (it takes the plain one) while the clean
    // one waits; the clean one takes the green job first although it is the younger.
    assert_eq!(pick_waiting(&w, acct(1), &[acct(2)]), vec![tid(plain, 0)]);
    assert_eq!(
        pick_waiting(&w, acct(2), &[acct(1)]).first(),
        Some(&tid(green, 0))
    );
    // Nobody clean waiting: the dirty provider takes it.
    assert_eq!(
        pick_waiting(&w, acct(1), &[]),
        vec![tid(plain, 0), tid(green, 0)]
    );
    // An announced intensity overrides the region's: now the "dirty" one is clean.
    w.act(acct(1), announce(&[], Some(20)));
    assert!(w.state.low_carbon(w.provider(acct(1))));
    assert_eq!(
        pick_waiting(&w, acct(1), &[acct(2)]).first(),
        Some(&tid(green, 0))
    );
}
