//! Rules 30: float GPU jobs whose results agree within a declared tolerance, from any device.
//!
//! A shader with floats may give other bits on another kind of device (fused multiply-adds,
//! each driver's own transcendental functions). Rules 23 and 28 answer with determinism
//! classes: such a job runs all its tasks on one proven class and compares results bit for bit
//! ([`crate::gpu`]). That is exact, but it waits for a class with enough members of distinct
//! operators to reach a quorum. A job may instead declare a [`Tolerance`]
//! (`Action::SubmitGpuJobWithTolerance`): its output buffers hold `f32` values (the coordinator
//! checks the shader's types at submission), its tasks run on any GPU provider, and two results
//! agree when they have the same size, fuel and status and every pair of values agrees
//! ([`Tolerance::agree`]):
//!
//! - equal bits; or
//! - both NaN (a NaN's payload differs between devices); or
//! - both finite and at most [`Tolerance::max_ulps`] representable `f32` values apart
//!   (units in the last place: the distance between their bit patterns read as a signed
//!   magnitude, so `-0.0` and `0.0` are 0 apart and the smallest subnormals 1 apart across
//!   zero); or
//! - both finite with magnitudes at most [`Tolerance::near_zero`] (a sum that cancels to nearly
//!   zero differs by many ULPs between devices while being equally right).
//!
//! An infinity agrees only with itself. Everything is integer arithmetic on the bits: no float
//! operation runs in the engine, so every validator decides alike.
//!
//! The engine must see the values to compare them, so a provider reports a tolerant job's map
//! results with their output bytes (`Action::ReportResultsWithOutputs`; at most
//! [`MAX_TOLERANT_OUTPUT`] per task, hashed by the engine against the reported output hash).
//! The state keeps each distinct output of a task ([`Tolerances::outputs`]) while the job may
//! still change: until it ends, and for a job whose delivered results may still be corrected
//! (rules 19) until its storage is released. Verification groups results as always
//! (`State::settle`), except that a result joins the first group (in the order the runs were
//! assigned) whose first result it agrees with: the group's key, and so the accepted output, is
//! that first result's. A result outside the tolerance of the accepted group is rejected and
//! slashed like any wrong result (its own output and the agreed one are both in the log). Fuel
//! is compared exactly: a kernel whose control flow depends on float rounding (an escape-time
//! fractal) does not fit a tolerance; it runs on one class.

use crate::command::{Event, Rejection};
use crate::energy::EnergyReport;
use crate::state::State;
use crate::storage::StorageClaim;
use crate::types::{AccountId, Hash, JobId, JobSpec, TaskId, TaskReport, Time};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The most output bytes one task of a tolerant job may return: the engine keeps and compares
/// them (16,384 `f32` values).
pub const MAX_TOLERANT_OUTPUT: u64 = 64 * 1024;
/// The largest [`Tolerance::max_ulps`]: 2^23 ULPs is a factor of two in magnitude.
pub const MAX_ULPS: u32 = 1 << 23;
/// The bits of `f32` infinity: a [`Tolerance::near_zero`] must be below it (finite).
const INFINITY_BITS: u32 = 0x7f80_0000;
const MAGNITUDE: u32 = 0x7fff_ffff;

/// How close two results of a tolerant GPU job must be to agree (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tolerance {
    /// Two finite values agree when at most this many representable `f32` values apart (at
    /// most [`MAX_ULPS`]).
    pub max_ulps: u32,
    /// Two finite values also agree when both magnitudes are at most this: the bits of a finite,
    /// non-negative `f32` (0 for none).
    pub near_zero: u32,
}

impl Tolerance {
    /// `Err` says what is wrong with the declaration.
    pub fn check(&self) -> Result<(), String> {
        if self.max_ulps > MAX_ULPS {
            return Err(format!(
                "a tolerance of {} ULPs is more than the most allowed ({MAX_ULPS})",
                self.max_ulps
            ));
        }
        if self.near_zero >= INFINITY_BITS {
            return Err(format!(
                "the near-zero bound (f32 bits {:#010x}) must be a finite, non-negative value",
                self.near_zero
            ));
        }
        Ok(())
    }

    /// Whether outputs `a` and `b` agree: the same length, a whole number of `f32` values (read
    /// little-endian, as GPU buffers are), each pair agreeing.
    pub fn agree(&self, a: &[u8], b: &[u8]) -> bool {
        let ((xs, []), (ys, [])) = (a.as_chunks::<4>(), b.as_chunks::<4>()) else {
            return false;
        };
        xs.len() == ys.len()
            && xs
                .iter()
                .zip(ys)
                .all(|(x, y)| self.values_agree(u32::from_le_bytes(*x), u32::from_le_bytes(*y)))
    }

    /// Whether two `f32` values, given by their bits, agree.
    pub fn values_agree(&self, a: u32, b: u32) -> bool {
        if a == b {
            return true;
        }
        let nan = |x: u32| x & MAGNITUDE > INFINITY_BITS;
        let infinite = |x: u32| x & MAGNITUDE == INFINITY_BITS;
        if nan(a) || nan(b) {
            return nan(a) && nan(b);
        }
        if infinite(a) || infinite(b) {
            return false;
        }
        if a & MAGNITUDE <= self.near_zero && b & MAGNITUDE <= self.near_zero {
            return true;
        }
        ordered(a).abs_diff(ordered(b)) <= u64::from(self.max_ulps)
    }
}

/// A finite `f32`'s bits as a signed magnitude: consecutive values are consecutive integers.
fn ordered(bits: u32) -> i64 {
    let magnitude = i64::from(bits & MAGNITUDE);
    if bits & !MAGNITUDE != 0 {
        // At most 2^31 - 1: no overflow.
        0i64.saturating_sub(magnitude)
    } else {
        magnitude
    }
}

/// The tolerant jobs and the outputs their comparisons need (rules 30; empty before).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tolerances {
    /// Each tolerant job's tolerance.
    pub jobs: BTreeMap<JobId, Tolerance>,
    /// Each distinct output reported for a map task of a tolerant job, by its hash, while the
    /// job may still change (see the module docs).
    #[serde(with = "crate::audit::by_task")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub outputs: BTreeMap<TaskId, BTreeMap<Hash, Output>>,
}

/// A result's output bytes: hex in JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String))]
pub struct Output(#[serde(with = "crate::types::hex_bytes")] pub Vec<u8>);

impl State {
    /// Rules 30: job `job`'s tolerance, if it declared one.
    pub fn tolerance(&self, job: JobId) -> Option<&Tolerance> {
        self.tolerances.jobs.get(&job)
    }

    /// Rules 30: whether a result of task `task` is compared within a tolerance (a map task of a
    /// tolerant job), so that its report carries its output.
    pub fn is_tolerant(&self, task: TaskId) -> bool {
        self.tolerances.jobs.contains_key(&task.job)
            && self
                .jobs
                .get(&task.job)
                .is_some_and(|j| (task.index as usize) < j.spec.tasks.len())
    }

    /// Rules 30: the key a returned result of `task` with output `hash` groups under: the hash of
    /// the first result among `earlier` (the groups' keys so far, in order: hash, size, fuel,
    /// status) with the same size, fuel and status whose output agrees with it, else its own.
    pub(crate) fn tolerant_key(
        &self,
        task: TaskId,
        key: (Hash, u64, u64, i32),
        earlier: impl Iterator<Item = (Hash, u64, u64, i32)>,
    ) -> (Hash, u64, u64, i32) {
        let (Some(tolerance), Some(outputs)) = (
            self.tolerances.jobs.get(&task.job),
            self.tolerances.outputs.get(&task),
        ) else {
            return key;
        };
        let Some(own) = outputs.get(&key.0) else {
            return key;
        };
        for other in earlier {
            if other == key {
                return key;
            }
            if (other.1, other.2, other.3) != (key.1, key.2, key.3) {
                continue;
            }
            if let Some(theirs) = outputs.get(&other.0)
                && tolerance.agree(&own.0, &theirs.0)
            {
                return other;
            }
        }
        key
    }

    /// Rules 30: submits `spec` as a GPU job run as `gpu` declares whose results agree within
    /// `tolerance` (see the module docs), with a storage claim where the network prices storage.
    pub(crate) fn submit_gpu_with_tolerance(
        &mut self,
        owner: AccountId,
        spec: &JobSpec,
        storage: Option<&StorageClaim>,
        gpu: &crate::gpu::GpuJob,
        tolerance: &Tolerance,
        now: Time,
    ) -> Result<Vec<Event>, Rejection> {
        self.needs_tolerance_rules("a GPU job with a tolerance")?;
        tolerance.check().map_err(Rejection::InvalidJobSpec)?;
        if gpu.one_class {
            return Err(Rejection::InvalidJobSpec(
                "a GPU job compares its results within a tolerance or on one class, not both"
                    .into(),
            ));
        }
        let job = self.next_job;
        let events = self.submit_gpu(owner, spec, storage, gpu, now)?;
        self.tolerances.jobs.insert(job, *tolerance);
        Ok(events)
    }

    /// Rules 30: applies `Action::ReportResultsWithOutputs`: the reports as
    /// `Action::ReportMeteredResults` applies them, each result of a tolerant task compared with
    /// the others through its output (`outputs[i]` is `reports[i]`'s).
    pub(crate) fn report_with_outputs(
        &mut self,
        who: AccountId,
        reports: &[TaskReport],
        energy: &[Option<EnergyReport>],
        outputs: &[Option<Output>],
        now: Time,
    ) -> Result<Vec<Event>, Rejection> {
        self.needs_tolerance_rules("outputs in reports")?;
        if reports.len() != outputs.len() {
            return Err(Rejection::InvalidReport(format!(
                "{} results with {} outputs; one (or none) for each",
                reports.len(),
                outputs.len()
            )));
        }
        let mut kept = Vec::new();
        for (r, output) in reports.iter().zip(outputs) {
            let result = self.answer_status(r.task, &r.outcome).is_some();
            let tolerant = self.is_tolerant(r.task);
            match output {
                None if tolerant && result => {
                    return Err(Rejection::InvalidReport(format!(
                        "task {}'s job compares results within a tolerance: its result needs \
                         its output",
                        r.task
                    )));
                }
                None => {}
                Some(_) if !(tolerant && result) => {
                    return Err(Rejection::InvalidReport(format!(
                        "task {} has no result compared within a tolerance: no output goes \
                         with it",
                        r.task
                    )));
                }
                Some(Output(bytes)) => {
                    let size = bytes.len() as u64;
                    if size > MAX_TOLERANT_OUTPUT || !size.is_multiple_of(4) {
                        return Err(Rejection::InvalidReport(format!(
                            "task {}'s output of {size} bytes is not a whole number of f32 \
                             values within {MAX_TOLERANT_OUTPUT} bytes",
                            r.task
                        )));
                    }
                    if size != r.output_size || Hash::of(bytes) != r.output_hash {
                        return Err(Rejection::InvalidReport(format!(
                            "task {}'s output is not the one its hash and size name",
                            r.task
                        )));
                    }
                    let held = self
                        .providers
                        .get(&who)
                        .is_some_and(|p| p.running.contains(&r.task));
                    let known = self
                        .tolerances
                        .outputs
                        .get(&r.task)
                        .is_some_and(|m| m.contains_key(&r.output_hash));
                    if held && !known && !kept.contains(&(r.task, r.output_hash)) {
                        kept.push((r.task, r.output_hash));
                        self.tolerances
                            .outputs
                            .entry(r.task)
                            .or_default()
                            .insert(r.output_hash, Output(bytes.clone()));
                    }
                }
            }
        }
        match self.report_metered(who, reports, energy, now) {
            Ok(events) => Ok(events),
            Err(e) => {
                // Refused as a whole: nothing of it stays.
                for (task, hash) in kept {
                    if let Some(m) = self.tolerances.outputs.get_mut(&task) {
                        m.remove(&hash);
                        if m.is_empty() {
                            self.tolerances.outputs.remove(&task);
                        }
                    }
                }
                Err(e)
            }
        }
    }

    /// Rules 30: a report without outputs may carry no result of a tolerant task (it would
    /// be compared bit for bit, and its output could not be compared with the others').
    pub(crate) fn refuse_without_outputs(&self, reports: &[TaskReport]) -> Result<(), Rejection> {
        match reports
            .iter()
            .find(|r| self.is_tolerant(r.task) && self.answer_status(r.task, &r.outcome).is_some())
        {
            Some(r) => Err(Rejection::InvalidReport(format!(
                "task {}'s job compares results within a tolerance: report its result with its \
                 output",
                r.task
            ))),
            None => Ok(()),
        }
    }

    /// Rules 30: job `job` can no longer change (it ended and cannot be corrected, or its
    /// storage was released): its outputs are not needed any more.
    pub(crate) fn forget_outputs(&mut self, job: JobId) {
        if self.tolerances.jobs.contains_key(&job) {
            self.tolerances.outputs.retain(|task, _| task.job != job);
        }
    }

    fn needs_tolerance_rules(&self, what: &str) -> Result<(), Rejection> {
        if self.rules < 30 {
            return Err(Rejection::NeedsRules {
                what: what.into(),
                needs: 30,
                runs: self.rules,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(max_ulps: u32, near_zero: f32) -> Tolerance {
        Tolerance {
            max_ulps,
            near_zero: near_zero.to_bits(),
        }
    }

    fn bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn values_agree_as_documented() {
        let four = t(4, 0.0);
        let next = |x: f32, n: u32| f32::from_bits(x.to_bits() + n);
        let table: Vec<(f32, f32, Tolerance, bool)> = vec![
            (1.0, 1.0, t(0, 0.0), true),
            (1.0, next(1.0, 1), t(0, 0.0), false),
            (1.0, next(1.0, 4), four, true),
            (1.0, next(1.0, 5), four, false),
            (next(1.0, 5), 1.0, four, false),
            // Across a power of two: the ULP changes, the count does not care.
            (
                f32::from_bits(2.0f32.to_bits() - 2),
                next(2.0, 2),
                four,
                true,
            ),
            (-1.0, -next(1.0, 3), four, true),
            (0.0, -0.0, t(0, 0.0), true),
            (f32::from_bits(1), -f32::from_bits(1), t(2, 0.0), true),
            (f32::from_bits(2), -f32::from_bits(1), t(2, 0.0), false),
            (1e-7, -1e-7, four, false),
            (1e-7, -1e-7, t(4, 1e-6), true),
            (1e-7, 2e-6, t(4, 1e-6), false),
            (f32::NAN, f32::from_bits(0x7fc0_0001), t(0, 0.0), true),
            (f32::NAN, 1.0, t(MAX_ULPS, 1.0), false),
            (f32::INFINITY, f32::INFINITY, t(0, 0.0), true),
            (f32::INFINITY, f32::MAX, t(MAX_ULPS, 0.0), false),
            (f32::INFINITY, f32::NEG_INFINITY, t(MAX_ULPS, 0.0), false),
            (f32::MAX, -f32::MAX, t(MAX_ULPS, f32::MAX), true),
        ];
        for (a, b, tol, agree) in table {
            assert_eq!(
                tol.values_agree(a.to_bits(), b.to_bits()),
                agree,
                "{a:e} {b:e} {tol:?}"
            );
            assert_eq!(
                tol.values_agree(b.to_bits(), a.to_bits()),
                agree,
                "symmetric"
            );
        }
    }

    #[test]
    fn outputs_agree_value_by_value() {
        let tol = t(2, 0.0);
        let a = bytes(&[1.0, 2.0, 3.0]);
        let mut b = a.clone();
        b[4] = b[4].wrapping_add(1);
        assert!(tol.agree(&a, &b));
        b[8] = b[8].wrapping_add(3);
        assert!(!tol.agree(&a, &b), "the third value is 3 ULPs off");
        assert!(!tol.agree(&a, &a[..8]), "lengths differ");
        assert!(!tol.agree(&a[..6], &a[..6]), "not whole values");
        assert!(tol.agree(&[], &[]));
    }

    #[test]
    fn declarations_are_checked() {
        assert!(t(MAX_ULPS, f32::MAX).check().is_ok());
        assert!(t(MAX_ULPS + 1, 0.0).check().unwrap_err().contains("ULPs"));
        for bad in [f32::INFINITY, f32::NAN, -1.0] {
            assert!(t(1, bad).check().unwrap_err().contains("finite"), "{bad}");
        }
    }
}
