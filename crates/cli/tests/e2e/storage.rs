//! Rules 10: storage is paid for. A job's deposit (its inputs plus its output room per task) is
//! locked at submission and comes back when its storage is released — by its owner
//! (`gridmint job release`) or by the network once the retention time has passed — and then its
//! blobs are deleted, unless another job still names them.

use crate::support::*;
use api::Identity;
use engine::{Action, Hash, StorageClaim, Tokens};

/// A network whose storage costs 100 base units per KiB, is kept 2 s after a job ends, and
/// allows 1 MiB of output per task; with a faucet, so the CLI's keys fund themselves.
fn genesis(w: &World) -> std::path::PathBuf {
    w.write(
        "genesis.toml",
        r#"chain_id = "storage"
treasury = "7777777777777777777777777777777777777777777777777777777777777777"
fee_bps = 0
min_stake = "100"
unbonding_delay = "1m"
[slash]
fraction_bps = 5000
requester_bps = 5000
treasury_bps = 2500
[faucet]
amount = "1000"
[storage]
deposit_per_kib = "100 base"
retention = "2s"
max_output = "1MiB"
"#,
    )
}

/// `pi_spec` with one input file (`data.txt`, 3000 bytes) and `output_limit`.
fn spec(w: &World, tasks: u64, output_limit: &str) -> std::path::PathBuf {
    let data = w.write("data.txt", "x".repeat(3000));
    let text = pi_spec(10_000, tasks)
        .replacen(
            "output = \"stdout\"\n",
            &format!("output = \"stdout\"\noutput_limit = \"{output_limit}\"\n"),
            1,
        )
        .replacen(
            "[tasks]\n",
            &format!("[tasks]\ninputs = [{}]\n", toml_path(&data)),
            1,
        );
    w.write(&format!("pi-{tasks}-{output_limit}.toml"), text)
}

fn blob_status(w: &World, c: &Coordinator, hash: Hash) -> u16 {
    let url = format!("{}/v1/blobs/{hash}", c.url);
    w.block_on(async { reqwest::get(&url).await.unwrap().status().as_u16() })
}

#[test]
fn a_jobs_storage_is_paid_for_returned_on_release_and_its_blobs_deleted() {
    let w = World::new();
    let c = w.coordinator(&[
        "--genesis",
        genesis(&w).to_str().unwrap(),
        "--blob-expiry",
        "1s",
    ]);
    let network = w.block_on(c.http.client.network()).unwrap();
    assert_eq!(network.storage.as_ref().unwrap().deposit_per_kib, 100);
    let _provider = w.provider(&c, 2);

    // 4 tasks of 4 KiB output room, and pi.wasm plus the 3000-byte input.
    let module = std::fs::read(guest("pi.wasm")).unwrap();
    let job = w.submit(&c.url, &spec(&w, 4, "4KiB"));
    let view = c.http.wait_job(job);
    assert_eq!(view.status, engine::JobStatus::Completed, "{view:?}");
    let storage = view.storage.clone().expect("the job's storage");
    let input_bytes = module.len() as u64 + 3000;
    assert_eq!(
        storage.claim,
        StorageClaim {
            input_bytes,
            output_bytes: 4096
        }
    );
    let deposit = u128::from((input_bytes + 4 * 4096).div_ceil(1024)) * 100;
    assert_eq!(storage.deposit, deposit);
    assert_eq!(storage.released_at, None);
    let shown = w
        .cli(&["job", "status", &job.to_string(), "--coordinator", &c.url])
        .ok();
    assert!(
        shown
            .stdout
            .contains(&format!("storage deposit {} held", Tokens(deposit))),
        "{}",
        shown.stdout
    );
    let output = c.http.output(job);
    let parts = view.output.clone().unwrap();
    assert!(!output.is_empty());

    // Another job names the same module and input, and never runs (it needs a GPU).
    let gpu = w.write(
        "gpu.toml",
        std::fs::read_to_string(spec(&w, 1, "1KiB")).unwrap() + "[requirements]\ngpu = true\n",
    );
    let waiting = w.submit(&c.url, &gpu);

    // Released by its owner: the deposit comes back, the output is gone for good (410), and
    // the outputs are deleted once unnamed for the blob expiry; the module and input stay
    // (the waiting job names them).
    let released = w
        .cli(&["job", "release", &job.to_string(), "--coordinator", &c.url])
        .ok();
    assert!(
        released
            .stdout
            .contains(&format!("deposit of {} is back", Tokens(deposit))),
        "{}",
        released.stdout
    );
    let view = c.http.job(job);
    assert!(view.storage.unwrap().released_at.is_some());
    let gone = w.block_on(c.http.client.job_output(job)).unwrap_err();
    assert_eq!(gone.status(), Some(410), "{gone}");
    assert!(gone.to_string().contains("storage_released"), "{gone}");
    poll("the released job's outputs to be deleted", WAIT, || {
        parts
            .iter()
            .all(|h| blob_status(&w, &c, *h) == 404)
            .then_some(())
    });
    let module_hash = Hash::of(&module);
    let input_hash = Hash::of("x".repeat(3000).as_bytes());
    assert_eq!(blob_status(&w, &c, module_hash), 200);
    assert_eq!(blob_status(&w, &c, input_hash), 200);
    // Twice is refused; so is a running job's (cancel it first).
    let again = w
        .cli(&["job", "release", &job.to_string(), "--coordinator", &c.url])
        .fails();
    assert!(again.stderr.contains("storage_held"), "{}", again.stderr);
    let early = w
        .cli(&[
            "job",
            "release",
            &waiting.to_string(),
            "--coordinator",
            &c.url,
        ])
        .fails();
    assert!(early.stderr.contains("has not ended"), "{}", early.stderr);

    // Cancelled, the waiting job's storage is released by the network after the retention
    // time (2 s): then nothing names the module and input, and they go too.
    w.cli(&[
        "job",
        "cancel",
        &waiting.to_string(),
        "--coordinator",
        &c.url,
    ])
    .ok();
    poll(
        "the network to release the cancelled job's storage",
        WAIT,
        || {
            c.http
                .job(waiting)
                .storage
                .and_then(|s| s.released_at)
                .map(|_| ())
        },
    );
    poll("the unnamed module and input to be deleted", WAIT, || {
        (blob_status(&w, &c, module_hash) == 404 && blob_status(&w, &c, input_hash) == 404)
            .then_some(())
    });
    // The supply is whole: every deposit came back.
    let verified = w
        .cli(&["chain", "verify", "--coordinator", &c.url, "--json"])
        .ok()
        .json();
    assert_eq!(verified["ok"], true, "{verified}");
}

/// A task whose output is larger than its job's output room fails (the provider runs it under
/// the job's limit), and a submission whose claim does not match its blobs, or that makes none
/// where storage is priced, is refused with a typed error and changes nothing.
#[test]
fn output_room_is_enforced_and_wrong_or_missing_claims_are_refused() {
    let w = World::new();
    let c = w.coordinator(&["--genesis", genesis(&w).to_str().unwrap()]);
    assert!(!c.proc.logs().contains("no [storage]"), "{}", c.proc.logs());
    let _provider = w.provider(&c, 1);
    // pi prints "<hits> <samples>\n": more than 8 bytes.
    let job = w.submit(&c.url, &spec(&w, 2, "8"));
    let view = c.http.wait_job(job);
    match &view.status {
        engine::JobStatus::Failed { reason } => {
            assert!(reason.contains("output"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // More room than the network allows.
    let big = w
        .cli(&[
            "job",
            "submit",
            spec(&w, 1, "2MiB").to_str().unwrap(),
            "--coordinator",
            &c.url,
        ])
        .fails();
    assert!(big.stderr.contains("output room"), "{}", big.stderr);

    let me = Identity::generate();
    let client = &c.http.client;
    w.block_on(client.action(&me, Action::Faucet)).unwrap();
    let noop = std::fs::read(guest("noop.wasm")).unwrap();
    let module = w
        .block_on(client.put_blob(&me, bytes::Bytes::from(noop.clone())))
        .unwrap();
    let spec = crate::e2e::load::gpu_only(module, vec![engine::TaskSpec::default()]);
    let before = c.http.status();
    let refused = |action: Action, status: u16, code: &str| {
        let e = w.block_on(client.action(&me, action)).unwrap_err();
        assert_eq!(e.status(), Some(status), "{e}");
        assert!(e.to_string().contains(code), "{e}");
    };
    refused(Action::SubmitJob(spec.clone()), 422, "storage_unclaimed");
    for input_bytes in [0, noop.len() as u64 - 1, noop.len() as u64 + 1] {
        refused(
            Action::SubmitJobWithStorage {
                spec: spec.clone(),
                storage: StorageClaim {
                    input_bytes,
                    output_bytes: 0,
                },
            },
            422,
            "storage_claim",
        );
    }
    let after = c.http.status();
    assert_eq!(
        (after.log_length, after.state_hash),
        (before.log_length, before.state_hash)
    );
    // The right claim is taken.
    w.block_on(client.action(&me, c.submission(spec, &[&noop])))
        .unwrap();
}
