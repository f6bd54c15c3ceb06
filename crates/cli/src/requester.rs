//! The requester side: the requester's key, submitting a loaded job and waiting for it.

use anyhow::Context;
use api::private::JobKey;
use api::wire::JobView;
use api::{Client, Identity};
use bytes::Bytes;
use engine::{JobId, JobStatus, Tokens};
use indicatif::{ProgressBar, ProgressStyle};
use jobspec::{self, LoadedJob};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `$GRIDMINT_HOME`, or `~/.gridmint`.
pub fn home() -> PathBuf {
    if let Some(dir) = std::env::var_os("GRIDMINT_HOME") {
        return PathBuf::from(dir);
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".gridmint")
}

pub fn requester_key_path() -> PathBuf {
    home().join("requester.key")
}

pub fn requester_identity() -> anyhow::Result<Identity> {
    let path = requester_key_path();
    Identity::load_or_create(&path).with_context(|| format!("requester key {}", path.display()))
}

/// Files relative to a directory on disk (the spec file's own).
pub struct Dir(pub PathBuf);

impl jobspec::Files for Dir {
    fn read(&self, path: &str) -> anyhow::Result<Bytes> {
        let full = self.0.join(path);
        std::fs::read(&full)
            .map(Bytes::from)
            .with_context(|| format!("reading {}", full.display()))
    }

    fn tree(&self, path: &str) -> anyhow::Result<Bytes> {
        let full = self.0.join(path);
        sandbox::tree::pack(&full)
            .map(Bytes::from)
            .with_context(|| format!("packing directory {}", full.display()))
    }
}

/// Loads a spec file from disk.
pub fn load_path(path: &Path, now: engine::Time) -> anyhow::Result<LoadedJob> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading job spec {}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    jobspec::load(&text, &Dir(dir), now).with_context(|| format!("job spec {}", path.display()))
}

/// Who a private job is sealed to (rules 13).
#[derive(Clone, Debug)]
pub enum Recipients {
    /// These providers.
    These(Vec<engine::AccountId>),
    /// Up to this many of the network's active providers, trusted ones first, then by
    /// reputation.
    Best(usize),
}

/// "1 provider", "3 providers".
pub fn count_providers(n: usize) -> String {
    format!("{n} provider{}", if n == 1 { "" } else { "s" })
}

/// Where a requester keeps its private jobs' keys: `$GRIDMINT_HOME/keys/<key check>.key`.
pub fn job_key_path(check: &engine::Hash) -> PathBuf {
    home().join("keys").join(format!("{check}.key"))
}

/// The key of a private job whose key check is `check`, from this requester's key files.
pub fn load_job_key(check: &engine::Hash) -> anyhow::Result<JobKey> {
    let path = job_key_path(check);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "the job is private and its key is not here ({}): only the requester that \
             submitted it (with its GRIDMINT_HOME) can open its outputs",
            path.display()
        )
    })?;
    let key = JobKey::from_hex(&text).with_context(|| format!("key file {}", path.display()))?;
    anyhow::ensure!(
        key.check() == *check,
        "key file {} holds another job's key",
        path.display()
    );
    Ok(key)
}

/// The providers a private job is sealed to, none of `already`.
async fn recipients(
    client: &Client,
    who: Recipients,
    already: &[engine::AccountId],
) -> anyhow::Result<Vec<engine::AccountId>> {
    let mut chosen = match who {
        Recipients::These(ids) => ids,
        Recipients::Best(n) => {
            let mut providers: Vec<_> = client
                .providers()
                .await
                .context("listing the providers to seal the job to")?
                .into_iter()
                .filter(|p| p.status == engine::ProviderStatus::Active)
                .filter(|p| !already.contains(&p.id))
                .collect();
            providers.sort_by(|a, b| {
                (b.trusted, b.reputation.score, b.reputation.verified)
                    .cmp(&(a.trusted, a.reputation.score, a.reputation.verified))
                    .then(a.id.cmp(&b.id))
            });
            providers.into_iter().take(n).map(|p| p.id).collect()
        }
    };
    chosen.sort();
    chosen.dedup();
    if let Some(p) = chosen.iter().find(|p| already.contains(p)) {
        anyhow::bail!("the job is already sealed to provider {p}");
    }
    anyhow::ensure!(
        !chosen.is_empty(),
        "no active provider to seal the private job to{}; name some with --to",
        if already.is_empty() {
            ""
        } else {
            " that does not hold its key already"
        }
    );
    anyhow::ensure!(
        chosen.len() <= engine::MAX_RECIPIENTS,
        "a private job may be sealed to at most {} providers",
        engine::MAX_RECIPIENTS
    );
    Ok(chosen)
}

/// Seals `job`'s data under `key`: every blob its tasks read (stdin, input files) and every
/// tree it mounts is replaced by its sealed form, and the spec and files name the sealed blobs.
/// Its modules stay as they are (code, shared and cached across jobs: see ARCHITECTURE.md), and
/// so do the trees it leaves in the clear (`job.clear`).
pub fn seal_job(job: &mut LoadedJob, key: &JobKey) -> anyhow::Result<()> {
    use std::collections::{BTreeSet, HashMap};
    let mut modules = BTreeSet::from([job.spec.module]);
    if let engine::Aggregate::Reduce(reduce) = &job.spec.aggregate {
        modules.insert(reduce.module);
    }
    let mut data: BTreeSet<engine::Hash> = job.files.trees().into_iter().collect();
    for task in &job.spec.tasks {
        data.extend(task.inputs.iter().map(|f| f.hash).chain(task.stdin));
    }
    // Trees the spec leaves in the clear (`private = false`) stay as they are, wherever the job
    // names them (providers take every blob the sealing lists as clear as it is).
    for clear in &job.clear {
        data.remove(clear);
        modules.insert(*clear);
    }
    let plain: HashMap<engine::Hash, Bytes> = job
        .blobs
        .iter()
        .map(|b| (engine::Hash::of(b), b.clone()))
        .collect();
    let mut sealed: HashMap<engine::Hash, engine::Hash> = HashMap::new();
    let mut blobs: Vec<Bytes> = modules
        .iter()
        .filter_map(|m| plain.get(m).cloned())
        .collect();
    for hash in &data {
        let bytes = plain
            .get(hash)
            .with_context(|| format!("the job names blob {hash} but has not read it"))?;
        let out = Bytes::from(key.seal(bytes));
        sealed.insert(*hash, engine::Hash::of(&out));
        blobs.push(out);
    }
    let to = |h: &mut engine::Hash| {
        if let Some(s) = sealed.get(h) {
            *h = *s;
        }
    };
    for task in &mut job.spec.tasks {
        for input in &mut task.inputs {
            to(&mut input.hash);
        }
        if let Some(stdin) = &mut task.stdin {
            to(stdin);
        }
    }
    for mount in &mut job.files.mounts {
        to(&mut mount.tree);
    }
    job.blobs = blobs;
    Ok(())
}

/// Uploads the job's blobs and submits it; returns the new job id.
/// Where the network prices storage (rules 10), the submission claims what the job's blobs weigh
/// and its output limit per task, and locks their deposit beside the escrow. With `private`
/// (rules 13), the job's data is sealed under a fresh key, kept in this requester's key files
/// ([`job_key_path`]) before anything is sent, and wrapped to the chosen providers.
pub async fn submit(
    client: &Client,
    who: &Identity,
    mut job: LoadedJob,
    private: Option<Recipients>,
) -> anyhow::Result<JobId> {
    let network = client
        .network()
        .await
        .context("reading the network's rules")?;
    // Rules 25: `max_price = "market + 10%"` is resolved from the price index now.
    if let Some(market) = job.market_price {
        let indexes = client
            .market()
            .await
            .context("reading the price index (max_price follows the market)")?;
        jobspec::resolve_market_price(&mut job, &indexes.classes)?;
        eprintln!(
            "max_price: market + {}% = {} base units per fuel",
            f64::from(market.plus_bps) / 100.0,
            job.spec.max_price
        );
    }
    if job.gpu.is_some() && private.is_some() {
        anyhow::bail!(
            "a GPU job cannot be private yet: its buffers are filled from inputs in the clear"
        );
    }
    let sealing = match private {
        Some(chosen) => {
            let providers = recipients(client, chosen, &[]).await?;
            let key = JobKey::generate();
            let sealing = key
                .sealing(&providers, &job.clear)
                .context("wrapping the job key to its providers")?;
            seal_job(&mut job, &key)?;
            let path = job_key_path(&key.check());
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            api::auth::write_private(&path, format!("{}\n", key.to_hex()).as_bytes())
                .with_context(|| format!("keeping the job key in {}", path.display()))?;
            eprintln!(
                "private: sealed to {}; the job key is in {} (without it nobody can read the \
                 job's output)",
                count_providers(providers.len()),
                path.display()
            );
            Some(sealing)
        }
        None => None,
    };
    let input_bytes = api::weigh(&job.spec, &job.files, &job.blobs)
        .map_err(|hash| anyhow::anyhow!("the job names blob {hash} but has not read it"))?;
    let action = match job.gpu {
        Some(gpu) => api::gpu_submission(
            network.storage.as_ref(),
            job.spec,
            input_bytes,
            job.output_limit,
            gpu,
            job.tolerance,
        ),
        None => api::job_submission(
            network.storage.as_ref(),
            job.spec,
            input_bytes,
            job.output_limit,
            job.options,
            job.files,
            sealing,
        ),
    };
    // Rules 24: what the job asks of the scheduler beyond its spec wraps the submission.
    let action = if job.preferences == engine::JobPreferences::default() {
        action
    } else {
        anyhow::ensure!(
            network.rules >= 24,
            "this network runs rules {}, which take no job preferences (prefer_low_carbon \
             needs 24)",
            network.rules
        );
        engine::Action::SubmitWithPreferences {
            preferences: job.preferences,
            submission: Box::new(action),
        }
    };
    for blob in job.blobs {
        client
            .put_blob(who, blob)
            .await
            .context("uploading a blob")?;
    }
    let resp = client.action(who, action).await.map_err(|e| {
        let hint = if e.status() == Some(402) {
            "\nthe job's worst-case cost (tasks × fuel limit × max_price) is locked in escrow \
                 when it is submitted, with the deposit for its storage (inputs plus \
                 output_limit per task) where the network prices it; fund the account \
                 (`gridmint wallet faucet` on a --dev network) or lower fuel, max_price or \
                 output_limit"
        } else {
            ""
        };
        anyhow::anyhow!("submitting the job: {e}{hint}")
    })?;
    resp.submitted_job()
        .context("the coordinator accepted the job but reported no job id")
}

/// The output of completed job `id`: what the coordinator aggregates, or for a private job its
/// sealed parts, each opened with the job's key and joined here.
pub async fn output(client: &Client, id: JobId) -> anyhow::Result<Bytes> {
    let view = client.job(id, false).await?;
    let Some(private) = &view.private else {
        return Ok(client.job_output(id).await?);
    };
    let key = load_job_key(&private.key_check)?;
    let parts = view.output.with_context(|| {
        format!(
            "job {id} has no output: it is {}",
            requester_status(&view.status)
        )
    })?;
    let mut out = Vec::new();
    for hash in parts {
        let sealed = client
            .get_blob(hash)
            .await
            .with_context(|| format!("downloading output part {hash}"))?;
        let part = key
            .open(&sealed)
            .with_context(|| format!("opening output part {hash}"))?;
        out.extend_from_slice(&part);
    }
    Ok(Bytes::from(out))
}

fn requester_status(status: &JobStatus) -> String {
    match status {
        JobStatus::Failed { reason } => format!("failed ({reason})"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Seals private job `id` to more providers (`chosen`, none of those it has): its key, from this
/// requester's key files, wrapped to each (rules 13: `Action::SealJobTo`). Returns them.
pub async fn grant(
    client: &Client,
    who: &Identity,
    id: JobId,
    chosen: Recipients,
) -> anyhow::Result<Vec<engine::AccountId>> {
    let view = client.job(id, false).await?;
    let private = view
        .private
        .with_context(|| format!("job {id} is not private: any provider may run it"))?;
    let key = load_job_key(&private.key_check)?;
    let providers = recipients(client, chosen, &private.providers).await?;
    let recipients = providers
        .iter()
        .map(|p| {
            Ok(engine::Recipient {
                provider: *p,
                wrapped: key.wrap_to(p)?,
            })
        })
        .collect::<Result<Vec<_>, api::private::PrivateError>>()
        .context("wrapping the job key")?;
    client
        .action(
            who,
            engine::Action::SealJobTo {
                job: id,
                recipients,
            },
        )
        .await
        .with_context(|| format!("sealing job {id} to more providers"))?;
    Ok(providers)
}

/// Polls until the job finishes; with `progress`, shows a bar of tasks done / total on stderr.
/// How long `job submit --wait` and `job wait` keep asking a coordinator that is unreachable or
/// answers 429/5xx before they give up (the job itself goes on).
const REQUESTER_PATIENCE: Duration = Duration::from_secs(120);

pub async fn wait(client: &Client, id: JobId, progress: bool) -> anyhow::Result<JobView> {
    let bar = if progress {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("job {msg} [{bar:30}] {pos}/{len} tasks ({elapsed})")
                .expect("static template is valid")
                .progress_chars("=> "),
        );
        bar.set_message(id.to_string());
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut delay = Duration::from_millis(20);
    // The job's current warning (the network cannot finish it as it is), shown when it changes.
    let mut warned: Option<String> = None;
    // Since when the coordinator has been unreachable or answering 429/5xx, if it is now.
    let mut trouble: Option<std::time::Instant> = None;
    let view = loop {
        let view = match client.job(id, false).await {
            Ok(view) => {
                if trouble.take().is_some() {
                    bar.suspend(|| eprintln!("the coordinator answers again"));
                }
                view
            }
            // Trouble that passes (a restart, an election, overload): the job is safe in the
            // log, so wait for the coordinator rather than give up on the job.
            Err(e) if e.is_transient() => {
                let since = *trouble.get_or_insert_with(|| {
                    bar.suspend(|| eprintln!("job {id}: {e}; retrying"));
                    std::time::Instant::now()
                });
                if since.elapsed() > REQUESTER_PATIENCE {
                    return Err(e).with_context(|| {
                        format!(
                            "the coordinator has been unreachable or failing for {} s; job {id} \
                             is still in its log: `gridmint job status {id}` later",
                            REQUESTER_PATIENCE.as_secs()
                        )
                    });
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        bar.set_length(view.tasks_total);
        bar.set_position(view.tasks_done);
        if view.is_finished() {
            break view;
        }
        if progress && view.warning.is_some() && view.warning != warned {
            if let Some(w) = &view.warning {
                bar.suspend(|| eprintln!("warning: {w}"));
            }
            warned = view.warning.clone();
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(250));
    };
    match &view.status {
        JobStatus::Completed => bar.finish(),
        _ => bar.abandon(),
    }
    Ok(view)
}

/// One line describing how a finished job ended.
/// A job's verification policy, in words.
pub fn redundancy(r: engine::Redundancy) -> String {
    match r {
        engine::Redundancy::Adaptive => "adaptive verification".into(),
        engine::Redundancy::Fixed {
            quorum: 1,
            max_results: 1,
        } => "no verification".into(),
        engine::Redundancy::Fixed {
            quorum,
            max_results,
        } => format!("{quorum} matching of at most {max_results}"),
    }
}

/// What a job's escrow paid and refunded: "paid X (fees Y), refunded Z of the W locked".
fn escrow_summary(e: &engine::Escrow) -> String {
    format!(
        "paid {} (fees {}), refunded {} of the {} locked",
        Tokens(e.paid),
        Tokens(e.fees),
        Tokens(e.refunded),
        Tokens(e.locked)
    )
}

pub fn describe(view: &JobView) -> String {
    let mut money = format!("; {}", escrow_summary(&view.escrow));
    if let Some(storage) = &view.storage {
        money.push_str(&format!("; {}", storage_summary(storage)));
    }
    if !view.success_exits.is_empty() {
        let list: Vec<String> = view.success_exits.iter().map(i32::to_string).collect();
        money.push_str(&format!("; answers exit {}", list.join(", ")));
    }
    if let Some(private) = &view.private {
        money.push_str(&format!(
            "; private, sealed to {}",
            count_providers(private.providers.len())
        ));
    }
    if let Some(gpu) = &view.gpu {
        let [x, y, z] = gpu.workgroups;
        money.push_str(&format!(
            "; GPU job (entry `{}`, {x}x{y}x{z} workgroups, {})",
            gpu.entry,
            match (&view.gpu_class, gpu.one_class) {
                // Rules 30.
                (_, false) if let Some(t) = view.gpu_tolerance => format!(
                    "float results: any GPU, agreeing within {} ULPs{}",
                    t.max_ulps,
                    match f32::from_bits(t.near_zero) {
                        0.0 => String::new(),
                        zero => format!(" or both within {zero:e} of zero"),
                    }
                ),
                (_, false) => "integer results: any GPU".to_string(),
                (Some(class), true) => format!("float results: one GPU class, {class}"),
                (None, true) => "float results: one GPU class, the first provider's".to_string(),
            }
        ));
    }
    if let Some(energy) = view.energy.as_ref().and_then(energy_summary) {
        money.push_str(&format!("; {energy}"));
    }
    if view.prefer_low_carbon {
        money.push_str("; prefers low-carbon providers");
    }
    let mut line = describe_status(view, &money);
    // Only a job still gathering its map results has any (rules 16), so this goes after
    // whatever the status line says, running or not.
    if view.reopened > 0 {
        line.push_str(&format!(
            "; {} reopened (its provider was caught lying on another task: a trusted re-run \
             decides it)",
            if view.reopened == 1 {
                "1 result".to_string()
            } else {
                format!("{} results", view.reopened)
            }
        ));
    }
    // Rules 19: what the requester may have fetched and must fetch again, and when the results
    // are final.
    if view.corrected > 0 {
        line.push_str(&format!(
            "; {} corrected after delivery (its provider was caught lying later: an output \
             fetched before is stale)",
            if view.corrected == 1 {
                "1 result".to_string()
            } else {
                format!("{} results", view.corrected)
            }
        ));
    }
    if let Some(at) = view.final_at {
        line.push_str(&format!(
            "; final at {} (until then a result whose provider is caught lying is corrected; \
             `gridmint job release {}` makes it final now)",
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(at)
            ),
            view.id
        ));
    }
    match &view.warning {
        Some(w) => format!("{line}\nwarning: {w}"),
        None => line,
    }
}

/// A job's storage (rules 10): its deposit, and whether it is still held.
fn storage_summary(storage: &engine::JobStorage) -> String {
    let deposit = Tokens(storage.deposit);
    match storage.released_at {
        Some(_) => format!("storage released, deposit {deposit} returned"),
        None => format!(
            "storage deposit {deposit} held ({} bytes of inputs, {} of output room per task)",
            storage.claim.input_bytes, storage.claim.output_bytes
        ),
    }
}

/// `x` with three significant digits (`0.0000123`, `4.56`, `789`).
pub fn significant(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return "0".into();
    }
    let digits = (2 - x.abs().log10().floor() as i32).max(0) as usize;
    format!("{x:.digits$}")
}

/// A job's energy and carbon in words (rules 24), `None` before it has an accepted run:
/// "energy 0.0000123 kWh, 0.00591 g CO2e (40 runs, estimated)".
pub fn energy_summary(energy: &engine::JobEnergy) -> Option<String> {
    if energy.runs == 0 && energy.unreported == 0 {
        return None;
    }
    if energy.runs == 0 {
        return Some(format!(
            "energy not known: none of its {} accepted runs was metered",
            energy.unreported
        ));
    }
    let kwh = energy.millijoules as f64 / engine::energy::MILLIJOULES_PER_KWH as f64;
    let grams = energy.co2e_micrograms as f64 / 1e6;
    let how = match (energy.measured, energy.runs) {
        (_, 0) => "none reported".to_string(),
        (0, _) => "estimated".to_string(),
        (m, r) if m == r => "measured".to_string(),
        (m, _) => format!("{m} measured, the others estimated"),
    };
    let unreported = match energy.unreported {
        0 => String::new(),
        n => format!(", {n} without a figure"),
    };
    Some(format!(
        "energy {} kWh, {} g CO2e ({} runs, {how}{unreported})",
        significant(kwh),
        significant(grams),
        energy.runs
    ))
}

fn describe_status(view: &JobView, money: &str) -> String {
    match &view.status {
        JobStatus::Completed => format!(
            "job {} completed: {} tasks in {} runs ({:.2} per task, {}), {} fuel{money}",
            view.id,
            view.tasks_done,
            view.executions,
            view.executions as f64 / view.tasks_done.max(1) as f64,
            redundancy(view.redundancy),
            view.fuel_used
        ),
        JobStatus::Failed { reason } => format!("job {} failed: {reason}{money}", view.id),
        JobStatus::Cancelled => format!("job {} was cancelled{money}", view.id),
        JobStatus::Running | JobStatus::Reducing => format!(
            "job {} is {}: {}/{} tasks done, {} running, {} queued",
            view.id,
            if view.status == JobStatus::Running {
                "running"
            } else {
                "reducing"
            },
            view.tasks_done,
            view.tasks_total,
            view.tasks_running,
            view.tasks_queued
        ),
    }
}

/// What a job delivered, task by task: `gridmint job report`. For a job that failed or passed
/// its deadline this is the partial-results report: the accepted outputs, what failed and why,
/// what was dropped unfinished, and what the escrow paid and refunded.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub job: u64,
    #[serde(serialize_with = "status_fields", rename = "status")]
    pub status: JobStatus,
    /// Why the job failed, if it did.
    pub reason: Option<String>,
    pub tasks_total: u64,
    pub done: Vec<DoneTask>,
    pub failed: Vec<FailedTask>,
    /// Tasks the job ended without (queued or running when it failed, expired or was cancelled).
    pub unfinished: Vec<engine::TaskId>,
    pub escrow: engine::Escrow,
}

/// A job status as its name: `running`, `reducing`, `completed`, `failed` or `cancelled`.
fn status_fields<S: serde::Serializer>(status: &JobStatus, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match status {
        JobStatus::Running => "running",
        JobStatus::Reducing => "reducing",
        JobStatus::Completed => "completed",
        JobStatus::Failed { .. } => "failed",
        JobStatus::Cancelled => "cancelled",
    })
}

#[derive(Debug, serde::Serialize)]
pub struct DoneTask {
    pub task: engine::TaskId,
    pub output_hash: engine::Hash,
    pub fuel_used: u64,
    /// The exit status of the accepted runs (0, or another of the job's `success_exits`).
    pub exit_status: i32,
    /// Where the output was written, with `--out-dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<std::path::PathBuf>,
}

#[derive(Debug, serde::Serialize)]
pub struct FailedTask {
    pub task: engine::TaskId,
    pub failures: u32,
    pub error: Option<String>,
}

/// The network's time, as its coordinator says (`StatusView::clock`), or this machine's clock
/// when it does not say: what a job's relative deadline counts from, so that a requester whose
/// clock disagrees with the network's still gets the deadline it asked for.
pub async fn network_time(client: &Client) -> u64 {
    match client.status().await {
        Ok(status) if status.clock > 0 => status.clock,
        _ => coordinator::wall_ms(),
    }
}

/// Builds job `id`'s report; with `out_dir`, writes each accepted output to
/// `out_dir/task-<index>`.
pub async fn report(
    client: &Client,
    id: u64,
    out_dir: Option<&std::path::Path>,
) -> anyhow::Result<Report> {
    let view = client.job(id, true).await?;
    let key = match (&view.private, out_dir) {
        (Some(private), Some(_)) => Some(load_job_key(&private.key_check)?),
        _ => None,
    };
    if let Some(dir) = out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut report = Report {
        job: id,
        status: view.status.clone(),
        reason: match &view.status {
            JobStatus::Failed { reason } => Some(reason.clone()),
            _ => None,
        },
        tasks_total: view.tasks_total,
        done: Vec::new(),
        failed: Vec::new(),
        unfinished: Vec::new(),
        escrow: view.escrow.clone(),
    };
    for t in &view.tasks {
        match (t.state.as_str(), t.output_hash) {
            ("done", Some(hash)) => {
                let file = match out_dir {
                    Some(dir) => {
                        let mut bytes = client.get_blob(hash).await.with_context(|| {
                            format!("downloading the output of task {}", t.task)
                        })?;
                        if let Some(key) = &key {
                            bytes = Bytes::from(key.open(&bytes).with_context(|| {
                                format!("opening the sealed output of task {}", t.task)
                            })?);
                        }
                        let path = dir.join(format!("task-{}", t.task.index));
                        std::fs::write(&path, &bytes)
                            .with_context(|| format!("writing {}", path.display()))?;
                        Some(path)
                    }
                    None => None,
                };
                report.done.push(DoneTask {
                    task: t.task,
                    output_hash: hash,
                    fuel_used: t.fuel_used.unwrap_or(0),
                    exit_status: t.exit_status.unwrap_or(0),
                    file,
                });
            }
            ("failed", _) => report.failed.push(FailedTask {
                task: t.task,
                failures: t.failures,
                error: t.last_error.clone(),
            }),
            _ => report.unfinished.push(t.task),
        }
    }
    Ok(report)
}

impl Report {
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let status = match &self.status {
            JobStatus::Failed { reason } => format!("failed: {reason}"),
            other => format!("{other:?}").to_lowercase(),
        };
        let _ = writeln!(s, "job {}: {status}", self.job);
        let _ = writeln!(
            s,
            "  {} of {} tasks done, {} failed, {} unfinished",
            self.done.len(),
            self.tasks_total,
            self.failed.len(),
            self.unfinished.len()
        );
        let _ = writeln!(s, "  escrow: {}", escrow_summary(&self.escrow));
        for d in &self.done {
            let _ = writeln!(
                s,
                "  done       task {:<8} output {} fuel {}{}{}",
                d.task.to_string(),
                d.output_hash,
                d.fuel_used,
                if d.exit_status == 0 {
                    String::new()
                } else {
                    format!(" exit status {}", d.exit_status)
                },
                d.file
                    .as_ref()
                    .map(|f| format!(" -> {}", f.display()))
                    .unwrap_or_default()
            );
        }
        for f in &self.failed {
            let _ = writeln!(
                s,
                "  failed     task {:<8} after {} failures: {}",
                f.task.to_string(),
                f.failures,
                f.error.as_deref().unwrap_or("?")
            );
        }
        for t in &self.unfinished {
            let _ = writeln!(s, "  unfinished task {t}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::{Hash, InputFile, JobSpec, Mount, TaskSpec};

    /// A running job's view, as the coordinator serves it.
    fn running_view(reopened: u64) -> JobView {
        JobView {
            id: 7,
            owner: engine::AccountId([1; 32]),
            status: JobStatus::Running,
            tasks_total: 20,
            tasks_done: 12,
            tasks_running: 5,
            tasks_queued: 3,
            submitted_at: 0,
            finished_at: None,
            deadline: 60_000,
            fuel_used: 1_000,
            tasks_per_provider: Default::default(),
            redundancy: engine::Redundancy::Adaptive,
            executions: 14,
            output: None,
            escrow: engine::Escrow::default(),
            tasks: Vec::new(),
            tasks_next: None,
            warning: None,
            reopened,
            corrected: 0,
            final_at: None,
            storage: None,
            success_exits: Vec::new(),
            entry: None,
            private: None,
            gpu: None,
            gpu_class: None,
            gpu_tolerance: None,
            energy: None,
            prefer_low_carbon: false,
        }
    }

    /// `job status` gives a job's energy and carbon (rules 24) with three significant digits,
    /// how they were found, and nothing before a run was accepted.
    #[test]
    fn a_jobs_energy_is_told_in_kwh_and_grams() {
        let mut view = running_view(0);
        view.energy = Some(engine::JobEnergy::default());
        assert!(!describe(&view).contains("energy"));
        view.energy = Some(engine::JobEnergy {
            millijoules: 44_280,
            co2e_micrograms: 5_904,
            runs: 12,
            measured: 0,
            unreported: 0,
        });
        view.prefer_low_carbon = true;
        view.status = JobStatus::Completed;
        let line = describe(&view);
        assert!(
            line.contains(
                "; energy 0.0000123 kWh, 0.00590 g CO2e (12 runs, estimated); prefers low-carbon providers"
            ),
            "{line}"
        );
        let mixed = engine::JobEnergy {
            millijoules: 3_600_000_000,
            co2e_micrograms: 480_000_000,
            runs: 3,
            measured: 1,
            unreported: 2,
        };
        assert_eq!(
            energy_summary(&mixed).unwrap(),
            "energy 1.00 kWh, 480 g CO2e (3 runs, 1 measured, the others estimated, 2 without a figure)"
        );
    }

    /// `job status` says how many of a running job's results were reopened (rules 16), and
    /// nothing of it when none was.
    #[test]
    fn a_running_jobs_reopened_results_are_told() {
        let plain = describe(&running_view(0));
        assert_eq!(
            plain,
            "job 7 is running: 12/20 tasks done, 5 running, 3 queued"
        );
        assert_eq!(
            describe(&running_view(2)),
            format!(
                "{plain}; 2 results reopened (its provider was caught lying on another task: a \
                 trusted re-run decides it)"
            )
        );
        assert!(describe(&running_view(1)).contains("; 1 result reopened ("));
    }

    /// `job status` says how many of a completed job's results were corrected after delivery,
    /// and when its results are final (rules 19).
    #[test]
    fn a_completed_jobs_corrections_and_final_time_are_told() {
        let mut view = running_view(0);
        view.status = JobStatus::Completed;
        view.finished_at = Some(1_000);
        let plain = describe(&view);
        assert!(
            !plain.contains("corrected") && !plain.contains("final at"),
            "{plain}"
        );
        view.corrected = 3;
        view.final_at = Some(86_401_000);
        assert_eq!(
            describe(&view),
            format!(
                "{plain}; 3 results corrected after delivery (its provider was caught lying \
                 later: an output fetched before is stale); final at 1970-01-02T00:00:01Z \
                 (until then a result whose provider is caught lying is corrected; `gridmint \
                 job release 7` makes it final now)"
            )
        );
    }

    #[test]
    fn sealing_a_job_seals_its_data_and_nothing_else() {
        let blob = |s: &str| Bytes::from(s.as_bytes().to_vec());
        let (module, input, stdin, lib, data) = (
            blob("module"),
            blob("input"),
            blob("stdin"),
            blob("public library tree"),
            blob("private data tree"),
        );
        let h = |b: &Bytes| Hash::of(b);
        let mut job = LoadedJob {
            spec: JobSpec {
                module: h(&module),
                tasks: vec![TaskSpec {
                    args: vec![],
                    env: vec![],
                    stdin: Some(h(&stdin)),
                    inputs: vec![
                        InputFile {
                            name: "in".into(),
                            hash: h(&input),
                        },
                        // The public tree also given as a file: it stays in the clear there too.
                        InputFile {
                            name: "lib.tar".into(),
                            hash: h(&lib),
                        },
                    ],
                }],
                limits: engine::Limits {
                    fuel: 1,
                    memory_bytes: 1 << 20,
                    wall_ms: 1000,
                },
                deadline: 1,
                max_price: 1,
                output: engine::OutputSource::Stdout,
                aggregate: engine::Aggregate::Concat,
                redundancy: Default::default(),
                requirements: Default::default(),
            },
            blobs: vec![
                module.clone(),
                input.clone(),
                stdin.clone(),
                lib.clone(),
                data.clone(),
            ],
            output_limit: None,
            options: Default::default(),
            files: engine::JobFiles {
                mounts: vec![
                    Mount {
                        path: "/data".into(),
                        tree: h(&data),
                    },
                    Mount {
                        path: "/lib".into(),
                        tree: h(&lib),
                    },
                ],
                scratch: None,
            },
            clear: vec![h(&lib)],
            gpu: None,
            tolerance: None,
            preferences: Default::default(),
            market_price: None,
        };
        let key = JobKey::generate();
        seal_job(&mut job, &key).unwrap();
        let sealed = |b: &Bytes| Hash::of(&key.seal(b));
        assert_eq!(job.spec.module, h(&module));
        let task = &job.spec.tasks[0];
        assert_eq!(task.stdin, Some(sealed(&stdin)));
        assert_eq!(task.inputs[0].hash, sealed(&input));
        assert_eq!(task.inputs[1].hash, h(&lib));
        assert_eq!(job.files.mounts[0].tree, sealed(&data));
        assert_eq!(job.files.mounts[1].tree, h(&lib));
        // Exactly the blobs the job now names, and no plaintext of its private data.
        let mut held: Vec<Hash> = job.blobs.iter().map(|b| Hash::of(b)).collect();
        held.sort();
        let mut named = engine::submission_blobs(&job.spec, Some(&job.files));
        named.sort();
        assert_eq!(held, named);
        for private in [&input, &stdin, &data] {
            assert!(!held.contains(&h(private)));
        }
    }
}
