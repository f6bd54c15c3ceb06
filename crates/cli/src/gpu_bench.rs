//! `gridmint bench --only gpu`: what the GPU sandbox's metering costs, side by side in one run.
//!
//! On the best adapter present (`gpu::Gpu::open`; Mesa's lavapipe where there is no GPU): the f32
//! matrix product of `guests/gpu/matmul.wgsl` and its tiled form with barriers (GFLOP/s) and the SHA-256 search of
//! `guests/gpu/sha256-search.wgsl` (hashes/s), each metered (`gpu::admit`) and as written
//! (`gpu::baseline::admit_unmetered`, plain wgpu), rounds interleaved, medians; the same matrix
//! product in wasm in the CPU sandbox; and the per-task overhead of a tiny shader (buffers
//! uploaded, cached pipeline, dispatch, readback), p50. Outputs must be byte-identical between
//! metered and plain runs (and the CPU's matrix product the GPU's), and every metered run's
//! fuel the same, or the command fails.

use anyhow::{Context, bail, ensure};
use gpu::{Gpu, GpuOutcome, GpuReport, GpuTask, Shader, TaskBuffer};
use sandbox::{Outcome, Sandbox, SandboxConfig, TaskRun};
use serde_json::json;
use std::time::{Duration, Instant};

use crate::bench::median;

const MATMUL: &str = include_str!("../../../guests/gpu/matmul.wgsl");
const MATMUL_TILED: &str = include_str!("../../../guests/gpu/matmul-tiled.wgsl");
const SHA256_SEARCH: &str = include_str!("../../../guests/gpu/sha256-search.wgsl");
const TINY: &str = "@group(0) @binding(0) var<storage, read_write> x: array<u32>;\n\
                    @compute @workgroup_size(1) fn main() { x[0] = x[0] + 1u; }";

/// Goal (issue 18): metered time over plain wgpu's.
const GOAL_METERED_OVER_PLAIN: f64 = 1.15;

/// One benchmark's medians.
#[derive(Debug)]
struct Pair {
    plain: Duration,
    metered: Duration,
    fuel: u64,
}

impl Pair {
    fn ratio(&self) -> f64 {
        self.metered.as_secs_f64() / self.plain.as_secs_f64()
    }
}

pub struct GpuBench {
    adapter: gpu::Adapter,
    n: u32,
    nonces: u64,
    rounds: usize,
    matmul: Pair,
    tiled: Pair,
    cpu_matmul: Duration,
    hash: Pair,
    tiny: Pair,
}

fn words(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn task(workgroups: [u32; 3], buffers: Vec<TaskBuffer>) -> GpuTask {
    GpuTask {
        workgroups,
        buffers,
        fuel: u64::MAX,
        max_bytes: 1 << 30,
        timeout: Duration::from_secs(600),
    }
}

/// The matrices of the product: small integers, exact in `f32` whatever the order of the sums.
fn matmul_task(n: u32) -> GpuTask {
    let len = (n * n) as usize;
    let a: Vec<u8> = (0..len)
        .flat_map(|i| (((i * 7) % 11) as f32 - 5.0).to_le_bytes())
        .collect();
    let b: Vec<u8> = (0..len)
        .flat_map(|i| (((i * 5) % 13) as f32 - 6.0).to_le_bytes())
        .collect();
    let groups = n.div_ceil(8);
    task(
        [groups, groups, 1],
        vec![
            TaskBuffer {
                binding: 0,
                bytes: words(&[n, 0, 0, 0]),
                output: false,
            },
            TaskBuffer {
                binding: 1,
                bytes: a,
                output: false,
            },
            TaskBuffer {
                binding: 2,
                bytes: b,
                output: false,
            },
            TaskBuffer {
                binding: 3,
                bytes: vec![0; len * 4],
                output: true,
            },
        ],
    )
}

/// The same product in wasm (the same fills, the same order of sums), written to stdout.
fn matmul_wat(n: u32) -> String {
    let len = n * n;
    let (b, c, iov) = (len * 4, len * 8, len * 12);
    let pages = (len * 12 + 16).div_ceil(65536);
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") {pages})
  (func (export "_start")
    (local $i i32) (local $x i32) (local $y i32) (local $k i32) (local $sum f32)
    (block $done (loop $fill
      (br_if $done (i32.ge_u (local.get $i) (i32.const {len})))
      (f32.store (i32.shl (local.get $i) (i32.const 2))
        (f32.sub (f32.convert_i32_u (i32.rem_u (i32.mul (local.get $i) (i32.const 7)) (i32.const 11))) (f32.const 5)))
      (f32.store (i32.add (i32.const {b}) (i32.shl (local.get $i) (i32.const 2)))
        (f32.sub (f32.convert_i32_u (i32.rem_u (i32.mul (local.get $i) (i32.const 5)) (i32.const 13))) (f32.const 6)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $fill)))
    (local.set $y (i32.const 0))
    (block $ydone (loop $yl
      (br_if $ydone (i32.ge_u (local.get $y) (i32.const {n})))
      (local.set $x (i32.const 0))
      (block $xdone (loop $xl
        (br_if $xdone (i32.ge_u (local.get $x) (i32.const {n})))
        (local.set $sum (f32.const 0))
        (local.set $k (i32.const 0))
        (block $kdone (loop $kl
          (br_if $kdone (i32.ge_u (local.get $k) (i32.const {n})))
          (local.set $sum (f32.add (local.get $sum) (f32.mul
            (f32.load (i32.shl (i32.add (i32.mul (local.get $y) (i32.const {n})) (local.get $k)) (i32.const 2)))
            (f32.load (i32.add (i32.const {b}) (i32.shl (i32.add (i32.mul (local.get $k) (i32.const {n})) (local.get $x)) (i32.const 2)))))))
          (local.set $k (i32.add (local.get $k) (i32.const 1)))
          (br $kl)))
        (f32.store (i32.add (i32.const {c}) (i32.shl (i32.add (i32.mul (local.get $y) (i32.const {n})) (local.get $x)) (i32.const 2))) (local.get $sum))
        (local.set $x (i32.add (local.get $x) (i32.const 1)))
        (br $xl)))
      (local.set $y (i32.add (local.get $y) (i32.const 1)))
      (br $yl)))
    (i32.store (i32.const {iov}) (i32.const {c}))
    (i32.store (i32.add (i32.const {iov}) (i32.const 4)) (i32.const {b}))
    (drop (call $write (i32.const 1) (i32.const {iov}) (i32.const 1) (i32.add (i32.const {iov}) (i32.const 8))))))"#
    )
}

fn search_task(groups: u32, per: u32) -> GpuTask {
    let mut search: Vec<u32> = (0..12u32)
        .map(|i| i.wrapping_mul(0x9e37_79b9) ^ 0x5bd1_e995)
        .collect();
    search.extend([0, per, 0x0010_0000]);
    task(
        [groups, 1, 1],
        vec![
            TaskBuffer {
                binding: 0,
                bytes: words(&search),
                output: false,
            },
            TaskBuffer {
                binding: 1,
                bytes: words(&[u32::MAX, u32::MAX]),
                output: true,
            },
            TaskBuffer {
                binding: 2,
                bytes: vec![0; 4],
                output: true,
            },
        ],
    )
}

/// Runs `task` once and times it; the run must complete.
fn timed(gpu: &Gpu, shader: &Shader, task: &GpuTask) -> anyhow::Result<(Duration, GpuReport)> {
    let start = Instant::now();
    let report = gpu.run(shader, task)?;
    let took = start.elapsed();
    ensure!(
        report.outcome == GpuOutcome::Completed,
        "a benchmark run ended {:?}",
        report.outcome
    );
    Ok((took, report))
}

/// `rounds` interleaved runs of `task`, plain then metered; outputs must agree and fuel repeat.
fn pair(
    gpu: &Gpu,
    source: &str,
    task: &GpuTask,
    rounds: usize,
    what: &str,
) -> anyhow::Result<(Pair, Vec<u8>)> {
    let plain = gpu::baseline::admit_unmetered(source, "main")?;
    let metered = gpu::admit(source, "main")?;
    // Warm-up: pipelines compiled and cached.
    timed(gpu, &plain, task)?;
    timed(gpu, &metered, task)?;
    let (mut p, mut m, mut fuel) = (Vec::new(), Vec::new(), None);
    let mut output = Vec::new();
    for _ in 0..rounds {
        let (tp, rp) = timed(gpu, &plain, task)?;
        let (tm, rm) = timed(gpu, &metered, task)?;
        if rp.outputs != rm.outputs {
            bail!("{what}: the metered shader's output differs from the plain one's");
        }
        if fuel.is_some_and(|f| f != rm.fuel) {
            bail!("{what}: FUEL MISMATCH ({} after {fuel:?})", rm.fuel);
        }
        fuel = Some(rm.fuel);
        output = rm.outputs.iter().flat_map(|(_, b)| b.clone()).collect();
        p.push(tp);
        m.push(tm);
    }
    Ok((
        Pair {
            plain: median(&p),
            metered: median(&m),
            fuel: fuel.unwrap_or(0),
        },
        output,
    ))
}

pub fn run(quick: bool) -> anyhow::Result<GpuBench> {
    let gpu = Gpu::open()?;
    let adapter = gpu.adapter().clone();
    let rounds = if quick { 3 } else { 7 };
    let n = if quick { 256 } else { 512 };
    let (groups, per) = if quick { (64, 64) } else { (256, 128) };
    eprintln!(
        "bench gpu: {} ({}, {}); matmul {n}x{n}, {} nonces, {rounds} rounds",
        adapter.name,
        adapter.backend,
        adapter.driver_info,
        u64::from(groups) * 64 * u64::from(per)
    );

    let mm = matmul_task(n);
    let (matmul, gpu_product) = pair(&gpu, MATMUL, &mm, rounds, "matmul")?;
    let mut mm16 = mm.clone();
    mm16.workgroups = [n.div_ceil(16), n.div_ceil(16), 1];
    let (tiled, tiled_product) = pair(&gpu, MATMUL_TILED, &mm16, rounds, "tiled matmul")?;
    ensure!(
        tiled_product == gpu_product,
        "the tiled matrix product differs from the plain one"
    );

    let sandbox = Sandbox::new(SandboxConfig::default())?;
    let wasm = wat::parse_str(matmul_wat(n)).context("the matmul module")?;
    let prepared = sandbox.prepare(&wasm)?;
    let run = TaskRun {
        fuel_limit: u64::MAX / 4,
        wall_limit: Duration::from_secs(600),
        max_output_bytes: Some(u64::from(n * n * 4)),
        ..TaskRun::default()
    };
    let mut cpu = Vec::new();
    for _ in 0..rounds.min(3) {
        let start = Instant::now();
        let report = sandbox.run(&prepared, &run)?;
        cpu.push(start.elapsed());
        ensure!(
            report.outcome == Outcome::Exited(0),
            "the wasm matmul: {:?}",
            report.outcome
        );
        ensure!(
            report.output == gpu_product,
            "the CPU sandbox's matrix product differs from the GPU's"
        );
    }

    let (hash, _) = pair(
        &gpu,
        SHA256_SEARCH,
        &search_task(groups, per),
        rounds,
        "sha256",
    )?;

    let tiny_task = task(
        [1, 1, 1],
        vec![TaskBuffer {
            binding: 0,
            bytes: vec![0; 4],
            output: true,
        }],
    );
    let runs = if quick { 100 } else { 500 };
    let (tiny, _) = pair(&gpu, TINY, &tiny_task, runs, "tiny")?;

    Ok(GpuBench {
        adapter,
        n,
        nonces: u64::from(groups) * 64 * u64::from(per),
        rounds,
        matmul,
        tiled,
        cpu_matmul: median(&cpu),
        hash,
        tiny,
    })
}

impl GpuBench {
    fn gflops(&self, t: Duration) -> f64 {
        2.0 * f64::from(self.n).powi(3) / t.as_secs_f64() / 1e9
    }

    fn mhashes(&self, t: Duration) -> f64 {
        self.nonces as f64 / t.as_secs_f64() / 1e6
    }

    pub fn json(&self) -> serde_json::Value {
        json!({
            "adapter": {
                "name": self.adapter.name,
                "backend": self.adapter.backend,
                "device_type": self.adapter.device_type,
                "driver": self.adapter.driver,
                "driver_info": self.adapter.driver_info,
            },
            "rounds": self.rounds,
            "matmul_n": self.n,
            "matmul_gflops_plain": self.gflops(self.matmul.plain),
            "matmul_gflops_metered": self.gflops(self.matmul.metered),
            "matmul_gflops_cpu_sandbox": self.gflops(self.cpu_matmul),
            "matmul_instrumented_vs_plain": self.matmul.ratio(),
            "matmul_fuel": self.matmul.fuel,
            "tiled_gflops_plain": self.gflops(self.tiled.plain),
            "tiled_gflops_metered": self.gflops(self.tiled.metered),
            "tiled_instrumented_vs_plain": self.tiled.ratio(),
            "tiled_fuel": self.tiled.fuel,
            "hash_nonces": self.nonces,
            "hash_mhs_plain": self.mhashes(self.hash.plain),
            "hash_mhs_metered": self.mhashes(self.hash.metered),
            "hash_instrumented_vs_plain": self.hash.ratio(),
            "hash_fuel": self.hash.fuel,
            "task_overhead_p50_us_plain": self.tiny.plain.as_secs_f64() * 1e6,
            "task_overhead_p50_us_metered": self.tiny.metered.as_secs_f64() * 1e6,
            "goal_instrumented_vs_plain": GOAL_METERED_OVER_PLAIN,
        })
    }

    pub fn table(&self) -> String {
        let a = &self.adapter;
        let mut t = format!(
            "GPU sandbox on {} ({}, {}, {}), medians of {} interleaved rounds\n\n",
            a.name, a.device_type, a.backend, a.driver_info, self.rounds
        );
        t += &format!(
            "{:<32} {:>12} {:>12} {:>15} {:>14}\n",
            "", "plain wgpu", "metered", "metered/plain", "CPU sandbox"
        );
        t += &format!(
            "{:<32} {:>12.2} {:>12.2} {:>15.3} {:>14.2}\n",
            format!("matmul f32 {0}x{0} (GFLOP/s)", self.n),
            self.gflops(self.matmul.plain),
            self.gflops(self.matmul.metered),
            self.matmul.ratio(),
            self.gflops(self.cpu_matmul),
        );
        t += &format!(
            "{:<32} {:>12.2} {:>12.2} {:>15.3} {:>14}\n",
            "  tiled, barriers (GFLOP/s)",
            self.gflops(self.tiled.plain),
            self.gflops(self.tiled.metered),
            self.tiled.ratio(),
            "-",
        );
        t += &format!(
            "{:<32} {:>12.2} {:>12.2} {:>15.3} {:>14}\n",
            format!("SHA-256 search {} (MH/s)", self.nonces),
            self.mhashes(self.hash.plain),
            self.mhashes(self.hash.metered),
            self.hash.ratio(),
            "-",
        );
        t += &format!(
            "{:<32} {:>12.0} {:>12.0} {:>15.3} {:>14}\n",
            "per-task overhead p50 (µs)",
            self.tiny.plain.as_secs_f64() * 1e6,
            self.tiny.metered.as_secs_f64() * 1e6,
            self.tiny.ratio(),
            "-",
        );
        t += &format!(
            "\nfuel: matmul {}, tiled {}, search {}; goal metered/plain <= {GOAL_METERED_OVER_PLAIN} \
             (time ratios; GFLOP/s and MH/s are rates)\n",
            self.matmul.fuel, self.tiled.fuel, self.hash.fuel
        );
        t
    }
}
