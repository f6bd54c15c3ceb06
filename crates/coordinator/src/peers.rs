//! The other validators, for what the consensus log does not carry: blobs. An upload to any
//! validator is acknowledged only once validators holding a majority of the voting power store
//! it (it is pushed to them, `POST /raft/blob/{hash}`, signed like every message between
//! validators), so a blob acknowledged is never lost with one machine; a validator asked for a
//! blob it lacks fetches it from the others and checks its hash.

use crate::Shared;
use crate::consensus::LiveSet;
use crate::error::ApiError;
use crate::raft::network::{authenticate_peer, peer_post};
use api::Identity;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use engine::{AccountId, Hash};
use std::sync::Arc;
use std::time::Duration;

/// How long an upload waits for the other validators to store it.
const PUSH_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Peers {
    pub set: LiveSet,
    me: Arc<Identity>,
    pub http: reqwest::Client,
}

impl Peers {
    pub fn new(
        set: LiveSet,
        me: Arc<Identity>,
        local: Option<std::net::IpAddr>,
    ) -> anyhow::Result<Peers> {
        let http =
            crate::raft::peer_client(&set, local, Duration::from_secs(1), Some(PUSH_TIMEOUT))?;
        Ok(Peers { set, me, http })
    }

    /// Whether this coordinator is one of several validators.
    pub fn replicated(&self) -> bool {
        self.set.with(|set| !set.validators.is_empty())
    }

    fn others(&self) -> Vec<engine::Validator> {
        let me = self.me.id();
        self.set.with(|set| {
            set.validators
                .iter()
                .filter(|v| v.account != me)
                .cloned()
                .collect()
        })
    }

    /// Pushes a blob this validator stored to the others; answers once validators holding a
    /// majority of the voting power (this one included) have it. The rest finish in the
    /// background.
    pub async fn replicate_blob(&self, hash: Hash, bytes: Bytes) -> Result<(), ApiError> {
        let mut holders: Vec<AccountId> = vec![self.me.id()];
        if !self.replicated() || self.set.with(|set| set.is_quorum(&holders)) {
            return Ok(());
        }
        let mut pushes = tokio::task::JoinSet::new();
        for v in self.others() {
            let (http, me, base, account) = (
                self.http.clone(),
                self.me.clone(),
                v.address.clone(),
                v.account,
            );
            let body = bytes.to_vec();
            pushes.spawn(async move {
                let path = format!("/raft/blob/{hash}");
                (account, peer_post(&http, &me, &base, &path, body).await)
            });
        }
        let mut failures = Vec::new();
        while let Some(done) = pushes.join_next().await {
            match done {
                Ok((account, Ok(_))) => {
                    holders.push(account);
                    if self.set.with(|set| set.is_quorum(&holders)) {
                        pushes.detach_all();
                        return Ok(());
                    }
                }
                Ok((_, Err(e))) => failures.push(e),
                Err(e) => failures.push(e.to_string()),
            }
        }
        Err(ApiError::Unavailable(format!(
            "blob {hash} is stored on {} of {} validators, not a majority: not acknowledged ({})",
            holders.len(),
            self.set.with(|set| set.validators.len()),
            failures.join("; ")
        )))
    }

    /// Fetches a blob from the other validators (any that has it), checking its hash. Each is asked
    /// for its own copy only (`?local=true`), so a missing blob costs one request per validator.
    pub async fn pull_blob(&self, hash: Hash) -> Option<Bytes> {
        for v in self.others() {
            // `local`: the other validator answers from its own store and asks nobody else.
            let url = format!(
                "{}/v1/blobs/{hash}?local=true",
                v.address.trim_end_matches('/')
            );
            let Ok(resp) = self.http.get(&url).send().await else {
                continue;
            };
            if !resp.status().is_success() {
                continue;
            }
            match resp.bytes().await {
                Ok(bytes) if Hash::of(&bytes) == hash => return Some(bytes),
                Ok(_) => {
                    tracing::warn!(%url, "a validator served a blob that does not match its hash")
                }
                Err(_) => {}
            }
        }
        None
    }
}

/// Makes sure this validator holds `hash`, fetching it from the others if it lacks it. Whether it
/// holds it now.
pub async fn ensure_blob(shared: &Shared, hash: Hash) -> bool {
    if shared.blobs.contains(&hash) {
        return true;
    }
    if !shared.peers.replicated() {
        return false;
    }
    let Some(bytes) = shared.peers.pull_blob(hash).await else {
        return false;
    };
    let blobs = shared.blobs.clone();
    let size = bytes.len() as u64;
    let stored = matches!(
        tokio::task::spawn_blocking(move || blobs.put(&bytes)).await,
        Ok(Ok(_))
    );
    if stored {
        // Unnamed here until a logged input names it (if one already does, the sweep sees it in
        // the state and keeps it), as a pushed copy is.
        shared.quota.adopt([(hash, size)]);
    }
    stored
}

/// `POST /raft/blob/{hash}`: another validator's push.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/raft/blob/{hash}", post(receive_blob))
        .route("/raft/silence", post(silence))
        .layer(axum::extract::DefaultBodyLimit::max(
            usize::try_from(shared.config.max_blob_bytes).unwrap_or(usize::MAX),
        ))
        .with_state(shared)
}

/// Most providers one liveness question names (the leader asks in pages of this many).
pub const SILENCE_MAX: usize = 4096;

impl Peers {
    /// Asks every other validator which of `candidates` it has not heard from for its heartbeat
    /// timeout (`POST /raft/silence`, concurrently, a second each); the signed answers that came.
    pub async fn ask_silence(
        &self,
        candidates: &[AccountId],
    ) -> Vec<engine::Signed<engine::Silence>> {
        let Ok(body) = postcard::to_stdvec(candidates) else {
            return Vec::new();
        };
        let asks = self.others().into_iter().map(|v| {
            let body = body.clone();
            let address = v.address.clone();
            async move {
                let answer = tokio::time::timeout(
                    Duration::from_secs(1),
                    peer_post(&self.http, &self.me, &address, "/raft/silence", body),
                )
                .await;
                match answer {
                    Ok(Ok(bytes)) => {
                        postcard::from_bytes::<Vec<engine::Signed<engine::Silence>>>(&bytes).ok()
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "a validator did not answer for liveness");
                        None
                    }
                    Err(_) => None,
                }
            }
        });
        futures::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .flatten()
            .collect()
    }
}

/// `POST /raft/silence`: another validator (the leader) asks which of the providers in the body
/// (postcard `Vec<AccountId>`) this one has not heard from for its heartbeat timeout; the
/// answer is this validator's signed [`engine::Silence`] for each of those (postcard).
async fn silence(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Vec<u8>, ApiError> {
    authenticate_peer(&shared.peers.set.get(), &headers, "/raft/silence", &body)?;
    let candidates: Vec<AccountId> = postcard::from_bytes(&body)
        .map_err(|e| ApiError::BadRequest(format!("malformed provider list: {e}")))?;
    if candidates.len() > SILENCE_MAX {
        return Err(ApiError::TooLarge(format!(
            "at most {SILENCE_MAX} providers per question"
        )));
    }
    let attestation = shared
        .node()
        .silence(&candidates, shared.config.heartbeat_timeout);
    postcard::to_stdvec(&attestation).map_err(|e| ApiError::Unavailable(e.to_string()))
}

async fn receive_blob(
    State(shared): State<Arc<Shared>>,
    Path(hash): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<&'static str, ApiError> {
    let path = format!("/raft/blob/{hash}");
    authenticate_peer(&shared.peers.set.get(), &headers, &path, &body)?;
    let hash: Hash = hash
        .parse()
        .map_err(|_| ApiError::BadRequest("malformed blob hash".into()))?;
    if Hash::of(&body) != hash {
        return Err(ApiError::BadRequest(format!(
            "content does not hash to {hash}"
        )));
    }
    let blobs = shared.blobs.clone();
    let new = !shared.blobs.contains(&hash);
    let size = body.len() as u64;
    tokio::task::spawn_blocking(move || blobs.put(&body))
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    if new {
        // A copy of an upload the leader took: unnamed here too until a logged input names it,
        // and deleted if none does in time (on nobody's allowance: the leader counted it). If
        // the job naming it was applied here before the copy arrived, the sweep finds it named.
        shared.quota.adopt([(hash, size)]);
    }
    Ok("stored")
}

/// Gathers the other validators' signatures of this validator's blocks until every block holds a
/// quorum certificate (signatures from validators holding more than half of the voting power).
/// Each signature is checked against this validator's own header at that height; one that does
/// not verify is kept out (a validator that signed another block at that height, or a corrupt
/// answer) and logged.
/// Turns the conflicting signatures seen into evidence, once this validator holds the same
/// validator's signature of its own block at that height, and submits it to the leader (which
/// proposes it; the engine slashes the validator). A conflict whose evidence cannot be built or
/// delivered yet stays for the next round.
async fn report_equivocations(
    shared: &Shared,
    conflicts: &mut Vec<(AccountId, engine::SignedHeader)>,
    reported: &mut std::collections::HashSet<AccountId>,
) {
    let mut keep = Vec::new();
    for (validator, theirs) in conflicts.drain(..) {
        let height = theirs.header.height;
        let evidence = {
            let node = shared.node();
            if node.state.validators.equivocated.contains_key(&validator) {
                reported.insert(validator);
                continue;
            }
            let ours = node
                .blocks_after(height.saturating_sub(1), 1)
                .ok()
                .and_then(|b| b.into_iter().next())
                .filter(|b| b.header.height == height);
            let signature = node.signatures(height, height).ok().and_then(|sigs| {
                sigs.into_iter()
                    .find(|(_, v, _)| *v == validator)
                    .map(|(_, _, s)| s)
            });
            match (ours, signature) {
                (Some(block), Some(signature)) => engine::Equivocation {
                    validator,
                    first: engine::SignedHeader {
                        header: block.header,
                        signature,
                    },
                    second: theirs.clone(),
                },
                _ => {
                    keep.push((validator, theirs));
                    continue;
                }
            }
        };
        let Some(leader) = shared.consensus.role().leader_url else {
            keep.push((validator, theirs));
            continue;
        };
        let url = format!("{}/v1/chain/evidence", leader.trim_end_matches('/'));
        let answer = shared
            .peers
            .http
            .post(&url)
            .json(&evidence)
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        match answer {
            Ok(resp) if resp.status().is_success() => {
                tracing::warn!(%validator, height, "evidence of equivocation committed");
                reported.insert(validator);
            }
            // Refused as evidence (already punished, most likely: another validator was first).
            Ok(resp) if resp.status().is_client_error() => {
                let body = resp.text().await.unwrap_or_default();
                tracing::info!(%validator, height, answer = %body, "evidence refused");
                reported.insert(validator);
            }
            _ => keep.push((validator, theirs)),
        }
    }
    *conflicts = keep;
}

pub async fn certifier(shared: Arc<Shared>) {
    const PAGE: u64 = 256;
    let period = shared.config.block_interval.max(Duration::from_millis(50)) / 2;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Every block up to here holds a quorum certificate here.
    let mut certified = 0u64;
    // Conflicting signatures seen, and the validators already reported.
    let mut conflicts: Vec<(AccountId, engine::SignedHeader)> = Vec::new();
    let mut reported: std::collections::HashSet<AccountId> = std::collections::HashSet::new();
    loop {
        tick.tick().await;
        report_equivocations(&shared, &mut conflicts, &mut reported).await;
        let (from, headers, have) = {
            let node = shared.node();
            let height = node.chain_view().height;
            if height <= certified {
                continue;
            }
            let from = certified.saturating_add(1);
            let to = height.min(from.saturating_add(PAGE - 1));
            let Ok(have) = node.signatures(from, to) else {
                continue;
            };
            let Ok(blocks) = node.blocks_after(from - 1, (to - from + 1) as usize) else {
                continue;
            };
            (from, blocks, have)
        };
        let set = shared.peers.set.get();
        // Advance over the blocks that already hold a quorum.
        let quorum = |height: u64, have: &[(u64, AccountId, engine::Sig)]| {
            set.is_quorum(
                have.iter()
                    .filter(|(h, _, _)| *h == height)
                    .map(|(_, v, _)| v),
            )
        };
        let first_open = headers
            .iter()
            .map(|b| b.header.height)
            .find(|h| !quorum(*h, &have));
        let Some(open) = first_open else {
            certified = headers.last().map_or(certified, |b| b.header.height);
            continue;
        };
        certified = open.saturating_sub(1).max(certified);
        let limit = headers.len() as u64 - (open - from);
        let mut found = Vec::new();
        for v in shared.peers.others() {
            let url = format!(
                "{}/v1/chain/signatures?from={open}&limit={limit}",
                v.address.trim_end_matches('/')
            );
            let answer = shared
                .peers
                .http
                .get(&url)
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            let Ok(resp) = answer else { continue };
            let Ok(sigs) = resp.json::<Vec<api::wire::BlockSignature>>().await else {
                continue;
            };
            for sig in sigs {
                if set.get(&sig.validator).is_none() {
                    continue;
                }
                let Some(block) = headers.iter().find(|b| b.header.height == sig.height) else {
                    continue;
                };
                if let Some(other) = sig.header {
                    // A signature of another header at this height: evidence, if it verifies.
                    if other.height == sig.height
                        && other != block.header
                        && !reported.contains(&sig.validator)
                        && !conflicts.iter().any(|(v, _)| *v == sig.validator)
                        && api::chain::header_signed_by(&other, sig.validator, sig.signature)
                    {
                        tracing::error!(
                            validator = %sig.validator,
                            height = sig.height,
                            "validator {} signed two different blocks at height {}: reporting it",
                            sig.validator,
                            sig.height
                        );
                        conflicts.push((
                            sig.validator,
                            engine::SignedHeader {
                                header: other,
                                signature: sig.signature,
                            },
                        ));
                    }
                    continue;
                }
                let known = have
                    .iter()
                    .chain(found.iter())
                    .any(|(h, v, _)| *h == sig.height && *v == sig.validator);
                if known {
                    continue;
                }
                if api::chain::header_signed_by(&block.header, sig.validator, sig.signature) {
                    found.push((sig.height, sig.validator, sig.signature));
                } else {
                    tracing::error!(
                        validator = %sig.validator,
                        height = sig.height,
                        from = %url,
                        "a signature of block {} does not match this validator's block: the signer signed a different block at that height (equivocation) or the answer is corrupt",
                        sig.height
                    );
                }
            }
        }
        if !found.is_empty()
            && let Err(e) = shared.node().add_signatures(&found)
        {
            tracing::warn!(error = %e, "storing block signatures failed");
        }
    }
}
