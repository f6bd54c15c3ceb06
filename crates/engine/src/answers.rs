//! Rules 11: exit statuses as answers. A program may answer with its exit status as well as its
//! output — an SMT solver exits 10 for "sat" and 20 for "unsat", `grep` 1 for "no match" — so a
//! job declares which statuses are a successful answer ([`JobOptions::success_exits`]; 0 alone
//! unless it says otherwise). A run that exits with one of them returned a result: its output is
//! kept, and the status is part of what verification compares (two runs agree only if they
//! exited with the same status, output and fuel). A run that exits with any other status —
//! 0 included, when the job does not list it — failed, and the failure is verified like one
//! (see [`crate::verify::failure_key`]).

use crate::command::{Event, Rejection};
use crate::state::State;
use crate::storage::StorageClaim;
use crate::types::{AccountId, JobId, JobSpec, TaskId, TaskOutcome, Time};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The most exit statuses a job may list as answers.
pub const MAX_SUCCESS_EXITS: usize = 16;
/// The highest exit status a WASI preview-1 program can return (`proc_exit` takes `[0, 126)`).
pub const MAX_EXIT_STATUS: i32 = 125;

/// What a job says beyond its spec (rules 11). Always encoded in full: log entries are postcard.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobOptions {
    /// The exit statuses that are a successful answer. Empty means 0 alone.
    #[serde(default)]
    pub success_exits: Vec<i32>,
}

impl JobOptions {
    /// The statuses, sorted and checked: each in `[0, 125]`, none twice, at most
    /// [`MAX_SUCCESS_EXITS`]. `[0]` for an empty list.
    pub fn answers(&self) -> Result<Vec<i32>, String> {
        if self.success_exits.is_empty() {
            return Ok(vec![0]);
        }
        if self.success_exits.len() > MAX_SUCCESS_EXITS {
            return Err(format!(
                "success_exits lists {} statuses; at most {MAX_SUCCESS_EXITS}",
                self.success_exits.len()
            ));
        }
        if let Some(bad) = self
            .success_exits
            .iter()
            .find(|s| !(0..=MAX_EXIT_STATUS).contains(*s))
        {
            return Err(format!(
                "success_exits: {bad} is not an exit status a WASI program can return (0 to {MAX_EXIT_STATUS})"
            ));
        }
        let mut sorted = self.success_exits.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != self.success_exits.len() {
            return Err("success_exits lists a status twice".into());
        }
        Ok(sorted)
    }
}

/// Every job's answer statuses where they are not 0 alone, and the statuses of accepted results
/// that were not 0 (rules 11; empty before).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answers {
    /// Jobs whose answers are not 0 alone: their statuses, sorted.
    pub jobs: BTreeMap<JobId, Vec<i32>>,
    /// Accepted results whose runs exited with a status other than 0.
    #[serde(with = "crate::audit::by_task")]
    pub statuses: BTreeMap<TaskId, i32>,
}

/// The exit status of a run that exited (`Success` is 0); `None` for a trap, a limit or a timeout.
pub fn exit_status(outcome: &TaskOutcome) -> Option<i32> {
    match outcome {
        TaskOutcome::Success => Some(0),
        TaskOutcome::Exit(status) => Some(*status),
        _ => None,
    }
}

impl State {
    /// The exit statuses job `job`'s map tasks take as answers (0 alone unless it was submitted
    /// with others).
    pub fn success_exits(&self, job: JobId) -> &[i32] {
        self.answers.jobs.get(&job).map_or(&[0], Vec::as_slice)
    }

    /// The exit status task `task`'s accepted result exited with (0 unless recorded otherwise).
    pub fn accepted_status(&self, task: TaskId) -> i32 {
        self.answers.statuses.get(&task).copied().unwrap_or(0)
    }

    /// Whether a report of `outcome` for task `task` returns a result (whose output must then be
    /// stored): a success, or under rules 11 an exit status the job takes as an answer.
    pub fn is_answer(&self, task: TaskId, outcome: &TaskOutcome) -> bool {
        self.answer_status(task, outcome).is_some()
    }

    /// Whether a run of task `task` that ended with `outcome` returned an answer, and with
    /// which status. Before rules 11 only a success is one; a reduce task's answer is 0 alone
    /// (the job's statuses are its map program's).
    pub(crate) fn answer_status(&self, task: TaskId, outcome: &TaskOutcome) -> Option<i32> {
        let is_map = self
            .jobs
            .get(&task.job)
            .is_some_and(|j| (task.index as usize) < j.spec.tasks.len());
        if self.rules < 11 || !is_map {
            return (*outcome == TaskOutcome::Success).then_some(0);
        }
        exit_status(outcome).filter(|s| self.success_exits(task.job).contains(s))
    }

    /// Rules 11: submits `spec` with `options` (and a storage claim where the network prices
    /// storage), recording the job's answer statuses.
    pub(crate) fn submit_with_options(
        &mut self,
        owner: AccountId,
        spec: &JobSpec,
        storage: Option<&StorageClaim>,
        options: &JobOptions,
        now: Time,
    ) -> Result<Vec<Event>, Rejection> {
        if self.rules < 11 {
            return Err(Rejection::NeedsRules {
                what: "a job with options (success_exits)".into(),
                needs: 11,
                runs: self.rules,
            });
        }
        let answers = options.answers().map_err(Rejection::InvalidJobSpec)?;
        // `submit` gives the job the next id.
        let job = self.next_job;
        let events = match storage {
            Some(claim) => self.submit_with_storage(owner, spec, claim, now)?,
            None if self.storage.params.is_some() => return Err(Rejection::StorageUnclaimed),
            None => self.submit(owner, spec, now)?,
        };
        if answers != [0] {
            self.answers.jobs.insert(job, answers);
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_lists_are_checked_and_sorted() {
        let of = |s: &[i32]| {
            JobOptions {
                success_exits: s.to_vec(),
            }
            .answers()
        };
        type Want = Result<Vec<i32>, &'static str>;
        let table: &[(&[i32], Want)] = &[
            (&[], Ok(vec![0])),
            (&[0], Ok(vec![0])),
            (&[20, 10], Ok(vec![10, 20])),
            (&[0, 125], Ok(vec![0, 125])),
            (&[126], Err("126 is not an exit status")),
            (&[-1], Err("-1 is not an exit status")),
            (&[3, 3], Err("twice")),
            (&[0; 17], Err("at most 16")),
        ];
        for (input, want) in table {
            match (of(input), want) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "{input:?}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{input:?}: {got}"),
                (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn only_listed_statuses_are_answers() {
        assert_eq!(exit_status(&TaskOutcome::Success), Some(0));
        assert_eq!(exit_status(&TaskOutcome::Exit(10)), Some(10));
        assert_eq!(exit_status(&TaskOutcome::OutOfFuel), None);
        assert_eq!(exit_status(&TaskOutcome::Trap("x".into())), None);
    }
}
