//! Plain data the engine is made of: identities, content hashes, specs of providers, jobs and tasks.
//!
//! Everything here is `serde`-serialisable. Binary encodings (postcard, used for signing, the log and
//! the state hash) see raw bytes; human-readable ones (JSON on the wire) see lower-case hex.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Milliseconds since the Unix epoch. Time only enters the engine as an input.
pub type Time = u64;
/// Token amounts in base units. Checked arithmetic only.
pub type Amount = u128;
/// Sequential job number, assigned by the engine.
pub type JobId = u64;

macro_rules! byte_id {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub [u8; $len]);

        // The bytes' lexicographic order (what `derive` gives, which the state's maps iterate
        // in), compared eight bytes at a time as big-endian words: the maps keyed by accounts
        // and hashes compare keys on every lookup, and the derived order called `memcmp` for
        // each (a fifth of the 100k-provider simulation's time).
        impl Ord for $name {
            #[inline]
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                let (ours, _) = self.0.as_chunks::<8>();
                let (theirs, _) = other.0.as_chunks::<8>();
                for (a, b) in ours.iter().zip(theirs) {
                    let order = u64::from_be_bytes(*a).cmp(&u64::from_be_bytes(*b));
                    if order.is_ne() {
                        return order;
                    }
                }
                std::cmp::Ordering::Equal
            }
        }

        impl PartialOrd for $name {
            #[inline]
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        impl $name {
            /// Lower-case hex form.
            pub fn to_hex(&self) -> String {
                self.with_hex(str::to_owned)
            }
            /// Calls `f` with the lower-case hex form, made on the stack (`hex::encode` builds
            /// its `String` a `char` at a time: most of a history row's encoding).
            fn with_hex<R>(&self, f: impl FnOnce(&str) -> R) -> R {
                let mut out = [0u8; 2 * $len];
                // The buffer is exactly twice the bytes, and only ASCII digits are written.
                let hex = hex::encode_to_slice(self.0, &mut out)
                    .ok()
                    .and_then(|()| std::str::from_utf8(&out).ok())
                    .unwrap_or_default();
                f(hex)
            }
            /// Parses the lower- or upper-case hex form.
            pub fn from_hex(s: &str) -> Result<Self, hex::FromHexError> {
                let mut out = [0u8; $len];
                hex::decode_to_slice(s, &mut out)?;
                Ok(Self(out))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.with_hex(|hex| f.write_str(hex))
            }
        }

        /// In JSON: the bytes as lower-case hex.
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some(format!("^[0-9a-fA-F]{{{}}}$", 2 * $len)))
                    .description(Some(stringify!($name)))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.with_hex(|hex| {
                    write!(f, "{}({})", stringify!($name), hex.get(..12).unwrap_or(hex))
                })
            }
        }

        impl std::str::FromStr for $name {
            type Err = hex::FromHexError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::from_hex(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    self.with_hex(|hex| s.serialize_str(hex))
                } else {
                    // A tuple of bytes: fixed size, no length prefix.
                    use serde::ser::SerializeTuple;
                    let mut t = s.serialize_tuple($len)?;
                    for b in &self.0 {
                        t.serialize_element(b)?;
                    }
                    t.end()
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let s = String::deserialize(d)?;
                    Self::from_hex(&s).map_err(|e| {
                        serde::de::Error::custom(format!(
                            "invalid {} (expected {} hex characters): {e}",
                            stringify!($name),
                            $len * 2
                        ))
                    })
                } else {
                    struct V;
                    impl<'de> serde::de::Visitor<'de> for V {
                        type Value = [u8; $len];
                        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                            write!(f, "{} bytes", $len)
                        }
                        fn visit_seq<A: serde::de::SeqAccess<'de>>(
                            self,
                            mut seq: A,
                        ) -> Result<Self::Value, A::Error> {
                            let mut out = [0u8; $len];
                            for (i, slot) in out.iter_mut().enumerate() {
                                *slot = seq
                                    .next_element()?
                                    .ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
                            }
                            Ok(out)
                        }
                    }
                    d.deserialize_tuple($len, V).map(Self)
                }
            }
        }
    };
}

byte_id!(
    /// An account: the 32-byte ed25519 public key that owns it. Providers and requesters alike.
    AccountId,
    32
);
byte_id!(
    /// A BLAKE3 content hash: modules, inputs and outputs are addressed by it.
    Hash,
    32
);
byte_id!(
    /// An ed25519 signature. The engine stores signatures (they are the audit trail) but never checks
    /// them: the shell verifies before anything enters the log, and chain verification re-checks.
    Sig,
    64
);

impl Hash {
    /// BLAKE3 of `bytes`.
    pub fn of(bytes: &[u8]) -> Hash {
        Hash(*blake3::hash(bytes).as_bytes())
    }
}

/// A task inside a job. `index` counts the job's map tasks from 0; the reduce task, if the job has one,
/// has index `tasks.len()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskId {
    pub job: JobId,
    pub index: u32,
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.job, self.index)
    }
}

/// What a provider declares about itself when it registers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProviderSpec {
    /// Concurrent task slots the provider offers (normally its core count).
    pub slots: u32,
    pub cores: u32,
    pub memory_bytes: u64,
    /// Free-form GPU description ("NVIDIA H100 80GB"), if any.
    pub gpu: Option<String>,
    /// Result of the benchmark kernel: kernel iterations per millisecond (higher is faster).
    pub benchmark_score: u64,
    pub region: String,
    /// Asking price, in base units per unit of fuel.
    pub price_per_fuel: Amount,
    /// The account that runs this machine, if not the provider's own key: replicas of one task
    /// never go to two providers of the same operator. A claim can only restrict its maker (it
    /// keeps the claimant away from that operator's replicas), so it needs no proof.
    #[serde(default)]
    pub operator: Option<AccountId>,
}

impl ProviderSpec {
    /// The operator of provider `id` with this spec: the declared one, or the provider itself.
    pub fn operator_of(&self, id: AccountId) -> AccountId {
        self.operator.unwrap_or(id)
    }
}

/// Resource limits for one task run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Limits {
    /// Wasm fuel (roughly: instructions) the task may burn.
    pub fuel: u64,
    /// Linear memory the task may grow to, in bytes.
    pub memory_bytes: u64,
    /// Wall-clock bound for one run, in milliseconds (a safety net; payment is by fuel).
    pub wall_ms: u64,
}

/// A file visible to the guest under `name` (a plain file name), with the content of blob `hash`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InputFile {
    pub name: String,
    pub hash: Hash,
}

/// One map task of a job.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskSpec {
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<(String, String)>,
    #[serde(default)]
    pub stdin: Option<Hash>,
    #[serde(default)]
    pub inputs: Vec<InputFile>,
}

/// Where a task's result comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OutputSource {
    Stdout,
    /// A file the guest writes in its working directory.
    File(String),
}

/// How the outputs of a job's tasks become the job's output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// The outputs, concatenated in task order.
    Concat,
    /// One more task, run once every map task is done: `module` sees every map output as an input
    /// file named `part-00000`, `part-00001`, … (task order) and its stdout is the job's output.
    Reduce(ReduceSpec),
}

/// The reduce step of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReduceSpec {
    pub module: Hash,
    #[serde(default)]
    pub args: Vec<String>,
    pub limits: Limits,
}

/// Everything a requester says about a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobSpec {
    pub module: Hash,
    pub tasks: Vec<TaskSpec>,
    pub limits: Limits,
    /// Absolute deadline; past it the job fails and unfinished work is dropped.
    pub deadline: Time,
    /// The most the requester pays per unit of fuel.
    pub max_price: Amount,
    pub output: OutputSource,
    pub aggregate: Aggregate,
    /// How the job's results are verified.
    #[serde(default)]
    pub redundancy: Redundancy,
    /// What a provider must have, and where the job's data lives.
    #[serde(default)]
    pub requirements: Requirements,
}

impl JobSpec {
    /// Every distinct blob the spec names — its module, its reduce module, its tasks' inputs and
    /// stdin — sorted: what a storage claim's `input_bytes` sums ([`crate::StorageClaim`]).
    pub fn blobs(&self) -> Vec<Hash> {
        let mut blobs = vec![self.module];
        if let Aggregate::Reduce(reduce) = &self.aggregate {
            blobs.push(reduce.module);
        }
        for task in &self.tasks {
            blobs.extend(task.inputs.iter().map(|f| f.hash).chain(task.stdin));
        }
        blobs.sort();
        blobs.dedup();
        blobs
    }
}

/// What a job needs of a provider beyond memory (in [`Limits`]) and price.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Requirements {
    /// Least number of cores (0: any).
    #[serde(default)]
    pub cores: u32,
    /// Only providers that declare a GPU.
    #[serde(default)]
    pub gpu: bool,
    /// The region where the job's data lives: providers there are preferred (not required).
    #[serde(default)]
    pub region: Option<String>,
}

/// How many independent runs back a task's result before it is accepted and paid. Replicas of one
/// task always run on distinct providers of distinct operators.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Redundancy {
    /// The network's policy ([`crate::VerifyParams`]): a trusted provider's result is accepted
    /// alone unless drawn for a spot check; other results need matching results from other
    /// providers worth `quorum_weight`, a trusted provider's counting double; a disagreement
    /// queues further replicas until a quorum forms or `max_results` is reached.
    #[default]
    Adaptive,
    /// BOINC-style fixed voting: `quorum` matching results out of at most `max_results`
    /// successful runs (`quorum` = 1 trusts the first result).
    Fixed { quorum: u32, max_results: u32 },
}

/// How a task run ended, as the provider reports it (mirrors the sandbox's outcome).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TaskOutcome {
    /// Exited with status 0: the output is the result.
    Success,
    /// Exited with a non-zero status.
    Exit(i32),
    Trap(String),
    OutOfFuel,
    Timeout,
    MemoryLimit,
    OutputTooLarge,
}

impl fmt::Display for TaskOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskOutcome::Success => f.write_str("success"),
            TaskOutcome::Exit(code) => write!(f, "exited with status {code}"),
            TaskOutcome::Trap(msg) => write!(f, "trapped: {msg}"),
            TaskOutcome::OutOfFuel => f.write_str("ran out of fuel"),
            TaskOutcome::Timeout => f.write_str("hit its wall-clock limit"),
            TaskOutcome::MemoryLimit => f.write_str("hit its memory limit"),
            TaskOutcome::OutputTooLarge => f.write_str("produced too much output"),
        }
    }
}

/// A provider's report on one task it ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskReport {
    pub task: TaskId,
    pub outcome: TaskOutcome,
    pub output_hash: Hash,
    pub output_size: u64,
    pub fuel_used: u64,
}

/// What a provider needs to run a task: derived from the job by [`crate::State::task_descriptor`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskDescriptor {
    pub task: TaskId,
    pub module: Hash,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub stdin: Option<Hash>,
    pub inputs: Vec<InputFile>,
    pub output: OutputSource,
    pub limits: Limits,
    /// Seeds the guest's random source: the same on every provider, so replicas agree.
    pub seed: u64,
    /// Rules 10: the most output the task may return (the job's storage claim); a provider runs
    /// it under this limit (or its own, if lower).
    #[serde(default)]
    pub output_limit: Option<u64>,
    /// Rules 11: the exit statuses that are a successful answer, where they are not 0 alone
    /// (empty): a provider keeps and uploads the output of a run that exits with one of them.
    #[serde(default)]
    pub success_exits: Vec<i32>,
    /// Rules 11: the export to run instead of `_start` (after `_initialize`, if exported).
    #[serde(default)]
    pub entry: Option<String>,
    /// Rules 12: directory trees mounted read-only (the job's, sorted by path).
    #[serde(default)]
    pub mounts: Vec<crate::files::Mount>,
    /// Rules 12: the empty writable scratch directory the job asked for.
    #[serde(default)]
    pub scratch: Option<crate::files::Scratch>,
    /// Rules 13: a private job's sealing ([`crate::private`]): the provider unwraps its key to
    /// decrypt the inputs (and trees) and encrypts the output under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private: Option<crate::private::Sealing>,
    /// Rules 20: the sandbox profile the task runs under (how its floats are made deterministic,
    /// which fixes the fuel it counts: `sandbox::Profile`), the same for every task of a
    /// network: 5 under rules 29 (host calls charged by the module), 4 under rules 22 (float vectors' NaNs canonical where observable), 3 under
    /// rules 21 (fuel metered by the module's rewrite), 2 under rules 20, 1
    /// before (and where a descriptor does not say).
    #[serde(default = "first_profile")]
    pub profile: u32,
    /// Rules 23: a GPU job's declaration ([`crate::gpu`]): `module` is then a WGSL shader that
    /// the provider dispatches as it says, instead of a WebAssembly module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<crate::gpu::GpuJob>,
    /// Rules 30: the tolerance a map task's results are compared within
    /// ([`crate::tolerance`]): the provider reports its result with its output
    /// (`Action::ReportResultsWithOutputs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<crate::tolerance::Tolerance>,
}

/// The sandbox profile of a network before rules 20.
pub const FIRST_PROFILE: u32 = 1;

fn first_profile() -> u32 {
    FIRST_PROFILE
}

/// The name a reduce task sees for map output `index`.
pub fn part_name(index: usize) -> String {
    format!("part-{index:05}")
}

/// A name a guest may see a file under: non-empty, no path separators, not `.`/`..`, printable.
pub fn valid_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && !name.chars().any(char::is_control)
}

/// Serde for token amounts in events, rejections and ledger views: a decimal string of base units
/// in human-readable formats (JSON numbers lose precision above 2^53 in many clients, and serde
/// cannot buffer a `u128` inside a tagged enum), a plain `u128` in binary ones. Numbers are
/// accepted on input too.
pub mod amount {
    use super::Amount;
    use serde::{Deserializer, Serializer};
    use std::fmt;

    pub fn serialize<S: Serializer>(value: &Amount, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(value)
        } else {
            s.serialize_u128(*value)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Amount, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Amount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an amount in base units (a decimal string or an integer)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Amount, E> {
                v.parse()
                    .map_err(|_| E::custom(format!("{v:?} is not an amount in base units")))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Amount, E> {
                Ok(Amount::from(v))
            }
            fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Amount, E> {
                Ok(v)
            }
        }
        if d.is_human_readable() {
            d.deserialize_any(V)
        } else {
            d.deserialize_u128(V)
        }
    }
}

/// Bytes as a hex string in human-readable encodings (JSON), as a length and the bytes in postcard.
pub(crate) mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(bytes))
        } else {
            bytes.serialize(s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            hex::decode(s).map_err(serde::de::Error::custom)
        } else {
            Vec::<u8>::deserialize(d)
        }
    }
}
