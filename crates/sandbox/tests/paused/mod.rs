//! The owner's gate ([`sandbox::Gate`]): a run paused in place goes on where it stopped, with
//! the output and fuel of a run never paused, under every profile; paused time does not count
//! against the wall limit; a stop ends held runs; a throttled run still finishes alike.

use super::{repo_guest, task};
use sandbox::{Gate, Outcome, Profile, Sandbox, SandboxConfig, TaskRun};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The benchmark kernel with enough iterations to run for a few hundred milliseconds.
pub(crate) fn long_task() -> (Vec<u8>, TaskRun) {
    let wasm = repo_guest("bench.wasm").expect("guests/bench.wasm is committed");
    let run = TaskRun {
        args: vec!["30000000".into()],
        fuel_limit: 50_000_000_000,
        // Shorter than the pause below: paused time must not count.
        wall_limit: Duration::from_secs(2),
        ..task()
    };
    (wasm, run)
}

fn gated() -> (Arc<Gate>, Sandbox) {
    let gate = Arc::new(Gate::new());
    let sandbox = Sandbox::new(SandboxConfig {
        gate: Some(gate.clone()),
        ..SandboxConfig::default()
    })
    .expect("sandbox");
    (gate, sandbox)
}

#[test]
fn a_run_paused_in_place_ends_as_if_it_never_paused_and_the_pause_is_not_wall_time() {
    let (wasm, run) = long_task();
    let (gate, sandbox) = gated();
    for profile in Profile::ALL {
        let module = sandbox.prepare_for(&wasm, profile).expect("prepare");
        let plain = sandbox.run(&module, &run).expect("run");
        assert_eq!(plain.outcome, Outcome::Exited(0), "{profile:?}");

        let paused = paused_run(&gate, &sandbox, &module, &run);
        assert_eq!(paused.outcome, Outcome::Exited(0), "{profile:?}");
        assert_eq!(paused.output, plain.output, "{profile:?}");
        assert_eq!(paused.fuel_used, plain.fuel_used, "{profile:?}");
    }
}

/// `module` run once with its gate paused 50 ms into the run, for longer than its whole wall
/// limit; the run must have waited for the pause.
pub(crate) fn paused_run(
    gate: &Arc<Gate>,
    sandbox: &Sandbox,
    module: &sandbox::Prepared,
    run: &TaskRun,
) -> sandbox::RunReport {
    let pauser = {
        let gate = gate.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            gate.pause();
            let held = Instant::now();
            std::thread::sleep(Duration::from_millis(2500));
            gate.resume();
            held.elapsed()
        })
    };
    let started = Instant::now();
    let paused = sandbox.run(module, run).expect("run");
    let took = started.elapsed();
    let held = pauser.join().unwrap();
    assert!(
        took >= held,
        "the run did not wait for the pause ({took:?})"
    );
    paused
}

#[test]
fn a_new_run_waits_for_a_paused_gate_and_a_stop_ends_held_runs_as_timeouts() {
    let (wasm, run) = long_task();
    let (gate, sandbox) = gated();
    let module = sandbox.prepare(&wasm).expect("prepare");
    gate.pause();
    let stopper = {
        let gate = gate.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            gate.stop_paused();
        })
    };
    let stopped = sandbox.run(&module, &run).expect("run");
    stopper.join().unwrap();
    assert_eq!(stopped.outcome, Outcome::Timeout);
    // The stop holds for runs in progress only: once open, the next run is whole.
    gate.resume();
    assert_eq!(
        sandbox.run(&module, &run).expect("run").outcome,
        Outcome::Exited(0)
    );
}

#[test]
fn a_throttled_run_rests_and_ends_alike() {
    let (wasm, mut run) = long_task();
    run.wall_limit = Duration::from_secs(60);
    let (gate, sandbox) = gated();
    let module = sandbox.prepare(&wasm).expect("prepare");
    let plain = sandbox.run(&module, &run).expect("run");
    gate.set_duty(25);
    let throttled = sandbox.run(&module, &run).expect("run");
    assert_eq!(throttled.outcome, Outcome::Exited(0));
    assert_eq!(throttled.output, plain.output);
    assert_eq!(throttled.fuel_used, plain.fuel_used);
    // Its rests (three times its work at 25%) are not wall time against its limit either: the
    // run took longer than a plain one, by a margin no ordinary noise makes.
    assert!(
        throttled.wall_time > plain.wall_time * 2,
        "{:?} vs {:?}",
        throttled.wall_time,
        plain.wall_time
    );
}
