//! Hostile guests are contained: each such job fails with a reason naming the cause, after the
//! allowed attempts, and the very same provider process then runs a normal job correctly.

use crate::support::{WAIT, World, failure_reason, guest, pi_output, pi_spec, toml_path};
use engine::{JobStatus, ProviderStatus};

/// One single-task job running `module` with the given limits.
fn single_task(module: &str, fuel: u64, memory: &str, timeout: &str, output: &str) -> String {
    format!(
        r#"module = {module}
fuel = {fuel}
memory = "{memory}"
timeout = "{timeout}"
deadline = "10m"
max_price = 1
output = {output}

[[task]]
args = []

[aggregate]
kind = "concat"
"#,
        module = toml_path(&guest(module)),
    ) + crate::support::SINGLE_RUN
}

/// What each hostile job is, and what its failure reason must mention.
struct Case {
    name: &'static str,
    spec: String,
    cause: &'static str,
}

#[test]
fn hostile_guests_fail_with_their_cause_and_the_provider_keeps_serving() {
    const BIG_FUEL: u64 = 1_000_000_000_000;
    let cases = [
        Case {
            name: "spin, small fuel",
            spec: single_task(
                "hostile/spin.wasm",
                20_000_000,
                "64MiB",
                "60s",
                r#""stdout""#,
            ),
            cause: "fuel",
        },
        Case {
            name: "spin, short timeout",
            spec: single_task(
                "hostile/spin.wasm",
                BIG_FUEL,
                "64MiB",
                "500ms",
                r#""stdout""#,
            ),
            cause: "wall-clock",
        },
        Case {
            name: "membomb",
            spec: single_task(
                "hostile/membomb.wasm",
                300_000_000,
                "16MiB",
                "20s",
                r#""stdout""#,
            ),
            cause: "memory",
        },
        Case {
            name: "bigout",
            spec: single_task(
                "hostile/bigout.wasm",
                BIG_FUEL,
                "64MiB",
                "20s",
                r#""stdout""#,
            ),
            cause: "output",
        },
        Case {
            name: "trap",
            spec: single_task(
                "hostile/trap.wasm",
                100_000_000,
                "64MiB",
                "20s",
                r#""stdout""#,
            ),
            cause: "trapped",
        },
        Case {
            name: "exit3",
            spec: single_task(
                "hostile/exit3.wasm",
                100_000_000,
                "64MiB",
                "20s",
                r#""stdout""#,
            ),
            cause: "status 3",
        },
        Case {
            name: "diskbomb",
            spec: single_task(
                "hostile/diskbomb.wasm",
                BIG_FUEL,
                "64MiB",
                "20s",
                r#"{ file = "out.txt" }"#,
            ),
            cause: "output",
        },
    ];

    let w = World::new();
    let mut c = w.coordinator(&[]);
    let mut p = w.provider(&c, 2);

    let jobs: Vec<_> = cases
        .iter()
        .enumerate()
        .map(|(i, case)| {
            let spec = w.write(&format!("hostile-{i}.toml"), &case.spec);
            (case, w.submit(&c.url, &spec))
        })
        .collect();

    let mut runs = 0;
    for (case, job) in &jobs {
        let view = c.http.wait_job(*job);
        let reason = failure_reason(&view);
        assert!(
            reason.contains(case.cause),
            "{}: reason {reason:?} does not mention {:?}",
            case.name,
            case.cause
        );
        let detail = c.http.job_with_tasks(*job);
        let task = detail.tasks.first().expect("per-task detail");
        assert_eq!(task.state, "failed", "{}: {task:?}", case.name);
        // A failure the sandbox reproduces exactly is verified: on a network of one provider,
        // no other operator could check it, so it fails the task at once. One that cannot be
        // verified (a wall-clock timeout) is an attempt: the task is tried 3 times.
        let verified = task.runs.len() == 1
            && matches!(task.runs[0].outcome, engine::RunOutcome::Failure { .. })
            && task.failures == 0;
        assert!(
            verified || (task.failures == 3 && task.runs.len() == 3),
            "{}: tried once and verified, or 3 times: {task:?}",
            case.name
        );
        runs += task.runs.len() as u64;
        let last = task.last_error.as_deref().unwrap_or_default();
        assert!(
            last.contains(case.cause),
            "{}: last error {last:?}",
            case.name
        );
        assert!(
            view.output.is_none(),
            "{}: a failed job has output",
            case.name
        );
    }

    // The same provider process survived all of it and still does correct work.
    assert!(p.proc.alive(), "the provider died:\n{}", p.proc.logs());
    let spec = w.write("pi.toml", pi_spec(100_000, 4));
    let job = w.submit(&c.url, &spec);
    let view = c.http.wait_completed(job);
    assert_eq!(view.status, JobStatus::Completed);
    assert_eq!(view.tasks_per_provider.get(&p.id), Some(&4), "{view:?}");
    assert_eq!(
        String::from_utf8_lossy(&c.http.output(job)),
        pi_output(100_000, 4)
    );

    let me = c.http.provider(p.id).expect("provider listed");
    assert_eq!(me.status, ProviderStatus::Active);
    assert_eq!(me.stats.tasks_failed, runs, "{me:?}");
    assert_eq!(me.stats.tasks_completed, 4, "{me:?}");
    assert_eq!(me.stats.times_lost, 0, "{me:?}");
    assert!(p.proc.alive() && c.proc.alive());
}

/// A provider that reports a result whose output it never uploaded is refused (422
/// `output_missing`) and nothing is logged: a result is accepted only once its output is stored,
/// or the job would complete, pay, and answer "output blob is missing" for good. The same report
/// is accepted once the output is uploaded.
#[test]
fn a_result_whose_output_was_never_uploaded_is_refused() {
    use engine::{Hash, TaskOutcome, TaskReport};
    let w = World::new();
    let c = w.coordinator(&[]);
    let spec = w.write("one.toml", pi_spec(1_000, 1));
    let job = w.submit(&c.url, &spec);
    // A provider by hand: funded, staked and registered over the API.
    let me = c.provider_by_hand();
    let client = &c.http.client;
    let got = crate::support::poll("a task for the hand-made provider", WAIT, || {
        let r = c
            .http
            .block_on(client.fetch(&me, 1, std::time::Duration::ZERO, vec![], vec![]))
            .unwrap();
        r.tasks.first().map(|t| t.task)
    });
    let output = b"3.14\n".to_vec();
    let report = TaskReport {
        task: got,
        outcome: TaskOutcome::Success,
        output_hash: Hash::of(&output),
        output_size: output.len() as u64,
        fuel_used: 1_000,
    };
    let fetch = |max| api::wire::Request::Fetch {
        max,
        wait_ms: 0,
        held: vec![got],
        cached: vec![],
    };
    let before = c.http.status().log_length;
    let refused = c
        .http
        .block_on(client.exchange(&me, vec![report.clone()], fetch(0)))
        .unwrap_err();
    assert_eq!(refused.status(), Some(422), "{refused}");
    assert!(
        refused.to_string().contains("output_missing")
            && refused.to_string().contains("has not been uploaded"),
        "{refused}"
    );
    assert_eq!(c.http.status().log_length, before, "a refusal was logged");
    let view = c.http.block_on(client.job(job, false)).unwrap();
    assert_eq!(view.tasks_done, 0, "{view:?}");

    // Uploaded, the same result is accepted.
    c.http
        .block_on(client.put_blob(&me, output.clone().into()))
        .unwrap();
    let accepted = c
        .http
        .block_on(client.exchange(&me, vec![report], fetch(0)))
        .unwrap();
    assert!(accepted.reported.is_some(), "{accepted:?}");
    let done = c.http.wait_job(job);
    assert_eq!(done.status, JobStatus::Completed, "{done:?}");
    assert_eq!(c.http.output(job), output);
}
