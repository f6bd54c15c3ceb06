//! `gridmint provider info`: a provider's standing — reputation, trust, stake, work and earnings.

use crate::CoordinatorUrl;
use anyhow::Context;
use api::Client;
use api::wire::ProviderView;
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
    match cmd {
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
            let view = Client::new(&coordinator.url).provider(id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                print!("{}", describe(&view));
            }
            Ok(())
        }
    }
}

/// The human-readable form of `gridmint provider info`.
pub fn describe(v: &ProviderView) -> String {
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
    };
    format!(
        "provider   {id}\n\
         status     {status:?}, {running} running of {slots} slots, region {region}, operator {operator}\n\
         reputation {score}/{MAX_SCORE}, {trust} (streak {streak})\n\
         results    {verified} verified by other providers, {alone} accepted alone, {rejected} rejected\n\
         audits     {passed} passed since its last rejection; a lone result is audited with \
         probability {audit}% (floor {floor}%)\n\
         work       {done} runs completed, {failed} failed, {fuel} fuel\n\
         money      earned {earned}, bonded {bonded}, slashed {slashed} in {times} slashes\n\
         price      {price} base units per fuel, benchmark {bench}\n{gpu}",
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
