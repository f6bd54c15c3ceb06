//! The requester's commands against a live network: `job submit --wait --out`, `job status`,
//! `job results`, `GRIDMINT_COORDINATOR`, and their exit codes.

use crate::support::{World, failure_reason, guest, pi_output, pi_spec, toml_path};
use api::wire::JobView;
use engine::JobStatus;

fn trap_spec() -> String {
    format!(
        r#"module = {module}
fuel = 100_000_000
memory = "64MiB"
timeout = "20s"
deadline = "10m"
max_price = 1
output = "stdout"

[tasks]
range = [0, 2]
args = ["{{i}}"]

[aggregate]
kind = "concat"
"#,
        module = toml_path(&guest("hostile/trap.wasm")),
    ) + crate::support::SINGLE_RUN
}

#[test]
fn submit_wait_exit_codes_and_outputs() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let _p = w.provider(&c, 2);
    w.fund_requester(&c.url);
    let out_dir = w.dir("out");

    // A failing job: non-zero exit, no output file.
    let bad = w.write("trap.toml", trap_spec());
    let bad_out = out_dir.join("bad.out");
    w.cli(&[
        "job",
        "submit",
        bad.to_str().unwrap(),
        "--coordinator",
        &c.url,
        "--wait",
        "--out",
        bad_out.to_str().unwrap(),
    ])
    .fails();
    assert!(
        !bad_out.exists(),
        "a failed job wrote {}",
        bad_out.display()
    );

    // A good job, with the coordinator from the environment: exit 0, exact output.
    let good = w.write("pi.toml", pi_spec(100_000, 4));
    let good_out = out_dir.join("good.out");
    w.cli_env(
        &[
            "job",
            "submit",
            good.to_str().unwrap(),
            "--wait",
            "--out",
            good_out.to_str().unwrap(),
        ],
        &[("GRIDMINT_COORDINATOR", &c.url)],
    )
    .ok();
    let written = std::fs::read_to_string(&good_out).expect("--out file written");
    assert_eq!(written, pi_output(100_000, 4));

    // Without --json, submit prints the job id.
    let ran = w
        .cli(&[
            "job",
            "submit",
            good.to_str().unwrap(),
            "--coordinator",
            &c.url,
        ])
        .ok();
    let id: u64 = ran
        .stdout
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("job submit printed {:?}, not a job id: {e}", ran.stdout));
    let view = c.http.wait_completed(id);
    assert_eq!(c.http.output(id), pi_output(100_000, 4).as_bytes());
    assert_eq!(view.tasks_total, 4);

    // A failed job by id: status says failed (JSON and human), results refuse.
    let failed = w.submit(&c.url, &bad);
    let view = c.http.wait_job(failed);
    assert!(failure_reason(&view).contains("trapped"), "{view:?}");
    let json = w
        .cli(&[
            "job",
            "status",
            &failed.to_string(),
            "--coordinator",
            &c.url,
            "--json",
        ])
        .ok();
    let parsed: JobView = serde_json::from_str(json.stdout.trim())
        .unwrap_or_else(|e| panic!("job status --json is not a JobView ({e}): {}", json.stdout));
    assert_eq!(parsed.id, failed);
    assert!(
        matches!(parsed.status, JobStatus::Failed { .. }),
        "{parsed:?}"
    );
    let human = w
        .cli(&[
            "job",
            "status",
            &failed.to_string(),
            "--coordinator",
            &c.url,
        ])
        .ok();
    assert!(
        human.stdout.to_lowercase().contains("failed"),
        "human status does not say failed: {}",
        human.stdout
    );
    let results_out = out_dir.join("failed-results.out");
    w.cli(&[
        "job",
        "results",
        &failed.to_string(),
        "--coordinator",
        &c.url,
        "--out",
        results_out.to_str().unwrap(),
    ])
    .fails();
    assert!(!results_out.exists());

    // Unknown job: non-zero.
    w.cli(&["job", "status", "999", "--coordinator", &c.url, "--json"])
        .fails();
    // No coordinator listening: non-zero, not a hang.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let nowhere = format!("http://{closed}");
    w.cli(&["job", "status", "1", "--coordinator", &nowhere, "--json"])
        .fails();
}

#[test]
fn only_the_owner_can_cancel_and_a_cancelled_job_stays_cancelled() {
    let w = World::new();
    // No provider: the job stays queued until cancelled.
    let c = w.coordinator(&[]);
    let spec = w.write("pi.toml", pi_spec(1000, 4));
    let job = w.submit(&c.url, &spec);
    let id = job.to_string();

    let other_home = w.dir("other-home");
    // (Funded: without the fee per action a stranger's cancel is refused before its owner is
    // looked at.)
    w.cli_env(
        &["wallet", "faucet", "--coordinator", &c.url],
        &[("GRIDMINT_HOME", other_home.to_str().unwrap())],
    )
    .ok();
    let other = w.cli_env(
        &["job", "cancel", &id, "--coordinator", &c.url],
        &[("GRIDMINT_HOME", other_home.to_str().unwrap())],
    );
    let other = other.fails();
    assert!(
        other.stderr.contains("owner"),
        "refusal should say only the owner may cancel: {}",
        other.stderr
    );
    assert_eq!(c.http.job(job).status, JobStatus::Running);

    w.cli(&["job", "cancel", &id, "--coordinator", &c.url]).ok();
    let view = c.http.job(job);
    assert_eq!(view.status, JobStatus::Cancelled);
    assert_eq!(view.tasks_queued, 0);
    assert_eq!(c.http.status().tasks_queued, 0);

    // Cancelling again is refused; the output of a cancelled job does not exist.
    w.cli(&["job", "cancel", &id, "--coordinator", &c.url])
        .fails();
    w.cli(&["job", "results", &id, "--coordinator", &c.url, "--out", "-"])
        .fails();
}

/// `gridmint bench --only ledger --quick --json` runs to its end: every pre-signed transfer is
/// committed and the ledger's balances check out afterwards (each sender has what it was given
/// less one action fee per group, the treasury the fees: the check broke unnoticed when rules 8
/// brought the fee), and it prints the ratio to raw batch verification. The ratio itself is
/// not asserted: a debug build's is no measurement.
#[test]
fn the_ledger_benchmark_runs_and_its_books_balance() {
    let w = World::new();
    let ran = w
        .cli(&["bench", "--only", "ledger", "--quick", "--json"])
        .ok();
    let json = ran.json();
    let ledger = &json["ledger"];
    assert_eq!(ledger["transfers_per_round"], 4096, "{json}");
    assert!(ledger["ratio"].as_f64().is_some_and(|r| r > 0.0), "{json}");
    for key in [
        "committed_per_second",
        "serial_committed_per_second",
        "serial_ratio",
    ] {
        assert!(
            ledger[key].as_f64().is_some_and(|r| r > 0.0),
            "{key}: {json}"
        );
    }
}
