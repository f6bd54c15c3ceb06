//! The coordinator: an axum HTTP server that is the shell around the engine.
//!
//! It checks signatures and nonces, admits commands (blobs present, modules valid), makes the
//! leader's timing decisions (which provider gets which task, who is lost, which job expired),
//! commits every accepted command to the durable log before answering, seals the log into signed
//! blocks (every `block_interval` and on shutdown), and serves read-only views.
//! Providers only ever dial in to it; it never connects to them.

pub mod bench_support;
pub mod blob_quota;
pub mod consensus;
mod console;
mod error;
pub mod https;
pub mod limits;
mod metrics;
mod node;
mod openapi;
mod peers;
pub mod proposal;
pub mod raft;
mod routes;
mod uploads;
mod views;

pub use error::ApiError;
pub use node::{now_ms, wall_ms};
pub use raft::RaftTiming;

use consensus::Consensus;
use engine::{AccountId, Genesis, Input, LeaderCommand, ProviderStatus, State, ValidatorSet};
use node::Node;
use proposal::Proposal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use store::{BlobStore, SqliteLog};
use tokio::sync::Notify;

/// Signers whose checked keys are kept for batch signature checks (the recent ones matter; a
/// fleet of idle providers should not keep 160 bytes each resident).
const KEY_CACHE: usize = 1 << 13;

/// How a coordinator runs. Every field has a default that works on a laptop.
#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    /// Holds `gridmint.sqlite` (the command log, snapshots and blocks), `validator.key` (signs the
    /// blocks) and `blobs/`.
    pub data_dir: PathBuf,
    /// How often providers are asked to heartbeat.
    pub heartbeat_interval: Duration,
    /// Silence after which a provider is declared lost and its tasks requeued.
    pub heartbeat_timeout: Duration,
    /// Largest blob (module, input, output) accepted in one request.
    pub max_blob_bytes: u64,
    /// Largest blob accepted as a chunked upload (`uploads`); the sender's allowance of blobs
    /// nothing names yet (`blob_quota`) bounds it too.
    pub max_upload_bytes: u64,
    /// Largest JSON request body accepted.
    pub max_request_bytes: usize,
    /// Longest a work fetch may wait for work to appear.
    pub max_fetch_wait: Duration,
    /// Take a state snapshot every this many log entries.
    pub snapshot_every: u64,
    /// How often entries committed since the last block are sealed into a new block.
    pub block_interval: Duration,
    /// The network's genesis: needed to start a new data dir, checked against an existing one.
    pub genesis: GenesisChoice,
    /// The network's validator set (from the genesis file): `None` takes the one recorded in the
    /// data dir. An empty set is a single coordinator; otherwise this coordinator's key must be
    /// a member, and it runs as that validator.
    pub validators: Option<ValidatorSet>,
    /// Timing of the consensus engine (validators only).
    pub raft: RaftTiming,
    /// Start as a validator that is not in the set yet: it follows the log and takes part once
    /// validators holding a majority of the voting power voted it in.
    pub join: bool,
    /// Tests only: besides its signature of each block, this validator hands out a signature of
    /// a conflicting header at the same height (it equivocates), so that the evidence and the
    /// slash can be exercised.
    pub equivocate: bool,
    /// Rate limits per address and per account (`limits`; 0 turns one off).
    pub rates: limits::RateConfig,
    /// Allowances of blobs nothing names yet, and how long they are kept (`blob_quota`).
    pub blob_quota: blob_quota::BlobQuotaConfig,
    /// HTTPS or plain HTTP (`https`).
    pub tls: https::TlsConfig,
}

/// Which genesis a coordinator starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GenesisChoice {
    /// The one recorded in the data dir; a new data dir cannot start this way.
    Stored,
    /// A development network ([`Genesis::dev`]) whose treasury is the validator's account.
    Dev,
    /// This genesis (from a file).
    Given(Box<Genesis>),
}

impl CoordinatorConfig {
    pub fn new(data_dir: PathBuf) -> CoordinatorConfig {
        CoordinatorConfig {
            data_dir,
            heartbeat_interval: Duration::from_secs(2),
            heartbeat_timeout: Duration::from_secs(10),
            max_blob_bytes: 64 << 20,
            max_upload_bytes: 1 << 30,
            max_request_bytes: 64 << 20,
            max_fetch_wait: Duration::from_secs(10),
            snapshot_every: 10_000,
            block_interval: Duration::from_secs(1),
            genesis: GenesisChoice::Stored,
            validators: None,
            raft: RaftTiming::default(),
            join: false,
            equivocate: false,
            rates: limits::RateConfig::default(),
            blob_quota: blob_quota::BlobQuotaConfig::default(),
            tls: https::TlsConfig::default(),
        }
    }
}

pub(crate) struct Shared {
    node: Arc<Mutex<Node>>,
    /// Orders and executes proposals: this coordinator alone, or the validator set.
    consensus: Arc<dyn Consensus>,
    /// The validator set and how to reach the other members (blobs).
    peers: peers::Peers,
    blobs: BlobStore,
    genesis: Genesis,
    config: CoordinatorConfig,
    /// Decoded keys of recent signers, for batch signature checks.
    keys: api::BatchKeys,
    /// Woken whenever tasks may have been queued.
    work: Arc<Notify>,
    /// Session tokens for cheap heartbeats.
    sessions: api::Sessions,
    /// One lookup of a write by (signer, nonce) at a time: each scans the end of the log, and
    /// no client may take more than one core that way.
    lookups: tokio::sync::Semaphore,
    /// Rules 5: the seed of this validator's audit-beacon secrets, derived from its key.
    beacon_seed: [u8; 32],
    /// Turns of the reads ([`Shared::read`]).
    reads: tokio::sync::Semaphore,
    /// Room, in bytes, for the large request bodies held at once (`routes::read_large_body`).
    bodies: Arc<tokio::sync::Semaphore>,
    /// The room `bodies` has in all: twice the largest body a route takes.
    bodies_total: usize,
    /// Large bodies in flight per sending address (`routes::read_large_body`).
    large_bodies: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
    /// The one turn of `/v1/status` reads that find the cached view stale: the state hash of a
    /// big state is costly, and readers of it must not take the turns of other reads.
    status_turn: tokio::sync::Semaphore,
    /// The last `/v1/status` view computed, and what computing it cost.
    status: std::sync::Mutex<Option<views::StatusCache>>,
    /// Rate limits per address and per account.
    limits: limits::RateLimits,
    /// Allowances of unreferenced blobs, and their expiry (shared with the node, which tells it
    /// what each logged input names).
    quota: Arc<blob_quota::BlobQuota>,
    /// Chunked uploads in progress.
    uploads: uploads::Uploads,
    /// What `GET /metrics` counts as it happens (the node holds the same handles).
    live: metrics::Live,
    /// What `GET /v1/events` streams, and the streams open.
    pulses: console::Pulses,
}

/// Reads that may hold or wait for the node lock at once. They run on the blocking pool; the
/// async workers stay free for liveness, work exchanges and writes, and the node lock's queue
/// stays short.
const READS_AT_ONCE: usize = 4;
/// How long a read waits for its turn before it is shed (`503 overloaded`, `Retry-After`).
const READ_TURN_WAIT: Duration = Duration::from_millis(500);

impl Shared {
    fn node(&self) -> MutexGuard<'_, Node> {
        // A panic while holding the lock is a bug; the state it guards is still consistent because
        // `Node::commit` never leaves a half-applied command behind.
        self.node.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs the read-only view `view` of the node on the blocking pool, at most
    /// [`READS_AT_ONCE`] at a time: reads never hold an async worker while they wait for the node
    /// lock or walk the state, so heartbeats, work exchanges and writes are served ahead of any
    /// number of readers. A read that waits longer than [`READ_TURN_WAIT`] for its turn is shed
    /// with `503 overloaded` and `Retry-After`.
    pub(crate) async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        view: impl FnOnce(&Shared, &Node) -> T + Send + 'static,
    ) -> Result<T, error::ApiError> {
        self.read_in(&self.reads, view).await
    }

    /// [`Shared::read`] with the turns of `turns`.
    pub(crate) async fn read_in<T: Send + 'static>(
        self: &Arc<Self>,
        turns: &tokio::sync::Semaphore,
        view: impl FnOnce(&Shared, &Node) -> T + Send + 'static,
    ) -> Result<T, error::ApiError> {
        let turn = tokio::time::timeout(READ_TURN_WAIT, turns.acquire())
            .await
            .map_err(|_| {
                error::ApiError::Overloaded(
                    "too many reads are waiting; retry after the time in Retry-After".into(),
                )
            })?
            .map_err(|e| error::ApiError::Unavailable(e.to_string()))?;
        let shared = self.clone();
        let out = tokio::task::spawn_blocking(move || {
            let node = shared.node();
            view(&shared, &node)
        })
        .await
        .map_err(|e| error::ApiError::Unavailable(format!("a read failed: {e}")))?;
        drop(turn);
        Ok(out)
    }
}

/// A coordinator serving on a socket; dropped or [`Running::shutdown`] stops it.
pub struct Running {
    pub addr: SocketAddr,
    /// The pin of the certificate it serves (`None`: plain HTTP).
    pub pin: Option<api::tls::Pin>,
    /// This coordinator's validator account (its key signs the blocks).
    pub validator: engine::AccountId,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub fn url(&self) -> String {
        match self.pin {
            Some(_) => format!("https://{}", self.addr),
            None => format!("http://{}", self.addr),
        }
    }

    /// Stops serving and waits for the server to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Opens the data dir, replays the log and starts serving on `listen`: as a single coordinator,
/// or as a member of the genesis validator set when there is one.
pub async fn start(config: CoordinatorConfig, listen: SocketAddr) -> anyhow::Result<Running> {
    use anyhow::Context;
    let mut log = SqliteLog::open(&config.data_dir)
        .with_context(|| format!("opening the command log in {}", config.data_dir.display()))?;
    let blobs = BlobStore::open(&config.data_dir.join("blobs"))?;
    let key_path = config.data_dir.join("validator.key");
    let validator = api::Identity::load_or_create(&key_path)
        .with_context(|| format!("loading the validator key {}", key_path.display()))?;
    let genesis = resolve_genesis(&mut log, &config.genesis, &validator)?;
    let validators = resolve_validators(&mut log, config.validators.as_ref())?;
    let replicated = !validators.validators.is_empty();
    if replicated {
        // The consensus log (fsync'd) is what makes a validator's writes durable.
        log.relax_durability()?;
    }
    let fresh =
        State::from_genesis(&genesis).map_err(|e| anyhow::anyhow!("invalid genesis: {e}"))?;
    if config.join && replicated && {
        use store::CommandLog as _;
        log.is_empty() && log.last_block()?.is_none()
    } {
        join_from_checkpoint(&mut log, &config.data_dir, &validators, &fresh).await;
    }
    let started = Instant::now();
    // A second handle on the same key: the node signs blocks, the validator signs its messages.
    let key = Arc::new(
        api::Identity::load_or_create(&key_path)
            .with_context(|| format!("loading the validator key {}", key_path.display()))?,
    );
    let mut node = Node::open(Box::new(log), fresh, config.snapshot_every, validator)
        .context("rebuilding state from the command log")?;
    node.replicated = replicated;
    // Stored blobs the recovered state does not name are unreferenced again from now.
    let quota = Arc::new(blob_quota::BlobQuota::new(config.blob_quota));
    {
        let named = blob_quota::state_blobs(&node.state);
        let stored = blobs.list().context("listing the stored blobs")?;
        let adopted = quota.adopt(stored.into_iter().filter(|(h, _)| !named.contains(h)));
        if adopted > 0 {
            tracing::info!(
                adopted,
                expiry_s = config.blob_quota.expiry.as_secs(),
                "stored blobs that no job or result names yet: deleted unless one does in time"
            );
        }
    }
    node.quota = Some(quota.clone());
    // The set as of the recovered state (validators may have joined or left since genesis).
    let live = consensus::LiveSet::new(node.state.validators.set.clone());
    if replicated && live.with(|set| set.get(&key.id()).is_none()) && !config.join {
        anyhow::bail!(
            "this data dir's validator key {} is not in the network's validator set; to join \
             the set, start with --join and have the validators vote it in",
            key.id()
        );
    }
    node::hold_time_from(node.state.now);
    let chain = node.chain_view();
    tracing::info!(
        entries = node.log_len(),
        state_hash = %node.state.hash(),
        height = chain.height,
        unsealed = chain.unsealed,
        validator = %chain.validator,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "state recovered"
    );
    let served = https::resolve(&config.tls, listen, &key)?;
    if let Some(served) = &served {
        https::publish(&config.data_dir, served)?;
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    let pin = served.as_ref().map(|s| s.pin);
    let tls = match &served {
        Some(served) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(
            served.server_config()?,
        ))),
        None => None,
    };
    let live_metrics = node.live.clone();
    let node = Arc::new(Mutex::new(node));
    let work = Arc::new(Notify::new());
    let mut replicated_by = None;
    let consensus: Arc<dyn Consensus> = match replicated {
        false => Arc::new(consensus::Solo::new(node.clone(), key.id())),
        true => {
            let raft_db =
                store::RaftDb::open(&config.data_dir).context("opening the consensus log")?;
            let r = Arc::new(
                raft::start(
                    raft::Member {
                        set: live.clone(),
                        me: key.id(),
                        key: key.clone(),
                        local: Some(addr.ip()),
                    },
                    &genesis.params.chain_id,
                    &config.raft,
                    raft_db,
                    node.clone(),
                    work.clone(),
                )
                .await?,
            );
            replicated_by = Some(r.clone());
            r
        }
    };
    let peers = peers::Peers::new(live.clone(), key.clone(), Some(addr.ip()))?;
    let bodies_total = config
        .max_request_bytes
        .max(usize::try_from(config.max_blob_bytes).unwrap_or(usize::MAX))
        .saturating_mul(2)
        .min(u32::MAX as usize);
    let limits = limits::RateLimits::new(config.rates);
    let (uploads, reopened) = uploads::Uploads::recover(config.data_dir.join("uploads"))
        .context("preparing the uploads directory")?;
    // Uploads a previous run left open hold their room in the blob quota again.
    for open in reopened {
        if let Err(e) = quota.reserve(open.hash, open.signer, open.ip, open.size) {
            tracing::warn!(blob = %open.hash, error = %e, "dropping an upload left open");
            uploads.drop_upload(&open.hash);
        }
    }
    let shared = Arc::new(Shared {
        node,
        consensus,
        peers,
        blobs,
        genesis,
        config,
        keys: api::BatchKeys::new(KEY_CACHE),
        work,
        sessions: api::Sessions::new(),
        lookups: tokio::sync::Semaphore::new(1),
        beacon_seed: key.derive_seed("gridmint 2026 audit beacon v1"),
        reads: tokio::sync::Semaphore::new(READS_AT_ONCE),
        bodies: Arc::new(tokio::sync::Semaphore::new(bodies_total)),
        bodies_total,
        large_bodies: std::sync::Mutex::new(std::collections::HashMap::new()),
        status_turn: tokio::sync::Semaphore::new(1),
        status: std::sync::Mutex::new(None),
        limits,
        quota,
        uploads,
        live: live_metrics,
        pulses: console::Pulses::default(),
    });
    match std::net::UdpSocket::bind(addr) {
        Ok(socket) => {
            let weak = Arc::downgrade(&shared);
            std::thread::Builder::new()
                .name("udp-heartbeats".into())
                .spawn(move || udp_heartbeats(socket, weak))
                .context("starting the UDP heartbeat thread")?;
        }
        Err(e) => tracing::warn!(%addr, error = %e, "no UDP heartbeats: cannot bind"),
    }
    let mut app = routes::router(shared.clone());
    if let Some(r) = &replicated_by {
        app = app
            .merge(raft::network::router(raft::network::PeerState {
                raft: r.handle(),
                set: live.clone(),
            }))
            .merge(peers::router(shared.clone()));
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let timers = tokio::spawn(timers(shared.clone()));
    let sealer = tokio::spawn(sealer(shared.clone()));
    let beat = tokio::spawn(console::beat(Arc::downgrade(&shared)));
    // Unreferenced blobs past their expiry are deleted; the rate limits' tables forget clients
    // that went quiet, once a minute.
    let forget = {
        let weak = Arc::downgrade(&shared);
        let every = shared.quota.sweep_every();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_forget = Instant::now();
            loop {
                tick.tick().await;
                let Some(shared) = weak.upgrade() else {
                    return;
                };
                if last_forget.elapsed() >= Duration::from_secs(60) {
                    last_forget = Instant::now();
                    shared.limits.forget_quiet();
                }
                let expired = shared.quota.expired();
                if expired.is_empty() {
                    continue;
                }
                let _ = tokio::task::spawn_blocking(move || {
                    // Under the node: nothing naming a blob is applied while the sweep decides,
                    // and one the state names is never deleted (one walk of the state, only
                    // when something expired).
                    let node = shared.node();
                    let named = blob_quota::named_among(&node.state, &expired);
                    let deleted = shared.quota.sweep(
                        &expired,
                        |hash| named.contains(hash),
                        |hash| {
                            if let Err(e) = shared.blobs.remove(hash) {
                                tracing::warn!(%hash, error = %e, "deleting an expired blob failed");
                            }
                        },
                    );
                    drop(node);
                    if !deleted.is_empty() {
                        tracing::info!(
                            deleted = deleted.len(),
                            "deleted blobs that no job or result named in time"
                        );
                    }
                })
                .await;
            }
        })
    };
    let certifier = replicated_by
        .is_some()
        .then(|| tokio::spawn(peers::certifier(shared.clone())));
    let follower = replicated_by
        .as_ref()
        .map(|r| tokio::spawn(raft::follow_set(r.handle(), live.clone())));
    let validator_id = key.id();
    tracing::info!(
        %addr,
        role = shared.consensus.role().name,
        pin = pin.map(|p| p.to_string()),
        "coordinator listening"
    );
    let task = tokio::spawn(async move {
        serve(listener, tls, app, rx).await;
        timers.abort();
        sealer.abort();
        forget.abort();
        beat.abort();
        if let Some(c) = certifier {
            c.abort();
        }
        if let Some(f) = follower {
            f.abort();
        }
        // Wait until both are gone: nothing commits any more.
        let _ = timers.await;
        let _ = sealer.await;
        match &replicated_by {
            // A validator's blocks are sealed where the log says so, never on its own.
            Some(r) => r.shutdown().await,
            // Seal the rest so the chain ends at the last entry. Dropping `shared` then closes
            // the log, which checkpoints and removes SQLite's write-ahead log.
            None => seal_now(&shared),
        }
    });
    Ok(Running {
        addr,
        pin,
        validator: validator_id,
        shutdown: Some(tx),
        task,
    })
}

/// A joining validator with an empty data dir starts from a checkpoint of one of the genesis
/// validators (`GET /v1/chain/checkpoint`) instead of replaying the whole log: the state at a
/// block boundary, whose hash it checks against the block, whose block carries signatures of
/// validators holding a majority of the voting power both of the checkpoint's set and of the
/// genesis set (the trust anchor), on the same network (the genesis rules agree, but for what
/// governance may have changed since). Then it follows the log from the checkpoint's consensus
/// position. If no validator gives a checkpoint that holds, it replays the log from genesis
/// instead (logged).
async fn join_from_checkpoint(
    log: &mut SqliteLog,
    dir: &std::path::Path,
    genesis_set: &ValidatorSet,
    fresh: &State,
) {
    let http = match api::tls::client_builder(Some(https::set_trusted(genesis_set)))
        .map_err(anyhow::Error::from)
        .and_then(|b| Ok(b.timeout(Duration::from_secs(30)).build()?))
    {
        Ok(http) => http,
        Err(e) => {
            tracing::warn!(error = %e, "no HTTP client for a checkpoint");
            return;
        }
    };
    for v in &genesis_set.validators {
        let url = format!("{}/v1/chain/checkpoint", v.address.trim_end_matches('/'));
        let fetched = async {
            let resp = http.get(&url).send().await.map_err(|e| e.to_string())?;
            if !resp.status().is_success() {
                return Err(format!("answered {}", resp.status()));
            }
            let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
            // The format version first, so that another one is named rather than misread.
            let (version, _) = postcard::take_from_bytes::<u32>(&bytes)
                .map_err(|e| format!("not a checkpoint: {e}"))?;
            if version != node::CHECKPOINT_VERSION {
                return Err(format!(
                    "checkpoint format {version}; this gridmint reads {}",
                    node::CHECKPOINT_VERSION
                ));
            }
            postcard::from_bytes::<node::Checkpoint>(&bytes).map_err(|e| e.to_string())
        }
        .await;
        let checkpoint = match fetched.and_then(|c| check_checkpoint(c, genesis_set, fresh)) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(%url, error = %e, "no usable checkpoint here");
                continue;
            }
        };
        let installed = (|| {
            let log_id = raft::storage::marker_log_id(&checkpoint.marker)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .ok_or_else(|| anyhow::anyhow!("the checkpoint names no consensus position"))?;
            let height = checkpoint.block.header.height;
            let signatures: Vec<_> = checkpoint
                .signatures
                .iter()
                .map(|(v, s)| (height, *v, *s))
                .collect();
            log.install_checkpoint(&checkpoint.state, &checkpoint.block, &signatures)?;
            use store::CommandLog as _;
            // The set changes it was anchored through, and the checkpoint's block if that
            // changed the set too: this validator serves them to the next newcomer.
            for change in &checkpoint.set_changes {
                log.record_set_change(change)?;
            }
            let before = checkpoint
                .set_changes
                .last()
                .map_or(&genesis_set.validators, |c| &c.validators.set.validators);
            if checkpoint.state.validators.set.validators != *before
                && let Some((_, rest)) = checkpoint.state.hash_parts()
            {
                log.record_set_change(&engine::SetChange {
                    block: checkpoint.block.clone(),
                    validators: checkpoint.state.validators.clone(),
                    rest,
                    signatures: checkpoint.signatures.clone(),
                })?;
            }
            log.set_meta(raft::storage::APPLIED_KEY, &checkpoint.marker)?;
            let db = store::RaftDb::open(dir)?;
            raft::storage::start_from(&db, log_id).map_err(|e| anyhow::anyhow!("{e}"))?;
            anyhow::Ok((height, checkpoint.set_changes.len()))
        })();
        match installed {
            Ok((height, changes)) => {
                tracing::info!(
                    %url,
                    height,
                    "joining from a checkpoint at block {height}, anchored in the genesis set \
                     through {changes} validator set changes"
                );
                return;
            }
            Err(e) => {
                // Half-installed is not usable: stop rather than start from it.
                tracing::error!(error = format!("{e:#}"), "installing a checkpoint failed");
                return;
            }
        }
    }
    tracing::warn!("no checkpoint: replaying the whole log from genesis");
}

/// The checks a checkpoint must pass (see [`join_from_checkpoint`]).
fn check_checkpoint(
    c: node::Checkpoint,
    genesis_set: &ValidatorSet,
    fresh: &State,
) -> Result<node::Checkpoint, String> {
    if c.version != node::CHECKPOINT_VERSION {
        return Err(format!(
            "checkpoint format {}; this gridmint reads {}",
            c.version,
            node::CHECKPOINT_VERSION
        ));
    }
    // The genesis's rules, but for what governance may have changed since: the ledger and
    // verification parameters under rules 25, the scheduler's tunables under rules 27.
    let (ledger, verify, config) = if fresh.rules >= 25 {
        (
            c.state.ledger.chain_id == fresh.ledger.chain_id
                && c.state.ledger.treasury == fresh.ledger.treasury,
            true,
            if fresh.rules >= 27 {
                engine::EngineConfig {
                    schedule: fresh.config.schedule.clone(),
                    ..c.state.config.clone()
                } == fresh.config
            } else {
                c.state.config == fresh.config
            },
        )
    } else {
        (
            c.state.ledger == fresh.ledger,
            c.state.verify == fresh.verify,
            c.state.config == fresh.config,
        )
    };
    let same_network = ledger
        && verify
        && config
        && c.state.rules == fresh.rules
        && c.state.supply.genesis == fresh.supply.genesis;
    if !same_network {
        return Err("the checkpoint is of another network (its genesis rules differ)".into());
    }
    if c.state.hash() != c.block.header.state_hash {
        return Err(format!(
            "the state's hash is not block {}'s state hash",
            c.block.header.height
        ));
    }
    // The set that signs the checkpoint's block: the genesis set, or (rules 4) the set the
    // chain of set changes leads to from it.
    let anchor = if c.state.rules >= 4 {
        anchor_set(genesis_set, &c.set_changes, c.block.header.height)?
    } else {
        genesis_set.clone()
    };
    let signers: Vec<AccountId> = c
        .signatures
        .iter()
        .filter(|(v, s)| api::chain::header_signed_by(&c.block.header, *v, *s))
        .map(|(v, _)| *v)
        .collect();
    if !c.state.validators.set.is_quorum(signers.iter()) || !anchor.is_quorum(signers.iter()) {
        return Err(format!(
            "block {} is not signed by a majority of both the checkpoint's validator set and the \
             set {} leads to",
            c.block.header.height,
            if c.set_changes.is_empty() {
                "the genesis".to_string()
            } else {
                format!("the genesis through {} set changes", c.set_changes.len())
            }
        ));
    }
    Ok(c)
}

/// The validator set after `changes`, each checked from `genesis`: in increasing height below
/// `below`, each block certified by a majority of the set before it (the genesis set, then
/// each set the previous change proved) and proving its new set against its state hash. A light
/// client's walk: however much the set changed since genesis, the trust comes from the genesis
/// set through certificates only.
fn anchor_set(
    genesis: &ValidatorSet,
    changes: &[engine::SetChange],
    below: u64,
) -> Result<ValidatorSet, String> {
    let mut set = genesis.clone();
    let mut after = 0;
    for change in changes {
        let header = &change.block.header;
        if header.height <= after || header.height >= below {
            return Err(format!(
                "set change at block {} is out of order (after {after}, before {below})",
                header.height
            ));
        }
        let signers = change
            .signatures
            .iter()
            .filter(|(v, s)| api::chain::header_signed_by(header, *v, *s))
            .map(|(v, _)| v);
        if !set.is_quorum(signers) {
            return Err(format!(
                "the set change at block {} is not signed by a majority of the set before it",
                header.height
            ));
        }
        if !change.proves_set() {
            return Err(format!(
                "the set given for block {} is not the one its state hash commits to",
                header.height
            ));
        }
        set = change.validators.set.clone();
        after = header.height;
    }
    Ok(set)
}

/// The validator set to run with: the data dir's, which must agree with the one given, or (for a
/// data dir that has none) the one given, recorded. A data dir with neither is a single
/// coordinator.
fn resolve_validators(
    log: &mut SqliteLog,
    given: Option<&ValidatorSet>,
) -> anyhow::Result<ValidatorSet> {
    use store::CommandLog;
    let stored = if log.meta("validators")?.is_some() {
        Some(store::validators(log)?)
    } else {
        None
    };
    match (stored, given) {
        (Some(stored), Some(given)) if &stored != given => anyhow::bail!(
            "this data dir belongs to a network with a different validator set than the genesis \
             given; start it without --genesis, or use a new data dir"
        ),
        (Some(stored), _) => Ok(stored),
        (None, Some(given)) if !given.validators.is_empty() => {
            given
                .validate()
                .map_err(|e| anyhow::anyhow!("invalid validator set: {e}"))?;
            anyhow::ensure!(
                log.is_empty(),
                "this data dir already holds a single coordinator's log; a validator needs a new one"
            );
            store::set_validators(log, given)?;
            Ok(given.clone())
        }
        (None, _) => Ok(ValidatorSet::default()),
    }
}

/// The genesis to run with: the data dir's, which must agree with the one asked for, or (for a new
/// data dir) the one asked for, recorded before anything else happens.
fn resolve_genesis(
    log: &mut SqliteLog,
    choice: &GenesisChoice,
    validator: &api::Identity,
) -> anyhow::Result<Genesis> {
    use store::CommandLog;
    let wanted = match choice {
        GenesisChoice::Stored => None,
        GenesisChoice::Dev => Some(Genesis::dev(validator.id())),
        GenesisChoice::Given(g) => Some((**g).clone()),
    };
    // A data dir keeps the rules version it was created with (its log replays under them): the
    // genesis asked for is compared without it.
    let differs = |stored: &Genesis, wanted: &Genesis| {
        *stored
            != Genesis {
                rules: stored.rules,
                ..wanted.clone()
            }
    };
    match (log.genesis()?, wanted) {
        (Some(stored), Some(wanted)) if differs(&stored, &wanted) => anyhow::bail!(
            "this data dir belongs to network {:?} with a different genesis than the one given; \
             start it without --dev/--genesis, or use a new data dir",
            stored.params.chain_id
        ),
        (Some(stored), _) => Ok(stored),
        (None, _) if !log.is_empty() => anyhow::bail!(
            "this data dir's log has no genesis (written by an older gridmint); use a new data dir"
        ),
        (None, Some(wanted)) => {
            wanted
                .validate()
                .map_err(|e| anyhow::anyhow!("invalid genesis: {e}"))?;
            log.set_genesis(&wanted)?;
            Ok(wanted)
        }
        (None, None) => anyhow::bail!(
            "a new network needs a genesis: start with --dev for a development network (with a \
             faucet) or --genesis FILE (see examples/genesis.toml)"
        ),
    }
}

/// How long a client may take to send a request's headers, and how long a kept-alive connection
/// may stay idle between requests (a slow-header client holds a connection no longer than this).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` until `stop` fires, then lets the open connections finish (at most
/// [`SHUTDOWN_GRACE`]). `axum::serve` runs hyper without a timer, so a client sending its headers
/// a byte at a time, or keeping a connection idle, held it for good; here every HTTP/1 connection
/// has [`HEADER_TIMEOUT`] (request bodies have their own deadline: `routes::read_body`), and a
/// TLS handshake has as long.
async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: axum::Router,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    use hyper_util::rt::{TokioExecutor, TokioTimer};
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(HEADER_TIMEOUT)
        .keep_alive_timeout(HEADER_TIMEOUT);
    let local = listener.local_addr().ok();
    loop {
        let (mut stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for connections to close.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(
            app.clone()
                .layer(axum::Extension(axum::extract::ConnectInfo(peer))),
        );
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let Some(tls) = tls else {
                return serve_connection(&builder, stream, service, watcher).await;
            };
            let addr = local.unwrap_or(peer);
            if https::starts_tls(&mut stream, addr, HEADER_TIMEOUT).await != Some(true) {
                return;
            }
            match tokio::time::timeout(HEADER_TIMEOUT, tls.accept(stream)).await {
                Ok(Ok(stream)) => serve_connection(&builder, stream, service, watcher).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open {SHUTDOWN_GRACE:?} after shutdown; closing them");
    }
}

/// Serves one connection (plain or TLS) until it ends or shutdown has waited long enough.
async fn serve_connection<S>(
    builder: &hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    stream: S,
    service: hyper_util::service::TowerToHyperService<axum::Router>,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let connection =
        builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), service);
    if let Err(e) = watcher.watch(connection.into_owned()).await {
        tracing::trace!(error = %e, "connection ended");
    }
}

/// How long open connections may take to finish once the coordinator is stopping.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Seals the entries committed since the last block at once (a single coordinator stopping).
fn seal_now(shared: &Shared) {
    match shared.node().seal() {
        Ok(Some(block)) => log_sealed(&block),
        Ok(None) => {}
        // The entries stay durable in the log; the next attempt seals them.
        Err(e) => tracing::error!(error = format!("{e:#}"), "sealing a block failed"),
    }
}

fn log_sealed(block: &engine::BlockHeader) {
    tracing::debug!(
        height = block.height,
        entries = block.entries(),
        state_hash = %block.state_hash,
        "block sealed"
    );
}

/// The leader proposes a block every `block_interval` when there is something to seal; every
/// member seals it where it falls in the log, so their blocks cover the same entries.
async fn sealer(shared: Arc<Shared>) {
    let period = shared.config.block_interval.max(Duration::from_millis(10));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !shared.consensus.role().leader || shared.node().chain_view().unsealed == 0 {
            continue;
        }
        let seal = Proposal::Seal {
            time: now_ms(),
            proposer: shared.consensus.role().validator,
        };
        match shared.consensus.propose(seal).await {
            Ok(proposal::Outcome::Sealed(Some(block))) => log_sealed(&block),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "sealing a block failed"),
        }
    }
}

/// Answers UDP pings (see [`api::wire::UDP_MAGIC`]) on a thread of its own until the coordinator
/// is gone: a MAC check under the session token, a replay check and a liveness update per
/// datagram, no HTTP, no async wakeups.
fn udp_heartbeats(socket: std::net::UdpSocket, shared: std::sync::Weak<Shared>) {
    use api::wire::{PingAck, SealedPing};
    if let Err(e) = socket.set_read_timeout(Some(Duration::from_millis(250))) {
        tracing::warn!(error = %e, "UDP heartbeats disabled");
        return;
    }
    let mut buf = [0u8; 128];
    loop {
        let received = socket.recv_from(&mut buf);
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let Ok((n, from)) = received else {
            continue;
        };
        let Some(ping) = buf.get(..n).and_then(SealedPing::from_datagram) else {
            continue;
        };
        let ack = if !ping.opens_with(&shared.sessions.token(&ping.provider)) {
            PingAck::BadToken
        } else if !shared.sessions.fresh(&ping.provider, ping.counter) {
            // A replay (or a datagram overtaken by a later one): no answer, nothing seen.
            continue;
        } else {
            let mut node = shared.node();
            let active = node
                .state
                .providers
                .get(&ping.provider)
                .is_some_and(|p| p.status == ProviderStatus::Active);
            if active {
                node.seen(ping.provider, 0);
                PingAck::Alive
            } else {
                PingAck::NotActive
            }
        };
        let _ = socket.send_to(&ack.to_datagram(), from);
    }
}

/// Declares lost those of `candidates` (silent in this leader's view, `own` its attestations)
/// that the other validators attest silent too, enough of them to hold a majority of the voting
/// power: one `Input::Lost` per provider, carrying the attestations, which every validator and
/// `chain verify` check. Whether any was declared lost.
async fn declare_lost(
    shared: &Shared,
    candidates: Vec<AccountId>,
    own: Vec<engine::Signed<engine::Silence>>,
) -> bool {
    let mut by: std::collections::BTreeMap<AccountId, Vec<engine::Signed<engine::Silence>>> =
        std::collections::BTreeMap::new();
    let theirs = shared.peers.ask_silence(&candidates).await;
    for a in own.into_iter().chain(theirs) {
        // A validator's bad signature must not spoil the others' evidence.
        if api::verify(&a).is_ok() {
            let list = by.entry(a.body.provider).or_default();
            if !list.iter().any(|b| b.signer == a.signer) {
                list.push(a);
            }
        }
    }
    let set = shared.peers.set.get();
    let inputs: Vec<Input> = by
        .into_iter()
        .filter(|(_, list)| set.is_quorum(list.iter().map(|a| &a.signer)))
        .map(|(provider, attestations)| {
            Input::Lost(Box::new(engine::Lost {
                provider,
                attestations,
            }))
        })
        .collect();
    if inputs.is_empty() {
        tracing::info!(
            providers = candidates.len(),
            "providers silent here are not silent to a majority of validators: not lost"
        );
        return false;
    }
    let proposal = Proposal::Inputs {
        time: now_ms(),
        inputs,
    };
    match shared.consensus.propose(proposal).await {
        Ok(proposal::Outcome::Committed(results)) => {
            let mut any = false;
            for result in results {
                match result {
                    Ok((_, events)) => {
                        for event in &events {
                            if let engine::Event::ProviderLost { provider, .. } = event {
                                tracing::warn!(%provider, "provider silent to a majority of validators: lost");
                                any = true;
                            }
                        }
                    }
                    Err(e) => tracing::info!(error = ?e, "a provider loss was refused"),
                }
            }
            any
        }
        Ok(_) => false,
        Err(e) => {
            tracing::error!(error = %e, "could not commit a provider loss");
            false
        }
    }
}

/// The leader's clock-driven decisions: declare silent providers lost, time out unreported runs,
/// expire jobs past deadline, release unbonded stake. One proposal per tick for all of them.
async fn timers(shared: Arc<Shared>) {
    let period = (shared.config.heartbeat_timeout / 4)
        .clamp(Duration::from_millis(20), Duration::from_secs(1));
    // Looking for silent providers visits every provider: do it an eighth of the timeout apart
    // (a provider is declared lost at most that late), not every tick.
    let liveness_every = (shared.config.heartbeat_timeout / 8).max(period);
    let mut last_liveness = Instant::now();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leading = false;
    loop {
        tick.tick().await;
        let leader = shared.consensus.role().leader;
        if leader && !leading {
            // A new leader has heard from nobody yet: every provider gets a full timeout.
            shared.node().reset_liveness();
        }
        leading = leader;
        if !leader {
            continue;
        }
        let mut suspects: Option<(Vec<AccountId>, Vec<engine::Signed<engine::Silence>>)> = None;
        let inputs: Vec<Input> = {
            let node = shared.node();
            let now = Instant::now();
            let lost: Vec<_> = if now.duration_since(last_liveness) >= liveness_every {
                last_liveness = now;
                node.state
                    .providers
                    .values()
                    .filter(|p| p.status == ProviderStatus::Active)
                    .filter(|p| {
                        now.duration_since(node.last_seen(&p.id)) > shared.config.heartbeat_timeout
                    })
                    .map(|p| p.id)
                    .collect()
            } else {
                Vec::new()
            };
            let time = now_ms();
            let mut inputs: Vec<Input> = Vec::new();
            if shared.peers.replicated() {
                // A validator set declares a provider lost only on the evidence of a
                // majority's liveness views (this one's and the others' attestations).
                if !lost.is_empty() {
                    suspects = Some((
                        lost.iter().take(peers::SILENCE_MAX).copied().collect(),
                        node.silence(&lost, shared.config.heartbeat_timeout),
                    ));
                }
            } else {
                inputs.extend(
                    lost.into_iter()
                        .map(|provider| Input::Leader(LeaderCommand::ProviderLost { provider })),
                );
            }
            inputs.extend(
                node.state
                    .overdue_runs(time)
                    .into_iter()
                    .map(|(provider, tasks)| {
                        Input::Leader(LeaderCommand::TimeOutRuns { provider, tasks })
                    }),
            );
            // Rules 3: a speculative replica of each straggler, while nothing else is queued.
            let stragglers = node.state.stragglers(time);
            if !stragglers.is_empty() {
                inputs.push(Input::Leader(LeaderCommand::Speculate {
                    tasks: stragglers,
                }));
            }
            // Rules 5: the audit beacon's commitment, or its reveal for the lone results waiting.
            if let Some(beacon) = node.state.beacon_due(&shared.beacon_seed) {
                inputs.push(Input::Leader(beacon));
            }
            inputs.extend(
                node.state
                    .expired_jobs(time)
                    .into_iter()
                    .map(|job| Input::Leader(LeaderCommand::ExpireJob { job })),
            );
            inputs.extend(
                node.state
                    .releasable_accounts(time)
                    .into_iter()
                    .map(|account| Input::Leader(LeaderCommand::ReleaseStake { account })),
            );
            // Rules 25: proposals whose vote ended, when nothing else brings an entry.
            if node.state.rules >= 25 && node.state.proposals_due(time) {
                inputs.push(Input::Leader(LeaderCommand::DecideProposals));
            }
            // Rules 26: offers that lapsed and lease periods that ended, likewise; rules 27: and
            // the validators' payout of their share of the fees.
            if node.state.reservations_due(time) || node.state.validator_payout_due(time) {
                inputs.push(Input::Leader(LeaderCommand::SettleReservations));
            }
            // Rules 26: a change of the validator set a passed proposal queued, once the last
            // change is sealed (one per block).
            if node.state.validator_change_queued() && !node.set_changed_since_block() {
                inputs.push(Input::Leader(LeaderCommand::ChangeValidators));
            }
            // Rules 10: the storage of jobs over for the retention time (a bounded command;
            // the rest go at the next tick).
            let mut releasable = node.state.releasable_storage(time);
            releasable.truncate(1024);
            if !releasable.is_empty() {
                inputs.push(Input::Leader(LeaderCommand::ReleaseStorage {
                    jobs: releasable,
                }));
            }
            inputs
        };
        if let Some((candidates, own)) = suspects
            && declare_lost(&shared, candidates, own).await
        {
            shared.work.notify_waiters();
        }
        if inputs.is_empty() {
            continue;
        }
        let commands = inputs.clone();
        let outcome = shared
            .consensus
            .propose(Proposal::Inputs {
                time: now_ms(),
                inputs,
            })
            .await;
        let results = match outcome {
            Ok(proposal::Outcome::Committed(results)) => results,
            Ok(_) => continue,
            Err(e) => {
                tracing::error!(error = %e, "could not commit the timers' decisions");
                continue;
            }
        };
        let mut requeued = false;
        for (command, result) in commands.iter().zip(results) {
            let Input::Leader(command) = command else {
                continue;
            };
            match (command, result) {
                (LeaderCommand::ProviderLost { provider }, Ok(_)) => {
                    tracing::warn!(%provider, "provider missed its heartbeat deadline: lost");
                    requeued = true;
                }
                (LeaderCommand::TimeOutRuns { provider, tasks }, Ok(_)) => {
                    tracing::warn!(%provider, runs = tasks.len(), "runs not reported by their deadline: timed out");
                    requeued = true;
                }
                (
                    LeaderCommand::Beacon {
                        reveal: Some(_), ..
                    },
                    Ok(_),
                ) => {
                    // Audits drawn queue replicas; cleared results finish their tasks.
                    requeued = true;
                }
                (LeaderCommand::Speculate { tasks }, Ok(_)) => {
                    tracing::info!(
                        tasks = tasks.len(),
                        "stragglers: speculative replicas queued"
                    );
                    requeued = true;
                }
                (LeaderCommand::ExpireJob { job }, Ok(_)) => {
                    tracing::warn!(job, "job passed its deadline");
                }
                (LeaderCommand::ReleaseStake { account }, Ok(_)) => {
                    tracing::info!(%account, "unbonded stake released");
                }
                (LeaderCommand::ReleaseStorage { jobs }, Ok(_)) => {
                    tracing::info!(?jobs, "retention over: jobs' storage released");
                }
                (LeaderCommand::DecideProposals, Ok((_, events))) => {
                    for event in events {
                        if let engine::Event::ProposalDecided { proposal, status } = event {
                            tracing::info!(proposal, ?status, "governance: proposal decided");
                        }
                    }
                }
                (LeaderCommand::SettleReservations, Ok((_, events))) => {
                    for event in events {
                        match event {
                            engine::Event::ReservationPaid {
                                reservation,
                                provider,
                                period,
                                ..
                            } => {
                                tracing::info!(reservation, %provider, period, "reservation: period paid");
                            }
                            engine::Event::LeaseEnded {
                                reservation,
                                provider,
                                reason,
                            } => {
                                tracing::info!(reservation, %provider, ?reason, "reservation: lease ended");
                            }
                            engine::Event::ValidatorPaid {
                                validator, share, ..
                            } => {
                                tracing::info!(%validator, share = %engine::Tokens(share), "validators: share of the fees paid");
                            }
                            _ => {}
                        }
                    }
                }
                (LeaderCommand::ChangeValidators, Ok((_, events))) => {
                    for event in events {
                        match event {
                            engine::Event::ValidatorSetChanged { change, validators } => {
                                tracing::info!(
                                    ?change,
                                    validators,
                                    "governance: validator set changed"
                                );
                            }
                            engine::Event::ValidatorChangeDropped { change, why } => {
                                tracing::warn!(
                                    ?change,
                                    why,
                                    "governance: a validator change could not be made"
                                );
                            }
                            _ => {}
                        }
                    }
                }
                // An earlier entry of this tick decided or settled them already.
                (LeaderCommand::DecideProposals | LeaderCommand::SettleReservations, Err(e)) => {
                    tracing::debug!(error = ?e, "nothing left to decide or settle");
                }
                (command, Err(e)) => {
                    tracing::error!(?command, error = ?e, "a timer decision was refused");
                }
                _ => {}
            }
        }
        if requeued {
            shared.work.notify_waiters();
        }
    }
}

#[cfg(test)]
mod checkpoint_tests {
    use super::*;
    use crate::node::tests::validator_set;
    use api::Identity;

    /// A network of three validators, the checkpoint of its block 3 signed by `signers` of them.
    fn setup(signers: &[usize]) -> (node::Checkpoint, ValidatorSet, State) {
        let keys: Vec<Identity> = (1..=3u8).map(|n| Identity::from_secret([n; 32])).collect();
        let set = validator_set(&keys);
        let mut genesis = Genesis::dev(AccountId([9; 32]));
        genesis.validators = engine::Validators::new(set.clone());
        let fresh = State::from_genesis(&genesis).unwrap();
        let mut state = fresh.clone();
        state.now = 99;
        let header = engine::BlockHeader {
            height: 3,
            prev_hash: engine::Hash([1; 32]),
            time: 99,
            first_seq: 5,
            last_seq: 9,
            commands_root: engine::Hash([2; 32]),
            state_hash: state.hash(),
            validator: keys[0].id(),
        };
        let block = api::chain::sign_block(&keys[0], header.clone());
        let signatures = signers
            .iter()
            .map(|i| {
                let k = &keys[*i];
                (k.id(), api::chain::sign_block(k, header.clone()).signature)
            })
            .collect();
        let checkpoint = node::Checkpoint {
            version: node::CHECKPOINT_VERSION,
            state,
            block,
            signatures,
            marker: Vec::new(),
            set_changes: Vec::new(),
        };
        (checkpoint, set, fresh)
    }

    fn header_at(height: u64, state: &State, proposer: &Identity) -> engine::BlockHeader {
        engine::BlockHeader {
            height,
            prev_hash: engine::Hash([1; 32]),
            time: state.now,
            first_seq: height,
            last_seq: height,
            commands_root: engine::Hash([2; 32]),
            state_hash: state.hash(),
            validator: proposer.id(),
        }
    }

    fn signed_by(
        header: &engine::BlockHeader,
        keys: &[&Identity],
    ) -> Vec<(AccountId, engine::Sig)> {
        keys.iter()
            .map(|k| (k.id(), api::chain::sign_block(k, header.clone()).signature))
            .collect()
    }

    /// The set changed entirely since genesis (two of three members replaced at block 2): a
    /// checkpoint at block 5, signed only by members the genesis never named, is anchored
    /// through the certified set change, and through nothing less.
    #[test]
    fn a_checkpoint_is_anchored_through_certified_set_changes() {
        let keys: Vec<Identity> = (1..=5u8).map(|n| Identity::from_secret([n; 32])).collect();
        let genesis_set = validator_set(&keys[0..3]);
        let mut genesis = Genesis::dev(AccountId([9; 32]));
        genesis.validators = engine::Validators::new(genesis_set.clone());
        let fresh = State::from_genesis(&genesis).unwrap();
        assert!(fresh.rules >= 4);

        // Block 2 changes the set to {3, 4, 5}; the genesis members 1 and 2 certify it.
        let mut at_change = fresh.clone();
        at_change.now = 50;
        at_change.validators.set = validator_set(&keys[2..5]);
        let header = header_at(2, &at_change, &keys[0]);
        let change = engine::SetChange {
            block: api::chain::sign_block(&keys[0], header.clone()),
            validators: at_change.validators.clone(),
            rest: at_change.hash_parts().unwrap().1,
            signatures: signed_by(&header, &[&keys[0], &keys[1]]),
        };
        assert!(change.proves_set());

        // The checkpoint at block 5, signed by the new members 4 and 5 only.
        let mut state = at_change.clone();
        state.now = 99;
        let header = header_at(5, &state, &keys[3]);
        let good = node::Checkpoint {
            version: node::CHECKPOINT_VERSION,
            state,
            block: api::chain::sign_block(&keys[3], header.clone()),
            signatures: signed_by(&header, &[&keys[3], &keys[4]]),
            marker: Vec::new(),
            set_changes: vec![change.clone()],
        };
        assert!(check_checkpoint(good.clone(), &genesis_set, &fresh).is_ok());

        // Without the set change, the genesis set did not sign it.
        let mut bare = good.clone();
        bare.set_changes.clear();
        let err = check_checkpoint(bare, &genesis_set, &fresh).unwrap_err();
        assert!(err.contains("majority"), "{err}");

        // A set change the genesis set did not certify (signed by the new members).
        let mut self_made = good.clone();
        self_made.set_changes[0].signatures =
            signed_by(&change.block.header, &[&keys[3], &keys[4]]);
        let err = check_checkpoint(self_made, &genesis_set, &fresh).unwrap_err();
        assert!(err.contains("set before it"), "{err}");

        // A set other than the one the certified block's state hash commits to.
        let mut swapped = good.clone();
        swapped.set_changes[0].validators.set = validator_set(&keys[3..5]);
        let err = check_checkpoint(swapped, &genesis_set, &fresh).unwrap_err();
        assert!(err.contains("commits to"), "{err}");

        // A "change" at or after the checkpoint's block.
        let mut late = good;
        late.set_changes[0].block.header.height = 5;
        let err = check_checkpoint(late, &genesis_set, &fresh).unwrap_err();
        assert!(err.contains("out of order"), "{err}");
    }

    #[test]
    fn a_checkpoint_is_taken_only_when_certified_consistent_and_of_this_network() {
        let (good, set, fresh) = setup(&[0, 2]);
        assert!(check_checkpoint(good.clone(), &set, &fresh).is_ok());

        let (alone, ..) = setup(&[1]);
        let err = check_checkpoint(alone, &set, &fresh).unwrap_err();
        assert!(err.contains("majority"), "{err}");

        let mut forged = good.clone();
        forged.signatures[1].1 = forged.signatures[0].1;
        assert!(check_checkpoint(forged, &set, &fresh).is_err());

        let mut tampered = good.clone();
        tampered.state.now += 1;
        let err = check_checkpoint(tampered, &set, &fresh).unwrap_err();
        assert!(err.contains("state hash"), "{err}");

        let mut other = fresh.clone();
        other.ledger.chain_id = "another".into();
        let err = check_checkpoint(good.clone(), &set, &other).unwrap_err();
        assert!(err.contains("another network"), "{err}");

        // Governance changed the fee, the verification rules (rules 25) and the scheduler
        // (rules 27) since the genesis: still this network.
        let mut later = fresh.clone();
        later.ledger.fee_bps += 1;
        later.verify.spot_check_bps += 1;
        later.config.schedule.hold_ms += 1;
        assert!(check_checkpoint(good.clone(), &set, &later).is_ok());
        // What no governance changes still tells networks apart.
        for other in [
            {
                let mut s = fresh.clone();
                s.rules -= 1;
                s
            },
            {
                let mut s = fresh.clone();
                s.ledger.treasury = AccountId([0x99; 32]);
                s
            },
            {
                let mut s = fresh.clone();
                s.config.max_attempts += 1;
                s
            },
        ] {
            let err = check_checkpoint(good.clone(), &set, &other).unwrap_err();
            assert!(err.contains("another network"), "{err}");
        }

        let mut future = good;
        future.version += 1;
        assert!(check_checkpoint(future, &set, &fresh).is_err());
    }
}

#[cfg(test)]
mod genesis_tests {
    use super::*;
    use store::CommandLog;

    /// A data dir made before the rules version (its genesis reads as running the first rules)
    /// starts again with `--dev` and keeps its rules; any other difference is still refused.
    #[test]
    fn a_data_dir_keeps_its_rules_version_and_refuses_another_genesis() {
        let dir = tempfile::tempdir().unwrap();
        let me = api::Identity::from_secret([3; 32]);
        let mut log = SqliteLog::open(dir.path()).unwrap();
        let old = Genesis {
            rules: engine::FIRST_RULES,
            ..Genesis::dev(me.id())
        };
        log.set_genesis(&old).unwrap();
        let got = resolve_genesis(&mut log, &GenesisChoice::Dev, &me).unwrap();
        assert_eq!(got, old);
        let other = api::Identity::from_secret([4; 32]);
        let err = resolve_genesis(&mut log, &GenesisChoice::Dev, &other).unwrap_err();
        assert!(err.to_string().contains("different genesis"), "{err}");
    }
}
