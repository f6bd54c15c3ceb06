//! `gridmint coordinator --genesis FILE`: a network's genesis as TOML. `examples/genesis.toml`
//! documents every key. Amounts are in tokens (`"1000"`, `"0.5"`, `"1500 base"` for base units),
//! fractions in basis points (1 bp = 0.01%).

use anyhow::{Context, bail};
use engine::{
    AccountId, EngineConfig, FaucetParams, Genesis, LedgerParams, SlashParams, Validator,
    ValidatorSet, Validators, VerifyParams, parse_tokens,
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
    let genesis = Genesis {
        params: LedgerParams {
            chain_id: file.chain_id,
            treasury: file.treasury,
            fee_bps: file.fee_bps,
            min_stake: tokens("min_stake", &file.min_stake)?,
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
