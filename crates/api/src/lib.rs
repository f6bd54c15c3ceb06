//! Everything the coordinator, providers and the CLI agree on: identities and request signing
//! ([`auth`]), offline verification of the block chain ([`chain`]), the JSON shapes of the HTTP
//! API ([`wire`]) and a typed client for it ([`client`]).

pub mod auth;
mod batch;
pub mod chain;
pub mod client;
pub mod private;
pub mod tls;
pub mod wire;

pub use auth::{AuthError, Identity, KeyCache, Sessions, valid_account, verify};
pub use batch::{BatchKeys, verify_batch};
pub use client::{Client, ClientError, UdpPinger};
pub use submit::{DEFAULT_OUTPUT_LIMIT, gpu_submission, job_submission, weigh};

/// Submitting a job the way its network wants it (rules 10: with a storage claim where storage
/// costs a deposit).
pub mod submit {
    use engine::{
        Action, Hash, JobFiles, JobOptions, JobSpec, Sealing, StorageClaim, StorageParams,
    };
    use std::collections::HashMap;

    /// The most output one task may return when its job does not say: the sandbox's own default
    /// cap (`sandbox::SandboxConfig::max_output_bytes`), or the network's maximum if lower.
    pub const DEFAULT_OUTPUT_LIMIT: u64 = 16 << 20;

    /// What the blobs of `spec` and `files` weigh (the distinct ones,
    /// [`engine::submission_blobs`]), from their contents in `blobs`: a storage claim's
    /// `input_bytes`. `Err` names a blob they name that `blobs` lacks.
    pub fn weigh(
        spec: &JobSpec,
        files: &JobFiles,
        blobs: &[impl AsRef<[u8]>],
    ) -> Result<u64, Hash> {
        let sizes: HashMap<Hash, u64> = blobs
            .iter()
            .map(|b| (Hash::of(b.as_ref()), b.as_ref().len() as u64))
            .collect();
        engine::submission_blobs(spec, Some(files))
            .into_iter()
            .try_fold(0u64, |sum, hash| {
                sizes
                    .get(&hash)
                    .map(|size| sum.saturating_add(*size))
                    .ok_or(hash)
            })
    }

    /// Rules 23: the action submitting `spec` as a GPU job run as `gpu` declares, with a storage
    /// claim as [`job_submission`] makes one where the network prices storage (rules 30: with
    /// `tolerance`, one whose results agree within it).
    pub fn gpu_submission(
        storage: Option<&StorageParams>,
        spec: JobSpec,
        input_bytes: u64,
        output_limit: Option<u64>,
        gpu: engine::GpuJob,
        tolerance: Option<engine::Tolerance>,
    ) -> Action {
        let storage = storage.map(|params| StorageClaim {
            input_bytes,
            output_bytes: output_limit.unwrap_or(DEFAULT_OUTPUT_LIMIT.min(params.max_output_bytes)),
        });
        match tolerance {
            // Rules 30: its results agree within the tolerance, from any GPU.
            Some(tolerance) => Action::SubmitGpuJobWithTolerance {
                spec,
                storage,
                gpu,
                tolerance,
            },
            None => Action::SubmitGpuJob { spec, storage, gpu },
        }
    }

    /// The action submitting `spec` to a network whose storage costs `storage`
    /// (`wire::NetworkView::storage`), with `options` (rules 11) and `files` (rules 12; the
    /// default ones need neither): a plain `SubmitJob` where storage takes no deposit and the
    /// options and files are the default; otherwise with a claim of `input_bytes` (what
    /// [`weigh`] says) and `output_limit` bytes of output per task (default:
    /// [`DEFAULT_OUTPUT_LIMIT`], or the network's maximum if lower). With a `sealing` (rules
    /// 13), a private job's submission: its blobs must already be sealed ([`crate::private`]).
    pub fn job_submission(
        storage: Option<&StorageParams>,
        spec: JobSpec,
        input_bytes: u64,
        output_limit: Option<u64>,
        options: JobOptions,
        files: JobFiles,
        sealing: Option<Sealing>,
    ) -> Action {
        let claim = storage.map(|params| StorageClaim {
            input_bytes,
            output_bytes: output_limit.unwrap_or(DEFAULT_OUTPUT_LIMIT.min(params.max_output_bytes)),
        });
        if let Some(sealing) = sealing {
            return Action::SubmitPrivateJob {
                spec,
                storage: claim,
                options,
                files,
                sealing,
            };
        }
        match claim {
            _ if files != JobFiles::default() => Action::SubmitJobWithFiles {
                spec,
                storage: claim,
                options,
                files,
            },
            _ if options != JobOptions::default() => Action::SubmitJobWithOptions {
                spec,
                storage: claim,
                options,
            },
            None => Action::SubmitJob(spec),
            Some(storage) => Action::SubmitJobWithStorage { spec, storage },
        }
    }
}
