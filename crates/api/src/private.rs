//! Private jobs (engine rules 13, [`engine::private`]): the job key, how it reaches the providers
//! that may run the job, and how blobs are sealed under it.
//!
//! - **The job key** is 32 random bytes the requester makes for one job ([`JobKey::generate`])
//!   and keeps (its key file): whoever holds it can read the job's inputs and outputs.
//! - **Wrapping.** The key is sealed to each provider the job names with HPKE (RFC 9180, base
//!   mode: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305). A provider's X25519 key
//!   is derived from its ed25519 account key — the public half from its account id (the
//!   Edwards point in Montgomery form), the secret from the signing key's scalar, as libsodium
//!   does — so nothing is registered. The AAD is the job's key check, binding each wrapped key
//!   to its sealing.
//! - **The key check** ([`JobKey::check`]) is a keyed BLAKE3 derivation of the key: it is public
//!   (in the job's sealing) and reveals nothing of the key, but a provider runs the job only
//!   with a key that derives it, so a requester cannot give two providers different keys and
//!   have honest runs disagree.
//! - **Blobs** (stdin, input files, mounted trees, outputs) are sealed deterministically
//!   ([`JobKey::seal`]): XChaCha20-Poly1305 under a key derived from the job key, with a
//!   synthetic nonce — the keyed BLAKE3 hash of the plaintext (SIV). Equal plaintexts seal to
//!   equal ciphertexts under one key, so honest replicas upload identical outputs and report
//!   the same hash, and verification compares them exactly as before; without the key nobody
//!   can open a ciphertext or test a guess of its plaintext against it. [`JobKey::open`]
//!   checks the tag and that the nonce is the one the plaintext derives, so each plaintext has
//!   exactly one ciphertext.
//!
//! Sealed blob format, version 1: `[1] ‖ nonce (24 bytes) ‖ ciphertext ‖ tag (16 bytes)`:
//! [`SEAL_OVERHEAD`] bytes more than the plaintext.

use crate::Identity;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use engine::{AccountId, Hash, Recipient, Sealing};
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type Wrap = hpke::aead::ChaCha20Poly1305;

/// The version byte a sealed blob starts with.
pub const SEAL_VERSION: u8 = 1;
/// What sealing adds to a blob: the version byte, the nonce and the tag.
pub const SEAL_OVERHEAD: u64 = 1 + 24 + 16;
/// HPKE's `info` for a wrapped job key.
const WRAP_INFO: &[u8] = b"gridmint/private/v1/job-key";

/// Why a private job's key or blob could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PrivateError {
    #[error("account {0} is not a valid ed25519 key: nothing can be sealed to it")]
    BadRecipient(AccountId),
    #[error("the job key could not be wrapped to {0}: {1}")]
    Wrap(AccountId, String),
    #[error("the job was not sealed to this provider")]
    NotARecipient,
    #[error("the job key wrapped to this provider does not open: {0}")]
    Unwrap(String),
    #[error("the job key does not match the job's key check")]
    WrongKey,
    #[error("a sealed blob of version {found}; this build reads version {SEAL_VERSION}")]
    Version { found: u8 },
    #[error("the blob is not sealed under this job's key (or was altered)")]
    Open,
    #[error("not a job key: {0}")]
    Parse(String),
}

/// A private job's key.
#[derive(Clone, PartialEq, Eq)]
pub struct JobKey([u8; 32]);

impl std::fmt::Debug for JobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JobKey(check {})", self.check())
    }
}

impl JobKey {
    /// A fresh random key.
    pub fn generate() -> JobKey {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the operating system's random source failed");
        JobKey(key)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> JobKey {
        JobKey(bytes)
    }

    /// The key as 64 hex characters (what a requester's key file holds).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> Result<JobKey, PrivateError> {
        let mut key = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut key)
            .map_err(|e| PrivateError::Parse(format!("expected 64 hex characters: {e}")))?;
        Ok(JobKey(key))
    }

    /// The public check value of the key (see the module's notes).
    pub fn check(&self) -> Hash {
        Hash(blake3::derive_key("gridmint/private/v1/key-check", &self.0))
    }

    fn blob_key(&self) -> [u8; 32] {
        blake3::derive_key("gridmint/private/v1/blob-key", &self.0)
    }

    fn nonce_of(&self, plaintext: &[u8]) -> [u8; 24] {
        let nonce_key = blake3::derive_key("gridmint/private/v1/blob-nonce", &self.0);
        let mut nonce = [0u8; 24];
        let mut reader = blake3::Hasher::new_keyed(&nonce_key)
            .update(plaintext)
            .finalize_xof();
        reader.fill(&mut nonce);
        nonce
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.blob_key().into())
    }

    /// `plaintext` sealed under this key, deterministically (the same bytes every time).
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let nonce = self.nonce_of(plaintext);
        let sealed = self
            .cipher()
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &[SEAL_VERSION],
                },
            )
            // Only a message over 256 GiB fails; no blob is near that.
            .expect("XChaCha20-Poly1305 seals any blob under 256 GiB");
        let mut out = Vec::with_capacity(sealed.len() + 25);
        out.push(SEAL_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// The plaintext of a blob sealed under this key.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, PrivateError> {
        let (&version, rest) = sealed.split_first().ok_or(PrivateError::Open)?;
        if version != SEAL_VERSION {
            return Err(PrivateError::Version { found: version });
        }
        if rest.len() < 24 + 16 {
            return Err(PrivateError::Open);
        }
        let (nonce, body) = rest.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().map_err(|_| PrivateError::Open)?;
        let plaintext = self
            .cipher()
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: body,
                    aad: &[SEAL_VERSION],
                },
            )
            .map_err(|_| PrivateError::Open)?;
        if self.nonce_of(&plaintext) != nonce {
            return Err(PrivateError::Open);
        }
        Ok(plaintext)
    }

    /// This key wrapped to `provider` (HPKE to its X25519 key), bound to the key check.
    pub fn wrap_to(&self, provider: &AccountId) -> Result<Vec<u8>, PrivateError> {
        let public = recipient_key(provider)?;
        let (encapped, sealed) = hpke::single_shot_seal::<Wrap, Kdf, Kem>(
            &OpModeS::Base,
            &public,
            WRAP_INFO,
            &self.0,
            &self.check().0,
        )
        .map_err(|e| PrivateError::Wrap(*provider, e.to_string()))?;
        let mut out = encapped.to_bytes().to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The sealing of a job under this key for `providers` (each wrapped its own copy), its
    /// recipients sorted as the engine keeps them, leaving the blobs `clear` in the clear.
    pub fn sealing(
        &self,
        providers: &[AccountId],
        clear: &[Hash],
    ) -> Result<Sealing, PrivateError> {
        let mut recipients = providers
            .iter()
            .map(|p| {
                Ok(Recipient {
                    provider: *p,
                    wrapped: self.wrap_to(p)?,
                })
            })
            .collect::<Result<Vec<_>, PrivateError>>()?;
        recipients.sort_by_key(|r| r.provider);
        let mut clear = clear.to_vec();
        clear.sort();
        clear.dedup();
        Ok(Sealing {
            key_check: self.check(),
            recipients,
            clear,
        })
    }

    /// The job key `sealing` wraps to `identity`, checked against the sealing's key check.
    pub fn unwrap(identity: &Identity, sealing: &Sealing) -> Result<JobKey, PrivateError> {
        let wrapped = sealing
            .wrapped_for(&identity.id())
            .ok_or(PrivateError::NotARecipient)?;
        const ENCAPPED: usize = 32;
        if wrapped.len() <= ENCAPPED {
            return Err(PrivateError::Unwrap("too short".into()));
        }
        let (encapped, sealed) = wrapped.split_at(ENCAPPED);
        let encapped = <Kem as hpke::Kem>::EncappedKey::from_bytes(encapped)
            .map_err(|e| PrivateError::Unwrap(e.to_string()))?;
        let secret = <Kem as hpke::Kem>::PrivateKey::from_bytes(&identity.x25519_secret())
            .map_err(|e| PrivateError::Unwrap(e.to_string()))?;
        let key = hpke::single_shot_open::<Wrap, Kdf, Kem>(
            &OpModeR::Base,
            &secret,
            &encapped,
            WRAP_INFO,
            sealed,
            &sealing.key_check.0,
        )
        .map_err(|e| PrivateError::Unwrap(e.to_string()))?;
        let key: [u8; 32] = key
            .try_into()
            .map_err(|_| PrivateError::Unwrap("not a 32-byte key".into()))?;
        let key = JobKey(key);
        if key.check() != sealing.key_check {
            return Err(PrivateError::WrongKey);
        }
        Ok(key)
    }
}

/// The X25519 public key of an account (its ed25519 key in Montgomery form).
fn recipient_key(account: &AccountId) -> Result<<Kem as hpke::Kem>::PublicKey, PrivateError> {
    let edwards = ed25519_dalek::VerifyingKey::from_bytes(&account.0)
        .map_err(|_| PrivateError::BadRecipient(*account))?;
    if edwards.is_weak() {
        return Err(PrivateError::BadRecipient(*account));
    }
    <Kem as hpke::Kem>::PublicKey::from_bytes(edwards.to_montgomery().as_bytes())
        .map_err(|_| PrivateError::BadRecipient(*account))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealing_is_deterministic_and_opens_only_under_its_key() {
        let key = JobKey::generate();
        let sealed = key.seal(b"secret input");
        assert_eq!(sealed, key.seal(b"secret input"), "same bytes every time");
        assert_eq!(sealed.len() as u64, 12 + SEAL_OVERHEAD);
        assert_ne!(sealed, key.seal(b"secret inpuT"));
        assert_eq!(key.open(&sealed).unwrap(), b"secret input");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        // Another key, an altered byte anywhere, a cut blob: refused.
        assert_eq!(JobKey::generate().open(&sealed), Err(PrivateError::Open));
        for at in 1..sealed.len() {
            let mut bad = sealed.clone();
            bad[at] ^= 1;
            assert_eq!(key.open(&bad), Err(PrivateError::Open), "byte {at}");
        }
        assert_eq!(key.open(&sealed[..30]), Err(PrivateError::Open));
        assert_eq!(key.open(&[]), Err(PrivateError::Open));
        let mut v2 = sealed.clone();
        v2[0] = 2;
        assert_eq!(key.open(&v2), Err(PrivateError::Version { found: 2 }));
        assert!(
            PrivateError::Version { found: 2 }
                .to_string()
                .contains("version 2; this build reads version 1")
        );
        // The empty blob seals too.
        assert_eq!(key.open(&key.seal(b"")).unwrap(), b"");
    }

    #[test]
    fn a_ciphertext_with_another_nonce_for_the_same_plaintext_is_refused() {
        // Each plaintext has one valid ciphertext: one sealed under a nonce the plaintext does
        // not derive (as a provider holding the key could make) does not open.
        let key = JobKey::generate();
        let mut nonce = [7u8; 24];
        nonce[0] = 1;
        let body = key
            .cipher()
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: b"out",
                    aad: &[SEAL_VERSION],
                },
            )
            .unwrap();
        let mut forged = vec![SEAL_VERSION];
        forged.extend_from_slice(&nonce);
        forged.extend_from_slice(&body);
        assert_eq!(key.open(&forged), Err(PrivateError::Open));
    }

    #[test]
    fn a_wrapped_key_opens_only_for_its_provider_and_its_check() {
        let key = JobKey::generate();
        let alice = Identity::generate();
        let bob = Identity::generate();
        let carol = Identity::generate();
        let sealing = key.sealing(&[alice.id(), bob.id()], &[]).unwrap();
        assert_eq!(JobKey::unwrap(&alice, &sealing).unwrap(), key);
        assert_eq!(JobKey::unwrap(&bob, &sealing).unwrap(), key);
        assert_eq!(
            JobKey::unwrap(&carol, &sealing),
            Err(PrivateError::NotARecipient)
        );
        // Bob's wrapped key handed to Alice does not open.
        let mut swapped = sealing.clone();
        let bobs = sealing.wrapped_for(&bob.id()).unwrap().to_vec();
        for r in &mut swapped.recipients {
            if r.provider == alice.id() {
                r.wrapped = bobs.clone();
            }
        }
        assert!(matches!(
            JobKey::unwrap(&alice, &swapped),
            Err(PrivateError::Unwrap(_))
        ));
        // A check that is not the key's: the wrap's AAD no longer matches.
        let mut other = sealing.clone();
        other.key_check = Hash([0; 32]);
        assert!(matches!(
            JobKey::unwrap(&alice, &other),
            Err(PrivateError::Unwrap(_))
        ));
        // A requester that wraps another key under the right check: refused by the check.
        let liar = JobKey::generate();
        let mut lied = sealing.clone();
        let wrapped = {
            let public = recipient_key(&alice.id()).unwrap();
            let (enc, ct) = hpke::single_shot_seal::<Wrap, Kdf, Kem>(
                &OpModeS::Base,
                &public,
                WRAP_INFO,
                &liar.0,
                &key.check().0,
            )
            .unwrap();
            [enc.to_bytes().to_vec(), ct].concat()
        };
        for r in &mut lied.recipients {
            if r.provider == alice.id() {
                r.wrapped = wrapped.clone();
            }
        }
        assert_eq!(JobKey::unwrap(&alice, &lied), Err(PrivateError::WrongKey));
        // 80 bytes each: what the engine's bound leaves room for.
        assert!(sealing.recipients.iter().all(|r| r.wrapped.len() == 80));
        const { assert!(engine::MAX_WRAPPED_KEY >= 80) };
    }

    #[test]
    fn keys_round_trip_through_hex_and_invalid_accounts_are_refused() {
        let key = JobKey::generate();
        assert_eq!(JobKey::from_hex(&key.to_hex()).unwrap(), key);
        assert!(JobKey::from_hex("nope").is_err());
        assert!(!format!("{key:?}").contains(&key.to_hex()));
        // Not a point on the curve / a small-order point: nothing can be sealed to it.
        let mut bad = [0u8; 32];
        bad[31] = 0x80;
        bad[0] = 2;
        let id = AccountId(bad);
        if ed25519_dalek::VerifyingKey::from_bytes(&id.0).is_err() {
            assert_eq!(key.wrap_to(&id), Err(PrivateError::BadRecipient(id)));
        }
        let identity = AccountId(
            ed25519_dalek::VerifyingKey::from_bytes(&[
                1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                0, 0, 0, 0,
            ])
            .unwrap()
            .to_bytes(),
        );
        assert_eq!(
            key.wrap_to(&identity),
            Err(PrivateError::BadRecipient(identity))
        );
    }
}
