//! The seam between the coordinator and a consensus engine: the leader *proposes* ([`Proposal`]),
//! the engine orders and replicates, and every member executes the committed proposals in order
//! ([`crate::node::Node::execute`]). Handlers and timers only ever talk to this trait, so a
//! Byzantine engine can replace Raft later without touching the engine or the routes.
//!
//! - [`Solo`]: a single coordinator, the one-validator case: executes at once, no extra cost.
//! - [`crate::raft::Replicated`]: a validator of a set, over openraft.

use crate::error::ApiError;
use crate::node::Node;
use crate::proposal::{Outcome, Proposal};
use engine::AccountId;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// A proposal on its way to being committed and executed.
pub type Proposed<'a> = Pin<Box<dyn Future<Output = Result<Outcome, ApiError>> + Send + 'a>>;

/// Where this member stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    /// This member's validator account.
    pub validator: AccountId,
    /// Whether it may propose now.
    pub leader: bool,
    /// `coordinator` (alone), `leader`, `follower`, `candidate` or `learner`.
    pub name: &'static str,
    /// The current leader, when one is known.
    pub leader_id: Option<AccountId>,
    /// Where the current leader is reached, when known.
    pub leader_url: Option<String>,
    /// The consensus term (0 for a single coordinator).
    pub term: u64,
}

/// A consensus engine as the coordinator sees it.
pub trait Consensus: Send + Sync + 'static {
    /// Orders `proposal`, makes it durable (on a majority, for a replicated engine), executes it
    /// and answers its outcome. Only the leader may propose: others answer
    /// [`ApiError::NotLeader`].
    fn propose(&self, proposal: Proposal) -> Proposed<'_>;
    /// This member's role now.
    fn role(&self) -> Role;
}

/// One coordinator that is its own validator set.
pub struct Solo {
    node: Arc<Mutex<Node>>,
    validator: AccountId,
}

impl Solo {
    pub fn new(node: Arc<Mutex<Node>>, validator: AccountId) -> Solo {
        Solo { node, validator }
    }
}

impl Consensus for Solo {
    fn propose(&self, proposal: Proposal) -> Proposed<'_> {
        let outcome = self
            .node
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .execute(proposal, None)
            .map_err(|e| ApiError::Unavailable(format!("could not write the command log: {e}")));
        Box::pin(std::future::ready(outcome))
    }

    fn role(&self) -> Role {
        Role {
            validator: self.validator,
            leader: true,
            name: "coordinator",
            leader_id: Some(self.validator),
            leader_url: None,
            term: 0,
        }
    }
}

/// The validator set as of the last applied proposal, shared by everything that talks to the
/// other validators: it changes when validators holding a majority of the voting power approve a
/// change (`Action::ValidatorVote`). Empty for a single coordinator.
#[derive(Clone, Debug, Default)]
pub struct LiveSet(Arc<std::sync::RwLock<engine::ValidatorSet>>);

impl LiveSet {
    pub fn new(set: engine::ValidatorSet) -> LiveSet {
        LiveSet(Arc::new(std::sync::RwLock::new(set)))
    }

    /// The set now (a copy: never hold it across an await).
    pub fn get(&self) -> engine::ValidatorSet {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reads the set without copying it.
    pub fn with<T>(&self, f: impl FnOnce(&engine::ValidatorSet) -> T) -> T {
        f(&self.0.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Replaces the set if `now` differs (after a proposal was applied).
    pub fn update(&self, now: &engine::ValidatorSet) {
        if self.with(|set| set != now) {
            *self.0.write().unwrap_or_else(|p| p.into_inner()) = now.clone();
        }
    }
}
