//! The node: the engine state, its durable log and the soft state (liveness, nonces of unlogged
//! requests) that stays out of the log. All changes go through [`Node::commit`].

use crate::error::ApiError;
use engine::{AccountId, Entry, Event, Input, State, Time};
use std::collections::HashMap;
use std::time::Instant;
use store::{CommandLog, recover};

/// Soft state about an account: never logged, rebuilt from nothing after a restart.
#[derive(Clone, Copy, Debug)]
pub struct Soft {
    pub last_seen: Instant,
    /// Highest nonce seen in any signed request, logged or not.
    pub nonce: u64,
}

pub struct Node {
    pub state: State,
    log: Box<dyn CommandLog>,
    soft: HashMap<AccountId, Soft>,
    /// Liveness grace after start: providers known from the log count as seen at this instant.
    started: Instant,
    snapshot_every: u64,
    fresh: State,
}

/// Wall-clock time in milliseconds: read here, in the shell, and passed into the engine.
pub fn now_ms() -> Time {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Node {
    /// Rebuilds the state from `log` (snapshot + replay).
    pub fn open(
        log: Box<dyn CommandLog>,
        fresh: State,
        snapshot_every: u64,
    ) -> anyhow::Result<Node> {
        let state = recover(log.as_ref(), fresh.clone())?;
        Ok(Node {
            state,
            log,
            soft: HashMap::new(),
            started: Instant::now(),
            snapshot_every: snapshot_every.max(1),
            fresh,
        })
    }

    pub fn log_len(&self) -> u64 {
        self.log.len()
    }

    /// Applies `input` and makes it durable before returning. A rejection changes nothing.
    pub fn commit(&mut self, input: Input) -> Result<(u64, Vec<Event>), ApiError> {
        let entry = Entry {
            time: now_ms(),
            input,
        };
        let events = self.state.apply(&entry)?;
        match self.log.append(std::slice::from_ref(&entry)) {
            Ok(seq) => {
                if seq % self.snapshot_every == 0
                    && let Err(e) = self.log.save_snapshot(seq, &self.state)
                {
                    // A missing snapshot only makes the next start slower.
                    tracing::warn!(error = %e, seq, "snapshot failed");
                }
                Ok((seq, events))
            }
            Err(e) => {
                tracing::error!(error = %e, "command log append failed; rebuilding state from the log");
                // The entry was applied but is not durable: go back to what the log says.
                match recover(self.log.as_ref(), self.fresh.clone()) {
                    Ok(state) => self.state = state,
                    Err(e2) => tracing::error!(error = %e2, "rebuilding from the log failed"),
                }
                Err(ApiError::Unavailable(format!(
                    "could not write the command log: {e}"
                )))
            }
        }
    }

    /// Replay protection for every signed request: the nonce must exceed any nonce seen from the
    /// signer, logged or not.
    pub fn check_nonce(&self, who: &AccountId, nonce: u64) -> Result<(), ApiError> {
        let last = self
            .state
            .nonce(who)
            .max(self.soft.get(who).map_or(0, |s| s.nonce));
        if nonce <= last {
            return Err(ApiError::Replay(format!(
                "nonce {nonce} is not above the last nonce {last} of {who} (replayed request?)"
            )));
        }
        Ok(())
    }

    /// Records that `who` was heard from with `nonce`.
    pub fn seen(&mut self, who: AccountId, nonce: u64) {
        let now = Instant::now();
        let soft = self.soft.entry(who).or_insert(Soft {
            last_seen: now,
            nonce: 0,
        });
        soft.last_seen = now;
        soft.nonce = soft.nonce.max(nonce);
    }

    /// When `who` was last heard from (the coordinator's start for providers not heard from since).
    pub fn last_seen(&self, who: &AccountId) -> Instant {
        self.soft
            .get(who)
            .map_or(self.started, |s| s.last_seen.max(self.started))
    }
}
