//! Chunked, resumable blob uploads (issue 15: 30–70 MB interpreters and tools).
//!
//! A blob larger than one request (or sent over a link that drops) is uploaded in chunks:
//!
//! - `POST /v1/uploads/{hash}`, signed `Request::StartUpload { hash, size }`: opens the upload
//!   (or finds it open: resuming) and answers how many bytes it holds. The declared size is
//!   reserved in the signer's allowance of blobs nothing names yet (`blob_quota`) at once.
//! - `PUT /v1/uploads/{hash}?offset=N`, signed `Request::PutChunk { hash, offset, size }`: the
//!   next at most [`CHUNK_MAX`] bytes. A chunk must start where the upload ends (`409` says
//!   where it ends, so a client that lost an answer resumes there; one that repeats a chunk it
//!   already sent gets the same `409`), come from the account that opened the upload (`403`),
//!   and not run past the declared size (`400`).
//! - `GET /v1/uploads/{hash}`: how many bytes it holds (`404` if none is open).
//!
//! Chunks are appended to a file under `DATA_DIR/uploads` and hashed as they arrive (BLAKE3,
//! incrementally: the whole blob is never read again or held in memory). The chunk that
//! completes it is answered only once the hash matches and the file is in the blob store (`201`,
//! as a plain upload), else `422` and the upload is dropped. An upload nobody added to for
//! [`IDLE_LIMIT`] is dropped, its reservation returned. Open uploads live in memory: a restarted
//! coordinator has none, and a client's resume starts over (`404` → start again).

use std::collections::HashMap;
use std::io::Write;
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
    pub(crate) fn new(dir: PathBuf) -> Result<Uploads, std::io::Error> {
        // Partial uploads of a previous run are not resumable (their state was in memory).
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        Ok(Uploads {
            dir,
            open: Mutex::new(HashMap::new()),
        })
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
        size: u64,
    ) -> Result<Option<Arc<tokio::sync::Mutex<Upload>>>, ApiError> {
        let mut table = self.table();
        if table.contains_key(&hash) {
            return Ok(None);
        }
        let path = self.dir.join(format!("{hash}.part"));
        let file = std::fs::File::create(&path)
            .map_err(|e| ApiError::Unavailable(format!("cannot open an upload: {e}")))?;
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

    /// Drops the upload of `hash` (its file too).
    pub(crate) fn drop_upload(&self, hash: &Hash) {
        if self.table().remove(hash).is_some() {
            let _ = std::fs::remove_file(self.dir.join(format!("{hash}.part")));
        }
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
            let _ = std::fs::remove_file(self.dir.join(format!("{hash}.part")));
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
