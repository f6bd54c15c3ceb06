//! Running a configuration: one run, or the sweep its `[experiment]` asks for, with the table,
//! the JSON and the plots of each.

use crate::config::{ExperimentConfig, Play, PolicyConfig, SimConfig, Strategy};
use crate::plot::{self, Series};
use crate::report::{Summary, thousands, tokens_f64};
use crate::world::World;
use crate::{SimError, etc};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub struct Options {
    /// Where plots go; `None`: no plots.
    pub out_dir: Option<PathBuf>,
    /// Show a progress bar on stderr (hidden anyway when stderr is not a terminal).
    pub progress: bool,
}

/// What a configuration produced.
pub struct Output {
    pub table: String,
    pub json: serde_json::Value,
    pub plots: Vec<PathBuf>,
}

/// What a run measured besides its summary: the series the plots draw.
pub struct RunData {
    /// (seconds, utilization 0–1) per bucket.
    pub utilization: Vec<(f64, f64)>,
    /// Per class: each provider's net earnings (earned − slashed), tokens.
    pub net_per_provider: Vec<(String, Vec<f64>)>,
    /// Per class: (seconds, mean cumulative net earnings per provider, tokens).
    pub net_over_time: Vec<(String, Vec<(f64, f64)>)>,
}

/// Runs `cfg` once.
pub fn run_once(cfg: &SimConfig, progress: bool) -> Result<(Summary, RunData), SimError> {
    let started = Instant::now();
    let mut world = World::new(cfg, progress)?;
    world.run()?;
    let wall = started.elapsed().as_secs_f64();
    let summary = Summary::of(cfg, &mut world, wall);
    let m = &world.metrics;
    let earnings = world.provider_earnings();
    let net_per_provider = cfg
        .classes
        .iter()
        .zip(earnings)
        .map(|(c, per)| {
            let nets = per
                .iter()
                .map(|(e, s)| tokens_f64(*e) - tokens_f64(*s))
                .collect();
            (c.name.clone(), nets)
        })
        .collect();
    let net_over_time = cfg
        .classes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let n = m.class_providers[i].max(1) as f64;
            let points = m
                .samples
                .iter()
                .map(|s| {
                    let net = tokens_f64(s.earned[i]) - tokens_f64(s.slashed[i]);
                    (s.time as f64 / 1000.0, net / n)
                })
                .collect();
            (c.name.clone(), points)
        })
        .collect();
    let data = RunData {
        utilization: m.timeline.utilization(m.end),
        net_per_provider,
        net_over_time,
    };
    Ok((summary, data))
}

/// Runs a configuration file's run or experiment.
pub fn run_config(cfg: &SimConfig, opts: &Options) -> Result<Output, SimError> {
    if let Some(dir) = &opts.out_dir {
        std::fs::create_dir_all(dir).map_err(|source| SimError::Io {
            path: dir.display().to_string(),
            source,
        })?;
    }
    match &cfg.experiment {
        None => single(cfg, opts),
        Some(ExperimentConfig::Verification {
            saboteur_fractions,
            policies,
            rules,
        }) => verification(cfg, opts, saboteur_fractions, policies, rules),
        Some(ExperimentConfig::Collusion {
            saboteur_fractions,
            strategies,
        }) => collusion(cfg, opts, saboteur_fractions, strategies),
        Some(ExperimentConfig::Churn { crash_per_hour }) => churn(cfg, opts, crash_per_hour),
        Some(ExperimentConfig::Economics) => economics(cfg, opts),
        Some(ExperimentConfig::Scheduling(sched)) => scheduling(cfg, opts, sched),
    }
}

fn json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// The two plots every run has: utilization over time, and the earnings distribution.
fn run_plots(dir: &Path, cfg: &SimConfig, data: &RunData) -> Result<Vec<PathBuf>, SimError> {
    let util = dir.join("utilization.png");
    plot::line_chart(
        &util,
        &format!("{}: utilization over time", cfg.name),
        "virtual time (s)",
        "busy slots / live slots (%)",
        &[Series {
            name: "utilization".into(),
            points: data
                .utilization
                .iter()
                .map(|(t, u)| (*t, u * 100.0))
                .collect(),
            dashed: false,
        }],
    )?;
    let earn = dir.join("earnings.png");
    plot::histogram(
        &earn,
        &format!("{}: net earnings per provider", cfg.name),
        "earned minus slashed (tokens)",
        "providers",
        &data.net_per_provider,
        40,
    )?;
    Ok(vec![util, earn])
}

fn single(cfg: &SimConfig, opts: &Options) -> Result<Output, SimError> {
    let (summary, data) = run_once(cfg, opts.progress)?;
    let plots = match &opts.out_dir {
        Some(dir) => run_plots(dir, cfg, &data)?,
        None => Vec::new(),
    };
    Ok(Output {
        table: summary.table(),
        json: json(&summary),
        plots,
    })
}

/// The error rate of m-first voting when each result is independently a colluders' shared wrong
/// answer with probability `p`: the wrong answer reaches `m` votes before the right one, i.e.
/// the m-th wrong vote comes while at most m−1 right ones have:
/// ε(m, p) = Σ_{j=0}^{m−1} C(m−1+j, j) · p^m · (1−p)^j.
pub fn voting_error(m: u32, p: f64) -> f64 {
    let m = i32::try_from(m).unwrap_or(i32::MAX);
    let mut total = 0.0;
    let mut binom = 1.0; // C(m-1+j, j)
    for j in 0..m {
        if j > 0 {
            binom = binom * f64::from(m - 1 + j) / f64::from(j);
        }
        total += binom * p.powi(m) * (1.0 - p).powi(j);
    }
    total
}

#[derive(Clone, Debug, Serialize)]
pub struct VerificationRow {
    /// The version of the engine's rules the row ran.
    pub rules: u32,
    pub policy: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub m: Option<u32>,
    pub f: f64,
    pub wrong_rate: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analytic_wrong_rate: Option<f64>,
    pub mean_executions: f64,
    pub tasks_accepted: u64,
    pub wrong_accepted: u64,
    pub cheaters_net_tokens: f64,
    pub jobs_failed: u64,
}

/// A copy of `cfg` whose saboteur classes together have share `f` and honest ones `1 − f`
/// (split among the classes of a kind by their shares, or equally when those are all zero).
fn with_saboteurs(cfg: &SimConfig, f: f64) -> Result<SimConfig, SimError> {
    let kinds = [true, false];
    if !(0.0..=1.0).contains(&f)
        || kinds
            .iter()
            .any(|b| cfg.classes.iter().all(|c| c.is_saboteur() != *b))
    {
        return Err(SimError::Config(
            "a saboteur fraction sweep needs an honest and a saboteur class, and fractions \
             within 0..=1"
                .into(),
        ));
    }
    let mut c = cfg.clone();
    for kind in kinds {
        let target = if kind { f } else { 1.0 - f };
        let of_kind = |cl: &&crate::config::ClassConfig| cl.is_saboteur() == kind;
        let total: f64 = cfg
            .classes
            .iter()
            .filter(of_kind)
            .map(|cl| cl.share.max(0.0))
            .sum();
        let count = cfg.classes.iter().filter(of_kind).count() as f64;
        for class in c.classes.iter_mut().filter(|cl| cl.is_saboteur() == kind) {
            class.share = if total > 0.0 {
                class.share.max(0.0) / total * target
            } else {
                target / count
            };
        }
    }
    Ok(c)
}

fn verification(
    cfg: &SimConfig,
    opts: &Options,
    fractions: &[f64],
    policies: &[PolicyConfig],
    rules: &[u32],
) -> Result<Output, SimError> {
    let rules = if rules.is_empty() {
        vec![cfg.network.rules]
    } else {
        rules.to_vec()
    };
    // The closed form applies to one class of colluders (each result wrong with f·wrong_rate).
    let saboteurs: Vec<_> = cfg.classes.iter().filter(|c| c.is_saboteur()).collect();
    let colluding_rate = match saboteurs.as_slice() {
        [one] => match one.play() {
            Play::Wrong {
                rate,
                collude: true,
            } => Some(rate),
            _ => None,
        },
        _ => None,
    };
    let mut rows = Vec::new();
    for (&version, policy) in rules
        .iter()
        .flat_map(|r| policies.iter().map(move |p| (r, p)))
    {
        for &f in fractions {
            let mut c = with_saboteurs(cfg, f)?;
            c.workload.policy = *policy;
            c.network.rules = version;
            let (s, _) = run_once(&c, opts.progress)?;
            let m = match policy {
                PolicyConfig::Voting { m } => Some(*m),
                _ => None,
            };
            rows.push(VerificationRow {
                rules: version,
                policy: match policy {
                    PolicyConfig::Voting { .. } => "voting".into(),
                    other => other.name(),
                },
                m,
                f,
                wrong_rate: s.accepted_wrong_rate,
                analytic_wrong_rate: m.zip(colluding_rate).map(|(m, s)| voting_error(m, f * s)),
                mean_executions: s.mean_executions,
                tasks_accepted: s.tasks_accepted,
                wrong_accepted: s.wrong_accepted,
                cheaters_net_tokens: s.cheaters_net_tokens,
                jobs_failed: s.jobs_failed,
            });
        }
    }
    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<6}{:<10}{:>4}{:>7}{:>13}{:>13}{:>12}{:>11}{:>9}{:>16}{:>13}",
        "rules",
        "policy",
        "m",
        "f",
        "wrong rate",
        "analytic",
        "executions",
        "accepted",
        "wrong",
        "cheaters' net",
        "jobs failed"
    );
    for r in &rows {
        let _ = writeln!(
            table,
            "{:<6}{:<10}{:>4}{:>7.2}{:>13.6}{:>13}{:>12.3}{:>11}{:>9}{:>16.3}{:>13}",
            r.rules,
            r.policy,
            r.m.map_or("-".into(), |m| m.to_string()),
            r.f,
            r.wrong_rate,
            r.analytic_wrong_rate
                .map_or("-".into(), |a| format!("{a:.6}")),
            r.mean_executions,
            thousands(r.tasks_accepted),
            thousands(r.wrong_accepted),
            r.cheaters_net_tokens,
            thousands(r.jobs_failed)
        );
    }
    let mut plots = Vec::new();
    if let Some(dir) = &opts.out_dir {
        let mut wrong = Vec::new();
        let mut execs = Vec::new();
        for (&version, policy) in rules
            .iter()
            .flat_map(|r| policies.iter().map(move |p| (r, p)))
        {
            let mine: Vec<&VerificationRow> = rows
                .iter()
                .filter(|r| label(r) == policy.name() && r.rules == version)
                .collect();
            // The rules version joins a series' name when the rows compare versions.
            let name = if rules.len() > 1 {
                format!("{} (rules {version})", policy.name())
            } else {
                policy.name()
            };
            wrong.push(Series {
                name: format!("{name} (simulated)"),
                points: mine.iter().map(|r| (r.f, r.wrong_rate)).collect(),
                dashed: false,
            });
            if mine.iter().all(|r| r.analytic_wrong_rate.is_some()) && !mine.is_empty() {
                wrong.push(Series {
                    name: format!("{name} (closed form)"),
                    points: mine
                        .iter()
                        .filter_map(|r| r.analytic_wrong_rate.map(|a| (r.f, a)))
                        .collect(),
                    dashed: true,
                });
            }
            execs.push(Series {
                name,
                points: mine.iter().map(|r| (r.f, r.mean_executions)).collect(),
                dashed: false,
            });
        }
        let p1 = dir.join("wrong-rate.png");
        plot::line_chart(
            &p1,
            "accepted wrong results against the saboteur fraction",
            "saboteur fraction f",
            "wrong results / accepted results",
            &wrong,
        )?;
        let p2 = dir.join("executions.png");
        plot::line_chart(
            &p2,
            "redundancy against the saboteur fraction",
            "saboteur fraction f",
            "executions per task",
            &execs,
        )?;
        plots = vec![p1, p2];
    }
    Ok(Output {
        table,
        json: json(&rows),
        plots,
    })
}

fn label(r: &VerificationRow) -> String {
    match r.m {
        Some(m) => format!("voting m={m}"),
        None => r.policy.clone(),
    }
}

/// `ReplicasQueued` reasons that mean an audit: the results disagree, or a reported failure
/// must be confirmed, or (rules 14) trusted results disagree and an anchor decides. (The others
/// are a new provider's result waiting for confirmation, and the replica a spot check queues,
/// counted as the spot check itself.)
pub const DISPUTE_REASONS: [&str; 4] = [
    "results disagree",
    "failure needs confirmation",
    engine::ANCHOR_DISPUTE,
    engine::REOPENED,
];

/// One row of the collusion experiment: strategy `strategy` at saboteur fraction `f`.
#[derive(Clone, Debug, Serialize)]
pub struct CollusionRow {
    pub f: f64,
    pub strategy: String,
    /// Accepted tasks whose result was wrong.
    pub wrong_accepted: u64,
    pub tasks_accepted: u64,
    /// `wrong_accepted / tasks_accepted`.
    pub wrong_rate: f64,
    /// Runs that returned a result or failed, per accepted task.
    pub mean_executions: f64,
    /// Wrong results accepted, their rate and executions per accepted task over the warm
    /// window (`workload.warmup_tasks`; the whole run when that is 0).
    pub warm_wrong_accepted: u64,
    pub warm_wrong_rate: f64,
    pub warm_executions: f64,
    /// Spot checks the engine drew (`Event::SpotCheck`).
    pub spot_checks: u64,
    /// Rounds of replicas queued because results disagreed, a failure needed confirmation or a
    /// result was reopened (rules 16) (`Event::ReplicasQueued` with one of [`DISPUTE_REASONS`]).
    pub disputes: u64,
    /// `(spot_checks + disputes) / tasks submitted`.
    pub audits_per_task: f64,
    /// Accepted results reopened because their provider was caught lying (rules 16,
    /// `Event::ResultReopened`): each costs its job one more execution. And the wrong ones
    /// among them (not in `wrong_accepted`: found before their job completed).
    pub reopened: u64,
    pub reopened_wrong: u64,
    /// Cheating machines (identity owners: a sybil's accounts count as one).
    pub cheaters: u64,
    /// Per cheater, tokens: earned − slashed (tokens leave a machine's accounts only through
    /// slashes: a restake top-up or a sybil's fresh stake stays its own).
    pub cheater_net: f64,
    /// Per cheater, tokens: the stake bonded again after joining (restake top-ups, a sybil's
    /// fresh accounts), already counted in `cheater_net` through the slashes it replaces.
    pub cheater_stake_bought: f64,
    /// Sybils' fresh accounts.
    pub reentries: u64,
    pub honest_providers: u64,
    /// Per honest provider, tokens: earned − slashed.
    pub honest_net: f64,
    /// Honest providers slashed at least once.
    pub honest_slashed: u64,
    pub jobs_failed: u64,
    pub tasks_failed: u64,
    pub wall_s: f64,
}

/// Totals over the classes on one side (cheating or honest) of a run: machines, earned − slashed
/// and stake bought per machine in tokens, and machines slashed.
fn side(cfg: &SimConfig, s: &Summary, cheating: bool) -> (u64, f64, f64, u64) {
    let mut n = 0u64;
    let (mut net, mut bought, mut slashed) = (0.0, 0.0, 0u64);
    for (c, cs) in cfg.classes.iter().zip(&s.classes) {
        if c.is_saboteur() == cheating {
            n += cs.providers;
            net += cs.net_tokens;
            bought += cs.stake_bought_tokens;
            slashed += cs.slashed_providers;
        }
    }
    let per = |x: f64| if n > 0 { x / n as f64 } else { 0.0 };
    (n, per(net), per(bought), slashed)
}

/// Every strategy against every saboteur fraction: for each f, the base configuration with its
/// saboteur classes scaled to f (as the verification sweep does) and playing each strategy in
/// turn.
fn collusion(
    cfg: &SimConfig,
    opts: &Options,
    fractions: &[f64],
    strategies: &[Strategy],
) -> Result<Output, SimError> {
    let mut rows = Vec::new();
    for &f in fractions {
        let base = with_saboteurs(cfg, f)?;
        for &strategy in strategies {
            let mut c = base.clone();
            for class in c.classes.iter_mut().filter(|cl| cl.is_saboteur()) {
                class.strategy = Some(strategy);
                class.collude = false;
                class.fails = false;
            }
            c.validate()?;
            let (s, _) = run_once(&c, opts.progress)?;
            let disputes: u64 = DISPUTE_REASONS
                .iter()
                .filter_map(|r| s.replicas_queued.get(*r))
                .sum();
            let (cheaters, cheater_net, cheater_stake_bought, _) = side(&c, &s, true);
            let (honest_providers, honest_net, _, honest_slashed) = side(&c, &s, false);
            rows.push(CollusionRow {
                f,
                strategy: strategy.name().into(),
                wrong_accepted: s.wrong_accepted,
                tasks_accepted: s.tasks_accepted,
                wrong_rate: s.accepted_wrong_rate,
                mean_executions: s.mean_executions_accepted,
                warm_wrong_accepted: s.warm.wrong_accepted,
                warm_wrong_rate: s.warm.wrong_rate,
                warm_executions: s.warm.mean_executions,
                spot_checks: s.spot_checks,
                disputes,
                audits_per_task: if s.tasks > 0 {
                    (s.spot_checks + disputes) as f64 / s.tasks as f64
                } else {
                    0.0
                },
                reopened: s.reopened,
                reopened_wrong: s.reopened_wrong,
                cheaters,
                cheater_net,
                cheater_stake_bought,
                reentries: s.reentries,
                honest_providers,
                honest_net,
                honest_slashed,
                jobs_failed: s.jobs_failed,
                tasks_failed: s.tasks_failed,
                wall_s: s.wall_s,
            });
        }
    }
    let warmup = cfg.workload.warmup_tasks > 0;
    // The warm window's columns, when the run has a warm-up.
    let warm_cols = |a: &str, b: &str| {
        if warmup {
            format!("{a:>11}{b:>12}")
        } else {
            String::new()
        }
    };
    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:>5}  {:<11}{:>9}{:>11}{:>12}{:>13}{:>14}{:>13}{:>12}{:>9}{:>8}{:>16}{:>8}{}",
        "f",
        "strategy",
        "wrong",
        "wrong rate",
        "executions",
        "audits/task",
        "cheater net",
        "stake bought",
        "honest net",
        "honest",
        "jobs",
        "reopened",
        "wall",
        warm_cols("warm", "warm")
    );
    let _ = writeln!(
        table,
        "{:>5}  {:<11}{:>9}{:>11}{:>12}{:>13}{:>14}{:>13}{:>12}{:>9}{:>8}{:>16}{:>8}{}",
        "",
        "",
        "accepted",
        "",
        "/accepted",
        "",
        "/cheater",
        "/cheater",
        "/provider",
        "slashed",
        "failed",
        "(wrong)",
        "(s)",
        warm_cols("wrong rate", "executions")
    );
    for r in &rows {
        let _ = writeln!(
            table,
            "{:>5.2}  {:<11}{:>9}{:>11.6}{:>12.3}{:>13.4}{:>14.2}{:>13.2}{:>12.2}{:>9}{:>8}{:>16}{:>8.1}{}",
            r.f,
            r.strategy,
            thousands(r.wrong_accepted),
            r.wrong_rate,
            r.mean_executions,
            r.audits_per_task,
            r.cheater_net,
            r.cheater_stake_bought,
            r.honest_net,
            thousands(r.honest_slashed),
            thousands(r.jobs_failed),
            format!(
                "{} ({})",
                thousands(r.reopened),
                thousands(r.reopened_wrong)
            ),
            r.wall_s,
            warm_cols(
                &format!("{:.6}", r.warm_wrong_rate),
                &format!("{:.3}", r.warm_executions)
            )
        );
    }
    let _ = writeln!(table);
    if warmup {
        let _ = writeln!(
            table,
            "warm: over the jobs submitted after the first {} tasks (the cold start, while most\n  providers have no history, left out); the other columns are over the whole run.",
            thousands(cfg.workload.warmup_tasks)
        );
    }
    for line in [
        "wrong accepted: accepted tasks whose result was wrong and stood; wrong rate: wrong",
        "  accepted / tasks accepted. executions: runs that returned a result or failed, per",
        "  accepted task. reopened (wrong): accepted results reopened because their provider",
        "  was caught lying (rules 16: backtracking, each one more execution for its job), and",
        "  the wrong ones among them (corrected before delivery or, under rules 19, after: not",
        "  in wrong accepted).",
        "audits/task: (spot checks drawn + replica rounds queued because results disagreed, a",
        "  failure needed confirmation or a result was reopened) / tasks submitted.",
        "cheater net: per cheating machine (a sybil's accounts count as one), tokens earned −",
        "  slashed. stake bought: stake bonded again after a slash (restake top-ups, a sybil's",
        "  fresh accounts), replacing what the slashes took. honest net: per honest provider.",
        "honest slashed: honest providers slashed at least once. wall: seconds the run took.",
    ] {
        let _ = writeln!(table, "{line}");
    }
    let mut plots = Vec::new();
    if let Some(dir) = &opts.out_dir {
        let per_strategy = |value: fn(&CollusionRow) -> f64| -> Vec<Series> {
            strategies
                .iter()
                .map(|st| Series {
                    name: st.name().into(),
                    points: rows
                        .iter()
                        .filter(|r| r.strategy == st.name())
                        .map(|r| (r.f, value(r)))
                        .collect(),
                    dashed: false,
                })
                .collect()
        };
        let p1 = dir.join("wrong-rate.png");
        plot::line_chart(
            &p1,
            "accepted wrong results against the saboteur fraction, by strategy",
            "saboteur fraction f",
            "wrong results / accepted results",
            &per_strategy(|r| r.wrong_rate),
        )?;
        let p2 = dir.join("cheater-net.png");
        plot::line_chart(
            &p2,
            "what cheating pays, by strategy",
            "saboteur fraction f",
            "net per cheater (tokens)",
            &per_strategy(|r| r.cheater_net),
        )?;
        plots = vec![p1, p2];
    }
    Ok(Output {
        table,
        json: json(&rows),
        plots,
    })
}

#[derive(Clone, Debug, Serialize)]
pub struct ChurnRow {
    pub crash_per_hour: f64,
    pub jobs_completed: u64,
    pub jobs_failed: u64,
    pub job_time_mean_s: f64,
    pub job_time_p99_s: f64,
    pub makespan_s: f64,
    pub crashes: u64,
    pub mean_executions: f64,
    pub utilization: f64,
}

fn churn(cfg: &SimConfig, opts: &Options, rates: &[f64]) -> Result<Output, SimError> {
    let mut rows = Vec::new();
    for &rate in rates {
        let mut c = cfg.clone();
        c.churn.crash_per_hour = rate;
        c.validate()?;
        let (s, _) = run_once(&c, opts.progress)?;
        rows.push(ChurnRow {
            crash_per_hour: rate,
            jobs_completed: s.jobs_completed,
            jobs_failed: s.jobs_failed,
            job_time_mean_s: s.job_time_mean_s,
            job_time_p99_s: s.job_time_p99_s,
            makespan_s: s.makespan_s,
            crashes: s.crashes,
            mean_executions: s.mean_executions,
            utilization: s.utilization,
        });
    }
    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:>14}{:>11}{:>8}{:>15}{:>14}{:>13}{:>9}{:>12}{:>13}",
        "crashes/hour",
        "completed",
        "failed",
        "job mean (s)",
        "job p99 (s)",
        "makespan (s)",
        "crashes",
        "executions",
        "utilization"
    );
    for r in &rows {
        let _ = writeln!(
            table,
            "{:>13.0}%{:>11}{:>8}{:>15.1}{:>14.1}{:>13.1}{:>9}{:>12.3}{:>12.1}%",
            r.crash_per_hour * 100.0,
            thousands(r.jobs_completed),
            thousands(r.jobs_failed),
            r.job_time_mean_s,
            r.job_time_p99_s,
            r.makespan_s,
            thousands(r.crashes),
            r.mean_executions,
            r.utilization * 100.0
        );
    }
    let mut plots = Vec::new();
    if let Some(dir) = &opts.out_dir {
        let path = dir.join("job-time.png");
        let categories: Vec<String> = rows
            .iter()
            .map(|r| format!("{:.0}% crash/h", r.crash_per_hour * 100.0))
            .collect();
        plot::grouped_bars(
            &path,
            "job completion time against the crash rate",
            "seconds (virtual)",
            &categories,
            &[
                (
                    "mean".to_string(),
                    rows.iter().map(|r| r.job_time_mean_s).collect(),
                ),
                (
                    "p99".to_string(),
                    rows.iter().map(|r| r.job_time_p99_s).collect(),
                ),
            ],
        )?;
        plots.push(path);
    }
    Ok(Output {
        table,
        json: json(&rows),
        plots,
    })
}

fn economics(cfg: &SimConfig, opts: &Options) -> Result<Output, SimError> {
    let (summary, data) = run_once(cfg, opts.progress)?;
    let mut plots = Vec::new();
    if let Some(dir) = &opts.out_dir {
        plots = run_plots(dir, cfg, &data)?;
        let path = dir.join("earnings-over-time.png");
        let series: Vec<Series> = data
            .net_over_time
            .iter()
            .map(|(name, points)| Series {
                name: name.clone(),
                points: points.clone(),
                dashed: false,
            })
            .collect();
        plot::line_chart(
            &path,
            "cumulative net earnings per provider, by class",
            "virtual time (s)",
            "earned minus slashed (tokens per provider)",
            &series,
        )?;
        plots.push(path);
    }
    let value = serde_json::json!({
        "summary": json(&summary),
        "net_over_time": data.net_over_time.iter().map(|(class, points)| {
            serde_json::json!({ "class": class, "points": points })
        }).collect::<Vec<_>>(),
    });
    Ok(Output {
        table: summary.table(),
        json: value,
        plots,
    })
}

fn scheduling(
    cfg: &SimConfig,
    opts: &Options,
    sched: &etc::SchedulingConfig,
) -> Result<Output, SimError> {
    let rows = etc::run(sched, cfg.seed)?;
    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<10}{:<14}{:>16}{:>16}",
        "instance", "policy", "makespan (s)", "vs min-min"
    );
    for r in &rows {
        let _ = writeln!(
            table,
            "{:<10}{:<14}{:>16.1}{:>15.3}x",
            r.instance,
            r.policy,
            r.makespan / 1000.0,
            r.relative_to_min_min
        );
    }
    let mut plots = Vec::new();
    if let Some(dir) = &opts.out_dir {
        let mut categories: Vec<String> = Vec::new();
        let mut policies: Vec<String> = Vec::new();
        for r in &rows {
            if !categories.contains(&r.instance) {
                categories.push(r.instance.clone());
            }
            if !policies.contains(&r.policy) {
                policies.push(r.policy.clone());
            }
        }
        let series: Vec<(String, Vec<f64>)> = policies
            .iter()
            .map(|p| {
                let values = categories
                    .iter()
                    .map(|c| {
                        rows.iter()
                            .find(|r| &r.policy == p && &r.instance == c)
                            .map_or(0.0, |r| r.relative_to_min_min)
                    })
                    .collect();
                (p.clone(), values)
            })
            .collect();
        let path = dir.join("makespan.png");
        plot::grouped_bars(
            &path,
            "makespan relative to min-min (Braun et al. ETC instances)",
            "makespan / min-min makespan",
            &categories,
            &series,
        )?;
        plots.push(path);
    }
    Ok(Output {
        table,
        json: json(&rows),
        plots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voting_error_closed_form() {
        // m = 1: the first result decides.
        assert!((voting_error(1, 0.2) - 0.2).abs() < 1e-12);
        // m = 2: p²(3 − 2p).
        let p: f64 = 0.3;
        assert!((voting_error(2, p) - p * p * (3.0 - 2.0 * p)).abs() < 1e-12);
        // Symmetry at one half, and nothing wrong without saboteurs.
        for m in 1..6 {
            assert!((voting_error(m, 0.5) - 0.5).abs() < 1e-12);
            assert_eq!(voting_error(m, 0.0), 0.0);
        }
        // m = 3 by enumeration of the orders in which votes arrive.
        let q: f64 = 0.1;
        let brute = q.powi(3) * (1.0 + 3.0 * (1.0 - q) + 6.0 * (1.0 - q).powi(2));
        assert!((voting_error(3, q) - brute).abs() < 1e-12);
    }
}
