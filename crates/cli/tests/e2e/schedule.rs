//! Failures and deadlines with real processes: a run its provider never reports times out and
//! another provider finishes the task; a straggler gets a speculative replica long before its
//! time-out; a job past its deadline fails with a partial-results report and a refund of the
//! unspent escrow. (Provider loss and retry exhaustion are in
//! `recovery.rs` and `hostile.rs`.)

use crate::support::*;
use engine::JobStatus;
use std::time::Duration;

#[test]
fn a_run_never_reported_times_out_and_another_provider_finishes_the_task() {
    let w = World::new();
    let c = w.coordinator(&[]);
    // It takes the tasks it is given, never runs them, and keeps heartbeating.
    let staller = w.provider_with(&c, 1, &["--stall"]);
    // One run per task, a 1 s wall limit: the run is due 1 s + the 10 s grace after it starts.
    let spec = pi_spec(100_000, 2).replace("timeout = \"60s\"", "timeout = \"1s\"");
    let job = w.submit(&c.url, &w.write("pi.toml", spec));
    poll("the staller to take a task", WAIT, || {
        (c.http.job(job).tasks_running > 0).then_some(())
    });
    // Alone, the staller's run straggles with no other provider to take a speculative replica,
    // and times out; only then does another provider come.
    poll(
        "the staller's run to time out",
        Duration::from_secs(30),
        || {
            let stats = c.http.provider(staller.id).expect("staller known").stats;
            (stats.tasks_timed_out > 0).then_some(())
        },
    );
    let _honest = w.provider(&c, 1);
    let view = c.http.wait_job_for(job, Duration::from_secs(60));
    assert_completed(&view);
    assert_eq!(c.http.output(job), pi_output(100_000, 2).as_bytes());

    let tasks = c.http.job_with_tasks(job).tasks;
    let timed_out: Vec<_> = tasks.iter().filter(|t| t.failures == 1).collect();
    assert_eq!(timed_out.len(), 1, "{tasks:?}");
    let error = timed_out[0].last_error.as_deref().unwrap_or_default();
    assert!(
        error.contains("timed out") && error.contains(&staller.id.to_string()),
        "{error}"
    );
    let stats = c.http.provider(staller.id).expect("staller known").stats;
    assert_eq!(stats.tasks_timed_out, 1);
    assert_eq!(stats.tasks_completed, 0);
}

#[test]
fn a_job_past_its_deadline_fails_with_a_partial_report_and_a_refund() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let _p = w.provider(&c, 1);
    // Two quick tasks, then one that cannot finish before the 4 s deadline.
    let spec = format!(
        r#"module = {module}
fuel = 100_000_000_000
memory = "64MiB"
timeout = "60s"
deadline = "4s"
max_price = 1
output = "stdout"

[[task]]
args = ["100000", "0"]

[[task]]
args = ["100000", "1"]

[[task]]
args = ["100000000000", "2"]

[aggregate]
kind = "concat"
{SINGLE_RUN}"#,
        module = toml_path(&guest("pi.wasm")),
    );
    let job = w.submit(&c.url, &w.write("slow.toml", spec));
    let view = c.http.wait_job_for(job, Duration::from_secs(30));
    match &view.status {
        JobStatus::Failed { reason } => {
            assert!(
                reason.contains("deadline passed with 2 of 3 tasks done"),
                "{reason}"
            )
        }
        other => panic!("job ended {other:?}"),
    }

    let out = w.dir("partial");
    let ran = w
        .cli(&[
            "job",
            "report",
            &job.to_string(),
            "--coordinator",
            &c.url,
            "--out-dir",
            out.to_str().unwrap(),
            "--json",
        ])
        .ok();
    let report = ran.json();
    assert_eq!(report["status"], "failed");
    let done = report["done"].as_array().unwrap();
    assert_eq!(done.len(), 2, "{report}");
    assert_eq!(
        report["unfinished"].as_array().unwrap().len(),
        1,
        "{report}"
    );
    for i in 0..2u64 {
        let bytes = std::fs::read(out.join(format!("task-{i}"))).unwrap();
        assert_eq!(String::from_utf8(bytes).unwrap(), pi_line(100_000, i));
    }
    let amount = |k: &str| {
        report["escrow"][k]
            .as_str()
            .unwrap()
            .parse::<u128>()
            .unwrap()
    };
    assert!(amount("refunded") > 0);
    assert_eq!(amount("paid") + amount("refunded"), amount("locked"));

    let table = w
        .cli(&["job", "report", &job.to_string(), "--coordinator", &c.url])
        .ok();
    assert!(
        table
            .stdout
            .contains("2 of 3 tasks done, 0 failed, 1 unfinished"),
        "{}",
        table.stdout
    );
}

/// Rules 3: a run far slower than its provider's expected time, while nothing else is queued,
/// gets a speculative replica on another provider; the first result wins and the straggler's
/// run is cancelled, long before it would time out (60 s wall limit + 10 s grace).
#[test]
fn a_straggler_gets_a_speculative_replica_long_before_its_time_out() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let staller = w.provider_with(&c, 1, &["--stall"]);
    let job = w.submit(&c.url, &w.write("pi.toml", pi_spec(100_000, 2)));
    poll("the staller to take a task", WAIT, || {
        (c.http.job(job).tasks_running > 0).then_some(())
    });
    let started = std::time::Instant::now();
    let _honest = w.provider(&c, 1);
    let view = c.http.wait_job_for(job, Duration::from_secs(40));
    assert_completed(&view);
    let took = started.elapsed();
    assert_eq!(c.http.output(job), pi_output(100_000, 2).as_bytes());
    let tasks = c.http.job_with_tasks(job).tasks;
    // The staller holds one task, or both when they are short enough for it to queue one
    // (`prefetch_ms`: how short depends on the speed it measured); each gets a replica.
    let speculated: Vec<_> = tasks.iter().filter(|t| t.runs.len() == 2).collect();
    assert!(!speculated.is_empty(), "{tasks:?}");
    for task in &speculated {
        let runs = &task.runs;
        assert_eq!(runs[0].provider, staller.id);
        assert_eq!(runs[0].outcome, engine::RunOutcome::Cancelled, "{runs:?}");
    }
    assert!(tasks.iter().all(|t| t.failures == 0), "{tasks:?}");
    let stats = c.http.provider(staller.id).expect("staller known").stats;
    assert_eq!(stats.tasks_timed_out, 0);
    eprintln!("straggler replaced after {took:?} (its time-out was 70 s away)");
}
