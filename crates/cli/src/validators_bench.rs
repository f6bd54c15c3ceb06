//! `gridmint bench --only validators`: one coordinator against three validators, side by side in
//! one run, each a separate process of this binary on loopback (fsync'd logs in temp dirs):
//!
//! - no-op tasks per second and single-task latency p50, with the in-process providers of
//!   `--only e2e` given the coordinator's URL or the validators' list; both networks run at
//!   once and take turns, a throughput job on each in turn (the median of five per side);
//! - signed transfers committed per second (batches of 1024 through `POST /v1/actions/batch`);
//! - failover: the leader killed with SIGKILL, then the time until a write through the
//!   validators' list is committed, five times (the killed validator restarted in between).
//!
//! Numbers are printed beside their goals, never asserted.

use crate::bench::{EndToEndResult, Harness, Plan, median, ms, verdict};
use anyhow::{Context, ensure};
use api::{Client, Identity};
use engine::{AccountId, Action};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Goal: three validators' no-op throughput over one coordinator's.
const GOAL_THROUGHPUT_RATIO: f64 = 0.5;
/// Goal: failover p50.
const GOAL_FAILOVER: Duration = Duration::from_secs(2);
const FAILOVERS: usize = 5;
const TRANSFER_BATCH: usize = 1024;
/// No-op throughput jobs per side; the median counts.
const THROUGHPUT_ROUNDS: usize = 5;

/// One side of the comparison.
pub struct Side {
    e2e: EndToEndResult,
    transfers_per_s: f64,
}

pub struct ValidatorsResult {
    single: Side,
    cluster: Side,
    failovers: Vec<Duration>,
    /// From the same kills: until a survivor reports itself leader.
    elections: Vec<Duration>,
}

/// A `gridmint coordinator` child process.
pub(crate) struct Proc {
    child: Child,
    pub(crate) url: String,
}

impl Proc {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `gridmint coordinator ARGS` and waits for its `listening on URL` line.
/// A benchmark runs every client from one address: the coordinators it starts take them all
/// without rate limits (`coordinator --reads-per-second` and the others).
pub(crate) const NO_RATE_LIMITS: [&str; 6] = [
    "--reads-per-second",
    "0",
    "--writes-per-second",
    "0",
    "--actions-per-second",
    "0",
];

pub(crate) fn spawn(data_dir: &Path, listen: &str, args: &[&str]) -> anyhow::Result<Proc> {
    spawn_with(data_dir, listen, args, false)
}

/// [`spawn`], with the coordinator's default rate limits (`rate_limits`) or none.
pub(crate) fn spawn_with(
    data_dir: &Path,
    listen: &str,
    args: &[&str],
    rate_limits: bool,
) -> anyhow::Result<Proc> {
    let no_limits: &[&str] = if rate_limits { &[] } else { &NO_RATE_LIMITS };
    let exe = std::env::current_exe().context("locating this binary")?;
    let log = std::fs::File::create(data_dir.join("log"))?;
    let mut child = Command::new(exe)
        .arg("coordinator")
        .args(["--listen", listen, "--data-dir"])
        .arg(data_dir)
        .args(args)
        .args(no_limits)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .context("starting a coordinator process")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut first = String::new();
    let mut reader = BufReader::new(stdout);
    reader.read_line(&mut first)?;
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let url = first
        .trim()
        .strip_prefix("listening on ")
        .with_context(|| {
            format!(
                "the coordinator did not start: {:?}; see {}",
                first,
                data_dir.join("log").display()
            )
        })?
        .to_string();
    Ok(Proc { child, url })
}

/// Free loopback ports, chosen by the kernel.
fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// A genesis for a development network run by `accounts` at `ports`.
fn cluster_genesis(accounts: &[AccountId], ports: &[u16]) -> String {
    let mut genesis = format!(
        "chain_id = \"gridmint-bench\"\ntreasury = \"{}\"\nfee_bps = 500\nmin_stake = \"100\"\n\
         unbonding_delay = \"1m\"\n[slash]\nfraction_bps = 5000\nrequester_bps = 5000\n\
         treasury_bps = 2500\n[faucet]\namount = \"1000\"\n",
        accounts[0]
    );
    for (account, port) in accounts.iter().zip(ports) {
        genesis.push_str(&format!(
            "[[validators]]\naccount = \"{account}\"\npower = 1\naddress = \"http://127.0.0.1:{port}\"\n"
        ));
    }
    genesis
}

struct Cluster {
    dirs: Vec<PathBuf>,
    ports: Vec<u16>,
    genesis: PathBuf,
    procs: Vec<Option<Proc>>,
}

impl Cluster {
    fn start(root: &Path, n: usize) -> anyhow::Result<Cluster> {
        let ports = free_ports(n)?;
        let mut dirs = Vec::new();
        let mut accounts = Vec::new();
        for i in 0..n {
            let dir = root.join(format!("v{i}"));
            std::fs::create_dir_all(&dir)?;
            accounts.push(Identity::load_or_create(&dir.join("validator.key"))?.id());
            dirs.push(dir);
        }
        let genesis = root.join("genesis.toml");
        std::fs::write(&genesis, cluster_genesis(&accounts, &ports))?;
        let mut cluster = Cluster {
            dirs,
            ports,
            genesis,
            procs: Vec::new(),
        };
        for i in 0..n {
            let p = cluster.spawn(i)?;
            cluster.procs.push(Some(p));
        }
        Ok(cluster)
    }

    fn spawn(&self, i: usize) -> anyhow::Result<Proc> {
        let listen = format!("127.0.0.1:{}", self.ports[i]);
        let genesis = self.genesis.to_string_lossy().to_string();
        // A restarted validator may find its port still in TIME_WAIT for a moment.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match spawn(&self.dirs[i], &listen, &["--genesis", &genesis]) {
                Ok(p) => return Ok(p),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    fn urls(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until every running validator has applied the same log to the same state.
    async fn caught_up(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut seen = Vec::new();
            for p in self.procs.iter().flatten() {
                if let Ok(s) = Client::new(&p.url).status().await {
                    seen.push((s.log_length, s.state_hash));
                }
            }
            if seen.len() == self.procs.iter().flatten().count()
                && seen.windows(2).all(|w| w[0] == w[1])
            {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "the validators did not converge within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The position of the validator that leads, once one does and every running validator
    /// names it (a validator that just came back may briefly believe in an older leader).
    async fn leader(&self) -> anyhow::Result<usize> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut statuses = Vec::new();
            for (i, p) in self.procs.iter().enumerate() {
                let Some(p) = p else { continue };
                if let Ok(s) = Client::new(&p.url).status().await {
                    statuses.push((i, s));
                }
            }
            let running = self.procs.iter().flatten().count();
            if let Some((i, leader)) = statuses.iter().find(|(_, s)| s.role == "leader")
                && statuses.len() == running
                && statuses.iter().all(|(_, s)| s.leader == leader.validator)
            {
                return Ok(*i);
            }
            ensure!(Instant::now() < deadline, "no leader elected within 30 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Signed transfers committed per second through `url`: batches of [`TRANSFER_BATCH`].
async fn transfers(url: &str, batches: usize) -> anyhow::Result<f64> {
    let client = Client::new(url);
    let from = Identity::generate();
    client
        .action(&from, Action::Faucet)
        .await
        .context("funding the sender")?;
    let to = Identity::generate().id();
    let mut nonce = from_nonce();
    let mut accepted = 0usize;
    let start = Instant::now();
    for _ in 0..batches {
        let batch: Vec<_> = (0..TRANSFER_BATCH)
            .map(|_| {
                nonce += 1;
                from.sign_with_nonce(nonce, Action::Transfer { to, amount: 1 })
            })
            .collect();
        let outcomes = client.action_batch(&batch).await?;
        accepted += outcomes
            .into_iter()
            .filter(|o| matches!(o, api::wire::BatchOutcome::Accepted(_)))
            .count();
    }
    let elapsed = start.elapsed();
    ensure!(
        accepted == batches * TRANSFER_BATCH,
        "only {accepted} of {} transfers were accepted",
        batches * TRANSFER_BATCH
    );
    Ok(accepted as f64 / elapsed.as_secs_f64())
}

/// A nonce above anything the sender's faucet request used (clients count from the clock in µs).
fn from_nonce() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
        .saturating_add(1_000_000)
}

/// Kills the leader, then times the first write committed through the list, and (polling the
/// survivors) until one of them reports itself leader; restarts it.
async fn failover(
    cluster: &mut Cluster,
    writer: &Identity,
) -> anyhow::Result<(Duration, Duration)> {
    let leader = cluster.leader().await?;
    // A healthy cluster: the validator restarted after the previous kill has caught up.
    cluster.caught_up().await?;
    let client = Client::new(&cluster.urls());
    let to = Identity::generate().id();
    // The client knows the leader before it dies, as a busy client would.
    client
        .action(writer, Action::Transfer { to, amount: 1 })
        .await
        .context("a write before the kill")?;
    let survivors: Vec<String> = cluster
        .procs
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != leader)
        .filter_map(|(_, p)| p.as_ref().map(|p| p.url.clone()))
        .collect();
    cluster.procs[leader] = None; // SIGKILL
    let killed = Instant::now();
    let elected = tokio::spawn(async move {
        loop {
            for url in &survivors {
                if let Ok(s) = Client::new(url).status().await
                    && s.role == "leader"
                {
                    return killed.elapsed();
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    loop {
        match client
            .action(writer, Action::Transfer { to, amount: 1 })
            .await
        {
            Ok(_) => break,
            Err(e) => {
                ensure!(
                    killed.elapsed() < Duration::from_secs(60),
                    "no write committed within 60 s of the kill: {e}"
                );
                // As a client would, not spinning.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let took = killed.elapsed();
    let election = tokio::time::timeout(Duration::from_secs(10), elected)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(took);
    let p = cluster.spawn(leader)?;
    cluster.procs[leader] = Some(p);
    Ok((took, election))
}

pub async fn run(plan: &Plan, cores: u32, quick: bool) -> anyhow::Result<ValidatorsResult> {
    let batches = if quick { 5 } else { 20 };
    // The median of several throughput jobs is steadier than one.
    let plan = &plan.with_rounds(if quick { 1 } else { THROUGHPUT_ROUNDS });
    let root = tempfile::tempdir().context("creating a temp dir")?;

    eprintln!("validators: one coordinator and three validators, side by side");
    let single_dir = root.path().join("single");
    std::fs::create_dir_all(&single_dir)?;
    let single_proc = spawn(&single_dir, "127.0.0.1:0", &["--dev"])?;
    let mut cluster = Cluster::start(&root.path().join("cluster"), 3)?;
    cluster.leader().await?;
    let urls = cluster.urls();
    // Both networks run at once, each with its own providers, and take turns: one throughput
    // job on one, then one on the other, so that both see the machine in the same state (a
    // 2-core machine's speed drifts by a quarter between runs minutes apart). The idle one
    // costs little: heartbeats.
    let single_harness = Harness::start(&single_proc.url, cores).await?;
    let cluster_harness = match Harness::start(&urls, cores).await {
        Ok(h) => h,
        Err(e) => {
            single_harness.stop().await;
            return Err(e);
        }
    };
    let measured = async {
        let mut single_e2e =
            single_harness.result(single_harness.latencies(plan.latency_samples).await?);
        let mut cluster_e2e =
            cluster_harness.result(cluster_harness.latencies(plan.latency_samples).await?);
        for round in 1..=plan.e2e_rounds {
            single_harness.round(plan, round, &mut single_e2e).await?;
            cluster_harness.round(plan, round, &mut cluster_e2e).await?;
        }
        anyhow::Ok((single_e2e.finish(), cluster_e2e.finish()))
    }
    .await;
    single_harness.stop().await;
    cluster_harness.stop().await;
    let (single_e2e, cluster_e2e) = measured?;
    let single = Side {
        e2e: single_e2e,
        transfers_per_s: transfers(&single_proc.url, batches).await?,
    };
    drop(single_proc);
    let cluster_side = Side {
        e2e: cluster_e2e,
        transfers_per_s: transfers(&urls, batches).await?,
    };

    let writer = Identity::generate();
    Client::new(&urls)
        .action(&writer, Action::Faucet)
        .await
        .context("funding the failover writer")?;
    let mut failovers = Vec::new();
    let mut elections = Vec::new();
    for i in 0..FAILOVERS {
        let (took, election) = failover(&mut cluster, &writer).await?;
        eprintln!(
            "validators: failover {}/{FAILOVERS}: {:.0} ms (leader elected after {:.0} ms)",
            i + 1,
            ms(took),
            ms(election)
        );
        failovers.push(took);
        elections.push(election);
    }
    drop(cluster);
    Ok(ValidatorsResult {
        single,
        cluster: cluster_side,
        failovers,
        elections,
    })
}

impl ValidatorsResult {
    fn ratio(&self) -> f64 {
        self.cluster.e2e.tasks_per_second() / self.single.e2e.tasks_per_second()
    }

    pub fn table(&self) -> String {
        use std::fmt::Write;
        let (s, c) = (&self.single, &self.cluster);
        let p50 = |side: &Side| ms(median(&side.e2e.latencies));
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Validators: one coordinator vs three validators (separate processes, loopback, fsync'd logs)"
        );
        let _ = writeln!(
            out,
            "                         1 coordinator   3 validators    3 / 1    goal"
        );
        let _ = writeln!(
            out,
            "no-op tasks/s            {:>13.0}   {:>12.0}   {:>6.2}x   >= {GOAL_THROUGHPUT_RATIO}x {}",
            s.e2e.tasks_per_second(),
            c.e2e.tasks_per_second(),
            self.ratio(),
            verdict(self.ratio() >= GOAL_THROUGHPUT_RATIO)
        );
        let _ = writeln!(
            out,
            "single-task p50 ms       {:>13.1}   {:>12.1}   {:>6.2}x",
            p50(s),
            p50(c),
            p50(c) / p50(s)
        );
        let _ = writeln!(
            out,
            "signed transfers/s       {:>13.0}   {:>12.0}   {:>6.2}x",
            s.transfers_per_s,
            c.transfers_per_s,
            c.transfers_per_s / s.transfers_per_s
        );
        let failover = median(&self.failovers);
        let _ = writeln!(
            out,
            "failover p50 ms                        {:>12.0}             <= {} ms {}   (leader kill -9 -> first committed write; {} kills: {:?} ms)",
            ms(failover),
            GOAL_FAILOVER.as_millis(),
            verdict(failover <= GOAL_FAILOVER),
            self.failovers.len(),
            self.failovers
                .iter()
                .map(|d| ms(*d).round() as u64)
                .collect::<Vec<_>>()
        );
        let _ = writeln!(
            out,
            "  of which election p50 ms              {:>12.0}                          (kill -> a survivor reports itself leader: {:?} ms)",
            ms(median(&self.elections)),
            self.elections
                .iter()
                .map(|d| ms(*d).round() as u64)
                .collect::<Vec<_>>()
        );
        out
    }

    pub fn json(&self) -> serde_json::Value {
        let side = |s: &Side| {
            json!({
                "tasks_per_second": s.e2e.tasks_per_second(),
                "latency_p50_ms": ms(median(&s.e2e.latencies)),
                "transfers_per_second": s.transfers_per_s,
            })
        };
        json!({
            "single": side(&self.single),
            "validators": side(&self.cluster),
            "throughput_ratio": self.ratio(),
            "failover_ms": self.failovers.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
            "failover_p50_ms": ms(median(&self.failovers)),
            "election_ms": self.elections.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
        })
    }
}
