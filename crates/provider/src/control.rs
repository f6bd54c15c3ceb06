//! The owner's line to a running provider: a Unix socket in its data directory
//! (`DATA_DIR/provider.sock`, readable by its owner only) that `gridmint provider
//! status|pause|resume` talk to, one JSON request and one JSON answer per line, and the
//! supervisor that looks at the machine four times a second and suspends or resumes the provider
//! ([`crate::idle`]).

use crate::idle::{Policy, Reason, Sensors};
use api::wire::ProviderView;
use engine::AccountId;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;

/// How often the supervisor looks at the machine.
pub const LOOK_EVERY: Duration = Duration::from_millis(250);
/// How often the running provider asks the coordinator for its standing (for `status`).
const STANDING_EVERY: Duration = Duration::from_secs(30);
/// The longest request line the socket reads.
const MAX_REQUEST: usize = 4096;

/// The socket's file name in the data directory.
pub const SOCKET: &str = "provider.sock";

/// Whether the provider may work, as the control loop sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Availability {
    /// Why it is suspended; none: it may work.
    pub reasons: Vec<Reason>,
    /// Suspended for longer than the grace period: hand the tasks back.
    pub hand_back: bool,
}

impl Availability {
    pub fn suspended(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// What `gridmint provider status` shows.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LocalStatus {
    pub provider: Option<AccountId>,
    pub coordinator: String,
    /// `working` (tasks in hand), `waiting` (for work), `suspended` (see `reasons`), or
    /// `handed_back` (suspended past the grace period: its tasks went back to the network and
    /// it left until it may work again).
    pub state: String,
    pub reasons: Vec<Reason>,
    pub suspended_seconds: Option<u64>,
    pub tasks_in_flight: u64,
    pub tasks_run: u64,
    pub tasks_failed: u64,
    pub slots: u32,
    pub cpu_percent: u8,
    /// What the sensors see on this machine.
    pub sensors: String,
    /// The energy and carbon of the tasks this provider ran since it started (CPU tasks; an
    /// estimate: see `energy_method`).
    pub energy: crate::energy::EnergyTotals,
    /// How: measured (RAPL) or estimated (the model, with its figures).
    pub energy_method: String,
    /// Earned since the first look today (local date), in base units; see `earnings.json`.
    #[serde(with = "engine::types::amount")]
    pub earned_today: u128,
    /// The network's view of this provider (reputation, stake, total earnings), as of its
    /// last look (every 30 s).
    pub standing: Option<ProviderView>,
}

/// A request on the socket.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Status,
    Pause,
    Resume,
}

/// An answer on the socket.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Status(Box<LocalStatus>),
    Error(String),
}

/// What the supervisor, the control loop and the socket share.
pub struct Control {
    pub gate: Arc<sandbox::Gate>,
    paused: AtomicBool,
    pub status: Mutex<LocalStatus>,
    availability: watch::Sender<Availability>,
    data_dir: PathBuf,
}

impl Control {
    pub fn new(gate: Arc<sandbox::Gate>, data_dir: &Path) -> Arc<Control> {
        Arc::new(Control {
            gate,
            paused: AtomicBool::new(false),
            status: Mutex::new(LocalStatus::default()),
            availability: watch::Sender::new(Availability::default()),
            data_dir: data_dir.to_path_buf(),
        })
    }

    pub fn subscribe(&self) -> watch::Receiver<Availability> {
        self.availability.subscribe()
    }

    pub fn update(&self, change: impl FnOnce(&mut LocalStatus)) {
        change(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn snapshot(&self) -> LocalStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Looks at the machine every [`LOOK_EVERY`] until dropped: suspends (the gate paused, the
    /// control loop told) when a rule says so, resumes when none does, and asks for the tasks to
    /// be handed back once a suspension outlasts the grace period.
    pub async fn supervise(self: Arc<Self>, mut policy: Policy, sensors: Box<dyn Sensors>) {
        let sensors = Arc::new(Mutex::new(sensors));
        let described = sensors.lock().unwrap_or_else(|p| p.into_inner()).describe();
        self.update(|s| s.sensors = described);
        let mut suspended_since: Option<Instant> = None;
        loop {
            let readings = {
                let sensors = sensors.clone();
                tokio::task::spawn_blocking(move || {
                    sensors.lock().unwrap_or_else(|p| p.into_inner()).read()
                })
                .await
                .unwrap_or_default()
            };
            let now = Instant::now();
            let reasons = policy.reasons(&readings, self.paused.load(Ordering::SeqCst), now);
            match (reasons.is_empty(), suspended_since) {
                (false, None) => {
                    self.gate.pause();
                    suspended_since = Some(now);
                    let why: Vec<String> = reasons.iter().map(ToString::to_string).collect();
                    tracing::info!(why = %why.join("; "), "suspended: running tasks paused, no new work");
                }
                (true, Some(_)) => {
                    self.gate.resume();
                    suspended_since = None;
                    tracing::info!("resumed");
                }
                _ => {}
            }
            let hand_back = suspended_since
                .is_some_and(|since| now.saturating_duration_since(since) >= policy.rules.grace);
            let next = Availability {
                reasons: reasons.clone(),
                hand_back,
            };
            self.availability.send_if_modified(|a| {
                let changed = *a != next;
                *a = next;
                changed
            });
            self.update(|s| {
                s.reasons = reasons;
                s.suspended_seconds = suspended_since.map(|t| now.duration_since(t).as_secs());
            });
            tokio::time::sleep(LOOK_EVERY).await;
        }
    }

    /// Keeps the network's view of provider `id` in the status, and today's earnings, until
    /// dropped.
    pub async fn watch_standing(self: Arc<Self>, client: api::Client, id: AccountId) {
        loop {
            if let Ok(view) = client.provider(id).await {
                let today = chrono::Local::now().date_naive().to_string();
                let earned = view.stats.earned;
                let at_start = day_start(&self.data_dir.join(EARNINGS), &today, earned);
                self.update(|s| {
                    s.earned_today = earned.saturating_sub(at_start);
                    s.standing = Some(view);
                });
            }
            tokio::time::sleep(STANDING_EVERY).await;
        }
    }

    /// Serves the socket until dropped.
    pub fn listen(self: &Arc<Self>) -> Result<tokio::task::JoinHandle<()>, ListenError> {
        let path = self.data_dir.join(SOCKET);
        if path.exists() {
            // Left by a provider that did not stop cleanly, unless one still answers on it.
            if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                return Err(ListenError::Running(self.data_dir.clone()));
            }
            std::fs::remove_file(&path).map_err(ListenError::Socket)?;
        }
        let listener = tokio::net::UnixListener::bind(&path).map_err(ListenError::Socket)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(ListenError::Socket)?;
        let control = self.clone();
        Ok(tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let control = control.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read.take(MAX_REQUEST as u64)).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let answer = control.answer(&line);
                        let Ok(mut text) = serde_json::to_string(&answer) else {
                            return;
                        };
                        text.push('\n');
                        if write.write_all(text.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        }))
    }

    /// The answer to one request line; a bad one changes nothing.
    pub fn answer(&self, line: &str) -> Answer {
        // Exactly one key: serde lets extra keys through a unit variant of a tagged enum.
        let request = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(line)
            .and_then(|map| {
                if map.len() != 1 {
                    return Err(serde::de::Error::custom("one key, \"command\", expected"));
                }
                serde_json::from_value::<Request>(serde_json::Value::Object(map))
            });
        match request {
            Ok(Request::Status) => {}
            Ok(Request::Pause) => {
                self.paused.store(true, Ordering::SeqCst);
                // At once, not at the supervisor's next look (which says the same).
                self.gate.pause();
                self.update(|s| {
                    if !s.reasons.contains(&Reason::PausedByOwner) {
                        s.reasons.insert(0, Reason::PausedByOwner);
                    }
                    if s.state != "handed_back" {
                        s.state = "suspended".into();
                    }
                });
            }
            Ok(Request::Resume) => {
                self.paused.store(false, Ordering::SeqCst);
                self.update(|s| s.reasons.retain(|r| *r != Reason::PausedByOwner));
            }
            Err(e) => {
                return Answer::Error(format!(
                    "not a request ({{\"command\": \"status\" | \"pause\" | \"resume\"}}): {e}"
                ));
            }
        }
        Answer::Status(Box::new(self.snapshot()))
    }

    pub fn remove_socket(&self) {
        let _ = std::fs::remove_file(self.data_dir.join(SOCKET));
    }
}

use tokio::io::AsyncReadExt as _;

/// Why [`Control::listen`] has no socket.
#[derive(Debug)]
pub enum ListenError {
    /// Another provider answers on this data directory's socket.
    Running(PathBuf),
    /// The socket could not be made (a path too long for one, a read-only directory).
    Socket(std::io::Error),
}

impl std::fmt::Display for ListenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenError::Running(dir) => write!(
                f,
                "another provider is running with data directory {}",
                dir.display()
            ),
            ListenError::Socket(e) => write!(f, "the control socket: {e}"),
        }
    }
}

impl std::error::Error for ListenError {}

/// The file that keeps what the provider had earned when it first looked today.
pub const EARNINGS: &str = "earnings.json";

#[derive(Serialize, Deserialize)]
struct DayStart {
    date: String,
    #[serde(with = "engine::types::amount")]
    earned: u128,
}

/// What was earned at the start of `today` (the first look of the day), recorded in `path`
/// (version-free: a small cache; unreadable, it starts the day again).
fn day_start(path: &Path, today: &str, earned: u128) -> u128 {
    if let Some(start) = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<DayStart>(&b).ok())
        .filter(|s| s.date == today && s.earned <= earned)
    {
        return start.earned;
    }
    let start = DayStart {
        date: today.to_string(),
        earned,
    };
    if let Ok(text) = serde_json::to_vec(&start) {
        let _ = std::fs::write(path, text);
    }
    earned
}

/// Sends `request` to the provider running with data directory `data_dir`.
pub async fn ask(data_dir: &Path, request: &Request) -> anyhow::Result<LocalStatus> {
    use anyhow::Context;
    let path = data_dir.join(SOCKET);
    let stream = tokio::net::UnixStream::connect(&path)
        .await
        .with_context(|| {
            format!(
                "no provider is running with data directory {} (no answer on {})",
                data_dir.display(),
                path.display()
            )
        })?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_string(request)?;
    line.push('\n');
    write.write_all(line.as_bytes()).await?;
    let mut lines = BufReader::new(read).lines();
    let answer = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .context("the provider did not answer")??
        .context("the provider closed the socket")?;
    match serde_json::from_str::<Answer>(&answer)? {
        Answer::Status(status) => Ok(*status),
        Answer::Error(e) => anyhow::bail!("{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_requests_get_a_clear_error_and_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let control = Control::new(Arc::new(sandbox::Gate::new()), dir.path());
        for bad in [
            "",
            "pause",
            "{}",
            r#"{"command": "reboot"}"#,
            r#"{"command": "pause", "extra": 1}"#,
            &"x".repeat(10_000),
        ] {
            assert!(matches!(control.answer(bad), Answer::Error(_)), "{bad}");
            assert!(!control.gate.is_paused(), "{bad}");
        }
        assert!(matches!(
            control.answer(r#"{"command":"pause"}"#),
            Answer::Status(_)
        ));
        assert!(control.gate.is_paused());
    }

    #[test]
    fn todays_earnings_count_from_the_first_look_of_the_day() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(EARNINGS);
        assert_eq!(day_start(&file, "2026-12-05", 100), 100);
        assert_eq!(day_start(&file, "2026-12-05", 250), 100);
        assert_eq!(day_start(&file, "2026-12-06", 300), 300);
        std::fs::write(&file, "garbage").unwrap();
        assert_eq!(day_start(&file, "2026-12-06", 310), 310);
    }
}
