//! What a run measures while it goes: task and job latencies, wrong results accepted, earnings per
//! class, and busy and available slot time over virtual time.

use engine::{AccountId, TaskId, Time};
use std::collections::{BTreeMap, BTreeSet};

/// Busy and available slot-milliseconds per time bucket. Buckets start at 1 s and double in
/// width (merging pairs) whenever there would be more than [`Timeline::MAX_BUCKETS`], so a run
/// of any length keeps a bounded series.
#[derive(Clone, Debug)]
pub struct Timeline {
    pub width: Time,
    pub busy: Vec<f64>,
    pub cap: Vec<f64>,
    /// Capacity is a step function: the level since `cap_since`.
    cap_since: Time,
}

impl Timeline {
    pub const MAX_BUCKETS: usize = 1024;

    fn new() -> Timeline {
        Timeline {
            width: 1000,
            busy: Vec::new(),
            cap: Vec::new(),
            cap_since: 0,
        }
    }

    fn grow_to(&mut self, end: Time) {
        while end.div_ceil(self.width) as usize > Self::MAX_BUCKETS {
            for v in [&mut self.busy, &mut self.cap] {
                let merged: Vec<f64> = v.chunks(2).map(|c| c.iter().sum()).collect();
                *v = merged;
            }
            self.width *= 2;
        }
        let n = end.div_ceil(self.width) as usize;
        if self.busy.len() < n {
            self.busy.resize(n, 0.0);
            self.cap.resize(n, 0.0);
        }
    }

    fn add(which: &mut [f64], width: Time, from: Time, to: Time, level: f64) {
        let mut t = from;
        while t < to {
            let bucket = (t / width) as usize;
            let end = ((t / width) + 1) * width;
            let end = end.min(to);
            if let Some(b) = which.get_mut(bucket) {
                *b += (end - t) as f64 * level;
            }
            t = end;
        }
    }

    /// One slot was busy over `[from, to)`.
    pub fn busy(&mut self, from: Time, to: Time) {
        if to <= from {
            return;
        }
        self.grow_to(to);
        Self::add(&mut self.busy, self.width, from, to, 1.0);
    }

    /// The number of live slots was `level` from the last change until `now`.
    pub fn capacity(&mut self, now: Time, level: u64) {
        if now > self.cap_since {
            self.grow_to(now);
            Self::add(&mut self.cap, self.width, self.cap_since, now, level as f64);
        }
        self.cap_since = self.cap_since.max(now);
    }

    /// Utilization (0–1) per bucket up to `end`, as (bucket start in seconds, value).
    pub fn utilization(&self, end: Time) -> Vec<(f64, f64)> {
        let n = (end.div_ceil(self.width) as usize).min(self.busy.len());
        (0..n)
            .map(|i| {
                let cap = self.cap[i];
                let u = if cap > 0.0 { self.busy[i] / cap } else { 0.0 };
                ((i as u64 * self.width) as f64 / 1000.0, u.min(1.0))
            })
            .collect()
    }

    /// Busy slot time over available slot time, over the whole run.
    pub fn overall(&self) -> f64 {
        let cap: f64 = self.cap.iter().sum();
        if cap > 0.0 {
            self.busy.iter().sum::<f64>() / cap
        } else {
            0.0
        }
    }
}

/// A snapshot of cumulative earnings and slashes per class.
#[derive(Clone, Debug)]
pub struct Sample {
    pub time: Time,
    pub earned: Vec<u128>,
    pub slashed: Vec<u128>,
}

#[derive(Clone, Debug)]
pub struct Metrics {
    /// Engine inputs applied.
    pub inputs: u64,
    /// Accepted results standing: a result reopened (rules 16) no longer counts until it is
    /// accepted again.
    pub accepted: u64,
    /// Of those, the wrong ones (`wrong_tasks.len()`).
    pub wrong: u64,
    /// The tasks whose standing accepted result is wrong.
    pub wrong_tasks: BTreeSet<TaskId>,
    /// Accepted results reopened because their provider was caught lying (rules 16), and how
    /// many of them were wrong (found by backtracking before their job completed).
    pub reopened: u64,
    pub reopened_wrong: u64,
    /// Rules 19: completed jobs reopened to correct results (a job once per reopening).
    pub jobs_corrected: u64,
    pub tasks_failed: u64,
    /// Submission to acceptance, per accepted task, ms.
    pub latencies: Vec<u64>,
    /// Submission to the end, per finished job, ms.
    pub job_times: Vec<u64>,
    pub jobs_completed: u64,
    pub jobs_failed: u64,
    pub class_providers: Vec<u64>,
    pub class_earned: Vec<u128>,
    pub class_slashed: Vec<u128>,
    /// Stake bonded after joining: restake top-ups and sybils' fresh accounts, base units.
    pub class_stake_bought: Vec<u128>,
    pub slashes: u64,
    pub crashes: u64,
    /// Spot checks the engine drew (`Event::SpotCheck`).
    pub spot_checks: u64,
    /// `Event::ReplicasQueued` by its reason.
    pub replicas_queued: BTreeMap<String, u64>,
    /// Sybils' re-entries under a fresh account.
    pub reentries: u64,
    /// Slashed accounts to bond again (`network.restake`) or to replace (a sybil's).
    pub restake: Vec<AccountId>,
    pub timeline: Timeline,
    pub samples: Vec<Sample>,
    pub end: Time,
}

impl Metrics {
    pub fn new(classes: usize) -> Metrics {
        Metrics {
            inputs: 0,
            accepted: 0,
            wrong: 0,
            wrong_tasks: BTreeSet::new(),
            reopened: 0,
            reopened_wrong: 0,
            jobs_corrected: 0,
            tasks_failed: 0,
            latencies: Vec::new(),
            job_times: Vec::new(),
            jobs_completed: 0,
            jobs_failed: 0,
            class_providers: vec![0; classes],
            class_earned: vec![0; classes],
            class_slashed: vec![0; classes],
            class_stake_bought: vec![0; classes],
            slashes: 0,
            crashes: 0,
            spot_checks: 0,
            replicas_queued: BTreeMap::new(),
            reentries: 0,
            restake: Vec::new(),
            timeline: Timeline::new(),
            samples: Vec::new(),
            end: 0,
        }
    }

    pub fn accepted(&mut self, task: TaskId, latency: Time, wrong: bool) {
        self.accepted += 1;
        if wrong && self.wrong_tasks.insert(task) {
            self.wrong += 1;
        }
        self.latencies.push(latency);
    }

    /// Task `task`'s accepted result was reopened (rules 16): it stands no more.
    pub fn reopened(&mut self, task: TaskId) {
        self.reopened += 1;
        self.accepted = self.accepted.saturating_sub(1);
        if self.wrong_tasks.remove(&task) {
            self.wrong -= 1;
            self.reopened_wrong += 1;
        }
    }

    pub fn job_over(&mut self, took: Time, completed: bool) {
        self.job_times.push(took);
        if completed {
            self.jobs_completed += 1;
        } else {
            self.jobs_failed += 1;
        }
    }

    pub fn sample(&mut self, time: Time) {
        self.samples.push(Sample {
            time,
            earned: self.class_earned.clone(),
            slashed: self.class_slashed.clone(),
        });
    }
}

/// Mean and 99th percentile (nearest rank) of `values`, in the same unit; zeros when empty.
pub fn mean_p99(values: &mut [u64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let mean = values.iter().map(|v| *v as f64).sum::<f64>() / values.len() as f64;
    let rank = (values.len() * 99).div_ceil(100).max(1) - 1;
    let (_, p99, _) = values.select_nth_unstable(rank);
    (mean, *p99 as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_integrates_busy_and_capacity_across_merges() {
        let mut t = Timeline::new();
        t.capacity(0, 0);
        // Two slots live for the whole run, one busy half the time.
        t.busy(0, 500_000);
        t.capacity(3_000_000, 2);
        assert!(t.width > 1000, "buckets merged");
        assert!((t.overall() - 500_000.0 / 6_000_000.0).abs() < 1e-9);
        let u = t.utilization(3_000_000);
        assert!(u.first().is_some_and(|(_, v)| (*v - 0.5).abs() < 1e-9));
        assert!(u.last().is_some_and(|(_, v)| *v == 0.0));
    }

    #[test]
    fn p99_is_nearest_rank() {
        let mut v: Vec<u64> = (1..=200).collect();
        assert_eq!(mean_p99(&mut v), (100.5, 198.0));
        assert_eq!(mean_p99(&mut []), (0.0, 0.0));
    }
}
