//! `gridmint wallet`: balances, transfers, history, staking and the dev faucet, for the requester's
//! key (default), any key file (`--key`) or a provider's (`--data-dir`).

use crate::requester;
use anyhow::Context;
use api::wire::{AccountView, BackingView, DelegationView, HistoryItem, NetworkView};
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
    /// Back a provider or a validator with tokens: you share its payments — a provider's for
    /// work, a validator's share of the fees — after its commission, and its slashes; its
    /// backing counts as its stake
    Delegate {
        /// The provider's or validator's account
        provider: AccountId,
        #[arg(value_parser = parse_amount)]
        amount: Amount,
        #[command(flatten)]
        opts: Opts,
    },
    /// Take tokens back from a provider or validator you back; they return after the unbonding
    /// delay and can be slashed until then
    Undelegate {
        /// The provider's or validator's account
        provider: AccountId,
        /// How much (default with --all: everything)
        #[arg(value_parser = parse_amount, required_unless_present = "all")]
        amount: Option<Amount>,
        /// Everything delegated to this provider or validator
        #[arg(long, conflicts_with = "amount")]
        all: bool,
        #[command(flatten)]
        opts: Opts,
    },
    /// Your delegations: what each is worth, what it earned, and each provider's or validator's
    /// realised return over the last day and week (default: your own account)
    Rewards {
        account: Option<AccountId>,
        #[command(flatten)]
        opts: Opts,
    },
    /// Withdraw what your delegations earned (from one provider or validator, or all)
    WithdrawRewards {
        /// The provider's or validator's account (default: every delegation with rewards)
        provider: Option<AccountId>,
        #[command(flatten)]
        opts: Opts,
    },
    /// Providers: set your commission, the part of each payment you keep before your
    /// delegators share the rest ("12.5%" or basis points "1250"; at most the network's maximum,
    /// 50% unless governance changed it; with delegators it rises at most 5 points a day by
    /// default). Validators: `gridmint validator commission`
    Commission {
        #[arg(value_parser = parse_commission)]
        commission: u32,
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
pub(crate) struct Opts {
    /// Coordinator URL, or a validator set's URLs separated by commas
    #[arg(
        long = "coordinator",
        env = "GRIDMINT_COORDINATOR",
        default_value = "http://127.0.0.1:7070"
    )]
    pub(crate) coordinator: String,
    /// Key file to act as (default: the requester key in $GRIDMINT_HOME or ~/.gridmint)
    #[arg(long, conflicts_with = "data_dir")]
    key: Option<PathBuf>,
    /// Act as the provider whose data dir this is
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long)]
    pub(crate) json: bool,
}

impl Opts {
    pub(crate) fn identity(&self) -> anyhow::Result<Identity> {
        let path = match (&self.key, &self.data_dir) {
            (Some(key), _) => key.clone(),
            (None, Some(dir)) => dir.join("provider.key"),
            (None, None) => requester::requester_key_path(),
        };
        Identity::load_or_create(&path).with_context(|| format!("key {}", path.display()))
    }
}

pub(crate) fn parse_amount(s: &str) -> Result<Amount, String> {
    parse_tokens(s)
}

/// A commission in basis points: "12.5%" or "1250".
pub(crate) fn parse_commission(s: &str) -> Result<u32, String> {
    let bad =
        || format!("{s:?} is not a commission: give a percentage (\"12.5%\") or basis points");
    match s.trim().strip_suffix('%') {
        Some(percent) => {
            let value: f64 = percent.trim().parse().map_err(|_| bad())?;
            if !(0.0..=100.0).contains(&value) {
                return Err(bad());
            }
            let bps = (value * 100.0).round();
            if (bps - value * 100.0).abs() > 1e-6 {
                return Err(format!(
                    "{s:?}: a commission is in whole basis points (0.01%)"
                ));
            }
            Ok(bps as u32)
        }
        None => s.trim().parse().map_err(|_| bad()),
    }
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
        WalletCommand::Delegate {
            provider,
            amount,
            opts,
        } => {
            let me = opts.identity()?;
            let resp = act(&opts, &me, Action::Delegate { provider, amount }).await?;
            print_events(&opts, &me.id(), &resp)?;
        }
        WalletCommand::Undelegate {
            provider,
            amount,
            all,
            opts,
        } => {
            let me = opts.identity()?;
            let amount = match amount {
                Some(amount) if !all => amount,
                _ => {
                    let view = Client::new(&opts.coordinator).account(me.id()).await?;
                    view.delegations
                        .iter()
                        .find(|d| d.provider == provider)
                        .map(|d| d.amount)
                        .with_context(|| format!("you have no delegation to {provider}"))?
                }
            };
            let resp = act(&opts, &me, Action::Undelegate { provider, amount }).await?;
            print_events(&opts, &me.id(), &resp)?;
        }
        WalletCommand::Rewards { account, opts } => {
            let client = Client::new(&opts.coordinator);
            let id = match account {
                Some(id) => id,
                None => opts.identity()?.id(),
            };
            let view = client.account(id).await?;
            let mut rows = Vec::new();
            for d in &view.delegations {
                // The pool backing the account, provider or validator alike.
                let backing = client
                    .account(d.provider)
                    .await
                    .ok()
                    .and_then(|a| a.backing);
                rows.push((d, backing));
            }
            if opts.json {
                let json: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|(d, b)| {
                        serde_json::json!({
                            "delegation": d,
                            "backing": b,
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "account": id,
                        "delegations": json,
                        "unbonding": view.delegation_unbonding,
                    }))?
                );
            } else {
                // Which of them are validators (none where the network predates rules 27).
                let validators: Vec<AccountId> = if rows.is_empty() {
                    Vec::new()
                } else {
                    client
                        .validators()
                        .await
                        .map(|v| v.validators.iter().map(|v| v.account).collect())
                        .unwrap_or_default()
                };
                print_rewards(&view, &rows, &validators);
            }
        }
        WalletCommand::WithdrawRewards { provider, opts } => {
            let me = opts.identity()?;
            let providers: Vec<AccountId> = match provider {
                Some(p) => vec![p],
                None => Client::new(&opts.coordinator)
                    .account(me.id())
                    .await?
                    .delegations
                    .iter()
                    .filter(|d| d.rewards > 0)
                    .map(|d| d.provider)
                    .collect(),
            };
            if providers.is_empty() && !opts.json {
                println!("nothing to withdraw");
            }
            for provider in providers {
                let resp = act(&opts, &me, Action::WithdrawRewards { provider }).await?;
                print_events(&opts, &me.id(), &resp)?;
            }
        }
        WalletCommand::Commission { commission, opts } => {
            let me = opts.identity()?;
            let resp = act(
                &opts,
                &me,
                Action::SetCommission {
                    commission_bps: commission,
                },
            )
            .await?;
            print_events(&opts, &me.id(), &resp)?;
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
pub(crate) async fn act(
    opts: &Opts,
    me: &Identity,
    action: Action,
) -> anyhow::Result<api::wire::ActionResponse> {
    let client = Client::new(&opts.coordinator);
    client.action(me, action).await.map_err(|e| {
        let code = match &e {
            api::ClientError::Api { body, .. } => body.error.as_str(),
            _ => "",
        };
        let hint = match (e.status(), code) {
            (Some(402), _) => " (see `gridmint wallet balance`)",
            (Some(403), "faucet_disabled") => {
                " (the faucet exists only on networks started with --dev)"
            }
            _ => "",
        };
        anyhow::anyhow!("{e}{hint}")
    })
}

/// The response as JSON, or its events as history lines.
fn print_events(
    opts: &Opts,
    me: &AccountId,
    resp: &api::wire::ActionResponse,
) -> anyhow::Result<()> {
    if opts.json {
        println!("{}", serde_json::to_string(resp)?);
    } else {
        for e in &resp.events {
            if !matches!(e, Event::ActionFeePaid { .. }) {
                println!("{}", describe(me, e).trim_start());
            }
        }
    }
    Ok(())
}

/// A percentage of basis points ("12.5%").
fn percent(bps: u64) -> String {
    format!("{}%", bps as f64 / 100.0)
}

fn print_rewards(
    view: &AccountView,
    rows: &[(&DelegationView, Option<BackingView>)],
    validators: &[AccountId],
) {
    if rows.is_empty() && view.delegation_unbonding.is_empty() {
        println!("{} backs no provider or validator", view.id);
        return;
    }
    for (d, backing) in rows {
        if validators.contains(&d.provider) {
            println!("validator  {}", d.provider);
        } else {
            println!("provider   {}", d.provider);
        }
        println!("  delegated   {}", Tokens(d.amount));
        println!("  rewards     {} (withdraw-rewards)", Tokens(d.rewards));
        println!("  commission  {}", percent(u64::from(d.commission_bps)));
        if let Some(b) = backing {
            let ret = |r: Option<u64>| r.map_or("not a full period yet".into(), percent);
            println!(
                "  backing     {} own + {} from {} delegator(s)",
                Tokens(b.own),
                Tokens(b.delegated),
                b.delegators
            );
            println!(
                "  realised    {} over the last day, {} over the last week",
                ret(b.return_day_bps),
                ret(b.return_week_bps)
            );
            println!(
                "  paid        {} to delegators ever; {} slashed from them",
                Tokens(b.rewards_paid),
                Tokens(b.slashed)
            );
        }
    }
    for u in &view.delegation_unbonding {
        println!(
            "unbonding  {} from {} (released at {})",
            Tokens(u.amount),
            u.provider,
            format_time(u.release_at)
        );
    }
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
    for d in &view.delegations {
        println!(
            "delegated  {} to {} (rewards {})",
            Tokens(d.amount),
            d.provider,
            Tokens(d.rewards)
        );
    }
    for u in &view.delegation_unbonding {
        println!(
            "unbonding  {} from {} (released at {})",
            Tokens(u.amount),
            u.provider,
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
    if view.in_reservations > 0 {
        println!(
            "reserved   {} (prepaid periods of your reservations)",
            Tokens(view.in_reservations)
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
        Event::Delegated {
            provider, amount, ..
        } => format!("{:>22}  delegated to {}", minus(*amount), short(provider)),
        Event::Undelegated {
            delegator,
            provider,
            amount,
            release_at,
        } if delegator == me => format!(
            "{:>22}  undelegating {} from {} until {}",
            "",
            Tokens(*amount),
            short(provider),
            format_time(*release_at)
        ),
        Event::Undelegated {
            delegator, amount, ..
        } => format!(
            "{:>22}  {} undelegated {}",
            "",
            short(delegator),
            Tokens(*amount)
        ),
        Event::RewardsWithdrawn {
            delegator,
            provider,
            amount,
        } if delegator == me => format!(
            "{:>22}  rewards from backing {}",
            plus(*amount),
            short(provider)
        ),
        Event::RewardsWithdrawn {
            delegator, amount, ..
        } => format!(
            "{:>22}  {} withdrew {} of rewards",
            "",
            short(delegator),
            Tokens(*amount)
        ),
        Event::DelegatorsPaid {
            amount, commission, ..
        } => format!(
            "{:>22}  {} to delegators (commission {})",
            "",
            Tokens(*amount),
            Tokens(*commission)
        ),
        Event::DelegationSlashed { amount, .. } => {
            format!("{:>22}  {} slashed from delegators", "", Tokens(*amount))
        }
        Event::RewardDustSwept {
            provider, amount, ..
        } => format!(
            "{:>22}  rounding dust of {}'s pool to the treasury",
            plus(*amount),
            short(provider)
        ),
        Event::CommissionSet { commission_bps, .. } => format!(
            "{:>22}  commission set to {}",
            "",
            percent(u64::from(*commission_bps))
        ),
        Event::Reserved {
            reservation, held, ..
        } => format!(
            "{:>22}  first period of reservation {reservation} prepaid",
            minus(*held)
        ),
        Event::ReservationPaid {
            reservation,
            provider,
            period,
            amount,
            fee,
        } if provider == me => format!(
            "{:>22}  paid for period {} of reservation {reservation} (fee {})",
            plus(*amount),
            period + 1,
            Tokens(*fee)
        ),
        Event::ReservationPaid {
            reservation, fee, ..
        } => format!(
            "{:>22}  protocol fee on reservation {reservation}",
            plus(*fee)
        ),
        Event::ReservationRefunded {
            reservation,
            amount,
            ..
        } => format!(
            "{:>22}  refunded by reservation {reservation}",
            plus(*amount)
        ),
        Event::ReservationRenewed {
            reservation,
            provider,
            period,
            amount,
            ..
        } if provider == me => format!(
            "{:>22}  reservation {reservation} renewed into period {} ({} held for it)",
            "",
            period + 1,
            Tokens(*amount)
        ),
        Event::ReservationRenewed {
            reservation,
            period,
            amount,
            ..
        } => format!(
            "{:>22}  period {} of reservation {reservation} prepaid",
            minus(*amount),
            period + 1
        ),
        Event::ValidatorPaid {
            validator,
            amount,
            share,
        } if validator == me => format!(
            "{:>22}  validator reward (share {})",
            plus(*amount),
            Tokens(*share)
        ),
        Event::ValidatorPaid {
            validator, share, ..
        } => format!(
            "{:>22}  validators' share of fees paid to {}",
            minus(*share),
            short(validator)
        ),
        other => format!("{other:?}"),
    }
}

pub(crate) fn format_time(ms: u64) -> String {
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
        let withdrawn = Event::RewardsWithdrawn {
            delegator: a,
            provider: b,
            amount: 2_000_000_000,
        };
        assert!(describe(&a, &withdrawn).contains("+2 GRID  rewards from backing 020202"));
        let set = Event::CommissionSet {
            provider: b,
            commission_bps: 1_250,
        };
        assert!(describe(&b, &set).contains("commission set to 12.5%"));
        let period = Event::ReservationPaid {
            reservation: 4,
            provider: a,
            period: 0,
            amount: 4_750_000_000,
            fee: 250_000_000,
        };
        assert!(
            describe(&a, &period)
                .contains("+4.75 GRID  paid for period 1 of reservation 4 (fee 0.25 GRID)")
        );
        assert!(describe(&b, &period).contains("+0.25 GRID  protocol fee on reservation 4"));
        let reward = Event::ValidatorPaid {
            validator: a,
            amount: 900_000_000,
            share: 1_000_000_000,
        };
        assert!(describe(&a, &reward).contains("+0.9 GRID  validator reward (share 1 GRID)"));
        assert!(
            describe(&b, &reward)
                .contains("-1 GRID  validators' share of fees paid to 010101010101…")
        );
    }

    #[test]
    fn commissions_parse_as_percentages_or_basis_points() {
        assert_eq!(parse_commission("12.5%"), Ok(1_250));
        assert_eq!(parse_commission(" 20 % "), Ok(2_000));
        assert_eq!(parse_commission("0%"), Ok(0));
        assert_eq!(parse_commission("1250"), Ok(1_250));
        for bad in ["12.345%", "-1%", "101%", "abc", "1.5", ""] {
            assert!(parse_commission(bad).is_err(), "{bad}");
        }
    }
}
