//! Rules 10: storage deposits. A job's blobs — its inputs, and the room it reserves for its tasks'
//! outputs — are paid for with a deposit, locked from the owner at submission and returned when
//! the job's storage is released: by the owner once the job has ended
//! ([`Action::ReleaseJob`](crate::Action::ReleaseJob)), or by the leader once the job has been
//! over for the genesis's `retention_ms` ([`LeaderCommand::ReleaseStorage`](crate::LeaderCommand::ReleaseStorage)).
//! From then on the job names no blob: validators delete those nothing else names.
//!
//! The engine never sees a blob, so the sizes come from the owner's signed claim
//! ([`StorageClaim`]): the total size of the distinct blobs its spec names (which every validator
//! holding them can check, and the leader checks at admission) and a limit on each task's output
//! (which every result is held to: a success with a larger output is impossible for an honest
//! sandbox, which runs the task under that limit, and counts as a failed attempt).

use crate::command::{Event, Rejection};
use crate::state::State;
use crate::types::{AccountId, Aggregate, Amount, JobId, JobSpec, Time};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What storage costs on a network (genesis, rules 10).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StorageParams {
    /// Deposit per KiB (rounded up) of a job's storage: its inputs plus its tasks' output room.
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub deposit_per_kib: Amount,
    /// How long a job's blobs stay stored after the job ended, unless its owner releases them
    /// first.
    pub retention_ms: u64,
    /// The largest output room a job may reserve per task.
    pub max_output_bytes: u64,
}

impl StorageParams {
    /// The development network's: 100 base units per KiB (about 0.1 GRID per GiB), a day of
    /// retention, and outputs of up to 64 MiB per task.
    pub fn dev() -> StorageParams {
        StorageParams {
            deposit_per_kib: 100,
            retention_ms: 24 * 60 * 60 * 1000,
            max_output_bytes: 64 << 20,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.max_output_bytes == 0 {
            return Err("storage.max_output_bytes must be positive".into());
        }
        Ok(())
    }
}

/// What a job's owner declares about its storage when submitting it (rules 10).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StorageClaim {
    /// Total size of the distinct blobs the spec names (module, inputs, stdin, reduce module).
    pub input_bytes: u64,
    /// The most output any one task of the job may return; a task writing more fails.
    pub output_bytes: u64,
}

impl StorageClaim {
    /// Bytes the claim reserves for `spec`: its inputs and an output's room per task (the reduce
    /// task included). `None` on overflow.
    pub fn bytes(&self, spec: &JobSpec) -> Option<u64> {
        let reduce = u64::from(matches!(spec.aggregate, Aggregate::Reduce(_)));
        let tasks = u64::try_from(spec.tasks.len()).ok()?.checked_add(reduce)?;
        self.output_bytes
            .checked_mul(tasks)?
            .checked_add(self.input_bytes)
    }
}

/// A job's storage: its owner's claim, the deposit it locked, and when it was released.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobStorage {
    pub claim: StorageClaim,
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub deposit: Amount,
    /// Set once released: the deposit went back to the owner and the job names no blob.
    pub released_at: Option<Time>,
}

/// The network's storage rules and every job's storage (rules 10; empty before).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Storage {
    /// `None`: this network takes no deposit (its jobs are submitted without a claim).
    pub params: Option<StorageParams>,
    pub jobs: BTreeMap<JobId, JobStorage>,
}

impl Storage {
    /// The deposit `claim` locks for `spec` under `params`: KiB (rounded up) × the price.
    pub fn deposit(params: &StorageParams, spec: &JobSpec, claim: &StorageClaim) -> Option<Amount> {
        let kib = claim.bytes(spec)?.div_ceil(1024);
        Amount::from(kib).checked_mul(params.deposit_per_kib)
    }

    /// What the deposits not yet released hold.
    pub fn held(&self) -> Option<Amount> {
        self.jobs
            .values()
            .filter(|s| s.released_at.is_none())
            .try_fold(0, |sum: Amount, s| sum.checked_add(s.deposit))
    }
}

impl State {
    /// Submits `spec` with its storage claim if it has one (rules 10); a network that prices
    /// storage takes a job only with one.
    pub(crate) fn submit_claimed(
        &mut self,
        owner: AccountId,
        spec: &JobSpec,
        storage: Option<&StorageClaim>,
        now: Time,
    ) -> Result<Vec<Event>, Rejection> {
        match storage {
            Some(claim) => self.submit_with_storage(owner, spec, claim, now),
            None if self.storage.params.is_some() => Err(Rejection::StorageUnclaimed),
            None => self.submit(owner, spec, now),
        }
    }

    /// Rules 10: submits `spec` with its owner's storage claim, locking the deposit beside the
    /// escrow (refused whole if the owner cannot pay both).
    pub(crate) fn submit_with_storage(
        &mut self,
        owner: AccountId,
        spec: &JobSpec,
        claim: &StorageClaim,
        now: Time,
    ) -> Result<Vec<Event>, Rejection> {
        if self.rules < 10 {
            return Err(Rejection::NeedsRules {
                what: "a job with a storage claim".into(),
                needs: 10,
                runs: self.rules,
            });
        }
        let deposit = match &self.storage.params {
            Some(params) => {
                if claim.output_bytes > params.max_output_bytes {
                    return Err(Rejection::InvalidJobSpec(format!(
                        "output room of {} bytes per task is above this network's {}",
                        claim.output_bytes, params.max_output_bytes
                    )));
                }
                Storage::deposit(params, spec, claim)
                    .ok_or_else(|| Rejection::TooLarge("storage claim overflows".into()))?
            }
            None => 0,
        };
        if deposit > 0 {
            // Checked before anything changes: the escrow and the deposit are paid together.
            let cost = self.check_escrow(&owner, spec)?;
            let need = cost
                .checked_add(deposit)
                .ok_or_else(|| Rejection::TooLarge("escrow and deposit overflow".into()))?;
            let available = self.balance(&owner);
            if available < need {
                return Err(Rejection::InsufficientFunds { need, available });
            }
        }
        // `submit` gives the job the next id.
        let job = self.next_job;
        let mut events = self.submit(owner, spec, now)?;
        self.debit(&owner, deposit)?;
        self.storage.jobs.insert(
            job,
            JobStorage {
                claim: *claim,
                deposit,
                released_at: None,
            },
        );
        events.push(Event::StorageDeposited {
            job,
            owner,
            amount: deposit,
            bytes: claim.bytes(spec).unwrap_or(u64::MAX),
        });
        Ok(events)
    }

    /// Rules 10: releases job `id`'s storage at its owner's request, once the job ended, and
    /// returns the deposit.
    pub(crate) fn release_storage(
        &mut self,
        id: JobId,
        owner: AccountId,
        now: Time,
    ) -> Result<Vec<Event>, Rejection> {
        self.check_release(id, Some(owner), now)?;
        self.free_storage(id, now)
    }

    /// Rules 10: the leader's [`LeaderCommand::ReleaseStorage`](crate::LeaderCommand): every
    /// job listed has been over for the retention time (all are checked before any is released).
    pub(crate) fn release_storages(
        &mut self,
        jobs: &[JobId],
        now: Time,
    ) -> Result<Vec<Event>, Rejection> {
        if jobs.is_empty() {
            return Err(Rejection::Empty("no jobs to release".into()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for id in jobs {
            if !seen.insert(*id) {
                return Err(Rejection::StorageHeld(format!("job {id} is listed twice")));
            }
            self.check_release(*id, None, now)?;
        }
        let mut events = Vec::new();
        for id in jobs {
            events.extend(self.free_storage(*id, now)?);
        }
        Ok(events)
    }

    /// Whether job `id`'s storage may be released at `now`: by its owner (`by`) once the job
    /// ended, by the leader once it has been over for the retention time.
    fn check_release(&self, id: JobId, by: Option<AccountId>, now: Time) -> Result<(), Rejection> {
        let job = self.jobs.get(&id).ok_or(Rejection::UnknownJob(id))?;
        if let Some(who) = by
            && job.owner != who
        {
            return Err(Rejection::NotJobOwner(id));
        }
        let storage = self.storage.jobs.get(&id).ok_or_else(|| {
            Rejection::StorageHeld(format!("job {id} was submitted without storage"))
        })?;
        if storage.released_at.is_some() {
            return Err(Rejection::StorageHeld(format!(
                "job {id}'s storage is already released"
            )));
        }
        let Some(finished) = job.finished_at.filter(|_| job.status.is_finished()) else {
            return Err(Rejection::StorageHeld(format!(
                "job {id} has not ended (cancel it first)"
            )));
        };
        let retention = self.storage.params.as_ref().map_or(0, |p| p.retention_ms);
        let due = finished.saturating_add(retention);
        if by.is_none() && now < due {
            return Err(Rejection::StorageHeld(format!(
                "job {id}'s storage is kept until {due}"
            )));
        }
        Ok(())
    }

    /// Releases job `id`'s storage (checked by [`State::check_release`]).
    fn free_storage(&mut self, id: JobId, now: Time) -> Result<Vec<Event>, Rejection> {
        let owner = self.jobs.get(&id).ok_or(Rejection::UnknownJob(id))?.owner;
        let Some(storage) = self.storage.jobs.get_mut(&id) else {
            return Err(Rejection::UnknownJob(id));
        };
        storage.released_at = Some(now);
        let amount = storage.deposit;
        if let Some(job) = self.jobs.get(&id) {
            // Its results are final now: nothing of it can be reopened any more.
            self.accepted.forget_job(job);
        }
        // Rules 30: nor compared again.
        self.forget_outputs(id);
        self.credit(&owner, amount)?;
        let mut events = vec![Event::StorageReleased {
            job: id,
            owner,
            amount,
        }];
        // Rules 19: its results are final; the correction reserve its escrow kept goes back.
        if self.rules >= 19 {
            events.extend(self.refund(id)?);
        }
        Ok(events)
    }

    /// Jobs whose storage the leader may release at `now`: ended for the retention time and not
    /// released yet.
    pub fn releasable_storage(&self, now: Time) -> Vec<JobId> {
        let Some(params) = &self.storage.params else {
            return Vec::new();
        };
        self.storage
            .jobs
            .iter()
            .filter(|(_, s)| s.released_at.is_none())
            .filter(|(id, _)| {
                self.jobs.get(id).is_some_and(|j| {
                    j.status.is_finished()
                        && j.finished_at
                            .is_some_and(|f| f.saturating_add(params.retention_ms) <= now)
                })
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// The most output a task of job `id` may return (rules 10, from its storage claim).
    pub fn output_limit(&self, id: JobId) -> Option<u64> {
        self.storage.jobs.get(&id).map(|s| s.claim.output_bytes)
    }

    /// Whether job `id`'s storage was released: it names no blob any more.
    pub fn storage_released(&self, id: JobId) -> bool {
        self.storage
            .jobs
            .get(&id)
            .is_some_and(|s| s.released_at.is_some())
    }
}
