//! Clients that spend the coordinator's resources cheaply — a flood of reads, connections that
//! send their headers or body a byte at a time — against a real coordinator process: the network
//! goes on serving everybody else.

use crate::support::{Coordinator, WAIT, World, error_body, pi_output, pi_spec};
use api::Identity;
use engine::{Action, ProviderStatus};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Readers of the flood test.
const READERS: usize = 64;

/// Submits, from a fresh funded requester, a job of `tasks` no-op tasks that only a provider with
/// a GPU may take (none here does), and returns its id.
fn unrunnable_job(w: &World, c: &Coordinator, tasks: usize) -> engine::JobId {
    let requester = Identity::generate();
    let client = &c.http.client;
    w.block_on(client.action(&requester, Action::Faucet))
        .expect("faucet");
    let noop = std::fs::read(crate::support::guest("noop.wasm")).unwrap();
    let module = w
        .block_on(client.put_blob(&requester, bytes::Bytes::from(noop.clone())))
        .expect("uploading noop.wasm");
    let spec = gpu_only(module, vec![engine::TaskSpec::default(); tasks]);
    w.block_on(client.action(&requester, c.submission(spec, &[&noop])))
        .expect("submitting the job")
        .submitted_job()
        .expect("a job id")
}

/// A job of `tasks` running `module` that only a provider with a GPU may take (none here does).
pub(crate) fn gpu_only(module: engine::Hash, tasks: Vec<engine::TaskSpec>) -> engine::JobSpec {
    engine::JobSpec {
        module,
        tasks,
        limits: engine::Limits {
            fuel: 10_000,
            memory_bytes: 16 << 20,
            wall_ms: 10_000,
        },
        deadline: coordinator::now_ms() + 10 * 60 * 1000,
        max_price: 1,
        output: engine::OutputSource::Stdout,
        aggregate: engine::Aggregate::Concat,
        redundancy: Default::default(),
        requirements: engine::Requirements {
            gpu: true,
            ..Default::default()
        },
    }
}

#[test]
fn a_flood_of_reads_neither_starves_providers_nor_stalls_jobs() {
    let w = World::new();
    // A provider silent for 2 s is declared lost: a liveness path starved by readers shows.
    // No rate limits: the readers stand for a flood from many addresses, which no address's
    // limit stops (the limits have a test of their own below).
    let c = w.coordinator(&[
        "--heartbeat-timeout",
        "2s",
        "--heartbeat-interval",
        "250ms",
        "--reads-per-second",
        "0",
    ]);
    let providers = [w.provider(&c, 2), w.provider(&c, 2)];
    let registered: Vec<_> = providers
        .iter()
        .map(|p| c.http.provider(p.id).expect("registered").registered_at)
        .collect();

    // A big job nobody here can run: every state hash covers its tasks.
    let ballast = unrunnable_job(&w, &c, 100_000);
    let client = &c.http.client;

    let stop = Arc::new(AtomicBool::new(false));
    // The readers run on threads of their own while the test drives the CLI.
    let flood = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime for the readers");
    let readers: Vec<_> = (0..READERS)
        .map(|i| {
            let (stop, base) = (stop.clone(), c.url.clone());
            let path = match i % 3 {
                0 => "/v1/status".to_string(),
                1 => "/v1/providers".to_string(),
                _ => format!("/v1/jobs/{ballast}"),
            };
            {
                flood.spawn(async move {
                    let http = reqwest::Client::new();
                    let (mut ok, mut shed) = (0u64, 0u64);
                    while !stop.load(Ordering::Relaxed) {
                        let resp = http
                            .get(format!("{base}{path}"))
                            .send()
                            .await
                            .unwrap_or_else(|e| panic!("GET {path} got no answer: {e}"));
                        let status = resp.status().as_u16();
                        let retry_after = resp.headers().contains_key("retry-after");
                        let body = resp.bytes().await.expect("a body");
                        match status {
                            200 => ok += 1,
                            503 if retry_after && error_body(&body).error == "overloaded" => {
                                shed += 1
                            }
                            other => panic!(
                                "GET {path} answered {other}: {}",
                                String::from_utf8_lossy(&body)
                            ),
                        }
                    }
                    (ok, shed)
                })
            }
        })
        .collect();

    // Work goes on meanwhile: three jobs, each right.
    let spec = w.write("pi.toml", pi_spec(2_000, 20));
    let started = Instant::now();
    for _ in 0..3 {
        let job = w.submit(&c.url, &spec);
        let view = c.http.wait_job_for(job, WAIT);
        crate::support::assert_completed(&view);
        assert_eq!(w.results(&c.url, job), pi_output(2_000, 20).into_bytes());
    }
    // Long enough for a starved liveness path to show (the timeout is 2 s).
    while started.elapsed() < Duration::from_secs(4) {
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut shed) = (0, 0);
    for r in readers {
        let (o, s) = flood.block_on(r).expect("a reader panicked");
        ok += o;
        shed += s;
    }
    assert!(ok > 0, "no read was answered");
    eprintln!("reads answered: {ok}, shed: {shed}");

    // The provider list comes in pages, in the order of the ids.
    let get = |q: &str| -> (u16, Vec<u8>) {
        let url = format!("{}/v1/providers{q}", c.url);
        w.block_on(async {
            let r = reqwest::get(&url).await.unwrap();
            (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
        })
    };
    let ids = |body: &[u8]| -> Vec<engine::AccountId> {
        serde_json::from_slice::<Vec<api::wire::ProviderView>>(body)
            .unwrap()
            .into_iter()
            .map(|p| p.id)
            .collect()
    };
    let mut all: Vec<_> = providers.iter().map(|p| p.id).collect();
    all.sort();
    let (status, first) = get("?limit=1");
    assert_eq!((status, ids(&first)), (200, vec![all[0]]));
    let (status, rest) = get(&format!("?after={}", all[0]));
    assert_eq!((status, ids(&rest)), (200, vec![all[1]]));
    assert_eq!(get("?after=nope").0, 400);
    assert_eq!(
        w.block_on(client.providers())
            .unwrap()
            .iter()
            .map(|p| p.id)
            .collect::<Vec<_>>(),
        all
    );

    for (p, at) in providers.iter().zip(registered) {
        let view = c.http.provider(p.id).expect("still registered");
        assert_eq!(
            (view.status, view.registered_at),
            (ProviderStatus::Active, at),
            "provider {} was declared lost under the read load",
            p.id
        );
    }
}

#[test]
fn slow_headers_and_trickled_bodies_are_cut_off_and_others_are_served() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let addr = format!("127.0.0.1:{}", c.port);

    // Connections that never finish their headers.
    let mut slow_headers: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).expect("connecting");
            s.write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .expect("writing part of a header");
            s
        })
        .collect();

    // A body announced as 1,000 bytes and sent a byte a second.
    let started = Instant::now();
    let mut trickle = TcpStream::connect(&addr).expect("connecting");
    trickle
        .write_all(
            b"POST /v1/actions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
        )
        .expect("writing the headers");
    trickle
        .set_read_timeout(Some(Duration::from_millis(1)))
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < Duration::from_secs(25) {
        // Others are served meanwhile.
        assert_eq!(c.http.status().jobs_total, 0);
        match trickle.write_all(b"{") {
            Ok(()) => {}
            Err(_) => break, // closed by the coordinator
        }
        match trickle.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if !answer.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let cut = started.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 408") && answer.contains("too_slow"),
        "a body trickled at a byte a second got {answer:?} after {cut:?}"
    );
    assert!(
        cut < Duration::from_secs(20),
        "the trickled body was cut off only after {cut:?}"
    );

    // The slow-header connections are closed by the header timeout (30 s).
    for s in &mut slow_headers {
        s.set_read_timeout(Some(Duration::from_secs(40)))
            .expect("a read timeout");
        let mut buf = [0u8; 256];
        let closed = match s.read(&mut buf) {
            Ok(_) => true, // EOF, or an error response before closing
            Err(e) => {
                e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::TimedOut
            }
        };
        assert!(
            closed,
            "a connection that never finished its headers is still open"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "slow-header connections were closed only after {:?}",
        started.elapsed()
    );
}

/// A job's per-task detail comes in pages of at most 1,000 tasks; the client gathers them.
#[test]
fn a_big_jobs_task_detail_comes_in_pages() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let job = unrunnable_job(&w, &c, 2_500);
    let client = &c.http.client;

    let page = |query: &str| -> api::wire::JobView {
        let url = format!("{}/v1/jobs/{job}?{query}", c.url);
        w.block_on(async { reqwest::get(&url).await.unwrap().json().await.unwrap() })
    };
    let first = page("tasks=true");
    assert_eq!(first.tasks.len(), 1_000);
    assert_eq!(first.tasks_next, Some(1_000));
    assert_eq!(first.tasks_total, 2_500);
    let last = page("tasks=true&tasks_from=2000&tasks_limit=100000");
    assert_eq!(last.tasks.len(), 500);
    assert_eq!(last.tasks[0].task.index, 2_000);
    assert_eq!(last.tasks_next, None);
    let none = page("tasks=false");
    assert!(none.tasks.is_empty() && none.tasks_next.is_none());

    let all = w.block_on(client.job(job, true)).expect("the whole detail");
    let indices: Vec<u32> = all.tasks.iter().map(|t| t.task.index).collect();
    assert_eq!(indices, (0..2_500).collect::<Vec<u32>>());
}

/// A requester whose machine's clock was set back (it signed the account's last action with a
/// nonce from a clock that ran fast) is not refused as replaying its own fresh actions.
#[test]
fn a_requester_whose_clock_was_set_back_is_not_refused_as_a_replay() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let client = &c.http.client;
    let secret = [42u8; 32];
    let fast = Identity::from_secret(secret);
    // Nonces count microseconds: this one is two hours ahead.
    let two_hours_ahead = fast.sign(Action::Faucet).nonce + 2 * 3_600 * 1_000_000;
    w.block_on(client.submit_action(&fast.sign_with_nonce(two_hours_ahead, Action::Faucet)))
        .expect("the faucet, signed on a fast clock");

    // The same key in a new process, on a correct clock.
    let corrected = Identity::from_secret(secret);
    let pay = Action::Transfer {
        to: crate::support::account(7),
        amount: engine::tokens(1),
    };
    let stale = corrected.sign_with_nonce(corrected.sign(Action::Faucet).nonce, pay.clone());
    let err = w
        .block_on(client.submit_action(&stale))
        .expect_err("a nonce below the logged one is a replay");
    assert_eq!(err.status(), Some(409), "{err}");
    let done = w
        .block_on(client.action(&corrected, pay))
        .expect("the client goes on from the logged nonce");
    assert!(done.seq > 0);
    assert_eq!(
        w.block_on(client.account(crate::support::account(7)))
            .unwrap()
            .balance,
        engine::tokens(1)
    );
}

/// Sixteen 60 MB bodies at once raised a coordinator's resident memory from 28 MB to 815 MB
/// (issue 16), which it kept: large bodies now take room in a budget of twice the largest body
/// a route takes (128 MiB), and those that find none wait or are shed.
#[test]
fn many_large_bodies_at_once_take_bounded_memory() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let body = vec![b'x'; 60 << 20];
    std::thread::scope(|scope| {
        for _ in 0..16 {
            scope.spawn(|| {
                let answer = w.block_on(async {
                    reqwest::Client::new()
                        .post(format!("{}/v1/actions", c.url))
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                });
                // Read and refused as malformed, or shed unread; a connection the coordinator
                // closed while the client still sent is a shed body too.
                if let Ok(answer) = answer {
                    let status = answer.status().as_u16();
                    assert!(status == 400 || status == 503, "answered {status}");
                }
            });
        }
    });
    let status = std::fs::read_to_string(format!("/proc/{}/status", c.proc.pid()))
        .expect("reading the coordinator's /proc status");
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    assert!(
        peak_kib < 400 * 1024,
        "the coordinator's resident memory peaked at {} MiB",
        peak_kib / 1024
    );
    // And it still serves.
    assert_eq!(c.http.status().jobs_total, 0);
}

/// An address over its read rate is answered `429 rate_limited` with `Retry-After`, cheaply and
/// without touching the node, while other addresses (here the test's own, 127.0.0.1) are served
/// and providers stay alive; an account over its action rate is refused whole, nothing logged,
/// and another account is served.
#[test]
fn an_address_or_account_over_its_rate_gets_429_and_others_are_served() {
    let w = World::new();
    let c = w.coordinator(&[
        "--reads-per-second",
        "20",
        "--actions-per-second",
        "3",
        "--heartbeat-timeout",
        "2s",
        "--heartbeat-interval",
        "250ms",
    ]);
    let p = w.provider(&c, 1);
    let registered = c.http.provider(p.id).expect("registered").registered_at;

    // 127.0.0.2 reads as fast as it can: 200 at once (ten seconds' worth), then 20 a second.
    let flooder = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let started = Instant::now();
    let (mut ok, mut limited) = (0u64, 0u64);
    w.block_on(async {
        for _ in 0..600 {
            let resp = flooder
                .get(format!("{}/v1/network", c.url))
                .send()
                .await
                .expect("an answer");
            let status = resp.status().as_u16();
            let retry_after: Option<u64> = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            let body = resp.bytes().await.unwrap();
            match status {
                200 => ok += 1,
                429 => {
                    assert_eq!(error_body(&body).error, "rate_limited");
                    assert!(retry_after.is_some_and(|s| s >= 1), "no Retry-After");
                    limited += 1;
                }
                other => panic!("{other}: {}", String::from_utf8_lossy(&body)),
            }
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!("flooder: {ok} answered, {limited} limited in {elapsed:.2} s");
    assert!(limited > 0, "the flooder was never limited");
    assert!(
        (ok as f64) <= 200.0 + 20.0 * elapsed + 2.0,
        "{ok} reads answered in {elapsed:.2} s"
    );
    // Meanwhile this address is served, and the provider is alive.
    assert!(c.http.status().log_length > 0);
    std::thread::sleep(Duration::from_millis(2_500));
    let view = c.http.provider(p.id).expect("still registered");
    assert_eq!(
        (view.status, view.registered_at),
        (ProviderStatus::Active, registered)
    );

    // Actions: 30 at once per account (3 a second). A batch of 31 can never pass; after the
    // faucet and 29 transfers, the next batch is refused whole, nothing logged.
    let client = &c.http.client;
    let spender = Identity::generate();
    w.block_on(client.action(&spender, Action::Faucet))
        .expect("faucet");
    let to = Identity::generate().id();
    let nonce0 = w
        .block_on(client.account(spender.id()))
        .expect("account")
        .nonce;
    let batch = |from: u64, n: u64| -> Vec<engine::Signed<Action>> {
        (from..from + n)
            .map(|nonce| spender.sign_with_nonce(nonce, Action::Transfer { to, amount: 1 }))
            .collect()
    };
    let refusals = |outcomes: Vec<api::wire::BatchOutcome>| -> Vec<String> {
        outcomes
            .into_iter()
            .filter_map(|o| o.into_result().err().map(|e| e.error))
            .collect()
    };
    let too_big = w
        .block_on(client.action_batch(&batch(nonce0 + 1, 31)))
        .unwrap();
    assert_eq!(refusals(too_big), vec!["too_large"; 31]);
    let fits = w
        .block_on(client.action_batch(&batch(nonce0 + 1, 29)))
        .unwrap();
    assert!(refusals(fits).is_empty());
    let before = c.http.status().log_length;
    let over = w
        .block_on(client.action_batch(&batch(nonce0 + 30, 5)))
        .unwrap();
    assert_eq!(refusals(over), vec!["rate_limited"; 5]);
    assert_eq!(
        c.http.status().log_length,
        before,
        "a limited action was logged"
    );
    // Another account is served meanwhile.
    let other = Identity::generate();
    w.block_on(client.action(&other, Action::Faucet))
        .expect("another account's action");
}

/// Uploads that no job or result names are bounded per account and expire; a job's blobs are
/// kept, and a restart forgets none of what it must delete. (1,000 uploads of 1 MiB from one key
/// used to be kept for good.)
#[test]
fn unnamed_uploads_are_bounded_per_account_and_expire_while_a_jobs_blobs_stay() {
    let w = World::new();
    let args = [
        "--max-blob-size",
        "1MiB",
        "--blob-quota",
        "2MiB",
        "--blob-expiry",
        "3s",
    ];
    let c = w.coordinator(&args);
    let client = &c.http.client;
    let me = Identity::generate();
    w.block_on(client.action(&me, Action::Faucet))
        .expect("faucet");
    let junk = |n: u8| bytes::Bytes::from(vec![n; 900 << 10]);
    let stored = |c: &Coordinator, hash: engine::Hash| -> u16 {
        let url = format!("{}/v1/blobs/{hash}", c.url);
        w.block_on(async { reqwest::get(&url).await.unwrap().status().as_u16() })
    };
    let module = w
        .block_on(client.put_blob(
            &me,
            bytes::Bytes::from(std::fs::read(crate::support::guest("noop.wasm")).unwrap()),
        ))
        .expect("uploading noop.wasm");
    let input = w.block_on(client.put_blob(&me, junk(1))).expect("input");
    let stray = w.block_on(client.put_blob(&me, junk(2))).expect("stray");
    // A third 900 KiB would take the account past its 2 MiB: refused, not stored.
    let refused = w.block_on(client.put_blob(&me, junk(3))).unwrap_err();
    assert_eq!(refused.status(), Some(413), "{refused}");
    assert!(refused.to_string().contains("blob_quota"), "{refused}");
    assert_eq!(stored(&c, engine::Hash::of(&junk(3))), 404);
    // The same bytes again take no more room; another key has its own allowance.
    w.block_on(client.put_blob(&me, junk(2))).expect("again");
    let other = Identity::generate();
    let late = w
        .block_on(client.put_blob(&other, junk(4)))
        .expect("another key");

    // A job names the module and one input: those two are kept.
    let spec = gpu_only(
        module,
        vec![engine::TaskSpec {
            inputs: vec![engine::InputFile {
                name: "data".into(),
                hash: input,
            }],
            ..Default::default()
        }],
    );
    let noop = std::fs::read(crate::support::guest("noop.wasm")).unwrap();
    w.block_on(client.action(&me, c.submission(spec, &[&noop, &junk(1)])))
        .expect("submitting the job");

    // Killed and restarted before the stray expires: it expires all the same.
    let (data_dir, port) = (c.data_dir.clone(), c.port);
    drop(c);
    let c = w.coordinator_restart(&data_dir, port, &args);
    let restarted = Instant::now();
    assert_eq!(stored(&c, stray), 200, "expired before its time");
    crate::support::poll("the unnamed uploads to expire", WAIT, || {
        (stored(&c, stray) == 404 && stored(&c, late) == 404).then_some(())
    });
    assert!(restarted.elapsed() >= Duration::from_millis(2_900));
    assert_eq!(stored(&c, module), 200);
    assert_eq!(stored(&c, input), 200);
    // Its room is free again.
    w.block_on(c.http.client.put_blob(&me, junk(3)))
        .expect("room again");
}
