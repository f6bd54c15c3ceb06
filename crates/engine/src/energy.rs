//! Rules 24: energy and carbon of the work, and providers' availability.
//!
//! - **Energy in reports.** A provider reports each run's energy with its result, signed, in
//!   `Action::ReportMeteredResults` ([`EnergyReport`]: millijoules, and whether the provider's
//!   CPU energy counters measured it or its power model estimated it; none for a run it did not
//!   meter, such as a task that failed before its guest ran). It is an estimate either
//!   way, and nothing pays by it: the engine keeps it ([`Energy::runs`]) with the carbon
//!   intensity of the provider's electricity at the time ([`RunEnergy::grams_per_kwh`]).
//!   A job's energy ([`State::job_energy`]) is the sum over its accepted runs — the runs of the
//!   providers whose results were accepted — so it changes only as its results do.
//! - **Carbon intensity.** The network's table ([`CarbonTable`], from the genesis) gives grams
//!   of CO₂e per kWh for each region a provider may declare, and a default for the others; a
//!   provider that knows better (its own solar panels, a supplier's figure) announces its own
//!   ([`Announcement::grams_per_kwh`]), which wins ([`State::grams_per_kwh_of`]).
//! - **Availability.** A provider whose owner's rules suspend it (the owner is at the machine,
//!   on battery, outside its hours, paused) announces it ([`Announcement::suspended`], with the
//!   reasons): it takes no new work and the scheduler does not count on it
//!   ([`State::counts_on`]: it is not a provider that could take a task instead of another, a
//!   faster provider to wait for, nor a free slot for a speculative replica), while its runs in
//!   flight stay its own — it still reports them. It announces when it may work again, and
//!   registering again (or leaving, or being lost) ends the suspension, and forgets the
//!   intensity it announced: a provider announces again once registered.
//! - **Low-carbon jobs.** A job submitted with [`JobPreferences::prefer_low_carbon`]
//!   (`Action::SubmitWithPreferences`) prefers providers with cleaner electricity, softly: a
//!   provider whose intensity is under the table's default takes it before other work of equal
//!   standing (`schedule::W_LOW_CARBON`), and while it is young a provider with dirtier
//!   electricity leaves it to a waiting cleaner one (the hold rule's `schedule::S_CARBON`).
//!   It is never refused to anyone: with no clean provider about it runs where it can.

use crate::command::{Event, Rejection};
use crate::state::{Provider, ProviderStatus, State, TaskState};
use crate::types::{AccountId, JobId, TaskId, TaskReport, Time};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The most energy one run may report: 10 kWh (a 1 kW machine busy for ten hours), in
/// millijoules.
pub const MAX_RUN_MILLIJOULES: u64 = 10 * MILLIJOULES_PER_KWH;
/// One kilowatt-hour in millijoules.
pub const MILLIJOULES_PER_KWH: u64 = 3_600_000_000;
/// The highest carbon intensity a provider or the table may give, in grams of CO₂e per kWh
/// (lignite, the dirtiest electricity there is, is about 1,100).
pub const MAX_GRAMS_PER_KWH: u32 = 2_000;
/// The most regions a carbon table lists.
pub const MAX_CARBON_REGIONS: usize = 512;
/// The world's average carbon intensity of electricity (Ember, 2023: about 480 g CO₂e/kWh):
/// the default table's intensity for a region it does not list.
pub const WORLD_GRAMS_PER_KWH: u32 = 480;

/// How a run's energy was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EnergyMethod {
    /// Read from the CPU package's energy counters (RAPL), shared among what ran meanwhile by
    /// CPU time.
    Measured,
    /// Estimated by the provider's power model (CPU time × power per core, plus memory).
    Modelled,
}

/// A run's energy as its provider reports it (rules 24), beside its [`TaskReport`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnergyReport {
    pub millijoules: u64,
    pub method: EnergyMethod,
}

/// A run's energy as the engine keeps it: as reported, with the carbon intensity in force for
/// its provider when it reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunEnergy {
    pub millijoules: u64,
    pub method: EnergyMethod,
    pub grams_per_kwh: u32,
}

impl RunEnergy {
    /// The run's carbon in micrograms of CO₂e, times 3,600 (millijoules × grams per kWh: a
    /// microgram is 3,600 of these), kept exact so that a job's sum rounds once.
    fn co2e_scaled(&self) -> u128 {
        u128::from(self.millijoules).saturating_mul(u128::from(self.grams_per_kwh))
    }

    /// The run's carbon, in micrograms of CO₂e (rounded down).
    pub fn co2e_micrograms(&self) -> u64 {
        micrograms(self.co2e_scaled())
    }
}

/// Micrograms of CO₂e from millijoules × grams per kWh (1 kWh is 3.6 × 10⁹ mJ, and 1 g is
/// 10⁶ µg), rounded down.
fn micrograms(scaled: u128) -> u64 {
    u64::try_from(scaled / 3600).unwrap_or(u64::MAX)
}

/// Why a provider is suspended, as it announces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Suspension {
    /// Its owner is using the machine.
    OwnerActive,
    /// The owner's other programs keep the CPU busy.
    OtherLoad,
    /// The machine runs on battery.
    OnBattery,
    /// The battery is low.
    BatteryLow,
    /// Outside the hours its owner lets it work.
    OutsideHours,
    /// Its owner paused it.
    Paused,
}

impl Suspension {
    /// Every reason, in order.
    pub const ALL: [Suspension; 6] = [
        Suspension::OwnerActive,
        Suspension::OtherLoad,
        Suspension::OnBattery,
        Suspension::BatteryLow,
        Suspension::OutsideHours,
        Suspension::Paused,
    ];
}

/// What a provider tells the network about itself now (rules 24, `Action::Announce`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Announcement {
    /// Why it is suspended; empty: it may work.
    pub suspended: Vec<Suspension>,
    /// The carbon intensity of its electricity (grams of CO₂e per kWh), where its owner knows
    /// it; `None`: the network's table's figure for its region.
    pub grams_per_kwh: Option<u32>,
}

/// What a job asks of the scheduler beyond its spec (rules 24, `Action::SubmitWithPreferences`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobPreferences {
    /// Prefer providers with low-carbon electricity (a soft preference: see the module docs).
    pub prefer_low_carbon: bool,
}

/// Carbon intensity of electricity per region (grams of CO₂e per kWh), fixed at genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CarbonTable {
    /// For a region the table does not list: the reference a low-carbon provider is under.
    pub default_grams_per_kwh: u32,
    /// By the region name providers declare (`ProviderSpec::region`).
    pub regions: BTreeMap<String, u32>,
}

impl Default for CarbonTable {
    /// Yearly averages of 2023 (Ember and the EEA, rounded), for region names in the style of
    /// cloud regions and for country codes; the world's average for any other.
    fn default() -> Self {
        let regions = [
            ("eu-north", 30),
            ("eu-west", 280),
            ("eu-central", 380),
            ("eu-south", 300),
            ("us-east", 390),
            ("us-west", 230),
            ("us-central", 450),
            ("ca-central", 130),
            ("sa-east", 100),
            ("ap-south", 710),
            ("ap-southeast", 480),
            ("ap-northeast", 490),
            ("af-south", 710),
            ("au", 550),
            ("br", 100),
            ("ca", 130),
            ("ch", 40),
            ("cn", 580),
            ("de", 380),
            ("es", 170),
            ("fr", 55),
            ("gb", 240),
            ("in", 710),
            ("is", 30),
            ("it", 330),
            ("jp", 490),
            ("no", 30),
            ("pl", 660),
            ("se", 40),
            ("us", 370),
            ("za", 710),
        ];
        CarbonTable {
            default_grams_per_kwh: WORLD_GRAMS_PER_KWH,
            regions: regions
                .into_iter()
                .map(|(region, grams)| (region.to_string(), grams))
                .collect(),
        }
    }
}

impl CarbonTable {
    /// The intensity for `region`: its own, else the default.
    pub fn grams_per_kwh(&self, region: &str) -> u32 {
        self.regions
            .get(region)
            .copied()
            .unwrap_or(self.default_grams_per_kwh)
    }

    /// Checks the table; the message names what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.regions.len() > MAX_CARBON_REGIONS {
            return Err(format!(
                "the carbon table lists {} regions; at most {MAX_CARBON_REGIONS}",
                self.regions.len()
            ));
        }
        let bad = std::iter::once(("default", self.default_grams_per_kwh))
            .chain(self.regions.iter().map(|(r, g)| (r.as_str(), *g)))
            .find(|(_, g)| *g > MAX_GRAMS_PER_KWH);
        if let Some((region, grams)) = bad {
            return Err(format!(
                "carbon intensity {grams} g/kWh for {region} is above {MAX_GRAMS_PER_KWH}"
            ));
        }
        if let Some(region) = self.regions.keys().find(|r| r.is_empty() || r.len() > 64) {
            return Err(format!(
                "carbon table region {region:?} must be 1 to 64 bytes"
            ));
        }
        Ok(())
    }
}

/// What a provider announced (rules 24).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProviderEnergy {
    pub suspended: Vec<Suspension>,
    pub grams_per_kwh: Option<u32>,
}

/// Rules 24's part of the state: see the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Energy {
    /// The network's carbon table (from the genesis).
    pub table: CarbonTable,
    /// What each provider announced (only those that did).
    pub providers: BTreeMap<AccountId, ProviderEnergy>,
    /// Each task's reported runs' energy, by provider (its latest reported run).
    #[serde(with = "crate::audit::by_task")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub runs: BTreeMap<TaskId, BTreeMap<AccountId, RunEnergy>>,
    /// Jobs that prefer low-carbon providers.
    pub low_carbon: BTreeSet<JobId>,
}

/// A job's energy and carbon: the sum over its accepted runs ([`State::job_energy`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobEnergy {
    pub millijoules: u64,
    pub co2e_micrograms: u64,
    /// Accepted runs whose energy was reported (the sums are theirs).
    pub runs: u64,
    /// Of those, the ones measured rather than modelled.
    pub measured: u64,
    /// Accepted runs reported without energy (a run its provider did not meter, or reported by
    /// a provider from before rules 24).
    pub unreported: u64,
}

impl State {
    fn needs_energy_rules(&self, what: &str) -> Result<(), Rejection> {
        if self.rules < 24 {
            return Err(Rejection::NeedsRules {
                what: what.into(),
                needs: 24,
                runs: self.rules,
            });
        }
        Ok(())
    }

    /// Rules 24: whether `who` announced that it is suspended.
    pub fn is_suspended(&self, who: &AccountId) -> bool {
        self.rules >= 24
            && self
                .energy
                .providers
                .get(who)
                .is_some_and(|p| !p.suspended.is_empty())
    }

    /// Whether the scheduler may count on `p` taking work: active and, under rules 24, not
    /// suspended.
    pub fn counts_on(&self, p: &Provider) -> bool {
        p.status == ProviderStatus::Active && !self.is_suspended(&p.id)
    }

    /// The carbon intensity of `p`'s electricity (grams of CO₂e per kWh): what it announced,
    /// else the network's table's figure for its region.
    pub fn grams_per_kwh_of(&self, p: &Provider) -> u32 {
        self.energy
            .providers
            .get(&p.id)
            .and_then(|e| e.grams_per_kwh)
            .unwrap_or_else(|| self.energy.table.grams_per_kwh(&p.spec.region))
    }

    /// Whether `p`'s electricity is low-carbon: under the table's default.
    pub fn low_carbon(&self, p: &Provider) -> bool {
        self.grams_per_kwh_of(p) < self.energy.table.default_grams_per_kwh
    }

    /// Whether `job` prefers low-carbon providers (rules 24).
    pub fn prefers_low_carbon(&self, job: JobId) -> bool {
        self.rules >= 24 && self.energy.low_carbon.contains(&job)
    }

    /// Applies `Action::Announce`.
    pub(crate) fn announce(
        &mut self,
        who: AccountId,
        announcement: &Announcement,
    ) -> Result<Vec<Event>, Rejection> {
        self.needs_energy_rules("provider announcements")?;
        self.active_provider(&who)?;
        let mut reasons = announcement.suspended.clone();
        reasons.sort();
        reasons.dedup();
        if reasons.len() != announcement.suspended.len() {
            return Err(Rejection::InvalidAnnouncement(
                "it gives a reason twice".into(),
            ));
        }
        if let Some(grams) = announcement
            .grams_per_kwh
            .filter(|g| *g > MAX_GRAMS_PER_KWH)
        {
            return Err(Rejection::InvalidAnnouncement(format!(
                "carbon intensity {grams} g/kWh is above {MAX_GRAMS_PER_KWH}"
            )));
        }
        self.energy.providers.insert(
            who,
            ProviderEnergy {
                suspended: reasons.clone(),
                grams_per_kwh: announcement.grams_per_kwh,
            },
        );
        Ok(vec![Event::ProviderAnnounced {
            provider: who,
            suspended: reasons,
        }])
    }

    /// Forgets what `who` announced (rules 24) — its suspension and its intensity: it
    /// registered again, left or was lost, and announces again once registered.
    pub(crate) fn forget_announcement(&mut self, who: &AccountId) {
        self.energy.providers.remove(who);
    }

    /// Applies `Action::ReportMeteredResults`: the reports as `Action::ReportResults` applies
    /// them, and the energy of each run they end.
    pub(crate) fn report_metered(
        &mut self,
        who: AccountId,
        reports: &[TaskReport],
        energy: &[Option<EnergyReport>],
        now: Time,
    ) -> Result<Vec<Event>, Rejection> {
        self.needs_energy_rules("energy in reports")?;
        if reports.len() != energy.len() {
            return Err(Rejection::InvalidReport(format!(
                "{} results with {} energy figures; one for each",
                reports.len(),
                energy.len()
            )));
        }
        if let Some(e) = energy
            .iter()
            .flatten()
            .find(|e| e.millijoules > MAX_RUN_MILLIJOULES)
        {
            return Err(Rejection::InvalidReport(format!(
                "a run's energy of {} mJ is above the most one run may use ({MAX_RUN_MILLIJOULES} mJ)",
                e.millijoules
            )));
        }
        // The runs these reports end: only a task the provider holds has one.
        let held: Vec<bool> = {
            let running = self.providers.get(&who).map(|p| &p.running);
            reports
                .iter()
                .map(|r| running.is_some_and(|set| set.contains(&r.task)))
                .collect()
        };
        let grams = self
            .providers
            .get(&who)
            .map(|p| self.grams_per_kwh_of(p))
            .unwrap_or(self.energy.table.default_grams_per_kwh);
        let events = self.report(who, reports, now)?;
        for ((r, e), held) in reports.iter().zip(energy).zip(held) {
            if let (Some(e), true) = (e, held) {
                self.energy.runs.entry(r.task).or_default().insert(
                    who,
                    RunEnergy {
                        millijoules: e.millijoules,
                        method: e.method,
                        grams_per_kwh: grams,
                    },
                );
            }
        }
        Ok(events)
    }

    /// Applies `Action::SubmitWithPreferences`: the submission it wraps, then the preferences
    /// for the job it made.
    pub(crate) fn submit_with_preferences(
        &mut self,
        who: AccountId,
        preferences: &JobPreferences,
        submission: &crate::command::Action,
        now: Time,
    ) -> Result<Vec<Event>, Rejection> {
        self.needs_energy_rules("job preferences")?;
        if submission.submission().is_none()
            || matches!(
                submission,
                crate::command::Action::SubmitWithPreferences { .. }
            )
        {
            return Err(Rejection::InvalidJobSpec(
                "preferences wrap one job submission".into(),
            ));
        }
        let job = self.next_job;
        let events = self.apply_action(who, submission, now)?;
        if preferences.prefer_low_carbon {
            self.energy.low_carbon.insert(job);
        }
        Ok(events)
    }

    /// The energy and carbon of `job`: the sum over its accepted runs (see [`JobEnergy`]).
    pub fn job_energy(&self, job: JobId) -> JobEnergy {
        let mut total = JobEnergy::default();
        let mut co2e: u128 = 0;
        let Some(j) = self.jobs.get(&job) else {
            return total;
        };
        for (index, task) in j.tasks.iter().enumerate() {
            let (TaskState::Done, Some(result)) = (&task.state, &task.result) else {
                continue;
            };
            let id = TaskId {
                job,
                index: u32::try_from(index).unwrap_or(u32::MAX),
            };
            let runs = self.energy.runs.get(&id);
            for provider in &result.providers {
                match runs.and_then(|r| r.get(provider)) {
                    Some(run) => {
                        total.millijoules = total.millijoules.saturating_add(run.millijoules);
                        co2e = co2e.saturating_add(run.co2e_scaled());
                        total.runs = total.runs.saturating_add(1);
                        if run.method == EnergyMethod::Measured {
                            total.measured = total.measured.saturating_add(1);
                        }
                    }
                    None => total.unreported = total.unreported.saturating_add(1),
                }
            }
        }
        total.co2e_micrograms = micrograms(co2e);
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carbon_of_a_run_is_energy_times_intensity() {
        let kwh = RunEnergy {
            millijoules: MILLIJOULES_PER_KWH,
            method: EnergyMethod::Modelled,
            grams_per_kwh: 480,
        };
        assert_eq!(kwh.co2e_micrograms(), 480_000_000);
        let joule = RunEnergy {
            millijoules: 1000,
            ..kwh
        };
        // 1 J at 480 g/kWh is 133.3 µg.
        assert_eq!(joule.co2e_micrograms(), 133);
        // A job's sum rounds once: three thirds of a microgram make one.
        let third = RunEnergy {
            millijoules: 1,
            method: EnergyMethod::Modelled,
            grams_per_kwh: 1200,
        };
        assert_eq!(third.co2e_micrograms(), 0);
        assert_eq!(micrograms(3 * third.co2e_scaled()), 1);
        let max = RunEnergy {
            millijoules: MAX_RUN_MILLIJOULES,
            method: EnergyMethod::Measured,
            grams_per_kwh: MAX_GRAMS_PER_KWH,
        };
        assert_eq!(max.co2e_micrograms(), 20_000_000_000);
    }

    /// A submission with preferences wraps one submission: one wrapped in another is refused as
    /// it is decoded (so no input nests them deep enough to exhaust the stack), and one level
    /// decodes as it was.
    #[test]
    fn preferences_wrap_one_level_only_when_decoded() {
        use crate::command::Action;
        let spec = crate::types::JobSpec {
            module: crate::types::Hash([1; 32]),
            tasks: vec![Default::default()],
            limits: crate::types::Limits {
                fuel: 1,
                memory_bytes: 1 << 20,
                wall_ms: 1,
            },
            deadline: 1,
            max_price: 1,
            output: crate::types::OutputSource::Stdout,
            aggregate: crate::types::Aggregate::Concat,
            redundancy: Default::default(),
            requirements: Default::default(),
        };
        let wrap = |inner: Action| Action::SubmitWithPreferences {
            preferences: JobPreferences {
                prefer_low_carbon: true,
            },
            submission: Box::new(inner),
        };
        let once = wrap(Action::SubmitJob(spec));
        let json = serde_json::to_string(&once).unwrap();
        assert_eq!(serde_json::from_str::<Action>(&json).unwrap(), once);
        let bytes = postcard::to_stdvec(&once).unwrap();
        assert_eq!(postcard::from_bytes::<Action>(&bytes).unwrap(), once);
        let twice = wrap(once);
        let json = serde_json::to_string(&twice).unwrap();
        let e = serde_json::from_str::<Action>(&json).unwrap_err();
        assert!(e.to_string().contains("inside another"), "{e}");
        assert!(postcard::from_bytes::<Action>(&postcard::to_stdvec(&twice).unwrap()).is_err());
        // The refusal leaves nothing behind: the next one decodes.
        assert!(
            serde_json::from_str::<Action>(&serde_json::to_string(&wrap(Action::Faucet)).unwrap())
                .is_ok()
        );
    }

    #[test]
    fn the_default_table_is_valid_and_falls_back_to_the_world() {
        let table = CarbonTable::default();
        table.validate().unwrap();
        assert_eq!(table.grams_per_kwh("eu-north"), 30);
        assert_eq!(table.grams_per_kwh("home"), WORLD_GRAMS_PER_KWH);
        let bad = CarbonTable {
            default_grams_per_kwh: MAX_GRAMS_PER_KWH + 1,
            ..CarbonTable::default()
        };
        assert!(bad.validate().unwrap_err().contains("default"));
    }
}
