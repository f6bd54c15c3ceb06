//! HTTP routes under `/v1` (the table is in `api::wire`). Handlers parse and authenticate, then hand
//! the engine a command through `Node::commit`; they hold the node lock only briefly.

use crate::error::ApiError;
use crate::proposal::{Outcome, Proposal};
use crate::{Shared, views};
use api::wire::{
    ACTION_BATCH_MAX, AccountView, ActionResponse, BatchOutcome, BlobStored, CHAIN_PAGE_MAX,
    ChainPage, ChainView, Exchange, ExchangeResponse, FetchResponse, HEADER_NONCE,
    HEADER_SIGNATURE, HEADER_SIGNER, HISTORY_PAGE_MAX, HeartbeatResponse, HistoryItem, HistoryPage,
    HistoryQuery, JobView, NetworkView, ProviderView, RawEntry, Request, StatusView,
};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use engine::{
    AccountId, Action, Aggregate, Hash, Input, JobId, JobSpec, ProviderStatus, Sig, Signed,
};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;

type S = State<Arc<Shared>>;
type ApiResult<T> = Result<T, ApiError>;

pub fn router(shared: Arc<Shared>) -> Router {
    // Writes and work exchanges go to the leader: another validator redirects them there.
    let writes = Router::new()
        .route("/v1/actions", post(action))
        .route("/v1/actions/batch", post(action_batch))
        .route("/v1/actions/{signer}/{nonce}", get(action_lookup))
        .route("/v1/work/fetch", post(fetch))
        .route("/v1/work/exchange", post(exchange))
        .route("/v1/chain/evidence", post(evidence))
        .route_layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            leader_only,
        ));
    Router::new()
        .merge(writes)
        // Heartbeats go to every validator: each keeps its own view of who is alive, and a
        // provider is lost only when a majority's views agree.
        .route("/v1/work/ping", post(ping))
        .route("/v1/work/heartbeat", post(heartbeat))
        .route("/v1/status", get(status))
        .route("/v1/blobs/{hash}", get(get_blob).put(put_blob))
        .route("/v1/blobs/{hash}/slice", get(get_blob_slice))
        .route(
            "/v1/uploads/{hash}",
            get(upload_status).post(start_upload).put(put_chunk),
        )
        .route("/", get(crate::console::index))
        .route("/console/{file}", get(crate::console::asset))
        .route("/v1/events", get(crate::console::events))
        .route("/v1/pulses", get(crate::console::pulses))
        .route("/v1/openapi.json", get(crate::openapi::serve))
        .route("/v1/jobs", get(jobs))
        .route("/v1/jobs/{id}", get(job))
        .route("/v1/jobs/{id}/output", get(job_output))
        .route("/v1/providers", get(providers))
        .route("/v1/providers/{id}", get(provider))
        .route("/v1/accounts/{id}", get(account))
        .route("/v1/accounts/{id}/history", get(history))
        .route("/v1/network", get(network))
        .route("/v1/validators", get(validators))
        .route("/v1/gpu/classes", get(gpu_classes))
        .route("/v1/proposals", get(proposals))
        .route("/v1/market", get(market))
        .route("/v1/proposals/{id}", get(proposal))
        .route("/v1/reservations", get(reservations))
        .route("/v1/reservations/{id}", get(reservation))
        .route("/v1/chain/genesis", get(genesis))
        .route("/v1/chain", get(chain))
        .route("/v1/chain/blocks", get(chain_blocks))
        .route("/v1/chain/entries", get(chain_entries))
        .route("/v1/chain/inputs", get(chain_inputs))
        .route("/v1/chain/validators", get(chain_validators))
        .route("/v1/chain/signatures", get(chain_signatures))
        .route("/v1/chain/checkpoint", get(chain_checkpoint))
        .route("/metrics", get(metrics))
        // Every routed request counted by its route's pattern (a 404 has none: not counted;
        // a request refused by the rate limit below never reaches a route).
        .route_layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            count_request,
        ))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        // Bodies are read by the handlers themselves, with their own limits and JSON errors.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            rate_limited,
        ))
        .with_state(shared)
}

/// Counts a routed request in `gridmint_http_requests_total` once it is answered.
async fn count_request(
    State(shared): S,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().as_str().to_string();
    let response = next.run(request).await;
    shared
        .live
        .http_requests
        .get_or_create(&crate::metrics::HttpLabels {
            route,
            method,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// `GET /metrics`: Prometheus metrics, OpenMetrics text (see [`crate::metrics`]).
async fn metrics(State(shared): S) -> ApiResult<axum::response::Response> {
    let snapshot = shared
        .read(|_, node| crate::metrics::Snapshot::of(node))
        .await?;
    let text = crate::metrics::encode(snapshot, &shared.live)
        .map_err(|e| ApiError::Unavailable(format!("encoding the metrics: {e}")))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// Answers `429 rate_limited` (with `Retry-After`) to a read or a write over its address's rate
/// (`limits`), before the request is read any further.
async fn rate_limited(
    State(shared): S,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let class = crate::limits::Class::of(request.method(), request.uri().path());
    if let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        && let Err(e) = shared.limits.admit(class, peer.ip())
    {
        return e.into_response();
    }
    next.run(request).await
}

/// Lets a request through on the leader; elsewhere answers `307` to the same path on the leader
/// (with `x-gridmint-leader`), or `503 not_leader` while no leader is known.
async fn leader_only(
    State(shared): S,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let role = shared.consensus.role();
    if role.leader {
        return next.run(request).await;
    }
    match role.leader_url {
        Some(leader) => {
            let path = request
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string();
            let location = format!("{}{path}", leader.trim_end_matches('/'));
            let mut response = ApiError::NotLeader {
                leader: Some(leader),
            }
            .into_response();
            *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
            if let Ok(value) = header::HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
        }
        None => ApiError::NotLeader { leader: None }.into_response(),
    }
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))
}

/// How far past the blob limit an oversized upload is read before it is refused.
const DRAIN_OVERSIZED: u64 = 16 << 20;

/// How long a client has to start sending a request body.
const BODY_GRACE: Duration = Duration::from_secs(10);
/// After [`BODY_GRACE`], the least average rate (bytes per second) a request body must keep up:
/// a client trickling its body (a byte a second) must not hold a connection and a buffer for good.
const BODY_MIN_RATE: f64 = 16.0 * 1024.0;

/// The request body, at most `limit` bytes (`413 too_large` otherwise), read in time: by
/// [`BODY_GRACE`] + n / [`BODY_MIN_RATE`] after it started, more than n bytes must have come
/// (`408 too_slow` otherwise; the connection is then closed).
async fn read_body(body: Body, limit: usize) -> ApiResult<Bytes> {
    use axum::body::HttpBody as _;
    use futures::StreamExt;
    let start = tokio::time::Instant::now();
    let announced = body.size_hint().exact();
    if let Some(n) = announced
        && n > limit as u64
    {
        return Err(ApiError::TooLarge(format!(
            "request body of {n} bytes exceeds {limit} bytes"
        )));
    }
    let mut stream = body.into_data_stream();
    // Sized once when the length is announced: no doubling on the way.
    let mut buf = Vec::with_capacity(announced.map_or(0, |n| n as usize));
    loop {
        let due = start + BODY_GRACE + Duration::from_secs_f64(buf.len() as f64 / BODY_MIN_RATE);
        match tokio::time::timeout_at(due, stream.next()).await {
            Err(_) => {
                return Err(ApiError::TooSlow(format!(
                    "request body too slow: {} bytes after {:.0} s (at least {} bytes/s after the first {} s)",
                    buf.len(),
                    start.elapsed().as_secs_f64(),
                    BODY_MIN_RATE,
                    BODY_GRACE.as_secs()
                )));
            }
            Ok(None) => return Ok(Bytes::from(buf)),
            Ok(Some(Err(e))) => {
                return Err(ApiError::BadRequest(format!(
                    "reading the request body: {e}"
                )));
            }
            Ok(Some(Ok(chunk))) => {
                if buf.len() + chunk.len() > limit {
                    return Err(ApiError::TooLarge(format!(
                        "request body exceeds {limit} bytes"
                    )));
                }
                buf.extend_from_slice(&chunk);
            }
        }
    }
}

/// Bodies up to this size are read without taking room in the body budget.
const SMALL_BODY: usize = 64 * 1024;

/// [`read_body`] for routes that take large bodies (uploads, actions, batches, exchanges): a
/// body over [`SMALL_BODY`] first takes room in the coordinator's body budget
/// (`Shared::bodies`) for its announced length (its limit when it announces none), and keeps it
/// while the caller holds the returned permit. Sixteen 60 MB bodies at once raised a
/// coordinator's memory from 28 MB to 815 MB, and the allocator kept it; now what large bodies
/// hold at once is bounded, and a body that finds no room within [`BODY_GRACE`] is answered
/// `503 overloaded` with `Retry-After`, unread.
async fn read_large_body(
    shared: &Arc<crate::Shared>,
    peer: std::net::SocketAddr,
    body: Body,
    limit: usize,
) -> ApiResult<(Bytes, Option<Room>)> {
    use axum::body::HttpBody as _;
    let announced = body
        .size_hint()
        .exact()
        .map_or(limit, |n| usize::try_from(n).unwrap_or(usize::MAX))
        .min(limit);
    let room = if announced > SMALL_BODY {
        let sender = Sender::enter(shared, peer.ip())?;
        let want = u32::try_from(announced.min(shared.bodies_total)).unwrap_or(u32::MAX);
        let permit = tokio::time::timeout(BODY_GRACE, shared.bodies.clone().acquire_many_owned(want))
            .await
            .map_err(|_| {
                ApiError::Overloaded(
                    "the coordinator holds as many large request bodies as it takes at once; retry after the time in Retry-After".into(),
                )
            })?
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        Some(Room {
            _permit: permit,
            _sender: sender,
        })
    } else {
        None
    };
    Ok((read_body(body, limit).await?, room))
}

/// What a large body holds while its request is handled: its room in the body budget, and its
/// place among its address's large bodies.
struct Room {
    _permit: tokio::sync::OwnedSemaphorePermit,
    _sender: Sender,
}

/// Large bodies one address may send at once: with the body budget only, two slow senders
/// (16 KiB/s keeps a 64 MiB body going for an hour) would hold all of it.
const LARGE_BODIES_PER_ADDRESS: usize = 2;

/// One of an address's large bodies in flight; leaving its place when dropped.
struct Sender {
    shared: Arc<crate::Shared>,
    ip: std::net::IpAddr,
}

impl Sender {
    fn enter(shared: &Arc<crate::Shared>, ip: std::net::IpAddr) -> ApiResult<Sender> {
        let mut senders = shared
            .large_bodies
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let n = senders.entry(ip).or_insert(0);
        if *n >= LARGE_BODIES_PER_ADDRESS {
            return Err(ApiError::Overloaded(format!(
                "{ip} already sends {LARGE_BODIES_PER_ADDRESS} large request bodies; retry after the time in Retry-After"
            )));
        }
        *n += 1;
        Ok(Sender {
            shared: shared.clone(),
            ip,
        })
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let mut senders = self
            .shared
            .large_bodies
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = senders.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                senders.remove(&self.ip);
            }
        }
    }
}

fn parse_id<T: std::str::FromStr>(what: &str, s: &str) -> ApiResult<T> {
    s.parse()
        .map_err(|_| ApiError::BadRequest(format!("{what} {s:?} is malformed")))
}

fn authenticate<T: engine::SignedBody>(signed: &Signed<T>) -> ApiResult<()> {
    api::verify(signed).map_err(|e| ApiError::BadSignature(e.to_string()))
}

async fn status(State(shared): S) -> ApiResult<Json<StatusView>> {
    let role = shared.consensus.role();
    if let Some(view) = views::status_recent(&shared.status, &role) {
        return Ok(Json(view));
    }
    let view = shared
        .read_in(&shared.status_turn, move |shared, node| {
            views::status_cached(&shared.status, node, &role)
        })
        .await?;
    Ok(Json(view))
}

#[derive(serde::Deserialize)]
struct BlobQuery {
    /// Only this validator's copy: another validator asking must not make this one ask further.
    #[serde(default)]
    local: bool,
}

async fn get_blob(
    State(shared): S,
    Path(hash): Path<String>,
    query: Result<Query<BlobQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> ApiResult<axum::response::Response> {
    let hash: Hash = parse_id("blob hash", &hash)?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if !query.local {
        crate::peers::ensure_blob(&shared, hash).await;
    }
    let blobs = shared.blobs.clone();
    // `Range: bytes=START-` or `bytes=START-END`: a piece of the blob (a download resumed, or
    // fetched in pieces), at most one upload chunk's worth.
    if let Some(range) = headers.get(header::RANGE) {
        let (start, end) = parse_range(range)?;
        let len = end
            .map_or(crate::uploads::CHUNK_MAX, |end| {
                end.saturating_sub(start).saturating_add(1)
            })
            .min(crate::uploads::CHUNK_MAX);
        let (bytes, total) =
            tokio::task::spawn_blocking(move || blobs.read_range(&hash, start, len))
                .await
                .map_err(|e| ApiError::Unavailable(e.to_string()))?
                .map_err(|e| ApiError::Unavailable(e.to_string()))?
                .ok_or_else(|| ApiError::NotFound(format!("no blob {hash}")))?;
        if start >= total && !(start == 0 && total == 0) {
            return Err(ApiError::RangeNotSatisfiable(format!(
                "blob {hash} has {total} bytes; the range starts at {start}"
            )));
        }
        let last = (start + bytes.len() as u64).saturating_sub(1);
        return Ok((
            StatusCode::PARTIAL_CONTENT,
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                (
                    header::CONTENT_RANGE,
                    format!("bytes {start}-{last}/{total}"),
                ),
            ],
            bytes,
        )
            .into_response());
    }
    let bytes = tokio::task::spawn_blocking(move || blobs.get(&hash))
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .ok_or_else(|| ApiError::NotFound(format!("no blob {hash}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::ACCEPT_RANGES, "bytes"),
        ],
        bytes,
    )
        .into_response())
}

#[derive(serde::Deserialize)]
struct SliceQuery {
    start: u64,
    len: u64,
    #[serde(default)]
    local: bool,
}

/// `GET /v1/blobs/{hash}/slice?start=S&len=L`: at most one upload chunk's worth of the blob from
/// `S` as a BLAKE3 verified-streaming slice (bao: the bytes with the tree nodes that prove them
/// against `hash`), its size in `x-blob-size`: a reader checks each piece as it arrives and asks
/// again for just the piece that was damaged on the way.
async fn get_blob_slice(
    State(shared): S,
    Path(hash): Path<String>,
    query: Result<Query<SliceQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<axum::response::Response> {
    let hash: Hash = parse_id("blob hash", &hash)?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if !query.local {
        crate::peers::ensure_blob(&shared, hash).await;
    }
    let (start, len) = (query.start, query.len.min(crate::uploads::CHUNK_MAX));
    let blobs = shared.blobs.clone();
    let (bytes, total) = tokio::task::spawn_blocking(move || blobs.slice(&hash, start, len))
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .ok_or_else(|| ApiError::NotFound(format!("no blob {hash}")))?;
    if start >= total && !(start == 0 && total == 0) {
        return Err(ApiError::RangeNotSatisfiable(format!(
            "blob {hash} has {total} bytes; the slice starts at {start}"
        )));
    }
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::HeaderName::from_static("x-blob-size"),
                total.to_string(),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// `bytes=START-` or `bytes=START-END` (one range; END inclusive, not before START).
fn parse_range(value: &axum::http::HeaderValue) -> ApiResult<(u64, Option<u64>)> {
    let bad = || {
        ApiError::RangeNotSatisfiable(format!(
            "Range {value:?}: only one range, `bytes=START-` or `bytes=START-END`, is served"
        ))
    };
    let text = value.to_str().map_err(|_| bad())?;
    let (start, end) = text
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(bad)?;
    let start: u64 = start.trim().parse().map_err(|_| bad())?;
    let end = match end.trim() {
        "" => None,
        end => Some(end.parse::<u64>().map_err(|_| bad())?),
    };
    if end.is_some_and(|end| end < start) {
        return Err(bad());
    }
    Ok((start, end))
}

/// The signed headers of an upload request.
fn signed_headers(headers: &HeaderMap, body: Request) -> ApiResult<Signed<Request>> {
    let signer: AccountId = parse_id("signer", header_str(headers, HEADER_SIGNER)?)?;
    let nonce: u64 = parse_id("nonce", header_str(headers, HEADER_NONCE)?)?;
    let signature: Sig = parse_id("signature", header_str(headers, HEADER_SIGNATURE)?)?;
    let signed = Signed {
        signer,
        nonce,
        body,
        signature,
    };
    authenticate(&signed)?;
    Ok(signed)
}

#[derive(serde::Deserialize)]
struct UploadQuery {
    size: Option<u64>,
    offset: Option<u64>,
    /// A chunk sent as a BLAKE3 verified-streaming slice (bao) of this many content bytes:
    /// checked against the blob's hash before it is appended.
    len: Option<u64>,
}

/// `POST /v1/uploads/{hash}?size=N` (see `uploads`): opens a chunked upload, or finds it open.
async fn start_upload(
    State(shared): S,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(hash): Path<String>,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> ApiResult<(StatusCode, Json<api::wire::UploadView>)> {
    let hash: Hash = parse_id("blob hash", &hash)?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let size = query
        .size
        .ok_or_else(|| ApiError::BadRequest("an upload needs ?size=BYTES".into()))?;
    let signed = signed_headers(&headers, Request::StartUpload { hash, size })?;
    for idle in shared.uploads.expire() {
        shared.quota.release(&idle);
    }
    let limit = shared.config.max_upload_bytes;
    if size > limit {
        return Err(ApiError::TooLarge(format!(
            "an upload of {size} bytes exceeds the limit of {limit}"
        )));
    }
    if shared.blobs.size(&hash) == Some(size) {
        return Ok((
            StatusCode::OK,
            Json(api::wire::UploadView {
                hash,
                size,
                received: size,
            }),
        ));
    }
    if let Some(open) = shared.uploads.get(&hash) {
        let open = open.lock().await;
        if open.signer != signed.signer {
            return Err(ApiError::Conflict(format!(
                "blob {hash} is being uploaded by another account"
            )));
        }
        if open.size != size {
            return Err(ApiError::Conflict(format!(
                "the upload of blob {hash} was opened for {} bytes, not {size}",
                open.size
            )));
        }
        return Ok((
            StatusCode::OK,
            Json(api::wire::UploadView {
                hash,
                size,
                received: open.received,
            }),
        ));
    }
    shared.quota.reserve(hash, signed.signer, peer.ip(), size)?;
    match shared.uploads.open(hash, signed.signer, peer.ip(), size) {
        Ok(Some(_)) => {}
        // Opened by a concurrent request since: ask again to see how far it is.
        Ok(None) => {
            return Err(ApiError::Conflict(format!(
                "blob {hash}'s upload was opened by another request at the same time; ask again"
            )));
        }
        Err(e) => {
            shared.quota.release(&hash);
            return Err(e);
        }
    }
    Ok((
        StatusCode::CREATED,
        Json(api::wire::UploadView {
            hash,
            size,
            received: 0,
        }),
    ))
}

/// `GET /v1/uploads/{hash}`: how far an open upload is.
async fn upload_status(
    State(shared): S,
    Path(hash): Path<String>,
) -> ApiResult<Json<api::wire::UploadView>> {
    let hash: Hash = parse_id("blob hash", &hash)?;
    let open = shared
        .uploads
        .get(&hash)
        .ok_or_else(|| ApiError::NotFound(format!("no upload of blob {hash} is open")))?;
    let open = open.lock().await;
    Ok(Json(api::wire::UploadView {
        hash,
        size: open.size,
        received: open.received,
    }))
}

/// `PUT /v1/uploads/{hash}?offset=N`: the next chunk of an open upload (see `uploads`).
async fn put_chunk(
    State(shared): S,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(hash): Path<String>,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<axum::response::Response> {
    let hash: Hash = parse_id("blob hash", &hash)?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let offset = query
        .offset
        .ok_or_else(|| ApiError::BadRequest("a chunk needs ?offset=BYTES".into()))?;
    // A verified chunk carries its tree nodes too (about 1/16 more).
    let max = match query.len {
        Some(_) => crate::uploads::CHUNK_MAX.saturating_add(crate::uploads::CHUNK_MAX / 8),
        None => crate::uploads::CHUNK_MAX,
    };
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    let (body, _room) = read_large_body(&shared, peer, body, limit).await?;
    let size = query.len.unwrap_or(body.len() as u64);
    let signed = signed_headers(&headers, Request::PutChunk { hash, offset, size })?;
    let bytes = match query.len {
        Some(len) if len > crate::uploads::CHUNK_MAX => {
            return Err(ApiError::BadRequest(format!(
                "a chunk of {len} bytes exceeds the limit of {}",
                crate::uploads::CHUNK_MAX
            )));
        }
        Some(len) => {
            let content = tokio::task::spawn_blocking(move || {
                let mut content = Vec::new();
                let mut decoder = bao::decode::SliceDecoder::new(
                    &body[..],
                    &bao::Hash::from(hash.0),
                    offset,
                    len,
                );
                std::io::Read::read_to_end(&mut decoder, &mut content).map(|_| content)
            })
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?
            .map_err(|e| {
                ApiError::BadRequest(format!(
                    "the chunk at {offset} does not verify against blob {hash}: {e}; send it again"
                ))
            })?;
            if content.len() as u64 != len {
                return Err(ApiError::BadRequest(format!(
                    "the chunk at {offset} holds {} bytes, not {len}",
                    content.len()
                )));
            }
            Bytes::from(content)
        }
        None => body,
    };
    let open = shared
        .uploads
        .get(&hash)
        .ok_or_else(|| ApiError::NotFound(format!("no upload of blob {hash} is open")))?;
    let mut upload = open.clone().lock_owned().await;
    if upload.signer != signed.signer {
        return Err(ApiError::Forbidden(format!(
            "blob {hash} is being uploaded by another account"
        )));
    }
    if offset != upload.received {
        return Err(ApiError::Conflict(format!(
            "the upload of blob {hash} holds {} bytes: the next chunk starts there, not at {offset}",
            upload.received
        )));
    }
    if offset.saturating_add(bytes.len() as u64) > upload.size || bytes.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "a chunk of {} bytes at {offset} does not fit an upload of {} bytes",
            bytes.len(),
            upload.size
        )));
    }
    let appended = tokio::task::spawn_blocking(move || {
        let appended = upload.append(&hash, &bytes);
        (appended, upload.size)
    })
    .await
    .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let (appended, size) = appended;
    let path = match appended {
        Ok(crate::uploads::Appended::More(received)) => {
            return Ok(Json(api::wire::UploadView {
                hash,
                size,
                received,
            })
            .into_response());
        }
        Ok(crate::uploads::Appended::Complete(path)) => path,
        Err(e) => {
            shared.uploads.drop_upload(&hash);
            shared.quota.release(&hash);
            return Err(e);
        }
    };
    let blobs = shared.blobs.clone();
    let stored = tokio::task::spawn_blocking(move || blobs.put_file(&hash, &path))
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))
        .and_then(|r| r.map_err(|e| ApiError::Unavailable(format!("could not store blob: {e}"))));
    shared.uploads.drop_upload(&hash);
    if let Err(e) = stored {
        shared.quota.release(&hash);
        return Err(e);
    }
    if shared.peers.replicated() {
        // The other validators take blobs whole (up to their own `max_blob_bytes`).
        let blobs = shared.blobs.clone();
        let bytes = tokio::task::spawn_blocking(move || blobs.get(&hash))
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?
            .map_err(|e| ApiError::Unavailable(e.to_string()))?
            .unwrap_or_default();
        shared
            .peers
            .replicate_blob(hash, Bytes::from(bytes))
            .await?;
    }
    Ok((StatusCode::CREATED, Json(BlobStored { hash, size })).into_response())
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> ApiResult<&'a str> {
    headers
        .get(name)
        .ok_or_else(|| ApiError::BadSignature(format!("missing header {name}")))?
        .to_str()
        .map_err(|_| ApiError::BadRequest(format!("header {name} is not text")))
}

/// Blob uploads are content-addressed and idempotent, so a replayed upload changes nothing: they are
/// signed (only key holders may store data, and the signature binds the hash and size) but not
/// nonce-checked, which lets a client upload in parallel.
async fn put_blob(
    State(shared): S,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(hash): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<impl IntoResponse> {
    let hash: Hash = parse_id("blob hash", &hash)?;
    let limit = shared.config.max_blob_bytes;
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > limit
    {
        // Read (and drop) a moderately oversized body before answering: a client still writing
        // it when the connection closes sees a broken pipe instead of this 413.
        let cap = usize::try_from(limit.saturating_add(DRAIN_OVERSIZED)).unwrap_or(usize::MAX);
        let _ = axum::body::to_bytes(body, cap).await;
        return Err(ApiError::TooLarge(format!(
            "blob of {len} bytes exceeds the limit of {limit}"
        )));
    }
    let signer: AccountId = parse_id("signer", header_str(&headers, HEADER_SIGNER)?)?;
    let nonce: u64 = parse_id("nonce", header_str(&headers, HEADER_NONCE)?)?;
    let signature: Sig = parse_id("signature", header_str(&headers, HEADER_SIGNATURE)?)?;
    let (bytes, _room) = read_large_body(
        &shared,
        peer,
        body,
        usize::try_from(limit).unwrap_or(usize::MAX),
    )
    .await?;
    let signed = Signed {
        signer,
        nonce,
        body: Request::PutBlob {
            hash,
            size: bytes.len() as u64,
        },
        signature,
    };
    authenticate(&signed)?;
    let actual = Hash::of(&bytes);
    if actual != hash {
        return Err(ApiError::BadRequest(format!(
            "content hashes to {actual}, not {hash}"
        )));
    }
    let blobs = shared.blobs.clone();
    let size = bytes.len() as u64;
    // A new blob takes room in its sender's allowance of blobs nothing names yet; one already
    // stored (named, or someone's upload) is not counted again.
    let new = !shared.blobs.contains(&hash);
    if new {
        shared.quota.reserve(hash, signer, peer.ip(), size)?;
    }
    let stored = bytes.clone();
    let put = tokio::task::spawn_blocking(move || blobs.put(&stored))
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))
        .and_then(|r| r.map_err(|e| ApiError::Unavailable(format!("could not store blob: {e}"))));
    if let Err(e) = put {
        if new {
            shared.quota.release(&hash);
        }
        return Err(e);
    }
    shared.peers.replicate_blob(hash, bytes).await?;
    Ok((StatusCode::CREATED, Json(BlobStored { hash, size })))
}

/// Checks that a module blob is present and is one the providers' sandbox runs: the same
/// WebAssembly features and shape (`sandbox::admit`), so a job the network takes never fails
/// on every provider for its module.
fn admit_module(shared: &Shared, hash: &Hash, what: &str, entry: Option<&str>) -> ApiResult<()> {
    let bytes = shared
        .blobs
        .get(hash)
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .ok_or_else(|| ApiError::NotFound(format!("{what} {hash} has not been uploaded")))?;
    sandbox::admit_entry(&bytes, entry).map_err(|e| {
        ApiError::InvalidModule(format!("{what} {hash} cannot run in the sandbox: {e}"))
    })
}

/// Rules 23: a GPU job's shader is present, is a shader (WGSL, GLSL or SPIR-V) the providers'
/// GPU sandbox admits (`gpu::admit_bytes`: naga's validation, the network's rules, metering),
/// and its declared buffers
/// are exactly the ones the entry point uses: an input or zeroed buffer at least as large as
/// the binding's type needs, outputs only where the shader may write, and a shader with
/// floats only in a job that runs on one class. So a GPU job the network takes never fails on
/// every provider for its shader or its buffers. Checked on every validator alike (a pure
/// function of the shader's bytes and the declaration).
fn admit_shader(
    shared: &Shared,
    spec: &JobSpec,
    gpu: &engine::GpuJob,
    tolerance: Option<&engine::Tolerance>,
) -> ApiResult<()> {
    // The engine's own check first (it would refuse the same), so that the declaration's
    // mistakes are named as such.
    let gpu = gpu
        .normalised(spec)
        .map_err(|e| ApiError::Rejected(engine::Rejection::InvalidJobSpec(format!("gpu: {e}"))))?;
    let hash = spec.module;
    let bytes = shared
        .blobs
        .get(&hash)
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .ok_or_else(|| ApiError::NotFound(format!("shader {hash} has not been uploaded")))?;
    // WGSL, GLSL or SPIR-V, told from the bytes. `gpu::admit_bytes` catches naga's panics
    // itself; a panic here would be a crash of a handler, never an answer.
    let admitted = std::panic::catch_unwind(|| gpu::admit_bytes(&bytes, &gpu.entry))
        .map_err(|_| {
            ApiError::InvalidShader(format!("shader {hash}: the shader compiler failed on it"))
        })?
        .map_err(|e| ApiError::InvalidShader(format!("shader {hash}: {e}")))?;
    check_buffers(shared, spec, &gpu, &admitted, tolerance)
        .map_err(|e| ApiError::InvalidShader(format!("shader {hash}: {e}")))
}

/// A GPU job's buffers against its admitted shader (see [`admit_shader`]).
fn check_buffers(
    shared: &Shared,
    spec: &JobSpec,
    gpu: &engine::GpuJob,
    shader: &gpu::Shader,
    tolerance: Option<&engine::Tolerance>,
) -> Result<(), String> {
    let declared: Vec<u32> = gpu.buffers.iter().map(|b| b.binding).collect();
    let used: Vec<u32> = shader.bindings.iter().map(|b| b.binding).collect();
    if declared != used {
        return Err(format!(
            "entry point `{}` uses bindings {used:?} of group 0; the job declares {declared:?}",
            gpu.entry
        ));
    }
    if !shader.integer_only && !gpu.one_class && tolerance.is_none() {
        return Err(
            "the shader computes with floats, whose bits may differ between kinds of GPU: \
             declare the job one-class (its results then all come from one GPU class) or give \
             it a tolerance (its f32 outputs are then compared within it)"
                .into(),
        );
    }
    // Rules 30: a tolerance compares outputs as f32 values, which the engine keeps while the
    // job runs.
    if tolerance.is_some()
        && let Some((buffer, _)) = gpu
            .buffers
            .iter()
            .zip(&shader.bindings)
            .find(|(b, binding)| b.output && !binding.floats_only)
    {
        return Err(format!(
            "binding {} is an output of a job with a tolerance, and its type holds more than \
             f32 values (a tolerance compares f32 values only)",
            buffer.binding
        ));
    }
    for (buffer, binding) in gpu.buffers.iter().zip(&shader.bindings) {
        if buffer.output && binding.kind != gpu::BindingKind::ReadWrite {
            return Err(format!(
                "binding {} is an output, but the shader declares it {:?} (an output must be \
                 `var<storage, read_write>`)",
                buffer.binding, binding.kind
            ));
        }
        let sizes: Vec<(String, u64)> = match &buffer.fill {
            engine::GpuFill::Zeroed(size) => vec![("zeroed".into(), *size)],
            engine::GpuFill::Input(name) => spec
                .tasks
                .iter()
                .enumerate()
                .filter_map(|(i, t)| {
                    let file = t.inputs.iter().find(|f| &f.name == name)?;
                    Some((
                        format!("task {i}'s input `{name}`"),
                        shared.blobs.size(&file.hash).unwrap_or(0),
                    ))
                })
                .collect(),
        };
        for (what, size) in sizes {
            if size < binding.min_bytes.max(4) || size % 4 != 0 {
                return Err(format!(
                    "binding {}: {what} is {size} bytes; the shader's type needs a multiple of 4, \
                     at least {}",
                    buffer.binding,
                    binding.min_bytes.max(4)
                ));
            }
        }
    }
    // Each task's buffers together fit the job's memory limit (a provider's GPU sandbox holds
    // a run to it).
    for (i, task) in spec.tasks.iter().enumerate() {
        let bytes = gpu.buffers.iter().fold(0u64, |sum, b| {
            sum.saturating_add(buffer_size(shared, task, b))
        });
        if bytes > spec.limits.memory_bytes {
            return Err(format!(
                "task {i}'s buffers take {bytes} bytes, more than the job's memory limit ({})",
                spec.limits.memory_bytes
            ));
        }
        let output = gpu
            .buffers
            .iter()
            .filter(|b| b.output)
            .fold(0u64, |sum, b| {
                sum.saturating_add(buffer_size(shared, task, b))
            });
        if tolerance.is_some() && output > engine::MAX_TOLERANT_OUTPUT {
            return Err(format!(
                "task {i}'s output buffers take {output} bytes; a job with a tolerance may \
                 return at most {} per task (the network compares them value by value)",
                engine::MAX_TOLERANT_OUTPUT
            ));
        }
    }
    Ok(())
}

/// The bytes buffer `b` of a GPU job's task `task` takes.
fn buffer_size(shared: &Shared, task: &engine::TaskSpec, b: &engine::GpuBuffer) -> u64 {
    match &b.fill {
        engine::GpuFill::Zeroed(size) => *size,
        engine::GpuFill::Input(name) => task
            .inputs
            .iter()
            .find(|f| &f.name == name)
            .and_then(|f| shared.blobs.size(&f.hash))
            .unwrap_or(0),
    }
}

/// Everything a job refers to must already be stored, so that providers can always fetch it.
/// Admission of an action beyond its signature: tokens go only to an account some key can sign
/// for (`api::valid_account`), never to an id that is not a public key or is a small-order one,
/// where they would be lost for good. (An admission check, as the signature is: the engine's
/// rules let such a transfer apply, and a chain that holds one still replays.)
fn admit_action(action: &Action) -> ApiResult<()> {
    if let Action::Transfer { to, .. } = action
        && !api::valid_account(to)
    {
        return Err(ApiError::BadRequest(format!(
            "cannot transfer to {to}: it is not an account (not an ed25519 public key that some key signs for); the tokens would be lost"
        )));
    }
    Ok(())
}

/// A report's successful results name outputs this validator holds (pulled from the others when
/// the upload reached them first): a result is accepted only once its output is stored —
/// otherwise it would be acknowledged and paid and its job's output lost for good. A 422, on
/// which a provider drops the report (its runs then time out and are queued again).
async fn admit_report(shared: &Shared, action: &Action) -> ApiResult<()> {
    let outputs = report_outputs(action, shared);
    shared.quota.touch(outputs.iter().map(|(hash, _)| *hash));
    for (hash, task) in outputs {
        if !crate::peers::ensure_blob(shared, hash).await {
            return Err(missing_output(hash, task));
        }
    }
    Ok(())
}

/// The distinct outputs of a report's results (successes, and exit statuses their jobs take as
/// answers), each with a task that returned it.
fn report_outputs(action: &Action, shared: &Shared) -> Vec<(Hash, engine::TaskId)> {
    let Some(reports) = action.reports() else {
        return Vec::new();
    };
    let node = shared.node();
    let state = &node.state;
    let mut outputs: Vec<(Hash, engine::TaskId)> = reports
        .iter()
        .filter(|r| state.is_answer(r.task, &r.outcome))
        .map(|r| (r.output_hash, r.task))
        .collect();
    outputs.sort();
    outputs.dedup_by_key(|(hash, _)| *hash);
    outputs
}

fn missing_output(hash: Hash, task: engine::TaskId) -> ApiError {
    ApiError::MissingOutput(format!(
        "task {task}: output blob {hash} has not been uploaded; upload it (PUT /v1/blobs) before reporting the result"
    ))
}

/// A submission's job (see [`admit_job`]) and its storage claim: the claimed input bytes are
/// what the submission's blobs weigh here (rules 10: the deposit is paid on them; every
/// validator holding the blobs can check the claim the same way).
fn admit_submission(shared: &Shared, action: &Action) -> ApiResult<()> {
    let Some((spec, claim)) = action.submission() else {
        return Ok(());
    };
    let entry = action.submission_options().and_then(|o| o.entry.as_deref());
    admit_job(
        shared,
        spec,
        entry,
        action.submission_files(),
        action.submission_sealing(),
        action
            .submission_gpu()
            .map(|gpu| (gpu, action.submission_tolerance())),
    )?;
    if let Some(claim) = claim {
        let mut weighed: u64 = 0;
        for hash in action.submission_blobs() {
            let size = shared
                .blobs
                .size(&hash)
                .ok_or_else(|| ApiError::NotFound(format!("blob {hash} has not been uploaded")))?;
            weighed = weighed.saturating_add(size);
        }
        if claim.input_bytes != weighed {
            return Err(ApiError::StorageClaim(format!(
                "the storage claim says the job's blobs weigh {} bytes; they weigh {weighed} \
                 (the distinct module, reduce module, inputs, stdin and mounted tree blobs)",
                claim.input_bytes
            )));
        }
    }
    Ok(())
}

fn admit_job(
    shared: &Shared,
    spec: &JobSpec,
    entry: Option<&str>,
    files: Option<&engine::JobFiles>,
    sealing: Option<&engine::Sealing>,
    gpu: Option<(&engine::GpuJob, Option<&engine::Tolerance>)>,
) -> ApiResult<()> {
    // First: a blob touched here cannot expire before the job is logged (`blob_quota`).
    shared.quota.touch(engine::submission_blobs(spec, files));
    if gpu.is_none() {
        admit_module(shared, &spec.module, "module", entry)?;
    }
    if let Aggregate::Reduce(reduce) = &spec.aggregate {
        admit_module(shared, &reduce.module, "reduce module", None)?;
    }
    for (i, task) in spec.tasks.iter().enumerate() {
        let blobs = task.inputs.iter().map(|f| f.hash).chain(task.stdin);
        for hash in blobs {
            if !shared.blobs.contains(&hash) {
                return Err(ApiError::NotFound(format!(
                    "task {i}: input blob {hash} has not been uploaded"
                )));
            }
        }
    }
    // Rules 23: a GPU job's shader, checked against its inputs' sizes (present by now).
    if let Some((gpu, tolerance)) = gpu {
        admit_shader(shared, spec, gpu, tolerance)?;
    }
    if let Some(files) = files {
        // The engine's own check first (it would refuse the same), so that a bad path is named
        // as one rather than as whatever its tree lacks.
        files.normalised().map_err(|e| {
            ApiError::Rejected(engine::Rejection::InvalidJobSpec(format!("job files: {e}")))
        })?;
        for mount in &files.mounts {
            let sealed = sealing.is_some_and(|s| s.seals(&mount.tree));
            admit_tree(shared, mount, sealed)?;
        }
    }
    Ok(())
}

/// Checks that a mounted tree's blob is present and is a tree every provider unpacks
/// (`sandbox::tree::check`), so a job is never taken whose tree every provider refuses. A
/// private job's tree is sealed (unless the job left it in the clear): only its presence can be
/// checked here (its providers check the tree once they have opened it).
fn admit_tree(shared: &Shared, mount: &engine::Mount, sealed: bool) -> ApiResult<()> {
    let hash = mount.tree;
    let missing = || {
        ApiError::NotFound(format!(
            "tree {hash} (mounted at {}) has not been uploaded",
            mount.path
        ))
    };
    if sealed {
        return if shared.blobs.contains(&hash) {
            Ok(())
        } else {
            Err(missing())
        };
    }
    let bytes = shared
        .blobs
        .get(&hash)
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .ok_or_else(missing)?;
    sandbox::tree::check(&bytes).map(|_| ()).map_err(|e| {
        ApiError::Rejected(engine::Rejection::InvalidJobSpec(format!(
            "tree {hash} (mounted at {}) is not a directory tree: {e}",
            mount.path
        )))
    })
}

/// Fetches the blobs a submission names that this validator lacks from the others (an upload is
/// acknowledged once a majority holds it, not necessarily this one).
async fn gather_blobs(shared: &Shared, action: &Action) {
    if !shared.peers.replicated() {
        return;
    }
    for hash in action.submission_blobs() {
        crate::peers::ensure_blob(shared, hash).await;
    }
}

/// The results of a committed proposal of plain inputs.
fn committed(outcome: Outcome) -> ApiResult<Vec<crate::node::Committed>> {
    match outcome {
        Outcome::Committed(results) => Ok(results
            .into_iter()
            .map(|r| r.map_err(ApiError::from))
            .collect()),
        _ => Err(ApiError::Unavailable(
            "the proposal was answered with another kind of outcome".into(),
        )),
    }
}

/// Bodies larger than this are parsed (and a single action's signature checked) on the blocking
/// pool, not on an async worker: a 46 MB job submission takes a worker for most of a second.
const PARSE_INLINE_MAX: usize = 256 * 1024;

/// `parse(bytes)`, on the blocking pool when `bytes` is over [`PARSE_INLINE_MAX`].
async fn parse_large<T: Send + 'static>(
    bytes: Bytes,
    parse: impl FnOnce(&[u8]) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    if bytes.len() <= PARSE_INLINE_MAX {
        return parse(&bytes);
    }
    tokio::task::spawn_blocking(move || parse(&bytes))
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
}

async fn action(
    State(shared): S,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    body: Body,
) -> ApiResult<Json<ActionResponse>> {
    let (bytes, _room) =
        read_large_body(&shared, peer, body, shared.config.max_request_bytes).await?;
    let signed = parse_large(bytes, |bytes| {
        let signed: Signed<Action> = parse_json(bytes)?;
        authenticate(&signed)?;
        Ok(signed)
    })
    .await?;
    admit_action(&signed.body)?;
    if signed.body.reports().is_none() {
        shared.limits.admit_actions(&signed.signer, 1)?;
    }
    admit_report(&shared, &signed.body).await?;
    if signed.body.submission().is_some() {
        gather_blobs(&shared, &signed.body).await;
        let shared = shared.clone();
        let action = signed.body.clone();
        tokio::task::spawn_blocking(move || admit_submission(&shared, &action))
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))??;
    }
    let who = signed.signer;
    let nonce = signed.nonce;
    let time = crate::now_ms();
    let proposal = {
        let node = shared.node();
        node.check_nonce(&who, nonce)?;
        match &signed.body {
            // A submission assigns its tasks to the providers waiting right now in the same
            // commit, as their fetches would.
            Action::SubmitJob(_) | Action::SubmitJobWithStorage { .. } => Proposal::Submit {
                time,
                input: Box::new(Input::Signed(signed)),
                fetches: node.parked_fetches(),
            },
            _ => Proposal::Inputs {
                time,
                inputs: vec![Input::Signed(signed)],
            },
        }
    };
    let outcome = shared.consensus.propose(proposal).await?;
    let (seq, events) = committed(outcome)?
        .into_iter()
        .next()
        .unwrap_or_else(|| Err(ApiError::Unavailable("nothing was committed".into())))?;
    shared.node().seen(who, nonce);
    shared.work.notify_waiters();
    Ok(Json(ActionResponse { seq, events }))
}

/// How many entries back from the end of the log a write is looked up (a client looks up a
/// write seconds after it went unanswered).
pub const LOOKUP_WINDOW: u64 = 250_000;

/// `GET /v1/actions/{signer}/{nonce}`: whether `signer`'s action with `nonce` is logged, and if
/// so at which seq, with the signer's ledger events from it (the history rows; an action's other
/// events are not kept). A client whose write went unanswered asks this before resending it.
/// Asked of the leader, which has applied everything committed.
async fn action_lookup(
    State(shared): S,
    Path((signer, nonce)): Path<(String, String)>,
) -> ApiResult<Json<ActionResponse>> {
    let signer: AccountId = parse_id("signer", &signer)?;
    let nonce: u64 = nonce
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("nonce {nonce:?} is not a number")))?;
    let missing = || {
        ApiError::NotFound(format!(
            "no action of {signer} with nonce {nonce} is logged (among the last {LOOKUP_WINDOW} entries)"
        ))
    };
    // Not spent yet: not logged, no need to look.
    if shared.node().state.nonce(&signer) < nonce {
        return Err(missing());
    }
    let _turn = shared
        .lookups
        .acquire()
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let dir = shared.config.data_dir.clone();
    let written = shared.node().history_barrier();
    let found = tokio::task::spawn_blocking(move || {
        use store::CommandLog as _;
        written.wait()?;
        let log = store::SqliteLog::open_read_only(&dir)?;
        let Some((seq, _)) = log.find_signed(&signer, nonce, LOOKUP_WINDOW)? else {
            return Ok(None);
        };
        let events = log
            .history(&signer, seq.saturating_add(1), HISTORY_PAGE_MAX as usize)?
            .into_iter()
            .filter(|row| row.seq == seq)
            .map(|row| row.event)
            .collect();
        Ok::<_, store::StoreError>(Some(ActionResponse { seq, events }))
    })
    .await
    .map_err(|e| ApiError::Unavailable(e.to_string()))?
    .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    found.map(Json).ok_or_else(missing)
}

/// Many actions in one request, committed as one group (one fsync): each is authenticated (in a
/// batch signature check, `api::verify_batch`: the same answers as the single checks),
/// admitted and committed as `POST /v1/actions` would, in order, and gets its own outcome.
/// Signatures and admission are checked off the async workers and outside the node lock.
async fn action_batch(
    State(shared): S,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    body: Body,
) -> ApiResult<Json<Vec<BatchOutcome>>> {
    let (bytes, _room) =
        read_large_body(&shared, peer, body, shared.config.max_request_bytes).await?;
    let batch: Vec<Signed<Action>> = parse_large(bytes, parse_json).await?;
    if batch.len() > ACTION_BATCH_MAX {
        return Err(ApiError::TooLarge(format!(
            "a batch of {} actions exceeds the limit of {ACTION_BATCH_MAX}",
            batch.len()
        )));
    }
    for signed in &batch {
        if signed.body.submission().is_some() {
            gather_blobs(&shared, &signed.body).await;
        }
    }
    let checked = {
        let shared = shared.clone();
        tokio::task::spawn_blocking(move || admit_batch(&shared, batch))
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?
    };
    // Each signer's actions count against its rate limit together; reports go free.
    let mut per_signer: std::collections::BTreeMap<AccountId, usize> = Default::default();
    for signed in checked.iter().flatten() {
        if signed.body.reports().is_none() {
            *per_signer.entry(signed.signer).or_default() += 1;
        }
    }
    let limited: std::collections::BTreeMap<AccountId, ApiError> = per_signer
        .into_iter()
        .filter_map(|(who, n)| shared.limits.admit_actions(&who, n).err().map(|e| (who, e)))
        .collect();
    let mut outcomes: Vec<Option<crate::node::Committed>> = Vec::with_capacity(checked.len());
    let mut inputs = Vec::new();
    let mut signers = Vec::new();
    for item in checked {
        match item {
            Ok(signed)
                if limited.contains_key(&signed.signer) && signed.body.reports().is_none() =>
            {
                let again = match &limited[&signed.signer] {
                    ApiError::RateLimited {
                        detail,
                        retry_after,
                    } => ApiError::RateLimited {
                        detail: detail.clone(),
                        retry_after: *retry_after,
                    },
                    other => ApiError::TooLarge(other.to_string()),
                };
                outcomes.push(Some(Err(again)));
            }
            Ok(signed) => {
                signers.push((signed.signer, signed.nonce));
                inputs.push(Input::Signed(signed));
                outcomes.push(None);
            }
            Err(e) => outcomes.push(Some(Err(e))),
        }
    }
    // Replay protection against nonces seen in unlogged requests too, before proposing (the
    // engine checks the logged ones on every validator).
    {
        let node = shared.node();
        let mut kept = Vec::with_capacity(inputs.len());
        let mut kept_signers = Vec::with_capacity(signers.len());
        let mut pending = outcomes.iter_mut().filter(|o| o.is_none());
        for (input, (who, nonce)) in inputs.into_iter().zip(signers) {
            let slot = pending.next();
            match node.check_nonce(&who, nonce) {
                Ok(()) => {
                    kept.push(input);
                    kept_signers.push((who, nonce));
                }
                Err(e) => {
                    if let Some(slot) = slot {
                        *slot = Some(Err(e));
                    }
                }
            }
        }
        inputs = kept;
        signers = kept_signers;
    }
    let committed = if inputs.is_empty() {
        Vec::new()
    } else {
        let outcome = shared
            .consensus
            .propose(Proposal::Inputs {
                time: crate::now_ms(),
                inputs,
            })
            .await?;
        let committed = committed(outcome)?;
        let mut node = shared.node();
        for ((who, nonce), result) in signers.iter().zip(&committed) {
            if result.is_ok() {
                node.seen(*who, *nonce);
            }
        }
        committed
    };
    let any_accepted = committed.iter().any(Result::is_ok);
    let mut committed = committed.into_iter();
    let answer = outcomes
        .into_iter()
        .map(|outcome| {
            let result = outcome.or_else(|| committed.next()).unwrap_or_else(|| {
                Err(ApiError::Unavailable(
                    "the commit answered fewer inputs than it was given".into(),
                ))
            });
            match result {
                Ok((seq, events)) => BatchOutcome::Accepted(ActionResponse { seq, events }),
                Err(e) => BatchOutcome::Refused(e.body()),
            }
        })
        .collect();
    if any_accepted {
        shared.work.notify_waiters();
    }
    Ok(Json(answer))
}

/// Authentication (one batch signature check) and admission of each action of a batch.
fn admit_batch(shared: &Shared, batch: Vec<Signed<Action>>) -> Vec<ApiResult<Signed<Action>>> {
    let verdicts = api::verify_batch(&batch, &shared.keys);
    batch
        .into_iter()
        .zip(verdicts)
        .map(|(signed, verdict)| {
            verdict.map_err(|e| ApiError::BadSignature(e.to_string()))?;
            admit_action(&signed.body)?;
            admit_submission(shared, &signed.body)?;
            // (A batch is admitted without waiting on other validators: an output must be here.)
            if let Some((hash, task)) = report_outputs(&signed.body, shared)
                .into_iter()
                .find(|(hash, _)| !shared.blobs.contains(hash))
            {
                return Err(missing_output(hash, task));
            }
            Ok(signed)
        })
        .collect()
}

/// An unlogged signed request: authenticated, nonce-checked and counted as a sign of life.
fn admit_request(shared: &Shared, signed: &Signed<Request>) -> ApiResult<()> {
    authenticate(signed)?;
    admit_request_checked(shared, signed, true)
}

/// [`admit_request`] for a request whose signature was checked; `mark`: record its nonce as
/// seen now (an exchange records it after its report's).
fn admit_request_checked(shared: &Shared, signed: &Signed<Request>, mark: bool) -> ApiResult<()> {
    let mut node = shared.node();
    node.check_nonce(&signed.signer, signed.nonce)?;
    if mark {
        node.seen(signed.signer, signed.nonce);
    }
    match node.state.providers.get(&signed.signer) {
        None => Err(ApiError::NotFound(format!(
            "provider {} is not registered",
            signed.signer
        ))),
        Some(p) if p.status != ProviderStatus::Active => Err(ApiError::Conflict(format!(
            "provider {} is not active (it left or was declared lost); register again",
            signed.signer
        ))),
        Some(_) => Ok(()),
    }
}

async fn heartbeat(State(shared): S, body: Body) -> ApiResult<Json<HeartbeatResponse>> {
    let bytes = read_body(body, 64 * 1024).await?;
    let signed: Signed<Request> = parse_json(&bytes)?;
    if signed.body != Request::Heartbeat {
        return Err(ApiError::BadRequest("expected a heartbeat request".into()));
    }
    admit_request(&shared, &signed)?;
    Ok(Json(HeartbeatResponse {
        heartbeat_interval_ms: shared.config.heartbeat_interval.as_millis() as u64,
        heartbeat_timeout_ms: shared.config.heartbeat_timeout.as_millis() as u64,
        session: Some(shared.sessions.token(&signed.signer)),
    }))
}

/// A heartbeat proved by a session token ([`api::Sessions`]): no signature to check.
async fn ping(State(shared): S, body: Body) -> ApiResult<Json<HeartbeatResponse>> {
    let bytes = read_body(body, 4 * 1024).await?;
    let ping: api::wire::Ping = parse_json(&bytes)?;
    if !shared.sessions.check(&ping.provider, &ping.token) {
        return Err(ApiError::BadSignature(
            "session token not valid on this coordinator (it may have restarted): send a signed heartbeat"
                .into(),
        ));
    }
    {
        let mut node = shared.node();
        match node.state.providers.get(&ping.provider) {
            Some(p) if p.status == ProviderStatus::Active => {}
            _ => {
                return Err(ApiError::Conflict(format!(
                    "provider {} is not active; register again",
                    ping.provider
                )));
            }
        }
        node.seen(ping.provider, 0);
    }
    Ok(Json(HeartbeatResponse {
        heartbeat_interval_ms: shared.config.heartbeat_interval.as_millis() as u64,
        heartbeat_timeout_ms: shared.config.heartbeat_timeout.as_millis() as u64,
        session: None,
    }))
}

/// Batched work fetch with long polling: answers at once when tasks are available, otherwise waits
/// (at most a heartbeat interval) for work to be queued.
async fn fetch(State(shared): S, body: Body) -> ApiResult<Json<FetchResponse>> {
    let bytes = read_body(body, 64 * 1024).await?;
    let signed: Signed<Request> = parse_json(&bytes)?;
    let (_, response) = serve_fetch(&shared, signed, None).await?;
    Ok(Json(response))
}

/// A provider's report and its next fetch in one round trip (and one group commit). The report is
/// signed first, so its nonce is the lower; it is applied first. A refused report refuses the
/// whole exchange and changes nothing.
async fn exchange(
    State(shared): S,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    body: Body,
) -> ApiResult<Json<ExchangeResponse>> {
    let (bytes, _room) =
        read_large_body(&shared, peer, body, shared.config.max_request_bytes).await?;
    let ex: Exchange = parse_large(bytes, parse_json).await?;
    if let Some(report) = &ex.report {
        if report.body.reports().is_none() {
            return Err(ApiError::BadRequest(
                "an exchange carries a report (a ReportResults, ReportMeteredResults or ReportResultsWithOutputs action)"
                    .into(),
            ));
        }
        if report.signer != ex.fetch.signer {
            return Err(ApiError::BadRequest(
                "the report and the fetch of an exchange must have one signer".into(),
            ));
        }
        authenticate(report)?;
        admit_report(&shared, &report.body).await?;
    }
    let (reported, response) = serve_fetch(&shared, ex.fetch, ex.report).await?;
    Ok(Json(ExchangeResponse {
        reported,
        tasks: response.tasks,
        heartbeat_interval_ms: response.heartbeat_interval_ms,
        session: response.session,
    }))
}

async fn serve_fetch(
    shared: &Shared,
    signed: Signed<Request>,
    report: Option<Signed<engine::Action>>,
) -> ApiResult<(Option<u64>, FetchResponse)> {
    let Request::Fetch {
        wait_ms,
        ref cached,
        ..
    } = signed.body
    else {
        return Err(ApiError::BadRequest("expected a fetch request".into()));
    };
    if cached.len() > api::wire::FETCH_CACHED_MAX {
        return Err(ApiError::TooLarge(format!(
            "{} cached blobs listed; at most {} allowed",
            cached.len(),
            api::wire::FETCH_CACHED_MAX
        )));
    }
    authenticate(&signed)?;
    let who = signed.signer;
    let mut report = report;
    if let Some(r) = &report {
        // Admission checks the fetch's nonce against the report's: check the report's first.
        shared.node().check_nonce(&who, r.nonce)?;
        if signed.nonce <= r.nonce {
            return Err(ApiError::Replay(
                "the fetch of an exchange must be signed after its report".into(),
            ));
        }
    }
    admit_request_checked(shared, &signed, report.is_none())?;
    shared
        .node()
        .cached
        .insert(who, cached.iter().copied().collect());
    let heartbeat_interval_ms = shared.config.heartbeat_interval.as_millis() as u64;
    let wait = Duration::from_millis(u64::from(wait_ms))
        .min(shared.config.max_fetch_wait)
        .min(shared.config.heartbeat_interval);
    let deadline = tokio::time::Instant::now() + wait;
    let mut reported = None;
    let tasks = loop {
        let notified = shared.work.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let delivery = deliver(shared, &signed, report.take()).await?;
        reported = reported.or(delivery.reported);
        if !delivery.tasks.is_empty() {
            break delivery.tasks;
        }
        // Listed as waiting while parked; the guard unlists it even if the client goes away.
        let parked = Parked::new(shared, &signed);
        let woken = tokio::time::timeout_at(deadline, notified).await.is_ok();
        drop(parked);
        if !woken {
            break Vec::new();
        }
    };
    Ok((
        reported,
        FetchResponse {
            tasks,
            heartbeat_interval_ms,
            session: Some(shared.sessions.token(&who)),
        },
    ))
}

/// A provider listed in [`crate::node::Node::idle`] while its fetch waits for work.
struct Parked<'a> {
    shared: &'a Shared,
    who: AccountId,
}

impl<'a> Parked<'a> {
    fn new(shared: &'a Shared, fetch: &Signed<Request>) -> Parked<'a> {
        let who = fetch.signer;
        shared.node().idle.insert(who, fetch.clone());
        Parked { shared, who }
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.shared.node().idle.remove(&self.who);
    }
}

/// What one attempt of a fetch gave: the seq of the report that came with it, and the tasks.
struct Delivery {
    reported: Option<u64>,
    tasks: Vec<engine::TaskDescriptor>,
}

/// One attempt of a fetch: tasks assigned to `who` that it does not know it holds (served to its
/// fetch with a job's submission, or an answer lost to a crash or a network failure), or else
/// what the scheduler picks for it now. The
/// report that came with the fetch (if any) is applied first, so its freed slots count, and the
/// report and the assignment become durable together, in one proposal, before the answer. The
/// engine picks the tasks while the proposal is executed, on every validator alike.
async fn deliver(
    shared: &Shared,
    fetch: &Signed<Request>,
    report: Option<Signed<engine::Action>>,
) -> ApiResult<Delivery> {
    let reporting = report.is_some();
    let who = fetch.signer;
    let time = crate::now_ms();
    let waiting = {
        let mut node = shared.node();
        if let Some(r) = &report {
            node.seen(who, r.nonce);
        }
        node.seen(who, fetch.nonce);
        // Tasks already assigned to it that it does not hold (a job submitted while it waited
        // was served its fetch; or an answer was lost): the committed state says so, and
        // handing them over changes nothing, so no proposal (on a validator set, a round of
        // consensus) is needed.
        let orphans = if reporting {
            Vec::new()
        } else {
            node.orphans(fetch)
        };
        if !orphans.is_empty() {
            return Ok(Delivery {
                reported: None,
                tasks: orphans
                    .iter()
                    .filter_map(|t| node.state.task_descriptor(*t))
                    .collect(),
            });
        }
        let waiting = node.waiting(Some(who), &[]);
        // Without a report nothing changes unless there is something to hand over: look on
        // this state first rather than propose an empty fetch for every parked provider woken.
        if !reporting && !node.would_deliver(fetch, &waiting, time) {
            return Ok(Delivery {
                reported: None,
                tasks: Vec::new(),
            });
        }
        waiting
    };
    let proposal = Proposal::Fetch(Box::new(crate::proposal::Fetch {
        time,
        fetch: fetch.clone(),
        report,
        waiting,
    }));
    let Outcome::Delivered {
        reported,
        tasks,
        queued_replicas,
    } = shared.consensus.propose(proposal).await?
    else {
        return Err(ApiError::Unavailable(
            "the fetch was answered with another kind of outcome".into(),
        ));
    };
    let reported = reported.transpose().map_err(ApiError::from)?;
    let tasks = if tasks.is_empty() {
        Vec::new()
    } else {
        let node = shared.node();
        tasks
            .iter()
            .filter_map(|t| node.state.task_descriptor(*t))
            .collect()
    };
    if queued_replicas || reporting {
        shared.work.notify_waiters();
    }
    Ok(Delivery { reported, tasks })
}

#[derive(serde::Deserialize)]
struct JobQuery {
    #[serde(default)]
    tasks: bool,
    /// The first task of the page of per-task detail.
    #[serde(default)]
    tasks_from: u32,
    /// At most this many tasks (capped at `JOB_TASKS_PAGE_MAX`).
    #[serde(default = "job_tasks_page")]
    tasks_limit: u32,
    /// Wait up to this long for the job to finish before answering.
    #[serde(default)]
    wait_ms: u64,
}

fn job_tasks_page() -> u32 {
    api::wire::JOB_TASKS_PAGE_MAX
}

/// The longest a job long poll may wait.
const MAX_JOB_WAIT: Duration = Duration::from_secs(60);

async fn job(
    State(shared): S,
    Path(id): Path<String>,
    query: Result<Query<JobQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<JobView>> {
    let id: JobId = parse_id("job id", &id)?;
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(q.wait_ms).min(MAX_JOB_WAIT);
    let finished = shared.node().jobs_finished.clone();
    loop {
        let notified = finished.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let with_tasks = q.tasks.then(|| {
            (
                q.tasks_from,
                q.tasks_limit.clamp(1, api::wire::JOB_TASKS_PAGE_MAX),
            )
        });
        let view =
            shared
                .read(move |_, node| {
                    let job = job_of(node, id)?;
                    let done = job.status.is_finished() || tokio::time::Instant::now() >= deadline;
                    Ok::<_, ApiError>(done.then(|| {
                        views::job(&node.state, job, with_tasks, node.state.job_outlook(id))
                    }))
                })
                .await??;
        if let Some(view) = view {
            return Ok(Json(view));
        }
        let _ = tokio::time::timeout_at(deadline, notified).await;
    }
}

/// `GET /v1/jobs`: a page of jobs, newest first, without per-task detail.
async fn jobs(
    State(shared): S,
    query: Result<Query<api::wire::JobsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<api::wire::JobsPage>> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let owner: Option<AccountId> = q
        .owner
        .as_deref()
        .map(|o| parse_id("owner account id", o))
        .transpose()?;
    let limit = q.limit.unwrap_or(50).clamp(1, api::wire::JOBS_PAGE_MAX) as usize;
    let before = q.before.unwrap_or(JobId::MAX);
    let page = shared
        .read(move |_, node| {
            let mut jobs = Vec::new();
            let mut next_before = None;
            for (looked, (id, job)) in node.state.jobs.range(..before).rev().enumerate() {
                if jobs.len() == limit || looked == api::wire::JOBS_SCAN_MAX as usize {
                    next_before = Some(*id + 1);
                    break;
                }
                if owner.is_none_or(|o| o == job.owner) {
                    jobs.push(views::job(
                        &node.state,
                        job,
                        None,
                        node.state.job_outlook(*id),
                    ));
                }
            }
            api::wire::JobsPage { jobs, next_before }
        })
        .await?;
    Ok(Json(page))
}

/// Job `id`, or a 404 naming it.
fn job_of(node: &crate::node::Node, id: JobId) -> ApiResult<&engine::Job> {
    node.state
        .jobs
        .get(&id)
        .ok_or_else(|| ApiError::NotFound(format!("unknown job {id}")))
}

async fn job_output(State(shared): S, Path(id): Path<String>) -> ApiResult<impl IntoResponse> {
    let id: JobId = parse_id("job id", &id)?;
    let parts = shared
        .read(move |_, node| {
            let job = job_of(node, id)?;
            if let Some(at) = node
                .state
                .storage
                .jobs
                .get(&id)
                .and_then(|s| s.released_at)
            {
                return Err(ApiError::Gone(format!(
                    "job {id}'s storage was released at {at} (its owner released it, or its retention ended): its output is deleted"
                )));
            }
            if node.state.job_sealing(id).is_some() {
                return Err(ApiError::Conflict(format!(
                    "job {id} is private: its output parts (the job's `output`) are sealed under \
                     its key; fetch them with GET /v1/blobs/{{hash}} and open them with the key \
                     (`gridmint job results {id}` does)"
                )));
            }
            job.output_parts().ok_or_else(|| {
                ApiError::Conflict(format!(
                    "job {id} has no output: it is {}",
                    match &job.status {
                        engine::JobStatus::Failed { reason } => format!("failed ({reason})"),
                        other => format!("{other:?}").to_lowercase(),
                    }
                ))
            })
        })
        .await??;
    let blobs = shared.blobs.clone();
    let out = tokio::task::spawn_blocking(move || -> ApiResult<Vec<u8>> {
        let mut out = Vec::new();
        for hash in parts {
            let bytes = blobs
                .get(&hash)
                .map_err(|e| ApiError::Unavailable(e.to_string()))?
                .ok_or_else(|| ApiError::Unavailable(format!("output blob {hash} is missing")))?;
            out.extend_from_slice(&bytes);
        }
        Ok(out)
    })
    .await
    .map_err(|e| ApiError::Unavailable(e.to_string()))??;
    // A browser shows an image output as one (the console's job page does), and saves anything
    // else: the type follows the bytes' own signature, never anything a requester declared.
    let kind = output_type(&out);
    Ok((
        [
            (header::CONTENT_TYPE, kind),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (
                header::CONTENT_DISPOSITION,
                if kind == "application/octet-stream" {
                    "attachment"
                } else {
                    "inline"
                },
            ),
        ],
        out,
    ))
}

/// The media type of a job's output: PNG, JPEG or GIF by their signatures, else bytes.
fn output_type(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        "image/jpeg"
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        "image/gif"
    } else {
        "application/octet-stream"
    }
}

#[derive(serde::Deserialize)]
struct ProvidersQuery {
    /// Providers after this id.
    after: Option<String>,
    #[serde(default = "providers_page")]
    limit: u32,
}

fn providers_page() -> u32 {
    api::wire::PROVIDERS_PAGE_MAX
}

async fn providers(
    State(shared): S,
    query: Result<Query<ProvidersQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<ProviderView>>> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let after: Option<AccountId> = q
        .after
        .as_deref()
        .map(|a| parse_id("provider id", a))
        .transpose()?;
    let limit = q.limit.clamp(1, api::wire::PROVIDERS_PAGE_MAX) as usize;
    let views = shared
        .read(move |_, node| {
            use std::ops::Bound::{Excluded, Unbounded};
            let from = after.map_or(Unbounded, Excluded);
            node.state
                .providers
                .range((from, Unbounded))
                .take(limit)
                .map(|(_, p)| views::provider(&node.state, p))
                .collect()
        })
        .await?;
    Ok(Json(views))
}

async fn provider(State(shared): S, Path(id): Path<String>) -> ApiResult<Json<ProviderView>> {
    let id: AccountId = parse_id("provider id", &id)?;
    let view = shared
        .read(move |_, node| {
            let p = node
                .state
                .providers
                .get(&id)
                .ok_or_else(|| ApiError::NotFound(format!("unknown provider {id}")))?;
            Ok::<_, ApiError>(views::provider(&node.state, p))
        })
        .await??;
    Ok(Json(view))
}

/// Rules 25: the price index.
async fn market(State(shared): S) -> ApiResult<Json<api::wire::MarketView>> {
    let view = shared
        .read(move |_, node| api::wire::MarketView {
            classes: node.state.price_indexes(),
        })
        .await?;
    Ok(Json(view))
}

/// Rules 27: the validators, what backs each and what each earned.
async fn validators(State(shared): S) -> ApiResult<Json<api::wire::ValidatorsView>> {
    let view = shared
        .read(move |_, node| views::validators(&node.state))
        .await?;
    Ok(Json(view))
}

/// Rules 28: the proven GPU classes and the claims waiting to be proven.
async fn gpu_classes(
    State(shared): S,
    query: Result<Query<api::wire::GpuClassesQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<api::wire::GpuClassesView>> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let provider: Option<AccountId> = q
        .provider
        .as_deref()
        .map(|p| parse_id("provider account id", p))
        .transpose()?;
    let member: Option<AccountId> = q
        .member
        .as_deref()
        .map(|p| parse_id("member account id", p))
        .transpose()?;
    let view = shared
        .read(move |_, node| views::gpu_classes(&node.state, q.class.as_deref(), provider, member))
        .await?;
    Ok(Json(view))
}

/// Rules 25: the governance parameters and the newest proposals.
async fn proposals(State(shared): S) -> ApiResult<Json<api::wire::GovernanceView>> {
    let view = shared
        .read(move |_, node| views::governance(&node.state))
        .await?;
    Ok(Json(view))
}

/// Rules 25: one proposal and its tally.
async fn proposal(
    State(shared): S,
    Path(id): Path<String>,
) -> ApiResult<Json<api::wire::ProposalView>> {
    let id: u64 = parse_id("proposal id", &id)?;
    let view = shared
        .read(move |_, node| {
            views::proposal(&node.state, id)
                .ok_or_else(|| ApiError::NotFound(format!("unknown proposal {id}")))
        })
        .await??;
    Ok(Json(view))
}

/// Rules 26: the newest reservations, of an owner and/or leased by a provider.
async fn reservations(
    State(shared): S,
    query: Result<Query<api::wire::ReservationsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<api::wire::ReservationView>>> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let owner: Option<AccountId> = q
        .owner
        .as_deref()
        .map(|o| parse_id("owner account id", o))
        .transpose()?;
    let provider: Option<AccountId> = q
        .provider
        .as_deref()
        .map(|p| parse_id("provider account id", p))
        .transpose()?;
    let views = shared
        .read(move |_, node| views::reservations(&node.state, owner, provider))
        .await?;
    Ok(Json(views))
}

/// Rules 26: one reservation and its leases.
async fn reservation(
    State(shared): S,
    Path(id): Path<String>,
) -> ApiResult<Json<api::wire::ReservationView>> {
    let id: u64 = parse_id("reservation id", &id)?;
    let view = shared
        .read(move |_, node| {
            node.state
                .reservations
                .reservations
                .get(&id)
                .map(|r| views::reservation(&node.state, r))
                .ok_or_else(|| ApiError::NotFound(format!("unknown reservation {id}")))
        })
        .await??;
    Ok(Json(view))
}

async fn account(State(shared): S, Path(id): Path<String>) -> ApiResult<Json<AccountView>> {
    let id: AccountId = parse_id("account id", &id)?;
    let view = shared
        .read(move |_, node| views::account(&node.state, id))
        .await?;
    Ok(Json(view))
}

async fn history(
    State(shared): S,
    Path(id): Path<String>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<HistoryPage>> {
    let id: AccountId = parse_id("account id", &id)?;
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = q.limit.clamp(1, HISTORY_PAGE_MAX);
    let before = q.before.unwrap_or(u64::MAX);
    // The rows of the entries committed until now are written after their commits: wait for
    // them here, not under the node lock.
    let written = shared.node().history_barrier();
    tokio::task::spawn_blocking(move || written.wait())
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let rows = shared
        .read(move |_, node| node.history(&id, before, limit as usize))
        .await?
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    // Rows of one entry share a seq: a page boundary inside an entry would lose rows, so a full
    // page ends before its oldest entry, unless that entry alone fills the page.
    let full = rows.len() == limit as usize;
    let oldest = rows.last().map(|r| r.seq);
    let mut items: Vec<HistoryItem> = rows
        .into_iter()
        .map(|r| HistoryItem {
            seq: r.seq,
            time: r.time,
            event: r.event,
        })
        .collect();
    let next_before = match (full, oldest) {
        (true, Some(oldest)) if items.iter().any(|i| i.seq != oldest) => {
            items.retain(|i| i.seq != oldest);
            Some(oldest + 1)
        }
        (true, Some(oldest)) => Some(oldest),
        _ => None,
    };
    Ok(Json(HistoryPage {
        account: id,
        items,
        next_before,
    }))
}

async fn network(State(shared): S) -> ApiResult<Json<NetworkView>> {
    let view = shared
        .read(|_, node| views::network(&node.state, node.genesis_hash()))
        .await?;
    Ok(Json(view))
}

async fn genesis(State(shared): S) -> Json<engine::Genesis> {
    Json(shared.genesis.clone())
}

async fn chain(State(shared): S) -> ApiResult<Json<ChainView>> {
    Ok(Json(shared.read(|_, node| node.chain_view()).await?))
}

/// `?from=&limit=` of a chain page, as `(after, limit)`: `from` 0 reads as 1, `limit` is capped.
fn chain_page(
    page: Result<Query<ChainPage>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<(u64, usize)> {
    let Query(page) = page.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = page.limit.clamp(1, CHAIN_PAGE_MAX);
    Ok((
        page.from.saturating_sub(1),
        usize::try_from(limit).unwrap_or(1),
    ))
}

async fn chain_blocks(
    State(shared): S,
    page: Result<Query<ChainPage>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<engine::Block>>> {
    let (after, limit) = chain_page(page)?;
    let blocks = shared
        .read(move |_, node| node.blocks_after(after, limit))
        .await?
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(Json(blocks))
}

async fn chain_validators(State(shared): S) -> Json<engine::ValidatorSet> {
    Json(shared.peers.set.get())
}

/// The signatures this validator holds of blocks `from..from + limit` (blocks, not signatures:
/// a page holds every signature of each block in it).
async fn chain_signatures(
    State(shared): S,
    page: Result<Query<ChainPage>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<api::wire::BlockSignature>>> {
    let (after, limit) = chain_page(page)?;
    let from = after.saturating_add(1);
    let to = after.saturating_add(limit as u64);
    let signatures = shared
        .read(move |_, node| node.signatures(from, to))
        .await?
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let mut out: Vec<api::wire::BlockSignature> = signatures
        .into_iter()
        .map(|(height, validator, signature)| api::wire::BlockSignature {
            height,
            validator,
            signature,
            header: None,
        })
        .collect();
    if shared.config.equivocate {
        // Tests only: this validator also signs another header at each height, as a
        // validator that shows different blocks to different peers would.
        let node = shared.node();
        let blocks = node
            .blocks_after(after, limit)
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        for block in blocks {
            let mut other = block.header;
            other.time = other.time.saturating_add(1);
            out.push(api::wire::BlockSignature {
                height: other.height,
                validator: node.validator_id(),
                signature: node.sign_header(other.clone()),
                header: Some(other),
            });
        }
    }
    Ok(Json(out))
}

/// `GET /v1/chain/checkpoint` (validators): this validator's state at its next block boundary,
/// with the block, the block's quorum certificate, the consensus position and the validator set
/// changes before it with their certificates (postcard [`crate::node::Checkpoint`]): what a
/// joining validator starts from instead of replaying the whole log. One at a time; it waits up to 10 s for a boundary and 5 s for the certificate.
async fn chain_checkpoint(State(shared): S) -> ApiResult<impl IntoResponse> {
    if !shared.peers.replicated() {
        return Err(ApiError::NotFound(
            "a single coordinator has no checkpoints (they are for joining validators)".into(),
        ));
    }
    let _turn = shared
        .lookups
        .acquire()
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let waiting = {
        let mut node = shared.node();
        match node.checkpoint() {
            Some(now) => Err(now),
            None => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                node.capture = Some(tx);
                Ok(rx)
            }
        }
    };
    let mut checkpoint = match waiting {
        Err(now) => now,
        Ok(rx) => tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .map_err(|_| ApiError::Unavailable("no block boundary within 10 s; retry".into()))?
            .map_err(|_| ApiError::Unavailable("the checkpoint was dropped; retry".into()))?,
    };
    let height = checkpoint.block.header.height;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let signatures = shared
            .node()
            .signatures(height, height)
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        let certified = checkpoint
            .state
            .validators
            .set
            .is_quorum(signatures.iter().map(|(_, v, _)| v));
        if certified || tokio::time::Instant::now() >= deadline {
            checkpoint.signatures = signatures.into_iter().map(|(_, v, s)| (v, s)).collect();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    checkpoint.set_changes = shared
        .node()
        .set_changes_below(height)
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let bytes =
        postcard::to_stdvec(&checkpoint).map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes))
}

/// Largest evidence body accepted (two headers and signatures take well under 1 KiB).
const EVIDENCE_MAX_BYTES: usize = 16 * 1024;

/// Evidence that a validator signed two different blocks at one height. Anyone may submit it;
/// what does not hold is refused here, before it is proposed (so it costs the network nothing),
/// and checked again as it is applied on every validator; the engine slashes the validator.
async fn evidence(State(shared): S, body: Body) -> ApiResult<Json<ActionResponse>> {
    let bytes = read_body(body, EVIDENCE_MAX_BYTES).await?;
    let ev: engine::Equivocation = parse_json(&bytes)?;
    {
        let node = shared.node();
        let refuse = |msg: String| ApiError::from(engine::Rejection::NotEquivocation(msg));
        if let Some(&height) = node.state.validators.equivocated.get(&ev.validator) {
            return Err(engine::Rejection::AlreadyPunished {
                validator: ev.validator,
                height,
            }
            .into());
        }
        if node.state.validators.set.get(&ev.validator).is_none() {
            return Err(engine::Rejection::NotAValidator(ev.validator).into());
        }
        if ev.first.header.height != ev.second.header.height || ev.first.header == ev.second.header
        {
            return Err(refuse(
                "two different headers of one height are needed".into(),
            ));
        }
        api::chain::check_evidence(&ev, node.block_hash(ev.height())).map_err(refuse)?;
    }
    let proposal = Proposal::Inputs {
        time: crate::now_ms(),
        inputs: vec![Input::Evidence(Box::new(ev))],
    };
    let outcome = shared.consensus.propose(proposal).await?;
    let (seq, events) = committed(outcome)?
        .into_iter()
        .next()
        .unwrap_or_else(|| Err(ApiError::Unavailable("nothing was committed".into())))?;
    Ok(Json(ActionResponse { seq, events }))
}

async fn chain_entries(
    State(shared): S,
    page: Result<Query<ChainPage>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<RawEntry>>> {
    let (after, limit) = chain_page(page)?;
    let entries = shared
        .read(move |_, node| node.raw_entries(after, limit))
        .await?
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(Json(
        entries
            .iter()
            .map(|(seq, bytes)| RawEntry::new(*seq, bytes))
            .collect(),
    ))
}

/// `GET /v1/chain/inputs`: log entries decoded, for people and explorers.
async fn chain_inputs(
    State(shared): S,
    page: Result<Query<ChainPage>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<api::wire::EntryView>>> {
    let (after, limit) = chain_page(page)?;
    let limit = limit.min(api::wire::INPUTS_PAGE_MAX as usize);
    let entries = shared
        .read(move |_, node| node.raw_entries(after, limit))
        .await?
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    entries
        .iter()
        .map(|(seq, bytes)| {
            let entry = store::decode_entry(*seq, bytes)
                .map_err(|e| ApiError::Unavailable(format!("entry {seq}: {e}")))?;
            Ok(views::entry(*seq, entry))
        })
        .collect::<ApiResult<Vec<_>>>()
        .map(Json)
}

#[cfg(test)]
mod tests {
    use crate::{CoordinatorConfig, GenesisChoice};
    use api::wire::{ACTION_BATCH_MAX, BatchOutcome};
    use api::{Client, Identity};
    use engine::{
        AccountId, Action, Aggregate, Genesis, Hash, JobSpec, Limits, OutputSource, TaskSpec,
        tokens,
    };

    fn outcome(o: &BatchOutcome) -> Result<u64, String> {
        o.clone().into_result().map(|r| r.seq).map_err(|e| e.error)
    }

    #[tokio::test]
    async fn a_batch_of_actions_is_checked_admitted_and_committed_action_by_action() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (Identity::generate(), Identity::generate());
        let mut genesis = Genesis::dev(AccountId([9; 32]));
        genesis.action_fee = 0; // (fees per action are the engine tests' subject)
        genesis.allocations.insert(a.id(), tokens(100));
        let mut config = CoordinatorConfig::new(dir.path().to_path_buf());
        config.genesis = GenesisChoice::Given(Box::new(genesis));
        let running = crate::start(config, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let client = Client::new(&running.url());
        let pay = |n| Action::Transfer {
            to: b.id(),
            amount: tokens(n),
        };

        let good = a.sign(pay(10));
        let mut forged = a.sign(pay(1));
        forged.body = pay(50);
        let too_much = b.sign(Action::Transfer {
            to: a.id(),
            amount: tokens(20),
        });
        // A job whose module was never uploaded fails admission, as it would on its own.
        let job = a.sign(Action::SubmitJob(JobSpec {
            module: Hash([7; 32]),
            tasks: vec![TaskSpec::default()],
            limits: Limits {
                fuel: 1000,
                memory_bytes: 1 << 20,
                wall_ms: 1000,
            },
            deadline: crate::now_ms() + 60_000,
            max_price: 1,
            output: OutputSource::Stdout,
            aggregate: Aggregate::Concat,
            redundancy: Default::default(),
            requirements: Default::default(),
        }));
        let replayed = good.clone();
        let after = a.sign(pay(5));
        let outcomes = client
            .action_batch(&[good, forged, too_much, job, replayed, after])
            .await
            .unwrap();
        let got: Vec<Result<u64, String>> = outcomes.iter().map(outcome).collect();
        let refused = |e: &str| Err(e.to_string());
        // (The leader's timer may have logged its beacon commitment first.)
        let Some(Ok(first)) = got.first().cloned() else {
            panic!("the first action was refused: {got:?}")
        };
        assert_eq!(
            got,
            [
                Ok(first),
                refused("bad_signature"),
                refused("insufficient_funds"),
                refused("not_found"),
                refused("replayed"),
                Ok(first + 1)
            ]
        );
        assert_eq!(client.account(b.id()).await.unwrap().balance, tokens(15));

        // Signed by the client; the nonce of the refused action above is not used up.
        let back = client
            .actions(
                &b,
                vec![Action::Transfer {
                    to: a.id(),
                    amount: tokens(15),
                }],
            )
            .await
            .unwrap();
        // (The leader's timer may log a beacon entry in between, under load.)
        let Ok(seq) = outcome(&back[0]) else {
            panic!("the transfer back was refused: {back:?}")
        };
        assert!(seq > first + 1, "{seq} after {first}");
        assert_eq!(client.account(a.id()).await.unwrap().balance, tokens(100));
        assert!(client.status().await.unwrap().log_length >= seq);

        let empty = client.action_batch(&[]).await.unwrap();
        assert!(empty.is_empty());
        let too_many: Vec<_> = (0..=ACTION_BATCH_MAX).map(|_| a.sign(pay(1))).collect();
        let err = client.action_batch(&too_many).await.unwrap_err();
        assert_eq!(err.status(), Some(413), "{err}");
        assert_eq!(client.status().await.unwrap().log_length, first + 2);
        running.shutdown().await;
    }
}
