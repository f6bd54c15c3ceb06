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

use wasmtime::{Config, Engine, InstancePre, Linker, Module, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};

use crate::{Profile, STDERR_CAPTURE_BYTES, SandboxError};

/// Most stdout bytes a baseline run keeps (further writes fail).
const STDOUT_CAPTURE_BYTES: usize = 16 * 1024 * 1024;

/// A stock wasmtime engine plus a WASI p1 linker.
pub struct Baseline {
    engine: Engine,
    linker: Linker<WasiP1Ctx>,
    settings: Settings,
}

/// Which of the sandbox's code-generation settings a [`Baseline`] compiles with: each one alone
/// tells what it costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Settings {
    /// Fuel metering (wasmtime's `consume_fuel`).
    pub fuel: bool,
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
    /// The module rewritten to canonicalize where NaNs are observable
    /// ([`Profile::ObservedNans`]).
    Observed,
}

impl Settings {
    /// What the sandbox compiles `profile` with (fuel, no epoch checks, the profile's NaNs).
    pub const fn of(profile: Profile) -> Settings {
        Settings {
            fuel: true,
            epochs: false,
            nans: match profile {
                Profile::EveryFloat => Nans::EveryFloat,
                Profile::ObservedNans => Nans::Observed,
            },
        }
    }
}

/// A module compiled by a [`Baseline`] and pre-linked against WASI; cheap to clone.
#[derive(Clone)]
pub struct BaselineModule {
    pre: InstancePre<WasiP1Ctx>,
}

impl std::fmt::Debug for BaselineModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaselineModule").finish_non_exhaustive()
    }
}

/// What one baseline run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaselineReport {
    /// 0 when `_start` returned, `n` after `proc_exit(n)`.
    pub exit_code: i32,
    /// Everything the guest wrote to stdout (up to 16 MiB).
    pub stdout: Vec<u8>,
    /// Host time spent instantiating the module and running `_start`.
    pub elapsed: Duration,
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
            .consume_fuel(settings.fuel)
            .epoch_interruption(settings.epochs)
            .cranelift_nan_canonicalization(settings.nans == Nans::EveryFloat);
        Baseline::build(&config, settings)
    }

    fn build(config: &Config, settings: Settings) -> Result<Baseline, SandboxError> {
        let engine = Engine::new(config)
            .map_err(|e| SandboxError::Setup(format!("cannot create engine: {e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |ctx: &mut WasiP1Ctx| ctx)
            .map_err(|e| SandboxError::Setup(format!("cannot link wasi: {e:#}")))?;
        Ok(Baseline {
            engine,
            linker,
            settings,
        })
    }

    /// Compiles `wasm` (binary or text; rewritten first under [`Nans::Observed`]) and links it
    /// against WASI.
    pub fn compile(&self, wasm: &[u8]) -> Result<BaselineModule, SandboxError> {
        let invalid = |e: wasmtime::Error| SandboxError::InvalidModule(format!("{e:#}"));
        let module = match self.settings.nans {
            Nans::Observed => {
                let binary = wat::parse_bytes(wasm)
                    .map_err(|e| SandboxError::InvalidModule(format!("{e:#}")))?;
                Module::validate(&self.engine, &binary).map_err(invalid)?;
                let rewritten = crate::canon::canonicalize_observed_nans(&binary)
                    .map_err(SandboxError::InvalidModule)?;
                Module::new(&self.engine, &rewritten).map_err(invalid)?
            }
            _ => Module::new(&self.engine, wasm).map_err(invalid)?,
        };
        let pre = self.linker.instantiate_pre(&module).map_err(invalid)?;
        Ok(BaselineModule { pre })
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
        let stdout = MemoryOutputPipe::new(STDOUT_CAPTURE_BYTES);
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE_BYTES);
        let mut wasi = WasiCtxBuilder::new();
        wasi.allow_blocking_current_thread(true)
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .arg("task")
            .args(args);
        let mut store = Store::new(&self.engine, wasi.build_p1());
        // Checks compiled in, never triggered: no epoch ticker runs for a baseline engine.
        if self.settings.fuel {
            store
                .set_fuel(u64::MAX / 2)
                .map_err(|e| SandboxError::Setup(format!("cannot set fuel: {e:#}")))?;
        }
        if self.settings.epochs {
            store.set_epoch_deadline(u64::MAX / 2);
        }

        let started = Instant::now();
        let result = module
            .pre
            .instantiate(&mut store)
            .and_then(|instance| instance.get_typed_func::<(), ()>(&mut store, "_start"))
            .and_then(|start| start.call(&mut store, ()));
        let elapsed = started.elapsed();
        drop(store);

        let exit_code = match result {
            Ok(()) => 0,
            Err(e) => match e.downcast_ref::<I32Exit>() {
                Some(exit) => exit.0,
                None => {
                    return Err(SandboxError::Setup(format!(
                        "baseline guest failed: {e:#}; stderr: {}",
                        String::from_utf8_lossy(&stderr.contents())
                    )));
                }
            },
        };
        Ok(BaselineReport {
            exit_code,
            stdout: stdout.contents().to_vec(),
            elapsed,
        })
    }
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
