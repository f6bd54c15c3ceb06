//! Private jobs through real processes (issue 15, item 6): a requester seals a map-reduce job's
//! inputs and mounted tree to two of three providers; the job runs under 2-of-2 voting on the
//! sealed outputs, only the two providers take its tasks, the requester reads the plaintext
//! output, and nothing the coordinator keeps on disk holds the secret.

use crate::support::*;
use engine::JobStatus;
use std::path::Path;

/// A word no file of the network holds unless it leaked from the job's inputs.
const SECRET: &str = "xylophonequartzmarmalade";

/// Every file under `dir` (recursively) that contains `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[test]
fn a_private_job_round_trips_through_sealed_blobs_on_its_providers_only() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let providers: Vec<Provider> = (0..3).map(|_| w.provider(&c, 2)).collect();
    let mut sealed_to = vec![providers[0].id, providers[1].id];
    sealed_to.sort();

    let texts = [
        format!("the {SECRET} cat sat on the mat"),
        format!("a {SECRET} hat and the cat"),
        format!("{SECRET} zebra {SECRET} zebra"),
    ];
    let dir = w.dir("job");
    std::fs::write(dir.join("shard1.txt"), &texts[0]).unwrap();
    std::fs::write(dir.join("shard2.txt"), &texts[1]).unwrap();
    std::fs::create_dir_all(dir.join("corpus")).unwrap();
    std::fs::write(dir.join("corpus/shard3.txt"), &texts[2]).unwrap();
    let spec = format!(
        "module = {map}\nfuel = 1_000_000_000\nmemory = \"64MiB\"\ntimeout = \"30s\"\n\
         deadline = \"10m\"\n\n\
         [[task]]\nargs = [\"shard1.txt\"]\ninputs = [\"shard1.txt\"]\n\n\
         [[task]]\nargs = [\"shard2.txt\"]\ninputs = [\"shard2.txt\"]\n\n\
         [[task]]\nargs = [\"/corpus/shard3.txt\"]\n\n\
         [[mount]]\npath = \"/corpus\"\ndir = \"corpus\"\n\n\
         [aggregate]\nkind = \"reduce\"\nmodule = {reduce}\n\n\
         [redundancy]\npolicy = \"fixed\"\nquorum = 2\nmax_results = 2\n",
        map = toml_path(&guest("wc_map.wasm")),
        reduce = toml_path(&guest("wc_reduce.wasm")),
    );
    let spec_path = dir.join("job.toml");
    std::fs::write(&spec_path, spec).unwrap();
    let out = dir.join("counts.txt");
    let to = sealed_to
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",");

    w.fund_requester(&c.url);
    let ran = w
        .cli(&[
            "job",
            "submit",
            spec_path.to_str().unwrap(),
            "--coordinator",
            &c.url,
            "--private",
            "--to",
            &to,
            "--wait",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ])
        .ok();
    let job = ran.json()["job"].as_u64().expect("a job id");
    let want = word_count(&texts.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(want.contains(&format!("{SECRET}\t4\n")), "{want}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), want);

    // The job names its providers, and only they ran it: every map task twice, under 2-of-2
    // voting on the sealed outputs (honest runs seal to identical bytes).
    let view = c.http.job_with_tasks(job);
    assert_eq!(view.status, JobStatus::Completed);
    let private = view.private.clone().expect("a private job says so");
    assert_eq!(private.providers, sealed_to);
    let ran_on: Vec<_> = view.tasks_per_provider.keys().copied().collect();
    assert_eq!(ran_on, sealed_to, "only the providers it was sealed to");
    assert_eq!(
        view.tasks_per_provider.values().sum::<u64>(),
        8,
        "4 tasks × 2"
    );

    // `job results` opens it again from the key file; without the key (another requester's
    // home) it cannot, and the coordinator does not pretend to have a plaintext output.
    assert_eq!(w.results(&c.url, job), want.as_bytes());
    let stranger = w.dir("stranger");
    let refused = w
        .cli_env(
            &[
                "job",
                "results",
                &job.to_string(),
                "--coordinator",
                &c.url,
                "--out",
                "-",
            ],
            &[("GRIDMINT_HOME", stranger.to_str().unwrap())],
        )
        .fails();
    assert!(
        refused.stderr.contains("its key is not here"),
        "{}",
        refused.stderr
    );
    let err = c.http.block_on(c.http.client.job_output(job)).unwrap_err();
    assert_eq!(err.status(), Some(409), "{err}");
    assert!(err.to_string().contains("is private"), "{err}");

    // What the coordinator stores and serves is ciphertext: the inputs, the tree and every
    // output part, byte for byte as the requester's key opens them.
    let key_text = std::fs::read_to_string(
        w.home()
            .join("keys")
            .join(format!("{}.key", private.key_check)),
    )
    .expect("the requester keeps the job key");
    let key = api::private::JobKey::from_hex(&key_text).unwrap();
    let mut blobs: Vec<engine::Hash> = view.tasks.iter().filter_map(|t| t.output_hash).collect();
    assert_eq!(blobs.len(), 4);
    let parts = view.output.clone().unwrap();
    assert!(parts.iter().all(|p| blobs.contains(p)));
    // The inputs and the tree as the requester sealed them (sealing is deterministic): there,
    // and their plaintexts nowhere.
    let tree = sandbox::tree::pack(&dir.join("corpus")).unwrap();
    for plain in [texts[0].as_bytes(), texts[1].as_bytes(), &tree] {
        blobs.push(hash_of(&key.seal(plain)));
        let missing = c.http.block_on(c.http.client.get_blob(hash_of(plain)));
        assert_eq!(missing.unwrap_err().status(), Some(404));
    }
    let mut opened = 0;
    for hash in blobs {
        let sealed = c.http.block_on(c.http.client.get_blob(hash)).unwrap();
        assert!(!sealed.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()));
        let plain = key.open(&sealed).expect("sealed under the job key");
        assert_eq!(
            sealed.len() as u64,
            plain.len() as u64 + api::private::SEAL_OVERHEAD
        );
        opened += 1;
    }
    assert_eq!(opened, 7);
    let leaked = files_holding(&c.data_dir, SECRET.as_bytes());
    assert!(
        leaked.is_empty(),
        "the coordinator holds the secret in {leaked:?}"
    );
    // (The test can fail: the requester's own spec directory holds it.)
    assert!(!files_holding(&dir, SECRET.as_bytes()).is_empty());
    // The third provider was never handed anything of the job.
    drop(providers);
}

/// A requester that hands a provider a key that does not open cannot turn it against that
/// provider: it fails each run before the guest starts (an unverified attempt, never a slash nor
/// a mark against it), so the job fails with the reason; a sealing the engine refuses changes
/// nothing. Stdin travels sealed and reaches the guest opened.
#[test]
fn a_bad_wrapped_key_costs_its_provider_nothing_and_bad_sealings_are_refused() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let providers: Vec<Provider> = (0..2).map(|_| w.provider(&c, 2)).collect();
    let client = &c.http.client;
    let me = api::Identity::generate();
    w.block_on(client.action(&me, engine::Action::Faucet))
        .unwrap();

    let key = api::private::JobKey::generate();
    let stdin = b"twelve bytes";
    let sealed_stdin = key.seal(stdin);
    let module = std::fs::read(guest("inspect.wasm")).unwrap();
    for blob in [&module, &sealed_stdin] {
        w.block_on(client.put_blob(&me, bytes::Bytes::from(blob.clone())))
            .unwrap();
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let spec = engine::JobSpec {
        module: hash_of(&module),
        tasks: (0..4)
            .map(|i| engine::TaskSpec {
                args: vec![format!("task{i}")],
                stdin: Some(hash_of(&sealed_stdin)),
                ..engine::TaskSpec::default()
            })
            .collect(),
        limits: engine::Limits {
            fuel: 100_000_000,
            memory_bytes: 64 << 20,
            wall_ms: 60_000,
        },
        deadline: now_ms + 3_600_000,
        max_price: 1,
        output: engine::OutputSource::Stdout,
        aggregate: engine::Aggregate::Concat,
        redundancy: engine::Redundancy::Fixed {
            quorum: 2,
            max_results: 2,
        },
        requirements: Default::default(),
    };
    let network = w.block_on(client.network()).unwrap();
    let submission = |sealing: engine::Sealing| {
        let files = engine::JobFiles::default();
        let blobs: [&[u8]; 2] = [&module, &sealed_stdin];
        api::job_submission(
            network.storage.as_ref(),
            spec.clone(),
            api::weigh(&spec, &files, &blobs).unwrap(),
            None,
            engine::JobOptions::default(),
            files,
            Some(sealing),
        )
    };
    let ids: Vec<_> = providers.iter().map(|p| p.id).collect();
    let good = key.sealing(&ids, &[]).unwrap();

    // Refused whole, typed, and nothing changes: sealed to nobody, or twice to one provider.
    let before = c.http.status().state_hash;
    let mut nobody = good.clone();
    nobody.recipients.clear();
    let mut twice = good.clone();
    twice.recipients[1] = twice.recipients[0].clone();
    for (bad, says) in [(nobody, "names no provider"), (twice, "wrapped twice")] {
        let err = w.block_on(client.action(&me, submission(bad))).unwrap_err();
        assert_eq!(err.status(), Some(422), "{err}");
        assert!(err.to_string().contains(says), "{err}");
    }
    assert_eq!(c.http.status().state_hash, before);

    // The first provider's wrapped key is spoilt.
    let spoilt = ids[0];
    let mut sealing = good.clone();
    for r in &mut sealing.recipients {
        if r.provider == spoilt {
            let last = r.wrapped.len() - 1;
            r.wrapped[last] ^= 1;
        }
    }
    let job = w
        .block_on(client.action(&me, submission(sealing)))
        .unwrap()
        .submitted_job()
        .unwrap();
    // Each task needs both providers' results under 2-of-2 voting, and the spoilt one can give
    // none: the job fails, with the reason, and that provider loses nothing.
    let view = c.http.wait_job(job);
    let reason = failure_reason(&view).to_string();
    assert!(
        reason.contains("private job: the job key wrapped to this provider does not open"),
        "{view:?}"
    );
    let p = c.http.provider(spoilt).unwrap();
    assert_eq!(p.reputation.rejected, 0, "{p:?}");
    assert_eq!(
        p.bonded,
        c.http.provider(ids[1]).unwrap().bonded,
        "not slashed"
    );
    let runs: Vec<_> = c
        .http
        .job_with_tasks(job)
        .tasks
        .iter()
        .flat_map(|t| t.runs.clone())
        .filter(|r| r.provider == spoilt)
        .collect();
    // (Failed, or cancelled when the job ended under it.)
    assert!(runs.iter().any(|r| r.outcome == engine::RunOutcome::Failed));
    assert!(
        runs.iter().all(|r| matches!(
            r.outcome,
            engine::RunOutcome::Failed | engine::RunOutcome::Cancelled
        )),
        "{runs:?}"
    );

    // Sealed well (to the other provider, one result enough), the same job completes; every
    // output opens under the key, and the guest read the opened stdin.
    let mut spec_one = spec.clone();
    spec_one.redundancy = engine::Redundancy::Fixed {
        quorum: 1,
        max_results: 1,
    };
    let files = engine::JobFiles::default();
    let blobs: [&[u8]; 2] = [&module, &sealed_stdin];
    let action = api::job_submission(
        network.storage.as_ref(),
        spec_one.clone(),
        api::weigh(&spec_one, &files, &blobs).unwrap(),
        None,
        engine::JobOptions::default(),
        files,
        Some(key.sealing(&ids[1..], &[]).unwrap()),
    );
    let job = w
        .block_on(client.action(&me, action))
        .unwrap()
        .submitted_job()
        .unwrap();
    let view = c.http.wait_job(job);
    assert_eq!(view.status, engine::JobStatus::Completed, "{view:?}");
    for hash in view.output.clone().unwrap() {
        let sealed = w.block_on(client.get_blob(hash)).unwrap();
        let out = String::from_utf8(key.open(&sealed).unwrap()).unwrap();
        assert!(out.contains(&format!("stdin {}\n", stdin.len())), "{out}");
    }
}

/// A private job sealed to too few providers says so and waits; `job grant` seals it to more,
/// and it finishes. Granting what a job has, or a public job, is refused.
#[test]
fn job_grant_seals_a_waiting_private_job_to_more_providers() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let a = w.provider(&c, 2);
    let b = w.provider(&c, 2);
    let dir = w.dir("job");
    let text = format!("grant {SECRET} grant");
    std::fs::write(dir.join("in.txt"), &text).unwrap();
    let spec = format!(
        "module = {map}\nfuel = 1_000_000_000\nmemory = \"64MiB\"\ntimeout = \"30s\"\n\
         deadline = \"10m\"\n\n[[task]]\nargs = [\"in.txt\"]\ninputs = [\"in.txt\"]\n\n\
         [redundancy]\npolicy = \"fixed\"\nquorum = 2\nmax_results = 2\n",
        map = toml_path(&guest("wc_map.wasm")),
    );
    let spec_path = dir.join("job.toml");
    std::fs::write(&spec_path, spec).unwrap();
    w.fund_requester(&c.url);
    let submitted = w
        .cli(&[
            "job",
            "submit",
            spec_path.to_str().unwrap(),
            "--coordinator",
            &c.url,
            "--private",
            "--to",
            &a.id.to_string(),
            "--json",
        ])
        .ok()
        .json();
    let job = submitted["job"].as_u64().unwrap();
    let warning = submitted["warning"].as_str().unwrap_or_default();
    assert!(warning.contains("2 matching results"), "{submitted}");

    let grant = |args: &[&str]| {
        let mut all = vec!["job", "grant", "--coordinator", &c.url];
        let id = job.to_string();
        all.push(&id);
        all.extend_from_slice(args);
        w.cli(&all)
    };
    let again = grant(&["--to", &a.id.to_string()]).fails();
    assert!(
        again.stderr.contains("already sealed to provider"),
        "{}",
        again.stderr
    );
    let ran = grant(&["--providers", "4", "--json"]).ok().json();
    assert_eq!(ran["sealed_to"], serde_json::json!([b.id.to_string()]));
    let view = c.http.wait_job(job);
    assert_eq!(view.status, JobStatus::Completed, "{view:?}");
    let mut both = vec![a.id, b.id];
    both.sort();
    assert_eq!(view.private.unwrap().providers, both);
    assert_eq!(
        w.results(&c.url, job),
        word_count(&[text.as_str()]).as_bytes()
    );

    // A public job has no key to wrap.
    std::fs::write(
        dir.join("public.toml"),
        std::fs::read_to_string(&spec_path)
            .unwrap()
            .replace("quorum = 2\nmax_results = 2", "quorum = 1\nmax_results = 1"),
    )
    .unwrap();
    let public = w.submit(&c.url, &dir.join("public.toml"));
    let refused = w
        .cli(&[
            "job",
            "grant",
            &public.to_string(),
            "--coordinator",
            &c.url,
            "--to",
            &b.id.to_string(),
        ])
        .fails();
    assert!(
        refused.stderr.contains("is not private"),
        "{}",
        refused.stderr
    );
}
