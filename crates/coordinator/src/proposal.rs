//! What a leader proposes for ordering, and how every validator executes it.
//!
//! A [`Proposal`] carries everything its execution depends on — the time, the signed inputs, and
//! for a work fetch the provider's own request plus the leader's view of who else is waiting — so
//! that [`Node::execute`] is a pure function of (state, proposal): every validator that applies
//! the same proposals in the same order reaches the same state, log and blocks. In particular the
//! tasks a provider gets are picked by the engine's scheduler *during* execution on every
//! validator, not chosen by the leader; the leader only decides the order and the time.
//!
//! A single coordinator executes proposals directly ([`crate::consensus::Solo`]); validators
//! execute them once the consensus engine has committed them ([`crate::raft`]).

use crate::error::ApiError;
use crate::node::{Node, Staged};
use engine::{
    AccountId, Action, BlockHeader, Event, Hash, Input, LeaderCommand, Rejection, Signed, TaskId,
    Time,
};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// Largest number of waiting providers a proposal names (the scheduler's hold rule compares
/// against at most this many; eager dispatch assigns to at most this many).
pub const WAITING_MAX: usize = 64;

/// One unit of ordering. Stored in the consensus log, so its encoding is versioned by the enum
/// tag: a new shape is a new variant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Proposal {
    /// Apply `inputs` in order, all at `time` (a group commit).
    Inputs { time: Time, inputs: Vec<Input> },
    /// Apply `input` (a job submission) and, if accepted, hand its tasks to the `waiting`
    /// providers as their fetches would.
    Submit {
        time: Time,
        input: Box<Input>,
        waiting: Vec<Waiting>,
    },
    /// A provider's work fetch, with the report it carried.
    Deliver(Box<Deliver>),
    /// Seal the entries applied since the last block into the next block, at `time`, naming the
    /// leader that proposed it.
    Seal { time: Time, proposer: AccountId },
}

/// A provider waiting for work, and which of the blobs the scheduler looks at it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    pub provider: AccountId,
    pub cached: Vec<Hash>,
}

/// A work fetch: what the provider signed (how many tasks, what it holds) and the leader's view
/// of the others waiting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deliver {
    pub time: Time,
    pub provider: AccountId,
    pub max: u32,
    /// Tasks the provider says it holds: any other task assigned to it is delivered again.
    pub held: Vec<TaskId>,
    /// Blobs the provider says it holds.
    pub cached: Vec<Hash>,
    /// Its report of finished tasks, applied first.
    pub report: Option<Signed<Action>>,
    /// Other providers waiting for work (for the scheduler's hold rule).
    pub idle: Vec<Waiting>,
}

/// Why an input of a proposal was not committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    Rejected(Rejection),
    /// A signed input whose signature does not verify (only a dishonest leader proposes one).
    BadSignature(String),
    /// Its nonce was already seen in an unlogged request (checked before proposing).
    Replay(String),
    /// It was accepted but could not be made durable; nothing was acknowledged.
    Unavailable(String),
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        match r {
            Refusal::Rejected(r) => r.into(),
            Refusal::BadSignature(s) => ApiError::BadSignature(s),
            Refusal::Replay(s) => ApiError::Replay(s),
            Refusal::Unavailable(s) => ApiError::Unavailable(s),
        }
    }
}

/// Per input of a proposal, in order: its log seq and events, or why it was refused.
pub type Results = Vec<Result<(u64, Vec<Event>), Refusal>>;

/// What executing a proposal gave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Per input, in order: its log seq and events, or why it was refused.
    Committed(Results),
    /// A fetch: the report's seq (if it carried one) and the tasks to hand over.
    Delivered {
        reported: Option<Result<u64, Refusal>>,
        tasks: Vec<TaskId>,
        /// Replicas were queued for other providers: wake their fetches.
        queued_replicas: bool,
    },
    /// The header of the block sealed, if there was anything to seal.
    Sealed(Option<BlockHeader>),
}

/// A proposal's execution failed as a whole: the log could not be written. The state is back to
/// what the log holds.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ExecuteError(pub String);

impl Node {
    /// Executes `proposal` on the state and makes what it accepted durable, recording
    /// `meta[marker.0] = marker.1` in the same transaction when a marker is given. Deterministic:
    /// reads nothing but the state and the proposal.
    pub fn execute(
        &mut self,
        proposal: Proposal,
        marker: Option<(&str, &[u8])>,
    ) -> Result<Outcome, ExecuteError> {
        match proposal {
            Proposal::Inputs { time, inputs } => {
                let mut staged = Staged::default();
                for input in inputs {
                    self.stage(&mut staged, time, input);
                }
                let done = self.append_marked(staged, marker)?;
                Ok(Outcome::Committed(done))
            }
            Proposal::Submit {
                time,
                input,
                waiting,
            } => {
                let mut staged = Staged::default();
                if self.stage(&mut staged, time, *input) {
                    let cached = cache_map(&waiting);
                    let ids: Vec<AccountId> = waiting.iter().map(|w| w.provider).collect();
                    for provider in &ids {
                        let others: Vec<AccountId> =
                            ids.iter().filter(|p| *p != provider).copied().collect();
                        let picks = self.pick(*provider, u32::MAX, time, &cached, &others);
                        if !picks.is_empty() {
                            let assign = Input::Leader(LeaderCommand::AssignTasks {
                                provider: *provider,
                                tasks: picks,
                            });
                            self.stage(&mut staged, time, assign);
                        }
                    }
                }
                let mut done = self.append_marked(staged, marker)?;
                done.truncate(1);
                Ok(Outcome::Committed(done))
            }
            Proposal::Deliver(d) => self.deliver(*d, marker),
            Proposal::Seal { time, proposer } => {
                let header = self
                    .seal_at(time, proposer)
                    .map_err(|e| ExecuteError(format!("sealing a block: {e:#}")))?;
                Ok(Outcome::Sealed(header))
            }
        }
    }

    fn deliver(
        &mut self,
        d: Deliver,
        marker: Option<(&str, &[u8])>,
    ) -> Result<Outcome, ExecuteError> {
        let Deliver {
            time,
            provider,
            max,
            held,
            cached,
            report,
            idle,
        } = d;
        let mut staged = Staged::default();
        let reporting = report.is_some();
        if let Some(report) = report
            && !self.stage(&mut staged, time, Input::Signed(report))
        {
            // A refused report refuses the whole fetch and changes nothing.
            let refusal = self
                .append_marked(staged, marker)?
                .pop()
                .and_then(Result::err);
            return Ok(Outcome::Delivered {
                reported: Some(Err(refusal.unwrap_or_else(|| {
                    Refusal::Unavailable("the report was neither accepted nor refused".into())
                }))),
                tasks: Vec::new(),
                queued_replicas: false,
            });
        }
        let held: HashSet<TaskId> = held.into_iter().collect();
        let orphans: Vec<TaskId> = self
            .state
            .providers
            .get(&provider)
            .map(|p| {
                p.running
                    .iter()
                    .filter(|t| !held.contains(t))
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        let tasks = if !orphans.is_empty() {
            orphans
        } else {
            let mut caches = cache_map(&idle);
            caches.insert(provider, cached.into_iter().collect());
            let others: Vec<AccountId> = idle
                .iter()
                .map(|w| w.provider)
                .filter(|p| *p != provider)
                .collect();
            let picks = self.pick(provider, max, time, &caches, &others);
            if !picks.is_empty() {
                let assign = Input::Leader(LeaderCommand::AssignTasks {
                    provider,
                    tasks: picks.clone(),
                });
                self.stage(&mut staged, time, assign);
            }
            picks
        };
        let mut done = self.append_marked(staged, marker)?.into_iter();
        let reported = if reporting {
            done.next().map(|r| r.map(|(seq, _)| seq))
        } else {
            None
        };
        let queued_replicas = done.next().is_some_and(|assigned| {
            assigned.is_ok_and(|(_, events)| {
                events
                    .iter()
                    .any(|e| matches!(e, Event::ReplicasQueued { .. }))
            })
        });
        Ok(Outcome::Delivered {
            reported,
            tasks,
            queued_replicas,
        })
    }

    /// Whether a [`Deliver`] without a report would hand `provider` anything on the current
    /// state (a dry run of [`Node::execute`]'s pick; changes nothing).
    pub fn would_deliver(
        &self,
        provider: AccountId,
        max: u32,
        held: &[TaskId],
        cached: &[Hash],
        idle: &[Waiting],
        time: Time,
    ) -> bool {
        let held: HashSet<&TaskId> = held.iter().collect();
        if self
            .state
            .providers
            .get(&provider)
            .is_some_and(|p| p.running.iter().any(|t| !held.contains(t)))
        {
            return true;
        }
        let mut caches = cache_map(idle);
        caches.insert(provider, cached.iter().copied().collect());
        let others: Vec<AccountId> = idle
            .iter()
            .map(|w| w.provider)
            .filter(|p| *p != provider)
            .collect();
        !self.pick(provider, max, time, &caches, &others).is_empty()
    }

    /// This validator's signed attestations that it has not heard from those of `candidates`
    /// it has not heard from for `timeout` (see [`engine::Silence`]).
    pub fn silence(
        &self,
        candidates: &[AccountId],
        timeout: std::time::Duration,
    ) -> Vec<Signed<engine::Silence>> {
        let now = std::time::Instant::now();
        let at = crate::now_ms();
        candidates
            .iter()
            .filter(|p| now.duration_since(self.last_seen(p)) > timeout)
            .map(|p| self.sign_silence(engine::Silence { provider: *p, at }))
            .collect()
    }

    /// The scheduler's pick for `provider` on the current state.
    fn pick(
        &self,
        provider: AccountId,
        max: u32,
        now: Time,
        caches: &HashMap<AccountId, HashSet<Hash>>,
        idle: &[AccountId],
    ) -> Vec<TaskId> {
        let cached = |p: &AccountId, h: &Hash| caches.get(p).is_some_and(|set| set.contains(h));
        let ctx = engine::Dispatch {
            now,
            cached: &cached,
            idle,
        };
        self.state.pick_tasks(provider, max, &ctx)
    }

    /// [`Node::append_staged`] with a marker, as refusals rather than HTTP errors; a failed
    /// write is an error of the whole proposal.
    fn append_marked(
        &mut self,
        staged: Staged,
        marker: Option<(&str, &[u8])>,
    ) -> Result<Results, ExecuteError> {
        let committed = self.append_staged_marked(staged, marker);
        committed
            .into_iter()
            .map(|r| match r {
                Err(Refusal::Unavailable(e)) => Err(ExecuteError(e)),
                other => Ok(other),
            })
            .collect()
    }

    /// For each waiting provider, the blobs it holds among those the scheduler compares providers
    /// by: the modules of jobs with queued work and the blobs of `also` (a job just submitted).
    /// What goes into a [`Proposal`] instead of the providers' whole cache listings.
    pub fn waiting(&self, except: Option<AccountId>, also: &[Hash]) -> Vec<Waiting> {
        let ids: Vec<AccountId> = self
            .idle
            .iter()
            .filter(|p| Some(**p) != except)
            .take(WAITING_MAX)
            .copied()
            .collect();
        if ids.is_empty() {
            return Vec::new();
        }
        let mut relevant: Vec<Hash> = also.to_vec();
        relevant.extend(self.queued_modules());
        ids.into_iter()
            .map(|provider| {
                let cached = self
                    .cached
                    .get(&provider)
                    .map(|set| {
                        relevant
                            .iter()
                            .filter(|h| set.contains(h))
                            .copied()
                            .collect()
                    })
                    .unwrap_or_default();
                Waiting { provider, cached }
            })
            .collect()
    }

    /// The modules of the jobs with queued work, one per job.
    fn queued_modules(&self) -> Vec<Hash> {
        let mut modules = Vec::new();
        let mut next = self.state.queue.iter().next().copied();
        while let Some(task) = next {
            if let Some(job) = self.state.jobs.get(&task.job) {
                modules.push(job.spec.module);
            }
            let Some(after) = task.job.checked_add(1) else {
                break;
            };
            next = self
                .state
                .queue
                .range(
                    TaskId {
                        job: after,
                        index: 0,
                    }..,
                )
                .next()
                .copied();
        }
        modules
    }
}

fn cache_map(waiting: &[Waiting]) -> HashMap<AccountId, HashSet<Hash>> {
    waiting
        .iter()
        .map(|w| (w.provider, w.cached.iter().copied().collect()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::Identity;
    use engine::SILENCE_MAX_SKEW_MS;

    #[test]
    fn a_provider_is_lost_only_on_a_majority_of_validators_attestations() {
        let dir = tempfile::tempdir().unwrap();
        let keys: Vec<Identity> = (1..=3u8).map(|n| Identity::from_secret([n; 32])).collect();
        let mut genesis = engine::Genesis::dev(AccountId([9; 32]));
        genesis.params.min_stake = 0;
        genesis.validators = engine::Validators::new(engine::ValidatorSet {
            validators: keys
                .iter()
                .zip(7000u16..)
                .map(|(k, port)| engine::Validator {
                    account: k.id(),
                    power: 1,
                    address: format!("http://127.0.0.1:{port}"),
                    stake: 0,
                })
                .collect(),
        });
        let fresh = engine::State::from_genesis(&genesis).unwrap();
        let log = store::SqliteLog::open(dir.path()).unwrap();
        let mut node =
            Node::open(Box::new(log), fresh, 1000, Identity::from_secret([1; 32])).unwrap();
        node.replicated = true;
        let provider = Identity::from_secret([50; 32]);
        let register = Input::Signed(provider.sign(Action::RegisterProvider(
            engine::ProviderSpec {
                slots: 1,
                cores: 1,
                memory_bytes: 1 << 30,
                gpu: None,
                benchmark_score: 1,
                region: "local".into(),
                price_per_fuel: 1,
                operator: None,
            },
        )));
        let t = 1_000_000;
        node.execute(
            Proposal::Inputs {
                time: t,
                inputs: vec![register],
            },
            None,
        )
        .unwrap();
        let active = |node: &Node| {
            node.state.providers[&provider.id()].status == engine::ProviderStatus::Active
        };
        let says = |k: &Identity, at: Time| {
            k.sign(engine::Silence {
                provider: provider.id(),
                at,
            })
        };
        let lost = |attestations| {
            Input::Lost(Box::new(engine::Lost {
                provider: provider.id(),
                attestations,
            }))
        };
        let mut forged = says(&keys[1], t);
        forged.body.at += 1;
        let outsider = Identity::from_secret([60; 32]);
        let mut other = says(&keys[1], t);
        other.body.provider = AccountId([51; 32]);
        let other = keys[1].sign(other.body);
        let not_enough = [
            ("one validator alone", vec![says(&keys[0], t)], "majority"),
            (
                "one validator twice",
                vec![says(&keys[0], t), says(&keys[0], t)],
                "twice",
            ),
            (
                "a forged second",
                vec![says(&keys[0], t), forged],
                "does not verify",
            ),
            (
                "a stale second",
                vec![
                    says(&keys[0], t),
                    says(&keys[1], t - SILENCE_MAX_SKEW_MS - 1),
                ],
                "from the entry's time",
            ),
            (
                "a non-validator second",
                vec![says(&keys[0], t), says(&outsider, t)],
                "not a validator",
            ),
            (
                "a second about another provider",
                vec![says(&keys[0], t), other],
                "another provider",
            ),
        ];
        for (what, attestations, why) in not_enough {
            let before = (node.state.hash(), node.log_len());
            let outcome = node
                .execute(
                    Proposal::Inputs {
                        time: t + 10,
                        inputs: vec![lost(attestations)],
                    },
                    None,
                )
                .unwrap();
            let Outcome::Committed(results) = outcome else {
                panic!("{what}: {outcome:?}")
            };
            let err = format!("{:?}", results[0].as_ref().unwrap_err());
            assert!(err.contains(why), "{what}: {err}");
            assert!(active(&node), "{what}");
            assert_eq!((node.state.hash(), node.log_len()), before, "{what}");
        }
        // Two of three: lost, and the evidence is in the log.
        let outcome = node
            .execute(
                Proposal::Inputs {
                    time: t + 10,
                    inputs: vec![lost(vec![says(&keys[0], t), says(&keys[2], t + 5)])],
                },
                None,
            )
            .unwrap();
        let Outcome::Committed(results) = outcome else {
            panic!("{outcome:?}")
        };
        assert!(results[0].is_ok(), "{results:?}");
        assert!(!active(&node));
    }

    #[test]
    fn proposals_round_trip_through_postcard() {
        let who = api::Identity::from_secret([7; 32]);
        let proposals = [
            Proposal::Inputs {
                time: 5,
                inputs: vec![
                    Input::Signed(who.sign(Action::Faucet)),
                    Input::Leader(LeaderCommand::ExpireJob { job: 3 }),
                ],
            },
            Proposal::Deliver(Box::new(Deliver {
                time: 9,
                provider: who.id(),
                max: 4,
                held: vec![TaskId { job: 1, index: 2 }],
                cached: vec![Hash([3; 32])],
                report: Some(who.sign(Action::ReportResults(Vec::new()))),
                idle: vec![Waiting {
                    provider: AccountId([1; 32]),
                    cached: vec![],
                }],
            })),
            Proposal::Seal {
                time: 11,
                proposer: who.id(),
            },
            Proposal::Inputs {
                time: 12,
                inputs: vec![Input::Lost(Box::new(engine::Lost {
                    provider: AccountId([2; 32]),
                    attestations: vec![who.sign(engine::Silence {
                        provider: AccountId([2; 32]),
                        at: 12,
                    })],
                }))],
            },
        ];
        for p in proposals {
            let bytes = postcard::to_stdvec(&p).unwrap();
            assert_eq!(postcard::from_bytes::<Proposal>(&bytes).unwrap(), p);
        }
    }
}
