//! `gridmint sim` as a user runs it: a table with plots, `--json`, and typed errors for a bad file.

use crate::support::World;

#[test]
fn sim_prints_a_summary_json_and_plots() {
    let w = World::new();
    let cfg = w.write(
        "net.toml",
        r#"name = "tiny"
seed = 9
[providers]
count = 200
[[classes]]
name = "honest"
share = 0.9
[[classes]]
name = "cheater"
share = 0.1
behaviour = "saboteur"
wrong_rate = 0.5
[workload]
tasks = 1_000
tasks_per_job = { min = 100, max = 200 }
fuel = { median = 2e10 }
"#,
    );
    let out = w.dir("plots");
    let cfg_s = cfg.to_str().unwrap();
    let out_s = out.to_str().unwrap();

    let table = w.cli(&["sim", cfg_s, "--out", out_s, "--quiet"]).ok();
    for needle in [
        "makespan",
        "utilization",
        "task latency",
        "executions per task",
        "cheater",
    ] {
        assert!(
            table.stdout.contains(needle),
            "{needle} missing:\n{}",
            table.stdout
        );
    }
    for png in ["utilization.png", "earnings.png"] {
        let bytes = std::fs::read(out.join(png)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{png}");
    }

    let v = w
        .cli(&["sim", cfg_s, "--json", "--no-plots", "--quiet"])
        .ok()
        .json();
    assert_eq!(v["tasks_accepted"], 1_000);
    assert_eq!(v["accepted_wrong_rate"], 0.0);
    assert!(v["cheaters_net_tokens"].as_f64().unwrap() < 0.0);
    assert!(
        v["task_latency_p99_s"].as_f64().unwrap() >= v["task_latency_mean_s"].as_f64().unwrap()
    );
    assert_eq!(v["classes"].as_array().unwrap().len(), 2);

    let bad = w.write("bad.toml", "[workload]\ntasks = \"many\"\n");
    let refused = w.cli(&["sim", bad.to_str().unwrap(), "--quiet"]).fails();
    assert!(
        refused.stderr.contains("invalid simulation config"),
        "{}",
        refused.stderr
    );
}
