//! JSON shapes of the coordinator's HTTP API (`/v1/...`).
//!
//! | method and path               | body                   | answer               |
//! |-------------------------------|------------------------|----------------------|
//! | `GET  /v1/status`             |                        | [`StatusView`]       |
//! | `PUT  /v1/blobs/{hash}`       | bytes, signed headers  | [`BlobStored`]       |
//! | `GET  /v1/blobs/{hash}`       |                        | bytes                |
//! | `POST /v1/actions`            | `Signed<Action>`       | [`ActionResponse`]   |
//! | `POST /v1/work/fetch`         | `Signed<Request>`      | [`FetchResponse`]    |
//! | `POST /v1/work/heartbeat`     | `Signed<Request>`      | [`HeartbeatResponse`]|
//! | `GET  /v1/jobs/{id}`          |                        | [`JobView`]          |
//! | `GET  /v1/jobs/{id}/output`   |                        | bytes                |
//! | `GET  /v1/providers`          |                        | `Vec<ProviderView>`  |
//! | `GET  /v1/providers/{id}`     |                        | [`ProviderView`]     |
//! | `GET  /v1/accounts/{id}`      |                        | [`AccountView`]      |
//! | `GET  /v1/chain`              |                        | [`ChainView`]        |
//! | `GET  /v1/chain/blocks`       | `?from=H&limit=N`      | `Vec<Block>`         |
//! | `GET  /v1/chain/entries`      | `?from=SEQ&limit=N`    | `Vec<RawEntry>`      |
//!
//! The chain pages start at `from` (default 1) and hold at most `limit` items (default and cap
//! [`CHAIN_PAGE_MAX`]); an empty page means there is nothing more.
//!
//! Errors are [`ErrorBody`] with a 4xx status (a 5xx is a bug).

use engine::{
    AccountId, Event, Hash, JobId, JobStatus, ProviderSpec, ProviderStatus, SignedBody,
    TaskDescriptor, TaskId, Time, state::ProviderStats,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Header names carrying the signature of a blob upload (the body is raw bytes, so the signed
/// [`Request::PutBlob`] travels in headers).
pub const HEADER_SIGNER: &str = "x-gridmint-signer";
pub const HEADER_NONCE: &str = "x-gridmint-nonce";
pub const HEADER_SIGNATURE: &str = "x-gridmint-signature";

/// Signed requests that are not logged: they ask for something or prove liveness.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// A provider asks for up to `max` tasks, waiting up to `wait_ms` for work to appear. `held`
    /// lists the tasks it is running or has results for: any task assigned to it but not held (an
    /// answer lost to a crash or a network failure) is delivered again.
    Fetch {
        max: u32,
        wait_ms: u32,
        held: Vec<TaskId>,
    },
    /// A provider is alive.
    Heartbeat,
    /// Store a blob of `size` bytes whose BLAKE3 hash is `hash`.
    PutBlob { hash: Hash, size: u64 },
}

impl SignedBody for Request {
    const DOMAIN: &'static str = "gridmint/v1/request";
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Short machine-readable kind, e.g. `bad_signature`, `rejected`, `not_found`.
    pub error: String,
    /// Human-readable explanation.
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobStored {
    pub hash: Hash,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionResponse {
    /// Position of the accepted action in the command log (1-based).
    pub seq: u64,
    pub events: Vec<Event>,
}

impl ActionResponse {
    /// The id of the job a `SubmitJob` created.
    pub fn submitted_job(&self) -> Option<JobId> {
        self.events.iter().find_map(|e| match e {
            Event::JobSubmitted { job, .. } => Some(*job),
            _ => None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchResponse {
    pub tasks: Vec<TaskDescriptor>,
    /// How often the provider must heartbeat.
    pub heartbeat_interval_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    pub heartbeat_interval_ms: u64,
    /// Silence longer than this and the provider is declared lost.
    pub heartbeat_timeout_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusView {
    pub now: Time,
    /// Inputs in the command log.
    pub log_length: u64,
    pub state_hash: Hash,
    pub providers_active: u64,
    pub providers_total: u64,
    pub jobs_total: u64,
    pub jobs_unfinished: u64,
    pub tasks_queued: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskView {
    pub task: TaskId,
    /// `queued`, `running`, `done`, `failed` or `dropped`.
    pub state: String,
    pub provider: Option<AccountId>,
    pub failures: u32,
    pub last_error: Option<String>,
    pub output_hash: Option<Hash>,
    pub fuel_used: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobView {
    pub id: JobId,
    pub owner: AccountId,
    /// `"status": "running" | "reducing" | "completed" | "failed" | "cancelled"`, and `"reason"`
    /// when failed.
    #[serde(flatten, with = "job_status_json")]
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
    /// Accepted results per provider.
    pub tasks_per_provider: BTreeMap<AccountId, u64>,
    /// Blobs whose concatenation is the job's output, once completed.
    pub output: Option<Vec<Hash>>,
    /// Per-task detail, only with `?tasks=true`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskView>,
}

impl JobView {
    pub fn is_finished(&self) -> bool {
        self.status.is_finished()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderView {
    pub id: AccountId,
    pub spec: ProviderSpec,
    pub status: ProviderStatus,
    pub registered_at: Time,
    pub running: u64,
    pub stats: ProviderStats,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    pub id: AccountId,
    pub nonce: u64,
}

/// The JSON shape of a job's status in [`JobView`]: flat `status` and `reason` fields, easier for
/// clients than the engine's own (externally tagged) encoding.
mod job_status_json {
    use engine::JobStatus;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Running,
        Reducing,
        Completed,
        Failed,
        Cancelled,
    }

    #[derive(Serialize, Deserialize)]
    struct Repr {
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

/// The most blocks or entries one chain page holds.
pub const CHAIN_PAGE_MAX: u32 = 1000;

/// Where the coordinator's chain stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
