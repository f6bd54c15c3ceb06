//! Rules 11: what a job says beyond its spec ([`JobOptions`]), submitted with
//! `Action::SubmitJobWithOptions`.
//!
//! - **Exit statuses as answers.** A program may answer with its exit status as well as its
//!   output — an SMT solver exits 10 for "sat" and 20 for "unsat", `grep` 1 for "no match" — so
//!   a job declares which statuses are a successful answer ([`JobOptions::success_exits`]; 0
//!   alone unless it says otherwise). A run that exits with one of them returned a result: its
//!   output is kept, and the status is part of what verification compares (two runs agree only
//!   if they exited with the same status, output and fuel). A run that exits with any other
//!   status — 0 included, when the job does not list it — failed, and the failure is verified
//!   like one (see [`crate::verify::failure_key`]).
//! - **Entry point.** A module that is not a WASI command (a "reactor", or a packaged build
//!   whose entry is not `_start`) names its entry export ([`JobOptions::entry`]): the sandbox
//!   calls `_initialize` if the module exports it, then the entry, whose `i32` result (if it
//!   has one) is the exit status.

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
/// The longest entry export name a job may give.
pub const MAX_ENTRY_LEN: usize = 128;

/// What a job says beyond its spec (rules 11). Always encoded in full: log entries are postcard.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobOptions {
    /// The exit statuses that are a successful answer. Empty means 0 alone.
    #[serde(default)]
    pub success_exits: Vec<i32>,
    /// The export its map tasks run instead of `_start` (after `_initialize`, if exported): a
    /// function of type `[] -> []` or `[] -> [i32]` (the result is the exit status).
    #[serde(default)]
    pub entry: Option<String>,
}

impl JobOptions {
    /// The options checked and in their one form: statuses sorted (empty for 0 alone), an entry
    /// of `_start` left out. `Err` says what is wrong.
    pub fn normalised(&self) -> Result<JobOptions, String> {
        let answers = self.answers()?;
        let entry = match self.entry.as_deref() {
            None | Some("_start") => None,
            Some("") => return Err("entry is empty".into()),
            Some("_initialize") => {
                return Err(
                    "entry `_initialize` is what the sandbox calls before the entry".into(),
                );
            }
            Some(name) if name.len() > MAX_ENTRY_LEN => {
                return Err(format!("entry is longer than {MAX_ENTRY_LEN} bytes"));
            }
            Some(name) => Some(name.to_string()),
        };
        Ok(JobOptions {
            success_exits: if answers == [0] { Vec::new() } else { answers },
            entry,
        })
    }

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

/// Every job's options where they are not the default, and the statuses of accepted results
/// that were not 0 (rules 11; empty before).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Options {
    /// Jobs submitted with options other than the default: their options, normalised
    /// ([`JobOptions::normalised`]).
    pub jobs: BTreeMap<JobId, JobOptions>,
    /// Accepted results whose runs exited with a status other than 0.
    #[serde(with = "crate::audit::by_task")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
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
        match self.options.jobs.get(&job) {
            Some(o) if !o.success_exits.is_empty() => &o.success_exits,
            _ => &[0],
        }
    }

    /// The export job `job`'s map tasks run instead of `_start`, if it named one.
    pub fn entry(&self, job: JobId) -> Option<&str> {
        self.options.jobs.get(&job)?.entry.as_deref()
    }

    /// Job `job`'s options (the default ones unless it was submitted with others).
    pub fn job_options(&self, job: JobId) -> JobOptions {
        self.options.jobs.get(&job).cloned().unwrap_or_default()
    }

    /// The exit status task `task`'s accepted result exited with (0 unless recorded otherwise).
    pub fn accepted_status(&self, task: TaskId) -> i32 {
        self.options.statuses.get(&task).copied().unwrap_or(0)
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
                what: "a job with options (success_exits, entry)".into(),
                needs: 11,
                runs: self.rules,
            });
        }
        let options = options.normalised().map_err(Rejection::InvalidJobSpec)?;
        // `submit` gives the job the next id.
        let job = self.next_job;
        let events = self.submit_claimed(owner, spec, storage, now)?;
        if options != JobOptions::default() {
            self.options.jobs.insert(job, options);
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
                entry: None,
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
    fn options_have_one_form() {
        let of = |exits: &[i32], entry: Option<&str>| {
            JobOptions {
                success_exits: exits.to_vec(),
                entry: entry.map(str::to_string),
            }
            .normalised()
        };
        assert_eq!(of(&[0], Some("_start")), Ok(JobOptions::default()));
        assert_eq!(
            of(&[20, 10], Some("run")),
            Ok(JobOptions {
                success_exits: vec![10, 20],
                entry: Some("run".into()),
            })
        );
        for bad in ["", "_initialize", &"x".repeat(MAX_ENTRY_LEN + 1)] {
            assert!(of(&[], Some(bad)).is_err(), "{bad:?}");
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
