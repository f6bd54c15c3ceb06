//! Blobs nobody uses yet are bounded and expire. An upload that no logged input names — no job
//! (its module, inputs or reduce module) and no report (its outputs) — is *unreferenced*: it
//! counts against its uploader's quota and its address's, and once it has been unreferenced for
//! the expiry time (an hour by default) it is deleted. The first logged input that names it
//! makes it referenced for good (a finished job's outputs stay until a retention rule says
//! otherwise). So an upload costs its sender room in a bounded allowance, never the network's
//! disk for long: 1,000 uploads of 1 MiB from one key used to be kept for good.
//!
//! The tables live in memory. On start every stored blob that the state does not name is
//! unreferenced again from that moment ([`BlobQuota::adopt`]), so a restart forgets nothing it
//! must delete. A job's admission refreshes its blobs' time ([`BlobQuota::touch`]) before it
//! checks they are stored, so a blob never expires between a job's admission and its commit
//! (a sweep deletes under the tables' lock: an admission that touched a blob then finds it
//! stored and fresh, or gone).

use crate::error::ApiError;
use engine::{AccountId, Hash, Input};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The allowances and the expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobQuotaConfig {
    /// Unreferenced bytes one account may hold.
    pub per_account: u64,
    /// Unreferenced bytes one address may hold (an IPv6 address by its /64), whatever keys it
    /// signs with.
    pub per_address: u64,
    /// How long a blob may stay unreferenced before it is deleted.
    pub expiry: Duration,
}

impl Default for BlobQuotaConfig {
    fn default() -> BlobQuotaConfig {
        BlobQuotaConfig {
            per_account: 256 << 20,
            per_address: 1 << 30,
            expiry: Duration::from_secs(3600),
        }
    }
}

struct Pending {
    account: Option<AccountId>,
    address: Option<IpAddr>,
    size: u64,
    since: Instant,
}

#[derive(Default)]
struct Tables {
    pending: HashMap<Hash, Pending>,
    by_account: HashMap<AccountId, u64>,
    by_address: HashMap<IpAddr, u64>,
}

impl Tables {
    fn forget(&mut self, hash: &Hash) -> Option<Pending> {
        let p = self.pending.remove(hash)?;
        if let Some(a) = p.account
            && let Some(held) = self.by_account.get_mut(&a)
        {
            *held = held.saturating_sub(p.size);
            if *held == 0 {
                self.by_account.remove(&a);
            }
        }
        if let Some(ip) = p.address
            && let Some(held) = self.by_address.get_mut(&ip)
        {
            *held = held.saturating_sub(p.size);
            if *held == 0 {
                self.by_address.remove(&ip);
            }
        }
        Some(p)
    }
}

pub struct BlobQuota {
    config: BlobQuotaConfig,
    tables: Mutex<Tables>,
}

impl BlobQuota {
    pub fn new(config: BlobQuotaConfig) -> BlobQuota {
        BlobQuota {
            config,
            tables: Mutex::new(Tables::default()),
        }
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes room for a new upload of `size` bytes by `account` from `ip`, or says which
    /// allowance it would exceed (`413 blob_quota`). Call only for a blob not stored yet; an
    /// upload that then fails gives the room back with [`BlobQuota::release`].
    pub fn reserve(
        &self,
        hash: Hash,
        account: AccountId,
        ip: IpAddr,
        size: u64,
    ) -> Result<(), ApiError> {
        let address = crate::limits::address_key(ip);
        let mut t = self.tables();
        if t.pending.contains_key(&hash) {
            return Ok(());
        }
        let by_account = t.by_account.get(&account).copied().unwrap_or(0);
        let by_address = t.by_address.get(&address).copied().unwrap_or(0);
        let minutes = self.config.expiry.as_secs().div_ceil(60);
        if by_account.saturating_add(size) > self.config.per_account {
            return Err(ApiError::Quota(format!(
                "account {account} already holds {by_account} bytes of blobs that no job or result names yet; \
                 {size} more would exceed its {} (submit the jobs that use them; unused blobs expire after {minutes} min)",
                self.config.per_account
            )));
        }
        if by_address.saturating_add(size) > self.config.per_address {
            return Err(ApiError::Quota(format!(
                "{address} already holds {by_address} bytes of blobs that no job or result names yet; \
                 {size} more would exceed its {} (unused blobs expire after {minutes} min)",
                self.config.per_address
            )));
        }
        *t.by_account.entry(account).or_default() += size;
        *t.by_address.entry(address).or_default() += size;
        t.pending.insert(
            hash,
            Pending {
                account: Some(account),
                address: Some(address),
                size,
                since: Instant::now(),
            },
        );
        Ok(())
    }

    /// Gives back the room of an upload that was not stored.
    pub fn release(&self, hash: &Hash) {
        self.tables().forget(hash);
    }

    /// A job naming these blobs is being admitted: they start their expiry over.
    pub fn touch(&self, hashes: impl IntoIterator<Item = Hash>) {
        let mut t = self.tables();
        if t.pending.is_empty() {
            return;
        }
        let now = Instant::now();
        for hash in hashes {
            if let Some(p) = t.pending.get_mut(&hash) {
                p.since = now;
            }
        }
    }

    /// `input` was logged: the blobs it names are referenced for good.
    pub fn logged(&self, input: &Input) {
        let Input::Signed(signed) = input else {
            return;
        };
        let mut t = self.tables();
        if t.pending.is_empty() {
            return;
        }
        match &signed.body {
            body if body.submission().is_some() => {
                for hash in body.submission_blobs() {
                    t.forget(&hash);
                }
            }
            body if body.reports().is_some() => {
                for r in body.reports().unwrap_or_default() {
                    t.forget(&r.output_hash);
                }
            }
            _ => {}
        }
    }

    /// Stored blobs that the state does not name (found on start): unreferenced from now, on
    /// nobody's allowance.
    pub fn adopt(&self, blobs: impl IntoIterator<Item = (Hash, u64)>) -> usize {
        let mut t = self.tables();
        let now = Instant::now();
        let mut n = 0;
        for (hash, size) in blobs {
            t.pending.entry(hash).or_insert_with(|| {
                n += 1;
                Pending {
                    account: None,
                    address: None,
                    size,
                    since: now,
                }
            });
        }
        n
    }

    /// The blobs unreferenced for longer than the expiry (a sweep would delete them).
    pub fn expired(&self) -> std::collections::HashSet<Hash> {
        let now = Instant::now();
        self.tables()
            .pending
            .iter()
            .filter(|(_, p)| now.duration_since(p.since) >= self.config.expiry)
            .map(|(h, _)| *h)
            .collect()
    }

    /// Deletes (with `delete`) those of `candidates` (from [`BlobQuota::expired`]) still
    /// unreferenced for longer than the expiry, and takes them off the tables; returns them.
    /// Those `named` says the state names (a copy that arrived
    /// from another validator after the job naming it was applied here) are referenced after
    /// all: kept, and off the tables. The tables stay locked meanwhile, so an admission that
    /// touches one of them waits, and then finds it gone (and refuses its job) or fresh. The
    /// caller holds the node (lock order: node, then these tables), so that nothing naming a
    /// blob is applied between `named` and the deletion.
    pub fn sweep(
        &self,
        candidates: &std::collections::HashSet<Hash>,
        named: impl Fn(&Hash) -> bool,
        mut delete: impl FnMut(&Hash),
    ) -> Vec<Hash> {
        let mut t = self.tables();
        let now = Instant::now();
        // Only candidates: `named` was asked about them alone (one expiring since waits).
        let old: Vec<Hash> = t
            .pending
            .iter()
            .filter(|(h, p)| {
                candidates.contains(h) && now.duration_since(p.since) >= self.config.expiry
            })
            .map(|(h, _)| *h)
            .collect();
        let mut deleted = Vec::new();
        for hash in old {
            if !named(&hash) {
                delete(&hash);
                deleted.push(hash);
            }
            t.forget(&hash);
        }
        deleted
    }

    /// Unreferenced blobs and their bytes.
    pub fn held(&self) -> (usize, u64) {
        let t = self.tables();
        (t.pending.len(), t.pending.values().map(|p| p.size).sum())
    }

    /// How often to look for expired blobs.
    pub fn sweep_every(&self) -> Duration {
        (self.config.expiry / 4).clamp(Duration::from_millis(250), Duration::from_secs(60))
    }
}

/// Every blob the state names: its jobs' specs and every output a run returned.
pub fn state_blobs(state: &engine::State) -> std::collections::HashSet<Hash> {
    let mut out = std::collections::HashSet::new();
    each_state_blob(state, |h| {
        out.insert(*h);
    });
    out
}

/// Those of `candidates` the state names (one walk of the state, a set no larger than them).
pub fn named_among(
    state: &engine::State,
    candidates: &std::collections::HashSet<Hash>,
) -> std::collections::HashSet<Hash> {
    let mut out = std::collections::HashSet::new();
    each_state_blob(state, |h| {
        if candidates.contains(h) {
            out.insert(*h);
        }
    });
    out
}

/// The blobs job names — its spec's and its mounted trees' (size unknown here: 0) and every
/// output a run returned — with their sizes: what its storage's release leaves unreferenced.
pub fn job_blobs(state: &engine::State, job: &engine::Job) -> Vec<(Hash, u64)> {
    let mut out: Vec<(Hash, u64)> = state
        .job_blobs(job.id)
        .into_iter()
        .map(|h| (h, 0))
        .collect();
    for task in &job.tasks {
        for run in &task.runs {
            if let Some((output_hash, output_size, ..)) = run.returned() {
                out.push((output_hash, output_size));
            }
        }
        if let Some(r) = &task.result {
            out.push((r.output_hash, 0));
        }
    }
    out
}

/// Every blob the state names: each job's spec blobs and returned outputs — but not those of a
/// job whose storage was released (rules 10): such a job names nothing any more.
fn each_state_blob(state: &engine::State, mut f: impl FnMut(&Hash)) {
    for job in state.jobs.values() {
        if state.storage_released(job.id) {
            continue;
        }
        for h in state.job_blobs(job.id) {
            f(&h);
        }
        for task in &job.tasks {
            if let Some(r) = &task.result {
                f(&r.output_hash);
            }
            for run in &task.runs {
                if let Some((output_hash, ..)) = run.returned() {
                    f(&output_hash);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::{Aggregate, JobSpec};

    fn quota(per_account: u64, per_address: u64, expiry_ms: u64) -> BlobQuota {
        BlobQuota::new(BlobQuotaConfig {
            per_account,
            per_address,
            expiry: Duration::from_millis(expiry_ms),
        })
    }

    #[test]
    fn an_account_and_an_address_hold_at_most_their_allowance_of_unreferenced_bytes() {
        let q = quota(100, 150, 60_000);
        let (a, b) = (AccountId([1; 32]), AccountId([2; 32]));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        q.reserve(Hash([1; 32]), a, ip, 60).unwrap();
        // Again for the same blob: no more room taken.
        q.reserve(Hash([1; 32]), a, ip, 60).unwrap();
        assert!(matches!(
            q.reserve(Hash([2; 32]), a, ip, 41),
            Err(ApiError::Quota(_))
        ));
        q.reserve(Hash([2; 32]), a, ip, 40).unwrap();
        // Another key from the same address: the address's allowance.
        assert!(matches!(
            q.reserve(Hash([3; 32]), b, ip, 51),
            Err(ApiError::Quota(_))
        ));
        q.reserve(Hash([3; 32]), b, "192.0.2.2".parse().unwrap(), 51)
            .unwrap();
        q.release(&Hash([2; 32]));
        q.reserve(Hash([4; 32]), a, ip, 40).unwrap();
        assert_eq!(q.held(), (3, 151));
    }

    #[test]
    fn unreferenced_blobs_expire_and_a_logged_job_keeps_its_blobs() {
        let q = quota(1 << 20, 1 << 20, 50);
        let a = AccountId([1; 32]);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let (module, stray) = (Hash([7; 32]), Hash([8; 32]));
        q.reserve(module, a, ip, 10).unwrap();
        q.reserve(stray, a, ip, 10).unwrap();
        q.adopt([(Hash([9; 32]), 5), (module, 10)]);
        let spec = JobSpec {
            module,
            tasks: vec![engine::TaskSpec::default()],
            limits: engine::Limits {
                fuel: 1,
                memory_bytes: 1,
                wall_ms: 1,
            },
            deadline: 1,
            max_price: 1,
            output: engine::OutputSource::Stdout,
            aggregate: Aggregate::Concat,
            redundancy: Default::default(),
            requirements: Default::default(),
        };
        q.logged(&Input::Signed(engine::Signed {
            signer: a,
            nonce: 1,
            body: engine::Action::SubmitJob(spec),
            signature: engine::Sig([0; 64]),
        }));
        assert!(
            q.sweep(&q.expired(), |_| false, |_| panic!("nothing is due"))
                .is_empty()
        );
        std::thread::sleep(Duration::from_millis(60));
        let mut deleted = Vec::new();
        let mut gone = q.sweep(&q.expired(), |_| false, |h| deleted.push(*h));
        assert_eq!(gone.len(), deleted.len());
        gone.sort();
        assert_eq!(gone, vec![stray, Hash([9; 32])]);
        assert_eq!(q.held(), (0, 0));
    }

    /// A copy adopted after the job naming it was applied (a replica that arrived late) is
    /// expired in the tables but named by the state: the sweep keeps it and lets it go.
    #[test]
    fn a_blob_the_state_names_is_never_swept() {
        let q = quota(1 << 20, 1 << 20, 10);
        let (named, stray) = (Hash([1; 32]), Hash([2; 32]));
        q.adopt([(named, 5), (stray, 5)]);
        std::thread::sleep(Duration::from_millis(20));
        let expired = q.expired();
        assert_eq!(expired.len(), 2);
        let mut deleted = Vec::new();
        let gone = q.sweep(&expired, |h| *h == named, |h| deleted.push(*h));
        assert_eq!((gone, deleted), (vec![stray], vec![stray]));
        assert_eq!(q.held(), (0, 0), "the named one is off the tables too");
        assert!(q.expired().is_empty());
        // One that expired after the candidates were taken waits for the next sweep.
        let late = Hash([3; 32]);
        q.adopt([(late, 5)]);
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            q.sweep(&expired, |_| false, |_| panic!("not a candidate"))
                .is_empty()
        );
        assert_eq!(q.held(), (1, 5));
    }
}
