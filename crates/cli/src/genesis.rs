//! `gridmint coordinator --genesis FILE`: a network's genesis as TOML. `examples/genesis.toml`
//! documents every key. Amounts are in tokens (`"1000"`, `"0.5"`, `"1500 base"` for base units),
//! fractions in basis points (1 bp = 0.01%).

use anyhow::{Context, bail};
use engine::{
    AccountId, EngineConfig, FaucetParams, Genesis, LedgerParams, SlashParams, StakingParams,
    Validator, ValidatorSet, Validators, VerifyParams, parse_tokens,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenesisFile {
    chain_id: String,
    treasury: AccountId,
    fee_bps: u32,
    min_stake: String,
    unbonding_delay: String,
    slash: SlashFile,
    #[serde(default)]
    faucet: Option<FaucetFile>,
    #[serde(default)]
    allocations: BTreeMap<String, String>,
    #[serde(default)]
    verification: Option<VerifyParams>,
    /// The scheduler's tunables.
    scheduling: Option<engine::ScheduleParams>,
    /// The validator set; none: a single coordinator.
    #[serde(default)]
    validators: Vec<ValidatorFile>,
    /// The engine's rules version (default: the current one, `engine::RULES`). Only to verify a
    /// chain created under older rules from a genesis file.
    #[serde(default)]
    rules: Option<u32>,
    /// Rules 8: what each logged action costs its signer (tokens; default none). Reports of
    /// assigned work and the faucet are free.
    #[serde(default)]
    action_fee: Option<String>,
    /// Rules 10: what a job's storage costs (default: no deposit).
    #[serde(default)]
    storage: Option<StorageFile>,
    /// Rules 24: carbon intensity of electricity per region (default: the engine's table).
    #[serde(default)]
    carbon: Option<CarbonFile>,
    /// Rules 27: delegation and the validators' share of fees (default: the engine's rules for
    /// the minimum stake, `engine::StakingParams::for_min_stake`).
    #[serde(default)]
    staking: Option<StakingFile>,
}

/// `[staking]`: every key optional; a missing one takes `StakingParams::for_min_stake`'s value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StakingFile {
    /// The least that can be delegated at once (tokens; default: a hundredth of `min_stake`).
    #[serde(default)]
    min_delegation: Option<String>,
    /// The highest commission a provider or validator may set (default 5000: 50%).
    #[serde(default)]
    max_commission_bps: Option<u32>,
    /// The most a commission may rise at once while its pool has delegators (default 500).
    #[serde(default)]
    commission_step_bps: Option<u32>,
    /// How long after a raise the next may come while its pool has delegators (default "1d").
    #[serde(default)]
    commission_period: Option<String>,
    /// The validators' share of every fee the treasury collects (default 5000: half).
    #[serde(default)]
    validator_fee_bps: Option<u32>,
    /// How often the validators' share is paid out (default "1m"; a second to a year).
    #[serde(default)]
    validator_payout_every: Option<String>,
}

impl StakingFile {
    /// The staking rules: the file's keys over the defaults for `min_stake`.
    fn params(&self, min_stake: u128) -> anyhow::Result<StakingParams> {
        let defaults = StakingParams::for_min_stake(min_stake);
        Ok(StakingParams {
            min_delegation: match &self.min_delegation {
                Some(amount) => tokens("staking.min_delegation", amount)?,
                None => defaults.min_delegation,
            },
            max_commission_bps: self
                .max_commission_bps
                .unwrap_or(defaults.max_commission_bps),
            commission_step_bps: self
                .commission_step_bps
                .unwrap_or(defaults.commission_step_bps),
            commission_period_ms: match &self.commission_period {
                Some(d) => millis("staking.commission_period", d)?,
                None => defaults.commission_period_ms,
            },
            validator_fee_bps: self.validator_fee_bps.unwrap_or(defaults.validator_fee_bps),
            validator_payout_every_ms: match &self.validator_payout_every {
                Some(d) => millis("staking.validator_payout_every", d)?,
                None => defaults.validator_payout_every_ms,
            },
        })
    }
}

/// A humantime duration (`"1d"`, `"90s"`) in milliseconds; errors name `key`.
fn millis(key: &str, value: &str) -> anyhow::Result<u64> {
    let d = humantime::parse_duration(value)
        .with_context(|| format!("{key} = {value:?} is not a duration like \"1d\""))?;
    u64::try_from(d.as_millis()).with_context(|| format!("{key} = {value:?} is too long"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CarbonFile {
    /// Grams of CO₂e per kWh for a region the table does not list (default: the world's
    /// average, 480).
    #[serde(default)]
    default: Option<u32>,
    /// Grams of CO₂e per kWh per region, added to (or replacing) the engine's table.
    #[serde(default)]
    regions: BTreeMap<String, u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageFile {
    /// Deposit per KiB of a job's inputs and output room (tokens, e.g. "100 base").
    deposit_per_kib: String,
    /// How long an ended job's blobs stay before its storage is released (e.g. "1d").
    retention: String,
    /// The most output room a job may reserve per task (e.g. "64 MiB").
    max_output: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidatorFile {
    account: AccountId,
    #[serde(default = "one")]
    power: u64,
    address: String,
    /// Bonded at genesis; slashable (tokens, like `min_stake`).
    #[serde(default)]
    stake: Option<String>,
}

fn one() -> u64 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlashFile {
    fraction_bps: u32,
    requester_bps: u32,
    treasury_bps: u32,
    /// Share of a validator's stake taken when it signs two blocks at one height (default: all).
    #[serde(default)]
    equivocation_bps: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaucetFile {
    amount: String,
}

fn tokens(key: &str, value: &str) -> anyhow::Result<u128> {
    parse_tokens(value).map_err(|e| anyhow::anyhow!("{key}: {e}"))
}

/// Parses a genesis file's text.
#[cfg(test)]
pub fn parse(text: &str) -> anyhow::Result<Genesis> {
    parse_network(text).map(|(genesis, _)| genesis)
}

/// Parses a genesis file's text: the genesis and the validator set (empty for a single
/// coordinator).
pub fn parse_network(text: &str) -> anyhow::Result<(Genesis, ValidatorSet)> {
    let file: GenesisFile = toml::from_str(text).context("parsing TOML")?;
    let validators = ValidatorSet {
        validators: file
            .validators
            .iter()
            .map(|v| {
                anyhow::Ok(Validator {
                    account: v.account,
                    power: v.power,
                    address: v.address.trim_end_matches('/').to_string(),
                    stake: v
                        .stake
                        .as_deref()
                        .map(|s| tokens(&format!("validators.{}.stake", v.account), s))
                        .transpose()?
                        .unwrap_or(0),
                })
            })
            .collect::<anyhow::Result<_>>()?,
    };
    validators
        .validate()
        .map_err(|e| anyhow::anyhow!("validators: {e}"))?;
    let unbonding = humantime::parse_duration(&file.unbonding_delay).with_context(|| {
        format!(
            "unbonding_delay = {:?} is not a duration like \"7d\"",
            file.unbonding_delay
        )
    })?;
    let mut allocations = BTreeMap::new();
    for (account, amount) in &file.allocations {
        let id: AccountId = account.parse().map_err(|e| {
            anyhow::anyhow!("allocations: {account:?} is not an account id (64 hex digits): {e}")
        })?;
        let amount = tokens(&format!("allocations.{account}"), amount)?;
        if allocations.insert(id, amount).is_some() {
            bail!("allocations: {account} is listed twice");
        }
    }
    // A new network runs the engine's current rules.
    let rules = file.rules.unwrap_or(engine::RULES);
    let min_stake = tokens("min_stake", &file.min_stake)?;
    let staking = file
        .staking
        .as_ref()
        .map(|s| s.params(min_stake))
        .transpose()?;
    let genesis = Genesis {
        params: LedgerParams {
            chain_id: file.chain_id,
            treasury: file.treasury,
            fee_bps: file.fee_bps,
            min_stake,
            slash: SlashParams {
                fraction_bps: file.slash.fraction_bps,
                requester_bps: file.slash.requester_bps,
                treasury_bps: file.slash.treasury_bps,
            },
            unbonding_delay_ms: u64::try_from(unbonding.as_millis())
                .context("unbonding_delay is too long")?,
            faucet: file
                .faucet
                .map(|f| {
                    anyhow::Ok(FaucetParams {
                        amount: tokens("faucet.amount", &f.amount)?,
                    })
                })
                .transpose()?,
        },
        allocations,
        engine: EngineConfig {
            schedule: file
                .scheduling
                .unwrap_or_else(|| engine::ScheduleParams::for_rules(rules)),
            ..EngineConfig::default()
        },
        verification: file.verification.unwrap_or_default(),
        validators: if validators.validators.is_empty() {
            Validators::default()
        } else {
            Validators {
                equivocation_bps: file.slash.equivocation_bps.unwrap_or(engine::ledger::BPS),
                ..Validators::new(validators.clone())
            }
        },
        rules,
        staking,
        action_fee: file
            .action_fee
            .as_deref()
            .map(|fee| tokens("action_fee", fee))
            .transpose()?
            .unwrap_or(0),
        storage: file
            .storage
            .map(|s| {
                let retention = humantime::parse_duration(&s.retention).with_context(|| {
                    format!(
                        "storage.retention = {:?} is not a duration like \"1d\"",
                        s.retention
                    )
                })?;
                anyhow::Ok(engine::StorageParams {
                    deposit_per_kib: tokens("storage.deposit_per_kib", &s.deposit_per_kib)?,
                    retention_ms: u64::try_from(retention.as_millis())
                        .context("storage.retention is too long")?,
                    max_output_bytes: jobspec::parse_size(&s.max_output)
                        .context("storage.max_output")?,
                })
            })
            .transpose()?,
        carbon: file.carbon.map(|c| {
            let mut table = engine::CarbonTable::default();
            if let Some(default) = c.default {
                table.default_grams_per_kwh = default;
            }
            table.regions.extend(c.regions);
            table
        }),
    };
    genesis.validate().map_err(|e| anyhow::anyhow!(e))?;
    Ok((genesis, validators))
}

/// Reads and parses a genesis file.
pub fn load(path: &Path) -> anyhow::Result<Genesis> {
    load_network(path).map(|(genesis, _)| genesis)
}

/// Reads and parses a genesis file with its validator set.
pub fn load_network(path: &Path) -> anyhow::Result<(Genesis, ValidatorSet)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading genesis {}", path.display()))?;
    parse_network(&text).with_context(|| format!("genesis {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::tokens;

    /// A genesis file with only the required keys.
    const MINIMAL: &str = r#"chain_id = "x"
treasury = "0000000000000000000000000000000000000000000000000000000000000001"
fee_bps = 100
min_stake = "10"
unbonding_delay = "1h"
[slash]
fraction_bps = 1000
requester_bps = 5000
treasury_bps = 5000
"#;

    #[test]
    fn the_example_parses() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/genesis.toml"
        ));
        let g = load(path).unwrap();
        assert_eq!(g.params.chain_id, "gridmint-example");
        assert_eq!(g.params.fee_bps, 200);
        assert_eq!(g.params.min_stake, tokens(500));
        assert_eq!(g.params.unbonding_delay_ms, 7 * 24 * 3600 * 1000);
        assert_eq!(g.params.faucet, None);
        assert_eq!(
            g.storage,
            Some(engine::StorageParams {
                deposit_per_kib: 100,
                retention_ms: 7 * 24 * 3600 * 1000,
                max_output_bytes: 64 << 20,
            })
        );
        assert_eq!(
            g.rules,
            engine::RULES,
            "a new network runs the current rules"
        );
        assert_eq!(g.allocations.len(), 2);
        assert_eq!(
            g.allocations.values().sum::<u128>(),
            tokens(1_000_000) + tokens(250_000) + 500_000_000
        );
    }

    #[test]
    fn the_examples_commented_staking_section_shows_the_defaults() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/genesis.toml"
        ));
        let text = std::fs::read_to_string(path).unwrap();
        let mut staking = false;
        let uncommented: String = text
            .lines()
            .map(|line| {
                if line == "# [staking]" {
                    staking = true;
                } else if !line.starts_with("# ") {
                    staking = false;
                }
                let line = if staking { &line[2..] } else { line };
                format!("{line}\n")
            })
            .collect();
        assert!(uncommented.contains("\n[staking]\nmin_delegation"));
        let g = parse(&uncommented).unwrap();
        assert_eq!(
            g.staking,
            Some(StakingParams::for_min_stake(g.params.min_stake))
        );
    }

    #[test]
    fn mistakes_name_the_key() {
        let base = MINIMAL;
        assert!(parse(base).is_ok());
        let cases = [
            (base.replace("fee_bps = 100", "fee_bps = 10001"), "fee_bps"),
            (base.replace("\"10\"", "\"ten\""), "min_stake"),
            (base.replace("\"1h\"", "\"soon\""), "unbonding_delay"),
            (
                base.replace("treasury_bps = 5000", "treasury_bps = 5001"),
                "slash",
            ),
            (format!("{base}[allocations]\nzz = \"1\"\n"), "allocations"),
            (format!("{base}[faucet]\namount = \"0\"\n"), "faucet.amount"),
            (format!("{base}bogus = 1\n"), "bogus"),
        ];
        for (text, want) in cases {
            let err = format!("{:#}", parse(&text).unwrap_err());
            assert!(err.contains(want), "{err:?} should mention {want:?}");
        }
    }

    #[test]
    fn a_genesis_file_may_name_an_older_rules_version_and_no_unknown_one() {
        let base = MINIMAL;
        assert_eq!(parse(base).unwrap().rules, engine::RULES);
        let older = format!("rules = {}\n{base}", engine::FIRST_RULES);
        assert_eq!(parse(&older).unwrap().rules, engine::FIRST_RULES);
        let unknown = format!("rules = {}\n{base}", engine::RULES + 1);
        let err = format!("{:#}", parse(&unknown).unwrap_err());
        assert!(err.contains("rules version"), "{err}");
    }

    #[test]
    fn the_fee_per_action_is_in_tokens_defaults_to_none_and_needs_rules_8() {
        assert_eq!(parse(MINIMAL).unwrap().action_fee, 0);
        let fee = format!("action_fee = \"0.0001\"\n{MINIMAL}");
        assert_eq!(parse(&fee).unwrap().action_fee, 100_000);
        let older = format!("rules = 7\n{fee}");
        let err = format!("{:#}", parse(&older).unwrap_err());
        assert!(err.contains("action_fee needs rules 8"), "{err}");
        let bad = format!("action_fee = \"lots\"\n{MINIMAL}");
        let err = format!("{:#}", parse(&bad).unwrap_err());
        assert!(err.contains("action_fee"), "{err}");
    }

    #[test]
    fn storage_prices_default_to_none_need_rules_10_and_name_their_key() {
        assert_eq!(parse(MINIMAL).unwrap().storage, None);
        let storage = |price: &str, retention: &str, max: &str| {
            format!(
                "{MINIMAL}[storage]\ndeposit_per_kib = \"{price}\"\nretention = \"{retention}\"\nmax_output = \"{max}\"\n"
            )
        };
        let good = parse(&storage("100 base", "1d", "1MiB")).unwrap();
        assert_eq!(
            good.storage,
            Some(engine::StorageParams {
                deposit_per_kib: 100,
                retention_ms: 24 * 3600 * 1000,
                max_output_bytes: 1 << 20,
            })
        );
        for (text, want) in [
            (storage("lots", "1d", "1MiB"), "storage.deposit_per_kib"),
            (storage("1", "soon", "1MiB"), "storage.retention"),
            (storage("1", "1d", "big"), "storage.max_output"),
            (storage("1", "1d", "0"), "max_output_bytes must be positive"),
            (
                format!("rules = 9\n{}", storage("1", "1d", "1MiB")),
                "need rules 10",
            ),
        ] {
            let err = format!("{:#}", parse(&text).unwrap_err());
            assert!(err.contains(want), "{err:?} should mention {want:?}");
        }
    }

    #[test]
    fn staking_rules_default_to_the_minimum_stakes_take_tokens_and_durations_and_need_rules_27() {
        assert_eq!(parse(MINIMAL).unwrap().staking, None);
        // An empty section: the defaults for the minimum stake of 10 (a tenth of a token).
        let empty = parse(&format!("{MINIMAL}[staking]\n")).unwrap();
        assert_eq!(
            empty.staking,
            Some(StakingParams::for_min_stake(tokens(10)))
        );
        assert_eq!(
            empty.staking.unwrap().min_delegation,
            tokens(10) / engine::MIN_DELEGATION_DIVISOR
        );
        let every = format!(
            "{MINIMAL}[staking]\nmin_delegation = \"2.5\"\nmax_commission_bps = 2000\n\
             commission_step_bps = 250\ncommission_period = \"12h\"\nvalidator_fee_bps = 3000\n\
             validator_payout_every = \"1s\"\n"
        );
        assert_eq!(
            parse(&every).unwrap().staking,
            Some(StakingParams {
                min_delegation: 2_500_000_000,
                max_commission_bps: 2_000,
                commission_step_bps: 250,
                commission_period_ms: 12 * 3600 * 1000,
                validator_fee_bps: 3_000,
                validator_payout_every_ms: 1_000,
            })
        );
        // One key given: the others are the defaults.
        let one = parse(&format!(
            "{MINIMAL}[staking]\nvalidator_payout_every = \"10s\"\n"
        ))
        .unwrap();
        assert_eq!(
            one.staking,
            Some(StakingParams {
                validator_payout_every_ms: 10_000,
                ..StakingParams::for_min_stake(tokens(10))
            })
        );
        let staking = |body: &str| format!("{MINIMAL}[staking]\n{body}\n");
        for (text, want) in [
            (
                staking("min_delegation = \"lots\""),
                "staking.min_delegation",
            ),
            (staking("min_delegation = \"0\""), "staking.min_delegation"),
            (
                staking("max_commission_bps = 10001"),
                "staking.max_commission_bps",
            ),
            (
                staking("commission_step_bps = 20000"),
                "staking.commission_step_bps",
            ),
            (
                staking("validator_fee_bps = 10001"),
                "staking.validator_fee_bps",
            ),
            (
                staking("commission_period = \"soon\""),
                "staking.commission_period",
            ),
            (
                staking("commission_period = \"400days\""),
                "staking.commission_period",
            ),
            (
                staking("validator_payout_every = \"later\""),
                "staking.validator_payout_every",
            ),
            (
                staking("validator_payout_every = \"500ms\""),
                "staking.validator_payout_every",
            ),
            (staking("validator_fee = 1"), "validator_fee"),
            (
                format!("rules = 26\n{}", staking("validator_fee_bps = 1000")),
                "staking parameters need rules 27",
            ),
        ] {
            let err = format!("{:#}", parse(&text).unwrap_err());
            assert!(err.contains(want), "{err:?} should mention {want:?}");
        }
    }

    #[test]
    fn scheduler_defaults_follow_the_rules_version_the_file_names() {
        let queue = |text: &str| parse(text).unwrap().engine.schedule.queue_per_slot;
        assert_eq!(queue(MINIMAL), 256);
        // A network created under rules 3 ran with 64, so its genesis file, naming its rules,
        // still hashes to its genesis.
        assert_eq!(queue(&format!("rules = 3\n{MINIMAL}")), 64);
        assert_eq!(
            queue(&format!(
                "rules = 3\n{MINIMAL}\n[scheduling]\nqueue_per_slot = 8\n"
            )),
            8
        );
    }
}
