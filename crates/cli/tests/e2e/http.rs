//! Bad input over raw HTTP against a real coordinator process: each is refused with the right
//! status and a `{ "error", "detail" }` body, and none changes the state (same log length, same
//! state hash).

use crate::support::{World, error_body, guest, hash_of};
use api::Identity;
use api::wire::{
    ActionResponse, HEADER_NONCE, HEADER_SIGNATURE, HEADER_SIGNER, Request, StatusView,
};
use bytes::Bytes;
use engine::{Action, Aggregate, JobSpec, Limits, OutputSource, TaskSpec};

/// The blob limit the coordinator runs with, and an upload just over it.
const BLOB_LIMIT: &str = "1MiB";
const OVERSIZED_BLOB: usize = (1 << 20) + 1;

struct Raw {
    http: reqwest::Client,
    base: String,
}

impl Raw {
    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Vec<u8>) {
        let resp = req.send().await.expect("the coordinator answers");
        let status = resp.status().as_u16();
        let body = resp.bytes().await.expect("reading the response body");
        (status, body.to_vec())
    }

    async fn post_action(&self, body: Vec<u8>) -> (u16, Vec<u8>) {
        let req = self
            .http
            .post(format!("{}/v1/actions", self.base))
            .header("content-type", "application/json")
            .body(body);
        self.send(req).await
    }

    async fn get(&self, path: &str) -> (u16, Vec<u8>) {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// An upload of `bytes` under `hash`, signed as a claim that they hash to `hash`.
    async fn put_blob(&self, who: &Identity, hash: engine::Hash, bytes: Vec<u8>) -> (u16, Vec<u8>) {
        let signed = who.sign(Request::PutBlob {
            hash,
            size: bytes.len() as u64,
        });
        let req = self
            .http
            .put(format!("{}/v1/blobs/{hash}", self.base))
            .header(HEADER_SIGNER, signed.signer.to_hex())
            .header(HEADER_NONCE, signed.nonce.to_string())
            .header(HEADER_SIGNATURE, signed.signature.to_hex())
            .body(bytes);
        self.send(req).await
    }
}

fn job_spec(module: engine::Hash) -> JobSpec {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    JobSpec {
        module,
        tasks: vec![TaskSpec {
            args: vec!["1000".into(), "0".into()],
            ..TaskSpec::default()
        }],
        limits: Limits {
            fuel: 100_000_000,
            memory_bytes: 64 << 20,
            wall_ms: 60_000,
        },
        // Far away, so that no timer decision changes the state during the test.
        deadline: now_ms + 3_600_000,
        max_price: 1,
        output: OutputSource::Stdout,
        aggregate: Aggregate::Concat,
        redundancy: engine::Redundancy::Fixed {
            quorum: 1,
            max_results: 1,
        },
        requirements: Default::default(),
    }
}

/// Asserts a refusal: `status`, JSON error body of kind `kind`.
#[track_caller]
fn refused(got: (u16, Vec<u8>), status: u16, kind: &str) {
    let body = error_body(&got.1);
    assert_eq!(
        got.0, status,
        "expected {status} {kind}, got {} {body:?}",
        got.0
    );
    assert_eq!(body.error, kind, "{body:?}");
    assert!(!body.detail.is_empty(), "{body:?}");
}

#[track_caller]
fn unchanged(before: &StatusView, after: &StatusView, what: &str) {
    assert_eq!(
        (after.log_length, after.state_hash),
        (before.log_length, before.state_hash),
        "{what} changed the state"
    );
}

#[test]
fn bad_requests_are_refused_with_their_status_and_change_nothing() {
    let w = World::new();
    let c = w.coordinator(&["--max-blob-size", BLOB_LIMIT]);
    let raw = Raw {
        http: reqwest::Client::new(),
        base: c.url.clone(),
    };
    // The leader's first timer tick logs its beacon commitment: wait for it, so that nothing
    // but the requests below could change the state from here on.
    crate::support::poll("the beacon commitment", crate::support::WAIT, || {
        (c.http.status().log_length >= 1).then_some(())
    });
    let me = Identity::generate();
    w.block_on(c.http.client.action(&me, Action::Faucet))
        .expect("the dev faucet funds the requester");
    let s0 = c.http.status();

    // Malformed JSON.
    let got = w.block_on(raw.post_action(b"{\"signer\": \"00\", nonce: ".to_vec()));
    refused(got, 400, "bad_request");
    unchanged(&s0, &c.http.status(), "malformed JSON");

    // A flipped signature byte; and a valid signature over a different body.
    let mut flipped = me.sign(Action::CancelJob(1));
    flipped.signature.0[17] ^= 0x40;
    let got = w.block_on(raw.post_action(serde_json::to_vec(&flipped).unwrap()));
    refused(got, 401, "bad_signature");
    let mut swapped = me.sign(Action::CancelJob(1));
    swapped.body = Action::CancelJob(2);
    let got = w.block_on(raw.post_action(serde_json::to_vec(&swapped).unwrap()));
    refused(got, 401, "bad_signature");
    unchanged(&s0, &c.http.status(), "a bad signature");

    // Unknown job, malformed id, unknown endpoint.
    refused(w.block_on(raw.get("/v1/jobs/999")), 404, "not_found");
    refused(
        w.block_on(raw.get("/v1/jobs/not-a-number")),
        400,
        "bad_request",
    );
    refused(w.block_on(raw.get("/v1/no/such/thing")), 404, "not_found");
    unchanged(&s0, &c.http.status(), "reads");

    // Blob uploads: unsigned, content not matching its hash, oversized. Blobs are not logged, so a
    // good upload changes nothing either.
    let module = std::fs::read(guest("pi.wasm")).unwrap();
    let module_hash = hash_of(&module);
    let unsigned = raw
        .http
        .put(format!("{}/v1/blobs/{module_hash}", c.url))
        .body(module.clone());
    refused(w.block_on(raw.send(unsigned)), 401, "bad_signature");
    let wrong = hash_of(b"something else");
    refused(
        w.block_on(raw.put_blob(&me, wrong, module.clone())),
        400,
        "bad_request",
    );
    let huge = vec![7u8; OVERSIZED_BLOB];
    let huge_hash = hash_of(&huge);
    refused(
        w.block_on(raw.put_blob(&me, huge_hash, huge)),
        413,
        "too_large",
    );
    refused(
        w.block_on(raw.get(&format!("/v1/blobs/{huge_hash}"))),
        404,
        "not_found",
    );
    let stored = w
        .block_on(c.http.client.put_blob(&me, Bytes::from(module.clone())))
        .expect("uploading pi.wasm");
    assert_eq!(stored, module_hash);
    unchanged(&s0, &c.http.status(), "blob uploads");

    // A module that is not WebAssembly.
    let garbage = b"\0asm but not really, just garbage bytes".to_vec();
    let garbage_hash = w
        .block_on(c.http.client.put_blob(&me, Bytes::from(garbage.clone())))
        .expect("uploading garbage");
    let submit = me.sign(c.submission(job_spec(garbage_hash), &[&garbage]));
    let got = w.block_on(raw.post_action(serde_json::to_vec(&submit).unwrap()));
    refused(got, 422, "invalid_module");
    unchanged(&s0, &c.http.status(), "a job with an invalid module");

    // A valid module that uses a feature the providers' sandbox refuses (a shared memory: the
    // threads proposal) is refused at submission, with the reason, not on every provider.
    // (module (memory 1 1 shared) (func (export "_start")))
    let shared: Vec<u8> = [
        &b"\0asm\x01\0\0\0"[..],
        &[0x01, 0x04, 0x01, 0x60, 0x00, 0x00],
        &[0x03, 0x02, 0x01, 0x00],
        &[0x05, 0x04, 0x01, 0x03, 0x01, 0x01],
        &[0x07, 0x0a, 0x01, 0x06],
        b"_start",
        &[0x00, 0x00],
        &[0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b],
    ]
    .concat();
    let shared_hash = w
        .block_on(c.http.client.put_blob(&me, Bytes::from(shared.clone())))
        .expect("uploading a shared-memory module");
    let submit = me.sign(c.submission(job_spec(shared_hash), &[&shared]));
    let got = w.block_on(raw.post_action(serde_json::to_vec(&submit).unwrap()));
    let body = error_body(&got.1);
    refused(got, 422, "invalid_module");
    assert!(body.detail.contains("threads"), "{body:?}");
    unchanged(&s0, &c.http.status(), "a job whose module uses threads");

    // A good signed request is accepted once; sent again it is a replay.
    let submit = me.sign(c.submission(job_spec(module_hash), &[&module]));
    let body = serde_json::to_vec(&submit).unwrap();
    let (status, answer) = w.block_on(raw.post_action(body.clone()));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let accepted: ActionResponse = serde_json::from_slice(&answer).unwrap();
    let job = accepted.submitted_job().expect("a JobSubmitted event");
    let s1 = c.http.status();
    assert_eq!(s1.log_length, s0.log_length + 1);
    assert_ne!(s1.state_hash, s0.state_hash);
    assert_eq!(c.http.job(job).owner, me.id());
    refused(w.block_on(raw.post_action(body)), 409, "replayed");
    unchanged(&s1, &c.http.status(), "a replayed request");

    // Nothing refused above reached the log: one entry, one job.
    let s2 = c.http.status();
    assert_eq!(s2.jobs_total, 1);
    refused(w.block_on(raw.get("/v1/jobs/999")), 404, "not_found");
    unchanged(&s1, &c.http.status(), "a read after the replay");
}

/// Rules 24's inputs over HTTP: a report whose energy figures do not fit its results, an
/// announcement that cannot be, and preferences wrapped in preferences are refused with a typed
/// error (never a 5xx) and change nothing; the good ones go through.
#[test]
fn energy_announcements_and_preferences_that_cannot_be_are_refused() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let raw = Raw {
        http: reqwest::Client::new(),
        base: c.url.clone(),
    };
    crate::support::poll("the beacon commitment", crate::support::WAIT, || {
        (c.http.status().log_length >= 1).then_some(())
    });
    let provider = c.provider_by_hand();
    // An account that is not a provider, with the fee to pay.
    let stranger = Identity::generate();
    w.block_on(c.http.client.action(&stranger, Action::Faucet))
        .expect("the dev faucet");
    let post = |who: &Identity, action: Action| {
        let signed = who.sign(action);
        w.block_on(raw.post_action(serde_json::to_vec(&signed).unwrap()))
    };
    let s0 = c.http.status();
    let report = engine::TaskReport {
        task: engine::TaskId { job: 1, index: 0 },
        outcome: engine::TaskOutcome::OutOfFuel,
        output_hash: engine::Hash([0; 32]),
        output_size: 0,
        fuel_used: 1,
    };
    // More figures than results.
    let got = post(
        &provider,
        Action::ReportMeteredResults {
            reports: vec![report.clone()],
            energy: vec![None, None],
        },
    );
    refused(got, 422, "rejected");
    unchanged(
        &s0,
        &c.http.status(),
        "a report with two figures for one result",
    );
    let twice = post(
        &provider,
        Action::Announce(engine::Announcement {
            suspended: vec![engine::Suspension::Paused, engine::Suspension::Paused],
            grams_per_kwh: None,
        }),
    );
    refused(twice, 422, "rejected");
    let dirty = post(
        &provider,
        Action::Announce(engine::Announcement {
            suspended: vec![],
            grams_per_kwh: Some(5_000),
        }),
    );
    refused(dirty, 422, "rejected");
    // Not a provider.
    refused(
        post(&stranger, Action::Announce(engine::Announcement::default())),
        404,
        "not_found",
    );
    unchanged(&s0, &c.http.status(), "announcements that cannot be");
    // Preferences around preferences: refused as the body is read.
    let spec = job_spec(engine::Hash([2; 32]));
    let wrap = |inner: Action| Action::SubmitWithPreferences {
        preferences: engine::JobPreferences {
            prefer_low_carbon: true,
        },
        submission: Box::new(inner),
    };
    let nested = wrap(wrap(Action::SubmitJob(spec)));
    refused(post(&stranger, nested), 400, "bad_request");
    unchanged(&s0, &c.http.status(), "nested preferences");

    // A good announcement is logged, and the network sees it.
    let (status, _) = post(
        &provider,
        Action::Announce(engine::Announcement {
            suspended: vec![engine::Suspension::OutsideHours],
            grams_per_kwh: Some(25),
        }),
    );
    assert_eq!(status, 200);
    let view = c.http.provider(provider.id()).unwrap();
    assert_eq!(view.suspended, [engine::Suspension::OutsideHours]);
    assert_eq!(view.grams_per_kwh, Some(25));
}
