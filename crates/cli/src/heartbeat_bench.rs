//! `gridmint bench --only heartbeats`: what many idle, registered providers cost a coordinator.
//!
//! A real coordinator runs as a child process (`gridmint coordinator --dev`, fsync'd log), so
//! its CPU time and resident memory can be read from `/proc` apart from the load generator. This
//! process then plays N providers: each takes the faucet, bonds the minimum stake and registers
//! (signed actions in batches), sends one signed heartbeat (which hands it a session token), and
//! then pings with its token every 30 s, the pings spread evenly over time. Over a window of
//! steady heartbeating the coordinator's CPU time over wall time is its share of one core; its
//! resident memory after registration minus before, over N, is its memory per provider.

use anyhow::{Context, bail, ensure};
use api::{Client, Identity};
use engine::{Action, ProviderSpec, tokens};
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Goal: share of one core for the whole fleet's heartbeats.
const GOAL_CORE_SHARE: f64 = 0.10;
/// Goal: coordinator memory per registered provider.
const GOAL_BYTES_PER_PROVIDER: f64 = 1024.0;
/// How often each simulated provider heartbeats.
const PERIOD: Duration = Duration::from_secs(30);
/// Actions per batch request.
const BATCH: usize = 4096;
/// Requests in flight at once during setup.
const SETUP_CONCURRENCY: usize = 64;

pub struct HeartbeatBench {
    pub providers: usize,
    pub window: Duration,
    pub pings: u64,
    pub ping_errors: u64,
    pub cpu: Duration,
    /// The same load over HTTP (`POST /v1/work/ping`), for comparison.
    pub http_window: Duration,
    pub http_pings: u64,
    pub http_errors: u64,
    pub http_cpu: Duration,
    pub rss_before: u64,
    pub rss_registered: u64,
    pub rss_after: u64,
    pub setup: Duration,
}

impl HeartbeatBench {
    fn core_share(&self) -> f64 {
        self.cpu.as_secs_f64() / self.window.as_secs_f64()
    }

    fn bytes_per_provider(&self) -> f64 {
        self.rss_registered.saturating_sub(self.rss_before) as f64 / self.providers as f64
    }

    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Heartbeats: a coordinator (child process, fsync'd log) with {} registered providers \
             each heartbeating every {} s (session-token pings over UDP)",
            self.providers,
            PERIOD.as_secs()
        );
        let _ = writeln!(
            s,
            "   setup                {:>9.1} s   (faucet, stake, register, one signed heartbeat each)",
            self.setup.as_secs_f64()
        );
        let _ = writeln!(
            s,
            "   pings                {:>9} in {:.1} s ({:.0}/s), {} unanswered",
            self.pings,
            self.window.as_secs_f64(),
            self.pings as f64 / self.window.as_secs_f64(),
            self.ping_errors
        );
        let share = self.core_share();
        let _ = writeln!(
            s,
            "   coordinator CPU      {:>9.1} % of one core   goal < {:.0}%  {}",
            share * 100.0,
            GOAL_CORE_SHARE * 100.0,
            crate::bench::verdict(share < GOAL_CORE_SHARE)
        );
        let http = self.http_cpu.as_secs_f64() / self.http_window.as_secs_f64();
        let _ = writeln!(
            s,
            "   same over HTTP       {:>9.1} % of one core   ({} pings in {:.1} s, {} refused; POST /v1/work/ping)",
            http * 100.0,
            self.http_pings,
            self.http_window.as_secs_f64(),
            self.http_errors
        );
        let per = self.bytes_per_provider();
        let _ = writeln!(
            s,
            "   coordinator memory   {:>9.0} bytes per provider (RSS {} -> {} MiB registered, {} MiB after the pings)   goal < {GOAL_BYTES_PER_PROVIDER:.0}  {}",
            per,
            self.rss_before >> 20,
            self.rss_registered >> 20,
            self.rss_after >> 20,
            crate::bench::verdict(per < GOAL_BYTES_PER_PROVIDER)
        );
        s
    }

    pub fn json(&self) -> serde_json::Value {
        json!({
            "providers": self.providers,
            "period_s": PERIOD.as_secs(),
            "window_s": self.window.as_secs_f64(),
            "pings": self.pings,
            "ping_errors": self.ping_errors,
            "pings_per_s": self.pings as f64 / self.window.as_secs_f64(),
            "coordinator_cpu_s": self.cpu.as_secs_f64(),
            "coordinator_core_share": self.core_share(),
            "http_pings": self.http_pings,
            "http_ping_errors": self.http_errors,
            "http_window_s": self.http_window.as_secs_f64(),
            "http_coordinator_core_share": self.http_cpu.as_secs_f64() / self.http_window.as_secs_f64(),
            "rss_before_bytes": self.rss_before,
            "rss_registered_bytes": self.rss_registered,
            "rss_after_bytes": self.rss_after,
            "bytes_per_provider": self.bytes_per_provider(),
            "setup_s": self.setup.as_secs_f64(),
            "goal_core_share": GOAL_CORE_SHARE,
            "goal_bytes_per_provider": GOAL_BYTES_PER_PROVIDER,
        })
    }
}

/// The coordinator child; killed when dropped.
struct Coordinator {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Coordinator {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// CPU time (user + system) of process `pid` so far.
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name is in parentheses and may hold spaces: fields start after the last ')'.
    let rest = stat.rsplit_once(')').context("malformed /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 (index 0 here); utime and stime are fields 14 and 15.
    let ticks = |i: usize| -> anyhow::Result<u64> {
        Ok(fields.get(i).context("short /proc stat")?.parse()?)
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_secs_f64(total as f64 / clock_ticks() as f64))
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux in practice).
fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// Resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS in /proc status")?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .context("malformed VmRSS")?
        .parse()?;
    Ok(kib * 1024)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn start_coordinator() -> anyhow::Result<(Coordinator, Client)> {
    let dir = tempfile::tempdir().context("creating the coordinator's temp dir")?;
    let port = free_port()?;
    let exe = std::env::current_exe().context("locating the gridmint binary")?;
    let child = Command::new(exe)
        .args(["coordinator", "--dev", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "--heartbeat-interval",
            "30s",
            // Three missed heartbeats, as a real deployment would set it.
            "--heartbeat-timeout",
            "90s",
        ])
        .args(crate::validators_bench::NO_RATE_LIMITS)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the coordinator")?;
    let coordinator = Coordinator { child, _dir: dir };
    let client = Client::new(&format!("http://127.0.0.1:{port}"));
    let start = Instant::now();
    while client.status().await.is_err() {
        ensure!(
            start.elapsed() < Duration::from_secs(30),
            "the coordinator did not answer within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((coordinator, client))
}

/// Sends `actions` in batches, at most [`SETUP_CONCURRENCY`] at once; every one must be accepted.
async fn commit_all(client: &Client, actions: Vec<engine::Signed<Action>>) -> anyhow::Result<()> {
    let mut set = tokio::task::JoinSet::new();
    for chunk in actions.chunks(BATCH) {
        let client = client.clone();
        let chunk = chunk.to_vec();
        set.spawn(async move { client.action_batch(&chunk).await });
        while set.len() >= 2 {
            check_batch(set.join_next().await)?;
        }
    }
    while let Some(done) = set.join_next().await {
        check_batch(Some(done))?;
    }
    Ok(())
}

type BatchResult = Result<Vec<api::wire::BatchOutcome>, api::ClientError>;

fn check_batch(done: Option<Result<BatchResult, tokio::task::JoinError>>) -> anyhow::Result<()> {
    let Some(done) = done else { return Ok(()) };
    for outcome in done?? {
        if let Err(e) = outcome.into_result() {
            bail!("an action was refused: {} ({})", e.detail, e.error);
        }
    }
    Ok(())
}

pub async fn run(providers: usize, window: Duration) -> anyhow::Result<HeartbeatBench> {
    ensure!(providers > 0, "--providers must be positive");
    let (coordinator, client) = start_coordinator().await?;
    let pid = coordinator.pid();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss(pid)?;
    let setup_start = Instant::now();

    eprintln!("heartbeats: generating {providers} provider keys");
    let ids: Vec<Arc<Identity>> = (0..providers)
        .map(|_| Arc::new(Identity::generate()))
        .collect();
    let spec = ProviderSpec {
        slots: 1,
        cores: 1,
        memory_bytes: 1 << 30,
        gpu: None,
        benchmark_score: 1000,
        region: "local".into(),
        price_per_fuel: 1,
        operator: None,
    };
    let stake = tokens(100);
    for (what, make) in [
        (
            "faucet",
            Box::new(|_: &Identity| Action::Faucet) as Box<dyn Fn(&Identity) -> Action>,
        ),
        (
            "stake",
            Box::new(move |_: &Identity| Action::Stake { amount: stake }),
        ),
        (
            "register",
            Box::new(move |_: &Identity| Action::RegisterProvider(spec.clone())),
        ),
    ] {
        eprintln!("heartbeats: {what} x {providers}");
        let signed: Vec<_> = ids.iter().map(|id| id.sign(make(id))).collect();
        commit_all(&client, signed).await?;
    }

    eprintln!("heartbeats: one signed heartbeat each (session tokens)");
    let mut tokens_of = Vec::with_capacity(providers);
    for chunk in ids.chunks(SETUP_CONCURRENCY) {
        let mut set = tokio::task::JoinSet::new();
        for (i, id) in chunk.iter().enumerate() {
            let client = client.clone();
            let id = Arc::clone(id);
            set.spawn(async move { (i, client.heartbeat(&id).await) });
        }
        let mut got = vec![None; chunk.len()];
        while let Some(done) = set.join_next().await {
            let (i, resp) = done?;
            let token = resp?
                .session
                .context("a signed heartbeat gave no session token")?;
            if let Some(slot) = got.get_mut(i) {
                *slot = Some(token);
            }
        }
        tokens_of.extend(got.into_iter().flatten());
    }
    ensure!(tokens_of.len() == providers, "missing session tokens");
    let setup = setup_start.elapsed();
    // Let the block sealer catch up with the registrations before measuring.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_registered = rss(pid)?;

    eprintln!(
        "heartbeats: {providers} providers registered in {:.1} s; pinging for {:.0} s",
        setup.as_secs_f64(),
        window.as_secs_f64()
    );
    let fleet: Vec<(engine::AccountId, engine::Hash)> = ids
        .iter()
        .map(|id| id.id())
        .zip(tokens_of.iter().copied())
        .collect();
    let udp = pinger_socket(&client.base()).await?;
    let (udp_window, udp_pings, udp_errors, udp_cpu) =
        ping_fleet(pid, &fleet, window, Transport::Udp(&udp), &client).await?;
    eprintln!(
        "heartbeats: UDP: {udp_pings} pings, {udp_errors} unanswered; now over HTTP for {:.0} s",
        http_window(window).as_secs_f64()
    );
    let (http_window, http_pings, http_errors, http_cpu) =
        ping_fleet(pid, &fleet, http_window(window), Transport::Http, &client).await?;
    let rss_after = rss(pid)?;
    let status = client.status().await?;
    ensure!(
        status.providers_active as usize >= providers,
        "only {} of {providers} providers are still active",
        status.providers_active
    );
    drop(coordinator);
    Ok(HeartbeatBench {
        providers,
        window: udp_window,
        pings: udp_pings,
        ping_errors: udp_errors,
        cpu: udp_cpu,
        http_window,
        http_pings,
        http_errors,
        http_cpu,
        rss_before,
        rss_registered,
        rss_after,
        setup,
    })
}

/// The HTTP comparison runs a third of the main window (at least 5 s).
fn http_window(window: Duration) -> Duration {
    (window / 3).max(Duration::from_secs(5))
}

enum Transport<'a> {
    Udp(&'a tokio::net::UdpSocket),
    Http,
}

async fn pinger_socket(base: &str) -> anyhow::Result<tokio::net::UdpSocket> {
    let url = base.trim_start_matches("http://");
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    socket.connect(url).await?;
    Ok(socket)
}

/// Every provider of `fleet` pings once per [`PERIOD`], spread evenly (a tick every 10 ms), for
/// `window`. Returns the window, the pings sent, those not answered "alive", and the
/// coordinator's CPU time over the window.
async fn ping_fleet(
    pid: u32,
    fleet: &[(engine::AccountId, engine::Hash)],
    window: Duration,
    transport: Transport<'_>,
    client: &Client,
) -> anyhow::Result<(Duration, u64, u64, Duration)> {
    use api::wire::{Ping, PingAck};
    let tick = Duration::from_millis(10);
    let per_tick = fleet.len() as f64 * tick.as_secs_f64() / PERIOD.as_secs_f64();
    let cpu_start = cpu_time(pid)?;
    let start = Instant::now();
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut owed = 0.0f64;
    let mut next = 0usize;
    let mut sent = 0u64;
    let mut alive = 0u64;
    let mut set = tokio::task::JoinSet::new();
    // UDP ping counters must grow per provider: microseconds now, then one more per ping sent.
    let first_counter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_micros() as u64;
    let mut buf = [0u8; 16];
    while start.elapsed() < window {
        interval.tick().await;
        owed += per_tick;
        while owed >= 1.0 {
            owed -= 1.0;
            let Some(&(provider, token)) = fleet.get(next % fleet.len()) else {
                break;
            };
            next += 1;
            sent += 1;
            match &transport {
                Transport::Udp(socket) => {
                    // One counter for the whole fleet: it grows for each provider too.
                    socket
                        .send(&Ping { provider, token }.to_datagram(first_counter + sent))
                        .await?;
                }
                Transport::Http => {
                    let client = client.clone();
                    set.spawn(async move { client.ping(provider, token).await.is_ok() });
                }
            }
        }
        match &transport {
            Transport::Udp(socket) => {
                while let Ok(n) = socket.try_recv(&mut buf) {
                    if buf.get(..n).and_then(PingAck::from_datagram) == Some(PingAck::Alive) {
                        alive += 1;
                    }
                }
            }
            Transport::Http => {
                while let Some(done) = set.try_join_next() {
                    alive += u64::from(done.unwrap_or(false));
                }
            }
        }
    }
    match &transport {
        Transport::Udp(socket) => {
            let drain = Instant::now();
            while alive < sent && drain.elapsed() < Duration::from_millis(500) {
                if let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_millis(50), socket.recv(&mut buf)).await
                    && buf.get(..n).and_then(PingAck::from_datagram) == Some(PingAck::Alive)
                {
                    alive += 1;
                }
            }
        }
        Transport::Http => {
            while let Some(done) = set.join_next().await {
                alive += u64::from(done.unwrap_or(false));
            }
        }
    }
    let elapsed = start.elapsed();
    let cpu = cpu_time(pid)?.saturating_sub(cpu_start);
    Ok((elapsed, sent, sent.saturating_sub(alive), cpu))
}
