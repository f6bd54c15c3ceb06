//! `gridmint validator`: the validator set with what backs each validator and what it earned
//! (rules 27), a validator's commission, and votes to change the set.

use crate::wallet::{format_time, parse_commission};
use anyhow::Context;
use api::wire::{ValidatorView, ValidatorsView};
use api::{Client, Identity};
use engine::{AccountId, Action, Event, Tokens, Validator, ValidatorChange};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(clap::Subcommand, Debug)]
pub enum ValidatorCommand {
    /// Vote, as a validator, to add a validator to the set or remove one: the change is made once
    /// validators holding more than half of the voting power voted for it. A validator added
    /// must have bonded the minimum stake (`gridmint wallet stake --key DIR/validator.key`) and
    /// be running with `gridmint coordinator --join`
    Vote {
        /// add or remove
        #[arg(value_enum)]
        change: Kind,
        /// The validator's account (`gridmint keys --validator --data-dir DIR`)
        account: AccountId,
        /// Where the validator added listens (`http://host:port`)
        #[arg(long, required_if_eq("change", "add"))]
        address: Option<String>,
        /// Voting power of the validator added
        #[arg(long, default_value_t = 1)]
        power: u64,
        /// The voting validator's data dir: its `validator.key` signs the vote
        #[arg(long)]
        data_dir: PathBuf,
        #[command(flatten)]
        opts: Opts,
    },
    /// Show the validator set: each validator's power, own stake, who backs it, its commission
    /// and what it earned of the fees (rules 27), and when the validators are next paid
    List {
        #[command(flatten)]
        opts: Opts,
    },
    /// One validator: its stake, backing, commission and earnings
    Info {
        account: AccountId,
        #[command(flatten)]
        opts: Opts,
    },
    /// Set your commission as a validator (rules 27): the part of your share of the fees you
    /// keep before your delegators share the rest ("12.5%" or basis points "1250"; at most the
    /// network's maximum, 50% unless governance changed it; with delegators it rises at most 5
    /// points a day by default — `gridmint validator list` shows the rules in force)
    Commission {
        #[arg(value_parser = parse_commission)]
        commission: u32,
        /// The validator's data dir: its `validator.key` signs
        #[arg(long)]
        data_dir: PathBuf,
        #[command(flatten)]
        opts: Opts,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Add,
    Remove,
}

#[derive(clap::Args, Debug)]
pub struct Opts {
    /// Coordinator URL, or a validator set's URLs separated by commas
    #[arg(
        long = "coordinator",
        env = "GRIDMINT_COORDINATOR",
        default_value = "http://127.0.0.1:7070"
    )]
    coordinator: String,
    #[arg(long)]
    json: bool,
}

pub async fn run(cmd: ValidatorCommand) -> anyhow::Result<()> {
    match cmd {
        ValidatorCommand::Vote {
            change,
            account,
            address,
            power,
            data_dir,
            opts,
        } => {
            let me = validator_key(&data_dir)?;
            let change = match change {
                Kind::Add => ValidatorChange::Add(Validator {
                    account,
                    power,
                    address: address
                        .context("--address is needed to add a validator")?
                        .trim_end_matches('/')
                        .to_string(),
                    stake: 0,
                }),
                Kind::Remove => ValidatorChange::Remove(account),
            };
            let client = Client::new(&opts.coordinator);
            let resp = client
                .action(&me, Action::ValidatorVote(change))
                .await
                .context("voting")?;
            if opts.json {
                println!("{}", serde_json::to_string(&resp)?);
                return Ok(());
            }
            for e in &resp.events {
                match e {
                    Event::ValidatorVoted { power, total, .. } => {
                        println!("voted: {power} of {total} voting power so far");
                    }
                    Event::ValidatorSetChanged { validators, .. } => {
                        println!("approved: the set has {validators} validators now");
                    }
                    _ => {}
                }
            }
        }
        ValidatorCommand::List { opts } => {
            let view = Client::new(&opts.coordinator).validators().await?;
            if opts.json {
                println!("{}", serde_json::to_string_pretty(&view)?);
                return Ok(());
            }
            print!("{}", list_text(&view));
        }
        ValidatorCommand::Info { account, opts } => {
            let view = Client::new(&opts.coordinator).validators().await?;
            let v = view
                .validators
                .iter()
                .find(|v| v.account == account)
                .with_context(|| format!("{account} is not in the validator set"))?;
            if opts.json {
                println!("{}", serde_json::to_string_pretty(v)?);
                return Ok(());
            }
            print!("{}", validator_text(v));
            if let Some(b) = &v.backing {
                let ret = |r: Option<u64>| r.map_or("not a full period yet".into(), percent64);
                println!(
                    "  paid       {} to delegators ({} kept as commission, {} slashed from them)",
                    Tokens(b.rewards_paid),
                    Tokens(b.commission_earned),
                    Tokens(b.slashed)
                );
                println!(
                    "  realised   {} over the last day, {} over the last week",
                    ret(b.return_day_bps),
                    ret(b.return_week_bps)
                );
            }
        }
        ValidatorCommand::Commission {
            commission,
            data_dir,
            opts,
        } => {
            let me = validator_key(&data_dir)?;
            let resp = Client::new(&opts.coordinator)
                .action(
                    &me,
                    Action::SetCommission {
                        commission_bps: commission,
                    },
                )
                .await
                .context("setting the commission")?;
            if opts.json {
                println!("{}", serde_json::to_string(&resp)?);
                return Ok(());
            }
            for e in &resp.events {
                if let Event::CommissionSet { commission_bps, .. } = e {
                    println!("commission set to {}", percent(*commission_bps));
                }
            }
        }
    }
    Ok(())
}

/// The validator key in `data_dir`, which must hold one.
fn validator_key(data_dir: &Path) -> anyhow::Result<Identity> {
    let key = data_dir.join("validator.key");
    anyhow::ensure!(
        key.is_file(),
        "{} holds no validator key (validator.key)",
        data_dir.display()
    );
    Identity::load_or_create(&key).with_context(|| format!("loading {}", key.display()))
}

fn percent(bps: u32) -> String {
    percent64(u64::from(bps))
}

fn percent64(bps: u64) -> String {
    format!("{}%", bps as f64 / 100.0)
}

/// `gridmint validator list`: the payout rules and state, then each validator.
fn list_text(view: &ValidatorsView) -> String {
    let mut out = String::new();
    if view.validators.is_empty() {
        out.push_str("no validator set: one coordinator runs this network\n");
        return out;
    }
    match &view.staking {
        Some(s) => {
            out.push_str(&format!(
                "payouts    validators get {} of every fee, split by voting power, at most every {}\n",
                percent(s.validator_fee_bps),
                humantime::format_duration(Duration::from_millis(s.validator_payout_every_ms))
            ));
            let next = match view.next_payout_at {
                Some(at) if view.fees_collected > 0 => {
                    format!("; next payout at {}", format_time(at))
                }
                Some(at) => format!(
                    "; the next payout comes with fees, at {} or later",
                    format_time(at)
                ),
                None => String::new(),
            };
            out.push_str(&format!(
                "fees       {} collected since the last payout{next}\n",
                Tokens(view.fees_collected)
            ));
        }
        None => out.push_str("payouts    none: validators earn fees from rules 27\n"),
    }
    for v in &view.validators {
        out.push_str(&validator_text(v));
    }
    out
}

/// One validator's lines.
fn validator_text(v: &ValidatorView) -> String {
    let (delegated, delegators, commission) = match &v.backing {
        Some(b) => (b.delegated, b.delegators, b.commission_bps),
        None => (0, 0, engine::DEFAULT_COMMISSION_BPS),
    };
    let unbonding = match &v.backing {
        Some(b) if b.unbonding > 0 => format!(", {} unbonding", Tokens(b.unbonding)),
        _ => String::new(),
    };
    format!(
        "validator  {}  power {}  {}\n  \
         stake      {} own, {} delegated by {} delegator(s){unbonding}\n  \
         commission {}\n  \
         earned     {} of fees (its delegators' part included)\n",
        v.account,
        v.power,
        v.address,
        Tokens(v.bonded),
        Tokens(delegated),
        delegators,
        percent(commission),
        Tokens(v.earned)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_shows_each_validators_backing_commission_and_earnings() {
        let backed = ValidatorView {
            account: AccountId([1; 32]),
            address: "http://10.0.0.1:7700".into(),
            power: 2,
            bonded: 1_000_000_000_000,
            earned: 1_500_000_000,
            backing: Some(api::wire::BackingView {
                own: 1_000_000_000_000,
                delegated: 100_000_000_000,
                delegators: 1,
                commission_bps: 2_000,
                unbonding: 0,
                rewards_paid: 0,
                commission_earned: 0,
                slashed: 0,
                return_day_bps: None,
                return_week_bps: None,
            }),
        };
        let alone = ValidatorView {
            account: AccountId([2; 32]),
            power: 1,
            earned: 0,
            backing: None,
            ..backed.clone()
        };
        let view = ValidatorsView {
            staking: Some(engine::StakingParams::for_min_stake(100_000_000_000)),
            fees_collected: 250_000_000,
            next_payout_at: Some(60_000),
            validators: vec![backed, alone],
        };
        let text = list_text(&view);
        for want in [
            "validators get 50% of every fee, split by voting power, at most every 1m",
            "fees       0.25 GRID collected since the last payout; next payout at 1970-01-01T00:01:00Z",
            "power 2  http://10.0.0.1:7700",
            "stake      1000 GRID own, 100 GRID delegated by 1 delegator(s)\n  commission 20%",
            "earned     1.5 GRID of fees",
            "stake      1000 GRID own, 0 GRID delegated by 0 delegator(s)\n  commission 10%",
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }
        let single = ValidatorsView {
            validators: Vec::new(),
            ..view
        };
        assert!(list_text(&single).contains("no validator set"));
    }
}
