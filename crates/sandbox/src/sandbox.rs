//! [`Sandbox`]: the engines, the WASI linkers, the compiled-module cache, and one guest run from
//! store creation to outcome classification.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use wasmtime::{
    Config, Engine, ExternType, InstanceAllocationStrategy, InstancePre, Linker, Module, OptLevel,
    PoolConcurrencyLimitError, PoolingAllocationConfig, Store, StoreLimitsBuilder, Trap, ValType,
};
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use crate::host::{
    GuestFuel, HostState, Limiter, Watchdog, add_virtual_poll, charge_hostcall, make_deterministic,
};
use crate::workdir::{DiskQuota, OutputFile, WorkDir, validate_task};
use crate::{
    DISK_QUOTA_FACTOR, MAX_WORKDIR_ENTRIES, Outcome, OutputSource, Profile, RunReport,
    STDERR_CAPTURE_BYTES, SandboxConfig, SandboxError, TaskRun,
};

/// Compiled modules kept in memory; the least recently used one is evicted beyond this.
const MODULE_CACHE_CAPACITY: usize = 64;
/// Most table elements a guest may have (each costs a pointer of host memory).
const MAX_TABLE_ELEMENTS: usize = 1 << 20;
/// Instance slots of the pooling allocator (concurrent runs beyond this fail with
/// [`SandboxError::Setup`]).
const POOL_SLOTS: u32 = 128;
/// The most linear memories one guest may have (multi-memory); the task's memory limit is for
/// all of them together.
const MAX_MEMORIES: u32 = 4;
/// The largest linear memory a pooled slot can hold (all of wasm32).
const POOL_MAX_MEMORY_BYTES: usize = 4 << 30;
/// Fuel between two looks at the wall clock: a running guest yields to the sandbox this often
/// (wasmtime's fuel-driven yield, at its fuel checks: every loop header and function entry),
/// about a millisecond of guest work. Looking at the clock this way costs the guest nothing
/// between yields, where epoch checks cost a load, a compare and a branch at every loop header.
pub(crate) const YIELD_FUEL: u64 = 1_000_000;

/// Runs WASI preview-1 modules deterministically; cheap to share (`Send + Sync`, put
/// it in an `Arc`).
pub struct Sandbox {
    /// One engine per [`Profile`] (by [`profile_slot`]), [`Profile::LATEST`]'s built with the
    /// sandbox, the other the first time a module is prepared for it.
    runtimes: [OnceLock<Result<Runtime, String>>; 5],
    config: SandboxConfig,
    cache: Mutex<ModuleCache>,
    compiled: AtomicU64,
    /// The sandbox of a worker process ([`crate::worker::serve`]): modules are metered with
    /// checks that trap instead of calling the host, runs get all their fuel at once and have
    /// no wall-clock bound of their own (the parent's signals bound them).
    trapping: bool,
    /// Worker processes between runs ([`SandboxConfig::worker`]).
    pub(crate) workers: crate::worker::Pool,
}

/// The engine of one [`Profile`] and its WASI linker.
struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
}

/// Where [`Sandbox::runtimes`] keeps a profile's engine.
fn profile_slot(profile: Profile) -> usize {
    match profile {
        Profile::EveryFloat => 0,
        Profile::ObservedNans => 1,
        Profile::CountedLoops => 2,
        Profile::TrackedVectors => 3,
        Profile::GuestCharged => 4,
    }
}

/// A validated, compiled module ready to instantiate; cheap to clone.
#[derive(Clone)]
pub struct Prepared {
    inner: Arc<PreparedInner>,
}

struct PreparedInner {
    pre: InstancePre<HostState>,
    hash: [u8; 32],
    profile: Profile,
    /// The module's bytes, where its runs go to worker processes ([`SandboxConfig::worker`]):
    /// a profile that meters itself and no start function (the counter is armed after
    /// instantiation).
    for_workers: Option<Arc<[u8]>>,
}

impl Prepared {
    /// BLAKE3 of the module's bytes (as given, before any rewrite).
    pub fn hash(&self) -> [u8; 32] {
        self.inner.hash
    }

    /// The profile it was prepared for, which its runs follow.
    pub fn profile(&self) -> Profile {
        self.inner.profile
    }

    /// Whether both handles share one compilation (the cache returned the same entry).
    pub fn ptr_eq(a: &Prepared, b: &Prepared) -> bool {
        Arc::ptr_eq(&a.inner, &b.inner)
    }
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("hash", &blake3::Hash::from_bytes(self.inner.hash).to_hex())
            .field("profile", &self.inner.profile)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct ModuleCache {
    entries: HashMap<([u8; 32], Profile), (Prepared, u64)>,
    clock: u64,
}

impl ModuleCache {
    fn get(&mut self, key: &([u8; 32], Profile)) -> Option<Prepared> {
        self.clock = self.clock.wrapping_add(1);
        let clock = self.clock;
        self.entries.get_mut(key).map(|(prepared, used)| {
            *used = clock;
            prepared.clone()
        })
    }

    /// Inserts `prepared` unless another thread got there first; returns the entry.
    fn insert(&mut self, prepared: Prepared) -> Prepared {
        let key = (prepared.inner.hash, prepared.inner.profile);
        if let Some(existing) = self.get(&key) {
            return existing;
        }
        if self.entries.len() >= MODULE_CACHE_CAPACITY
            && let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(key, _)| *key)
        {
            self.entries.remove(&oldest);
        }
        self.entries.insert(key, (prepared.clone(), self.clock));
        prepared
    }
}

fn setup_err(what: &str) -> impl FnOnce(wasmtime::Error) -> SandboxError + '_ {
    move |e| SandboxError::Setup(format!("{what}: {e:#}"))
}

/// The engine configuration a sandbox runs `profile` (and admission validates) with: wasmtime's
/// fuel but under [`Profile::CountedLoops`], whose modules meter themselves (no epoch
/// interruption: the wall clock is looked at when fuel yields or is refilled), Cranelift's NaN
/// canonicalisation under [`Profile::EveryFloat`], optimised
/// Cranelift, no shared memories, no relaxed SIMD, no component model (pooling, which changes
/// nothing about what is valid, is configured apart).
pub(crate) fn engine_config(profile: Profile) -> Config {
    let mut wasm = Config::new();
    wasm.consume_fuel(!profile.meters_itself())
        .epoch_interruption(false)
        .cranelift_nan_canonicalization(profile == Profile::EveryFloat)
        .cranelift_opt_level(OptLevel::Speed)
        // Atomic instructions on an ordinary memory are deterministic (a single thread
        // runs them in program order; `memory.atomic.wait` on one traps, `notify` wakes
        // nobody), so the threads proposal validates. Shared memories stay refused: wasmtime
        // will not create them (`shared_memory` is off), and `admit::refused` turns a module
        // that declares one away before it is run.
        .wasm_threads(true)
        .shared_memory(false)
        // Exception handling (C++ toolchains, MicroPython) is deterministic: a throw unwinds to
        // the same handler on every host. Its exception objects live in a GC heap (the
        // reference-counting collector), so the build has GC support; the GC proposal itself
        // (structs, arrays) stays off.
        .wasm_exceptions(true)
        .wasm_gc(false)
        .wasm_relaxed_simd(false)
        .wasm_component_model(false);
    wasm
}

impl Runtime {
    fn new(config: &SandboxConfig, profile: Profile, slots: u32) -> Result<Runtime, SandboxError> {
        let mut wasm = engine_config(profile);
        if config.pooling {
            let mut pool = PoolingAllocationConfig::default();
            pool.total_core_instances(slots)
                .total_stacks(slots)
                .total_memories(slots)
                .total_tables(slots)
                .max_memories_per_module(MAX_MEMORIES)
                .max_tables_per_module(1)
                .table_elements(MAX_TABLE_ELEMENTS)
                .max_memory_size(POOL_MAX_MEMORY_BYTES);
            wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        if let Some(dir) = &config.code_cache {
            std::fs::create_dir_all(dir).map_err(|e| {
                SandboxError::Setup(format!("cannot create code cache {}: {e}", dir.display()))
            })?;
            let mut cache = wasmtime::CacheConfig::new();
            cache.with_directory(dir);
            let cache =
                wasmtime::Cache::new(cache).map_err(setup_err("cannot open the code cache"))?;
            wasm.cache(Some(cache));
        }
        let engine = Engine::new(&wasm).map_err(setup_err("cannot create engine"))?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut HostState| &mut s.wasi)
            .map_err(setup_err("cannot link wasi"))?;
        add_virtual_poll(&mut linker).map_err(setup_err("cannot link poll_oneoff"))?;
        if profile.meters_itself() {
            crate::host::add_refuel(&mut linker).map_err(setup_err("cannot link refuel"))?;
        }
        crate::fsview::add_deterministic_files(&mut linker)
            .map_err(setup_err("cannot link the file view"))?;
        crate::quota::add_disk_quotas(&mut linker)
            .map_err(setup_err("cannot link the disk quotas"))?;
        Ok(Runtime { engine, linker })
    }
}

impl Sandbox {
    /// Builds the engine of [`Profile::LATEST`] (fuel, no shared memories, no relaxed SIMD,
    /// optimised Cranelift) and its WASI p1 linker; the other profile's engine is built when a
    /// module is first prepared for it.
    pub fn new(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        Sandbox::build(config, false)
    }

    /// A worker process's sandbox ([`crate::worker::serve`]): one run at a time, checks that
    /// trap.
    pub(crate) fn trapping(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        Sandbox::build(config, true)
    }

    fn build(config: SandboxConfig, trapping: bool) -> Result<Sandbox, SandboxError> {
        let sandbox = Sandbox {
            runtimes: Default::default(),
            config,
            cache: Mutex::new(ModuleCache::default()),
            compiled: AtomicU64::new(0),
            trapping,
            workers: Default::default(),
        };
        sandbox.runtime(Profile::LATEST)?;
        Ok(sandbox)
    }

    /// `profile`'s engine and linker, built the first time they are needed.
    fn runtime(&self, profile: Profile) -> Result<&Runtime, SandboxError> {
        // A worker runs one guest at a time.
        let slots = if self.trapping { 2 } else { POOL_SLOTS };
        self.runtimes[profile_slot(profile)]
            .get_or_init(|| Runtime::new(&self.config, profile, slots).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| SandboxError::Setup(e.clone()))
    }

    /// The configuration this sandbox was built with.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// Worker processes waiting for a run ([`SandboxConfig::worker`]).
    pub fn idle_workers(&self) -> usize {
        self.workers.idle()
    }

    /// The module with this hash prepared for `profile`, if the cache holds it.
    pub(crate) fn cached(&self, hash: [u8; 32], profile: Profile) -> Option<Prepared> {
        self.lock_cache().get(&(hash, profile))
    }

    /// How many modules this sandbox has compiled (cache hits do not count).
    pub fn modules_compiled(&self) -> u64 {
        self.compiled.load(Ordering::Relaxed)
    }

    /// Validates and compiles a WASI preview-1 command module (binary format only) for
    /// [`Profile::LATEST`], cached by the BLAKE3 hash of its bytes. The module must export
    /// `_start: [] -> []` and import nothing but `wasi_snapshot_preview1` functions.
    pub fn prepare(&self, wasm: &[u8]) -> Result<Prepared, SandboxError> {
        self.prepare_for(wasm, Profile::LATEST)
    }

    /// [`Sandbox::prepare`] for `profile` (what a network's rules name): its runs follow it.
    pub fn prepare_for(&self, wasm: &[u8], profile: Profile) -> Result<Prepared, SandboxError> {
        let hash = *blake3::hash(wasm).as_bytes();
        if let Some(hit) = self.lock_cache().get(&(hash, profile)) {
            return Ok(hit);
        }
        let runtime = self.runtime(profile)?;
        let invalid = |e: wasmtime::Error| SandboxError::InvalidModule(format!("{e:#}"));
        let module = match profile {
            Profile::EveryFloat => Module::from_binary(&runtime.engine, wasm).map_err(invalid)?,
            Profile::ObservedNans
            | Profile::CountedLoops
            | Profile::TrackedVectors
            | Profile::GuestCharged => {
                // The rewrite reads a valid module: errors are the module's own, as written.
                Module::validate(&runtime.engine, wasm).map_err(invalid)?;
                let vectors = if matches!(profile, Profile::TrackedVectors | Profile::GuestCharged)
                {
                    crate::canon::Vectors::WhereObserved
                } else {
                    crate::canon::Vectors::AtOnce
                };
                let mut rewritten = crate::canon::canonicalize_observed_nans(wasm, vectors)
                    .map_err(SandboxError::InvalidModule)?;
                if profile.meters_itself() {
                    rewritten = crate::meter::meter_with(
                        &rewritten,
                        true,
                        !self.trapping,
                        profile.charges_calls(),
                    )
                    .map_err(SandboxError::InvalidModule)?
                    .0;
                }
                Module::from_binary(&runtime.engine, &rewritten).map_err(invalid)?
            }
        };
        if let Some(why) = crate::admit::refused(wasm) {
            return Err(SandboxError::InvalidModule(why));
        }
        // A command's `_start` must have its type; which export a job runs (`_start` or its
        // entry) is checked by `run`, per task.
        let start_ok = match module.get_export("_start") {
            None => true,
            Some(ExternType::Func(ty)) => ty.params().len() == 0 && ty.results().len() == 0,
            Some(_) => false,
        };
        if !start_ok {
            return Err(SandboxError::InvalidModule(
                "export `_start` is not a function of type [] -> []".into(),
            ));
        }
        let linker = crate::imports::linker_for(&runtime.linker, &module, profile)
            .map_err(SandboxError::InvalidModule)?;
        let pre = linker
            .as_ref()
            .unwrap_or(&runtime.linker)
            .instantiate_pre(&module)
            .map_err(invalid)?;
        let has_start = wasmparser::Parser::new(0)
            .parse_all(wasm)
            .any(|payload| matches!(payload, Ok(wasmparser::Payload::StartSection { .. })));
        if self.trapping && (has_start || !profile.charges_calls()) {
            // A start function would run before the counter is armed; an older profile's fuel
            // depends on the slices an in-thread run takes.
            return Err(SandboxError::Setup(format!(
                "a worker runs modules without a start function under profile 5 (this one: \
                 profile {}, start function: {has_start})",
                profile.number()
            )));
        }
        let for_workers = (self.config.worker.is_some()
            && crate::worker::SUPPORTED
            && profile.charges_calls()
            && !has_start)
            .then(|| Arc::<[u8]>::from(wasm));
        self.compiled.fetch_add(1, Ordering::Relaxed);
        let prepared = Prepared {
            inner: Arc::new(PreparedInner {
                pre,
                hash,
                profile,
                for_workers,
            }),
        };
        Ok(self.lock_cache().insert(prepared))
    }

    /// [`Sandbox::prepare`] then [`Sandbox::run`].
    pub fn run_bytes(&self, wasm: &[u8], task: &TaskRun) -> Result<RunReport, SandboxError> {
        let prepared = self.prepare(wasm)?;
        self.run(&prepared, task)
    }

    /// Runs a prepared module once. Every guest failure is an [`Outcome`]; `Err` only
    /// for a malformed task ([`SandboxError::InvalidTask`]) or a host-side problem
    /// ([`SandboxError::Setup`]: temp dir, unreadable input, exhausted instance pool).
    /// Safe to call from many threads at once.
    ///
    /// Blocking and CPU-bound: call it from a plain thread or inside
    /// `tokio::task::spawn_blocking`, never directly on an async task (wasmtime-wasi
    /// blocks on the ambient tokio runtime for host calls and would panic there).
    pub fn run(&self, module: &Prepared, task: &TaskRun) -> Result<RunReport, SandboxError> {
        validate_task(task)?;
        let entry = Entry::of(module.inner.pre.module(), task.entry.as_deref())?;
        if let (Some(command), Some(wasm)) = (&self.config.worker, &module.inner.for_workers)
            && i64::try_from(task.fuel_limit).is_ok()
        {
            return crate::worker::run(self, command, module, wasm, task);
        }
        let max_output = task
            .max_output_bytes
            .map_or(self.config.max_output_bytes, |cap| {
                cap.min(self.config.max_output_bytes)
            });
        let needs_dir = !task.inputs.is_empty() || matches!(task.output, OutputSource::File(_));
        let workdir = if needs_dir {
            Some(WorkDir::create(&task.inputs)?)
        } else {
            None
        };

        // Stdout keeps one byte more than allowed so that overflow is observable; when
        // full, further writes fail with EIO, so the host never buffers more.
        let stdout_cap = match task.output {
            OutputSource::Stdout => {
                usize::try_from(max_output.saturating_add(1)).unwrap_or(usize::MAX)
            }
            OutputSource::File(_) => STDERR_CAPTURE_BYTES,
        };
        let stdout = MemoryOutputPipe::new(stdout_cap);
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE_BYTES);
        let mut wasi = WasiCtxBuilder::new();
        wasi.allow_blocking_current_thread(true)
            .stdin(MemoryInputPipe::new(task.stdin.clone()))
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .arg("task")
            .args(&task.args)
            .envs(&task.env);
        make_deterministic(&mut wasi, task.seed);
        let mut watched_dir = None;
        if let Some(dir) = &workdir {
            wasi.preopened_dir(dir.path(), "/", FsPerms::ReadWrite)
                .map_err(setup_err("cannot preopen the working directory"))?;
            let quota = DiskQuota {
                max_bytes: max_output
                    .saturating_mul(DISK_QUOTA_FACTOR)
                    .saturating_add(dir.input_bytes()),
                max_entries: MAX_WORKDIR_ENTRIES,
            };
            watched_dir = Some((dir.path().to_path_buf(), quota));
        }
        for (guest, host) in &task.mounts {
            wasi.preopened_dir(host, guest, FsPerms::ReadOnly)
                .map_err(|e| {
                    SandboxError::Setup(format!("cannot mount {} at {guest}: {e}", host.display()))
                })?;
        }
        let scratch = match &task.scratch {
            Some((guest, bytes)) => {
                let dir = tempfile::Builder::new()
                    .prefix("gridmint-scratch-")
                    .tempdir()
                    .map_err(|e| SandboxError::Setup(format!("cannot create scratch dir: {e}")))?;
                wasi.preopened_dir(dir.path(), guest, FsPerms::ReadWrite)
                    .map_err(setup_err("cannot preopen the scratch directory"))?;
                Some((dir, guest.as_str(), *bytes))
            }
            None => None,
        };
        let mut watched: Vec<(PathBuf, DiskQuota, String)> = watched_dir
            .iter()
            .map(|(dir, quota)| (dir.clone(), *quota, "/".to_string()))
            .collect();
        if let Some((dir, guest, bytes)) = &scratch {
            // Stopped while it runs only at twice its quota: a tool may go over for a moment
            // and clean up; what counts is what the scratch holds when the run ends.
            watched.push((
                dir.path().to_path_buf(),
                DiskQuota {
                    max_bytes: bytes.saturating_mul(2),
                    max_entries: MAX_WORKDIR_ENTRIES,
                },
                guest.to_string(),
            ));
        }

        let limits = StoreLimitsBuilder::new()
            .memory_size(usize::try_from(task.memory_limit_bytes).unwrap_or(usize::MAX))
            .table_elements(MAX_TABLE_ELEMENTS)
            .instances(1)
            .tables(1)
            .memories(MAX_MEMORIES as usize)
            .trap_on_grow_failure(true)
            .build();
        let state = HostState {
            wasi: wasi.build_p1(),
            limiter: Limiter::new(
                limits,
                usize::try_from(task.memory_limit_bytes).unwrap_or(usize::MAX),
            ),
            // A worker's parent bounds its wall time.
            watchdog: if self.trapping {
                Watchdog::new(Duration::MAX, None)
            } else {
                Watchdog::new(task.wall_limit, self.config.gate.clone())
            },
            files: Default::default(),
            disk: crate::quota::DiskWatch::new(watched),
            // The module's own counter starts at zero, all the fuel in reserve: the check on
            // entry to the first function takes the first slice from it.
            fuel: module.inner.profile.meters_itself().then(|| {
                let fuel = if self.trapping {
                    GuestFuel::whole(task.fuel_limit)
                } else {
                    GuestFuel::new(task.fuel_limit)
                };
                fuel.charged_by_module(module.inner.profile.charges_calls())
            }),
        };
        let mut store = Store::new(module.inner.pre.module().engine(), state);
        store.limiter(|s| &mut s.limiter);
        store.call_hook(charge_hostcall);
        if !module.inner.profile.meters_itself() {
            store
                .set_fuel(task.fuel_limit)
                .map_err(setup_err("cannot set fuel"))?;
            store
                .fuel_async_yield_interval(Some(YIELD_FUEL))
                .map_err(setup_err("cannot set the fuel yield interval"))?;
        }

        let started = Instant::now();
        let cpu_before = crate::gate::thread_cpu();
        store.data_mut().watchdog.start();
        // No deadline for a limit past the end of time (the watchdog still counts it), nor in a
        // worker.
        let deadline = match self.trapping {
            true => None,
            false => started.checked_add(task.wall_limit),
        };
        let pre = &module.inner.pre;
        let pacer = store.data().watchdog.pacer.clone();
        let trapping = self.trapping;
        let result = drive(
            async {
                let instance = pre.instantiate_async(&mut store).await?;
                if trapping {
                    crate::host::arm(&instance, &mut store)?;
                }
                entry.call(&instance, &mut store).await
            },
            // At each yield: held while the gate is paused (time not counted), ended when it
            // stops the run.
            || {
                let mut pacer = pacer.lock().unwrap_or_else(|p| p.into_inner());
                !pacer.checkpoint()
                    || deadline.is_some_and(|deadline| {
                        Instant::now() >= deadline.checked_add(pacer.held).unwrap_or(deadline)
                    })
            },
        );
        let result = match result {
            Some(result) => result,
            None => {
                // Dropped at a yield: the guest was unwound there.
                store.data_mut().watchdog.timed_out = true;
                Err(Trap::Interrupt.into())
            }
        };
        let wall_time = started.elapsed();
        let cpu_time = cpu_before
            .zip(crate::gate::thread_cpu())
            .map(|(before, after)| after.saturating_sub(before));

        let fuel_left = crate::host::fuel_left(&mut store).unwrap_or(0);
        let fuel_used = task.fuel_limit.saturating_sub(fuel_left);
        if let Err(e) = &result
            && e.downcast_ref::<PoolConcurrencyLimitError>().is_some()
        {
            return Err(SandboxError::Setup(format!("instance pool exhausted: {e}")));
        }
        if let Some(why) = store.data().limiter.host_failure.clone() {
            return Err(SandboxError::Host(why));
        }
        let mut outcome = classify(result, store.data());
        if self.trapping
            && matches!(outcome, Outcome::Trap(_))
            && crate::host::check_trapped(&mut store)
        {
            outcome = Outcome::OutOfFuel;
        }
        drop(store);

        let stdout = stdout.contents().to_vec();
        let stderr = stderr.contents().to_vec();
        let mut output: Vec<u8> = Vec::new();
        match &task.output {
            OutputSource::Stdout => {
                output = stdout;
                if output.len() as u64 > max_output {
                    outcome = Outcome::OutputTooLarge;
                }
            }
            OutputSource::File(name) => {
                if let Some(dir) = &workdir {
                    match dir.read_output(name, max_output) {
                        OutputFile::Data(data) => output = data,
                        OutputFile::TooLarge => outcome = Outcome::OutputTooLarge,
                        OutputFile::Missing if task.answered(&outcome) => {
                            outcome = Outcome::Trap("declared output file missing".into());
                        }
                        OutputFile::NotRegular if task.answered(&outcome) => {
                            outcome =
                                Outcome::Trap("declared output file is not a regular file".into());
                        }
                        OutputFile::Missing | OutputFile::NotRegular => {}
                    }
                }
            }
        }
        if let Some((dir, quota)) = &watched_dir
            && crate::workdir::exceeds_quota(dir, *quota)
        {
            outcome = Outcome::OutputTooLarge;
        }
        if let Some((dir, guest, bytes)) = &scratch
            && !matches!(outcome, Outcome::Timeout)
            && crate::workdir::exceeds_quota(
                dir.path(),
                DiskQuota {
                    max_bytes: *bytes,
                    max_entries: MAX_WORKDIR_ENTRIES,
                },
            )
        {
            outcome = Outcome::Trap(format!(
                "scratch directory {guest} holds more than its quota ({bytes} bytes or \
                 {MAX_WORKDIR_ENTRIES} entries)"
            ));
        }
        if matches!(outcome, Outcome::OutputTooLarge | Outcome::Timeout) {
            output.clear();
        }
        let output_hash = *blake3::hash(&output).as_bytes();
        Ok(RunReport {
            outcome,
            output,
            output_hash,
            fuel_used,
            wall_time,
            cpu_time,
            stderr,
        })
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, ModuleCache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("config", &self.config)
            .field("modules_compiled", &self.modules_compiled())
            .finish_non_exhaustive()
    }
}

/// What a run calls: a command's `_start`, or a job's entry export (after `_initialize`).
struct Entry<'a> {
    name: &'a str,
    initialize: bool,
    /// The entry returns an `i32`: the exit status.
    returns_status: bool,
}

impl<'a> Entry<'a> {
    /// `entry` (default `_start`) as `module` exports it; [`SandboxError::InvalidModule`] if it
    /// does not, or not as `[] -> []` or `[] -> [i32]`.
    fn of(module: &Module, entry: Option<&'a str>) -> Result<Entry<'a>, SandboxError> {
        let name = entry.unwrap_or("_start");
        let Some(ExternType::Func(ty)) = module.get_export(name) else {
            return Err(SandboxError::InvalidModule(if entry.is_none() {
                "module does not export `_start` (a WASI command's entry point; a module \
                 that is not a command needs the job's `entry`)"
                    .into()
            } else {
                format!("module does not export the function `{name}` (the job's entry)")
            }));
        };
        let results: Vec<ValType> = ty.results().collect();
        let returns_status = match results.as_slice() {
            [] => false,
            [ValType::I32] if name != "_start" => true,
            _ => {
                return Err(SandboxError::InvalidModule(format!(
                    "export `{name}` is not a function of type [] -> []{}",
                    if name == "_start" {
                        ""
                    } else {
                        " or [] -> [i32]"
                    }
                )));
            }
        };
        if ty.params().len() != 0 {
            return Err(SandboxError::InvalidModule(format!(
                "export `{name}` takes parameters: an entry takes none"
            )));
        }
        let initialize = name != "_start" && module.get_export("_initialize").is_some();
        Ok(Entry {
            name,
            initialize,
            returns_status,
        })
    }

    async fn call(
        &self,
        instance: &wasmtime::Instance,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<()> {
        if self.initialize {
            instance
                .get_typed_func::<(), ()>(&mut *store, "_initialize")?
                .call_async(&mut *store, ())
                .await?;
        }
        if self.returns_status {
            let status = instance
                .get_typed_func::<(), i32>(&mut *store, self.name)?
                .call_async(&mut *store, ())
                .await?;
            if status != 0 {
                return Err(I32Exit(status).into());
            }
            return Ok(());
        }
        instance
            .get_typed_func::<(), ()>(&mut *store, self.name)?
            .call_async(&mut *store, ())
            .await
    }
}

/// Runs `run` (a guest's instantiation and entry) on this thread to its end, or until it yields
/// (every [`YIELD_FUEL`] of fuel) when `expired` says its time is up: then `None`, the future
/// dropped, which unwinds the guest where it stood.
fn drive<T>(run: impl Future<Output = T>, mut expired: impl FnMut() -> bool) -> Option<T> {
    let mut run = std::pin::pin!(run);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        match run.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(out) => return Some(out),
            std::task::Poll::Pending if expired() => return None,
            std::task::Poll::Pending => {}
        }
    }
}

/// Turns the result of instantiate + `_start` into an [`Outcome`]. Flags recorded by
/// the host (limiter refusal, watchdog) win over the error value they caused.
fn classify(result: wasmtime::Result<()>, state: &HostState) -> Outcome {
    let Err(error) = result else {
        return Outcome::Exited(0);
    };
    if let Some(full) = error.downcast_ref::<crate::quota::DiskFull>() {
        return if full.dir == "/" {
            Outcome::OutputTooLarge
        } else {
            Outcome::Trap(full.to_string())
        };
    }
    if state.limiter.refused {
        return Outcome::MemoryLimit;
    }
    if state.watchdog.timed_out {
        return Outcome::Timeout;
    }
    if let Some(exit) = error.downcast_ref::<I32Exit>() {
        return Outcome::Exited(exit.0);
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Outcome::OutOfFuel,
        Some(Trap::Interrupt) => Outcome::Timeout,
        Some(trap) => Outcome::Trap(trap.to_string()),
        None => Outcome::Trap(error.root_cause().to_string()),
    }
}
