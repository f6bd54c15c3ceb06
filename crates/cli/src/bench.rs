//! `gridmint bench`: measures, side by side in one run, what running work on Gridmint costs.
//!
//! 1. **CPU kernel** — `guests/bench.c` compiled natively with `gcc -O2` (at bench time, in a
//!    temp dir) vs `guests/bench.wasm` in the Gridmint [`Sandbox`] vs the same module in bare
//!    wasmtime ([`sandbox::baseline`]), both with stock settings and with the sandbox's fuel and
//!    NaN-canonicalization settings (which separates the cost of determinism from the
//!    cost of the harness); rounds interleaved, medians and ratios reported, checksums checked
//!    to agree.
//! 2. **Per-task instantiation** — `guests/noop.wasm` prepared once, then many runs through
//!    [`Sandbox::run`] with the pooling allocator and without it (and bare wasmtime for
//!    reference), interleaved run by run.
//! 3. **End to end** — a real coordinator (durable, fsync'd SQLite log in a temp dir) and two
//!    in-process providers over loopback HTTP: no-op tasks per second for one big job, and the
//!    submit→completed latency of single-task jobs.
//! 4. **Ledger** — signed transfers committed per second on one core (batch signature check and
//!    group commit into an fsync'd SQLite log) next to raw ed25519-dalek batch verification of
//!    the same signatures, rounds interleaved ([`ledger_bench`]; alone with `--only ledger`).
//!
//! Goals are printed beside the numbers, never asserted (timings are not tests). Progress goes
//! to stderr; the table (or, with `--json`, one JSON object) to stdout. Every guest and the C
//! source are embedded, so the command works from any directory.

use crate::ledger_bench::{self, TransferBench};
use anyhow::{Context, bail, ensure};
use api::{Client, Identity};
use bytes::Bytes;
use engine::{Action, Aggregate, JobSpec, JobStatus, Limits, OutputSource, TaskSpec};
use sandbox::baseline::Baseline;
use sandbox::{Outcome, Sandbox, SandboxConfig, TaskRun};
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

const BENCH_WASM: &[u8] = include_bytes!("../../../guests/bench.wasm");
const NOOP_WASM: &[u8] = include_bytes!("../../../guests/noop.wasm");
const BENCH_C: &str = include_str!("../../../guests/bench.c");

/// Goal: sandboxed kernel time over native time.
const GOAL_OVER_NATIVE: f64 = 1.3;
/// Goal: sandboxed kernel time over bare-wasmtime time.
const GOAL_OVER_BARE: f64 = 1.02;
/// Goal: median microseconds per no-op run with a cached module.
const GOAL_INSTANTIATE_US: f64 = 50.0;
/// In-process providers of the end-to-end measurement.
const PROVIDERS: usize = 2;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// fewer rounds, for a quick look
    #[arg(long)]
    pub quick: bool,
    /// print one JSON object instead of the table
    #[arg(long)]
    pub json: bool,
    /// run only this section
    #[arg(long, value_enum, value_name = "SECTION")]
    pub only: Option<Section>,
    /// no-op tasks in the end-to-end throughput job (default: 2000, 20000 for --only validators,
    /// or 500 with --quick)
    #[arg(long, value_name = "N")]
    pub tasks: Option<usize>,
    /// simulated providers of the heartbeat and sim sections (default: 100000, or 10000 with
    /// --quick)
    #[arg(long, value_name = "N")]
    pub providers: Option<usize>,
    /// the module of the compile section (default: guests/bench.wasm, embedded; try
    /// examples/runtimes/python-3.11.3.wasm after examples/runtimes/fetch.sh)
    #[arg(long, value_name = "FILE")]
    pub module: Option<std::path::PathBuf>,
}

/// A section that can be run alone.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// signed transfers committed per second vs raw ed25519 batch verification
    Ledger,
    /// no-op tasks per second and single-task latency through a real coordinator and providers
    E2e,
    /// a coordinator's CPU and memory with many registered providers heartbeating every 30 s
    Heartbeats,
    /// the simulator on sim/experiments/scale-100k.toml (--providers and --tasks override it)
    Sim,
    /// one coordinator vs three validators (separate processes): no-op tasks/s, latency,
    /// signed transfers/s, and failover time after the leader is killed
    Validators,
    /// a coordinator process holding a huge job, with and without 128 readers of /v1/status:
    /// job completion time, read latency and shedding, providers declared lost
    Reads,
    /// 30 minutes (3 with --quick) of honest work beside hostile clients of every kind,
    /// provider churn and coordinator restarts; ends with the checks that must hold
    Soak,
    /// a module compiled by a fresh sandbox vs loaded from the on-disk code cache (what a
    /// restarted provider does), --module FILE
    Compile,
    /// the compute kernels of guests/kernels: native vs bare wasmtime (stock, and with the
    /// sandbox's settings) vs the sandbox, interleaved rounds, geometric means
    Kernels,
    /// a 64 MB blob through a coordinator: raw chunks and ranges vs BLAKE3 verified-streaming
    /// slices, up and down; sealing and opening it as a private job does
    Blobs,
    /// compute shaders on the GPU (or Mesa's lavapipe): metered vs plain wgpu (matrix product,
    /// SHA-256 search), the CPU sandbox's matrix product, per-task overhead
    Gpu,
}

/// How much of everything to do.
/// No-op tasks per throughput job of `--only validators`.
const VALIDATORS_TASKS: usize = 20_000;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    kernel_iterations: u64,
    kernel_rounds: usize,
    noop_runs: usize,
    e2e_tasks: usize,
    /// Times the throughput job runs; the median counts (`bench/compare.sh` takes rounds of
    /// its own; `--only validators` takes five of 20,000 tasks, as one job lasts about a second).
    pub(crate) e2e_rounds: usize,
    pub(crate) latency_samples: usize,
}

impl Plan {
    /// This plan with the throughput job run `rounds` times.
    pub(crate) fn with_rounds(&self, rounds: usize) -> Plan {
        Plan {
            e2e_rounds: rounds.max(1),
            ..*self
        }
    }

    pub(crate) fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                kernel_iterations: 20_000_000,
                kernel_rounds: 2,
                noop_runs: 500,
                e2e_tasks: 500,
                e2e_rounds: 1,
                latency_samples: 20,
            }
        } else {
            Plan {
                kernel_iterations: 100_000_000,
                kernel_rounds: 5,
                noop_runs: 2000,
                e2e_tasks: 2000,
                e2e_rounds: 1,
                latency_samples: 50,
            }
        }
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let mut plan = Plan::new(args.quick);
    if let Some(tasks) = args.tasks {
        ensure!(tasks > 0, "--tasks must be positive");
        plan.e2e_tasks = tasks;
    }
    let cores = provider::cores();
    let quick = args.quick;
    let run_ledger =
        move || tokio::task::spawn_blocking(move || ledger_bench::transfer_bench(quick));
    if args.only == Some(Section::Ledger) {
        let ledger = run_ledger().await.context("benchmark thread panicked")??;
        return print_section(&args, cores, "ledger", ledger.to_json(), ledger.table(4));
    }
    if args.only == Some(Section::Heartbeats) {
        let providers = args
            .providers
            .unwrap_or(if args.quick { 10_000 } else { 100_000 });
        let window = Duration::from_secs(if args.quick { 10 } else { 30 });
        let result = crate::heartbeat_bench::run(providers, window).await?;
        return print_section(&args, cores, "heartbeats", result.json(), result.table());
    }
    if args.only == Some(Section::Sim) {
        let (json, table) = tokio::task::block_in_place(|| sim_bench(&args))?;
        return print_section(&args, cores, "sim", json, table);
    }
    if args.only == Some(Section::Validators) {
        // A provider queues up to 257 no-op tasks per slot: a 2,000-task job is about two
        // refills per provider, and would time the job's start and end rather than throughput.
        let plan = match args.tasks {
            None if !args.quick => Plan {
                e2e_tasks: VALIDATORS_TASKS,
                ..plan
            },
            _ => plan,
        };
        let result = crate::validators_bench::run(&plan, cores, args.quick).await?;
        return print_section(&args, cores, "validators", result.json(), result.table());
    }
    if args.only == Some(Section::Soak) {
        let duration = Duration::from_secs(if args.quick { 180 } else { 1800 });
        let result = crate::soak_bench::run(duration).await?;
        let passed = result.passed();
        print_section(&args, cores, "soak", result.json(), result.table())?;
        anyhow::ensure!(passed, "the soak's checks failed (see the table)");
        return Ok(());
    }
    if args.only == Some(Section::Reads) {
        let result = crate::reads_bench::run(cores, args.quick).await?;
        return print_section(&args, cores, "reads", result.json(), result.table());
    }
    if args.only == Some(Section::Compile) {
        let wasm = match &args.module {
            Some(path) => std::fs::read(path)
                .with_context(|| format!("reading the module {}", path.display()))?,
            None => BENCH_WASM.to_vec(),
        };
        let rounds = if args.quick { 2 } else { 5 };
        let (json, table) = tokio::task::block_in_place(|| compile_bench(&wasm, rounds))?;
        return print_section(&args, cores, "compile", json, table);
    }
    if args.only == Some(Section::Kernels) {
        let rounds = if args.quick { 1 } else { 3 };
        let result = tokio::task::spawn_blocking(move || crate::kernels_bench::run(rounds))
            .await
            .context("benchmark thread panicked")??;
        return print_section(&args, cores, "kernels", result.json(), result.table());
    }
    if args.only == Some(Section::Gpu) {
        let quick = args.quick;
        let result = tokio::task::spawn_blocking(move || crate::gpu_bench::run(quick))
            .await
            .context("benchmark thread panicked")??;
        return print_section(&args, cores, "gpu", result.json(), result.table());
    }
    if args.only == Some(Section::Blobs) {
        let (json, table) = blobs_bench(args.quick).await?;
        return print_section(&args, cores, "blobs", json, table);
    }
    if args.only == Some(Section::E2e) {
        let e2e = end_to_end_bench(&plan, cores).await?;
        return print_section(&args, cores, "end_to_end", e2e.json(), e2e.table());
    }
    eprintln!(
        "bench: {} mode, {cores} cores; kernel {} iterations x {} rounds, {} no-op runs, {} end-to-end tasks",
        if args.quick { "quick" } else { "full" },
        plan.kernel_iterations,
        plan.kernel_rounds,
        plan.noop_runs,
        plan.e2e_tasks,
    );

    // The sandbox blocks on host calls: keep it off the async workers.
    let (kernel, instantiation) = tokio::task::spawn_blocking(move || {
        let kernel = kernel_bench(&plan)?;
        let instantiation = instantiation_bench(&plan)?;
        anyhow::Ok((kernel, instantiation))
    })
    .await
    .context("benchmark thread panicked")??;
    let ledger = run_ledger().await.context("benchmark thread panicked")??;
    let e2e = end_to_end_bench(&plan, cores).await?;

    let report = Report {
        quick: args.quick,
        cores,
        kernel,
        instantiation,
        e2e,
        ledger,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

/// Prints one section run alone: `{mode, cores, KEY: json}` with `--json`, else its table.
fn print_section(
    args: &BenchArgs,
    cores: u32,
    key: &str,
    json: serde_json::Value,
    table: String,
) -> anyhow::Result<()> {
    if args.json {
        let mut out = json!({
            "mode": if args.quick { "quick" } else { "full" },
            "cores": cores,
        });
        out[key] = json;
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{table}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Compile: fresh vs from the code cache

/// `rounds` times, interleaved: a fresh sandbox on an empty code cache compiles `wasm`; a second
/// fresh sandbox on the same directory (a restarted provider) loads it. Medians and their ratio.
fn compile_bench(wasm: &[u8], rounds: usize) -> anyhow::Result<(serde_json::Value, String)> {
    let mut cold = Vec::new();
    let mut cached = Vec::new();
    for round in 0..rounds {
        let dir = tempfile::tempdir()?;
        let config = || SandboxConfig {
            code_cache: Some(dir.path().join("compiled")),
            ..SandboxConfig::default()
        };
        let first = Sandbox::new(config())?;
        let started = Instant::now();
        first.prepare(wasm)?;
        cold.push(started.elapsed());
        drop(first);
        // The cache writes its entry as the compile ends; give its files a moment to settle.
        std::thread::sleep(Duration::from_millis(500));
        let second = Sandbox::new(config())?;
        let started = Instant::now();
        second.prepare(wasm)?;
        cached.push(started.elapsed());
        eprintln!(
            "compile: round {}/{rounds}: {:.1} ms fresh, {:.1} ms from the cache",
            round + 1,
            cold[round].as_secs_f64() * 1e3,
            cached[round].as_secs_f64() * 1e3
        );
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1e3
    };
    let (cold_ms, cached_ms) = (median(&mut cold), median(&mut cached));
    let ratio = cold_ms / cached_ms.max(1e-6);
    let json = json!({
        "module_bytes": wasm.len(),
        "rounds": rounds,
        "fresh_ms": cold_ms,
        "cached_ms": cached_ms,
        "ratio": ratio,
    });
    let table = format!(
        "compile ({} bytes, median of {rounds})\n  fresh sandbox, compiled       {cold_ms:>10.1} ms\n  \
         restarted, from code cache    {cached_ms:>10.1} ms\n  ratio                         {ratio:>10.1}x\n",
        wasm.len()
    );
    Ok((json, table))
}

// ---------------------------------------------------------------------------------------------
// Blobs: raw vs verified streaming, and sealing

/// `size` bytes that do not repeat (a chain of BLAKE3 hashes from `seed`).
fn noise(size: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 32);
    let mut block = *blake3::hash(&seed.to_le_bytes()).as_bytes();
    while out.len() < size {
        out.extend_from_slice(&block);
        block = *blake3::hash(&block).as_bytes();
    }
    out.truncate(size);
    out
}

/// A blob through an in-process coordinator over loopback HTTP, `rounds` times (fresh blobs
/// each): uploaded in raw chunks (hashed whole at the end) vs verified slices (each checked
/// before it is kept, `Client::upload`); downloaded in raw `Range` pieces (hashed whole at the
/// end) vs verified slices (`Client::get_blob`, the first of which makes the blob's outboard
/// tree); and sealed and opened under a job key. Medians in MB/s, ratios beside them.
async fn blobs_bench(quick: bool) -> anyhow::Result<(serde_json::Value, String)> {
    let size: usize = if quick { 16 << 20 } else { 64 << 20 };
    let rounds = if quick { 2 } else { 5 };
    let dir = tempfile::tempdir().context("creating the coordinator's temp dir")?;
    let mut config = coordinator::CoordinatorConfig::new(dir.path().to_path_buf());
    config.genesis = coordinator::GenesisChoice::Dev;
    config.rates = coordinator::limits::RateConfig::off();
    config.blob_quota.per_account = 1 << 40;
    config.blob_quota.per_address = 1 << 40;
    let running = coordinator::start(config, "127.0.0.1:0".parse()?)
        .await
        .context("starting the coordinator")?;
    let url = running.url();
    let client = Client::new(&url);
    let http = reqwest::Client::new();
    let who = Identity::generate();
    let chunk = api::client::UPLOAD_CHUNK;
    let mb = size as f64 / 1e6;
    let rate = |d: Duration| mb / d.as_secs_f64().max(1e-9);
    let mut rows: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    for round in 0..rounds {
        let seed = round as u64 * 2;
        // Up, raw: chunks as they are, the hash checked once the last one is in.
        let raw = Bytes::from(noise(size, seed));
        let hash = engine::Hash::of(&raw);
        let started = Instant::now();
        client.start_upload(&who, hash, size as u64).await?;
        let mut at = 0u64;
        while at < size as u64 {
            let end = (at + chunk).min(size as u64);
            client
                .put_chunk(&who, hash, at, raw.slice(at as usize..end as usize))
                .await?;
            at = end;
        }
        rows.entry("up, raw chunks")
            .or_default()
            .push(rate(started.elapsed()));
        // Up, verified: each chunk a bao slice, checked before it is kept.
        let verified = Bytes::from(noise(size, seed + 1));
        let started = Instant::now();
        let vhash = client.upload(&who, verified.clone()).await?;
        rows.entry("up, verified slices")
            .or_default()
            .push(rate(started.elapsed()));
        // Down, raw: Range pieces, the hash checked at the end.
        let started = Instant::now();
        let mut hasher = blake3::Hasher::new();
        let mut got = 0u64;
        while got < size as u64 {
            let resp = http
                .get(format!("{url}/v1/blobs/{hash}"))
                .header("range", format!("bytes={got}-{}", got + chunk - 1))
                .send()
                .await?
                .error_for_status()?;
            let bytes = resp.bytes().await?;
            ensure!(!bytes.is_empty(), "an empty piece");
            hasher.update(&bytes);
            got += bytes.len() as u64;
        }
        ensure!(
            hasher.finalize().as_bytes() == &hash.0,
            "the raw download differs"
        );
        rows.entry("down, raw ranges")
            .or_default()
            .push(rate(started.elapsed()));
        // Down, verified: the first makes the outboard tree on the coordinator; again, it is there.
        let started = Instant::now();
        ensure!(
            client.get_blob(vhash).await? == verified,
            "the download differs"
        );
        rows.entry("down, verified (first)")
            .or_default()
            .push(rate(started.elapsed()));
        let started = Instant::now();
        ensure!(
            client.get_blob(vhash).await? == verified,
            "the download differs"
        );
        rows.entry("down, verified (again)")
            .or_default()
            .push(rate(started.elapsed()));
        // Sealing, as a private job's requester and providers do.
        let key = api::private::JobKey::generate();
        let (sealed, seal_time) = tokio::task::block_in_place(|| {
            let started = Instant::now();
            let sealed = key.seal(&raw);
            (sealed, started.elapsed())
        });
        rows.entry("seal (XChaCha20-Poly1305, SIV)")
            .or_default()
            .push(rate(seal_time));
        let open_time = tokio::task::block_in_place(|| {
            let started = Instant::now();
            let opened = key.open(&sealed);
            let elapsed = started.elapsed();
            opened.map(|o| (o.len() == size, elapsed))
        })?;
        ensure!(open_time.0, "the opened blob differs");
        rows.entry("open").or_default().push(rate(open_time.1));
        eprintln!("blobs: round {}/{rounds} done", round + 1);
    }
    running.shutdown().await;
    drop(dir);
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let m = |k: &str| rows.get(k).map(|v| median(v)).unwrap_or(0.0);
    let order = [
        ("up, raw chunks", None),
        ("up, verified slices", Some("up, raw chunks")),
        ("down, raw ranges", None),
        ("down, verified (first)", Some("down, raw ranges")),
        ("down, verified (again)", Some("down, raw ranges")),
        ("seal (XChaCha20-Poly1305, SIV)", None),
        ("open", None),
    ];
    let mut table = format!(
        "blobs ({:.0} MB over loopback HTTP, median of {rounds}, MB/s)\n",
        mb
    );
    let mut json_rows = serde_json::Map::new();
    for (name, against) in order {
        let value = m(name);
        let ratio = against.map(|a| value / m(a).max(1e-9));
        table.push_str(&format!(
            "  {name:<32} {value:>9.1}{}\n",
            ratio.map_or(String::new(), |r| format!(
                "   {r:>5.2}x of {}",
                against.unwrap_or("")
            ))
        ));
        json_rows.insert(
            name.to_string(),
            json!({ "mb_per_s": value, "ratio": ratio }),
        );
    }
    let json = json!({ "bytes": size, "rounds": rounds, "rows": json_rows });
    Ok((json, table))
}

// ---------------------------------------------------------------------------------------------
// 1. CPU kernel

struct KernelResult {
    iterations: u64,
    rounds: usize,
    checksum: String,
    /// `Err(why)` when the native row was skipped.
    native: Result<Vec<Duration>, String>,
    sandbox: Vec<Duration>,
    bare: Vec<Duration>,
    /// Bare wasmtime with the sandbox's fuel and NaN settings.
    bare_same: Vec<Duration>,
    sandbox_fuel: u64,
}

/// The natively compiled kernel, or why there is none.
struct Native {
    _dir: tempfile::TempDir,
    exe: std::path::PathBuf,
}

fn compile_native() -> anyhow::Result<Result<Native, String>> {
    let dir = tempfile::tempdir().context("creating a temp dir for the native build")?;
    let src = dir.path().join("bench.c");
    let exe = dir.path().join("bench");
    std::fs::write(&src, BENCH_C).context("writing bench.c")?;
    let out = match Command::new("gcc")
        .arg("-O2")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Err("gcc not found".into()));
        }
        Err(e) => return Ok(Err(format!("cannot run gcc: {e}"))),
    };
    if !out.status.success() {
        return Ok(Err(format!(
            "gcc -O2 failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(Ok(Native { _dir: dir, exe }))
}

fn kernel_bench(plan: &Plan) -> anyhow::Result<KernelResult> {
    let iterations = plan.kernel_iterations.to_string();
    eprintln!("kernel: compiling guests/bench.c with gcc -O2");
    let native = compile_native()?;
    if let Err(why) = &native {
        eprintln!("kernel: {why}; skipping the native row");
    }

    eprintln!("kernel: compiling bench.wasm for the sandbox and for bare wasmtime");
    let sandbox = Sandbox::new(SandboxConfig::default())?;
    let prepared = sandbox.prepare(BENCH_WASM)?;
    let task = TaskRun {
        args: vec![iterations.clone()],
        fuel_limit: 1_000_000_000_000,
        wall_limit: Duration::from_secs(600),
        ..TaskRun::default()
    };
    let baseline = Baseline::new()?;
    let bare_module = baseline.compile(BENCH_WASM)?;
    let same = Baseline::with_sandbox_settings()?;
    let same_module = same.compile(BENCH_WASM)?;
    let bare_args = [iterations.clone()];

    let mut outputs: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut native_times = Vec::new();
    let mut sandbox_times = Vec::new();
    let mut bare_times = Vec::new();
    let mut same_times = Vec::new();
    let mut sandbox_fuel = 0;
    for round in 1..=plan.kernel_rounds {
        if let Ok(native) = &native {
            let start = Instant::now();
            let out = Command::new(&native.exe)
                .arg(&iterations)
                .output()
                .context("running the native kernel")?;
            let took = start.elapsed();
            ensure!(
                out.status.success(),
                "native kernel failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            eprintln!("kernel: round {round}: native  {:8.1} ms", ms(took));
            native_times.push(took);
            outputs.push(("native", out.stdout));
        }

        let start = Instant::now();
        let report = sandbox.run(&prepared, &task)?;
        let took = start.elapsed();
        ensure!(
            report.outcome == Outcome::Exited(0),
            "sandboxed kernel failed: {:?}; stderr: {}",
            report.outcome,
            String::from_utf8_lossy(&report.stderr)
        );
        eprintln!("kernel: round {round}: sandbox {:8.1} ms", ms(took));
        sandbox_times.push(took);
        sandbox_fuel = report.fuel_used;
        outputs.push(("sandbox", report.output));

        let start = Instant::now();
        let report = baseline.run(&bare_module, &bare_args)?;
        let took = start.elapsed();
        ensure!(
            report.exit_code == 0,
            "bare-wasmtime kernel exited {}",
            report.exit_code
        );
        eprintln!("kernel: round {round}: bare    {:8.1} ms", ms(took));
        bare_times.push(took);
        outputs.push(("bare wasmtime", report.stdout));

        let start = Instant::now();
        let report = same.run(&same_module, &bare_args)?;
        let took = start.elapsed();
        ensure!(
            report.exit_code == 0,
            "bare-wasmtime (sandbox settings) kernel exited {}",
            report.exit_code
        );
        eprintln!("kernel: round {round}: bare+settings {:8.1} ms", ms(took));
        same_times.push(took);
        outputs.push(("bare wasmtime with sandbox settings", report.stdout));
    }

    let (_, first) = outputs.first().context("no kernel rounds ran")?;
    if let Some((who, other)) = outputs.iter().find(|(_, out)| out != first) {
        bail!(
            "CHECKSUM MISMATCH: {} printed {:?} but {who} printed {:?}",
            outputs[0].0,
            String::from_utf8_lossy(first),
            String::from_utf8_lossy(other)
        );
    }
    let text = String::from_utf8_lossy(first);
    let checksum = text
        .trim()
        .strip_prefix("checksum ")
        .with_context(|| format!("unexpected kernel output {text:?}"))?
        .to_string();
    eprintln!(
        "kernel: all {} runs printed checksum {checksum}",
        outputs.len()
    );

    Ok(KernelResult {
        iterations: plan.kernel_iterations,
        rounds: plan.kernel_rounds,
        checksum,
        native: native.map(|_| native_times),
        sandbox: sandbox_times,
        bare: bare_times,
        bare_same: same_times,
        sandbox_fuel,
    })
}

// ---------------------------------------------------------------------------------------------
// 2. Per-task instantiation

/// Per-run times of one way of running the no-op module.
struct RunTimes {
    /// Around the whole call (`Sandbox::run` / `Baseline::run`).
    call: Vec<Duration>,
    /// Instantiation plus `_start` only, as the runner reports it.
    inner: Vec<Duration>,
}

impl RunTimes {
    fn new(n: usize) -> RunTimes {
        RunTimes {
            call: Vec::with_capacity(n),
            inner: Vec::with_capacity(n),
        }
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "mean_us": us(mean(&self.call)),
            "p50_us": us(median(&self.call)),
            "p99_us": us(percentile(&self.call, 0.99)),
            "instantiate_start_p50_us": us(median(&self.inner)),
        })
    }
}

struct InstantiationResult {
    runs: usize,
    pooling: RunTimes,
    on_demand: RunTimes,
    /// In a worker process (`gridmint sandbox-worker`), as a provider runs its tasks.
    workers: RunTimes,
    bare: RunTimes,
}

fn instantiation_bench(plan: &Plan) -> anyhow::Result<InstantiationResult> {
    eprintln!(
        "instantiation: {} no-op runs each (pooling, on-demand, worker process, bare wasmtime), interleaved",
        plan.noop_runs
    );
    let pooled = Sandbox::new(SandboxConfig::default())?;
    let on_demand = Sandbox::new(SandboxConfig {
        pooling: false,
        ..SandboxConfig::default()
    })?;
    let workers = Sandbox::new(SandboxConfig {
        worker: crate::sandbox_worker(),
        ..SandboxConfig::default()
    })?;
    let baseline = Baseline::new()?;
    let pooled_module = pooled.prepare(NOOP_WASM)?;
    let on_demand_module = on_demand.prepare(NOOP_WASM)?;
    let workers_module = workers.prepare(NOOP_WASM)?;
    let bare_module = baseline.compile(NOOP_WASM)?;
    let task = TaskRun::default();

    let run_sandbox = |sandbox: &Sandbox, module, times: Option<&mut RunTimes>| {
        let start = Instant::now();
        let report = sandbox.run(module, &task)?;
        let took = start.elapsed();
        ensure!(
            report.outcome == Outcome::Exited(0),
            "no-op run failed: {:?}",
            report.outcome
        );
        if let Some(times) = times {
            times.call.push(took);
            times.inner.push(report.wall_time);
        }
        anyhow::Ok(())
    };
    let run_bare = |times: Option<&mut RunTimes>| {
        let start = Instant::now();
        let report = baseline.run(&bare_module, &[])?;
        let took = start.elapsed();
        ensure!(
            report.exit_code == 0,
            "bare no-op exited {}",
            report.exit_code
        );
        if let Some(times) = times {
            times.call.push(took);
            times.inner.push(report.elapsed);
        }
        anyhow::Ok(())
    };

    // Warm up: first-touch page faults, pool slots, allocator caches.
    for _ in 0..(plan.noop_runs / 10).max(20) {
        run_sandbox(&pooled, &pooled_module, None)?;
        run_sandbox(&on_demand, &on_demand_module, None)?;
        run_sandbox(&workers, &workers_module, None)?;
        run_bare(None)?;
    }
    let mut result = InstantiationResult {
        runs: plan.noop_runs,
        pooling: RunTimes::new(plan.noop_runs),
        on_demand: RunTimes::new(plan.noop_runs),
        workers: RunTimes::new(plan.noop_runs),
        bare: RunTimes::new(plan.noop_runs),
    };
    for _ in 0..plan.noop_runs {
        run_sandbox(&pooled, &pooled_module, Some(&mut result.pooling))?;
        run_sandbox(&on_demand, &on_demand_module, Some(&mut result.on_demand))?;
        run_sandbox(&workers, &workers_module, Some(&mut result.workers))?;
        run_bare(Some(&mut result.bare))?;
    }
    eprintln!(
        "instantiation: p50 pooling {:.1} µs, on-demand {:.1} µs, worker process {:.1} µs, bare {:.1} µs",
        us(median(&result.pooling.call)),
        us(median(&result.on_demand.call)),
        us(median(&result.workers.call)),
        us(median(&result.bare.call)),
    );
    Ok(result)
}

// ---------------------------------------------------------------------------------------------
// 3. End to end

pub(crate) struct EndToEndResult {
    providers: usize,
    slots: u32,
    tasks: usize,
    /// The median of `rounds`.
    elapsed: Duration,
    rounds: Vec<Duration>,
    tasks_per_provider: Vec<u64>,
    pub(crate) latencies: Vec<Duration>,
}

async fn end_to_end_bench(plan: &Plan, cores: u32) -> anyhow::Result<EndToEndResult> {
    let coordinator_dir = tempfile::tempdir().context("creating the coordinator's temp dir")?;
    let mut config = coordinator::CoordinatorConfig::new(coordinator_dir.path().to_path_buf());
    // A development network: providers stake from its faucet, the requester pays from it.
    config.genesis = coordinator::GenesisChoice::Dev;
    // Every client of the benchmark comes from one address: no rate limits.
    config.rates = coordinator::limits::RateConfig::off();
    let running = coordinator::start(config, "127.0.0.1:0".parse()?)
        .await
        .context("starting the coordinator")?;
    let url = running.url();
    let result = end_to_end_against(plan, &url, cores).await;
    eprintln!("end-to-end: stopping the coordinator");
    running.shutdown().await;
    drop(coordinator_dir);
    result
}

/// Starts [`PROVIDERS`] in-process providers against `url` (one coordinator, or a
/// comma-separated list of validators), times single-task jobs and then the throughput jobs, and
/// stops them.
pub(crate) async fn end_to_end_against(
    plan: &Plan,
    url: &str,
    cores: u32,
) -> anyhow::Result<EndToEndResult> {
    let harness = Harness::start(url, cores).await?;
    let result = async {
        let latencies = harness.latencies(plan.latency_samples).await?;
        let mut result = harness.result(latencies);
        for round in 1..=plan.e2e_rounds {
            harness.round(plan, round, &mut result).await?;
        }
        anyhow::Ok(result)
    }
    .await;
    harness.stop().await;
    result.map(EndToEndResult::finish)
}

/// Providers running against one network, and a funded requester with the no-op module
/// uploaded: what the end-to-end measurements drive (`--only validators` drives two at once,
/// one job on each in turn, so that both see the same machine).
pub(crate) struct Harness {
    client: Client,
    requester: Identity,
    module: engine::Hash,
    /// What the network's storage costs (rules 10), read once.
    storage: Option<engine::StorageParams>,
    cores: u32,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    providers: Vec<tokio::task::JoinHandle<anyhow::Result<provider::Summary>>>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Harness {
    /// Starts the providers, waits until they are registered, funds a requester from the
    /// faucet, uploads the module and runs one warm-up job (providers fetch and compile the
    /// module on first use).
    pub(crate) async fn start(url: &str, cores: u32) -> anyhow::Result<Harness> {
        eprintln!("end-to-end: {url}; starting {PROVIDERS} providers x {cores} slots");
        let mut dirs = Vec::new();
        let mut stops = Vec::new();
        let mut providers = Vec::new();
        for _ in 0..PROVIDERS {
            let dir = tempfile::tempdir().context("creating a provider's temp dir")?;
            let mut config = provider::ProviderConfig::new(url, dir.path().to_path_buf());
            config.slots = cores;
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            providers.push(tokio::spawn(provider::run(config, async {
                let _ = stopped.await;
            })));
            stops.push(stop);
            dirs.push(dir);
        }
        let client = Client::new(url);
        let mut harness = Harness {
            client,
            requester: Identity::generate(),
            module: engine::Hash([0; 32]),
            storage: None,
            cores,
            stops,
            providers,
            _dirs: dirs,
        };
        if let Err(e) = harness.prepare().await {
            harness.stop().await;
            return Err(e);
        }
        Ok(harness)
    }

    async fn prepare(&mut self) -> anyhow::Result<()> {
        let waiting = Instant::now();
        loop {
            let status = self.client.status().await?;
            if status.providers_active >= PROVIDERS as u64 {
                break;
            }
            ensure!(
                waiting.elapsed() < Duration::from_secs(60),
                "only {} of {PROVIDERS} providers registered within 60 s",
                status.providers_active
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!(
            "end-to-end: {PROVIDERS} providers registered after {:.1} s (each benchmarks itself first)",
            waiting.elapsed().as_secs_f64()
        );
        self.client
            .action(&self.requester, engine::Action::Faucet)
            .await
            .context("funding the requester from the faucet")?;
        self.module = self
            .client
            .put_blob(&self.requester, Bytes::from_static(NOOP_WASM))
            .await
            .context("uploading noop.wasm")?;
        self.storage = self.client.network().await?.storage;
        run_job(&self.client, &self.requester, self.submission(self.spec(1))).await?;
        Ok(())
    }

    fn spec(&self, tasks: usize) -> JobSpec {
        JobSpec {
            module: self.module,
            tasks: vec![TaskSpec::default(); tasks],
            limits: Limits {
                fuel: 1_000_000,
                memory_bytes: 16 << 20,
                wall_ms: 10_000,
            },
            deadline: coordinator::now_ms() + 10 * 60 * 1000,
            max_price: 1,
            output: OutputSource::Stdout,
            aggregate: Aggregate::Concat,
            // Task overhead: one run per task. Verification replicas multiply runs by the
            // policy's redundancy, which the verification tests measure instead.
            redundancy: engine::Redundancy::Fixed {
                quorum: 1,
                max_results: 1,
            },
            requirements: Default::default(),
        }
    }

    /// The action submitting no-op job `spec` (see [`noop_submission`]).
    fn submission(&self, spec: JobSpec) -> Action {
        noop_submission(self.storage.as_ref(), spec)
    }

    /// Runs one job of `tasks` no-op tasks (`gpu`: only for providers that declare a GPU, so
    /// none of the bench's own take it) and returns its submit→completed time; with `gpu` it
    /// only submits and returns the time the submission took.
    pub(crate) async fn job(&self, tasks: usize, gpu: bool) -> anyhow::Result<Duration> {
        let mut spec = self.spec(tasks);
        if gpu {
            spec.requirements.gpu = true;
            // Small enough that the faucet's tokens cover a million tasks' escrow.
            spec.limits.fuel = 10_000;
            let start = Instant::now();
            self.client
                .action(&self.requester, self.submission(spec))
                .await
                .context("submitting the job")?;
            return Ok(start.elapsed());
        }
        Ok(
            run_job(&self.client, &self.requester, self.submission(spec))
                .await?
                .0,
        )
    }

    /// The client the harness drives the network with.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// Submit-to-completed times of `samples` single-task jobs.
    pub(crate) async fn latencies(&self, samples: usize) -> anyhow::Result<Vec<Duration>> {
        let mut latencies = Vec::with_capacity(samples);
        for i in 1..=samples {
            let (took, _) =
                run_job(&self.client, &self.requester, self.submission(self.spec(1))).await?;
            if i % 10 == 0 || i == samples {
                eprintln!(
                    "end-to-end: single-task job {i}/{samples}: {:.1} ms",
                    ms(took)
                );
            }
            latencies.push(took);
        }
        Ok(latencies)
    }

    /// An empty result with these latencies, for [`Harness::round`] to add to.
    pub(crate) fn result(&self, latencies: Vec<Duration>) -> EndToEndResult {
        EndToEndResult {
            providers: PROVIDERS,
            slots: self.cores,
            tasks: 0,
            elapsed: Duration::ZERO,
            rounds: Vec::new(),
            tasks_per_provider: Vec::new(),
            latencies,
        }
    }

    /// Runs throughput job `round` of `plan` and adds it to `result`.
    pub(crate) async fn round(
        &self,
        plan: &Plan,
        round: usize,
        result: &mut EndToEndResult,
    ) -> anyhow::Result<()> {
        eprintln!(
            "end-to-end: submitting a job of {} no-op tasks ({round}/{})",
            plan.e2e_tasks, plan.e2e_rounds
        );
        let (elapsed, view) = run_job(
            &self.client,
            &self.requester,
            self.submission(self.spec(plan.e2e_tasks)),
        )
        .await?;
        ensure!(
            view.tasks_done == plan.e2e_tasks as u64,
            "job completed with {} of {} tasks done",
            view.tasks_done,
            plan.e2e_tasks
        );
        result.tasks_per_provider = view.tasks_per_provider.values().copied().collect();
        eprintln!(
            "end-to-end: {} tasks in {:.2} s ({:.0} tasks/s), per provider {:?}",
            plan.e2e_tasks,
            elapsed.as_secs_f64(),
            plan.e2e_tasks as f64 / elapsed.as_secs_f64(),
            result.tasks_per_provider
        );
        result.tasks = plan.e2e_tasks;
        result.rounds.push(elapsed);
        Ok(())
    }

    /// Stops the providers.
    pub(crate) async fn stop(self) {
        eprintln!("end-to-end: stopping providers");
        drop(self.stops);
        for handle in self.providers {
            match tokio::time::timeout(Duration::from_secs(10), handle).await {
                Ok(Ok(Ok(_))) => {}
                Ok(Ok(Err(e))) => eprintln!("end-to-end: a provider stopped with an error: {e:#}"),
                Ok(Err(e)) => eprintln!("end-to-end: a provider task failed: {e}"),
                Err(_) => eprintln!("end-to-end: a provider did not stop within 10 s"),
            }
        }
    }
}

impl EndToEndResult {
    /// Sets the throughput to the median of the rounds.
    pub(crate) fn finish(mut self) -> EndToEndResult {
        self.elapsed = median(&self.rounds);
        self
    }
}

/// Submits `spec` and waits (long poll) until the job completes; returns submit→completed time.
async fn run_job(
    client: &Client,
    requester: &Identity,
    submission: Action,
) -> anyhow::Result<(Duration, api::wire::JobView)> {
    let start = Instant::now();
    let response = client
        .action(requester, submission)
        .await
        .context("submitting the job")?;
    let job = response
        .submitted_job()
        .context("SubmitJob was accepted but reported no job id")?;
    loop {
        let view = client.job_wait(job, Duration::from_secs(5)).await?;
        match &view.status {
            JobStatus::Completed => return Ok((start.elapsed(), view)),
            JobStatus::Failed { reason } => bail!("job {job} failed: {reason}"),
            JobStatus::Cancelled => bail!("job {job} was cancelled"),
            JobStatus::Running | JobStatus::Reducing => {}
        }
        ensure!(
            start.elapsed() < Duration::from_secs(300),
            "job {job} not completed after 300 s ({} of {} tasks done)",
            view.tasks_done,
            view.tasks_total
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Report

struct Report {
    quick: bool,
    cores: u32,
    kernel: KernelResult,
    instantiation: InstantiationResult,
    e2e: EndToEndResult,
    ledger: TransferBench,
}

impl Report {
    fn native_median(&self) -> Option<Duration> {
        self.kernel.native.as_ref().ok().map(|t| median(t))
    }

    fn over_native(&self) -> Option<f64> {
        self.native_median()
            .map(|n| median(&self.kernel.sandbox).as_secs_f64() / n.as_secs_f64())
    }

    fn over_bare(&self) -> f64 {
        median(&self.kernel.sandbox).as_secs_f64() / median(&self.kernel.bare).as_secs_f64()
    }

    /// The harness alone: sandbox over bare wasmtime compiled with the same settings.
    fn over_bare_same(&self) -> f64 {
        median(&self.kernel.sandbox).as_secs_f64() / median(&self.kernel.bare_same).as_secs_f64()
    }

    fn table(&self) -> String {
        use std::fmt::Write;
        let k = &self.kernel;
        let i = &self.instantiation;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "gridmint bench ({} mode, {} cores)\n",
            if self.quick { "quick" } else { "full" },
            self.cores
        );
        let _ = writeln!(
            s,
            "1. CPU kernel: guests/bench.c, {} iterations, median of {} interleaved rounds",
            k.iterations, k.rounds
        );
        match &k.native {
            Ok(times) => {
                let _ = writeln!(s, "   native (gcc -O2)    {:>9.1} ms", ms(median(times)));
            }
            Err(why) => {
                let _ = writeln!(s, "   native (gcc -O2)    skipped: {why}");
            }
        }
        let _ = writeln!(
            s,
            "   Gridmint sandbox    {:>9.1} ms",
            ms(median(&k.sandbox))
        );
        let _ = writeln!(s, "   bare wasmtime       {:>9.1} ms", ms(median(&k.bare)));
        let _ = writeln!(
            s,
            "   bare, same settings {:>9.1} ms   (fuel + NaN canonicalization)",
            ms(median(&k.bare_same))
        );
        match self.over_native() {
            Some(r) => {
                let _ = writeln!(
                    s,
                    "   sandbox / native    {r:>9.3}x    goal <= {GOAL_OVER_NATIVE:.2}x  {}",
                    verdict(r <= GOAL_OVER_NATIVE)
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "   sandbox / native          n/a    goal <= {GOAL_OVER_NATIVE:.2}x"
                );
            }
        }
        let r = self.over_bare();
        let _ = writeln!(
            s,
            "   sandbox / bare      {r:>9.3}x    goal <= {GOAL_OVER_BARE:.2}x  {}",
            verdict(r <= GOAL_OVER_BARE)
        );
        let r = self.over_bare_same();
        let _ = writeln!(
            s,
            "   sandbox / bare, same settings {r:>5.3}x    (the harness alone: goal <= {GOAL_OVER_BARE:.2}x  {})",
            verdict(r <= GOAL_OVER_BARE)
        );
        let _ = writeln!(
            s,
            "   checksum {} (all runs agree); sandbox fuel {} ({:.1}/iteration)\n",
            k.checksum,
            k.sandbox_fuel,
            k.sandbox_fuel as f64 / k.iterations as f64
        );

        let _ = writeln!(
            s,
            "2. Per-task instantiation: guests/noop.wasm, cached module, {} runs each",
            i.runs
        );
        let _ = writeln!(
            s,
            "                        mean µs   p50 µs   p99 µs   instantiate+_start p50 µs"
        );
        for (name, t) in [
            ("sandbox, pooling", &i.pooling),
            ("sandbox, on-demand", &i.on_demand),
            ("sandbox, worker", &i.workers),
            ("bare wasmtime", &i.bare),
        ] {
            let _ = writeln!(
                s,
                "   {name:<19} {:>8.1} {:>8.1} {:>8.1} {:>12.1}",
                us(mean(&t.call)),
                us(median(&t.call)),
                us(percentile(&t.call, 0.99)),
                us(median(&t.inner)),
            );
        }
        let p50 = us(median(&i.pooling.call));
        let _ = writeln!(
            s,
            "   goal: sandbox (pooling) p50 <= {GOAL_INSTANTIATE_US:.0} µs  {}\n",
            verdict(p50 <= GOAL_INSTANTIATE_US)
        );

        s.push_str(&self.e2e.table());
        let _ = writeln!(s);
        s.push_str(&self.ledger.table(4));
        s
    }

    fn to_json(&self) -> serde_json::Value {
        let k = &self.kernel;
        let i = &self.instantiation;
        json!({
            "mode": if self.quick { "quick" } else { "full" },
            "cores": self.cores,
            "kernel": {
                "iterations": k.iterations,
                "rounds": k.rounds,
                "checksum": k.checksum,
                "native_ms": self.native_median().map(ms),
                "native_skipped": k.native.as_ref().err(),
                "sandbox_ms": ms(median(&k.sandbox)),
                "bare_ms": ms(median(&k.bare)),
                "bare_same_settings_ms": ms(median(&k.bare_same)),
                "sandbox_over_bare_same_settings": self.over_bare_same(),
                "native_rounds_ms": k.native.as_ref().ok().map(|t| t.iter().copied().map(ms).collect::<Vec<_>>()),
                "sandbox_rounds_ms": k.sandbox.iter().copied().map(ms).collect::<Vec<_>>(),
                "bare_rounds_ms": k.bare.iter().copied().map(ms).collect::<Vec<_>>(),
                "sandbox_over_native": self.over_native(),
                "sandbox_over_bare": self.over_bare(),
                "goal_sandbox_over_native": GOAL_OVER_NATIVE,
                "goal_sandbox_over_bare": GOAL_OVER_BARE,
                "sandbox_fuel": k.sandbox_fuel,
            },
            "instantiation": {
                "runs": i.runs,
                "pooling": i.pooling.json(),
                "on_demand": i.on_demand.json(),
                "worker_process": i.workers.json(),
                "bare_wasmtime": i.bare.json(),
                "goal_p50_us": GOAL_INSTANTIATE_US,
            },
            "end_to_end": self.e2e.json(),
            "ledger": self.ledger.to_json(),
        })
    }
}

impl EndToEndResult {
    pub(crate) fn tasks_per_second(&self) -> f64 {
        self.tasks as f64 / self.elapsed.as_secs_f64()
    }

    fn table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "3. End to end: coordinator (fsync'd SQLite log) + {} providers x {} slots, loopback HTTP",
            self.providers, self.slots
        );
        let _ = writeln!(
            s,
            "   throughput          {:>9.0} tasks/s  ({} no-op tasks in {:.2} s, median of {} jobs; per provider in the last {:?})",
            self.tasks_per_second(),
            self.tasks,
            self.elapsed.as_secs_f64(),
            self.rounds.len(),
            self.tasks_per_provider
        );
        let _ = writeln!(
            s,
            "   latency             {:>9.1} ms p50   (single-task job submit->completed; {} samples, {:.1}..{:.1} ms)",
            ms(median(&self.latencies)),
            self.latencies.len(),
            ms(self.latencies.iter().min().copied().unwrap_or_default()),
            ms(self.latencies.iter().max().copied().unwrap_or_default()),
        );
        s
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "providers": self.providers,
            "slots_per_provider": self.slots,
            "tasks": self.tasks,
            "seconds": self.elapsed.as_secs_f64(),
            "rounds_seconds": self.rounds.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
            "tasks_per_second": self.tasks_per_second(),
            "tasks_per_provider": self.tasks_per_provider,
            "latency_p50_ms": ms(median(&self.latencies)),
            "latency_ms": self.latencies.iter().copied().map(ms).collect::<Vec<_>>(),
        })
    }
}

pub(crate) fn verdict(met: bool) -> &'static str {
    if met { "(met)" } else { "(missed)" }
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

pub(crate) fn mean(times: &[Duration]) -> Duration {
    match u32::try_from(times.len()) {
        Ok(0) | Err(_) => Duration::ZERO,
        Ok(n) => times.iter().sum::<Duration>() / n,
    }
}

/// The median (mean of the two middle values for an even count).
pub(crate) fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    match sorted.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    }
}

/// The nearest-rank percentile `q` (0..=1).
pub(crate) fn percentile(times: &[Duration], q: f64) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

// ---------------------------------------------------------------------------------------------
// The simulator at scale

/// The scale run of `sim/experiments/scale-100k.toml`, timed from configuration to summary
/// (state hash included), with the process's peak memory.
fn sim_bench(args: &BenchArgs) -> anyhow::Result<(serde_json::Value, String)> {
    let mut cfg = sim::SimConfig::parse(include_str!("../../../sim/experiments/scale-100k.toml"))?;
    cfg.providers.count = args.providers.map_or(
        if args.quick {
            10_000
        } else {
            cfg.providers.count
        },
        |n| n as u64,
    );
    cfg.workload.tasks = args.tasks.map_or(
        if args.quick {
            100_000
        } else {
            cfg.workload.tasks
        },
        |n| n as u64,
    );
    cfg.validate()?;
    let started = Instant::now();
    let (summary, _) = sim::experiments::run_once(&cfg, false)?;
    let wall = started.elapsed().as_secs_f64();
    let peak_mib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0);
    let meets = summary.providers >= 100_000 && summary.tasks >= 1_000_000;
    let goal = if !meets {
        "goal applies to 100k providers, 1M tasks"
    } else if wall < 60.0 {
        "goal < 60 s   (met)"
    } else {
        "goal < 60 s   (NOT met)"
    };
    let table = format!(
        "simulator: {} providers, {} tasks, seed {}\n\
         wall time            {wall:>10.1} s      {goal}\n\
         virtual makespan     {:>10.1} s\n\
         engine inputs        {:>10.0} /s     ({} in all)\n\
         events               {:>10.0} /s     ({} in all)\n\
         peak memory          {peak_mib:>10.0} MiB\n",
        summary.providers,
        summary.tasks,
        summary.seed,
        summary.makespan_s,
        summary.engine_inputs as f64 / wall,
        summary.engine_inputs,
        summary.events as f64 / wall,
        summary.events,
    );
    let json = json!({
        "providers": summary.providers,
        "tasks": summary.tasks,
        "wall_s": wall,
        "makespan_s": summary.makespan_s,
        "engine_inputs": summary.engine_inputs,
        "events": summary.events,
        "peak_mib": peak_mib,
        "state_hash": summary.state_hash,
    });
    Ok((json, table))
}

/// Output room a no-op task reserves: it prints nothing (1 KiB, so that a million-task job's
/// storage deposit stays within the faucet's tokens).
pub(crate) const NOOP_OUTPUT_LIMIT: u64 = 1024;

/// The action submitting a job of no-op tasks on a network whose storage costs `storage`: its
/// only blob is `noop.wasm`.
pub(crate) fn noop_submission(storage: Option<&engine::StorageParams>, spec: JobSpec) -> Action {
    api::job_submission(
        storage,
        spec,
        NOOP_WASM.len() as u64,
        Some(NOOP_OUTPUT_LIMIT),
        engine::JobOptions::default(),
        engine::JobFiles::default(),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(ms: u64) -> Vec<Duration> {
        vec![Duration::from_millis(ms)]
    }

    #[test]
    fn statistics() {
        let t: Vec<Duration> = [5, 1, 4, 2, 3].map(Duration::from_millis).to_vec();
        assert_eq!(median(&t), Duration::from_millis(3));
        assert_eq!(median(&t[..4]), Duration::from_micros(3000));
        assert_eq!(mean(&t), Duration::from_millis(3));
        assert_eq!(percentile(&t, 0.99), Duration::from_millis(5));
        assert_eq!(percentile(&t, 0.5), Duration::from_millis(3));
        assert_eq!(median(&[]), Duration::ZERO);
        assert_eq!(median(&d(7)), Duration::from_millis(7));
    }
}
