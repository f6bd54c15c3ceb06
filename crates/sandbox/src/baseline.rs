//! A "bare wasmtime" runner, for benchmarks only: the yardstick the [`Sandbox`]'s
//! overhead is measured against.
//!
//! [`Baseline`] runs a WASI preview-1 command module the way `wasmtime run` would with
//! stock settings: `Config::default()` (optimised Cranelift, no fuel, no epoch
//! interruption, no NaN canonicalization, the default on-demand allocator), a plain
//! WASI p1 context with the same `argv` as the sandbox (`["task", args..]`), nothing
//! inherited from the host, empty stdin, and stdout/stderr captured in memory. No
//! limits, no determinism, no containment beyond wasm's own: never run untrusted code
//! with it. It lives in this crate because only `sandbox` may depend on `wasmtime`.
//!
//! [`Sandbox`]: crate::Sandbox

use std::time::{Duration, Instant};

use wasmtime::{Caller, Config, Engine, InstancePre, Linker, Module, Store, Trap, Val};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};

use crate::meter::{FUEL_GLOBAL, IMPORT_MODULE, REFUEL};
use crate::{Profile, STDERR_CAPTURE_BYTES, SandboxError};

pub use crate::meter::MeterStats;

/// Most stdout bytes a baseline run keeps (further writes fail).
const STDOUT_CAPTURE_BYTES: usize = 16 * 1024 * 1024;

/// Fuel a baseline run starts with (no run comes near it).
const BASELINE_FUEL: u64 = u64::MAX / 2;

/// A stock wasmtime engine plus a WASI p1 linker.
pub struct Baseline {
    engine: Engine,
    linker: Linker<RunState>,
    settings: Settings,
}

/// A baseline store's data: WASI, and the fuel not yet handed to a rewritten module.
pub(crate) struct RunState {
    wasi: WasiP1Ctx,
    reserve: u64,
}

/// Which of the sandbox's code-generation settings a [`Baseline`] compiles with: each one alone
/// tells what it costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Settings {
    /// Fuel metering, and by what.
    pub fuel: Fuel,
    /// Epoch checks (wasmtime's `epoch_interruption`), never triggered here.
    pub epochs: bool,
    /// How NaNs are made canonical, if at all.
    pub nans: Nans,
}

/// NaN canonicalization, as the sandbox's profiles do it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Nans {
    /// None (stock wasmtime).
    #[default]
    Free,
    /// Cranelift's, after every float instruction ([`Profile::EveryFloat`]).
    EveryFloat,
    /// The module rewritten to canonicalize where NaNs are observable, float vectors at once
    /// ([`Profile::ObservedNans`]).
    Observed,
    /// [`Nans::Observed`], float vectors too only where observed ([`Profile::TrackedVectors`]).
    Tracked,
}

/// Who meters fuel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fuel {
    /// Nobody (stock wasmtime).
    #[default]
    Off,
    /// Wasmtime (`consume_fuel`), without yields.
    Wasmtime,
    /// Instructions the module is rewritten with (`meter`), refuelled in slices of
    /// [`crate::sandbox::YIELD_FUEL`] as the sandbox yields.
    Rewritten,
    /// [`Fuel::Rewritten`], with simple counted loops charged once on entry.
    Hoisted,
    /// [`Fuel::Hoisted`], but a check that finds the counter at zero traps instead of calling
    /// the host: all the fuel is one slice, no wall clock is looked at. Measures what a call at
    /// every check costs the code around it (all float registers are caller-saved), as a
    /// check calling a host function that preserved every register would run; not a way to run
    /// tasks.
    HoistedTrapping,
}

impl Settings {
    /// What the sandbox compiles `profile` with (its fuel metering and NaNs, no epoch checks).
    pub const fn of(profile: Profile) -> Settings {
        Settings {
            fuel: match profile {
                Profile::EveryFloat | Profile::ObservedNans => Fuel::Wasmtime,
                Profile::CountedLoops | Profile::TrackedVectors | Profile::GuestCharged => {
                    Fuel::Hoisted
                }
            },
            epochs: false,
            nans: match profile {
                Profile::EveryFloat => Nans::EveryFloat,
                Profile::ObservedNans | Profile::CountedLoops => Nans::Observed,
                Profile::TrackedVectors | Profile::GuestCharged => Nans::Tracked,
            },
        }
    }
}

/// A module compiled by a [`Baseline`] and pre-linked against WASI; cheap to clone.
#[derive(Clone)]
pub struct BaselineModule {
    pre: InstancePre<RunState>,
}

impl std::fmt::Debug for BaselineModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaselineModule").finish_non_exhaustive()
    }
}

/// What one baseline run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaselineReport {
    /// 0 when `_start` returned, `n` after `proc_exit(n)`, -1 after a trap.
    pub exit_code: i32,
    /// Everything the guest wrote to stdout (up to 16 MiB).
    pub stdout: Vec<u8>,
    /// Host time spent instantiating the module and running `_start`.
    pub elapsed: Duration,
    /// Fuel the run used, when it was metered.
    pub fuel: Option<u64>,
    /// The run stopped out of fuel (see [`Baseline::run_with_fuel`]).
    pub out_of_fuel: bool,
    /// The trap that stopped the run (out of fuel aside), under [`Baseline::run_with_fuel`].
    pub trap: Option<String>,
}

impl Baseline {
    /// A `Config::default()` engine and a WASI p1 linker.
    pub fn new() -> Result<Baseline, SandboxError> {
        Baseline::with(Settings::default())
    }

    /// Bare wasmtime with the code-generation settings the sandbox's guarantees need under
    /// [`Profile::LATEST`] — fuel metering and NaN canonicalization — but
    /// none of the sandbox's own machinery (limits, virtual clocks, work directory, outcome
    /// classification). Set side by side with [`Baseline::new`] and the sandbox, it separates the
    /// cost of determinism from the cost of the harness.
    pub fn with_sandbox_settings() -> Result<Baseline, SandboxError> {
        Baseline::with(Settings::of(Profile::LATEST))
    }

    /// Bare wasmtime with some of the sandbox's settings, to tell what each one costs.
    pub fn with(settings: Settings) -> Result<Baseline, SandboxError> {
        let mut config = Config::default();
        config
            .consume_fuel(settings.fuel == Fuel::Wasmtime)
            .epoch_interruption(settings.epochs)
            .cranelift_nan_canonicalization(settings.nans == Nans::EveryFloat);
        Baseline::build(&config, settings)
    }

    fn build(config: &Config, settings: Settings) -> Result<Baseline, SandboxError> {
        let engine = Engine::new(config)
            .map_err(|e| SandboxError::Setup(format!("cannot create engine: {e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut RunState| &mut s.wasi)
            .map_err(|e| SandboxError::Setup(format!("cannot link wasi: {e:#}")))?;
        linker
            .func_wrap(IMPORT_MODULE, REFUEL, refuel)
            .map_err(|e| SandboxError::Setup(format!("cannot link refuel: {e:#}")))?;
        Ok(Baseline {
            engine,
            linker,
            settings,
        })
    }

    /// Compiles `wasm` (binary or text; rewritten first under [`Nans::Observed`], then under
    /// [`Fuel::Rewritten`] or [`Fuel::Hoisted`]) and links it against WASI.
    pub fn compile(&self, wasm: &[u8]) -> Result<BaselineModule, SandboxError> {
        self.compile_counting(wasm).map(|(module, _)| module)
    }

    /// [`Baseline::compile`], with how many loops the fuel rewrite charged once and how many
    /// it metered (zero without a rewrite).
    pub fn compile_counting(
        &self,
        wasm: &[u8],
    ) -> Result<(BaselineModule, MeterStats), SandboxError> {
        let invalid = |e: wasmtime::Error| SandboxError::InvalidModule(format!("{e:#}"));
        let mut binary =
            wat::parse_bytes(wasm).map_err(|e| SandboxError::InvalidModule(format!("{e:#}")))?;
        let vectors = match self.settings.nans {
            Nans::Free | Nans::EveryFloat => None,
            Nans::Observed => Some(crate::canon::Vectors::AtOnce),
            Nans::Tracked => Some(crate::canon::Vectors::WhereObserved),
        };
        if vectors.is_some() || self.settings.fuel.rewrites() {
            Module::validate(&self.engine, &binary).map_err(invalid)?;
        }
        if let Some(vectors) = vectors {
            binary = crate::canon::canonicalize_observed_nans(&binary, vectors)
                .map_err(SandboxError::InvalidModule)?
                .into();
        }
        let mut stats = MeterStats::default();
        if self.settings.fuel.rewrites() {
            let (metered, counted) = crate::meter::meter_with(
                &binary,
                self.settings.fuel != Fuel::Rewritten,
                self.settings.fuel != Fuel::HoistedTrapping,
                false,
            )
            .map_err(SandboxError::InvalidModule)?;
            binary = metered.into();
            stats = counted;
        }
        let module = Module::new(&self.engine, &binary).map_err(invalid)?;
        let pre = self.linker.instantiate_pre(&module).map_err(invalid)?;
        Ok((BaselineModule { pre }, stats))
    }

    /// Instantiates `module` in a fresh store and runs `_start` with `argv = ["task",
    /// args..]`. A guest trap is reported as [`SandboxError::Setup`] (the baseline has
    /// no outcome classification; a benchmark guest is expected to exit cleanly).
    ///
    /// Blocking: call it from a plain thread or `spawn_blocking`, not on an async task.
    pub fn run(
        &self,
        module: &BaselineModule,
        args: &[String],
    ) -> Result<BaselineReport, SandboxError> {
        let report = self.run_with_fuel(module, args, BASELINE_FUEL)?;
        match &report.trap {
            Some(trap) => Err(SandboxError::Setup(format!(
                "baseline guest failed: {trap}"
            ))),
            None => Ok(report),
        }
    }

    /// [`Baseline::run`] with `limit` fuel when metered; running out of it is a report with
    /// `out_of_fuel` (and `fuel` the limit), not an error.
    pub fn run_with_fuel(
        &self,
        module: &BaselineModule,
        args: &[String],
        limit: u64,
    ) -> Result<BaselineReport, SandboxError> {
        let stdout = MemoryOutputPipe::new(STDOUT_CAPTURE_BYTES);
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE_BYTES);
        let mut wasi = WasiCtxBuilder::new();
        wasi.allow_blocking_current_thread(true)
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .arg("task")
            .args(args);
        let state = RunState {
            wasi: wasi.build_p1(),
            reserve: 0,
        };
        let mut store = Store::new(&self.engine, state);
        // Checks compiled in, never triggered: no epoch ticker runs for a baseline engine.
        // Instantiation (data segments, global initializers) is charged by wasmtime and not by
        // the rewrite: the limit and the count are for `_start` alone.
        if self.settings.fuel == Fuel::Wasmtime {
            store
                .set_fuel(BASELINE_FUEL)
                .map_err(|e| SandboxError::Setup(format!("cannot set fuel: {e:#}")))?;
        }
        if self.settings.epochs {
            store.set_epoch_deadline(u64::MAX / 2);
        }

        let started = Instant::now();
        let mut counter = None;
        let result = module.pre.instantiate(&mut store).and_then(|instance| {
            if self.settings.fuel == Fuel::Wasmtime {
                store.set_fuel(limit)?;
            }
            if self.settings.fuel.rewrites() {
                let global = instance
                    .get_global(&mut store, FUEL_GLOBAL)
                    .ok_or_else(|| wasmtime::format_err!("no fuel counter"))?;
                let slice = match self.settings.fuel {
                    Fuel::HoistedTrapping => limit.min(i64::MAX as u64),
                    _ => limit.min(crate::sandbox::YIELD_FUEL),
                };
                store.data_mut().reserve = limit - slice;
                global.set(&mut store, Val::I64(-(slice as i64)))?;
                counter = Some(global);
            }
            let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
            start.call(&mut store, ())
        });
        let elapsed = started.elapsed();
        let fuel = match (self.settings.fuel, counter) {
            (Fuel::Off, _) => None,
            (Fuel::Wasmtime, _) => store.get_fuel().ok().map(|left| limit - left),
            (_, Some(global)) => {
                let injected = global.get(&mut store).i64().unwrap_or(0);
                let left = store.data().reserve.saturating_add_signed(-injected);
                Some(limit.saturating_sub(left))
            }
            (_, None) => None,
        };
        drop(store);

        let mut out_of_fuel = false;
        let mut trap = None;
        let exit_code = match result {
            Ok(()) => 0,
            Err(e) => match e.downcast_ref::<I32Exit>() {
                Some(exit) => exit.0,
                None if e.downcast_ref::<Trap>() == Some(&Trap::OutOfFuel) => {
                    out_of_fuel = true;
                    -1
                }
                None => {
                    trap = Some(format!(
                        "{e:#}; stderr: {}",
                        String::from_utf8_lossy(&stderr.contents())
                    ));
                    -1
                }
            },
        };
        Ok(BaselineReport {
            exit_code,
            stdout: stdout.contents().to_vec(),
            elapsed,
            fuel,
            out_of_fuel,
            trap,
        })
    }
}

impl Fuel {
    /// Whether the module is rewritten to meter itself.
    fn rewrites(self) -> bool {
        matches!(
            self,
            Fuel::Rewritten | Fuel::Hoisted | Fuel::HoistedTrapping
        )
    }
}

/// The rewritten module's `gridmint.refuel` (wasmtime's `out_of_gas`): the next slice from the
/// reserve, or out of fuel.
fn refuel(mut caller: Caller<'_, RunState>) -> wasmtime::Result<()> {
    let global = caller
        .get_export(FUEL_GLOBAL)
        .and_then(|e| e.into_global())
        .ok_or_else(|| wasmtime::format_err!("no fuel counter"))?;
    let injected = global.get(&mut caller).i64().unwrap_or(0);
    let left = caller.data().reserve.saturating_add_signed(-injected);
    if left == 0 {
        return Err(Trap::OutOfFuel.into());
    }
    let slice = left.min(crate::sandbox::YIELD_FUEL);
    caller.data_mut().reserve = left - slice;
    global.set(&mut caller, Val::I64(-(slice as i64)))
}

impl std::fmt::Debug for Baseline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Baseline").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_a_wasi_command_and_captures_stdout() {
        let wat = r#"(module
            (import "wasi_snapshot_preview1" "fd_write"
                (func $fd_write (param i32 i32 i32 i32) (result i32)))
            (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
            (memory (export "memory") 1)
            (data (i32.const 16) "hi\n")
            (func (export "_start")
                (i32.store (i32.const 0) (i32.const 16))
                (i32.store (i32.const 4) (i32.const 3))
                (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
                (call $exit (i32.const 7))))"#;
        let baseline = Baseline::new().unwrap();
        let module = baseline.compile(wat.as_bytes()).unwrap();
        let report = baseline.run(&module, &[]).unwrap();
        assert_eq!(report.exit_code, 7);
        assert_eq!(report.stdout, b"hi\n");
    }
}

/// The fuel rewrite ([`Fuel::Rewritten`], [`Fuel::Hoisted`]) against wasmtime's metering.
#[cfg(test)]
mod meter_tests {
    use super::*;

    /// Loops of every shape the hoisting looks at, and the exits and operators metering must
    /// see: counted loops up and down, to a constant and to a local, with a step that never
    /// lands on the bound (runs until fuel stops it), too long to fit a slice, nested, with a
    /// call and a return inside, a branch out of the function, bulk memory, `memory.grow`, a
    /// trap in the middle of a counted loop (`trap` argument).
    const LOOPS: &str = r#"(module
        (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
        (import "wasi_snapshot_preview1" "args_sizes_get"
            (func $args (param i32 i32) (result i32)))
        (memory (export "memory") 1)
        (global $acc (mut i32) (i32.const 0))
        (table 2 funcref)
        (elem (i32.const 0) $add $up)
        (func $add (param i32) (global.set $acc (i32.add (global.get $acc) (local.get 0))))
        ;; sum of i*i for i in [from, to), step 1, to a local bound
        (func $up (param $from i32) (param $to i32) (local $i i32) (local $s i32)
            (local.set $i (local.get $from))
            (loop $l
                (local.set $s (i32.add (local.get $s) (i32.mul (local.get $i) (local.get $i))))
                (br_if $l (i32.ne (local.tee $i (i32.add (local.get $i) (i32.const 1)))
                                  (local.get $to))))
            (call $add (local.get $s)))
        ;; the bound pushed before the increment, which adds the step to the local
        (func $before (param $to i32) (local $i i32) (local $s i32)
            (loop $l
                (local.set $s (i32.xor (local.get $s) (i32.mul (local.get $i) (i32.const 7))))
                (br_if $l (i32.ne (local.get $to)
                                  (local.tee $i (i32.add (i32.const 2) (local.get $i))))))
            (call $add (local.get $s)))
        ;; a counted loop whose body branches: an if/else, a block left early
        (func $branchy (param $n i32) (local $i i32) (local $s i32)
            (loop $l
                (if (i32.and (local.get $i) (i32.const 1))
                    (then (local.set $s (i32.add (local.get $s) (local.get $i))))
                    (else (local.set $s (i32.xor (local.get $s) (i32.const 5)))))
                (block $skip
                    (br_if $skip (i32.gt_u (local.get $i) (i32.const 500)))
                    (local.set $s (i32.mul (local.get $s) (i32.const 3))))
                (br_if $l (i32.ne (local.tee $i (i32.add (local.get $i) (i32.const 1)))
                                  (local.get $n))))
            (call $add (local.get $s)))
        ;; a branch back to the loop from inside a block skips the increment: not counted
        (func $skips (param $n i32) (local $i i32) (local $s i32)
            (loop $l
                (local.set $s (i32.add (local.get $s) (i32.const 1)))
                (block (br_if $l (i32.lt_u (local.get $s) (i32.const 10))))
                (br_if $l (i32.ne (local.tee $i (i32.add (local.get $i) (i32.const 1)))
                                  (local.get $n))))
            (call $add (local.get $s)))
        ;; a step of 3 from 1 never lands on 1001 (not until the induction wraps around, after
        ;; over a billion iterations): runs until fuel stops it
        (func $never (local $i i32) (local $s i32)
            (local.set $i (i32.const 1))
            (loop $l
                (local.set $s (i32.add (local.get $s) (local.get $i)))
                (br_if $l (i32.ne (local.tee $i (i32.add (local.get $i) (i32.const 3)))
                                  (i32.const 1001))))
            (call $add (local.get $s)))
        ;; count down to zero by 1 (the tee is the test)
        (func $down (param $n i32) (local $s i32)
            (loop $l
                (local.set $s (i32.xor (local.get $s) (local.get $n)))
                (br_if $l (local.tee $n (i32.add (local.get $n) (i32.const -1)))))
            (call $add (local.get $s)))
        ;; a store every 16 bytes up to a constant, then a trap when `bad` points out of memory
        (func $stores (param $bad i32) (local $i i32)
            (loop $l
                (i32.store (i32.add (local.get $i) (local.get $bad)) (local.get $i))
                (br_if $l (i32.ne (local.tee $i (i32.add (local.get $i) (i32.const 16)))
                                  (i32.const 4096)))))
        ;; nested: the inner loop counted, the outer one not (its bound is written inside)
        (func $nested (param $n i32) (local $i i32) (local $j i32) (local $s i32)
            (local.set $i (i32.const 1))
            (loop $outer
                (local.set $j (i32.const 0))
                (loop $inner
                    (local.set $s (i32.add (local.get $s) (local.get $j)))
                    (br_if $inner (i32.ne (local.tee $j (i32.add (local.get $j) (i32.const 1)))
                                          (local.get $i))))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br_if $outer (i32.lt_u (local.get $i) (local.get $n))))
            (call $add (local.get $s)))
        ;; a call and an early return inside a loop, a branch out of the function, bulk ops
        (func $misc (param $n i32) (local $i i32)
            (block $out
                (loop $l
                    (call_indirect (param i32) (local.get $i) (i32.const 0))
                    (if (i32.eq (local.get $i) (i32.const 1000)) (then (return)))
                    (br_if $out (i32.eq (local.get $i) (local.get $n)))
                    (local.set $i (i32.add (local.get $i) (i32.const 1)))
                    (br $l)))
            (memory.fill (i32.const 100) (local.get $n) (local.get $n))
            (memory.copy (i32.const 2000) (i32.const 100) (local.get $n))
            (drop (memory.grow (i32.const 1)))
            (call $add (i32.load (i32.const 2000)))
            (br_table 0 0 (local.get $n)))
        (func (export "_start") (local $argc i32)
            (drop (call $args (i32.const 0) (i32.const 4)))
            (local.set $argc (i32.load (i32.const 0)))
            (if (i32.eq (local.get $argc) (i32.const 3))
                (then (call $never) (call $exit (i32.const 99))))
            (call $up (i32.const 3) (i32.const 1000))
            (call $up (i32.const 7) (i32.const 3000000))
            (call $down (i32.const 777))
            (call $before (i32.const 2000))
            (call $branchy (i32.const 1000))
            (call $skips (i32.const 100))
            (call $nested (i32.const 60))
            (call $misc (i32.const 50))
            (call $misc (i32.const 5000))
            (call $stores (i32.const 0))
            (if (i32.eq (local.get $argc) (i32.const 2))
                (then (call $stores (i32.const 194608))))

            (call $exit (i32.and (global.get $acc) (i32.const 63)))))"#;

    fn baselines() -> Vec<(Fuel, Baseline)> {
        [Fuel::Wasmtime, Fuel::Rewritten, Fuel::Hoisted]
            .into_iter()
            .map(|fuel| {
                let settings = Settings {
                    fuel,
                    ..Settings::default()
                };
                (fuel, Baseline::with(settings).unwrap())
            })
            .collect()
    }

    /// What a run showed: exit code, stdout, fuel, out of fuel, trapped.
    type Seen = (i32, Vec<u8>, Option<u64>, bool, bool);

    fn seen(report: &BaselineReport) -> Seen {
        (
            report.exit_code,
            report.stdout.clone(),
            report.fuel,
            report.out_of_fuel,
            report.trap.is_some(),
        )
    }

    /// Runs `wasm` with `args` and `limit` under each metering; all must agree.
    fn agree(wasm: &[u8], args: &[&str], limit: u64) -> Seen {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let mut first: Option<Seen> = None;
        for (fuel, baseline) in baselines() {
            let module = baseline.compile(wasm).unwrap();
            let report = baseline.run_with_fuel(&module, &args, limit).unwrap();
            if let Some(trap) = &report.trap {
                eprintln!("{fuel:?}: {trap}");
            }
            let now = seen(&report);
            match &first {
                None => first = Some(now),
                Some(expected) => assert_eq!(
                    &now, expected,
                    "{fuel:?} disagrees with wasmtime's metering (args {args:?}, limit {limit})"
                ),
            }
        }
        first.unwrap()
    }

    #[test]
    fn the_rewrite_counts_what_wasmtime_counts() {
        let (code, _, fuel, out, trapped) = agree(LOOPS.as_bytes(), &[], u64::MAX / 2);
        assert!(!out && !trapped, "the full run completes");
        let fuel = fuel.unwrap();
        assert!(fuel > 10_000_000, "{fuel}");
        assert_ne!(code, -1);
        // A trap inside a counted loop, and a loop that runs until fuel stops it.
        let (_, _, _, _, trapped) = agree(LOOPS.as_bytes(), &["a"], u64::MAX / 2);
        assert!(trapped);
        let (_, _, stopped, out, _) = agree(LOOPS.as_bytes(), &["a", "b"], 30_000_000);
        assert!(out);
        assert_eq!(stopped, Some(30_000_000));
    }

    /// Out of fuel at the same point, whatever the limit: every run stops (or completes) where
    /// wasmtime's metering stops it.
    #[test]
    fn out_of_fuel_stops_where_wasmtime_stops() {
        let full = agree(LOOPS.as_bytes(), &[], u64::MAX / 2).2.unwrap();
        let mut stops = 0;
        for limit in [
            0,
            1,
            7,
            100,
            4_000,
            999_999,
            1_000_000,
            1_000_001,
            full / 3,
            full / 2,
            full - 1,
            full,
            full + 1,
        ] {
            let (_, _, fuel, out, _) = agree(LOOPS.as_bytes(), &[], limit);
            if out {
                stops += 1;
                assert_eq!(fuel, Some(limit));
            } else {
                // Past the last check a run finishes even beyond its limit (wasmtime's too).
                assert_eq!(fuel, Some(full.min(limit)));
            }
        }
        assert!(stops >= 9, "{stops}");
    }

    #[test]
    fn counted_loops_are_hoisted_and_others_are_not() {
        let hoisted = Baseline::with(Settings {
            fuel: Fuel::Hoisted,
            ..Settings::default()
        })
        .unwrap();
        let (_, stats) = hoisted.compile_counting(LOOPS.as_bytes()).unwrap();
        // $up, $down, $before, $branchy, $never, $stores, $nested's inner loop; not $nested's
        // outer loop, $skips's nor $misc's.
        assert_eq!(stats.hoisted, 7, "{stats:?}");
        assert_eq!(stats.metered, 3, "{stats:?}");
    }

    /// Every limit from zero to a run's whole fuel, over small loops of each hoisted kind
    /// (nested branches included): each metering stops at the same point with the same fuel.
    #[test]
    fn every_limit_stops_alike_in_small_loops() {
        // A byte written after each inner loop shows where a run stopped.
        let wasm = r#"(module
            (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
            (import "wasi_snapshot_preview1" "fd_write"
                (func $write (param i32 i32 i32 i32) (result i32)))
            (memory (export "memory") 1)
            (data (i32.const 0) "\10\00\00\00\01\00\00\00")
            (data (i32.const 16) "x")
            (func (export "_start") (local $i i32) (local $j i32) (local $s i32)
                (loop $outer
                    (local.set $i (i32.const 0))
                    (loop $l
                        (if (i32.and (local.get $i) (i32.const 1))
                            (then (local.set $s (i32.add (local.get $s) (local.get $i))))
                            (else (local.set $s (i32.xor (local.get $s) (i32.const 5)))))
                        (block $skip
                            (br_if $skip (i32.gt_u (local.get $i) (local.get $j)))
                            (i32.store (i32.const 64) (local.get $s)))
                        (br_if $l (i32.ne (local.tee $i (i32.add (local.get $i) (i32.const 1)))
                                          (i32.const 40))))
                    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
                    (loop $m
                        (local.set $s (i32.add (local.get $s) (local.get $i)))
                        (br_if $m (local.tee $i (i32.add (local.get $i) (i32.const -1)))))
                    (br_if $outer (i32.ne (local.tee $j (i32.add (local.get $j) (i32.const 3)))
                                          (i32.const 60))))
                (call $exit (i32.and (local.get $s) (i32.const 63)))))"#;
        let compiled: Vec<(Fuel, Baseline, BaselineModule)> = baselines()
            .into_iter()
            .map(|(fuel, baseline)| {
                let module = baseline.compile(wasm.as_bytes()).unwrap();
                (fuel, baseline, module)
            })
            .collect();
        let run = |limit| -> Vec<Seen> {
            compiled
                .iter()
                .map(|(_, b, m)| seen(&b.run_with_fuel(m, &[], limit).unwrap()))
                .collect()
        };
        let full = run(u64::MAX / 2)[0].2.unwrap();
        assert!(full > 5_000, "{full}");
        let mut stops = 0;
        for limit in 0..=full + 2 {
            let all = run(limit);
            assert!(
                all.iter().all(|s| *s == all[0]),
                "limit {limit}: {:?}",
                compiled.iter().map(|c| c.0).zip(&all).collect::<Vec<_>>()
            );
            stops += usize::from(all[0].3);
        }
        assert!(stops > 1_000, "{stops}");
    }

    /// Bulk operations on a 64-bit memory are charged per byte like on a 32-bit one.
    #[test]
    fn bulk_operations_on_64_bit_memories_are_charged_alike() {
        let wasm = r#"(module
            (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
            (memory $m (export "memory") i64 2)
            (memory $n 1)
            (func (export "_start") (local $i i64)
                (loop $l
                    (memory.fill $m (i64.const 8) (i32.const 7) (local.get $i))
                    (memory.copy $m $m (i64.const 70000) (i64.const 8) (local.get $i))
                    (memory.copy $n $m (i32.const 100) (i64.const 8) (i32.const 99))
                    (br_if $l (i64.lt_u (local.tee $i (i64.add (local.get $i) (i64.const 997)))
                                        (i64.const 60000))))
                (call $exit (i32.load8_u $n (i32.const 150)))))"#;
        let (code, _, fuel, out, trapped) = agree(wasm.as_bytes(), &[], u64::MAX / 2);
        assert_eq!((code, out, trapped), (7, false, false));
        assert!(fuel.unwrap() > 3_000_000, "{fuel:?}");
        let (_, _, _, out, _) = agree(wasm.as_bytes(), &[], 1_000_000);
        assert!(out);
    }

    /// An exception caught in a loop neither loses the fuel its thrower used nor lets the
    /// loop run past its limit.
    #[test]
    fn caught_exceptions_keep_their_fuel() {
        let wasm = r#"(module
            (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
            (memory (export "memory") 1)
            (tag $e (param i32))
            (func $burn (param $n i32) (local $i i32)
                (loop $l
                    (br_if $l (i32.ne (local.tee $i (i32.add (local.get $i) (i32.const 1)))
                                      (local.get $n))))
                (throw $e (local.get $i)))
            (func (export "_start") (param) (local $k i32) (local $s i32)
                (loop $again
                    (block $caught (result i32)
                        (try_table (catch $e $caught) (call $burn (i32.const 1000)))
                        (i32.const 0))
                    (local.set $s (i32.add (local.get $s)))
                    (br_if $again (i32.ne (local.tee $k (i32.add (local.get $k) (i32.const 1)))
                                          (i32.const 3000))))
                (call $exit (i32.and (local.get $s) (i32.const 63)))))"#;
        let (code, _, fuel, out, trapped) = agree(wasm.as_bytes(), &[], u64::MAX / 2);
        assert_eq!((code, out, trapped), (3_000_000 & 63, false, false));
        assert!(fuel.unwrap() > 3_000_000 * 5, "{fuel:?}");
        let (_, _, _, out, _) = agree(wasm.as_bytes(), &[], 2_000_000);
        assert!(out);
    }

    /// Checks that trap instead of calling refuel count the same fuel where no check fires.
    #[test]
    fn trapping_checks_count_alike() {
        let (_, wasmtime) = &baselines()[0];
        let trapping = Baseline::with(Settings {
            fuel: Fuel::HoistedTrapping,
            ..Settings::default()
        })
        .unwrap();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guests");
        let wasm = std::fs::read(root.join("pi.wasm")).unwrap();
        let args = ["200000".to_string(), "7".to_string()];
        let a = wasmtime
            .run(&wasmtime.compile(&wasm).unwrap(), &args)
            .unwrap();
        let b = trapping
            .run(&trapping.compile(&wasm).unwrap(), &args)
            .unwrap();
        assert_eq!((a.stdout, a.fuel), (b.stdout, b.fuel));
        let c = trapping
            .run_with_fuel(&trapping.compile(LOOPS.as_bytes()).unwrap(), &[], 1_000)
            .unwrap();
        assert!(
            c.trap.as_ref().is_some_and(|t| t.contains("unreachable")),
            "{c:?}"
        );
    }

    /// The C guests, as a network would run them: same output and fuel under each metering.
    #[test]
    fn c_guests_agree_under_each_metering() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guests");
        for (guest, args) in [
            ("pi.wasm", vec!["200000", "7"]),
            ("mandel.wasm", vec!["48", "32", "0", "0", "48", "32"]),
            ("bench.wasm", vec!["20000"]),
        ] {
            let wasm = std::fs::read(root.join(guest)).unwrap();
            let (code, stdout, fuel, out, trapped) = agree(&wasm, &args, u64::MAX / 2);
            assert!(!out && !trapped && code == 0, "{guest}");
            assert!(!stdout.is_empty() && fuel.unwrap() > 100_000, "{guest}");
            // And out of fuel half way, at the same point.
            let (_, _, _, out, _) = agree(&wasm, &args, fuel.unwrap() / 2);
            assert!(out, "{guest}");
        }
    }
}
