//! One run's summary: what the issue asks a run to report, as a table and as JSON.

use crate::config::SimConfig;
use crate::metrics::mean_p99;
use crate::world::{World, correct_hash};
use engine::{BASE_UNITS_PER_TOKEN, TaskId};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Clone, Debug, Serialize)]
pub struct ClassSummary {
    pub class: String,
    pub behaviour: String,
    pub providers: u64,
    pub earned_tokens: f64,
    pub slashed_tokens: f64,
    /// Earned minus slashed.
    pub net_tokens: f64,
    pub mean_net_tokens: f64,
    /// Providers (machines) any of whose accounts was slashed.
    pub slashed_providers: u64,
    /// Stake bonded after joining: restake top-ups and sybils' fresh accounts.
    pub stake_bought_tokens: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub name: String,
    pub seed: u64,
    /// Providers that ever joined.
    pub providers: u64,
    pub jobs: u64,
    pub tasks: u64,
    pub jobs_completed: u64,
    pub jobs_failed: u64,
    pub tasks_accepted: u64,
    pub tasks_failed: u64,
    /// Virtual time from the first submission to the last job's end.
    pub makespan_s: f64,
    /// Busy slot time over live slot time, up to the makespan.
    pub utilization: f64,
    /// From the job's submission to the task's accepted result.
    pub task_latency_mean_s: f64,
    pub task_latency_p99_s: f64,
    /// From submission to the job's end.
    pub job_time_mean_s: f64,
    pub job_time_p99_s: f64,
    /// Accepted results that were wrong, over accepted results (those standing: a result
    /// reopened by backtracking, rules 16, counts only once accepted again).
    pub accepted_wrong_rate: f64,
    pub wrong_accepted: u64,
    /// Accepted results reopened because their provider was caught lying (rules 16), and the
    /// wrong ones among them.
    pub reopened: u64,
    pub reopened_wrong: u64,
    /// Rules 19: completed jobs reopened to correct results after delivery (once per
    /// reopening).
    #[serde(default)]
    pub jobs_corrected: u64,
    /// Runs that returned a result or failed, per task, from the engine's records.
    pub mean_executions: f64,
    /// The same, over accepted tasks only.
    pub mean_executions_accepted: f64,
    /// The same measures over the jobs submitted after `workload.warmup_tasks`.
    pub warm: Warm,
    /// Spot checks the engine drew.
    pub spot_checks: u64,
    /// Rounds of replicas the engine queued (`ReplicasQueued`), by reason.
    pub replicas_queued: BTreeMap<String, u64>,
    /// Sybils' re-entries under a fresh account.
    pub reentries: u64,
    pub classes: Vec<ClassSummary>,
    /// Earned minus slashed, over every saboteur.
    pub cheaters_net_tokens: f64,
    pub crashes: u64,
    pub slashes: u64,
    /// Inputs the engine applied.
    pub engine_inputs: u64,
    /// Simulation events processed.
    pub events: u64,
    /// `State::hash` at the end: the same seed gives the same hash.
    pub state_hash: String,
    /// Wall-clock seconds the run took (the only field that differs between identical runs).
    pub wall_s: f64,
}

pub fn tokens_f64(amount: u128) -> f64 {
    amount as f64 / BASE_UNITS_PER_TOKEN as f64
}

/// Verification measured over the warm window: the jobs submitted after the first
/// `workload.warmup_tasks` tasks (the whole run when that is 0).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Warm {
    pub tasks_accepted: u64,
    pub wrong_accepted: u64,
    /// `wrong_accepted / tasks_accepted`.
    pub wrong_rate: f64,
    /// Runs that returned a result or failed, over accepted tasks.
    pub runs: u64,
    /// `runs / tasks_accepted`.
    pub mean_executions: f64,
}

impl Summary {
    pub fn of(cfg: &SimConfig, world: &mut World<'_>, wall_s: f64) -> Summary {
        let m = &mut world.metrics;
        let (lat_mean, lat_p99) = mean_p99(&mut m.latencies);
        let (job_mean, job_p99) = mean_p99(&mut m.job_times);
        let m = &world.metrics;
        let (mut runs, mut tasks) = (0u64, 0u64);
        let (mut accepted_runs, mut accepted) = (0u64, 0u64);
        let mut warm = Warm::default();
        // Jobs in submission order (ids are given in order): those whose tasks all come after
        // the first `warmup_tasks` are the warm window.
        let mut before = 0u64;
        for job in world.state.jobs.values() {
            let measured = before >= cfg.workload.warmup_tasks;
            before += job.tasks.len() as u64;
            for (index, task) in job.tasks.iter().enumerate() {
                runs += task.executions() as u64;
                tasks += 1;
                if let Some(result) = &task.result {
                    accepted_runs += task.executions() as u64;
                    accepted += 1;
                    if measured {
                        let id = TaskId {
                            job: job.id,
                            index: index as u32,
                        };
                        warm.tasks_accepted += 1;
                        warm.runs += task.executions() as u64;
                        if result.output_hash != correct_hash(id) {
                            warm.wrong_accepted += 1;
                        }
                    }
                }
            }
        }
        warm.mean_executions = warm.runs as f64 / warm.tasks_accepted.max(1) as f64;
        warm.wrong_rate = warm.wrong_accepted as f64 / warm.tasks_accepted.max(1) as f64;
        let slashed_providers = world.slashed_providers();
        let classes: Vec<ClassSummary> = cfg
            .classes
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let earned = tokens_f64(m.class_earned[i]);
                let slashed = tokens_f64(m.class_slashed[i]);
                let providers = m.class_providers[i];
                ClassSummary {
                    class: c.name.clone(),
                    behaviour: c.label(),
                    providers,
                    earned_tokens: earned,
                    slashed_tokens: slashed,
                    net_tokens: earned - slashed,
                    mean_net_tokens: if providers > 0 {
                        (earned - slashed) / providers as f64
                    } else {
                        0.0
                    },
                    slashed_providers: slashed_providers[i],
                    stake_bought_tokens: tokens_f64(m.class_stake_bought[i]),
                }
            })
            .collect();
        let cheaters_net_tokens = cfg
            .classes
            .iter()
            .zip(&classes)
            .filter(|(c, _)| c.is_saboteur())
            .map(|(_, s)| s.net_tokens)
            .fold(0.0, |a, b| a + b);
        Summary {
            name: cfg.name.clone(),
            seed: cfg.seed,
            providers: world.provider_count() as u64,
            jobs: world.jobs_submitted(),
            tasks: world.tasks_submitted(),
            jobs_completed: m.jobs_completed,
            jobs_failed: m.jobs_failed,
            tasks_accepted: m.accepted,
            tasks_failed: m.tasks_failed,
            makespan_s: m.end as f64 / 1000.0,
            utilization: m.timeline.overall(),
            task_latency_mean_s: lat_mean / 1000.0,
            task_latency_p99_s: lat_p99 / 1000.0,
            job_time_mean_s: job_mean / 1000.0,
            job_time_p99_s: job_p99 / 1000.0,
            accepted_wrong_rate: if m.accepted > 0 {
                m.wrong as f64 / m.accepted as f64
            } else {
                0.0
            },
            wrong_accepted: m.wrong,
            reopened: m.reopened,
            reopened_wrong: m.reopened_wrong,
            jobs_corrected: m.jobs_corrected,
            mean_executions: if tasks > 0 {
                runs as f64 / tasks as f64
            } else {
                0.0
            },
            mean_executions_accepted: if accepted > 0 {
                accepted_runs as f64 / accepted as f64
            } else {
                0.0
            },
            warm,
            spot_checks: m.spot_checks,
            replicas_queued: m.replicas_queued.clone(),
            reentries: m.reentries,
            classes,
            cheaters_net_tokens,
            crashes: m.crashes,
            slashes: m.slashes,
            engine_inputs: m.inputs,
            events: world.events,
            state_hash: world.state.hash().to_hex(),
            wall_s,
        }
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let mut rows: Vec<(&str, String)> = vec![
            ("run", format!("{} (seed {})", self.name, self.seed)),
            ("providers", thousands(self.providers)),
            (
                "jobs",
                format!(
                    "{} ({} completed, {} failed)",
                    thousands(self.jobs),
                    thousands(self.jobs_completed),
                    thousands(self.jobs_failed)
                ),
            ),
            (
                "tasks",
                format!(
                    "{} ({} accepted, {} failed)",
                    thousands(self.tasks),
                    thousands(self.tasks_accepted),
                    thousands(self.tasks_failed)
                ),
            ),
            ("makespan", format!("{:.1} s virtual", self.makespan_s)),
            ("utilization", format!("{:.1} %", self.utilization * 100.0)),
            (
                "task latency",
                format!(
                    "mean {:.2} s, p99 {:.2} s",
                    self.task_latency_mean_s, self.task_latency_p99_s
                ),
            ),
            (
                "job time",
                format!(
                    "mean {:.1} s, p99 {:.1} s",
                    self.job_time_mean_s, self.job_time_p99_s
                ),
            ),
            (
                "accepted wrong results",
                format!(
                    "{:.4} % ({} tasks)",
                    self.accepted_wrong_rate * 100.0,
                    thousands(self.wrong_accepted)
                ),
            ),
            (
                "executions per task",
                format!("{:.3}", self.mean_executions),
            ),
            (
                "cheaters' net earnings",
                format!("{:.3} tokens", self.cheaters_net_tokens),
            ),
            (
                "crashes, slashes",
                format!("{}, {}", thousands(self.crashes), thousands(self.slashes)),
            ),
            (
                "engine inputs",
                format!(
                    "{} ({} events)",
                    thousands(self.engine_inputs),
                    thousands(self.events)
                ),
            ),
            ("state hash", self.state_hash.clone()),
            ("wall time", format!("{:.1} s", self.wall_s)),
        ];
        if self.reopened > 0 {
            // After the wrong results: what backtracking found (rules 19: after delivery too).
            rows.insert(
                rows.iter()
                    .position(|(k, _)| *k == "accepted wrong results")
                    .map_or(rows.len(), |i| i + 1),
                (
                    "results reopened",
                    format!(
                        "{} ({} of them wrong; {} completed jobs corrected)",
                        thousands(self.reopened),
                        thousands(self.reopened_wrong),
                        thousands(self.jobs_corrected)
                    ),
                ),
            );
        }
        for (k, v) in rows {
            let _ = writeln!(s, "{k:<24}{v}");
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:<14}{:<22}{:>10}{:>14}{:>14}{:>14}{:>16}",
            "class", "behaviour", "providers", "earned", "slashed", "net", "net/provider"
        );
        for c in &self.classes {
            let _ = writeln!(
                s,
                "{:<14}{:<22}{:>10}{:>14.3}{:>14.3}{:>14.3}{:>16.6}",
                c.class,
                c.behaviour,
                thousands(c.providers),
                c.earned_tokens,
                c.slashed_tokens,
                c.net_tokens,
                c.mean_net_tokens
            );
        }
        s
    }
}

/// 1234567 → "1,234,567".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
