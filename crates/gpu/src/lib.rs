//! Deterministic, metered, contained execution of compute shaders on a GPU.
//!
//! This is the only crate in Gridmint that knows `wgpu` and `naga`. [`admit_bytes`] parses a
//! shader in WGSL, GLSL or SPIR-V (the language told from the bytes: [`language`], `front.rs`),
//! validates it, holds it to the rules that keep its output a function of its inputs
//! (`admit.rs`) and meters it (`meter.rs`, a naga IR pass: every invocation counts its work and
//! stops at its share of the task's fuel). A [`Gpu`] owns one device (made once per provider:
//! 40–350 ms) and a cache of pipelines; [`Gpu::run`] binds the task's buffers, dispatches, and
//! returns a [`GpuReport`]: the output buffers, the fuel (the sum of every invocation's count)
//! and an [`GpuOutcome`].
//!
//! What a shader sees: the buffers the task declares in bind group 0, nothing else — no
//! textures, no other task's memory (wgpu's bounds checks clamp every access to its buffer).
//! Every failure of a shader is a [`GpuOutcome`], never a panic; `Err` is a bad shader
//! ([`GpuError::Parse`], [`GpuError::Invalid`], [`GpuError::Refused`]), a task that does not fit
//! its shader or the device ([`GpuError::InvalidTask`]), or the host's own trouble
//! ([`GpuError::NoAdapter`], [`GpuError::Device`]).

mod admit;
#[cfg(feature = "device")]
pub mod baseline;
#[cfg(feature = "device")]
mod class;
#[cfg(feature = "device")]
mod device;
mod front;
mod meter;

use std::time::Duration;

pub use admit::{BindingKind, Shader, ShaderBinding, admit, admit_bytes};
#[cfg(feature = "device")]
pub use class::fingerprint;
#[cfg(feature = "device")]
pub use device::{Adapter, Gpu, adapters};
pub use front::{ShaderLanguage, language};
pub use meter::MAX_INVOCATION_FUEL;

/// Why a shader or a task was not run.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// The bytes are not a shader in the language they were told to be (WGSL, GLSL, SPIR-V:
    /// [`language`]), or naga's front end failed on them.
    #[error("the shader does not parse:\n{0}")]
    Parse(String),
    /// naga's validation failed (types, uniformity, a capability the network does not allow).
    #[error("the shader is not valid:\n{0}")]
    Invalid(String),
    /// The shader is valid but breaks a rule of the network (see `admit`), or is beyond what
    /// naga's GLSL and SPIR-V front ends are given (see `front.rs`).
    #[error("the shader is refused: {0}")]
    Refused(String),
    /// The task does not fit its shader or the device (buffers, sizes, dispatch).
    #[error("invalid task: {0}")]
    InvalidTask(String),
    /// No GPU adapter (Vulkan, Metal or DX12) is present; on Linux without a GPU, Mesa's
    /// software driver provides one (Debian: `mesa-vulkan-drivers`).
    #[error("no GPU adapter found (on Linux without a GPU: apt-get install mesa-vulkan-drivers)")]
    NoAdapter,
    /// The device failed or refused what a valid task asked of it.
    #[error("device error: {0}")]
    Device(String),
}

/// One buffer of a task: `@group(0) @binding(binding)`, filled with `bytes` before the dispatch.
#[derive(Debug, Clone)]
pub struct TaskBuffer {
    /// The binding it is bound to.
    pub binding: u32,
    /// Its contents (and size): an input file, or zeros for a buffer only written.
    pub bytes: Vec<u8>,
    /// Whether its contents after the run are part of the task's output.
    pub output: bool,
}

/// One run of an admitted [`Shader`].
#[derive(Debug, Clone)]
pub struct GpuTask {
    /// Workgroups dispatched in x, y and z.
    pub workgroups: [u32; 3],
    /// Every buffer the shader's entry point uses, each once.
    pub buffers: Vec<TaskBuffer>,
    /// The task's fuel; each invocation gets an equal share (at most [`MAX_INVOCATION_FUEL`]).
    pub fuel: u64,
    /// Most bytes of device memory the task's buffers may take together.
    pub max_bytes: u64,
    /// Wall-clock bound on the dispatch, for a slow or overloaded device (fuel bounds the work).
    pub timeout: Duration,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuOutcome {
    /// Every invocation finished within its fuel.
    Completed,
    /// An invocation ran past its share of the fuel; the outputs are those at the stop.
    OutOfFuel,
    /// A loop ended without taking any of its exits: the driver cut it short (Mesa's lavapipe does
    /// after about 65,535 iterations). The outputs are wrong; the device cannot run this task.
    LoopCutShort,
    /// The dispatch did not finish within [`GpuTask::timeout`].
    TimedOut,
}

/// What a run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuReport {
    /// How it ended.
    pub outcome: GpuOutcome,
    /// The sum of every invocation's count (0 when timed out).
    pub fuel: u64,
    /// Each output buffer's contents, by binding, in binding order.
    pub outputs: Vec<(u32, Vec<u8>)>,
}
