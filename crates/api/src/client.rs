//! Typed HTTP client for the coordinator, used by providers and the CLI.

use crate::auth::Identity;
use crate::wire::{
    AccountView, ActionResponse, BatchOutcome, BlobStored, ChainView, ErrorBody, Exchange,
    ExchangeResponse, FetchResponse, HEADER_NONCE, HEADER_SIGNATURE, HEADER_SIGNER,
    HeartbeatResponse, HistoryPage, JobView, NetworkView, Ping, ProviderView, RawEntry, Request,
    StatusView, UploadView,
};
use bytes::Bytes;
use engine::{AccountId, Action, Block, Genesis, Hash, JobId, Signed, TaskId, TaskReport};
use serde::de::DeserializeOwned;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The coordinator answered with an error status.
    #[error("{url}: {status} {}: {}", body.error, body.detail)]
    Api {
        url: String,
        status: u16,
        body: ErrorBody,
    },
    #[error("{url}: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url}: unexpected response: {msg}")]
    Decode { url: String, msg: String },
    /// A validator that is not the leader answered: the leader is at `leader`.
    #[error("{url}: not the leader; the leader is {leader}")]
    Leader { url: String, leader: String },
    /// The TLS handshake failed: most often a certificate this client does not trust (see
    /// `--pin` and `--ca`). Not transient: retrying does not change whom the client trusts.
    #[error("{url}: TLS: {msg}")]
    Tls { url: String, msg: String },
    /// Plain HTTP to a host that is not this machine, which this client was not allowed.
    #[error(
        "{url}: plain HTTP to another machine sends every request, keys' tokens included, in \
         clear: use https://, or pass --plain-http to mean it"
    )]
    PlainHttp { url: String },
}

/// The TLS error somewhere in `error`'s sources, if any (tokio-rustls hands it up inside an
/// `io::Error`, itself inside another, and an `io::Error`'s `source` skips what it wraps: hence
/// the look inside each).
fn tls_failure<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(error);
    while let Some(e) = next {
        let mut inner: &(dyn std::error::Error + 'static) = e;
        loop {
            if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
                return Some(tls);
            }
            match inner
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                Some(wrapped) => inner = wrapped,
                None => break,
            }
        }
        next = e.source();
    }
    None
}

/// A transport failure as a [`ClientError`]: [`ClientError::Tls`] if the handshake failed.
fn transport(url: String, source: reqwest::Error) -> ClientError {
    let Some(tls) = tls_failure(&source) else {
        return ClientError::Transport { url, source };
    };
    // What a plain HTTP server answers a TLS hello with is not a TLS record at all.
    let hint = match tls {
        rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
            " (is it a plain HTTP server? then use http://)"
        }
        _ => "",
    };
    ClientError::Tls {
        msg: format!("{}{hint}", crate::tls::describe(tls)),
        url,
    }
}

impl ClientError {
    /// The HTTP status, if the coordinator answered at all.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Trouble that passes: the coordinator could not be reached, or answered that it cannot
    /// serve right now (429, or a 5xx such as 503 with its disk full) — as opposed to refusing
    /// the request itself. A client retries these with backoff and keeps its state.
    pub fn is_transient(&self) -> bool {
        self.is_unreachable()
            || matches!(self.status(), Some(429 | 500 | 502 | 503 | 504 | 507 | 508))
    }

    /// The coordinator could not be reached (as opposed to refusing the request).
    /// A validator set with no leader right now counts as unreachable too: try again shortly.
    pub fn is_unreachable(&self) -> bool {
        match self {
            ClientError::Transport { .. } | ClientError::Leader { .. } => true,
            ClientError::Api { body, .. } => body.error == "not_leader",
            _ => false,
        }
    }
}

/// A signed request's signer, nonce and signature as the headers blob writes carry them in.
fn signature_headers(signed: &Signed<Request>) -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in [
        (HEADER_SIGNER, signed.signer.to_hex()),
        (HEADER_NONCE, signed.nonce.to_string()),
        (HEADER_SIGNATURE, signed.signature.to_hex()),
    ] {
        if let Ok(value) = reqwest::header::HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    headers
}

/// The size of an upload's chunks and a download's pieces: blobs larger than this travel in
/// pieces (`/v1/uploads`, `Range`), each resent alone after a failure.
pub const UPLOAD_CHUNK: u64 = 8 << 20;
/// How many failures in a row an upload or a download takes before it gives up.
pub const UPLOAD_RETRIES: u32 = 8;

/// A coordinator at `base` (e.g. `http://127.0.0.1:7070`), or a validator set: `base` may list
/// several URLs separated by commas. Requests go to the current one; a validator that is not the
/// leader points writes to the leader (`x-gridmint-leader`), which becomes the current one, and
/// a validator that cannot be reached is replaced by the next in the list. A signed write resent
/// after a failure is never applied twice: its nonce is spent once it is.
#[derive(Clone, Debug)]
pub struct Client {
    bases: std::sync::Arc<Vec<String>>,
    /// The URL requests go to now (shared by clones).
    current: std::sync::Arc<std::sync::Mutex<String>>,
    http: reqwest::Client,
    /// What this process's trust said of plain HTTP to other machines (`tls::Trust`).
    plain_http: bool,
}

/// How long a client keeps trying other validators before it gives up on a request.
const FAILOVER_FOR: Duration = Duration::from_secs(15);

/// The wait before asking again after a request was shed (`503 overloaded`) or limited (`429
/// rate_limited`): the coordinator's `Retry-After` for a shed read, and the shortest it says
/// for a limit (a bucket refills continuously; waiting the whole `Retry-After` would waste it).
const SHED_RETRY: Duration = Duration::from_secs(1);

/// `wait`, give or take a quarter, so that clients shed together do not come back together.
fn jittered(wait: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let quarter = wait / 4;
    wait - quarter + Duration::from_nanos(random % (quarter.as_nanos().max(1) as u64 * 2))
}

impl Client {
    /// A client that trusts what this process's [`crate::tls::trust`] says.
    pub fn new(base: &str) -> Client {
        crate::tls::install_provider();
        let trust = crate::tls::trust();
        let plain_http = trust.plain_http;
        let tls = crate::tls::client_config(&trust, None)
            .expect("tls::set_trust keeps only a trust that makes a client configuration");
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(16)
            // Coordinators close a connection idle for 30 s (`HEADER_TIMEOUT`): close it first,
            // so that a request never goes out on a connection the server is closing.
            .pool_idle_timeout(Duration::from_secs(20))
            // Redirects to the leader are followed here, so the client learns where it is.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client with only timeouts set always builds");
        let bases: Vec<String> = base
            .split(',')
            .map(|b| b.trim().trim_end_matches('/').to_string())
            .filter(|b| !b.is_empty())
            .collect();
        let first = bases.first().cloned().unwrap_or_default();
        Client {
            bases: std::sync::Arc::new(bases),
            current: std::sync::Arc::new(std::sync::Mutex::new(first)),
            http,
            plain_http,
        }
    }

    /// The URL requests go to now.
    pub fn base(&self) -> String {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every URL this client was given.
    pub fn bases(&self) -> &[String] {
        &self.bases
    }

    fn set_base(&self, base: &str) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) =
            base.trim_end_matches('/').to_string();
    }

    /// Moves on to the URL after `failed` in the list.
    fn rotate(&self, failed: &str) {
        let i = self.bases.iter().position(|b| b == failed);
        let next = match i {
            Some(i) => self.bases.get((i + 1) % self.bases.len()),
            None => self.bases.first(),
        };
        if let Some(next) = next {
            self.set_base(next);
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// Sends the request `build` makes for a full URL to the current validator, following the
    /// leader and failing over as described on [`Client`].
    async fn send_to(
        &self,
        path: &str,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<Bytes, ClientError> {
        Ok(self.send_write(path, build, None).await?.0)
    }

    /// [`Client::send_to`] for a signed write: after a failure that may have hidden its outcome
    /// (the connection broke), it is first looked up at `lookup`
    /// (`/v1/actions/{signer}/{nonce}`), and the logged outcome returned instead of resending it.
    /// Also says whether some attempt may have been applied without its answer reaching us (a
    /// resent batch then finds its own earlier actions "replayed").
    async fn send_write(
        &self,
        path: &str,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
        lookup: Option<&str>,
    ) -> Result<(Bytes, bool), ClientError> {
        let deadline = tokio::time::Instant::now() + FAILOVER_FOR;
        let mut hops = 0u32;
        // What a validator said, if one answered: more telling than a refused connection.
        let mut answered: Option<ClientError> = None;
        // Whether an attempt may have reached a validator without its answer reaching us.
        let mut unsure = false;
        let mut ever_unsure = false;
        // Validators that could not be reached during this call: a redirect to one of them
        // (another validator that has not noticed the leader died) is not followed.
        let mut unreachable: Vec<String> = Vec::new();
        loop {
            ever_unsure |= unsure;
            if unsure && let Some(lookup) = lookup {
                match self.look_up(lookup).await {
                    Some(logged) => return Ok((logged, true)),
                    None => unsure = false,
                }
            }
            let base = self.base();
            let url = format!("{base}{path}");
            let result = self.send(url.clone(), build(&url)).await;
            let retry = match &result {
                Err(ClientError::Leader { leader, .. })
                    if unreachable
                        .iter()
                        .any(|u| u == leader.trim_end_matches('/')) =>
                {
                    // The leader it names is gone: an election is due. Ask the next one shortly.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    self.rotate(&base);
                    true
                }
                Err(ClientError::Leader { leader, .. }) => {
                    self.set_base(leader);
                    true
                }
                Err(ClientError::Api { body, .. }) if body.error == "not_leader" => {
                    // An election is under way: ask another validator shortly.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    self.rotate(&base);
                    true
                }
                Err(ClientError::Transport { source, .. }) if self.bases.len() > 1 => {
                    if !unreachable.contains(&base) {
                        unreachable.push(base.clone());
                    }
                    self.rotate(&base);
                    // A refused connection sent nothing; anything later may have.
                    unsure |= !source.is_connect();
                    true
                }
                // The coordinator shed this request unread (reads go first when it is busy):
                // ask again after the second it says, give or take a quarter.
                Err(ClientError::Api {
                    status: 503, body, ..
                }) if body.error == "overloaded" => {
                    tokio::time::sleep(jittered(SHED_RETRY)).await;
                    true
                }
                // Over a rate limit (nothing was read or changed): the same, until the
                // client's patience for this request runs out; then the 429 is the answer.
                Err(ClientError::Api {
                    status: 429, body, ..
                }) if body.error == "rate_limited" => {
                    tokio::time::sleep(jittered(SHED_RETRY)).await;
                    true
                }
                // The nonce is spent: by this very write, if an earlier attempt got through.
                Err(ClientError::Api { body, .. }) if body.error == "replayed" && unsure => {
                    if let Some(logged) = match lookup {
                        Some(lookup) => self.look_up(lookup).await,
                        None => None,
                    } {
                        return Ok((logged, true));
                    }
                    false
                }
                _ => false,
            };
            hops += 1;
            if !retry || tokio::time::Instant::now() >= deadline || hops > 64 {
                let result = match (result, answered) {
                    (Err(ClientError::Transport { .. }), Some(said)) => Err(said),
                    (result, _) => result,
                };
                return match result {
                    Err(ClientError::Leader { url, leader }) => Err(ClientError::Api {
                        url,
                        status: 307,
                        body: ErrorBody {
                            error: "not_leader".into(),
                            detail: format!("the leader is {leader}"),
                        },
                    }),
                    other => other.map(|bytes| (bytes, ever_unsure)),
                };
            }
            if let Err(e @ ClientError::Api { .. }) = result {
                answered = Some(e);
            } else if matches!(result, Err(ClientError::Transport { .. })) && hops.is_multiple_of(4)
            {
                // Every validator in the list failed in a row: wait before the next round.
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }

    /// POSTs `body` as JSON to `path` through [`Client::send_write`] (with its `lookup`).
    async fn post_write<B: serde::Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
        lookup: Option<&str>,
    ) -> Result<(Bytes, bool), ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Decode {
            url: self.url(path),
            msg: format!("encoding the request: {e}"),
        })?;
        self.send_write(
            path,
            |url| {
                self.http
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(bytes.clone())
            },
            lookup,
        )
        .await
    }

    /// Asks the current validator (or the leader it points to) whether a write is logged: its
    /// logged outcome, or `None` if it is not (or nobody could say).
    async fn look_up(&self, path: &str) -> Option<Bytes> {
        for _ in 0..3 {
            let base = self.base();
            let url = format!("{base}{path}");
            match self.send(url.clone(), self.http.get(&url)).await {
                Ok(logged) => return Some(logged),
                Err(ClientError::Leader { leader, .. }) => self.set_base(&leader),
                Err(_) => return None,
            }
        }
        None
    }

    async fn send(&self, url: String, req: reqwest::RequestBuilder) -> Result<Bytes, ClientError> {
        if crate::tls::refuses_plain(&url, self.plain_http) {
            return Err(ClientError::PlainHttp { url });
        }
        let resp = req
            .send()
            .await
            .map_err(|source| transport(url.clone(), source))?;
        let status = resp.status();
        let leader = resp
            .headers()
            .get(crate::wire::HEADER_LEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp
            .bytes()
            .await
            .map_err(|source| transport(url.clone(), source))?;
        if status.is_success() {
            return Ok(body);
        }
        if let Some(leader) = leader {
            return Err(ClientError::Leader { url, leader });
        }
        let body = serde_json::from_slice::<ErrorBody>(&body).unwrap_or_else(|_| ErrorBody {
            error: "http".into(),
            detail: String::from_utf8_lossy(&body).into_owned(),
        });
        Err(ClientError::Api {
            url,
            status: status.as_u16(),
            body,
        })
    }

    /// A read of `path` from the current coordinator (the next one after a transport failure,
    /// for the caller's retry) answering its body and, for a `206`, the whole's size from its
    /// `Content-Range` (`None` for a whole body).
    async fn send_raw(
        &self,
        path: &str,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<(Bytes, Option<u64>), ClientError> {
        let base = self.base();
        let url = format!("{base}{path}");
        if crate::tls::refuses_plain(&url, self.plain_http) {
            return Err(ClientError::PlainHttp { url });
        }
        let resp = match build(&url).send().await {
            Ok(resp) => resp,
            Err(source) => {
                if self.bases.len() > 1 {
                    self.rotate(&base);
                }
                return Err(transport(url, source));
            }
        };
        let status = resp.status();
        let total = resp
            .headers()
            .get(reqwest::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit_once('/'))
            .and_then(|(_, total)| total.parse::<u64>().ok());
        // A verified slice says the size of the blob it is cut from.
        let blob_size = resp
            .headers()
            .get("x-blob-size")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let body = resp
            .bytes()
            .await
            .map_err(|source| transport(url.clone(), source))?;
        if status.is_success() {
            let total = if status.as_u16() == 206 {
                total
            } else {
                Some(blob_size.unwrap_or(body.len() as u64))
            };
            return Ok((body, total));
        }
        let body = serde_json::from_slice::<ErrorBody>(&body).unwrap_or_else(|_| ErrorBody {
            error: "http".into(),
            detail: String::from_utf8_lossy(&body).into_owned(),
        });
        Err(ClientError::Api {
            url,
            status: status.as_u16(),
            body,
        })
    }

    async fn json<T: DeserializeOwned>(
        &self,
        path: &str,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let body = self.send_to(path, build).await?;
        self.decode(path, &body)
    }

    /// The JSON answer `body` from `path`, decoded.
    fn decode<T: DeserializeOwned>(&self, path: &str, body: &[u8]) -> Result<T, ClientError> {
        serde_json::from_slice(body).map_err(|e| ClientError::Decode {
            url: self.url(path),
            msg: e.to_string(),
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.json(path, |url| self.http.get(url)).await
    }

    async fn post<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let (bytes, _) = self.post_write(path, body, None).await?;
        self.decode(path, &bytes)
    }

    pub async fn status(&self) -> Result<StatusView, ClientError> {
        self.get("/v1/status").await
    }

    /// Uploads `bytes` (idempotent: an existing blob is simply acknowledged) and returns its hash.
    pub async fn put_blob(&self, who: &Identity, bytes: Bytes) -> Result<Hash, ClientError> {
        if bytes.len() as u64 > UPLOAD_CHUNK {
            return self.upload(who, bytes).await;
        }
        let hash = Hash::of(&bytes);
        let signed = who.sign(Request::PutBlob {
            hash,
            size: bytes.len() as u64,
        });
        let path = format!("/v1/blobs/{hash}");
        let stored: BlobStored = self
            .json(&path, |url| {
                self.http
                    .put(url)
                    .headers(signature_headers(&signed))
                    .body(bytes.clone())
            })
            .await?;
        Ok(stored.hash)
    }

    /// Uploads `bytes` in chunks of [`UPLOAD_CHUNK`] (`/v1/uploads`), resuming where the
    /// coordinator's copy ends after a chunk whose answer was lost or refused as out of place;
    /// gives up after [`UPLOAD_RETRIES`] failures in a row.
    pub async fn upload(&self, who: &Identity, bytes: Bytes) -> Result<Hash, ClientError> {
        let hash = Hash::of(&bytes);
        let size = bytes.len() as u64;
        let mut received = self.start_upload(who, hash, size).await?.received;
        // The blob's BLAKE3 tree (bao's outboard encoding): each chunk goes with the nodes that
        // prove it, so the coordinator checks it before it keeps it.
        let outboard = {
            let bytes = bytes.clone();
            tokio::task::spawn_blocking(move || bao::encode::outboard(&bytes).0)
                .await
                .map_err(|e| ClientError::Decode {
                    url: self.url("/v1/uploads"),
                    msg: e.to_string(),
                })?
        };
        let mut failures = 0;
        while received < size {
            let len = UPLOAD_CHUNK.min(size.saturating_sub(received));
            let mut slice = Vec::new();
            std::io::Read::read_to_end(
                &mut bao::encode::SliceExtractor::new_outboard(
                    std::io::Cursor::new(&bytes[..]),
                    std::io::Cursor::new(&outboard[..]),
                    received,
                    len,
                ),
                &mut slice,
            )
            .map_err(|e| ClientError::Decode {
                url: self.url("/v1/uploads"),
                msg: e.to_string(),
            })?;
            match self
                .put_verified_chunk(who, hash, received, len, Bytes::from(slice))
                .await
            {
                Ok(view) => {
                    received = view.received;
                    failures = 0;
                }
                Err(e)
                    if failures < UPLOAD_RETRIES
                        && (e.is_transient()
                            || e.status() == Some(409)
                            || matches!(&e, ClientError::Api { body, .. }
                                if body.detail.contains("does not verify"))) =>
                {
                    failures += 1;
                    // Where the coordinator's copy ends now (the lost chunk may have landed);
                    // an upload it no longer has (restarted, expired) starts over.
                    received = match self.upload_status(hash).await {
                        Ok(view) => view.received,
                        Err(e) if e.status() == Some(404) => {
                            self.start_upload(who, hash, size).await?.received
                        }
                        Err(e) => return Err(e),
                    };
                }
                Err(e) => return Err(e),
            }
        }
        Ok(hash)
    }

    /// Opens (or finds open) the chunked upload of blob `hash`, `size` bytes.
    pub async fn start_upload(
        &self,
        who: &Identity,
        hash: Hash,
        size: u64,
    ) -> Result<UploadView, ClientError> {
        let signed = who.sign(Request::StartUpload { hash, size });
        let path = format!("/v1/uploads/{hash}?size={size}");
        self.json(&path, |url| {
            self.http.post(url).headers(signature_headers(&signed))
        })
        .await
    }

    /// Sends the chunk of blob `hash`'s upload that starts at `offset`. The last one answers the
    /// whole upload (`received == size`).
    pub async fn put_chunk(
        &self,
        who: &Identity,
        hash: Hash,
        offset: u64,
        chunk: Bytes,
    ) -> Result<UploadView, ClientError> {
        let size = chunk.len() as u64;
        let path = format!("/v1/uploads/{hash}?offset={offset}");
        self.send_chunk(who, hash, offset, size, &path, chunk).await
    }

    /// The next `len` bytes of open upload `hash` from `offset`, as a BLAKE3 verified-streaming
    /// slice (bao) that the coordinator checks against the hash before it appends them.
    pub async fn put_verified_chunk(
        &self,
        who: &Identity,
        hash: Hash,
        offset: u64,
        len: u64,
        slice: Bytes,
    ) -> Result<UploadView, ClientError> {
        let path = format!("/v1/uploads/{hash}?offset={offset}&len={len}");
        self.send_chunk(who, hash, offset, len, &path, slice).await
    }

    /// Sends a chunk of `size` content bytes (`body`, raw or a verified slice) to `path`.
    async fn send_chunk(
        &self,
        who: &Identity,
        hash: Hash,
        offset: u64,
        size: u64,
        path: &str,
        body: Bytes,
    ) -> Result<UploadView, ClientError> {
        let signed = who.sign(Request::PutChunk { hash, offset, size });
        let bytes = self
            .send_to(path, |url| {
                self.http
                    .put(url)
                    .headers(signature_headers(&signed))
                    .body(body.clone())
            })
            .await?;
        if let Ok(view) = serde_json::from_slice::<UploadView>(&bytes) {
            return Ok(view);
        }
        let stored: BlobStored = self.decode(path, &bytes)?;
        Ok(UploadView {
            hash: stored.hash,
            size: stored.size,
            received: stored.size,
        })
    }

    /// How far the open upload of blob `hash` is (404: none is open).
    pub async fn upload_status(&self, hash: Hash) -> Result<UploadView, ClientError> {
        let path = format!("/v1/uploads/{hash}");
        self.json(&path, |url| self.http.get(url)).await
    }

    /// Downloads a blob and checks its hash. A blob larger than one piece ([`UPLOAD_CHUNK`])
    /// comes in `Range` pieces, hashed as they arrive; a piece that fails on the way is asked
    /// for again from where the download stands (up to [`UPLOAD_RETRIES`] times in a row).
    pub async fn get_blob(&self, hash: Hash) -> Result<Bytes, ClientError> {
        let path = format!("/v1/blobs/{hash}");
        let mismatch = || ClientError::Decode {
            url: self.url(&path),
            msg: "blob content does not match its hash".into(),
        };
        let root = bao::Hash::from(hash.0);
        let mut out: Vec<u8> = Vec::new();
        let mut hasher = blake3::Hasher::new();
        let mut total: Option<u64> = None;
        let mut failures = 0;
        loop {
            let start = out.len() as u64;
            let slice = format!("{path}/slice?start={start}&len={UPLOAD_CHUNK}");
            let piece = self.send_raw(&slice, |url| self.http.get(url)).await;
            // Each piece is checked against the hash as it arrives (BLAKE3 verified streaming):
            // a damaged one is asked for again alone.
            let verified = piece.and_then(|(bytes, whole)| {
                let mut content = Vec::new();
                let mut decoder =
                    bao::decode::SliceDecoder::new(&bytes[..], &root, start, UPLOAD_CHUNK);
                std::io::Read::read_to_end(&mut decoder, &mut content)
                    .map(|_| (content, whole))
                    .map_err(|e| ClientError::Decode {
                        url: self.url(&slice),
                        msg: format!("a piece of blob {hash} does not verify: {e}"),
                    })
            });
            let (bytes, whole) = match verified {
                Ok(piece) => piece,
                Err(e)
                    if failures < UPLOAD_RETRIES
                        && (e.is_transient() || matches!(e, ClientError::Decode { .. })) =>
                {
                    failures += 1;
                    tokio::time::sleep(jittered(SHED_RETRY)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            failures = 0;
            hasher.update(&bytes);
            out.extend_from_slice(&bytes);
            total = total.or(whole);
            match total {
                Some(total) if (out.len() as u64) < total && !bytes.is_empty() => continue,
                Some(total) if out.len() as u64 != total => return Err(mismatch()),
                _ => break,
            }
        }
        // Every piece verified; the whole hash also catches a size claimed short.
        if Hash(*hasher.finalize().as_bytes()) != hash {
            return Err(mismatch());
        }
        Ok(Bytes::from(out))
    }

    /// Signs and submits a logged action.
    pub async fn action(
        &self,
        who: &Identity,
        action: Action,
    ) -> Result<ActionResponse, ClientError> {
        let signed = who.sign(action);
        match self.submit_action(&signed).await {
            // A fresh nonce refused as a replay: this process counts its nonces from a clock
            // behind the one that signed the account's last logged action (it was set back).
            // Nothing was logged; go on from the logged nonce and send it once more.
            Err(ClientError::Api { body, .. }) if body.error == "replayed" => {
                let logged = self.account(who.id()).await?.nonce;
                if logged < signed.nonce {
                    return Err(ClientError::Api {
                        url: self.url("/v1/actions"),
                        status: 409,
                        body,
                    });
                }
                // Unless this very action got through on an attempt whose answer was lost.
                let lookup = format!("/v1/actions/{}/{}", signed.signer, signed.nonce);
                if let Some(bytes) = self.look_up(&lookup).await {
                    return self.decode("/v1/actions", &bytes);
                }
                who.skip_nonces_past(logged);
                self.submit_action(&who.sign(signed.body)).await
            }
            other => other,
        }
    }

    /// Submits a signed action. If the connection breaks before the answer, the action is looked
    /// up by (signer, nonce) before it is sent again (to the next validator): a write that got
    /// through answers with its logged outcome, never with a "replayed" error and never twice.
    pub async fn submit_action(
        &self,
        signed: &Signed<Action>,
    ) -> Result<ActionResponse, ClientError> {
        let path = "/v1/actions";
        let lookup = format!("/v1/actions/{}/{}", signed.signer, signed.nonce);
        let (body, _) = self.post_write(path, signed, Some(&lookup)).await?;
        self.decode(path, &body)
    }

    /// Signs `actions` (with consecutive nonces) and submits them as one batch: see
    /// [`Client::action_batch`].
    pub async fn actions(
        &self,
        who: &Identity,
        actions: Vec<Action>,
    ) -> Result<Vec<BatchOutcome>, ClientError> {
        let signed: Vec<Signed<Action>> = actions.into_iter().map(|a| who.sign(a)).collect();
        self.action_batch(&signed).await
    }

    /// Submits pre-signed actions (at most [`ACTION_BATCH_MAX`](crate::wire::ACTION_BATCH_MAX)) as one batch, committed in
    /// order with one fsync. The answer has one outcome per action, in order; an action refused
    /// is an [`BatchOutcome::Refused`], not an error of the call. A batch resent after a failure
    /// that may have hidden its outcome reports each of its actions logged by the earlier attempt
    /// with its logged outcome (looked up), not as `replayed`.
    pub async fn action_batch(
        &self,
        actions: &[Signed<Action>],
    ) -> Result<Vec<BatchOutcome>, ClientError> {
        let path = "/v1/actions/batch";
        let (body, unsure) = self.post_write(path, &actions, None).await?;
        let mut outcomes: Vec<BatchOutcome> = self.decode(path, &body)?;
        if outcomes.len() != actions.len() {
            return Err(ClientError::Decode {
                url: self.url(path),
                msg: format!(
                    "{} outcomes for a batch of {} actions",
                    outcomes.len(),
                    actions.len()
                ),
            });
        }
        if unsure {
            // An earlier attempt may have been applied without its answer reaching us: its
            // actions now come back "replayed". Each is looked up, and its logged outcome
            // stands instead.
            for (outcome, signed) in outcomes.iter_mut().zip(actions) {
                if matches!(outcome, BatchOutcome::Refused(e) if e.error == "replayed")
                    && let Some(logged) = self
                        .look_up(&format!("/v1/actions/{}/{}", signed.signer, signed.nonce))
                        .await
                    && let Ok(response) = serde_json::from_slice::<ActionResponse>(&logged)
                {
                    *outcome = BatchOutcome::Accepted(response);
                }
            }
        }
        Ok(outcomes)
    }

    pub async fn fetch(
        &self,
        who: &Identity,
        max: u32,
        wait: Duration,
        held: Vec<TaskId>,
        cached: Vec<Hash>,
    ) -> Result<FetchResponse, ClientError> {
        let wait_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
        let body = Request::Fetch {
            max,
            wait_ms,
            held,
            cached,
        };
        self.post("/v1/work/fetch", &who.sign(body)).await
    }

    /// Reports `results` (if any) and fetches up to `max` tasks, in one round trip
    /// (`POST /v1/work/exchange`; see [`Client::fetch`] for the other arguments).
    pub async fn exchange(
        &self,
        who: &Identity,
        results: Vec<TaskReport>,
        fetch: Request,
    ) -> Result<ExchangeResponse, ClientError> {
        let report = (!results.is_empty()).then_some(Action::ReportResults(results));
        self.exchange_report(who, report, fetch).await
    }

    /// [`Client::exchange`] with the report given as its action: `ReportResults`, or rules
    /// 24's `ReportMeteredResults` (with each run's energy).
    pub async fn exchange_report(
        &self,
        who: &Identity,
        report: Option<Action>,
        fetch: Request,
    ) -> Result<ExchangeResponse, ClientError> {
        let body = Exchange {
            report: report.map(|action| who.sign(action)),
            fetch: who.sign(fetch),
        };
        self.post("/v1/work/exchange", &body).await
    }

    /// A heartbeat proved by a session token instead of a signature.
    pub async fn ping(
        &self,
        provider: AccountId,
        token: Hash,
    ) -> Result<HeartbeatResponse, ClientError> {
        self.post("/v1/work/ping", &Ping { provider, token }).await
    }

    pub async fn heartbeat(&self, who: &Identity) -> Result<HeartbeatResponse, ClientError> {
        self.post("/v1/work/heartbeat", &who.sign(Request::Heartbeat))
            .await
    }

    /// Job `id`; `with_tasks`: with every task's detail, gathered a page at a time (the counts
    /// are those of the first page's answer).
    pub async fn job(&self, id: JobId, with_tasks: bool) -> Result<JobView, ClientError> {
        if !with_tasks {
            return self.get(&format!("/v1/jobs/{id}")).await;
        }
        let mut view: JobView = self.get(&format!("/v1/jobs/{id}?tasks=true")).await?;
        while let Some(from) = view.tasks_next.take() {
            let page: JobView = self
                .get(&format!("/v1/jobs/{id}?tasks=true&tasks_from={from}"))
                .await?;
            view.tasks.extend(page.tasks);
            view.tasks_next = page.tasks_next.filter(|next| *next > from);
        }
        Ok(view)
    }

    /// Job `id`, once it has finished or `wait` has passed, whichever is first (a long poll).
    pub async fn job_wait(&self, id: JobId, wait: Duration) -> Result<JobView, ClientError> {
        self.get(&format!("/v1/jobs/{id}?wait_ms={}", wait.as_millis()))
            .await
    }

    /// The aggregated output of a completed job.
    pub async fn job_output(&self, id: JobId) -> Result<Bytes, ClientError> {
        let path = format!("/v1/jobs/{id}/output");
        self.send_to(&path, |url| self.http.get(url)).await
    }

    /// Every registered provider, gathered a page at a time.
    pub async fn providers(&self) -> Result<Vec<ProviderView>, ClientError> {
        let limit = crate::wire::PROVIDERS_PAGE_MAX as usize;
        let mut all: Vec<ProviderView> = self.get("/v1/providers").await?;
        let mut last = all.len();
        while last >= limit {
            let Some(after) = all.last().map(|p| p.id) else {
                break;
            };
            let page: Vec<ProviderView> = self.get(&format!("/v1/providers?after={after}")).await?;
            last = page.len();
            all.extend(page);
        }
        Ok(all)
    }

    pub async fn provider(&self, id: AccountId) -> Result<ProviderView, ClientError> {
        self.get(&format!("/v1/providers/{id}")).await
    }

    /// Rules 25: the price index.
    pub async fn market(&self) -> Result<crate::wire::MarketView, ClientError> {
        self.get("/v1/market").await
    }

    /// Rules 25: the governance parameters and the newest proposals.
    pub async fn proposals(&self) -> Result<crate::wire::GovernanceView, ClientError> {
        self.get("/v1/proposals").await
    }

    /// Rules 27: the validators, their backing and earnings.
    pub async fn validators(&self) -> Result<crate::wire::ValidatorsView, ClientError> {
        self.get("/v1/validators").await
    }

    /// Rules 28: the proven GPU classes and the claims waiting to be proven, of `class` only
    /// and/or of `provider` only.
    pub async fn gpu_classes(
        &self,
        class: Option<&str>,
        provider: Option<AccountId>,
    ) -> Result<crate::wire::GpuClassesView, ClientError> {
        // A class names a device and its driver: spaces, commas, parentheses, encoded here.
        let mut url = reqwest::Url::parse("http://localhost/v1/gpu/classes").expect("a valid URL");
        {
            let mut query = url.query_pairs_mut();
            if let Some(class) = class {
                query.append_pair("class", class);
            }
            if let Some(provider) = provider {
                query.append_pair("provider", &provider.to_string());
            }
        }
        match url.query().filter(|q| !q.is_empty()) {
            Some(query) => self.get(&format!("/v1/gpu/classes?{query}")).await,
            None => self.get("/v1/gpu/classes").await,
        }
    }

    /// Rules 28: what `member` has to do for `class`: its own entry, and the pending claims to
    /// the class (at most [`crate::wire::MAX_CLASS_CLAIMS`], the oldest first).
    pub async fn gpu_class_work(
        &self,
        class: &str,
        member: AccountId,
    ) -> Result<crate::wire::GpuClassesView, ClientError> {
        let mut url = reqwest::Url::parse("http://localhost/v1/gpu/classes").expect("a valid URL");
        url.query_pairs_mut()
            .append_pair("class", class)
            .append_pair("member", &member.to_string());
        self.get(&format!("/v1/gpu/classes?{}", url.query().unwrap_or("")))
            .await
    }

    /// Rules 25: one proposal and its tally.
    pub async fn proposal(&self, id: u64) -> Result<crate::wire::ProposalView, ClientError> {
        self.get(&format!("/v1/proposals/{id}")).await
    }

    /// Rules 26: the newest reservations, of `owner` only and/or leased by `provider` only.
    pub async fn reservations(
        &self,
        owner: Option<AccountId>,
        provider: Option<AccountId>,
    ) -> Result<Vec<crate::wire::ReservationView>, ClientError> {
        let query: Vec<String> = [("owner", owner), ("provider", provider)]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
            .collect();
        if query.is_empty() {
            self.get("/v1/reservations").await
        } else {
            self.get(&format!("/v1/reservations?{}", query.join("&")))
                .await
        }
    }

    /// Rules 26: one reservation and its leases.
    pub async fn reservation(&self, id: u64) -> Result<crate::wire::ReservationView, ClientError> {
        self.get(&format!("/v1/reservations/{id}")).await
    }

    pub async fn account(&self, id: AccountId) -> Result<AccountView, ClientError> {
        self.get(&format!("/v1/accounts/{id}")).await
    }

    /// Up to `limit` history items of `id` from entries before `before` (newest first).
    pub async fn history(
        &self,
        id: AccountId,
        before: Option<u64>,
        limit: u32,
    ) -> Result<HistoryPage, ClientError> {
        let before = before.map(|b| format!("&before={b}")).unwrap_or_default();
        self.get(&format!("/v1/accounts/{id}/history?limit={limit}{before}"))
            .await
    }

    /// The network's token, rules and supply.
    pub async fn network(&self) -> Result<NetworkView, ClientError> {
        self.get("/v1/network").await
    }

    /// The genesis the coordinator's chain starts from.
    pub async fn genesis(&self) -> Result<Genesis, ClientError> {
        self.get("/v1/chain/genesis").await
    }

    /// Where the chain stands: height, tip, genesis hash, validator, unsealed entries.
    pub async fn chain(&self) -> Result<ChainView, ClientError> {
        self.get("/v1/chain").await
    }

    /// Up to `limit` blocks from height `from` on (at most [`crate::wire::CHAIN_PAGE_MAX`]).
    pub async fn chain_blocks(&self, from: u64, limit: u32) -> Result<Vec<Block>, ClientError> {
        self.get(&format!("/v1/chain/blocks?from={from}&limit={limit}"))
            .await
    }

    /// The network's validator set (empty for a single coordinator).
    pub async fn chain_validators(&self) -> Result<engine::ValidatorSet, ClientError> {
        self.get("/v1/chain/validators").await
    }

    /// The signatures this validator holds of blocks `from..from + limit`.
    pub async fn chain_signatures(
        &self,
        from: u64,
        limit: u32,
    ) -> Result<Vec<crate::wire::BlockSignature>, ClientError> {
        self.get(&format!("/v1/chain/signatures?from={from}&limit={limit}"))
            .await
    }

    /// Whether `signer`'s action with `nonce` is logged: its seq and the signer's ledger events
    /// from it, or a 404.
    pub async fn action_lookup(
        &self,
        signer: AccountId,
        nonce: u64,
    ) -> Result<ActionResponse, ClientError> {
        self.get(&format!("/v1/actions/{signer}/{nonce}")).await
    }

    /// Submits evidence that a validator signed two different blocks at one height; the engine
    /// slashes it (see `engine::validators`). Anyone may: it needs no signature of its own.
    pub async fn submit_evidence(
        &self,
        evidence: &engine::Equivocation,
    ) -> Result<ActionResponse, ClientError> {
        self.post("/v1/chain/evidence", evidence).await
    }

    /// The stored bytes of up to `limit` log entries from `from` on.
    pub async fn chain_entries(&self, from: u64, limit: u32) -> Result<Vec<RawEntry>, ClientError> {
        self.get(&format!("/v1/chain/entries?from={from}&limit={limit}"))
            .await
    }
}

/// Sends UDP heartbeats ([`crate::wire::UDP_MAGIC`]) to a coordinator: the datagram port is the
/// HTTP port of its URL.
pub struct UdpPinger {
    socket: tokio::net::UdpSocket,
    /// The next ping's counter: microseconds since the epoch at connect, then one more per ping,
    /// so that a pinger made later (a restarted provider) starts above any earlier one's.
    counter: std::sync::atomic::AtomicU64,
}

impl UdpPinger {
    /// A socket connected to the coordinator at `base` (`http://host:port`).
    pub async fn connect(base: &str) -> std::io::Result<UdpPinger> {
        let bad =
            |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, why.to_string());
        let url = reqwest::Url::parse(base).map_err(|e| bad(&e.to_string()))?;
        let host = url.host_str().ok_or_else(|| bad("no host in the URL"))?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| bad("no port in the URL"))?;
        let target = tokio::net::lookup_host((host, port))
            .await?
            .next()
            .ok_or_else(|| bad("the host resolves to no address"))?;
        let local = if target.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let socket = tokio::net::UdpSocket::bind(local).await?;
        socket.connect(target).await?;
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        Ok(UdpPinger {
            socket,
            counter: std::sync::atomic::AtomicU64::new(micros),
        })
    }

    /// Sends `ping` and waits up to `wait` for the answer (`None`: no answer in time).
    pub async fn ping(
        &self,
        ping: &crate::wire::Ping,
        wait: Duration,
    ) -> std::io::Result<Option<crate::wire::PingAck>> {
        let counter = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.socket.send(&ping.to_datagram(counter)).await?;
        let mut buf = [0u8; 16];
        let answer = async {
            loop {
                let n = self.socket.recv(&mut buf).await?;
                if let Some(ack) = buf.get(..n).and_then(crate::wire::PingAck::from_datagram) {
                    return Ok::<_, std::io::Error>(ack);
                }
            }
        };
        match tokio::time::timeout(wait, answer).await {
            Ok(ack) => ack.map(Some),
            Err(_) => Ok(None),
        }
    }
}
