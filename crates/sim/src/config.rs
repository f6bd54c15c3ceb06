//! The simulation's TOML configuration: the network's rules, the fleet, the workload, churn, and
//! optionally an experiment that sweeps one of them. Every field has a default, so a file only
//! names what it changes; unknown fields are refused so a typo never silently does nothing.

use engine::{ScheduleParams, VerifyParams};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// Shown in the summary and used to name the output directory.
    #[serde(default = "default_name")]
    pub name: String,
    /// Everything random (speeds, arrivals, churn, cheating) comes from this seed.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// The run stops at this virtual time even if work is left (0: no limit).
    #[serde(default)]
    pub max_time_s: u64,
    #[serde(default)]
    pub network: NetworkConfig,
    #[serde(default = "default_regions")]
    pub regions: Vec<RegionConfig>,
    #[serde(default)]
    pub providers: FleetConfig,
    #[serde(default = "default_classes")]
    pub classes: Vec<ClassConfig>,
    #[serde(default)]
    pub workload: WorkloadConfig,
    #[serde(default)]
    pub churn: ChurnConfig,
    /// Absent: one run with the settings above.
    pub experiment: Option<ExperimentConfig>,
}

fn default_name() -> String {
    "sim".into()
}
fn default_seed() -> u64 {
    1
}

/// The network's rules: the development network's economics unless overridden.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Protocol fee, basis points of each payment.
    pub fee_bps: u32,
    /// Bonded stake a provider needs, in whole tokens.
    pub min_stake: u64,
    /// Share of a provider's stake taken for a wrong result, basis points.
    pub slash_bps: u32,
    /// Stake each provider bonds when it joins, in whole tokens.
    pub stake: u64,
    /// A provider that stops heartbeating is declared lost after this.
    pub heartbeat_timeout_s: u64,
    /// How often the leader's timer looks for overdue runs and expired jobs.
    pub timer_s: u64,
    /// A provider whose stake was slashed below the minimum bonds the difference again from its
    /// balance (a determined saboteur does); without it a slashed provider gets no more work.
    pub restake: bool,
    /// The version of the engine's rules the network runs (`engine::RULES` unless set): an
    /// experiment may run an older version beside the current one.
    pub rules: u32,
    /// Validators in the genesis, each running one honest provider under its account (the
    /// fleet's first machines, of the first honest class). With validators, tasks go out on
    /// providers' signed fetches and a provider is lost on the validators' attestations, as on
    /// a real validator set; under rules 7 their providers anchor trust. 0: a single
    /// coordinator.
    pub validators: u32,
    /// Task slots of each validator's provider (0: drawn from its class like any other's).
    pub validator_slots: u32,
    pub verification: VerifyParams,
    /// The scheduler's tunables (default: those of a new network under `rules`).
    pub scheduling: Option<ScheduleParams>,
}

impl NetworkConfig {
    /// The scheduler's tunables the network runs.
    pub fn schedule(&self) -> ScheduleParams {
        self.scheduling
            .clone()
            .unwrap_or_else(|| ScheduleParams::for_rules(self.rules))
    }
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            fee_bps: 500,
            min_stake: 100,
            slash_bps: 5_000,
            stake: 100,
            heartbeat_timeout_s: 10,
            timer_s: 10,
            restake: false,
            rules: engine::RULES,
            validators: 0,
            validator_slots: 0,
            verification: VerifyParams::default(),
            scheduling: None,
        }
    }
}

/// Where providers are, and how far that is from the coordinator.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    pub name: String,
    /// Relative weight of providers placed here.
    #[serde(default = "one")]
    pub share: f64,
    /// Round trip to the coordinator, milliseconds.
    #[serde(default)]
    pub rtt_ms: u64,
}

fn one() -> f64 {
    1.0
}

fn default_regions() -> Vec<RegionConfig> {
    vec![
        RegionConfig {
            name: "eu".into(),
            share: 0.4,
            rtt_ms: 30,
        },
        RegionConfig {
            name: "us".into(),
            share: 0.4,
            rtt_ms: 90,
        },
        RegionConfig {
            name: "ap".into(),
            share: 0.2,
            rtt_ms: 180,
        },
    ]
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// Providers at the start.
    pub count: u64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig { count: 1_000 }
    }
}

/// A kind of provider. Each provider draws its class by `share`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassConfig {
    pub name: String,
    #[serde(default = "one")]
    pub share: f64,
    /// Task slots; one of these, drawn uniformly.
    #[serde(default = "default_slots")]
    pub slots: Vec<u32>,
    /// Benchmark score (kernel iterations per millisecond, ~67 fuel each), log-normal.
    #[serde(default = "default_speed")]
    pub speed: LogNormal,
    /// Asking price, base units per fuel.
    #[serde(default = "one_u64")]
    pub price: u64,
    /// `honest` runs every task correctly; `saboteur` returns wrong results.
    #[serde(default)]
    pub behaviour: Behaviour,
    /// Probability that a saboteur returns a wrong result for a task (default 1); with
    /// `strategy = "sometimes"`, the share of its tasks it cheats on (default 0.1).
    #[serde(default)]
    pub wrong_rate: Option<f64>,
    /// Colluding saboteurs all return the same wrong result for a task, so their votes agree.
    #[serde(default)]
    pub collude: bool,
    /// Saboteurs that report every task they run as failed (exit status 1) instead of a result.
    #[serde(default)]
    pub fails: bool,
    /// How the class cheats, by name (see [`Strategy`]); replaces `behaviour`, `collude` and
    /// `fails`. Absent: those three decide.
    #[serde(default)]
    pub strategy: Option<Strategy>,
}

/// A cheating strategy, named in a class's `strategy` or an experiment's `strategies`. Every
/// wrong answer is the colluders' shared one. The adversary sees everything public (the engine
/// state) when it decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Never cheats.
    Honest,
    /// Always returns the colluders' wrong answer.
    Colluding,
    /// Returns the colluders' wrong answer on `wrong_rate` of its tasks (default 10%).
    Sometimes,
    /// Returns the wrong answer only when it predicts no audit: it is trusted, its run is the
    /// task's only one, and the public spot-check draw does not pick it
    /// (`world::adversary_predicts_no_audit`).
    Predicting,
    /// Honest until it is trusted, then always wrong.
    Turncoat,
    /// Always wrong; after each slash it leaves and re-enters under a fresh account (new key,
    /// fresh stake, no reputation) instead of bonding the old one's stake again.
    Sybil,
    /// Reports every task as failed (exit status 1, with the task's fuel).
    Failing,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Honest => "honest",
            Strategy::Colluding => "colluding",
            Strategy::Sometimes => "sometimes",
            Strategy::Predicting => "predicting",
            Strategy::Turncoat => "turncoat",
            Strategy::Sybil => "sybil",
            Strategy::Failing => "failing",
        }
    }
}

/// How a class's providers decide what to report, resolved from its fields.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Play {
    Honest,
    /// Wrong with probability `rate` per task: the colluders' shared answer, or its own.
    Wrong {
        rate: f64,
        collude: bool,
    },
    Predicting,
    Turncoat,
    Sybil,
    Failing,
}

/// `strategy = "sometimes"` without a `wrong_rate`.
pub const SOMETIMES_RATE: f64 = 0.1;

impl ClassConfig {
    /// What the class does: its `strategy`, else `behaviour`, `wrong_rate`, `collude`, `fails`.
    pub fn play(&self) -> Play {
        match self.strategy {
            Some(Strategy::Honest) => Play::Honest,
            Some(Strategy::Colluding) => Play::Wrong {
                rate: 1.0,
                collude: true,
            },
            Some(Strategy::Sometimes) => Play::Wrong {
                rate: self.wrong_rate.unwrap_or(SOMETIMES_RATE),
                collude: true,
            },
            Some(Strategy::Predicting) => Play::Predicting,
            Some(Strategy::Turncoat) => Play::Turncoat,
            Some(Strategy::Sybil) => Play::Sybil,
            Some(Strategy::Failing) => Play::Failing,
            None => match self.behaviour {
                Behaviour::Honest => Play::Honest,
                Behaviour::Saboteur if self.fails => Play::Failing,
                Behaviour::Saboteur => Play::Wrong {
                    rate: self.wrong_rate.unwrap_or(1.0),
                    collude: self.collude,
                },
            },
        }
    }

    /// Cheats in any way (what a saboteur fraction counts).
    pub fn is_saboteur(&self) -> bool {
        self.play() != Play::Honest
    }

    /// The behaviour column of a run's summary.
    pub fn label(&self) -> String {
        match (self.strategy, self.play()) {
            (Some(Strategy::Honest), _) | (None, Play::Honest) => "honest".into(),
            (Some(s), _) => format!("saboteur ({})", s.name()),
            (None, Play::Failing) => "saboteur (failing)".into(),
            (None, Play::Wrong { collude: true, .. }) => "saboteur (colluding)".into(),
            (None, _) => "saboteur".into(),
        }
    }
}

fn default_slots() -> Vec<u32> {
    vec![1, 2, 4]
}
fn one_u64() -> u64 {
    1
}
fn default_speed() -> LogNormal {
    LogNormal {
        median: 30_000.0,
        sigma: 0.5,
    }
}

fn default_classes() -> Vec<ClassConfig> {
    vec![ClassConfig {
        name: "honest".into(),
        share: 1.0,
        slots: default_slots(),
        speed: default_speed(),
        price: 1,
        behaviour: Behaviour::Honest,
        wrong_rate: None,
        collude: false,
        fails: false,
        strategy: None,
    }]
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Behaviour {
    #[default]
    Honest,
    Saboteur,
}

/// A log-normal distribution given by its median and the standard deviation of its logarithm.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogNormal {
    pub median: f64,
    #[serde(default)]
    pub sigma: f64,
}

/// An inclusive integer range, drawn uniformly.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    pub min: u64,
    pub max: u64,
}

/// Verification policy of the submitted jobs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", tag = "policy", deny_unknown_fields)]
pub enum PolicyConfig {
    /// The network's adaptive policy.
    #[default]
    Adaptive,
    /// m-first voting: accepted when `m` results agree (up to the engine's 32 results).
    Voting { m: u32 },
    /// One run, trusted.
    Single,
}

impl PolicyConfig {
    pub fn name(&self) -> String {
        match self {
            PolicyConfig::Adaptive => "adaptive".into(),
            PolicyConfig::Voting { m } => format!("voting m={m}"),
            PolicyConfig::Single => "single".into(),
        }
    }
}

/// What requesters submit, and when.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkloadConfig {
    /// Total tasks over the run; jobs are submitted until this many.
    pub tasks: u64,
    pub tasks_per_job: Range,
    /// Mean fuel of a job's tasks, log-normal across jobs; each task is within ±50% of its job's
    /// mean.
    pub fuel: LogNormal,
    /// Requesters the jobs are spread over (round robin).
    pub requesters: u32,
    /// Mean time between job submissions (Poisson arrivals); 0 submits everything at once.
    pub mean_interarrival_s: f64,
    pub policy: PolicyConfig,
    /// Each job's deadline, after submission.
    pub deadline_s: u64,
    /// Highest price per fuel a job pays.
    pub max_price: u64,
    /// Memory a task needs, bytes.
    pub memory_bytes: u64,
    /// Tasks of the jobs submitted first that the warm columns leave out (`Summary::warm`):
    /// the network's cold start, while most providers have no history yet. 0 measures the
    /// whole run.
    pub warmup_tasks: u64,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            tasks: 20_000,
            tasks_per_job: Range {
                min: 100,
                max: 1000,
            },
            fuel: LogNormal {
                median: 2e9,
                sigma: 0.5,
            },
            requesters: 10,
            mean_interarrival_s: 2.0,
            policy: PolicyConfig::Adaptive,
            deadline_s: 86_400,
            max_price: 2,
            memory_bytes: 64 << 20,
            warmup_tasks: 0,
        }
    }
}

/// Providers coming, going and crashing, as rates per provider per hour.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChurnConfig {
    /// Share of providers crashing per hour (no notice: found by the heartbeat timeout).
    pub crash_per_hour: f64,
    /// Share of providers leaving per hour (they tell the coordinator).
    pub leave_per_hour: f64,
    /// New providers arriving per hour, as a share of the starting fleet.
    pub join_per_hour: f64,
    /// A crashed provider comes back (same key) after this long; 0: never.
    pub rejoin_after_s: u64,
}

/// A sweep over copies of the base configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum ExperimentConfig {
    /// Wrong-result rate and redundancy against the saboteur fraction, per policy.
    Verification {
        saboteur_fractions: Vec<f64>,
        policies: Vec<PolicyConfig>,
        /// Versions of the engine's rules to run each policy under, side by side (default: the
        /// network's, `network.rules`).
        #[serde(default)]
        rules: Vec<u32>,
    },
    /// Every cheating strategy against the saboteur fraction, under the workload's policy: the
    /// saboteur classes play each strategy in turn.
    Collusion {
        saboteur_fractions: Vec<f64>,
        strategies: Vec<Strategy>,
    },
    /// Job completion time against the crash rate.
    Churn { crash_per_hour: Vec<f64> },
    /// Honest and cheating providers' earnings over time (one run).
    Economics,
    /// Engine policy against classic heuristics on Braun et al. ETC instances.
    Scheduling(crate::etc::SchedulingConfig),
}

impl SimConfig {
    /// Parses and checks a configuration file's text.
    pub fn parse(text: &str) -> Result<SimConfig, crate::SimError> {
        let config: SimConfig =
            toml::from_str(text).map_err(|e| crate::SimError::Config(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), crate::SimError> {
        let bad = |m: &str| Err(crate::SimError::Config(m.to_string()));
        if self.regions.is_empty() || self.regions.iter().all(|r| r.share <= 0.0) {
            return bad("at least one region with a positive share is needed");
        }
        if self.classes.is_empty() || self.classes.iter().all(|c| c.share <= 0.0) {
            return bad("at least one provider class with a positive share is needed");
        }
        for c in &self.classes {
            if c.slots.is_empty() || c.slots.iter().any(|s| *s == 0 || *s > 1024) {
                return bad("class slots must be a non-empty list of 1..=1024");
            }
            if c.share < 0.0 || c.wrong_rate.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
                return bad("class share must be >= 0 and wrong_rate within 0..=1");
            }
            if c.strategy.is_some() && (c.collude || c.fails) {
                return bad("a class's strategy replaces collude and fails: name one or the other");
            }
            if c.speed.median.is_nan() || c.speed.median < 1.0 || c.speed.sigma < 0.0 {
                return bad("class speed median must be >= 1 and sigma >= 0");
            }
        }
        let w = &self.workload;
        if w.tasks_per_job.min == 0 || w.tasks_per_job.min > w.tasks_per_job.max {
            return bad("workload.tasks_per_job needs 1 <= min <= max");
        }
        if w.tasks_per_job.max > 1_000_000 {
            return bad("workload.tasks_per_job.max is above the engine's 1,000,000 tasks per job");
        }
        if w.requesters == 0 || w.fuel.median < 1.0 || w.mean_interarrival_s < 0.0 {
            return bad(
                "workload needs requesters >= 1, fuel.median >= 1, mean_interarrival_s >= 0",
            );
        }
        if let PolicyConfig::Voting { m } = w.policy
            && (m == 0 || m > 16)
        {
            return bad("voting m must be between 1 and 16");
        }
        let c = &self.churn;
        for rate in [c.crash_per_hour, c.leave_per_hour, c.join_per_hour] {
            if !(0.0..=1000.0).contains(&rate) {
                return bad("churn rates must be between 0 and 1000 per hour");
            }
        }
        if self.network.timer_s == 0 || self.network.heartbeat_timeout_s == 0 {
            return bad("network.timer_s and heartbeat_timeout_s must be positive");
        }
        if self.providers.count == 0 || self.providers.count > 10_000_000 {
            return bad("providers.count must be between 1 and 10,000,000");
        }
        if u64::from(self.network.validators) > self.providers.count.min(1_000) {
            return bad("network.validators must be at most providers.count and 1,000");
        }
        if self.network.validator_slots > 1024 {
            return bad("network.validator_slots must be at most 1024");
        }
        if self.network.validators > 0
            && !self
                .classes
                .iter()
                .any(|c| c.behaviour == Behaviour::Honest)
        {
            return bad("validators run honest providers: name an honest class");
        }
        if let Some(ExperimentConfig::Collusion {
            saboteur_fractions,
            strategies,
        }) = &self.experiment
            && (saboteur_fractions.is_empty() || strategies.is_empty())
        {
            return bad("a collusion experiment needs saboteur_fractions and strategies");
        }
        self.network
            .verification
            .validate()
            .map_err(crate::SimError::Config)?;
        Ok(())
    }
}
