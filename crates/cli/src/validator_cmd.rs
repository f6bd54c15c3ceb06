//! `gridmint validator`: the validator set, and votes to change it.

use anyhow::Context;
use api::{Client, Identity};
use engine::{AccountId, Action, Event, Validator, ValidatorChange};
use std::path::PathBuf;

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
    /// Show the validator set
    List {
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
            let key = data_dir.join("validator.key");
            anyhow::ensure!(
                key.is_file(),
                "{} holds no validator key (validator.key)",
                data_dir.display()
            );
            let me = Identity::load_or_create(&key)
                .with_context(|| format!("loading {}", key.display()))?;
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
            let client = Client::new(&opts.coordinator);
            let set = client.chain_validators().await?;
            if opts.json {
                println!("{}", serde_json::to_string(&set)?);
                return Ok(());
            }
            for v in &set.validators {
                println!("{}  power {}  {}", v.account, v.power, v.address);
            }
        }
    }
    Ok(())
}
