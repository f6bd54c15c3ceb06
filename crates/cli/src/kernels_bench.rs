//! `gridmint bench --only kernels`: the compute kernels of `guests/kernels/` (linear algebra,
//! stencils, dynamic programming, FFT, sorting, hashing, parsing, memory bandwidth), each run
//! natively (its C source compiled at bench time with `gcc -O2 -ffp-contract=off`), in bare
//! wasmtime with stock settings, with the sandbox's metering alone (fuel and epoch checks), with
//! its NaN canonicalization alone, with both (the sandbox's code-generation settings), and in
//! the Gridmint [`Sandbox`]. Rounds are
//! interleaved (every kernel every way once per round), medians and ratios are reported with
//! their geometric means, and every run's output line (a hash of the kernel's whole result)
//! must be the same, and every sandbox run's fuel the same, or the command fails.

use anyhow::{Context, bail, ensure};
use sandbox::baseline::Baseline;
use sandbox::{Outcome, Sandbox, SandboxConfig, TaskRun};
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::bench::{median, ms};

/// Goal (issue 17): geometric mean of sandbox over native.
const GOAL_GEOMEAN_VS_NATIVE: f64 = 1.3;
/// Goal: geometric mean of sandbox over bare wasmtime.
const GOAL_GEOMEAN_VS_BARE: f64 = 1.15;
/// Goal: no kernel's sandbox time above this multiple of native.
const GOAL_MAX_VS_NATIVE: f64 = 1.6;

const COMMON_H: &str = include_str!("../../../guests/kernels/common.h");

/// A kernel: its name, C source and committed wasm build.
struct Kernel {
    name: &'static str,
    source: &'static str,
    wasm: &'static [u8],
}

macro_rules! kernels {
    ($($name:literal),* $(,)?) => {
        [$(Kernel {
            name: $name,
            source: include_str!(concat!("../../../guests/kernels/", $name, ".c")),
            wasm: include_bytes!(concat!("../../../guests/kernels/", $name, ".wasm")),
        }),*]
    };
}

const KERNELS: [Kernel; 13] = kernels!(
    "gemm", "cholesky", "lu", "jacobi2d", "heat3d", "nw", "nbody", "fft", "sort", "sha256",
    "parse", "triad", "floyd",
);

/// The ways a kernel runs, in the order of a round.
const WAYS: [&str; 6] = [
    "native",
    "bare wasmtime",
    "bare wasmtime with fuel and epochs",
    "bare wasmtime with NaN canonicalization",
    "bare wasmtime with the sandbox's settings",
    "sandbox",
];
/// Index of the sandbox in [`WAYS`].
const SANDBOX: usize = 5;

/// One kernel's times (one per round) for each of [`WAYS`], and what it printed.
struct Row {
    name: &'static str,
    times: [Vec<Duration>; 6],
    line: String,
    fuel: u64,
}

impl Row {
    fn median(&self, way: usize) -> f64 {
        self.times
            .get(way)
            .map(|t| median(t).as_secs_f64())
            .unwrap_or(f64::NAN)
    }

    fn ratio(&self, way: usize, over: usize) -> f64 {
        self.median(way) / self.median(over)
    }
}

/// What `--only kernels` measured.
pub(crate) struct KernelsResult {
    rounds: usize,
    rows: Vec<Row>,
}

fn geomean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0u32), |(s, n), v| (s + v.ln(), n + 1));
    (sum / f64::from(n.max(1))).exp()
}

impl KernelsResult {
    fn geomean(&self, way: usize, over: usize) -> f64 {
        geomean(self.rows.iter().map(|r| r.ratio(way, over)))
    }

    fn max_vs_native(&self) -> f64 {
        self.rows
            .iter()
            .map(|r| r.ratio(SANDBOX, 0))
            .fold(0.0, f64::max)
    }

    pub(crate) fn table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "compute kernels (guests/kernels, scale 1), median of {} interleaved round(s)\n",
            self.rounds
        );
        let _ = writeln!(
            s,
            "{:<10} {:>9}   {:>7} {:>7} {:>7} {:>7} {:>7}   {:>8}  {:>15}",
            "kernel", "native", "bare", "+fuel", "+nan", "+both", "sandbox", "sandbox", "fuel"
        );
        let _ = writeln!(
            s,
            "{:<10} {:>9}   {:>7} {:>7} {:>7} {:>7} {:>7}   {:>8}  {:>15}",
            "", "ms", "/native", "/native", "/native", "/native", "/native", "/bare", ""
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "{:<10} {:>9.1}   {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2}   {:>8.2}  {:>15}",
                r.name,
                r.median(0) * 1e3,
                r.ratio(1, 0),
                r.ratio(2, 0),
                r.ratio(3, 0),
                r.ratio(4, 0),
                r.ratio(SANDBOX, 0),
                r.ratio(SANDBOX, 1),
                r.fuel
            );
        }
        let _ = writeln!(
            s,
            "{:<10} {:>9}   {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2}   {:>8.2}",
            "geomean",
            "",
            self.geomean(1, 0),
            self.geomean(2, 0),
            self.geomean(3, 0),
            self.geomean(4, 0),
            self.geomean(SANDBOX, 0),
            self.geomean(SANDBOX, 1)
        );
        let _ = writeln!(
            s,
            "\nbare: stock wasmtime; +fuel: with fuel metering and epoch checks; +nan: with NaN\n\
             canonicalization; +both: with both (the sandbox's code generation, no harness).\n"
        );
        let _ = writeln!(
            s,
            "sandbox / native: geometric mean {:.2} (goal <= {GOAL_GEOMEAN_VS_NATIVE}: {}), worst {:.2} (goal <= {GOAL_MAX_VS_NATIVE}: {})",
            self.geomean(SANDBOX, 0),
            crate::bench::verdict(self.geomean(SANDBOX, 0) <= GOAL_GEOMEAN_VS_NATIVE),
            self.max_vs_native(),
            crate::bench::verdict(self.max_vs_native() <= GOAL_MAX_VS_NATIVE),
        );
        let _ = writeln!(
            s,
            "sandbox / bare wasmtime: geometric mean {:.2} (goal <= {GOAL_GEOMEAN_VS_BARE}: {})",
            self.geomean(SANDBOX, 1),
            crate::bench::verdict(self.geomean(SANDBOX, 1) <= GOAL_GEOMEAN_VS_BARE),
        );
        let _ = writeln!(
            s,
            "every kernel printed the same hash natively and in every wasm run; the sandbox's fuel was the same in every round"
        );
        s
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        json!({
            "rounds": self.rounds,
            "geomean_vs_native": self.geomean(SANDBOX, 0),
            "geomean_vs_bare": self.geomean(SANDBOX, 1),
            "max_vs_native": self.max_vs_native(),
            "geomean_bare_vs_native": self.geomean(1, 0),
            "geomean_fuel_vs_native": self.geomean(2, 0),
            "geomean_nan_vs_native": self.geomean(3, 0),
            "geomean_settings_vs_native": self.geomean(4, 0),
            "goals": {
                "geomean_vs_native": GOAL_GEOMEAN_VS_NATIVE,
                "geomean_vs_bare": GOAL_GEOMEAN_VS_BARE,
                "max_vs_native": GOAL_MAX_VS_NATIVE,
            },
            "kernels": self.rows.iter().map(|r| json!({
                "name": r.name,
                "native_ms": r.median(0) * 1e3,
                "bare_ms": r.median(1) * 1e3,
                "fuel_ms": r.median(2) * 1e3,
                "nan_ms": r.median(3) * 1e3,
                "settings_ms": r.median(4) * 1e3,
                "sandbox_ms": r.median(SANDBOX) * 1e3,
                "vs_native": r.ratio(SANDBOX, 0),
                "vs_bare": r.ratio(SANDBOX, 1),
                "fuel": r.fuel,
                "output": r.line,
            })).collect::<Vec<_>>(),
        })
    }
}

/// An error naming `what` and quoting its stderr unless the process `out` exited 0.
fn succeeded(out: &std::process::Output, what: &str) -> anyhow::Result<()> {
    ensure!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Compiles every kernel natively into `dir` with gcc; the executables' paths, in
/// [`KERNELS`]' order.
fn compile_native(dir: &std::path::Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    std::fs::write(dir.join("common.h"), COMMON_H).context("writing common.h")?;
    let mut exes = Vec::new();
    for k in &KERNELS {
        let src = dir.join(format!("{}.c", k.name));
        let exe = dir.join(k.name);
        std::fs::write(&src, k.source).with_context(|| format!("writing {}.c", k.name))?;
        let out = Command::new("gcc")
            .args(["-O2", "-ffp-contract=off", "-fno-fast-math", "-o"])
            .arg(&exe)
            .arg(&src)
            .arg("-lm")
            .output()
            .context("running gcc (the native column needs it)")?;
        succeeded(&out, &format!("gcc -O2 {}.c", k.name))?;
        exes.push(exe);
    }
    Ok(exes)
}

/// Runs the suite: `rounds` interleaved rounds (blocking; call it off the async workers).
pub(crate) fn run(rounds: usize) -> anyhow::Result<KernelsResult> {
    let dir = tempfile::tempdir().context("creating a temp dir for the native builds")?;
    eprintln!(
        "kernels: compiling {} kernels with gcc -O2 -ffp-contract=off",
        KERNELS.len()
    );
    let natives = compile_native(dir.path())?;
    eprintln!("kernels: compiling the wasm builds for the sandbox and four bare wasmtimes");
    let sandbox = Sandbox::new(SandboxConfig::default())?;
    let bares = [
        Baseline::new()?,
        Baseline::with_settings(true, false)?,
        Baseline::with_settings(false, true)?,
        Baseline::with_sandbox_settings()?,
    ];
    let mut prepared = Vec::new();
    for k in &KERNELS {
        let modules = bares
            .iter()
            .map(|b| b.compile(k.wasm))
            .collect::<Result<Vec<_>, _>>()?;
        prepared.push((modules, sandbox.prepare(k.wasm)?));
    }
    let scale = vec!["1".to_string()];
    let task = TaskRun {
        args: scale.clone(),
        fuel_limit: u64::MAX / 4,
        wall_limit: Duration::from_secs(600),
        ..TaskRun::default()
    };
    let mut rows: Vec<Row> = KERNELS
        .iter()
        .map(|k| Row {
            name: k.name,
            times: Default::default(),
            line: String::new(),
            fuel: 0,
        })
        .collect();
    for round in 1..=rounds {
        for ((row, exe), (modules, sandboxed)) in rows.iter_mut().zip(&natives).zip(&prepared) {
            let mut runs: Vec<(Duration, Vec<u8>)> = Vec::new();
            let start = Instant::now();
            let out = Command::new(exe)
                .args(&scale)
                .output()
                .with_context(|| format!("running the native {}", row.name))?;
            let took = start.elapsed();
            succeeded(&out, &format!("the native {}", row.name))?;
            runs.push((took, out.stdout));
            for ((bare, module), way) in bares.iter().zip(modules).zip(WAYS.iter().skip(1)) {
                let start = Instant::now();
                let report = bare.run(module, &scale)?;
                let took = start.elapsed();
                ensure!(
                    report.exit_code == 0,
                    "{} exited {} in {way}",
                    row.name,
                    report.exit_code
                );
                runs.push((took, report.stdout));
            }
            let start = Instant::now();
            let report = sandbox.run(sandboxed, &task)?;
            let took = start.elapsed();
            ensure!(
                report.outcome == Outcome::Exited(0),
                "{} in the sandbox: {:?}; stderr: {}",
                row.name,
                report.outcome,
                String::from_utf8_lossy(&report.stderr).trim()
            );
            runs.push((took, report.output));

            for ((way, (took, out)), times) in WAYS.iter().zip(runs).zip(row.times.iter_mut()) {
                let line = String::from_utf8_lossy(&out).trim().to_string();
                if row.line.is_empty() {
                    row.line = line.clone();
                }
                if line != row.line {
                    bail!(
                        "OUTPUT MISMATCH in {}: the {way} run printed {line:?} where an earlier run printed {:?}",
                        row.name,
                        row.line
                    );
                }
                times.push(took);
            }
            if round > 1 && report.fuel_used != row.fuel {
                bail!(
                    "FUEL MISMATCH in {}: {} in round {round}, {} before",
                    row.name,
                    report.fuel_used,
                    row.fuel
                );
            }
            row.fuel = report.fuel_used;
            eprintln!(
                "kernels: round {round}: {:<9} {}",
                row.name,
                row.times
                    .iter()
                    .map(|t| t.last().map_or(0.0, |d| ms(*d)))
                    .map(|m| format!("{m:8.1}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
    }
    Ok(KernelsResult { rounds, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_of_guests_kernels_is_benchmarked() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guests/kernels");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.strip_suffix(".c").map(str::to_string)
            })
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = KERNELS.iter().map(|k| k.name.to_string()).collect();
        listed.sort();
        assert_eq!(listed, on_disk);
    }

    #[test]
    fn the_geometric_mean_of_ratios() {
        assert!((geomean([2.0, 8.0].into_iter()) - 4.0).abs() < 1e-12);
        assert!((geomean([1.5].into_iter()) - 1.5).abs() < 1e-12);
    }
}
