//! Validators in the state: the set the genesis declares, with the stake each bonds, and the rule
//! that slashes a validator that signed two different blocks at one height (equivocation).
//!
//! Evidence is self-authenticating: two block headers of one height, each with the accused
//! validator's signature. The engine checks everything about it that needs no signature check or
//! chain — the accused is a validator, the heights agree, the headers differ, it was not punished
//! already — and the shell checks the rest before an [`crate::Input::Evidence`] is applied: both
//! signatures verify, and one of the two headers is this chain's own block at that height (so a
//! key reused on another network cannot be slashed here for what it signed there). `chain verify`
//! repeats both checks, so no validator decides a slash on its own word.
//!
//! The slash takes [`Validators::equivocation_bps`] of the validator's stake (bonded, then
//! unbonding); the treasury gets `slash.treasury_bps` of that and the rest is burned. The validator
//! is recorded in [`Validators::equivocated`] and never slashed again (every validator that sees
//! the conflict reports it, and only the first report counts), and it leaves the set at once
//! unless it is the last member: its signatures and votes no longer count.

use crate::chain::{BlockHeader, Validator, ValidatorSet};
use crate::command::{Event, Rejection};
use crate::ledger::{BPS, bps_of};
use crate::state::State;
use crate::types::{AccountId, Amount, Hash, Sig, Time};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The validators of a network as the state holds them. Empty for a single coordinator; an empty
/// value adds nothing to the state hash (see [`State::hash`]), so networks from before validators
/// keep their hashes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Validators {
    /// Who they are, with voting power and stake, in genesis order.
    pub set: ValidatorSet,
    /// Share of an equivocating validator's stake that is taken, in basis points.
    pub equivocation_bps: u32,
    /// Validators slashed for equivocation, with the height of the evidence: each is slashed
    /// once (later evidence against it is refused), as Tendermint-style chains "tombstone" it.
    pub equivocated: BTreeMap<AccountId, u64>,
    /// Changes to the set some validators voted for, not yet approved, in the order first
    /// proposed, with who voted.
    pub pending: Vec<(ValidatorChange, Vec<AccountId>)>,
}

/// A change to the validator set, made once validators holding more than half of the voting
/// power vote for it (`Action::ValidatorVote`; governance will take this over later).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ValidatorChange {
    /// A new member. Its account must have at least the minimum stake bonded when the change is
    /// approved; its `stake` field (the genesis bond) must be 0.
    Add(Validator),
    /// A member leaves (the set never becomes empty).
    Remove(AccountId),
}

impl Validators {
    /// BLAKE3 over a domain tag and the postcard encoding: the first part of the state hash under
    /// rules 4 and later ([`crate::State::hash_parts`]).
    pub fn hash(&self) -> Hash {
        let mut h = blake3::Hasher::new();
        h.update(b"gridmint/v4/validators");
        h.update(&postcard::to_stdvec(self).unwrap_or_default());
        Hash(*h.finalize().as_bytes())
    }

    /// A set with the default rule: equivocation takes the whole stake.
    pub fn new(set: ValidatorSet) -> Validators {
        Validators {
            set,
            equivocation_bps: BPS,
            equivocated: BTreeMap::new(),
            pending: Vec::new(),
        }
    }

    /// Whether this adds nothing to the state (a single coordinator's network).
    pub fn is_empty(&self) -> bool {
        self.set.validators.is_empty() && self.equivocated.is_empty() && self.pending.is_empty()
    }

    /// Checks a genesis' validators: a valid set, a fraction of at most the whole, nothing
    /// recorded yet.
    pub fn validate(&self) -> Result<(), String> {
        self.set.validate()?;
        if self.equivocation_bps > BPS {
            return Err(format!(
                "equivocation_bps {} is above {BPS}",
                self.equivocation_bps
            ));
        }
        if !self.equivocated.is_empty() || !self.pending.is_empty() {
            return Err("a genesis records no equivocation and no pending change".into());
        }
        Ok(())
    }
}

/// A validator's statement that it has heard nothing from `provider` for at least its heartbeat
/// timeout, as of `at` (its own clock). A provider is declared lost only on such statements
/// from validators holding a majority of the voting power ([`Lost`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Silence {
    pub provider: AccountId,
    pub at: Time,
}

impl crate::command::SignedBody for Silence {
    const DOMAIN: &'static str = "gridmint/v1/silence";
}

/// How far an attestation's time may be from the entry's (either way) to count.
pub const SILENCE_MAX_SKEW_MS: u64 = 30_000;

/// The case for declaring a provider lost: validators' signed statements of its silence. The
/// shell checks every signature before the input is applied (and `chain verify` again); the
/// engine checks the rest ([`State::apply_lost`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Lost {
    pub provider: AccountId,
    pub attestations: Vec<crate::command::Signed<Silence>>,
}

/// A block header with one validator's signature of it (see [`crate::Block`] for what is signed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignedHeader {
    pub header: BlockHeader,
    pub signature: Sig,
}

/// The case against a validator: its signatures of two different headers of one height.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Equivocation {
    pub validator: AccountId,
    pub first: SignedHeader,
    pub second: SignedHeader,
}

impl Equivocation {
    /// The height both headers claim.
    pub fn height(&self) -> u64 {
        self.first.header.height
    }
}

impl State {
    /// Applies evidence of equivocation (its signatures already checked by the shell).
    pub(crate) fn punish_equivocation(
        &mut self,
        ev: &Equivocation,
    ) -> Result<Vec<Event>, Rejection> {
        let height = ev.height();
        if ev.second.header.height != height {
            return Err(Rejection::NotEquivocation(format!(
                "the headers are of different heights ({height} and {})",
                ev.second.header.height
            )));
        }
        if ev.first.header == ev.second.header {
            return Err(Rejection::NotEquivocation(
                "the two headers are the same block".into(),
            ));
        }
        if let Some(&first) = self.validators.equivocated.get(&ev.validator) {
            return Err(Rejection::AlreadyPunished {
                validator: ev.validator,
                height: first,
            });
        }
        if self.validators.set.get(&ev.validator).is_none() {
            return Err(Rejection::NotAValidator(ev.validator));
        }
        let stake = self.stake_of(&ev.validator)?;
        let fraction = self.validators.equivocation_bps;
        let own = bps_of(stake, fraction)
            .ok_or_else(|| Rejection::TooLarge("the slash would overflow".into()))?;
        // Rules 27: its delegators' pool loses the same fraction, bonded and unbonding.
        let pooled = if self.rules >= 27 {
            self.pool_slash(&ev.validator, fraction)?
        } else {
            0
        };
        let amount = own
            .checked_add(pooled)
            .ok_or_else(|| Rejection::TooLarge("the slash would overflow".into()))?;
        let to_treasury = bps_of(amount, self.ledger.slash.treasury_bps)
            .ok_or_else(|| Rejection::TooLarge("the slash would overflow".into()))?;
        let burned = amount
            .checked_sub(to_treasury)
            .ok_or_else(|| Rejection::TooLarge("the slash would overflow".into()))?;
        let new_burned = self
            .supply
            .burned
            .checked_add(burned)
            .ok_or_else(|| Rejection::TooLarge("the burn would overflow".into()))?;
        let treasury = self.ledger.treasury;
        self.balance(&treasury)
            .checked_add(to_treasury)
            .ok_or_else(|| Rejection::TooLarge("the treasury's balance would overflow".into()))?;
        // Nothing can fail from here on.
        self.take_stake(ev.validator, own);
        if pooled > 0 {
            self.slash_pool(ev.validator, fraction)?;
        }
        self.supply.burned = new_burned;
        self.credit(&treasury, to_treasury)?;
        self.validators.equivocated.insert(ev.validator, height);
        let mut events = vec![Event::ValidatorSlashed {
            validator: ev.validator,
            height,
            amount,
            to_treasury,
            burned,
        }];
        if pooled > 0 {
            events.push(Event::DelegationSlashed {
                provider: ev.validator,
                amount: pooled,
            });
        }
        // It also leaves the set (unless it is the last one): its votes no longer count.
        if self.validators.set.validators.len() > 1 {
            self.validators
                .set
                .validators
                .retain(|v| v.account != ev.validator);
            events.push(Event::ValidatorSetChanged {
                change: ValidatorChange::Remove(ev.validator),
                validators: self.validators.set.validators.len() as u32,
            });
        }
        Ok(events)
    }

    /// Declares `ev.provider` lost if validators holding more than half of the voting power
    /// attest its silence: attestations by current members, each counted once, about this
    /// provider, within [`SILENCE_MAX_SKEW_MS`] of the entry's time. Otherwise refused (and not
    /// logged).
    pub(crate) fn apply_lost(&mut self, ev: &Lost, now: Time) -> Result<Vec<Event>, Rejection> {
        let set = &self.validators.set;
        let mut signers: Vec<AccountId> = Vec::new();
        for a in &ev.attestations {
            if a.body.provider != ev.provider {
                return Err(Rejection::NotLost(format!(
                    "an attestation by {} is about another provider",
                    a.signer
                )));
            }
            if set.get(&a.signer).is_none() {
                return Err(Rejection::NotLost(format!(
                    "{} is not a validator",
                    a.signer
                )));
            }
            if signers.contains(&a.signer) {
                return Err(Rejection::NotLost(format!("{} attests twice", a.signer)));
            }
            if a.body.at.abs_diff(now) > SILENCE_MAX_SKEW_MS {
                return Err(Rejection::NotLost(format!(
                    "{}'s attestation is {} ms from the entry's time (at most {SILENCE_MAX_SKEW_MS})",
                    a.signer,
                    a.body.at.abs_diff(now)
                )));
            }
            signers.push(a.signer);
        }
        if !set.is_quorum(signers.iter()) {
            return Err(Rejection::NotLost(
                "validators holding a majority of the voting power must attest the silence".into(),
            ));
        }
        self.provider_gone(ev.provider, crate::state::ProviderStatus::Lost, now)
    }

    /// `who`'s vote for `change`. The change is made as soon as the votes of current members
    /// hold more than half of the voting power; until then it waits in
    /// [`Validators::pending`]. A vote is checked against the set as it is now.
    pub(crate) fn vote_validator(
        &mut self,
        who: AccountId,
        change: &ValidatorChange,
        now: Time,
    ) -> Result<Vec<Event>, Rejection> {
        let set = &self.validators.set;
        if set.get(&who).is_none() {
            return Err(Rejection::NotAValidator(who));
        }
        self.check_validator_change(change)
            .map_err(Rejection::InvalidValidatorChange)?;
        let mut votes = self
            .validators
            .pending
            .iter()
            .find(|(c, _)| c == change)
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        if votes.contains(&who) {
            return Err(Rejection::AlreadyVoted(who));
        }
        votes.push(who);
        let members: Vec<&AccountId> = votes.iter().filter(|v| set.get(v).is_some()).collect();
        let power: u64 = members
            .iter()
            .filter_map(|v| set.get(v).map(|(_, m)| m.power))
            .fold(0u64, u64::saturating_add);
        let total = set.total_power();
        let approved = set.is_quorum(members.iter().copied());
        if approved
            && let ValidatorChange::Add(v) = change
            && self.validator_stake(&v.account) < self.ledger.min_stake
        {
            return Err(Rejection::InsufficientStake {
                bonded: self.validator_stake(&v.account),
                need: self.ledger.min_stake,
            });
        }
        // Rules 27: the fees collected so far are the set's before the change (the payout moves
        // what the treasury holds, so it fails only on an overflow no supply can reach).
        let mut events = if approved {
            self.pay_validators(now, true)?
        } else {
            Vec::new()
        };
        events.push(Event::ValidatorVoted {
            validator: who,
            change: change.clone(),
            power,
            total,
        });
        self.validators.pending.retain(|(c, _)| c != change);
        if approved {
            match change {
                ValidatorChange::Add(v) => self.validators.set.validators.push(v.clone()),
                ValidatorChange::Remove(account) => {
                    self.validators
                        .set
                        .validators
                        .retain(|m| m.account != *account);
                    // Its votes for other changes no longer count (they are recounted against
                    // the set when the next vote comes).
                }
            }
            events.push(Event::ValidatorSetChanged {
                change: change.clone(),
                validators: self.validators.set.validators.len() as u32,
            });
        } else {
            self.validators.pending.push((change.clone(), votes));
        }
        Ok(events)
    }

    /// Whether `change` could be made to the validator set now (by the set's votes or, rules
    /// 26, a passed proposal).
    pub(crate) fn check_validator_change(&self, change: &ValidatorChange) -> Result<(), String> {
        let set = &self.validators.set;
        match change {
            ValidatorChange::Add(v) => {
                if set.get(&v.account).is_some() {
                    return Err(format!("{} is already a validator", v.account));
                }
                if v.stake != 0 {
                    return Err(
                        "a validator added later bonds its own stake: stake must be 0".into(),
                    );
                }
                let mut grown = set.clone();
                grown.validators.push(v.clone());
                grown.validate()?;
                if self.validators.equivocated.contains_key(&v.account) {
                    return Err(format!("{} was slashed for equivocation", v.account));
                }
            }
            ValidatorChange::Remove(account) => {
                if set.get(account).is_none() {
                    return Err(format!("{account} is not a validator"));
                }
                if set.validators.len() == 1 {
                    return Err("the last validator cannot leave".into());
                }
                // Rules 4: the block that removes it is certified by the set before it, and
                // the removed validator no longer signs: the others must hold a majority.
                let total = set.total_power();
                let leaving = set.get(account).map_or(0, |(_, v)| v.power);
                let left = total.saturating_sub(leaving);
                if self.rules >= 4 && u128::from(left) * 2 <= u128::from(total) {
                    return Err(format!(
                        "removing {account} would leave the others {left} of {total} voting \
                         power, and the block that removes it could not be certified (a \
                         majority of the set before it must sign it)"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The stake that lets `who` join the validator set: its own bonded stake, and under rules
    /// 27 its delegators' too.
    pub(crate) fn validator_stake(&self, who: &AccountId) -> Amount {
        if self.rules >= 27 {
            self.backing(who)
        } else {
            self.bonded(who)
        }
    }

    /// Bonded plus unbonding stake of `who`.
    pub(crate) fn stake_of(&self, who: &AccountId) -> Result<Amount, Rejection> {
        let Some(account) = self.accounts.get(who) else {
            return Ok(0);
        };
        account
            .unbonding
            .iter()
            .try_fold(account.bonded, |s, u| s.checked_add(u.amount))
            .ok_or_else(|| Rejection::TooLarge("stake would overflow".into()))
    }

    /// Removes up to `amount` of `who`'s stake: bonded first, then the newest unbonding entries.
    pub(crate) fn take_stake(&mut self, who: AccountId, amount: Amount) {
        let entry = self.accounts.entry(who).or_default();
        let from_bonded = amount.min(entry.bonded);
        entry.bonded = entry.bonded.saturating_sub(from_bonded);
        let mut left = amount.saturating_sub(from_bonded);
        for u in entry.unbonding.iter_mut().rev() {
            let take = left.min(u.amount);
            u.amount = u.amount.saturating_sub(take);
            left = left.saturating_sub(take);
        }
        entry.unbonding.retain(|u| u.amount > 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::Validator;
    use crate::ledger::{Genesis, tokens};
    use crate::types::Hash;
    use crate::{Entry, Input};

    fn id(n: u8) -> AccountId {
        AccountId([n; 32])
    }

    fn genesis() -> Genesis {
        let mut g = Genesis::dev(id(9));
        g.validators = Validators::new(ValidatorSet {
            validators: (1..=3)
                .map(|n| Validator {
                    account: id(n),
                    power: 1,
                    address: format!("http://127.0.0.1:{}", 7000 + u16::from(n)),
                    stake: tokens(1_000),
                })
                .collect(),
        });
        // (The fee per action is the ledger tests' subject.)
        g.action_fee = 0;
        g
    }

    fn header(height: u64, time: u64) -> BlockHeader {
        BlockHeader {
            height,
            prev_hash: Hash([1; 32]),
            time,
            first_seq: 1,
            last_seq: 1,
            commands_root: Hash([2; 32]),
            state_hash: Hash([3; 32]),
            validator: id(1),
        }
    }

    fn evidence(validator: AccountId, a: BlockHeader, b: BlockHeader) -> Input {
        Input::Evidence(Box::new(Equivocation {
            validator,
            first: SignedHeader {
                header: a,
                signature: Sig([0; 64]),
            },
            second: SignedHeader {
                header: b,
                signature: Sig([0; 64]),
            },
        }))
    }

    fn apply(state: &mut State, input: Input) -> Result<Vec<Event>, Rejection> {
        state.apply(&Entry { time: 5, input })
    }

    #[test]
    fn the_hash_leaves_out_only_an_empty_validator_set_on_the_first_rules() {
        // Without validators, on the first rules: the hash is over the encoding minus the empty
        // validators' and the rules' bytes (what the state encoded to before either existed).
        let plain = State::from_genesis(&Genesis {
            rules: crate::FIRST_RULES,
            action_fee: 0,
            storage: None,
            ..Genesis::dev(id(9))
        })
        .unwrap();
        // (The audits of rules 5, the fee per action of rules 8, the storage of rules 10, the
        // answers of rules 11, the files of rules 12, the sealings of rules 13, the reopened
        // results of rules 16, the disputes of rules 18 and the corrections of rules 19 trail
        // everything, and are hashed only under their rules.)
        let mut audits = postcard::to_stdvec(&crate::Audits::default()).unwrap();
        audits.extend(postcard::to_stdvec(&0u128).unwrap());
        audits.extend(postcard::to_stdvec(&crate::Storage::default()).unwrap());
        audits.extend(postcard::to_stdvec(&crate::Options::default()).unwrap());
        audits.extend(postcard::to_stdvec(&crate::Files::default()).unwrap());
        audits.extend(postcard::to_stdvec(&crate::Private::default()).unwrap());
        audits.extend(postcard::to_stdvec(&crate::Reopened::default()).unwrap());
        audits.extend(
            postcard::to_stdvec(&std::collections::BTreeSet::<crate::TaskId>::new()).unwrap(),
        );
        audits.extend(
            postcard::to_stdvec(&std::collections::BTreeMap::<crate::JobId, u32>::new()).unwrap(),
        );
        audits.extend(postcard::to_stdvec(&crate::GpuJobs::default()).unwrap());
        audits.extend(postcard::to_stdvec(&crate::energy::Energy::default()).unwrap());
        audits.extend(postcard::to_stdvec(&crate::delegation::Delegations::default()).unwrap());
        audits.extend(postcard::to_stdvec(&crate::gov::Governance::default()).unwrap());
        audits.extend(postcard::to_stdvec(&crate::market::Market::default()).unwrap());
        audits.extend(postcard::to_stdvec(&crate::reserve::Reservations::default()).unwrap());
        audits.extend(postcard::to_stdvec(&crate::gov::Schedule::default()).unwrap());
        audits.extend(postcard::to_stdvec(&crate::delegation::Staking::default()).unwrap());
        audits.extend(postcard::to_stdvec(&crate::gpu_class::GpuClasses::default()).unwrap());
        audits.extend(postcard::to_stdvec(&crate::tolerance::Tolerances::default()).unwrap());
        let full = postcard::to_stdvec(&plain).unwrap();
        let mut tail = postcard::to_stdvec(&Validators::default()).unwrap();
        tail.extend(postcard::to_stdvec(&crate::FIRST_RULES).unwrap());
        tail.extend(&audits);
        assert!(full.ends_with(&tail));
        assert_eq!(plain.hash(), Hash::of(&full[..full.len() - tail.len()]));
        // With validators, or on later rules: over the whole encoding.
        let with = State::from_genesis(&Genesis {
            rules: crate::FIRST_RULES,
            storage: None,
            ..genesis()
        })
        .unwrap();
        let rules = postcard::to_stdvec(&crate::FIRST_RULES).unwrap();
        let encoded = postcard::to_stdvec(&with).unwrap();
        assert_eq!(
            with.hash(),
            Hash::of(&encoded[..encoded.len() - rules.len() - audits.len()])
        );
        assert_ne!(with.hash(), plain.hash());
        let later = State::from_genesis(&Genesis {
            rules: 3,
            action_fee: 0,
            storage: None,
            ..Genesis::dev(id(9))
        })
        .unwrap();
        let encoded = postcard::to_stdvec(&later).unwrap();
        assert_eq!(
            later.hash(),
            Hash::of(&encoded[..encoded.len() - audits.len()])
        );
        assert_ne!(later.hash(), plain.hash());
    }

    /// Rules 4: the state hash is the hash of two parts, the validators field's and the rest's
    /// (the encoding without the validators field), so a set is proved by its hash alone.
    #[test]
    fn under_rules_4_the_state_hash_commits_to_the_validators_apart() {
        let state = State::from_genesis(&genesis()).unwrap();
        assert_eq!(state.rules, crate::RULES);
        let (validators, rest) = state.hash_parts().unwrap();
        assert_eq!(validators, state.validators.hash());
        let encoded = postcard::to_stdvec(&state).unwrap();
        let field = postcard::to_stdvec(&state.validators).unwrap();
        let rules = postcard::to_stdvec(&state.rules).unwrap();
        let mut audits = postcard::to_stdvec(&state.audits).unwrap();
        audits.extend(postcard::to_stdvec(&state.action_fee).unwrap());
        audits.extend(postcard::to_stdvec(&state.storage).unwrap());
        audits.extend(postcard::to_stdvec(&state.options).unwrap());
        audits.extend(postcard::to_stdvec(&state.files).unwrap());
        audits.extend(postcard::to_stdvec(&state.private).unwrap());
        audits.extend(postcard::to_stdvec(&state.reopened).unwrap());
        audits.extend(postcard::to_stdvec(&state.disputes).unwrap());
        audits.extend(postcard::to_stdvec(&state.corrected).unwrap());
        audits.extend(postcard::to_stdvec(&state.gpu).unwrap());
        audits.extend(postcard::to_stdvec(&state.energy).unwrap());
        audits.extend(postcard::to_stdvec(&state.delegation).unwrap());
        audits.extend(postcard::to_stdvec(&state.governance).unwrap());
        audits.extend(postcard::to_stdvec(&state.market).unwrap());
        audits.extend(postcard::to_stdvec(&state.reservations).unwrap());
        audits.extend(postcard::to_stdvec(&state.gov_schedule).unwrap());
        audits.extend(postcard::to_stdvec(&state.staking).unwrap());
        audits.extend(postcard::to_stdvec(&state.gpu_classes).unwrap());
        audits.extend(postcard::to_stdvec(&state.tolerances).unwrap());
        let at = encoded.len() - audits.len() - rules.len() - field.len();
        assert_eq!(&encoded[at..at + field.len()], &field[..]);
        let mut without = encoded[..at].to_vec();
        without.extend(&rules);
        without.extend(&audits);
        assert_eq!(rest, Hash::of(&without));
        assert_eq!(state.hash(), State::hash_of_parts(&validators, &rest));
        // Another set changes the first part only; anything else, the second only.
        let mut other_set = state.clone();
        other_set.validators.set.validators.pop();
        let (v2, r2) = other_set.hash_parts().unwrap();
        assert_ne!(v2, validators);
        assert_eq!(r2, rest);
        let mut later = state.clone();
        later.now += 1;
        let (v3, r3) = later.hash_parts().unwrap();
        assert_eq!(v3, validators);
        assert_ne!(r3, rest);
        // Older rules: one part.
        let older = State::from_genesis(&Genesis {
            rules: 3,
            storage: None,
            ..genesis()
        })
        .unwrap();
        assert!(older.hash_parts().is_none());
    }

    #[test]
    fn validator_stake_is_bonded_at_genesis_and_counted_in_the_supply() {
        let state = State::from_genesis(&genesis()).unwrap();
        assert_eq!(state.bonded(&id(2)), tokens(1_000));
        assert_eq!(state.check_supply().unwrap(), tokens(3_000));
    }

    #[test]
    fn equivocation_slashes_once_and_conserves_the_supply() {
        let mut state = State::from_genesis(&genesis()).unwrap();
        let events = apply(&mut state, evidence(id(2), header(4, 10), header(4, 11))).unwrap();
        // dev: treasury_bps = 2500 of the whole stake; the rest burned.
        assert_eq!(
            events,
            vec![
                Event::ValidatorSlashed {
                    validator: id(2),
                    height: 4,
                    amount: tokens(1_000),
                    to_treasury: tokens(250),
                    burned: tokens(750),
                },
                Event::ValidatorSetChanged {
                    change: ValidatorChange::Remove(id(2)),
                    validators: 2,
                },
            ]
        );
        assert!(state.validators.set.get(&id(2)).is_none());
        assert_eq!(state.bonded(&id(2)), 0);
        assert_eq!(state.balance(&id(9)), tokens(250));
        assert_eq!(state.check_supply().unwrap(), tokens(2_250));
        let before = state.hash();
        // Later evidence, at this height or another, is refused; another validator's is not.
        for h in [4, 5] {
            assert_eq!(
                apply(&mut state, evidence(id(2), header(h, 12), header(h, 13))),
                Err(Rejection::AlreadyPunished {
                    validator: id(2),
                    height: 4
                })
            );
        }
        assert_eq!(state.hash(), before);
        assert!(apply(&mut state, evidence(id(3), header(5, 12), header(5, 13))).is_ok());
        assert_eq!(state.check_supply().unwrap(), tokens(1_500));
    }

    #[test]
    fn what_is_not_equivocation_is_refused_and_changes_nothing() {
        let mut state = State::from_genesis(&genesis()).unwrap();
        let before = state.hash();
        for (input, want) in [
            (
                evidence(id(2), header(4, 10), header(4, 10)),
                "the two headers are the same block",
            ),
            (
                evidence(id(2), header(4, 10), header(5, 10)),
                "different heights",
            ),
            (
                evidence(id(7), header(4, 10), header(4, 11)),
                "not a validator",
            ),
        ] {
            let err = apply(&mut state, input).unwrap_err();
            assert!(err.to_string().contains(want), "{err}");
            assert_eq!(state.hash(), before);
        }
        // A network without validators has none to slash.
        let mut plain = State::from_genesis(&Genesis::dev(id(9))).unwrap();
        assert_eq!(
            apply(&mut plain, evidence(id(1), header(4, 10), header(4, 11))),
            Err(Rejection::NotAValidator(id(1)))
        );
    }

    fn vote(state: &mut State, who: u8, change: &ValidatorChange) -> Result<Vec<Event>, Rejection> {
        let nonce = state.nonce(&id(who)) + 1;
        apply(
            state,
            Input::Signed(crate::Signed {
                signer: id(who),
                nonce,
                body: crate::Action::ValidatorVote(change.clone()),
                signature: Sig([0; 64]),
            }),
        )
    }

    fn newcomer(n: u8) -> Validator {
        Validator {
            account: id(n),
            power: 1,
            address: format!("http://127.0.0.1:{}", 8000 + u16::from(n)),
            stake: 0,
        }
    }

    /// Rules 4: a removal must leave the others a majority of the power, or the block that
    /// removes it (certified by the set before it, which the removed one no longer signs) could
    /// never be certified. Older rules allowed it.
    #[test]
    fn a_removal_that_would_leave_no_majority_to_certify_its_block_is_refused() {
        let mut g = genesis();
        g.validators.set.validators.truncate(2);
        g.validators.set.validators[0].power = 1;
        g.validators.set.validators[1].power = 1;
        let remove = ValidatorChange::Remove(id(2));
        let mut state = State::from_genesis(&g).unwrap();
        let before = state.hash();
        match vote(&mut state, 1, &remove) {
            Err(Rejection::InvalidValidatorChange(why)) => {
                assert!(why.contains("1 of 2") && why.contains("certified"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(state.hash(), before);
        // Three of equal power: one may leave (2 of 3 remain).
        let mut three = State::from_genesis(&genesis()).unwrap();
        vote(&mut three, 1, &ValidatorChange::Remove(id(3))).unwrap();
        // Under rules 3 the two-to-one removal went through.
        let mut older = State::from_genesis(&Genesis {
            rules: 3,
            storage: None,
            ..g
        })
        .unwrap();
        vote(&mut older, 1, &remove).unwrap();
        let events = vote(&mut older, 2, &remove).unwrap();
        assert!(matches!(
            events[..],
            [_, Event::ValidatorSetChanged { validators: 1, .. }]
        ));
    }

    #[test]
    fn a_validator_joins_and_leaves_by_a_majority_of_votes() {
        let mut g = genesis();
        g.allocations.insert(id(4), tokens(500));
        let mut state = State::from_genesis(&g).unwrap();
        let add = ValidatorChange::Add(newcomer(4));
        // One vote of three: pending.
        let events = vote(&mut state, 1, &add).unwrap();
        assert!(matches!(
            events[..],
            [Event::ValidatorVoted {
                power: 1,
                total: 3,
                ..
            }]
        ));
        assert_eq!(state.validators.pending.len(), 1);
        assert_eq!(
            vote(&mut state, 1, &add),
            Err(Rejection::AlreadyVoted(id(1)))
        );
        // Not a member: no vote.
        assert_eq!(
            vote(&mut state, 4, &add),
            Err(Rejection::NotAValidator(id(4)))
        );
        // The second vote would approve it, but the newcomer has no stake bonded yet.
        let before = state.hash();
        assert!(matches!(
            vote(&mut state, 2, &add),
            Err(Rejection::InsufficientStake { .. })
        ));
        assert_eq!(state.hash(), before);
        let nonce = state.nonce(&id(4)) + 1;
        apply(
            &mut state,
            Input::Signed(crate::Signed {
                signer: id(4),
                nonce,
                body: crate::Action::Stake {
                    amount: tokens(100),
                },
                signature: Sig([0; 64]),
            }),
        )
        .unwrap();
        let events = vote(&mut state, 2, &add).unwrap();
        assert!(matches!(
            events[..],
            [
                Event::ValidatorVoted { .. },
                Event::ValidatorSetChanged { validators: 4, .. }
            ]
        ));
        assert!(state.validators.pending.is_empty());
        assert!(state.validators.set.get(&id(4)).is_some());
        // Removing one of four needs three votes (more than half of 4); the newcomer votes now.
        let remove = ValidatorChange::Remove(id(3));
        vote(&mut state, 4, &remove).unwrap();
        vote(&mut state, 1, &remove).unwrap();
        assert!(state.validators.set.get(&id(3)).is_some());
        let events = vote(&mut state, 2, &remove).unwrap();
        assert!(matches!(
            events[..],
            [
                Event::ValidatorVoted {
                    power: 3,
                    total: 4,
                    ..
                },
                Event::ValidatorSetChanged { validators: 3, .. }
            ]
        ));
        assert!(state.validators.set.get(&id(3)).is_none());
        // The one removed votes no more.
        assert_eq!(
            vote(&mut state, 3, &ValidatorChange::Remove(id(1))),
            Err(Rejection::NotAValidator(id(3)))
        );
    }

    #[test]
    fn invalid_changes_to_the_set_are_refused() {
        let mut state = State::from_genesis(&genesis()).unwrap();
        let before = state.hash();
        let mut taken = newcomer(5);
        taken.address = "http://127.0.0.1:7001".into();
        let mut staked = newcomer(5);
        staked.stake = 1;
        let mut powerless = newcomer(5);
        powerless.power = 0;
        for (change, want) in [
            (ValidatorChange::Add(newcomer(2)), "already a validator"),
            (ValidatorChange::Add(taken), "listed twice"),
            (ValidatorChange::Add(staked), "stake must be 0"),
            (ValidatorChange::Add(powerless), "voting power 0"),
            (ValidatorChange::Remove(id(9)), "is not a validator"),
        ] {
            let err = vote(&mut state, 1, &change).unwrap_err();
            assert!(err.to_string().contains(want), "{err}");
            assert_eq!(state.hash(), before);
        }
    }
}
