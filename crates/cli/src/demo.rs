//! `gridmint demo`: a whole network on loopback in one process — a coordinator with a durable
//! SQLite log, three providers talking to it over real HTTP, and a requester running the pi and
//! Mandelbrot example jobs, and the GPU hash search where the machine has a GPU (or Mesa's
//! software Vulkan driver, which the providers here offer as one).

use crate::requester;
use anyhow::Context;
use api::{Client, Identity};
use engine::Tokens;
use jobspec::{self, Embedded};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Keep the network's data here (default: a temporary directory, removed at exit)
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Where to write the rendered image
    #[arg(long, default_value = "gridmint-demo.png")]
    pub out: PathBuf,
    /// Number of providers to start
    #[arg(long, default_value_t = 3)]
    pub providers: u32,
    /// Print a JSON summary instead of text
    #[arg(long)]
    pub json: bool,
    /// Keep the network running once the demo's jobs are done, to look at it in the web console
    /// (the URL printed) or with other commands; Ctrl-C stops it
    #[arg(long)]
    pub keep: bool,
}

/// The example specs and every file they name, compiled into the binary.
fn embedded() -> Embedded {
    Embedded(HashMap::from([
        (
            "../guests/pi.wasm",
            &include_bytes!("../../../guests/pi.wasm")[..],
        ),
        (
            "../guests/mandel.wasm",
            &include_bytes!("../../../guests/mandel.wasm")[..],
        ),
        (
            "../guests/png.wasm",
            &include_bytes!("../../../guests/png.wasm")[..],
        ),
        (
            "../guests/gpu/sha256-search.wgsl",
            &include_bytes!("../../../guests/gpu/sha256-search.wgsl")[..],
        ),
        (
            "data/gpu/mins.bin",
            &include_bytes!("../../../examples/data/gpu/mins.bin")[..],
        ),
        (
            "data/gpu/search-0.bin",
            &include_bytes!("../../../examples/data/gpu/search-0.bin")[..],
        ),
        (
            "data/gpu/search-1.bin",
            &include_bytes!("../../../examples/data/gpu/search-1.bin")[..],
        ),
        (
            "data/gpu/search-2.bin",
            &include_bytes!("../../../examples/data/gpu/search-2.bin")[..],
        ),
        (
            "data/gpu/search-3.bin",
            &include_bytes!("../../../examples/data/gpu/search-3.bin")[..],
        ),
    ]))
}
const PI_SPEC: &str = include_str!("../../../examples/pi.toml");
const MANDELBROT_SPEC: &str = include_str!("../../../examples/mandelbrot.toml");
const GPU_HASH_SPEC: &str = include_str!("../../../examples/gpu-hash.toml");

/// What the GPU hash search found over all its tasks: nonces below the bound, the least of
/// them (if any), and the least first word of any hash (each task's 12 bytes: least nonce,
/// least first word, count, little-endian).
pub fn hash_search_summary(output: &[u8]) -> anyhow::Result<(u64, Option<u32>, u32)> {
    anyhow::ensure!(
        !output.is_empty() && output.len().is_multiple_of(12),
        "the hash search returned {} bytes, not 12 per task",
        output.len()
    );
    let (mut found, mut least, mut best) = (0u64, None::<u32>, u32::MAX);
    for task in output.chunks_exact(12) {
        let word = |i: usize| u32::from_le_bytes([task[i], task[i + 1], task[i + 2], task[i + 3]]);
        let count = word(8);
        if count > 0 {
            least = Some(least.map_or(word(0), |l| l.min(word(0))));
        }
        found += u64::from(count);
        best = best.min(word(4));
    }
    Ok((found, least, best))
}

/// Sums `<hits> <samples>` lines into a pi estimate.
pub fn pi_estimate(output: &str) -> anyhow::Result<(f64, u64, u64)> {
    let (mut hits, mut samples) = (0u64, 0u64);
    for line in output.lines() {
        let mut parts = line.split_whitespace();
        let (Some(h), Some(s), None) = (parts.next(), parts.next(), parts.next()) else {
            anyhow::bail!("unexpected pi output line {line:?}");
        };
        hits = hits.checked_add(h.parse()?).context("hit count overflow")?;
        samples = samples
            .checked_add(s.parse()?)
            .context("sample count overflow")?;
    }
    anyhow::ensure!(samples > 0, "pi job produced no samples");
    Ok((4.0 * hits as f64 / samples as f64, hits, samples))
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let temp;
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::tempdir().context("creating a temporary data dir")?;
            temp.path().to_path_buf()
        }
    };
    let say = |msg: String| {
        if !args.json {
            println!("{msg}");
        }
    };

    let mut config = coordinator::CoordinatorConfig::new(data_dir.join("coordinator"));
    config.genesis = coordinator::GenesisChoice::Dev;
    let coord = coordinator::start(config, "127.0.0.1:0".parse()?).await?;
    let url = coord.url();
    say(format!(
        "coordinator listening on {url} (data in {}); web console: {url}/",
        data_dir.display()
    ));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut providers = Vec::new();
    for i in 1..=args.providers {
        let mut cfg = provider::ProviderConfig::new(&url, data_dir.join(format!("provider-{i}")));
        cfg.slots = 1;
        cfg.sandbox_worker = crate::sandbox_worker();
        // The demo shows a GPU job wherever a Vulkan device exists: Mesa's software one
        // (lavapipe) counts here.
        cfg.gpu_software = true;
        let mut rx = stop_rx.clone();
        providers.push(tokio::spawn(provider::run(cfg, async move {
            let _ = rx.wait_for(|stop| *stop).await;
        })));
    }

    let client = Client::new(&url);
    let me = Identity::load_or_create(&data_dir.join("requester.key"))?;
    let files = embedded();
    let network = client.network().await?;
    let treasury_before = client.account(network.treasury).await?.balance;
    let funded = crate::wallet::faucet_if_needed(&client, &me, engine::tokens(500)).await?;
    say(format!(
        "development network {:?}: requester {}… holds {}{}",
        network.chain_id,
        &me.id().to_hex()[..12],
        Tokens(client.account(me.id()).await?.balance),
        if funded { " (from the faucet)" } else { "" }
    ));

    // Providers register as they finish their benchmark (a second or so): the first job waits
    // for them, so that it is not submitted to a network with nobody to run it (its outlook
    // would warn so). Submitted anyway after a minute: then the warning says why it waits.
    let registering = Instant::now();
    while client.status().await?.providers_active < u64::from(args.providers)
        && registering.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pi_job =
        jobspec::load(PI_SPEC, &files, coordinator::now_ms()).context("examples/pi.toml")?;
    let pi_tasks = pi_job.spec.tasks.len();
    let pi_id = requester::submit(&client, &me, pi_job, None).await?;
    say(format!(
        "submitted job {pi_id}: Monte Carlo pi, {pi_tasks} tasks"
    ));
    let pi_view = requester::wait(&client, pi_id, !args.json).await?;
    anyhow::ensure!(
        pi_view.status == engine::JobStatus::Completed,
        "{}",
        requester::describe(&pi_view)
    );
    let pi_out = client.job_output(pi_id).await?;
    let (pi, hits, samples) = pi_estimate(&String::from_utf8_lossy(&pi_out))?;
    say(format!(
        "pi ~= {pi:.6} ({hits} hits of {samples} samples, error {:.2e})",
        (pi - std::f64::consts::PI).abs()
    ));

    let render = jobspec::load(MANDELBROT_SPEC, &files, coordinator::now_ms())
        .context("examples/mandelbrot.toml")?;
    let render_tasks = render.spec.tasks.len();
    let render_id = requester::submit(&client, &me, render, None).await?;
    say(format!(
        "submitted job {render_id}: Mandelbrot 512x512, {render_tasks} tiles + PNG reduce"
    ));
    let render_view = requester::wait(&client, render_id, !args.json).await?;
    anyhow::ensure!(
        render_view.status == engine::JobStatus::Completed,
        "{}",
        requester::describe(&render_view)
    );
    let png = client.job_output(render_id).await?;
    std::fs::write(&args.out, &png).with_context(|| format!("writing {}", args.out.display()))?;
    say(format!(
        "wrote {} ({} bytes)",
        args.out.display(),
        png.len()
    ));

    // The GPU hash search, where the providers found a GPU (or lavapipe) to run it on.
    let mut views = client.providers().await?;
    let gpu = views.iter().find_map(|v| v.spec.gpu.clone());
    let mut jobs = vec![pi_id, render_id];
    let mut gpu_view = None;
    let mut gpu_found = None;
    match &gpu {
        Some(gpu) => {
            let search = jobspec::load(GPU_HASH_SPEC, &files, coordinator::now_ms())
                .context("examples/gpu-hash.toml")?;
            let id = requester::submit(&client, &me, search, None).await?;
            say(format!(
                "submitted job {id}: SHA-256 hash search on the GPU ({gpu}), 262144 nonces in 4 tasks"
            ));
            let view = requester::wait(&client, id, !args.json).await?;
            anyhow::ensure!(
                view.status == engine::JobStatus::Completed,
                "{}",
                requester::describe(&view)
            );
            let (found, least, best) = hash_search_summary(&client.job_output(id).await?)?;
            say(format!(
                "hash search: {found} nonces below the target, the least {}; the least hash \
                 begins {best:08x} ({} fuel; integer results, the same bytes on every GPU)",
                least.map_or("none".to_string(), |n| n.to_string()),
                view.fuel_used
            ));
            jobs.push(id);
            gpu_found = Some((found, least, best));
            gpu_view = Some(view);
            views = client.providers().await?;
        }
        None => say(
            "skipped the GPU job: no Vulkan, Metal or DX12 adapter here (on Linux without a GPU, \
             Mesa's software driver is one: apt-get install mesa-vulkan-drivers)"
                .into(),
        ),
    }
    let money = Money::of(&client, &me, &jobs).await?;
    // The treasury's takings: the fee out of every task payment, and the fee per logged action
    // (the requester's submissions, the providers' stakes and registrations).
    let fees = pi_view
        .escrow
        .fees
        .saturating_add(render_view.escrow.fees)
        .saturating_add(gpu_view.as_ref().map_or(0, |v| v.escrow.fees));
    // Rules 19: what the escrows keep to re-run lone results should a provider be caught lying
    // before the jobs' results are final.
    let kept = pi_view
        .escrow
        .held()
        .saturating_add(render_view.escrow.held())
        .saturating_add(gpu_view.as_ref().map_or(0, |v| v.escrow.held()));
    let action_fees = client
        .account(network.treasury)
        .await?
        .balance
        .saturating_sub(treasury_before)
        .saturating_sub(fees);
    if args.keep {
        // (printed even with --json: the summary is not written until the network stops)
        eprintln!(
            "the network keeps running: open {url}/ in a browser to see it (the web console), or \
             use it with GRIDMINT_COORDINATOR={url} gridmint …; Ctrl-C stops it"
        );
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
    }
    stop_tx.send(true).ok();
    let mut energy = provider::energy::EnergyTotals::default();
    let mut energy_method = String::new();
    for p in providers {
        let summary = p.await.context("provider task panicked")??;
        energy.runs += summary.energy.runs;
        energy.kwh += summary.energy.kwh;
        energy.grams_co2e += summary.energy.grams_co2e;
        energy_method = summary.energy_method;
    }
    coord.shutdown().await;
    // The coordinator sealed its last block on shutdown: check the whole chain offline.
    let chain = crate::chain::verify(
        &crate::chain::Source {
            data_dir: Some(data_dir.join("coordinator")),
            coordinator: None,
        },
        None,
        None,
    )
    .await
    .context("verifying the demo's chain")?;

    if args.json {
        let job_views: Vec<&api::wire::JobView> =
            [Some(&pi_view), Some(&render_view), gpu_view.as_ref()]
                .into_iter()
                .flatten()
                .collect();
        let summary = serde_json::json!({
            "pi": pi,
            "pi_hits": hits,
            "pi_samples": samples,
            "image": args.out,
            "image_bytes": png.len(),
            "jobs": job_views,
            "gpu": gpu,
            "gpu_hash_search": gpu_found.map(|(found, least, best)| serde_json::json!({
                "found": found,
                "least_nonce": least,
                "least_first_word": best,
            })),
            "providers": views,
            "energy": {
                "runs": energy.runs,
                "kwh": energy.kwh,
                "grams_co2e": energy.grams_co2e,
                "method": energy_method,
            },
            "chain": chain,
            "escrow_locked": money.locked.to_string(),
            "paid_to_providers": money.paid_net.to_string(),
            "fees": fees.to_string(),
            "action_fees": action_fees.to_string(),
            "refunded": money.refunded.to_string(),
            "escrow_kept": kept.to_string(),
            "elapsed_ms": started.elapsed().as_millis() as u64,
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        for v in [Some(&pi_view), Some(&render_view), gpu_view.as_ref()]
            .into_iter()
            .flatten()
        {
            println!(
                "job {}: {} tasks in {} runs ({:.2} per task, {}){}",
                v.id,
                v.tasks_done,
                v.executions,
                v.executions as f64 / v.tasks_done.max(1) as f64,
                requester::redundancy(v.redundancy),
                v.energy
                    .as_ref()
                    .and_then(requester::energy_summary)
                    .map(|e| format!("; {e}"))
                    .unwrap_or_default()
            );
        }
        println!("work done, reputation and earnings per provider:");
        println!(
            "  {:<16} {:>5} {:>14} {:>8} {:>9} {:>7} {:>20}",
            "provider", "runs", "fuel", "bench", "verified", "trusted", "earned"
        );
        for v in &views {
            println!(
                "  {:<16} {:>5} {:>14} {:>8} {:>9} {:>7} {:>20}",
                format!("{}…", &v.id.to_hex()[..12]),
                v.stats.tasks_completed,
                v.stats.fuel_used,
                v.spec.benchmark_score,
                v.reputation.verified,
                if v.trusted { "yes" } else { "no" },
                Tokens(v.stats.earned).to_string()
            );
        }
        println!(
            "  (results of new providers are confirmed by three providers, who share one payment; \
             trusted after {} verified results in a row, a provider's results run alone, with spot checks)",
            network.verification.trust_after
        );
        println!(
            "requester: locked {} in escrow; providers were paid {}, the treasury collected {} in fees ({}%), {} was refunded",
            Tokens(money.locked),
            Tokens(money.paid_net),
            Tokens(fees),
            f64::from(network.fee_bps) / 100.0,
            Tokens(money.refunded)
        );
        let final_at = pi_view
            .final_at
            .max(render_view.final_at)
            .max(gpu_view.as_ref().and_then(|v| v.final_at));
        if let Some(at) = final_at {
            println!(
                "{} stays in escrow until the results are final at {} (to re-run any result a \
                 provider is later caught lying on), then comes back",
                Tokens(kept),
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_millis(at)
                )
            );
        }
        println!(
            "the treasury also collected {} in fees per action ({} for each stake, registration and job)",
            Tokens(action_fees),
            Tokens(network.action_fee)
        );
        println!(
            "energy: the providers' {} runs used {:.1} J ({:.7} kWh), {:.4} g CO2e ({})",
            energy.runs,
            energy.kwh * 3.6e6,
            energy.kwh,
            energy.grams_co2e,
            energy_method
        );
        println!("{}", crate::chain::summary(&chain));
        println!("done in {:.1}s", started.elapsed().as_secs_f64());
    }
    Ok(())
}

/// Where the requester's money went for some jobs, from its account history.
struct Money {
    locked: u128,
    /// Paid to providers after fees.
    paid_net: u128,
    refunded: u128,
}

impl Money {
    async fn of(client: &Client, me: &Identity, jobs: &[u64]) -> anyhow::Result<Money> {
        let mut money = Money {
            locked: 0,
            paid_net: 0,
            refunded: 0,
        };
        for item in crate::wallet::full_history(client, me.id()).await? {
            match item.event {
                engine::Event::EscrowLocked { job, amount, .. } if jobs.contains(&job) => {
                    money.locked = money.locked.saturating_add(amount);
                }
                engine::Event::EscrowRefunded { job, amount, .. } if jobs.contains(&job) => {
                    money.refunded = money.refunded.saturating_add(amount);
                }
                _ => {}
            }
        }
        for provider in client.providers().await? {
            money.paid_net = money.paid_net.saturating_add(provider.stats.earned);
        }
        Ok(money)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pi_estimate_sums_lines() {
        let (pi, hits, samples) = pi_estimate("750 1000\n850 1000\n").unwrap();
        assert_eq!((hits, samples), (1600, 2000));
        assert!((pi - 3.2).abs() < 1e-9);
        assert!(pi_estimate("").is_err());
        assert!(pi_estimate("1 2 3\n").is_err());
    }

    #[test]
    fn hash_search_summary_sums_tasks() {
        let task = |least: u32, best: u32, count: u32| -> Vec<u8> {
            [least, best, count]
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .collect()
        };
        let out = [task(u32::MAX, 9, 0), task(70, 5, 2), task(40, 7, 1)].concat();
        assert_eq!(hash_search_summary(&out).unwrap(), (3, Some(40), 5));
        assert_eq!(
            hash_search_summary(&task(u32::MAX, 3, 0)).unwrap(),
            (0, None, 3)
        );
        assert!(hash_search_summary(&[1, 2, 3]).is_err());
        assert!(hash_search_summary(&[]).is_err());
    }
}
