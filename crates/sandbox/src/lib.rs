//! Deterministic, metered, contained execution of WASI preview-1 modules.
//!
//! This is the only crate in Gridmint that knows `wasmtime`. A [`Sandbox`] owns one
//! engine (fuel metering, NaN canonicalization, no shared memories, no relaxed SIMD, no GC
//! proposal, epoch interruption) plus a cache of compiled modules; [`Sandbox::prepare`] validates and
//! compiles a module once per BLAKE3 hash, and [`Sandbox::run`] executes it against a
//! [`TaskRun`] and returns a [`RunReport`].
//!
//! What a guest sees: `argv = ["task", args..]`, exactly the declared env vars, the
//! declared stdin bytes, a fixed virtual clock (2025-01-01T00:00:00Z, monotonic clock
//! frozen), random sources seeded from [`TaskRun::seed`], and — only when the task has
//! inputs or a file output — a fresh temporary directory preopened as `/` holding
//! copies of the declared input files. Nothing else of the host is visible.
//!
//! Every guest failure is an [`Outcome`], never an `Err` and never a panic: `Err` is
//! reserved for a bad module ([`SandboxError::InvalidModule`]), a malformed task
//! ([`SandboxError::InvalidTask`]) and host-side problems ([`SandboxError::Setup`]).

pub use admit::{admit, admit_entry};
mod admit;
pub mod baseline;
mod canon;
mod fsview;
mod gate;
mod host;
mod imports;
mod lanes;
mod meter;
mod quota;
mod sandbox;
pub mod tree;
mod workdir;
pub mod worker;

use std::path::PathBuf;
use std::time::Duration;

pub use crate::gate::{Gate, thread_cpu};
pub use crate::sandbox::{Prepared, Sandbox};

/// Bytes of guest stderr kept in [`RunReport::stderr`]; later writes fail with `EIO`.
pub const STDERR_CAPTURE_BYTES: usize = 64 * 1024;

/// The guest may write at most `DISK_QUOTA_FACTOR * max_output_bytes` bytes (plus the
/// size of its inputs) into its working directory, in at most [`MAX_WORKDIR_ENTRIES`]
/// files and directories; exceeding either is reported as [`Outcome::OutputTooLarge`].
pub const DISK_QUOTA_FACTOR: u64 = 4;

/// Most files plus directories a guest may have in its working directory at once.
pub const MAX_WORKDIR_ENTRIES: u64 = 4096;

/// Fuel charged for every call from the guest into the host (any WASI function),
/// on top of the guest's own instructions: a host call costs the host about as
/// much as a thousand wasm instructions, and fuel is what the guest pays for.
pub const HOSTCALL_FUEL: u64 = 1000;

/// The instant the guest's wall clock is frozen at: 2025-01-01T00:00:00Z, in seconds
/// since the Unix epoch.
pub const VIRTUAL_UNIX_TIME_SECS: u64 = 1_735_689_600;

/// How a run is made deterministic, which fixes the fuel it counts: a network's rules choose
/// one (`engine::TaskDescriptor::profile`), so that every provider of a network runs alike. A
/// [`Sandbox`] runs them all; a module is prepared for one ([`Sandbox::prepare_for`]).
///
/// All make every NaN a guest can observe the canonical one and count one unit of fuel per
/// wasm instruction (wasmtime's default costs, plus [`HOSTCALL_FUEL`] per host call); they
/// differ in where NaNs are canonicalized, so in the fuel a module that stores floats uses
/// (and, for a NaN whose sign was flipped after it was made, in the bits it stores), and in
/// who meters (wasmtime, or the module rewritten to meter itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Profile {
    /// 1: Cranelift canonicalizes the result of every float instruction
    /// (`cranelift_nan_canonicalization`). Up to 9x slower than bare wasmtime on float loops.
    EveryFloat,
    /// 2: a NaN is canonicalized only where its bits become observable (stored, reinterpreted
    /// as an integer, used as a sign, put into a vector) and after float SIMD instructions, by a
    /// rewrite of the module before it is compiled; the instructions the rewrite adds are
    /// metered like the guest's own.
    ObservedNans,
    /// 3: profile 2's NaNs, and fuel metered by a second rewrite instead of wasmtime's
    /// `consume_fuel`: the same count for what a call runs (one unit per instruction, checked at
    /// function entries and loop headers, written back at calls and exits), except that
    /// instantiation is free and every bulk memory or table operation is followed by a check;
    /// an innermost loop that counts an `i32` to a bound, with no call and no other exit, is
    /// charged once on entry when it fits in the fuel left before the next check, and then runs
    /// without checks (`gridmint bench --only kernels`: wasmtime's metering costs about 1.25x
    /// on the kernels, nearly all of it in such loops).
    CountedLoops,
    /// 4: profile 3, except that the result of a float SIMD instruction is made canonical only
    /// where its bits become observable, as a scalar's is, instead of at once: the rewrite
    /// follows each vector's lane shape through the operand stack and locals (`lanes.rs`).
    /// Outputs are profile 3's but for the sign of a NaN whose sign a vector `neg` or `abs`
    /// changed; the fuel of a module with float SIMD code differs.
    TrackedVectors,
    /// 5: profile 4, except that the module charges [`HOSTCALL_FUEL`] for each call of an
    /// import itself (with a check before it; through a table or a reference, it marks the call
    /// and the host charges it), and nothing else counts as a host call. Under profiles 3 and 4
    /// the host charged every entry into it — wasmtime's libcalls too (`memory.grow`, bulk
    /// memory and table operations), where the module had not stored its counter — so a run's
    /// fuel depended on where the host's slices of it ended. Under profile 5 it does not: a run
    /// in a worker process, whose checks trap and whose fuel is one slice
    /// ([`SandboxConfig::worker`]), counts what an in-thread run counts (wasmtime's fuel for
    /// the module's own instructions, plus [`HOSTCALL_FUEL`] per host call).
    #[default]
    GuestCharged,
}

impl Profile {
    /// The profile a new network runs.
    pub const LATEST: Profile = Profile::GuestCharged;

    /// Every profile this build runs, oldest first.
    pub const ALL: [Profile; 5] = [
        Profile::EveryFloat,
        Profile::ObservedNans,
        Profile::CountedLoops,
        Profile::TrackedVectors,
        Profile::GuestCharged,
    ];

    /// The profile's number, as the rules carry it.
    pub fn number(self) -> u32 {
        match self {
            Profile::EveryFloat => 1,
            Profile::ObservedNans => 2,
            Profile::CountedLoops => 3,
            Profile::TrackedVectors => 4,
            Profile::GuestCharged => 5,
        }
    }

    /// The profile numbered `n`; `None` for one this build does not know.
    pub fn from_number(n: u32) -> Option<Profile> {
        match n {
            1 => Some(Profile::EveryFloat),
            2 => Some(Profile::ObservedNans),
            3 => Some(Profile::CountedLoops),
            4 => Some(Profile::TrackedVectors),
            5 => Some(Profile::GuestCharged),
            _ => None,
        }
    }

    /// Whether the module is rewritten to meter its own fuel (profiles 3 to 5) instead of
    /// wasmtime metering it.
    pub fn meters_itself(self) -> bool {
        matches!(
            self,
            Profile::CountedLoops | Profile::TrackedVectors | Profile::GuestCharged
        )
    }

    /// Whether the module charges its host calls itself (profile 5): its runs count the same
    /// fuel in-thread and in a worker process.
    pub fn charges_calls(self) -> bool {
        self == Profile::GuestCharged
    }
}

/// Engine-wide settings; one per [`Sandbox`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Cap on the captured stdout and on the declared output file. Larger output is
    /// reported as [`Outcome::OutputTooLarge`] with an empty output.
    pub max_output_bytes: u64,
    /// Use wasmtime's pooling instance allocator instead of on-demand allocation.
    /// Default `true`: measured 10–50 % less per-run overhead on small guests. It
    /// reserves (not commits) address space for 128 instances up front, and more than
    /// 128 concurrent runs on one sandbox fail with [`SandboxError::Setup`].
    pub pooling: bool,
    /// Where compiled modules are kept, by their content (wasmtime's code cache): a module
    /// compiled once is loaded from here by every later sandbox with the same directory and
    /// engine settings — across process restarts — instead of compiled again (a 20 MB
    /// interpreter takes seconds to compile: `gridmint bench --only compile`). `None` (the
    /// default): compiled code lives in
    /// memory only. A provider keeps it in `DATA_DIR/compiled`.
    pub code_cache: Option<PathBuf>,
    /// Pauses, throttles or stops this sandbox's runs ([`Gate`]; `None`: never held). A
    /// provider's owner holds it: runs pause in place while the machine is in use.
    pub gate: Option<std::sync::Arc<Gate>>,
    /// Run guests in worker processes started by this command (which must call
    /// [`worker::serve`]) instead of on the calling thread: `None` (the default) runs them
    /// in-thread. A worker's guests check their fuel without calling the host (a check that
    /// finds none left traps), and the sandbox bounds their wall time, pauses and throttles them
    /// with the operating system's signals (`SIGKILL`, `SIGSTOP`/`SIGCONT`): the same outputs
    /// and fuel as in-thread runs, without the cost of a call at every check (`gridmint bench
    /// --only kernels`). A provider started by `gridmint provider` runs its tasks this way.
    /// Runs that cannot (a profile before 5, whose fuel depends on the host's slices; a module
    /// with a start function; a fuel limit above `i64::MAX`; a platform without signals) stay
    /// in-thread.
    pub worker: Option<WorkerCommand>,
}

/// How to start a worker process ([`SandboxConfig::worker`]): `program args..`, with the
/// sandbox's requests on its stdin and its replies on its stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            max_output_bytes: 16 * 1024 * 1024,
            pooling: true,
            code_cache: None,
            gate: None,
            worker: None,
        }
    }
}

/// One execution of a prepared module.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaskRun {
    /// `argv[1..]`; `argv[0]` is always `"task"`.
    pub args: Vec<String>,
    /// The guest's complete environment (nothing is inherited from the host).
    pub env: Vec<(String, String)>,
    /// Bytes the guest reads from stdin.
    pub stdin: Vec<u8>,
    /// `(name visible to the guest, host path to copy from)`. Names must be plain file
    /// names; the guest sees `/<name>`. Files are copied, never linked.
    pub inputs: Vec<(String, PathBuf)>,
    /// Where the result comes from.
    pub output: OutputSource,
    /// Fuel (roughly: wasm instructions) the guest may consume.
    pub fuel_limit: u64,
    /// Cap on the guest's linear memory, initial size included.
    pub memory_limit_bytes: u64,
    /// Wall-clock bound on instantiation plus `_start`.
    pub wall_limit: Duration,
    /// Seeds the guest's secure and insecure random sources.
    pub seed: u64,
    /// The job's own cap on this run's output (its storage claim), below
    /// [`SandboxConfig::max_output_bytes`] when lower; `None`: the configured cap alone.
    pub max_output_bytes: Option<u64>,
    /// The exit statuses that are a successful answer (empty: 0 alone). A [`OutputSource::File`]
    /// task that exits with one of them must leave its output file, as one exiting 0 must.
    pub success_exits: Vec<i32>,
    /// The export to run instead of `_start` (a reactor's entry): `_initialize` is called
    /// first if the module exports it; the entry is `[] -> []`, or `[] -> [i32]` whose result
    /// is the exit status. A module without it fails the run with
    /// [`SandboxError::InvalidModule`].
    pub entry: Option<String>,
    /// Directory trees the guest sees read-only: `(absolute guest path, host directory)`.
    /// The host directory is used in place (never copied or written): an unpacked tree
    /// (`tree::unpack`) shared by every run. No path may be inside another or the scratch's.
    pub mounts: Vec<(String, PathBuf)>,
    /// An empty writable directory at this absolute guest path, of at most this many bytes
    /// (the sizes of the files in it): a fresh temporary directory per run. A run that ends
    /// with more there fails ([`Outcome::Trap`]); one found holding more than twice as much
    /// while it runs is stopped.
    pub scratch: Option<(String, u64)>,
}

impl TaskRun {
    /// Whether `outcome` is one of this run's successful answers.
    pub fn answered(&self, outcome: &Outcome) -> bool {
        match outcome {
            Outcome::Exited(status) if self.success_exits.is_empty() => *status == 0,
            Outcome::Exited(status) => self.success_exits.contains(status),
            _ => false,
        }
    }
}

impl Default for TaskRun {
    /// No args, env, stdin or inputs; stdout output; 10^10 fuel, 256 MiB, 60 s, seed 0.
    fn default() -> Self {
        TaskRun {
            args: Vec::new(),
            env: Vec::new(),
            stdin: Vec::new(),
            inputs: Vec::new(),
            output: OutputSource::Stdout,
            fuel_limit: 10_000_000_000,
            memory_limit_bytes: 256 * 1024 * 1024,
            wall_limit: Duration::from_secs(60),
            seed: 0,
            max_output_bytes: None,
            success_exits: Vec::new(),
            entry: None,
            mounts: Vec::new(),
            scratch: None,
        }
    }
}

/// Where a task's result bytes come from.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum OutputSource {
    /// Everything the guest wrote to stdout.
    #[default]
    Stdout,
    /// The file with this plain name in the guest's `/` after it finished.
    File(String),
}

/// What one run produced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunReport {
    /// How the guest ended.
    pub outcome: Outcome,
    /// The result bytes (see [`OutputSource`]). Whatever the guest produced before it
    /// ended, for every outcome except [`Outcome::Timeout`] (timing-dependent, so
    /// dropped) and [`Outcome::OutputTooLarge`]: for those it is empty.
    pub output: Vec<u8>,
    /// BLAKE3 of `output`.
    pub output_hash: [u8; 32],
    /// `fuel_limit - fuel left`, for every outcome. Exact for [`Outcome::Exited`] and
    /// [`Outcome::OutOfFuel`] (= `fuel_limit`). Wasmtime only writes the fuel counter
    /// back at calls, returns and `unreachable`, so after any other trap (including
    /// [`Outcome::MemoryLimit`]) it is the fuel used up to the guest's last call or
    /// return: still deterministic, but a lower bound. Meaningless for
    /// [`Outcome::Timeout`].
    pub fuel_used: u64,
    /// Host time spent instantiating and running the guest.
    pub wall_time: Duration,
    /// CPU time the guest's thread used (in a worker process, the worker's), for what a run
    /// costs its host (energy); `None` where the platform does not say.
    pub cpu_time: Option<Duration>,
    /// The first [`STDERR_CAPTURE_BYTES`] of the guest's stderr; diagnostics only, not
    /// part of the output hash.
    pub stderr: Vec<u8>,
}

/// How a guest run ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Outcome {
    /// The guest returned from `_start` (0) or called `proc_exit(n)`. 0 is success.
    Exited(i32),
    /// The guest trapped (or a host call failed fatally); the message says why. A task
    /// with [`OutputSource::File`] that exits 0 (or with another of its
    /// [`TaskRun::success_exits`]) without leaving that file as a regular file gets `Trap("declared output file missing")` or
    /// `Trap("declared output file is not a regular file")`.
    Trap(String),
    /// The fuel limit was exhausted.
    OutOfFuel,
    /// The wall-clock limit passed.
    Timeout,
    /// The guest tried to use more linear memory (or table space) than allowed.
    MemoryLimit,
    /// The guest wrote more than `max_output_bytes` to stdout (stdout tasks), its
    /// output file is larger than that, or it exceeded its working-directory quota.
    OutputTooLarge,
}

/// Why a module could not be prepared or a task could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The bytes are not a valid WASI preview-1 command module.
    #[error("invalid module: {0}")]
    InvalidModule(String),
    /// The task description is malformed (for example a file name that is not plain).
    #[error("invalid task: {0}")]
    InvalidTask(String),
    /// A host-side problem: temp dir, missing input file, thread spawn, engine setup.
    #[error("sandbox setup failed: {0}")]
    Setup(String),
    /// The host failed mid-run where the guest did nothing wrong: a memory growth within the
    /// task's limits that the operating system refused (out of memory or address-space maps).
    /// Not a verdict on the task: its outcome and fuel would differ from another machine's, so
    /// no report is made of it; running the task again may succeed.
    #[error("the host failed during the run (not the task's doing): {0}")]
    Host(String),
}
