//! Identities are ed25519 keys; every state-changing request is a [`Signed`] body.
//!
//! Nonces: an [`Identity`] hands out strictly increasing nonces starting at the current time in
//! microseconds, so a restarted process never reuses an old nonce and needs no round trip to learn
//! where it left off. The coordinator rejects any nonce not above the last one it saw from the signer.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use engine::{AccountId, Hash, Sig, Signed, SignedBody};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("signer {0} is not a valid ed25519 public key")]
    BadKey(AccountId),
    #[error("signature does not verify for signer {0}")]
    BadSignature(AccountId),
    #[error("key file {path}: {msg}")]
    KeyFile { path: String, msg: String },
}

/// A signing key with its account id and a nonce counter.
pub struct Identity {
    key: SigningKey,
    id: AccountId,
    next_nonce: AtomicU64,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("id", &self.id).finish()
    }
}

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(1)
}

impl Identity {
    pub fn from_secret(secret: [u8; 32]) -> Identity {
        let key = SigningKey::from_bytes(&secret);
        let id = AccountId(key.verifying_key().to_bytes());
        Identity {
            key,
            id,
            next_nonce: AtomicU64::new(now_micros()),
        }
    }

    /// A fresh random key.
    pub fn generate() -> Identity {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).expect("the operating system's random source failed");
        Identity::from_secret(secret)
    }

    /// Loads the key kept in `path` (hex-encoded secret), creating it (mode 0600) if it is missing.
    pub fn load_or_create(path: &Path) -> Result<Identity, AuthError> {
        let err = |msg: String| AuthError::KeyFile {
            path: path.display().to_string(),
            msg,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let mut secret = [0u8; 32];
                hex::decode_to_slice(text.trim(), &mut secret)
                    .map_err(|e| err(format!("not a hex ed25519 secret key: {e}")))?;
                Ok(Identity::from_secret(secret))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
                }
                let identity = Identity::generate();
                let text = format!("{}\n", hex::encode(identity.key.to_bytes()));
                write_private(path, text.as_bytes()).map_err(|e| err(e.to_string()))?;
                Ok(identity)
            }
            Err(e) => Err(err(e.to_string())),
        }
    }

    pub fn id(&self) -> AccountId {
        self.id
    }

    /// The secret key, for the coordinator's self-signed TLS certificate (`tls`) only.
    pub(crate) fn secret_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The X25519 secret of this key (the ed25519 key's own scalar, as libsodium's
    /// `crypto_sign_ed25519_sk_to_curve25519` derives it), for opening private jobs' keys
    /// ([`crate::private`]).
    pub(crate) fn x25519_secret(&self) -> [u8; 32] {
        self.key.to_scalar_bytes()
    }

    /// A secret derived from this key for `context` (BLAKE3's key derivation): what only the
    /// key's holder can compute, such as a leader's beacon seed ([`engine::beacon_secret`]).
    pub fn derive_seed(&self, context: &str) -> [u8; 32] {
        blake3::derive_key(context, &self.key.to_bytes())
    }

    /// Makes every later nonce larger than `nonce`: after the network refused a fresh one as a
    /// replay (this process counts from a clock set back since the account last signed).
    pub fn skip_nonces_past(&self, nonce: u64) {
        self.next_nonce
            .fetch_max(nonce.saturating_add(1), Ordering::Relaxed);
    }

    /// Signs `body` with the next nonce.
    pub fn sign<T: SignedBody>(&self, body: T) -> Signed<T> {
        let nonce = self.next_nonce.fetch_add(1, Ordering::Relaxed);
        self.sign_with_nonce(nonce, body)
    }

    /// Signs `body` with a nonce the caller chooses, leaving the counter alone: for bodies whose
    /// nonce is fixed by their content (a block header is signed with its height as the nonce).
    pub fn sign_with_nonce<T: SignedBody>(&self, nonce: u64, body: T) -> Signed<T> {
        let bytes = Signed::<T>::signing_bytes(&self.id, nonce, &body);
        let signature = Sig(self.key.sign(&bytes).to_bytes());
        Signed {
            signer: self.id,
            nonce,
            body,
            signature,
        }
    }
}

/// Writes a new secret file (mode 0600 on Unix); fails if `path` exists.
#[cfg(unix)]
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Writes a new secret file; fails if `path` exists.
#[cfg(not(unix))]
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// The signature rule of the whole network, for admission and for chain verification alike:
/// ZIP 215 (cofactored ed25519 verification, as implemented by `ed25519-consensus`), under which a
/// batch check and single checks always give the same answer, plus one policy on top: the signer's
/// key must decode to a curve point that is not of small order (anyone can "sign" for such a key).
/// Signatures made by standard ed25519 signers (ours use `ed25519-dalek`) satisfy it.
///
/// Keys are decoded once per process ([`KeyCache::shared`]): a validator checks the same few
/// signers' signatures over and over, and decoding a key costs two point decompressions.
pub fn verify<T: SignedBody>(signed: &Signed<T>) -> Result<(), AuthError> {
    let key = KeyCache::shared().key(&signed.signer)?;
    let bytes = Signed::<T>::signing_bytes(&signed.signer, signed.nonce, &signed.body);
    let signature = ed25519_consensus::Signature::from(signed.signature.0);
    key.verify(&signature, &bytes)
        .map_err(|_| AuthError::BadSignature(signed.signer))
}

/// Whether `id` can own tokens: it is a public key under [`verify`]'s rule — a point on the
/// curve, not of small order — so that some key can sign for it. Tokens sent to anything else
/// are lost for good: no key signs for a string that is not a point, and [`verify`] accepts no
/// signature from a small-order key (under ZIP-215 anyone could make one).
pub fn valid_account(id: &AccountId) -> bool {
    checked_key(id).is_ok()
}

/// `id` as a verification key under [`verify`]'s rule.
fn checked_key(id: &AccountId) -> Result<ed25519_consensus::VerificationKey, AuthError> {
    let point = VerifyingKey::from_bytes(&id.0).map_err(|_| AuthError::BadKey(*id))?;
    if point.is_weak() {
        return Err(AuthError::BadKey(*id));
    }
    ed25519_consensus::VerificationKey::try_from(id.0).map_err(|_| AuthError::BadKey(*id))
}

/// Session tokens: a cheap proof of liveness for providers. After a signed request, the
/// coordinator hands the provider `BLAKE3-keyed(secret, provider id)`; presenting it again
/// (`POST /v1/work/ping`) counts as a heartbeat without a signature check (a keyed hash instead
/// of an ed25519 verification: about 0.1 µs against 40 µs). The secret is random per coordinator
/// run, so a restart invalidates every token and providers fall back to a signed heartbeat. A
/// token only keeps its provider from being declared lost — whoever sniffs one can do that much
/// (runs still time out) and nothing more: it authorizes no logged action. It travels only in
/// the answer to a signed heartbeat and in HTTP pings (both over HTTPS beyond loopback); a UDP
/// ping carries a MAC under it instead, with a counter that must grow ([`Sessions::fresh`]).
pub struct Sessions {
    secret: [u8; 32],
    /// The last UDP ping counter accepted per provider (one entry per provider whose ping
    /// opened with its token).
    counters: Mutex<HashMap<AccountId, u64>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions::new()
    }
}

impl Sessions {
    /// A fresh random secret.
    pub fn new() -> Sessions {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).expect("the operating system's random source failed");
        Sessions {
            secret,
            counters: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a UDP ping of `id` numbered `counter` is new (above the last accepted, which it
    /// becomes): a replayed datagram is not.
    pub fn fresh(&self, id: &AccountId, counter: u64) -> bool {
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let last = counters.entry(*id).or_insert(0);
        if counter > *last {
            *last = counter;
            true
        } else {
            false
        }
    }

    /// The session token of `id`.
    pub fn token(&self, id: &AccountId) -> Hash {
        Hash(*blake3::keyed_hash(&self.secret, &id.0).as_bytes())
    }

    /// Whether `token` is `id`'s (compared in constant time).
    pub fn check(&self, id: &AccountId, token: &Hash) -> bool {
        blake3::keyed_hash(&self.secret, &id.0) == blake3::Hash::from_bytes(token.0)
    }
}

/// Keys of recently seen signers that passed [`verify`]'s key rule, decoded. Decoding and
/// checking a key (two point decompressions, small-order test) costs about half a single
/// signature check, and signers repeat. Shared by the threads that verify; holds at most
/// `capacity` keys (it is emptied when full: simple and bounded).
pub struct KeyCache {
    keys: Mutex<HashMap<AccountId, ed25519_consensus::VerificationKey>>,
    capacity: usize,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl KeyCache {
    pub fn new(capacity: usize) -> KeyCache {
        KeyCache {
            keys: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The process-wide cache [`verify`] uses (16 Ki keys, about 3 MiB when full).
    pub fn shared() -> &'static KeyCache {
        static SHARED: std::sync::LazyLock<KeyCache> =
            std::sync::LazyLock::new(|| KeyCache::new(1 << 14));
        &SHARED
    }

    /// `id`'s key, or the error [`verify`] gives every signature under it.
    fn key(&self, id: &AccountId) -> Result<ed25519_consensus::VerificationKey, AuthError> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = keys.get(id) {
            return Ok(*key);
        }
        let key = checked_key(id)?;
        if keys.len() >= self.capacity {
            keys.clear();
        }
        keys.insert(*id, key);
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Request;
    use engine::Action;
    use proptest::prelude::*;

    #[test]
    fn signed_action_verifies_and_tampering_is_caught() {
        let id = Identity::generate();
        let signed = id.sign(Action::CancelJob(7));
        verify(&signed).unwrap();

        let mut other_body = signed.clone();
        other_body.body = Action::CancelJob(8);
        assert!(matches!(
            verify(&other_body),
            Err(AuthError::BadSignature(_))
        ));

        let mut other_nonce = signed.clone();
        other_nonce.nonce += 1;
        assert!(verify(&other_nonce).is_err());

        let mut other_signer = signed;
        other_signer.signer = Identity::generate().id();
        assert!(verify(&other_signer).is_err());
    }

    #[test]
    fn signature_over_one_body_type_is_not_valid_for_another() {
        let id = Identity::generate();
        let req = id.sign(Request::Heartbeat);
        // Same signer, nonce and signature, re-labelled as an action.
        let forged = Signed {
            signer: req.signer,
            nonce: req.nonce,
            body: Action::LeaveProvider,
            signature: req.signature,
        };
        assert!(verify(&forged).is_err());
    }

    #[test]
    fn nonces_strictly_increase() {
        let id = Identity::generate();
        let a = id.sign(Request::Heartbeat).nonce;
        let b = id.sign(Request::Heartbeat).nonce;
        assert!(b > a);
    }

    #[test]
    fn key_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/key");
        let a = Identity::load_or_create(&path).unwrap();
        let b = Identity::load_or_create(&path).unwrap();
        assert_eq!(a.id(), b.id());
        std::fs::write(&path, "not hex").unwrap();
        assert!(matches!(
            Identity::load_or_create(&path),
            Err(AuthError::KeyFile { .. })
        ));
    }

    proptest! {
        #[test]
        fn any_flipped_signature_bit_is_rejected(job in any::<u64>(), bit in 0usize..512) {
            let id = Identity::from_secret([3; 32]);
            let mut signed = id.sign(Action::CancelJob(job));
            prop_assert!(verify(&signed).is_ok());
            signed.signature.0[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(verify(&signed).is_err());
        }

        #[test]
        fn json_round_trip_keeps_signature_valid(job in any::<u64>()) {
            let id = Identity::from_secret([5; 32]);
            let signed = id.sign(Action::CancelJob(job));
            let json = serde_json::to_string(&signed).unwrap();
            let back: Signed<Action> = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(&back, &signed);
            prop_assert!(verify(&back).is_ok());
        }
    }

    #[test]
    fn a_udp_ping_counter_is_accepted_once_and_only_growing() {
        let sessions = Sessions::new();
        let a = AccountId([1; 32]);
        let b = AccountId([2; 32]);
        assert!(sessions.fresh(&a, 10));
        assert!(!sessions.fresh(&a, 10), "a replay");
        assert!(!sessions.fresh(&a, 9), "an older ping");
        assert!(sessions.fresh(&a, 11));
        // Each provider counts for itself.
        assert!(sessions.fresh(&b, 5));
    }
}
