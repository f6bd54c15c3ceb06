//! The requester side: the requester's key, submitting a loaded job and waiting for it.

use crate::jobspec::LoadedJob;
use anyhow::Context;
use api::wire::JobView;
use api::{Client, Identity};
use engine::{Action, JobId, JobStatus, Tokens};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::time::Duration;

/// `$GRIDMINT_HOME`, or `~/.gridmint`.
pub fn home() -> PathBuf {
    if let Some(dir) = std::env::var_os("GRIDMINT_HOME") {
        return PathBuf::from(dir);
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".gridmint")
}

pub fn requester_key_path() -> PathBuf {
    home().join("requester.key")
}

pub fn requester_identity() -> anyhow::Result<Identity> {
    let path = requester_key_path();
    Identity::load_or_create(&path).with_context(|| format!("requester key {}", path.display()))
}

/// Uploads the job's blobs and submits it; returns the new job id.
pub async fn submit(client: &Client, who: &Identity, job: LoadedJob) -> anyhow::Result<JobId> {
    for blob in job.blobs {
        client
            .put_blob(who, blob)
            .await
            .context("uploading a blob")?;
    }
    let resp = client
        .action(who, Action::SubmitJob(job.spec))
        .await
        .map_err(|e| {
            let hint = if e.status() == Some(402) {
                "\nthe job's worst-case cost (tasks × fuel limit × max_price) is locked in escrow \
                 when it is submitted; fund the account (`gridmint wallet faucet` on a --dev \
                 network) or lower fuel/max_price"
            } else {
                ""
            };
            anyhow::anyhow!("submitting the job: {e}{hint}")
        })?;
    resp.submitted_job()
        .context("the coordinator accepted the job but reported no job id")
}

/// Polls until the job finishes; with `progress`, shows a bar of tasks done / total on stderr.
pub async fn wait(client: &Client, id: JobId, progress: bool) -> anyhow::Result<JobView> {
    let bar = if progress {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("job {msg} [{bar:30}] {pos}/{len} tasks ({elapsed})")
                .expect("static template is valid")
                .progress_chars("=> "),
        );
        bar.set_message(id.to_string());
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut delay = Duration::from_millis(20);
    let view = loop {
        let view = client.job(id, false).await?;
        bar.set_length(view.tasks_total);
        bar.set_position(view.tasks_done);
        if view.is_finished() {
            break view;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(250));
    };
    match &view.status {
        JobStatus::Completed => bar.finish(),
        _ => bar.abandon(),
    }
    Ok(view)
}

/// One line describing how a finished job ended.
/// A job's verification policy, in words.
pub fn redundancy(r: engine::Redundancy) -> String {
    match r {
        engine::Redundancy::Adaptive => "adaptive verification".into(),
        engine::Redundancy::Fixed {
            quorum: 1,
            max_results: 1,
        } => "no verification".into(),
        engine::Redundancy::Fixed {
            quorum,
            max_results,
        } => format!("{quorum} matching of at most {max_results}"),
    }
}

pub fn describe(view: &JobView) -> String {
    let e = &view.escrow;
    let money = format!(
        "; paid {} (fees {}), refunded {} of the {} locked",
        Tokens(e.paid),
        Tokens(e.fees),
        Tokens(e.refunded),
        Tokens(e.locked)
    );
    match &view.status {
        JobStatus::Completed => format!(
            "job {} completed: {} tasks in {} runs ({:.2} per task, {}), {} fuel{money}",
            view.id,
            view.tasks_done,
            view.executions,
            view.executions as f64 / view.tasks_done.max(1) as f64,
            redundancy(view.redundancy),
            view.fuel_used
        ),
        JobStatus::Failed { reason } => format!("job {} failed: {reason}{money}", view.id),
        JobStatus::Cancelled => format!("job {} was cancelled{money}", view.id),
        JobStatus::Running | JobStatus::Reducing => format!(
            "job {} is {}: {}/{} tasks done, {} running, {} queued",
            view.id,
            if view.status == JobStatus::Running {
                "running"
            } else {
                "reducing"
            },
            view.tasks_done,
            view.tasks_total,
            view.tasks_running,
            view.tasks_queued
        ),
    }
}
