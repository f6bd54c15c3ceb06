//! Running one task: fetch the module and inputs (cached by hash), run in the sandbox, upload the
//! output, and produce the report the control loop sends.

use crate::{Faulty, When};
use api::private::JobKey;
use api::{Client, ClientError, Identity};
use bytes::Bytes;
use engine::{Hash, TaskDescriptor, TaskOutcome, TaskReport};
use sandbox::{Outcome, Prepared, Profile, Sandbox, TaskRun};
use std::collections::VecDeque;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long an output upload waits for room in the provider's allowance of unnamed blobs
/// before the run counts as a failed attempt (not a verified failure).
const QUOTA_PATIENCE: Duration = Duration::from_secs(60);
use store::BlobStore;
use tokio::sync::mpsc::UnboundedSender;

#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    identity: Arc<Identity>,
    sandbox: Arc<Sandbox>,
    blobs: BlobStore,
    /// Where tree blobs are unpacked, one directory per tree (`<hash>`), kept across restarts.
    trees: PathBuf,
    /// Compiled modules, by hash and the sandbox profile they were prepared for.
    modules: Mutex<HashMap<(Hash, Profile), Prepared>>,
    /// One lock per blob being fetched, unpacked or compiled: slots that need the same missing
    /// blob at once wait for one download instead of each making its own.
    fetching: Mutex<HashMap<Hash, Arc<tokio::sync::Mutex<()>>>>,
    faulty: Option<Faulty>,
    /// Tasks waiting for a slot, in the order they came, with the generation they belong to.
    queue: Mutex<VecDeque<Queued>>,
    ready: Condvar,
    /// Bumped by [`Worker::abandon_all`]: queued and running tasks of older generations are
    /// dropped without a report.
    generation: AtomicU64,
    /// Blobs this provider holds (modules and inputs it fetched), newest last, for the
    /// scheduler's data affinity.
    local: Mutex<Vec<Hash>>,
    /// Outputs the coordinator already has (uploaded before by us): not uploaded again.
    uploaded: Mutex<HashSet<Hash>>,
    /// A turncoat's (or predicting cheater's) last answer to "may I lie now?" ([`When`]), and
    /// when it was asked.
    trust: tokio::sync::Mutex<Option<(Instant, bool)>>,
    /// The most disk blobs and trees may take (see [`Inner::sweep`]).
    cache_bytes: u64,
    /// Blobs the tasks in hand need (how many of them): never evicted.
    in_use: Mutex<HashMap<Hash, usize>>,
    /// The sizes of unpacked trees, by directory, once measured.
    tree_sizes: Mutex<HashMap<PathBuf, u64>>,
    /// The GPU device GPU tasks run on (rules 23), one run at a time; `None`: GPU tasks fail.
    /// Opened again when it is lost ([`Inner::device`]).
    gpu: Mutex<Option<Arc<gpu::Gpu>>>,
    /// Whether the device may be a software one (`--gpu-software`), for opening it again.
    gpu_software: bool,
    /// Held while a GPU task runs: one dispatch at a time on the one device.
    gpu_turn: Mutex<()>,
    /// Admitted shaders, by blob and entry point.
    shaders: Mutex<HashMap<(Hash, String), Arc<gpu::Shader>>>,
    /// The memory all running tasks together may be given (the provider's `memory`).
    memory: MemoryBudget,
    /// Counts each run's energy, and their sum.
    meter: crate::energy::Meter,
    energy: Mutex<crate::energy::EnergyTotals>,
}

/// How many held blobs a fetch lists.
const CACHED_LISTED: usize = 256;
/// How many uploaded output hashes are remembered.
const UPLOADED_REMEMBERED: usize = 4096;
/// How long a turncoat trusts its last answer about being trusted before asking again. Short on
/// purpose: a turncoat that lags behind the network's trust runs its first trusted tasks honestly
/// and passes the audits that follow, which lowers its audit rate (rules 5): it would be a more
/// patient cheater than this mode means to be. With a second here it passed enough of them to
/// have lone lies accepted; with 100 ms still now and then (tasks take milliseconds). Only a
/// turncoat asks, only after a successful run, and concurrent slots share one question, so it
/// asks at most 100 times a second.
const TRUST_REFRESH: Duration = Duration::from_millis(10);
/// How long a turncoat waits for that answer (none: not trusted).
const TRUST_WAIT: Duration = Duration::from_secs(2);

impl Worker {
    // Each argument is a distinct part the control loop already holds.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Client,
        identity: Arc<Identity>,
        sandbox: Arc<Sandbox>,
        blobs: BlobStore,
        trees: PathBuf,
        faulty: Option<Faulty>,
        slots: u32,
        cache_bytes: u64,
        gpu: Option<Arc<gpu::Gpu>>,
        gpu_software: bool,
        meter: crate::energy::Meter,
        memory_bytes: u64,
    ) -> Worker {
        let worker = Worker {
            inner: Arc::new(Inner {
                client,
                identity,
                sandbox,
                blobs,
                trees,
                modules: Mutex::new(HashMap::new()),
                fetching: Mutex::new(HashMap::new()),
                faulty,
                queue: Mutex::new(VecDeque::new()),
                ready: Condvar::new(),
                generation: AtomicU64::new(0),
                local: Mutex::new(Vec::new()),
                uploaded: Mutex::new(HashSet::new()),
                trust: tokio::sync::Mutex::new(None),
                cache_bytes,
                in_use: Mutex::new(HashMap::new()),
                tree_sizes: Mutex::new(HashMap::new()),
                gpu: Mutex::new(gpu),
                gpu_software,
                gpu_turn: Mutex::new(()),
                shaders: Mutex::new(HashMap::new()),
                memory: MemoryBudget::new(memory_bytes),
                meter,
                energy: Mutex::new(crate::energy::EnergyTotals::default()),
            }),
        };
        // One thread per slot runs tasks back to back: a short task costs no thread hand-off.
        let runtime = tokio::runtime::Handle::current();
        for lane in 0..slots.max(1) {
            let inner = Arc::downgrade(&worker.inner);
            let runtime = runtime.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("slot-{lane}"))
                .spawn(move || run_lane(&inner, &runtime));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a slot thread");
            }
        }
        worker
    }

    /// Queues `task` for the next free slot; its report arrives on `done`.
    pub fn spawn(&self, task: TaskDescriptor, done: UnboundedSender<Done>) {
        let generation = self.inner.generation.load(Ordering::SeqCst);
        let mut queue = self.inner.queue.lock().unwrap_or_else(|p| p.into_inner());
        queue.push_back(Queued {
            generation,
            task,
            done,
        });
        drop(queue);
        self.inner.ready.notify_one();
    }

    /// The network's carbon intensity for this provider (grams of CO₂e per kWh): what its
    /// energy totals count carbon by, unless its owner gave one.
    pub fn set_grams_per_kwh(&self, grams: f64) {
        self.inner.meter.set_grams_per_kwh(grams);
    }

    /// The energy and carbon of the runs so far.
    pub fn energy(&self) -> crate::energy::EnergyTotals {
        self.inner
            .energy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn energy_method(&self) -> String {
        self.inner.meter.describe()
    }

    /// Rules 28: this provider's GPU device's fingerprint of `challenge` (`gpu::fingerprint`),
    /// computed on a blocking thread in the device's turn (between GPU tasks, like one of
    /// them); an error without a device.
    pub async fn gpu_fingerprint(&self, challenge: u64) -> Result<Hash, String> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _turn = inner.gpu_turn.lock().unwrap_or_else(|p| p.into_inner());
            let device = inner.device()?;
            gpu::fingerprint(&device, challenge)
                .map(Hash)
                .map_err(|e| format!("GPU fingerprint: {e}"))
        })
        .await
        .map_err(|e| format!("GPU fingerprint: {e}"))?
    }

    /// Blobs held locally (most recent first), for the scheduler.
    pub fn cached(&self) -> Vec<Hash> {
        let local = self.inner.local.lock().unwrap_or_else(|p| p.into_inner());
        local.iter().rev().take(CACHED_LISTED).copied().collect()
    }

    /// Drops every task in flight without reporting it (their runs are handed back to the
    /// coordinator): queued ones are removed, running ones finish unreported.
    pub fn abandon_all(&self) {
        self.inner
            .uploaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
        self.inner
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// The blobs a task needs, pinned against eviction while it is in hand.
struct Pinned<'a> {
    inner: &'a Inner,
    hashes: Vec<Hash>,
}

impl<'a> Pinned<'a> {
    fn new(inner: &'a Inner, task: &TaskDescriptor) -> Pinned<'a> {
        let mut hashes = vec![task.module];
        hashes.extend(task.inputs.iter().map(|i| i.hash));
        hashes.extend(task.stdin);
        hashes.extend(task.mounts.iter().map(|m| m.tree));
        let mut in_use = inner.in_use.lock().unwrap_or_else(|p| p.into_inner());
        for hash in &hashes {
            *in_use.entry(*hash).or_default() += 1;
        }
        Pinned { inner, hashes }
    }
}

impl Drop for Pinned<'_> {
    fn drop(&mut self) {
        let mut in_use = self.inner.in_use.lock().unwrap_or_else(|p| p.into_inner());
        for hash in &self.hashes {
            if let Some(n) = in_use.get_mut(hash) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    in_use.remove(hash);
                }
            }
        }
    }
}

/// Marks a cached file or directory as used now (its modification time: what eviction orders
/// by). Best effort.
fn touch(path: &std::path::Path) {
    if let Ok(file) = std::fs::File::open(path) {
        let _ = file.set_modified(std::time::SystemTime::now());
    }
}

/// The bytes of the regular files under `dir`.
fn dir_size(dir: &std::path::Path) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) => total = total.saturating_add(m.len()),
                Err(_) => {}
            }
        }
    }
    total
}

/// A private run's key and the directory its opened inputs are written to (removed when dropped,
/// after the run).
struct PrivateRun {
    key: JobKey,
    dir: tempfile::TempDir,
    sealing: engine::Sealing,
}

impl PrivateRun {
    /// The key to open blob `hash` with: none for a blob the job left in the clear.
    fn key_for(&self, hash: &Hash) -> Option<&JobKey> {
        self.sealing.seals(hash).then_some(&self.key)
    }
}

/// A task waiting for a slot.
struct Queued {
    generation: u64,
    task: TaskDescriptor,
    done: UnboundedSender<Done>,
}

/// A finished task: its report, and the energy its run used where the run was metered (a CPU
/// run; not a GPU run, nor a task that failed before its guest ran).
#[derive(Clone, Debug)]
pub struct Done {
    pub report: TaskReport,
    pub energy: Option<engine::EnergyReport>,
    /// Rules 30: a result of a task compared within a tolerance goes with its output.
    pub output: Option<engine::Output>,
}

/// A slot's thread: takes queued tasks in order and runs each to its report, until the worker
/// is gone.
fn run_lane(inner: &std::sync::Weak<Inner>, runtime: &tokio::runtime::Handle) {
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let next = {
            let queue = strong.queue.lock().unwrap_or_else(|p| p.into_inner());
            let (mut queue, _) = strong
                .ready
                .wait_timeout_while(queue, Duration::from_secs(1), |q| q.is_empty())
                .unwrap_or_else(|p| p.into_inner());
            queue.pop_front()
        };
        let Some(Queued {
            generation,
            task,
            done,
        }) = next
        else {
            continue;
        };
        // Not started while the owner's gate is paused (handed back meanwhile: dropped).
        if let Some(gate) = &strong.sandbox.config().gate {
            gate.wait_open(None);
        }
        if generation != strong.generation.load(Ordering::SeqCst) {
            continue;
        }
        let id = task.task;
        // The memory the task may use, out of what all running tasks together may (a GPU
        // task's limit is its device memory).
        let _memory = strong.memory.take(if task.gpu.is_some() {
            0
        } else {
            task.limits.memory_bytes
        });
        let finished = strong.execute(&task, runtime);
        tracing::debug!(task = %id, outcome = %finished.report.outcome, fuel = finished.report.fuel_used, "task finished");
        if generation == strong.generation.load(Ordering::SeqCst) {
            let _ = done.send(finished);
        }
    }
}

/// The memory the provider offers to tasks, shared by the tasks running at once: a slot whose
/// task would take more than is left waits until enough comes back (a task asking for more
/// than all of it — the network never sends one — runs alone).
struct MemoryBudget {
    total: u64,
    used: Mutex<u64>,
    returned: Condvar,
}

/// Memory a running task holds, given back when dropped.
struct MemoryHeld<'a> {
    budget: &'a MemoryBudget,
    bytes: u64,
}

impl MemoryBudget {
    fn new(total: u64) -> MemoryBudget {
        MemoryBudget {
            total,
            used: Mutex::new(0),
            returned: Condvar::new(),
        }
    }

    fn take(&self, bytes: u64) -> MemoryHeld<'_> {
        let used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let mut used = self
            .returned
            .wait_while(used, |used| {
                *used > 0 && used.saturating_add(bytes) > self.total
            })
            .unwrap_or_else(|p| p.into_inner());
        *used = used.saturating_add(bytes);
        MemoryHeld {
            budget: self,
            bytes,
        }
    }
}

impl Drop for MemoryHeld<'_> {
    fn drop(&mut self) {
        let mut used = self.budget.used.lock().unwrap_or_else(|p| p.into_inner());
        *used = used.saturating_sub(self.bytes);
        drop(used);
        self.budget.returned.notify_all();
    }
}

/// Retries `op` while the coordinator is unavailable (a restart, a network blip, a 503), for up to
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
            Err(e) if e.is_transient() && start.elapsed() < OUTAGE_PATIENCE => {
                tracing::debug!(error = %e, "coordinator unavailable; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

/// How long a task waits out an unreachable coordinator before giving up on a transfer.
const OUTAGE_PATIENCE: Duration = Duration::from_secs(120);

/// Runs `task` in `sandbox`, again (up to [`HOST_FAILURE_TRIES`] runs in all, a moment apart)
/// when the host failed mid-run (`SandboxError::Host`: the operating system refused memory the
/// task was allowed): such a run says nothing about the task, and another usually succeeds once
/// the pressure from other processes has passed.
fn run_retrying_host_failures(
    sandbox: &Sandbox,
    module: &Prepared,
    task: &TaskRun,
) -> Result<sandbox::RunReport, String> {
    let mut tries = 0;
    loop {
        tries += 1;
        match sandbox.run(module, task) {
            Err(sandbox::SandboxError::Host(why)) if tries < HOST_FAILURE_TRIES => {
                tracing::warn!(%why, tries, "the host failed during a run; running it again");
                std::thread::sleep(Duration::from_millis(200 * tries));
            }
            other => return other.map_err(|e| e.to_string()),
        }
    }
}

/// Runs of one task the host may fail before the provider reports the failure.
const HOST_FAILURE_TRIES: u64 = 3;

/// A GPU run as the sandbox would report it: `Completed` is exit 0, a loop the driver cut short
/// a trap (the device cannot run the task), the output buffers in binding order the output
/// (none past `output_limit`: too large).
fn gpu_report(
    report: gpu::GpuReport,
    wall_time: Duration,
    output_limit: Option<u64>,
) -> sandbox::RunReport {
    let mut outcome = match report.outcome {
        gpu::GpuOutcome::Completed => Outcome::Exited(0),
        gpu::GpuOutcome::OutOfFuel => Outcome::OutOfFuel,
        gpu::GpuOutcome::LoopCutShort => Outcome::Trap(
            "the GPU driver cut a loop short (lavapipe stops an invocation after about 65,535 \
             loop iterations): this device cannot run the task"
                .into(),
        ),
        gpu::GpuOutcome::TimedOut => Outcome::Timeout,
    };
    let mut output: Vec<u8> = match outcome {
        Outcome::Timeout => Vec::new(),
        _ => report.outputs.into_iter().flat_map(|(_, b)| b).collect(),
    };
    if output_limit.is_some_and(|limit| output.len() as u64 > limit) {
        outcome = Outcome::OutputTooLarge;
        output = Vec::new();
    }
    sandbox::RunReport {
        output_hash: Hash::of(&output).0,
        output,
        outcome,
        fuel_used: report.fuel,
        wall_time,
        cpu_time: None,
        stderr: Vec::new(),
    }
}

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

    /// Whether the network watches this provider little enough for `when` now, as its provider
    /// view says (`trusted`; for [`When::Unwatched`] also its audit rate at its floor), asked at
    /// most once per [`TRUST_REFRESH`]; an error or no answer means no.
    async fn trusted(&self, when: When) -> bool {
        let mut cached = self.trust.lock().await;
        if let Some((at, trusted)) = *cached
            && at.elapsed() < TRUST_REFRESH
        {
            return trusted;
        }
        let me = self.identity.id();
        let trusted = match tokio::time::timeout(TRUST_WAIT, self.client.provider(me)).await {
            Ok(Ok(view)) => {
                view.trusted && (when != When::Unwatched || view.audit_bps <= view.audit_floor_bps)
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "turncoat: could not ask whether we are trusted");
                false
            }
            Err(_) => false,
        };
        if cached.is_some_and(|(_, was)| was != trusted) {
            tracing::info!(trusted, "turncoat: the network's trust changed");
        }
        *cached = Some((Instant::now(), trusted));
        trusted
    }

    /// The lock of blob `hash`'s fetch (see [`Inner::fetching`]).
    fn fetch_lock(&self, hash: Hash) -> Arc<tokio::sync::Mutex<()>> {
        let mut fetching = self.fetching.lock().unwrap_or_else(|p| p.into_inner());
        // Locks nobody holds or waits for are dropped as new ones are made.
        fetching.retain(|_, lock| Arc::strong_count(lock) > 1);
        fetching.entry(hash).or_default().clone()
    }

    /// A blob from the local cache, downloading it on a miss (once, however many slots ask).
    async fn blob(&self, hash: Hash) -> Result<Bytes, String> {
        if let Some(bytes) = self.cached_blob(hash).await {
            return Ok(bytes);
        }
        let lock = self.fetch_lock(hash);
        let _fetching = lock.lock().await;
        if let Some(bytes) = self.cached_blob(hash).await {
            return Ok(bytes);
        }
        let bytes = retry_unreachable(|| self.client.get_blob(hash))
            .await
            .map_err(|e| format!("could not fetch blob {hash}: {e}"))?;
        tracing::info!(blob = %hash, bytes = bytes.len(), "downloaded a blob");
        let blobs = self.blobs.clone();
        let copy = bytes.clone();
        tokio::task::spawn_blocking(move || blobs.put(&copy))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        self.sweep();
        Ok(bytes)
    }

    async fn cached_blob(&self, hash: Hash) -> Option<Bytes> {
        let blobs = self.blobs.clone();
        match tokio::task::spawn_blocking(move || {
            let bytes = blobs.get(&hash);
            touch(&blobs.path(&hash));
            bytes
        })
        .await
        {
            Ok(Ok(Some(bytes))) => Some(Bytes::from(bytes)),
            _ => None,
        }
    }

    /// Module `hash` compiled for sandbox profile `profile` (the network's rules name it).
    async fn module(&self, hash: Hash, profile: u32) -> Result<Prepared, String> {
        let profile = Profile::from_number(profile).ok_or_else(|| {
            format!(
                "the task runs under sandbox profile {profile}, which this provider does not \
                 know (it knows {}): upgrade it",
                Profile::ALL
                    .iter()
                    .map(|p| p.number().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        let cached = || {
            self.modules
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&(hash, profile))
                .cloned()
        };
        if let Some(m) = cached() {
            return Ok(m);
        }
        // One compile per module, however many slots start its tasks at once.
        let lock = self.fetch_lock(hash);
        let _compiling = lock.lock().await;
        if let Some(m) = cached() {
            return Ok(m);
        }
        drop(_compiling);
        let bytes = self.blob(hash).await?;
        let _compiling = lock.lock().await;
        if let Some(m) = cached() {
            return Ok(m);
        }
        self.held(hash);
        let sandbox = self.sandbox.clone();
        let started = Instant::now();
        let prepared = tokio::task::spawn_blocking(move || sandbox.prepare_for(&bytes, profile))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        tracing::info!(
            module = %hash,
            profile = profile.number(),
            ms = started.elapsed().as_millis() as u64,
            "prepared a module"
        );
        self.modules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((hash, profile), prepared.clone());
        Ok(prepared)
    }

    /// The directory tree blob `hash` holds, unpacked (once per provider, kept across restarts:
    /// `<trees>/<hash>`), for a read-only mount. A private job's tree is opened with its `key`
    /// first, and kept apart per key (`<trees>/<hash>-<key check>`): a blob opens under one key
    /// only as the tree it was sealed from.
    async fn tree(&self, hash: Hash, key: Option<&JobKey>) -> Result<PathBuf, String> {
        let dir = match key {
            Some(key) => self.trees.join(format!("{hash}-{}", key.check())),
            None => self.trees.join(hash.to_string()),
        };
        if dir.is_dir() {
            touch(&dir);
            return Ok(dir);
        }
        let bytes = self.blob(hash).await?;
        let lock = self.fetch_lock(hash);
        let _unpacking = lock.lock().await;
        if dir.is_dir() {
            return Ok(dir);
        }
        let trees = self.trees.clone();
        let target = dir.clone();
        let key = key.cloned();
        tokio::task::spawn_blocking(move || {
            let opened;
            let bytes: &[u8] = match &key {
                Some(key) => {
                    opened = key.open(&bytes).map_err(|e| e.to_string())?;
                    &opened
                }
                None => &bytes,
            };
            std::fs::create_dir_all(&trees).map_err(|e| e.to_string())?;
            sandbox::tree::unpack(bytes, &target).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("tree {hash}: {e}"))?;
        self.sweep();
        Ok(dir)
    }

    /// Keeps the blobs and unpacked trees within [`Inner::cache_bytes`]: past it, deletes the
    /// least recently used (by modification time, which every use renews) that no task in hand
    /// needs, down to 90% of it. Called after each download and unpack.
    fn sweep(&self) {
        #[derive(Debug)]
        enum Entry {
            Blob(Hash),
            Tree(Hash, PathBuf),
        }
        let modified = |path: &std::path::Path| {
            std::fs::metadata(path)
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH)
        };
        let mut entries: Vec<(std::time::SystemTime, u64, Entry)> = Vec::new();
        for (hash, size) in self.blobs.list().unwrap_or_default() {
            entries.push((modified(&self.blobs.path(&hash)), size, Entry::Blob(hash)));
        }
        let mut sizes = self.tree_sizes.lock().unwrap_or_else(|p| p.into_inner());
        for dir in std::fs::read_dir(&self.trees)
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = dir.path();
            let Some(hash) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.split('-').next())
                .and_then(|h| h.parse::<Hash>().ok())
            else {
                continue;
            };
            let size = *sizes.entry(path.clone()).or_insert_with(|| dir_size(&path));
            entries.push((modified(&path), size, Entry::Tree(hash, path)));
        }
        let mut total: u64 = entries.iter().map(|(_, size, _)| size).sum();
        if total <= self.cache_bytes {
            return;
        }
        let goal = self.cache_bytes / 10 * 9;
        entries.sort_by_key(|(at, _, _)| *at);
        let in_use = self
            .in_use
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let (mut count, mut freed) = (0u64, 0u64);
        for (_, size, entry) in entries {
            if total <= goal {
                break;
            }
            let hash = match &entry {
                Entry::Blob(hash) | Entry::Tree(hash, _) => *hash,
            };
            if in_use.contains_key(&hash) {
                continue;
            }
            let gone = match &entry {
                Entry::Blob(hash) => self.blobs.remove(hash).is_ok(),
                Entry::Tree(_, path) => {
                    sizes.remove(path);
                    std::fs::remove_dir_all(path).is_ok()
                }
            };
            if gone {
                total = total.saturating_sub(size);
                freed = freed.saturating_add(size);
                count += 1;
                let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
                local.retain(|h| *h != hash);
            }
        }
        if count > 0 {
            tracing::info!(
                evicted = count,
                freed,
                kept = total,
                budget = self.cache_bytes,
                "evicted least recently used blobs and trees"
            );
        }
    }

    /// Runs `task` to its report on the calling thread (a slot's): the downloads and the upload
    /// on `runtime`, the sandbox between them outside any async context (WASI's synchronous
    /// host calls block on the runtime themselves).
    fn execute(&self, task: &TaskDescriptor, runtime: &tokio::runtime::Handle) -> Done {
        let _pinned = Pinned::new(self, task);
        if let Some(spec) = &task.gpu {
            let mut energy = None;
            let (report, output) = self
                .execute_gpu(task, spec, runtime, &mut energy)
                .unwrap_or_else(|why| (failure(task, why), None));
            return Done {
                report,
                energy: energy.map(|e: crate::energy::RunEnergy| e.report()),
                output,
            };
        }
        let mut metered_energy = None;
        let report = runtime
            .block_on(self.prepare(task))
            .and_then(|(module, run, private)| {
                let _entered = runtime.enter();
                let metered = self.meter.start();
                let report = run_retrying_host_failures(&self.sandbox, &module, &run);
                // The guest's CPU time as the sandbox counted it (in a worker process, not
                // on this thread).
                let cpu = report.as_ref().ok().and_then(|r| r.cpu_time);
                let energy = self.meter.finish(metered, run.memory_limit_bytes, cpu);
                metered_energy = Some(energy.report());
                let report = report?;
                tracing::debug!(task = %task.task, joules = energy.joules, source = ?energy.source, "energy");
                self.energy
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .add(&energy);
                // A private run's opened inputs go as soon as it ends.
                let key = private.map(|p| p.key);
                runtime.block_on(self.finish(task, report, key.as_ref()))
            });
        let (report, output) = report.unwrap_or_else(|why| (failure(task, why), None));
        Done {
            report,
            energy: metered_energy,
            output,
        }
    }

    /// The module and the run of `task`, with its inputs downloaded — and, for a private job,
    /// its key and the directory its opened inputs are in for the run.
    async fn prepare(
        &self,
        task: &TaskDescriptor,
    ) -> Result<(Prepared, TaskRun, Option<PrivateRun>), String> {
        // Rules 13: a private job's key, unwrapped first (a provider it was not sealed to, or
        // one handed a key other than the job's, runs none of it: a failure before the guest
        // ran, which no honest provider is slashed for).
        let private = match &task.private {
            Some(sealing) => {
                let key = JobKey::unwrap(&self.identity, sealing)
                    .map_err(|e| format!("private job: {e}"))?;
                let dir = tempfile::Builder::new()
                    .prefix("run-")
                    .tempdir_in(self.opened_dir()?)
                    .map_err(|e| format!("a directory for the opened inputs: {e}"))?;
                Some(PrivateRun {
                    key,
                    dir,
                    sealing: sealing.clone(),
                })
            }
            None => None,
        };
        let module = self.module(task.module, task.profile).await?;
        let mut inputs = Vec::with_capacity(task.inputs.len());
        for (i, input) in task.inputs.iter().enumerate() {
            let sealed = self.blob(input.hash).await?;
            self.held(input.hash);
            let path = match &private {
                Some(p) => {
                    let opened = p
                        .key
                        .open(&sealed)
                        .map_err(|e| format!("input {} (blob {}): {e}", input.name, input.hash))?;
                    // Numbered: two inputs may share a name only across tasks, but a file per
                    // input keeps the names the guest sees out of the host's paths.
                    let path = p.dir.path().join(format!("input-{i}"));
                    std::fs::write(&path, opened)
                        .map_err(|e| format!("writing an opened input: {e}"))?;
                    path
                }
                None => self.blobs.path(&input.hash),
            };
            inputs.push((input.name.clone(), path));
        }
        let stdin = match task.stdin {
            Some(hash) => match private.as_ref().and_then(|p| p.key_for(&hash)) {
                Some(key) => key
                    .open(&self.blob(hash).await?)
                    .map_err(|e| format!("stdin (blob {hash}): {e}"))?,
                None => self.blob(hash).await?.to_vec(),
            },
            None => Vec::new(),
        };
        let mut mounts = Vec::with_capacity(task.mounts.len());
        for mount in &task.mounts {
            let dir = self
                .tree(
                    mount.tree,
                    private.as_ref().and_then(|p| p.key_for(&mount.tree)),
                )
                .await?;
            self.held(mount.tree);
            mounts.push((mount.path.clone(), dir));
        }
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
            // A private output is sealed before it is uploaded: the seal's bytes count too.
            max_output_bytes: match &private {
                Some(_) => task
                    .output_limit
                    .map(|l| l.saturating_sub(api::private::SEAL_OVERHEAD)),
                None => task.output_limit,
            },
            success_exits: task.success_exits.clone(),
            entry: task.entry.clone(),
            mounts,
            scratch: task.scratch.as_ref().map(|s| (s.path.clone(), s.bytes)),
        };
        Ok((module, run, private))
    }

    /// Rules 23: runs GPU task `task` on this provider's device: its shader admitted (cached),
    /// its buffers filled from its inputs or with zeros, one dispatch, the output buffers
    /// concatenated in binding order as its output.
    fn execute_gpu(
        &self,
        task: &TaskDescriptor,
        spec: &engine::GpuJob,
        runtime: &tokio::runtime::Handle,
        energy: &mut Option<crate::energy::RunEnergy>,
    ) -> Result<(TaskReport, Option<engine::Output>), String> {
        let shader = runtime.block_on(self.shader(task.module, &spec.entry))?;
        let mut buffers = Vec::with_capacity(spec.buffers.len());
        for b in &spec.buffers {
            let bytes = match &b.fill {
                engine::GpuFill::Zeroed(size) => {
                    let size = usize::try_from(*size).map_err(|_| "a buffer too large")?;
                    vec![0; size]
                }
                engine::GpuFill::Input(name) => {
                    let file = task
                        .inputs
                        .iter()
                        .find(|f| &f.name == name)
                        .ok_or_else(|| format!("binding {}: no input `{name}`", b.binding))?;
                    let bytes = runtime.block_on(self.blob(file.hash))?;
                    self.held(file.hash);
                    bytes.to_vec()
                }
            };
            buffers.push(gpu::TaskBuffer {
                binding: b.binding,
                bytes,
                output: b.output,
            });
        }
        let run = gpu::GpuTask {
            workgroups: spec.workgroups,
            buffers,
            fuel: task.limits.fuel,
            max_bytes: task.limits.memory_bytes,
            timeout: Duration::from_millis(task.limits.wall_ms),
        };
        let started = Instant::now();
        let result = {
            let _turn = self.gpu_turn.lock().unwrap_or_else(|p| p.into_inner());
            let device = self.device()?;
            // The dispatch's time on the device (the turn held: no other GPU task meanwhile).
            let busy = Instant::now();
            let result = match device.run(&shader, &run) {
                // Lost during the run (a driver reset): once more on the device opened again.
                Err(gpu::GpuError::Device(_)) if device.is_lost() => {
                    self.device()?.run(&shader, &run)
                }
                other => other,
            };
            let run_energy = self
                .meter
                .gpu_run(&device.adapter().device_type, busy.elapsed());
            self.energy
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .add(&run_energy);
            *energy = Some(run_energy);
            result
        };
        // Rules 30: the network compares a tolerant task's outputs itself, up to a size.
        let output_limit = match task.tolerance {
            Some(_) => Some(
                task.output_limit
                    .unwrap_or(u64::MAX)
                    .min(engine::MAX_TOLERANT_OUTPUT),
            ),
            None => task.output_limit,
        };
        let report = match result {
            Ok(report) => gpu_report(report, started.elapsed(), output_limit),
            // A task that does not fit its shader or the device fails the same everywhere.
            Err(e @ gpu::GpuError::InvalidTask(_)) => {
                return Ok((failure(task, e.to_string()), None));
            }
            Err(e) => return Err(format!("GPU: {e}")),
        };
        runtime.block_on(self.finish(task, report, None))
    }

    /// The GPU device to run on; one that was lost (a driver reset after a watchdog timeout) is
    /// opened again first — the same adapter, described alike, else an error (tried again at the
    /// next task).
    fn device(&self) -> Result<Arc<gpu::Gpu>, String> {
        let mut slot = self.gpu.lock().unwrap_or_else(|p| p.into_inner());
        let current = slot
            .clone()
            .ok_or("a GPU task, and this provider has no GPU device open")?;
        if !current.is_lost() {
            return Ok(current);
        }
        let before = crate::describe_gpu(current.adapter());
        tracing::warn!(gpu = %before, "the GPU device was lost: opening it again");
        match crate::open_gpu(self.gpu_software) {
            Some(new) if crate::describe_gpu(new.adapter()) == before => {
                let new = Arc::new(new);
                *slot = Some(new.clone());
                Ok(new)
            }
            _ => Err(format!(
                "the GPU device ({before}) was lost and could not be opened again"
            )),
        }
    }

    /// Shader `hash` (WGSL, GLSL or SPIR-V) admitted for `entry` (`gpu::admit_bytes`: validated,
    /// held to the network's rules, metered), kept for the next task.
    async fn shader(&self, hash: Hash, entry: &str) -> Result<Arc<gpu::Shader>, String> {
        let key = (hash, entry.to_string());
        if let Some(shader) = self
            .shaders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(shader.clone());
        }
        let bytes = self.blob(hash).await?;
        self.held(hash);
        let entry = entry.to_string();
        let shader = tokio::task::spawn_blocking(move || gpu::admit_bytes(&bytes, &entry))
            .await
            .map_err(|e| format!("admitting shader {hash}: {e}"))?
            .map_err(|e| format!("shader {hash}: {e}"))?;
        let shader = Arc::new(shader);
        self.shaders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, shader.clone());
        Ok(shader)
    }

    /// Where private runs' opened inputs are kept while they run (`DATA_DIR/opened`), made if
    /// missing.
    fn opened_dir(&self) -> Result<PathBuf, String> {
        let dir = self.trees.with_file_name("opened");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(dir)
    }

    /// The report of `task` from its sandbox run, with the output uploaded.
    async fn finish(
        &self,
        task: &TaskDescriptor,
        report: sandbox::RunReport,
        key: Option<&JobKey>,
    ) -> Result<(TaskReport, Option<engine::Output>), String> {
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
        if self.faulty.is_some_and(|f| f.fails) {
            tracing::debug!(task = %task.task, "failing mode: reporting a failure");
            outcome = TaskOutcome::Exit(1);
            output = Vec::new();
            output_hash = Hash::of(&output);
        }
        // Rules 11: the run returned a result if it exited with one of the job's answer
        // statuses (0 alone unless the descriptor lists others).
        let answered = |outcome: &TaskOutcome| {
            engine::options::exit_status(outcome).is_some_and(|status| {
                if task.success_exits.is_empty() {
                    status == 0
                } else {
                    task.success_exits.contains(&status)
                }
            })
        };
        // A turncoat (or predicting cheater) asks whether it may lie only when it would.
        let trusted = match self.faulty {
            Some(f) if f.when != When::Always && answered(&outcome) => self.trusted(f.when).await,
            _ => false,
        };
        if answered(&outcome)
            && let Some(wrong) = self
                .faulty
                .and_then(|f| f.lie(task.task, output_hash, trusted))
        {
            tracing::debug!(task = %task.task, "faulty mode: returning a wrong output");
            output = wrong;
            output_hash = Hash::of(&output);
        }
        // Rules 13: a private job's output is sealed under its key, deterministically, so
        // honest replicas upload the same bytes and report the same hash.
        if let Some(key) = key
            && answered(&outcome)
        {
            output = key.seal(&output);
            output_hash = Hash::of(&output);
        }
        let known = self
            .uploaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&output_hash);
        if answered(&outcome) && !known {
            let output = Bytes::from(output.clone());
            let waited = Instant::now();
            loop {
                match retry_unreachable(|| self.client.put_blob(&self.identity, output.clone()))
                    .await
                {
                    Ok(_) => {
                        let mut uploaded = self.uploaded.lock().unwrap_or_else(|p| p.into_inner());
                        if uploaded.len() >= UPLOADED_REMEMBERED {
                            uploaded.clear();
                        }
                        uploaded.insert(output_hash);
                        break;
                    }
                    // This key's outputs not reported yet fill its allowance of unnamed blobs:
                    // the reports under way free it. Not the output's fault, so never a
                    // failure of the task (other providers would succeed, and this one be
                    // slashed).
                    Err(ClientError::Api { body, .. })
                        if body.error == "blob_quota" && waited.elapsed() < QUOTA_PATIENCE =>
                    {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    Err(e @ ClientError::Api { .. })
                        if e.status() == Some(413) && {
                            matches!(&e, ClientError::Api { body, .. } if body.error == "too_large")
                        } =>
                    {
                        // The coordinator's blob limit is below the sandbox's output cap.
                        outcome = TaskOutcome::OutputTooLarge;
                        break;
                    }
                    Err(e) => return Err(format!("could not upload output: {e}")),
                }
            }
        }
        let size = output.len() as u64;
        // Rules 30: the engine compares a tolerant task's results by their values.
        let values =
            (task.tolerance.is_some() && answered(&outcome)).then_some(engine::Output(output));
        Ok((
            TaskReport {
                task: task.task,
                outcome,
                output_hash,
                output_size: size,
                fuel_used: report.fuel_used,
            },
            values,
        ))
    }
}

impl Faulty {
    /// Whether this provider lies at all now: always, or for the other modes only while
    /// `trusted` (the network watches it as little as the mode waits for).
    fn active(&self, trusted: bool) -> bool {
        self.when == When::Always || trusted
    }

    /// The wrong output to return instead of the honest one (`correct`), if this run lies;
    /// `trusted`: whether the network watches this provider as little as its mode waits for
    /// (only the modes other than [`When::Always`] care).
    fn lie(&self, task: engine::TaskId, correct: Hash, trusted: bool) -> Option<Vec<u8>> {
        use std::hash::BuildHasher;
        if !self.active(trusted) {
            return None;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use engine::TaskId;

    const TASK: TaskId = TaskId { job: 7, index: 3 };

    /// A GPU device that was lost (a driver reset; here destroyed on purpose) is opened again,
    /// the same adapter, before the next GPU task runs.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_lost_gpu_device_is_opened_again() {
        let device = crate::open_gpu(true).expect("a Vulkan adapter (lavapipe in CI)");
        let dir = tempfile::tempdir().unwrap();
        let worker = Worker::new(
            Client::new("http://127.0.0.1:9"),
            Arc::new(Identity::generate()),
            Arc::new(Sandbox::new(sandbox::SandboxConfig::default()).unwrap()),
            BlobStore::open(&dir.path().join("blobs")).unwrap(),
            dir.path().join("trees"),
            None,
            1,
            1 << 20,
            Some(Arc::new(device)),
            true,
            crate::energy::Meter::new(crate::energy::EnergyConfig::default()),
            1 << 30,
        );
        let first = worker.inner.device().unwrap();
        assert!(Arc::ptr_eq(&first, &worker.inner.device().unwrap()));
        first.destroy();
        let second = worker.inner.device().unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        assert!(!second.is_lost());
        assert_eq!(
            crate::describe_gpu(first.adapter()),
            crate::describe_gpu(second.adapter())
        );
        // And it computes what a device of its class does.
        let offer = crate::gpu_benchmark(&second).unwrap();
        assert_eq!(
            offer.fingerprint.0,
            gpu::fingerprint(&second, engine::FINGERPRINT_CHALLENGE).unwrap()
        );
    }

    #[test]
    fn running_tasks_share_the_memory_offered_and_wait_for_it() {
        let budget = Arc::new(MemoryBudget::new(100));
        let first = budget.take(60);
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let budget = budget.clone();
            std::thread::spawn(move || {
                let _held = budget.take(60);
                tx.send(()).unwrap();
            })
        };
        // 60 + 60 > 100: the second waits while the first runs.
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        let small = budget.take(40);
        drop(first);
        rx.recv_timeout(Duration::from_secs(5))
            .expect("taken once the first gave it back");
        waiter.join().unwrap();
        drop(small);
        // More than all of it runs alone rather than never.
        let _alone = budget.take(500);
    }

    fn colluder(turncoat: bool) -> Faulty {
        Faulty {
            rate: 1.0,
            collude: true,
            fails: false,
            when: if turncoat {
                When::Trusted
            } else {
                When::Always
            },
        }
    }

    #[test]
    fn a_turncoat_lies_only_while_trusted() {
        let correct = Hash::of(b"42\n");
        let turncoat = colluder(true);
        assert_eq!(
            turncoat.lie(TASK, correct, false),
            None,
            "honest until trusted"
        );
        let lie = turncoat
            .lie(TASK, correct, true)
            .expect("lies once trusted");
        assert_ne!(Hash::of(&lie), correct);
        // Its lie is the colluders' answer, so it agrees with theirs.
        assert_eq!(colluder(false).lie(TASK, correct, false), Some(lie.clone()));
        assert_eq!(colluder(false).lie(TASK, correct, true), Some(lie));
    }

    #[test]
    fn a_predicting_cheater_lies_only_while_unwatched() {
        let correct = Hash::of(b"42\n");
        let predicting = Faulty {
            when: When::Unwatched,
            ..colluder(false)
        };
        assert_eq!(predicting.lie(TASK, correct, false), None);
        assert_eq!(
            predicting.lie(TASK, correct, true),
            colluder(false).lie(TASK, correct, false),
            "once unwatched, the colluders' answer"
        );
    }

    #[test]
    fn other_faulty_modes_ignore_trust() {
        let correct = Hash::of(b"42\n");
        for trusted in [false, true] {
            let never = Faulty {
                rate: 0.0,
                ..colluder(false)
            };
            assert_eq!(never.lie(TASK, correct, trusted), None);
            let always = Faulty {
                collude: false,
                ..colluder(false)
            };
            let lie = always
                .lie(TASK, correct, trusted)
                .expect("rate 1 always lies");
            assert_ne!(Hash::of(&lie), correct);
        }
    }
}
