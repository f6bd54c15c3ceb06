//! `gridmint bench --only kernels`: the compute kernels of `guests/kernels/` (linear algebra,
//! stencils, dynamic programming, FFT, sorting, hashing, parsing, memory bandwidth), each run
//! natively (its C source compiled at bench time with `gcc -O2 -ffp-contract=off`), in bare
//! wasmtime with stock settings, with each of the sandbox's code-generation levers alone (fuel,
//! epoch checks, NaN canonicalization after every float instruction as profile 1 does it, at
//! observation points as profile 2 does and as profile 4 does with float vectors followed, fuel
//! metered by profile 3's rewrite with and without counted loops charged once), with each
//! profile's settings together, and in the Gridmint
//! [`Sandbox`] under each profile (profile 5, the latest, in worker processes, as a provider
//! runs it). Rounds are interleaved (every kernel every way once
//! per round), medians and ratios are reported with their geometric means, and every run's
//! output line (a hash of the kernel's whole result) must be the same, and every sandbox run's
//! fuel the same under its profile, or the command fails.

use anyhow::{Context, bail, ensure};
use sandbox::baseline::{Baseline, Fuel, Nans, Settings};
use sandbox::{Outcome, Profile, Sandbox, SandboxConfig, TaskRun};
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

/// How a kernel runs.
#[derive(Clone, Copy)]
enum How {
    Native,
    Bare(Settings),
    Sandbox(Profile),
}

/// The ways a kernel runs, in the order of a round: a short label for the table, a long one.
const WAYS: [(&str, &str, How); 20] = [
    ("native", "native (gcc -O2)", How::Native),
    ("bare", "bare wasmtime, stock", How::Bare(BARE)),
    (
        "+fuel",
        "bare wasmtime with fuel metering",
        How::Bare(Settings {
            fuel: Fuel::Wasmtime,
            ..BARE
        }),
    ),
    (
        "+meter",
        "bare wasmtime metered by the fuel rewrite (the same fuel as wasmtime's)",
        How::Bare(Settings {
            fuel: Fuel::Rewritten,
            ..BARE
        }),
    ),
    (
        "+hoist",
        "bare wasmtime metered by the fuel rewrite, counted loops charged once on entry",
        How::Bare(Settings {
            fuel: Fuel::Hoisted,
            ..BARE
        }),
    ),
    (
        "+htrap",
        "+hoist, with checks that trap instead of calling the host (no wall-clock bound): \
         the cost of the calls at checks",
        How::Bare(Settings {
            fuel: Fuel::HoistedTrapping,
            ..BARE
        }),
    ),
    (
        "+epoch",
        "bare wasmtime with epoch checks",
        How::Bare(Settings {
            epochs: true,
            ..BARE
        }),
    ),
    (
        "+nan1",
        "bare wasmtime with NaN canonicalization after every float instruction (profile 1's)",
        How::Bare(Settings {
            nans: Nans::EveryFloat,
            ..BARE
        }),
    ),
    (
        "+nan2",
        "bare wasmtime with NaN canonicalization where observable (profile 2's rewrite)",
        How::Bare(Settings {
            nans: Nans::Observed,
            ..BARE
        }),
    ),
    (
        "+nan4",
        "bare wasmtime with NaN canonicalization where observable, float vectors too \
         (profile 4's rewrite)",
        How::Bare(Settings {
            nans: Nans::Tracked,
            ..BARE
        }),
    ),
    (
        "p1 set",
        "bare wasmtime with profile 1's settings (fuel, nan1)",
        How::Bare(Settings::of(Profile::EveryFloat)),
    ),
    (
        "p2 set",
        "bare wasmtime with profile 2's settings (fuel, nan2)",
        How::Bare(Settings::of(Profile::ObservedNans)),
    ),
    (
        "p3 set",
        "bare wasmtime with profile 3's settings (nan2, the fuel rewrite, counted loops hoisted)",
        How::Bare(Settings::of(Profile::CountedLoops)),
    ),
    (
        "p4 set",
        "bare wasmtime with profile 4's settings (nan4, the fuel rewrite, counted loops hoisted)",
        How::Bare(Settings::of(Profile::TrackedVectors)),
    ),
    (
        "p4 trap",
        "profile 4's settings with checks that trap (the code profile 5's worker processes run, \
         less its host-call charges; what a register-preserving call at checks would give)",
        How::Bare(Settings {
            fuel: Fuel::HoistedTrapping,
            epochs: false,
            nans: Nans::Tracked,
        }),
    ),
    (
        "sbox p1",
        "the sandbox under profile 1",
        How::Sandbox(Profile::EveryFloat),
    ),
    (
        "sbox p2",
        "the sandbox under profile 2",
        How::Sandbox(Profile::ObservedNans),
    ),
    (
        "sbox p3",
        "the sandbox under profile 3",
        How::Sandbox(Profile::CountedLoops),
    ),
    (
        "sbox p4",
        "the sandbox under profile 4",
        How::Sandbox(Profile::TrackedVectors),
    ),
    (
        "sbox p5",
        "the sandbox under profile 5 (the latest), in worker processes as a provider runs it \
         (checks that trap, the wall clock and the owner's pauses enforced by signals)",
        How::Sandbox(Profile::GuestCharged),
    ),
];
/// Stock settings.
const BARE: Settings = Settings {
    fuel: Fuel::Off,
    epochs: false,
    nans: Nans::Free,
};
/// Index in [`WAYS`] of native and stock wasmtime.
const NATIVE: usize = 0;
const STOCK: usize = 1;
/// Index in [`WAYS`] of the sandbox under profile 1 and under the latest profile, which the
/// goals are about.
const SANDBOX_P1: usize = 15;
const SANDBOX_P2: usize = 16;
const SANDBOX_P3: usize = 17;
const SANDBOX_P4: usize = 18;
const SANDBOX: usize = 19;

/// One kernel's times (one per round) for each of [`WAYS`], what it printed, and its fuel under
/// each profile.
struct Row {
    name: &'static str,
    times: Vec<Vec<Duration>>,
    line: String,
    fuel: [u64; 5],
    /// Fuel of the metered bare runs, by NaN setting (free, every float, observed, tracked):
    /// wasmtime's metering and the rewrite's must count the same.
    bare_fuel: [Option<u64>; 4],
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
            .map(|r| r.ratio(SANDBOX, NATIVE))
            .fold(0.0, f64::max)
    }

    pub(crate) fn table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "compute kernels (guests/kernels, scale 1), median of {} interleaved round(s); every \
             wasm column is a multiple of native\n",
            self.rounds
        );
        let _ = write!(s, "{:<9} {:>8} ", "kernel", "native");
        for (label, _, _) in WAYS.iter().skip(1) {
            let _ = write!(s, " {label:>7}");
        }
        let _ = writeln!(
            s,
            "  {:>8} {:>13} {:>13} {:>13} {:>13} {:>13}",
            "p5/bare", "fuel p1", "fuel p2", "fuel p3", "fuel p4", "fuel p5"
        );
        let _ = write!(s, "{:<9} {:>8} ", "", "ms");
        for _ in WAYS.iter().skip(1) {
            let _ = write!(s, " {:>7}", "/native");
        }
        let _ = writeln!(s);
        for r in &self.rows {
            let _ = write!(s, "{:<9} {:>8.1} ", r.name, r.median(NATIVE) * 1e3);
            for way in 1..WAYS.len() {
                let _ = write!(s, " {:>7.2}", r.ratio(way, NATIVE));
            }
            let _ = writeln!(
                s,
                "  {:>8.2} {:>13} {:>13} {:>13} {:>13} {:>13}",
                r.ratio(SANDBOX, STOCK),
                r.fuel[0],
                r.fuel[1],
                r.fuel[2],
                r.fuel[3],
                r.fuel[4]
            );
        }
        let _ = write!(s, "{:<9} {:>8} ", "geomean", "");
        for way in 1..WAYS.len() {
            let _ = write!(s, " {:>7.2}", self.geomean(way, NATIVE));
        }
        let _ = writeln!(s, "  {:>8.2}\n", self.geomean(SANDBOX, STOCK));
        for (label, long, _) in WAYS.iter().skip(1) {
            let _ = writeln!(s, "{label:>8}: {long}");
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "sandbox (profile 5, worker processes) / native: geometric mean {:.2} (goal <= {GOAL_GEOMEAN_VS_NATIVE}: {}), worst {:.2} (goal <= {GOAL_MAX_VS_NATIVE}: {}); under profile 4 (in-thread): {:.2}, profile 3: {:.2}, profile 2: {:.2}, profile 1: {:.2}",
            self.geomean(SANDBOX, NATIVE),
            crate::bench::verdict(self.geomean(SANDBOX, NATIVE) <= GOAL_GEOMEAN_VS_NATIVE),
            self.max_vs_native(),
            crate::bench::verdict(self.max_vs_native() <= GOAL_MAX_VS_NATIVE),
            self.geomean(SANDBOX_P4, NATIVE),
            self.geomean(SANDBOX_P3, NATIVE),
            self.geomean(SANDBOX_P2, NATIVE),
            self.geomean(SANDBOX_P1, NATIVE),
        );
        let _ = writeln!(
            s,
            "sandbox (profile 5, worker processes) / bare wasmtime: geometric mean {:.2} (goal <= {GOAL_GEOMEAN_VS_BARE}: {}); under profile 4 (in-thread): {:.2}, profile 3: {:.2}, profile 2: {:.2}, profile 1: {:.2}",
            self.geomean(SANDBOX, STOCK),
            crate::bench::verdict(self.geomean(SANDBOX, STOCK) <= GOAL_GEOMEAN_VS_BARE),
            self.geomean(SANDBOX_P4, STOCK),
            self.geomean(SANDBOX_P3, STOCK),
            self.geomean(SANDBOX_P2, STOCK),
            self.geomean(SANDBOX_P1, STOCK),
        );
        let _ = writeln!(
            s,
            "every kernel printed the same hash natively and in every wasm run; the sandbox's fuel was the same in every round under each profile; wasmtime's metering and the fuel rewrite (+meter, +hoist, +htrap, p3 set; p4 set, p4 trap) counted the same fuel"
        );
        s
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        let ways: serde_json::Map<String, serde_json::Value> = WAYS
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, (label, _, _))| (label.to_string(), json!(self.geomean(i, NATIVE))))
            .collect();
        json!({
            "rounds": self.rounds,
            "geomean_vs_native": self.geomean(SANDBOX, NATIVE),
            "geomean_vs_bare": self.geomean(SANDBOX, STOCK),
            "max_vs_native": self.max_vs_native(),
            "profile_1": {
                "geomean_vs_native": self.geomean(SANDBOX_P1, NATIVE),
                "geomean_vs_bare": self.geomean(SANDBOX_P1, STOCK),
            },
            "profile_2": {
                "geomean_vs_native": self.geomean(SANDBOX_P2, NATIVE),
                "geomean_vs_bare": self.geomean(SANDBOX_P2, STOCK),
            },
            "profile_3": {
                "geomean_vs_native": self.geomean(SANDBOX_P3, NATIVE),
                "geomean_vs_bare": self.geomean(SANDBOX_P3, STOCK),
            },
            "profile_4": {
                "geomean_vs_native": self.geomean(SANDBOX_P4, NATIVE),
                "geomean_vs_bare": self.geomean(SANDBOX_P4, STOCK),
            },
            "geomean_vs_native_by_way": ways,
            "ways": WAYS.iter().map(|(label, long, _)| json!({"label": label, "what": long})).collect::<Vec<_>>(),
            "goals": {
                "geomean_vs_native": GOAL_GEOMEAN_VS_NATIVE,
                "geomean_vs_bare": GOAL_GEOMEAN_VS_BARE,
                "max_vs_native": GOAL_MAX_VS_NATIVE,
            },
            "kernels": self.rows.iter().map(|r| json!({
                "name": r.name,
                "native_ms": r.median(NATIVE) * 1e3,
                "ms": WAYS.iter().enumerate().map(|(i, (label, _, _))| (label.to_string(), json!(r.median(i) * 1e3))).collect::<serde_json::Map<_, _>>(),
                "vs_native": r.ratio(SANDBOX, NATIVE),
                "vs_bare": r.ratio(SANDBOX, STOCK),
                "fuel_profile_1": r.fuel[0],
                "fuel_profile_2": r.fuel[1],
                "fuel_profile_3": r.fuel[2],
                "fuel_profile_4": r.fuel[3],
                "fuel": r.fuel[4],
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

/// A way's runner, ready for every kernel.
enum Runner {
    Native(Vec<std::path::PathBuf>),
    Bare(Baseline, Vec<sandbox::baseline::BaselineModule>),
    Sandbox(Vec<sandbox::Prepared>),
}

/// Runs the suite: `rounds` interleaved rounds (blocking; call it off the async workers).
pub(crate) fn run(rounds: usize) -> anyhow::Result<KernelsResult> {
    let dir = tempfile::tempdir().context("creating a temp dir for the native builds")?;
    eprintln!(
        "kernels: compiling {} kernels with gcc -O2 -ffp-contract=off",
        KERNELS.len()
    );
    let natives = compile_native(dir.path())?;
    eprintln!(
        "kernels: compiling the wasm builds for the sandbox and {} bare wasmtimes",
        WAYS.iter()
            .filter(|(_, _, how)| matches!(how, How::Bare(_)))
            .count()
    );
    // Profile 5's runs go to worker processes (`gridmint sandbox-worker`), the older profiles'
    // stay in-thread.
    let sandbox = Sandbox::new(SandboxConfig {
        worker: crate::sandbox_worker(),
        ..SandboxConfig::default()
    })?;
    let mut runners = Vec::new();
    for (_, _, how) in &WAYS {
        runners.push(match how {
            How::Native => Runner::Native(natives.clone()),
            How::Bare(settings) => {
                let bare = Baseline::with(*settings)?;
                let modules = KERNELS
                    .iter()
                    .map(|k| bare.compile(k.wasm))
                    .collect::<Result<Vec<_>, _>>()?;
                Runner::Bare(bare, modules)
            }
            How::Sandbox(profile) => Runner::Sandbox(
                KERNELS
                    .iter()
                    .map(|k| sandbox.prepare_for(k.wasm, *profile))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        });
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
            times: vec![Vec::new(); WAYS.len()],
            line: String::new(),
            fuel: [0; 5],
            bare_fuel: [None; 4],
        })
        .collect();
    for round in 1..=rounds {
        for (i, row) in rows.iter_mut().enumerate() {
            for (way, ((label, long, _), runner)) in WAYS.iter().zip(&runners).enumerate() {
                let start = Instant::now();
                let out = match runner {
                    Runner::Native(exes) => {
                        let out = Command::new(&exes[i])
                            .args(&scale)
                            .output()
                            .with_context(|| format!("running the native {}", row.name))?;
                        succeeded(&out, &format!("the native {}", row.name))?;
                        out.stdout
                    }
                    Runner::Bare(bare, modules) => {
                        let report = bare.run(&modules[i], &scale)?;
                        ensure!(
                            report.exit_code == 0,
                            "{} exited {} in {long}",
                            row.name,
                            report.exit_code
                        );
                        if let (How::Bare(settings), Some(fuel)) = (&WAYS[way].2, report.fuel) {
                            let slot = &mut row.bare_fuel[settings.nans as usize];
                            if slot.is_some_and(|before| before != fuel) {
                                bail!(
                                    "FUEL MISMATCH in {} ({label}): {fuel} where another metered \
                                     bare run counted {}",
                                    row.name,
                                    slot.unwrap_or(0)
                                );
                            }
                            *slot = Some(fuel);
                        }
                        report.stdout
                    }
                    Runner::Sandbox(prepared) => {
                        let report = sandbox.run(&prepared[i], &task)?;
                        ensure!(
                            report.outcome == Outcome::Exited(0),
                            "{} in {long}: {:?}; stderr: {}",
                            row.name,
                            report.outcome,
                            String::from_utf8_lossy(&report.stderr).trim()
                        );
                        let slot = &mut row.fuel[prepared[i].profile().number() as usize - 1];
                        if round > 1 && report.fuel_used != *slot {
                            bail!(
                                "FUEL MISMATCH in {} ({label}): {} in round {round}, {} before",
                                row.name,
                                report.fuel_used,
                                slot
                            );
                        }
                        *slot = report.fuel_used;
                        report.output
                    }
                };
                let took = start.elapsed();
                let line = String::from_utf8_lossy(&out).trim().to_string();
                if row.line.is_empty() {
                    row.line = line.clone();
                }
                if line != row.line {
                    bail!(
                        "OUTPUT MISMATCH in {}: the {long} run printed {line:?} where an earlier run printed {:?}",
                        row.name,
                        row.line
                    );
                }
                row.times[way].push(took);
            }
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
    fn the_indices_name_the_ways_the_goals_are_about() {
        assert!(matches!(WAYS[NATIVE].2, How::Native));
        assert!(matches!(WAYS[STOCK].2, How::Bare(s) if s == Settings::default()));
        assert!(matches!(WAYS[SANDBOX].2, How::Sandbox(p) if p == Profile::LATEST));
        assert!(matches!(
            WAYS[SANDBOX_P1].2,
            How::Sandbox(Profile::EveryFloat)
        ));
        assert!(matches!(
            WAYS[SANDBOX_P2].2,
            How::Sandbox(Profile::ObservedNans)
        ));
        assert!(matches!(
            WAYS[SANDBOX_P3].2,
            How::Sandbox(Profile::CountedLoops)
        ));
        assert!(matches!(
            WAYS[SANDBOX_P4].2,
            How::Sandbox(Profile::TrackedVectors)
        ));
        assert_eq!(SANDBOX, WAYS.len() - 1);
    }

    #[test]
    fn the_geometric_mean_of_ratios() {
        assert!((geomean([2.0, 8.0].into_iter()) - 4.0).abs() < 1e-12);
        assert!((geomean([1.5].into_iter()) - 1.5).abs() < 1e-12);
    }
}
