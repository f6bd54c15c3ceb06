//! The scheduling experiment: the engine's policy ([`engine::State::pick_tasks`]) against the
//! classic static mapping heuristics on expected-time-to-compute (ETC) instances.
//!
//! # Instances
//!
//! An ETC matrix gives, for every task `t` and machine `m`, the time `ETC[t][m]` that `t` takes
//! on `m`. The instances follow T. D. Braun, H. J. Siegel, N. Beck et al., "A comparison of
//! eleven static heuristics for mapping a class of independent tasks onto heterogeneous
//! distributed computing systems", *Journal of Parallel and Distributed Computing* 61(6),
//! 810–837, 2001, which uses the *range-based* method (also described by Ali, Siegel,
//! Maheswaran, Hensgen and Ali, "Representing task and machine heterogeneities for heterogeneous
//! computing systems", Tamkang J. Sci. Eng. 3(3), 2000):
//!
//! - each task draws a baseline `τ_t ~ U[1, φ_b)`: `φ_b` = 3000 for high task heterogeneity,
//!   100 for low;
//! - each entry is `ETC[t][m] = τ_t · U[1, φ_r)`: `φ_r` = 1000 for high machine heterogeneity,
//!   10 for low;
//! - *consistent* instances sort every row ascending, so machine `j` is faster than machine
//!   `j + 1` for every task; *inconsistent* instances leave the rows as drawn. (Braun's third,
//!   semi-consistent kind is not generated here.)
//!
//! The eight classes are named as in Braun: consistency (`c`/`i`), then task and machine
//! heterogeneity (`hi`/`lo`), e.g. `c-hihi` or `i-lohi`. One ETC unit is one millisecond of
//! virtual time. Everything is drawn from a ChaCha8 stream seeded by a `u64`, so the same seed
//! gives the same instances, and the same results, on every machine.
//!
//! # Offline heuristics (full ETC knowledge)
//!
//! All of them map the whole meta-task at once and know every entry of the matrix, as in Braun:
//!
//! - [`min_min`]: with machine ready times `r[m]` (0 at first), each unmapped task's minimum
//!   completion time `min_m r[m] + ETC[t][m]` is computed; the task with the smallest one is
//!   mapped to that machine, `r[m]` advances, and the rest are re-evaluated.
//! - [`max_min`]: the same, but the task whose minimum completion time is *largest* goes first
//!   (long tasks are placed early and short ones fill in around them).
//! - [`mct`] (minimum completion time): tasks in arbitrary (index) order, each to the machine
//!   that finishes it first. Braun's "fast greedy".
//! - [`mct_estimated`]: MCT deciding on the engine's own estimates instead of the true times
//!   (not a Braun heuristic: it separates what the engine *knows* from how it *uses* it).
//! - [`olb`] (opportunistic load balancing): tasks in index order, each to the machine that is
//!   ready first, ignoring ETC. This is what a plain FIFO pull scheduler does.
//! - [`random_assignment`]: each task to a uniformly random machine; the experiment reports the
//!   mean over [`RANDOM_DRAWS`] draws per instance.
//!
//! The makespan of a mapping is the largest machine finish time. [`Etc::lower_bound`] is the
//! usual bound: no mapping beats `max(Σ_t min_m ETC[t][m] / machines, max_t min_m ETC[t][m])`.
//!
//! # The engine's policy (online, non-clairvoyant)
//!
//! [`engine_schedule`] runs the real state machine, as the network would, in a small
//! discrete-event loop:
//!
//! - every machine is one provider with one slot; its benchmark score is its speed,
//!   `SCORE_REF · Ē / C̄_m` where `Ē` is the matrix mean and `C̄_m` the mean of column `m`;
//! - every task is its own job (see [`engine_schedule`] for why) whose fuel limit — and the
//!   fuel its honest runs report — is its row mean times `SCORE_REF · 67` fuel per ms, so the
//!   engine's estimate `est_us` (schedule.rs) of task `t` on machine `m` is
//!   `R̄_t · C̄_m / Ē` ms: the rank-one approximation of the matrix, which is all that fuel (per
//!   task, machine-independent, because payment uses it) and a benchmark score (per machine)
//!   can express. The engine never sees `ETC[t][m]` itself;
//! - at time 0, and after every completion, each provider that has room asks for work exactly
//!   as `crates/provider` does (when idle, or when only its running task is left), with a
//!   `Dispatch` carrying the time and the other waiting providers, so the hold rule applies;
//!   the answer is logged with `AssignTasks`. A provider runs what it holds one task after the
//!   other on its one slot, each taking `ETC[t][m]` ms, and reports each result
//!   (`ReportResults`) when it finishes. A provider given nothing waits until the next
//!   completion anywhere — or until a held job's hold ends — and asks again;
//! - the makespan is the time the last result is accepted (`TaskAccepted`), and every job must
//!   have completed (`JobCompleted`), else the run is an error.
//!
//! The engine therefore schedules as an online list scheduler: it knows neither the future nor
//! the task/machine affinities of inconsistent instances, and breaks ties between equally fair
//! jobs by age, so it behaves like [`olb`] refined by the hold rule (a young job waits up to
//! `hold_ms` for a clearly faster idle provider) and by the local queue (tasks shorter than
//! `prefetch_ms` come several to a fetch). With hundreds of tasks every provider stays busy
//! until the queue drains, so nobody is idle for a hold to favour, and at time 0 the providers
//! ask fastest first; in practice its makespans equal OLB's up to the batching of short tasks.

#![cfg_attr(
    not(test),
    deny(
        clippy::arithmetic_side_effects,
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

use crate::dist::Draw;
use engine::schedule::FUEL_PER_BENCHMARK_POINT;
use engine::{
    AccountId, Action, Aggregate, Dispatch, EngineConfig, Entry, Event, Hash, Input, JobId,
    JobSpec, LeaderCommand, Limits, OutputSource, ProviderSpec, Redundancy, Rejection,
    Requirements, Sig, Signed, State, TaskId, TaskOutcome, TaskReport, TaskSpec, Time,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Tasks per instance unless configured (Braun's 512).
pub const DEFAULT_TASKS: usize = 512;
/// Machines per instance unless configured (Braun's 16).
pub const DEFAULT_MACHINES: usize = 16;
/// Instances per class unless configured; results are averaged over them.
pub const DEFAULT_TRIALS: u32 = 5;
/// Task heterogeneity: the baseline range `φ_b`, high and low (Braun et al. 2001).
pub const PHI_B_HIGH: f64 = 3000.0;
pub const PHI_B_LOW: f64 = 100.0;
/// Machine heterogeneity: the row multiplier range `φ_r`, high and low (Braun et al. 2001).
pub const PHI_R_HIGH: f64 = 1000.0;
pub const PHI_R_LOW: f64 = 10.0;
/// Random assignments drawn per instance; the random policy's makespan is their mean.
pub const RANDOM_DRAWS: u32 = 16;
/// Benchmark score of a machine of average speed (its column mean equals the matrix mean).
pub const SCORE_REF: f64 = 1000.0;
/// Slots per simulated provider: Braun's machines run one task at a time.
const SLOTS: u32 = 1;

/// The policies in the order [`run`] reports them.
pub const POLICIES: [&str; 7] = [
    "engine", "min-min", "max-min", "mct", "mct-est", "olb", "random",
];

/// What the experiment reads from its configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulingConfig {
    /// Tasks per instance (the meta-task).
    #[serde(default = "default_tasks")]
    pub tasks: usize,
    /// Machines per instance.
    #[serde(default = "default_machines")]
    pub machines: usize,
    /// Instances per class; each policy's makespan is the mean over them.
    #[serde(default = "default_trials")]
    pub trials: u32,
}

fn default_tasks() -> usize {
    DEFAULT_TASKS
}
fn default_machines() -> usize {
    DEFAULT_MACHINES
}
fn default_trials() -> u32 {
    DEFAULT_TRIALS
}

impl Default for SchedulingConfig {
    fn default() -> Self {
        SchedulingConfig {
            tasks: DEFAULT_TASKS,
            machines: DEFAULT_MACHINES,
            trials: DEFAULT_TRIALS,
        }
    }
}

/// One policy on one instance class.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SchedulingRow {
    /// Braun's name of the class: `c-hihi`, `i-lolo`, …
    pub instance: String,
    /// `consistent` or `inconsistent`.
    pub consistency: String,
    /// `high` or `low`.
    pub task_heterogeneity: String,
    /// `high` or `low`.
    pub machine_heterogeneity: String,
    /// One of [`POLICIES`].
    pub policy: String,
    /// Mean makespan over the class's instances, in milliseconds (ETC units).
    pub makespan: f64,
    /// `makespan` over min-min's mean makespan on the same instances.
    pub relative_to_min_min: f64,
}

/// Why the experiment could not run.
#[derive(Debug, thiserror::Error)]
pub enum EtcError {
    #[error("invalid scheduling configuration: {0}")]
    Config(String),
    #[error("invalid ETC matrix: {0}")]
    Matrix(String),
    #[error("the engine rejected {what}: {rejection}")]
    Rejected {
        what: String,
        #[source]
        rejection: Rejection,
    },
    #[error("task {task} was reported but its result was not accepted")]
    NotAccepted { task: TaskId },
    #[error(
        "the engine run ended with {accepted} of {tasks} results accepted and {completed} of \
         {tasks} jobs completed"
    )]
    Incomplete {
        accepted: usize,
        completed: usize,
        tasks: usize,
    },
    #[error("the engine run stalled at {at} ms with {queued} tasks queued")]
    Stalled { at: Time, queued: usize },
    #[error("simulation bookkeeping: {0}")]
    Internal(String),
}

/// Whether every task ranks the machines in the same order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistency {
    Consistent,
    Inconsistent,
}

impl Consistency {
    pub fn name(self) -> &'static str {
        match self {
            Consistency::Consistent => "consistent",
            Consistency::Inconsistent => "inconsistent",
        }
    }

    fn letter(self) -> &'static str {
        match self {
            Consistency::Consistent => "c",
            Consistency::Inconsistent => "i",
        }
    }
}

/// High or low heterogeneity (of tasks or of machines).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heterogeneity {
    High,
    Low,
}

impl Heterogeneity {
    pub fn name(self) -> &'static str {
        match self {
            Heterogeneity::High => "high",
            Heterogeneity::Low => "low",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Heterogeneity::High => "hi",
            Heterogeneity::Low => "lo",
        }
    }

    /// `φ_b`, the upper end of the task baseline range, for task heterogeneity `self`.
    pub fn task_range(self) -> f64 {
        match self {
            Heterogeneity::High => PHI_B_HIGH,
            Heterogeneity::Low => PHI_B_LOW,
        }
    }

    /// `φ_r`, the upper end of the row multiplier range, for machine heterogeneity `self`.
    pub fn machine_range(self) -> f64 {
        match self {
            Heterogeneity::High => PHI_R_HIGH,
            Heterogeneity::Low => PHI_R_LOW,
        }
    }
}

/// One of Braun's instance classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EtcClass {
    pub consistency: Consistency,
    pub task: Heterogeneity,
    pub machine: Heterogeneity,
}

impl EtcClass {
    /// The eight classes: consistent then inconsistent, each hihi, hilo, lohi, lolo.
    pub const ALL: [EtcClass; 8] = {
        use Consistency::{Consistent as C, Inconsistent as I};
        use Heterogeneity::{High as H, Low as L};
        const fn class(
            consistency: Consistency,
            task: Heterogeneity,
            machine: Heterogeneity,
        ) -> EtcClass {
            EtcClass {
                consistency,
                task,
                machine,
            }
        }
        [
            class(C, H, H),
            class(C, H, L),
            class(C, L, H),
            class(C, L, L),
            class(I, H, H),
            class(I, H, L),
            class(I, L, H),
            class(I, L, L),
        ]
    };

    /// Braun's name: `c-hihi`, `i-lohi`, …
    pub fn name(&self) -> String {
        format!(
            "{}-{}{}",
            self.consistency.letter(),
            self.task.short(),
            self.machine.short()
        )
    }
}

/// An expected-time-to-compute matrix: `tasks` rows of `machines` positive, finite times.
#[derive(Clone, Debug, PartialEq)]
pub struct Etc {
    tasks: usize,
    machines: usize,
    /// Row-major: task `t`'s times are `values[t * machines .. (t + 1) * machines]`.
    values: Vec<f64>,
}

impl Etc {
    /// A matrix from its rows, row-major. Refuses an empty matrix, a length that is not
    /// `tasks × machines`, and times that are not positive and finite.
    pub fn new(tasks: usize, machines: usize, values: Vec<f64>) -> Result<Etc, EtcError> {
        if tasks == 0 || machines == 0 {
            return Err(EtcError::Matrix(
                "needs at least one task and one machine".into(),
            ));
        }
        let len = tasks
            .checked_mul(machines)
            .ok_or_else(|| EtcError::Matrix("too many entries".into()))?;
        if values.len() != len {
            return Err(EtcError::Matrix(format!(
                "{} entries for {tasks} tasks × {machines} machines",
                values.len()
            )));
        }
        if let Some(bad) = values.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
            return Err(EtcError::Matrix(format!(
                "time {bad} is not positive and finite"
            )));
        }
        Ok(Etc {
            tasks,
            machines,
            values,
        })
    }

    pub fn tasks(&self) -> usize {
        self.tasks
    }

    pub fn machines(&self) -> usize {
        self.machines
    }

    /// The rows, in task order.
    pub fn rows(&self) -> std::slice::ChunksExact<'_, f64> {
        self.values.chunks_exact(self.machines.max(1))
    }

    /// Task `t`'s times on every machine.
    pub fn row(&self, t: usize) -> Option<&[f64]> {
        let start = t.checked_mul(self.machines)?;
        let end = start.checked_add(self.machines)?;
        self.values.get(start..end)
    }

    /// `ETC[t][m]`.
    pub fn get(&self, t: usize, m: usize) -> Option<f64> {
        self.row(t)?.get(m).copied()
    }

    /// Mean time of each task over the machines.
    pub fn row_means(&self) -> Vec<f64> {
        let n = self.machines as f64;
        self.rows().map(|r| r.iter().sum::<f64>() / n).collect()
    }

    /// Mean time of each machine over the tasks.
    pub fn column_means(&self) -> Vec<f64> {
        let mut sums = vec![0.0; self.machines];
        for row in self.rows() {
            for (s, v) in sums.iter_mut().zip(row) {
                *s += v;
            }
        }
        let n = self.tasks as f64;
        sums.into_iter().map(|s| s / n).collect()
    }

    /// Mean of all entries.
    pub fn mean(&self) -> f64 {
        self.values.iter().sum::<f64>() / self.values.len().max(1) as f64
    }

    /// A bound no mapping beats: the larger of the total of each task's fastest time spread
    /// evenly over the machines, and the longest of those fastest times.
    pub fn lower_bound(&self) -> f64 {
        let fastest = self
            .rows()
            .map(|r| r.iter().copied().fold(f64::INFINITY, f64::min));
        let (sum, max) = fastest.fold((0.0, 0.0f64), |(s, m), v| (s + v, m.max(v)));
        (sum / self.machines as f64).max(max)
    }

    /// The makespan of running task `t` on machine `assignment[t]` (each machine running its
    /// tasks back to back), or `None` when the assignment does not map every task to a machine.
    pub fn makespan(&self, assignment: &[usize]) -> Option<f64> {
        if assignment.len() != self.tasks {
            return None;
        }
        let mut finish = vec![0.0; self.machines];
        for (row, m) in self.rows().zip(assignment) {
            *finish.get_mut(*m)? += row.get(*m)?;
        }
        Some(finish.into_iter().fold(0.0, f64::max))
    }
}

/// Uniform in `[lo, hi)`.
fn uniform(rng: &mut Draw, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.unit()
}

/// SplitMix64's finaliser: a well-mixed 64-bit value from any input.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed of one stream of the experiment: instance `trial` of class `class`, `stream` 0 for
/// the matrix and 1 for the random assignments.
fn derive_seed(seed: u64, class: usize, trial: u32, stream: u64) -> u64 {
    let h = splitmix(seed);
    let h = splitmix(h ^ class as u64);
    let h = splitmix(h ^ u64::from(trial));
    splitmix(h ^ stream)
}

/// An ETC matrix of `class` with `tasks` × `machines` entries, by Braun et al.'s range-based
/// method (see the module documentation), drawn from `seed`.
pub fn generate(
    class: EtcClass,
    tasks: usize,
    machines: usize,
    seed: u64,
) -> Result<Etc, EtcError> {
    let len = tasks
        .checked_mul(machines)
        .ok_or_else(|| EtcError::Matrix("too many entries".into()))?;
    let phi_b = class.task.task_range();
    let phi_r = class.machine.machine_range();
    let mut rng = Draw::new(seed);
    let mut values = Vec::with_capacity(len);
    for _ in 0..tasks {
        let tau = uniform(&mut rng, 1.0, phi_b);
        let mut row: Vec<f64> = (0..machines)
            .map(|_| tau * uniform(&mut rng, 1.0, phi_r))
            .collect();
        if class.consistency == Consistency::Consistent {
            row.sort_by(f64::total_cmp);
        }
        values.extend(row);
    }
    Etc::new(tasks, machines, values)
}

/// A mapping of every task to a machine and its makespan.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// The machine of each task.
    pub assignment: Vec<usize>,
    /// The largest machine finish time, in ETC units.
    pub makespan: f64,
}

impl Schedule {
    fn from_ready(assignment: Vec<usize>, ready: &[f64]) -> Schedule {
        Schedule {
            assignment,
            makespan: ready.iter().copied().fold(0.0, f64::max),
        }
    }
}

/// The machine that would finish a task with times `row` first, given the machines' ready
/// times, and when (ties to the lower machine index).
fn earliest_completion(row: &[f64], ready: &[f64]) -> Option<(usize, f64)> {
    row.iter()
        .zip(ready)
        .map(|(e, r)| r + e)
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// Min-min and max-min (Braun et al. 2001, §3): repeatedly compute every unmapped task's
/// minimum completion time over the machines, map the task whose minimum is smallest
/// (`largest` false) or largest (`largest` true) to its best machine, and advance that
/// machine's ready time. Ties go to the lower task index.
///
/// Only tasks whose best machine was the one just advanced need re-evaluating (every other
/// machine's ready time is unchanged, and the advanced one only got worse), which makes this
/// `O(tasks² + tasks · machines · k)` rather than `O(tasks² · machines)`.
fn batch_mode(etc: &Etc, largest: bool) -> Schedule {
    let rows: Vec<&[f64]> = etc.rows().collect();
    let mut ready = vec![0.0; etc.machines()];
    let mut best: Vec<Option<(usize, f64)>> = rows
        .iter()
        .map(|r| earliest_completion(r, &ready))
        .collect();
    let mut assignment = vec![0usize; etc.tasks()];
    loop {
        let candidates = best
            .iter()
            .enumerate()
            .filter_map(|(t, b)| b.map(|(m, ct)| (t, m, ct)));
        let pick = if largest {
            candidates.max_by(|a, b| a.2.total_cmp(&b.2).then(b.0.cmp(&a.0)))
        } else {
            candidates.min_by(|a, b| a.2.total_cmp(&b.2).then(a.0.cmp(&b.0)))
        };
        let Some((t, m, ct)) = pick else {
            break;
        };
        if let Some(slot) = assignment.get_mut(t) {
            *slot = m;
        }
        if let Some(r) = ready.get_mut(m) {
            *r = ct;
        }
        if let Some(b) = best.get_mut(t) {
            *b = None;
        }
        for (b, row) in best.iter_mut().zip(&rows) {
            if b.is_some_and(|(bm, _)| bm == m) {
                *b = earliest_completion(row, &ready);
            }
        }
    }
    Schedule::from_ready(assignment, &ready)
}

/// Min-min (Braun et al. 2001): the task that can finish earliest goes first, to the machine
/// that finishes it earliest.
pub fn min_min(etc: &Etc) -> Schedule {
    batch_mode(etc, false)
}

/// Max-min (Braun et al. 2001): the task whose earliest finish is latest goes first, to the
/// machine that finishes it earliest.
pub fn max_min(etc: &Etc) -> Schedule {
    batch_mode(etc, true)
}

/// Minimum completion time (Braun et al. 2001): tasks in index order, each to the machine that
/// would finish it first.
pub fn mct(etc: &Etc) -> Schedule {
    let mut ready = vec![0.0; etc.machines()];
    let mut assignment = Vec::with_capacity(etc.tasks());
    for row in etc.rows() {
        let Some((m, ct)) = earliest_completion(row, &ready) else {
            continue;
        };
        if let Some(r) = ready.get_mut(m) {
            *r = ct;
        }
        assignment.push(m);
    }
    Schedule::from_ready(assignment, &ready)
}

/// Minimum completion time on the engine's knowledge: tasks in index order, each to the machine
/// that would finish it first *by the engine's estimates* — the rank-one `R̄_t · C̄_m / Ē` that a
/// per-task fuel and a per-machine benchmark score express (see [`engine_schedule`]) — while the
/// makespan is what the real times give. It shows how far a scheduler with exactly the
/// engine's information, but using the estimates to match tasks to machines, would get. Being
/// static, it never sees a real finish time, so estimate errors pile up on the ready times —
/// unlike a pull scheduler, which hands out work when a machine really is free.
pub fn mct_estimated(etc: &Etc) -> Schedule {
    let mean = etc.mean();
    let slowness: Vec<f64> = etc.column_means().into_iter().map(|c| c / mean).collect();
    let mut estimated = vec![0.0; etc.machines()];
    let mut ready = vec![0.0; etc.machines()];
    let mut assignment = Vec::with_capacity(etc.tasks());
    for (row, size) in etc.rows().zip(etc.row_means()) {
        let guess: Vec<f64> = slowness.iter().map(|s| size * s).collect();
        let Some((m, ct)) = earliest_completion(&guess, &estimated) else {
            continue;
        };
        if let (Some(e), Some(r), Some(real)) = (estimated.get_mut(m), ready.get_mut(m), row.get(m))
        {
            *e = ct;
            *r += real;
        }
        assignment.push(m);
    }
    Schedule::from_ready(assignment, &ready)
}

/// Opportunistic load balancing (Braun et al. 2001): tasks in index order, each to the machine
/// that becomes ready first, whatever the task's time there.
pub fn olb(etc: &Etc) -> Schedule {
    let mut ready = vec![0.0f64; etc.machines()];
    let mut assignment = Vec::with_capacity(etc.tasks());
    for row in etc.rows() {
        let Some((m, _)) = ready.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1)) else {
            continue;
        };
        if let (Some(r), Some(e)) = (ready.get_mut(m), row.get(m)) {
            *r += e;
        }
        assignment.push(m);
    }
    Schedule::from_ready(assignment, &ready)
}

/// Each task to a uniformly random machine drawn from `rng`.
pub fn random_assignment(etc: &Etc, rng: &mut Draw) -> Schedule {
    let machines = etc.machines() as u64;
    let mut ready = vec![0.0; etc.machines()];
    let mut assignment = Vec::with_capacity(etc.tasks());
    for row in etc.rows() {
        let m = rng.range(0, machines.saturating_sub(1)) as usize;
        if let (Some(r), Some(e)) = (ready.get_mut(m), row.get(m)) {
            *r += e;
        }
        assignment.push(m);
    }
    Schedule::from_ready(assignment, &ready)
}

/// What a run of the engine's policy did.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineOutcome {
    /// The machine that ran each task.
    pub assignment: Vec<usize>,
    /// When the last result was accepted, in ms of virtual time.
    pub makespan: f64,
    /// Each machine's benchmark score, as registered.
    pub scores: Vec<u64>,
    /// `pick_tasks` calls (fetches), and those that returned tasks.
    pub fetches: u64,
    pub assignments: u64,
    /// The most tasks one fetch returned (above 1 only through the engine's prefetch).
    pub largest_batch: usize,
}

/// One simulated provider.
struct Machine {
    id: AccountId,
    nonce: u64,
    /// Tasks assigned to it and not started yet, in assignment order.
    waiting: VecDeque<usize>,
    /// The task on its one slot, and when it finishes.
    running: Option<(usize, f64)>,
    /// It asked while busy and got nothing: it asks again after its next completion, as
    /// `crates/provider` does.
    starved: bool,
}

impl Machine {
    fn held(&self) -> usize {
        self.waiting
            .len()
            .saturating_add(usize::from(self.running.is_some()))
    }

    /// Whether it would be waiting in a long poll: it holds nothing.
    fn idle(&self) -> bool {
        self.held() == 0
    }
}

fn nothing_cached(_: &AccountId, _: &Hash) -> bool {
    false
}

/// The engine's view of virtual time: whole milliseconds.
fn engine_time(clock: f64) -> Time {
    clock.max(0.0).floor() as Time
}

fn account(tag: u8, index: usize) -> AccountId {
    let mut id = [0u8; 32];
    id[0] = tag;
    for (slot, byte) in id.iter_mut().skip(1).zip((index as u64).to_le_bytes()) {
        *slot = byte;
    }
    AccountId(id)
}

/// The discrete-event simulation of one instance under the engine's policy.
struct Sim<'a> {
    etc: &'a Etc,
    state: State,
    machines: Vec<Machine>,
    /// The job of each task, and back.
    jobs: Vec<JobId>,
    task_of: BTreeMap<JobId, usize>,
    fuel: Vec<u64>,
    /// The machine that ran each task.
    ran_on: Vec<Option<usize>>,
    accepted: usize,
    completed: usize,
    last_accept: f64,
    fetches: u64,
    assignments: u64,
    largest_batch: usize,
}

impl Sim<'_> {
    fn apply(
        &mut self,
        time: Time,
        input: Input,
        what: impl FnOnce() -> String,
    ) -> Result<Vec<Event>, EtcError> {
        self.state
            .apply(&Entry { time, input })
            .map_err(|rejection| EtcError::Rejected {
                what: what(),
                rejection,
            })
    }

    fn task_id(&self, t: usize) -> Result<TaskId, EtcError> {
        self.jobs
            .get(t)
            .map(|job| TaskId {
                job: *job,
                index: 0,
            })
            .ok_or_else(|| EtcError::Internal(format!("task {t} has no job")))
    }

    /// Starts machine `i`'s next waiting task at `clock` if its slot is free.
    fn start_next(&mut self, i: usize, clock: f64) -> Result<(), EtcError> {
        let Some(m) = self.machines.get_mut(i) else {
            return Err(EtcError::Internal(format!("no machine {i}")));
        };
        if m.running.is_some() {
            return Ok(());
        }
        let Some(t) = m.waiting.pop_front() else {
            return Ok(());
        };
        let time = self
            .etc
            .get(t, i)
            .ok_or_else(|| EtcError::Internal(format!("no time for task {t} on machine {i}")))?;
        m.running = Some((t, clock + time));
        if let Some(slot) = self.ran_on.get_mut(t) {
            *slot = Some(i);
        }
        Ok(())
    }

    /// Machine `i` finishes its running task at `clock` and reports it.
    fn complete(&mut self, i: usize, clock: f64) -> Result<(), EtcError> {
        let Some(m) = self.machines.get_mut(i) else {
            return Err(EtcError::Internal(format!("no machine {i}")));
        };
        let Some((t, _)) = m.running.take() else {
            return Ok(());
        };
        m.nonce = m.nonce.saturating_add(1);
        m.starved = false;
        let (signer, nonce) = (m.id, m.nonce);
        let task = self.task_id(t)?;
        let fuel_used = self.fuel.get(t).copied().unwrap_or(1);
        let report = TaskReport {
            task,
            outcome: TaskOutcome::Success,
            // Honest runs of one task agree on output and fuel.
            output_hash: Hash::of(&(t as u64).to_le_bytes()),
            output_size: 8,
            fuel_used,
        };
        let input = Input::Signed(Signed {
            signer,
            nonce,
            body: Action::ReportResults(vec![report]),
            signature: Sig([0; 64]),
        });
        let events = self.apply(engine_time(clock), input, || {
            format!("the result of task {t} from machine {i}")
        })?;
        let mut accepted = false;
        for event in &events {
            match event {
                Event::TaskAccepted { task: done, .. } if *done == task => accepted = true,
                Event::JobCompleted { .. } => self.completed = self.completed.saturating_add(1),
                _ => {}
            }
        }
        if !accepted {
            return Err(EtcError::NotAccepted { task });
        }
        self.accepted = self.accepted.saturating_add(1);
        self.last_accept = self.last_accept.max(clock);
        self.start_next(i, clock)
    }

    /// Every provider with room asks for work at `clock`, over and over while someone gets some:
    /// a provider refused because a job was held for a better one that has now taken work asks
    /// again, as a long poll woken by the assignment would.
    fn fetch_round(&mut self, clock: f64) -> Result<(), EtcError> {
        let now = engine_time(clock);
        let slots = SLOTS as usize;
        loop {
            let mut progressed = false;
            for i in 0..self.machines.len() {
                let Some(m) = self.machines.get(i) else {
                    continue;
                };
                // As crates/provider: ask when idle, or when only the running task is left.
                let held = m.held();
                if held > slots || (held > 0 && m.starved) {
                    continue;
                }
                let who = m.id;
                let idle: Vec<AccountId> = self
                    .machines
                    .iter()
                    .enumerate()
                    .filter(|(j, q)| *j != i && q.idle())
                    .map(|(_, q)| q.id)
                    .collect();
                let room = self.state.providers.get(&who).map_or(0, |p| {
                    self.state.capacity(p).saturating_sub(p.running.len())
                });
                let ctx = Dispatch {
                    now,
                    cached: &nothing_cached,
                    idle: &idle,
                };
                let picks =
                    self.state
                        .pick_tasks(who, u32::try_from(room).unwrap_or(u32::MAX), &ctx);
                self.fetches = self.fetches.saturating_add(1);
                if picks.is_empty() {
                    if held > 0
                        && let Some(m) = self.machines.get_mut(i)
                    {
                        m.starved = true;
                    }
                    continue;
                }
                let count = picks.len();
                let input = Input::Leader(LeaderCommand::AssignTasks {
                    provider: who,
                    tasks: picks.clone(),
                });
                self.apply(now, input, || format!("{count} tasks for machine {i}"))?;
                self.assignments = self.assignments.saturating_add(1);
                self.largest_batch = self.largest_batch.max(count);
                let mut tasks = Vec::with_capacity(count);
                for id in &picks {
                    let t = self.task_of.get(&id.job).copied().ok_or_else(|| {
                        EtcError::Internal(format!("task {id} is not one of the simulation's"))
                    })?;
                    tasks.push(t);
                }
                if let Some(m) = self.machines.get_mut(i) {
                    m.waiting.extend(tasks);
                }
                self.start_next(i, clock)?;
                progressed = true;
            }
            if !progressed {
                return Ok(());
            }
        }
    }

    /// The next time after `clock` at which a queued job's hold ends, if a provider is idle to
    /// take it then.
    fn next_hold_end(&self, clock: f64) -> Option<f64> {
        if !self.machines.iter().any(Machine::idle) {
            return None;
        }
        let hold = self.state.config.schedule.hold_ms;
        self.state
            .queue
            .iter()
            .filter_map(|id| self.state.jobs.get(&id.job))
            .map(|job| job.submitted_at.saturating_add(hold) as f64)
            .filter(|end| *end > clock)
            .min_by(f64::total_cmp)
    }

    /// The earliest finishing running task: its machine and finish time (ties to the lower
    /// machine).
    fn next_completion(&self) -> Option<(usize, f64)> {
        self.machines
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.running.map(|(_, end)| (i, end)))
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
    }
}

/// Runs instance `etc` under the engine's policy (see the module documentation) and returns what
/// happened.
///
/// **One job per task.** Braun's meta-task is a set of independent tasks of different sizes,
/// which on Gridmint are different jobs (or one job per size class): a job has one set of
/// limits, and the engine's cost estimate is per job — the mean accepted fuel, or the fuel limit
/// before any result. With a single job every task would look alike to the engine (the fuel
/// limit, then the running mean), so one job per task gives the engine the best knowledge it can
/// have: each task's own fuel, fixed before it runs. One requester submits them all at time 0 in
/// task order, so fair share ties and jobs go oldest first.
///
/// **Fuel and speed.** A task's fuel is its row mean `R̄_t` times `SCORE_REF · 67` fuel per ms,
/// and its fuel limit is exactly that (an honest requester who knows its task); machine `m`'s
/// benchmark score is `SCORE_REF · Ē / C̄_m`. The engine then estimates `R̄_t · C̄_m / Ē` ms for
/// task `t` on machine `m`, the best machine-independent-fuel estimate, while the task really
/// takes `ETC[t][m]`.
///
/// Deadlines are far away (never urgent, never expired), prices are free, and redundancy is
/// `Fixed { quorum: 1, max_results: 1 }`, so every task runs exactly once.
pub fn engine_schedule(etc: &Etc) -> Result<EngineOutcome, EtcError> {
    let config = EngineConfig::default();
    let max_fuel = config.max_fuel;
    let max_wall_ms = config.max_wall_ms;
    let mean = etc.mean();
    let scores: Vec<u64> = etc
        .column_means()
        .into_iter()
        .map(|c| (SCORE_REF * mean / c).round().max(1.0) as u64)
        .collect();
    let fuel_per_ms = SCORE_REF * FUEL_PER_BENCHMARK_POINT as f64;
    let fuel: Vec<u64> = etc
        .row_means()
        .into_iter()
        .map(|r| (r * fuel_per_ms).round().clamp(1.0, max_fuel as f64) as u64)
        .collect();
    let machines: Vec<Machine> = (0..etc.machines())
        .map(|i| Machine {
            id: account(1, i),
            nonce: 0,
            waiting: VecDeque::new(),
            running: None,
            starved: false,
        })
        .collect();
    let mut sim = Sim {
        etc,
        state: State::new(config),
        machines,
        jobs: Vec::with_capacity(etc.tasks()),
        task_of: BTreeMap::new(),
        fuel,
        ran_on: vec![None; etc.tasks()],
        accepted: 0,
        completed: 0,
        last_accept: 0.0,
        fetches: 0,
        assignments: 0,
        largest_batch: 0,
    };
    for (i, score) in scores.iter().enumerate() {
        let Some(m) = sim.machines.get_mut(i) else {
            continue;
        };
        m.nonce = 1;
        let spec = ProviderSpec {
            slots: SLOTS,
            cores: 1,
            memory_bytes: 1 << 30,
            gpu: None,
            benchmark_score: *score,
            region: "sim".into(),
            price_per_fuel: 0,
            operator: None,
        };
        let input = Input::Signed(Signed {
            signer: m.id,
            nonce: m.nonce,
            body: Action::RegisterProvider(spec),
            signature: Sig([0; 64]),
        });
        sim.apply(0, input, || format!("the registration of machine {i}"))?;
    }
    let requester = account(2, 0);
    let module = Hash::of(b"gridmint/sim/etc");
    for t in 0..etc.tasks() {
        let spec = JobSpec {
            module,
            tasks: vec![TaskSpec::default()],
            limits: Limits {
                fuel: sim.fuel.get(t).copied().unwrap_or(1),
                memory_bytes: 1 << 20,
                wall_ms: max_wall_ms,
            },
            deadline: Time::MAX / 2,
            max_price: 0,
            output: OutputSource::Stdout,
            aggregate: Aggregate::Concat,
            redundancy: Redundancy::Fixed {
                quorum: 1,
                max_results: 1,
            },
            requirements: Requirements::default(),
        };
        let input = Input::Signed(Signed {
            signer: requester,
            nonce: (t as u64).saturating_add(1),
            body: Action::SubmitJob(spec),
            signature: Sig([0; 64]),
        });
        let events = sim.apply(0, input, || format!("the job of task {t}"))?;
        let job = events
            .iter()
            .find_map(|e| match e {
                Event::JobSubmitted { job, .. } => Some(*job),
                _ => None,
            })
            .ok_or_else(|| EtcError::Internal(format!("no job submitted for task {t}")))?;
        sim.jobs.push(job);
        sim.task_of.insert(job, t);
    }

    // Each step completes a task or ends a hold; anything beyond that bound is a stall.
    let max_steps = etc.tasks().saturating_mul(4).saturating_add(64);
    let mut clock = 0.0;
    sim.fetch_round(clock)?;
    for _ in 0..max_steps {
        let done = sim.next_completion();
        let wake = sim.next_hold_end(clock);
        match (done, wake) {
            (Some((i, end)), w) if w.is_none_or(|w| end <= w) => {
                clock = end;
                sim.complete(i, clock)?;
            }
            (_, Some(w)) => clock = w,
            (_, None) => break,
        }
        sim.fetch_round(clock)?;
    }
    if sim.next_completion().is_some() {
        return Err(EtcError::Stalled {
            at: engine_time(clock),
            queued: sim.state.queue.len(),
        });
    }
    let tasks = etc.tasks();
    if sim.accepted != tasks || sim.completed != tasks {
        return Err(EtcError::Incomplete {
            accepted: sim.accepted,
            completed: sim.completed,
            tasks,
        });
    }
    let assignment = sim
        .ran_on
        .iter()
        .enumerate()
        .map(|(t, m)| m.ok_or_else(|| EtcError::Internal(format!("task {t} never ran"))))
        .collect::<Result<Vec<usize>, EtcError>>()?;
    Ok(EngineOutcome {
        assignment,
        makespan: sim.last_accept,
        scores,
        fetches: sim.fetches,
        assignments: sim.assignments,
        largest_batch: sim.largest_batch,
    })
}

/// The makespan of instance `etc` under the engine's policy ([`engine_schedule`]), in ms.
pub fn engine_makespan(etc: &Etc) -> Result<f64, EtcError> {
    engine_schedule(etc).map(|o| o.makespan)
}

/// Runs every policy on `cfg.trials` instances of each of the eight classes, drawn from `seed`,
/// and returns one row per class and policy (classes in [`EtcClass::ALL`] order, policies in
/// [`POLICIES`] order). Makespans are means over the instances; `relative_to_min_min` is the
/// ratio of a policy's mean to min-min's.
pub fn run(cfg: &SchedulingConfig, seed: u64) -> Result<Vec<SchedulingRow>, EtcError> {
    if cfg.tasks == 0 || cfg.machines == 0 || cfg.trials == 0 {
        return Err(EtcError::Config(
            "tasks, machines and trials must all be at least 1".into(),
        ));
    }
    if u32::try_from(cfg.tasks).is_err() || cfg.tasks.checked_mul(cfg.machines).is_none() {
        return Err(EtcError::Config("too many tasks or machines".into()));
    }
    let mut rows = Vec::with_capacity(EtcClass::ALL.len().saturating_mul(POLICIES.len()));
    for (ci, class) in EtcClass::ALL.iter().enumerate() {
        let mut sums = [0.0f64; POLICIES.len()];
        for trial in 0..cfg.trials {
            let etc = generate(
                *class,
                cfg.tasks,
                cfg.machines,
                derive_seed(seed, ci, trial, 0),
            )?;
            let mut rng = Draw::new(derive_seed(seed, ci, trial, 1));
            let random = (0..RANDOM_DRAWS)
                .map(|_| random_assignment(&etc, &mut rng).makespan)
                .sum::<f64>()
                / f64::from(RANDOM_DRAWS);
            let makespans = [
                engine_makespan(&etc)?,
                min_min(&etc).makespan,
                max_min(&etc).makespan,
                mct(&etc).makespan,
                mct_estimated(&etc).makespan,
                olb(&etc).makespan,
                random,
            ];
            for (s, v) in sums.iter_mut().zip(makespans) {
                *s += v;
            }
        }
        let n = f64::from(cfg.trials);
        let means = sums.map(|s| s / n);
        let reference = means.get(1).copied().unwrap_or(f64::NAN);
        for (policy, makespan) in POLICIES.iter().zip(means) {
            rows.push(SchedulingRow {
                instance: class.name(),
                consistency: class.consistency.name().into(),
                task_heterogeneity: class.task.name().into(),
                machine_heterogeneity: class.machine.name().into(),
                policy: (*policy).into(),
                makespan,
                relative_to_min_min: makespan / reference,
            });
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str) -> EtcClass {
        *EtcClass::ALL.iter().find(|c| c.name() == name).unwrap()
    }

    #[test]
    fn classes_are_named_as_braun() {
        let names: Vec<String> = EtcClass::ALL.iter().map(EtcClass::name).collect();
        assert_eq!(
            names,
            [
                "c-hihi", "c-hilo", "c-lohi", "c-lolo", "i-hihi", "i-hilo", "i-lohi", "i-lolo"
            ]
        );
    }

    #[test]
    fn consistent_rows_are_sorted_and_values_in_range() {
        for c in EtcClass::ALL {
            let etc = generate(c, 64, 8, 7).unwrap();
            assert_eq!((etc.tasks(), etc.machines()), (64, 8));
            let top = c.task.task_range() * c.machine.machine_range();
            for row in etc.rows() {
                assert!(row.iter().all(|v| *v >= 1.0 && *v < top), "{row:?}");
                let sorted = row.windows(2).all(|w| w[0] <= w[1]);
                if c.consistency == Consistency::Consistent {
                    assert!(sorted, "{}: {row:?}", c.name());
                }
            }
            if c.consistency == Consistency::Inconsistent {
                assert!(etc.rows().any(|r| r.windows(2).any(|w| w[0] > w[1])));
            }
        }
        // The same seed gives the same matrix, another seed another.
        let c = class("i-hihi");
        assert_eq!(generate(c, 8, 4, 1).unwrap(), generate(c, 8, 4, 1).unwrap());
        assert_ne!(generate(c, 8, 4, 1).unwrap(), generate(c, 8, 4, 2).unwrap());
    }

    #[test]
    fn row_baselines_follow_task_heterogeneity() {
        // Every entry of a row lies in [τ, τ·φ_r), so a row's spread is below φ_r.
        for c in EtcClass::ALL {
            let etc = generate(c, 32, 8, 3).unwrap();
            for row in etc.rows() {
                let lo = row.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = row.iter().copied().fold(0.0, f64::max);
                assert!(hi / lo < c.machine.machine_range());
            }
        }
    }

    #[test]
    fn heuristics_give_valid_schedules_above_the_lower_bound() {
        for (k, c) in EtcClass::ALL.iter().enumerate() {
            let etc = generate(*c, 96, 6, k as u64).unwrap();
            let lb = etc.lower_bound();
            let mut rng = Draw::new(1);
            for s in [
                min_min(&etc),
                max_min(&etc),
                mct(&etc),
                mct_estimated(&etc),
                olb(&etc),
                random_assignment(&etc, &mut rng),
            ] {
                assert_eq!(s.assignment.len(), 96);
                assert!(s.assignment.iter().all(|m| *m < 6));
                let again = etc.makespan(&s.assignment).unwrap();
                assert!(
                    (again - s.makespan).abs() <= 1e-9 * again,
                    "{again} {}",
                    s.makespan
                );
                assert!(s.makespan >= lb * (1.0 - 1e-12), "{} < {lb}", s.makespan);
            }
        }
    }

    #[test]
    fn min_min_and_max_min_by_hand() {
        // t0: 2 on m0, 4 on m1; t1: 3, 1; t2: 5, 7.
        let etc = Etc::new(3, 2, vec![2.0, 4.0, 3.0, 1.0, 5.0, 7.0]).unwrap();
        // Min-min: t1 → m1 (1), then t0 → m0 (2), then t2: m0 at 2 + 5 = 7 against m1 at
        // 1 + 7 = 8 → m0. Makespan 7.
        let s = min_min(&etc);
        assert_eq!(s.assignment, vec![0, 1, 0]);
        assert_eq!(s.makespan, 7.0);
        // Max-min: minimum completions 2, 1, 5 → t2 → m0 (5); then t0: m0 7, m1 4 and t1: m1 1
        // → t0 → m1 (4); then t1: m0 8, m1 5 → m1. Makespan 5 (optimal here).
        let s = max_min(&etc);
        assert_eq!(s.assignment, vec![1, 1, 0]);
        assert_eq!(s.makespan, 5.0);
        // Lower bound: fastest times 2, 1, 5: max(8 / 2, 5) = 5, so max-min is optimal here.
        assert_eq!(etc.lower_bound(), 5.0);
        // MCT in order: t0 → m0 (2), t1 → m1 (1), t2: m0 7, m1 8 → m0. OLB: t0 → m0, t1 → m1,
        // t2 → m1 (ready at 1 < 2).
        assert_eq!(mct(&etc).assignment, vec![0, 1, 0]);
        let o = olb(&etc);
        assert_eq!(o.assignment, vec![0, 1, 1]);
        assert_eq!(o.makespan, 8.0);
    }

    #[test]
    fn bad_matrices_are_refused() {
        assert!(Etc::new(0, 2, vec![]).is_err());
        assert!(Etc::new(2, 2, vec![1.0; 3]).is_err());
        assert!(Etc::new(1, 2, vec![1.0, f64::NAN]).is_err());
        assert!(Etc::new(1, 2, vec![1.0, 0.0]).is_err());
        let etc = Etc::new(1, 2, vec![1.0, 2.0]).unwrap();
        assert_eq!(etc.makespan(&[2]), None);
        assert_eq!(etc.makespan(&[]), None);
    }

    #[test]
    fn engine_completes_every_task_above_the_lower_bound() {
        for (k, c) in EtcClass::ALL.iter().enumerate() {
            let etc = generate(*c, 40, 4, 100 + k as u64).unwrap();
            let out = engine_schedule(&etc).unwrap();
            assert_eq!(out.assignment.len(), 40);
            assert!(out.assignment.iter().all(|m| *m < 4));
            let lb = etc.lower_bound();
            assert!(
                out.makespan >= lb * (1.0 - 1e-12),
                "{}: {} < {lb}",
                c.name(),
                out.makespan
            );
            // Machines run back to back at best, so the makespan is at least the busiest one's.
            let busy = etc.makespan(&out.assignment).unwrap();
            assert!(out.makespan >= busy * (1.0 - 1e-12));
            // Consistent instances: machine 0 is the fastest, so it has the top score.
            if c.consistency == Consistency::Consistent {
                assert_eq!(out.scores.iter().max(), out.scores.first());
            }
        }
    }

    #[test]
    fn engine_on_identical_machines_is_list_scheduling() {
        // Two identical machines, four tasks of 100, 200, 300, 400 ms (too long for the
        // prefetch): FIFO list scheduling gives m0: 100 then 300 (ends 400), m1: 200 then 400
        // (ends 600).
        let etc = Etc::new(
            4,
            2,
            vec![100.0, 100.0, 200.0, 200.0, 300.0, 300.0, 400.0, 400.0],
        )
        .unwrap();
        let out = engine_schedule(&etc).unwrap();
        assert_eq!(out.assignment, vec![0, 1, 0, 1]);
        assert_eq!(out.makespan, 600.0);
        assert_eq!(out.largest_batch, 1);
        assert_eq!(out.scores, vec![1000, 1000]);
    }

    #[test]
    fn run_is_deterministic_and_covers_every_class() {
        let cfg = SchedulingConfig {
            tasks: 16,
            machines: 3,
            trials: 2,
        };
        let a = run(&cfg, 9).unwrap();
        let b = run(&cfg, 9).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 8 * POLICIES.len());
        for c in EtcClass::ALL {
            let rows: Vec<&SchedulingRow> = a.iter().filter(|r| r.instance == c.name()).collect();
            assert_eq!(rows.len(), POLICIES.len());
            let mm = rows.iter().find(|r| r.policy == "min-min").unwrap();
            assert_eq!(mm.relative_to_min_min, 1.0);
            assert!(
                rows.iter()
                    .all(|r| r.makespan > 0.0 && r.makespan.is_finite())
            );
        }
        assert_ne!(a, run(&cfg, 10).unwrap());
        assert!(run(&SchedulingConfig { trials: 0, ..cfg }, 1).is_err());
    }

    #[test]
    fn config_defaults_and_unknown_fields() {
        let cfg: SchedulingConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(
            (cfg.tasks, cfg.machines, cfg.trials),
            (512, 16, DEFAULT_TRIALS)
        );
        let cfg: SchedulingConfig = serde_json::from_str(r#"{"tasks": 64}"#).unwrap();
        assert_eq!((cfg.tasks, cfg.machines), (64, 16));
        assert!(serde_json::from_str::<SchedulingConfig>(r#"{"task": 64}"#).is_err());
    }
}
