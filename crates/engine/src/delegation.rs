//! Delegated staking (rules 25): any account may back a provider with its tokens, share in what
//! the provider earns, and share in its slashes.
//!
//! Each provider that has ever been backed (or set a commission) has a [`Pool`]: the tokens
//! delegated to it, divided into shares. Delegating buys shares at the pool's rate (tokens per
//! share); a slash takes tokens from the pool and leaves the shares, so every delegator loses
//! the same fraction without a loop over delegators. Undelegating sells shares for tokens,
//! which wait out the network's unbonding delay ([`crate::LedgerParams::unbonding_delay_ms`]) and
//! stay slashable meanwhile; the leader's `ReleaseStake` then returns them with the account's
//! own unbonding stake. There is no redelegation: a delegator undelegates (and waits) and
//! delegates again.
//!
//! **Rewards** are lazy and exact (an F1-style index, as Cosmos's distribution module keeps):
//! of each payment a provider earns ([`State::pay`]), the provider keeps its commission, and the
//! rest is split between its own bonded stake and its pool in proportion; the pool's part goes
//! into the pool's `rewards` and raises its `reward_index` (rewards per share, scaled by
//! [`INDEX_SCALE`], rounded down). A delegation remembers the index when it last settled; what
//! it has earned since is `shares × (index − then) / INDEX_SCALE`, rounded down, paid to its
//! balance whenever it changes or withdraws. Rounding down everywhere means the delegations
//! never claim more than the pool holds; what rounding leaves in `rewards` when the last share
//! leaves goes to the treasury (`Event::RewardDustSwept`). No token is created or destroyed
//! here: `Σ pools' tokens + unbonding + rewards` joins the supply equation
//! ([`State::check_supply`]).
//!
//! **Commission** starts at [`DEFAULT_COMMISSION_BPS`]; a provider sets it
//! (`Action::SetCommission`) up to [`MAX_COMMISSION_BPS`]. While it has delegators, a raise is at
//! most [`COMMISSION_STEP_BPS`] and at most once per [`COMMISSION_PERIOD_MS`]; a cut takes effect
//! at once.
//!
//! **Stake that backs a provider counts as its stake**: its pool's bonded tokens count toward
//! the minimum stake it needs to register and to be given work ([`State::has_min_stake`]), so
//! delegators decide whom the network trusts with work.
//!
//! **Rules 27: validators.** A pool may back a validator as well as a provider (one pool per
//! account, whatever it does). Validators are paid [`StakingParams::validator_fee_bps`] of every
//! protocol fee and action fee the treasury collects: the fees are counted as they come
//! ([`Staking::fees_collected`]) and paid out of the treasury at the first entry at least
//! [`StakingParams::validator_payout_every_ms`] after the last payout, and before any change of
//! the set by vote or proposal, split by voting power and then, like a provider's payment,
//! between the validator's commission, its own bonded stake and its pool. An equivocation slash
//! takes the same fraction of its pool. The constants above are the rules-25 values; under rules
//! 27 they are governance parameters ([`StakingParams`], `ParamChange::Staking`).

use crate::command::{Event, Rejection};
use crate::ledger::{BPS, Tokens, Unbonding, bps_of};
use crate::state::{ProviderStatus, State};
use crate::types::{AccountId, Amount, Time};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Rewards per share are kept multiplied by this (so a pool of 10^9 tokens still counts rewards
/// of one base unit per 1,000 tokens).
pub const INDEX_SCALE: u128 = 1_000_000_000_000;
/// The least that can be delegated at once is the network's minimum stake divided by this (one
/// token on the development network; each delegation is state every validator keeps).
pub const MIN_DELEGATION_DIVISOR: Amount = 100;
/// A pool's commission before its provider sets one: 10%.
pub const DEFAULT_COMMISSION_BPS: u32 = 1_000;
/// The highest commission: 50%.
pub const MAX_COMMISSION_BPS: u32 = 5_000;
/// The most a commission may rise at once while the pool has delegators: 5 points.
pub const COMMISSION_STEP_BPS: u32 = 500;
/// How long after a raise the next may come while the pool has delegators: a day.
pub const COMMISSION_PERIOD_MS: u64 = 86_400_000;
/// How often a pool's reward index is sampled for the realised return (`Pool::samples`).
pub const SAMPLE_EVERY_MS: u64 = 3_600_000;
/// How long samples are kept: eight days (the return over a week needs one a week old).
pub const SAMPLES_KEPT_MS: u64 = 8 * 86_400_000;

/// Rules 27: the staking rules in force, which governance may change (`ParamChange::Staking`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StakingParams {
    /// The least that can be delegated at once.
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub min_delegation: Amount,
    /// The highest commission a provider or validator may set, in basis points.
    pub max_commission_bps: u32,
    /// The most a commission may rise at once while its pool has delegators.
    pub commission_step_bps: u32,
    /// How long after a raise the next may come while the pool has delegators.
    pub commission_period_ms: u64,
    /// The validators' share of every fee the treasury collects, in basis points.
    pub validator_fee_bps: u32,
    /// How often the validators' share is paid out (at the first entry at least this long
    /// after the last payout).
    pub validator_payout_every_ms: u64,
}

/// The longest `StakingParams::commission_period_ms` and `validator_payout_every_ms`: a year.
const LONGEST_STAKING_PERIOD_MS: u64 = 365 * 86_400_000;

impl StakingParams {
    /// The defaults for a network whose minimum stake is `min_stake`: the rules-25 constants,
    /// a minimum delegation of a hundredth of the minimum stake, and half of every fee paid to
    /// the validators every minute.
    pub fn for_min_stake(min_stake: Amount) -> StakingParams {
        StakingParams {
            min_delegation: (min_stake / MIN_DELEGATION_DIVISOR).max(1),
            max_commission_bps: MAX_COMMISSION_BPS,
            commission_step_bps: COMMISSION_STEP_BPS,
            commission_period_ms: COMMISSION_PERIOD_MS,
            validator_fee_bps: 5_000,
            validator_payout_every_ms: 60_000,
        }
    }

    /// Checks that the rules make sense; the message names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        if self.min_delegation == 0 {
            return Err("staking.min_delegation must be at least one base unit".into());
        }
        for (name, bps) in [
            ("max_commission_bps", self.max_commission_bps),
            ("commission_step_bps", self.commission_step_bps),
            ("validator_fee_bps", self.validator_fee_bps),
        ] {
            if bps > BPS {
                return Err(format!("staking.{name} {bps} is above {BPS}"));
            }
        }
        if self.commission_period_ms > LONGEST_STAKING_PERIOD_MS {
            return Err("staking.commission_period_ms is longer than a year".into());
        }
        if !(1_000..=LONGEST_STAKING_PERIOD_MS).contains(&self.validator_payout_every_ms) {
            return Err("staking.validator_payout_every_ms must be from a second to a year".into());
        }
        Ok(())
    }
}

/// Rules 27: the staking parameters and the validators' payouts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Staking {
    /// Set by the genesis or governance; `None`: [`StakingParams::for_min_stake`] of the
    /// minimum stake in force.
    pub params: Option<StakingParams>,
    /// Fees the treasury collected since the validators were last paid (a count, not a place
    /// tokens are: they are in the treasury's balance until paid out).
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub fees_collected: Amount,
    /// When the validators were last paid.
    pub last_payout: Time,
    /// What each validator earned from fees, ever (its delegators' share included).
    pub validator_earned: BTreeMap<AccountId, Amount>,
}

/// Every pool and every delegation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delegations {
    /// By provider.
    pub pools: BTreeMap<AccountId, Pool>,
    /// By delegator, then provider.
    pub delegations: BTreeMap<AccountId, BTreeMap<AccountId, Delegation>>,
}

/// The tokens delegated to one provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Pool {
    /// Bonded delegated tokens: slashable, and counted as the provider's stake.
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub tokens: Amount,
    /// Shares outstanding (the delegations' shares add up to this).
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub shares: u128,
    /// Rewards per share since the pool began, times [`INDEX_SCALE`].
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub reward_index: u128,
    /// Rewards paid into the pool and not yet paid out to a delegator.
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub rewards: Amount,
    /// The provider's cut of each payment, in basis points.
    pub commission_bps: u32,
    /// When the commission was last raised while the pool had delegators.
    pub raised_at: Option<Time>,
    /// Delegations open.
    pub delegators: u32,
    /// Undelegated tokens waiting out the unbonding delay (still slashable).
    pub unbonding: Vec<PoolUnbonding>,
    /// Rewards paid to the pool, ever.
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub rewards_total: Amount,
    /// Commission the provider kept, ever.
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub commission_total: Amount,
    /// Tokens the pool lost to slashes (bonded and unbonding), ever.
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub slashed_total: Amount,
    /// `(time, reward_index)` about every [`SAMPLE_EVERY_MS`] over the last
    /// [`SAMPLES_KEPT_MS`] when the pool was paid: the realised return ([`Pool::return_bps`]).
    pub samples: Vec<Sample>,
}

impl Default for Pool {
    fn default() -> Self {
        Pool {
            tokens: 0,
            shares: 0,
            reward_index: 0,
            rewards: 0,
            commission_bps: DEFAULT_COMMISSION_BPS,
            raised_at: None,
            delegators: 0,
            unbonding: Vec::new(),
            rewards_total: 0,
            commission_total: 0,
            slashed_total: 0,
            samples: Vec::new(),
        }
    }
}

/// A pool's reward index at a time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Sample {
    pub at: Time,
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub index: u128,
}

/// A delegator's stake in one pool.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delegation {
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub shares: u128,
    /// The pool's `reward_index` when this delegation last settled.
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub index: u128,
}

/// Undelegated tokens on their way back to their delegator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PoolUnbonding {
    pub delegator: AccountId,
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub amount: Amount,
    pub release_at: Time,
}

/// `a × b / c` rounded down, `None` on overflow or `c == 0`.
fn mul_div(a: u128, b: u128, c: u128) -> Option<u128> {
    a.checked_mul(b)?.checked_div(c)
}

/// `a × b / c` rounded up, `None` on overflow or `c == 0`.
fn mul_div_up(a: u128, b: u128, c: u128) -> Option<u128> {
    let product = a.checked_mul(b)?;
    let q = product.checked_div(c)?;
    if product.checked_rem(c)? == 0 {
        Some(q)
    } else {
        q.checked_add(1)
    }
}

fn overflow(what: &str) -> Rejection {
    Rejection::TooLarge(format!("{what} would overflow"))
}

impl Pool {
    /// What `shares` of this pool are worth in tokens, rounded down.
    pub fn value(&self, shares: u128) -> Option<Amount> {
        if self.shares == 0 {
            return Some(0);
        }
        mul_div(shares, self.tokens, self.shares)
    }

    /// What `delegation` has earned since it last settled, rounded down.
    pub fn pending(&self, delegation: &Delegation) -> Option<Amount> {
        mul_div(
            delegation.shares,
            self.reward_index.checked_sub(delegation.index)?,
            INDEX_SCALE,
        )
    }

    /// Unbonding tokens of the pool (all delegators).
    pub fn unbonding_total(&self) -> Option<Amount> {
        self.unbonding
            .iter()
            .try_fold(0u128, |s, u| s.checked_add(u.amount))
    }

    /// What a token held in the pool over the `period_ms` before `now` earned, in basis points
    /// of the token, from the samples of the reward index (at today's tokens per share); `None`
    /// without a sample that old, or with no tokens.
    pub fn return_bps(&self, now: Time, period_ms: u64) -> Option<u64> {
        let since = now.checked_sub(period_ms)?;
        let then = self.samples.iter().rev().find(|s| s.at <= since)?.index;
        if self.tokens == 0 {
            return None;
        }
        let gained = self.reward_index.checked_sub(then)?;
        // gained / INDEX_SCALE tokens per share; shares / tokens shares per token.
        let per_token = mul_div(gained, self.shares, self.tokens)?;
        u64::try_from(mul_div(per_token, u128::from(BPS), INDEX_SCALE)?).ok()
    }
}

impl State {
    /// The least that can be delegated at once: under rules 27 the governance parameter, before
    /// a hundredth of the minimum stake, at least one base unit.
    pub fn min_delegation(&self) -> Amount {
        self.staking_params().min_delegation
    }

    /// The staking rules in force: under rules 27 the state's (governance may change them),
    /// before the rules-25 constants, with no share of fees for validators.
    pub fn staking_params(&self) -> StakingParams {
        if self.rules >= 27 {
            self.staking
                .params
                .clone()
                .unwrap_or_else(|| StakingParams::for_min_stake(self.ledger.min_stake))
        } else {
            StakingParams {
                validator_fee_bps: 0,
                ..StakingParams::for_min_stake(self.ledger.min_stake)
            }
        }
    }

    /// Whether `who` may have a pool backing it: an active provider, or (rules 27) a member of
    /// the validator set.
    fn backable(&self, who: &AccountId) -> Result<(), Rejection> {
        if self.rules >= 27 && self.validators.set.get(who).is_some() {
            return Ok(());
        }
        match self.providers.get(who) {
            None if self.rules >= 27 => Err(Rejection::NotBackable(*who)),
            None => Err(Rejection::UnknownProvider(*who)),
            Some(p) if p.status != ProviderStatus::Active => Err(Rejection::ProviderInactive(*who)),
            Some(_) => Ok(()),
        }
    }

    /// Rules 27: counts a fee the treasury collected toward the validators' next payout.
    pub(crate) fn count_fee(&mut self, fee: Amount) -> Result<(), Rejection> {
        if self.rules >= 27 && !self.validators.set.validators.is_empty() && fee > 0 {
            self.staking.fees_collected = self
                .staking
                .fees_collected
                .checked_add(fee)
                .ok_or_else(|| overflow("fees"))?;
        }
        Ok(())
    }

    /// Rules 27: whether the validators are due their share of the fees at `now`.
    pub fn validator_payout_due(&self, now: Time) -> bool {
        self.rules >= 27
            && self.staking.fees_collected > 0
            && !self.validators.set.validators.is_empty()
            && now
                >= self
                    .staking
                    .last_payout
                    .saturating_add(self.staking_params().validator_payout_every_ms)
    }

    /// Rules 27: pays the validators their share of the fees collected since the last payout
    /// (when due, or at once with `now_anyway`, before the set changes), from the treasury, by
    /// voting power; each validator's share is split as a provider's payment is
    /// ([`State::share_payment`]). What rounding leaves stays with the treasury.
    pub(crate) fn pay_validators(
        &mut self,
        now: Time,
        now_anyway: bool,
    ) -> Result<Vec<Event>, Rejection> {
        let due = self.validator_payout_due(now)
            || (now_anyway && self.rules >= 27 && self.staking.fees_collected > 0);
        if !due {
            return Ok(Vec::new());
        }
        let treasury = self.ledger.treasury;
        let total = bps_of(
            self.staking.fees_collected,
            self.staking_params().validator_fee_bps,
        )
        .ok_or_else(|| overflow("the validators' share"))?
        .min(self.balance(&treasury));
        let power = u128::from(self.validators.set.total_power());
        let members: Vec<(AccountId, u128)> = self
            .validators
            .set
            .validators
            .iter()
            .map(|v| (v.account, u128::from(v.power)))
            .collect();
        let mut events = Vec::new();
        for (validator, weight) in members {
            let share = mul_div(total, weight, power).unwrap_or(0);
            if share == 0 {
                continue;
            }
            self.debit(&treasury, share)?;
            let (kept, delegators) = self.share_payment(validator, share, now)?;
            self.credit(&validator, kept)?;
            let earned = self.staking.validator_earned.entry(validator).or_default();
            *earned = earned.saturating_add(share);
            events.push(Event::ValidatorPaid {
                validator,
                amount: kept,
                share,
            });
            events.extend(delegators);
        }
        self.staking.fees_collected = 0;
        self.staking.last_payout = now;
        Ok(events)
    }

    /// The pool of `provider`, if it has one.
    pub fn pool(&self, provider: &AccountId) -> Option<&Pool> {
        self.delegation.pools.get(provider)
    }

    /// Bonded tokens delegated to `provider` (0 without a pool).
    pub fn delegated_to(&self, provider: &AccountId) -> Amount {
        self.pool(provider).map_or(0, |p| p.tokens)
    }

    /// `delegator`'s delegations, by provider.
    pub fn delegations_of(&self, delegator: &AccountId) -> Vec<(AccountId, &Delegation)> {
        self.delegation
            .delegations
            .get(delegator)
            .map(|d| d.iter().map(|(p, d)| (*p, d)).collect())
            .unwrap_or_default()
    }

    /// The rewards `delegator` could withdraw from its delegation to `provider` now.
    pub fn pending_rewards(&self, delegator: &AccountId, provider: &AccountId) -> Amount {
        let Some(d) = self
            .delegation
            .delegations
            .get(delegator)
            .and_then(|d| d.get(provider))
        else {
            return 0;
        };
        self.pool(provider).and_then(|p| p.pending(d)).unwrap_or(0)
    }

    /// Tokens `delegator` has unbonding from its delegations (all pools), with when each is
    /// released.
    pub fn delegation_unbonding(&self, delegator: &AccountId) -> Vec<(AccountId, Unbonding)> {
        self.delegation
            .pools
            .iter()
            .flat_map(|(provider, pool)| {
                pool.unbonding
                    .iter()
                    .filter(|u| u.delegator == *delegator)
                    .map(|u| {
                        (
                            *provider,
                            Unbonding {
                                amount: u.amount,
                                release_at: u.release_at,
                            },
                        )
                    })
            })
            .collect()
    }

    /// Everything the pools hold: bonded, unbonding and undistributed rewards (the supply
    /// equation's delegation term).
    pub(crate) fn delegation_held(&self) -> Option<Amount> {
        self.delegation.pools.values().try_fold(0u128, |s, p| {
            s.checked_add(p.tokens)?
                .checked_add(p.unbonding_total()?)?
                .checked_add(p.rewards)
        })
    }

    fn needs_delegation(&self, what: &str) -> Result<(), Rejection> {
        if self.rules < 25 {
            return Err(Rejection::NeedsRules {
                what: what.into(),
                needs: 25,
                runs: self.rules,
            });
        }
        Ok(())
    }

    /// Settles `delegator`'s rewards from `provider`'s pool into its balance (and its
    /// delegation's index to the pool's): the events of what was paid.
    fn settle_rewards(
        &mut self,
        delegator: AccountId,
        provider: AccountId,
    ) -> Result<Vec<Event>, Rejection> {
        let Some(pool) = self.delegation.pools.get(&provider) else {
            return Ok(Vec::new());
        };
        let index = pool.reward_index;
        let Some(d) = self
            .delegation
            .delegations
            .get(&delegator)
            .and_then(|d| d.get(&provider))
        else {
            return Ok(Vec::new());
        };
        let amount = pool.pending(d).ok_or_else(|| overflow("rewards"))?;
        let left = pool
            .rewards
            .checked_sub(amount)
            .ok_or_else(|| overflow("the pool's rewards"))?;
        if amount > 0 {
            self.balance(&delegator)
                .checked_add(amount)
                .ok_or_else(|| overflow("balance"))?;
        }
        if let Some(pool) = self.delegation.pools.get_mut(&provider) {
            pool.rewards = left;
        }
        if let Some(d) = self
            .delegation
            .delegations
            .get_mut(&delegator)
            .and_then(|d| d.get_mut(&provider))
        {
            d.index = index;
        }
        if amount == 0 {
            return Ok(Vec::new());
        }
        self.credit(&delegator, amount)?;
        Ok(vec![Event::RewardsWithdrawn {
            delegator,
            provider,
            amount,
        }])
    }

    /// `Action::Delegate`: `who` backs `provider` with `amount` of its balance.
    pub(crate) fn delegate(
        &mut self,
        who: AccountId,
        provider: AccountId,
        amount: Amount,
    ) -> Result<Vec<Event>, Rejection> {
        self.needs_delegation("delegation")?;
        if amount < self.min_delegation() {
            return Err(Rejection::InvalidAmount(format!(
                "delegate at least {}",
                Tokens(self.min_delegation())
            )));
        }
        if who == provider {
            return Err(Rejection::InvalidAmount(
                "a provider backs itself with its own stake (stake), not a delegation".into(),
            ));
        }
        self.backable(&provider)?;
        self.require_funds(&who, amount)?;
        let pool = self
            .delegation
            .pools
            .get(&provider)
            .cloned()
            .unwrap_or_default();
        if pool.shares > 0
            && pool
                .tokens
                .checked_mul(1_000_000)
                .is_some_and(|t| t < pool.shares)
        {
            return Err(Rejection::StakeLocked(format!(
                "provider {provider}'s pool was slashed to almost nothing; it takes no delegations"
            )));
        }
        let shares = if pool.shares == 0 {
            amount
        } else {
            mul_div(amount, pool.shares, pool.tokens).ok_or_else(|| overflow("shares"))?
        };
        if shares == 0 {
            return Err(Rejection::InvalidAmount("too little to buy a share".into()));
        }
        let tokens = pool
            .tokens
            .checked_add(amount)
            .ok_or_else(|| overflow("the pool"))?;
        let total_shares = pool
            .shares
            .checked_add(shares)
            .ok_or_else(|| overflow("shares"))?;
        let existing = self
            .delegation
            .delegations
            .get(&who)
            .and_then(|d| d.get(&provider))
            .cloned();
        let own_shares = existing
            .as_ref()
            .map_or(0, |d| d.shares)
            .checked_add(shares)
            .ok_or_else(|| overflow("shares"))?;
        let delegators = match existing {
            Some(_) => pool.delegators,
            None => pool
                .delegators
                .checked_add(1)
                .ok_or_else(|| overflow("delegators"))?,
        };
        let mut events = self.settle_rewards(who, provider)?;
        self.debit(&who, amount)?;
        let pool = self.delegation.pools.entry(provider).or_default();
        pool.tokens = tokens;
        pool.shares = total_shares;
        pool.delegators = delegators;
        let index = pool.reward_index;
        self.delegation.delegations.entry(who).or_default().insert(
            provider,
            Delegation {
                shares: own_shares,
                index,
            },
        );
        events.push(Event::Delegated {
            delegator: who,
            provider,
            amount,
            shares,
        });
        Ok(events)
    }

    /// `Action::Undelegate`: `who` takes `amount` of its delegation to `provider` back; it is
    /// released after the unbonding delay and is slashable until then.
    pub(crate) fn undelegate(
        &mut self,
        who: AccountId,
        provider: AccountId,
        amount: Amount,
        now: Time,
    ) -> Result<Vec<Event>, Rejection> {
        self.needs_delegation("delegation")?;
        let (Some(pool), Some(d)) = (
            self.delegation.pools.get(&provider),
            self.delegation
                .delegations
                .get(&who)
                .and_then(|d| d.get(&provider)),
        ) else {
            return Err(Rejection::NotDelegated { provider });
        };
        let value = pool
            .value(d.shares)
            .ok_or_else(|| overflow("the delegation"))?;
        // Nothing only closes a delegation a slash made worthless.
        if amount == 0 && value > 0 {
            return Err(Rejection::InvalidAmount(
                "undelegate a positive amount".into(),
            ));
        }
        if amount > value {
            return Err(Rejection::InsufficientStake {
                bonded: value,
                need: amount,
            });
        }
        // All of it sells every share; part of it as many shares as it is worth, rounded up
        // (the pool never pays out more than the shares sold are worth).
        let sold = if amount == value {
            d.shares
        } else {
            mul_div_up(amount, pool.shares, pool.tokens)
                .ok_or_else(|| overflow("shares"))?
                .min(d.shares)
        };
        let release_at = now
            .checked_add(self.ledger.unbonding_delay_ms)
            .ok_or_else(|| overflow("release time"))?;
        let tokens = pool
            .tokens
            .checked_sub(amount)
            .ok_or_else(|| overflow("the pool"))?;
        let shares = pool
            .shares
            .checked_sub(sold)
            .ok_or_else(|| overflow("shares"))?;
        let left = d
            .shares
            .checked_sub(sold)
            .ok_or_else(|| overflow("shares"))?;
        let mut events = self.settle_rewards(who, provider)?;
        let treasury = self.ledger.treasury;
        let Some(pool) = self.delegation.pools.get_mut(&provider) else {
            return Err(Rejection::NotDelegated { provider });
        };
        pool.tokens = tokens;
        pool.shares = shares;
        if amount > 0 {
            pool.unbonding.push(PoolUnbonding {
                delegator: who,
                amount,
                release_at,
            });
        }
        if left == 0 {
            pool.delegators = pool.delegators.saturating_sub(1);
        }
        // The last share gone: what rounding left of the rewards (and of the tokens) is nobody's.
        let dust = if pool.shares == 0 {
            let dust = pool
                .rewards
                .checked_add(pool.tokens)
                .ok_or_else(|| overflow("the pool"))?;
            pool.rewards = 0;
            pool.tokens = 0;
            dust
        } else {
            0
        };
        let delegations = self.delegation.delegations.entry(who).or_default();
        if left == 0 {
            delegations.remove(&provider);
            if delegations.is_empty() {
                self.delegation.delegations.remove(&who);
            }
        } else if let Some(d) = delegations.get_mut(&provider) {
            d.shares = left;
        }
        if dust > 0 {
            self.credit(&treasury, dust)?;
            events.push(Event::RewardDustSwept {
                provider,
                amount: dust,
            });
        }
        events.push(Event::Undelegated {
            delegator: who,
            provider,
            amount,
            release_at,
        });
        Ok(events)
    }

    /// `Action::WithdrawRewards`: pays `who` what its delegation to `provider` earned.
    pub(crate) fn withdraw_rewards(
        &mut self,
        who: AccountId,
        provider: AccountId,
    ) -> Result<Vec<Event>, Rejection> {
        self.needs_delegation("delegation")?;
        let Some(d) = self
            .delegation
            .delegations
            .get(&who)
            .and_then(|d| d.get(&provider))
        else {
            return Err(Rejection::NotDelegated { provider });
        };
        // Nothing to pay is refused before anything changes: settling would move the
        // delegation's reward index even when its pending rewards round down to nothing, and
        // a rejection must change no state (the leader applies to its live state and logs only
        // what it accepts).
        let pending = match self.delegation.pools.get(&provider) {
            Some(pool) => pool.pending(d).ok_or_else(|| overflow("rewards"))?,
            None => 0,
        };
        if pending == 0 {
            return Err(Rejection::NothingToRelease(who));
        }
        self.settle_rewards(who, provider)
    }

    /// `Action::SetCommission`: the signing provider's cut of its payments before its
    /// delegators share the rest.
    pub(crate) fn set_commission(
        &mut self,
        who: AccountId,
        bps: u32,
        now: Time,
    ) -> Result<Vec<Event>, Rejection> {
        self.needs_delegation("a commission")?;
        let validator = self.rules >= 27 && self.validators.set.get(&who).is_some();
        if !validator && !self.providers.contains_key(&who) {
            return Err(Rejection::UnknownProvider(who));
        }
        let params = self.staking_params();
        if bps > params.max_commission_bps {
            return Err(Rejection::InvalidCommission(format!(
                "{bps} basis points is above the most a provider may take, {}",
                params.max_commission_bps
            )));
        }
        let pool = self.delegation.pools.get(&who).cloned().unwrap_or_default();
        let raise = bps.saturating_sub(pool.commission_bps);
        if pool.delegators > 0 && raise > 0 {
            if raise > params.commission_step_bps {
                return Err(Rejection::InvalidCommission(format!(
                    "with delegators, a commission rises at most {} basis points at a time \
                     (from {} to at most {})",
                    params.commission_step_bps,
                    pool.commission_bps,
                    pool.commission_bps
                        .saturating_add(params.commission_step_bps)
                )));
            }
            if let Some(at) = pool.raised_at
                && now < at.saturating_add(params.commission_period_ms)
            {
                let every = match params.commission_period_ms {
                    COMMISSION_PERIOD_MS => "once a day".to_string(),
                    ms => format!("once every {ms} ms"),
                };
                return Err(Rejection::InvalidCommission(format!(
                    "with delegators, a commission rises at most {every} (next at {} ms)",
                    at.saturating_add(params.commission_period_ms)
                )));
            }
        }
        let pool = self.delegation.pools.entry(who).or_default();
        pool.commission_bps = bps;
        if pool.delegators > 0 && raise > 0 {
            pool.raised_at = Some(now);
        }
        Ok(vec![Event::CommissionSet {
            provider: who,
            commission_bps: bps,
        }])
    }

    /// Splits `net`, a payment `provider` earned, under rules 25: its commission and its own
    /// stake's share stay with it, its pool's share goes to its delegators. Returns what the
    /// provider keeps and the event of the pool's share, if any.
    pub(crate) fn share_payment(
        &mut self,
        provider: AccountId,
        net: Amount,
        now: Time,
    ) -> Result<(Amount, Option<Event>), Rejection> {
        let Some(pool) = self.delegation.pools.get(&provider) else {
            return Ok((net, None));
        };
        if self.rules < 25 || pool.shares == 0 || pool.tokens == 0 || net == 0 {
            return Ok((net, None));
        }
        let commission = bps_of(net, pool.commission_bps).ok_or_else(|| overflow("commission"))?;
        let rest = net
            .checked_sub(commission)
            .ok_or_else(|| overflow("commission"))?;
        let own = self.bonded(&provider);
        let backing = own
            .checked_add(pool.tokens)
            .ok_or_else(|| overflow("stake"))?;
        let to_pool = mul_div(rest, pool.tokens, backing).ok_or_else(|| overflow("payment"))?;
        let step = mul_div(to_pool, INDEX_SCALE, pool.shares).ok_or_else(|| overflow("index"))?;
        let index = pool
            .reward_index
            .checked_add(step)
            .ok_or_else(|| overflow("index"))?;
        let rewards = pool
            .rewards
            .checked_add(to_pool)
            .ok_or_else(|| overflow("rewards"))?;
        let kept = net
            .checked_sub(to_pool)
            .ok_or_else(|| overflow("payment"))?;
        if to_pool == 0 {
            return Ok((net, None));
        }
        let Some(pool) = self.delegation.pools.get_mut(&provider) else {
            return Ok((net, None));
        };
        pool.reward_index = index;
        pool.rewards = rewards;
        pool.rewards_total = pool.rewards_total.saturating_add(to_pool);
        pool.commission_total = pool.commission_total.saturating_add(commission);
        let sample_due = pool
            .samples
            .last()
            .is_none_or(|s| now >= s.at.saturating_add(SAMPLE_EVERY_MS));
        if sample_due {
            // The index as it stood before this payment: a return over a period counts the
            // payments after the sample.
            pool.samples.push(Sample {
                at: now,
                index: index.saturating_sub(step),
            });
            let oldest = now.saturating_sub(SAMPLES_KEPT_MS);
            let stale = pool.samples.iter().take_while(|s| s.at < oldest).count();
            // Keep the newest stale one: the return over the whole kept period starts there.
            pool.samples.drain(..stale.saturating_sub(1));
        }
        Ok((
            kept,
            Some(Event::DelegatorsPaid {
                provider,
                amount: to_pool,
                commission,
            }),
        ))
    }

    /// What a slash of `fraction_bps` would take from `who`'s pool, bonded and unbonding.
    pub(crate) fn pool_slash(
        &self,
        who: &AccountId,
        fraction_bps: u32,
    ) -> Result<Amount, Rejection> {
        self.pool(who).map_or(Ok(0), |p| {
            let mut sum = bps_of(p.tokens, fraction_bps);
            for u in &p.unbonding {
                sum = sum.and_then(|s| s.checked_add(bps_of(u.amount, fraction_bps)?));
            }
            sum.ok_or_else(|| overflow("slash"))
        })
    }

    /// Takes `fraction_bps` of `provider`'s pool, bonded and unbonding, for a slash: how much.
    pub(crate) fn slash_pool(
        &mut self,
        provider: AccountId,
        fraction_bps: u32,
    ) -> Result<Amount, Rejection> {
        let Some(pool) = self.delegation.pools.get(&provider) else {
            return Ok(0);
        };
        let from_bonded = bps_of(pool.tokens, fraction_bps).ok_or_else(|| overflow("slash"))?;
        let mut taken = from_bonded;
        let mut cuts = Vec::with_capacity(pool.unbonding.len());
        for u in &pool.unbonding {
            let cut = bps_of(u.amount, fraction_bps).ok_or_else(|| overflow("slash"))?;
            taken = taken.checked_add(cut).ok_or_else(|| overflow("slash"))?;
            cuts.push(cut);
        }
        let Some(pool) = self.delegation.pools.get_mut(&provider) else {
            return Ok(0);
        };
        pool.tokens = pool.tokens.saturating_sub(from_bonded);
        for (u, cut) in pool.unbonding.iter_mut().zip(cuts) {
            u.amount = u.amount.saturating_sub(cut);
        }
        pool.unbonding.retain(|u| u.amount > 0);
        pool.slashed_total = pool.slashed_total.saturating_add(taken);
        Ok(taken)
    }

    /// Delegators' unbonding tokens releasable at `now`, for `who`.
    pub(crate) fn releasable_delegations(&self, who: &AccountId, now: Time) -> Amount {
        self.delegation
            .pools
            .values()
            .flat_map(|p| &p.unbonding)
            .filter(|u| u.delegator == *who && u.release_at <= now)
            .fold(0, |sum: Amount, u| sum.saturating_add(u.amount))
    }

    /// Drops `who`'s released delegation unbondings (their tokens were credited).
    pub(crate) fn drop_released_delegations(&mut self, who: &AccountId, now: Time) {
        for pool in self.delegation.pools.values_mut() {
            pool.unbonding
                .retain(|u| !(u.delegator == *who && u.release_at <= now));
        }
    }

    /// Delegators with unbonding tokens releasable at `now`.
    pub(crate) fn releasable_delegators(&self, now: Time) -> Vec<AccountId> {
        let mut out: Vec<AccountId> = self
            .delegation
            .pools
            .values()
            .flat_map(|p| &p.unbonding)
            .filter(|u| u.release_at <= now)
            .map(|u| u.delegator)
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Action, Entry, Input, Signed};
    use crate::ledger::{Genesis, SlashEvidence, tokens};
    use crate::types::{Aggregate, Hash, JobSpec, Limits, OutputSource, ProviderSpec, Sig};
    use crate::types::{TaskId, TaskSpec};

    fn act(s: &mut State, who: AccountId, body: Action) -> Vec<Event> {
        let nonce = s.nonce(&who) + 1;
        s.apply(&Entry {
            time: 10,
            input: Input::Signed(Signed {
                signer: who,
                nonce,
                body,
                signature: Sig([0; 64]),
            }),
        })
        .unwrap()
    }

    #[test]
    fn a_slash_takes_the_same_fraction_of_the_pool_bonded_and_unbonding() {
        let (provider, requester, treasury) =
            (AccountId([1; 32]), AccountId([2; 32]), AccountId([3; 32]));
        let (alice, bob) = (AccountId([4; 32]), AccountId([5; 32]));
        let mut genesis = Genesis::dev(treasury);
        genesis.action_fee = 0;
        genesis.storage = None;
        for who in [provider, requester, alice, bob] {
            genesis.allocations.insert(who, tokens(1_000));
        }
        let mut s = State::from_genesis(&genesis).unwrap();
        assert_eq!(s.rules, crate::RULES);
        act(
            &mut s,
            provider,
            Action::Stake {
                amount: tokens(100),
            },
        );
        let spec = ProviderSpec {
            slots: 1,
            cores: 1,
            memory_bytes: 1 << 30,
            gpu: None,
            benchmark_score: 1,
            region: "r".into(),
            price_per_fuel: 1,
            operator: None,
        };
        act(&mut s, provider, Action::RegisterProvider(spec));
        let delegate = |amount| Action::Delegate { provider, amount };
        act(&mut s, alice, delegate(tokens(300)));
        act(&mut s, bob, delegate(tokens(100)));
        act(
            &mut s,
            bob,
            Action::Undelegate {
                provider,
                amount: tokens(40),
            },
        );
        act(
            &mut s,
            requester,
            Action::SubmitJob(JobSpec {
                module: Hash([9; 32]),
                tasks: vec![TaskSpec::default()],
                limits: Limits {
                    fuel: 10,
                    memory_bytes: 1 << 20,
                    wall_ms: 10,
                },
                deadline: 1_000,
                max_price: 1,
                output: OutputSource::Stdout,
                aggregate: Aggregate::Concat,
                redundancy: Default::default(),
                requirements: Default::default(),
            }),
        );
        let supply = s.check_supply().unwrap();
        let evidence = SlashEvidence {
            task: TaskId { job: 1, index: 0 },
            wrong_output: Hash([4; 32]),
            agreed_output: Hash([5; 32]),
            agreeing: vec![AccountId([6; 32])],
        };
        // The dev network takes half: 50 of the provider's 100, 180 of the pool's 360 bonded,
        // 20 of bob's 40 unbonding; 250 in all, split 50/25/25.
        let events = s.slash(provider, evidence).unwrap();
        let Event::Slashed {
            amount,
            to_requester,
            burned,
            ..
        } = events[0]
        else {
            panic!("{events:?}");
        };
        assert_eq!(amount, tokens(250));
        assert_eq!(
            events[1],
            Event::DelegationSlashed {
                provider,
                amount: tokens(200)
            }
        );
        assert_eq!(s.bonded(&provider), tokens(50));
        let pool = s.pool(&provider).unwrap();
        assert_eq!(pool.tokens, tokens(180));
        assert_eq!(pool.unbonding[0].amount, tokens(20));
        assert_eq!(pool.slashed_total, tokens(200));
        // Every delegator lost half: the shares stayed, the tokens behind them halved.
        let d = &s.delegation.delegations[&alice][&provider];
        assert_eq!(pool.value(d.shares), Some(tokens(150)));
        let d = &s.delegation.delegations[&bob][&provider];
        assert_eq!(pool.value(d.shares), Some(tokens(30)));
        assert_eq!(to_requester, tokens(125));
        assert_eq!(s.check_supply().unwrap(), supply - burned);
        // Bob's unbonding half comes back at its time.
        assert_eq!(
            s.delegation_unbonding(&bob)
                .iter()
                .map(|(_, u)| u.amount)
                .sum::<Amount>(),
            tokens(20)
        );
    }

    #[test]
    fn rounding_helpers() {
        assert_eq!(mul_div(7, 3, 2), Some(10));
        assert_eq!(mul_div_up(7, 3, 2), Some(11));
        assert_eq!(mul_div_up(8, 3, 2), Some(12));
        assert_eq!(mul_div(1, 1, 0), None);
        assert_eq!(mul_div(u128::MAX, 2, 1), None);
    }

    #[test]
    fn return_over_a_period_reads_the_samples() {
        let pool = Pool {
            tokens: 100,
            shares: 100,
            reward_index: 3 * INDEX_SCALE / 100,
            samples: vec![
                Sample { at: 0, index: 0 },
                Sample {
                    at: 1_000,
                    index: INDEX_SCALE / 100,
                },
            ],
            ..Pool::default()
        };
        // A token earned 0.03 since time 0 (300 bps) and 0.02 since 1,000.
        assert_eq!(pool.return_bps(2_000, 2_000), Some(300));
        assert_eq!(pool.return_bps(2_000, 1_000), Some(200));
        assert_eq!(pool.return_bps(2_000, 1_500), Some(300));
        assert_eq!(pool.return_bps(500, 1_000), None);
    }
}
