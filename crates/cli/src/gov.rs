//! `gridmint gov`: stake-weighted proposals to change the network's parameters or spend from the
//! treasury (rules 25; see `engine::gov`), and votes on them.

use crate::wallet::{Opts, act, format_time, parse_amount, parse_commission};
use anyhow::Context;
use api::Client;
use api::wire::ProposalView;
use engine::{
    AccountId, Action, Amount, Event, ParamChange, ProposalStatus, ScheduleParams, StakingParams,
    Tokens, VoteOption,
};
use std::time::Duration;

#[derive(clap::Subcommand, Debug)]
pub enum GovCommand {
    /// Propose parameter changes and treasury spends; the deposit is held until the vote ends
    /// (returned unless vetoed)
    Propose(Box<ProposeArgs>),
    /// Vote on an open proposal with your stake (a delegator's vote replaces its provider's for
    /// its delegation); vote again to change it
    Vote {
        proposal: u64,
        #[arg(value_enum)]
        option: VoteArg,
        #[command(flatten)]
        opts: Opts,
    },
    /// The governance parameters and the newest proposals
    List {
        #[command(flatten)]
        opts: Opts,
    },
    /// One proposal: its changes, votes and tally
    Show {
        proposal: u64,
        #[command(flatten)]
        opts: Opts,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum VoteArg {
    Yes,
    No,
    Abstain,
    /// No, and burn the proposal's deposit
    Veto,
}

#[derive(clap::Args, Debug)]
pub struct ProposeArgs {
    /// What the proposal is about, in a line
    #[arg(long)]
    title: String,
    /// The deposit it holds (default: the least the network takes)
    #[arg(long, value_parser = parse_amount)]
    deposit: Option<Amount>,
    /// The protocol fee on each task payment ("2%" or basis points)
    #[arg(long, value_parser = parse_commission)]
    fee: Option<u32>,
    /// The stake a provider needs
    #[arg(long, value_parser = parse_amount)]
    min_stake: Option<Amount>,
    /// What each logged action costs its signer
    #[arg(long, value_parser = parse_amount)]
    action_fee: Option<Amount>,
    /// How long unstaked tokens stay slashable ("10m", "7days")
    #[arg(long, value_parser = humantime::parse_duration)]
    unbonding: Option<Duration>,
    /// The share of lone trusted results spot-checked ("5%" or basis points)
    #[arg(long, value_parser = parse_commission)]
    spot_check: Option<u32>,
    /// What the faucet gives (development networks)
    #[arg(long, value_parser = parse_amount)]
    faucet: Option<Amount>,
    /// How long later proposals are open for votes
    #[arg(long, value_parser = humantime::parse_duration)]
    voting_period: Option<Duration>,
    /// Of all voting power, the share that must vote ("33.4%")
    #[arg(long, value_parser = parse_commission)]
    quorum: Option<u32>,
    /// Pay from the treasury: ACCOUNT=AMOUNT (repeatable)
    #[arg(long, value_parser = parse_spend)]
    spend: Vec<(AccountId, Amount)>,
    /// Add a validator (it must have the minimum stake bonded when the vote passes):
    /// ACCOUNT=http://host:port, power 1, or ACCOUNT=http://host:port,POWER (repeatable)
    #[arg(long, value_parser = parse_validator)]
    add_validator: Vec<engine::Validator>,
    /// Remove a validator: its account (repeatable)
    #[arg(long)]
    remove_validator: Vec<AccountId>,
    /// If it passes, make the changes this long after the vote ends rather than at once
    /// ("1h", "2days"; at most a year)
    #[arg(long, value_parser = humantime::parse_duration)]
    delay: Option<Duration>,
    #[command(flatten)]
    staking: StakingFlags,
    #[command(flatten)]
    scheduling: SchedulingFlags,
    #[command(flatten)]
    opts: Opts,
}

/// Rules 27: changes to the scheduler's tunables; any given make one
/// `ParamChange::Scheduling`, the tunables in force with these replaced.
#[derive(clap::Args, Debug, Default)]
struct SchedulingFlags {
    /// Tasks a provider may hold beyond its slots, per slot (1 to 4096)
    #[arg(long)]
    queue_per_slot: Option<u32>,
    /// Estimated work per slot given beyond a provider's free slots ("20ms"; at most a minute)
    #[arg(long, value_parser = humantime::parse_duration)]
    prefetch: Option<Duration>,
    /// How long a new job's tasks may wait for a better-suited provider ("250ms")
    #[arg(long, value_parser = humantime::parse_duration)]
    hold: Option<Duration>,
    /// How much more suitable (percent, 100 to 1000) a waiting provider must be to hold a job
    #[arg(long)]
    hold_margin_pct: Option<u32>,
    /// A job whose deadline is closer than this is urgent ("1m"; at most a day)
    #[arg(long, value_parser = humantime::parse_duration)]
    urgent: Option<Duration>,
    /// How long after a run's wall limit before it is timed out ("10s"; a second to a day)
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout_grace: Option<Duration>,
}

impl SchedulingFlags {
    /// The change these flags make to `in_force` (`None` before rules 27), if any flag is given.
    fn change(&self, in_force: Option<&ScheduleParams>) -> anyhow::Result<Option<ParamChange>> {
        let SchedulingFlags {
            queue_per_slot,
            prefetch,
            hold,
            hold_margin_pct,
            urgent,
            timeout_grace,
        } = self;
        if queue_per_slot.is_none()
            && prefetch.is_none()
            && hold.is_none()
            && hold_margin_pct.is_none()
            && urgent.is_none()
            && timeout_grace.is_none()
        {
            return Ok(None);
        }
        let mut next = in_force
            .context("this network's scheduler is not governed (that came with rules 27)")?
            .clone();
        if let Some(n) = queue_per_slot {
            next.queue_per_slot = *n;
        }
        if let Some(d) = prefetch {
            next.prefetch_ms = millis(*d);
        }
        if let Some(d) = hold {
            next.hold_ms = millis(*d);
        }
        if let Some(pct) = hold_margin_pct {
            next.hold_margin_pct = *pct;
        }
        if let Some(d) = urgent {
            next.urgent_ms = millis(*d);
        }
        if let Some(d) = timeout_grace {
            next.timeout_grace_ms = millis(*d);
        }
        next.validate().map_err(|e| anyhow::anyhow!(e))?;
        Ok(Some(ParamChange::Scheduling(next)))
    }
}

/// Rules 27: changes to the staking rules; any given make one `ParamChange::Staking`, the rules
/// in force with these replaced.
#[derive(clap::Args, Debug, Default)]
struct StakingFlags {
    /// The least that can be delegated at once
    #[arg(long, value_parser = parse_amount)]
    min_delegation: Option<Amount>,
    /// The highest commission a provider or validator may set ("20%" or basis points); pools
    /// above it are cut to it
    #[arg(long, value_parser = parse_commission)]
    max_commission: Option<u32>,
    /// The most a commission may rise at once while its pool has delegators ("5%")
    #[arg(long, value_parser = parse_commission)]
    commission_step: Option<u32>,
    /// How long after a raise of a commission the next may come while its pool has delegators
    /// ("1d")
    #[arg(long, value_parser = humantime::parse_duration)]
    commission_period: Option<Duration>,
    /// The validators' share of every fee the treasury collects ("50%")
    #[arg(long, value_parser = parse_commission)]
    validator_fee_share: Option<u32>,
    /// How often the validators' share of the fees is paid out ("1m"; a second to a year)
    #[arg(long, value_parser = humantime::parse_duration)]
    validator_payout_every: Option<Duration>,
}

impl StakingFlags {
    /// The change these flags make to `in_force` (the rules the network has now; `None` before
    /// rules 27), if any flag is given.
    fn change(&self, in_force: Option<&StakingParams>) -> anyhow::Result<Option<ParamChange>> {
        let StakingFlags {
            min_delegation,
            max_commission,
            commission_step,
            commission_period,
            validator_fee_share,
            validator_payout_every,
        } = self;
        if min_delegation.is_none()
            && max_commission.is_none()
            && commission_step.is_none()
            && commission_period.is_none()
            && validator_fee_share.is_none()
            && validator_payout_every.is_none()
        {
            return Ok(None);
        }
        let mut next = in_force
            .context("this network has no staking rules to change (they came with rules 27)")?
            .clone();
        if let Some(amount) = min_delegation {
            next.min_delegation = *amount;
        }
        if let Some(bps) = max_commission {
            next.max_commission_bps = *bps;
        }
        if let Some(bps) = commission_step {
            next.commission_step_bps = *bps;
        }
        if let Some(d) = commission_period {
            next.commission_period_ms = millis(*d);
        }
        if let Some(bps) = validator_fee_share {
            next.validator_fee_bps = *bps;
        }
        if let Some(d) = validator_payout_every {
            next.validator_payout_every_ms = millis(*d);
        }
        next.validate().map_err(|e| anyhow::anyhow!(e))?;
        Ok(Some(ParamChange::Staking(next)))
    }
}

fn parse_validator(s: &str) -> Result<engine::Validator, String> {
    let (account, rest) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: give ACCOUNT=http://host:port[,POWER]"))?;
    let account: AccountId = account
        .trim()
        .parse()
        .map_err(|_| format!("{account:?} is not an account"))?;
    let (address, power) = match rest.rsplit_once(',') {
        Some((address, power)) => (
            address,
            power
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("{power:?} is not a voting power"))?,
        ),
        None => (rest, 1),
    };
    let address = address.trim();
    if !(address.starts_with("http://") || address.starts_with("https://")) {
        return Err(format!(
            "{address:?}: give the validator's http://host:port"
        ));
    }
    Ok(engine::Validator {
        account,
        power,
        address: address.to_string(),
        stake: 0,
    })
}

fn parse_spend(s: &str) -> Result<(AccountId, Amount), String> {
    let (to, amount) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: give ACCOUNT=AMOUNT"))?;
    let to: AccountId = to
        .trim()
        .parse()
        .map_err(|_| format!("{to:?} is not an account"))?;
    Ok((to, parse_amount(amount.trim())?))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub async fn run(cmd: GovCommand) -> anyhow::Result<()> {
    match cmd {
        GovCommand::Propose(args) => propose(*args).await,
        GovCommand::Vote {
            proposal,
            option,
            opts,
        } => {
            let me = opts.identity()?;
            let option = match option {
                VoteArg::Yes => VoteOption::Yes,
                VoteArg::No => VoteOption::No,
                VoteArg::Abstain => VoteOption::Abstain,
                VoteArg::Veto => VoteOption::NoWithVeto,
            };
            let resp = act(&opts, &me, Action::Vote { proposal, option }).await?;
            if opts.json {
                println!("{}", serde_json::to_string(&resp)?);
            } else {
                println!("voted {option:?} on proposal {proposal}");
            }
            Ok(())
        }
        GovCommand::List { opts } => {
            let view = Client::new(&opts.coordinator).proposals().await?;
            if opts.json {
                println!("{}", serde_json::to_string_pretty(&view)?);
                return Ok(());
            }
            let p = &view.params;
            println!(
                "governance: deposit {}, voting {}, quorum {}, threshold {}, veto {}",
                Tokens(p.min_deposit),
                humantime::format_duration(Duration::from_millis(p.voting_period_ms)),
                percent(p.quorum_bps),
                percent(p.threshold_bps),
                percent(p.veto_bps)
            );
            if let Some(s) = &view.staking {
                println!("{}", describe_change(&ParamChange::Staking(s.clone())));
            }
            if let Some(s) = &view.scheduling {
                println!("{}", describe_change(&ParamChange::Scheduling(s.clone())));
            }
            for change in &view.validator_changes_queued {
                println!(
                    "queued: {} (passed; the leader makes one change of the set per block)",
                    describe_change(&ParamChange::Validator(change.clone()))
                );
            }
            if view.proposals.is_empty() {
                println!("no proposals");
            }
            for v in &view.proposals {
                println!("{}", summary(v));
            }
            Ok(())
        }
        GovCommand::Show { proposal, opts } => {
            let v = Client::new(&opts.coordinator).proposal(proposal).await?;
            if opts.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            println!("{}", summary(&v));
            for change in &v.proposal.changes {
                println!("  change  {}", describe_change(change));
            }
            let t = &v.tally;
            println!(
                "  tally   yes {}, no {}, abstain {}, veto {} of {} voting power",
                Tokens(t.yes),
                Tokens(t.no),
                Tokens(t.abstain),
                Tokens(t.veto),
                Tokens(t.total)
            );
            for (voter, option) in &v.proposal.votes {
                println!("  vote    {voter} {option:?}");
            }
            Ok(())
        }
    }
}

async fn propose(args: ProposeArgs) -> anyhow::Result<()> {
    let opts = &args.opts;
    let client = Client::new(&opts.coordinator);
    let network = client.network().await?;
    let governance = client.proposals().await?;
    let gov = governance.params;
    let mut changes = Vec::new();
    if let Some(bps) = args.fee {
        changes.push(ParamChange::FeeBps { bps });
    }
    if let Some(amount) = args.min_stake {
        changes.push(ParamChange::MinStake { amount });
    }
    if let Some(amount) = args.action_fee {
        changes.push(ParamChange::ActionFee { amount });
    }
    if let Some(d) = args.unbonding {
        changes.push(ParamChange::UnbondingDelay { ms: millis(d) });
    }
    if let Some(bps) = args.spot_check {
        changes.push(ParamChange::Verification(engine::VerifyParams {
            spot_check_bps: bps,
            ..network.verification.clone()
        }));
    }
    if let Some(amount) = args.faucet {
        changes.push(ParamChange::FaucetAmount { amount });
    }
    if args.voting_period.is_some() || args.quorum.is_some() {
        let mut next = gov.clone();
        if let Some(d) = args.voting_period {
            next.voting_period_ms = millis(d);
        }
        if let Some(q) = args.quorum {
            next.quorum_bps = q;
        }
        changes.push(ParamChange::Governance(next));
    }
    for v in &args.add_validator {
        changes.push(ParamChange::Validator(engine::ValidatorChange::Add(
            v.clone(),
        )));
    }
    for account in &args.remove_validator {
        changes.push(ParamChange::Validator(engine::ValidatorChange::Remove(
            *account,
        )));
    }
    if let Some(change) = args.staking.change(governance.staking.as_ref())? {
        changes.push(change);
    }
    if let Some(change) = args.scheduling.change(governance.scheduling.as_ref())? {
        changes.push(change);
    }
    for (to, amount) in &args.spend {
        changes.push(ParamChange::TreasurySpend {
            to: *to,
            amount: *amount,
        });
    }
    anyhow::ensure!(
        !changes.is_empty(),
        "a proposal needs a change: --fee, --min-stake, --action-fee, --unbonding, --spot-check, \
         --faucet, --voting-period, --quorum, --spend, --add-validator, --remove-validator, \
         --min-delegation, --max-commission, --commission-step, --commission-period, \
         --validator-fee-share or --validator-payout-every"
    );
    let me = opts.identity()?;
    let deposit = args.deposit.unwrap_or(gov.min_deposit);
    let resp = act(
        opts,
        &me,
        match args.delay {
            None => Action::Propose {
                title: args.title.clone(),
                changes,
                deposit,
            },
            Some(d) => Action::ProposeWithDelay {
                title: args.title.clone(),
                changes,
                deposit,
                delay_ms: millis(d),
            },
        },
    )
    .await
    .context("proposing")?;
    if opts.json {
        println!("{}", serde_json::to_string(&resp)?);
        return Ok(());
    }
    for e in &resp.events {
        if let Event::Proposed {
            proposal,
            voting_end,
            ..
        } = e
        {
            println!(
                "proposal {proposal}: open for votes until {} (deposit {} held)",
                format_time(*voting_end),
                Tokens(deposit)
            );
            if let Some(d) = args.delay {
                println!(
                    "if it passes, its changes take effect at {}",
                    format_time(voting_end.saturating_add(millis(d)))
                );
            }
        }
    }
    Ok(())
}

/// `gridmint market`: the price index.
pub async fn market(coordinator: &str, json: bool) -> anyhow::Result<()> {
    let view = Client::new(coordinator).market().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(());
    }
    if view.classes.is_empty() {
        println!("no accepted work has been paid yet");
        return Ok(());
    }
    println!(
        "{:<24} {:>9} {:>12} {:>12} {:>12} {:>12}  since",
        "class", "payments", "median", "mean", "low", "high"
    );
    for i in &view.classes {
        println!(
            "{:<24} {:>9} {:>12} {:>12} {:>12} {:>12}  {}",
            i.class,
            i.payments,
            i.median,
            i.mean,
            i.low,
            i.high,
            format_time(i.since)
        );
    }
    println!("(base units per fuel; a job may ask max_price = \"market + 10%\")");
    Ok(())
}

fn percent(bps: u32) -> String {
    format!("{}%", f64::from(bps) / 100.0)
}

fn summary(v: &ProposalView) -> String {
    let p = &v.proposal;
    let status = match &p.status {
        ProposalStatus::Voting => match v.effective_at {
            Some(at) => format!(
                "voting until {}, effective {}",
                format_time(p.voting_end),
                format_time(at)
            ),
            None => format!("voting until {}", format_time(p.voting_end)),
        },
        ProposalStatus::Passed => "passed".into(),
        ProposalStatus::Failed(why) => format!("passed, not executed: {why}"),
        ProposalStatus::Rejected(why) => format!("rejected: {why}"),
        ProposalStatus::Vetoed => "vetoed (deposit burned)".into(),
        ProposalStatus::Scheduled { at } => format!("passed, takes effect at {}", format_time(*at)),
    };
    format!(
        "#{:<4} {status:<40} {}  (yes {}, no {}, veto {})",
        p.id,
        p.title,
        Tokens(v.tally.yes),
        Tokens(v.tally.no),
        Tokens(v.tally.veto)
    )
}

fn describe_change(change: &ParamChange) -> String {
    match change {
        ParamChange::FeeBps { bps } => format!("protocol fee {}", percent(*bps)),
        ParamChange::MinStake { amount } => format!("minimum stake {}", Tokens(*amount)),
        ParamChange::ActionFee { amount } => format!("fee per action {}", Tokens(*amount)),
        ParamChange::UnbondingDelay { ms } => format!(
            "unbonding delay {}",
            humantime::format_duration(Duration::from_millis(*ms))
        ),
        ParamChange::Slash(s) => format!(
            "slash {} (requester {}, treasury {})",
            percent(s.fraction_bps),
            percent(s.requester_bps),
            percent(s.treasury_bps)
        ),
        ParamChange::FaucetAmount { amount } => format!("faucet {}", Tokens(*amount)),
        ParamChange::Verification(v) => format!(
            "verification: spot checks {}, trust after {}",
            percent(v.spot_check_bps),
            v.trust_after
        ),
        ParamChange::Governance(g) => format!(
            "governance: deposit {}, voting {}, quorum {}, threshold {}, veto {}",
            Tokens(g.min_deposit),
            humantime::format_duration(Duration::from_millis(g.voting_period_ms)),
            percent(g.quorum_bps),
            percent(g.threshold_bps),
            percent(g.veto_bps)
        ),
        ParamChange::TreasurySpend { to, amount } => {
            format!("pay {} from the treasury to {to}", Tokens(*amount))
        }
        ParamChange::Validator(engine::ValidatorChange::Add(v)) => format!(
            "add validator {} (power {}) at {}",
            v.account, v.power, v.address
        ),
        ParamChange::Validator(engine::ValidatorChange::Remove(account)) => {
            format!("remove validator {account}")
        }
        ParamChange::Scheduling(s) => format!(
            "scheduling: queue {} per slot, prefetch {}, hold {} at a margin of {}%, urgent \
             within {}, timeout grace {}",
            s.queue_per_slot,
            humantime::format_duration(Duration::from_millis(s.prefetch_ms)),
            humantime::format_duration(Duration::from_millis(s.hold_ms)),
            s.hold_margin_pct,
            humantime::format_duration(Duration::from_millis(s.urgent_ms)),
            humantime::format_duration(Duration::from_millis(s.timeout_grace_ms))
        ),
        ParamChange::Staking(s) => format!(
            "staking: minimum delegation {}, commission at most {} (rising at most {} per {}), \
             validators' share of fees {} paid every {}",
            Tokens(s.min_delegation),
            percent(s.max_commission_bps),
            percent(s.commission_step_bps),
            humantime::format_duration(Duration::from_millis(s.commission_period_ms)),
            percent(s.validator_fee_bps),
            humantime::format_duration(Duration::from_millis(s.validator_payout_every_ms))
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn spends_parse() {
        let to = AccountId([7; 32]);
        assert_eq!(parse_spend(&format!("{to}=1.5")), Ok((to, 1_500_000_000)));
        assert!(parse_spend("nope").is_err());
        assert!(parse_spend("abc=1").is_err());
        let v = parse_validator(&format!("{to}=http://10.0.0.5:7700,3")).unwrap();
        assert_eq!(
            (v.account, v.power, v.address.as_str()),
            (to, 3, "http://10.0.0.5:7700")
        );
        let v = parse_validator(&format!("{to}=http://10.0.0.5:7700")).unwrap();
        assert_eq!(v.power, 1);
        assert!(parse_validator(&format!("{to}=10.0.0.5:7700")).is_err());
        assert!(parse_validator(&format!("{to}=http://h:1,x")).is_err());
    }

    /// The staking and scheduling flags as `gov propose` parses them.
    #[derive(clap::Parser, Debug)]
    struct Flags {
        #[command(flatten)]
        staking: StakingFlags,
        #[command(flatten)]
        scheduling: SchedulingFlags,
    }

    #[test]
    fn scheduling_flags_replace_their_fields_of_the_tunables_in_force() {
        let flags = |args: &[&str]| {
            Flags::try_parse_from([&["propose"][..], args].concat())
                .unwrap()
                .scheduling
        };
        let in_force = ScheduleParams::default();
        assert_eq!(flags(&[]).change(Some(&in_force)).unwrap(), None);
        assert_eq!(
            flags(&[
                "--queue-per-slot",
                "16",
                "--prefetch",
                "50ms",
                "--hold",
                "1s",
                "--hold-margin-pct",
                "150",
                "--urgent",
                "2m",
                "--timeout-grace",
                "30s",
            ])
            .change(Some(&in_force))
            .unwrap(),
            Some(ParamChange::Scheduling(ScheduleParams {
                queue_per_slot: 16,
                prefetch_ms: 50,
                hold_ms: 1_000,
                hold_margin_pct: 150,
                urgent_ms: 120_000,
                timeout_grace_ms: 30_000,
            }))
        );
        let err = flags(&["--hold", "1s"]).change(None).unwrap_err();
        assert!(err.to_string().contains("rules 27"), "{err}");
        let err = flags(&["--queue-per-slot", "0"])
            .change(Some(&in_force))
            .unwrap_err();
        assert!(err.to_string().contains("queue_per_slot"), "{err}");
    }

    fn staking_flags(args: &[&str]) -> StakingFlags {
        Flags::try_parse_from([&["propose"][..], args].concat())
            .unwrap()
            .staking
    }

    #[test]
    fn staking_flags_replace_their_fields_of_the_rules_in_force() {
        let in_force = StakingParams {
            commission_step_bps: 1_000,
            validator_payout_every_ms: 1_000,
            ..StakingParams::for_min_stake(100_000_000_000)
        };
        assert_eq!(staking_flags(&[]).change(Some(&in_force)).unwrap(), None);
        assert_eq!(
            staking_flags(&["--max-commission", "20%"])
                .change(Some(&in_force))
                .unwrap(),
            Some(ParamChange::Staking(StakingParams {
                max_commission_bps: 2_000,
                ..in_force.clone()
            }))
        );
        assert_eq!(
            staking_flags(&[
                "--min-delegation",
                "2",
                "--max-commission",
                "3000",
                "--commission-step",
                "2.5%",
                "--commission-period",
                "12h",
                "--validator-fee-share",
                "40%",
                "--validator-payout-every",
                "5m",
            ])
            .change(Some(&in_force))
            .unwrap(),
            Some(ParamChange::Staking(StakingParams {
                min_delegation: 2_000_000_000,
                max_commission_bps: 3_000,
                commission_step_bps: 250,
                commission_period_ms: 12 * 3_600_000,
                validator_fee_bps: 4_000,
                validator_payout_every_ms: 300_000,
            }))
        );
        // Before rules 27 there is nothing to change; a payout period under a second is refused
        // before anything is signed.
        let err = staking_flags(&["--max-commission", "20%"])
            .change(None)
            .unwrap_err();
        assert!(err.to_string().contains("rules 27"), "{err}");
        let err = staking_flags(&["--validator-payout-every", "10ms"])
            .change(Some(&in_force))
            .unwrap_err();
        assert!(err.to_string().contains("validator_payout_every"), "{err}");
        assert!(Flags::try_parse_from(["propose", "--validator-fee-share", "120%"]).is_err());
    }

    #[test]
    fn changes_read_in_words() {
        assert_eq!(
            describe_change(&ParamChange::FeeBps { bps: 250 }),
            "protocol fee 2.5%"
        );
    }
}
