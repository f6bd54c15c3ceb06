//! Shared machinery for the end-to-end tests: a per-test [`World`] (temp dirs, an isolated
//! `GRIDMINT_HOME`, a small async runtime for HTTP), guards that kill the `gridmint` processes they
//! spawned, helpers to start a coordinator and providers, submit jobs and poll with a deadline, and
//! known answers computed natively (pi, word count).

pub mod proxy;

use api::wire::{ErrorBody, JobView, ProviderView, StatusView};
use api::{Client, ClientError, Identity};
use engine::{AccountId, Hash, JobId, JobStatus, ProviderStatus};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The binary under test.
pub const GRIDMINT: &str = env!("CARGO_BIN_EXE_gridmint");

/// How often state is polled.
pub const POLL_EVERY: Duration = Duration::from_millis(50);
/// The longest any single wait in a test may take.
pub const WAIT: Duration = Duration::from_secs(60);

/// Absolute path of a committed guest module, e.g. `guest("pi.wasm")` or `guest("hostile/spin.wasm")`.
pub fn guest(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../guests")
        .join(name)
}

/// A path as a TOML basic string (JSON string escapes are valid TOML escapes).
pub fn toml_path(path: &Path) -> String {
    serde_json::to_string(&path.display().to_string()).expect("a string serialises")
}

/// Polls `f` every [`POLL_EVERY`] until it returns `Some`, panicking after `timeout`.
pub fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(POLL_EVERY);
    }
}

/// The last `max` bytes of a log file, for failure messages.
fn tail(path: &Path, max: usize) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    let cut = text.len().saturating_sub(max);
    let start = (cut..=text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..].to_string()
}

/// A spawned process that is killed (SIGKILL) and reaped when dropped.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    /// Where its stderr goes.
    pub log: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL now and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM (through `/usr/bin/kill`, to stay free of `unsafe`).
    pub fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("running kill -TERM");
        assert!(status.success(), "kill -TERM {} failed", self.pid());
    }

    /// Waits for the process to exit on its own, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let name = self.name.clone();
        let child = self.child.as_mut().expect("process already reaped");
        let status = poll(&format!("{name} to exit"), timeout, || {
            child.try_wait().expect("try_wait")
        });
        self.child = None;
        status
    }

    /// Its stderr so far (the tail).
    pub fn logs(&self) -> String {
        tail(&self.log, 8000)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "----- {} (stderr: {}) -----\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 6000)
            );
        }
    }
}

/// The result of a finished CLI command.
#[derive(Debug)]
pub struct Ran {
    pub args: Vec<String>,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// Panics (showing the command's output) unless it exited 0.
    pub fn ok(self) -> Ran {
        assert!(
            self.status.success(),
            "`gridmint {}` failed with {}\nstdout:\n{}\nstderr:\n{}",
            self.args.join(" "),
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics (showing the command's output) if it exited 0.
    pub fn fails(self) -> Ran {
        assert!(
            !self.status.success(),
            "`gridmint {}` should have failed but exited 0\nstdout:\n{}\nstderr:\n{}",
            self.args.join(" "),
            self.stdout,
            self.stderr
        );
        self
    }

    /// Stdout parsed as one JSON value.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "`gridmint {}` printed no JSON ({e}):\n{}",
                self.args.join(" "),
                self.stdout
            )
        })
    }
}

/// One test's sandbox: its temp dir, its `GRIDMINT_HOME` and an async runtime for HTTP calls.
pub struct World {
    root: tempfile::TempDir,
    rt: Arc<tokio::runtime::Runtime>,
    counter: AtomicU32,
    /// Pins of the HTTPS coordinators started so far: every later command is given them
    /// (`GRIDMINT_PIN`), as a user would pass `--pin`.
    pins: std::sync::Mutex<Vec<String>>,
}

impl Default for World {
    fn default() -> Self {
        World::new()
    }
}

impl World {
    pub fn new() -> World {
        // Tests build plain `reqwest` clients too: they need the process's crypto provider.
        api::tls::install_provider();
        let root = tempfile::Builder::new()
            .prefix("gridmint-e2e-")
            .tempdir()
            .expect("creating a temp dir");
        std::fs::create_dir_all(root.path().join("home")).expect("creating GRIDMINT_HOME");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("building a tokio runtime");
        World {
            pins: std::sync::Mutex::new(Vec::new()),
            root,
            rt: Arc::new(rt),
            counter: AtomicU32::new(0),
        }
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The isolated `GRIDMINT_HOME` every spawned command gets.
    pub fn home(&self) -> PathBuf {
        self.root().join("home")
    }

    /// A fresh directory under the test's root.
    pub fn dir(&self, name: &str) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let dir = self.root().join(format!("{name}-{n}"));
        std::fs::create_dir_all(&dir).expect("creating a test dir");
        dir
    }

    /// Writes `contents` to `name` under the root and returns the path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.root().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("creating parent dir");
        }
        std::fs::write(&path, contents).expect("writing a test file");
        path
    }

    /// A genesis file for the economy's tests: a 5% fee to `treasury`, a minimum stake of 100,
    /// votes and unbonding of 3 s, a tenth of a stake slashed (half to the requester, half to
    /// the treasury), a faucet of 1,000.
    pub fn money_genesis(&self, chain_id: &str, treasury: engine::AccountId) -> PathBuf {
        self.write(
            "genesis.toml",
            format!(
                r#"chain_id = "{chain_id}"
treasury = "{treasury}"
fee_bps = 500
min_stake = "100"
unbonding_delay = "3s"
[slash]
fraction_bps = 1000
requester_bps = 5000
treasury_bps = 5000
[faucet]
amount = "1000"
"#
            ),
        )
    }

    /// `gridmint` with the test's environment: isolated home, no inherited coordinator URL.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(GRIDMINT);
        cmd.env("GRIDMINT_HOME", self.home())
            .env_remove("GRIDMINT_COORDINATOR")
            .env_remove("GRIDMINT_CA")
            .env_remove("GRIDMINT_PLAIN_HTTP");
        let pins = self.pins.lock().unwrap().join(",");
        if pins.is_empty() {
            cmd.env_remove("GRIDMINT_PIN");
        } else {
            cmd.env("GRIDMINT_PIN", pins);
        }
        cmd.env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }

    fn log_file(&self, name: &str) -> (PathBuf, File) {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let path = self.root().join(format!("{name}-{n}.log"));
        let file = File::create(&path).expect("creating a log file");
        (path, file)
    }

    /// Runs `gridmint ARGS` to completion (at most [`WAIT`] plus a margin).
    pub fn cli(&self, args: &[&str]) -> Ran {
        self.cli_env(args, &[])
    }

    /// Like [`World::cli`] with extra environment variables.
    pub fn cli_env(&self, args: &[&str], env: &[(&str, &str)]) -> Ran {
        let (out_path, out) = self.log_file("cli-stdout");
        let (err_path, err) = self.log_file("cli-stderr");
        let mut cmd = self.command();
        cmd.args(args).stdout(out).stderr(err);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawning gridmint");
        let mut proc = Proc {
            name: format!("gridmint {}", args.join(" ")),
            child: Some(child),
            log: err_path.clone(),
        };
        let status = proc.wait_exit(WAIT + Duration::from_secs(30));
        Ran {
            args: args.iter().map(|s| s.to_string()).collect(),
            status,
            stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
            stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
        }
    }

    /// A blocking view of the coordinator at `url`.
    pub fn http(&self, url: &str) -> Http {
        Http {
            client: Client::new(url),
            rt: self.rt.clone(),
        }
    }

    /// Runs a future on the test's runtime.
    pub fn block_on<F: std::future::Future>(&self, fut: F) -> F::Output {
        self.rt.block_on(fut)
    }

    /// Starts `gridmint coordinator` on `127.0.0.1:0` with a fresh data dir.
    pub fn coordinator(&self, extra: &[&str]) -> Coordinator {
        let data_dir = self.dir("coordinator");
        self.coordinator_at(&data_dir, "127.0.0.1:0", extra)
    }

    /// Starts `gridmint coordinator --listen LISTEN --data-dir DATA_DIR EXTRA...` and waits for its
    /// `listening on http://…` line. The network is a development one (`--dev`, with a faucet)
    /// unless `extra` names a `--genesis`.
    pub fn coordinator_at(&self, data_dir: &Path, listen: &str, extra: &[&str]) -> Coordinator {
        let (log, err) = self.log_file("coordinator");
        let mut cmd = self.command();
        cmd.arg("coordinator")
            .args(["--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(extra);
        if !extra.contains(&"--genesis") {
            cmd.arg("--dev");
        }
        cmd.stdout(Stdio::piped()).stderr(err);
        let mut child = cmd.spawn().expect("spawning gridmint coordinator");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut proc = Proc {
            name: format!("coordinator {listen}"),
            child: Some(child),
            log,
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut first = String::new();
            let read = reader.read_line(&mut first);
            let _ = tx.send(read.map(|_| first));
            // Keep draining so the coordinator never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let first = match rx.recv_timeout(WAIT) {
            Ok(Ok(line)) => line,
            other => {
                let alive = proc.alive();
                panic!(
                    "coordinator printed no first line ({other:?}); running: {alive}\nstderr:\n{}",
                    proc.logs()
                )
            }
        };
        let said = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "coordinator's first stdout line is {first:?}, expected `listening on http://127.0.0.1:PORT`\nstderr:\n{}",
                    proc.logs()
                )
            });
        // `https://…:PORT (certificate pin sha256/…)` over HTTPS.
        let (url, pin) = match said.split_once(" (certificate pin ") {
            Some((url, pin)) => (url, Some(pin.trim_end_matches(')').to_string())),
            None => (said, None),
        };
        let url = url.trim_end_matches('/').to_string();
        let scheme = if pin.is_some() { "https://" } else { "http://" };
        if let Some(pin) = pin {
            let mut pins = self.pins.lock().unwrap();
            pins.push(pin);
            // This process's clients (`Coordinator::http`) trust it too.
            api::tls::set_trust(
                api::tls::Trust::load(None, &pins, false).expect("the coordinator's pin"),
            )
            .expect("a trust of pins");
        }
        // Loopback: 127.0.0.1, or another 127.x address for tests that give each process one.
        let port: u16 = url
            .strip_prefix(scheme)
            .and_then(|rest| rest.strip_prefix("127."))
            .and_then(|rest| rest.rsplit_once(':'))
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or_else(|| panic!("coordinator URL {url:?} is not {scheme}127.x.y.z:PORT"));
        assert_ne!(port, 0, "coordinator reported port 0");
        if !listen.ends_with(":0") {
            assert_eq!(
                url.strip_prefix(scheme).unwrap_or_default(),
                listen,
                "coordinator ignored --listen"
            );
        }
        let http = self.http(&url);
        Coordinator {
            proc,
            url,
            port,
            data_dir: data_dir.to_path_buf(),
            http,
        }
    }

    /// Restarts a coordinator on `data_dir` and `port` (retrying while the port is still taken).
    pub fn coordinator_restart(&self, data_dir: &Path, port: u16, extra: &[&str]) -> Coordinator {
        self.coordinator_restart_on(data_dir, &format!("127.0.0.1:{port}"), extra)
    }

    /// [`World::coordinator_restart`] on a given `host:port`.
    pub fn coordinator_restart_on(
        &self,
        data_dir: &Path,
        listen: &str,
        extra: &[&str],
    ) -> Coordinator {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.coordinator_at(data_dir, listen, extra)
            }));
            match attempt {
                Ok(c) => return c,
                Err(e) if Instant::now() >= deadline => std::panic::resume_unwind(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Creates (or loads) the provider key in a fresh data dir, without starting anything.
    pub fn provider_dir(&self) -> (PathBuf, AccountId) {
        let dir = self.dir("provider");
        let id = Identity::load_or_create(&dir.join("provider.key"))
            .expect("creating a provider key")
            .id();
        (dir, id)
    }

    /// Starts `gridmint provider --coordinator URL --data-dir DIR --slots SLOTS` and waits until
    /// the coordinator lists it as active.
    pub fn provider(&self, coordinator: &Coordinator, slots: u32) -> Provider {
        let (dir, id) = self.provider_dir();
        let p = self.provider_in(&coordinator.url, &dir, id, slots);
        p.wait_active(&coordinator.http);
        p
    }

    /// [`World::provider`] with extra flags (`--faulty 1.0 --collude`, `--operator ID`, ...).
    pub fn provider_with(&self, coordinator: &Coordinator, slots: u32, extra: &[&str]) -> Provider {
        let (dir, id) = self.provider_dir();
        let p = self.spawn_provider(&coordinator.url, &dir, id, slots, extra);
        p.wait_active(&coordinator.http);
        p
    }

    /// Starts a provider on an existing data dir (its key decides `id`); does not wait.
    pub fn provider_in(&self, url: &str, dir: &Path, id: AccountId, slots: u32) -> Provider {
        self.spawn_provider(url, dir, id, slots, &[])
    }

    pub fn spawn_provider(
        &self,
        url: &str,
        dir: &Path,
        id: AccountId,
        slots: u32,
        extra: &[&str],
    ) -> Provider {
        self.spawn_provider_env(url, dir, id, slots, extra, &[])
    }

    /// [`World::spawn_provider`] with extra environment variables (a host that differs).
    pub fn spawn_provider_env(
        &self,
        url: &str,
        dir: &Path,
        id: AccountId,
        slots: u32,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Provider {
        let (log, err) = self.log_file("provider");
        let mut cmd = self.command();
        cmd.envs(env.iter().copied());
        cmd.arg("provider")
            .args(["--coordinator", url, "--data-dir"])
            .arg(dir)
            .args(["--slots", &slots.to_string()])
            // Test machines are kept for the network: no idle rule suspends their providers,
            // unless a test scripts the rules' sensors.
            .args(
                (!extra.iter().any(|a| *a == "--sensors" || *a == "--config"))
                    .then_some("--dedicated"),
            )
            .args(extra)
            .stdout(Stdio::null())
            .stderr(err);
        let child = cmd.spawn().expect("spawning gridmint provider");
        Provider {
            proc: Proc {
                name: format!("provider {}", &id.to_hex()[..12]),
                child: Some(child),
                log,
            },
            id,
        }
    }

    /// `gridmint ARGS --coordinator URL --json` (a `wallet`, `gov`… command), parsed.
    pub fn cli_json(&self, url: &str, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--coordinator", url, "--json"]);
        self.cli(&all).ok().json()
    }

    /// Stops the coordinator and replays its chain offline (`gridmint chain verify --data-dir`),
    /// which must succeed.
    pub fn verify_offline(&self, mut c: Coordinator) {
        c.proc.terminate();
        c.proc.wait_exit(WAIT);
        let verified = self
            .cli(&[
                "chain",
                "verify",
                "--data-dir",
                c.data_dir.to_str().unwrap(),
                "--json",
            ])
            .ok()
            .json();
        assert_eq!(verified["ok"], true, "{verified}");
    }

    /// `gridmint wallet faucet` for the requester key: tops it up on a dev network (refused, and
    /// ignored, when it already holds the faucet amount).
    pub fn fund_requester(&self, url: &str) {
        self.cli(&["wallet", "faucet", "--coordinator", url]);
    }

    /// `gridmint job submit SPEC --coordinator URL --json` after [`World::fund_requester`],
    /// returning the job id.
    pub fn submit(&self, url: &str, spec: &Path) -> JobId {
        self.fund_requester(url);
        let spec = spec.to_str().expect("utf-8 path");
        let ran = self
            .cli(&["job", "submit", spec, "--coordinator", url, "--json"])
            .ok();
        let json = ran.json();
        json.get("job")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or_else(|| panic!("`job submit --json` printed no numeric \"job\": {json}"))
    }

    /// `gridmint job results ID --coordinator URL --out PATH`, returning the bytes written.
    pub fn results(&self, url: &str, job: JobId) -> Vec<u8> {
        let out = self.dir("results").join("output");
        let out_s = out.to_str().expect("utf-8 path");
        self.cli(&[
            "job",
            "results",
            &job.to_string(),
            "--coordinator",
            url,
            "--out",
            out_s,
        ])
        .ok();
        std::fs::read(&out).expect("`job results --out` wrote no file")
    }
}

/// A running `gridmint coordinator`.
pub struct Coordinator {
    pub proc: Proc,
    pub url: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub http: Http,
}

impl Coordinator {
    /// A provider by hand, with no process behind it: a fresh key funded by the faucet, staked
    /// and registered over the API (one slot, region "local"), for tests that speak the
    /// provider's protocol themselves.
    pub fn provider_by_hand(&self) -> Identity {
        use engine::{Action, ProviderSpec};
        let me = Identity::generate();
        let client = &self.http.client;
        self.http
            .block_on(client.action(&me, Action::Faucet))
            .unwrap();
        let stake = Action::Stake {
            amount: engine::tokens(100),
        };
        self.http.block_on(client.action(&me, stake)).unwrap();
        let spec = ProviderSpec {
            slots: 1,
            cores: 1,
            memory_bytes: 1 << 30,
            gpu: None,
            benchmark_score: 100_000,
            region: "local".into(),
            price_per_fuel: 1,
            operator: None,
        };
        self.http
            .block_on(client.action(&me, Action::RegisterProvider(spec)))
            .unwrap();
        me
    }

    /// The action submitting `spec` here as `gridmint job submit` would: with a storage claim
    /// (what `blobs`, the contents of the blobs it names, weigh; the default output limit) where
    /// this network prices storage.
    pub fn submission(&self, spec: engine::JobSpec, blobs: &[&[u8]]) -> engine::Action {
        let network = self.http.block_on(self.http.client.network()).unwrap();
        let files = engine::JobFiles::default();
        let input_bytes = api::weigh(&spec, &files, blobs).expect("every blob the spec names");
        api::job_submission(
            network.storage.as_ref(),
            spec,
            input_bytes,
            None,
            engine::JobOptions::default(),
            files,
            None,
        )
    }
}

/// A running `gridmint provider`.
pub struct Provider {
    pub proc: Proc,
    pub id: AccountId,
}

impl Provider {
    /// Waits until the coordinator lists this provider as active.
    pub fn wait_active(&self, http: &Http) {
        poll(
            &format!("provider {} to register", self.id),
            WAIT,
            || match http.provider(self.id) {
                Some(p) if p.status == ProviderStatus::Active => Some(()),
                _ => None,
            },
        );
    }
}

/// Blocking calls to one coordinator, through the typed client.
pub struct Http {
    pub client: Client,
    rt: Arc<tokio::runtime::Runtime>,
}

impl Http {
    pub fn block_on<F: std::future::Future>(&self, fut: F) -> F::Output {
        self.rt.block_on(fut)
    }

    pub fn status(&self) -> StatusView {
        self.block_on(self.client.status())
            .unwrap_or_else(|e| panic!("GET /v1/status: {e}"))
    }

    pub fn try_job(&self, id: JobId) -> Result<JobView, ClientError> {
        self.block_on(self.client.job(id, false))
    }

    pub fn job(&self, id: JobId) -> JobView {
        self.try_job(id)
            .unwrap_or_else(|e| panic!("GET /v1/jobs/{id}: {e}"))
    }

    pub fn job_with_tasks(&self, id: JobId) -> JobView {
        self.block_on(self.client.job(id, true))
            .unwrap_or_else(|e| panic!("GET /v1/jobs/{id}?tasks=true: {e}"))
    }

    pub fn output(&self, id: JobId) -> Vec<u8> {
        self.block_on(self.client.job_output(id))
            .unwrap_or_else(|e| panic!("GET /v1/jobs/{id}/output: {e}"))
            .to_vec()
    }

    pub fn providers(&self) -> Vec<ProviderView> {
        self.block_on(self.client.providers())
            .unwrap_or_else(|e| panic!("GET /v1/providers: {e}"))
    }

    /// The provider's view, or `None` if the coordinator does not know it (or is unreachable).
    pub fn provider(&self, id: AccountId) -> Option<ProviderView> {
        self.block_on(self.client.provider(id)).ok()
    }

    /// Polls the job until it has finished (tolerating an unreachable coordinator meanwhile).
    pub fn wait_job(&self, id: JobId) -> JobView {
        self.wait_job_for(id, WAIT)
    }

    pub fn wait_job_for(&self, id: JobId, timeout: Duration) -> JobView {
        let mut last = None;
        let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            poll(&format!("job {id} to finish"), timeout, || {
                match self.try_job(id) {
                    Ok(view) if view.is_finished() => return Some(view),
                    Ok(view) => last = Some(format!("{view:?}")),
                    Err(e) if e.is_unreachable() => last = Some(e.to_string()),
                    Err(e) => panic!("GET /v1/jobs/{id}: {e}"),
                }
                None
            })
        }));
        waited.unwrap_or_else(|e| {
            eprintln!("job {id}: last seen {last:?}");
            if let Ok(detail) = self.block_on(self.client.job(id, true)) {
                eprintln!("job {id} tasks: {:#?}", detail.tasks);
            }
            if let Ok(providers) = self.block_on(self.client.providers()) {
                eprintln!("providers: {providers:#?}");
            }
            std::panic::resume_unwind(e)
        })
    }

    /// Waits for the job and asserts that it completed with every task counted exactly once.
    pub fn wait_completed(&self, id: JobId) -> JobView {
        let view = self.wait_job(id);
        assert_completed(&view);
        view
    }
}

/// The job completed, and its counters agree: every task done once, every result attributed once.
pub fn assert_completed(view: &JobView) {
    assert_eq!(
        view.status,
        JobStatus::Completed,
        "job {} did not complete: {view:?}",
        view.id
    );
    assert_eq!(view.tasks_done, view.tasks_total, "{view:?}");
    assert_eq!(view.tasks_running, 0, "{view:?}");
    assert_eq!(view.tasks_queued, 0, "{view:?}");
    let attributed: u64 = view.tasks_per_provider.values().sum();
    assert_eq!(
        attributed, view.tasks_total,
        "results attributed to providers do not add up: {view:?}"
    );
    assert!(
        view.output.is_some(),
        "completed job has no output: {view:?}"
    );
    assert!(view.finished_at.is_some(), "{view:?}");
}

/// The failure reason of a failed job, or a panic saying what it was instead.
pub fn failure_reason(view: &JobView) -> &str {
    match &view.status {
        JobStatus::Failed { reason } => reason,
        other => panic!("job {} should have failed but is {other:?}", view.id),
    }
}

/// The error body of a non-2xx response, checked to be `{ "error", "detail" }`.
pub fn error_body(bytes: &[u8]) -> ErrorBody {
    serde_json::from_slice(bytes).unwrap_or_else(|e| {
        panic!(
            "error response is not {{\"error\",\"detail\"}} JSON ({e}): {}",
            String::from_utf8_lossy(bytes)
        )
    })
}

/// The BLAKE3 hash the coordinator addresses `bytes` by.
pub fn hash_of(bytes: &[u8]) -> Hash {
    Hash::of(bytes)
}

// ----- known answers -----

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn unit(state: &mut u64) -> f64 {
    (splitmix64(state) >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
}

/// What `pi.wasm <samples> <seed>` prints (a native port of guests/pi.c).
pub fn pi_line(samples: u64, seed: u64) -> String {
    let mut state = seed;
    let mut hits = 0u64;
    for _ in 0..samples {
        let x = unit(&mut state);
        let y = unit(&mut state);
        if x * x + y * y <= 1.0 {
            hits += 1;
        }
    }
    format!("{hits} {samples}\n")
}

/// The concatenated output of a pi job with `args = [samples, "{i}"]` over `range = [0, tasks]`.
/// An account some key signs for (transfers go only to such accounts), fixed by `seed`.
/// An amount field of a JSON view (a decimal string of base units).
pub fn amount(v: &serde_json::Value, key: &str) -> u128 {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {v}"))
        .parse()
        .unwrap()
}

pub fn account(seed: u8) -> engine::AccountId {
    api::Identity::from_secret([seed; 32]).id()
}

pub fn pi_output(samples: u64, tasks: u64) -> String {
    (0..tasks).map(|seed| pi_line(samples, seed)).collect()
}

/// Trust the first result: for tests about other things, whose networks have fewer providers
/// than the adaptive policy's quorum needs.
pub const SINGLE_RUN: &str = "
[redundancy]
policy = \"fixed\"
quorum = 1
";

/// A pi job spec over `range = [0, tasks]` with args `[samples, "{i}"]`, run once per task
/// ([`SINGLE_RUN`]). The fuel limit allows 1,000 per sample (the guest needs well under that), so
/// the escrow stays within what the dev faucet gives.
pub fn pi_spec(samples: u64, tasks: u64) -> String {
    pi_spec_verified(samples, tasks) + SINGLE_RUN
}

/// [`pi_spec`] under the network's adaptive verification policy.
pub fn pi_spec_verified(samples: u64, tasks: u64) -> String {
    format!(
        r#"module = {module}
fuel = {fuel}
memory = "64MiB"
timeout = "60s"
deadline = "10m"
max_price = 1
output = "stdout"

[tasks]
range = [0, {tasks}]
args = ["{samples}", "{{i}}"]

[aggregate]
kind = "concat"
"#,
        module = toml_path(&guest("pi.wasm")),
        fuel = samples * 1000 + 100_000_000,
    )
}

/// Word counts as wc_map + wc_reduce compute them: words are maximal runs of ASCII letters,
/// lowercased; lines `word\tcount\n` sorted by count descending, then word ascending.
pub fn word_count(texts: &[&str]) -> String {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for text in texts {
        for word in text
            .split(|c: char| !c.is_ascii_alphabetic())
            .filter(|w| !w.is_empty())
        {
            *counts.entry(word.to_ascii_lowercase()).or_default() += 1;
        }
    }
    let mut rows: Vec<(String, u64)> = counts.into_iter().collect();
    rows.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then_with(|| a.0.as_bytes().cmp(b.0.as_bytes()))
    });
    rows.iter().map(|(w, c)| format!("{w}\t{c}\n")).collect()
}

#[test]
fn known_answers_are_self_consistent() {
    // pi: 4·hits/samples ≈ π, and seeds give different streams.
    let a = pi_line(100_000, 0);
    let b = pi_line(100_000, 1);
    assert_ne!(a, b);
    let hits: f64 = a.split(' ').next().unwrap().parse().unwrap();
    assert!(
        (4.0 * hits / 100_000.0 - std::f64::consts::PI).abs() < 0.05,
        "{a}"
    );
    // word count: case folding, separators, ordering.
    assert_eq!(
        word_count(&["The cat, the HAT; a3b", "cat"]),
        "cat\t2\nthe\t2\na\t1\nb\t1\nhat\t1\n"
    );
}
