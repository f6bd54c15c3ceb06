//! `gridmint bench --only reads`: whether read load on a coordinator can starve the paths that
//! keep the network alive (issue 16's finding: 128 readers of `/v1/status` on a coordinator
//! holding a 1,000,000-task job got 13 answers/s at 7.7 s and got healthy providers declared
//! lost).
//!
//! A coordinator process (`--dev`, its own data dir) holds a big job that no provider can take
//! (it asks for a GPU), so every state hash covers it; two in-process providers run small no-op
//! jobs, first with nobody else talking to the coordinator, then while 128 readers ask for
//! `/v1/status` as fast as they are answered. The table puts the two phases side by side: job
//! completion times, read latency and outcome, and the providers that were declared lost.

use crate::bench::{Harness, median, ms, percentile, verdict};
use crate::validators_bench::spawn;
use anyhow::{Context, ensure};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Readers in the loaded phase, as in the finding.
const READERS: usize = 128;
/// Goal: a job's completion time under the read load, over its time without it.
const GOAL_SLOWDOWN: f64 = 2.0;

/// What one phase measured.
struct Phase {
    jobs: Vec<Duration>,
    /// Latency of every read answered `200`.
    reads_ok: Vec<Duration>,
    /// Reads answered `503` with a `Retry-After` (shed).
    reads_shed: u64,
    /// Reads answered anything else, or not at all.
    reads_failed: u64,
    took: Duration,
}

pub struct ReadsResult {
    ballast: usize,
    submit: Duration,
    tasks: usize,
    quiet: Phase,
    loaded: Phase,
    /// Providers whose registration changed (declared lost and registered again) or that are
    /// no longer active, after both phases.
    lost: usize,
    providers: usize,
}

pub async fn run(cores: u32, quick: bool) -> anyhow::Result<ReadsResult> {
    let ballast = if quick { 100_000 } else { 1_000_000 };
    // Each phase runs jobs one after another for at least `least` (longer than the default
    // 10 s heartbeat timeout, so that a starved liveness path would show).
    let (tasks, least) = if quick {
        (1_000, Duration::from_secs(5))
    } else {
        (2_000, Duration::from_secs(20))
    };
    let root = tempfile::tempdir().context("creating a temp dir")?;
    let proc = spawn(root.path(), "127.0.0.1:0", &["--dev"])?;
    let harness = Harness::start(&proc.url, cores).await?;
    let measured = async {
        eprintln!("reads: submitting a job of {ballast} tasks that no provider here can take");
        let submit = harness.job(ballast, true).await?;
        eprintln!("reads: submitted in {:.1} s", submit.as_secs_f64());
        let before = harness.client().providers().await?;
        let quiet = phase(&harness, &proc.url, 0, tasks, least).await?;
        let loaded = phase(&harness, &proc.url, READERS, tasks, least).await?;
        let after = harness.client().providers().await?;
        let lost = before
            .iter()
            .filter(|b| {
                !after.iter().any(|a| {
                    a.id == b.id
                        && a.registered_at == b.registered_at
                        && a.status == engine::ProviderStatus::Active
                })
            })
            .count();
        anyhow::Ok(ReadsResult {
            ballast,
            submit,
            tasks,
            quiet,
            loaded,
            lost,
            providers: before.len(),
        })
    }
    .await;
    harness.stop().await;
    drop(proc);
    measured
}

/// Runs jobs of `tasks` no-op tasks one after another, for at least `least` and at least three,
/// while `readers` read `/v1/status` in a loop.
async fn phase(
    harness: &Harness,
    url: &str,
    readers: usize,
    tasks: usize,
    least: Duration,
) -> anyhow::Result<Phase> {
    let stop = Arc::new(AtomicBool::new(false));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let status = format!("{}/v1/status", url.trim_end_matches('/'));
    let mut handles = Vec::new();
    for _ in 0..readers {
        let (stop, http, status) = (stop.clone(), http.clone(), status.clone());
        handles.push(tokio::spawn(async move {
            let (mut ok, mut shed, mut failed) = (Vec::new(), 0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                match http.get(&status).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        ok.push(start.elapsed());
                    }
                    Ok(r)
                        if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE
                            && r.headers().contains_key(reqwest::header::RETRY_AFTER) =>
                    {
                        shed += 1;
                        // A reader that honours Retry-After would wait; this one is hostile
                        // and asks again at once.
                    }
                    _ => failed += 1,
                }
            }
            (ok, shed, failed)
        }));
    }
    let start = Instant::now();
    let mut times = Vec::new();
    let mut outcome = Ok(());
    let mut i = 0;
    while i < 3 || start.elapsed() < least {
        i += 1;
        match harness.job(tasks, false).await {
            Ok(took) => {
                if i % 50 == 1 {
                    eprintln!(
                        "reads: {readers} readers, job {i} of {tasks} tasks: {:.2} s",
                        took.as_secs_f64()
                    );
                }
                times.push(took);
            }
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    let took = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut result = Phase {
        jobs: times,
        reads_ok: Vec::new(),
        reads_shed: 0,
        reads_failed: 0,
        took,
    };
    for h in handles {
        let (ok, shed, failed) = h.await.context("a reader panicked")?;
        result.reads_ok.extend(ok);
        result.reads_shed += shed;
        result.reads_failed += failed;
    }
    if readers == 0 {
        // One reader's latency on a quiet coordinator, for the table.
        for _ in 0..20 {
            let start = Instant::now();
            let r = http.get(&status).send().await?;
            ensure!(
                r.status().is_success(),
                "/v1/status answered {}",
                r.status()
            );
            let _ = r.bytes().await;
            result.reads_ok.push(start.elapsed());
        }
    }
    outcome.map(|()| result)
}

impl Phase {
    fn per_second(&self, n: u64) -> f64 {
        n as f64 / self.took.as_secs_f64()
    }
}

impl ReadsResult {
    fn slowdown(&self) -> f64 {
        median(&self.loaded.jobs).as_secs_f64() / median(&self.quiet.jobs).as_secs_f64()
    }

    pub fn table(&self) -> String {
        use std::fmt::Write;
        let (q, l) = (&self.quiet, &self.loaded);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Reads under load: one coordinator process holding a job of {} queued tasks (submitted in {:.1} s), {} providers, jobs of {} no-op tasks",
            self.ballast,
            self.submit.as_secs_f64(),
            self.providers,
            self.tasks
        );
        let _ = writeln!(
            out,
            "                              quiet   {READERS} readers    ratio   goal"
        );
        let _ = writeln!(
            out,
            "jobs run                 {:>10}   {:>11}                (each phase: jobs one after another for {:.0} s)",
            q.jobs.len(),
            l.jobs.len(),
            q.took.as_secs_f64()
        );
        let p50 = |p: &Phase| median(&p.jobs).as_secs_f64();
        let _ = writeln!(
            out,
            "job p50 (s)              {:>10.2}   {:>11.2}   {:>6.2}x   <= {GOAL_SLOWDOWN}x {}",
            p50(q),
            p50(l),
            self.slowdown(),
            verdict(self.slowdown() <= GOAL_SLOWDOWN)
        );
        let mean = |p: &Phase| crate::bench::mean(&p.jobs).as_secs_f64();
        let _ = writeln!(
            out,
            "job mean (s)             {:>10.2}   {:>11.2}   {:>6.2}x",
            mean(q),
            mean(l),
            mean(l) / mean(q)
        );
        let read = |p: &Phase, f: f64| ms(percentile(&p.reads_ok, f));
        let _ = writeln!(
            out,
            "/v1/status p50 ms        {:>10.1}   {:>11.1}",
            read(q, 0.5),
            read(l, 0.5)
        );
        let _ = writeln!(
            out,
            "/v1/status p99 ms        {:>10.1}   {:>11.1}",
            read(q, 0.99),
            read(l, 0.99)
        );
        let _ = writeln!(
            out,
            "reads answered 200 /s    {:>10}   {:>11.0}",
            "-",
            l.per_second(l.reads_ok.len() as u64)
        );
        let _ = writeln!(
            out,
            "reads shed (503) /s      {:>10}   {:>11.0}",
            "-",
            l.per_second(l.reads_shed)
        );
        let _ = writeln!(
            out,
            "reads failed otherwise   {:>10}   {:>11}",
            q.reads_failed, l.reads_failed
        );
        let _ = writeln!(
            out,
            "providers declared lost                {:>5}             0 {}",
            self.lost,
            verdict(self.lost == 0)
        );
        out
    }

    pub fn json(&self) -> serde_json::Value {
        let phase = |p: &Phase| {
            json!({
                "job_ms": p.jobs.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
                "status_p50_ms": ms(percentile(&p.reads_ok, 0.5)),
                "status_p99_ms": ms(percentile(&p.reads_ok, 0.99)),
                "reads_ok": p.reads_ok.len(),
                "reads_shed": p.reads_shed,
                "reads_failed": p.reads_failed,
                "seconds": p.took.as_secs_f64(),
            })
        };
        json!({
            "ballast_tasks": self.ballast,
            "tasks_per_job": self.tasks,
            "readers": READERS,
            "quiet": phase(&self.quiet),
            "loaded": phase(&self.loaded),
            "slowdown": self.slowdown(),
            "providers_lost": self.lost,
        })
    }
}
