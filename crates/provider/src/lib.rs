//! The provider agent: loads or creates its key, benchmarks itself, registers, then pulls tasks in
//! batches over outbound HTTP, runs them concurrently in the sandbox and reports signed results.
//!
//! It never listens on a socket, so it works behind NAT with no port forwarding. One control loop
//! sends every signed request in order (so nonces arrive increasing); task runs happen on worker
//! tasks and report back over a channel. On shutdown it leaves, which hands tasks in flight back
//! to the queue at once instead of waiting for the heartbeat deadline.

mod classes;
pub mod control;
pub mod energy;
pub mod idle;
pub mod metrics;
mod work;

use anyhow::Context;
use api::{Client, ClientError, Identity};
use engine::{AccountId, Action, ProviderSpec, TaskId, Tokens};
use sandbox::{Sandbox, SandboxConfig, TaskRun};
use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::BlobStore;
use tokio::sync::mpsc;

/// The benchmark kernel (guests/bench.c), run at start-up to measure speed.
pub const BENCH_WASM: &[u8] = include_bytes!("../../../guests/bench.wasm");
const BENCH_ITERATIONS: u64 = 2_000_000;
/// Tasks per slot a provider offers to queue locally beyond its slots (the coordinator's
/// `queue_per_slot` caps it, and fills it only with short tasks).
const LOCAL_QUEUE_PER_SLOT: u32 = 256;
/// Results reported in one exchange before the local queue runs dry, at most.
const REPORT_BATCH: usize = 256;
/// The longest a finished result waits to be batched with others before it is reported.
const REPORT_DELAY: Duration = Duration::from_millis(5);
/// How long a UDP heartbeat waits for its answer before the provider switches to HTTP.
const UDP_WAIT: Duration = Duration::from_millis(500);

/// How a provider runs. Defaults describe this machine.
#[derive(Clone, Debug)]
pub struct ProviderConfig {
    pub coordinator: String,
    /// Holds `provider.key` and the `blobs/` cache.
    pub data_dir: PathBuf,
    /// Concurrent task slots (default: the number of cores).
    pub slots: u32,
    pub memory_bytes: u64,
    /// The GPU the provider declares; `None` with `detect_gpu`: the device it opened
    /// ([`open_gpu`], [`describe_gpu`]).
    pub gpu: Option<String>,
    /// Whether to look for a GPU (to declare when `gpu` is `None`, and to run GPU tasks on)
    /// (`gridmint provider --no-gpu`: not).
    pub detect_gpu: bool,
    /// Also offer a software rasterizer (Mesa's lavapipe) as the GPU when no hardware one is
    /// present: slow, but a real Vulkan device, for tests and demos on machines without a GPU.
    pub gpu_software: bool,
    pub region: String,
    pub price_per_fuel: u128,
    /// What GPU tasks cost per unit of GPU fuel (rules 23; default: `price_per_fuel`).
    pub gpu_price_per_fuel: Option<u128>,
    /// Longest a work fetch waits for work when the provider is idle.
    pub fetch_wait: Duration,
    /// The operator account this machine belongs to, if not the provider's own key.
    pub operator: Option<AccountId>,
    /// For tests and demos only: return wrong results on purpose.
    pub faulty: Option<Faulty>,
    /// For tests only: take tasks and never run or report them (while staying alive), to
    /// exercise the coordinator's run timeouts.
    pub stall: bool,
    /// The most disk the downloaded blobs and unpacked trees may take (`DATA_DIR/blobs`,
    /// `DATA_DIR/trees`): past it, the least recently used not needed by a task in hand are
    /// deleted (fetched again if a later task needs them).
    pub cache_bytes: u64,
    /// When the machine's owner lets it work ([`idle::IdleRules`]; `ProviderConfig::new`:
    /// always, [`idle::IdleRules::dedicated`]; `gridmint provider`: only when idle, by default).
    pub idle: idle::IdleRules,
    /// Where the idle rules' readings come from: `None`, this machine ([`idle::LinuxSensors`]);
    /// a file, a script of them ([`idle::ScriptedSensors`], for tests).
    pub sensors: Option<PathBuf>,
    /// How runs' energy and carbon are counted ([`energy`]).
    pub energy: energy::EnergyConfig,
    /// Where to serve its Prometheus metrics (`GET /metrics`, [`metrics`]); `None`: nowhere.
    pub metrics: Option<std::net::SocketAddr>,
    /// How to start the sandbox's worker processes (`sandbox::SandboxConfig::worker`; `gridmint
    /// provider`: `gridmint sandbox-worker`); `None`: guests run on the provider's own threads.
    pub sandbox_worker: Option<sandbox::WorkerCommand>,
}

/// The default of [`ProviderConfig::cache_bytes`]: 20 GiB.
pub const DEFAULT_CACHE_BYTES: u64 = 20 << 30;

/// A deliberately faulty provider: after each successful run it returns a wrong output with
/// probability `rate` (reporting the honest fuel, so only the output differs). Colluders all
/// return the same wrong output for a task, so their results agree with each other.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Faulty {
    pub rate: f64,
    pub collude: bool,
    /// Report every task as failed (exit status 1) instead of its result.
    pub fails: bool,
    /// When it lies (at `rate`): always, or only while the network watches it little.
    pub when: When,
}

/// When a [`Faulty`] provider lies. The modes other than `Always` ask the coordinator (their
/// provider view, each answer kept for 10 ms); an unanswered question counts as "not now".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    Always,
    /// A turncoat: honest while the network does not trust this provider, faulty only while it
    /// does (`trusted`).
    Trusted,
    /// The simulator's `predicting` cheater, as well as a real one can play it: honest until
    /// the network trusts it and audits its lone results as rarely as it ever will
    /// (`audit_bps` at `audit_floor_bps`, after about 16 audits passed), then faulty — until it
    /// is caught, which raises its floor and wipes its audits.
    Unwatched,
}

impl ProviderConfig {
    pub fn new(coordinator: &str, data_dir: PathBuf) -> ProviderConfig {
        ProviderConfig {
            coordinator: coordinator.to_string(),
            data_dir,
            slots: cores(),
            memory_bytes: total_memory().unwrap_or(4 << 30),
            gpu: None,
            detect_gpu: true,
            gpu_software: false,
            region: "local".into(),
            price_per_fuel: 1,
            gpu_price_per_fuel: None,
            fetch_wait: Duration::from_secs(1),
            operator: None,
            faulty: None,
            stall: false,
            cache_bytes: DEFAULT_CACHE_BYTES,
            idle: idle::IdleRules::dedicated(),
            sensors: None,
            energy: energy::EnergyConfig::default(),
            metrics: None,
            sandbox_worker: None,
        }
    }

    pub fn key_path(&self) -> PathBuf {
        self.data_dir.join("provider.key")
    }
}

pub fn cores() -> u32 {
    std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(1))
        .unwrap_or(1)
}

/// Total memory from /proc/meminfo (Linux), in bytes.
pub fn total_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Runs the benchmark kernel and returns its speed in kernel iterations per millisecond.
pub fn benchmark(sandbox: &Sandbox) -> anyhow::Result<u64> {
    let module = sandbox.prepare(BENCH_WASM)?;
    let task = TaskRun {
        args: vec![BENCH_ITERATIONS.to_string()],
        ..TaskRun::default()
    };
    let start = Instant::now();
    let report = sandbox.run(&module, &task)?;
    let elapsed = start.elapsed();
    anyhow::ensure!(
        report.outcome == sandbox::Outcome::Exited(0),
        "benchmark kernel failed: {:?}",
        report.outcome
    );
    let micros = elapsed.as_micros().max(1);
    Ok(u64::try_from(u128::from(BENCH_ITERATIONS) * 1000 / micros).unwrap_or(u64::MAX))
}

/// Opens the device GPU tasks run on: the best hardware adapter, or with `software` the best
/// adapter of any kind (Mesa's lavapipe where there is no GPU). `None` where there is none, or
/// it cannot be opened (said in the log).
pub fn open_gpu(software: bool) -> Option<gpu::Gpu> {
    if !software && !gpu::adapters().iter().any(|a| a.is_hardware()) {
        return None;
    }
    match gpu::Gpu::open() {
        Ok(device) if software || device.adapter().is_hardware() => Some(device),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "cannot open the GPU: GPU tasks will not run here");
            None
        }
    }
}

/// The benchmark shader of [`gpu_benchmark`]: the SHA-256 nonce search of `guests/gpu/`.
const GPU_BENCH_SHADER: &str = include_str!("../../../guests/gpu/sha256-search.wgsl");

/// Measures `device` (rules 23's `GpuOffer`): GPU fuel per millisecond on 32,768 nonces of the
/// SHA-256 search (the second of two runs: the first compiles the pipeline), its largest buffer,
/// and its fingerprint (`gpu::fingerprint` of the network's fixed challenge: what makes its
/// class, with its name).
pub fn gpu_benchmark(device: &gpu::Gpu) -> anyhow::Result<engine::GpuOffer> {
    let shader = gpu::admit(GPU_BENCH_SHADER, "main")?;
    let words = |w: &[u32]| -> Vec<u8> { w.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let mut search = vec![0x6772_6964u32; 12];
    search.extend([0, 64, 0x0010_0000]);
    let task = gpu::GpuTask {
        workgroups: [8, 1, 1],
        buffers: vec![
            gpu::TaskBuffer {
                binding: 0,
                bytes: words(&search),
                output: false,
            },
            gpu::TaskBuffer {
                binding: 1,
                bytes: words(&[u32::MAX, u32::MAX]),
                output: true,
            },
            gpu::TaskBuffer {
                binding: 2,
                bytes: vec![0; 4],
                output: true,
            },
        ],
        fuel: 1 << 40,
        max_bytes: 1 << 20,
        timeout: Duration::from_secs(30),
    };
    device.run(&shader, &task)?;
    let started = Instant::now();
    let report = device.run(&shader, &task)?;
    let micros = u64::try_from(started.elapsed().as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    anyhow::ensure!(
        report.outcome == gpu::GpuOutcome::Completed,
        "the benchmark shader ended {:?}",
        report.outcome
    );
    let fingerprint = gpu::fingerprint(device, engine::FINGERPRINT_CHALLENGE)?;
    Ok(engine::GpuOffer {
        fingerprint: engine::Hash(fingerprint),
        // The caller sets its price.
        price_per_fuel: 1,
        fuel_per_ms: report
            .fuel
            .saturating_mul(1000)
            .checked_div(micros)
            .unwrap_or(0)
            .max(1),
        memory_bytes: device.adapter().max_buffer_bytes.max(1),
    })
}

/// How a provider declares `adapter` (`ProviderSpec::gpu`): its name and determinism class, at
/// most 256 bytes.
pub fn describe_gpu(adapter: &gpu::Adapter) -> String {
    let mut description = format!("{} ({})", adapter.name, adapter.class());
    if description.len() > 256 {
        let mut end = 256;
        while !description.is_char_boundary(end) {
            end -= 1;
        }
        description.truncate(end);
    }
    description
}

/// What a provider did before it stopped.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub id: Option<AccountId>,
    pub tasks_run: u64,
    pub tasks_failed: u64,
    /// The energy and carbon of its runs (a GPU run's by the model), and how they were counted.
    pub energy: energy::EnergyTotals,
    pub energy_method: String,
}

/// Runs a provider until `shutdown` resolves, then leaves gracefully.
pub async fn run(
    config: ProviderConfig,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<Summary> {
    let identity = Arc::new(
        Identity::load_or_create(&config.key_path())
            .with_context(|| format!("provider key in {}", config.data_dir.display()))?,
    );
    let blobs = BlobStore::open(&config.data_dir.join("blobs"))?;
    // The owner's hand on the runs: paused while a rule suspends the provider, held to the
    // CPU share it allows (the benchmark below runs under it, so the score is what the
    // network gets).
    let gate = Arc::new(sandbox::Gate::new());
    gate.set_duty(config.idle.cpu_percent);
    let control = control::Control::new(gate.clone(), &config.data_dir);
    let _socket = match control.listen() {
        Ok(task) => Some(AbortOnDrop(task)),
        Err(e @ control::ListenError::Running(_)) => return Err(e.into()),
        Err(e) => {
            tracing::warn!(error = %e, "no control socket: `gridmint provider status|pause|resume` will not reach this provider");
            None
        }
    };
    let sandbox = Arc::new(Sandbox::new(SandboxConfig {
        code_cache: Some(config.data_dir.join("compiled")),
        gate: Some(gate),
        worker: config.sandbox_worker.clone(),
        ..SandboxConfig::default()
    })?);
    let score = {
        let sandbox = sandbox.clone();
        tokio::task::spawn_blocking(move || benchmark(&sandbox)).await??
    };
    // The device GPU tasks run on, opened once (40-350 ms), and what this provider declares:
    // the device (name and class) unless told otherwise.
    let device = if config.detect_gpu || config.gpu_software {
        let software = config.gpu_software;
        tokio::task::spawn_blocking(move || open_gpu(software))
            .await?
            .map(Arc::new)
    } else {
        None
    };
    let gpu = match (&config.gpu, &device) {
        (Some(declared), _) => Some(declared.clone()),
        (None, Some(device)) => Some(describe_gpu(device.adapter())),
        (None, None) => None,
    };
    // What the device offers (rules 23): its speed on the benchmark shader and its largest
    // buffer. No offer, no GPU tasks.
    let gpu_offer = match (&gpu, &device) {
        (Some(_), Some(device)) => {
            let device = device.clone();
            match tokio::task::spawn_blocking(move || gpu_benchmark(&device)).await? {
                Ok(mut offer) => {
                    offer.price_per_fuel =
                        config.gpu_price_per_fuel.unwrap_or(config.price_per_fuel);
                    tracing::info!(fuel_per_ms = offer.fuel_per_ms, "GPU benchmark");
                    Some(offer)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the GPU benchmark failed: GPU tasks will not run here");
                    None
                }
            }
        }
        _ => None,
    };
    if let Some(gpu) = &gpu {
        tracing::info!(%gpu, "GPU");
    }
    let client = Client::new(&config.coordinator);
    let sensors: Box<dyn idle::Sensors> = match &config.sensors {
        Some(path) => Box::new(idle::ScriptedSensors { path: path.clone() }),
        None => idle::platform_sensors(),
    };
    control.update(|s| {
        s.provider = Some(identity.id());
        s.coordinator = config.coordinator.clone();
        s.slots = config.slots.max(1);
        s.cpu_percent = config.idle.cpu_percent;
        s.state = "waiting".into();
    });
    let _supervisor = AbortOnDrop(tokio::spawn(
        control
            .clone()
            .supervise(idle::Policy::new(config.idle.clone()), sensors),
    ));
    let _standing = AbortOnDrop(tokio::spawn(
        control
            .clone()
            .watch_standing(client.clone(), identity.id()),
    ));
    let _metrics = match config.metrics {
        Some(addr) => {
            let listener = metrics::bind(addr).await?;
            tracing::info!(addr = %listener.local_addr()?, "metrics at /metrics");
            Some(AbortOnDrop(tokio::spawn(metrics::serve(
                listener,
                control.clone(),
            ))))
        }
        None => None,
    };
    let spec = ProviderSpec {
        slots: config.slots.max(1),
        cores: cores(),
        memory_bytes: config.memory_bytes,
        gpu,
        benchmark_score: score,
        region: config.region.clone(),
        price_per_fuel: config.price_per_fuel,
        operator: config.operator,
    };
    if let Some(f) = config.faulty
        && f.fails
    {
        tracing::warn!("failing mode: this provider reports every task as failed");
    } else if let Some(f) = config.faulty
        && f.when == When::Unwatched
    {
        tracing::warn!(
            rate = f.rate,
            collude = f.collude,
            "predicting mode: this provider is honest until the network trusts it and audits it \
             as rarely as it can, then returns wrong results on purpose and will be slashed"
        );
    } else if let Some(f) = config.faulty
        && f.when == When::Trusted
    {
        tracing::warn!(
            rate = f.rate,
            collude = f.collude,
            "turncoat mode: this provider is honest until the network trusts it, then returns \
             wrong results on purpose and will be slashed"
        );
    } else if let Some(f) = config.faulty {
        tracing::warn!(
            rate = f.rate,
            collude = f.collude,
            "faulty mode: this provider returns wrong results on purpose and will be slashed"
        );
    }
    if config.stall {
        tracing::warn!("stall mode: this provider takes tasks and never reports them");
    }
    let worker = work::Worker::new(
        client.clone(),
        identity.clone(),
        sandbox,
        blobs,
        config.data_dir.join("trees"),
        config.faulty,
        config.slots.max(1),
        config.cache_bytes,
        device,
        config.gpu_software,
        energy::Meter::new(config.energy.clone()),
        config.memory_bytes,
    );
    control.update(|s| s.energy_method = worker.energy_method());
    let mut agent = Agent {
        client,
        identity,
        spec,
        gpu_offer,
        worker,
        summary: Summary::default(),
        availability: control.subscribe(),
        control: control.clone(),
        rules: 0,
        grams_per_kwh: config.energy.grams_per_kwh.map(|g| {
            g.round()
                .clamp(0.0, f64::from(engine::energy::MAX_GRAMS_PER_KWH)) as u32
        }),
        announced: Announced::default(),
        classes: classes::ClassChecks::default(),
    };
    tokio::pin!(shutdown);
    let result = tokio::select! {
        result = agent.serve(&config) => result,
        () = &mut shutdown => Ok(()),
    };
    // Held runs go at once rather than at their next yield after a resume that never comes.
    control.gate.stop_paused();
    control.gate.resume();
    if result.is_ok() {
        agent.leave().await;
    }
    control.remove_socket();
    result?;
    agent.summary.energy = agent.worker.energy();
    agent.summary.energy_method = agent.worker.energy_method();
    Ok(agent.summary)
}

/// A background task that ends with its owner.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Agent {
    client: Client,
    identity: Arc<Identity>,
    spec: ProviderSpec,
    /// What its GPU offers (rules 23), registered with the spec when there is one.
    gpu_offer: Option<engine::GpuOffer>,
    worker: work::Worker,
    summary: Summary,
    /// Whether the owner's rules let it work now ([`control::Control::supervise`]).
    availability: tokio::sync::watch::Receiver<control::Availability>,
    control: Arc<control::Control>,
    /// The network's rules version (from its view; 0 until known).
    rules: u32,
    /// The carbon intensity its owner gave, announced to the network (rules 24).
    grams_per_kwh: Option<u32>,
    /// What the network was last told of this provider (rules 24): its suspension's reasons
    /// and its intensity. A registration makes the network forget both: reset then.
    announced: Announced,
    /// Its part in proving GPU classes (rules 28).
    classes: classes::ClassChecks,
}

/// What a provider announced (rules 24): why it is suspended, and its carbon intensity.
type Announced = (Vec<engine::Suspension>, Option<u32>);

/// The reason the network is told for an owner's rule that suspended the provider.
fn suspension(reason: &idle::Reason) -> engine::Suspension {
    match reason {
        idle::Reason::PausedByOwner => engine::Suspension::Paused,
        idle::Reason::OwnerActive { .. } => engine::Suspension::OwnerActive,
        idle::Reason::BusyMachine { .. } => engine::Suspension::OtherLoad,
        idle::Reason::OnBattery => engine::Suspension::OnBattery,
        idle::Reason::BatteryLow { .. } => engine::Suspension::BatteryLow,
        idle::Reason::OutsideHours => engine::Suspension::OutsideHours,
    }
}

impl Agent {
    /// Bonds what is missing of the network's minimum stake from the balance, first asking the
    /// faucet for it on a development network.
    async fn ensure_stake(&mut self) -> anyhow::Result<()> {
        let me = self.identity.id();
        let network = self.client.network().await?;
        self.rules = network.rules;
        if let Some(table) = &network.carbon {
            self.worker
                .set_grams_per_kwh(f64::from(table.grams_per_kwh(&self.spec.region)));
        }
        let account = self.client.account(me).await?;
        let need = network.min_stake.saturating_sub(account.bonded);
        if need == 0 {
            return Ok(());
        }
        let mut balance = account.balance;
        // The stake and the registration after it each pay the fee per action (rules 8).
        let fees = network.action_fee.saturating_mul(2);
        if balance < need.saturating_add(fees) && network.faucet.is_some() {
            let resp = self.client.action(&self.identity, Action::Faucet).await?;
            for event in &resp.events {
                if let engine::Event::FaucetPaid { amount, .. } = event {
                    balance = balance.saturating_add(*amount);
                    tracing::info!(amount = %Tokens(*amount), "funded by the faucet");
                }
            }
        }
        anyhow::ensure!(
            balance >= need.saturating_add(fees),
            "provider {me} needs {} more bonded stake (minimum {}), and {} for the fees of staking \
             and registering, but holds {}; send it tokens and run \
             `gridmint wallet stake --data-dir <provider data dir> AMOUNT`",
            Tokens(need),
            Tokens(network.min_stake),
            Tokens(fees),
            Tokens(balance)
        );
        self.client
            .action(&self.identity, Action::Stake { amount: need })
            .await?;
        tracing::info!(staked = %Tokens(need), "bonded the minimum stake");
        Ok(())
    }

    /// Stakes if needed and registers, retrying while the coordinator is unavailable.
    async fn register(&mut self) -> anyhow::Result<()> {
        let mut backoff = Duration::from_millis(100);
        loop {
            if let Err(e) = self.ensure_stake().await {
                match e.downcast_ref::<ClientError>() {
                    Some(c) if c.is_transient() => {
                        tracing::warn!(error = %c, "coordinator unavailable; retrying");
                        backoff = retry_after(backoff).await;
                        continue;
                    }
                    _ => return Err(e).context("staking"),
                }
            }
            let registration = match &self.gpu_offer {
                Some(gpu) => Action::RegisterGpuProvider {
                    spec: self.spec.clone(),
                    gpu: gpu.clone(),
                },
                None => Action::RegisterProvider(self.spec.clone()),
            };
            match self.client.action(&self.identity, registration).await {
                // A network on rules before 23 takes no GPU offer: registered without it.
                Err(ClientError::Api { body, .. })
                    if self.gpu_offer.is_some() && body.detail.contains("needs rules version") =>
                {
                    tracing::warn!(
                        "this network's rules take no GPU offer: registering without it (no GPU tasks)"
                    );
                    self.gpu_offer = None;
                }
                Ok(_) => {
                    tracing::info!(
                        provider = %self.identity.id(),
                        slots = self.spec.slots,
                        benchmark = self.spec.benchmark_score,
                        coordinator = %self.client.base(),
                        "registered"
                    );
                    self.summary.id = Some(self.identity.id());
                    // A registration ends any suspension the network knew of.
                    self.announced = Announced::default();
                    return Ok(());
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, "coordinator unavailable; retrying");
                    backoff = retry_after(backoff).await;
                }
                Err(e) => return Err(e).context("registering"),
            }
        }
    }

    /// The control loop. Returns only on an unrecoverable error.
    async fn serve(&mut self, config: &ProviderConfig) -> anyhow::Result<()> {
        self.register().await?;
        // Given a validator set, heartbeat every validator (aborted when this returns).
        let mut keep_alive = tokio::task::JoinSet::new();
        if self.client.bases().len() > 1 {
            for base in self.client.bases() {
                keep_alive.spawn(heartbeat_validator(
                    self.identity.clone(),
                    base.clone(),
                    self.client.clone(),
                ));
            }
        }
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<work::Done>();
        // Rules 28: fingerprints computed for GPU class checks, logged here (one signer).
        let (class_tx, mut class_rx) = mpsc::unbounded_channel::<classes::Computed>();
        let mut computed: Vec<classes::Computed> = Vec::new();
        // Tasks assigned to us that we have not reported yet: running, waiting for a slot, or
        // finished and about to be reported.
        let mut in_flight: HashSet<TaskId> = HashSet::new();
        let mut pending: Vec<work::Done> = Vec::new();
        let mut heartbeat_every = Duration::from_secs(2);
        let mut last_contact = Instant::now();
        let mut backoff = Duration::from_millis(100);
        // The most tasks to ask for: the slots and a local queue (the coordinator decides how
        // much of it to fill, from how long the tasks are expected to take).
        let ask = self.spec.slots.saturating_mul(1 + LOCAL_QUEUE_PER_SLOT);
        let mut starved = false;
        let mut pending_since = Instant::now();
        // Token for cheap heartbeats, from the last answer to a signed request.
        let mut session: Option<engine::Hash> = None;
        // UDP heartbeats, while the coordinator answers them.
        let mut udp_base = self.client.base();
        let mut udp = api::UdpPinger::connect(&udp_base).await.ok();
        // Suspended past the grace period: its tasks handed back, it left the network until it
        // may work again.
        let mut handed_back = false;
        loop {
            let availability = self.availability.borrow_and_update().clone();
            let suspended = availability.suspended();
            self.control.update(|s| {
                s.state = if handed_back {
                    "handed_back"
                } else if suspended {
                    "suspended"
                } else if in_flight.is_empty() {
                    "waiting"
                } else {
                    "working"
                }
                .into();
                s.tasks_in_flight = in_flight.len() as u64;
                s.tasks_run = self.summary.tasks_run;
                s.tasks_failed = self.summary.tasks_failed;
                s.energy = self.worker.energy();
            });
            if !handed_back {
                self.announce(&availability).await;
            }
            if availability.hand_back && !handed_back {
                self.hand_back(&mut pending, &mut in_flight).await;
                handed_back = true;
                continue;
            }
            if handed_back {
                if suspended {
                    // Nothing to say to the network until it may work again.
                    let _ = self.availability.changed().await;
                    continue;
                }
                self.register().await?;
                handed_back = false;
                session = None;
                last_contact = Instant::now();
                continue;
            }
            // Rules 28: answers and checks of GPU classes (not while the owner's rules suspend
            // it: the device is theirs then).
            if !suspended {
                while let Ok(c) = class_rx.try_recv() {
                    computed.push(c);
                }
                for c in computed.drain(..) {
                    self.log_class_step(c).await;
                }
                self.look_at_classes(&class_tx).await;
            }
            // Pings go where requests go: after a failover, to the new leader.
            if self.client.base() != udp_base {
                udp_base = self.client.base();
                udp = api::UdpPinger::connect(&udp_base).await.ok();
                session = None;
            }
            let result: Result<(), ClientError> = async {
                // Report what finished and ask for more in one round trip (an exchange) when
                // idle, when the local queue has run dry (only running tasks left), when many
                // results wait, or when the oldest has waited REPORT_DELAY. In between, results
                // accumulate, so one exchange (one fsync on the coordinator) covers many tasks.
                let slots = self.spec.slots as usize;
                let unfinished = in_flight.len().saturating_sub(pending.len());
                let room = ask.saturating_sub(in_flight.len() as u32);
                // A stalling provider (a test tool) takes work only while it holds none; a
                // suspended one takes none (it still reports what finished).
                let may_fetch = room > 0 && !suspended && (!config.stall || in_flight.is_empty());
                let refill = may_fetch && !starved && unfinished <= slots;
                let flush = !pending.is_empty()
                    && (unfinished <= slots
                        || pending.len() >= REPORT_BATCH
                        || pending_since.elapsed() >= REPORT_DELAY);
                if (in_flight.is_empty() && !suspended) || refill || flush {
                    let wait = if in_flight.is_empty() {
                        config.fetch_wait
                    } else {
                        Duration::ZERO
                    };
                    let request = api::wire::Request::Fetch {
                        max: if may_fetch { room } else { 0 },
                        wait_ms: u32::try_from(wait.as_millis()).unwrap_or(u32::MAX),
                        held: in_flight.iter().copied().collect(),
                        cached: self.worker.cached(),
                    };
                    let resp = self
                        .client
                        .exchange_report(&self.identity, self.report(&pending), request)
                        .await?;
                    last_contact = Instant::now();
                    for r in pending.drain(..) {
                        in_flight.remove(&r.report.task);
                        if r.report.outcome == engine::TaskOutcome::Success {
                            self.summary.tasks_run += 1;
                        } else {
                            self.summary.tasks_failed += 1;
                        }
                    }
                    heartbeat_every = Duration::from_millis(resp.heartbeat_interval_ms.max(50));
                    session = resp.session.or(session);
                    // Nothing more for now while we still work: ask again after a result.
                    starved = resp.tasks.is_empty() && !in_flight.is_empty();
                    for task in resp.tasks {
                        if in_flight.insert(task.task) && !config.stall {
                            self.worker.spawn(task, done_tx.clone());
                        }
                    }
                    if in_flight.is_empty() {
                        return Ok(());
                    }
                }
                let mut got = false;
                while let Ok(report) = done_rx.try_recv() {
                    got = true;
                    if pending.is_empty() {
                        pending_since = Instant::now();
                    }
                    pending.push(report);
                }
                if got {
                    starved = false;
                    return Ok(());
                }
                let due = last_contact + heartbeat_every;
                let flush_at = if pending.is_empty() {
                    due
                } else {
                    (pending_since + REPORT_DELAY).min(due)
                };
                // Rules 28: waking up to look at the GPU classes again.
                let wake_at = match self.classes.due() {
                    Some(look) if !suspended => flush_at.min(look),
                    _ => flush_at,
                };
                tokio::select! {
                    Some(report) = done_rx.recv() => {
                        if pending.is_empty() {
                            pending_since = Instant::now();
                        }
                        pending.push(report);
                        starved = false;
                    }
                    Some(c) = class_rx.recv() => computed.push(c),
                    () = tokio::time::sleep_until(wake_at.into()) => {
                        if pending.is_empty() && Instant::now() >= due {
                            let resp = self.heartbeat(session, &mut udp).await?;
                            session = resp.or(session);
                            last_contact = Instant::now();
                        }
                    }
                    // Suspended or resumed: look again.
                    _ = self.availability.changed() => {}
                }
                Ok(())
            }
            .await;
            match result {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, "coordinator unavailable; retrying");
                    backoff = retry_after(backoff).await;
                }
                Err(e) if matches!(e.status(), Some(404 | 409)) => {
                    tracing::warn!(error = %e, "coordinator no longer knows us as active; re-registering");
                    pending.clear();
                    in_flight.clear();
                    self.worker.abandon_all();
                    self.register().await?;
                }
                Err(e) if e.status() == Some(422) => {
                    tracing::error!(error = %e, "request rejected; dropping it");
                    for r in pending.drain(..) {
                        in_flight.remove(&r.report.task);
                    }
                }
                Err(e) => return Err(e).context("talking to the coordinator"),
            }
        }
    }

    /// The report of `finished`, if anything finished: with each run's energy where the
    /// network's rules take it (24), a run the meter did not measure given as unknown.
    fn report(&self, finished: &[work::Done]) -> Option<Action> {
        if finished.is_empty() {
            return None;
        }
        let reports = finished.iter().map(|d| d.report.clone()).collect();
        // Rules 30: results compared within a tolerance go with their outputs.
        if finished.iter().any(|d| d.output.is_some()) {
            return Some(Action::ReportResultsWithOutputs {
                reports,
                energy: finished.iter().map(|d| d.energy).collect(),
                outputs: finished.iter().map(|d| d.output.clone()).collect(),
            });
        }
        Some(if self.rules >= 24 {
            Action::ReportMeteredResults {
                reports,
                energy: finished.iter().map(|d| d.energy).collect(),
            }
        } else {
            Action::ReportResults(reports)
        })
    }

    /// Tells the network (rules 24) whether and why the owner's rules suspend this provider,
    /// and its carbon intensity, when that differs from what it last said. A failure is logged
    /// and tried again on the next turn of the loop, except a refusal (a fee it cannot pay),
    /// which is not retried until what it would say changes.
    async fn announce(&mut self, availability: &control::Availability) {
        if self.rules < 24 {
            return;
        }
        let mut suspended: Vec<engine::Suspension> =
            availability.reasons.iter().map(suspension).collect();
        suspended.sort();
        suspended.dedup();
        let now: Announced = (suspended, self.grams_per_kwh);
        if now == self.announced {
            return;
        }
        let action = Action::Announce(engine::Announcement {
            suspended: now.0.clone(),
            grams_per_kwh: now.1,
        });
        match self.client.action(&self.identity, action).await {
            Ok(_) => {
                tracing::info!(suspended = ?now.0, grams_per_kwh = ?now.1, "told the network");
                self.announced = now;
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, "could not tell the network whether it is suspended; retrying");
            }
            Err(e) => {
                tracing::warn!(error = %e, "the network refused this provider's announcement");
                self.announced = now;
            }
        }
    }

    /// Suspended past the grace period: reports what finished, stops the paused runs and leaves
    /// the network, which hands its other tasks to other providers at once.
    async fn hand_back(&mut self, pending: &mut Vec<work::Done>, in_flight: &mut HashSet<TaskId>) {
        if !pending.is_empty() {
            let request = api::wire::Request::Fetch {
                max: 0,
                wait_ms: 0,
                held: in_flight.iter().copied().collect(),
                cached: self.worker.cached(),
            };
            match self
                .client
                .exchange_report(&self.identity, self.report(pending), request)
                .await
            {
                Ok(_) => {
                    for r in pending.iter() {
                        if r.report.outcome == engine::TaskOutcome::Success {
                            self.summary.tasks_run += 1;
                        } else {
                            self.summary.tasks_failed += 1;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not report finished tasks before handing back")
                }
            }
        }
        let held = in_flight.len().saturating_sub(pending.len());
        pending.clear();
        in_flight.clear();
        self.control.gate.stop_paused();
        tracing::info!(
            tasks = held,
            "suspended past the grace period: handing tasks back and leaving until it may work again"
        );
        self.leave().await;
    }

    /// One heartbeat, as cheap as the coordinator allows: a UDP ping with the session token, or
    /// (no answer: UDP blocked) the same over HTTP, or (no token, or refused: the coordinator
    /// restarted) a signed heartbeat, whose answer carries a new token (returned).
    async fn heartbeat(
        &self,
        session: Option<engine::Hash>,
        udp: &mut Option<api::UdpPinger>,
    ) -> Result<Option<engine::Hash>, ClientError> {
        let me = self.identity.id();
        if let Some(token) = session {
            let ping = api::wire::Ping {
                provider: me,
                token,
            };
            if let Some(pinger) = udp.as_ref() {
                match pinger.ping(&ping, UDP_WAIT).await {
                    Ok(Some(api::wire::PingAck::Alive)) => return Ok(None),
                    // A restarted coordinator (a new token needed) or one that no longer
                    // knows us as active: a signed heartbeat gets the token, or the 404/409 that
                    // makes the control loop register again.
                    Ok(Some(api::wire::PingAck::BadToken | api::wire::PingAck::NotActive)) => {
                        return self
                            .client
                            .heartbeat(&self.identity)
                            .await
                            .map(|r| r.session);
                    }
                    Ok(None) | Err(_) => {
                        tracing::debug!("no answer to a UDP heartbeat; using HTTP from now on");
                        *udp = None;
                    }
                }
            }
            match self.client.ping(me, token).await {
                Ok(_) => return Ok(None),
                Err(e) if e.status() == Some(401) => {}
                Err(e) => return Err(e),
            }
        }
        self.client
            .heartbeat(&self.identity)
            .await
            .map(|r| r.session)
    }

    async fn leave(&mut self) {
        self.worker.abandon_all();
        if self.summary.id.is_none() {
            return;
        }
        match tokio::time::timeout(
            Duration::from_secs(5),
            self.client.action(&self.identity, Action::LeaveProvider),
        )
        .await
        {
            Ok(Ok(_)) => tracing::info!(provider = %self.identity.id(), "left the network"),
            Ok(Err(e)) => tracing::warn!(error = %e, "could not leave cleanly"),
            Err(_) => tracing::warn!("leaving timed out"),
        }
    }
}

/// Keeps one validator of a set (`base`) hearing from this provider, whoever leads: a signed
/// heartbeat for its session token, then a UDP ping with the token every heartbeat interval (the
/// same over HTTP when UDP goes unanswered; a signed heartbeat again when the token is refused).
/// Every validator keeps its own liveness view, and a provider is declared lost only when the
/// views of validators holding a majority of the voting power agree, so no one validator can
/// drop it. Errors only delay the next try; runs until aborted.
///
/// No signed heartbeat goes to the validator the control loop talks to (`main`'s current one,
/// the leader): two signed requests racing each other there could arrive out of nonce order, and
/// the control loop's own requests keep that validator informed.
async fn heartbeat_validator(identity: Arc<Identity>, base: String, main: Client) {
    let client = Client::new(&base);
    let me = identity.id();
    let mut every = Duration::from_secs(2);
    let mut session: Option<engine::Hash> = None;
    let mut udp = api::UdpPinger::connect(&base).await.ok();
    loop {
        let alive = match session {
            Some(token) => {
                let ping = api::wire::Ping {
                    provider: me,
                    token,
                };
                match udp.as_ref() {
                    Some(pinger) => match pinger.ping(&ping, UDP_WAIT).await {
                        Ok(Some(api::wire::PingAck::Alive)) => true,
                        Ok(Some(_)) => false,
                        Ok(None) | Err(_) => {
                            udp = None;
                            client.ping(me, token).await.is_ok()
                        }
                    },
                    None => client.ping(me, token).await.is_ok(),
                }
            }
            None => false,
        };
        if !alive && main.base() != base {
            match client.heartbeat(&identity).await {
                Ok(resp) => {
                    every = Duration::from_millis(resp.heartbeat_interval_ms.max(50));
                    session = resp.session;
                }
                Err(e) => {
                    tracing::debug!(validator = %base, error = %e, "heartbeat to a validator failed");
                    session = None;
                }
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// Waits `backoff` give or take a quarter (jitter, so that providers turned away together do not
/// come back together), and returns the next one: doubled, at most [`MAX_BACKOFF`].
async fn retry_after(backoff: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let quarter = backoff / 4;
    let jitter = Duration::from_nanos(random % (quarter.as_nanos().max(1) as u64 * 2));
    tokio::time::sleep(backoff - quarter + jitter).await;
    (backoff * 2).min(MAX_BACKOFF)
}

/// The longest wait between two tries while the coordinator is unavailable.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_declared_gpu_is_the_best_hardware_adapter_and_never_a_software_one() {
        let hardware = gpu::adapters().into_iter().find(|a| a.is_hardware());
        match (open_gpu(false), hardware) {
            (None, None) => {}
            (Some(device), Some(adapter)) => {
                let declared = describe_gpu(device.adapter());
                assert!(declared.len() <= 256);
                assert!(declared.starts_with(&adapter.name), "{declared}");
                assert!(declared.contains(&adapter.class()), "{declared}");
            }
            (device, hardware) => panic!("{device:?} {hardware:?}"),
        }
        // With software allowed, the best adapter of any kind (lavapipe where there is no GPU).
        if let Some(device) = open_gpu(true) {
            assert!(describe_gpu(device.adapter()).contains(&device.adapter().class()));
        }
    }
}
