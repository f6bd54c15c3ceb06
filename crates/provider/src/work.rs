//! Running one task: fetch the module and inputs (cached by hash), run in the sandbox, upload the
//! output, and produce the report the control loop sends.

use crate::Faulty;
use api::{Client, ClientError, Identity};
use bytes::Bytes;
use engine::{Hash, TaskDescriptor, TaskOutcome, TaskReport};
use sandbox::{Outcome, Prepared, Sandbox, TaskRun};
use std::collections::{HashMap, HashSet};
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
    /// One permit per slot: tasks beyond the slots wait here, in the order they came.
    slots: Arc<tokio::sync::Semaphore>,
    /// Blobs this provider holds (modules and inputs it fetched), newest last, for the
    /// scheduler's data affinity.
    local: Mutex<Vec<Hash>>,
    /// Outputs the coordinator already has (uploaded before by us): not uploaded again.
    uploaded: Mutex<HashSet<Hash>>,
}

/// How many held blobs a fetch lists.
const CACHED_LISTED: usize = 256;
/// How many uploaded output hashes are remembered.
const UPLOADED_REMEMBERED: usize = 4096;

impl Worker {
    pub fn new(
        client: Client,
        identity: Arc<Identity>,
        sandbox: Arc<Sandbox>,
        blobs: BlobStore,
        faulty: Option<Faulty>,
        slots: u32,
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
                slots: Arc::new(tokio::sync::Semaphore::new(slots.max(1) as usize)),
                local: Mutex::new(Vec::new()),
                uploaded: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// Starts running `task`; its report arrives on `done`.
    pub fn spawn(&self, task: TaskDescriptor, done: UnboundedSender<TaskReport>) {
        let inner = self.inner.clone();
        let handle = tokio::spawn(async move {
            let id = task.task;
            let Ok(_slot) = inner.slots.clone().acquire_owned().await else {
                return;
            };
            let report = inner.execute(task).await;
            tracing::debug!(task = %id, outcome = %report.outcome, fuel = report.fuel_used, "task finished");
            let _ = done.send(report);
        });
        let mut running = self.inner.running.lock().unwrap_or_else(|p| p.into_inner());
        running.retain(|h| !h.is_finished());
        running.push(handle.abort_handle());
    }

    /// Stops every task in flight (their runs are handed back to the coordinator).
    /// Blobs held locally (most recent first), for the scheduler.
    pub fn cached(&self) -> Vec<Hash> {
        let local = self.inner.local.lock().unwrap_or_else(|p| p.into_inner());
        local.iter().rev().take(CACHED_LISTED).copied().collect()
    }

    pub fn abandon_all(&self) {
        self.inner
            .uploaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
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
    /// Notes that this provider holds `hash` (for the scheduler's data affinity).
    fn held(&self, hash: Hash) {
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(at) = local.iter().position(|h| *h == hash) {
            local.remove(at);
        }
        local.push(hash);
        if local.len() > CACHED_LISTED {
            local.remove(0);
        }
    }

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
        self.held(hash);
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
            self.held(input.hash);
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
        let known = self
            .uploaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&output_hash);
        if outcome == TaskOutcome::Success && !known {
            let output = Bytes::from(output.clone());
            match retry_unreachable(|| self.client.put_blob(&self.identity, output.clone())).await {
                Ok(_) => {
                    let mut uploaded = self.uploaded.lock().unwrap_or_else(|p| p.into_inner());
                    if uploaded.len() >= UPLOADED_REMEMBERED {
                        uploaded.clear();
                    }
                    uploaded.insert(output_hash);
                }
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
