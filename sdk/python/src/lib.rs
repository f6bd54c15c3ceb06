//! `gridmint._native`: what the Python SDK takes from Rust — the key files, the signing and the
//! HTTP client of the `api` crate, and the job spec reader of the `jobspec` crate — so that a
//! Python submission is byte for byte what the CLI would send. Views cross as JSON text (the
//! API's own JSON), which the Python side parses.

use anyhow::Context;
use api::{Client, Identity};
use bytes::Bytes;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::path::{Path, PathBuf};
use std::time::Duration;

pyo3::create_exception!(_native, GridmintError, PyRuntimeError);

fn fail(e: impl std::fmt::Display) -> PyErr {
    GridmintError::new_err(e.to_string())
}

/// `e` as a `GridmintError`; when the coordinator refused the request, with its `code` (the
/// API's `error`: `not_found`, `not_owner`, `insufficient_funds`…) and HTTP `status`.
fn failure(py: Python<'_>, e: &anyhow::Error) -> PyErr {
    let err = fail(format!("{e:#}"));
    let refusal = e
        .chain()
        .find_map(|c| match c.downcast_ref::<api::ClientError>() {
            Some(api::ClientError::Api { status, body, .. }) => {
                Some((*status, body.error.as_str()))
            }
            _ => None,
        });
    if let Some((status, code)) = refusal {
        let value = err.value(py);
        // Setting an attribute of a fresh exception instance does not fail.
        let _ = value.setattr("code", code);
        let _ = value.setattr("status", status);
    }
    err
}

fn account_id(hex: &str) -> PyResult<engine::AccountId> {
    engine::AccountId::from_hex(hex).map_err(|e| fail(format!("account id {hex:?}: {e}")))
}

fn json<T: serde::Serialize>(value: &T) -> PyResult<String> {
    serde_json::to_string(value).map_err(fail)
}

/// Files of a job spec, relative to a directory (mounted trees are the CLI's).
struct Dir(PathBuf);

impl jobspec::Files for Dir {
    fn read(&self, path: &str) -> anyhow::Result<Bytes> {
        let full = self.0.join(path);
        std::fs::read(&full)
            .map(Bytes::from)
            .with_context(|| format!("reading {}", full.display()))
    }
}

fn now_ms() -> engine::Time {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A connection to a coordinator, acting as one account.
#[pyclass(module = "gridmint._native")]
struct Session {
    rt: tokio::runtime::Runtime,
    client: Client,
    me: Identity,
}

impl Session {
    fn run<T>(
        &self,
        py: Python<'_>,
        fut: impl Future<Output = anyhow::Result<T>> + Send,
    ) -> PyResult<T>
    where
        T: Send,
    {
        // The GIL is let go while the network is waited for.
        py.detach(|| self.rt.block_on(fut))
            .map_err(|e| failure(py, &e))
    }

    async fn submit(&self, mut job: jobspec::LoadedJob) -> anyhow::Result<engine::JobId> {
        if job.gpu.is_some() {
            anyhow::bail!("GPU jobs are submitted with the gridmint command line");
        }
        let network = self
            .client
            .network()
            .await
            .context("reading the network's rules")?;
        // Rules 25: `max_price = "market + 10%"` is resolved from the price index now.
        if job.market_price.is_some() {
            let indexes = self
                .client
                .market()
                .await
                .context("reading the price index (max_price follows the market)")?;
            jobspec::resolve_market_price(&mut job, &indexes.classes)?;
        }
        let input_bytes = api::weigh(&job.spec, &job.files, &job.blobs)
            .map_err(|hash| anyhow::anyhow!("the job names blob {hash} but has not read it"))?;
        let action = api::job_submission(
            network.storage.as_ref(),
            job.spec,
            input_bytes,
            job.output_limit,
            job.options,
            job.files,
            None,
        );
        let action = if job.preferences == engine::JobPreferences::default() {
            action
        } else {
            engine::Action::SubmitWithPreferences {
                preferences: job.preferences,
                submission: Box::new(action),
            }
        };
        for blob in job.blobs {
            self.client
                .upload(&self.me, blob)
                .await
                .context("uploading a blob")?;
        }
        let resp = self
            .client
            .action(&self.me, action)
            .await
            .map_err(|e| anyhow::anyhow!("submitting the job: {e}"))?;
        resp.submitted_job()
            .context("the coordinator accepted the job but reported no job id")
    }
}

#[pymethods]
impl Session {
    /// `url`: the coordinator; `key`: the account's key file, created if missing (the CLI's
    /// format: the same file works with `gridmint`).
    #[new]
    fn new(url: &str, key: PathBuf) -> PyResult<Self> {
        api::tls::install_provider();
        let me = Identity::load_or_create(&key)
            .map_err(|e| fail(format!("key {}: {e}", key.display())))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(fail)?;
        let client = {
            let _guard = rt.enter();
            Client::new(url)
        };
        Ok(Session { rt, client, me })
    }

    /// The account's id (hex).
    #[getter]
    fn account(&self) -> String {
        self.me.id().to_hex()
    }

    fn status(&self, py: Python<'_>) -> PyResult<String> {
        let view = self.run(py, async { Ok(self.client.status().await?) })?;
        json(&view)
    }

    fn network(&self, py: Python<'_>) -> PyResult<String> {
        let view = self.run(py, async { Ok(self.client.network().await?) })?;
        json(&view)
    }

    /// An account's view (this one's by default).
    #[pyo3(signature = (id=None))]
    fn account_view(&self, py: Python<'_>, id: Option<&str>) -> PyResult<String> {
        let id = match id {
            Some(hex) => engine::AccountId::from_hex(hex)
                .map_err(|e| fail(format!("account id {hex:?}: {e}")))?,
            None => self.me.id(),
        };
        let view = self.run(py, async { Ok(self.client.account(id).await?) })?;
        json(&view)
    }

    /// A development network's faucet, to this account.
    fn faucet(&self, py: Python<'_>) -> PyResult<String> {
        let resp = self.run(py, async {
            Ok(self.client.action(&self.me, engine::Action::Faucet).await?)
        })?;
        json(&resp)
    }

    /// Sends `amount` (GRID as a decimal string, such as "1.5") to account `to`.
    fn transfer(&self, py: Python<'_>, to: &str, amount: &str) -> PyResult<String> {
        let to =
            engine::AccountId::from_hex(to).map_err(|e| fail(format!("account id {to:?}: {e}")))?;
        let amount =
            engine::parse_tokens(amount).map_err(|e| fail(format!("amount {amount:?}: {e}")))?;
        let resp = self.run(py, async {
            Ok(self
                .client
                .action(&self.me, engine::Action::Transfer { to, amount })
                .await?)
        })?;
        json(&resp)
    }

    /// Bonds `amount` GRID of the balance as stake (`unstake` starts unbonding it).
    fn stake(&self, py: Python<'_>, amount: &str) -> PyResult<String> {
        let amount =
            engine::parse_tokens(amount).map_err(|e| fail(format!("amount {amount:?}: {e}")))?;
        let resp = self.run(py, async {
            Ok(self
                .client
                .action(&self.me, engine::Action::Stake { amount })
                .await?)
        })?;
        json(&resp)
    }

    fn unstake(&self, py: Python<'_>, amount: &str) -> PyResult<String> {
        let amount =
            engine::parse_tokens(amount).map_err(|e| fail(format!("amount {amount:?}: {e}")))?;
        let resp = self.run(py, async {
            Ok(self
                .client
                .action(&self.me, engine::Action::Unstake { amount })
                .await?)
        })?;
        json(&resp)
    }

    /// Signs and sends an action given as the API's JSON (`{"delegate": {...}}`, `{"vote": ...}`):
    /// the wallet, delegation and governance actions the Python layer builds.
    fn action(&self, py: Python<'_>, body: &str) -> PyResult<String> {
        let action: engine::Action =
            serde_json::from_str(body).map_err(|e| fail(format!("action {body:?}: {e}")))?;
        let resp = self.run(py, async {
            Ok(self.client.action(&self.me, action).await?)
        })?;
        json(&resp)
    }

    /// The price index (rules 25).
    fn market(&self, py: Python<'_>) -> PyResult<String> {
        let view = self.run(py, async { Ok(self.client.market().await?) })?;
        json(&view)
    }

    /// The governance parameters and the newest proposals (rules 25).
    fn proposals(&self, py: Python<'_>) -> PyResult<String> {
        let view = self.run(py, async { Ok(self.client.proposals().await?) })?;
        json(&view)
    }

    /// Rules 27: the validators (power, own stake, backing, share of fees earned), the staking
    /// rules in force and the next payout of the validators' share of fees.
    fn validators(&self, py: Python<'_>) -> PyResult<String> {
        let view = self.run(py, async { Ok(self.client.validators().await?) })?;
        json(&view)
    }

    /// Rules 28: proven and pending GPU classes, of `class` only and/or of `provider` only
    /// (a hex account id).
    #[pyo3(signature = (class=None, provider=None))]
    fn gpu_classes(
        &self,
        py: Python<'_>,
        class: Option<&str>,
        provider: Option<&str>,
    ) -> PyResult<String> {
        let provider = provider.map(account_id).transpose()?;
        let view = self.run(py, async {
            Ok(self.client.gpu_classes(class, provider).await?)
        })?;
        json(&view)
    }

    /// Rules 26: the newest reservations (at most 200), of `owner` only and/or leased by
    /// `provider` only (hex account ids).
    #[pyo3(signature = (owner=None, provider=None))]
    fn reservations(
        &self,
        py: Python<'_>,
        owner: Option<&str>,
        provider: Option<&str>,
    ) -> PyResult<String> {
        let owner = owner.map(account_id).transpose()?;
        let provider = provider.map(account_id).transpose()?;
        let views = self.run(py, async {
            Ok(self.client.reservations(owner, provider).await?)
        })?;
        json(&views)
    }

    /// Rules 26: one reservation and its leases.
    fn reservation(&self, py: Python<'_>, id: u64) -> PyResult<String> {
        let view = self.run(py, async { Ok(self.client.reservation(id).await?) })?;
        json(&view)
    }

    /// Cancels one of this account's unfinished jobs (what its escrow holds comes back).
    fn cancel(&self, py: Python<'_>, job: u64) -> PyResult<String> {
        let resp = self.run(py, async {
            Ok(self
                .client
                .action(&self.me, engine::Action::CancelJob(job))
                .await?)
        })?;
        json(&resp)
    }

    /// A page of an account's history (this one's by default), newest first.
    #[pyo3(signature = (id=None, before=None, limit=50))]
    fn history(
        &self,
        py: Python<'_>,
        id: Option<&str>,
        before: Option<u64>,
        limit: u32,
    ) -> PyResult<String> {
        let id = match id {
            Some(hex) => engine::AccountId::from_hex(hex)
                .map_err(|e| fail(format!("account id {hex:?}: {e}")))?,
            None => self.me.id(),
        };
        let page = self.run(py, async {
            Ok(self.client.history(id, before, limit).await?)
        })?;
        json(&page)
    }

    /// Submits the job spec file at `path` (TOML, as `gridmint job submit` reads it).
    fn submit_file(&self, py: Python<'_>, path: PathBuf) -> PyResult<u64> {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| fail(format!("reading job spec {}: {e}", path.display())))?;
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let job = jobspec::load(&text, &Dir(dir), now_ms())
            .map_err(|e| fail(format!("job spec {}: {e:#}", path.display())))?;
        self.run(py, self.submit(job))
    }

    /// Submits a job spec given as JSON (the spec file's fields), its paths relative to `base`.
    fn submit_json(&self, py: Python<'_>, spec: &str, base: PathBuf) -> PyResult<u64> {
        let file: jobspec::JobFile =
            serde_json::from_str(spec).map_err(|e| fail(format!("job spec: {e}")))?;
        let job = jobspec::load_file(file, &Dir(base), now_ms())
            .map_err(|e| fail(format!("job spec: {e:#}")))?;
        self.run(py, self.submit(job))
    }

    /// A job's view, with a page of per-task detail when `tasks`; waits up to `wait_ms` for it
    /// to finish.
    #[pyo3(signature = (id, tasks=false, wait_ms=0))]
    fn job(&self, py: Python<'_>, id: u64, tasks: bool, wait_ms: u64) -> PyResult<String> {
        let view = self.run(py, async {
            Ok(if wait_ms > 0 {
                self.client
                    .job_wait(id, Duration::from_millis(wait_ms))
                    .await?
            } else {
                self.client.job(id, tasks).await?
            })
        })?;
        json(&view)
    }

    /// A completed job's output.
    fn output<'py>(&self, py: Python<'py>, id: u64) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = self.run(py, async { Ok(self.client.job_output(id).await?) })?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// A blob's bytes, by its hash.
    fn blob<'py>(&self, py: Python<'py>, hash: &str) -> PyResult<Bound<'py, PyBytes>> {
        let hash =
            engine::Hash::from_hex(hash).map_err(|e| fail(format!("blob hash {hash:?}: {e}")))?;
        let bytes = self.run(py, async { Ok(self.client.get_blob(hash).await?) })?;
        Ok(PyBytes::new(py, &bytes))
    }
}

/// What this process's sessions trust, as the CLI's `--pin`, `--ca` and `--plain-http` say:
/// certificates whose key has one of `pins`, or issued by the CA in the PEM file `ca`; plain
/// HTTP beyond loopback only with `plain_http`. Without it: the system's roots, and plain HTTP
/// to loopback only.
#[pyfunction]
#[pyo3(signature = (pins=Vec::new(), ca=None, plain_http=false))]
fn set_trust(pins: Vec<String>, ca: Option<PathBuf>, plain_http: bool) -> PyResult<()> {
    let trust = api::tls::Trust::load(ca.as_deref(), &pins, plain_http).map_err(fail)?;
    api::tls::set_trust(trust).map_err(fail)
}

/// A size as a job spec writes it ("4GiB", "512MB", "1024") in bytes.
#[pyfunction]
fn parse_size(size: &str) -> PyResult<u64> {
    jobspec::parse_size(size).map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("{e:#}")))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Session>()?;
    m.add_function(wrap_pyfunction!(set_trust, m)?)?;
    let error = m.py().get_type::<GridmintError>();
    // What a refusal by the coordinator sets on the instance; `None` for any other failure.
    error.setattr("code", m.py().None())?;
    error.setattr("status", m.py().None())?;
    m.add("GridmintError", error)?;
    m.add_function(wrap_pyfunction!(parse_size, m)?)?;
    Ok(())
}
