//! Jobs through a real coordinator and two provider processes, checked against known answers.

use crate::support::{World, assert_completed, guest, pi_output, pi_spec, toml_path, word_count};
use api::Identity;
use api::wire::JobView;
use engine::JobStatus;
use std::collections::BTreeSet;

/// Three shards with shared words, mixed case, digits and punctuation as separators, and ties in
/// the counts so that the reduce's tie-break (word ascending) matters.
const SHARDS: [&str; 3] = [
    "The quick brown fox jumps over the lazy dog.\nTHE DOG barks; the fox runs!\n\
     Zebra zebra apple, x1y2z3 -- don't stop.\n",
    "A journey of a thousand miles begins with a single step.\n\
     The fox, the dog and the zebra: friends? Apple pie & apple tart.\n",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n\
     Brown dog, brown fox; QUICK quick quick. Step by step by step.\n\
     tab\tseparated\twords and under_scored-words; numbers 42 and 7 are not words\n",
];

#[test]
fn word_count_map_reduce_over_two_providers_matches_known_answer() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let p1 = w.provider(&c, 1);
    let p2 = w.provider(&c, 1);

    for (name, text) in ["a.txt", "b.txt", "c.txt"].iter().zip(SHARDS) {
        w.write(&format!("wc/data/{name}"), text);
    }
    // Input paths are relative to the spec file; modules are absolute.
    let spec = w.write(
        "wc/job.toml",
        format!(
            r#"module = {map}
fuel = 1_000_000_000
memory = "64MiB"
timeout = "60s"
deadline = "10m"
max_price = 1
output = "stdout"

[[task]]
args = ["a.txt"]
inputs = ["data/a.txt"]

[[task]]
args = ["b.txt"]
inputs = ["data/b.txt"]

[[task]]
args = ["c.txt"]
inputs = ["data/c.txt"]

[aggregate]
kind = "reduce"
module = {reduce}
args = []
fuel = 1_000_000_000
memory = "64MiB"
timeout = "60s"
"#,
            map = toml_path(&guest("wc_map.wasm")),
            reduce = toml_path(&guest("wc_reduce.wasm")),
        ) + crate::support::SINGLE_RUN,
    );

    let job = w.submit(&c.url, &spec);
    let view = c.http.wait_completed(job);
    assert_eq!(view.tasks_total, 4, "3 map tasks + 1 reduce: {view:?}");
    let ours: BTreeSet<_> = [p1.id, p2.id].into();
    for provider in view.tasks_per_provider.keys() {
        assert!(
            ours.contains(provider),
            "unknown provider {provider} in {view:?}"
        );
    }

    // The job belongs to the requester key under GRIDMINT_HOME.
    let key = w.home().join("requester.key");
    assert!(key.exists(), "job submit did not create {}", key.display());
    let requester = Identity::load_or_create(&key).expect("requester key").id();
    assert_eq!(view.owner, requester);

    let expected = word_count(&SHARDS);
    let output = w.results(&c.url, job);
    assert_eq!(String::from_utf8_lossy(&output), expected);
    assert_eq!(c.http.output(job), expected.as_bytes());

    // `job status --json` is the JobView.
    let status = w
        .cli(&[
            "job",
            "status",
            &job.to_string(),
            "--coordinator",
            &c.url,
            "--json",
        ])
        .ok();
    let parsed: JobView = serde_json::from_str(status.stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "job status --json is not a JobView ({e}): {}",
            status.stdout
        )
    });
    assert_eq!(parsed.id, job);
    assert_eq!(parsed.status, JobStatus::Completed);
    assert_eq!(parsed.tasks_done, 4);
    assert_eq!(parsed.output, view.output);
}

#[test]
fn pi_over_two_providers_is_exact_and_deterministic() {
    const SAMPLES: u64 = 300_000;
    const TASKS: u64 = 12;
    let w = World::new();
    let c = w.coordinator(&[]);
    let p1 = w.provider(&c, 1);
    let p2 = w.provider(&c, 1);

    let spec = w.write("pi.toml", pi_spec(SAMPLES, TASKS));
    // The same spec twice: two jobs, scheduled independently.
    let first = w.submit(&c.url, &spec);
    let second = w.submit(&c.url, &spec);
    assert_ne!(first, second);
    let expected = pi_output(SAMPLES, TASKS);

    let mut outputs = Vec::new();
    for job in [first, second] {
        let view = c.http.wait_completed(job);
        assert_eq!(view.tasks_total, TASKS, "{view:?}");
        let output = c.http.output(job);
        let text = String::from_utf8(output.clone()).expect("pi output is text");
        assert_eq!(text.lines().count() as u64, TASKS);
        for line in text.lines() {
            let (hits, samples) = line.split_once(' ').expect("`<hits> <samples>`");
            let hits: u64 = hits.parse().expect("hits");
            assert_eq!(samples, SAMPLES.to_string());
            assert!(
                (234_000..237_300).contains(&hits),
                "implausible pi line {line:?}"
            );
        }
        assert_eq!(
            text, expected,
            "job {job}: output differs from the native computation"
        );
        outputs.push(output);
    }
    assert_eq!(outputs[0], outputs[1], "the same job gave different bytes");

    // Every accepted result is attributed to one of our two providers, exactly once.
    let providers = c.http.providers();
    let completed: u64 = providers
        .iter()
        .filter(|p| p.id == p1.id || p.id == p2.id)
        .map(|p| p.stats.tasks_completed)
        .sum();
    assert_eq!(completed, 2 * TASKS, "{providers:?}");
    // With one slot each, a provider holds at most one task at a time, and both are long-polling
    // when the jobs arrive: each gets work.
    for p in providers.iter().filter(|p| p.id == p1.id || p.id == p2.id) {
        assert!(
            p.stats.tasks_completed > 0,
            "provider {} did nothing: {providers:?}",
            p.id
        );
    }
    let both = [first, second].map(|j| c.http.job(j));
    for view in &both {
        assert_completed(view);
        for provider in view.tasks_per_provider.keys() {
            assert!(*provider == p1.id || *provider == p2.id, "{view:?}");
        }
    }
    eprintln!(
        "tasks per provider: {:?}",
        both.iter()
            .map(|v| &v.tasks_per_provider)
            .collect::<Vec<_>>()
    );
}

/// A network too small for a job's redundancy policy says so at submission and in the job's
/// status, instead of letting the job wait silently until its deadline.
#[test]
fn a_network_too_small_for_the_policy_says_so_at_submission_and_in_status() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let _p1 = w.provider(&c, 1);
    let _p2 = w.provider(&c, 1);
    w.fund_requester(&c.url);

    // The adaptive policy needs three agreeing results from distinct operators; two new
    // providers of two operators weigh two.
    let verified = w.write(
        "small/verified.toml",
        crate::support::pi_spec_verified(10, 2),
    );
    let ran = w
        .cli(&[
            "job",
            "submit",
            verified.to_str().unwrap(),
            "--coordinator",
            &c.url,
        ])
        .ok();
    let id: u64 = ran.stdout.trim().parse().expect("a job id");
    assert!(
        ran.stderr
            .contains("warning: only 2 operator(s) can run this job's tasks now"),
        "{}",
        ran.stderr
    );
    let status = w
        .cli(&["job", "status", &id.to_string(), "--coordinator", &c.url])
        .ok();
    assert!(status.stdout.contains("is running"), "{}", status.stdout);
    assert!(
        status.stdout.contains("needs matching results of weight 3"),
        "{}",
        status.stdout
    );
    let json = w
        .cli(&[
            "job",
            "status",
            &id.to_string(),
            "--coordinator",
            &c.url,
            "--json",
        ])
        .ok()
        .json();
    assert!(json["warning"].as_str().is_some(), "{json}");

    // Waiting on such a job shows the warning, until the job expires at its deadline.
    let short = w.write(
        "small/short.toml",
        crate::support::pi_spec_verified(10, 1).replace("deadline = \"10m\"", "deadline = \"2s\""),
    );
    let ran = w
        .cli(&[
            "job",
            "submit",
            short.to_str().unwrap(),
            "--coordinator",
            &c.url,
            "--wait",
        ])
        .fails();
    assert!(
        ran.stderr.contains("warning: only 2 operator(s)"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("deadline"), "{}", ran.stderr);

    // A job that asks for one result runs, and says nothing of the kind.
    let single = w.write("small/single.toml", pi_spec(10, 2));
    let ran = w
        .cli(&[
            "job",
            "submit",
            single.to_str().unwrap(),
            "--coordinator",
            &c.url,
            "--json",
        ])
        .ok();
    let value = ran.json();
    assert!(value.get("warning").is_none(), "{value}");
    let view = c.http.wait_completed(value["job"].as_u64().unwrap());
    assert!(view.warning.is_none(), "{view:?}");
}
