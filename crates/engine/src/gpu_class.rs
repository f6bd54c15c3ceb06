//! Rules 28: a provider proves its GPU class to another member of the class.
//!
//! A float GPU job's replicas all run on one determinism class ([`crate::gpu`]), and a class is
//! a declared GPU together with the offer's fingerprint: what the device computes for the
//! network's fixed float challenge. That challenge is public, so before rules 28 a provider
//! could copy another's name and fingerprint without the device, join its class, and was
//! caught only when its results disagreed with the class's. Under rules 28 a claimed class
//! counts ([`State::gpu_class_of`]) only once it is **proven**:
//!
//! - The first provider of a class (no active proven member of another operator has it) founds
//!   it: proven at once, as nobody could check it.
//! - Anyone else who claims it is **pending** until a member checks it: a proven, active member
//!   of the class (of another operator, and each member once per pending provider) draws a
//!   random challenge, computes its own device's fingerprint of it, and logs the challenge with
//!   a commitment to that answer ([`class_commitment`], which names the pending provider:
//!   `Action::ChallengeGpuClass`). The pending provider then has [`CLASS_ANSWER_MS`] to log
//!   its device's answer in the clear (`Action::AnswerGpuClass`); the engine hashes it the same
//!   way and compares. Equal: the provider is proven. Different (or no answer in time): the
//!   check failed and another member may try, up to [`MAX_CLASS_CHECKS`] checks a claim.
//!   Checks and answers pay no fee per action (a member serves the network by checking).
//!
//! The checker commits before the answer is public, so it cannot vouch by copying; the
//! pending provider sees only a hash of a 256-bit answer to a challenge it could not predict,
//! so it must compute it on a device that rounds exactly like the class. What this cannot
//! stop: a provider relaying its challenges to a real device of the class (it then has one),
//! a member vouching for its own sybils (collusion, which verification and stake answer as for
//! any result), and a member that commits to garbage (it only fails its own check; an honest
//! newcomer stays pending while every other member refuses to check it). A provider that
//! registers again with the same proven class keeps it; any other registration with an offer
//! claims again (a pending provider's failed checks are forgotten, so a check that failed for
//! want of an answer, the provider being away, can be tried again).

use crate::command::{Event, Rejection};
use crate::state::{ProviderStatus, State};
use crate::types::{AccountId, Hash, Time};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// How long a challenged provider has to answer, in milliseconds.
pub const CLASS_ANSWER_MS: u64 = 60_000;
/// The most checks one claim gets (failed, unanswered or open); it registers again to be
/// checked again. Checks are free (`Action::ChallengeGpuClass` pays no fee per action), so
/// this bounds what one registration can make the members log.
pub const MAX_CLASS_CHECKS: usize = 3;

/// Proven and pending GPU classes (rules 28; empty before).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GpuClasses {
    /// Providers whose class is proven, by provider.
    pub proven: BTreeMap<AccountId, ProvenClass>,
    /// Providers whose claimed class is not proven yet, by provider.
    pub pending: BTreeMap<AccountId, PendingClass>,
}

/// A provider's proven class.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProvenClass {
    pub class: String,
    /// The member whose check it passed; `None`: it founded the class.
    pub by: Option<AccountId>,
    pub at: Time,
}

/// A provider waiting to prove its class.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PendingClass {
    pub class: String,
    pub since: Time,
    /// Members that checked it already (each may once).
    pub checked_by: BTreeSet<AccountId>,
    /// The open check, if any.
    pub challenge: Option<ClassChallenge>,
}

/// A check waiting for its answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClassChallenge {
    pub checker: AccountId,
    /// What the pending provider's device must fingerprint (`gpu::fingerprint`).
    pub challenge: u64,
    /// [`class_commitment`] of the checker's own answer.
    pub commitment: Hash,
    pub at: Time,
}

impl ClassChallenge {
    /// When the answer is due (exclusive).
    pub fn due(&self) -> Time {
        self.at.saturating_add(CLASS_ANSWER_MS)
    }
}

/// What a checker logs for its `answer` (a device's `gpu::fingerprint` of `challenge`) when
/// it checks `provider`: the pending provider's answer must hash to the same.
pub fn class_commitment(provider: &AccountId, challenge: u64, answer: &Hash) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(b"gridmint/gpu-class-check");
    h.update(&provider.0);
    h.update(&challenge.to_le_bytes());
    h.update(&answer.0);
    Hash(*h.finalize().as_bytes())
}

fn invalid(why: impl Into<String>) -> Rejection {
    Rejection::InvalidClassCheck(why.into())
}

impl State {
    /// The class provider `p` claims: its declared GPU and its offer's fingerprint; `None`
    /// without an offer.
    pub(crate) fn claimed_gpu_class(&self, p: &AccountId) -> Option<String> {
        let declared = self.providers.get(p)?.spec.gpu.as_ref()?;
        let offer = self.gpu.offers.get(p)?;
        Some(format!(
            "{declared}, fingerprint {}",
            &offer.fingerprint.to_hex()[..16]
        ))
    }

    /// Rules 28: where provider `p`'s claim to its class stands.
    pub fn gpu_class_pending(&self, p: &AccountId) -> Option<&PendingClass> {
        self.gpu_classes.pending.get(p)
    }

    /// Rules 28: the proven and pending classes.
    pub fn gpu_classes(&self) -> &GpuClasses {
        &self.gpu_classes
    }

    fn operator(&self, p: &AccountId) -> Option<AccountId> {
        self.providers.get(p).map(|pr| pr.spec.operator_of(*p))
    }

    /// Whether `member` may check a claim to `class` by a provider of operator `operator`: an
    /// active provider of another operator whose class `class` is proven.
    fn can_check(&self, member: &AccountId, class: &str, operator: AccountId) -> bool {
        self.providers.get(member).is_some_and(|m| {
            m.status == ProviderStatus::Active && m.spec.operator_of(*member) != operator
        }) && self
            .gpu_classes
            .proven
            .get(member)
            .is_some_and(|p| p.class == class)
    }

    /// Rules 28: provider `who` registered with a GPU offer: its claimed class is proven (kept,
    /// or founded when no member could check it) or pending.
    pub(crate) fn claim_gpu_class(&mut self, who: AccountId, now: Time) -> Vec<Event> {
        let Some(class) = self.claimed_gpu_class(&who) else {
            return Vec::new();
        };
        if self
            .gpu_classes
            .proven
            .get(&who)
            .is_some_and(|p| p.class == class)
        {
            return Vec::new();
        }
        self.gpu_classes.proven.remove(&who);
        let operator = self.operator(&who).unwrap_or(who);
        let checked = self
            .gpu_classes
            .proven
            .keys()
            .any(|m| *m != who && self.can_check(m, &class, operator));
        if checked {
            self.gpu_classes.pending.insert(
                who,
                PendingClass {
                    class: class.clone(),
                    since: now,
                    checked_by: BTreeSet::new(),
                    challenge: None,
                },
            );
            vec![Event::GpuClassPending {
                provider: who,
                class,
            }]
        } else {
            self.gpu_classes.pending.remove(&who);
            self.gpu_classes.proven.insert(
                who,
                ProvenClass {
                    class: class.clone(),
                    by: None,
                    at: now,
                },
            );
            vec![Event::GpuClassProven {
                provider: who,
                class,
                by: None,
            }]
        }
    }

    /// Whether this network's rules have class checks (28 and later).
    fn class_checks_allowed(&self) -> Result<(), Rejection> {
        if self.rules < 28 {
            return Err(Rejection::NeedsRules {
                what: "a GPU class check".into(),
                needs: 28,
                runs: self.rules,
            });
        }
        Ok(())
    }

    /// Rules 28: provider `who` has no GPU offer any more.
    pub(crate) fn drop_gpu_class(&mut self, who: &AccountId) {
        self.gpu_classes.proven.remove(who);
        self.gpu_classes.pending.remove(who);
    }

    /// `Action::ChallengeGpuClass`: `checker` checks `provider`'s claim with `challenge`,
    /// committed to its own answer.
    pub(crate) fn challenge_gpu_class(
        &mut self,
        checker: AccountId,
        provider: AccountId,
        challenge: u64,
        commitment: Hash,
        now: Time,
    ) -> Result<Vec<Event>, Rejection> {
        self.class_checks_allowed()?;
        let Some(pending) = self.gpu_classes.pending.get(&provider) else {
            return Err(invalid(format!(
                "provider {provider} has no class waiting to be proven"
            )));
        };
        if self
            .providers
            .get(&provider)
            .is_none_or(|p| p.status != ProviderStatus::Active)
        {
            return Err(invalid(format!(
                "provider {provider} is not active: it could not answer"
            )));
        }
        let operator = self.operator(&provider).unwrap_or(provider);
        if checker == provider || !self.can_check(&checker, &pending.class, operator) {
            return Err(invalid(format!(
                "only an active provider of another operator whose class is proven to be \
                 {} may check it",
                pending.class
            )));
        }
        if pending.checked_by.contains(&checker) {
            return Err(invalid(format!("{checker} checked {provider} already")));
        }
        if pending.checked_by.len() >= MAX_CLASS_CHECKS {
            return Err(invalid(format!(
                "{provider}'s claim had its {MAX_CLASS_CHECKS} checks: it registers again to be \
                 checked again"
            )));
        }
        if let Some(open) = &pending.challenge
            && now < open.due()
        {
            return Err(invalid(format!(
                "{provider} is answering {}'s check until {}",
                open.checker,
                open.due()
            )));
        }
        if let Some(pending) = self.gpu_classes.pending.get_mut(&provider) {
            pending.checked_by.insert(checker);
            pending.challenge = Some(ClassChallenge {
                checker,
                challenge,
                commitment,
                at: now,
            });
        }
        Ok(vec![Event::GpuClassChallenged {
            provider,
            checker,
            challenge,
        }])
    }

    /// `Action::AnswerGpuClass`: pending provider `who` answers its open check.
    pub(crate) fn answer_gpu_class(
        &mut self,
        who: AccountId,
        answer: Hash,
        now: Time,
    ) -> Result<Vec<Event>, Rejection> {
        self.class_checks_allowed()?;
        let Some(open) = self
            .gpu_classes
            .pending
            .get(&who)
            .and_then(|p| p.challenge.clone())
        else {
            return Err(invalid(format!("{who} has no open class check to answer")));
        };
        if now >= open.due() {
            return Err(invalid(format!(
                "{}'s check was due at {}",
                open.checker,
                open.due()
            )));
        }
        if class_commitment(&who, open.challenge, &answer) != open.commitment {
            if let Some(pending) = self.gpu_classes.pending.get_mut(&who) {
                pending.challenge = None;
            }
            return Ok(vec![Event::GpuClassCheckFailed {
                provider: who,
                checker: open.checker,
            }]);
        }
        let Some(pending) = self.gpu_classes.pending.remove(&who) else {
            return Ok(Vec::new());
        };
        self.gpu_classes.proven.insert(
            who,
            ProvenClass {
                class: pending.class.clone(),
                by: Some(open.checker),
                at: now,
            },
        );
        Ok(vec![Event::GpuClassProven {
            provider: who,
            class: pending.class,
            by: Some(open.checker),
        }])
    }
}
