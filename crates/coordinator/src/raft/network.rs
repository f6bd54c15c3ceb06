//! Raft messages between validators over HTTP: `POST /raft/{append,vote,snapshot}` with postcard
//! bodies, each signed by the sending validator's key (`x-gridmint-*` headers over the body's
//! hash and the path). A receiver serves only members of the genesis validator set, so nobody
//! else can vote, append or claim a term. Replayed messages carry old terms, which Raft refuses.

use super::{RaftHandle, TypeConfig};
use crate::error::ApiError;
use api::Identity;
use api::wire::{HEADER_NONCE, HEADER_SIGNATURE, HEADER_SIGNER};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::post;
use engine::{AccountId, Hash, Sig, Signed, SignedBody, ValidatorSet};
use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

type NodeId = u64;

/// What a validator signs for one message between validators.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerCall {
    /// The path called: a signature for one endpoint is not valid for another.
    pub path: String,
    /// BLAKE3 of the body.
    pub body: Hash,
}

impl SignedBody for PeerCall {
    const DOMAIN: &'static str = "gridmint/v1/peer";
}

/// Signs `body` for `path` and posts it to `base`; answers the body of a 2xx answer.
pub async fn peer_post(
    http: &reqwest::Client,
    me: &Identity,
    base: &str,
    path: &str,
    body: Vec<u8>,
) -> Result<Bytes, String> {
    let signed = me.sign(PeerCall {
        path: path.to_string(),
        body: Hash::of(&body),
    });
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let resp = http
        .post(&url)
        .header(HEADER_SIGNER, signed.signer.to_hex())
        .header(HEADER_NONCE, signed.nonce.to_string())
        .header(HEADER_SIGNATURE, signed.signature.to_hex())
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| format!("{url}: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "{url}: {status}: {}",
            String::from_utf8_lossy(&bytes)
        ));
    }
    Ok(bytes)
}

/// Checks that a peer message to `path` with `body` was signed by a member of `set`.
pub fn authenticate_peer(
    set: &ValidatorSet,
    headers: &HeaderMap,
    path: &str,
    body: &[u8],
) -> Result<AccountId, ApiError> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::BadSignature(format!("missing header {name}")))
    };
    let parse_err = |what: &str| ApiError::BadSignature(format!("malformed {what}"));
    let signer: AccountId = header(HEADER_SIGNER)?
        .parse()
        .map_err(|_| parse_err("signer"))?;
    let nonce: u64 = header(HEADER_NONCE)?
        .parse()
        .map_err(|_| parse_err("nonce"))?;
    let signature: Sig = header(HEADER_SIGNATURE)?
        .parse()
        .map_err(|_| parse_err("signature"))?;
    if set.get(&signer).is_none() {
        return Err(ApiError::BadSignature(format!(
            "{signer} is not a validator of this network"
        )));
    }
    let signed = Signed {
        signer,
        nonce,
        body: PeerCall {
            path: path.to_string(),
            body: Hash::of(body),
        },
        signature,
    };
    api::verify(&signed).map_err(|e| ApiError::BadSignature(e.to_string()))?;
    Ok(signer)
}

/// Creates connections to the other validators.
#[derive(Clone)]
pub struct Network {
    pub me: Arc<Identity>,
    pub http: reqwest::Client,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Connection {
        Connection {
            target,
            base: node.addr.clone(),
            me: self.me.clone(),
            http: self.http.clone(),
        }
    }
}

/// Messages to one validator.
pub struct Connection {
    target: NodeId,
    base: String,
    me: Arc<Identity>,
    http: reqwest::Client,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Failed(String);

impl Connection {
    async fn call<Req, Resp, E>(
        &self,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: serde::de::DeserializeOwned,
        E: std::error::Error + serde::de::DeserializeOwned,
    {
        let body = postcard::to_stdvec(req)
            .map_err(|e| RPCError::Network(NetworkError::new(&Failed(e.to_string()))))?;
        let sent = tokio::time::timeout(
            option.hard_ttl(),
            peer_post(&self.http, &self.me, &self.base, path, body),
        )
        .await;
        let bytes = match sent {
            Err(_) => {
                return Err(RPCError::Unreachable(Unreachable::new(&Failed(format!(
                    "{}{path}: no answer within {:?}",
                    self.base,
                    option.hard_ttl()
                )))));
            }
            Ok(Err(e)) => return Err(RPCError::Unreachable(Unreachable::new(&Failed(e)))),
            Ok(Ok(bytes)) => bytes,
        };
        let answer: Result<Resp, RaftError<NodeId, E>> = postcard::from_bytes(&bytes)
            .map_err(|e| RPCError::Network(NetworkError::new(&Failed(e.to_string()))))?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call("/raft/append", &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call("/raft/snapshot", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call("/raft/vote", &rpc, &option).await
    }
}

/// What the Raft endpoints need.
#[derive(Clone)]
pub struct PeerState {
    pub raft: RaftHandle,
    pub set: crate::consensus::LiveSet,
}

/// `POST /raft/append`, `/raft/vote`, `/raft/snapshot`.
pub fn router(state: PeerState) -> Router {
    Router::new()
        .route("/raft/append", post(append))
        .route("/raft/vote", post(vote))
        .route("/raft/snapshot", post(snapshot))
        // Only members' signed messages are read; a catch-up batch of large proposals may be
        // far above axum's default 2 MiB (refusing it would stall replication for good).
        .layer(axum::extract::DefaultBodyLimit::max(MESSAGE_MAX))
        .with_state(state)
}

/// Largest message between validators accepted.
const MESSAGE_MAX: usize = 1 << 30;

fn decode_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    postcard::from_bytes(body).map_err(|e| ApiError::BadRequest(format!("malformed message: {e}")))
}

fn encode_answer<T: Serialize>(value: &T) -> Result<impl IntoResponse + use<T>, ApiError> {
    postcard::to_stdvec(value)
        .map(|bytes| ([("content-type", "application/octet-stream")], bytes))
        .map_err(|e| ApiError::Unavailable(format!("encoding the answer: {e}")))
}

async fn append(
    State(peers): State<PeerState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    authenticate_peer(&peers.set.get(), &headers, "/raft/append", &body)?;
    let rpc: AppendEntriesRequest<TypeConfig> = decode_body(&body)?;
    let answer = peers.raft.append_entries(rpc).await;
    encode_answer(&answer)
}

async fn vote(
    State(peers): State<PeerState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    authenticate_peer(&peers.set.get(), &headers, "/raft/vote", &body)?;
    let rpc: VoteRequest<NodeId> = decode_body(&body)?;
    let answer = peers.raft.vote(rpc).await;
    encode_answer(&answer)
}

async fn snapshot(
    State(peers): State<PeerState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    authenticate_peer(&peers.set.get(), &headers, "/raft/snapshot", &body)?;
    let rpc: InstallSnapshotRequest<TypeConfig> = decode_body(&body)?;
    let answer = peers.raft.install_snapshot(rpc).await;
    encode_answer(&answer)
}
