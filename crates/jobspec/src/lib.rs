//! Job spec files (TOML) and their translation into an engine [`JobSpec`] plus the blobs to upload.
//!
//! ```toml
//! module = "../guests/pi.wasm"   # path relative to this file
//! fuel = 2_000_000_000           # fuel limit per task
//! memory = "64MiB"               # memory limit per task
//! timeout = "60s"                # wall-clock limit per task run
//! deadline = "10m"               # job deadline, from submission
//! max_price = 1                  # base units per unit of fuel
//! output = "stdout"              # or { file = "out.txt" }
//! output_limit = "1MiB"          # most output one task may return (default 16 MiB); on a
//!                                # network that prices storage, the deposit pays for it
//! success_exits = [0]            # exit statuses that are an answer (default [0]); e.g. [10, 20]
//!                                # for a SAT solver's "sat"/"unsat". The status is verified
//!                                # with the output; any other status fails the task
//! entry = "run"                  # a module that is no WASI command: the export to run (after
//!                                # `_initialize`), [] -> [] or [] -> [i32] (the exit status)
//!
//! [[mount]]                      # a directory, read-only, at an absolute path (rules 12):
//! path = "/usr/local"            #   where the program sees it
//! dir = "runtimes/python/usr/local"  # the directory here, packed into one blob (a tar
//!                                #   archive of its files and directories; no symlinks)
//! private = false                #   in a --private job: leave this tree in the clear
//!                                #   (public data shared across jobs; default: sealed)
//!
//! [scratch]                      # an empty writable directory, thrown away after each run:
//! path = "/tmp"                  #   where the program sees it
//! size = "64MiB"                 #   the most it may hold (a run holding more fails)
//!
//! [tasks]                        # a template expanded over a range or a grid of tiles...
//! range = [0, 16]
//! args = ["1000000", "{i}"]
//!
//! # [[task]]                     # ...or an explicit list
//! # args = ["shard.txt"]
//! # inputs = ["data/shard.txt"]
//!
//! [aggregate]
//! kind = "concat"                # or "reduce" with module, args, fuel, memory, timeout
//!
//! [redundancy]                   # how results are verified (default: the network's adaptive policy)
//! policy = "fixed"               # "adaptive", or "fixed" with:
//! quorum = 2                     #   matching results needed
//! max_results = 3                #   most results collected before the task fails
//! ```
//!
//! A GPU job (rules 23) names a compute shader instead of a module: WGSL, GLSL (`.comp`,
//! `.glsl`: a file that begins with `#version`) or SPIR-V (`.spv`), the language told from the
//! file's bytes, not its name:
//!
//! ```toml
//! [gpu]
//! shader = "../guests/gpu/sha256-search.wgsl"
//! entry = "main"                 # the compute entry point (default "main"; GLSL's is "main")
//! workgroups = [64, 1, 1]        # dispatched per task
//! # one_class = true             # run every task on one GPU class: the default exactly when
//!                                # the shader uses floats (and then required, unless:)
//! # [gpu.tolerance]              # f32 outputs agree within this, from any GPU (rules 30)
//! # ulps = 4                     #   at most 4 representable values apart,
//! # near_zero = 1e-6             #   or both within 1e-6 of zero
//!
//! [[gpu.buffer]]                 # every buffer the entry point uses, @group(0) @binding(n)
//! binding = 0
//! input = "params"               #   filled from the task's input file of this name
//!
//! [[gpu.buffer]]
//! binding = 1
//! size = "4KiB"                  #   or this many zero bytes
//! output = true                  #   part of the task's output (outputs concatenated by binding)
//! ```
//!
//! `fuel` is then GPU fuel (the shader's count, summed over every invocation), `memory` the
//! most bytes a task's buffers take together, `timeout` the bound on one dispatch.

use anyhow::{Context, anyhow, bail, ensure};
use bytes::Bytes;
use engine::{
    Aggregate, Hash, InputFile, JobSpec, Limits, OutputSource, ReduceSpec, Redundancy, TaskSpec,
    Time, valid_file_name,
};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFile {
    /// Path of the task module (`.wasm`); a GPU job names its shader in `[gpu]` instead.
    pub module: Option<String>,
    /// A GPU job (rules 23): its shader and how it is dispatched.
    pub gpu: Option<GpuFile>,
    /// Fuel limit per task.
    #[serde(default = "default_fuel")]
    pub fuel: u64,
    /// Memory limit per task: a byte count or a string such as "64MiB".
    #[serde(default = "default_memory")]
    pub memory: Size,
    /// Wall-clock limit per task run.
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// Deadline of the whole job, counted from submission.
    #[serde(default = "default_deadline")]
    pub deadline: String,
    /// The most the job pays per unit of fuel, in base units; or `"market"`, `"market + 10%"`:
    /// the network's recent median price of its class (rules 25), read when it is submitted.
    #[serde(default = "default_price")]
    pub max_price: MaxPrice,
    #[serde(default)]
    pub output: OutputFile,
    /// The most output one task may return (default: `api::DEFAULT_OUTPUT_LIMIT`, or the
    /// network's maximum if lower); a task writing more fails. Where storage costs a deposit,
    /// it is paid on this much per task.
    #[serde(default)]
    pub output_limit: Option<Size>,
    /// The exit statuses that are a successful answer (default: 0 alone; rules 11).
    #[serde(default)]
    pub success_exits: Vec<i32>,
    /// The export the tasks run instead of `_start` (rules 11): a reactor's entry.
    #[serde(default)]
    pub entry: Option<String>,
    pub tasks: Option<Template>,
    #[serde(default)]
    pub task: Vec<TaskFile>,
    #[serde(default)]
    pub aggregate: AggregateFile,
    #[serde(default)]
    pub redundancy: RedundancyFile,
    /// What a provider must have, and where the data lives.
    #[serde(default)]
    pub requirements: RequirementsFile,
    /// Directories mounted read-only (rules 12).
    #[serde(default)]
    pub mount: Vec<MountFile>,
    /// A writable scratch directory (rules 12).
    pub scratch: Option<ScratchFile>,
}

/// A GPU job's shader, dispatch and buffers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuFile {
    /// Path of the shader: WGSL, GLSL or SPIR-V (told from its bytes).
    pub shader: String,
    #[serde(default = "default_gpu_entry")]
    pub entry: String,
    pub workgroups: [u32; 3],
    /// Whether every task runs on one GPU class (default: exactly when the shader uses floats
    /// and no tolerance is given).
    pub one_class: Option<bool>,
    /// Rules 30: results agree within this instead, from any GPU.
    pub tolerance: Option<ToleranceFile>,
    #[serde(default)]
    pub buffer: Vec<GpuBufferFile>,
}

fn default_gpu_entry() -> String {
    "main".into()
}

/// How close two results' `f32` outputs must be to agree (rules 30).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToleranceFile {
    /// Units in the last place two values may differ by.
    pub ulps: u32,
    /// Two values both at most this far from zero agree too (default 0).
    #[serde(default)]
    pub near_zero: f32,
}

/// One buffer: `input` (a task input's name) or `size` (zeros).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuBufferFile {
    pub binding: u32,
    pub input: Option<String>,
    pub size: Option<Size>,
    #[serde(default)]
    pub output: bool,
}

/// A directory the tasks see read-only at `path`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountFile {
    /// Where the program sees it: an absolute path.
    pub path: String,
    /// The directory, relative to the spec file.
    pub dir: String,
    /// Whether the tree is sealed when the job is submitted `--private` (rules 13; default):
    /// `false` leaves public data (an interpreter's standard library) in the clear, so that
    /// providers share one copy of it across jobs.
    #[serde(default = "sealed_by_default")]
    pub private: bool,
}

fn sealed_by_default() -> bool {
    true
}

/// An empty writable directory at `path` of at most `size` bytes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScratchFile {
    pub path: String,
    pub size: Size,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RequirementsFile {
    /// Least number of cores.
    #[serde(default)]
    pub cores: u32,
    /// Only providers with a GPU.
    #[serde(default)]
    pub gpu: bool,
    /// Region where the job's data lives: providers there are preferred.
    pub region: Option<String>,
    /// Prefer providers with low-carbon electricity (rules 24; a soft preference).
    #[serde(default)]
    pub prefer_low_carbon: bool,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RedundancyFile {
    #[serde(default)]
    pub policy: PolicyKind,
    pub quorum: Option<u32>,
    pub max_results: Option<u32>,
}

#[derive(Debug, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PolicyKind {
    #[default]
    Adaptive,
    Fixed,
}

impl RedundancyFile {
    fn to_spec(&self) -> anyhow::Result<Redundancy> {
        match self.policy {
            PolicyKind::Adaptive => {
                ensure!(
                    self.quorum.is_none() && self.max_results.is_none(),
                    "redundancy policy \"adaptive\" takes no quorum or max_results (the network sets them; did you mean policy = \"fixed\"?)"
                );
                Ok(Redundancy::Adaptive)
            }
            PolicyKind::Fixed => {
                let quorum = self
                    .quorum
                    .ok_or_else(|| anyhow!("redundancy policy \"fixed\" needs a quorum"))?;
                Ok(Redundancy::Fixed {
                    quorum,
                    max_results: self.max_results.unwrap_or(quorum),
                })
            }
        }
    }
}

fn default_fuel() -> u64 {
    10_000_000_000
}
fn default_memory() -> Size {
    Size::Text("256MiB".into())
}
fn default_timeout() -> String {
    "60s".into()
}
fn default_deadline() -> String {
    "1h".into()
}
fn default_price() -> MaxPrice {
    MaxPrice::Fixed(1)
}

/// `max_price` as written: a number of base units per fuel, or a text (`"12"`, `"market"`,
/// `"market + 10%"`).
#[derive(Debug, Deserialize, Clone, PartialEq, Eq)]
#[serde(untagged)]
pub enum MaxPrice {
    /// (TOML's integers are 64-bit, and an untagged enum reads no wider.)
    Fixed(u64),
    Text(String),
}

/// A price relative to the market: its median plus `plus_bps` basis points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarketPrice {
    pub plus_bps: u32,
}

impl MaxPrice {
    /// The fixed price, or the market's.
    fn read(&self) -> anyhow::Result<Result<u128, MarketPrice>> {
        let text = match self {
            MaxPrice::Fixed(n) => return Ok(Ok(u128::from(*n))),
            MaxPrice::Text(t) => t.trim(),
        };
        if let Ok(n) = text.parse::<u128>() {
            return Ok(Ok(n));
        }
        let bad = || {
            anyhow!("max_price {text:?}: give base units per fuel, \"market\" or \"market + 10%\"")
        };
        let rest = text.strip_prefix("market").ok_or_else(bad)?.trim();
        if rest.is_empty() {
            return Ok(Err(MarketPrice { plus_bps: 0 }));
        }
        let percent = rest
            .strip_prefix('+')
            .and_then(|r| r.trim().strip_suffix('%'))
            .ok_or_else(bad)?
            .trim();
        let value: f64 = percent.parse().map_err(|_| bad())?;
        if !(0.0..=1000.0).contains(&value) {
            bail!("max_price {text:?}: from market + 0% to market + 1000%");
        }
        Ok(Err(MarketPrice {
            plus_bps: (value * 100.0).round() as u32,
        }))
    }
}

/// Sets the price of a job whose `max_price` follows the market: the median of its class in
/// `indexes` (`GET /v1/market`) — `gpu` for a GPU job, else `cpu`; at its required region if it
/// names one and that region has payments — plus its margin, rounded up. A job with a fixed
/// price is left alone.
pub fn resolve_market_price(
    job: &mut LoadedJob,
    indexes: &[engine::PriceIndex],
) -> anyhow::Result<()> {
    let Some(market) = job.market_price else {
        return Ok(());
    };
    let kind = if job.gpu.is_some() { "gpu" } else { "cpu" };
    let regional = job
        .spec
        .requirements
        .region
        .as_ref()
        .map(|r| format!("{kind}@{r}"));
    let find = |class: &str| indexes.iter().find(|i| i.class == class);
    let index = regional
        .as_deref()
        .and_then(find)
        .or_else(|| find(kind))
        .ok_or_else(|| {
            anyhow!(
                "max_price follows the market, but the network has no recent {kind} payments: \
                 give a number"
            )
        })?;
    let scaled = index
        .median
        .checked_mul(u128::from(10_000 + market.plus_bps))
        .ok_or_else(|| anyhow!("the market price overflows"))?;
    job.spec.max_price = scaled.div_ceil(10_000).max(1);
    job.market_price = None;
    Ok(())
}

#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum Size {
    Bytes(u64),
    Text(String),
}

impl Size {
    pub fn bytes(&self) -> anyhow::Result<u64> {
        match self {
            Size::Bytes(n) => Ok(*n),
            Size::Text(s) => parse_size(s),
        }
    }
}

/// "64MiB", "1 GiB", "512k", "1000" → bytes.
pub fn parse_size(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '_')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: u64 = num
        .replace('_', "")
        .parse()
        .with_context(|| format!("size {s:?} does not start with a number"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => bail!("unknown size unit {other:?} in {s:?} (use B, KiB, MiB, GiB, KB, MB, GB)"),
    };
    num.checked_mul(mult)
        .ok_or_else(|| anyhow!("size {s:?} is too large"))
}

fn parse_duration(what: &str, s: &str) -> anyhow::Result<Duration> {
    humantime::parse_duration(s)
        .with_context(|| format!("{what} {s:?} is not a duration like \"30s\""))
}

#[derive(Debug, Deserialize, Default)]
#[serde(untagged)]
pub enum OutputFile {
    #[default]
    #[serde(skip)]
    Default,
    Named(String),
    File {
        file: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// `[start, end)`: one task per index `i`.
    pub range: Option<[u64; 2]>,
    /// One task per tile of an image.
    pub grid: Option<Grid>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub inputs: Vec<InputEntry>,
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    pub width: u32,
    pub height: u32,
    pub tile: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskFile {
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub inputs: Vec<InputEntry>,
    pub stdin: Option<String>,
}

/// An input file: a path (visible under its file name) or `{ name, path }`.
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum InputEntry {
    Path(String),
    Named { name: String, path: String },
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AggregateFile {
    #[serde(default)]
    pub kind: AggregateKind,
    pub module: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    pub fuel: Option<u64>,
    pub memory: Option<Size>,
    pub timeout: Option<String>,
}

#[derive(Debug, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AggregateKind {
    #[default]
    Concat,
    Reduce,
}

/// Admits a GPU job's shader as the network will (a bad shader is named before anything is
/// sent), and says whether it computes with integers only. The shader's language (WGSL, GLSL,
/// SPIR-V) is told from its bytes, whatever the file's name.
#[cfg(feature = "gpu")]
fn integer_only(source: &[u8], file: &GpuFile) -> anyhow::Result<bool> {
    let admitted = gpu::admit_bytes(source, &file.entry)
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("shader {}", file.shader))?;
    Ok(admitted.integer_only)
}

#[cfg(not(feature = "gpu"))]
fn integer_only(_: &[u8], file: &GpuFile) -> anyhow::Result<bool> {
    bail!(
        "shader {}: GPU jobs are submitted with the gridmint command line (this build reads \
         job specs without the GPU sandbox that admits shaders)",
        file.shader
    )
}

/// A job ready to submit: the spec, every blob it refers to, its output limit per task and its
/// options.
pub struct LoadedJob {
    pub spec: JobSpec,
    pub blobs: Vec<Bytes>,
    pub output_limit: Option<u64>,
    pub options: engine::JobOptions,
    /// Mounted trees and the scratch directory (rules 12; the default: none).
    pub files: engine::JobFiles,
    /// Blobs the spec leaves in the clear when the job is submitted private (rules 13: trees
    /// mounted with `private = false`).
    pub clear: Vec<engine::Hash>,
    /// A GPU job's declaration (rules 23): the spec's module is then its shader.
    pub gpu: Option<engine::GpuJob>,
    /// A GPU job's tolerance (rules 30): its results agree within it, from any GPU.
    pub tolerance: Option<engine::Tolerance>,
    /// What it asks of the scheduler beyond its spec (rules 24; the default: nothing).
    pub preferences: engine::JobPreferences,
    /// `max_price` follows the market (rules 25): `spec.max_price` is 0 until
    /// [`resolve_market_price`] sets it, which a submission must call first.
    pub market_price: Option<MarketPrice>,
}

/// Reads the files a job spec refers to. Paths are as written in the spec.
pub trait Files {
    fn read(&self, path: &str) -> anyhow::Result<Bytes>;
    /// The directory at `path` as one tree blob (`sandbox::tree::pack`).
    fn tree(&self, path: &str) -> anyhow::Result<Bytes> {
        bail!("directory {path}: only a job spec on disk can mount directories")
    }
}

/// Files embedded in the binary, by the path the spec names them with.
pub struct Embedded(pub HashMap<&'static str, &'static [u8]>);

impl Files for Embedded {
    fn read(&self, path: &str) -> anyhow::Result<Bytes> {
        self.0
            .get(path)
            .map(|b| Bytes::from_static(b))
            .ok_or_else(|| anyhow!("no embedded file {path}"))
    }
}

struct Blobs<'a> {
    files: &'a dyn Files,
    by_path: HashMap<String, Hash>,
    blobs: Vec<Bytes>,
}

impl Blobs<'_> {
    fn add(&mut self, path: &str) -> anyhow::Result<Hash> {
        if let Some(h) = self.by_path.get(path) {
            return Ok(*h);
        }
        let bytes = self.files.read(path)?;
        Ok(self.keep(path, bytes))
    }

    /// The tree blob of directory `path`.
    fn add_tree(&mut self, path: &str) -> anyhow::Result<Hash> {
        let key = format!("{path}/");
        if let Some(h) = self.by_path.get(&key) {
            return Ok(*h);
        }
        let bytes = self.files.tree(path)?;
        Ok(self.keep(&key, bytes))
    }

    fn keep(&mut self, path: &str, bytes: Bytes) -> Hash {
        let hash = Hash::of(&bytes);
        if !self.blobs.iter().any(|b| Hash::of(b) == hash) {
            self.blobs.push(bytes);
        }
        self.by_path.insert(path.to_string(), hash);
        hash
    }

    fn inputs(&mut self, entries: &[InputEntry]) -> anyhow::Result<Vec<InputFile>> {
        entries
            .iter()
            .map(|e| {
                let (name, path) = match e {
                    InputEntry::Path(p) => {
                        let name = Path::new(p)
                            .file_name()
                            .and_then(|n| n.to_str())
                            .ok_or_else(|| anyhow!("input path {p:?} has no file name"))?;
                        (name.to_string(), p.as_str())
                    }
                    InputEntry::Named { name, path } => (name.clone(), path.as_str()),
                };
                ensure!(
                    valid_file_name(&name),
                    "input name {name:?} is not a plain file name"
                );
                Ok(InputFile {
                    name,
                    hash: self.add(path)?,
                })
            })
            .collect()
    }
}

/// The most tasks a `[tasks]` template expands to.
const MAX_TASKS: u64 = 10_000_000;

fn substitute(template: &str, vars: &[(&str, u64)]) -> String {
    let mut out = template.to_string();
    for (name, value) in vars {
        out = out.replace(&format!("{{{name}}}"), &value.to_string());
    }
    out
}

/// Parses spec `text`, reading referenced files through `files`.
pub fn load(text: &str, files: &dyn Files, now: Time) -> anyhow::Result<LoadedJob> {
    let file: JobFile = toml::from_str(text).context("parsing TOML")?;
    load_file(file, files, now)
}

/// [`load`] of a spec already read (from TOML, or the same fields as JSON: the Python SDK's
/// dicts).
pub fn load_file(file: JobFile, files: &dyn Files, now: Time) -> anyhow::Result<LoadedJob> {
    let mut blobs = Blobs {
        files,
        by_path: HashMap::new(),
        blobs: Vec::new(),
    };
    let (module, shader) = match (&file.module, &file.gpu) {
        (Some(path), None) => (blobs.add(path).context("module")?, None),
        (None, Some(gpu)) => {
            let hash = blobs.add(&gpu.shader).context("shader")?;
            let source = blobs
                .blobs
                .iter()
                .find(|b| Hash::of(b) == hash)
                .cloned()
                .unwrap_or_default();
            (hash, Some(integer_only(&source, gpu)?))
        }
        (Some(_), Some(_)) => bail!("a job has a module or a [gpu] shader, not both"),
        (None, None) => bail!("no module: name one (module = \"x.wasm\"), or a [gpu] shader"),
    };
    let limits = Limits {
        fuel: file.fuel,
        memory_bytes: file.memory.bytes()?,
        wall_ms: parse_duration("timeout", &file.timeout)?.as_millis() as u64,
    };
    let deadline =
        now.saturating_add(parse_duration("deadline", &file.deadline)?.as_millis() as u64);
    let output = match &file.output {
        OutputFile::Default => OutputSource::Stdout,
        OutputFile::Named(s) if s == "stdout" => OutputSource::Stdout,
        OutputFile::Named(s) => {
            bail!("output must be \"stdout\" or {{ file = \"name\" }}, not {s:?}")
        }
        OutputFile::File { file } => OutputSource::File(file.clone()),
    };

    let mut tasks = Vec::new();
    match (&file.tasks, file.task.is_empty()) {
        (Some(_), false) => bail!("use either [tasks] (a template) or [[task]] entries, not both"),
        (None, true) => bail!("no tasks: add a [tasks] template or [[task]] entries"),
        (None, false) => {
            for t in &file.task {
                tasks.push(TaskSpec {
                    args: t.args.clone(),
                    env: t.env.clone().into_iter().collect(),
                    stdin: t.stdin.as_deref().map(|p| blobs.add(p)).transpose()?,
                    inputs: blobs.inputs(&t.inputs)?,
                });
            }
        }
        (Some(tpl), true) => {
            let inputs = blobs.inputs(&tpl.inputs)?;
            let env: Vec<_> = tpl.env.clone().into_iter().collect();
            let mut push = |vars: &[(&str, u64)]| {
                tasks.push(TaskSpec {
                    args: tpl.args.iter().map(|a| substitute(a, vars)).collect(),
                    env: env
                        .iter()
                        .map(|(k, v)| (k.clone(), substitute(v, vars)))
                        .collect(),
                    stdin: None,
                    inputs: inputs.clone(),
                });
            };
            match (tpl.range, tpl.grid) {
                (Some([start, end]), None) => {
                    ensure!(start < end, "range [{start}, {end}] is empty");
                    ensure!(end - start <= MAX_TASKS, "range is too large");
                    for i in start..end {
                        push(&[("i", i)]);
                    }
                }
                (None, Some(g)) => {
                    ensure!(
                        g.width > 0 && g.height > 0 && g.tile > 0,
                        "grid sizes must be positive"
                    );
                    // Counted before expanding: a 4 294 967 295 square grid of 1-pixel tiles
                    // would otherwise run until memory ran out.
                    let tiles = u64::from(g.width.div_ceil(g.tile))
                        .saturating_mul(u64::from(g.height.div_ceil(g.tile)));
                    ensure!(
                        tiles <= MAX_TASKS,
                        "grid has {tiles} tiles, more than {MAX_TASKS}"
                    );
                    let mut i = 0;
                    for y in (0..g.height).step_by(g.tile as usize) {
                        for x in (0..g.width).step_by(g.tile as usize) {
                            let w = g.tile.min(g.width - x);
                            let h = g.tile.min(g.height - y);
                            push(&[
                                ("i", i),
                                ("x", x.into()),
                                ("y", y.into()),
                                ("w", w.into()),
                                ("h", h.into()),
                                ("width", g.width.into()),
                                ("height", g.height.into()),
                            ]);
                            i += 1;
                        }
                    }
                }
                _ => bail!(
                    "[tasks] needs exactly one of range = [start, end] or grid = {{ width, height, tile }}"
                ),
            }
        }
    }

    let aggregate = match file.aggregate.kind {
        AggregateKind::Concat => {
            ensure!(
                file.aggregate.module.is_none(),
                "aggregate kind \"concat\" takes no module (did you mean kind = \"reduce\"?)"
            );
            Aggregate::Concat
        }
        AggregateKind::Reduce => {
            let a = &file.aggregate;
            let path = a
                .module
                .as_deref()
                .ok_or_else(|| anyhow!("aggregate kind \"reduce\" needs a module"))?;
            Aggregate::Reduce(ReduceSpec {
                module: blobs.add(path).context("reduce module")?,
                args: a.args.clone(),
                limits: Limits {
                    fuel: a.fuel.unwrap_or(limits.fuel),
                    memory_bytes: match &a.memory {
                        Some(m) => m.bytes()?,
                        None => limits.memory_bytes,
                    },
                    wall_ms: match &a.timeout {
                        Some(t) => parse_duration("aggregate timeout", t)?.as_millis() as u64,
                        None => limits.wall_ms,
                    },
                },
            })
        }
    };

    let gpu = match (&file.gpu, shader) {
        (Some(g), Some(integer_only)) => {
            ensure!(
                file.success_exits.is_empty() && file.entry.is_none(),
                "a GPU job has no exit statuses or module entry (its entry point is [gpu] entry)"
            );
            ensure!(
                file.mount.is_empty() && file.scratch.is_none(),
                "a GPU job mounts no directories (its buffers are its files)"
            );
            ensure!(
                g.one_class != Some(false) || integer_only || g.tolerance.is_some(),
                "one_class = false: the shader uses floats, whose bits may differ between kinds \
                 of GPU, so its results must come from one class (or agree within a \
                 [gpu.tolerance])"
            );
            ensure!(
                g.one_class != Some(true) || g.tolerance.is_none(),
                "one_class = true and a [gpu.tolerance]: results agree within a tolerance from \
                 any GPU, or exactly on one class, not both"
            );
            let mut buffers = Vec::new();
            for b in &g.buffer {
                let fill = match (&b.input, &b.size) {
                    (Some(name), None) => engine::GpuFill::Input(name.clone()),
                    (None, Some(size)) => engine::GpuFill::Zeroed(size.bytes()?),
                    _ => bail!(
                        "[[gpu.buffer]] binding {}: give exactly one of input or size",
                        b.binding
                    ),
                };
                buffers.push(engine::GpuBuffer {
                    binding: b.binding,
                    fill,
                    output: b.output,
                });
            }
            Some(engine::GpuJob {
                entry: g.entry.clone(),
                workgroups: g.workgroups,
                buffers,
                one_class: g
                    .one_class
                    .unwrap_or(!integer_only && g.tolerance.is_none()),
            })
        }
        _ => None,
    };
    let tolerance = match file.gpu.as_ref().and_then(|g| g.tolerance.as_ref()) {
        Some(t) => {
            ensure!(
                t.near_zero.is_finite() && t.near_zero >= 0.0,
                "[gpu.tolerance] near_zero must be a finite number of at least 0, not {}",
                t.near_zero
            );
            let tolerance = engine::Tolerance {
                max_ulps: t.ulps,
                // -0.0 is 0 too.
                near_zero: t.near_zero.to_bits() & 0x7fff_ffff,
            };
            tolerance
                .check()
                .map_err(|e| anyhow!("[gpu.tolerance]: {e}"))?;
            Some(tolerance)
        }
        None => None,
    };
    let options = engine::JobOptions {
        success_exits: file.success_exits.clone(),
        entry: file.entry.clone(),
    }
    .normalised()
    .map_err(|e| anyhow!("{e}"))
    .context("job options (success_exits, entry)")?;
    let mut mounts = Vec::new();
    let mut clear = Vec::new();
    for m in &file.mount {
        let tree = blobs
            .add_tree(&m.dir)
            .with_context(|| format!("mount {}", m.path))?;
        if !m.private {
            clear.push(tree);
        }
        mounts.push(engine::Mount {
            path: m.path.clone(),
            tree,
        });
    }
    let scratch = file
        .scratch
        .as_ref()
        .map(|s| {
            Ok::<_, anyhow::Error>(engine::Scratch {
                path: s.path.clone(),
                bytes: s.size.bytes().context("scratch size")?,
            })
        })
        .transpose()?;
    let job_files = engine::JobFiles { mounts, scratch }
        .normalised()
        .map_err(|e| anyhow!("{e}"))
        .context("job files ([[mount]], [scratch])")?;
    let price = file.max_price.read()?;
    let requirements = engine::Requirements {
        cores: file.requirements.cores,
        // A GPU job runs only where there is a GPU (the engine holds it to that anyway).
        gpu: file.requirements.gpu || gpu.is_some(),
        region: file.requirements.region.clone(),
    };
    let spec = JobSpec {
        module,
        tasks,
        limits,
        deadline,
        max_price: price.unwrap_or(0),
        output,
        aggregate,
        redundancy: file.redundancy.to_spec()?,
        requirements,
    };
    let gpu = gpu
        .map(|g| g.normalised(&spec))
        .transpose()
        .map_err(|e| anyhow!("{e}"))
        .context("[gpu]")?;
    Ok(LoadedJob {
        spec,
        blobs: blobs.blobs,
        output_limit: file
            .output_limit
            .as_ref()
            .map(|s| s.bytes().context("output_limit"))
            .transpose()?,
        options,
        files: job_files,
        clear,
        gpu,
        tolerance,
        preferences: engine::JobPreferences {
            prefer_low_carbon: file.requirements.prefer_low_carbon,
        },
        market_price: price.err(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Embedded {
        Embedded(HashMap::from([
            ("m.wasm", &b"\0asm\x01\0\0\0"[..]),
            ("r.wasm", &b"\0asm\x01\0\0\0r"[..]),
            ("data/a.txt", &b"hello"[..]),
        ]))
    }

    #[test]
    fn a_max_price_may_follow_the_market() {
        let spec = |price: &str, region: &str| {
            load(
                &format!(
                    "module = \"m.wasm\"\nmax_price = {price}\n[tasks]\nrange = [0, 1]\n\
                     [requirements]\n{region}"
                ),
                &files(),
                1000,
            )
        };
        let index = |class: &str, median| engine::PriceIndex {
            class: class.into(),
            payments: 3,
            median,
            mean: median,
            low: median,
            high: median,
            since: 0,
        };
        let market = [index("cpu", 100), index("cpu@eu", 40), index("gpu", 7)];
        for (price, region, want) in [
            ("\"market + 10%\"", "", 110),
            ("\"market\"", "", 100),
            ("\"market+2.5%\"", "", 103),
            ("\"market + 10%\"", "region = \"eu\"", 44),
            // No payments at that region: the class's.
            ("\"market + 10%\"", "region = \"us\"", 110),
            ("\"12\"", "", 12),
            ("12", "", 12),
        ] {
            let mut job = spec(price, region).unwrap();
            jobspec_resolve(&mut job, &market);
            assert_eq!(job.spec.max_price, want, "{price} {region}");
        }
        // A fixed price needs no market; a market price without one is refused with advice.
        let mut job = spec("\"market\"", "").unwrap();
        assert_eq!(job.market_price, Some(MarketPrice { plus_bps: 0 }));
        let err = resolve_market_price(&mut job, &[index("gpu", 7)]).unwrap_err();
        assert!(err.to_string().contains("give a number"), "{err}");
        for bad in ["\"market - 5%\"", "\"cheap\"", "\"market + 2000%\"", "-1"] {
            assert!(spec(bad, "").is_err(), "{bad}");
        }
    }

    fn jobspec_resolve(job: &mut LoadedJob, market: &[engine::PriceIndex]) {
        resolve_market_price(job, market).unwrap();
        assert_eq!(job.market_price, None);
    }

    #[test]
    fn range_template_expands_args() {
        let job = load(
            r#"module = "m.wasm"
               [tasks]
               range = [2, 5]
               args = ["x{i}", "{i}"]"#,
            &files(),
            1000,
        )
        .unwrap();
        let args: Vec<_> = job.spec.tasks.iter().map(|t| t.args.clone()).collect();
        assert_eq!(
            args,
            vec![vec!["x2", "2"], vec!["x3", "3"], vec!["x4", "4"]]
        );
        assert_eq!(job.spec.deadline, 1000 + 3_600_000);
        assert_eq!(job.spec.aggregate, Aggregate::Concat);
        assert_eq!(job.blobs.len(), 1);
    }

    const INTS: &[u8] = b"@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read_write> y: array<u32>;
@compute @workgroup_size(1) fn main(@builtin(global_invocation_id) i: vec3<u32>) { y[i.x] = x[i.x]; }";
    const FLOATS: &[u8] = b"@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(1) fn go(@builtin(global_invocation_id) i: vec3<u32>) { y[i.x] = sqrt(f32(x[i.x])); }";

    fn gpu_files() -> Embedded {
        Embedded(HashMap::from([
            ("m.wasm", &b"\0asm\x01\0\0\0"[..]),
            ("ints.wgsl", INTS),
            ("floats.wgsl", FLOATS),
            ("data/a.txt", &b"0123"[..]),
        ]))
    }

    fn gpu_spec(shader: &str, extra: &str) -> String {
        format!(
            "{extra}\n[gpu]\nshader = \"{shader}\"\nworkgroups = [2, 1, 1]\n\
             [[gpu.buffer]]\nbinding = 1\nsize = \"1KiB\"\noutput = true\n\
             [[gpu.buffer]]\nbinding = 0\ninput = \"a.txt\"\n\
             [[task]]\ninputs = [\"data/a.txt\"]\n"
        )
    }

    #[test]
    fn a_tolerance_makes_a_float_gpu_job_run_on_any_class() {
        let tolerant = |extra: &str| {
            gpu_spec("floats.wgsl", "").replace(
                "workgroups = [2, 1, 1]\n",
                &format!("entry = \"go\"\nworkgroups = [2, 1, 1]\n{extra}[gpu.tolerance]\nulps = 4\nnear_zero = 1e-6\n"),
            )
        };
        let job = load(&tolerant(""), &gpu_files(), 0).unwrap();
        assert!(!job.gpu.unwrap().one_class);
        assert_eq!(
            job.tolerance,
            Some(engine::Tolerance {
                max_ulps: 4,
                near_zero: 1e-6f32.to_bits(),
            })
        );
        // Without one, no tolerance.
        let spec = gpu_spec("floats.wgsl", "").replace("workgroups", "entry = \"go\"\nworkgroups");
        assert_eq!(load(&spec, &gpu_files(), 0).unwrap().tolerance, None);
        let table = [
            (tolerant("one_class = true\n"), "not both"),
            (tolerant("").replace("ulps = 4", "ulps = 8388609"), "ULPs"),
            (tolerant("").replace("1e-6", "-1.0"), "near_zero must be"),
            (tolerant("").replace("1e-6", "inf"), "near_zero must be"),
            (tolerant("").replace("ulps = 4", "ulps = -1"), "ulps"),
        ];
        for (spec, says) in table {
            let err = format!("{:#}", load(&spec, &gpu_files(), 0).err().expect(&spec));
            assert!(err.contains(says), "{says}: {err}\n{spec}");
        }
    }

    #[test]
    fn a_gpu_section_makes_a_gpu_job_one_class_exactly_when_its_shader_has_floats() {
        let ints = load(&gpu_spec("ints.wgsl", ""), &gpu_files(), 0).unwrap();
        let gpu = ints.gpu.unwrap();
        assert_eq!(gpu.entry, "main");
        assert_eq!(gpu.workgroups, [2, 1, 1]);
        assert!(!gpu.one_class);
        assert_eq!(
            gpu.buffers.iter().map(|b| b.binding).collect::<Vec<_>>(),
            [0, 1],
            "sorted"
        );
        assert_eq!(gpu.buffers[1].fill, engine::GpuFill::Zeroed(1024));
        assert!(ints.spec.requirements.gpu);
        assert_eq!(ints.spec.module, Hash::of(INTS));

        let spec = gpu_spec("floats.wgsl", "").replace("workgroups", "entry = \"go\"\nworkgroups");
        let floats = load(&spec, &gpu_files(), 0).unwrap();
        assert!(floats.gpu.unwrap().one_class);

        let table = [
            (gpu_spec("ints.wgsl", "module = \"m.wasm\""), "not both"),
            (
                gpu_spec("floats.wgsl", "").replace(
                    "workgroups",
                    "one_class = false\nentry = \"go\"\nworkgroups",
                ),
                "one_class = false",
            ),
            (gpu_spec("floats.wgsl", ""), "entry point"),
            (
                gpu_spec("ints.wgsl", "").replace("size = \"1KiB\"", "size = 8\ninput = \"a.txt\""),
                "exactly one of input or size",
            ),
            (
                gpu_spec("ints.wgsl", "").replace("input = \"a.txt\"", "input = \"b.txt\""),
                "does not have",
            ),
            (
                gpu_spec("ints.wgsl", "success_exits = [3]"),
                "exit statuses",
            ),
            ("fuel = 1\n[[task]]\n".to_string(), "no module"),
        ];
        for (spec, says) in table {
            let err = format!("{:#}", load(&spec, &gpu_files(), 0).err().expect(&spec));
            assert!(err.contains(says), "{says}: {err}\n{spec}");
        }
    }

    const INTS_GLSL: &[u8] = b"#version 450
layout(local_size_x = 1) in;
layout(std430, set = 0, binding = 0) readonly buffer X { uint x[]; };
layout(std430, set = 0, binding = 1) buffer Y { uint y[]; };
void main() { y[gl_GlobalInvocationID.x] = x[gl_GlobalInvocationID.x]; }";

    /// The least SPIR-V compute shader: an entry point `main` that returns.
    #[cfg(feature = "gpu")]
    const EMPTY_SPIRV: &[u32] = &[
        0x0723_0203,
        0x0001_0000,
        0,
        7,
        0, // header
        0x0002_0011,
        1, // OpCapability Shader
        0x0003_000e,
        0,
        1, // OpMemoryModel Logical GLSL450
        0x0005_000f,
        5,
        5,
        0x6e69_616d,
        0, // OpEntryPoint GLCompute %5 "main"
        0x0006_0010,
        5,
        17,
        1,
        1,
        1, // OpExecutionMode %5 LocalSize 1 1 1
        0x0002_0013,
        1, // %1 = OpTypeVoid
        0x0003_0021,
        2,
        1, // %2 = OpTypeFunction %1
        0x0005_0036,
        1,
        5,
        0,
        2, // %5 = OpFunction %1 None %2
        0x0002_00f8,
        6,           // %6 = OpLabel
        0x0001_00fd, // OpReturn
        0x0001_0038, // OpFunctionEnd
    ];

    #[cfg(feature = "gpu")]
    #[test]
    fn a_gpu_shader_is_wgsl_glsl_or_spirv_told_from_its_bytes_not_its_name() {
        let words = EMPTY_SPIRV;
        let spirv: &'static [u8] = words
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect::<Vec<_>>()
            .leak();
        let big_endian: &'static [u8] = words
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect::<Vec<_>>()
            .leak();
        let files = Embedded(HashMap::from([
            ("ints.comp", INTS_GLSL),
            ("glsl-named.wgsl", INTS_GLSL),
            ("empty.spv", spirv),
            ("big-endian.spv", big_endian),
            ("binary.wgsl", &[0xff, 0xfe, 0, 1][..]),
            ("data/a.txt", &b"0123"[..]),
        ]));
        for (shader, bytes) in [
            ("ints.comp", INTS_GLSL),
            ("glsl-named.wgsl", INTS_GLSL),
            ("empty.spv", spirv),
        ] {
            let job = load(&gpu_spec(shader, ""), &files, 0).unwrap_or_else(|e| panic!("{e:#}"));
            assert_eq!(job.spec.module, Hash::of(bytes), "{shader}");
            assert!(!job.gpu.unwrap().one_class, "{shader}: no floats");
        }
        for (shader, says) in [("big-endian.spv", "big-endian"), ("binary.wgsl", "UTF-8")] {
            let err = format!(
                "{:#}",
                load(&gpu_spec(shader, ""), &files, 0).err().expect(shader)
            );
            assert!(err.contains(says), "{shader}: {err}");
        }
    }

    /// A spec the `job_spec` fuzz target (`fuzz/`) timed out on: the grid was expanded before
    /// its size was checked, so loading it ran until memory ran out.
    #[test]
    fn a_grid_of_too_many_tiles_is_refused_before_it_is_expanded() {
        let err = load(
            "module = \"m.wasm\"\n[tasks]\ngrid = { width = 4294967295, height = 4294967295, tile = 1 }\n",
            &files(),
            0,
        )
        .err()
        .expect("refused");
        assert!(
            err.to_string().contains("more than 10000000"),
            "unexpected error: {err}"
        );
    }

    #[test]
    fn grid_covers_the_image_with_edge_tiles() {
        let job = load(
            r#"module = "m.wasm"
               [tasks]
               grid = { width = 300, height = 200, tile = 128 }
               args = ["{width}", "{height}", "{x}", "{y}", "{w}", "{h}"]"#,
            &files(),
            0,
        )
        .unwrap();
        assert_eq!(job.spec.tasks.len(), 6);
        assert_eq!(
            job.spec.tasks[2].args,
            ["300", "200", "256", "0", "44", "128"]
        );
        assert_eq!(
            job.spec.tasks[5].args,
            ["300", "200", "256", "128", "44", "72"]
        );
    }

    #[test]
    fn explicit_tasks_with_inputs_and_reduce() {
        let job = load(
            r#"module = "m.wasm"
               memory = "16MiB"
               output = { file = "out.txt" }
               [[task]]
               args = ["a.txt"]
               inputs = ["data/a.txt", { name = "b", path = "data/a.txt" }]
               [aggregate]
               kind = "reduce"
               module = "r.wasm"
               args = ["9"]
               fuel = 5"#,
            &files(),
            0,
        )
        .unwrap();
        let t = &job.spec.tasks[0];
        assert_eq!(t.inputs[0].name, "a.txt");
        assert_eq!(t.inputs[1].name, "b");
        assert_eq!(t.inputs[0].hash, Hash::of(b"hello"));
        assert_eq!(job.spec.limits.memory_bytes, 16 << 20);
        assert_eq!(job.spec.output, OutputSource::File("out.txt".into()));
        match &job.spec.aggregate {
            Aggregate::Reduce(r) => {
                assert_eq!(r.limits.fuel, 5);
                assert_eq!(r.limits.memory_bytes, 16 << 20);
                assert_eq!(r.args, ["9"]);
            }
            other => panic!("expected reduce, got {other:?}"),
        }
        // m.wasm, a.txt (once, though named twice), r.wasm
        assert_eq!(job.blobs.len(), 3);
    }

    #[test]
    fn mistakes_are_reported_clearly() {
        let cases = [
            ("module = \"m.wasm\"", "no tasks"),
            ("module = \"nope.wasm\"\n[tasks]\nrange=[0,1]", "nope.wasm"),
            (
                "module = \"m.wasm\"\nmemory = \"12 parsecs\"\n[tasks]\nrange=[0,1]",
                "unknown size unit",
            ),
            (
                "module = \"m.wasm\"\ntimeout = \"soon\"\n[tasks]\nrange=[0,1]",
                "timeout",
            ),
            ("module = \"m.wasm\"\n[tasks]\nrange=[3,3]", "empty"),
            ("module = \"m.wasm\"\n[tasks]\nargs=[]", "exactly one of"),
            (
                "module = \"m.wasm\"\n[tasks]\nrange=[0,1]\n[aggregate]\nkind=\"reduce\"",
                "needs a module",
            ),
            (
                "module = \"m.wasm\"\nbogus = 1\n[tasks]\nrange=[0,1]",
                "bogus",
            ),
        ];
        for (text, want) in cases {
            let err = match load(text, &files(), 0) {
                Ok(_) => panic!("{text:?} should fail"),
                Err(e) => format!("{e:#}"),
            };
            assert!(
                err.contains(want),
                "{text:?}: {err:?} should mention {want:?}"
            );
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("1 GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("1_000").unwrap(), 1000);
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("99999999999GiB").is_err());
    }

    /// Directories as trees: `Files::tree` of a test's own.
    struct WithTrees(Embedded);

    impl Files for WithTrees {
        fn read(&self, path: &str) -> anyhow::Result<Bytes> {
            self.0.read(path)
        }
        fn tree(&self, path: &str) -> anyhow::Result<Bytes> {
            Ok(Bytes::from(format!("tree of {path}")))
        }
    }

    #[test]
    fn mounts_and_scratch_become_job_files_and_bad_ones_are_refused() {
        let spec = |files: &str| format!("module = \"m.wasm\"\n{files}\n[tasks]\nrange = [0, 2]\n");
        let job = load(
            &spec(
                "[[mount]]\npath = \"/usr/local\"\ndir = \"py\"\n\
                 [[mount]]\npath = \"/data\"\ndir = \"py\"\n\
                 [scratch]\npath = \"/tmp\"\nsize = \"64MiB\"\n",
            ),
            &WithTrees(files()),
            0,
        )
        .unwrap();
        let tree = Hash::of(b"tree of py");
        assert_eq!(
            job.files,
            engine::JobFiles {
                mounts: vec![
                    engine::Mount {
                        path: "/data".into(),
                        tree,
                    },
                    engine::Mount {
                        path: "/usr/local".into(),
                        tree,
                    },
                ],
                scratch: Some(engine::Scratch {
                    path: "/tmp".into(),
                    bytes: 64 << 20,
                }),
            }
        );
        assert_eq!(
            job.blobs.iter().filter(|b| Hash::of(b) == tree).count(),
            1,
            "one blob however many mounts name it"
        );
        assert!(
            job.clear.is_empty(),
            "mounts are sealed in a private job by default"
        );
        let public = load(
            &spec("[[mount]]\npath = \"/usr/local\"\ndir = \"py\"\nprivate = false\n"),
            &WithTrees(files()),
            0,
        )
        .unwrap();
        assert_eq!(public.clear, vec![tree]);
        let table = [
            (
                "[[mount]]\npath = \"/a\"\ndir = \"py\"\n[scratch]\npath = \"/a/tmp\"\nsize = 10\n",
                "overlap",
            ),
            ("[[mount]]\npath = \"a\"\ndir = \"py\"\n", "not absolute"),
            (
                "[scratch]\npath = \"/tmp\"\nsize = \"5GiB\"\n",
                "scratch size",
            ),
            (
                "[scratch]\npath = \"/tmp\"\nsize = \"lots\"\n",
                "does not start with a number",
            ),
            ("[[mount]]\npath = \"/a\"\n", "missing field `dir`"),
            (
                "[[mount]]\npath = \"/a\"\ndir = \"py\"\nmode = \"rw\"\n",
                "unknown field `mode`",
            ),
        ];
        for (files_toml, want) in table {
            let err = load(&spec(files_toml), &WithTrees(files()), 0)
                .err()
                .unwrap_or_else(|| panic!("{files_toml}: taken"));
            assert!(format!("{err:#}").contains(want), "{files_toml}: {err:#}");
        }
        // Embedded specs (the demo's) mount nothing.
        let err = load(
            &spec("[[mount]]\npath = \"/a\"\ndir = \"py\"\n"),
            &files(),
            0,
        )
        .err()
        .unwrap();
        assert!(format!("{err:#}").contains("on disk"), "{err:#}");
    }
}
