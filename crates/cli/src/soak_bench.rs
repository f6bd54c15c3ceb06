//! `gridmint bench --only soak`: mixed load on a real coordinator process for a while (30 min;
//! 3 with `--quick`), with its rate limits and allowances as a user runs it. Honest work goes on
//! from 127.0.0.1 — no-op jobs one after another, a transfer every 100 ms, a registered probe
//! provider that heartbeats and exchanges (for no task) every 500 ms, four provider processes — while other loopback
//! addresses attack: a read flood (127.0.0.2), connections that send their headers or a body a
//! byte at a time (127.0.0.3), uploads nothing names from fresh keys (127.0.0.4), action spam
//! and garbage of every kind (127.0.0.5). A provider process is killed and replaced every sixth
//! of the run, and the coordinator is killed and restarted at a third and two thirds.
//!
//! It ends by checking what must hold: every accepted job completed or failed with a reason;
//! every acknowledged transfer is in the ledger; the chain verifies (which replays it and checks
//! the supply after every entry); no provider still running was declared lost; no answer was a
//! 5xx other than 503 `overloaded`; and it reports requests by kind and status, heartbeat,
//! exchange and transfer latency, and the coordinator's resident memory over time.

use crate::bench::{ms, percentile, verdict};
use crate::validators_bench::{Proc, spawn_with};
use anyhow::{Context, ensure};
use api::{Client, Identity};
use engine::{Action, JobStatus, ProviderSpec, ProviderStatus, Request};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const NOOP_WASM: &[u8] = include_bytes!("../../../guests/noop.wasm");
/// Provider processes running at any time.
const PROVIDERS: usize = 4;
/// The coordinator's settings: short liveness and blob expiry, so that both are exercised.
const COORDINATOR_ARGS: [&str; 7] = [
    "--dev",
    "--heartbeat-interval",
    "1s",
    "--heartbeat-timeout",
    "6s",
    "--blob-expiry",
    "30s",
];

/// Requests by (kind, outcome).
#[derive(Default)]
struct Tally(Mutex<BTreeMap<(String, String), u64>>);

impl Tally {
    fn add(&self, kind: &str, outcome: impl Into<String>) {
        *self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((kind.to_string(), outcome.into()))
            .or_default() += 1;
    }

    /// The outcome of an HTTP answer: its status, with the error code of a 4xx/5xx body.
    fn status(&self, kind: &str, status: u16, body: &[u8]) {
        let code = serde_json::from_slice::<api::wire::ErrorBody>(body)
            .map(|b| format!("{status} {}", b.error))
            .unwrap_or_else(|_| status.to_string());
        self.add(kind, code);
    }

    /// Counts an HTTP answer by its status (and error code), or `failed` when none came;
    /// returns whether one came.
    async fn answer(
        &self,
        kind: &str,
        sent: reqwest::Result<reqwest::Response>,
        failed: &str,
    ) -> bool {
        match sent {
            Ok(r) => {
                let status = r.status().as_u16();
                let body = r.bytes().await.unwrap_or_default();
                self.status(kind, status, &body);
                true
            }
            Err(_) => {
                self.add(kind, failed);
                false
            }
        }
    }

    fn client_result<T>(&self, kind: &str, result: &Result<T, api::ClientError>) {
        match result {
            Ok(_) => self.add(kind, "ok"),
            Err(api::ClientError::Api { status, body, .. }) => {
                self.add(kind, format!("{status} {}", body.error))
            }
            Err(_) => self.add(kind, "unreachable"),
        }
    }

    fn snapshot(&self) -> BTreeMap<(String, String), u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A provider process and whether the soak killed it.
struct ProviderProc {
    child: Child,
    id: engine::AccountId,
    dir: PathBuf,
}

impl Drop for ProviderProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_provider(root: &Path, n: usize, url: &str) -> anyhow::Result<ProviderProc> {
    let dir = root.join(format!("provider-{n}"));
    std::fs::create_dir_all(&dir)?;
    let id = Identity::load_or_create(&dir.join("provider.key"))?.id();
    let log = std::fs::File::create(dir.join("log"))?;
    let child = Command::new(std::env::current_exe()?)
        .args([
            "provider",
            "--dedicated",
            "--slots",
            "1",
            "--coordinator",
            url,
            "--data-dir",
        ])
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting a provider process")?;
    Ok(ProviderProc { child, id, dir })
}

fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(ip))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a reqwest client")
}

pub struct SoakResult {
    took: Duration,
    tally: BTreeMap<(String, String), u64>,
    jobs_completed: u64,
    jobs_failed: Vec<String>,
    jobs_unfinished: u64,
    /// What each unfinished job looked like.
    jobs_stuck: Vec<String>,
    job_times: Vec<Duration>,
    transfers_acked: u64,
    transfers_tried: u64,
    transfers_landed: u128,
    transfer_times: Vec<Duration>,
    heartbeat_times: Vec<Duration>,
    exchange_times: Vec<Duration>,
    chain: Result<String, String>,
    /// Providers still running at the end that were declared lost (or the probe).
    lost_alive: Vec<String>,
    killed_providers: usize,
    restarts: usize,
    /// (seconds since start, resident bytes) of the coordinator.
    memory: Vec<(f64, u64)>,
    bugs: u64,
}

impl SoakResult {
    fn transfers_ok(&self) -> bool {
        u128::from(self.transfers_acked) <= self.transfers_landed
            && self.transfers_landed <= u128::from(self.transfers_tried)
    }

    /// Resident memory at the end over the largest before the first restart's warm-up ended:
    /// the last third's peak over the first third's peak.
    fn memory_growth(&self) -> f64 {
        let end = self.took.as_secs_f64();
        let peak = |from: f64, to: f64| {
            self.memory
                .iter()
                .filter(|(t, _)| *t >= from && *t < to)
                .map(|(_, m)| *m)
                .max()
                .unwrap_or(0) as f64
        };
        peak(end * 2.0 / 3.0, end + 1.0) / peak(0.0, end / 3.0).max(1.0)
    }

    pub fn passed(&self) -> bool {
        self.jobs_failed.is_empty()
            && self.jobs_unfinished == 0
            && self.transfers_ok()
            && self.chain.is_ok()
            && self.lost_alive.is_empty()
            && self.bugs == 0
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let w = &mut out;
        let _ = writeln!(
            w,
            "soak: {:.0} s of mixed load on one coordinator process (limits on); {} provider kills, {} coordinator restarts",
            self.took.as_secs_f64(),
            self.killed_providers,
            self.restarts
        );
        let _ = writeln!(w, "  {:<22} {:<28} {:>9}", "requests", "outcome", "count");
        for ((kind, outcome), n) in &self.tally {
            let _ = writeln!(w, "  {kind:<22} {outcome:<28} {n:>9}");
        }
        let p = |v: &[Duration], q: f64| ms(percentile(v, q));
        let _ = writeln!(
            w,
            "  {:<22} {:>9} {:>9} {:>9} {:>9}",
            "latency (ms)", "p50", "p90", "p99", "max"
        );
        for (what, v) in [
            ("heartbeat (liveness)", &self.heartbeat_times),
            ("exchange (work)", &self.exchange_times),
            ("transfer (write)", &self.transfer_times),
            ("no-op job (50 tasks)", &self.job_times),
        ] {
            let _ = writeln!(
                w,
                "  {:<22} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                what,
                p(v, 0.5),
                p(v, 0.9),
                p(v, 0.99),
                p(v, 1.0)
            );
        }
        let _ = writeln!(w, "  coordinator resident memory (MB) over time:");
        let step = (self.memory.len() / 12).max(1);
        let line: Vec<String> = self
            .memory
            .iter()
            .step_by(step)
            .map(|(t, m)| format!("{t:.0}s {:.0}", *m as f64 / 1e6))
            .collect();
        let _ = writeln!(w, "    {}", line.join(", "));
        let _ = writeln!(
            w,
            "  checks: jobs {} completed, {} failed, {} unfinished {}; transfers {} acknowledged, {} landed, {} tried {}; {} {}; providers alive but declared lost: {} {}; 5xx other than 503 overloaded: {} {}; memory last third / first third peak {:.2}",
            self.jobs_completed,
            self.jobs_failed.len(),
            self.jobs_unfinished,
            verdict(self.jobs_failed.is_empty() && self.jobs_unfinished == 0),
            self.transfers_acked,
            self.transfers_landed,
            self.transfers_tried,
            verdict(self.transfers_ok()),
            match &self.chain {
                Ok(s) => s.clone(),
                Err(e) => format!("chain verify FAILED: {e}"),
            },
            verdict(self.chain.is_ok()),
            self.lost_alive.len(),
            verdict(self.lost_alive.is_empty()),
            self.bugs,
            verdict(self.bugs == 0),
            self.memory_growth()
        );
        for f in &self.jobs_failed {
            let _ = writeln!(w, "    failed job: {f}");
        }
        for f in &self.jobs_stuck {
            let _ = writeln!(w, "    unfinished job: {f}");
        }
        for l in &self.lost_alive {
            let _ = writeln!(w, "    declared lost while alive: {l}");
        }
        out
    }

    pub fn json(&self) -> serde_json::Value {
        let p = |v: &[Duration]| {
            json!({
                "p50_ms": ms(percentile(v, 0.5)),
                "p90_ms": ms(percentile(v, 0.9)),
                "p99_ms": ms(percentile(v, 0.99)),
                "max_ms": ms(percentile(v, 1.0)),
            })
        };
        json!({
            "seconds": self.took.as_secs_f64(),
            "passed": self.passed(),
            "requests": self.tally.iter().map(|((k, o), n)| json!({"kind": k, "outcome": o, "count": n})).collect::<Vec<_>>(),
            "heartbeat": p(&self.heartbeat_times),
            "exchange": p(&self.exchange_times),
            "transfer": p(&self.transfer_times),
            "job": p(&self.job_times),
            "jobs_completed": self.jobs_completed,
            "jobs_failed": self.jobs_failed,
            "jobs_unfinished": self.jobs_unfinished,
            "jobs_stuck": self.jobs_stuck,
            "transfers_acknowledged": self.transfers_acked,
            "transfers_landed": self.transfers_landed.to_string(),
            "transfers_tried": self.transfers_tried,
            "chain": match &self.chain { Ok(s) => json!({"ok": s}), Err(e) => json!({"error": e}) },
            "lost_while_alive": self.lost_alive,
            "provider_kills": self.killed_providers,
            "coordinator_restarts": self.restarts,
            "bugs_5xx": self.bugs,
            "memory": self.memory.iter().map(|(t, m)| json!([t, m])).collect::<Vec<_>>(),
            "memory_growth": self.memory_growth(),
        })
    }
}

use std::fmt::Write as _;

/// The coordinator process, restartable on its port and data dir.
struct Coordinator {
    proc: Mutex<Option<Proc>>,
    pid: AtomicU64,
    dir: PathBuf,
    listen: String,
}

impl Coordinator {
    fn start(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match spawn_with(&self.dir, &self.listen, &COORDINATOR_ARGS, true) {
                Ok(p) => {
                    self.pid.store(u64::from(p.pid()), Ordering::Relaxed);
                    *self.proc.lock().unwrap_or_else(|p| p.into_inner()) = Some(p);
                    return Ok(());
                }
                // The port may linger in TIME_WAIT for a moment.
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn kill(&self) {
        self.proc.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

pub async fn run(duration: Duration) -> anyhow::Result<SoakResult> {
    let root = tempfile::tempdir().context("creating a temp dir")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let listen = format!("127.0.0.1:{port}");
    let url = format!("http://{listen}");
    let coordinator = Arc::new(Coordinator {
        proc: Mutex::new(None),
        pid: AtomicU64::new(0),
        dir: root.path().join("coordinator"),
        listen,
    });
    std::fs::create_dir_all(&coordinator.dir)?;
    coordinator.start()?;
    eprintln!(
        "soak: coordinator at {url} for {:.0} s",
        duration.as_secs_f64()
    );
    let client = Client::new(&url);

    let mut providers: Vec<ProviderProc> = (0..PROVIDERS)
        .map(|n| start_provider(root.path(), n, &url))
        .collect::<anyhow::Result<_>>()?;
    let mut next_provider = PROVIDERS;

    // The honest requester, the transfer pair and the probe provider.
    let requester = Arc::new(Identity::generate());
    client.action(&requester, Action::Faucet).await?;
    let module = client
        .put_blob(&requester, bytes::Bytes::from_static(NOOP_WASM))
        .await?;
    let storage = client.network().await?.storage;
    let sender = Arc::new(Identity::generate());
    client.action(&sender, Action::Faucet).await?;
    let receiver = Identity::generate().id();
    let probe = Arc::new(Identity::generate());
    client.action(&probe, Action::Faucet).await?;
    client
        .action(
            &probe,
            Action::Stake {
                amount: engine::tokens(100),
            },
        )
        .await?;
    client
        .action(
            &probe,
            Action::RegisterProvider(ProviderSpec {
                slots: 1,
                cores: 1,
                memory_bytes: 1 << 30,
                gpu: None,
                benchmark_score: 1,
                region: "probe".into(),
                price_per_fuel: 1,
                operator: None,
            }),
        )
        .await?;
    let waiting = Instant::now();
    while client.status().await?.providers_active < PROVIDERS as u64 + 1 {
        ensure!(
            waiting.elapsed() < Duration::from_secs(60),
            "the providers did not register within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    // However this function ends, the load stops (its blocking threads poll `stop`).
    let _stop_on_exit = StopOnDrop(stop.clone());
    let tally = Arc::new(Tally::default());
    let mut tasks = tokio::task::JoinSet::new();

    // Honest jobs, one after another; their ids and how each ended.
    let jobs: Arc<Mutex<Vec<u64>>> = Arc::default();
    let job_times: Arc<Mutex<Vec<Duration>>> = Arc::default();
    {
        let (stop, client, requester, jobs, job_times, tally) = (
            stop.clone(),
            client.clone(),
            requester.clone(),
            jobs.clone(),
            job_times.clone(),
            tally.clone(),
        );
        tasks.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let spec = engine::JobSpec {
                    module,
                    tasks: vec![engine::TaskSpec::default(); 50],
                    limits: engine::Limits {
                        fuel: 1_000_000,
                        memory_bytes: 16 << 20,
                        wall_ms: 10_000,
                    },
                    deadline: coordinator::now_ms() + 20 * 60 * 1000,
                    max_price: 1,
                    output: engine::OutputSource::Stdout,
                    aggregate: engine::Aggregate::Concat,
                    redundancy: Default::default(),
                    requirements: Default::default(),
                };
                let t = Instant::now();
                let submitted = client
                    .action(
                        &requester,
                        crate::bench::noop_submission(storage.as_ref(), spec),
                    )
                    .await;
                tally.client_result("job submit", &submitted);
                let Some(job) = submitted.ok().and_then(|r| r.submitted_job()) else {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                };
                jobs.lock().unwrap_or_else(|p| p.into_inner()).push(job);
                loop {
                    match client.job_wait(job, Duration::from_secs(5)).await {
                        Ok(v)
                            if v.status == JobStatus::Running
                                || v.status == JobStatus::Reducing => {}
                        Ok(_) => {
                            job_times
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(t.elapsed());
                            break;
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                    }
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
            }
        });
    }

    // A transfer every 100 ms: acknowledged ones must all be in the ledger.
    let transfers = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let transfer_times: Arc<Mutex<Vec<Duration>>> = Arc::default();
    {
        let (stop, client, sender, transfers, times, tally) = (
            stop.clone(),
            client.clone(),
            sender.clone(),
            transfers.clone(),
            transfer_times.clone(),
            tally.clone(),
        );
        tasks.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                transfers.1.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                let r = client
                    .action(
                        &sender,
                        Action::Transfer {
                            to: receiver,
                            amount: 1,
                        },
                    )
                    .await;
                tally.client_result("transfer", &r);
                if r.is_ok() {
                    transfers.0.fetch_add(1, Ordering::Relaxed);
                    times
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(t.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }

    // The probe provider's heartbeats, and its work exchanges (reporting nothing and asking for
    // no task, so that it takes no work it would not run: the exchange path's own latency).
    let heartbeat_times: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let exchange_times: Arc<Mutex<Vec<Duration>>> = Arc::default();
    {
        let (stop, client, probe, heartbeats, exchanges, tally) = (
            stop.clone(),
            client.clone(),
            probe.clone(),
            heartbeat_times.clone(),
            exchange_times.clone(),
            tally.clone(),
        );
        tasks.spawn(async move {
            let push = |times: &Mutex<Vec<Duration>>, took: Duration| {
                times.lock().unwrap_or_else(|p| p.into_inner()).push(took);
            };
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let r = client.heartbeat(&probe).await;
                tally.client_result("heartbeat", &r);
                if r.is_ok() {
                    push(&heartbeats, t.elapsed());
                }
                let t = Instant::now();
                let fetch = Request::Fetch {
                    max: 0,
                    wait_ms: 0,
                    held: Vec::new(),
                    cached: Vec::new(),
                };
                let r = client.exchange(&probe, Vec::new(), fetch).await;
                tally.client_result("exchange", &r);
                if r.is_ok() {
                    push(&exchanges, t.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }

    // 127.0.0.2: a read flood.
    for i in 0..16 {
        let (stop, tally, url) = (stop.clone(), tally.clone(), url.clone());
        tasks.spawn(async move {
            let http = from([127, 0, 0, 2]);
            let path = ["/v1/status", "/v1/providers", "/v1/jobs/1?tasks=true"][i % 3];
            while !stop.load(Ordering::Relaxed) {
                let sent = http.get(format!("{url}{path}")).send().await;
                if !tally.answer("flood read", sent, "unreachable").await {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
    }

    // 127.0.0.3: slow headers and a trickled body, on blocking threads.
    for i in 0..21 {
        let (stop, tally) = (stop.clone(), tally.clone());
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let rt = tokio::runtime::Handle::current();
        tasks.spawn_blocking(move || {
            while !stop.load(Ordering::Relaxed) {
                let socket = match connect_from([127, 0, 0, 3], addr, &rt) {
                    Some(s) => s,
                    None => {
                        tally.add("slow client", "unreachable");
                        std::thread::sleep(Duration::from_millis(500));
                        continue;
                    }
                };
                let mut s = socket;
                let head: &[u8] = if i == 0 {
                    b"POST /v1/actions HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
                } else {
                    b"GET /v1/status HTTP/1.1\r\nHost: x\r\n"
                };
                if s.write_all(head).is_err() {
                    continue;
                }
                let opened = Instant::now();
                // A byte every second until the server closes the connection.
                loop {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                    if s.write_all(if i == 0 { b"{" } else { b"X" }).is_err() {
                        break;
                    }
                    if opened.elapsed() > Duration::from_secs(120) {
                        tally.add("slow client", "never cut off");
                        break;
                    }
                }
                tally.add(
                    "slow client",
                    if i == 0 {
                        "body cut off"
                    } else {
                        "headers cut off"
                    },
                );
            }
        });
    }

    // 127.0.0.4: 1 MiB uploads nothing names, from a fresh key every 300 (past its 256 MiB).
    {
        let (stop, tally, url) = (stop.clone(), tally.clone(), url.clone());
        tasks.spawn(async move {
            let http = from([127, 0, 0, 4]);
            let mut n: u64 = 0;
            let mut key = Identity::generate();
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                if n.is_multiple_of(300) {
                    key = Identity::generate();
                }
                let mut bytes = vec![0u8; 1 << 20];
                bytes[..8].copy_from_slice(&n.to_le_bytes());
                bytes[8..16].copy_from_slice(&coordinator::now_ms().to_le_bytes());
                let hash = engine::Hash::of(&bytes);
                let signed = key.sign(api::wire::Request::PutBlob {
                    hash,
                    size: bytes.len() as u64,
                });
                let r = http
                    .put(format!("{url}/v1/blobs/{hash}"))
                    .header(api::wire::HEADER_SIGNER, signed.signer.to_hex())
                    .header(api::wire::HEADER_NONCE, signed.nonce.to_string())
                    .header(api::wire::HEADER_SIGNATURE, signed.signature.to_hex())
                    .body(bytes)
                    .send()
                    .await;
                tally.answer("unnamed upload", r, "unreachable").await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }

    // 127.0.0.5: action spam and garbage.
    {
        let (stop, tally, url) = (stop.clone(), tally.clone(), url.clone());
        tasks.spawn(async move {
            let http = from([127, 0, 0, 5]);
            let spammer = Identity::generate();
            let mut funded = false;
            let mut nonce = coordinator::now_ms() * 1000;
            let post = |path: &str, body: Vec<u8>| {
                http.post(format!("{url}{path}"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
            };
            let mut round: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                if !funded {
                    nonce += 1;
                    let body = serde_json::to_vec(&spammer.sign_with_nonce(nonce, Action::Faucet))
                        .unwrap_or_default();
                    if let Ok(r) = post("/v1/actions", body).await {
                        funded = r.status().is_success();
                    }
                }
                let batch: Vec<_> = (0..100)
                    .map(|_| {
                        nonce += 1;
                        spammer.sign_with_nonce(
                            nonce,
                            Action::Transfer {
                                to: receiver_of_spam(),
                                amount: 1,
                            },
                        )
                    })
                    .collect();
                match post(
                    "/v1/actions/batch",
                    serde_json::to_vec(&batch).unwrap_or_default(),
                )
                .await
                {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let body = r.bytes().await.unwrap_or_default();
                        match serde_json::from_slice::<Vec<api::wire::BatchOutcome>>(&body) {
                            Ok(outcomes) => {
                                for o in outcomes {
                                    match o.into_result() {
                                        Ok(_) => tally.add("spam action", "accepted"),
                                        Err(e) => tally.add("spam action", e.error),
                                    }
                                }
                            }
                            Err(_) => tally.status("spam batch", status, &body),
                        }
                    }
                    Err(_) => tally.add("spam batch", "unreachable"),
                }
                // Garbage: malformed JSON, a forged signature, a body announced too big.
                let garbage: Vec<(&str, &str, Vec<u8>)> = vec![
                    ("garbage", "/v1/actions", b"{\"not\": json".to_vec()),
                    ("forged", "/v1/actions", {
                        let mut s = spammer.sign_with_nonce(nonce + 1_000_000, Action::Faucet);
                        s.signature.0[0] ^= 1;
                        serde_json::to_vec(&s).unwrap_or_default()
                    }),
                    ("garbage", "/v1/work/exchange", b"[1,2,3]".to_vec()),
                ];
                for (kind, path, body) in garbage {
                    tally
                        .answer(kind, post(path, body).await, "unreachable")
                        .await;
                }
                if round.is_multiple_of(20) {
                    let r = http
                        .post(format!("{url}/v1/actions"))
                        .header("content-length", (1u64 << 40).to_string())
                        .body(Vec::<u8>::new())
                        .send()
                        .await;
                    tally.answer("huge announced", r, "cut off").await;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }

    // The coordinator's memory every 5 s.
    let memory: Arc<Mutex<Vec<(f64, u64)>>> = Arc::default();
    {
        let (stop, memory, coordinator) = (stop.clone(), memory.clone(), coordinator.clone());
        tasks.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let pid = coordinator.pid.load(Ordering::Relaxed) as u32;
                if let Some(rss) = rss_bytes(pid) {
                    memory
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((started.elapsed().as_secs_f64(), rss));
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        });
    }

    // Churn and restarts, from here.
    let mut killed = Vec::new();
    let mut restarts = 0;
    let churn_every = duration / 6;
    let mut next_churn = churn_every;
    let mut next_restart = duration / 3;
    while started.elapsed() < duration {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if started.elapsed() >= next_churn {
            next_churn += churn_every;
            let gone = providers.remove(0);
            eprintln!("soak: killing provider {}", gone.id);
            killed.push(gone.id);
            drop(gone);
            providers.push(start_provider(root.path(), next_provider, &url)?);
            next_provider += 1;
        }
        if started.elapsed() >= next_restart && restarts < 2 {
            next_restart += duration / 3;
            restarts += 1;
            eprintln!("soak: killing and restarting the coordinator");
            coordinator.kill();
            tokio::time::sleep(Duration::from_secs(1)).await;
            let c = coordinator.clone();
            tokio::task::spawn_blocking(move || c.start()).await??;
        }
    }
    // Before the load stops (the probe heartbeats until then): nobody still running was ever
    // declared lost.
    let newest = providers.last().map(|p| p.id);
    let mut lost_alive = Vec::new();
    for p in providers.iter_mut() {
        if let Ok(Some(status)) = p.child.try_wait() {
            let log = std::fs::read_to_string(p.dir.join("log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            lost_alive.push(format!(
                "provider {} exited ({status}): {}",
                p.id,
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ));
        }
    }
    for (id, what) in providers
        .iter()
        .map(|p| (p.id, "provider"))
        .chain([(probe.id(), "probe")])
    {
        match client.provider(id).await {
            Ok(v) if v.status == ProviderStatus::Active && v.stats.times_lost == 0 => {}
            // Started by the last churn, still benchmarking itself: not registered yet.
            Err(api::ClientError::Api { status: 404, .. }) if Some(&id) == newest.as_ref() => {}
            Ok(v) => lost_alive.push(format!(
                "{what} {id}: {:?}, declared lost {} times",
                v.status, v.stats.times_lost
            )),
            Err(e) => lost_alive.push(format!("{what} {id}: {e}")),
        }
    }
    stop.store(true, Ordering::Relaxed);
    eprintln!("soak: stopping the load; draining");
    while tasks.join_next().await.is_some() {}
    let took = started.elapsed();

    // Every accepted job ends, completed or failed with a reason.
    let (mut completed, mut failed, mut unfinished) = (0, Vec::new(), 0);
    let mut stuck = Vec::new();
    let ids = jobs.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for job in ids {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let view = client.job_wait(job, Duration::from_secs(5)).await?;
            match view.status {
                JobStatus::Completed => {
                    completed += 1;
                    break;
                }
                JobStatus::Failed { reason } => {
                    failed.push(format!("{job}: {reason}"));
                    break;
                }
                JobStatus::Cancelled => {
                    failed.push(format!("{job}: cancelled"));
                    break;
                }
                _ if Instant::now() >= deadline => {
                    unfinished += 1;
                    // What its waiting tasks ran, and who of the active providers is trusted.
                    let detail = client.job(job, true).await?;
                    let mut why = Vec::new();
                    for t in detail.tasks.iter().filter(|t| t.state != "done").take(3) {
                        let runs: Vec<String> = t
                            .runs
                            .iter()
                            .map(|r| format!("{}… {:?}", &r.provider.to_hex()[..8], r.outcome))
                            .collect();
                        why.push(format!(
                            "{} {} (queued {}): {}",
                            t.task,
                            t.state,
                            t.queued,
                            runs.join(", ")
                        ));
                    }
                    let active: Vec<String> = client
                        .providers()
                        .await?
                        .into_iter()
                        .filter(|p| p.status == ProviderStatus::Active)
                        .map(|p| {
                            format!(
                                "{}…{}",
                                &p.id.to_hex()[..8],
                                if p.trusted { " trusted" } else { "" }
                            )
                        })
                        .collect();
                    stuck.push(format!(
                        "{job}: unfinished after 120 s: {} of {} tasks done, {} queued, {} running{}; {}; active providers: {}",
                        view.tasks_done,
                        view.tasks_total,
                        view.tasks_queued,
                        view.tasks_running,
                        view.warning.map(|w| format!("; {w}")).unwrap_or_default(),
                        why.join("; "),
                        active.join(", ")
                    ));
                    break;
                }
                _ => {}
            }
        }
    }
    let landed = client.account(receiver).await?.balance;
    let chain = crate::chain::verify(
        &crate::chain::Source {
            data_dir: None,
            coordinator: Some(url.clone()),
        },
        None,
        None,
    )
    .await
    .map(|report| crate::chain::summary(&report))
    .map_err(|e| format!("{e:#}"));
    let tally = tally.snapshot();
    let bugs = tally
        .iter()
        .filter(|((_, outcome), _)| outcome.starts_with('5') && !outcome.contains("overloaded"))
        .map(|(_, n)| *n)
        .sum();
    coordinator.kill();
    drop(providers);
    let memory = memory.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let job_times = job_times.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let transfer_times = transfer_times
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let heartbeat_times = heartbeat_times
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let exchange_times = exchange_times
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(SoakResult {
        took,
        tally,
        jobs_completed: completed,
        jobs_failed: failed,
        jobs_unfinished: unfinished,
        jobs_stuck: stuck,
        job_times,
        transfers_acked: transfers.0.load(Ordering::Relaxed),
        transfers_tried: transfers.1.load(Ordering::Relaxed),
        transfers_landed: landed,
        transfer_times,
        heartbeat_times,
        exchange_times,
        chain,
        lost_alive,
        killed_providers: killed.len(),
        restarts,
        memory,
        bugs,
    })
}

/// Sets its flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A fresh valid account for each spam transfer (the admission refuses ids no key signs for).
fn receiver_of_spam() -> engine::AccountId {
    Identity::generate().id()
}

/// A blocking TCP connection from `local` to `addr` (made on the runtime `rt`).
fn connect_from(
    local: [u8; 4],
    addr: std::net::SocketAddr,
    rt: &tokio::runtime::Handle,
) -> Option<std::net::TcpStream> {
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().ok()?;
        socket.bind(std::net::SocketAddr::from((local, 0))).ok()?;
        let stream = tokio::time::timeout(Duration::from_secs(5), socket.connect(addr))
            .await
            .ok()?
            .ok()?;
        let stream = stream.into_std().ok()?;
        stream.set_nonblocking(false).ok()?;
        Some(stream)
    })
}
