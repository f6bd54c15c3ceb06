//! Content-addressed blob storage: files named by their BLAKE3 hash under `<data-dir>/blobs/`.
//!
//! Writes go to a temporary file that is fsync'd and renamed into place, so a blob is either absent
//! or complete, and durable once `put` returns.

use crate::StoreError;
use engine::Hash;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct BlobStore {
    dir: PathBuf,
}

impl BlobStore {
    pub fn open(dir: &Path) -> Result<BlobStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        Ok(BlobStore {
            dir: dir.to_path_buf(),
        })
    }

    /// Where blob `hash` lives (whether or not it exists).
    pub fn path(&self, hash: &Hash) -> PathBuf {
        self.dir.join(hash.to_hex())
    }

    pub fn contains(&self, hash: &Hash) -> bool {
        self.path(hash).is_file()
    }

    /// Size of blob `hash`, if present.
    pub fn size(&self, hash: &Hash) -> Option<u64> {
        std::fs::metadata(self.path(hash)).ok().map(|m| m.len())
    }

    /// Stores `bytes` and returns their hash. Storing an existing blob is a no-op.
    pub fn put(&self, bytes: &[u8]) -> Result<Hash, StoreError> {
        let hash = Hash::of(bytes);
        let path = self.path(&hash);
        if path.is_file() {
            return Ok(hash);
        }
        let io = |source| StoreError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(io)?;
        tmp.write_all(bytes).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(&path).map_err(|e| io(e.error))?;
        if let Ok(dir) = std::fs::File::open(&self.dir) {
            // Make the rename itself durable.
            let _ = dir.sync_all();
        }
        Ok(hash)
    }

    /// Moves the file at `from` (on the same file system, synced, its content already checked
    /// to hash to `hash`) into the store as blob `hash`. An existing blob is kept (and `from`
    /// removed).
    pub fn put_file(&self, hash: &Hash, from: &Path) -> Result<(), StoreError> {
        let path = self.path(hash);
        let io = |source| StoreError::Io {
            path: path.display().to_string(),
            source,
        };
        if path.is_file() {
            return std::fs::remove_file(from).map_err(io);
        }
        std::fs::rename(from, &path).map_err(io)?;
        if let Ok(dir) = std::fs::File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// Up to `len` bytes of blob `hash` from byte `offset` on (fewer at its end); `None` if
    /// there is no such blob.
    pub fn read_range(
        &self,
        hash: &Hash,
        offset: u64,
        len: u64,
    ) -> Result<Option<(Vec<u8>, u64)>, StoreError> {
        use std::io::{Read, Seek, SeekFrom};
        let Some((mut file, total)) = self.open_blob(hash)? else {
            return Ok(None);
        };
        let io = self.io_error(hash);
        file.seek(SeekFrom::Start(offset.min(total))).map_err(&io)?;
        let mut out = Vec::new();
        file.take(len).read_to_end(&mut out).map_err(io)?;
        Ok(Some((out, total)))
    }

    /// Blob `hash`'s file, open for reading, and its size; `None` if there is no such blob.
    fn open_blob(&self, hash: &Hash) -> Result<Option<(std::fs::File, u64)>, StoreError> {
        let io = self.io_error(hash);
        let file = match std::fs::File::open(self.path(hash)) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let total = file.metadata().map_err(&io)?.len();
        Ok(Some((file, total)))
    }

    /// An I/O error on blob `hash`'s file.
    fn io_error(&self, hash: &Hash) -> impl Fn(std::io::Error) -> StoreError {
        let path = self.path(hash).display().to_string();
        move |source| StoreError::Io {
            path: path.clone(),
            source,
        }
    }

    /// Where blob `hash`'s outboard tree (its BLAKE3 tree's parent nodes, bao's outboard
    /// encoding: about 6% of the blob) is kept once made.
    fn outboard_path(&self, hash: &Hash) -> PathBuf {
        self.dir.join(format!("{}.obao", hash.to_hex()))
    }

    /// Up to `len` bytes of blob `hash` from byte `offset` on, as a BLAKE3 verified-streaming
    /// slice (bao): the bytes interleaved with the tree nodes that prove them against the hash,
    /// so a reader checks each slice as it arrives. With the blob's size; `None` if there is no
    /// such blob. The outboard tree is made on first use (hashing the blob once, which also
    /// checks it) and kept beside the blob.
    pub fn slice(
        &self,
        hash: &Hash,
        offset: u64,
        len: u64,
    ) -> Result<Option<(Vec<u8>, u64)>, StoreError> {
        use std::io::Read;
        let Some((file, total)) = self.open_blob(hash)? else {
            return Ok(None);
        };
        let io = self.io_error(hash);
        let outboard = self.outboard(hash, &self.path(hash))?;
        // The extractor reads a chunk (1 KiB) or a node (64 bytes) at a time: buffered, or the
        // system calls cost more than the hashing.
        let mut out = Vec::with_capacity(usize::try_from(len.min(total)).unwrap_or(0));
        bao::encode::SliceExtractor::new_outboard(
            std::io::BufReader::with_capacity(1 << 20, file),
            std::io::BufReader::with_capacity(64 << 10, outboard),
            offset,
            len,
        )
        .read_to_end(&mut out)
        .map_err(io)?;
        Ok(Some((out, total)))
    }

    /// Blob `hash`'s outboard tree, made (and checked against the hash) if missing.
    fn outboard(&self, hash: &Hash, blob: &Path) -> Result<std::fs::File, StoreError> {
        let path = self.outboard_path(hash);
        let io = |source| StoreError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Ok(file) = std::fs::File::open(&path) {
            return Ok(file);
        }
        let tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(io)?;
        let mut encoder = bao::encode::Encoder::new_outboard(tmp.reopen().map_err(io)?);
        let mut source = std::fs::File::open(blob).map_err(io)?;
        std::io::copy(&mut source, &mut encoder).map_err(io)?;
        let root = encoder.finalize().map_err(io)?;
        if root.as_bytes() != &hash.0 {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("blob {hash} does not hash to its name"),
            )));
        }
        tmp.persist(&path).map_err(|e| io(e.error))?;
        std::fs::File::open(&path).map_err(io)
    }

    /// Deletes blob `hash`; a missing blob is not an error.
    pub fn remove(&self, hash: &Hash) -> Result<(), StoreError> {
        let _ = std::fs::remove_file(self.outboard_path(hash));
        let path = self.path(hash);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// Every stored blob with its size (files of other names, such as a write's temporary
    /// file, are skipped).
    pub fn list(&self) -> Result<Vec<(Hash, u64)>, StoreError> {
        let io = |source| StoreError::Io {
            path: self.dir.display().to_string(),
            source,
        };
        let mut out = Vec::new();
        for item in std::fs::read_dir(&self.dir).map_err(io)? {
            let item = item.map_err(io)?;
            let Some(hash) = item
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<Hash>().ok())
            else {
                continue;
            };
            if let Ok(meta) = item.metadata()
                && meta.is_file()
            {
                out.push((hash, meta.len()));
            }
        }
        Ok(out)
    }

    pub fn get(&self, hash: &Hash) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(hash);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_verify_against_the_hash_and_a_damaged_blob_is_caught() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let blob: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let h = store.put(&blob).unwrap();
        let root = bao::Hash::from(h.0);
        let decode = |slice: &[u8], start: u64, len: u64| {
            let mut out = Vec::new();
            bao::decode::SliceDecoder::new(slice, &root, start, len)
                .read_to_end(&mut out)
                .map(|_| out)
        };
        for (start, len) in [(0, 1000), (5000, 100_000), (1_100_000, 500_000)] {
            let (slice, total) = store.slice(&h, start, len).unwrap().unwrap();
            assert_eq!(total, blob.len() as u64);
            let end = (start + len).min(total) as usize;
            assert_eq!(
                decode(&slice, start, len).unwrap(),
                &blob[start as usize..end]
            );
        }
        // The outboard is kept beside the blob, is not listed as a blob, and goes with it.
        let outboard = dir.path().join(format!("{h}.obao"));
        assert!(outboard.is_file());
        assert_eq!(store.list().unwrap(), vec![(h, blob.len() as u64)]);
        // A byte damaged on disk after the outboard was made: the slice over it fails to
        // verify, one elsewhere still does.
        let mut damaged = blob.clone();
        damaged[600_000] ^= 1;
        std::fs::write(store.path(&h), &damaged).unwrap();
        let (slice, _) = store.slice(&h, 590_000, 20_000).unwrap().unwrap();
        assert!(decode(&slice, 590_000, 20_000).is_err());
        let (slice, _) = store.slice(&h, 0, 20_000).unwrap().unwrap();
        assert_eq!(decode(&slice, 0, 20_000).unwrap(), &blob[..20_000]);
        // Without an outboard, a damaged blob is refused when one is made.
        std::fs::remove_file(&outboard).unwrap();
        assert!(store.slice(&h, 0, 10).is_err());
        store.remove(&h).unwrap();
        assert!(!outboard.exists());
        assert_eq!(store.slice(&h, 0, 10).unwrap(), None);
    }

    #[test]
    fn put_get_round_trip_and_idempotence() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let h = store.put(b"hello").unwrap();
        assert_eq!(h, Hash::of(b"hello"));
        assert_eq!(store.put(b"hello").unwrap(), h);
        assert_eq!(store.get(&h).unwrap().as_deref(), Some(&b"hello"[..]));
        assert_eq!(store.size(&h), Some(5));
        assert!(store.get(&Hash::of(b"other")).unwrap().is_none());
        assert_eq!(store.list().unwrap(), vec![(h, 5)]);
        store.remove(&h).unwrap();
        store.remove(&h).unwrap();
        assert!(!store.contains(&h) && store.list().unwrap().is_empty());
        store.put(b"hello").unwrap();
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_checked_file_moves_in_and_ranges_read_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(&dir.path().join("blobs")).unwrap();
        let part = dir.path().join("upload.part");
        std::fs::write(&part, b"0123456789").unwrap();
        let hash = Hash::of(b"0123456789");
        store.put_file(&hash, &part).unwrap();
        assert!(!part.exists());
        assert_eq!(store.get(&hash).unwrap().unwrap(), b"0123456789");
        // Moving in a blob already stored keeps the stored one and removes the file.
        std::fs::write(&part, b"0123456789").unwrap();
        store.put_file(&hash, &part).unwrap();
        assert!(!part.exists());
        let range = |offset, len| store.read_range(&hash, offset, len).unwrap().unwrap();
        assert_eq!(range(2, 3), (b"234".to_vec(), 10));
        assert_eq!(range(8, 100), (b"89".to_vec(), 10));
        assert_eq!(range(10, 5), (Vec::new(), 10));
        assert_eq!(range(99, 5), (Vec::new(), 10));
        assert!(store.read_range(&Hash::of(b"x"), 0, 1).unwrap().is_none());
    }
}
