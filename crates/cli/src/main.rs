//! `gridmint`: the one binary — demo, coordinator, provider, job submission, keys and benchmarks.

mod bench;
mod chain;
mod config;
mod demo;
mod genesis;
mod gov;
mod gpu_bench;
mod heartbeat_bench;
mod kernels_bench;
mod ledger_bench;
mod provider_cmd;
mod provider_config;
mod reads_bench;
mod requester;
mod reserve;
mod service;
mod sim_cmd;
mod soak_bench;
mod validator_cmd;
mod validators_bench;
mod wallet;

use anyhow::Context;
use api::{Client, Identity};

use clap::{Parser, Subcommand};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// mimalloc rather than the system allocator: a coordinator's large, short-lived buffers (state
/// snapshots, batches) would otherwise stay resident under glibc's adaptive mmap threshold, which
/// nearly doubled its memory per registered provider (`bench --only heartbeats`: 1774 against 990
/// bytes). Built without transparent huge pages, whose zeroing on re-use took 18% of the
/// end-to-end benchmark's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "gridmint",
    version,
    about = "Gridmint: an open compute-sharing network"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    tls: TlsArgs,
}

/// Whom a client trusts over HTTPS, and plain HTTP beyond this machine.
#[derive(clap::Args, Debug)]
struct TlsArgs {
    /// Trust the coordinator certificate whose key has this pin (sha256/..., printed by the
    /// coordinator at start and kept in its data dir as tls/pin), whatever its issuer or names;
    /// may be repeated
    #[arg(long, global = true, env = "GRIDMINT_PIN", value_delimiter = ',')]
    pin: Vec<String>,
    /// Trust certificates issued by the CA (or the self-signed certificate) in this PEM file,
    /// for the names they certify (a coordinator writes its own to tls/certificate.pem)
    #[arg(long, global = true, env = "GRIDMINT_CA")]
    ca: Option<PathBuf>,
    /// Allow plain HTTP beyond loopback: a coordinator serves it on any address, and clients
    /// talk it to another machine (requests and heartbeat tokens then travel in clear)
    #[arg(long, global = true, env = "GRIDMINT_PLAIN_HTTP")]
    plain_http: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a coordinator and three providers on loopback, compute pi and render an image
    Demo(demo::DemoArgs),
    /// Run a coordinator: the HTTP API, the engine and its durable command log
    Coordinator(CoordinatorArgs),
    /// Run a provider that pulls tasks from a coordinator and runs them in the sandbox, or show
    /// one (`provider info ID`)
    Provider(ProviderArgs),
    /// Submit jobs and look at them
    #[command(subcommand)]
    Job(JobCommand),
    /// Show (creating it if needed) the requester's account id, or a provider's with --data-dir
    Keys(KeysArgs),
    /// Measure the sandbox against native code and bare wasmtime, and end-to-end task throughput
    Bench(bench::BenchArgs),
    /// Verify and show the coordinator's signed chain of blocks over its command log
    #[command(subcommand)]
    Chain(chain::ChainCommand),
    /// Balances, transfers, history, staking and the dev faucet
    #[command(subcommand)]
    Wallet(wallet::WalletCommand),
    /// The price index: what accepted work was recently paid per fuel, per class and region
    Market {
        /// Coordinator URL, or a validator set's URLs separated by commas
        #[arg(
            long = "coordinator",
            env = "GRIDMINT_COORDINATOR",
            default_value = "http://127.0.0.1:7070"
        )]
        coordinator: String,
        #[arg(long)]
        json: bool,
    },
    /// Governance: propose parameter changes and treasury spends, vote with your stake
    #[command(subcommand)]
    Gov(gov::GovCommand),
    /// Reserved capacity: reserve task slots for periods at a price per slot per period, and
    /// (providers) lease them
    #[command(subcommand)]
    Reserve(reserve::ReserveCommand),
    /// Simulate a whole network in virtual time, the real engine deciding (see docs/simulation.md)
    Sim(sim_cmd::SimArgs),
    /// The validator set, and votes to add or remove a validator
    #[command(subcommand)]
    Validator(validator_cmd::ValidatorCommand),
    /// A provider's sandbox worker process: runs guests for the provider that started it
    /// (`sandbox::worker::serve`, requests on stdin, replies on stdout)
    #[command(hide = true)]
    SandboxWorker,
}

/// How a provider in this binary starts its sandbox's worker processes (`gridmint
/// sandbox-worker`); `None` where this executable cannot be found (guests then run in-thread).
pub fn sandbox_worker() -> Option<sandbox::WorkerCommand> {
    let program = std::env::current_exe().ok()?;
    Some(sandbox::WorkerCommand {
        program,
        args: vec!["sandbox-worker".into()],
    })
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (expected e.g. \"10s\" or \"500ms\")"))
}

fn parse_size(s: &str) -> Result<u64, String> {
    jobspec::parse_size(s).map_err(|e| format!("{e:#}"))
}

#[derive(clap::Args, Debug)]
struct CoordinatorArgs {
    /// TOML file with any of the settings below (flags win over it); see examples/coordinator.toml
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:7070]
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Directory for the command log, blobs and validator key [default: gridmint-data/coordinator]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// How often providers heartbeat [default: 2s]
    #[arg(long, value_parser = parse_duration)]
    heartbeat_interval: Option<Duration>,
    /// Silence after which a provider is declared lost and its tasks requeued [default: 10s]
    #[arg(long, value_parser = parse_duration)]
    heartbeat_timeout: Option<Duration>,
    /// Largest blob (module, input, output) accepted [default: 64MiB]
    #[arg(long, value_parser = parse_size)]
    max_blob_size: Option<u64>,
    /// Snapshot the state every this many log entries (bounds replay time at start) [default: 10000]
    #[arg(long)]
    snapshot_every: Option<u64>,
    /// How often new log entries are sealed into a signed block [default: 1s]
    #[arg(long, value_parser = parse_duration)]
    block_interval: Option<Duration>,
    /// Start a development network: a faucet, a 5% fee, a 100 GRID minimum stake, the validator
    /// as treasury (only when the data dir is new, or was started with --dev before)
    #[arg(long, conflicts_with = "genesis")]
    dev: bool,
    /// Start a new network from this genesis file (see examples/genesis.toml)
    #[arg(long)]
    genesis: Option<PathBuf>,
    /// Join a validator set this key is not in yet: follow the log, and take part once the
    /// validators voted it in (`gridmint validator vote add`)
    #[arg(long)]
    join: bool,
    /// Reads per second one address may make, ten seconds' worth at once; more are answered
    /// 429 (0: no limit) [default: 200]
    #[arg(long)]
    reads_per_second: Option<u32>,
    /// Writes (actions, batches, blob uploads) per second one address may make [default: 100]
    #[arg(long)]
    writes_per_second: Option<u32>,
    /// Logged actions per second one account may sign (each of a batch counts) [default: 100]
    #[arg(long)]
    actions_per_second: Option<u32>,
    /// Bytes of uploads that no job or result names yet one account may hold; more are refused
    /// 413 blob_quota [default: 256MiB]
    #[arg(long, value_parser = parse_size)]
    blob_quota: Option<u64>,
    /// The same for one address, whatever keys it signs with [default: 1GiB]
    #[arg(long, value_parser = parse_size)]
    blob_quota_per_address: Option<u64>,
    /// How long an upload may stay unnamed by any job or result before it is deleted [default: 1h]
    #[arg(long, value_parser = parse_duration)]
    blob_expiry: Option<Duration>,
    /// Serve HTTPS with this certificate chain (PEM file; with --tls-key). Without it, a
    /// coordinator on an address that is not loopback serves HTTPS with a certificate it signs
    /// with its own key, and prints the pin clients pass as --pin
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM file)
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve HTTPS on a loopback address too (plain HTTP is the default there)
    #[arg(long, conflicts_with = "plain_http")]
    tls: bool,
    /// Tests only: as a validator, also hand out a signature of a conflicting block at every
    /// height (equivocate), to be reported and slashed
    #[arg(long, hide = true)]
    equivocate: bool,
}

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct ProviderArgs {
    #[command(subcommand)]
    command: Option<provider_cmd::ProviderCommand>,
    /// TOML file with any of the settings below and the idle rules (flags win over it); see
    /// examples/provider.toml
    #[arg(long)]
    config: Option<PathBuf>,
    /// Coordinator URL, or a validator set's URLs separated by commas
    #[arg(long, env = "GRIDMINT_COORDINATOR")]
    coordinator: Option<String>,
    /// Directory for the provider's key and blob cache [default: gridmint-data/provider]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Concurrent task slots (default: number of cores)
    #[arg(long)]
    slots: Option<u32>,
    /// Region label used for scheduling [default: local]
    #[arg(long)]
    region: Option<String>,
    /// Asking price in base units per unit of fuel [default: 1]
    #[arg(long)]
    price: Option<u128>,
    /// Price per unit of GPU fuel, in base units, for GPU tasks (default: --price)
    #[arg(long)]
    gpu_price: Option<u128>,
    /// Memory offered to tasks (default: the machine's total)
    #[arg(long, value_parser = parse_size)]
    memory: Option<u64>,
    /// Disk the downloaded blobs and unpacked trees may take; past it the least recently used
    /// are deleted (default: 20GiB)
    #[arg(long, value_parser = parse_size)]
    cache_size: Option<u64>,
    /// GPU description (default: the best hardware adapter found, with its driver)
    #[arg(long, conflicts_with = "no_gpu")]
    gpu: Option<String>,
    /// Declare no GPU, even if one is found
    #[arg(long)]
    no_gpu: bool,
    /// For tests and demos on machines without a GPU: offer a software Vulkan device (Mesa's
    /// lavapipe) as the GPU that GPU tasks run on
    #[arg(long, hide = true, conflicts_with = "no_gpu")]
    gpu_software: bool,
    /// The operator account this machine belongs to: replicas of one task never go to two
    /// providers of the same operator (default: the provider's own key)
    #[arg(long)]
    operator: Option<engine::AccountId>,
    /// Work whatever the machine's owner does: no idle rule (activity, load, battery)
    /// suspends this provider. By default it works only while the machine is idle (see
    /// examples/provider.toml)
    #[arg(long)]
    dedicated: bool,
    /// The share of a core's time each task slot may use, 1 to 100 [default: 100]
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=100))]
    cpu_percent: Option<u8>,
    /// Serve this provider's Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9101)
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// For tests: read the idle rules' sensors (owner activity, load, battery, time) from this
    /// JSON file, again at every look
    #[arg(long, hide = true)]
    sensors: Option<PathBuf>,
    /// For tests and demos: return a wrong output with this probability (0 to 1). The provider
    /// will lose verification quorums and be slashed
    #[arg(long, value_parser = provider_cmd::parse_rate)]
    faulty: Option<f64>,
    /// With --faulty: every colluding provider returns the same wrong output for a task
    #[arg(long, requires = "faulty")]
    collude: bool,
    /// For tests: take tasks and never run or report them while staying alive (the coordinator
    /// times the runs out)
    #[arg(long)]
    stall: bool,
    /// For tests: report every task as failed (exit status 1)
    #[arg(long, hide = true, conflicts_with = "faulty")]
    fail_all: bool,
    /// For tests: honest until trusted, then always the colluders' wrong output
    #[arg(long, hide = true, conflicts_with_all = ["faulty", "fail_all"])]
    turncoat: bool,
    /// For tests: honest until trusted and audited as rarely as it can be, then always the
    /// colluders' wrong output (the simulator's `predicting` cheater)
    #[arg(long, hide = true, conflicts_with_all = ["faulty", "fail_all", "turncoat"])]
    predicting: bool,
}

#[derive(Subcommand, Debug)]
enum JobCommand {
    /// Submit a job spec (TOML)
    Submit {
        file: PathBuf,
        #[command(flatten)]
        coordinator: CoordinatorUrl,
        /// Wait for the job to finish, showing progress; exit non-zero if it fails
        #[arg(long)]
        wait: bool,
        /// With --wait: write the job's output here
        #[arg(long, requires = "wait")]
        out: Option<PathBuf>,
        /// Keep the job's data private: its inputs, mounted trees and outputs are sealed under
        /// a fresh key that only you (GRIDMINT_HOME/keys) and the providers it is sealed to
        /// hold; the network stores only ciphertext
        #[arg(long)]
        private: bool,
        /// With --private: the providers that may run it (account ids, comma-separated)
        #[arg(long, value_delimiter = ',', requires = "private")]
        to: Vec<engine::AccountId>,
        /// With --private and no --to: seal it to this many of the network's active providers
        /// (trusted ones first, then by reputation)
        #[arg(long, requires = "private", conflicts_with = "to")]
        providers: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// Seal a private job you own to more providers (when those it has are too few or gone):
    /// its key, kept in GRIDMINT_HOME/keys, is wrapped to each
    Grant {
        id: u64,
        #[command(flatten)]
        coordinator: CoordinatorUrl,
        /// The providers (account ids, comma-separated)
        #[arg(long, value_delimiter = ',', required_unless_present = "providers")]
        to: Vec<engine::AccountId>,
        /// Or this many of the network's active providers it lacks (trusted first)
        #[arg(long, conflicts_with = "to")]
        providers: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a job you own: queued and running tasks are dropped
    Cancel {
        id: u64,
        #[command(flatten)]
        coordinator: CoordinatorUrl,
        #[arg(long)]
        json: bool,
    },
    /// Release an ended job's storage: its inputs and outputs are deleted and its storage
    /// deposit comes back (otherwise that happens when the network's retention time has passed)
    Release {
        id: u64,
        #[command(flatten)]
        coordinator: CoordinatorUrl,
        #[arg(long)]
        json: bool,
    },
    /// Show a job's state
    Status {
        id: u64,
        #[command(flatten)]
        coordinator: CoordinatorUrl,
        /// Include every task
        #[arg(long)]
        tasks: bool,
        #[arg(long)]
        json: bool,
    },
    /// What a job delivered, task by task: accepted outputs, failures, unfinished tasks and the
    /// escrow (the partial-results report of a failed or expired job)
    Report {
        id: u64,
        #[command(flatten)]
        coordinator: CoordinatorUrl,
        /// Write each accepted task output to DIR/task-<index>
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Download a completed job's aggregated output
    Results {
        id: u64,
        #[command(flatten)]
        coordinator: CoordinatorUrl,
        /// Output file ("-" for stdout)
        #[arg(long)]
        out: PathBuf,
    },
}

/// Where the coordinator is.
#[derive(clap::Args, Debug)]
struct CoordinatorUrl {
    /// Coordinator URL, or a validator set's URLs separated by commas
    #[arg(
        long = "coordinator",
        env = "GRIDMINT_COORDINATOR",
        default_value = "http://127.0.0.1:7070"
    )]
    url: String,
}

#[derive(clap::Args, Debug)]
struct KeysArgs {
    /// A provider's data dir: show its key instead of the requester's
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// With --data-dir: the coordinator's or validator's key there (created if missing), for
    /// writing a genesis validator set
    #[arg(long, requires = "data_dir")]
    validator: bool,
    #[arg(long)]
    json: bool,
}

fn init_tracing(default: &str) {
    let wanted = std::env::var("RUST_LOG").unwrap_or_else(|_| default.to_string());
    // The consensus engine logs every vote and append at `info`: only its warnings, unless
    // RUST_LOG asks for it by name.
    let wanted = if wanted.contains("openraft") {
        wanted
    } else {
        format!("{wanted},openraft=warn")
    };
    // A certificate the system's roots do not vouch for is the client's error to report, with
    // its pin (`api::tls`), not a log line of the verifier's.
    let wanted = if wanted.contains("rustls_platform_verifier") {
        wanted
    } else {
        format!("{wanted},rustls_platform_verifier=off")
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&wanted)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn main() -> anyhow::Result<()> {
    // Mesa's device-selection layer, an implicit Vulkan layer, connects to a Wayland display to
    // order the devices and prints an error on every headless machine; the GPU sandbox ranks
    // adapters itself (`gpu::adapters`), so the layer is left out unless the user set it.
    if std::env::var_os("NODEVICE_SELECT").is_none() {
        // SAFETY: no other thread exists yet (the runtime starts below), so none reads the
        // environment while it changes.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("NODEVICE_SELECT", "1")
        };
    }
    let cli = Cli::parse();
    if let Command::SandboxWorker = cli.command {
        // No runtime and nothing else on stdout: it carries the replies.
        return sandbox::worker::serve().context("sandbox worker");
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // set_trust also makes ring the crypto provider of every HTTP client in this process.
    api::tls::set_trust(
        api::tls::Trust::load(cli.tls.ca.as_deref(), &cli.tls.pin, cli.tls.plain_http)
            .context("--ca / --pin")?,
    )
    .context("--ca")?;
    match cli.command {
        Command::Demo(args) => {
            init_tracing("warn");
            demo::run(args).await
        }
        Command::Coordinator(args) => {
            init_tracing("info");
            let settings = config::coordinator(
                args.config.as_deref(),
                config::CoordinatorFlags {
                    listen: args.listen,
                    data_dir: args.data_dir,
                    heartbeat_interval: args.heartbeat_interval,
                    heartbeat_timeout: args.heartbeat_timeout,
                    max_blob_size: args.max_blob_size,
                    snapshot_every: args.snapshot_every,
                    block_interval: args.block_interval,
                    dev: args.dev,
                    genesis: args.genesis,
                    reads_per_second: args.reads_per_second,
                    writes_per_second: args.writes_per_second,
                    actions_per_second: args.actions_per_second,
                    blob_quota: args.blob_quota,
                    blob_quota_per_address: args.blob_quota_per_address,
                    blob_expiry: args.blob_expiry,
                    tls_cert: args.tls_cert,
                    tls_key: args.tls_key,
                    tls: args.tls,
                    plain_http: cli.tls.plain_http,
                },
            )?;
            let mut config = settings.config;
            if let coordinator::GenesisChoice::Given(genesis) = &config.genesis
                && genesis.storage.is_none()
            {
                eprintln!(
                    "warning: this genesis has no [storage]: a job's results are final when it completes, so a provider caught lying afterwards cannot have its results in completed jobs corrected (rules 19 corrects them while a job's storage is kept; see examples/genesis.toml)"
                );
            }
            config.equivocate = args.equivocate;
            config.join = args.join;
            let running = coordinator::start(config, settings.listen).await?;
            match running.pin {
                Some(pin) => println!("listening on {} (certificate pin {pin})", running.url()),
                None => println!("listening on {}", running.url()),
            }
            std::io::stdout().flush()?;
            shutdown_signal().await;
            running.shutdown().await;
            Ok(())
        }
        Command::Provider(ProviderArgs {
            command: Some(cmd), ..
        }) => {
            init_tracing("warn");
            provider_cmd::run(cmd).await
        }
        Command::Provider(args) => {
            init_tracing("info");
            let mut config = provider_config::provider(
                args.config.as_deref(),
                provider_config::ProviderFlags {
                    coordinator: args.coordinator,
                    data_dir: args.data_dir,
                    slots: args.slots,
                    memory: args.memory,
                    cache_size: args.cache_size,
                    region: args.region,
                    price: args.price,
                    gpu_price: args.gpu_price,
                    gpu: args.gpu,
                    no_gpu: args.no_gpu,
                    operator: args.operator,
                    dedicated: args.dedicated,
                    cpu_percent: args.cpu_percent,
                    metrics: args.metrics,
                },
            )?;
            config.gpu_software = args.gpu_software;
            config.sensors = args.sensors;
            config.stall = args.stall;
            config.faulty = args
                .faulty
                .map(|rate| provider::Faulty {
                    rate,
                    collude: args.collude,
                    fails: false,
                    when: provider::When::Always,
                })
                .or(args.fail_all.then_some(provider::Faulty {
                    rate: 1.0,
                    collude: false,
                    fails: true,
                    when: provider::When::Always,
                }))
                .or([
                    (args.turncoat, provider::When::Trusted),
                    (args.predicting, provider::When::Unwatched),
                ]
                .into_iter()
                .find_map(|(on, when)| {
                    on.then_some(provider::Faulty {
                        rate: 1.0,
                        collude: true,
                        fails: false,
                        when,
                    })
                }));
            let summary = provider::run(config, shutdown_signal()).await?;
            tracing::info!(
                tasks_run = summary.tasks_run,
                tasks_failed = summary.tasks_failed,
                "provider stopped"
            );
            Ok(())
        }
        Command::Job(cmd) => {
            init_tracing("warn");
            job(cmd).await
        }
        Command::Keys(args) => {
            let path = match &args.data_dir {
                Some(dir) if args.validator => dir.join("validator.key"),
                Some(dir) => dir.join("provider.key"),
                None => requester::requester_key_path(),
            };
            let id = Identity::load_or_create(&path)?.id();
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({ "account": id, "path": path.display().to_string() })
                );
            } else {
                println!("{id}");
            }
            Ok(())
        }
        Command::Bench(args) => {
            init_tracing("warn");
            bench::run(args).await
        }
        Command::Chain(cmd) => {
            init_tracing("warn");
            chain::run(cmd).await
        }
        Command::Wallet(cmd) => {
            init_tracing("warn");
            wallet::run(cmd).await
        }
        Command::Market { coordinator, json } => {
            init_tracing("warn");
            gov::market(&coordinator, json).await
        }
        Command::Gov(cmd) => {
            init_tracing("warn");
            gov::run(cmd).await
        }
        Command::Reserve(cmd) => {
            init_tracing("warn");
            reserve::run(cmd).await
        }
        Command::Sim(args) => tokio::task::block_in_place(|| sim_cmd::run(args)),
        Command::Validator(cmd) => {
            init_tracing("warn");
            validator_cmd::run(cmd).await
        }
        Command::SandboxWorker => unreachable!("served before the runtime starts"),
    }
}

async fn job(cmd: JobCommand) -> anyhow::Result<()> {
    match cmd {
        JobCommand::Submit {
            file,
            coordinator,
            wait,
            out,
            private,
            to,
            providers,
            json,
        } => {
            let client = Client::new(&coordinator.url);
            let me = requester::requester_identity()?;
            let loaded = requester::load_path(&file, requester::network_time(&client).await)?;
            let tasks = loaded.spec.tasks.len();
            let private = private.then(|| match providers {
                None if !to.is_empty() => requester::Recipients::These(to),
                n => requester::Recipients::Best(n.unwrap_or(DEFAULT_PRIVATE_PROVIDERS)),
            });
            let id = requester::submit(&client, &me, loaded, private).await?;
            if !wait {
                // Whether the network as it is can finish it at all (too few providers for its
                // redundancy policy): said at once rather than discovered at the deadline.
                let warning = client.job(id, false).await.ok().and_then(|v| v.warning);
                if json {
                    let mut value = serde_json::json!({ "job": id, "tasks": tasks });
                    if let Some(w) = &warning {
                        value["warning"] = w.as_str().into();
                    }
                    println!("{value}");
                } else {
                    println!("{id}");
                    if let Some(w) = &warning {
                        eprintln!("warning: {w}");
                    }
                }
                return Ok(());
            }
            if !json {
                // The wait below shows the warning, and any later one.
                eprintln!("submitted job {id} ({tasks} tasks) to {}", coordinator.url);
            }
            let view = requester::wait(&client, id, !json).await?;
            let completed = view.status == engine::JobStatus::Completed;
            if completed && let Some(path) = &out {
                let bytes = requester::output(&client, id).await?;
                write_out(path, &bytes)?;
            }
            if json {
                let mut value = serde_json::to_value(&view)?;
                value["job"] = id.into();
                println!("{value}");
            } else {
                eprintln!("{}", requester::describe(&view));
            }
            anyhow::ensure!(completed, "{}", requester::describe(&view));
            Ok(())
        }
        JobCommand::Grant {
            id,
            coordinator,
            to,
            providers,
            json,
        } => {
            let client = Client::new(&coordinator.url);
            let me = requester::requester_identity()?;
            let chosen = match providers {
                Some(n) => requester::Recipients::Best(n),
                None => requester::Recipients::These(to),
            };
            let added = requester::grant(&client, &me, id, chosen).await?;
            if json {
                println!("{}", serde_json::json!({ "job": id, "sealed_to": added }));
            } else {
                for p in &added {
                    println!("{p}");
                }
                eprintln!(
                    "job {id} is now sealed to {} more",
                    requester::count_providers(added.len())
                );
            }
            Ok(())
        }
        JobCommand::Cancel {
            id,
            coordinator,
            json,
        } => {
            let client = Client::new(&coordinator.url);
            let me = requester::requester_identity()?;
            let resp = client
                .action(&me, engine::Action::CancelJob(id))
                .await
                .with_context(|| format!("cancelling job {id}"))?;
            if json {
                println!("{}", serde_json::to_string(&resp)?);
            } else {
                println!("job {id} cancelled");
            }
            Ok(())
        }
        JobCommand::Release {
            id,
            coordinator,
            json,
        } => {
            let client = Client::new(&coordinator.url);
            let me = requester::requester_identity()?;
            let resp = client
                .action(&me, engine::Action::ReleaseJob(id))
                .await
                .with_context(|| format!("releasing job {id}'s storage"))?;
            if json {
                println!("{}", serde_json::to_string(&resp)?);
            } else {
                let returned = resp.events.iter().find_map(|e| match e {
                    engine::Event::StorageReleased { amount, .. } => Some(*amount),
                    _ => None,
                });
                match returned {
                    Some(amount) => println!(
                        "job {id}'s storage released; its deposit of {} is back",
                        engine::Tokens(amount)
                    ),
                    None => println!("job {id}'s storage released"),
                }
            }
            Ok(())
        }
        JobCommand::Status {
            id,
            coordinator,
            tasks,
            json,
        } => {
            let view = Client::new(&coordinator.url).job(id, tasks).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
                return Ok(());
            }
            println!("{}", requester::describe(&view));
            for (provider, n) in &view.tasks_per_provider {
                println!("  provider {provider}: {n} tasks");
            }
            for t in &view.tasks {
                let runs: Vec<String> = t
                    .runs
                    .iter()
                    .map(|r| {
                        let outcome = match &r.outcome {
                            engine::RunOutcome::Running => "running".to_string(),
                            engine::RunOutcome::Returned { output_hash, .. } => {
                                format!("returned {}", &output_hash.to_hex()[..12])
                            }
                            engine::RunOutcome::Answered {
                                status,
                                output_hash,
                                ..
                            } => format!(
                                "returned {} (exit status {status})",
                                &output_hash.to_hex()[..12]
                            ),
                            engine::RunOutcome::Failure {
                                outcome, fuel_used, ..
                            } => format!("failed ({outcome}, {fuel_used} fuel)"),
                            other => format!("{other:?}").to_lowercase(),
                        };
                        format!("{} {outcome}", &r.provider.to_hex()[..12])
                    })
                    .collect();
                println!(
                    "  task {:<8} {:<8} failures {} {}{}",
                    t.task.to_string(),
                    t.state,
                    t.failures,
                    t.last_error.as_deref().unwrap_or(""),
                    if runs.is_empty() {
                        String::new()
                    } else {
                        format!(" runs: {}", runs.join(", "))
                    }
                );
            }
            Ok(())
        }
        JobCommand::Report {
            id,
            coordinator,
            out_dir,
            json,
        } => {
            let client = Client::new(&coordinator.url);
            let report = requester::report(&client, id, out_dir.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.table());
            }
            Ok(())
        }
        JobCommand::Results {
            id,
            coordinator,
            out,
        } => {
            let bytes = requester::output(&Client::new(&coordinator.url), id).await?;
            write_out(&out, &bytes)
        }
    }
}

/// How many of the network's active providers `job submit --private` seals a job to when not told.
const DEFAULT_PRIVATE_PROVIDERS: usize = 8;

fn write_out(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    if path.as_os_str() == "-" {
        std::io::stdout().write_all(bytes)?;
        return Ok(());
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}
