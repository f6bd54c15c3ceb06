//! A provider's disk cache stays within `--cache-size`: past it, the least recently used blobs
//! and trees that no task in hand needs are deleted, and fetched again when a later task needs
//! them.

use crate::support::*;
use engine::JobStatus;
use std::path::Path;

/// The bytes of the files directly in `dir`.
fn bytes_in(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn a_provider_keeps_its_cache_within_its_budget_and_fetches_evicted_blobs_again() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let (dir, id) = w.provider_dir();
    let p = w.spawn_provider(&c.url, &dir, id, 1, &["--cache-size", "400KiB"]);
    p.wait_active(&c.http);

    // Eight tasks, each with its own 100 KB input: 800 KB of inputs through a 400 KiB cache.
    let data = w.dir("data");
    let mut tasks = String::new();
    for i in 0..8 {
        let text: String = (0..100_000)
            .map(|j| char::from(b'a' + ((i * 7 + j * 13) % 26) as u8))
            .collect();
        std::fs::write(data.join(format!("in{i}.txt")), text).unwrap();
        tasks.push_str(&format!(
            "[[task]]\nargs = [\"in{i}.txt\"]\ninputs = [\"in{i}.txt\"]\n\n"
        ));
    }
    let spec = data.join("job.toml");
    std::fs::write(
        &spec,
        format!(
            "module = {}\nfuel = 1_000_000_000\nmemory = \"64MiB\"\ntimeout = \"30s\"\n\
             deadline = \"10m\"\n\n{tasks}[redundancy]\npolicy = \"fixed\"\nquorum = 1\n",
            toml_path(&guest("wc_map.wasm"))
        ),
    )
    .unwrap();
    let job = w.submit(&c.url, &spec);
    assert_eq!(c.http.wait_job(job).status, JobStatus::Completed);
    let held = bytes_in(&dir.join("blobs"));
    // The budget, give or take the one task in hand when the last sweep ran.
    assert!(held <= 400 * 1024 + 110_000, "{held} bytes held");
    let log = std::fs::read_to_string(&p.proc.log).unwrap();
    assert!(log.contains("evicted least recently used"), "{log}");

    // The same job again: the evicted inputs are fetched again, and it completes the same.
    let first = w.results(&c.url, job);
    let again = w.submit(&c.url, &spec);
    assert_eq!(c.http.wait_job(again).status, JobStatus::Completed);
    assert_eq!(w.results(&c.url, again), first);
    assert!(bytes_in(&dir.join("blobs")) <= 400 * 1024 + 110_000);
}
