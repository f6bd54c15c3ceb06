//! A validator of a set: the coordinator's [`Consensus`] over openraft (crash-fault tolerant
//! Raft). Every validator keeps its own consensus log (`raft.sqlite`), command log, blocks and
//! blobs; the leader proposes, a majority makes each proposal durable before it is executed, and
//! every validator executes the same proposals in the same order.
//!
//! A validator's Raft node id is derived from its account ([`node_id`]), so it stays the same as
//! the set changes; each node's address is the validator's `address`. Messages between
//! validators are signed (see [`network`]). The Raft membership follows the validator set in the
//! committed state: the leader adds a validator voted in as a learner, and once it has caught up
//! from the log makes the membership the set ([`follow_set`]).

pub mod network;
pub mod storage;
#[cfg(test)]
mod tests;

use crate::consensus::LiveSet;
use crate::consensus::{Consensus, Proposed, Role};
use crate::error::ApiError;
use crate::node::Node;
use crate::proposal::Proposal;
use anyhow::Context;
use api::Identity;
use openraft::{BasicNode, Config, ServerState, SnapshotPolicy};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

openraft::declare_raft_types!(
    /// The types Raft is run with: proposals in, outcomes out.
    pub TypeConfig:
        D = Proposal,
        R = crate::proposal::Outcome,
        NodeId = u64,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type RaftHandle = openraft::Raft<TypeConfig>;

/// How long a write waits for a majority before it is answered 503.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Timing of the consensus engine.
#[derive(Clone, Debug)]
pub struct RaftTiming {
    pub heartbeat: Duration,
    pub election_min: Duration,
    pub election_max: Duration,
}

impl Default for RaftTiming {
    fn default() -> RaftTiming {
        RaftTiming {
            heartbeat: Duration::from_millis(100),
            election_min: Duration::from_millis(400),
            election_max: Duration::from_millis(800),
        }
    }
}

/// Who a validator is: the set (as of the recovered state), its account, its key.
pub struct Member {
    pub set: LiveSet,
    pub me: engine::AccountId,
    pub key: Arc<Identity>,
    /// The address connections to the other validators leave from (see [`peer_client`]).
    pub local: Option<std::net::IpAddr>,
}

/// A running validator's consensus.
pub struct Replicated {
    raft: RaftHandle,
    set: LiveSet,
    /// This validator's account.
    account: engine::AccountId,
}

/// Starts Raft for validator `me` (its position in `set`) over `node`, and initializes the
/// cluster when this validator has never run: every member does so with the same membership,
/// which Raft accepts once.
pub async fn start(
    member: Member,
    chain_id: &str,
    timing: &RaftTiming,
    raft_db: store::RaftDb,
    node: Arc<Mutex<Node>>,
    work: Arc<tokio::sync::Notify>,
) -> anyhow::Result<Replicated> {
    let Member {
        set,
        me,
        key,
        local,
    } = member;
    let config = config(chain_id, timing)?;
    let log = storage::LogStore::new(raft_db);
    let fresh = log
        .is_new()
        .map_err(|e| anyhow::anyhow!("reading the consensus log: {e}"))?;
    let sm = storage::StateMachine::new(node, work, set.clone())
        .map_err(|e| anyhow::anyhow!("reading where the command log is applied up to: {e}"))?;
    let http = peer_client(&set, local, Duration::from_millis(500), None)?;
    let network = network::Network { me: key, http };
    let raft = openraft::Raft::new(node_id(&me), config, network, log, sm)
        .await
        .context("starting the consensus engine")?;
    // A validator that is not a member yet (joining) waits for the leader to add it.
    if fresh && set.with(|s| s.get(&me).is_some()) {
        let members: BTreeMap<u64, BasicNode> = set.with(|s| {
            s.validators
                .iter()
                .map(|v| (node_id(&v.account), BasicNode::new(v.address.clone())))
                .collect()
        });
        if let Err(e) = raft.initialize(members).await {
            // Another member initialized first and already reached us: nothing to do.
            tracing::debug!(error = %e, "consensus already initialized");
        }
    }
    Ok(Replicated {
        raft,
        set,
        account: me,
    })
}

/// An HTTP client for the other validators. A validator listening on one address of a
/// multi-homed host (not `0.0.0.0`) connects out from that address too, so that the others (and
/// their firewalls) see one address for it. Over HTTPS it trusts the self-signed certificate of
/// every member of `set` as the set is at the handshake (`https::members_trusted`), besides what
/// the process trusts (`api::tls::trust`).
pub fn peer_client(
    set: &LiveSet,
    local: Option<std::net::IpAddr>,
    connect: Duration,
    timeout: Option<Duration>,
) -> anyhow::Result<reqwest::Client> {
    let mut builder = api::tls::client_builder(Some(crate::https::members_trusted(set.clone())))?
        .connect_timeout(connect)
        .pool_max_idle_per_host(4)
        // Validators close a connection idle for 30 s (`HEADER_TIMEOUT`): close it first.
        .pool_idle_timeout(Duration::from_secs(20))
        .local_address(local.filter(|ip| !ip.is_unspecified()));
    if let Some(t) = timeout {
        builder = builder.timeout(t);
    }
    builder
        .build()
        .context("an HTTP client for the other validators")
}

/// openraft's configuration for a validator set.
pub(crate) fn config(chain_id: &str, timing: &RaftTiming) -> anyhow::Result<Arc<Config>> {
    let config = Config {
        cluster_name: chain_id.to_string(),
        heartbeat_interval: millis(timing.heartbeat),
        election_timeout_min: millis(timing.election_min),
        election_timeout_max: millis(timing.election_max),
        // The consensus log is kept whole: it is small beside the command log, and a validator
        // that was away catches up from it (see `StateMachine::install_snapshot`).
        snapshot_policy: SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: u64::MAX,
        // Entries per AppendEntries message: a proposal can hold thousands of inputs.
        max_payload_entries: 64,
        ..Config::default()
    };
    Ok(Arc::new(
        config.validate().context("the consensus configuration")?,
    ))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// A validator's Raft node id: the first 8 bytes of its account, little-endian (distinct for
/// distinct keys but with negligible probability; [`engine::ValidatorSet::validate`] refuses a
/// set where two collide).
pub fn node_id(account: &engine::AccountId) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(account.0.get(..8).unwrap_or(&[0; 8]));
    u64::from_le_bytes(bytes)
}

/// On the leader, makes the Raft membership follow the validator set of the committed state
/// (checked every half second): a validator voted in is added as a learner and, once it has
/// caught up from the log, the voters become exactly the set; a validator voted out leaves the
/// membership. Runs until the coordinator stops.
pub async fn follow_set(raft: RaftHandle, set: LiveSet) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let metrics = raft.metrics().borrow().clone();
        if metrics.state != ServerState::Leader {
            continue;
        }
        let target = set.get();
        if target.validators.is_empty() {
            continue;
        }
        let membership = metrics.membership_config.membership().clone();
        let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
        let wanted: std::collections::BTreeSet<u64> = target
            .validators
            .iter()
            .map(|v| node_id(&v.account))
            .collect();
        if voters == wanted && membership.get_joint_config().len() == 1 {
            continue;
        }
        for v in &target.validators {
            let id = node_id(&v.account);
            if membership.get_node(&id).is_none() {
                tracing::info!(validator = %v.account, address = %v.address, "adding a validator: catching it up");
                if let Err(e) = raft
                    .add_learner(id, BasicNode::new(v.address.clone()), true)
                    .await
                {
                    tracing::warn!(error = %e, "adding a validator as a learner");
                }
            }
        }
        match raft.change_membership(wanted.clone(), false).await {
            Ok(_) => tracing::info!(
                validators = wanted.len(),
                "consensus membership follows the validator set"
            ),
            Err(e) => tracing::warn!(error = %e, "changing the consensus membership"),
        }
    }
}

impl Replicated {
    pub fn handle(&self) -> RaftHandle {
        self.raft.clone()
    }

    /// Stops the consensus engine.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "stopping the consensus engine");
        }
    }

    fn validator(&self, id: u64) -> Option<engine::Validator> {
        self.set.with(|set| {
            set.validators
                .iter()
                .find(|v| node_id(&v.account) == id)
                .cloned()
        })
    }
}

impl Consensus for Replicated {
    fn propose(&self, proposal: Proposal) -> Proposed<'_> {
        Box::pin(async move {
            let written = tokio::time::timeout(WRITE_TIMEOUT, self.raft.client_write(proposal));
            match written.await {
                Err(_) => Err(ApiError::Unavailable(format!(
                    "no majority of validators confirmed the write within {WRITE_TIMEOUT:?}; \
                     it was not acknowledged (it may still be applied: look it up before \
                     sending it again)"
                ))),
                Ok(Ok(response)) => Ok(response.data),
                Ok(Err(e)) => match e.forward_to_leader::<BasicNode>() {
                    Some(forward) => Err(ApiError::NotLeader {
                        leader: forward.leader_node.as_ref().map(|n| n.addr.clone()),
                    }),
                    None => Err(ApiError::Unavailable(format!("consensus: {e}"))),
                },
            }
        })
    }

    fn role(&self) -> Role {
        let metrics = self.raft.metrics().borrow().clone();
        let leader = metrics.current_leader.and_then(|id| self.validator(id));
        let leader = leader.as_ref();
        Role {
            validator: self.account,
            leader: metrics.state == ServerState::Leader,
            name: match metrics.state {
                ServerState::Leader => "leader",
                ServerState::Follower => "follower",
                ServerState::Candidate => "candidate",
                ServerState::Learner => "learner",
                ServerState::Shutdown => "stopped",
            },
            leader_id: leader.map(|v| v.account),
            leader_url: leader.map(|v| v.address.clone()),
            term: metrics.current_term,
        }
    }
}
