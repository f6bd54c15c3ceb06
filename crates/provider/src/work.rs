//! Running one task: fetch the module and inputs (cached by hash), run in the sandbox, upload the
//! output, and produce the report the control loop sends.

use crate::Faulty;
use api::{Client, ClientError, Identity};
use bytes::Bytes;
use engine::{Hash, TaskDescriptor, TaskOutcome, TaskReport};
use sandbox::{Outcome, Prepared, Sandbox, TaskRun};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::BlobStore;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::AbortHandle;

#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    identity: Arc<Identity>,
    sandbox: Arc<Sandbox>,
    blobs: BlobStore,
    modules: Mutex<HashMap<Hash, Prepared>>,
    running: Mutex<Vec<AbortHandle>>,
    faulty: Option<Faulty>,
}

impl Worker {
    pub fn new(
        client: Client,
        identity: Arc<Identity>,
        sandbox: Arc<Sandbox>,
        blobs: BlobStore,
        faulty: Option<Faulty>,
    ) -> Worker {
        Worker {
            inner: Arc::new(Inner {
                client,
                identity,
                sandbox,
                blobs,
                modules: Mutex::new(HashMap::new()),
                running: Mutex::new(Vec::new()),
                faulty,
            }),
        }
    }

    /// Starts running `task`; its report arrives on `done`.
    pub fn spawn(&self, task: TaskDescriptor, done: UnboundedSender<TaskReport>) {
        let inner = self.inner.clone();
        let handle = tokio::spawn(async move {
            let id = task.task;
            let report = inner.execute(task).await;
            tracing::debug!(task = %id, outcome = %report.outcome, fuel = report.fuel_used, "task finished");
            let _ = done.send(report);
        });
        let mut running = self.inner.running.lock().unwrap_or_else(|p| p.into_inner());
        running.retain(|h| !h.is_finished());
        running.push(handle.abort_handle());
    }

    /// Stops every task in flight (their runs are handed back to the coordinator).
    pub fn abandon_all(&self) {
        let mut running = self.inner.running.lock().unwrap_or_else(|p| p.into_inner());
        for h in running.drain(..) {
            h.abort();
        }
    }
}

/// Retries `op` while the coordinator is unreachable (a restart, a network blip), for up to
/// [`OUTAGE_PATIENCE`]: an outage is not the task's fault and must not count as a failed run.
async fn retry_unreachable<T, F, Fut>(mut op: F) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    let start = std::time::Instant::now();
    let mut backoff = Duration::from_millis(50);
    loop {
        match op().await {
            Err(e) if e.is_unreachable() && start.elapsed() < OUTAGE_PATIENCE => {
                tracing::debug!(error = %e, "coordinator unreachable; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

/// How long a task waits out an unreachable coordinator before giving up on a transfer.
const OUTAGE_PATIENCE: Duration = Duration::from_secs(120);

fn failure(task: &TaskDescriptor, why: String) -> TaskReport {
    TaskReport {
        task: task.task,
        outcome: TaskOutcome::Trap(why),
        output_hash: Hash::of(&[]),
        output_size: 0,
        fuel_used: 0,
    }
}

impl Inner {
    /// A blob from the local cache, downloading it on a miss.
    async fn blob(&self, hash: Hash) -> Result<Bytes, String> {
        let blobs = self.blobs.clone();
        if let Ok(Ok(Some(bytes))) = tokio::task::spawn_blocking(move || blobs.get(&hash)).await {
            return Ok(Bytes::from(bytes));
        }
        let bytes = retry_unreachable(|| self.client.get_blob(hash))
            .await
            .map_err(|e| format!("could not fetch blob {hash}: {e}"))?;
        let blobs = self.blobs.clone();
        let copy = bytes.clone();
        tokio::task::spawn_blocking(move || blobs.put(&copy))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        Ok(bytes)
    }

    async fn module(&self, hash: Hash) -> Result<Prepared, String> {
        if let Some(m) = self
            .modules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&hash)
        {
            return Ok(m.clone());
        }
        let bytes = self.blob(hash).await?;
        let sandbox = self.sandbox.clone();
        let prepared = tokio::task::spawn_blocking(move || sandbox.prepare(&bytes))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        self.modules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(hash, prepared.clone());
        Ok(prepared)
    }

    async fn execute(&self, task: TaskDescriptor) -> TaskReport {
        match self.try_execute(&task).await {
            Ok(report) => report,
            Err(why) => failure(&task, why),
        }
    }

    async fn try_execute(&self, task: &TaskDescriptor) -> Result<TaskReport, String> {
        let module = self.module(task.module).await?;
        let mut inputs = Vec::with_capacity(task.inputs.len());
        for input in &task.inputs {
            self.blob(input.hash).await?;
            inputs.push((input.name.clone(), self.blobs.path(&input.hash)));
        }
        let stdin = match task.stdin {
            Some(hash) => self.blob(hash).await?.to_vec(),
            None => Vec::new(),
        };
        let run = TaskRun {
            args: task.args.clone(),
            env: task.env.clone(),
            stdin,
            inputs,
            output: match &task.output {
                engine::OutputSource::Stdout => sandbox::OutputSource::Stdout,
                engine::OutputSource::File(name) => sandbox::OutputSource::File(name.clone()),
            },
            fuel_limit: task.limits.fuel,
            memory_limit_bytes: task.limits.memory_bytes,
            wall_limit: Duration::from_millis(task.limits.wall_ms),
            seed: task.seed,
        };
        let sandbox = self.sandbox.clone();
        let report = tokio::task::spawn_blocking(move || sandbox.run(&module, &run))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let outcome = match report.outcome {
            Outcome::Exited(0) => TaskOutcome::Success,
            Outcome::Exited(code) => TaskOutcome::Exit(code),
            Outcome::Trap(msg) => TaskOutcome::Trap(msg),
            Outcome::OutOfFuel => TaskOutcome::OutOfFuel,
            Outcome::Timeout => TaskOutcome::Timeout,
            Outcome::MemoryLimit => TaskOutcome::MemoryLimit,
            Outcome::OutputTooLarge => TaskOutcome::OutputTooLarge,
        };
        let mut output_hash = Hash(report.output_hash);
        let mut output = report.output;
        let mut outcome = outcome;
        if outcome == TaskOutcome::Success
            && let Some(wrong) = self.faulty.and_then(|f| f.lie(task.task, output_hash))
        {
            tracing::debug!(task = %task.task, "faulty mode: returning a wrong output");
            output = wrong;
            output_hash = Hash::of(&output);
        }
        if outcome == TaskOutcome::Success {
            let output = Bytes::from(output.clone());
            match retry_unreachable(|| self.client.put_blob(&self.identity, output.clone())).await {
                Ok(_) => {}
                // The coordinator's blob limit is below the sandbox's output cap.
                Err(e) if e.status() == Some(413) => outcome = TaskOutcome::OutputTooLarge,
                Err(e) => return Err(format!("could not upload output: {e}")),
            }
        }
        Ok(TaskReport {
            task: task.task,
            outcome,
            output_hash,
            output_size: output.len() as u64,
            fuel_used: report.fuel_used,
        })
    }
}

impl Faulty {
    /// The wrong output to return instead of the honest one (`correct`), if this run lies.
    fn lie(&self, task: engine::TaskId, correct: Hash) -> Option<Vec<u8>> {
        use std::hash::BuildHasher;
        let draw = std::collections::hash_map::RandomState::new().hash_one((task, correct));
        // A uniform draw in [0, 1): the top 53 bits as a fraction.
        let uniform = (draw >> 11) as f64 / (1u64 << 53) as f64;
        if uniform >= self.rate {
            return None;
        }
        Some(if self.collude {
            // Every colluder derives the same wrong answer from the task's honest output.
            format!("colluders' answer to {task}: {correct}\n").into_bytes()
        } else {
            format!("faulty answer {draw:016x}\n").into_bytes()
        })
    }
}
