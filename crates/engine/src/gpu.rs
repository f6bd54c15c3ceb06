//! Rules 23: GPU jobs ([`GpuJob`]), submitted with `Action::SubmitGpuJob`.
//!
//! A GPU job's module blob is a WGSL compute shader instead of a WebAssembly module. Each map
//! task dispatches the shader's entry point over [`GpuJob::workgroups`] with the buffers the job
//! declares bound in bind group 0: each filled from one of the task's input files (by name) or
//! with zeros, and those marked `output` concatenated in binding order into the task's output.
//! Its fuel is the shader's own count (`gpu` crate: a static cost per block, summed over every
//! invocation), priced like CPU fuel. A reduce step, if the job has one, is an ordinary
//! WebAssembly task.
//!
//! The engine does not read the shader; what it decides it decides from the declaration:
//!
//! - a GPU job's tasks go only to providers that declare a GPU ([`State::job_rules`]), as a job
//!   with `requirements.gpu` does;
//! - **replicas from one class.** A shader with floats may give other bits on another kind of
//!   device (fused multiply-adds, transcendental functions' precision), so a job that says so
//!   ([`GpuJob::one_class`]; the coordinator refuses a float shader that does not) runs all its
//!   GPU tasks on one determinism class: the GPU the first provider to take one of its tasks
//!   declared ([`GpuJobs::classes`]). Results are then compared bit for bit as every other result
//!   is. An integer-only shader runs anywhere: its results are the same bytes on every device.
//!
//! A provider's class ([`State::gpu_class_of`]) is its declared GPU (`ProviderSpec::gpu`, which
//! a provider fills with the adapter's name and its vendor, device, driver and backend) together
//! with its offer's fingerprint: the hash of what its device computes for a fixed float
//! challenge (`gpu::fingerprint`: fused multiply-adds, division, square roots, transcendental
//! functions). Two devices share a class only if they name the same GPU *and* compute the
//! challenge bit for bit alike, so a device that rounds differently under the same name (another
//! driver build, a misreported version) is a class of its own instead of spoiling one, and no
//! registration can poison a class for the others. The fixed challenge is public, so a
//! provider could copy another's name and fingerprint without the device; under rules 28 a
//! claimed class counts only once a member of the class has checked it with a challenge of its
//! own ([`crate::gpu_class`]). Before, such a copy was caught only when its results disagreed
//! with its class's, and slashed for them like any other wrong result.
//!
//! **GPU offers.** A provider that can run GPU tasks registers with `Action::RegisterGpuProvider`,
//! which adds a [`GpuOffer`] to its spec: its device's largest buffer and its measured speed in
//! GPU fuel per millisecond. Only providers with an offer take GPU tasks (a GPU typed in by hand,
//! with no device behind it, takes none), and the scheduler's speed estimate for a GPU job is the
//! offer's speed instead of the CPU benchmark ([`State::fuel_per_ms`]). Registering again
//! without one withdraws it.

use crate::command::{Event, Rejection};
use crate::state::{Job, Provider, State};
use crate::storage::StorageClaim;
use crate::types::{AccountId, JobId, JobSpec, Time};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The most buffers a GPU job may bind (wgpu's default `max_storage_buffers_per_shader_stage`
/// is 8, plus uniforms).
pub const MAX_GPU_BUFFERS: usize = 16;
/// The highest binding number a buffer may use.
pub const MAX_GPU_BINDING: u32 = 63;
/// The most workgroups a GPU job may dispatch in one dimension (WebGPU's default
/// `maxComputeWorkgroupsPerDimension`).
pub const MAX_GPU_WORKGROUPS: u32 = 65_535;
/// The longest entry point name.
pub const MAX_GPU_ENTRY: usize = 128;
/// The challenge every provider's GPU fingerprint answers (`gpu::fingerprint`): fixed, so that
/// devices that compute alike have equal fingerprints.
pub const FINGERPRINT_CHALLENGE: u64 = 0x6772_6964_6d69_6e74;

/// How a GPU job runs its shader (rules 23). Always encoded in full: log entries are postcard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GpuJob {
    /// The compute entry point of the shader.
    pub entry: String,
    /// Workgroups dispatched in x, y and z (each 1 to [`MAX_GPU_WORKGROUPS`]).
    pub workgroups: [u32; 3],
    /// Every buffer the entry point uses, each once; sorted by binding once normalised.
    pub buffers: Vec<GpuBuffer>,
    /// Whether the job's GPU tasks must all run on one determinism class (a shader with floats).
    pub one_class: bool,
}

/// One buffer of a GPU job: `@group(0) @binding(binding)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GpuBuffer {
    pub binding: u32,
    pub fill: GpuFill,
    /// Whether its contents after the dispatch are part of the task's output.
    pub output: bool,
}

/// What a buffer holds before the dispatch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum GpuFill {
    /// The bytes of the task's input file of this name (every map task must have one).
    Input(String),
    /// This many zero bytes (a multiple of 4, at least 4).
    Zeroed(u64),
}

impl GpuJob {
    /// The job checked against its spec and in its one form (buffers sorted by binding). `Err`
    /// says what is wrong.
    pub fn normalised(&self, spec: &JobSpec) -> Result<GpuJob, String> {
        if self.entry.is_empty() {
            return Err("the GPU entry point is empty".into());
        }
        if self.entry.len() > MAX_GPU_ENTRY {
            return Err(format!(
                "the GPU entry point is longer than {MAX_GPU_ENTRY} bytes"
            ));
        }
        if let Some(n) = self
            .workgroups
            .iter()
            .find(|n| !(1..=MAX_GPU_WORKGROUPS).contains(*n))
        {
            return Err(format!(
                "workgroups: {n} is not between 1 and {MAX_GPU_WORKGROUPS}"
            ));
        }
        if self.buffers.is_empty() {
            return Err("a GPU job binds no buffer".into());
        }
        if self.buffers.len() > MAX_GPU_BUFFERS {
            return Err(format!(
                "a GPU job binds {} buffers; at most {MAX_GPU_BUFFERS}",
                self.buffers.len()
            ));
        }
        let mut buffers = self.buffers.clone();
        buffers.sort_by_key(|b| b.binding);
        let mut seen = BTreeSet::new();
        for b in &buffers {
            if b.binding > MAX_GPU_BINDING {
                return Err(format!("binding {} is above {MAX_GPU_BINDING}", b.binding));
            }
            if !seen.insert(b.binding) {
                return Err(format!("binding {} is declared twice", b.binding));
            }
            match &b.fill {
                GpuFill::Input(name) => {
                    if let Some(i) = spec
                        .tasks
                        .iter()
                        .position(|t| !t.inputs.iter().any(|f| &f.name == name))
                    {
                        return Err(format!(
                            "binding {} is filled from input `{name}`, which task {i} does not have",
                            b.binding
                        ));
                    }
                }
                GpuFill::Zeroed(size) => {
                    if *size < 4 || size % 4 != 0 {
                        return Err(format!(
                            "binding {}: a zeroed buffer's size must be a positive multiple of 4, not {size}",
                            b.binding
                        ));
                    }
                    if *size > spec.limits.memory_bytes {
                        return Err(format!(
                            "binding {}: {size} zero bytes are more than the job's memory limit ({})",
                            b.binding, spec.limits.memory_bytes
                        ));
                    }
                }
            }
        }
        if !buffers.iter().any(|b| b.output) {
            return Err("no buffer is an output".into());
        }
        Ok(GpuJob {
            entry: self.entry.clone(),
            workgroups: self.workgroups,
            buffers,
            one_class: self.one_class,
        })
    }
}

/// What a provider's GPU offers (rules 23, `Action::RegisterGpuProvider`). Always encoded in
/// full: log entries are postcard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GpuOffer {
    /// GPU fuel its device burns per millisecond on the benchmark shader (at least 1).
    pub fuel_per_ms: u64,
    /// What its device computes for the network's fixed float challenge (`gpu::fingerprint` of
    /// [`FINGERPRINT_CHALLENGE`]): part of its class.
    pub fingerprint: crate::types::Hash,
    /// The largest buffer its device holds, in bytes: a GPU job whose memory limit is larger
    /// does not go to it.
    pub memory_bytes: u64,
    /// What it asks per unit of GPU fuel (its CPU price, `ProviderSpec::price_per_fuel`, is for
    /// WebAssembly tasks).
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub price_per_fuel: crate::types::Amount,
}

/// The GPU jobs and offers (rules 23; empty before).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GpuJobs {
    /// Every GPU job's declaration, normalised.
    pub jobs: BTreeMap<JobId, GpuJob>,
    /// The class ([`State::gpu_class_of`]) each one-class job runs on, fixed by the first
    /// provider that took one of its tasks.
    pub classes: BTreeMap<JobId, String>,
    /// Providers' GPU offers, by provider (until it registers again without one).
    pub offers: BTreeMap<AccountId, GpuOffer>,
}

impl State {
    /// Job `job`'s GPU declaration, if it is a GPU job.
    pub fn gpu_job(&self, job: JobId) -> Option<&GpuJob> {
        self.gpu.jobs.get(&job)
    }

    /// The determinism class a one-class GPU job runs on, once one of its tasks was taken.
    pub fn gpu_class(&self, job: JobId) -> Option<&str> {
        self.gpu.classes.get(&job).map(String::as_str)
    }

    /// Provider `p`'s GPU class: its declared GPU and its offer's fingerprint; `None` without
    /// both, and under rules 28 also while its claim is not proven ([`crate::gpu_class`]).
    pub fn gpu_class_of(&self, p: &AccountId) -> Option<String> {
        if self.rules >= 28 {
            return self.gpu_classes.proven.get(p).map(|c| c.class.clone());
        }
        self.claimed_gpu_class(p)
    }

    /// Provider `p`'s GPU offer, if it registered with one.
    pub fn gpu_offer(&self, p: &AccountId) -> Option<&GpuOffer> {
        self.gpu.offers.get(p)
    }

    /// How much fuel `p` burns per millisecond on `job`'s tasks: its GPU offer's speed for a GPU
    /// job, else its CPU benchmark (`benchmark_score` points of
    /// [`crate::schedule::FUEL_PER_BENCHMARK_POINT`]). At least 1.
    pub fn fuel_per_ms(&self, p: &Provider, job: &Job) -> u64 {
        if self.gpu.jobs.contains_key(&job.id)
            && let Some(offer) = self.gpu.offers.get(&p.id)
        {
            return offer.fuel_per_ms.max(1);
        }
        p.spec
            .benchmark_score
            .saturating_mul(crate::schedule::FUEL_PER_BENCHMARK_POINT)
            .max(1)
    }

    /// What `p` asks per unit of fuel of `job`'s task `index`: its GPU offer's price for a GPU
    /// job's map task, its spec's price otherwise.
    pub fn price_per_fuel(
        &self,
        p: &Provider,
        job: &Job,
        index: Option<u32>,
    ) -> crate::types::Amount {
        let map = index.is_none_or(|i| (i as usize) < job.spec.tasks.len());
        if map
            && self.gpu.jobs.contains_key(&job.id)
            && let Some(offer) = self.gpu.offers.get(&p.id)
        {
            return offer.price_per_fuel;
        }
        p.spec.price_per_fuel
    }

    /// How fast `p` is on `job`, for comparing providers (the suitability score): its GPU
    /// offer's fuel per millisecond for a GPU job, its CPU `benchmark_score` otherwise — exactly
    /// what the score compared before rules 23, so that older chains replay to the same picks.
    pub(crate) fn speed_score(&self, p: &Provider, job: &Job) -> u64 {
        if self.gpu.jobs.contains_key(&job.id)
            && let Some(offer) = self.gpu.offers.get(&p.id)
        {
            return offer.fuel_per_ms;
        }
        p.spec.benchmark_score
    }

    /// Rules 23: whether `p` may run `job`'s tasks as a GPU job: it declares a GPU and offers a
    /// device that holds the job's memory limit, and for a one-class job, the job's class if it
    /// has one.
    pub(crate) fn gpu_fits(&self, p: &Provider, job: &Job) -> Result<(), String> {
        let Some(gpu) = self.gpu.jobs.get(&job.id) else {
            return Ok(());
        };
        if p.spec.gpu.is_none() {
            return Err("a GPU job, and the provider declares no GPU".into());
        }
        let Some(offer) = self.gpu.offers.get(&p.id) else {
            return Err(
                "a GPU job, and the provider offers no GPU device (it registered without one)"
                    .into(),
            );
        };
        if job.spec.limits.memory_bytes > offer.memory_bytes {
            return Err(format!(
                "the job's buffers may take {} bytes; the provider's GPU holds buffers of {}",
                job.spec.limits.memory_bytes, offer.memory_bytes
            ));
        }
        match (self.gpu.classes.get(&job.id), self.gpu_class_of(&p.id)) {
            (Some(class), Some(own)) if gpu.one_class && *class != own => Err(format!(
                "the job's float results come from one GPU class ({class}); the provider's is {own}"
            )),
            // Rules 28: a class not proven yet (before, every offer had one).
            (_, None) if gpu.one_class => Err(
                "the job's float results come from one GPU class, and the provider's claim to \
                 its class is not proven yet"
                    .into(),
            ),
            _ => Ok(()),
        }
    }

    /// Rules 23: provider `who` took one of `job`'s tasks: a one-class job without a class runs
    /// on `who`'s from now on.
    pub(crate) fn pin_gpu_class(&mut self, job: JobId, who: &AccountId) {
        let one_class = self.gpu.jobs.get(&job).is_some_and(|g| g.one_class);
        if one_class
            && !self.gpu.classes.contains_key(&job)
            && let Some(class) = self.gpu_class_of(who)
        {
            self.gpu.classes.insert(job, class);
        }
    }

    /// Rules 23: registers provider `who` with `spec` and the GPU `offer` (see [`GpuOffer`]).
    pub(crate) fn register_gpu(
        &mut self,
        who: AccountId,
        spec: &crate::types::ProviderSpec,
        offer: &GpuOffer,
        now: Time,
    ) -> Result<Vec<Event>, Rejection> {
        if self.rules < 23 {
            return Err(Rejection::NeedsRules {
                what: "a provider with a GPU offer".into(),
                needs: 23,
                runs: self.rules,
            });
        }
        if spec.gpu.is_none() {
            return Err(Rejection::InvalidProviderSpec(
                "a GPU offer needs the GPU it is for (gpu)".into(),
            ));
        }
        if offer.fuel_per_ms == 0 || offer.memory_bytes == 0 {
            return Err(Rejection::InvalidProviderSpec(
                "a GPU offer's speed and memory must be positive".into(),
            ));
        }
        let mut events = self.register(who, spec, now)?;
        self.gpu.offers.insert(who, offer.clone());
        if self.rules >= 28 {
            events.extend(self.claim_gpu_class(who, now));
        }
        Ok(events)
    }

    /// Rules 23: a provider registered again without a GPU offer withdrew the one it had.
    pub(crate) fn withdraw_gpu_offer(&mut self, who: &AccountId) {
        self.gpu.offers.remove(who);
        self.drop_gpu_class(who);
    }

    /// Rules 23: submits `spec` as a GPU job (its module is a WGSL shader run as `gpu` says),
    /// with a storage claim where the network prices storage.
    pub(crate) fn submit_gpu(
        &mut self,
        owner: AccountId,
        spec: &JobSpec,
        storage: Option<&StorageClaim>,
        gpu: &GpuJob,
        now: Time,
    ) -> Result<Vec<Event>, Rejection> {
        if self.rules < 23 {
            return Err(Rejection::NeedsRules {
                what: "a GPU job".into(),
                needs: 23,
                runs: self.rules,
            });
        }
        let gpu = gpu.normalised(spec).map_err(Rejection::InvalidJobSpec)?;
        let job = self.next_job;
        let events = self.submit_claimed(owner, spec, storage, now)?;
        self.gpu.jobs.insert(job, gpu);
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{InputFile, Limits, TaskSpec};

    fn spec(inputs: &[&[&str]]) -> JobSpec {
        let tasks = inputs
            .iter()
            .map(|names| TaskSpec {
                inputs: names
                    .iter()
                    .map(|n| InputFile {
                        name: n.to_string(),
                        hash: crate::types::Hash([1; 32]),
                    })
                    .collect(),
                ..TaskSpec::default()
            })
            .collect();
        JobSpec {
            module: crate::types::Hash([0; 32]),
            tasks,
            limits: Limits {
                fuel: 1_000_000,
                memory_bytes: 1 << 20,
                wall_ms: 1000,
            },
            deadline: 1,
            max_price: 1,
            output: crate::types::OutputSource::Stdout,
            aggregate: crate::types::Aggregate::Concat,
            redundancy: Default::default(),
            requirements: Default::default(),
        }
    }

    fn job(buffers: Vec<GpuBuffer>) -> GpuJob {
        GpuJob {
            entry: "main".into(),
            workgroups: [4, 1, 1],
            buffers,
            one_class: false,
        }
    }

    fn input(binding: u32, name: &str) -> GpuBuffer {
        GpuBuffer {
            binding,
            fill: GpuFill::Input(name.into()),
            output: false,
        }
    }

    fn zeroed(binding: u32, size: u64) -> GpuBuffer {
        GpuBuffer {
            binding,
            fill: GpuFill::Zeroed(size),
            output: true,
        }
    }

    #[test]
    fn declarations_are_checked_against_the_spec_and_sorted() {
        let two = spec(&[&["a"], &["a", "b"]]);
        let ok = job(vec![zeroed(3, 64), input(0, "a")])
            .normalised(&two)
            .unwrap();
        assert_eq!(
            ok.buffers.iter().map(|b| b.binding).collect::<Vec<_>>(),
            [0, 3]
        );
        let table: Vec<(GpuJob, &str)> = vec![
            (
                job(vec![input(0, "b"), zeroed(1, 4)]),
                "task 0 does not have",
            ),
            (job(vec![input(0, "a")]), "no buffer is an output"),
            (job(vec![]), "binds no buffer"),
            (job(vec![zeroed(1, 6)]), "multiple of 4"),
            (job(vec![zeroed(1, 0)]), "multiple of 4"),
            (job(vec![zeroed(1, 2 << 20)]), "memory limit"),
            (job(vec![zeroed(1, 4), zeroed(1, 8)]), "declared twice"),
            (job(vec![zeroed(64, 4)]), "above 63"),
            (
                GpuJob {
                    workgroups: [0, 1, 1],
                    ..job(vec![zeroed(0, 4)])
                },
                "workgroups: 0",
            ),
            (
                GpuJob {
                    workgroups: [1, 65_536, 1],
                    ..job(vec![zeroed(0, 4)])
                },
                "workgroups: 65536",
            ),
            (
                GpuJob {
                    entry: String::new(),
                    ..job(vec![zeroed(0, 4)])
                },
                "entry point is empty",
            ),
            (
                GpuJob {
                    entry: "e".repeat(129),
                    ..job(vec![zeroed(0, 4)])
                },
                "longer than 128",
            ),
            (job((0..17).map(|b| zeroed(b, 4)).collect()), "at most 16"),
        ];
        for (declared, why) in table {
            let err = declared.normalised(&two).unwrap_err();
            assert!(err.contains(why), "{declared:?}: {err}");
        }
    }
}
