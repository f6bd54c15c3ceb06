//! `gridmint provider info`: a provider's standing — reputation, trust, stake, work and earnings;
//! `gridmint provider status|pause|resume`: the provider running on this machine, over its
//! control socket; `gridmint provider install-service|uninstall-service`: run it at every login.

use crate::CoordinatorUrl;
use anyhow::Context;
use api::Client;
use api::wire::{GpuClassesView, ProviderView};
use engine::{AccountId, MAX_SCORE, Tokens};
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum ProviderCommand {
    /// Show a provider's reputation, trust, stake, work and earnings
    Info {
        /// The provider's account id (default: the key in --data-dir)
        id: Option<AccountId>,
        /// A provider's data dir, whose key names the provider
        #[arg(long, conflicts_with = "id")]
        data_dir: Option<PathBuf>,
        #[command(flatten)]
        coordinator: CoordinatorUrl,
        #[arg(long)]
        json: bool,
    },
    /// Show what the provider running on this machine is doing: working, waiting for work or
    /// suspended (and why), its tasks, today's and total earnings, reputation and stake
    Status {
        /// The running provider's data directory [default: the data_dir of
        /// ~/.config/gridmint/provider.toml where that exists (install-service), else
        /// gridmint-data/provider]
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Suspend the provider running on this machine until `resume`: its tasks pause where they
    /// are and it takes no new work (past its grace period it hands them back)
    Pause {
        /// The running provider's data directory [default: the data_dir of
        /// ~/.config/gridmint/provider.toml where that exists (install-service), else
        /// gridmint-data/provider]
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Let a paused provider work again (when its idle rules allow)
    Resume {
        /// The running provider's data directory [default: the data_dir of
        /// ~/.config/gridmint/provider.toml where that exists (install-service), else
        /// gridmint-data/provider]
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Run a provider at every login and restart it if it fails: writes a systemd user unit
    /// (a launchd agent on macOS) and enables it, with a config file to edit
    InstallService {
        /// The config file the service runs with [default: ~/.config/gridmint/provider.toml];
        /// written from examples/provider.toml when missing (needs --coordinator)
        #[arg(long)]
        config: Option<PathBuf>,
        /// The network, for a config file written now
        #[arg(long, env = "GRIDMINT_COORDINATOR")]
        coordinator: Option<String>,
        /// Write the files only: neither enable nor start the service
        #[arg(long)]
        no_start: bool,
    },
    /// Stop and remove the service `install-service` made (its config and data stay)
    UninstallService {
        /// Remove the files only: do not ask the service manager to stop it
        #[arg(long)]
        no_stop: bool,
    },
}

/// A probability: a number from 0 to 1.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number from 0 to 1"))?;
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!("{rate} is not between 0 and 1"))
    }
}

pub async fn run(cmd: ProviderCommand) -> anyhow::Result<()> {
    use provider::control::Request;
    let local = |data_dir: Option<PathBuf>, request: Request, json: bool| async move {
        let dir = match data_dir {
            Some(dir) => dir,
            None => service_data_dir()
                .unwrap_or_else(|| PathBuf::from(crate::provider_config::DEFAULT_DATA_DIR)),
        };
        let status = provider::control::ask(&dir, &request).await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&status)?);
        } else {
            print!("{}", describe_local(&status));
        }
        anyhow::Ok(())
    };
    match cmd {
        ProviderCommand::Status { data_dir, json } => local(data_dir, Request::Status, json).await,
        ProviderCommand::Pause { data_dir, json } => local(data_dir, Request::Pause, json).await,
        ProviderCommand::Resume { data_dir, json } => local(data_dir, Request::Resume, json).await,
        ProviderCommand::InstallService {
            config,
            coordinator,
            no_start,
        } => crate::service::install(config, coordinator, no_start),
        ProviderCommand::UninstallService { no_stop } => crate::service::uninstall(no_stop),
        ProviderCommand::Info {
            id,
            data_dir,
            coordinator,
            json,
        } => {
            let id = match (id, data_dir) {
                (Some(id), _) => id,
                (None, Some(dir)) => {
                    let path = dir.join("provider.key");
                    anyhow::ensure!(path.exists(), "no provider key in {}", dir.display());
                    api::Identity::load_or_create(&path)
                        .with_context(|| format!("provider key in {}", dir.display()))?
                        .id()
                }
                (None, None) => anyhow::bail!("name a provider: an account id or --data-dir DIR"),
            };
            let client = Client::new(&coordinator.url);
            let view = client.provider(id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                // Rules 28: where its claim to a GPU class stands.
                let classes = if view.gpu_class.is_some() || view.gpu_class_pending.is_some() {
                    Some(client.gpu_classes(None, Some(id)).await?)
                } else {
                    None
                };
                print!("{}", describe(&view, classes.as_ref()));
            }
            Ok(())
        }
    }
}

/// The data directory of the provider `install-service` set up, where there is one.
fn service_data_dir() -> Option<PathBuf> {
    let config = crate::service::default_config().ok()?;
    if !config.exists() {
        return None;
    }
    let flags = crate::provider_config::ProviderFlags {
        // The file's network does not matter here.
        coordinator: Some(String::new()),
        ..Default::default()
    };
    crate::provider_config::provider(Some(&config), flags)
        .ok()
        .map(|c| c.data_dir)
}

/// The human-readable form of `gridmint provider status`.
pub fn describe_local(s: &provider::control::LocalStatus) -> String {
    let id = s
        .provider
        .map_or_else(|| "-".to_string(), |id| id.to_string());
    let state = match s.state.as_str() {
        "suspended" | "handed_back" => {
            let why: Vec<String> = s.reasons.iter().map(ToString::to_string).collect();
            format!(
                "{} for {} s: {}",
                if s.state == "suspended" {
                    "suspended (tasks paused in place)"
                } else {
                    "suspended past its grace period (tasks handed back)"
                },
                s.suspended_seconds.unwrap_or(0),
                why.join("; ")
            )
        }
        other => other.to_string(),
    };
    let mut out = format!(
        "provider   {id} on {coordinator}\n\
         state      {state}\n\
         tasks      {in_flight} in hand, {run} run, {failed} failed since it started\n\
         slots      {slots}, each at most {cpu}% of a core\n\
         sensors    {sensors}\n\
         energy     {kwh:.6} kWh, {grams:.3} g CO2e for {runs} runs ({method})\n\
         earned     {today} today",
        coordinator = s.coordinator,
        in_flight = s.tasks_in_flight,
        run = s.tasks_run,
        failed = s.tasks_failed,
        slots = s.slots,
        cpu = s.cpu_percent,
        sensors = s.sensors,
        kwh = s.energy.kwh,
        grams = s.energy.grams_co2e,
        runs = s.energy.runs,
        method = s.energy_method,
        today = Tokens(s.earned_today),
    );
    match &s.standing {
        Some(v) => out.push_str(&format!(
            ", {total} in all\n\
             reputation {score}/{MAX_SCORE}, {trust}\n\
             stake      {bonded} bonded, {slashed} slashed\n",
            total = Tokens(v.stats.earned),
            score = v.reputation.score,
            trust = if v.trusted {
                "trusted"
            } else {
                "not trusted yet"
            },
            bonded = Tokens(v.bonded),
            slashed = Tokens(v.stats.slashed),
        )),
        None => out.push_str("\nreputation (not heard from the network yet)\n"),
    }
    out
}

/// Rules 28: the line of `gridmint provider info` on its GPU class, from `GET /v1/gpu/classes`
/// of the provider.
fn describe_class(id: AccountId, classes: &GpuClassesView) -> String {
    if let Some(p) = classes.proven.iter().find(|p| p.provider == id) {
        return match p.by {
            Some(by) => format!("gpu class  proven by {by}'s check\n"),
            None => "gpu class  proven: it founded the class (no member could check it)\n".into(),
        };
    }
    let Some(p) = classes.pending.iter().find(|p| p.provider == id) else {
        return String::new();
    };
    let open = p.challenge.as_ref().filter(|c| classes.now < c.due);
    let failed = p
        .checked_by
        .len()
        .saturating_sub(usize::from(open.is_some()));
    let checking = open.map_or_else(String::new, |c| {
        format!(
            "; {} is checking it (answer due in {} s)",
            c.checker,
            c.due.saturating_sub(classes.now).div_ceil(1000)
        )
    });
    format!(
        "gpu class  pending: no member has proven it yet (no float GPU tasks); {failed} check(s) \
         failed{checking}\n"
    )
}

/// The human-readable form of `gridmint provider info` (`classes`: the provider's entry of
/// `GET /v1/gpu/classes`, where it has a GPU class).
pub fn describe(v: &ProviderView, classes: Option<&GpuClassesView>) -> String {
    let r = &v.reputation;
    let s = &v.stats;
    let operator = match v.spec.operator {
        Some(op) if op != v.id => op.to_string(),
        _ => "itself".into(),
    };
    let gpu = match (&v.spec.gpu, &v.gpu_offer) {
        (Some(gpu), Some(offer)) => format!(
            "gpu        {gpu}: {} GPU fuel/ms, buffers up to {} bytes, fingerprint {}\n",
            offer.fuel_per_ms,
            offer.memory_bytes,
            &offer.fingerprint.to_hex()[..16]
        ),
        (Some(gpu), None) => {
            format!("gpu        {gpu} (declared, no device offered: no GPU tasks)\n")
        }
        (None, _) => String::new(),
    } + &classes.map_or_else(String::new, |c| describe_class(v.id, c));
    // Rules 24: what it announced.
    let suspended = if v.suspended.is_empty() {
        String::new()
    } else {
        let why: Vec<String> = v
            .suspended
            .iter()
            .map(|r| {
                serde_json::to_value(r)
                    .ok()
                    .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
                    .unwrap_or_default()
            })
            .collect();
        format!(
            "suspended  by its owner's rules ({}): it takes no new work\n",
            why.join(", ")
        )
    };
    let carbon = v
        .grams_per_kwh
        .map(|g| format!("carbon     {g} g CO2e per kWh of its electricity\n"))
        .unwrap_or_default();
    // Rules 25: who backs it.
    let backing = v
        .backing
        .as_ref()
        .map(|b| {
            let pct = |bps: u64| format!("{}%", bps as f64 / 100.0);
            let ret = |r: Option<u64>| r.map_or("n/a".into(), pct);
            format!(
                "backing    {} delegated by {} delegator(s), {} unbonding; commission {}\n\
                 yield      {} paid to delegators ({} kept as commission, {} slashed from them); \
                 realised {} over a day, {} over a week\n",
                Tokens(b.delegated),
                b.delegators,
                Tokens(b.unbonding),
                pct(u64::from(b.commission_bps)),
                Tokens(b.rewards_paid),
                Tokens(b.commission_earned),
                Tokens(b.slashed),
                ret(b.return_day_bps),
                ret(b.return_week_bps),
            )
        })
        .unwrap_or_default();
    format!(
        "provider   {id}\n\
         status     {status:?}, {running} running of {slots} slots, region {region}, operator {operator}\n\
         {suspended}\
         reputation {score}/{MAX_SCORE}, {trust} (streak {streak})\n\
         results    {verified} verified by other providers, {alone} accepted alone, {rejected} rejected\n\
         audits     {passed} passed since its last rejection; a lone result is audited with \
         probability {audit}% (floor {floor}%)\n\
         work       {done} runs completed, {failed} failed, {fuel} fuel\n\
         money      earned {earned}, bonded {bonded}, slashed {slashed} in {times} slashes\n\
         price      {price} base units per fuel, benchmark {bench}\n{carbon}{backing}{gpu}",
        id = v.id,
        status = v.status,
        running = v.running,
        slots = v.spec.slots,
        region = v.spec.region,
        score = r.score,
        trust = if v.trusted {
            "trusted: results accepted alone, with spot checks"
        } else {
            "not trusted: results are replicated"
        },
        streak = r.streak,
        verified = r.verified,
        alone = r.accepted_alone,
        rejected = r.rejected,
        passed = v.audits_passed,
        audit = f64::from(v.audit_bps) / 100.0,
        floor = f64::from(v.audit_floor_bps) / 100.0,
        done = s.tasks_completed,
        failed = s.tasks_failed,
        fuel = s.fuel_used,
        earned = Tokens(s.earned),
        bonded = Tokens(v.bonded),
        slashed = Tokens(s.slashed),
        times = s.times_slashed,
        price = v.spec.price_per_fuel,
        bench = v.spec.benchmark_score,
    )
}
