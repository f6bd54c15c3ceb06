//! Rules 13: private jobs ([`Sealing`]), submitted with `Action::SubmitPrivateJob`.
//!
//! A private job's data — its tasks' stdin and input files, its mounted trees, every output — is
//! encrypted under one random job key that only its requester and the providers it names know.
//! The engine never sees the key: it keeps, per job, the key wrapped to each named provider (HPKE,
//! made and opened outside the engine: `api::private`) and a check value that lets a provider
//! tell that the key it unwrapped is the one every other recipient got. It enforces one thing:
//! **a private job's tasks go only to the providers it was sealed to** ([`State::job_rules`]), so
//! no other provider is ever handed work it cannot decrypt.
//!
//! Verification is unchanged. A provider encrypts its output deterministically under the job key
//! (the nonce is a keyed hash of the plaintext), so honest replicas upload byte-identical
//! ciphertexts and report the same output hash: the hash of the ciphertext is a commitment to
//! the plaintext that only key holders can open or test guesses against.
//!
//! Its verdicts decide results and payments only: the requester chose who runs the job, and so
//! who judges whom, so a private job's verification never changes a provider's reputation,
//! trust or stake ([`State::private_job`]).
//!
//! A job may leave some blobs in the clear ([`Sealing::clear`]): public data such as an
//! interpreter's standard library, which providers then share across jobs.
//!
//! What stays public: the module (code, shared and cached across jobs), args and environment,
//! file names, every blob's size (ciphertext is the plaintext's size plus a fixed overhead), fuel,
//! exit statuses, timing, and which outputs of the job are equal.

use crate::command::{Event, Rejection};
use crate::files::JobFiles;
use crate::options::JobOptions;
use crate::state::State;
use crate::storage::StorageClaim;
use crate::types::{AccountId, Hash, JobId, JobSpec, Time};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The most providers a private job may be sealed to.
pub const MAX_RECIPIENTS: usize = 64;
/// The most blobs a private job may leave in the clear.
pub const MAX_CLEAR: usize = 64;
/// The longest wrapped key a recipient may be given (HPKE X25519 with ChaCha20-Poly1305 over a
/// 32-byte key takes 80).
pub const MAX_WRAPPED_KEY: usize = 256;

/// The job key wrapped to one provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Recipient {
    pub provider: AccountId,
    /// The key, sealed to the provider's X25519 key (derived from its ed25519 identity); opaque
    /// to the engine.
    #[serde(with = "crate::types::hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub wrapped: Vec<u8>,
}

/// How a private job's key reaches its providers (rules 13). Always encoded in full: log entries
/// are postcard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Sealing {
    /// A value derived from the job key (a keyed hash, revealing nothing of the key): a provider
    /// runs the job only with a key that derives this, so all its providers hold the same key.
    pub key_check: Hash,
    /// The providers that may run the job's tasks, each with the key wrapped to it; sorted by
    /// provider once normalised.
    pub recipients: Vec<Recipient>,
    /// Blobs of the job its requester left in the clear (public data such as an interpreter's
    /// standard library mounted beside private inputs): providers use them as they are, and
    /// share them with other jobs. Sorted once normalised.
    #[serde(default)]
    pub clear: Vec<Hash>,
}

impl Sealing {
    /// The sealing checked and in its one form (recipients sorted). `Err` says what is wrong.
    pub fn normalised(&self) -> Result<Sealing, String> {
        if self.recipients.is_empty() {
            return Err("a private job names no provider to run it".into());
        }
        if self.recipients.len() > MAX_RECIPIENTS {
            return Err(format!(
                "a private job is sealed to {} providers; at most {MAX_RECIPIENTS}",
                self.recipients.len()
            ));
        }
        let mut recipients = self.recipients.clone();
        recipients.sort_by_key(|r| r.provider);
        for pair in recipients.windows(2) {
            if let [a, b] = pair
                && a.provider == b.provider
            {
                return Err(format!(
                    "a private job's key is wrapped twice to provider {}",
                    a.provider
                ));
            }
        }
        if let Some(bad) = recipients
            .iter()
            .find(|r| r.wrapped.is_empty() || r.wrapped.len() > MAX_WRAPPED_KEY)
        {
            return Err(format!(
                "the key wrapped to provider {} is {} bytes; it must be 1 to {MAX_WRAPPED_KEY}",
                bad.provider,
                bad.wrapped.len()
            ));
        }
        if self.clear.len() > MAX_CLEAR {
            return Err(format!(
                "a private job leaves {} blobs in the clear; at most {MAX_CLEAR}",
                self.clear.len()
            ));
        }
        let mut clear = self.clear.clone();
        clear.sort();
        clear.dedup();
        Ok(Sealing {
            key_check: self.key_check,
            recipients,
            clear,
        })
    }

    /// Whether blob `hash` of the job is sealed (not one it left in the clear).
    pub fn seals(&self, hash: &Hash) -> bool {
        !self.clear.contains(hash)
    }

    /// The key wrapped to `provider`, if the job was sealed to it.
    pub fn wrapped_for(&self, provider: &AccountId) -> Option<&[u8]> {
        self.recipients
            .iter()
            .find(|r| r.provider == *provider)
            .map(|r| r.wrapped.as_slice())
    }

    /// The providers the job was sealed to, sorted.
    pub fn providers(&self) -> impl Iterator<Item = &AccountId> {
        self.recipients.iter().map(|r| &r.provider)
    }
}

/// Every private job's sealing (rules 13; empty before).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Private {
    pub jobs: BTreeMap<JobId, Sealing>,
}

impl State {
    /// Job `job`'s sealing, if it is private.
    pub fn job_sealing(&self, job: JobId) -> Option<&Sealing> {
        self.private.jobs.get(&job)
    }

    /// Whether `job` is private (rules 13).
    pub fn private_job(&self, job: JobId) -> bool {
        self.rules >= 13 && self.private.jobs.contains_key(&job)
    }

    /// Rules 13: a private job may run only on the providers it was sealed to.
    pub(crate) fn sealed_to(&self, provider: &AccountId, job: JobId) -> Result<(), String> {
        match self.private.jobs.get(&job) {
            Some(sealing) if sealing.wrapped_for(provider).is_none() => {
                Err("the job is private and its key was not sealed to this provider".into())
            }
            _ => Ok(()),
        }
    }

    /// Rules 13: the owner of unfinished private job `job` seals it to more providers.
    pub(crate) fn seal_job_to(
        &mut self,
        who: AccountId,
        job: JobId,
        recipients: &[Recipient],
    ) -> Result<Vec<Event>, Rejection> {
        if self.rules < 13 {
            return Err(Rejection::NeedsRules {
                what: "sealing a private job to more providers".into(),
                needs: 13,
                runs: self.rules,
            });
        }
        let j = self.jobs.get(&job).ok_or(Rejection::UnknownJob(job))?;
        if j.owner != who {
            return Err(Rejection::NotJobOwner(job));
        }
        if j.status.is_finished() {
            return Err(Rejection::JobEnded(job));
        }
        let sealing = self
            .private
            .jobs
            .get(&job)
            .ok_or(Rejection::NotPrivate(job))?;
        if recipients.is_empty() {
            return Err(Rejection::Empty("no provider to seal the job to".into()));
        }
        if let Some(r) = recipients
            .iter()
            .find(|r| sealing.wrapped_for(&r.provider).is_some())
        {
            return Err(Rejection::InvalidJobSpec(format!(
                "job {job} is already sealed to provider {}",
                r.provider
            )));
        }
        let mut all = sealing.recipients.clone();
        all.extend(recipients.iter().cloned());
        let merged = Sealing {
            key_check: sealing.key_check,
            recipients: all,
            clear: sealing.clear.clone(),
        }
        .normalised()
        .map_err(Rejection::InvalidJobSpec)?;
        self.private.jobs.insert(job, merged);
        let mut providers: Vec<AccountId> = recipients.iter().map(|r| r.provider).collect();
        providers.sort();
        Ok(vec![Event::JobSealedTo { job, providers }])
    }

    /// Rules 13: submits `spec` as a private job, with `options`, `files` and a storage claim
    /// where the network prices storage; its tasks go only to `sealing`'s providers.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn submit_private(
        &mut self,
        owner: AccountId,
        spec: &JobSpec,
        storage: Option<&StorageClaim>,
        options: &JobOptions,
        files: &JobFiles,
        sealing: &Sealing,
        now: Time,
    ) -> Result<Vec<Event>, Rejection> {
        if self.rules < 13 {
            return Err(Rejection::NeedsRules {
                what: "a private job".into(),
                needs: 13,
                runs: self.rules,
            });
        }
        let sealing = sealing.normalised().map_err(Rejection::InvalidJobSpec)?;
        let job = self.next_job;
        let events = self.submit_with_files(owner, spec, storage, options, files, now)?;
        self.private.jobs.insert(job, sealing);
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipient(id: u8, len: usize) -> Recipient {
        Recipient {
            provider: AccountId([id; 32]),
            wrapped: vec![7; len],
        }
    }

    #[test]
    fn sealings_are_checked_and_sorted() {
        let sealing = |recipients: Vec<Recipient>| Sealing {
            key_check: Hash([1; 32]),
            recipients,
            clear: Vec::new(),
        };
        type Want = Result<Vec<u8>, &'static str>;
        let table: Vec<(Sealing, Want)> = vec![
            (
                sealing(vec![recipient(2, 80), recipient(1, 80)]),
                Ok(vec![1, 2]),
            ),
            (sealing(vec![]), Err("names no provider")),
            (
                sealing(vec![recipient(1, 80), recipient(1, 80)]),
                Err("wrapped twice"),
            ),
            (sealing(vec![recipient(1, 0)]), Err("is 0 bytes")),
            (
                sealing(vec![recipient(1, MAX_WRAPPED_KEY + 1)]),
                Err("is 257 bytes"),
            ),
            (
                sealing(
                    (0..=MAX_RECIPIENTS as u8)
                        .map(|i| recipient(i, 80))
                        .collect(),
                ),
                Err("at most 64"),
            ),
        ];
        for (sealing, want) in table {
            match (sealing.normalised(), want) {
                (Ok(s), Ok(order)) => {
                    let got: Vec<u8> = s.providers().map(|p| p.0[0]).collect();
                    assert_eq!(got, order);
                    assert!(s.wrapped_for(&AccountId([1; 32])).is_some());
                    assert!(s.wrapped_for(&AccountId([3; 32])).is_none());
                    assert!(s.seals(&Hash([9; 32])));
                }
                (Err(e), Err(part)) => assert!(e.contains(part), "{e} lacks {part}"),
                (got, want) => panic!("got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn wrapped_keys_are_hex_in_json_and_bytes_in_postcard() {
        let r = recipient(1, 3);
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"070707\""), "{json}");
        assert_eq!(serde_json::from_str::<Recipient>(&json).unwrap(), r);
        let bin = postcard::to_stdvec(&r).unwrap();
        assert_eq!(bin.len(), 32 + 1 + 3);
        assert_eq!(postcard::from_bytes::<Recipient>(&bin).unwrap(), r);
    }
}
