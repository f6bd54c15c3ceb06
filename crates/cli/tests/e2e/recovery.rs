//! Crashes: the coordinator killed with SIGKILL mid-job and restarted on its data dir; a provider
//! killed mid-task (its task goes to another provider after the heartbeat deadline); a provider
//! stopped with SIGTERM (it leaves, handing its task back at once); an assignment whose answer
//! never reached the provider.

use crate::support::proxy::LossyProxy;
use crate::support::{WAIT, World, assert_completed, pi_line, pi_output, pi_spec, poll};
use engine::ProviderStatus;
use std::time::{Duration, Instant};

/// Samples per task for the coordinator crash: each task takes a little while, so the crash lands
/// with some but not all of the 30 tasks done.
const CRASH_SAMPLES: u64 = 3_000_000;
const CRASH_TASKS: u64 = 30;

/// `gridmint job submit --wait` outlives a coordinator killed and restarted mid-job: it keeps
/// asking (the job is safe in the log) and ends with the right output, exit status 0.
#[test]
fn job_submit_wait_outlives_a_coordinator_restart() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let _p = w.provider(&c, 1);
    w.fund_requester(&c.url);
    let spec = w.write("pi.toml", pi_spec(CRASH_SAMPLES, 12));
    let out = w.dir("out").join("output");
    let log = w.root().join("submit-wait.log");
    let mut child = w
        .command()
        .args(["job", "submit"])
        .arg(&spec)
        .args(["--coordinator", &c.url, "--wait", "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawning gridmint job submit --wait");
    poll("the job to be submitted", WAIT, || {
        (c.http.status().jobs_total >= 1).then_some(())
    });
    let (data_dir, port) = (c.data_dir.clone(), c.port);
    drop(c); // SIGKILL, mid-job.
    std::thread::sleep(Duration::from_secs(2));
    let c = w.coordinator_restart(&data_dir, port, &[]);
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "job submit --wait still running: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "job submit --wait failed: {said}");
    assert!(said.contains("retrying"), "no word of the outage: {said}");
    assert_eq!(
        String::from_utf8_lossy(&std::fs::read(&out).expect("the output file")),
        pi_output(CRASH_SAMPLES, 12)
    );
    drop(c);
}

#[test]
fn coordinator_killed_mid_job_recovers_from_its_log() {
    let w = World::new();
    // Frequent snapshots: the restart below recovers from a snapshot plus the log after it.
    let c = w.coordinator(&["--snapshot-every", "5"]);
    let p1 = w.provider(&c, 1);
    let p2 = w.provider(&c, 1);
    let spec = w.write("pi.toml", pi_spec(CRASH_SAMPLES, CRASH_TASKS));
    let job = w.submit(&c.url, &spec);

    let at_kill = poll("the first task of the job to be done", WAIT, || {
        let view = c.http.job(job);
        (view.tasks_done >= 1 || view.is_finished()).then_some(view)
    });
    let (data_dir, port) = (c.data_dir.clone(), c.port);
    drop(c); // SIGKILL: no chance to flush or say goodbye.
    assert!(
        !at_kill.is_finished() && at_kill.tasks_done < at_kill.tasks_total,
        "the job finished before the coordinator was killed; tasks are too short: {at_kill:?}"
    );

    // Providers survive the outage, retrying.
    let (mut p1, mut p2) = (p1, p2);
    assert!(
        p1.proc.alive() && p2.proc.alive(),
        "a provider died with the coordinator"
    );

    let c = w.coordinator_restart(&data_dir, port, &["--snapshot-every", "5"]);
    // Everything acknowledged before the crash is still there.
    let recovered = c.http.job(job);
    assert!(
        recovered.tasks_done >= at_kill.tasks_done,
        "progress lost in the crash: before {at_kill:?}, after {recovered:?}"
    );
    assert_eq!(recovered.tasks_total, CRASH_TASKS);

    let view = c.http.wait_completed(job);
    assert_eq!(view.tasks_total, CRASH_TASKS);
    assert_eq!(view.tasks_done, CRASH_TASKS);
    let expected = pi_output(CRASH_SAMPLES, CRASH_TASKS);
    assert_eq!(String::from_utf8_lossy(&c.http.output(job)), expected);
    assert_eq!(String::from_utf8_lossy(&w.results(&c.url, job)), expected);

    let failures: Vec<_> = c
        .http
        .job_with_tasks(job)
        .tasks
        .iter()
        .filter(|t| t.failures > 0)
        .map(|t| (t.task.index, t.failures, t.last_error.clone()))
        .collect();
    eprintln!("failed attempts across the crash: {failures:?}");

    // No result counted twice, across the crash.
    let completed: u64 = c
        .http
        .providers()
        .iter()
        .filter(|p| p.id == p1.id || p.id == p2.id)
        .map(|p| p.stats.tasks_completed)
        .sum();
    assert_eq!(completed, CRASH_TASKS);
    for provider in view.tasks_per_provider.keys() {
        assert!(*provider == p1.id || *provider == p2.id, "{view:?}");
    }
    assert!(p1.proc.alive() && p2.proc.alive());
}

/// Samples of the one long task the provider tests run (a second or so).
const LONG_SAMPLES: u64 = 20_000_000;

#[test]
fn provider_killed_mid_task_loses_it_to_another_after_the_heartbeat_deadline() {
    let w = World::new();
    let c = w.coordinator(&["--heartbeat-timeout", "1s", "--heartbeat-interval", "250ms"]);
    let mut doomed = w.provider(&c, 1);
    let spec = w.write("long.toml", pi_spec(LONG_SAMPLES, 1));
    let job = w.submit(&c.url, &spec);

    poll("the provider to hold the task", WAIT, || {
        let p = c.http.provider(doomed.id)?;
        (p.running > 0).then_some(())
    });
    doomed.proc.kill();
    let killed_at = Instant::now();
    let view = c.http.job(job);
    assert_eq!(
        view.tasks_done, 0,
        "the task finished before the kill: {view:?}"
    );

    let rescuer = w.provider(&c, 1);
    let lost = poll("the killed provider to be declared lost", WAIT, || {
        let p = c.http.provider(doomed.id)?;
        (p.status != ProviderStatus::Active).then_some(p)
    });
    assert_eq!(lost.status, ProviderStatus::Lost, "{lost:?}");
    assert_eq!(
        lost.running, 0,
        "a lost provider still holds tasks: {lost:?}"
    );
    assert_eq!(lost.stats.tasks_completed, 0);
    assert_eq!(lost.stats.times_lost, 1);
    // Its last heartbeat was at most one 250ms interval before the kill.
    assert!(
        killed_at.elapsed() >= Duration::from_millis(700),
        "declared lost {:?} after the kill, before its 1s heartbeat deadline",
        killed_at.elapsed()
    );

    let view = c.http.wait_completed(job);
    assert_eq!(
        view.tasks_per_provider.keys().collect::<Vec<_>>(),
        vec![&rescuer.id],
        "{view:?}"
    );
    assert_eq!(c.http.output(job), pi_line(LONG_SAMPLES, 0).as_bytes());
}

#[test]
fn provider_stopped_with_sigterm_leaves_and_hands_its_task_back() {
    let w = World::new();
    // A long heartbeat deadline: only a graceful leave can free the task quickly.
    let c = w.coordinator(&["--heartbeat-timeout", "60s"]);
    let mut leaving = w.provider(&c, 1);
    let spec = w.write("long.toml", pi_spec(LONG_SAMPLES, 1));
    let job = w.submit(&c.url, &spec);

    poll("the provider to hold the task", WAIT, || {
        let p = c.http.provider(leaving.id)?;
        (p.running > 0).then_some(())
    });
    leaving.proc.terminate();
    let status = leaving.proc.wait_exit(Duration::from_secs(20));
    assert!(
        status.success(),
        "provider exited with {status} after SIGTERM"
    );

    let left = c.http.provider(leaving.id).expect("provider still listed");
    assert_eq!(left.status, ProviderStatus::Left, "{left:?}");
    assert_eq!(left.running, 0);
    let view = c.http.job(job);
    assert_eq!(
        (view.tasks_done, view.tasks_running, view.tasks_queued),
        (0, 0, 1),
        "the task should be back in the queue: {view:?}"
    );

    let rescuer = w.provider(&c, 1);
    let view = c.http.wait_completed(job);
    assert_eq!(
        view.tasks_per_provider.keys().collect::<Vec<_>>(),
        vec![&rescuer.id]
    );
    assert_eq!(c.http.output(job), pi_line(LONG_SAMPLES, 0).as_bytes());
}

/// The coordinator commits an assignment and then the answer is lost (a crash right after the
/// commit, a dropped connection): the provider, alive and heart-beating, never learns of the task.
/// The task must not stay "running" on it forever.
#[test]
fn a_fetch_answer_lost_in_transit_does_not_strand_its_task() {
    let w = World::new();
    let c = w.coordinator(&["--heartbeat-interval", "250ms", "--heartbeat-timeout", "2s"]);
    let proxy = LossyProxy::start(&format!("127.0.0.1:{}", c.port));
    let (dir, id) = w.provider_dir();
    let p = w.provider_in(&proxy.url, &dir, id, 1);
    p.wait_active(&c.http);
    // Registered, and it knows it: it has moved on to fetching work (an idle long poll).
    poll("the provider to fetch work", WAIT, || {
        (proxy.fetches() > 0).then_some(())
    });

    proxy.drop_responses(true);
    let spec = w.write("pi.toml", pi_spec(100_000, 2));
    let job = w.submit(&c.url, &spec);
    poll("a task to be assigned through the lossy link", WAIT, || {
        (c.http.job(job).tasks_running > 0).then_some(())
    });
    proxy.drop_responses(false);
    assert!(proxy.dropped() > 0);

    let view = c.http.wait_job_for(job, Duration::from_secs(20));
    assert_completed(&view);
    assert_eq!(c.http.output(job), pi_output(100_000, 2).as_bytes());
}

/// A coordinator that answers 503 for a while (its disk full, say) does not end its providers:
/// they retry with backoff, keep their registration, and run the job submitted meanwhile once
/// it answers again.
#[test]
fn providers_outlive_a_coordinator_that_answers_503_for_a_while() {
    let w = World::new();
    let c = w.coordinator(&[
        "--heartbeat-interval",
        "250ms",
        "--heartbeat-timeout",
        "10s",
    ]);
    let proxy = LossyProxy::start(&format!("127.0.0.1:{}", c.port));
    let (dir, id) = w.provider_dir();
    let mut p = w.provider_in(&proxy.url, &dir, id, 1);
    p.wait_active(&c.http);
    proxy.answer_unavailable(true);
    let spec = w.write("pi.toml", pi_spec(100_000, 2));
    let job = w.submit(&c.url, &spec);
    poll("the provider to be turned away a few times", WAIT, || {
        (proxy.refused() >= 3).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(p.proc.alive(), "the provider exited on a 503");
    proxy.answer_unavailable(false);
    let view = c.http.wait_job_for(job, Duration::from_secs(30));
    assert_completed(&view);
    assert_eq!(c.http.output(job), pi_output(100_000, 2).as_bytes());
}
