//! Rules 30: float GPU jobs whose results agree within a declared tolerance — replicas from any
//! GPU, results grouped with the first they agree with, outputs carried by the reports and
//! checked against their hashes, kept only while the job may change.

use super::gpu::{declaration, register_gpu, spec};
use crate::support::*;
use engine::{
    Action, Event, Hash, Output, Redundancy, Rejection, TaskId, TaskOutcome, TaskReport, Tolerance,
};

const OWNER: u8 = 1;
const A: &str = "GPU A (10de:2684 550.1 Vulkan)";
const B: &str = "GPU B (1002:744c 24.0 Vulkan)";
const C: &str = "GPU C (8086:56a0 31.0 Vulkan)";

fn tolerance() -> Tolerance {
    Tolerance {
        max_ulps: 4,
        near_zero: 1e-6f32.to_bits(),
    }
}

fn bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// `values` with the first one moved `ulps` representable values up.
fn off(values: &[f32], ulps: u32) -> Vec<f32> {
    let mut moved = values.to_vec();
    moved[0] = f32::from_bits(moved[0].to_bits() + ulps);
    moved
}

const VALUES: [f32; 3] = [1.5, -2.25, 1e-9];

/// A successful result of `task` whose output is `values`, and that output.
fn result(task: TaskId, values: &[f32], fuel: u64) -> (TaskReport, Option<Output>) {
    let out = bytes(values);
    (
        TaskReport {
            task,
            outcome: TaskOutcome::Success,
            output_hash: Hash::of(&out),
            output_size: out.len() as u64,
            fuel_used: fuel,
        },
        Some(Output(out)),
    )
}

fn with_outputs(items: Vec<(TaskReport, Option<Output>)>) -> Action {
    let (reports, outputs): (Vec<_>, Vec<_>) = items.into_iter().unzip();
    Action::ReportResultsWithOutputs {
        energy: vec![None; reports.len()],
        reports,
        outputs,
    }
}

/// A network with three GPU providers of three classes (2: A, 3: B, 4: C) and a tolerant job of
/// `n` tasks under `policy`.
fn network(n: usize, policy: Redundancy) -> (World, u64) {
    let mut w = World::new();
    register_gpu(&mut w, acct(2), A, 1000);
    register_gpu(&mut w, acct(3), B, 1000);
    register_gpu(&mut w, acct(4), C, 1000);
    let mut spec = spec(n);
    spec.redundancy = policy;
    let job = w.state.next_job;
    w.act(
        acct(OWNER),
        Action::SubmitGpuJobWithTolerance {
            spec,
            storage: None,
            gpu: declaration(false),
            tolerance: tolerance(),
        },
    );
    (w, job)
}

const TWO_OF_THREE: Redundancy = Redundancy::Fixed {
    quorum: 2,
    max_results: 3,
};

#[test]
fn results_from_three_classes_agree_within_the_tolerance_and_the_first_is_kept() {
    let (mut w, job) = network(2, TWO_OF_THREE);
    assert_eq!(w.state.tolerance(job), Some(&tolerance()));
    // Classes do not matter: each provider founded its own, and each may take the tasks.
    for p in [2, 3, 4] {
        assert_eq!(w.state.pick(acct(p), 8).len(), 2, "provider {p}");
    }
    let (t0, t1) = (tid(job, 0), tid(job, 1));
    w.assign(acct(2), &[t0, t1]);
    w.assign(acct(3), &[t0, t1]);
    w.verify_events = true;
    // Task 0: 4 ULPs apart agree; the result is the first one's output.
    w.act(acct(2), with_outputs(vec![result(t0, &VALUES, 50)]));
    w.act(
        acct(3),
        with_outputs(vec![result(t0, &off(&VALUES, 4), 50)]),
    );
    let accepted = w.job(job).tasks[0].result.clone().unwrap();
    assert_eq!(accepted.output_hash, Hash::of(&bytes(&VALUES)));
    assert_eq!(accepted.providers, vec![acct(2), acct(3)]);
    // Task 1: 5 ULPs apart do not agree. A third result, 3 ULPs above the first and 2 below
    // the second, agrees with both: it joins the first group, the first result's.
    w.act(acct(2), with_outputs(vec![result(t1, &VALUES, 50)]));
    w.act(
        acct(3),
        with_outputs(vec![result(t1, &off(&VALUES, 5), 50)]),
    );
    assert!(w.job(job).tasks[1].result.is_none());
    assert_eq!(w.job(job).tasks[1].queued, 1, "a third replica");
    w.assign(acct(4), &[t1]);
    let events = w.act(
        acct(4),
        with_outputs(vec![result(t1, &off(&VALUES, 3), 50)]),
    );
    let accepted = w.job(job).tasks[1].result.clone().unwrap();
    assert_eq!(accepted.output_hash, Hash::of(&bytes(&VALUES)));
    assert_eq!(accepted.providers, vec![acct(2), acct(4)]);
    // Provider 3's own output is the evidence against it.
    let wrong = Hash::of(&bytes(&off(&VALUES, 5)));
    assert!(
        events.iter().any(|e| matches!(e,
            Event::ResultRejected { provider, output_hash, agreed_output, .. }
                if *provider == acct(3) && *output_hash == wrong
                    && *agreed_output == accepted.output_hash)),
        "{events:?}"
    );
    // The job is complete and was submitted without storage: its results are final, and the
    // state keeps no output.
    assert!(w.job(job).status.is_finished());
    assert!(w.state.tolerances.outputs.is_empty());
}

#[test]
fn values_near_zero_nans_and_fuel_are_compared_as_documented() {
    let policy = Redundancy::Fixed {
        quorum: 2,
        max_results: 2,
    };
    let (mut w, job) = network(3, policy);
    let ts = [tid(job, 0), tid(job, 1), tid(job, 2)];
    w.assign(acct(2), &ts);
    w.assign(acct(3), &ts);
    // Task 0: a sum that cancels differs by many ULPs near zero, within `near_zero`; NaNs
    // agree whatever their payload.
    let nan = f32::from_bits(0x7fc0_1234);
    w.act(
        acct(2),
        with_outputs(vec![
            result(ts[0], &[4e-7, f32::NAN], 9),
            result(ts[1], &VALUES, 9),
            result(ts[2], &[1e-5], 9),
        ]),
    );
    w.act(
        acct(3),
        with_outputs(vec![
            result(ts[0], &[-3e-7, nan], 9),
            // The same values after a different amount of work: no agreement.
            result(ts[1], &VALUES, 10),
            // Above `near_zero` and far apart in ULPs.
            result(ts[2], &[-1e-5], 9),
        ]),
    );
    assert!(w.job(job).tasks[0].result.is_some());
    assert!(w.job(job).tasks[1].result.is_none());
    assert!(w.job(job).tasks[2].result.is_none());
}

#[test]
fn reports_of_a_tolerant_job_carry_their_outputs_and_nothing_else_does() {
    let (mut w, job) = network(1, TWO_OF_THREE);
    let t0 = tid(job, 0);
    w.assign(acct(2), &[t0]);
    let good = result(t0, &VALUES, 50);
    let refusals: Vec<(Action, &str)> = vec![
        (
            with_outputs(vec![(good.0.clone(), None)]),
            "needs its output",
        ),
        (
            Action::ReportResults(vec![good.0.clone()]),
            "report its result with its output",
        ),
        (
            Action::ReportMeteredResults {
                reports: vec![good.0.clone()],
                energy: vec![None],
            },
            "report its result with its output",
        ),
        (
            with_outputs(vec![(
                good.0.clone(),
                Some(Output(bytes(&off(&VALUES, 1)))),
            )]),
            "not the one its hash and size name",
        ),
        (
            with_outputs(vec![(
                TaskReport {
                    output_size: 11,
                    ..good.0.clone()
                },
                Some(Output(vec![0; 11])),
            )]),
            "whole number of f32",
        ),
        (
            with_outputs(vec![(
                TaskReport {
                    output_size: engine::MAX_TOLERANT_OUTPUT + 4,
                    ..good.0.clone()
                },
                Some(Output(vec![0; engine::MAX_TOLERANT_OUTPUT as usize + 4])),
            )]),
            "within 65536 bytes",
        ),
        (
            with_outputs(vec![(failure(t0, TaskOutcome::OutOfFuel), good.1.clone())]),
            "no output goes with it",
        ),
        (
            Action::ReportResultsWithOutputs {
                reports: vec![good.0.clone()],
                energy: vec![None],
                outputs: vec![],
            },
            "one (or none) for each",
        ),
    ];
    for (action, why) in refusals {
        let rejection = w.act_rejected(acct(2), action);
        assert!(
            matches!(&rejection, Rejection::InvalidReport(says) if says.contains(why)),
            "{why}: {rejection}"
        );
    }
    // A failure needs no output, by any report; the result with its output is taken.
    w.act(acct(2), with_outputs(vec![good]));
    assert_eq!(
        w.state.tolerances.outputs[&t0].keys().collect::<Vec<_>>(),
        vec![&Hash::of(&bytes(&VALUES))]
    );
    w.assign(acct(3), &[t0]);
    w.act(
        acct(3),
        Action::ReportResults(vec![failure(t0, TaskOutcome::OutOfFuel)]),
    );

    // Another job's results carry no output.
    let (mut w, _) = network(1, TWO_OF_THREE);
    let plain = w.state.next_job;
    w.act(
        acct(OWNER),
        Action::SubmitGpuJob {
            spec: spec(1),
            storage: None,
            gpu: declaration(false),
        },
    );
    w.assign(acct(2), &[tid(plain, 0)]);
    let rejection = w.act_rejected(
        acct(2),
        with_outputs(vec![result(tid(plain, 0), &VALUES, 50)]),
    );
    assert!(
        matches!(&rejection, Rejection::InvalidReport(says) if says.contains("no output goes")),
        "{rejection}"
    );
}

#[test]
fn tolerances_are_checked_at_submission_and_need_rules_30() {
    let (mut w, _) = network(1, TWO_OF_THREE);
    let submit = |gpu: engine::GpuJob, tolerance: Tolerance| Action::SubmitGpuJobWithTolerance {
        spec: spec(1),
        storage: None,
        gpu,
        tolerance,
    };
    let table: Vec<(Action, &str)> = vec![
        (
            submit(declaration(true), tolerance()),
            "within a tolerance or on one class",
        ),
        (
            submit(
                declaration(false),
                Tolerance {
                    max_ulps: engine::MAX_ULPS + 1,
                    near_zero: 0,
                },
            ),
            "ULPs",
        ),
        (
            submit(
                declaration(false),
                Tolerance {
                    max_ulps: 1,
                    near_zero: f32::INFINITY.to_bits(),
                },
            ),
            "finite, non-negative",
        ),
    ];
    for (action, why) in table {
        let rejection = w.act_rejected(acct(OWNER), action);
        assert!(
            matches!(&rejection, Rejection::InvalidJobSpec(says) if says.contains(why)),
            "{why}: {rejection}"
        );
    }
    let mut old = World::new().under_rules(29);
    let rejection = old.act_rejected(acct(OWNER), submit(declaration(false), tolerance()));
    assert!(
        matches!(rejection, Rejection::NeedsRules { needs: 30, .. }),
        "{rejection}"
    );
    let rejection = old.act_rejected(acct(2), with_outputs(vec![]));
    assert!(
        matches!(rejection, Rejection::NeedsRules { needs: 30, .. }),
        "{rejection}"
    );
}

#[test]
fn the_tolerance_and_the_outputs_are_part_of_the_state_hash() {
    let (a, _) = network(1, TWO_OF_THREE);
    let mut b = World::new();
    register_gpu(&mut b, acct(2), A, 1000);
    register_gpu(&mut b, acct(3), B, 1000);
    register_gpu(&mut b, acct(4), C, 1000);
    b.act(
        acct(OWNER),
        Action::SubmitGpuJobWithTolerance {
            spec: spec(1),
            storage: None,
            gpu: declaration(false),
            tolerance: Tolerance {
                max_ulps: 5,
                ..tolerance()
            },
        },
    );
    assert_ne!(a.state.hash(), b.state.hash());
    // Two providers' outputs that agree are still two outputs kept.
    let (mut c, job) = network(1, TWO_OF_THREE);
    let (mut d, _) = network(1, TWO_OF_THREE);
    for w in [&mut c, &mut d] {
        w.assign(acct(2), &[tid(job, 0)]);
        w.act(acct(2), with_outputs(vec![result(tid(job, 0), &VALUES, 5)]));
    }
    assert_eq!(c.state.hash(), d.state.hash());
    d.assign(acct(3), &[tid(job, 0)]);
    c.assign(acct(3), &[tid(job, 0)]);
    c.act(acct(3), with_outputs(vec![result(tid(job, 0), &VALUES, 5)]));
    d.act(
        acct(3),
        with_outputs(vec![result(tid(job, 0), &off(&VALUES, 1), 5)]),
    );
    assert_eq!(
        c.job(job).tasks[0].result.as_ref().map(|r| r.output_hash),
        d.job(job).tasks[0].result.as_ref().map(|r| r.output_hash)
    );
    // Both complete (and forget their outputs); the runs differ, so the states do.
    assert_ne!(c.state.hash(), d.state.hash());
}

#[test]
fn a_correctable_jobs_outputs_are_kept_until_its_storage_is_released() {
    let mut w = World::with_genesis(&engine::Genesis {
        storage: Some(engine::StorageParams {
            deposit_per_kib: 1,
            retention_ms: 500,
            max_output_bytes: 4096,
        }),
        params: engine::LedgerParams::free(),
        allocations: (1..=5).map(|n| (acct(n), RICH)).collect(),
        engine: Default::default(),
        verification: Default::default(),
        validators: Default::default(),
        rules: engine::RULES,
        action_fee: 0,
        carbon: None,
        staking: None,
    });
    register_gpu(&mut w, acct(2), A, 1000);
    register_gpu(&mut w, acct(3), B, 1000);
    register_gpu(&mut w, acct(4), C, 1000);
    let mut spec = spec(1);
    // The adaptive policy: a completed job's results may be corrected until its storage goes.
    spec.redundancy = Redundancy::Adaptive;
    let job = w.state.next_job;
    w.act(
        acct(OWNER),
        Action::SubmitGpuJobWithTolerance {
            spec,
            storage: Some(engine::StorageClaim {
                input_bytes: 1024,
                output_bytes: 1024,
            }),
            gpu: declaration(false),
            tolerance: tolerance(),
        },
    );
    let t0 = tid(job, 0);
    for (p, ulps) in [(2, 0), (3, 1), (4, 2)] {
        w.assign(acct(p), &[t0]);
        w.act(
            acct(p),
            with_outputs(vec![result(t0, &off(&VALUES, ulps), 50)]),
        );
    }
    assert_eq!(w.job(job).status, engine::JobStatus::Completed);
    assert!(w.state.correctable(job));
    assert_eq!(w.state.tolerances.outputs[&t0].len(), 3);
    w.act(acct(OWNER), Action::ReleaseJob(job));
    assert!(w.state.tolerances.outputs.is_empty());
    // The tolerance stays: it describes the job.
    assert_eq!(w.state.tolerance(job), Some(&tolerance()));
}

proptest::proptest! {
    /// Three providers' results of one task, each its own distance from a random output: the
    /// task settles as grouping by the first agreeing result says (2 of at most 3).
    #[test]
    fn results_group_with_the_first_result_they_agree_with(
        base in proptest::collection::vec(-1e3f32..1e3, 1..5),
        offsets in proptest::collection::vec(0u32..10, 3),
    ) {
        let (mut w, job) = network(1, TWO_OF_THREE);
        let t0 = tid(job, 0);
        let outputs: Vec<Vec<f32>> = offsets.iter().map(|o| off(&base, *o)).collect();
        let agree = |i: usize, j: usize| {
            tolerance().agree(&bytes(&outputs[i]), &bytes(&outputs[j]))
        };
        // The model: the second result joins the first's group or starts its own; the third
        // joins the first group it agrees with.
        let want: Option<(usize, Vec<u8>)> = if agree(1, 0) {
            Some((0, vec![2, 3]))
        } else if agree(2, 0) {
            Some((0, vec![2, 4]))
        } else if agree(2, 1) {
            Some((1, vec![3, 4]))
        } else {
            None
        };
        for (i, p) in [2u8, 3, 4].into_iter().enumerate() {
            if w.job(job).tasks[0].result.is_some() || w.job(job).status.is_finished() {
                break;
            }
            w.assign(acct(p), &[t0]);
            w.act(acct(p), with_outputs(vec![result(t0, &outputs[i], 50)]));
        }
        let got = w.job(job).tasks[0].result.clone();
        match want {
            Some((first, members)) => {
                let got = got.expect("accepted");
                proptest::prop_assert_eq!(got.output_hash, Hash::of(&bytes(&outputs[first])));
                proptest::prop_assert_eq!(
                    got.providers,
                    members.into_iter().map(acct).collect::<Vec<_>>()
                );
            }
            None => proptest::prop_assert!(got.is_none()),
        }
    }
}
