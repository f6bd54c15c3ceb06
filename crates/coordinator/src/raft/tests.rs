//! In-process clusters of validators under random crash, restart and partition schedules: real
//! openraft, real `Node`s over SQLite logs in temp dirs, and a channel transport (each message
//! handed straight to the target's `Raft`, or refused while either end is cut off or down).
//! Whatever the schedule, validators whose command logs have the same length have the same state
//! hash, and once everything is healed every validator holds the same log, state and blocks.

use super::storage::{LogStore, StateMachine};
use super::{RaftHandle, RaftTiming, TypeConfig};
use crate::node::Node;
use crate::proposal::Proposal;
use api::Identity;
use engine::{AccountId, Action, Genesis, Hash, Input, State};
use openraft::BasicNode;
use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{CommandLog, RaftDb, SqliteLog};

const MEMBERS: usize = 3;

/// Who is reachable: the running members and the ones cut off from everybody.
#[derive(Default)]
struct Router {
    up: Mutex<BTreeMap<u64, RaftHandle>>,
    cut: Mutex<BTreeSet<u64>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Down(String);

impl Router {
    fn route(&self, from: u64, to: u64) -> Result<RaftHandle, Unreachable> {
        let cut = self.cut.lock().unwrap();
        if cut.contains(&from) || cut.contains(&to) {
            return Err(Unreachable::new(&Down(format!("{from} -> {to}: cut off"))));
        }
        drop(cut);
        self.up
            .lock()
            .unwrap()
            .get(&to)
            .cloned()
            .ok_or_else(|| Unreachable::new(&Down(format!("{to} is down"))))
    }
}

#[derive(Clone)]
struct Net {
    router: Arc<Router>,
    from: u64,
}

struct Conn {
    router: Arc<Router>,
    from: u64,
    to: u64,
}

impl RaftNetworkFactory<TypeConfig> for Net {
    type Network = Conn;
    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Conn {
        Conn {
            router: self.router.clone(),
            from: self.from,
            to: target,
        }
    }
}

impl RaftNetwork<TypeConfig> for Conn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let raft = self.router.route(self.from, self.to)?;
        raft.append_entries(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        let raft = self.router.route(self.from, self.to)?;
        raft.install_snapshot(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let raft = self.router.route(self.from, self.to)?;
        raft.vote(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))
    }
}

/// The accounts that send each other tokens.
fn senders() -> Vec<Identity> {
    (1..=4u8).map(|n| Identity::from_secret([n; 32])).collect()
}

fn genesis() -> State {
    let mut g = Genesis::dev(AccountId([9; 32]));
    for who in senders() {
        g.allocations.insert(who.id(), engine::tokens(1_000));
    }
    State::from_genesis(&g).unwrap()
}

struct Member {
    dir: tempfile::TempDir,
    node: Option<Arc<Mutex<Node>>>,
    raft: Option<RaftHandle>,
}

struct Cluster {
    router: Arc<Router>,
    members: Vec<Member>,
    nonces: Vec<u64>,
}

fn timing() -> RaftTiming {
    RaftTiming {
        heartbeat: Duration::from_millis(30),
        election_min: Duration::from_millis(100),
        election_max: Duration::from_millis(200),
    }
}

impl Cluster {
    async fn new() -> Cluster {
        let mut cluster = Cluster {
            router: Arc::new(Router::default()),
            members: (0..MEMBERS)
                .map(|_| Member {
                    dir: tempfile::tempdir().unwrap(),
                    node: None,
                    raft: None,
                })
                .collect(),
            nonces: vec![0; 4],
        };
        for i in 0..MEMBERS {
            cluster.start(i).await;
        }
        cluster
    }

    async fn start(&mut self, i: usize) {
        if self.members[i].raft.is_some() {
            return;
        }
        let dir = self.members[i].dir.path().to_path_buf();
        let mut log = SqliteLog::open(&dir).unwrap();
        if log.meta("validators").unwrap().is_none() {
            // As `coordinator::start` records it: the log belongs to a validator set.
            let set = engine::ValidatorSet {
                validators: (0..MEMBERS)
                    .map(|n| engine::Validator {
                        account: Identity::from_secret([100 + n as u8; 32]).id(),
                        power: 1,
                        address: format!("http://127.0.0.1:{}", 1000 + n),
                        stake: 0,
                    })
                    .collect(),
            };
            store::set_validators(&mut log, &set).unwrap();
        }
        let mut node = Node::open(
            Box::new(log),
            genesis(),
            7,
            Identity::from_secret([100 + i as u8; 32]),
        )
        .unwrap();
        node.replicated = true;
        let node = Arc::new(Mutex::new(node));
        let log = LogStore::new(RaftDb::open(&dir).unwrap());
        let fresh = log.is_new().unwrap();
        let sm = StateMachine::new(
            node.clone(),
            Arc::new(tokio::sync::Notify::new()),
            crate::consensus::LiveSet::default(),
        )
        .unwrap();
        let net = Net {
            router: self.router.clone(),
            from: i as u64,
        };
        let config = super::config("prop", &timing()).unwrap();
        let raft = openraft::Raft::new(i as u64, config, net, log, sm)
            .await
            .unwrap();
        if fresh {
            let members: BTreeMap<u64, BasicNode> = (0..MEMBERS as u64)
                .map(|n| (n, BasicNode::new(format!("mem://{n}"))))
                .collect();
            let _ = raft.initialize(members).await;
        }
        self.router
            .up
            .lock()
            .unwrap()
            .insert(i as u64, raft.clone());
        self.members[i].node = Some(node);
        self.members[i].raft = Some(raft);
    }

    async fn crash(&mut self, i: usize) {
        self.router.up.lock().unwrap().remove(&(i as u64));
        if let Some(raft) = self.members[i].raft.take() {
            let _ = raft.shutdown().await;
        }
        self.members[i].node = None;
    }

    /// Proposes through whichever member leads; a write that does not commit in time is
    /// simply not acknowledged (its nonce is skipped, which the engine allows).
    async fn write(&mut self, transfers: u8) {
        let leader = self
            .members
            .iter()
            .filter_map(|m| m.raft.as_ref())
            .find(|r| {
                let m = r.metrics().borrow().clone();
                m.current_leader == Some(m.id)
            });
        let Some(leader) = leader.cloned() else {
            return;
        };
        let keys = senders();
        let inputs: Vec<Input> = (0..transfers)
            .map(|k| {
                let from = usize::from(k) % keys.len();
                let to = (from + 1) % keys.len();
                self.nonces[from] += 1;
                Input::Signed(keys[from].sign_with_nonce(
                    self.nonces[from],
                    Action::Transfer {
                        to: keys[to].id(),
                        amount: 1,
                    },
                ))
            })
            .collect();
        let time = 1_000 + self.nonces.iter().sum::<u64>();
        let proposal = Proposal::Inputs { time, inputs };
        let _ =
            tokio::time::timeout(Duration::from_millis(400), leader.client_write(proposal)).await;
    }

    async fn seal(&self) {
        for m in self.members.iter().filter_map(|m| m.raft.as_ref()) {
            let metrics = m.metrics().borrow().clone();
            if metrics.current_leader == Some(metrics.id) {
                let seal = Proposal::Seal {
                    time: 5_000,
                    proposer: AccountId([metrics.id as u8; 32]),
                };
                let _ =
                    tokio::time::timeout(Duration::from_millis(400), m.client_write(seal)).await;
            }
        }
    }

    /// (log length, state hash) of every running member, read under its lock.
    fn views(&self) -> Vec<(u64, Hash)> {
        self.members
            .iter()
            .filter_map(|m| m.node.as_ref())
            .map(|n| {
                let n = n.lock().unwrap();
                (n.log_len(), n.state.hash())
            })
            .collect()
    }

    /// The invariant: one log length, one state.
    fn check(&self) {
        let mut seen: BTreeMap<u64, Hash> = BTreeMap::new();
        for (len, hash) in self.views() {
            let first = *seen.entry(len).or_insert(hash);
            assert_eq!(first, hash, "two validators at log length {len} disagree");
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Write(u8),
    Seal,
    Crash(usize),
    Restart(usize),
    Cut(usize),
    Heal,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..6).prop_map(Op::Write),
        1 => Just(Op::Seal),
        1 => (0..MEMBERS).prop_map(Op::Crash),
        1 => (0..MEMBERS).prop_map(Op::Restart),
        1 => (0..MEMBERS).prop_map(Op::Cut),
        1 => Just(Op::Heal),
    ]
}

async fn run(ops: Vec<Op>) {
    let mut cluster = Cluster::new().await;
    for op in ops {
        match op {
            Op::Write(n) => cluster.write(n).await,
            Op::Seal => cluster.seal().await,
            Op::Crash(i) => cluster.crash(i).await,
            Op::Restart(i) => cluster.start(i).await,
            Op::Cut(i) => {
                cluster.router.cut.lock().unwrap().insert(i as u64);
            }
            Op::Heal => cluster.router.cut.lock().unwrap().clear(),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        cluster.check();
    }
    // Heal everything and bring everybody back: they converge on one log, state and chain.
    cluster.router.cut.lock().unwrap().clear();
    for i in 0..MEMBERS {
        cluster.start(i).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        cluster.write(1).await;
        let views = cluster.views();
        // Blocks too: a member that caught up may seal the blocks its log names a moment after
        // its state matches.
        let chains: Vec<Vec<engine::BlockHeader>> = cluster
            .members
            .iter()
            .filter_map(|m| m.node.as_ref())
            .map(|n| {
                let n = n.lock().unwrap();
                n.blocks_after(0, 100_000)
                    .unwrap()
                    .into_iter()
                    .map(|b| b.header)
                    .collect()
            })
            .collect();
        if views.len() == MEMBERS
            && views.windows(2).all(|w| w[0] == w[1])
            && chains.windows(2).all(|w| w[0] == w[1])
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the validators did not converge: {views:?}, blocks per member {:?}",
            chains.iter().map(Vec::len).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.check();
    let logs: Vec<_> = cluster
        .members
        .iter()
        .map(|m| {
            let n = m.node.as_ref().unwrap().lock().unwrap();
            (
                n.raw_entries(0, 100_000).unwrap(),
                n.blocks_after(0, 100_000).unwrap(),
            )
        })
        .collect();
    for (i, other) in logs.iter().enumerate().skip(1) {
        assert_eq!(logs[0].0, other.0, "validator {i}'s command log differs");
        // Blocks are sealed where the log says so: the same headers everywhere (each member
        // signs them with its own key).
        let headers = |blocks: &Vec<engine::Block>| {
            blocks.iter().map(|b| b.header.clone()).collect::<Vec<_>>()
        };
        assert_eq!(
            headers(&logs[0].1),
            headers(&other.1),
            "validator {i}'s blocks differ"
        );
    }
    for i in 0..MEMBERS {
        cluster.crash(i).await;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn replicas_agree_under_crashes_restarts_and_partitions(ops in proptest::collection::vec(op(), 8..30)) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run(ops));
    }
}
