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
    AccountId, Action, BlockHeader, Event, Hash, Input, Rejection, Request, Signed, TaskId, Time,
    WAITING_MAX, Waiting, WorkFetch,
};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// One unit of ordering. Stored in the consensus log, so its encoding is versioned by the enum
/// tag: a new shape is a new variant, and the old one is still read (see [`Legacy`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Proposal {
    /// Apply `inputs` in order, all at `time` (a group commit).
    Inputs { time: Time, inputs: Vec<Input> },
    /// Format 1 of [`Proposal::Submit`]: executed as its input alone.
    SubmitV1(Legacy),
    /// Format 1 of [`Proposal::Fetch`]: executed as its report alone.
    DeliverV1(Box<LegacyDeliver>),
    /// Seal the entries applied since the last block into the next block, at `time`, naming the
    /// leader that proposed it.
    Seal { time: Time, proposer: AccountId },
    /// Apply `input` (a job submission) and, if accepted, serve the `fetches` of the providers
    /// waiting for work with its tasks (one [`Input::Fetch`]).
    Submit {
        time: Time,
        input: Box<Input>,
        fetches: Vec<Signed<Request>>,
    },
    /// A provider's work fetch, with the report it carried.
    Fetch(Box<Fetch>),
}

/// A work fetch as proposed: what the provider signed, the report that came with it, and the
/// leader's view of the others waiting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fetch {
    pub time: Time,
    /// The provider's signed [`Request::Fetch`].
    pub fetch: Signed<Request>,
    /// Its report of finished tasks, applied first.
    pub report: Option<Signed<Action>>,
    /// Other providers waiting for work (for the scheduler's hold rule).
    pub waiting: Vec<Waiting>,
}

/// [`Proposal::SubmitV1`]: a submission and the providers waiting at the time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Legacy {
    pub time: Time,
    pub input: Box<Input>,
    pub waiting: Vec<Waiting>,
}

/// [`Proposal::DeliverV1`]: a fetch without the provider's signature, which no validator
/// assigns on any more.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyDeliver {
    pub time: Time,
    pub provider: AccountId,
    pub max: u32,
    pub held: Vec<TaskId>,
    pub cached: Vec<Hash>,
    pub report: Option<Signed<Action>>,
    pub idle: Vec<Waiting>,
}

/// The most cached blobs the parked fetches a [`Proposal::Submit`] serves may list in all.
pub const SUBMIT_CACHED_MAX: usize = 4096;

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
        let started = std::time::Instant::now();
        let outcome = self.execute_timed(proposal, marker);
        self.live.commit(started.elapsed());
        outcome
    }

    fn execute_timed(
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
                fetches,
            } => {
                let mut staged = Staged::default();
                if self.stage(&mut staged, time, *input) && !fetches.is_empty() {
                    let serve = Input::Fetch(Box::new(WorkFetch {
                        fetches,
                        waiting: Vec::new(),
                    }));
                    self.stage(&mut staged, time, serve);
                }
                let mut done = self.append_marked(staged, marker)?;
                done.truncate(1);
                Ok(Outcome::Committed(done))
            }
            Proposal::SubmitV1(Legacy { time, input, .. }) => {
                let mut staged = Staged::default();
                self.stage(&mut staged, time, *input);
                Ok(Outcome::Committed(self.append_marked(staged, marker)?))
            }
            Proposal::Fetch(f) => self.fetch(*f, marker),
            Proposal::DeliverV1(d) => {
                let mut staged = Staged::default();
                let reporting = d.report.is_some();
                if let Some(report) = d.report {
                    self.stage(&mut staged, d.time, Input::Signed(report));
                }
                let reported = self.append_marked(staged, marker)?.pop();
                Ok(Outcome::Delivered {
                    reported: reported
                        .filter(|_| reporting)
                        .map(|r| r.map(|(seq, _)| seq)),
                    tasks: Vec::new(),
                    queued_replicas: false,
                })
            }
            Proposal::Seal { time, proposer } => {
                let header = self
                    .seal_at(time, proposer)
                    .map_err(|e| ExecuteError(format!("sealing a block: {e:#}")))?;
                Ok(Outcome::Sealed(header))
            }
        }
    }

    fn fetch(&mut self, f: Fetch, marker: Option<(&str, &[u8])>) -> Result<Outcome, ExecuteError> {
        let Fetch {
            time,
            fetch,
            report,
            waiting,
        } = f;
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
        let orphans = self.orphans(&fetch);
        let tasks = if !orphans.is_empty() {
            orphans
        } else {
            let serve = Input::Fetch(Box::new(WorkFetch {
                fetches: vec![fetch],
                waiting,
            }));
            if self.stage(&mut staged, time, serve) {
                staged
                    .outcomes
                    .last()
                    .and_then(|o| o.as_ref().ok())
                    .into_iter()
                    .flatten()
                    .filter_map(|e| match e {
                        Event::TasksAssigned { tasks, .. } => Some(tasks.clone()),
                        _ => None,
                    })
                    .flatten()
                    .collect()
            } else {
                Vec::new()
            }
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

    /// Tasks assigned to the signer of `fetch` that it does not say it holds (an answer lost to
    /// a crash or a network failure): delivered again, before anything new.
    pub(crate) fn orphans(&self, fetch: &Signed<Request>) -> Vec<TaskId> {
        let Request::Fetch { held, .. } = &fetch.body else {
            return Vec::new();
        };
        let held: HashSet<&TaskId> = held.iter().collect();
        self.state
            .providers
            .get(&fetch.signer)
            .map(|p| {
                p.running
                    .iter()
                    .filter(|t| !held.contains(t))
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether a [`Proposal::Fetch`] of `fetch` without a report would hand its signer
    /// anything on the current state (a dry run of its execution; changes nothing).
    pub fn would_deliver(&self, fetch: &Signed<Request>, waiting: &[Waiting], time: Time) -> bool {
        if !self.orphans(fetch).is_empty() {
            return true;
        }
        let dry = WorkFetch {
            fetches: vec![fetch.clone()],
            waiting: waiting.to_vec(),
        };
        !self.state.would_fetch(&dry, time).is_empty()
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
            .keys()
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

    /// The signed fetches of the providers waiting for work, to serve with a job just submitted:
    /// at most [`WAITING_MAX`], listing at most [`SUBMIT_CACHED_MAX`] cached blobs in all (the
    /// log keeps them whole, signed). Those left out are woken and fetch for themselves.
    pub fn parked_fetches(&self) -> Vec<Signed<Request>> {
        let mut listed = 0usize;
        self.idle
            .values()
            .filter(|f| {
                let Request::Fetch { cached, .. } = &f.body else {
                    return false;
                };
                listed = listed.saturating_add(cached.len());
                listed <= SUBMIT_CACHED_MAX
            })
            .take(WAITING_MAX)
            .cloned()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::tests::validator_set;
    use api::Identity;
    use engine::SILENCE_MAX_SKEW_MS;

    /// Rules 4: once the set changed, no vote is taken until the change's block is sealed, on
    /// every validator alike (one change per block, so each block's certifying set is known).
    #[test]
    fn a_vote_waits_until_the_last_set_change_is_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let keys: Vec<Identity> = (1..=4u8).map(|n| Identity::from_secret([n; 32])).collect();
        let mut genesis = engine::Genesis::dev(AccountId([9; 32]));
        genesis.action_fee = 0; // (fees per action are the engine tests' subject)
        genesis.validators = engine::Validators::new(validator_set(&keys));
        let fresh = engine::State::from_genesis(&genesis).unwrap();
        let log = store::SqliteLog::open(dir.path()).unwrap();
        let mut node =
            Node::open(Box::new(log), fresh, 1000, Identity::from_secret([1; 32])).unwrap();
        node.replicated = true;
        let t = 1_000_000;
        let vote = |node: &mut Node, k: &Identity, who: &Identity| {
            let input = Input::Signed(k.sign(Action::ValidatorVote(
                engine::ValidatorChange::Remove(who.id()),
            )));
            match node
                .execute(
                    Proposal::Inputs {
                        time: t,
                        inputs: vec![input],
                    },
                    None,
                )
                .unwrap()
            {
                Outcome::Committed(mut done) => done.remove(0),
                _ => panic!("not committed"),
            }
        };
        // Three of four remove the fourth.
        for k in &keys[0..3] {
            vote(&mut node, k, &keys[3]).unwrap();
        }
        assert_eq!(node.state.validators.set.validators.len(), 3);
        // Before its block: refused, and nothing changes.
        let before = node.state.hash();
        match vote(&mut node, &keys[0], &keys[2]) {
            Err(Refusal::Rejected(engine::Rejection::InvalidValidatorChange(why))) => {
                assert!(why.contains("since the last block"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(node.state.hash(), before);
        // After it: taken (pending).
        node.execute(
            Proposal::Seal {
                time: t,
                proposer: keys[0].id(),
            },
            None,
        )
        .unwrap();
        vote(&mut node, &keys[0], &keys[2]).unwrap();
        assert_eq!(node.state.validators.pending.len(), 1);
    }

    #[test]
    fn a_provider_is_lost_only_on_a_majority_of_validators_attestations() {
        let dir = tempfile::tempdir().unwrap();
        let keys: Vec<Identity> = (1..=3u8).map(|n| Identity::from_secret([n; 32])).collect();
        let mut genesis = engine::Genesis::dev(AccountId([9; 32]));
        genesis.action_fee = 0; // (fees per action are the engine tests' subject)
        genesis.params.min_stake = 0;
        genesis.validators = engine::Validators::new(validator_set(&keys));
        let fresh = engine::State::from_genesis(&genesis).unwrap();
        let log = store::SqliteLog::open(dir.path()).unwrap();
        let mut node =
            Node::open(Box::new(log), fresh, 1000, Identity::from_secret([1; 32])).unwrap();
        node.replicated = true;
        let provider = Identity::from_secret([50; 32]);
        let register = crate::node::tests::register(&provider);
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

    /// On a validator, a task goes out only on its provider's own signed fetch, once: a forged
    /// fetch, a replayed one and a leader's bare assignment change nothing.
    #[test]
    fn a_validator_assigns_only_on_a_providers_signed_fetch_once() {
        let dir = tempfile::tempdir().unwrap();
        let validator = Identity::from_secret([1; 32]);
        let requester = Identity::from_secret([40; 32]);
        let provider = Identity::from_secret([50; 32]);
        let mut genesis = engine::Genesis::dev(AccountId([9; 32]));
        genesis.action_fee = 0; // (fees per action are the engine tests' subject)
        genesis.params.min_stake = 0;
        genesis
            .allocations
            .insert(requester.id(), engine::tokens(1_000));
        genesis.validators = engine::Validators::new(engine::ValidatorSet {
            validators: vec![engine::Validator {
                account: validator.id(),
                power: 1,
                address: "http://127.0.0.1:7000".into(),
                stake: 0,
            }],
        });
        let fresh = engine::State::from_genesis(&genesis).unwrap();
        let log = store::SqliteLog::open(dir.path()).unwrap();
        let mut node = Node::open(Box::new(log), fresh, 1000, validator).unwrap();
        node.replicated = true;
        let t = 1_000_000;
        let spec = engine::JobSpec {
            module: Hash([7; 32]),
            tasks: vec![engine::TaskSpec::default(); 2],
            limits: engine::Limits {
                fuel: 1000,
                memory_bytes: 1 << 20,
                wall_ms: 1000,
            },
            deadline: t + 600_000,
            max_price: 1_000,
            output: engine::OutputSource::Stdout,
            aggregate: engine::Aggregate::Concat,
            redundancy: engine::Redundancy::Fixed {
                quorum: 1,
                max_results: 1,
            },
            requirements: Default::default(),
        };
        let inputs = vec![
            crate::node::tests::register(&provider),
            Input::Signed(requester.sign(Action::SubmitJobWithStorage {
                spec,
                storage: engine::StorageClaim::default(),
            })),
        ];
        let Outcome::Committed(done) = node
            .execute(Proposal::Inputs { time: t, inputs }, None)
            .unwrap()
        else {
            panic!()
        };
        assert!(done.iter().all(Result::is_ok), "{done:?}");
        let fetch = |held: Vec<TaskId>| {
            provider.sign(Request::Fetch {
                max: 1,
                wait_ms: 0,
                held,
                cached: Vec::new(),
            })
        };
        let propose = |node: &mut Node, fetch: Signed<Request>| {
            let outcome = node
                .execute(
                    Proposal::Fetch(Box::new(Fetch {
                        time: t + 5,
                        fetch,
                        report: None,
                        waiting: Vec::new(),
                    })),
                    None,
                )
                .unwrap();
            let Outcome::Delivered { tasks, .. } = outcome else {
                panic!("{outcome:?}")
            };
            tasks
        };
        let unchanged = |node: &Node, before: &(Hash, u64)| {
            assert_eq!(&(node.state.hash(), node.log_len()), before);
        };

        // A forged fetch: refused, nothing assigned.
        let mut forged = fetch(Vec::new());
        forged.body = Request::Fetch {
            max: 2,
            wait_ms: 0,
            held: Vec::new(),
            cached: Vec::new(),
        };
        let before = (node.state.hash(), node.log_len());
        assert!(propose(&mut node, forged).is_empty());
        unchanged(&node, &before);

        // A leader's bare assignment: refused.
        let queued: Vec<TaskId> = node.state.queue.iter().copied().collect();
        let Outcome::Committed(done) = node
            .execute(
                Proposal::Inputs {
                    time: t + 5,
                    inputs: vec![Input::Leader(engine::LeaderCommand::AssignTasks {
                        provider: provider.id(),
                        tasks: queued.clone(),
                    })],
                },
                None,
            )
            .unwrap()
        else {
            panic!()
        };
        assert!(
            matches!(done[0], Err(Refusal::Rejected(Rejection::NeedsEvidence(_)))),
            "{done:?}"
        );
        unchanged(&node, &before);

        // The provider's own fetch: one task, logged as its fetch.
        let first = fetch(Vec::new());
        let tasks = propose(&mut node, first.clone());
        assert_eq!(tasks.len(), 1);
        let logged = node.raw_entries(node.log_len() - 1, 10).unwrap();
        let logged: Vec<engine::Entry> = logged
            .iter()
            .map(|(_, bytes)| engine::decode_canonical(bytes).unwrap())
            .collect();
        assert!(
            matches!(&logged[..], [e] if matches!(&e.input, Input::Fetch(f) if f.fetches == vec![first.clone()])),
            "{logged:?}"
        );

        // The same fetch again, now holding its task: nothing more, nothing logged.
        let before = (node.state.hash(), node.log_len());
        let again = Signed {
            body: Request::Fetch {
                max: 1,
                wait_ms: 0,
                held: tasks.clone(),
                cached: Vec::new(),
            },
            ..first.clone()
        };
        let again = Signed {
            signature: provider
                .sign_with_nonce(first.nonce, again.body.clone())
                .signature,
            ..again
        };
        assert!(propose(&mut node, again).is_empty());
        unchanged(&node, &before);
        // Not holding it (its answer was lost): the same task again, nothing new.
        assert_eq!(propose(&mut node, first), tasks);
        unchanged(&node, &before);
    }

    #[test]
    fn proposals_round_trip_through_postcard() {
        let who = api::Identity::from_secret([7; 32]);
        let proposals = [
            Proposal::Inputs {
                time: 5,
                inputs: vec![
                    Input::Signed(who.sign(Action::Faucet)),
                    Input::Leader(engine::LeaderCommand::ExpireJob { job: 3 }),
                ],
            },
            Proposal::Fetch(Box::new(Fetch {
                time: 9,
                fetch: who.sign(Request::Fetch {
                    max: 4,
                    wait_ms: 100,
                    held: vec![TaskId { job: 1, index: 2 }],
                    cached: vec![Hash([3; 32])],
                }),
                report: Some(who.sign(Action::ReportResults(Vec::new()))),
                waiting: vec![Waiting {
                    provider: AccountId([1; 32]),
                    cached: vec![],
                }],
            })),
            Proposal::Submit {
                time: 10,
                input: Box::new(Input::Signed(who.sign(Action::Faucet))),
                fetches: vec![who.sign(Request::Heartbeat)],
            },
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

    /// The consensus log of a validator of the previous format holds `Submit` and `Deliver`
    /// proposals of the first shape: they still decode, as the `V1` variants.
    #[test]
    fn proposals_of_the_first_format_still_decode() {
        #[derive(Serialize)]
        enum First {
            #[allow(dead_code)]
            Inputs {
                time: Time,
                inputs: Vec<Input>,
            },
            Submit {
                time: Time,
                input: Box<Input>,
                waiting: Vec<Waiting>,
            },
            Deliver(Box<LegacyDeliver>),
        }
        let who = api::Identity::from_secret([7; 32]);
        let waiting = vec![Waiting {
            provider: AccountId([1; 32]),
            cached: vec![Hash([2; 32])],
        }];
        let input = Box::new(Input::Signed(who.sign(Action::Faucet)));
        let submit = First::Submit {
            time: 3,
            input: input.clone(),
            waiting: waiting.clone(),
        };
        let decoded: Proposal =
            postcard::from_bytes(&postcard::to_stdvec(&submit).unwrap()).unwrap();
        assert_eq!(
            decoded,
            Proposal::SubmitV1(Legacy {
                time: 3,
                input,
                waiting: waiting.clone()
            })
        );
        let deliver = LegacyDeliver {
            time: 4,
            provider: who.id(),
            max: 2,
            held: vec![TaskId { job: 1, index: 0 }],
            cached: vec![],
            report: None,
            idle: waiting,
        };
        let bytes = postcard::to_stdvec(&First::Deliver(Box::new(deliver.clone()))).unwrap();
        let decoded: Proposal = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(decoded, Proposal::DeliverV1(Box::new(deliver)));
    }
}
