//! JSON shapes of the coordinator's HTTP API (`/v1/...`).
//!
//! | method and path               | body                   | answer               |
//! |-------------------------------|------------------------|----------------------|
//! | `GET  /v1/status`             |                        | [`StatusView`]       |
//! | `PUT  /v1/blobs/{hash}`       | bytes, signed headers  | [`BlobStored`]       |
//! | `GET  /v1/blobs/{hash}`       | `Range: bytes=START-[END]` (a piece, at most 16 MiB: `206`) | bytes |
//! | `GET  /v1/blobs/{hash}/slice` | `?start=S&len=L` (at most 16 MiB) | a BLAKE3 verified-streaming slice (bao), `x-blob-size` |
//! | `POST /v1/uploads/{hash}`     | `?size=N`, signed headers (`StartUpload`) | [`UploadView`] (`201` new, `200` open or stored) |
//! | `PUT  /v1/uploads/{hash}`     | `?offset=N`, bytes (at most 16 MiB), or `&len=L` and a verified slice (bao) of L bytes; signed headers (`PutChunk`) | [`UploadView`]; the last chunk [`BlobStored`] (`201`) |
//! | `GET  /v1/uploads/{hash}`     |                        | [`UploadView`] or 404 |
//! | `POST /v1/actions`            | `Signed<Action>`       | [`ActionResponse`]   |
//! | `POST /v1/actions/batch`      | `Vec<Signed<Action>>`  | `Vec<`[`BatchOutcome`]`>` |
//! | `GET  /v1/actions/{signer}/{nonce}` |                  | [`ActionResponse`] or 404 (not logged) |
//! | `POST /v1/work/fetch`         | `Signed<Request>`      | [`FetchResponse`]    |
//! | `POST /v1/work/exchange`      | [`Exchange`]           | [`ExchangeResponse`] |
//! | `POST /v1/work/heartbeat`     | `Signed<Request>`      | [`HeartbeatResponse`]|
//! | `POST /v1/work/ping`          | [`Ping`]               | [`HeartbeatResponse`]|
//! | `GET  /v1/jobs/{id}`          | `?tasks=true&tasks_from=I&tasks_limit=N` (a page of per-task detail), `?wait_ms=N` (long poll until finished) | [`JobView`] |
//! | `GET  /v1/jobs/{id}/output`   |                        | bytes                |
//! | `GET  /v1/jobs`               | `?before=ID&limit=N&owner=ACCOUNT` (newest first) | [`JobsPage`] |
//! | `GET  /v1/providers`          | `?after=ID&limit=N`    | `Vec<ProviderView>`  |
//! | `GET  /v1/providers/{id}`     |                        | [`ProviderView`]     |
//! | `GET  /v1/accounts/{id}`      |                        | [`AccountView`]      |
//! | `GET  /v1/accounts/{id}/history` | `?before=SEQ&limit=N` | [`HistoryPage`]     |
//! | `GET  /v1/network`            |                        | [`NetworkView`]      |
//! | `GET  /v1/reservations`       | `?owner=ACCOUNT&provider=ACCOUNT` (newest first, at most 200) | `Vec<`[`ReservationView`]`>` |
//! | `GET  /v1/reservations/{id}`  |                        | [`ReservationView`] or 404 |
//! | `GET  /v1/validators`         |                        | [`ValidatorsView`] (rules 27) |
//! | `GET  /v1/gpu/classes`        | `?class=CLASS&provider=ACCOUNT&member=ACCOUNT` | [`GpuClassesView`] (rules 28) |
//! | `GET  /v1/chain/genesis`      |                        | `Genesis`            |
//! | `GET  /v1/chain`              |                        | [`ChainView`]        |
//! | `GET  /v1/chain/blocks`       | `?from=H&limit=N`      | `Vec<Block>`         |
//! | `GET  /v1/chain/entries`      | `?from=SEQ&limit=N`    | `Vec<RawEntry>`      |
//! | `GET  /v1/chain/inputs`       | `?from=SEQ&limit=N` (at most 200) | `Vec<`[`EntryView`]`>`: the entries decoded |
//! | `GET  /v1/chain/validators`   |                        | `ValidatorSet`       |
//! | `GET  /v1/chain/signatures`   | `?from=H&limit=N` (blocks) | `Vec<`[`BlockSignature`]`>` |
//! | `POST /v1/chain/evidence`     | `Equivocation`         | [`ActionResponse`]   |
//! | `GET  /v1/chain/checkpoint`   | (validators)           | postcard `coordinator::node::Checkpoint` |
//! | `GET  /v1/events`             | (server-sent events)   | a [`Pulse`] (`event: pulse`) at most once a second, when it changed |
//! | `GET  /v1/pulses`             |                        | `Vec<`[`PulsePoint`]`>`: one every 5 s over the last hour |
//! | `GET  /`, `/console/{file}`   |                        | the web console (HTML, script, style) |
//!
//! Writes (`/v1/actions*`, `/v1/work/*`, `/v1/chain/evidence`) go to the leader of a validator set: another validator
//! answers `307` with `Location` and [`HEADER_LEADER`] (or `503 not_leader` during an election).
//!
//! A job's per-task detail comes a page at a time: tasks `tasks_from..` (default 0), at most
//! `tasks_limit` of them (default and cap [`JOB_TASKS_PAGE_MAX`]); `tasks_next` names the first
//! task of the next page, absent on the last.
//!
//! `GET /v1/providers` answers providers in the order of their ids, those after `after` (from
//! the first by default), at most `limit` (default and cap [`PROVIDERS_PAGE_MAX`]); a page
//! shorter than the limit is the last.
//!
//! The chain pages start at `from` (default 1) and hold at most `limit` items (default and cap
//! [`CHAIN_PAGE_MAX`]); an empty page means there is nothing more.
//!
//! A batch holds at most [`ACTION_BATCH_MAX`] actions (413 beyond). Its actions are checked and
//! committed in order, as if posted one by one, but made durable together (one fsync); the answer
//! has one [`BatchOutcome`] per action, in order, with status 200 even when some were refused.
//!
//! Token amounts are decimal strings of base units (10^9 per token) so that no client loses
//! precision; prices per fuel are plain numbers.
//!
//! Errors are [`ErrorBody`] with a 4xx status (a 5xx is a bug). An engine rejection's `error` is
//! the rejection's name (`insufficient_funds`, `faucet_disabled`, …).

use engine::{
    AccountId, Action, Amount, Event, Hash, JobId, JobStatus, ProviderSpec, ProviderStatus, Signed,
    TaskDescriptor, TaskId, Time, state::ProviderStats,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Header names carrying the signature of a blob upload (the body is raw bytes, so the signed
/// [`Request::PutBlob`] travels in headers).
pub const HEADER_SIGNER: &str = "x-gridmint-signer";
/// One validator's signature of one block: part of the block's quorum certificate
/// (`GET /v1/chain/signatures?from=H&limit=N`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlockSignature {
    pub height: u64,
    pub validator: AccountId,
    pub signature: engine::Sig,
    /// Only on a signature of a header that is not the answering validator's block at that
    /// height: the header signed. Such a signature is no part of a certificate; with the same
    /// validator's signature of the real block it is evidence of equivocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<engine::BlockHeader>,
}

/// On an answer from a validator that is not the leader: where the leader is.
pub const HEADER_LEADER: &str = "x-gridmint-leader";
pub const HEADER_NONCE: &str = "x-gridmint-nonce";
pub const HEADER_SIGNATURE: &str = "x-gridmint-signature";

/// Signed requests of providers (a fetch is logged inside an `Input::Fetch`; the others never are).
pub use engine::Request;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// Short machine-readable kind, e.g. `bad_signature`, `rejected`, `not_found`.
    pub error: String,
    /// Human-readable explanation.
    pub detail: String,
}

/// A chunked upload (`/v1/uploads/{hash}`): how many of its `size` bytes the coordinator holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UploadView {
    pub hash: Hash,
    pub size: u64,
    pub received: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlobStored {
    pub hash: Hash,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionResponse {
    /// Position of the accepted action in the command log (1-based).
    pub seq: u64,
    /// What it caused. From `GET /v1/actions/{signer}/{nonce}` (a write looked up after its
    /// answer was lost): only the events that concern the signer's balance or stake, the ones
    /// its history keeps.
    pub events: Vec<Event>,
}

impl ActionResponse {
    /// The id of the job a `SubmitJob` created (its escrow event names it too, so a looked-up
    /// submission has it).
    pub fn submitted_job(&self) -> Option<JobId> {
        self.events.iter().find_map(|e| match e {
            Event::JobSubmitted { job, .. } | Event::EscrowLocked { job, .. } => Some(*job),
            _ => None,
        })
    }
}

pub use engine::FETCH_CACHED_MAX;

/// The most actions one `POST /v1/actions/batch` may carry.
pub const ACTION_BATCH_MAX: usize = 4096;

/// What became of one action of a batch: accepted like a single action (`{seq, events}`), or
/// refused with the error a single action would have got (`{error, detail}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum BatchOutcome {
    Accepted(ActionResponse),
    Refused(ErrorBody),
}

impl BatchOutcome {
    pub fn into_result(self) -> Result<ActionResponse, ErrorBody> {
        match self {
            BatchOutcome::Accepted(r) => Ok(r),
            BatchOutcome::Refused(e) => Err(e),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FetchResponse {
    pub tasks: Vec<TaskDescriptor>,
    /// How often the provider must heartbeat.
    pub heartbeat_interval_ms: u64,
    /// Token for cheap heartbeats ([`Ping`]).
    #[serde(default)]
    pub session: Option<Hash>,
}

/// `POST /v1/work/exchange`: a provider's report of finished tasks and its next fetch, in one
/// round trip. The report is signed before the fetch (its nonce is the lower).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Exchange {
    /// A `ReportResults` action, if anything finished.
    pub report: Option<Signed<Action>>,
    /// A `Request::Fetch`.
    pub fetch: Signed<Request>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExchangeResponse {
    /// The log position of the report, if one came.
    pub reported: Option<u64>,
    pub tasks: Vec<TaskDescriptor>,
    pub heartbeat_interval_ms: u64,
    /// Token for cheap heartbeats ([`Ping`]).
    #[serde(default)]
    pub session: Option<Hash>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeartbeatResponse {
    pub heartbeat_interval_ms: u64,
    /// Silence longer than this and the provider is declared lost.
    pub heartbeat_timeout_ms: u64,
    /// Token for cheap heartbeats ([`Ping`]), after a signed heartbeat.
    #[serde(default)]
    pub session: Option<Hash>,
}

/// UDP heartbeats: the coordinator also listens for datagrams on its HTTP port number. A ping
/// ([`Ping::to_datagram`]) is [`UDP_MAGIC`], the provider id, a counter and a MAC of those under
/// the provider's session token (75 bytes): the token itself never crosses the network in a
/// datagram, which has no TLS, and a ping replayed (a counter not above the last one accepted)
/// is ignored. The answer is [`UDP_MAGIC`] followed by one [`PingAck`] byte. No connection, no
/// HTTP, no signature: the cheapest proof of life, for fleets of many idle providers. Providers
/// fall back to `POST /v1/work/ping` (over HTTPS beyond loopback) when no answer comes (UDP
/// blocked) and to a signed heartbeat when the token is refused. The magic is the format's
/// version: `GM1` datagrams (the token in clear) are not answered, so a provider of that format
/// falls back to HTTP.
pub const UDP_MAGIC: [u8; 3] = *b"GM2";

/// Length of a UDP ping.
pub const UDP_PING_LEN: usize = 3 + 32 + 8 + 32;

/// The coordinator's answer to a UDP ping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PingAck {
    Alive = 0,
    /// The token is not this provider's on this coordinator run: send a signed heartbeat.
    BadToken = 1,
    /// The provider is not registered or not active: register again.
    NotActive = 2,
}

/// The MAC of a UDP ping: BLAKE3 keyed by the session token, over the magic, id and counter.
fn ping_mac(token: &Hash, provider: &AccountId, counter: u64) -> blake3::Hash {
    let mut mac = blake3::Hasher::new_keyed(&token.0);
    mac.update(&UDP_MAGIC);
    mac.update(&provider.0);
    mac.update(&counter.to_be_bytes());
    mac.finalize()
}

impl Ping {
    /// The datagram of this ping as the `counter`-th: each must be larger than the last.
    pub fn to_datagram(&self, counter: u64) -> [u8; UDP_PING_LEN] {
        let mut out = [0u8; UDP_PING_LEN];
        let (magic, rest) = out.split_at_mut(3);
        magic.copy_from_slice(&UDP_MAGIC);
        let (id, rest) = rest.split_at_mut(32);
        id.copy_from_slice(&self.provider.0);
        let (count, mac) = rest.split_at_mut(8);
        count.copy_from_slice(&counter.to_be_bytes());
        mac.copy_from_slice(ping_mac(&self.token, &self.provider, counter).as_bytes());
        out
    }
}

/// A UDP ping as received: whose it claims to be, and whether it is ([`SealedPing::opens_with`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealedPing {
    pub provider: AccountId,
    pub counter: u64,
    mac: [u8; 32],
}

impl SealedPing {
    pub fn from_datagram(bytes: &[u8]) -> Option<SealedPing> {
        if bytes.len() != UDP_PING_LEN || bytes.get(..3)? != UDP_MAGIC {
            return None;
        }
        Some(SealedPing {
            provider: AccountId(bytes.get(3..35)?.try_into().ok()?),
            counter: u64::from_be_bytes(bytes.get(35..43)?.try_into().ok()?),
            mac: bytes.get(43..75)?.try_into().ok()?,
        })
    }

    /// Whether the ping was made with `token` (compared in constant time).
    pub fn opens_with(&self, token: &Hash) -> bool {
        ping_mac(token, &self.provider, self.counter) == blake3::Hash::from_bytes(self.mac)
    }
}

impl PingAck {
    pub fn to_datagram(self) -> [u8; 4] {
        let [a, b, c] = UDP_MAGIC;
        [a, b, c, self as u8]
    }

    pub fn from_datagram(bytes: &[u8]) -> Option<PingAck> {
        match bytes {
            [a, b, c, code] if [*a, *b, *c] == UDP_MAGIC => match code {
                0 => Some(PingAck::Alive),
                1 => Some(PingAck::BadToken),
                2 => Some(PingAck::NotActive),
                _ => None,
            },
            _ => None,
        }
    }
}

/// `POST /v1/work/ping`: a heartbeat proved by the session token the coordinator handed out in
/// answer to the provider's last signed request, instead of a signature. Refused (401) after a
/// coordinator restart: send a signed heartbeat to get a new token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Ping {
    pub provider: AccountId,
    pub token: Hash,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusView {
    /// The state's time: that of the last input applied.
    pub now: Time,
    /// The answering coordinator's time when it answered (never behind `now`): what relative
    /// times such as a job's `deadline = "10m"` count from. 0 from an older coordinator.
    #[serde(default)]
    pub clock: Time,
    /// Inputs in the command log.
    pub log_length: u64,
    pub state_hash: Hash,
    pub providers_active: u64,
    pub providers_total: u64,
    pub jobs_total: u64,
    pub jobs_unfinished: u64,
    pub tasks_queued: u64,
    /// The answering validator's account.
    #[serde(default)]
    pub validator: Option<AccountId>,
    /// `coordinator` (a single one), `leader` or `follower` (or `candidate` during an election).
    #[serde(default)]
    pub role: String,
    /// The current leader's account and address, when known.
    #[serde(default)]
    pub leader: Option<AccountId>,
    #[serde(default)]
    pub leader_url: Option<String>,
    /// The consensus term (0 for a single coordinator).
    #[serde(default)]
    pub term: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskView {
    pub task: TaskId,
    /// `queued`, `running`, `done`, `failed` or `dropped`.
    pub state: String,
    /// Who returned the accepted result, or who is running a replica now.
    pub providers: Vec<AccountId>,
    /// Replicas waiting for a provider.
    pub queued: u32,
    /// Every run of the task: provider, start time, and how it ended.
    pub runs: Vec<engine::Run>,
    pub failures: u32,
    pub last_error: Option<String>,
    pub output_hash: Option<Hash>,
    pub fuel_used: Option<u64>,
    /// The exit status the accepted result's runs exited with (rules 11: one of the job's
    /// `success_exits`); absent until a result is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobView {
    pub id: JobId,
    pub owner: AccountId,
    /// `"status": "running" | "reducing" | "completed" | "failed" | "cancelled"`, and `"reason"`
    /// when failed.
    #[serde(flatten, with = "job_status_json")]
    #[cfg_attr(feature = "openapi", schema(value_type = job_status_json::Repr))]
    pub status: JobStatus,
    /// Map tasks plus the reduce task once it exists.
    pub tasks_total: u64,
    pub tasks_done: u64,
    pub tasks_running: u64,
    pub tasks_queued: u64,
    pub submitted_at: Time,
    pub finished_at: Option<Time>,
    pub deadline: Time,
    /// Total fuel of accepted results.
    pub fuel_used: u64,
    /// Accepted results per provider (a result confirmed by three providers counts for each).
    pub tasks_per_provider: BTreeMap<AccountId, u64>,
    pub redundancy: engine::Redundancy,
    /// Runs that ended with a result or a failure, over all tasks: with `tasks_done`, the job's
    /// mean executions per task.
    pub executions: u64,
    /// Blobs whose concatenation is the job's output, once completed.
    pub output: Option<Vec<Hash>>,
    /// What the job locked, paid (fees included), and refunded.
    pub escrow: engine::Escrow,
    /// Per-task detail, only with `?tasks=true`: one page of it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskView>,
    /// The index to ask from (`tasks_from`) for the next page of `tasks`; absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks_next: Option<u32>,
    /// Why the job cannot finish on the network as it is now (too few providers can run it for
    /// its redundancy policy): it waits for more, or until its deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// Tasks whose result was reopened because its provider was caught lying on another task
    /// (rules 16): they wait for a trusted re-run before the job can complete.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reopened: u64,
    /// Results corrected after the job had completed (rules 19): their provider was caught
    /// lying later, the job ran again and completed with them corrected; an output fetched
    /// before then is stale.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub corrected: u64,
    /// Rules 19: when a completed job's results become final — the end of its storage's
    /// retention, or earlier if its owner releases it. Until then a result accepted alone whose
    /// provider is caught lying is corrected (the job runs again). Absent once final.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_at: Option<Time>,
    /// The job's storage claim and deposit, and when it was released (rules 10); absent for a
    /// job submitted without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<engine::JobStorage>,
    /// The exit statuses the job takes as answers, where they are not 0 alone (rules 11).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub success_exits: Vec<i32>,
    /// The export its map tasks run instead of `_start`, if it named one (rules 11).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// A private job's key check and the providers it was sealed to (rules 13): its blobs and
    /// its `output` parts are sealed under a key only they and the requester hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private: Option<PrivateView>,
    /// A GPU job's declaration (rules 23): its `module` is a WGSL shader dispatched as it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<engine::GpuJob>,
    /// The GPU class a one-class GPU job runs on, once one of its tasks was taken (rules 23).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_class: Option<String>,
    /// Rules 30: the tolerance a GPU job's results agree within, from any GPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_tolerance: Option<engine::Tolerance>,
    /// Rules 24: the energy and carbon of its accepted runs, as their providers reported them
    /// (estimates: see `engine::energy`); absent on a network before rules 24.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<engine::JobEnergy>,
    /// Rules 24: it prefers providers with low-carbon electricity.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prefer_low_carbon: bool,
}

/// What is public of a private job's sealing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PrivateView {
    /// Derived from the job key (`api::private::JobKey::check`): names the key a requester
    /// keeps for the job.
    pub key_check: Hash,
    /// The providers that may run its tasks.
    pub providers: Vec<AccountId>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl JobView {
    pub fn is_finished(&self) -> bool {
        self.status.is_finished()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProviderView {
    pub id: AccountId,
    pub spec: ProviderSpec,
    pub status: ProviderStatus,
    pub registered_at: Time,
    pub running: u64,
    pub stats: ProviderStats,
    pub reputation: engine::Reputation,
    /// Whether its results are accepted alone under the adaptive policy.
    pub trusted: bool,
    /// Bonded stake.
    #[serde(with = "engine::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub bonded: Amount,
    /// Audits it passed since it last lost a quorum (rules 5; public, like everything here:
    /// anyone replaying the chain can count them).
    #[serde(default)]
    pub audits_passed: u32,
    /// The probability, in basis points, that its next lone result is audited
    /// (`State::audit_bps`): every one at first, halving every 4 audits passed.
    #[serde(default)]
    pub audit_bps: u32,
    /// The lowest that probability can fall to (`State::audit_floor_bps`): the network's spot
    /// checks, doubled for every slash it took.
    #[serde(default)]
    pub audit_floor_bps: u32,
    /// What its GPU offers (rules 23): measured GPU fuel per millisecond and its largest
    /// buffer; absent for a provider that takes no GPU tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_offer: Option<engine::GpuOffer>,
    /// Rules 24: why it announced it is suspended (it takes no new work); empty: it may work.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suspended: Vec<engine::Suspension>,
    /// Rules 24: the carbon intensity of its electricity, grams of CO₂e per kWh (announced, or
    /// the network's table's for its region).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grams_per_kwh: Option<u32>,
    /// Rules 25: who backs it and what backing it has paid (absent for a provider nobody has
    /// backed and that set no commission).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backing: Option<BackingView>,
    /// Its GPU class, once proven (rules 28; before, any offer's): what one-class GPU jobs
    /// match. Absent without a GPU offer, and while its claim is pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_class: Option<String>,
    /// Rules 28: the class it claims while no member has proven it yet (see
    /// `GET /v1/gpu/classes`); it takes no one-class GPU tasks meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_class_pending: Option<String>,
}

/// Rules 25: the stake behind a provider and what it paid its delegators, from the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackingView {
    /// Its own bonded stake.
    #[serde(with = "engine::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub own: Amount,
    /// Bonded by its delegators (counted toward its minimum stake).
    #[serde(with = "engine::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub delegated: Amount,
    pub delegators: u32,
    /// Its cut of each payment before its delegators share the rest, in basis points.
    pub commission_bps: u32,
    /// Undelegated, waiting out the unbonding delay (still slashable).
    #[serde(with = "engine::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub unbonding: Amount,
    /// Paid to its delegators, ever.
    #[serde(with = "engine::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub rewards_paid: Amount,
    /// Kept as commission, ever.
    #[serde(with = "engine::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub commission_earned: Amount,
    /// Taken from its delegators by slashes, ever.
    #[serde(with = "engine::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub slashed: Amount,
    /// What a token delegated over the last day earned, in basis points of the token (realised,
    /// from the chain's reward index; absent before a day of history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_day_bps: Option<u64>,
    /// The same over the last week.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_week_bps: Option<u64>,
}

/// Rules 25: a governance proposal, with its tally (the final one once decided, else what the
/// votes weigh now).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProposalView {
    pub proposal: engine::Proposal,
    pub tally: engine::Tally,
    /// Rules 26: when its changes take effect, where its proposer stated a delay (until they
    /// have).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_at: Option<engine::Time>,
}

/// Rules 25: the governance parameters in force and the newest proposals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GovernanceView {
    pub params: engine::GovParams,
    /// Newest first, at most [`PROPOSALS_PAGE_MAX`].
    pub proposals: Vec<ProposalView>,
    /// Rules 27: the staking rules in force (a proposal's `staking` change replaces them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staking: Option<engine::StakingParams>,
    /// Rules 27: the scheduler's tunables in force (a proposal's `scheduling` change replaces
    /// them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling: Option<engine::ScheduleParams>,
    /// Rules 26: changes of the validator set passed proposals queued, in the order the leader
    /// applies them (one per block).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validator_changes_queued: Vec<engine::ValidatorChange>,
}

/// Rules 27: the validators, what backs each and what each earned, and the payout of their
/// share of the fees (`GET /v1/validators`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValidatorsView {
    /// The staking rules in force (`None` before rules 27: validators earn nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staking: Option<engine::StakingParams>,
    /// Fees the treasury collected since the last payout (the validators get
    /// `staking.validator_fee_bps` of them).
    #[serde(with = "engine::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub fees_collected: Amount,
    /// When the next payout is due (if fees were collected by then).
    pub next_payout_at: Option<Time>,
    /// In the set's order; empty on a single coordinator.
    pub validators: Vec<ValidatorView>,
}

/// Rules 27: one validator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValidatorView {
    pub account: AccountId,
    /// Where it listens.
    pub address: String,
    pub power: u64,
    /// Its own bonded stake.
    #[serde(with = "engine::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub bonded: Amount,
    /// Its share of fees, ever (its delegators' part included).
    #[serde(with = "engine::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub earned: Amount,
    /// Who backs it (absent when nobody has and it set no commission).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backing: Option<BackingView>,
}

/// Rules 25: the price index, per resource class (`cpu`, `gpu`, `cpu@REGION`, `gpu@REGION`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MarketView {
    pub classes: Vec<engine::PriceIndex>,
}

/// The most proposals `GET /v1/proposals` lists.
pub const PROPOSALS_PAGE_MAX: usize = 200;

/// Rules 26: where a reservation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    /// Offered: no provider has accepted a slot yet.
    Open,
    /// At least one provider holds a lease of it.
    Active,
    /// Its owner cancelled it: its leases run to the end of their current period.
    Cancelling,
    /// Nothing is open and no lease runs any more.
    Ended,
}

/// Rules 26: one provider's lease of a reservation's slots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseView {
    pub provider: AccountId,
    pub slots: u32,
    /// Which period runs now, from 0.
    pub period: u32,
    pub period_start: Time,
    /// When the current period ends (it is then paid, or refunded when missed).
    pub period_end: Time,
    /// The current period's prepaid escrow: `slots × price_per_slot`.
    #[serde(with = "engine::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub held: Amount,
    /// The provider missed this period: it is refunded and the lease ends.
    pub missed: bool,
}

/// Rules 26: a reservation of capacity, its spec and what its escrow did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReservationView {
    pub id: u64,
    pub owner: AccountId,
    /// Slots reserved, over one or more providers.
    pub slots: u32,
    /// Least cores a slot's provider has (0: any).
    pub cores: u32,
    /// Least memory a slot's provider has, in bytes (0: any).
    pub memory_bytes: u64,
    /// Only providers that declare a GPU.
    pub gpu: bool,
    /// Only providers in this region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub period_ms: u64,
    /// Periods a lease runs.
    pub periods: u32,
    /// What one slot costs per period.
    #[serde(with = "engine::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub price_per_slot: Amount,
    pub created: Time,
    /// Slots not accepted by then are refunded.
    pub open_until: Time,
    /// Slots no provider has accepted yet.
    pub open_slots: u32,
    /// Their prepaid escrow.
    #[serde(with = "engine::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub open_held: Amount,
    pub cancelled: bool,
    /// Paid to providers so far (before fees).
    #[serde(with = "engine::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub paid: Amount,
    /// Refunded to the owner so far.
    #[serde(with = "engine::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub refunded: Amount,
    /// The owner's tasks that leased slots ran (paid by the reservation, not by their jobs).
    pub tasks_covered: u64,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<Time>,
    pub status: ReservationStatus,
    /// The leases running now, by provider.
    pub leases: Vec<LeaseView>,
}

/// The most reservations `GET /v1/reservations` lists.
pub const RESERVATIONS_PAGE_MAX: usize = 200;

/// Rules 28: who proved which GPU class, and the claims waiting to be proven
/// (`GET /v1/gpu/classes`, see `engine::gpu_class`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GpuClassesView {
    /// The network's time, to compare a challenge's `due` with.
    pub now: Time,
    /// Providers whose class is proven, in the order of their ids.
    pub proven: Vec<ProvenClassView>,
    /// Providers whose claimed class is not proven yet, in the order of their ids.
    pub pending: Vec<PendingClassView>,
}

/// Rules 28: a provider's proven GPU class.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProvenClassView {
    pub provider: AccountId,
    pub class: String,
    /// The member whose check it passed; absent: it founded the class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<AccountId>,
    pub at: Time,
}

/// Rules 28: a provider's claim to a GPU class, waiting for a member to prove it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PendingClassView {
    pub provider: AccountId,
    /// Its operator: a member of the same operator may not check it.
    pub operator: AccountId,
    pub class: String,
    pub since: Time,
    /// Members that checked it already (each may once); their checks failed or are open.
    pub checked_by: Vec<AccountId>,
    /// The open check, if any (one past `due` may be replaced by another member's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<ClassChallengeView>,
}

/// Rules 28: a check waiting for the pending provider's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClassChallengeView {
    pub checker: AccountId,
    /// What the pending provider's device must fingerprint (`gpu::fingerprint`).
    pub challenge: u64,
    /// `engine::class_commitment` of the checker's own answer.
    pub commitment: Hash,
    pub at: Time,
    /// The answer must be logged before then.
    pub due: Time,
}

/// `?class=&provider=&member=` of `GET /v1/gpu/classes`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GpuClassesQuery {
    /// Only the members of this class and the claims to it (the exact class string).
    #[serde(default)]
    pub class: Option<String>,
    /// Only this provider's entry (hex account id).
    #[serde(default)]
    pub provider: Option<String>,
    /// What this member has to do (hex account id): of the proven entries only its own, and
    /// every pending claim (at most [`MAX_CLASS_CLAIMS`], the oldest first). What a provider
    /// polls with its class: the answer does not grow with the class's members.
    #[serde(default)]
    pub member: Option<String>,
}

/// The most pending claims `GET /v1/gpu/classes?member=` returns (the oldest first).
pub const MAX_CLASS_CLAIMS: usize = 256;

/// `?owner=&provider=` of `GET /v1/reservations`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReservationsQuery {
    /// Only this account's reservations (hex account id).
    #[serde(default)]
    pub owner: Option<String>,
    /// Only the reservations this provider holds a lease of now (hex account id).
    #[serde(default)]
    pub provider: Option<String>,
}

/// Rules 25: one of an account's delegations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DelegationView {
    pub provider: AccountId,
    /// What its shares are worth now.
    #[serde(with = "engine::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub amount: Amount,
    #[serde(with = "engine::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub shares: u128,
    /// Earned and not withdrawn.
    #[serde(with = "engine::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub rewards: Amount,
    /// The provider's commission.
    pub commission_bps: u32,
}

/// Rules 25: undelegated tokens on their way back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DelegationUnbondingView {
    pub provider: AccountId,
    #[serde(with = "engine::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub amount: Amount,
    pub release_at: Time,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountView {
    pub id: AccountId,
    /// Highest nonce used in a logged action.
    pub nonce: u64,
    /// Spendable.
    #[serde(with = "engine::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub balance: Amount,
    /// Bonded as provider stake.
    #[serde(with = "engine::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub bonded: Amount,
    /// Unstaked, waiting out the unbonding delay (still slashable).
    pub unbonding: Vec<UnbondingView>,
    /// Locked in the escrow of the account's unfinished jobs.
    #[serde(with = "engine::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub in_escrow: Amount,
    /// Held as the storage deposits of the account's jobs not yet released (rules 10).
    #[serde(default, with = "engine::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub in_storage: Amount,
    /// Rules 25: its delegations, by provider.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delegations: Vec<DelegationView>,
    /// Rules 25: what it undelegated and has not been released yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delegation_unbonding: Vec<DelegationUnbondingView>,
    /// Rules 26: held by its reservations (open slots' and current periods' escrow).
    #[serde(default, with = "engine::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub in_reservations: Amount,
    /// Rules 25: the pool that backs this account, if it is a provider or (rules 27) a
    /// validator someone delegated to or that set a commission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backing: Option<BackingView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnbondingView {
    #[serde(with = "engine::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub amount: Amount,
    pub release_at: Time,
}

/// A page of an account's history, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryPage {
    pub account: AccountId,
    pub items: Vec<HistoryItem>,
    /// Pass as `before` for the next (older) page; `None` when this is the last.
    pub next_before: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryItem {
    /// The log entry that caused it.
    pub seq: u64,
    pub time: Time,
    pub event: Event,
}

/// `?before=&limit=` of the history pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryQuery {
    #[serde(default)]
    pub before: Option<u64>,
    #[serde(default = "history_page")]
    pub limit: u32,
}

/// The most history items one page holds.
pub const HISTORY_PAGE_MAX: u32 = 500;

/// Most tasks of a job's per-task detail in one answer (`GET /v1/jobs/{id}?tasks=true`).
pub const JOB_TASKS_PAGE_MAX: u32 = 1_000;

/// Most providers in one answer of `GET /v1/providers` (in the order of their ids, those after
/// `after`): a shorter page is the last.
pub const PROVIDERS_PAGE_MAX: u32 = 1_000;

fn history_page() -> u32 {
    50
}

/// The network's token and economic rules, and where its supply is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NetworkView {
    pub chain_id: String,
    pub token: String,
    pub decimals: u32,
    pub genesis_hash: Hash,
    pub treasury: AccountId,
    pub fee_bps: u32,
    #[serde(with = "engine::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub min_stake: Amount,
    pub slash_fraction_bps: u32,
    pub slash_requester_bps: u32,
    pub slash_treasury_bps: u32,
    pub unbonding_delay_ms: u64,
    /// The faucet's amount per request; absent without a faucet.
    #[serde(default, with = "optional_amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub faucet: Option<Amount>,
    #[serde(with = "engine::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub supply_genesis: Amount,
    #[serde(with = "engine::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub supply_minted: Amount,
    #[serde(with = "engine::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub supply_burned: Amount,
    /// Redundancy, trust and spot-check rules.
    pub verification: engine::VerifyParams,
    /// What each logged action costs its signer (rules 8; reports and the faucet are free).
    #[serde(default, with = "engine::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub action_fee: Amount,
    /// What a job's storage costs (rules 10); absent where storage takes no deposit. A network
    /// that prices it takes jobs only with a storage claim ([`JobSpec::blobs`](engine::JobSpec)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<engine::StorageParams>,
    /// The version of the engine's rules the network runs (0 from a coordinator that did not
    /// say).
    #[serde(default)]
    pub rules: u32,
    /// Rules 24: carbon intensity of electricity per region (grams of CO₂e per kWh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carbon: Option<engine::CarbonTable>,
}

mod optional_amount {
    use engine::Amount;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Wrap(#[serde(with = "engine::types::amount")] Amount);

    pub fn serialize<S: Serializer>(v: &Option<Amount>, s: S) -> Result<S::Ok, S::Error> {
        v.map(Wrap).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Amount>, D::Error> {
        Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
    }
}

/// The JSON shape of a job's status in [`JobView`]: flat `status` and `reason` fields, easier for
/// clients than the engine's own (externally tagged) encoding.
pub mod job_status_json {
    use engine::JobStatus;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "openapi", schema(as = JobStatusKind))]
    #[serde(rename_all = "snake_case")]
    pub enum Kind {
        Running,
        Reducing,
        Completed,
        Failed,
        Cancelled,
    }

    /// A job's status: `reason` only when it failed.
    #[derive(Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[cfg_attr(feature = "openapi", schema(as = JobStatusFields))]
    pub struct Repr {
        status: Kind,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    }

    pub fn serialize<S: Serializer>(status: &JobStatus, s: S) -> Result<S::Ok, S::Error> {
        let (kind, reason) = match status {
            JobStatus::Running => (Kind::Running, None),
            JobStatus::Reducing => (Kind::Reducing, None),
            JobStatus::Completed => (Kind::Completed, None),
            JobStatus::Failed { reason } => (Kind::Failed, Some(reason.clone())),
            JobStatus::Cancelled => (Kind::Cancelled, None),
        };
        Repr {
            status: kind,
            reason,
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<JobStatus, D::Error> {
        let repr = Repr::deserialize(d)?;
        Ok(match repr.status {
            Kind::Running => JobStatus::Running,
            Kind::Reducing => JobStatus::Reducing,
            Kind::Completed => JobStatus::Completed,
            Kind::Failed => JobStatus::Failed {
                reason: repr.reason.unwrap_or_default(),
            },
            Kind::Cancelled => JobStatus::Cancelled,
        })
    }
}

/// A page of jobs, newest first (`GET /v1/jobs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobsPage {
    /// Without per-task detail.
    pub jobs: Vec<JobView>,
    /// Pass as `before` for the next (older) page; absent when there is none. A page may be
    /// short, or empty, and still have a next one: with `owner`, a page looks at no more than
    /// [`JOBS_SCAN_MAX`] jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<JobId>,
}

/// `?before=&limit=&owner=` of `GET /v1/jobs`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobsQuery {
    /// Only jobs with a smaller id (default: from the newest).
    #[serde(default)]
    pub before: Option<JobId>,
    /// At most this many (default 50, at most [`JOBS_PAGE_MAX`]).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Only this account's jobs (hex account id).
    #[serde(default)]
    pub owner: Option<String>,
}

/// The most jobs in one answer of `GET /v1/jobs`.
pub const JOBS_PAGE_MAX: u32 = 200;
/// The most jobs one answer of `GET /v1/jobs` looks at (with an `owner`, most may not be theirs).
pub const JOBS_SCAN_MAX: u32 = 10_000;

/// One log entry decoded (`GET /v1/chain/inputs`): for people and explorers. A verifier checks
/// [`RawEntry`]'s bytes instead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EntryView {
    pub seq: u64,
    /// The entry's time (ms since the Unix epoch), as the leader stamped it.
    pub time: Time,
    /// `action` (a signed action), `leader` (a leader's command), `evidence`, `lost` or `fetch`.
    pub kind: String,
    /// The signer of an action or a fetch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<AccountId>,
    /// The action's or command's name, such as `submit_job` or `assign`.
    pub name: String,
    /// The whole input, as JSON.
    pub input: engine::Input,
}

/// The most decoded entries in one answer of `GET /v1/chain/inputs`.
pub const INPUTS_PAGE_MAX: u32 = 200;

/// What `GET /v1/events` streams: the network's vital signs, from the state a validator has
/// applied (the same figures as `/metrics`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Pulse {
    /// Entries in the command log, and the last block's height.
    pub log_length: u64,
    pub block_height: u64,
    /// The state's time (that of the last input applied).
    pub now: Time,
    /// Providers by state: `active`, `suspended`, `left`, `lost`.
    pub providers: BTreeMap<String, u64>,
    /// Slots of the providers the scheduler counts on: busy, and in all.
    pub slots_busy: u64,
    pub slots_total: u64,
    /// Tasks waiting for a provider (the queue).
    pub tasks_queued: u64,
    pub runs_in_flight: u64,
    /// Runs ended, over all providers: with results accepted, and failed.
    pub runs_completed: u64,
    pub runs_failed: u64,
    /// Jobs by status.
    pub jobs: BTreeMap<String, u64>,
    /// Results by how verification settled them: `verified`, `accepted_alone`, `rejected`.
    pub results: BTreeMap<String, u64>,
    pub slashes: u64,
}

/// A pulse as it was at `at` (the coordinator's clock, ms since the Unix epoch):
/// `GET /v1/pulses`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PulsePoint {
    pub at: Time,
    pub pulse: Pulse,
}

/// The most blocks or entries one chain page holds.
pub const CHAIN_PAGE_MAX: u32 = 1000;

/// Where the coordinator's chain stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChainView {
    /// Height of the last block (0: no block yet).
    pub height: u64,
    /// Hash of the last block's header (the genesis hash when there is none).
    pub tip_hash: Hash,
    /// Hash of the state before any entry: block 1's previous hash.
    pub genesis_hash: Hash,
    /// The account whose key signs the blocks.
    pub validator: AccountId,
    /// Entries in the command log.
    pub log_length: u64,
    /// Last entry covered by a block.
    pub sealed_seq: u64,
    /// Entries after the last block, not sealed yet.
    pub unsealed: u64,
}

/// One log entry exactly as stored: its postcard bytes, hex-encoded, so that a remote verifier
/// checks the very bytes the Merkle roots are over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RawEntry {
    pub seq: u64,
    pub bytes_hex: String,
}

impl RawEntry {
    pub fn new(seq: u64, bytes: &[u8]) -> RawEntry {
        RawEntry {
            seq,
            bytes_hex: hex::encode(bytes),
        }
    }

    /// The stored bytes.
    pub fn bytes(&self) -> Result<Vec<u8>, hex::FromHexError> {
        hex::decode(&self.bytes_hex)
    }
}

/// `?from=&limit=` of the chain pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChainPage {
    #[serde(default = "first")]
    pub from: u64,
    #[serde(default = "page_max")]
    pub limit: u32,
}

fn first() -> u64 {
    1
}

fn page_max() -> u32 {
    CHAIN_PAGE_MAX
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_outcomes_read_back_as_what_they_were() {
        let accepted = BatchOutcome::Accepted(ActionResponse {
            seq: 7,
            events: vec![Event::Transferred {
                from: AccountId([1; 32]),
                to: AccountId([2; 32]),
                amount: 5,
            }],
        });
        let refused = BatchOutcome::Refused(ErrorBody {
            error: "insufficient_funds".into(),
            detail: "needs 5, has 0".into(),
        });
        let json = serde_json::to_value([&accepted, &refused]).unwrap();
        assert_eq!(json[0]["seq"], 7);
        assert_eq!(json[1]["error"], "insufficient_funds");
        let back: Vec<BatchOutcome> = serde_json::from_value(json).unwrap();
        assert_eq!(back, [accepted, refused]);
    }

    #[test]
    fn a_udp_ping_carries_a_mac_under_the_token_never_the_token() {
        let provider = AccountId([3; 32]);
        let token = Hash([9; 32]);
        let datagram = Ping { provider, token }.to_datagram(42);
        assert_eq!(datagram.len(), UDP_PING_LEN);
        assert!(!datagram.windows(32).any(|w| w == token.0));
        let sealed = SealedPing::from_datagram(&datagram).unwrap();
        assert_eq!((sealed.provider, sealed.counter), (provider, 42));
        assert!(sealed.opens_with(&token));
        assert!(!sealed.opens_with(&Hash([8; 32])));
        // Any byte changed (the counter, the id, the MAC) and it no longer opens.
        for i in 3..UDP_PING_LEN {
            let mut tampered = datagram;
            tampered[i] ^= 1;
            let sealed = SealedPing::from_datagram(&tampered).unwrap();
            assert!(!sealed.opens_with(&token), "byte {i}");
        }
        // The old format (token in clear) and other lengths are not pings.
        let mut old = datagram;
        old[..3].copy_from_slice(b"GM1");
        assert!(SealedPing::from_datagram(&old).is_none());
        assert!(SealedPing::from_datagram(&datagram[..UDP_PING_LEN - 1]).is_none());
    }
}
