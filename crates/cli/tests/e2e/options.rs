//! Rules 11: exit statuses as answers, through real processes. `examples/sat.toml` runs a SAT
//! solver that answers as real ones do (exit 10 "satisfiable", 20 "unsatisfiable"); the job lists
//! both statuses, so each run is a result, verified on its status as well as its output.

use crate::support::*;
use engine::JobStatus;
use std::path::{Path, PathBuf};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

/// `examples/sat.toml` with absolute paths, written into the test's directory as `name`, with
/// `edit` applied to its text.
fn sat_spec(w: &World, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(example("sat.toml"))
        .unwrap()
        .replace("\"../guests/sat.wasm\"", &toml_path(&guest("sat.wasm")))
        .replace(
            "\"data/sat/",
            &format!(
                "\"{}/",
                example("data/sat").display().to_string().replace('\\', "/")
            ),
        );
    w.write(name, edit(text))
}

/// The example's problems, in task order, and whether each is satisfiable.
const PROBLEMS: [(&str, bool); 4] = [
    ("queens-8.cnf", true),
    ("queens-3.cnf", false),
    ("pigeons-6-5.cnf", false),
    ("planted-60.cnf", true),
];

/// Whether `model` (the solver's `v ... 0` line) satisfies every clause of DIMACS `cnf`.
fn satisfies(cnf: &str, model: &str) -> bool {
    let true_lits: std::collections::BTreeSet<i64> = model
        .split_whitespace()
        .skip(1)
        .map(|l| l.parse().unwrap())
        .filter(|l| *l != 0)
        .collect();
    let mut clause = Vec::new();
    let mut ok = true;
    for token in cnf
        .lines()
        .filter(|l| !l.starts_with('c') && !l.starts_with('p'))
        .flat_map(str::split_whitespace)
    {
        let lit: i64 = token.parse().unwrap();
        if lit == 0 {
            ok &= clause.iter().any(|l| true_lits.contains(l));
            clause.clear();
        } else {
            clause.push(lit);
        }
    }
    ok
}

#[test]
fn a_solver_that_answers_with_its_exit_status_is_verified_and_its_answers_kept() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let _providers: Vec<_> = (0..3).map(|_| w.provider(&c, 2)).collect();

    // The example as a user runs it: the network's default verification policy.
    let job = w.submit(&c.url, &example("sat.toml"));
    let view = c.http.wait_job(job);
    assert_eq!(view.status, JobStatus::Completed, "{view:?}");
    assert_eq!(view.success_exits, vec![10, 20]);
    let status = w
        .cli(&["job", "status", &job.to_string(), "--coordinator", &c.url])
        .ok();
    assert!(
        status.stdout.contains("answers exit 10, 20"),
        "{}",
        status.stdout
    );

    let out = w.dir("answers");
    let report = w
        .cli(&[
            "job",
            "report",
            &job.to_string(),
            "--coordinator",
            &c.url,
            "--out-dir",
            out.to_str().unwrap(),
            "--json",
        ])
        .ok()
        .json();
    let done = report["done"].as_array().unwrap();
    assert_eq!(done.len(), PROBLEMS.len(), "{report}");
    for (i, (name, satisfiable)) in PROBLEMS.iter().enumerate() {
        let task = &done[i];
        assert_eq!(task["task"]["index"], i as u64, "{report}");
        assert_eq!(
            task["exit_status"],
            if *satisfiable { 10 } else { 20 },
            "{name}: {report}"
        );
        let answer = std::fs::read_to_string(out.join(format!("task-{i}"))).unwrap();
        if *satisfiable {
            let (head, model) = answer.split_once('\n').unwrap();
            assert_eq!(head, "s SATISFIABLE", "{name}");
            let cnf = std::fs::read_to_string(example("data/sat").join(name)).unwrap();
            assert!(
                satisfies(&cnf, model.trim_end()),
                "{name}: {model} is no model"
            );
        } else {
            assert_eq!(answer, "s UNSATISFIABLE\n", "{name}");
        }
    }
    let table = w
        .cli(&["job", "report", &job.to_string(), "--coordinator", &c.url])
        .ok();
    assert!(table.stdout.contains("exit status 20"), "{}", table.stdout);

    // Two runs of every task on distinct providers must agree on status, output and fuel.
    let fixed = sat_spec(&w, "sat-2-of-2.toml", |text| {
        text + "\n[redundancy]\npolicy = \"fixed\"\nquorum = 2\nmax_results = 2\n"
    });
    let job = w.submit(&c.url, &fixed);
    let view = c.http.wait_job(job);
    assert_eq!(view.status, JobStatus::Completed, "{view:?}");
    assert_eq!(view.executions, 2 * PROBLEMS.len() as u64, "{view:?}");

    // Without `success_exits`, 0 alone is an answer: a solver's 10 is a failure, verified as one.
    let plain = sat_spec(&w, "sat-plain.toml", |text| {
        text.replace("success_exits = [10, 20]\n", "")
            + "\n[redundancy]\npolicy = \"fixed\"\nquorum = 2\nmax_results = 2\n"
    });
    let job = w.submit(&c.url, &plain);
    let view = c.http.wait_job(job);
    match &view.status {
        JobStatus::Failed { reason } => {
            assert!(reason.contains("exited with status"), "{reason}")
        }
        other => panic!("a job without success_exits ended {other:?}"),
    }
}

#[test]
fn a_bad_list_of_exit_statuses_is_refused_before_anything_is_uploaded() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let spec = sat_spec(&w, "bad.toml", |text| {
        text.replace("success_exits = [10, 20]", "success_exits = [10, 300]")
    });
    let ran = w.cli(&[
        "job",
        "submit",
        spec.to_str().unwrap(),
        "--coordinator",
        &c.url,
    ]);
    let ran = ran.fails();
    assert!(
        ran.stderr.contains("300 is not an exit status"),
        "{}",
        ran.stderr
    );
}

#[test]
fn a_reactor_runs_the_jobs_entry_and_without_one_is_refused_at_submission() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let _provider = w.provider(&c, 2);
    let spec = |entry: &str| {
        format!(
            "module = {module}\nfuel = 100_000_000\nmemory = \"16MiB\"\ntimeout = \"30s\"\n\
             deadline = \"10m\"\n{entry}\n[tasks]\nrange = [0, 3]\nargs = [\"{{i}}\"]\n{SINGLE_RUN}",
            module = toml_path(&guest("reactor.wasm")),
        )
    };
    let job = w.submit(&c.url, &w.write("reactor.toml", spec("entry = \"run\"")));
    let view = c.http.wait_job(job);
    assert_eq!(view.status, JobStatus::Completed, "{view:?}");
    assert_eq!(view.entry.as_deref(), Some("run"));
    let output = String::from_utf8(w.results(&c.url, job)).unwrap();
    assert_eq!(
        output,
        "initialized 1, arg 0\ninitialized 1, arg 1\ninitialized 1, arg 2\n"
    );

    // As a command it has no `_start`: refused when submitted, saying what to do.
    w.fund_requester(&c.url);
    let ran = w
        .cli(&[
            "job",
            "submit",
            w.write("command.toml", spec("")).to_str().unwrap(),
            "--coordinator",
            &c.url,
        ])
        .fails();
    assert!(
        ran.stderr.contains("needs the job's `entry`"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("invalid_module"), "{}", ran.stderr);
}
