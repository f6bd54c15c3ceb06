//! `gridmint wallet`: balances, transfers, history, staking and the dev faucet, for the requester's
//! key (default), any key file (`--key`) or a provider's (`--data-dir`).

use crate::requester;
use anyhow::Context;
use api::wire::{AccountView, HistoryItem, NetworkView};
use api::{Client, Identity};
use engine::{AccountId, Action, Amount, Event, Tokens, parse_tokens};
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

#[derive(clap::Subcommand, Debug)]
pub enum WalletCommand {
    /// Show an account's balance, stake and escrow (default: your own)
    Balance {
        account: Option<AccountId>,
        #[command(flatten)]
        opts: Opts,
    },
    /// Send tokens: AMOUNT in GRID ("12.5"), or base units ("1500 base")
    Transfer {
        to: AccountId,
        #[arg(value_parser = parse_amount)]
        amount: Amount,
        #[command(flatten)]
        opts: Opts,
    },
    /// List an account's ledger events, newest first (default: your own)
    History {
        account: Option<AccountId>,
        /// Most events to show
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        opts: Opts,
    },
    /// Bond tokens as provider stake
    Stake {
        #[arg(value_parser = parse_amount)]
        amount: Amount,
        #[command(flatten)]
        opts: Opts,
    },
    /// Start unbonding stake; it returns to the balance after the network's unbonding delay
    Unstake {
        #[arg(value_parser = parse_amount)]
        amount: Amount,
        #[command(flatten)]
        opts: Opts,
    },
    /// Development networks only: get tokens from the faucet
    Faucet {
        #[command(flatten)]
        opts: Opts,
    },
}

/// Options every wallet command takes.
#[derive(clap::Args, Debug)]
pub struct Opts {
    /// Coordinator URL, or a validator set's URLs separated by commas
    #[arg(
        long = "coordinator",
        env = "GRIDMINT_COORDINATOR",
        default_value = "http://127.0.0.1:7070"
    )]
    coordinator: String,
    /// Key file to act as (default: the requester key in $GRIDMINT_HOME or ~/.gridmint)
    #[arg(long, conflicts_with = "data_dir")]
    key: Option<PathBuf>,
    /// Act as the provider whose data dir this is
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

impl Opts {
    fn identity(&self) -> anyhow::Result<Identity> {
        let path = match (&self.key, &self.data_dir) {
            (Some(key), _) => key.clone(),
            (None, Some(dir)) => dir.join("provider.key"),
            (None, None) => requester::requester_key_path(),
        };
        Identity::load_or_create(&path).with_context(|| format!("key {}", path.display()))
    }
}

fn parse_amount(s: &str) -> Result<Amount, String> {
    parse_tokens(s)
}

pub async fn run(cmd: WalletCommand) -> anyhow::Result<()> {
    match cmd {
        WalletCommand::Balance { account, opts } => {
            let client = Client::new(&opts.coordinator);
            let id = match account {
                Some(id) => id,
                None => opts.identity()?.id(),
            };
            let view = client.account(id).await?;
            let network = client.network().await?;
            if opts.json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                print_balance(&view, &network);
            }
        }
        WalletCommand::Transfer { to, amount, opts } => {
            let me = opts.identity()?;
            let resp = act(&opts, &me, Action::Transfer { to, amount }).await?;
            if opts.json {
                println!("{}", serde_json::to_string(&resp)?);
            } else {
                println!("sent {} to {to} (log entry {})", Tokens(amount), resp.seq);
            }
        }
        WalletCommand::History {
            account,
            limit,
            opts,
        } => {
            let client = Client::new(&opts.coordinator);
            let id = match account {
                Some(id) => id,
                None => opts.identity()?.id(),
            };
            let items = history(&client, id, limit as usize).await?;
            if opts.json {
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else if items.is_empty() {
                println!("no ledger events for {id}");
            } else {
                for item in &items {
                    println!(
                        "{}  #{:<8} {}",
                        format_time(item.time),
                        item.seq,
                        describe(&id, &item.event)
                    );
                }
            }
        }
        WalletCommand::Stake { amount, opts } => {
            let me = opts.identity()?;
            let resp = act(&opts, &me, Action::Stake { amount }).await?;
            if opts.json {
                println!("{}", serde_json::to_string(&resp)?);
            } else {
                for e in &resp.events {
                    if let Event::Staked { bonded, .. } = e {
                        println!("staked {}; bonded now {}", Tokens(amount), Tokens(*bonded));
                    }
                }
            }
        }
        WalletCommand::Unstake { amount, opts } => {
            let me = opts.identity()?;
            let resp = act(&opts, &me, Action::Unstake { amount }).await?;
            if opts.json {
                println!("{}", serde_json::to_string(&resp)?);
            } else {
                for e in &resp.events {
                    if let Event::UnbondingStarted { release_at, .. } = e {
                        println!(
                            "unbonding {}; it returns to your balance at {}",
                            Tokens(amount),
                            format_time(*release_at)
                        );
                    }
                }
            }
        }
        WalletCommand::Faucet { opts } => {
            let me = opts.identity()?;
            let resp = act(&opts, &me, Action::Faucet).await?;
            if opts.json {
                println!("{}", serde_json::to_string(&resp)?);
            } else {
                for e in &resp.events {
                    if let Event::FaucetPaid { amount, to } = e {
                        println!("the faucet sent {} to {to}", Tokens(*amount));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Signs and sends `action`, turning the coordinator's refusals into plain sentences.
async fn act(
    opts: &Opts,
    me: &Identity,
    action: Action,
) -> anyhow::Result<api::wire::ActionResponse> {
    let client = Client::new(&opts.coordinator);
    client.action(me, action).await.map_err(|e| {
        let hint = match e.status() {
            Some(402) => " (see `gridmint wallet balance`)",
            Some(403) => " (the faucet exists only on networks started with --dev)",
            _ => "",
        };
        anyhow::anyhow!("{e}{hint}")
    })
}

fn print_balance(view: &AccountView, network: &NetworkView) {
    println!("account    {}", view.id);
    println!("balance    {}", Tokens(view.balance));
    println!("bonded     {}", Tokens(view.bonded));
    for u in &view.unbonding {
        println!(
            "unbonding  {} (released at {})",
            Tokens(u.amount),
            format_time(u.release_at)
        );
    }
    println!("in escrow  {}", Tokens(view.in_escrow));
    if view.in_storage > 0 {
        println!(
            "storage    {} (deposits of jobs not yet released)",
            Tokens(view.in_storage)
        );
    }
    println!(
        "network    {} (fee {}%, minimum stake {}{})",
        network.chain_id,
        f64::from(network.fee_bps) / 100.0,
        Tokens(network.min_stake),
        network
            .faucet
            .map(|f| format!(", faucet {}", Tokens(f)))
            .unwrap_or_default()
    );
}

/// Up to `limit` history items of `id`, newest first, following pages.
pub async fn history(
    client: &Client,
    id: AccountId,
    limit: usize,
) -> anyhow::Result<Vec<HistoryItem>> {
    let mut out = Vec::new();
    let mut before = None;
    while out.len() < limit {
        let want = u32::try_from(limit - out.len())
            .unwrap_or(u32::MAX)
            .min(500);
        let page = client.history(id, before, want).await?;
        out.extend(page.items);
        match page.next_before {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    out.truncate(limit);
    Ok(out)
}

/// Every history item of `id`.
pub async fn full_history(client: &Client, id: AccountId) -> anyhow::Result<Vec<HistoryItem>> {
    history(client, id, usize::MAX).await
}

/// Asks the faucet for tokens when `me` holds less than `want` and the network has a faucet.
/// Returns whether it did.
pub async fn faucet_if_needed(
    client: &Client,
    me: &Identity,
    want: Amount,
) -> anyhow::Result<bool> {
    let network = client.network().await?;
    let balance = client.account(me.id()).await?.balance;
    if balance >= want || network.faucet.is_none() {
        return Ok(false);
    }
    client
        .action(me, Action::Faucet)
        .await
        .context("asking the faucet")?;
    Ok(true)
}

/// One history line, from `me`'s point of view: the change to its balance first.
pub fn describe(me: &AccountId, event: &Event) -> String {
    let short = |a: &AccountId| format!("{}…", &a.to_hex()[..12]);
    let plus = |a: Amount| format!("+{}", Tokens(a));
    let minus = |a: Amount| format!("-{}", Tokens(a));
    match event {
        Event::Transferred { from, to, amount } if from == me => {
            format!("{:>22}  transfer to {}", minus(*amount), short(to))
        }
        Event::Transferred { from, amount, .. } => {
            format!("{:>22}  transfer from {}", plus(*amount), short(from))
        }
        Event::FaucetPaid { amount, .. } => format!("{:>22}  faucet", plus(*amount)),
        Event::EscrowLocked { job, amount, .. } => {
            format!("{:>22}  escrow locked for job {job}", minus(*amount))
        }
        Event::EscrowRefunded { job, amount, .. } => {
            format!("{:>22}  escrow refunded by job {job}", plus(*amount))
        }
        Event::TaskPaid {
            task,
            provider,
            amount,
            fee,
        } if provider == me => format!(
            "{:>22}  paid for task {task} (fee {})",
            plus(*amount),
            Tokens(*fee)
        ),
        Event::TaskPaid { task, fee, .. } => {
            format!("{:>22}  protocol fee on task {task}", plus(*fee))
        }
        Event::Staked { amount, bonded, .. } => format!(
            "{:>22}  staked (bonded {})",
            minus(*amount),
            Tokens(*bonded)
        ),
        Event::UnbondingStarted {
            amount, release_at, ..
        } => format!(
            "{:>22}  unbonding {} until {}",
            "",
            Tokens(*amount),
            format_time(*release_at)
        ),
        Event::StakeReleased { amount, .. } => {
            format!("{:>22}  unbonded stake released", plus(*amount))
        }
        Event::Slashed {
            provider,
            amount,
            to_requester,
            to_treasury,
            evidence,
            ..
        } if provider == me => format!(
            "{:>22}  stake slashed for a wrong result on task {} (to requester {}, treasury {})",
            minus(*amount),
            evidence.task,
            Tokens(*to_requester),
            Tokens(*to_treasury)
        ),
        Event::Slashed {
            requester,
            to_requester,
            evidence,
            ..
        } if requester == me => format!(
            "{:>22}  compensation for a wrong result on task {}",
            plus(*to_requester),
            evidence.task
        ),
        Event::Slashed {
            provider,
            to_treasury,
            ..
        } => format!(
            "{:>22}  treasury share of slashing {}",
            plus(*to_treasury),
            short(provider)
        ),
        Event::ActionFeePaid { payer, amount } if payer == me => {
            format!("{:>22}  fee per action", minus(*amount))
        }
        Event::ActionFeePaid { payer, amount } => {
            format!(
                "{:>22}  fee per action from {}",
                plus(*amount),
                short(payer)
            )
        }
        other => format!("{other:?}"),
    }
}

fn format_time(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_lines_read_from_the_accounts_side() {
        let (a, b) = (AccountId([1; 32]), AccountId([2; 32]));
        let t = Event::Transferred {
            from: a,
            to: b,
            amount: 1_500_000_000,
        };
        assert!(describe(&a, &t).contains("-1.5 GRID  transfer to 020202"));
        assert!(describe(&b, &t).contains("+1.5 GRID  transfer from 010101"));
        let paid = Event::TaskPaid {
            task: engine::TaskId { job: 3, index: 1 },
            provider: a,
            amount: 95,
            fee: 5,
        };
        assert!(describe(&a, &paid).contains("paid for task 3.1"));
        assert!(describe(&b, &paid).contains("+0.000000005 GRID  protocol fee"));
    }
}
