//! The owner's hand on running guests: a [`Gate`] pauses every run of a sandbox in place (a
//! guest stops at its next yield, about a millisecond of its work, and goes on from there when
//! the gate opens, with the same output and fuel as a run never paused), holds runs to a share
//! of CPU time (a duty cycle), and can stop paused runs for good.
//!
//! Time a run spends held by its gate does not count against its wall limit.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// CPU time a throttled run accumulates before it rests (its rest is in proportion).
pub(crate) const DUTY_SLICE: Duration = Duration::from_millis(20);
/// How often a throttled run looks at its CPU clock (a file read), at most.
const DUTY_LOOK: Duration = Duration::from_millis(2);

/// Pauses, throttles and stops the runs of a sandbox ([`crate::SandboxConfig::gate`]); shared
/// (`Arc`) by the sandbox and whoever controls it.
#[derive(Debug, Default)]
pub struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Debug)]
struct GateState {
    paused: bool,
    /// Percent of CPU time a run may use, 1 to 100.
    duty_percent: u8,
    /// Bumped by [`Gate::stop_paused`]: runs started before it stop at their next yield.
    stops: u64,
}

impl Default for GateState {
    fn default() -> Self {
        GateState {
            paused: false,
            duty_percent: 100,
            stops: 0,
        }
    }
}

impl PartialEq for Gate {
    /// The same gate (gates are shared handles, not values).
    fn eq(&self, other: &Gate) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for Gate {}

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Holds every run at its next yield (and new runs at their first) until [`Gate::resume`].
    pub fn pause(&self) {
        self.state().paused = true;
    }

    /// Lets held runs go on.
    pub fn resume(&self) {
        self.state().paused = false;
        self.changed.notify_all();
    }

    pub fn is_paused(&self) -> bool {
        self.state().paused
    }

    /// Limits each run to `percent` of a core's time (1 to 100; 100: no limit): after every
    /// 20 ms or so of CPU time it rests in proportion. CPU time, not wall time: on a busy
    /// machine a run waiting for a core is not working, and its share stays `percent` of the
    /// time it runs or rests.
    pub fn set_duty(&self, percent: u8) {
        self.state().duty_percent = percent.clamp(1, 100);
        self.changed.notify_all();
    }

    pub fn duty_percent(&self) -> u8 {
        self.state().duty_percent
    }

    /// Stops the runs in progress for good at their next yield — held ones at once — as
    /// timeouts ([`crate::Outcome::Timeout`]); runs started later are not affected.
    pub fn stop_paused(&self) {
        self.state().stops += 1;
        self.changed.notify_all();
    }

    /// Blocks while the gate is paused; `false` when runs of generation `stops` were stopped
    /// meanwhile (or before).
    pub fn wait_open(&self, stops: Option<u64>) -> bool {
        let mut state = self.state();
        loop {
            if stops.is_some_and(|s| s != state.stops) {
                return false;
            }
            if !state.paused {
                return true;
            }
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    pub(crate) fn stops(&self) -> u64 {
        self.state().stops
    }
}

/// One run's account with its gate: the busy time since it last rested, and the time it has
/// been held (paused or resting), which its wall limit does not count.
pub(crate) struct Pacer {
    gate: Option<std::sync::Arc<Gate>>,
    /// The gate's stop generation when the run started.
    stops: u64,
    /// When it last looked at its CPU clock.
    looked: Instant,
    /// Its thread's CPU time when it last rested (or started).
    rested: Option<Duration>,
    /// Where there is no CPU clock: the time not held since it last rested, and when it last
    /// left a checkpoint.
    worked: Duration,
    since: Instant,
    pub(crate) held: Duration,
}

/// The calling thread's CPU time (`/proc/thread-self/schedstat`: nanoseconds on a CPU); `None`
/// where the kernel does not say.
pub fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

impl Pacer {
    /// On the thread that will run the guest.
    pub(crate) fn new(gate: Option<std::sync::Arc<Gate>>) -> Pacer {
        let stops = gate.as_ref().map_or(0, |g| g.stops());
        let throttled = gate.as_ref().is_some_and(|g| g.duty_percent() < 100);
        Pacer {
            gate,
            stops,
            looked: Instant::now(),
            rested: if throttled { thread_cpu() } else { None },
            worked: Duration::ZERO,
            since: Instant::now(),
            held: Duration::ZERO,
        }
    }

    /// At a yield of the guest: rests if its duty cycle says so, waits while the gate is
    /// paused. `false`: the run was stopped ([`Gate::stop_paused`]).
    pub(crate) fn checkpoint(&mut self) -> bool {
        let Some(gate) = &self.gate else {
            return true;
        };
        let now = Instant::now();
        self.worked += now.saturating_duration_since(self.since);
        let duty = u32::from(gate.duty_percent());
        if duty < 100 && now.saturating_duration_since(self.looked) >= DUTY_LOOK {
            self.looked = now;
            // Its work since it last rested: its thread's CPU time (a run keeps its thread),
            // or where that cannot be read, the time that passed not held.
            let cpu = thread_cpu();
            let work = match (cpu, self.rested) {
                (Some(cpu), Some(rested)) => cpu.saturating_sub(rested),
                (Some(_), None) => {
                    self.rested = cpu;
                    Duration::ZERO
                }
                (None, _) => self.worked,
            };
            if work >= DUTY_SLICE {
                std::thread::sleep(work * (100 - duty) / duty);
                self.rested = cpu;
                self.worked = Duration::ZERO;
            }
        }
        let open = gate.wait_open(Some(self.stops));
        let after = Instant::now();
        self.held += after.saturating_duration_since(now);
        self.since = after;
        open
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_paused_gate_holds_until_resumed_and_a_stop_releases_held_runs() {
        let gate = Arc::new(Gate::new());
        gate.pause();
        let mut pacer = Pacer::new(Some(gate.clone()));
        let resumer = {
            let gate = gate.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                gate.resume();
            })
        };
        assert!(pacer.checkpoint());
        assert!(pacer.held >= Duration::from_millis(40), "{:?}", pacer.held);
        resumer.join().unwrap();

        gate.pause();
        let stopper = {
            let gate = gate.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                gate.stop_paused();
            })
        };
        assert!(!pacer.checkpoint(), "stopped while held");
        stopper.join().unwrap();
        // A run started after the stop is not stopped by it.
        gate.resume();
        assert!(Pacer::new(Some(gate)).checkpoint());
    }
}
