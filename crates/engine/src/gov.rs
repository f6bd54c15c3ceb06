//! On-chain governance (rules 25): stake-weighted proposals that change the network's parameters
//! or spend from the treasury, Cosmos-style, and (rules 26) change the validator set.
//!
//! Anyone may propose (`Action::Propose`) with a deposit of at least the governance parameters'
//! `min_deposit`, held by the proposal. During the voting period any account with voting power
//! votes (`Action::Vote`: yes, no, abstain, or no with veto), and may change its vote. Voting
//! power is bonded stake: an account's own, plus — for a provider — the tokens its delegators
//! have in its pool, except those of delegators who voted themselves, whose delegations count
//! for their own vote instead. Power is counted when the voting period ends, from the stake
//! then.
//!
//! The tally happens at the first entry applied at or after the period's end (so no one decides
//! when: every validator tallies at the same entry), after that entry's own effects:
//! - fewer than `quorum_bps` of all voting power voted: rejected, deposit returned;
//! - more than `veto_bps` of the votes cast are vetoes: rejected, deposit **burned** (the one way
//!   governance changes the supply);
//! - yes is more than `threshold_bps` of yes + no + veto: **passed**, deposit returned, and the
//!   changes take effect at once, at that entry, in order (a treasury spend the treasury cannot
//!   pay fails the proposal's execution and changes nothing);
//! - otherwise rejected, deposit returned.
//!
//! A change is checked when it is proposed (the parameters it gives must be valid, as a genesis
//! is checked) and again when it passes (against the parameters then); a change that no longer
//! fits fails the execution as a whole. Jobs already running pay the fee in force when each
//! result is paid; stake and slash rules apply from the next stake, unstake or slash.

use crate::command::{Event, Rejection};
use crate::ledger::{BPS, Tokens};
use crate::state::State;
use crate::types::{AccountId, Amount, Time};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The most changes one proposal carries.
pub const MAX_CHANGES: usize = 16;
/// The longest title.
pub const MAX_TITLE: usize = 200;
/// The most proposals open at once (each is state every validator keeps and tallies).
pub const MAX_OPEN: usize = 64;
/// Rules 26: the longest a passed proposal's changes may wait after its vote ends.
pub const MAX_DELAY_MS: u64 = 365 * 86_400_000;

/// How proposals are decided; themselves a parameter proposals may change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GovParams {
    /// The least deposit a proposal must hold.
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub min_deposit: Amount,
    /// How long a proposal is open for votes.
    pub voting_period_ms: u64,
    /// Of all voting power, the share that must vote.
    pub quorum_bps: u32,
    /// Of yes + no + veto, the share yes must exceed.
    pub threshold_bps: u32,
    /// Of the votes cast, the share of vetoes that rejects and burns the deposit.
    pub veto_bps: u32,
}

impl GovParams {
    /// The parameters a network starts with: a deposit of the minimum stake, voting for as long
    /// as unbonding takes (at least a second), and Cosmos's quorum (33.4%), threshold (50%) and
    /// veto (33.4%).
    pub fn for_ledger(ledger: &crate::LedgerParams) -> GovParams {
        GovParams {
            min_deposit: ledger.min_stake.max(1),
            voting_period_ms: ledger.unbonding_delay_ms.clamp(1_000, 365 * 86_400_000),
            quorum_bps: 3_340,
            threshold_bps: 5_000,
            veto_bps: 3_340,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.min_deposit == 0 {
            return Err("min_deposit must be positive".into());
        }
        if !(1_000..=365 * 86_400_000).contains(&self.voting_period_ms) {
            return Err("voting_period_ms must be from a second to a year".into());
        }
        for (name, bps) in [
            ("quorum_bps", self.quorum_bps),
            ("threshold_bps", self.threshold_bps),
            ("veto_bps", self.veto_bps),
        ] {
            if bps == 0 || bps > BPS {
                return Err(format!("{name} {bps} must be from 1 to {BPS}"));
            }
        }
        Ok(())
    }
}

/// One change a proposal makes when it passes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
// Externally tagged: the log's encoding (postcard) cannot read internally tagged enums.
#[serde(rename_all = "snake_case")]
pub enum ParamChange {
    /// The protocol fee, in basis points of each task payment.
    FeeBps { bps: u32 },
    /// The bonded stake a provider needs.
    MinStake {
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
    },
    /// What every logged action costs its signer.
    ActionFee {
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
    },
    /// How long unstaked and undelegated tokens stay slashable.
    UnbondingDelay { ms: u64 },
    /// How a slash is sized and split.
    Slash(crate::ledger::SlashParams),
    /// What the faucet gives (development networks only: a network without one gets none).
    FaucetAmount {
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
    },
    /// The verification rules (trust, spot checks, quorums).
    Verification(crate::verify::VerifyParams),
    /// How proposals are decided.
    Governance(GovParams),
    /// Pays `amount` from the treasury to `to`.
    TreasurySpend {
        to: AccountId,
        #[serde(with = "crate::types::amount")]
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        amount: Amount,
    },
    /// Rules 26: adds a validator to the set or removes one, as a majority of the set's own
    /// votes would (`Action::ValidatorVote`), with the same checks. A passed proposal queues
    /// it; the leader applies it at the next block (one change of the set per block), checked
    /// again then — an added validator must have the minimum stake bonded by that time.
    Validator(crate::validators::ValidatorChange),
    /// Rules 27: the staking rules (minimum delegation, commission bounds, the validators' share
    /// of fees and how often it is paid). Pools above a lowered maximum commission are cut to it.
    Staking(crate::delegation::StakingParams),
    /// Rules 27: the scheduler's tunables (the local queue per slot, prefetch, holding back for
    /// a better-suited provider, urgency, the timeout grace), within
    /// [`crate::ScheduleParams::validate`]'s bounds.
    Scheduling(crate::schedule::ScheduleParams),
}

/// A vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum VoteOption {
    Yes,
    No,
    Abstain,
    /// No, and the proposal should not have been made: enough of these burn its deposit.
    NoWithVeto,
}

/// Where a proposal stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    Voting,
    /// Passed and its changes took effect.
    Passed,
    /// Passed, but a change could not be made then (nothing changed).
    Failed(String),
    Rejected(String),
    /// Rejected by vetoes; its deposit was burned.
    Vetoed,
    /// Rules 26: passed (its deposit returned); its changes take effect at the first entry at
    /// or after `at`, as its proposer stated, and it is then `Passed` or `Failed`.
    Scheduled {
        at: Time,
    },
}

/// Voting power per option, in base units of stake.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tally {
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub yes: Amount,
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub no: Amount,
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub abstain: Amount,
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub veto: Amount,
    /// All voting power there was.
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub total: Amount,
}

/// A proposal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Proposal {
    pub id: u64,
    pub proposer: AccountId,
    pub title: String,
    pub changes: Vec<ParamChange>,
    /// Held by the proposal until it is decided.
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub deposit: Amount,
    pub submitted_at: Time,
    pub voting_end: Time,
    pub votes: BTreeMap<AccountId, VoteOption>,
    pub status: ProposalStatus,
    /// Counted when voting ended.
    pub tally: Option<Tally>,
    /// When it was decided.
    pub decided_at: Option<Time>,
}

/// Rules 26: what passed proposals still have to do.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Schedule {
    /// When proposals made with a delay take effect (proposal → time), from the proposal until
    /// its changes are made or it is rejected.
    pub effective_at: BTreeMap<u64, Time>,
    /// Changes of the validator set that passed proposals made, in order: the leader applies
    /// them one per block (`LeaderCommand::ChangeValidators`), as the set's own votes are —
    /// each block is certified by the set before it, so the set may change only once between
    /// blocks. Each is checked again when applied.
    pub validator_changes: Vec<crate::validators::ValidatorChange>,
}

/// Governance's part of the state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Governance {
    /// `None`: [`GovParams::for_ledger`] of the network's ledger parameters.
    pub params: Option<GovParams>,
    pub proposals: BTreeMap<u64, Proposal>,
    pub next_id: u64,
}

fn overflow(what: &str) -> Rejection {
    Rejection::TooLarge(format!("{what} would overflow"))
}

impl State {
    /// The governance parameters in force.
    pub fn gov_params(&self) -> GovParams {
        self.governance
            .params
            .clone()
            .unwrap_or_else(|| GovParams::for_ledger(&self.ledger))
    }

    /// Deposits held by proposals still voting (the supply equation's governance term).
    pub(crate) fn deposits_held(&self) -> Option<Amount> {
        self.governance
            .proposals
            .values()
            .filter(|p| p.status == ProposalStatus::Voting)
            .try_fold(0u128, |s, p| s.checked_add(p.deposit))
    }

    /// Whether `change` would leave valid parameters, applied to the ones in force now.
    fn check_change(&self, change: &ParamChange) -> Result<(), String> {
        let mut ledger = self.ledger.clone();
        match change {
            ParamChange::FeeBps { bps } => ledger.fee_bps = *bps,
            ParamChange::MinStake { .. } | ParamChange::ActionFee { .. } => {}
            ParamChange::UnbondingDelay { ms } => {
                if *ms > 365 * 86_400_000 {
                    return Err("an unbonding delay is at most a year".into());
                }
            }
            ParamChange::Slash(slash) => ledger.slash = slash.clone(),
            ParamChange::FaucetAmount { amount } => match &mut ledger.faucet {
                Some(f) => f.amount = *amount,
                None => return Err("this network has no faucet".into()),
            },
            ParamChange::Verification(v) => return v.validate(),
            ParamChange::Governance(g) => return g.validate(),
            ParamChange::Staking(staking) => {
                if self.rules < 27 {
                    return Err(format!(
                        "the staking rules are governance parameters under rules 27; this \
                         network runs rules {}",
                        self.rules
                    ));
                }
                return staking.validate();
            }
            ParamChange::Scheduling(schedule) => {
                if self.rules < 27 {
                    return Err(format!(
                        "the scheduler's tunables are governance parameters under rules 27; \
                         this network runs rules {}",
                        self.rules
                    ));
                }
                return schedule.validate();
            }
            ParamChange::TreasurySpend { amount, .. } => {
                if *amount == 0 {
                    return Err("a treasury spend of nothing".into());
                }
            }
            ParamChange::Validator(change) => {
                if self.rules < 26 {
                    return Err(format!(
                        "the validator set changes by governance under rules 26; this network \
                         runs rules {}",
                        self.rules
                    ));
                }
                if self.validators.set.validators.is_empty() {
                    return Err("this network has no validator set (one coordinator)".into());
                }
                return self.check_validator_change(change);
            }
        }
        // The ledger's rules, as a genesis is checked.
        let genesis = crate::Genesis {
            params: ledger,
            allocations: Default::default(),
            engine: self.config.clone(),
            verification: self.verify.clone(),
            validators: Default::default(),
            rules: self.rules,
            action_fee: self.action_fee,
            storage: None,
            carbon: None,
            staking: None,
        };
        genesis.validate()
    }

    /// `Action::Propose`.
    pub(crate) fn propose(
        &mut self,
        who: AccountId,
        title: &str,
        changes: &[ParamChange],
        deposit: Amount,
        delay_ms: Option<u64>,
        now: Time,
    ) -> Result<Vec<Event>, Rejection> {
        self.needs_governance()?;
        let invalid = |why: String| Err(Rejection::InvalidProposal(why));
        if delay_ms.is_some() && self.rules < 26 {
            return Err(Rejection::NeedsRules {
                what: "proposals that take effect after a delay".into(),
                needs: 26,
                runs: self.rules,
            });
        }
        if delay_ms.is_some_and(|d| d > MAX_DELAY_MS) {
            return invalid("a delay of at most a year after the vote".into());
        }
        if title.trim().is_empty() || title.len() > MAX_TITLE {
            return invalid(format!("a title of 1 to {MAX_TITLE} bytes"));
        }
        if changes.is_empty() || changes.len() > MAX_CHANGES {
            return invalid(format!("1 to {MAX_CHANGES} changes"));
        }
        for (i, change) in changes.iter().enumerate() {
            if let Err(why) = self.check_change(change) {
                return invalid(format!("change {}: {why}", i.saturating_add(1)));
            }
        }
        let params = self.gov_params();
        if deposit < params.min_deposit {
            return invalid(format!(
                "a deposit of at least {}",
                Tokens(params.min_deposit)
            ));
        }
        let open = self
            .governance
            .proposals
            .values()
            .filter(|p| p.status == ProposalStatus::Voting)
            .count();
        if open >= MAX_OPEN {
            return invalid(format!("{MAX_OPEN} proposals are open already"));
        }
        self.require_funds(&who, deposit)?;
        let voting_end = now
            .checked_add(params.voting_period_ms)
            .ok_or_else(|| overflow("the voting period"))?;
        let id = self
            .governance
            .next_id
            .checked_add(1)
            .ok_or_else(|| overflow("proposal ids"))?;
        let effective_at = match delay_ms {
            Some(d) => Some(
                voting_end
                    .checked_add(d)
                    .ok_or_else(|| overflow("the delay"))?,
            ),
            None => None,
        };
        self.debit(&who, deposit)?;
        self.governance.next_id = id;
        if let Some(at) = effective_at {
            self.gov_schedule.effective_at.insert(id, at);
        }
        self.governance.proposals.insert(
            id,
            Proposal {
                id,
                proposer: who,
                title: title.to_string(),
                changes: changes.to_vec(),
                deposit,
                submitted_at: now,
                voting_end,
                votes: BTreeMap::new(),
                status: ProposalStatus::Voting,
                tally: None,
                decided_at: None,
            },
        );
        Ok(vec![Event::Proposed {
            proposal: id,
            proposer: who,
            deposit,
            voting_end,
        }])
    }

    /// `Action::Vote`.
    pub(crate) fn vote(
        &mut self,
        who: AccountId,
        proposal: u64,
        option: VoteOption,
        now: Time,
    ) -> Result<Vec<Event>, Rejection> {
        self.needs_governance()?;
        let Some(p) = self.governance.proposals.get(&proposal) else {
            return Err(Rejection::UnknownProposal(proposal));
        };
        if p.status != ProposalStatus::Voting || now >= p.voting_end {
            return Err(Rejection::InvalidProposal(format!(
                "proposal {proposal} is not open for votes"
            )));
        }
        if self.voting_power_base(&who) == 0 {
            return Err(Rejection::InvalidProposal(
                "no voting power: votes are weighed by bonded or delegated stake".into(),
            ));
        }
        if let Some(p) = self.governance.proposals.get_mut(&proposal) {
            p.votes.insert(who, option);
        }
        Ok(vec![Event::Voted {
            proposal,
            voter: who,
            option,
        }])
    }

    fn needs_governance(&self) -> Result<(), Rejection> {
        if self.rules < 25 {
            return Err(Rejection::NeedsRules {
                what: "governance".into(),
                needs: 25,
                runs: self.rules,
            });
        }
        Ok(())
    }

    /// What stake `who` holds in its own right: bonded, its delegations' worth, and (a
    /// provider) its pool.
    fn voting_power_base(&self, who: &AccountId) -> Amount {
        let delegated: Amount = self
            .delegations_of(who)
            .iter()
            .filter_map(|(p, d)| self.pool(p)?.value(d.shares))
            .fold(0, |s: Amount, v| s.saturating_add(v));
        self.bonded(who)
            .saturating_add(delegated)
            .saturating_add(self.delegated_to(who))
    }

    /// Counts proposal `id`'s votes by the stake there is now.
    pub fn proposal_tally(&self, id: u64) -> Option<Tally> {
        let p = self.governance.proposals.get(&id)?;
        let mut tally = Tally {
            total: self
                .accounts
                .values()
                .fold(0u128, |s, a| s.saturating_add(a.bonded))
                .saturating_add(
                    self.delegation
                        .pools
                        .values()
                        .fold(0u128, |s, pool| s.saturating_add(pool.tokens)),
                ),
            ..Tally::default()
        };
        for (voter, option) in &p.votes {
            // Its own stake, its delegations (it voted itself), and its pool but for the
            // delegators who voted themselves.
            let mut power = self.bonded(voter);
            for (provider, d) in self.delegations_of(voter) {
                let worth = self.pool(&provider).and_then(|pool| pool.value(d.shares));
                power = power.saturating_add(worth.unwrap_or(0));
            }
            if let Some(pool) = self.pool(voter) {
                let mut inherited = pool.tokens;
                for delegator in p.votes.keys() {
                    if let Some(d) = self
                        .delegation
                        .delegations
                        .get(delegator)
                        .and_then(|d| d.get(voter))
                    {
                        inherited = inherited.saturating_sub(pool.value(d.shares).unwrap_or(0));
                    }
                }
                power = power.saturating_add(inherited);
            }
            let slot = match option {
                VoteOption::Yes => &mut tally.yes,
                VoteOption::No => &mut tally.no,
                VoteOption::Abstain => &mut tally.abstain,
                VoteOption::NoWithVeto => &mut tally.veto,
            };
            *slot = slot.saturating_add(power);
        }
        Some(tally)
    }

    /// Whether a proposal's voting has ended by `now` and it is not decided yet (the leader then
    /// logs `LeaderCommand::DecideProposals` if nothing else comes).
    pub fn proposals_due(&self, now: Time) -> bool {
        self.governance
            .proposals
            .values()
            .any(|p| p.status == ProposalStatus::Voting && p.voting_end <= now)
            || self.changes_due(now).next().is_some()
    }

    /// Rules 26: passed proposals whose stated time has come by `now`.
    fn changes_due(&self, now: Time) -> impl Iterator<Item = u64> + '_ {
        self.gov_schedule
            .effective_at
            .iter()
            .filter(move |(id, at)| {
                **at <= now
                    && self
                        .governance
                        .proposals
                        .get(id)
                        .is_some_and(|p| matches!(p.status, ProposalStatus::Scheduled { .. }))
            })
            .map(|(id, _)| *id)
    }

    /// Rules 26: makes the changes of passed proposals whose stated time has come, each all or
    /// none.
    fn take_effect(&mut self, now: Time) -> Result<Vec<Event>, Rejection> {
        let due: Vec<u64> = self.changes_due(now).collect();
        let mut events = Vec::new();
        for id in due {
            self.gov_schedule.effective_at.remove(&id);
            let Some(changes) = self
                .governance
                .proposals
                .get(&id)
                .map(|p| p.changes.clone())
            else {
                continue;
            };
            let status = match self.execute(&changes) {
                Ok(mut done) => {
                    events.append(&mut done);
                    ProposalStatus::Passed
                }
                Err(why) => ProposalStatus::Failed(why),
            };
            if let Some(p) = self.governance.proposals.get_mut(&id) {
                p.status = status.clone();
            }
            events.push(Event::ProposalExecuted {
                proposal: id,
                status,
            });
        }
        Ok(events)
    }

    /// Decides every proposal whose voting ended by `now` (called after each applied input).
    pub(crate) fn decide_proposals(&mut self, now: Time) -> Result<Vec<Event>, Rejection> {
        if self.rules < 25 {
            return Ok(Vec::new());
        }
        let due: Vec<u64> = self
            .governance
            .proposals
            .values()
            .filter(|p| p.status == ProposalStatus::Voting && p.voting_end <= now)
            .map(|p| p.id)
            .collect();
        let mut events = Vec::new();
        for id in due {
            events.extend(self.decide(id, now)?);
        }
        if !self.gov_schedule.effective_at.is_empty() {
            events.extend(self.take_effect(now)?);
        }
        Ok(events)
    }

    fn decide(&mut self, id: u64, now: Time) -> Result<Vec<Event>, Rejection> {
        let Some(tally) = self.proposal_tally(id) else {
            return Ok(Vec::new());
        };
        let Some(p) = self.governance.proposals.get(&id).cloned() else {
            return Ok(Vec::new());
        };
        let params = self.gov_params();
        let voted = tally
            .yes
            .saturating_add(tally.no)
            .saturating_add(tally.abstain)
            .saturating_add(tally.veto);
        let share = |part: Amount, of: Amount, bps: u32| -> bool {
            // part / of > bps / BPS, exactly (of > 0).
            of > 0 && part.saturating_mul(Amount::from(BPS)) > of.saturating_mul(Amount::from(bps))
        };
        let quorum = tally.total > 0
            && voted.saturating_mul(Amount::from(BPS))
                >= tally.total.saturating_mul(Amount::from(params.quorum_bps));
        let (mut status, burn) = if !quorum {
            (ProposalStatus::Rejected("no quorum".into()), false)
        } else if share(tally.veto, voted, params.veto_bps) {
            (ProposalStatus::Vetoed, true)
        } else if share(
            tally.yes,
            tally
                .yes
                .saturating_add(tally.no)
                .saturating_add(tally.veto),
            params.threshold_bps,
        ) {
            (ProposalStatus::Passed, false)
        } else {
            (
                ProposalStatus::Rejected("below the threshold".into()),
                false,
            )
        };
        let mut events = Vec::new();
        if burn {
            let burned = self
                .supply
                .burned
                .checked_add(p.deposit)
                .ok_or_else(|| overflow("burn"))?;
            self.supply.burned = burned;
            events.push(Event::DepositBurned {
                proposal: id,
                amount: p.deposit,
            });
        } else {
            self.credit(&p.proposer, p.deposit)?;
            events.push(Event::DepositReturned {
                proposal: id,
                proposer: p.proposer,
                amount: p.deposit,
            });
        }
        // Rules 26: a proposal that stated a later time waits for it.
        let scheduled = self.gov_schedule.effective_at.get(&id).copied();
        match scheduled {
            Some(at) if status == ProposalStatus::Passed && at > now => {
                status = ProposalStatus::Scheduled { at };
            }
            _ => {
                self.gov_schedule.effective_at.remove(&id);
                if status == ProposalStatus::Passed {
                    match self.execute(&p.changes) {
                        Ok(mut done) => events.append(&mut done),
                        Err(why) => status = ProposalStatus::Failed(why),
                    }
                }
            }
        }
        if let Some(p) = self.governance.proposals.get_mut(&id) {
            p.status = status.clone();
            p.tally = Some(tally);
            p.decided_at = Some(now);
        }
        events.push(Event::ProposalDecided {
            proposal: id,
            status,
        });
        Ok(events)
    }

    /// Whether a passed proposal's change of the validator set waits for the leader.
    pub fn validator_change_queued(&self) -> bool {
        !self.gov_schedule.validator_changes.is_empty()
    }

    /// `LeaderCommand::ChangeValidators`: applies the first change of the validator set that
    /// passed proposals queued, or drops it if it can no longer be made (another change came
    /// first, or an added validator lacks the minimum stake).
    pub(crate) fn change_validators(&mut self, now: Time) -> Result<Vec<Event>, Rejection> {
        let Some(change) = self.gov_schedule.validator_changes.first().cloned() else {
            return Err(Rejection::InvalidValidatorChange(
                "no change of the validator set is waiting".into(),
            ));
        };
        self.gov_schedule.validator_changes.remove(0);
        let mut why = self.check_validator_change(&change).err();
        if let crate::validators::ValidatorChange::Add(v) = &change
            && self.validator_stake(&v.account) < self.ledger.min_stake
        {
            why.get_or_insert(format!(
                "{} has {} bonded, below the minimum stake {}",
                v.account,
                Tokens(self.validator_stake(&v.account)),
                Tokens(self.ledger.min_stake)
            ));
        }
        if let Some(why) = why {
            return Ok(vec![Event::ValidatorChangeDropped { change, why }]);
        }
        // Rules 27: the fees collected so far are the set's before the change.
        let mut events = self.pay_validators(now, true)?;
        let set = &mut self.validators.set.validators;
        match &change {
            crate::validators::ValidatorChange::Add(v) => set.push(v.clone()),
            crate::validators::ValidatorChange::Remove(account) => {
                set.retain(|m| m.account != *account)
            }
        }
        self.validators.pending.retain(|(c, _)| *c != change);
        let validators = u32::try_from(self.validators.set.validators.len()).unwrap_or(u32::MAX);
        events.push(Event::ValidatorSetChanged { change, validators });
        Ok(events)
    }

    /// Makes a passed proposal's changes, all or none.
    fn execute(&mut self, changes: &[ParamChange]) -> Result<Vec<Event>, String> {
        let mut next = self.clone();
        let mut events = Vec::new();
        for change in changes {
            next.check_change(change)?;
            match change {
                ParamChange::FeeBps { bps } => next.ledger.fee_bps = *bps,
                ParamChange::MinStake { amount } => next.ledger.min_stake = *amount,
                ParamChange::ActionFee { amount } => next.action_fee = *amount,
                ParamChange::UnbondingDelay { ms } => next.ledger.unbonding_delay_ms = *ms,
                ParamChange::Slash(slash) => next.ledger.slash = slash.clone(),
                ParamChange::FaucetAmount { amount } => {
                    if let Some(f) = next.ledger.faucet.as_mut() {
                        f.amount = *amount;
                    }
                }
                ParamChange::Verification(v) => next.verify = v.clone(),
                ParamChange::Governance(g) => next.governance.params = Some(g.clone()),
                ParamChange::Staking(staking) => {
                    next.staking.params = Some(staking.clone());
                    for (account, pool) in next.delegation.pools.iter_mut() {
                        if pool.commission_bps > staking.max_commission_bps {
                            pool.commission_bps = staking.max_commission_bps;
                            events.push(Event::CommissionSet {
                                provider: *account,
                                commission_bps: staking.max_commission_bps,
                            });
                        }
                    }
                }
                ParamChange::Scheduling(schedule) => next.config.schedule = schedule.clone(),
                ParamChange::TreasurySpend { to, amount } => {
                    let treasury = next.ledger.treasury;
                    next.transfer(treasury, *to, *amount)
                        .map_err(|e| format!("the treasury cannot pay: {e}"))?;
                    events.push(Event::TreasurySpent {
                        to: *to,
                        amount: *amount,
                    });
                }
                ParamChange::Validator(change) => {
                    next.gov_schedule.validator_changes.push(change.clone());
                    events.push(Event::ValidatorChangeQueued {
                        change: change.clone(),
                    });
                }
            }
        }
        *self = next;
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The log and snapshots are postcard: every governance type must read back from it.
    #[test]
    fn proposals_and_votes_read_back_from_the_logs_encoding() {
        let action = crate::Action::Propose {
            title: "t".into(),
            changes: vec![
                ParamChange::FeeBps { bps: 1 },
                ParamChange::Slash(crate::SlashParams {
                    fraction_bps: 1,
                    requester_bps: 2,
                    treasury_bps: 3,
                }),
                ParamChange::TreasurySpend {
                    to: AccountId([2; 32]),
                    amount: 5,
                },
            ],
            deposit: 7,
        };
        let bytes = postcard::to_stdvec(&action).unwrap();
        assert_eq!(
            postcard::from_bytes::<crate::Action>(&bytes).unwrap(),
            action
        );
        let mut governance = Governance::default();
        for (id, status) in [
            ProposalStatus::Voting,
            ProposalStatus::Passed,
            ProposalStatus::Failed("x".into()),
            ProposalStatus::Rejected("y".into()),
            ProposalStatus::Vetoed,
        ]
        .into_iter()
        .enumerate()
        {
            governance.proposals.insert(
                id as u64,
                Proposal {
                    id: id as u64,
                    proposer: AccountId([1; 32]),
                    title: "t".into(),
                    changes: vec![ParamChange::MinStake { amount: 1 }],
                    deposit: 1,
                    submitted_at: 0,
                    voting_end: 1,
                    votes: [(AccountId([3; 32]), VoteOption::NoWithVeto)].into(),
                    status,
                    tally: Some(Tally::default()),
                    decided_at: Some(2),
                },
            );
        }
        let bytes = postcard::to_stdvec(&governance).unwrap();
        assert_eq!(
            postcard::from_bytes::<Governance>(&bytes).unwrap(),
            governance
        );
    }

    #[test]
    fn parameters_are_checked() {
        let ok = GovParams::for_ledger(&crate::LedgerParams::dev(AccountId([1; 32])));
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(ok.min_deposit, crate::tokens(100));
        assert_eq!(ok.voting_period_ms, 60_000);
        for bad in [
            GovParams {
                min_deposit: 0,
                ..ok.clone()
            },
            GovParams {
                voting_period_ms: 10,
                ..ok.clone()
            },
            GovParams {
                quorum_bps: 0,
                ..ok.clone()
            },
            GovParams {
                veto_bps: 10_001,
                ..ok.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
