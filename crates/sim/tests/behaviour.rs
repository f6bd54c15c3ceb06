//! What the simulator must get right, on small networks: the same seed gives the same run, no
//! accepted task is ever lost (with crashes too), non-colluding saboteurs never win a vote, more
//! votes accept fewer wrong results, and configuration mistakes are typed errors.

use sim::config::PolicyConfig;
use sim::experiments::{Options, run_once, voting_error};
use sim::world::World;
use sim::{SimConfig, SimError};

fn small(extra: &str) -> SimConfig {
    let text = format!(
        r#"
name = "small"
seed = 4
[providers]
count = 300
[workload]
tasks = 3_000
tasks_per_job = {{ min = 100, max = 400 }}
fuel = {{ median = 2e10, sigma = 0.3 }}
mean_interarrival_s = 3.0
{extra}
"#
    );
    SimConfig::parse(&text).expect("valid config")
}

fn with_saboteurs(policy: &str, collude: bool, share: f64) -> SimConfig {
    small(&format!(
        r#"policy = {policy}
[network]
restake = true
[[classes]]
name = "honest"
share = {honest}
[[classes]]
name = "saboteur"
share = {share}
behaviour = "saboteur"
collude = {collude}
"#,
        honest = 1.0 - share
    ))
}

#[test]
fn same_seed_same_run_and_another_seed_another() {
    let cfg = small("");
    let (a, _) = run_once(&cfg, false).unwrap();
    let (b, _) = run_once(&cfg, false).unwrap();
    let strip = |s: &sim::Summary| {
        let mut v = serde_json::to_value(s).unwrap();
        v.as_object_mut().unwrap().remove("wall_s");
        v
    };
    assert_eq!(strip(&a), strip(&b));
    let mut other = cfg.clone();
    other.seed = 5;
    let (c, _) = run_once(&other, false).unwrap();
    assert_ne!(a.state_hash, c.state_hash);
}

/// The warm window leaves out the jobs of the first `warmup_tasks` tasks and measures the rest
/// from the engine's records: the whole run without a warm-up, fewer tasks with one, and on an
/// honest network fewer executions per task once providers have a history.
#[test]
fn the_warm_window_leaves_out_the_cold_start() {
    let whole = run_once(&small(""), false).unwrap().0;
    assert_eq!(whole.warm.tasks_accepted, whole.tasks_accepted);
    assert_eq!(whole.warm.wrong_accepted, whole.wrong_accepted);
    assert_eq!(whole.warm.mean_executions, whole.mean_executions_accepted);
    let mut cfg = small("");
    cfg.workload.warmup_tasks = 1_500;
    let (warm, _) = run_once(&cfg, false).unwrap();
    assert_eq!(
        warm.state_hash, whole.state_hash,
        "the window changes no run"
    );
    let w = &warm.warm;
    assert!(
        w.tasks_accepted > 0 && w.tasks_accepted <= 1_500,
        "{} tasks measured",
        w.tasks_accepted
    );
    assert!(
        w.mean_executions < whole.mean_executions_accepted,
        "warm {} against {} over the run",
        w.mean_executions,
        whole.mean_executions_accepted
    );
}

#[test]
fn honest_network_finishes_everything_and_conserves_supply() {
    let cfg = small("");
    let mut world = World::new(&cfg, false).unwrap();
    world.run().unwrap();
    let m = &world.metrics;
    assert_eq!(m.accepted, 3_000);
    assert_eq!(m.wrong, 0);
    assert_eq!(m.jobs_failed, 0);
    assert_eq!(m.jobs_completed, world.jobs_submitted());
    assert!(world.state.check_supply().is_ok());
    // Every accepted task was paid, and the providers hold what they earned.
    let paid: u128 = m.class_earned.iter().sum();
    let held: u128 = world
        .provider_earnings()
        .iter()
        .flatten()
        .map(|(earned, _)| earned)
        .sum();
    assert!(paid > 0);
    assert_eq!(paid, held);
    let util = m.timeline.overall();
    assert!(util > 0.0 && util <= 1.0, "utilization {util}");
}

#[test]
fn crashes_lose_no_task() {
    for rejoin in [0, 120] {
        let cfg = small(&format!(
            "[churn]\ncrash_per_hour = 6.0\nleave_per_hour = 0.2\njoin_per_hour = 0.5\nrejoin_after_s = {rejoin}\n"
        ));
        let (s, _) = run_once(&cfg, false).unwrap();
        assert!(s.crashes > 10, "crashes {}", s.crashes);
        assert_eq!(s.tasks_accepted, 3_000, "rejoin {rejoin}");
        assert_eq!(s.jobs_completed, s.jobs);
        assert!(s.mean_executions > 1.0);
    }
}

#[test]
fn saboteurs_that_do_not_collude_never_win_a_vote() {
    let (s, _) = run_once(
        &with_saboteurs("{ policy = \"voting\", m = 2 }", false, 0.3),
        false,
    )
    .unwrap();
    assert_eq!(s.wrong_accepted, 0);
    assert_eq!(s.tasks_accepted, 3_000);
    assert!(s.slashes > 0);
    assert!(s.cheaters_net_tokens < 0.0, "{}", s.cheaters_net_tokens);
}

#[test]
fn more_votes_accept_fewer_wrong_results_from_colluders() {
    let two = run_once(
        &with_saboteurs("{ policy = \"voting\", m = 2 }", true, 0.2),
        false,
    )
    .unwrap()
    .0;
    let three = run_once(
        &with_saboteurs("{ policy = \"voting\", m = 3 }", true, 0.2),
        false,
    )
    .unwrap()
    .0;
    assert!(two.wrong_accepted > 0);
    assert!(three.accepted_wrong_rate < two.accepted_wrong_rate);
    assert!(three.mean_executions > two.mean_executions);
    // The engine gives tie-breaking replicas to trusted providers first, so it does no worse
    // than random assignment, which the closed form assumes (allowing for sampling noise).
    assert!(two.accepted_wrong_rate < voting_error(2, 0.2) * 1.3);
    assert_eq!(PolicyConfig::Voting { m: 2 }.name(), "voting m=2");
}

#[test]
fn configuration_mistakes_are_typed_errors() {
    for (text, needle) in [
        ("seed = 1\nbogus = 2\n", "unknown field"),
        ("[[classes]]\nname = \"x\"\nslots = [0]\n", "slots"),
        (
            "[workload]\ntasks_per_job = { min = 5, max = 1 }\n",
            "tasks_per_job",
        ),
        (
            "[workload]\npolicy = { policy = \"voting\", m = 0 }\n",
            "voting m",
        ),
        ("[providers]\ncount = 0\n", "providers.count"),
        (
            "[[classes]]\nname = \"x\"\nstrategy = \"sybil\"\ncollude = true\n",
            "strategy replaces",
        ),
        (
            "[[classes]]\nname = \"x\"\nstrategy = \"lucky\"\n",
            "unknown variant",
        ),
        (
            "[experiment]\nkind = \"collusion\"\nsaboteur_fractions = [0.1]\nstrategies = []\n",
            "collusion experiment",
        ),
    ] {
        match SimConfig::parse(text) {
            Err(SimError::Config(msg)) => assert!(msg.contains(needle), "{msg}"),
            other => panic!("{text}: {:?}", other.map(|_| ())),
        }
    }
}

#[test]
fn every_experiment_file_parses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sim/experiments");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            SimConfig::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(seen >= 6, "only {seen} experiment files");
}

/// Fewer providers that report every task as failed than a task's `max_attempts` (3), among
/// honest ones, fail no job: none gets back a task it failed while others can run it.
#[test]
fn fewer_failing_providers_than_attempts_fail_no_job() {
    let mut cfg = small(
        r#"policy = { policy = "single" }
[[classes]]
name = "honest"
share = 0.98
[[classes]]
name = "failing"
share = 0.02
behaviour = "saboteur"
fails = true
"#,
    );
    cfg.providers.count = 100;
    let (s, _) = run_once(&cfg, false).unwrap();
    assert!((1..3).contains(&s.classes[1].providers), "{s:?}");
    assert_eq!(s.jobs_failed, 0, "{s:?}");
    assert_eq!(s.jobs_completed, s.jobs, "{s:?}");
    assert!(
        s.mean_executions > 1.0,
        "the failing provider ran nothing: {s:?}"
    );
}

/// The collusion experiment, tiny: one row per strategy, each with sane values. Under rules 4 a
/// cheater that predicts the public spot-check draw is never audited, so it is never slashed
/// and its wrong results are accepted; under rules 5 (the beacon) it can only bet on its lowest
/// audit rate, and gets fewer wrong results accepted. Failing providers never get a wrong result
/// accepted. An honest provider is slashed only when a wrong quorum wins against it.
#[test]
fn collusion_experiment_measures_every_strategy() {
    let cfg = small(
        r#"[experiment]
kind = "collusion"
saboteur_fractions = [0.2]
strategies = ["colluding", "sometimes", "predicting", "turncoat", "sybil", "failing"]
[network]
restake = true
[[classes]]
name = "honest"
[[classes]]
name = "cheater"
share = 0.0
strategy = "colluding"
"#,
    );
    let mut cfg = cfg;
    cfg.providers.count = 150;
    cfg.workload.tasks = 2_000;
    let out = sim::run_config(
        &cfg,
        &Options {
            out_dir: None,
            progress: false,
        },
    )
    .unwrap();
    let rows = out.json.as_array().unwrap();
    assert_eq!(rows.len(), 6, "{}", out.table);
    let num = |r: &serde_json::Value, k: &str| {
        r[k].as_f64()
            .unwrap_or_else(|| panic!("{k} missing: {}", out.table))
    };
    for r in rows {
        assert_eq!(num(r, "f"), 0.2);
        let rate = num(r, "wrong_rate");
        assert!((0.0..=1.0).contains(&rate), "{}", out.table);
        assert!(num(r, "mean_executions") >= 1.0, "{}", out.table);
        assert!(num(r, "honest_net") > 0.0, "{}", out.table);
        assert!(num(r, "cheaters") > 0.0, "{}", out.table);
        if num(r, "wrong_accepted") == 0.0 {
            assert_eq!(num(r, "honest_slashed"), 0.0, "{}", out.table);
        }
    }
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["strategy"] == name)
            .unwrap_or_else(|| panic!("no {name} row: {}", out.table))
    };
    let predicting = row("predicting");
    assert_eq!(num(predicting, "honest_slashed"), 0.0, "{}", out.table);
    // The same row under rules 4, where the draw is public.
    let mut old = cfg.clone();
    old.network.rules = 4;
    if let Some(sim::config::ExperimentConfig::Collusion { strategies, .. }) =
        old.experiment.as_mut()
    {
        strategies.retain(|s| s.name() == "predicting");
    }
    let before = sim::run_config(
        &old,
        &Options {
            out_dir: None,
            progress: false,
        },
    )
    .unwrap();
    let was = &before.json.as_array().unwrap()[0];
    assert_eq!(was["strategy"], "predicting", "{}", before.table);
    assert!(num(was, "wrong_accepted") > 0.0, "{}", before.table);
    assert_eq!(num(was, "cheater_stake_bought"), 0.0, "{}", before.table);
    assert!(num(was, "cheater_net") > 0.0, "{}", before.table);
    assert!(
        num(predicting, "wrong_accepted") < num(was, "wrong_accepted"),
        "rules 5: {}\nrules 4: {}",
        out.table,
        before.table
    );
    let failing = row("failing");
    assert_eq!(num(failing, "wrong_accepted"), 0.0, "{}", out.table);
    assert!(num(failing, "cheater_net") < 0.0, "{}", out.table);
    assert!(num(row("colluding"), "cheater_net") < 0.0, "{}", out.table);
    assert!(num(row("sybil"), "reentries") > 0.0, "{}", out.table);
    // The turncoat lies once trusted, and pairs of turncoats confirming each other get lies
    // accepted; under rules 19 those are corrected once both are caught (reopened and wrong,
    // no longer standing).
    let turncoat = row("turncoat");
    assert!(
        num(turncoat, "wrong_accepted") + num(turncoat, "reopened_wrong") > 0.0,
        "{}",
        out.table
    );
}

/// Rules 7 in the simulator: half the fleet colludes. Without validators, colluders agreeing
/// in the first rounds become the trusted providers and most accepted results are wrong; with
/// two validators each running a provider, trust grows only from their machines, no wrong
/// result is accepted, no honest provider is slashed and no job fails. (Their providers are
/// honest and counted apart from the fleet's.)
#[test]
fn validators_providers_anchor_trust_against_a_colluding_half() {
    let run = |validators: u32| {
        let mut cfg = with_saboteurs("{ policy = \"adaptive\" }", true, 0.5);
        cfg.providers.count = 100;
        cfg.workload.tasks = 1_000;
        cfg.network.validators = validators;
        cfg.network.validator_slots = 16;
        run_once(&cfg, false).unwrap().0
    };
    let single = run(0);
    assert!(single.accepted_wrong_rate > 0.1, "{single:?}");
    let anchored = run(2);
    assert_eq!(anchored.wrong_accepted, 0, "{anchored:?}");
    assert_eq!(anchored.tasks_failed, 0, "{anchored:?}");
    assert_eq!(anchored.tasks_accepted, 1_000, "{anchored:?}");
    // Misconfigured validators are typed errors.
    for (extra, needle) in [
        ("[network]\nvalidators = 301\n", "network.validators"),
        (
            "[network]\nvalidators = 1\nvalidator_slots = 2000\n",
            "validator_slots",
        ),
        (
            "[network]\nvalidators = 1\n[[classes]]\nname = \"s\"\nbehaviour = \"saboteur\"\n",
            "honest class",
        ),
    ] {
        match SimConfig::parse(&format!("[providers]\ncount = 300\n{extra}")) {
            Err(SimError::Config(msg)) => assert!(msg.contains(needle), "{msg}"),
            other => panic!("{extra}: {:?}", other.map(|_| ())),
        }
    }
}
