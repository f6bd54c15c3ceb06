//! Identities are ed25519 keys; every state-changing request is a [`Signed`] body.
//!
//! Nonces: an [`Identity`] hands out strictly increasing nonces starting at the current time in
//! microseconds, so a restarted process never reuses an old nonce and needs no round trip to learn
//! where it left off. The coordinator rejects any nonce not above the last one it saw from the signer.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use engine::{AccountId, Sig, Signed, SignedBody};
use std::path::Path;
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

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
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

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// Checks that `signed.signature` is `signed.signer`'s signature over the canonical bytes.
pub fn verify<T: SignedBody>(signed: &Signed<T>) -> Result<(), AuthError> {
    let key =
        VerifyingKey::from_bytes(&signed.signer.0).map_err(|_| AuthError::BadKey(signed.signer))?;
    let bytes = Signed::<T>::signing_bytes(&signed.signer, signed.nonce, &signed.body);
    let signature = Signature::from_bytes(&signed.signature.0);
    key.verify_strict(&bytes, &signature)
        .map_err(|_| AuthError::BadSignature(signed.signer))
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
}
