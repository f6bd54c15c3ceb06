//! The token ledger: balances, transfers, the dev faucet, job escrow and payment, staking,
//! unbonding and slashing. These are engine rules like any other — they run inside
//! [`State::apply`], so every balance is a pure function of genesis plus the log.
//!
//! Amounts are `u128` base units ([`BASE_UNITS_PER_TOKEN`] per [`TOKEN_SYMBOL`]) and every
//! operation is checked: a debit is validated before anything changes, so a refused command leaves
//! every balance as it was. Tokens come into existence only at genesis and from the faucet
//! ([`Supply::minted`]); they leave only by slashing's burn ([`Supply::burned`]). Everything else
//! moves them between balances, bonded stake, unbonding stake and job escrow, so
//! `Σ balances + Σ bonded + Σ unbonding + Σ escrow held == genesis + minted − burned` always holds
//! ([`State::check_supply`]).

use crate::command::{Event, Rejection};
use crate::state::{EngineConfig, State};
use crate::types::{AccountId, Amount, Hash, JobId, JobSpec, TaskId, Time};
use crate::validators::Validators;
use crate::verify::VerifyParams;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The token's symbol.
pub const TOKEN_SYMBOL: &str = "GRID";
/// Decimal places of the base unit.
pub const DECIMALS: u32 = 9;
/// Base units in one token (10^[`DECIMALS`]).
pub const BASE_UNITS_PER_TOKEN: Amount = 1_000_000_000;
/// Basis points in one whole (fees and fractions are given in basis points).
pub const BPS: u32 = 10_000;
/// The development network's fee per logged action: a ten-thousandth of a token (100,000 base
/// units), so that ten thousand log entries cost a token.
pub const DEV_ACTION_FEE: Amount = 100_000;

/// How a slash is sized and split. `fraction_bps` of the provider's stake (bonded, then unbonding)
/// is taken; of that, `requester_bps` goes to the job's owner (the party the wrong result was
/// delivered to), `treasury_bps` to the treasury, and the rest is burned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SlashParams {
    pub fraction_bps: u32,
    pub requester_bps: u32,
    pub treasury_bps: u32,
}

/// The faucet of a development network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FaucetParams {
    /// Credited per request. A request is refused while the caller's balance is already at least
    /// this much, so the faucet tops accounts up rather than filling them without bound.
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub amount: Amount,
}

/// The economic rules of a network, fixed at genesis and part of the state (so of its hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LedgerParams {
    /// Names the network; a different chain id gives a different genesis hash.
    pub chain_id: String,
    /// Receives protocol fees and its share of slashes.
    pub treasury: AccountId,
    /// Protocol fee, in basis points of each task payment, taken out of the payment.
    pub fee_bps: u32,
    /// Bonded stake a provider needs to register and to be given work.
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub min_stake: Amount,
    pub slash: SlashParams,
    /// How long unstaked tokens stay slashable before they can be released.
    pub unbonding_delay_ms: u64,
    /// `Some` on development networks only.
    pub faucet: Option<FaucetParams>,
}

impl LedgerParams {
    /// A network without fees, stake or faucet: what [`State::new`] starts from.
    pub fn free() -> LedgerParams {
        LedgerParams {
            chain_id: "gridmint-free".into(),
            treasury: AccountId([0; 32]),
            fee_bps: 0,
            min_stake: 0,
            slash: SlashParams {
                fraction_bps: 0,
                requester_bps: 0,
                treasury_bps: 0,
            },
            unbonding_delay_ms: 0,
            faucet: None,
        }
    }

    /// The development network `gridmint coordinator --dev` starts: a faucet of 1,000 tokens, a
    /// 5% fee, a 100-token minimum stake, slashes of half the stake (half of that to the wronged
    /// requester, a quarter to the treasury, a quarter burned), and a one-minute unbonding delay.
    pub fn dev(treasury: AccountId) -> LedgerParams {
        LedgerParams {
            chain_id: "gridmint-dev".into(),
            treasury,
            fee_bps: 500,
            min_stake: tokens(100),
            slash: SlashParams {
                fraction_bps: 5_000,
                requester_bps: 5_000,
                treasury_bps: 2_500,
            },
            unbonding_delay_ms: 60_000,
            faucet: Some(FaucetParams {
                amount: tokens(1_000),
            }),
        }
    }
}

/// Everything a network starts from. [`State::from_genesis`] turns it into the initial state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Genesis {
    pub params: LedgerParams,
    /// Initial balances.
    pub allocations: BTreeMap<AccountId, Amount>,
    pub engine: EngineConfig,
    /// Redundancy, trust and spot-check rules.
    #[serde(default)]
    pub verification: VerifyParams,
    /// The validator set (empty: a single coordinator) and its slashing rule.
    #[serde(default)]
    pub validators: Validators,
    /// The version of the engine's rules the network runs ([`crate::RULES`] for a new one; a
    /// genesis written before the field existed runs the first, [`crate::FIRST_RULES`]).
    #[serde(default = "first_rules")]
    pub rules: u32,
    /// Rules 8: what every logged action a key signs costs its signer, paid to the treasury
    /// (reports of assigned work and the faucet are free). Zero for a genesis written before
    /// the field existed.
    #[serde(default, with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub action_fee: Amount,
    /// Rules 10: what a job's storage costs (a deposit, returned when the storage is released;
    /// see [`crate::storage`]). `None`: no deposit, as for a genesis written before the field.
    #[serde(default)]
    pub storage: Option<crate::storage::StorageParams>,
    /// Rules 24: the carbon intensity of electricity per region (see [`crate::energy`]);
    /// `None`: [`crate::CarbonTable::default`].
    #[serde(default)]
    pub carbon: Option<crate::energy::CarbonTable>,
    /// Rules 27: the staking rules (minimum delegation, commission bounds, the validators'
    /// share of fees and how often it is paid); `None`: [`crate::StakingParams::for_min_stake`].
    #[serde(default)]
    pub staking: Option<crate::delegation::StakingParams>,
}

fn first_rules() -> u32 {
    crate::FIRST_RULES
}

impl Genesis {
    pub fn dev(treasury: AccountId) -> Genesis {
        Genesis {
            params: LedgerParams::dev(treasury),
            allocations: BTreeMap::new(),
            engine: EngineConfig::default(),
            verification: VerifyParams::default(),
            validators: Validators::default(),
            rules: crate::RULES,
            action_fee: DEV_ACTION_FEE,
            storage: Some(crate::storage::StorageParams::dev()),
            carbon: None,
            staking: None,
        }
    }

    /// Checks that the rules make sense; the message names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        if !(crate::FIRST_RULES..=crate::RULES).contains(&self.rules) {
            return Err(format!(
                "rules version {} is not one this engine knows ({} to {})",
                self.rules,
                crate::FIRST_RULES,
                crate::RULES
            ));
        }
        if let Some(table) = &self.carbon {
            table.validate()?;
        }
        if let Some(staking) = &self.staking {
            if self.rules < 27 {
                return Err(format!(
                    "staking parameters need rules 27 or later; this genesis names rules {}",
                    self.rules
                ));
            }
            staking.validate()?;
        }
        let p = &self.params;
        if p.chain_id.is_empty() || p.chain_id.len() > 64 {
            return Err("chain_id must be 1 to 64 characters".into());
        }
        if p.fee_bps > BPS {
            return Err(format!("fee_bps {} is above {BPS}", p.fee_bps));
        }
        if self.action_fee > 0 && self.rules < 8 {
            return Err(format!(
                "action_fee needs rules 8 or later; this genesis names rules {}",
                self.rules
            ));
        }
        if let Some(storage) = &self.storage {
            if self.rules < 10 {
                return Err(format!(
                    "storage deposits need rules 10 or later; this genesis names rules {}",
                    self.rules
                ));
            }
            storage.validate()?;
        }
        if p.slash.fraction_bps > BPS {
            return Err(format!(
                "slash.fraction_bps {} is above {BPS}",
                p.slash.fraction_bps
            ));
        }
        match p.slash.requester_bps.checked_add(p.slash.treasury_bps) {
            Some(sum) if sum <= BPS => {}
            _ => {
                return Err(format!(
                    "slash.requester_bps + slash.treasury_bps must be at most {BPS}"
                ));
            }
        }
        self.verification.validate()?;
        if p.faucet.as_ref().is_some_and(|f| f.amount == 0) {
            return Err("faucet.amount must be positive".into());
        }
        if !self.validators.set.validators.is_empty() {
            self.validators
                .validate()
                .map_err(|e| format!("validators: {e}"))?;
        }
        self.allocations
            .values()
            .chain(self.validators.set.validators.iter().map(|v| &v.stake))
            .try_fold(0u128, |sum, a| sum.checked_add(*a))
            .ok_or("allocations and validator stakes overflow the supply")?;
        Ok(())
    }
}

/// Where the tokens are, in aggregate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Supply {
    /// Allocated at genesis.
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub genesis: Amount,
    /// Created by the faucet since.
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub minted: Amount,
    /// Destroyed by slashing since.
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub burned: Amount,
}

impl Supply {
    /// Tokens in existence: genesis + minted − burned.
    pub fn total(&self) -> Option<Amount> {
        self.genesis
            .checked_add(self.minted)?
            .checked_sub(self.burned)
    }
}

/// Stake on its way out: still slashable until `release_at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Unbonding {
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub amount: Amount,
    pub release_at: Time,
}

/// A job's locked funds. `locked − paid − refunded` is what it still holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Escrow {
    /// The worst-case cost, taken from the owner at submission.
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub locked: Amount,
    /// Paid out for accepted results (provider share and fee together).
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub paid: Amount,
    /// The part of `paid` that went to the treasury as fees.
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub fees: Amount,
    /// Returned to the owner when the job ended.
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub refunded: Amount,
}

impl Escrow {
    /// What the escrow still holds.
    pub fn held(&self) -> Amount {
        self.locked
            .saturating_sub(self.paid)
            .saturating_sub(self.refunded)
    }
}

/// The case against a provider: its result for a task against the result the verification agreed
/// on. Both results entered the log as signed `ReportResults` actions; this names them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SlashEvidence {
    pub task: TaskId,
    /// The output hash the slashed provider signed.
    pub wrong_output: Hash,
    /// The output hash the quorum agreed on.
    pub agreed_output: Hash,
    /// Providers whose signed results formed the quorum.
    pub agreeing: Vec<AccountId>,
}

/// `n` whole tokens in base units (saturating: only for constants and tests).
pub const fn tokens(n: u64) -> Amount {
    (n as Amount).saturating_mul(BASE_UNITS_PER_TOKEN)
}

/// `amount × bps / 10 000`, rounded down; `None` on overflow.
pub fn bps_of(amount: Amount, bps: u32) -> Option<Amount> {
    amount
        .checked_mul(Amount::from(bps))?
        .checked_div(Amount::from(BPS))
}

/// An amount formatted as tokens: `12.5 GRID`, `0.000000001 GRID`.
pub struct Tokens(pub Amount);

impl fmt::Display for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / BASE_UNITS_PER_TOKEN;
        let frac = self.0 % BASE_UNITS_PER_TOKEN;
        if frac == 0 {
            write!(f, "{whole} {TOKEN_SYMBOL}")
        } else {
            let digits = format!("{frac:09}");
            write!(f, "{whole}.{} {TOKEN_SYMBOL}", digits.trim_end_matches('0'))
        }
    }
}

/// Parses a token amount: `12`, `12.5`, `0.000000001`, optionally followed by `GRID`; or base
/// units with the suffix `base` (`1500 base`). Underscores may group digits.
pub fn parse_tokens(text: &str) -> Result<Amount, String> {
    let t = text.trim();
    let (number, base) = if let Some(n) = t.strip_suffix("base") {
        (n.trim(), true)
    } else if let Some(n) = t.strip_suffix(TOKEN_SYMBOL) {
        (n.trim(), false)
    } else {
        (t, false)
    };
    let number = number.replace('_', "");
    let bad =
        || format!("{text:?} is not an amount (examples: 12, 0.5, 0.5 {TOKEN_SYMBOL}, 1500 base)");
    if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(bad());
    }
    if base {
        return number.parse::<Amount>().map_err(|_| bad());
    }
    let (whole, frac) = number.split_once('.').unwrap_or((&number, ""));
    if frac.contains('.') || (whole.is_empty() && frac.is_empty()) {
        return Err(bad());
    }
    if frac.len() > DECIMALS as usize {
        return Err(format!("{text:?} has more than {DECIMALS} decimal places"));
    }
    let whole: Amount = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let frac_units: Amount = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().map_err(|_| bad())?
    };
    whole
        .checked_mul(BASE_UNITS_PER_TOKEN)
        .and_then(|w| w.checked_add(frac_units))
        .ok_or_else(|| format!("{text:?} is too large"))
}

fn overflow(what: &str) -> Rejection {
    Rejection::TooLarge(format!("{what} would overflow"))
}

impl State {
    /// The initial state of a network.
    pub fn from_genesis(genesis: &Genesis) -> Result<State, String> {
        genesis.validate()?;
        let mut state = State::new(genesis.engine.clone());
        state.ledger = genesis.params.clone();
        state.verify = genesis.verification.clone();
        for (account, amount) in &genesis.allocations {
            state.accounts.entry(*account).or_default().balance = *amount;
            state.supply.genesis = state
                .supply
                .genesis
                .checked_add(*amount)
                .ok_or("allocations overflow the supply")?;
        }
        for v in &genesis.validators.set.validators {
            let account = state.accounts.entry(v.account).or_default();
            account.bonded = account
                .bonded
                .checked_add(v.stake)
                .ok_or("validator stakes overflow")?;
            state.supply.genesis = state
                .supply
                .genesis
                .checked_add(v.stake)
                .ok_or("validator stakes overflow the supply")?;
        }
        state.validators = genesis.validators.clone();
        state.rules = genesis.rules;
        state.action_fee = genesis.action_fee;
        state.storage.params = genesis.storage.clone();
        state.energy.table = genesis.carbon.clone().unwrap_or_default();
        state.staking.params = genesis.staking.clone();
        Ok(state)
    }

    /// Spendable balance of `who`.
    pub fn balance(&self, who: &AccountId) -> Amount {
        self.accounts.get(who).map_or(0, |a| a.balance)
    }

    /// Bonded stake of `who`.
    pub fn bonded(&self, who: &AccountId) -> Amount {
        self.accounts.get(who).map_or(0, |a| a.bonded)
    }

    /// Checks the conservation law: what is held everywhere equals what exists. Returns the
    /// difference as an error message.
    pub fn check_supply(&self) -> Result<Amount, String> {
        let mut held: Amount = 0;
        let add = |held: Amount, x: Amount| held.checked_add(x).ok_or("holdings overflow");
        for a in self.accounts.values() {
            held = add(held, a.balance)?;
            held = add(held, a.bonded)?;
            for u in &a.unbonding {
                held = add(held, u.amount)?;
            }
        }
        for job in self.jobs.values() {
            held = add(held, job.escrow.held())?;
        }
        held = add(held, self.storage.held().ok_or("deposits overflow")?)?;
        held = add(held, self.delegation_held().ok_or("delegations overflow")?)?;
        held = add(held, self.deposits_held().ok_or("deposits overflow")?)?;
        held = add(
            held,
            self.reservations.held().ok_or("reservations overflow")?,
        )?;
        let total = self.supply.total().ok_or("supply underflows")?;
        if held == total {
            Ok(total)
        } else {
            Err(format!(
                "held {held} but the supply is {total} ({:?})",
                self.supply
            ))
        }
    }

    /// Worst-case cost of a job: every map task and the reduce task burning their whole fuel
    /// limit at the job's maximum price. The protocol fee comes out of each payment, so it is
    /// inside this amount, not on top of it.
    pub fn job_cost(spec: &JobSpec) -> Option<Amount> {
        let maps = Amount::from(spec.limits.fuel).checked_mul(spec.tasks.len() as Amount)?;
        let reduce = match &spec.aggregate {
            crate::types::Aggregate::Reduce(r) => Amount::from(r.limits.fuel),
            crate::types::Aggregate::Concat => 0,
        };
        maps.checked_add(reduce)?.checked_mul(spec.max_price)
    }

    pub(crate) fn require_funds(&self, who: &AccountId, need: Amount) -> Result<(), Rejection> {
        let available = self.balance(who);
        if available < need {
            return Err(Rejection::InsufficientFunds { need, available });
        }
        Ok(())
    }

    /// Takes `amount` from `who`'s balance. Callers validate with [`Self::require_funds`] first.
    pub(crate) fn debit(&mut self, who: &AccountId, amount: Amount) -> Result<(), Rejection> {
        let account = self.accounts.entry(*who).or_default();
        account.balance =
            account
                .balance
                .checked_sub(amount)
                .ok_or(Rejection::InsufficientFunds {
                    need: amount,
                    available: account.balance,
                })?;
        Ok(())
    }

    /// Adds `amount` to `who`'s balance. Cannot overflow while the supply is conserved, because
    /// no balance exceeds the supply, which is itself a checked `u128`.
    pub(crate) fn credit(&mut self, who: &AccountId, amount: Amount) -> Result<(), Rejection> {
        let account = self.accounts.entry(*who).or_default();
        account.balance = account
            .balance
            .checked_add(amount)
            .ok_or_else(|| overflow("balance"))?;
        Ok(())
    }

    pub(crate) fn transfer(
        &mut self,
        from: AccountId,
        to: AccountId,
        amount: Amount,
    ) -> Result<Vec<Event>, Rejection> {
        if amount == 0 {
            return Err(Rejection::InvalidAmount(
                "a transfer must move a positive amount".into(),
            ));
        }
        if from == to {
            return Err(Rejection::InvalidAmount(
                "cannot transfer to yourself".into(),
            ));
        }
        self.require_funds(&from, amount)?;
        self.balance(&to)
            .checked_add(amount)
            .ok_or_else(|| overflow("recipient balance"))?;
        self.debit(&from, amount)?;
        self.credit(&to, amount)?;
        Ok(vec![Event::Transferred { from, to, amount }])
    }

    pub(crate) fn faucet(&mut self, who: AccountId) -> Result<Vec<Event>, Rejection> {
        let Some(faucet) = &self.ledger.faucet else {
            return Err(Rejection::FaucetDisabled);
        };
        let amount = faucet.amount;
        let balance = self.balance(&who);
        if balance >= amount {
            return Err(Rejection::FaucetRefused(format!(
                "the balance {} is already at least the faucet amount {}",
                Tokens(balance),
                Tokens(amount)
            )));
        }
        let minted = self
            .supply
            .minted
            .checked_add(amount)
            .ok_or_else(|| overflow("supply"))?;
        self.supply
            .total()
            .and_then(|t| t.checked_add(amount))
            .ok_or_else(|| overflow("supply"))?;
        self.supply.minted = minted;
        self.credit(&who, amount)?;
        Ok(vec![Event::FaucetPaid { to: who, amount }])
    }

    pub(crate) fn stake(
        &mut self,
        who: AccountId,
        amount: Amount,
    ) -> Result<Vec<Event>, Rejection> {
        if amount == 0 {
            return Err(Rejection::InvalidAmount("stake a positive amount".into()));
        }
        self.require_funds(&who, amount)?;
        let bonded = self
            .bonded(&who)
            .checked_add(amount)
            .ok_or_else(|| overflow("stake"))?;
        self.debit(&who, amount)?;
        self.accounts.entry(who).or_default().bonded = bonded;
        Ok(vec![Event::Staked {
            account: who,
            amount,
            bonded,
        }])
    }

    pub(crate) fn unstake(
        &mut self,
        who: AccountId,
        amount: Amount,
        now: Time,
    ) -> Result<Vec<Event>, Rejection> {
        if amount == 0 {
            return Err(Rejection::InvalidAmount("unstake a positive amount".into()));
        }
        let bonded = self.bonded(&who);
        let rest = bonded
            .checked_sub(amount)
            .ok_or(Rejection::InsufficientStake {
                bonded,
                need: amount,
            })?;
        let active = self
            .providers
            .get(&who)
            .is_some_and(|p| p.status == crate::state::ProviderStatus::Active);
        let backing = if self.rules >= 25 {
            self.delegated_to(&who)
        } else {
            0
        };
        if active && rest.saturating_add(backing) < self.ledger.min_stake {
            return Err(Rejection::StakeLocked(format!(
                "an active provider must keep at least {} bonded; leave the network first",
                Tokens(self.ledger.min_stake)
            )));
        }
        let release_at = now
            .checked_add(self.ledger.unbonding_delay_ms)
            .ok_or_else(|| overflow("release time"))?;
        let account = self.accounts.entry(who).or_default();
        account.bonded = rest;
        account.unbonding.push(Unbonding { amount, release_at });
        Ok(vec![Event::UnbondingStarted {
            account: who,
            amount,
            release_at,
        }])
    }

    /// Unbonding stake of `who` whose delay has passed by `now`.
    pub fn releasable(&self, who: &AccountId, now: Time) -> Amount {
        let own = self.accounts.get(who).map_or(0, |a| {
            a.unbonding
                .iter()
                .filter(|u| u.release_at <= now)
                .fold(0, |sum: Amount, u| sum.saturating_add(u.amount))
        });
        // Rules 25: and what it undelegated (no pool exists before).
        own.saturating_add(self.releasable_delegations(who, now))
    }

    /// Accounts with unbonding stake releasable at `now` (the leader releases them).
    pub fn releasable_accounts(&self, now: Time) -> Vec<AccountId> {
        let mut accounts: Vec<AccountId> = self
            .accounts
            .iter()
            .filter(|(_, a)| a.unbonding.iter().any(|u| u.release_at <= now))
            .map(|(id, _)| *id)
            .collect();
        accounts.extend(self.releasable_delegators(now));
        accounts.sort();
        accounts.dedup();
        accounts
    }

    pub(crate) fn release(&mut self, who: AccountId, now: Time) -> Result<Vec<Event>, Rejection> {
        let amount = self.releasable(&who, now);
        if amount == 0 {
            return Err(Rejection::NothingToRelease(who));
        }
        self.balance(&who)
            .checked_add(amount)
            .ok_or_else(|| overflow("balance"))?;
        if let Some(account) = self.accounts.get_mut(&who) {
            account.unbonding.retain(|u| u.release_at > now);
        }
        self.drop_released_delegations(&who, now);
        self.credit(&who, amount)?;
        Ok(vec![Event::StakeReleased {
            account: who,
            amount,
        }])
    }

    /// Locks the worst-case cost of a job from its owner.
    pub(crate) fn check_escrow(
        &self,
        owner: &AccountId,
        spec: &JobSpec,
    ) -> Result<Amount, Rejection> {
        let cost = State::job_cost(spec).ok_or_else(|| overflow("the job's worst-case cost"))?;
        self.require_funds(owner, cost)?;
        Ok(cost)
    }

    /// Pays one of the `share` providers of an accepted result from the job's escrow: `fuel ×
    /// price / share` (the provider's price, never above the job's maximum), of which the protocol
    /// fee goes to the treasury. The requester pays each task once however many replicas
    /// confirmed it; the confirming providers split that payment. Never pays more than the escrow
    /// holds.
    pub(crate) fn pay(
        &mut self,
        job: JobId,
        task: TaskId,
        provider: AccountId,
        fuel: u64,
        share: u32,
        now: Time,
    ) -> Result<Vec<Event>, Rejection> {
        let Some(j) = self.jobs.get(&job) else {
            return Ok(Vec::new());
        };
        // Rules 26: the owner's lease on this provider pays for it (see `crate::reserve`).
        if let Some(reservation) = self.covering_lease(&provider, &j.owner) {
            return Ok(vec![self.cover_task(reservation, task, provider)]);
        }
        let limit = self.task_fuel_limit(j, task.index);
        let price = self
            .providers
            .get(&provider)
            .map_or(0, |p| self.price_per_fuel(p, j, Some(task.index)))
            .min(j.spec.max_price);
        // Rules 25: the price index. A GPU job's map tasks are GPU work.
        if self.rules >= 25
            && let Some(p) = self.providers.get(&provider)
        {
            let gpu =
                self.gpu.jobs.contains_key(&job) && (task.index as usize) < j.spec.tasks.len();
            let region = p.spec.region.clone();
            let clearing = crate::market::Clearing {
                price,
                fuel: fuel.min(limit),
                at: now,
            };
            self.market
                .record(if gpu { "gpu" } else { "cpu" }, &region, clearing);
        }
        let Some(j) = self.jobs.get(&job) else {
            return Ok(Vec::new());
        };
        let gross = Amount::from(fuel.min(limit))
            .checked_mul(price)
            .ok_or_else(|| overflow("payment"))?
            .checked_div(Amount::from(share.max(1)))
            .ok_or_else(|| overflow("payment"))?
            .min(j.escrow.held());
        let fee = bps_of(gross, self.ledger.fee_bps).ok_or_else(|| overflow("fee"))?;
        let net = gross.checked_sub(fee).ok_or_else(|| overflow("payment"))?;
        let treasury = self.ledger.treasury;
        if let Some(j) = self.jobs.get_mut(&job) {
            j.escrow.paid = j
                .escrow
                .paid
                .checked_add(gross)
                .ok_or_else(|| overflow("escrow"))?;
            j.escrow.fees = j
                .escrow
                .fees
                .checked_add(fee)
                .ok_or_else(|| overflow("escrow"))?;
        }
        // Rules 25: its delegators' share goes to its pool (`net` is all the provider's before).
        let (kept, delegators) = self.share_payment(provider, net, now)?;
        self.credit(&provider, kept)?;
        self.credit(&treasury, fee)?;
        self.count_fee(fee)?;
        if let Some(p) = self.providers.get_mut(&provider) {
            p.stats.earned = p.stats.earned.saturating_add(kept);
        }
        let mut events = vec![Event::TaskPaid {
            task,
            provider,
            amount: kept,
            fee,
        }];
        events.extend(delegators);
        Ok(events)
    }

    /// Returns what a finished job's escrow still holds to its owner.
    pub(crate) fn refund(&mut self, job: JobId) -> Result<Option<Event>, Rejection> {
        self.refund_keeping(job, 0)
    }

    /// Returns what job `job`'s escrow holds beyond `keep` to its owner (rules 19: a completed
    /// job keeps its correction reserve until its storage is released).
    pub(crate) fn refund_keeping(
        &mut self,
        job: JobId,
        keep: Amount,
    ) -> Result<Option<Event>, Rejection> {
        let Some(j) = self.jobs.get_mut(&job) else {
            return Ok(None);
        };
        let amount = j.escrow.held().saturating_sub(keep);
        if amount == 0 {
            return Ok(None);
        }
        j.escrow.refunded = j
            .escrow
            .refunded
            .checked_add(amount)
            .ok_or_else(|| overflow("escrow"))?;
        let owner = j.owner;
        self.credit(&owner, amount)?;
        Ok(Some(Event::EscrowRefunded { job, owner, amount }))
    }

    /// Slashes `provider` for a wrong result delivered to the owner of `evidence.task`'s job: the
    /// hook the verification rules call when a result loses its quorum. Takes
    /// `slash.fraction_bps` of its stake (bonded first, then unbonding, newest first) and splits
    /// it between the wronged requester, the treasury and a burn. A provider left with less than
    /// the minimum stake gets no more work until it stakes again. Called by
    /// [`crate::verify`] when a result loses its quorum.
    pub(crate) fn slash(
        &mut self,
        provider: AccountId,
        evidence: SlashEvidence,
    ) -> Result<Vec<Event>, Rejection> {
        let requester = self
            .jobs
            .get(&evidence.task.job)
            .map(|j| j.owner)
            .ok_or(Rejection::UnknownJob(evidence.task.job))?;
        let params = self.ledger.slash.clone();
        let treasury = self.ledger.treasury;
        let stake = self.stake_of(&provider)?;
        // Rules 5: slashes escalate — each earlier slash of the provider doubles the fraction,
        // up to its whole stake (which leaves it below the minimum: no work until it bonds again).
        let fraction = if self.rules >= 5 {
            let before = self
                .providers
                .get(&provider)
                .map_or(0, |p| p.stats.times_slashed)
                .min(14);
            let before = u32::try_from(before).unwrap_or(14);
            params.fraction_bps.saturating_mul(1u32 << before).min(BPS)
        } else {
            params.fraction_bps
        };
        let own = bps_of(stake, fraction).ok_or_else(|| overflow("slash"))?;
        // Rules 25: the same fraction of its pool, bonded and unbonding (none before).
        let pooled = if self.rules >= 25 {
            self.pool_slash(&provider, fraction)?
        } else {
            0
        };
        let amount = own.checked_add(pooled).ok_or_else(|| overflow("slash"))?;
        let to_requester = bps_of(amount, params.requester_bps).ok_or_else(|| overflow("slash"))?;
        let to_treasury = bps_of(amount, params.treasury_bps).ok_or_else(|| overflow("slash"))?;
        let burned = amount
            .checked_sub(to_requester)
            .and_then(|r| r.checked_sub(to_treasury))
            .ok_or_else(|| overflow("slash"))?;
        let new_burned = self
            .supply
            .burned
            .checked_add(burned)
            .ok_or_else(|| overflow("burn"))?;
        self.take_stake(provider, own);
        if pooled > 0 {
            self.slash_pool(provider, fraction)?;
        }
        self.supply.burned = new_burned;
        self.credit(&requester, to_requester)?;
        self.credit(&treasury, to_treasury)?;
        if let Some(p) = self.providers.get_mut(&provider) {
            p.stats.times_slashed = p.stats.times_slashed.saturating_add(1);
            p.stats.slashed = p.stats.slashed.saturating_add(amount);
        }
        let mut events = vec![Event::Slashed {
            provider,
            requester,
            amount,
            to_requester,
            to_treasury,
            burned,
            evidence,
        }];
        if pooled > 0 {
            events.push(Event::DelegationSlashed {
                provider,
                amount: pooled,
            });
        }
        Ok(events)
    }

    /// The accounts whose balance or stake `event` changes: what an account's history lists.
    pub fn event_accounts(&self, event: &Event) -> impl Iterator<Item = AccountId> + use<> {
        let accounts: [Option<AccountId>; 3] = match event {
            Event::Transferred { from, to, .. } => [Some(*from), Some(*to), None],
            Event::FaucetPaid { to, .. } => [Some(*to), None, None],
            Event::EscrowLocked { owner, .. }
            | Event::EscrowRefunded { owner, .. }
            | Event::StorageDeposited { owner, .. }
            | Event::StorageReleased { owner, .. } => [Some(*owner), None, None],
            Event::TaskPaid { provider, fee, .. } if *fee > 0 => {
                [Some(*provider), Some(self.ledger.treasury), None]
            }
            Event::TaskPaid { provider, .. } => [Some(*provider), None, None],
            Event::Staked { account, .. }
            | Event::UnbondingStarted { account, .. }
            | Event::StakeReleased { account, .. } => [Some(*account), None, None],
            Event::Slashed {
                provider,
                requester,
                ..
            } => [
                Some(*provider),
                Some(*requester),
                Some(self.ledger.treasury),
            ],
            Event::ValidatorSlashed { validator, .. } => {
                [Some(*validator), Some(self.ledger.treasury), None]
            }
            Event::ActionFeePaid { payer, .. } => [Some(*payer), Some(self.ledger.treasury), None],
            Event::Delegated {
                delegator,
                provider,
                ..
            }
            | Event::Undelegated {
                delegator,
                provider,
                ..
            }
            | Event::RewardsWithdrawn {
                delegator,
                provider,
                ..
            } => [Some(*delegator), Some(*provider), None],
            Event::DelegatorsPaid { provider, .. }
            | Event::DelegationSlashed { provider, .. }
            | Event::CommissionSet { provider, .. } => [Some(*provider), None, None],
            Event::RewardDustSwept { provider, .. } => {
                [Some(*provider), Some(self.ledger.treasury), None]
            }
            Event::Proposed { proposer, .. } | Event::DepositReturned { proposer, .. } => {
                [Some(*proposer), None, None]
            }
            Event::TreasurySpent { to, .. } => [Some(*to), Some(self.ledger.treasury), None],
            Event::Reserved { owner, .. }
            | Event::ReservationRefunded { owner, .. }
            | Event::ReservationRenewed { owner, .. } => [Some(*owner), None, None],
            Event::ReservationPaid { provider, fee, .. } if *fee > 0 => {
                [Some(*provider), Some(self.ledger.treasury), None]
            }
            Event::ReservationPaid { provider, .. } => [Some(*provider), None, None],
            Event::ValidatorPaid { validator, .. } => {
                [Some(*validator), Some(self.ledger.treasury), None]
            }
            _ => [None, None, None],
        };
        accounts.into_iter().flatten()
    }

    /// Whether `who` has the bonded stake a provider needs to be given work.
    pub fn has_min_stake(&self, who: &AccountId) -> bool {
        self.backing(who) >= self.ledger.min_stake
    }

    /// The bonded stake behind provider `who`: its own, and under rules 25 its delegators'.
    pub fn backing(&self, who: &AccountId) -> Amount {
        let own = self.bonded(who);
        if self.rules >= 25 {
            own.saturating_add(self.delegated_to(who))
        } else {
            own
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_amounts_parse_and_print() {
        assert_eq!(parse_tokens("12").unwrap(), tokens(12));
        assert_eq!(parse_tokens("12.5 GRID").unwrap(), 12_500_000_000);
        assert_eq!(parse_tokens("0.000000001").unwrap(), 1);
        assert_eq!(parse_tokens(".5").unwrap(), 500_000_000);
        assert_eq!(parse_tokens("1_000").unwrap(), tokens(1000));
        assert_eq!(parse_tokens("1500 base").unwrap(), 1500);
        for bad in [
            "",
            "-1",
            "1.2.3",
            "0.0000000001",
            "abc",
            "1e9",
            ".",
            "1 base.5",
        ] {
            assert!(parse_tokens(bad).is_err(), "{bad:?} parsed");
        }
        assert!(parse_tokens(&format!("{}", u128::MAX)).is_err());
        assert_eq!(Tokens(12_500_000_000).to_string(), "12.5 GRID");
        assert_eq!(Tokens(1).to_string(), "0.000000001 GRID");
        assert_eq!(Tokens(tokens(3)).to_string(), "3 GRID");
        for a in [0, 1, 999, tokens(7), 123_456_789_012, u128::MAX / 10] {
            let shown = Tokens(a).to_string();
            assert_eq!(parse_tokens(&shown).unwrap(), a, "{shown}");
        }
    }

    #[test]
    fn slashing_splits_the_stake_burns_the_rest_and_stops_work() {
        use crate::command::{Action, Entry, Input, LeaderCommand, Signed};
        use crate::types::{Aggregate, Limits, OutputSource, ProviderSpec, Sig, TaskSpec};
        let (provider, requester, treasury) =
            (AccountId([1; 32]), AccountId([2; 32]), AccountId([3; 32]));
        let mut genesis = Genesis::dev(treasury);
        // (The fee per action is its own test's subject: the treasury gets only the slash here.)
        genesis.action_fee = 0;
        genesis.storage = None;
        genesis.allocations.insert(provider, tokens(1_000));
        genesis.allocations.insert(requester, tokens(1_000));
        let mut s = State::from_genesis(&genesis).unwrap();
        let mut nonce = 0;
        let mut act = |s: &mut State, who: AccountId, body: Action| {
            nonce += 1;
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
        };
        act(
            &mut s,
            provider,
            Action::Stake {
                amount: tokens(100),
            },
        );
        act(&mut s, provider, Action::Unstake { amount: 1 });
        act(
            &mut s,
            provider,
            Action::Stake {
                amount: tokens(300),
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
        let limits = Limits {
            fuel: 10,
            memory_bytes: 1 << 20,
            wall_ms: 10,
        };
        act(
            &mut s,
            requester,
            Action::SubmitJob(JobSpec {
                module: Hash([9; 32]),
                tasks: vec![TaskSpec::default(); 2],
                limits,
                deadline: 1_000,
                max_price: 1,
                output: OutputSource::Stdout,
                aggregate: Aggregate::Concat,
                redundancy: Default::default(),
                requirements: Default::default(),
            }),
        );
        let supply_before = s.check_supply().unwrap();
        let requester_before = s.balance(&requester);
        let task = TaskId { job: 1, index: 0 };
        let evidence = SlashEvidence {
            task,
            wrong_output: Hash([4; 32]),
            agreed_output: Hash([5; 32]),
            agreeing: vec![AccountId([6; 32]), AccountId([7; 32])],
        };
        // Stake: 400 tokens bonded minus 1 base unit, plus 1 base unit unbonding: half is taken.
        let events = s.slash(provider, evidence.clone()).unwrap();
        let amount = tokens(200);
        assert_eq!(
            events,
            vec![Event::Slashed {
                provider,
                requester,
                amount,
                to_requester: tokens(100),
                to_treasury: tokens(50),
                burned: tokens(50),
                evidence,
            }]
        );
        assert_eq!(s.bonded(&provider), tokens(200) - 1);
        assert_eq!(s.accounts[&provider].unbonding.len(), 1);
        assert_eq!(s.balance(&requester), requester_before + tokens(100));
        assert_eq!(s.balance(&treasury), tokens(50));
        assert_eq!(s.supply.burned, tokens(50));
        assert_eq!(s.check_supply().unwrap(), supply_before - tokens(50));
        let stats = &s.providers[&provider].stats;
        assert_eq!((stats.times_slashed, stats.slashed), (1, amount));

        // A second slash leaves it below the minimum stake: it gets no more work.
        s.slash(
            provider,
            SlashEvidence {
                task,
                ..s_evidence()
            },
        )
        .unwrap();
        assert!(s.bonded(&provider) < tokens(100));
        assert!(s.pick(provider, 1).is_empty());
        let assign = s.apply(&Entry {
            time: 11,
            input: Input::Leader(LeaderCommand::AssignTasks {
                provider,
                tasks: vec![task],
            }),
        });
        assert!(
            matches!(assign, Err(Rejection::TaskDoesNotFit { .. })),
            "{assign:?}"
        );
        assert!(s.check_supply().is_ok());
        // Evidence about an unknown job is refused.
        let unknown = SlashEvidence {
            task: TaskId { job: 99, index: 0 },
            ..s_evidence()
        };
        assert_eq!(s.slash(provider, unknown), Err(Rejection::UnknownJob(99)));
    }

    fn s_evidence() -> SlashEvidence {
        SlashEvidence {
            task: TaskId { job: 1, index: 0 },
            wrong_output: Hash([4; 32]),
            agreed_output: Hash([5; 32]),
            agreeing: vec![],
        }
    }

    #[test]
    fn genesis_validation_names_the_field() {
        let mut g = Genesis::dev(AccountId([1; 32]));
        assert!(g.validate().is_ok());
        g.params.fee_bps = 10_001;
        assert!(g.validate().unwrap_err().contains("fee_bps"));
        let mut g = Genesis::dev(AccountId([1; 32]));
        g.params.slash.requester_bps = 9_000;
        g.params.slash.treasury_bps = 2_000;
        assert!(g.validate().unwrap_err().contains("slash"));
        let mut g = Genesis::dev(AccountId([1; 32]));
        g.allocations.insert(AccountId([2; 32]), u128::MAX);
        g.allocations.insert(AccountId([3; 32]), 1);
        assert!(g.validate().unwrap_err().contains("overflow"));
        let mut g = Genesis::dev(AccountId([1; 32]));
        g.rules = 7;
        assert!(g.validate().unwrap_err().contains("action_fee"));
    }
}
