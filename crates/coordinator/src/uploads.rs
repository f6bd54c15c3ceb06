//! Chunked, resumable blob uploads (issue 15: 30–70 MB interpreters and tools).
//!
//! A blob larger than one request (or sent over a link that drops) is uploaded in chunks:
//!
//! - `POST /v1/uploads/{hash}`, signed `Request::StartUpload { hash, size }`: opens the upload
//!   (or finds it open: resuming) and answers how many bytes it holds. The declared size is
//!   reserved in the signer's allowance of blobs nothing names yet (`blob_quota`) at once.
//! - `PUT /v1/uploads/{hash}?offset=N`, signed `Request::PutChunk { hash, offset, size }`: the
//!   next at most [`CHUNK_MAX`] bytes — raw, or with `&len=L` as a BLAKE3 verified-streaming
//!   slice (bao) of `L` bytes, which is checked against the blob's hash before it is kept (a
//!   damaged one is refused, `400`, and the upload stays where it was: gridmint's clients send
//!   these). A chunk must start where the upload ends (`409` says
//!   where it ends, so a client that lost an answer resumes there; one that repeats a chunk it
//!   already sent gets the same `409`), come from the account that opened the upload (`403`),
//!   and not run past the declared size (`400`).
//! - `GET /v1/uploads/{hash}`: how many bytes it holds (`404` if none is open).
//!
//! Chunks are appended to a file under `DATA_DIR/uploads` and hashed as they arrive (BLAKE3,
//! incrementally: the whole blob is never held in memory). A chunk is answered only once it is
//! on disk (`fsync`), and an upload's account, address and size are kept beside it
//! (`<hash>.meta`, written when it opens): a restarted coordinator finds its open uploads
//! again ([`Uploads::recover`]: each part file hashed once more, its reservation made again),
//! so nothing acknowledged is lost and a client resumes where the coordinator's copy ends. The
//! chunk that completes it is answered only once the hash matches and the file is in the blob
//! store (`201`, as a plain upload), else `422` and the upload is dropped. An upload nobody
//! added to for [`IDLE_LIMIT`] is dropped, its reservation returned.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine::{AccountId, Hash};

use crate::error::ApiError;

/// The largest chunk one request may carry.
pub const CHUNK_MAX: u64 = 16 << 20;
/// How long an upload may wait for its next chunk before it is dropped.
pub const IDLE_LIMIT: Duration = Duration::from_secs(30 * 60);

/// One open upload.
pub(crate) struct Upload {
    pub(crate) signer: AccountId,
    pub(crate) size: u64,
    pub(crate) received: u64,
    hasher: blake3::Hasher,
    file: std::fs::File,
    path: PathBuf,
    touched: Instant,
}

/// What an open upload's `<hash>.meta` file keeps (JSON), for a restarted coordinator.
#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    /// The format of this file.
    version: u32,
    signer: AccountId,
    /// The address it was opened from (its reservation counts there too).
    ip: std::net::IpAddr,
    size: u64,
}

const META_VERSION: u32 = 1;

/// An upload found open again after a restart (its reservation is to be made again).
pub(crate) struct Recovered {
    pub(crate) hash: Hash,
    pub(crate) signer: AccountId,
    pub(crate) ip: std::net::IpAddr,
    pub(crate) size: u64,
}

/// The open uploads.
pub(crate) struct Uploads {
    dir: PathBuf,
    open: Mutex<HashMap<Hash, Arc<tokio::sync::Mutex<Upload>>>>,
}

/// What a chunk did.
pub(crate) enum Appended {
    /// More is expected: the upload now holds this many bytes.
    More(u64),
    /// The last chunk: the whole blob, hashed right, is this file (to move into the store).
    Complete(PathBuf),
}

impl Uploads {
    /// The uploads under `dir`, with those a previous run left open (each part file hashed
    /// again; anything that does not add up — a missing or unreadable meta file, a part longer
    /// than its size — is removed).
    pub(crate) fn recover(dir: PathBuf) -> Result<(Uploads, Vec<Recovered>), std::io::Error> {
        std::fs::create_dir_all(&dir)?;
        let mut open = HashMap::new();
        let mut recovered = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let Some(hash) = name
                .strip_suffix(".meta")
                .and_then(|h| h.parse::<Hash>().ok())
            else {
                // Part files are found through their meta files; strays go below.
                continue;
            };
            match Self::reopen(&dir, hash) {
                Ok((upload, ip)) => {
                    recovered.push(Recovered {
                        hash,
                        signer: upload.signer,
                        ip,
                        size: upload.size,
                    });
                    open.insert(hash, Arc::new(tokio::sync::Mutex::new(upload)));
                }
                Err(why) => {
                    tracing::warn!(blob = %hash, %why, "dropping an upload left open");
                    let _ = std::fs::remove_file(dir.join(format!("{hash}.meta")));
                    let _ = std::fs::remove_file(dir.join(format!("{hash}.part")));
                }
            }
        }
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let known = name
                .split('.')
                .next()
                .and_then(|h| h.parse::<Hash>().ok())
                .is_some_and(|h| open.contains_key(&h));
            if !known {
                let _ = std::fs::remove_file(&path);
            }
        }
        if !recovered.is_empty() {
            tracing::info!(uploads = recovered.len(), "found open uploads again");
        }
        Ok((
            Uploads {
                dir,
                open: Mutex::new(open),
            },
            recovered,
        ))
    }

    /// The upload of `hash` a previous run left in `dir`, and the address it came from.
    fn reopen(dir: &std::path::Path, hash: Hash) -> Result<(Upload, std::net::IpAddr), String> {
        let meta = std::fs::read(dir.join(format!("{hash}.meta"))).map_err(|e| e.to_string())?;
        let meta: Meta = serde_json::from_slice(&meta).map_err(|e| e.to_string())?;
        if meta.version != META_VERSION {
            return Err(format!(
                "an upload record of version {}; this build reads version {META_VERSION}",
                meta.version
            ));
        }
        let path = dir.join(format!("{hash}.part"));
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| e.to_string())?;
        let mut hasher = blake3::Hasher::new();
        let mut received = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            hasher.update(buf.get(..n).unwrap_or_default());
            received = received.saturating_add(n as u64);
        }
        if received >= meta.size {
            // Complete uploads are answered only once stored: this one never was.
            return Err(format!("{received} bytes of {} held", meta.size));
        }
        Ok((
            Upload {
                signer: meta.signer,
                size: meta.size,
                received,
                hasher,
                file,
                path,
                touched: Instant::now(),
            },
            meta.ip,
        ))
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<Hash, Arc<tokio::sync::Mutex<Upload>>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The upload of `hash`, if one is open.
    pub(crate) fn get(&self, hash: &Hash) -> Option<Arc<tokio::sync::Mutex<Upload>>> {
        self.table().get(hash).cloned()
    }

    /// Opens the upload of `hash` for `signer` (`size` bytes); `Ok(None)` if it was open
    /// already (for whom, and how far: the caller checks).
    pub(crate) fn open(
        &self,
        hash: Hash,
        signer: AccountId,
        ip: std::net::IpAddr,
        size: u64,
    ) -> Result<Option<Arc<tokio::sync::Mutex<Upload>>>, ApiError> {
        let mut table = self.table();
        if table.contains_key(&hash) {
            return Ok(None);
        }
        let unavailable =
            |e: std::io::Error| ApiError::Unavailable(format!("cannot open an upload: {e}"));
        let path = self.dir.join(format!("{hash}.part"));
        let file = std::fs::File::create(&path).map_err(unavailable)?;
        let meta = serde_json::to_vec(&Meta {
            version: META_VERSION,
            signer,
            ip,
            size,
        })
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        let meta_path = self.dir.join(format!("{hash}.meta"));
        let written = std::fs::File::create(&meta_path)
            .and_then(|mut f| f.write_all(&meta).and_then(|()| f.sync_all()));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_file(&meta_path);
            return Err(unavailable(e));
        }
        let upload = Arc::new(tokio::sync::Mutex::new(Upload {
            signer,
            size,
            received: 0,
            hasher: blake3::Hasher::new(),
            file,
            path,
            touched: Instant::now(),
        }));
        table.insert(hash, upload.clone());
        Ok(Some(upload))
    }

    /// Drops the upload of `hash` (its files too).
    pub(crate) fn drop_upload(&self, hash: &Hash) {
        if self.table().remove(hash).is_some() {
            self.remove_files(hash);
        }
    }

    fn remove_files(&self, hash: &Hash) {
        let _ = std::fs::remove_file(self.dir.join(format!("{hash}.meta")));
        let _ = std::fs::remove_file(self.dir.join(format!("{hash}.part")));
    }

    /// Uploads nobody added to for [`IDLE_LIMIT`], removed from the table (their files too).
    pub(crate) fn expire(&self) -> Vec<Hash> {
        let mut table = self.table();
        let idle: Vec<Hash> = table
            .iter()
            .filter(|(_, u)| {
                u.try_lock()
                    .map(|u| u.touched.elapsed() >= IDLE_LIMIT)
                    .unwrap_or(false)
            })
            .map(|(h, _)| *h)
            .collect();
        for hash in &idle {
            table.remove(hash);
            self.remove_files(hash);
        }
        idle
    }
}

impl Upload {
    /// Appends `chunk` (checked by the caller: it starts at `received` and fits) and hashes it;
    /// at the end, checks the whole blob's hash against `hash`.
    pub(crate) fn append(&mut self, hash: &Hash, chunk: &[u8]) -> Result<Appended, ApiError> {
        self.file
            .write_all(chunk)
            .map_err(|e| ApiError::Unavailable(format!("cannot write an upload: {e}")))?;
        self.hasher.update(chunk);
        self.received = self.received.saturating_add(chunk.len() as u64);
        self.touched = Instant::now();
        if self.received < self.size {
            // Acknowledged only once on disk: a restarted coordinator resumes from here.
            self.file
                .sync_data()
                .map_err(|e| ApiError::Unavailable(format!("cannot sync an upload: {e}")))?;
            return Ok(Appended::More(self.received));
        }
        let actual = Hash(*self.hasher.finalize().as_bytes());
        if actual != *hash {
            return Err(ApiError::BadRequest(format!(
                "the uploaded content hashes to {actual}, not {hash}; the upload is dropped"
            )));
        }
        self.file
            .sync_all()
            .map_err(|e| ApiError::Unavailable(format!("cannot sync an upload: {e}")))?;
        Ok(Appended::Complete(self.path.clone()))
    }
}
