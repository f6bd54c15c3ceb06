//! Guests in worker processes ([`sandbox::SandboxConfig::worker`], profile 5): the same outputs,
//! fuel and outcomes as in-thread runs (out of fuel at every limit included), wasmtime's own fuel
//! plus [`HOSTCALL_FUEL`] per host call whatever the host's slices (libcalls are not host
//! calls), the wall limit and the gate enforced from outside with signals, a worker that dies
//! is the host's failure and the next run gets a new one.

use super::{
    cat, entropy, guest, hello, host_calls, host_file, repo_guest, spin, task, write_file,
};
use sandbox::baseline::{Baseline, Fuel, Nans, Settings};
use sandbox::{
    Gate, HOSTCALL_FUEL, Outcome, OutputSource, Prepared, Profile, RunReport, Sandbox,
    SandboxConfig, SandboxError, TaskRun, WorkerCommand,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn command() -> WorkerCommand {
    WorkerCommand {
        program: env!("CARGO_BIN_EXE_sandbox-worker").into(),
        args: Vec::new(),
    }
}

fn with_workers(gate: Option<Arc<Gate>>) -> Sandbox {
    Sandbox::new(SandboxConfig {
        worker: Some(command()),
        gate,
        ..SandboxConfig::default()
    })
    .expect("sandbox")
}

/// What must agree between an in-thread run and a worker's (wall time aside).
fn seen(report: &RunReport) -> (Outcome, Vec<u8>, u64, Vec<u8>) {
    (
        report.outcome.clone(),
        report.output.clone(),
        report.fuel_used,
        report.stderr.clone(),
    )
}

fn both(
    thread: &Sandbox,
    workers: &Sandbox,
    wasm: &[u8],
    profile: Profile,
    run: &TaskRun,
) -> (RunReport, RunReport) {
    let here = thread.prepare_for(wasm, profile).expect("prepare");
    let there = workers.prepare_for(wasm, profile).expect("prepare");
    let a = thread.run(&here, run).expect("in-thread run");
    let b = workers.run(&there, run).expect("worker run");
    (a, b)
}

#[test]
fn workers_give_the_outputs_fuel_and_outcomes_of_in_thread_runs() {
    let thread = Sandbox::new(SandboxConfig::default()).unwrap();
    let workers = with_workers(None);
    let host = tempfile::tempdir().unwrap();
    let input = host_file(host.path(), "in.txt", b"some input\n");
    let mut cases: Vec<(&str, Vec<u8>, TaskRun)> = vec![
        ("hello", hello(), task()),
        (
            "cat",
            cat(),
            TaskRun {
                args: vec!["in.txt".into()],
                inputs: vec![("in.txt".into(), input)],
                ..task()
            },
        ),
        (
            "write file",
            write_file(),
            TaskRun {
                args: vec!["out.txt".into(), "written".into()],
                output: OutputSource::File("out.txt".into()),
                ..task()
            },
        ),
        ("entropy", entropy(), TaskRun { seed: 7, ..task() }),
        ("host calls", host_calls(500), task()),
        (
            "trap",
            guest(r#"(func (export "_start") unreachable)"#),
            task(),
        ),
        (
            "exit 3",
            guest(r#"(func (export "_start") (call $proc_exit (i32.const 3)))"#),
            task(),
        ),
    ];
    for (name, args) in [
        ("bench.wasm", vec!["200000"]),
        ("pi.wasm", vec!["20000", "7"]),
        ("mandel.wasm", vec![]),
        ("kernels/gemm.wasm", vec![]),
        ("kernels/nbody.wasm", vec![]),
        ("kernels/parse.wasm", vec![]),
    ] {
        let wasm = repo_guest(name).unwrap_or_else(|| panic!("guests/{name} is committed"));
        let run = TaskRun {
            args: args.into_iter().map(String::from).collect(),
            fuel_limit: 200_000_000_000,
            memory_limit_bytes: 512 << 20,
            wall_limit: Duration::from_secs(120),
            ..TaskRun::default()
        };
        cases.push((name, wasm, run));
    }
    for (name, wasm, run) in &cases {
        let (a, b) = both(&thread, &workers, wasm, Profile::LATEST, run);
        assert_eq!(seen(&a), seen(&b), "{name}");
        assert_eq!(a.output_hash, b.output_hash, "{name}");
    }
    assert_eq!(workers.idle_workers(), 1, "one run at a time: one worker");
}

/// Wasmtime's own fuel for `_start` (without host-call charges), under profile 5's NaN rewrite.
fn wasmtime_fuel(wasm: &[u8], args: &[&str]) -> u64 {
    let baseline = Baseline::with(Settings {
        fuel: Fuel::Wasmtime,
        epochs: false,
        nans: Nans::Tracked,
    })
    .unwrap();
    let module = baseline.compile(wasm).unwrap();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    baseline.run(&module, &args).unwrap().fuel.expect("metered")
}

#[test]
fn under_profile_5_fuel_is_wasmtimes_plus_each_host_call_whatever_the_slices() {
    // A loop of libcalls (memory.grow, memory.fill, memory.copy) and host calls, some through a
    // table: under profiles 3 and 4 the host charged the libcalls as host calls, against a
    // counter the module had not stored, so the count depended on where slices ended.
    let wasm = guest(
        r#"(type $sizes (func (param i32 i32) (result i32)))
           (table 2 funcref)
           (elem (i32.const 0) $args_sizes_get $noop)
           (func $noop (param i32 i32) (result i32)
             (drop (memory.grow (i32.const 0)))
             (i32.const 0))
           (func (export "_start") (local $i i32)
             (loop $l
               (drop (memory.grow (i32.const 0)))
               (memory.fill (i32.const 0x3000) (local.get $i) (i32.const 64))
               (memory.copy (i32.const 0x3100) (i32.const 0x3000) (i32.const 32))
               (drop (call $args_sizes_get (i32.const 0x110) (i32.const 0x114)))
               (drop (call_indirect (type $sizes) (i32.const 0x110) (i32.const 0x114)
                 (i32.and (local.get $i) (i32.const 1))))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $l (i32.lt_u (local.get $i) (i32.const 3000)))))"#,
    );
    // 3,000 direct host calls and 1,500 through the table.
    let expected = wasmtime_fuel(&wasm, &[]) + 4500 * HOSTCALL_FUEL;
    let thread = Sandbox::new(SandboxConfig::default()).unwrap();
    let workers = with_workers(None);
    let (a, b) = both(&thread, &workers, &wasm, Profile::LATEST, &task());
    assert_eq!(
        (a.outcome.clone(), a.fuel_used),
        (Outcome::Exited(0), expected)
    );
    assert_eq!(seen(&a), seen(&b));
    for limit in [
        1,
        999,
        1000,
        1001,
        5000,
        expected / 7,
        expected / 2,
        expected - 1,
    ] {
        let run = TaskRun {
            fuel_limit: limit,
            ..task()
        };
        let (a, b) = both(&thread, &workers, &wasm, Profile::LATEST, &run);
        assert_eq!(seen(&a), seen(&b), "limit {limit}");
        assert_eq!(a.fuel_used, limit);
        if limit <= expected / 2 {
            assert_eq!(a.outcome, Outcome::OutOfFuel, "limit {limit}");
        }
    }
    // Profile 4 counted the libcalls, and that count is kept for the networks that run it.
    let four = thread.prepare_for(&wasm, Profile::TrackedVectors).unwrap();
    let four = thread.run(&four, &task()).unwrap();
    assert!(
        four.fuel_used > expected,
        "{} against {expected}",
        four.fuel_used
    );
}

#[test]
fn the_kernels_count_wasmtimes_fuel_in_thread_and_in_workers() {
    let thread = Sandbox::new(SandboxConfig::default()).unwrap();
    let workers = with_workers(None);
    // Each prints its result once (`fd_write`), after `args_sizes_get` and `args_get`, and
    // exits (`proc_exit`)...
    for name in ["kernels/parse.wasm", "kernels/lu.wasm"] {
        let wasm = repo_guest(name).unwrap_or_else(|| panic!("guests/{name} is committed"));
        let run = TaskRun {
            fuel_limit: 200_000_000_000,
            memory_limit_bytes: 512 << 20,
            wall_limit: Duration::from_secs(120),
            ..TaskRun::default()
        };
        let (a, b) = both(&thread, &workers, &wasm, Profile::LATEST, &run);
        assert_eq!(seen(&a), seen(&b), "{name}");
        let own = wasmtime_fuel(&wasm, &[]);
        let calls = (a.fuel_used - own) / HOSTCALL_FUEL;
        assert_eq!(a.fuel_used, own + calls * HOSTCALL_FUEL, "{name}");
        assert!((3..=8).contains(&calls), "{name}: {calls} host calls");
    }
}

#[test]
fn a_worker_runs_out_of_fuel_where_an_in_thread_run_does() {
    let thread = Sandbox::new(SandboxConfig::default()).unwrap();
    let workers = with_workers(None);
    let bench = repo_guest("bench.wasm").expect("guests/bench.wasm is committed");
    let base = TaskRun {
        args: vec!["20000".into()],
        ..task()
    };
    let (full, _) = both(&thread, &workers, &bench, Profile::LATEST, &base);
    assert_eq!(full.outcome, Outcome::Exited(0));
    // Limits past the last check leave the run to finish (overdrawn, `fuel_used` the limit).
    let f = full.fuel_used;
    // Limits around the whole run, in the middle of its loops, near its first instructions, and
    // at the host calls (each costs `HOSTCALL_FUEL`).
    let mut limits = vec![
        1,
        2,
        7,
        100,
        999,
        1000,
        1001,
        5000,
        f / 3,
        f / 2 + 1,
        f - 1,
        f,
        f + 1,
    ];
    limits.extend((1..40).map(|i| f * i / 40 + i));
    for limit in limits {
        let run = TaskRun {
            fuel_limit: limit,
            ..base.clone()
        };
        let (a, b) = both(&thread, &workers, &bench, Profile::LATEST, &run);
        assert_eq!(seen(&a), seen(&b), "fuel limit {limit} of {f}");
        if limit < f / 2 {
            assert_eq!(b.outcome, Outcome::OutOfFuel, "fuel limit {limit} of {f}");
        }
    }
    // A loop with no end, and host calls with no end.
    for wasm in [spin(), host_calls(u32::MAX)] {
        for limit in [1, 3_000_001, 10_000_000] {
            let run = TaskRun {
                fuel_limit: limit,
                ..task()
            };
            let (a, b) = both(&thread, &workers, &wasm, Profile::LATEST, &run);
            assert_eq!(seen(&a), seen(&b), "limit {limit}");
            assert_eq!((b.outcome, b.fuel_used), (Outcome::OutOfFuel, limit));
        }
    }
}

#[test]
fn the_wall_limit_kills_a_worker_and_the_next_run_gets_a_new_one() {
    let workers = with_workers(None);
    let run = TaskRun {
        fuel_limit: i64::MAX as u64,
        wall_limit: Duration::from_millis(300),
        ..task()
    };
    let started = Instant::now();
    let report = workers.run_bytes(&spin(), &run).expect("run");
    assert_eq!(report.outcome, Outcome::Timeout);
    assert!(report.output.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped only after {:?}",
        started.elapsed()
    );
    assert_eq!(workers.idle_workers(), 0, "the timed-out worker was killed");
    let report = workers.run_bytes(&hello(), &task()).expect("run");
    assert_eq!(report.outcome, Outcome::Exited(0));
    assert_eq!(report.output, b"hello\n");
    assert_eq!(workers.idle_workers(), 1);
}

#[test]
fn what_cannot_go_to_a_worker_runs_in_thread_alike() {
    // A fuel limit beyond the counter's range, a module with a start function, an older profile.
    let thread = Sandbox::new(SandboxConfig::default()).unwrap();
    let workers = with_workers(None);
    let huge = TaskRun {
        fuel_limit: u64::MAX,
        ..task()
    };
    let (a, b) = both(&thread, &workers, &hello(), Profile::LATEST, &huge);
    assert_eq!(seen(&a), seen(&b));
    let started = guest(
        r#"(global $g (mut i32) (i32.const 0))
           (func $init (global.set $g (i32.const 6)))
           (start $init)
           (data (i32.const 0x2000) "start\n")
           (func (export "_start")
             (drop (call $write (i32.const 1) (i32.const 0x2000) (global.get $g))))"#,
    );
    let (a, b) = both(&thread, &workers, &started, Profile::LATEST, &task());
    assert_eq!(seen(&a), seen(&b));
    assert_eq!(b.output, b"start\n");
    let (a, b) = both(
        &thread,
        &workers,
        &hello(),
        Profile::TrackedVectors,
        &task(),
    );
    assert_eq!(seen(&a), seen(&b));
    assert_eq!(workers.idle_workers(), 0, "none went to a worker");
}

#[test]
fn a_paused_gate_stops_the_worker_in_place_and_a_stop_kills_it() {
    // Its wall limit is shorter than the pause: paused time must not count.
    let (wasm, run) = super::paused::long_task();
    let gate = Arc::new(Gate::new());
    let workers = with_workers(Some(gate.clone()));
    let module: Prepared = workers.prepare(&wasm).expect("prepare");
    let plain = workers.run(&module, &run).expect("run");
    assert_eq!(plain.outcome, Outcome::Exited(0));
    let paused = super::paused::paused_run(&gate, &workers, &module, &run);
    assert_eq!(seen(&paused), seen(&plain));

    gate.pause();
    let stopper = {
        let gate = gate.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            gate.stop_paused();
        })
    };
    let stopped = workers.run(&module, &run).expect("run");
    stopper.join().unwrap();
    assert_eq!(stopped.outcome, Outcome::Timeout);
    gate.resume();
    let again = workers.run(&module, &run).expect("run");
    assert_eq!(seen(&again), seen(&plain));
}

#[test]
fn a_throttled_worker_finishes_alike() {
    let wasm = repo_guest("bench.wasm").expect("guests/bench.wasm is committed");
    let run = TaskRun {
        args: vec!["30000000".into()],
        fuel_limit: 50_000_000_000,
        wall_limit: Duration::from_secs(60),
        ..task()
    };
    let gate = Arc::new(Gate::new());
    let workers = with_workers(Some(gate.clone()));
    let module = workers.prepare(&wasm).expect("prepare");
    let plain = workers.run(&module, &run).expect("run");
    gate.set_duty(25);
    let throttled = workers.run(&module, &run).expect("run");
    assert_eq!(seen(&throttled), seen(&plain));
    assert!(
        throttled.wall_time > plain.wall_time,
        "{:?} throttled against {:?}",
        throttled.wall_time,
        plain.wall_time
    );
}

#[test]
fn concurrent_runs_get_a_worker_each_and_agree() {
    let workers = Arc::new(with_workers(None));
    let wasm = repo_guest("pi.wasm").expect("guests/pi.wasm is committed");
    let run = TaskRun {
        args: vec!["20000".into(), "7".into()],
        fuel_limit: 5_000_000_000,
        ..task()
    };
    let reports: Vec<RunReport> = (0..4)
        .map(|_| {
            let (workers, wasm, run) = (workers.clone(), wasm.clone(), run.clone());
            std::thread::spawn(move || workers.run_bytes(&wasm, &run).expect("run"))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    for report in &reports {
        assert_eq!(seen(report), seen(&reports[0]));
    }
    assert!((1..=4).contains(&workers.idle_workers()));
}

#[test]
fn a_worker_that_dies_or_cannot_start_is_the_hosts_failure() {
    let sandbox = |program: &str| {
        Sandbox::new(SandboxConfig {
            worker: Some(WorkerCommand {
                program: program.into(),
                args: Vec::new(),
            }),
            ..SandboxConfig::default()
        })
        .unwrap()
    };
    // Exits at once: its pipe closes.
    match sandbox("/bin/true").run_bytes(&hello(), &task()) {
        Err(SandboxError::Host(why)) => assert!(why.contains("worker"), "{why}"),
        other => panic!("{other:?}"),
    }
    match sandbox("/nonexistent/worker").run_bytes(&hello(), &task()) {
        Err(SandboxError::Setup(why)) => assert!(why.contains("/nonexistent/worker"), "{why}"),
        other => panic!("{other:?}"),
    }
}
