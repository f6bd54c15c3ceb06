//! `gridmint reserve`: reserved capacity (rules 26; see `engine::reserve`). A requester reserves
//! task slots for a number of periods at a price per slot per period (the first period prepaid);
//! providers that meet its requirements accept slots as leases, run the requester's tasks in them
//! first (those tasks are paid by the lease, not from their jobs' escrow) and are paid each period
//! at its end; either side may cancel.

use crate::wallet::{Opts, act, format_time, parse_amount};
use anyhow::Context;
use api::Client;
use api::wire::{ReservationStatus, ReservationView};
use engine::reserve::ReservationSpec;
use engine::{Action, Amount, Event, Tokens};
use std::time::Duration;

#[derive(clap::Subcommand, Debug)]
pub enum ReserveCommand {
    /// Reserve task slots for some periods at a price per slot per period; the first period of
    /// every slot is prepaid now, and slots no provider accepts within a period are refunded
    Create(Box<CreateArgs>),
    /// Providers: lease slots of an open reservation (sign with the provider's key:
    /// --data-dir DIR); you are paid its price per slot at the end of every period you hold them
    Accept {
        reservation: u64,
        /// How many slots (default: every open slot your provider has room for)
        #[arg(long)]
        slots: Option<u32>,
        #[command(flatten)]
        opts: Opts,
    },
    /// Cancel your reservation: open slots are refunded now, leases run to the end of their
    /// current period (and are paid for it) and are not renewed
    Cancel {
        reservation: u64,
        #[command(flatten)]
        opts: Opts,
    },
    /// Providers: give up your lease now (--data-dir DIR); its current period is refunded to the
    /// requester
    Leave {
        reservation: u64,
        #[command(flatten)]
        opts: Opts,
    },
    /// The newest reservations
    List {
        /// Only yours (the requester key, or --key / --data-dir)
        #[arg(long)]
        mine: bool,
        /// Only those your provider holds a lease of now (with --data-dir)
        #[arg(long)]
        leased: bool,
        #[command(flatten)]
        opts: Opts,
    },
    /// One reservation: its requirements, escrow and leases
    Show {
        reservation: u64,
        #[command(flatten)]
        opts: Opts,
    },
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// Task slots to reserve, over one or more providers
    #[arg(long)]
    slots: u32,
    /// The length of one period ("1h", "30m", "2s"; at least a second)
    #[arg(long, value_parser = parse_period)]
    period: Duration,
    /// How many periods each lease runs
    #[arg(long)]
    periods: u32,
    /// What one slot costs per period, in GRID ("5", "0.25") or base units ("1500 base")
    #[arg(long, value_parser = parse_amount)]
    price: Amount,
    /// Only providers with at least this many cores
    #[arg(long, default_value_t = 0)]
    cores: u32,
    /// Only providers with at least this much memory ("4GiB")
    #[arg(long, value_parser = parse_memory)]
    memory: Option<u64>,
    /// Only providers that declare a GPU
    #[arg(long)]
    gpu: bool,
    /// Only providers in this region
    #[arg(long)]
    region: Option<String>,
    #[command(flatten)]
    opts: Opts,
}

fn parse_period(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (expected e.g. \"1h\" or \"30s\")"))
}

fn parse_memory(s: &str) -> Result<u64, String> {
    jobspec::parse_size(s).map_err(|e| format!("{e:#}"))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub async fn run(cmd: ReserveCommand) -> anyhow::Result<()> {
    match cmd {
        ReserveCommand::Create(args) => create(*args).await,
        ReserveCommand::Accept {
            reservation,
            slots,
            opts,
        } => accept(reservation, slots, &opts).await,
        ReserveCommand::Cancel { reservation, opts } => {
            let me = opts.identity()?;
            let resp = act(&opts, &me, Action::CancelReservation { reservation })
                .await
                .with_context(|| format!("cancelling reservation {reservation}"))?;
            if opts.json {
                println!("{}", serde_json::to_string(&resp)?);
                return Ok(());
            }
            let refunded = refunded(&resp.events, reservation);
            println!(
                "reservation {reservation} cancelled: {} refunded now; its leases run to the end \
                 of their current period and are not renewed",
                Tokens(refunded)
            );
            Ok(())
        }
        ReserveCommand::Leave { reservation, opts } => {
            let me = opts.identity()?;
            let resp = act(&opts, &me, Action::LeaveReservation { reservation })
                .await
                .with_context(|| {
                    format!("leaving reservation {reservation} as provider {}", me.id())
                })?;
            if opts.json {
                println!("{}", serde_json::to_string(&resp)?);
                return Ok(());
            }
            println!(
                "left reservation {reservation}: its current period ({}) went back to the \
                 requester",
                Tokens(refunded(&resp.events, reservation))
            );
            Ok(())
        }
        ReserveCommand::List { mine, leased, opts } => {
            let me = if mine || leased {
                Some(opts.identity()?.id())
            } else {
                None
            };
            let owner = me.filter(|_| mine);
            let provider = me.filter(|_| leased);
            let views = Client::new(&opts.coordinator)
                .reservations(owner, provider)
                .await?;
            if opts.json {
                println!("{}", serde_json::to_string_pretty(&views)?);
                return Ok(());
            }
            if views.is_empty() {
                println!("no reservations");
            }
            for v in &views {
                println!("{}", summary(v));
            }
            Ok(())
        }
        ReserveCommand::Show { reservation, opts } => {
            let v = Client::new(&opts.coordinator)
                .reservation(reservation)
                .await?;
            if opts.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            print_details(&v);
            Ok(())
        }
    }
}

async fn create(args: CreateArgs) -> anyhow::Result<()> {
    let opts = &args.opts;
    let spec = ReservationSpec {
        slots: args.slots,
        cores: args.cores,
        memory_bytes: args.memory.unwrap_or(0),
        gpu: args.gpu,
        region: args.region.clone(),
        period_ms: millis(args.period),
        periods: args.periods,
        price_per_slot: args.price,
    };
    // The network says the same; this says it before anything is signed.
    spec.validate()
        .map_err(|e| anyhow::anyhow!("invalid reservation: {e}"))?;
    let me = opts.identity()?;
    let resp = act(opts, &me, Action::Reserve(spec.clone()))
        .await
        .context("reserving")?;
    if opts.json {
        println!("{}", serde_json::to_string(&resp)?);
        return Ok(());
    }
    for e in &resp.events {
        if let Event::Reserved {
            reservation,
            slots,
            held,
            open_until,
            ..
        } = e
        {
            println!(
                "reservation {reservation}: {slots} slot(s) × {} per {} for {} period(s); {} \
                 prepaid (the first period), open for providers until {}",
                Tokens(spec.price_per_slot),
                period(spec.period_ms),
                spec.periods,
                Tokens(*held),
                format_time(*open_until)
            );
        }
    }
    Ok(())
}

async fn accept(reservation: u64, slots: Option<u32>, opts: &Opts) -> anyhow::Result<()> {
    let me = opts.identity()?;
    let client = Client::new(&opts.coordinator);
    let slots = match slots {
        Some(n) => n,
        None => {
            let r = client.reservation(reservation).await?;
            let provider = client.provider(me.id()).await.map_err(|e| {
                if e.status() == Some(404) {
                    anyhow::anyhow!(
                        "{} is not a registered provider: accept with the provider's key \
                         (--data-dir DIR)",
                        me.id()
                    )
                } else {
                    e.into()
                }
            })?;
            let leased: u32 = client
                .reservations(None, Some(me.id()))
                .await?
                .iter()
                .flat_map(|v| v.leases.iter())
                .filter(|l| l.provider == me.id())
                .map(|l| l.slots)
                .sum();
            let room = provider.spec.slots.saturating_sub(leased);
            anyhow::ensure!(
                r.open_slots > 0,
                "reservation {reservation} has no open slots ({}: {})",
                status_word(&r),
                status_words(&r)
            );
            anyhow::ensure!(
                room > 0,
                "your provider's {} slots are all leased already",
                provider.spec.slots
            );
            r.open_slots.min(room)
        }
    };
    let resp = act(opts, &me, Action::AcceptReservation { reservation, slots })
        .await
        .with_context(|| {
            format!(
                "accepting reservation {reservation} as provider {}",
                me.id()
            )
        })?;
    if opts.json {
        println!("{}", serde_json::to_string(&resp)?);
        return Ok(());
    }
    for e in &resp.events {
        if let Event::ReservationAccepted {
            slots, period_end, ..
        } = e
        {
            println!(
                "leased {slots} slot(s) of reservation {reservation}: its first period ends at {}; \
                 each period is paid at its end, less the protocol fee",
                format_time(*period_end)
            );
        }
    }
    Ok(())
}

/// What `events` refunded of `reservation`.
fn refunded(events: &[Event], reservation: u64) -> Amount {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ReservationRefunded {
                reservation: r,
                amount,
                ..
            } if *r == reservation => Some(*amount),
            _ => None,
        })
        .fold(0, Amount::saturating_add)
}

/// A period in words ("2s", "1h").
fn period(ms: u64) -> String {
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

fn bytes(n: u64) -> String {
    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;
    if n >= GIB && n.is_multiple_of(GIB) {
        format!("{}GiB", n / GIB)
    } else if n >= MIB && n.is_multiple_of(MIB) {
        format!("{}MiB", n / MIB)
    } else {
        format!("{n} bytes")
    }
}

/// What a slot's provider must have, in words.
fn requirements(v: &ReservationView) -> String {
    let mut out = Vec::new();
    if v.cores > 0 {
        out.push(format!("{}+ cores", v.cores));
    }
    if v.memory_bytes > 0 {
        out.push(format!("{}+ memory", bytes(v.memory_bytes)));
    }
    if v.gpu {
        out.push("a GPU".into());
    }
    if let Some(region) = &v.region {
        out.push(format!("region {region}"));
    }
    if out.is_empty() {
        "any provider".into()
    } else {
        out.join(", ")
    }
}

/// Where it stands, in a word.
fn status_word(v: &ReservationView) -> &'static str {
    match v.status {
        ReservationStatus::Open => "open",
        ReservationStatus::Active => "active",
        ReservationStatus::Cancelling => "cancelling",
        ReservationStatus::Ended => "ended",
    }
}

/// Where it stands, in words.
fn status_words(v: &ReservationView) -> String {
    let open = (v.open_slots > 0).then(|| {
        format!(
            "{} slot(s) open until {}",
            v.open_slots,
            format_time(v.open_until)
        )
    });
    match v.status {
        ReservationStatus::Open => open.unwrap_or_default(),
        ReservationStatus::Active => {
            let leases = format!("{} lease(s)", v.leases.len());
            match open {
                Some(open) => format!("{leases}, {open}"),
                None => leases,
            }
        }
        ReservationStatus::Cancelling => format!(
            "cancelled, {} lease(s) running out their period",
            v.leases.len()
        ),
        ReservationStatus::Ended => match v.ended {
            Some(t) => format!("ended {}", format_time(t)),
            None => "ended".into(),
        },
    }
}

fn summary(v: &ReservationView) -> String {
    let terms = format!(
        "{} slot(s) × {} per {} × {}",
        v.slots,
        Tokens(v.price_per_slot),
        period(v.period_ms),
        v.periods
    );
    format!(
        "#{:<4} {:<10} {terms:<34} {:<24} owner {}…  ({})",
        v.id,
        status_word(v),
        requirements(v),
        &v.owner.to_hex()[..12],
        status_words(v)
    )
}

fn print_details(v: &ReservationView) {
    println!("{}", summary(v));
    println!("  owner     {}", v.owner);
    println!("  needs     {}", requirements(v));
    println!(
        "  terms     {} per slot per {}, {} period(s) a lease",
        Tokens(v.price_per_slot),
        period(v.period_ms),
        v.periods
    );
    println!(
        "  created   {} (open until {})",
        format_time(v.created),
        format_time(v.open_until)
    );
    if v.open_slots > 0 {
        println!(
            "  open      {} slot(s), {} held",
            v.open_slots,
            Tokens(v.open_held)
        );
    }
    println!(
        "  escrow    {} paid to providers (before fees), {} refunded",
        Tokens(v.paid),
        Tokens(v.refunded)
    );
    println!("  covered   {} task(s)", v.tasks_covered);
    for l in &v.leases {
        println!(
            "  lease     {} {} slot(s), period {} of {} ends {}, {} held{}",
            l.provider,
            l.slots,
            l.period + 1,
            v.periods,
            format_time(l.period_end),
            Tokens(l.held),
            if l.missed { " (missed: refunded)" } else { "" }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::AccountId;

    fn view() -> ReservationView {
        ReservationView {
            id: 3,
            owner: AccountId([1; 32]),
            slots: 2,
            cores: 4,
            memory_bytes: 4 << 30,
            gpu: false,
            region: Some("eu".into()),
            period_ms: 3_600_000,
            periods: 24,
            price_per_slot: 5_000_000_000,
            created: 0,
            open_until: 3_600_000,
            open_slots: 1,
            open_held: 5_000_000_000,
            cancelled: false,
            paid: 0,
            refunded: 0,
            tasks_covered: 0,
            ended: None,
            status: ReservationStatus::Active,
            leases: vec![api::wire::LeaseView {
                provider: AccountId([2; 32]),
                slots: 1,
                period: 0,
                period_start: 0,
                period_end: 3_600_000,
                held: 5_000_000_000,
                missed: false,
            }],
        }
    }

    #[test]
    fn a_reservation_reads_in_a_line() {
        let line = summary(&view());
        assert!(
            line.starts_with("#3    active     2 slot(s) × 5 GRID per 1h × 24"),
            "{line}"
        );
        assert!(line.contains("(1 lease(s), 1 slot(s) open until"), "{line}");
        assert!(line.contains("4+ cores, 4GiB+ memory, region eu"), "{line}");
        assert!(line.contains("owner 010101010101…"), "{line}");
    }

    #[test]
    fn periods_and_memory_parse() {
        assert_eq!(parse_period("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_period("1h"), Ok(Duration::from_secs(3_600)));
        assert!(parse_period("soon").is_err());
        assert_eq!(parse_memory("4GiB"), Ok(4 << 30));
        assert!(parse_memory("lots").is_err());
        assert_eq!(bytes(512), "512 bytes");
    }

    #[test]
    fn refunds_are_summed_per_reservation() {
        let owner = AccountId([1; 32]);
        let events = [
            Event::ReservationCancelled { reservation: 3 },
            Event::ReservationRefunded {
                reservation: 3,
                owner,
                amount: 7,
            },
            Event::ReservationRefunded {
                reservation: 4,
                owner,
                amount: 100,
            },
        ];
        assert_eq!(refunded(&events, 3), 7);
    }
}
