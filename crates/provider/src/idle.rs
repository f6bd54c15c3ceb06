//! Contributing idle time only: what the machine's owner allows ([`IdleRules`]), what the
//! machine says ([`Sensors`]: owner activity, other programs' load, battery, local time), and
//! the decision, reading after reading ([`Policy`]): work, or suspend and why.
//!
//! A suspended provider's runs are paused in place by the sandbox's gate and it takes no new
//! work; past the grace period it hands its tasks back (`lib.rs`).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long other programs' load must stay under the limit before a provider it suspended
/// works again (so that a busy moment does not make it flap).
pub const LOAD_CALM: Duration = Duration::from_secs(10);

/// What the owner allows. [`IdleRules::default`] is what `gridmint provider` does unless told
/// otherwise; [`IdleRules::dedicated`] contributes always (a machine kept for the network).
#[derive(Clone, Debug, PartialEq)]
pub struct IdleRules {
    /// Suspend while the owner uses the machine: keyboard or mouse input within this long.
    /// `None`: never for that reason.
    pub idle_after: Option<Duration>,
    /// Suspend while other programs use more than this percent of the machine's CPU time.
    pub max_other_load_percent: Option<u8>,
    /// Suspend while on battery.
    pub suspend_on_battery: bool,
    /// Suspend while the battery is below this percent (charging or not).
    pub min_battery_percent: Option<u8>,
    /// Work only within these hours (local time); `None`: at any hour.
    pub schedule: Option<Schedule>,
    /// The share of a core's time each task slot may use, 1 to 100.
    pub cpu_percent: u8,
    /// How long a suspension may last before the provider hands its tasks back.
    pub grace: Duration,
}

impl Default for IdleRules {
    fn default() -> Self {
        IdleRules {
            idle_after: Some(Duration::from_secs(180)),
            max_other_load_percent: Some(50),
            suspend_on_battery: true,
            min_battery_percent: Some(20),
            schedule: None,
            cpu_percent: 100,
            grace: Duration::from_secs(60),
        }
    }
}

impl IdleRules {
    /// A machine kept for the network: no rule suspends it.
    pub fn dedicated() -> IdleRules {
        IdleRules {
            idle_after: None,
            max_other_load_percent: None,
            suspend_on_battery: false,
            min_battery_percent: None,
            ..IdleRules::default()
        }
    }
}

/// A weekly schedule of allowed hours: entries like `"mon-fri 18:00-08:00"`, `"sat,sun"` or
/// `"09:30-12:00"` (days default to every day, hours to the whole day; a range that ends before
/// it starts runs past midnight into the next day).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Allowed spans in minutes of the week (Monday 00:00 is 0), end exclusive.
    spans: Vec<(u32, u32)>,
    text: Vec<String>,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const WEEK: u32 = 7 * 24 * 60;

impl Schedule {
    pub fn parse(entries: &[String]) -> Result<Schedule, String> {
        if entries.is_empty() {
            return Err(
                "a schedule needs at least one entry (leave it out to allow every hour)".into(),
            );
        }
        let mut spans = Vec::new();
        for entry in entries {
            let bad = |why: &str| format!("schedule entry {entry:?}: {why}");
            let mut days: Option<Vec<u32>> = None;
            let mut hours: Option<(u32, u32)> = None;
            for word in entry.split_whitespace() {
                if word.contains(':') {
                    if hours.is_some() {
                        return Err(bad("two time ranges"));
                    }
                    let (from, to) = word
                        .split_once('-')
                        .ok_or_else(|| bad("a time range is HH:MM-HH:MM"))?;
                    hours = Some((
                        minute(from).map_err(|e| bad(&e))?,
                        minute(to).map_err(|e| bad(&e))?,
                    ));
                } else {
                    if days.is_some() {
                        return Err(bad("two day lists"));
                    }
                    let mut list = Vec::new();
                    for part in word.split(',') {
                        match part.split_once('-') {
                            Some((a, b)) => {
                                let (a, b) =
                                    (day(a).map_err(|e| bad(&e))?, day(b).map_err(|e| bad(&e))?);
                                let mut d = a;
                                loop {
                                    list.push(d);
                                    if d == b {
                                        break;
                                    }
                                    d = (d + 1) % 7;
                                }
                            }
                            None => list.push(day(part).map_err(|e| bad(&e))?),
                        }
                    }
                    days = Some(list);
                }
            }
            let days = days.unwrap_or_else(|| (0..7).collect());
            let (from, to) = hours.unwrap_or((0, 24 * 60));
            if from == to && hours.is_some() {
                return Err(bad("an empty time range"));
            }
            for d in days {
                let start = d * 24 * 60 + from;
                let length = if to > from {
                    to - from
                } else {
                    24 * 60 - from + to
                };
                let end = start + length;
                if end <= WEEK {
                    spans.push((start, end));
                } else {
                    // Sunday night into Monday morning.
                    spans.push((start, WEEK));
                    spans.push((0, end - WEEK));
                }
            }
        }
        Ok(Schedule {
            spans,
            text: entries.to_vec(),
        })
    }

    /// Whether `at` is within the allowed hours.
    pub fn allows(&self, at: WeekTime) -> bool {
        let m = at.minute_of_week();
        self.spans.iter().any(|&(a, b)| a <= m && m < b)
    }

    pub fn entries(&self) -> &[String] {
        &self.text
    }
}

fn minute(s: &str) -> Result<u32, String> {
    let (h, m) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not HH:MM"))?;
    let (h, m): (u32, u32) = (
        h.parse().map_err(|_| format!("{s:?} is not HH:MM"))?,
        m.parse().map_err(|_| format!("{s:?} is not HH:MM"))?,
    );
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return Err(format!("{s:?} is not a time of day (00:00 to 24:00)"));
    }
    Ok(h * 60 + m)
}

fn day(s: &str) -> Result<u32, String> {
    let lower = s.to_ascii_lowercase();
    DAYS.iter()
        .position(|d| lower.starts_with(d) && lower.len() >= 3)
        .map(|i| i as u32)
        .ok_or_else(|| format!("{s:?} is not a day (mon, tue, ... sun)"))
}

/// A moment of the week in local time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeekTime {
    /// 0 = Monday.
    pub weekday: u32,
    /// Minutes since midnight.
    pub minute: u32,
}

impl WeekTime {
    pub fn now_local() -> WeekTime {
        use chrono::{Datelike, Timelike};
        let now = chrono::Local::now();
        WeekTime {
            weekday: now.weekday().num_days_from_monday(),
            minute: now.hour() * 60 + now.minute(),
        }
    }

    fn minute_of_week(self) -> u32 {
        (self.weekday % 7) * 24 * 60 + self.minute.min(24 * 60 - 1)
    }
}

/// The machine's power source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Power {
    pub on_battery: bool,
    /// The battery's charge, where there is one.
    pub battery_percent: Option<u8>,
}

/// One look at the machine.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Readings {
    /// Time since the owner's last input; `None`: no way to tell here.
    pub idle_for: Option<Duration>,
    /// Percent of the machine's CPU time other programs used since the last reading.
    pub other_load_percent: Option<f64>,
    /// `None`: no battery or no way to tell.
    pub power: Option<Power>,
    pub local: Option<WeekTime>,
}

/// Where readings come from: one implementation per platform, and a scripted one for tests.
pub trait Sensors: Send {
    fn read(&mut self) -> Readings;
    /// What the sensors can see here, for `gridmint provider status`.
    fn describe(&self) -> String;
}

/// Why a provider is suspended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// Paused with `gridmint provider pause`.
    PausedByOwner,
    OwnerActive {
        idle_seconds: u64,
    },
    BusyMachine {
        other_load_percent: u8,
    },
    OnBattery,
    BatteryLow {
        percent: u8,
    },
    OutsideHours,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::PausedByOwner => f.write_str("paused by its owner"),
            Reason::OwnerActive { idle_seconds } => {
                write!(
                    f,
                    "the owner is using the machine (last input {idle_seconds} s ago)"
                )
            }
            Reason::BusyMachine { other_load_percent } => {
                write!(f, "other programs use {other_load_percent}% of the CPU")
            }
            Reason::OnBattery => f.write_str("on battery"),
            Reason::BatteryLow { percent } => write!(f, "battery at {percent}%"),
            Reason::OutsideHours => f.write_str("outside the allowed hours"),
        }
    }
}

/// The rules applied reading after reading, with the memory load needs.
pub struct Policy {
    pub rules: IdleRules,
    /// Since when other programs' load has been under the limit, while it holds the provider.
    load_held: Option<(u8, Option<Instant>)>,
}

impl Policy {
    pub fn new(rules: IdleRules) -> Policy {
        Policy {
            rules,
            load_held: None,
        }
    }

    /// Why the provider must be suspended now (none: it may work).
    pub fn reasons(&mut self, r: &Readings, paused: bool, now: Instant) -> Vec<Reason> {
        let mut why = Vec::new();
        if paused {
            why.push(Reason::PausedByOwner);
        }
        if let (Some(after), Some(idle)) = (self.rules.idle_after, r.idle_for)
            && idle < after
        {
            why.push(Reason::OwnerActive {
                idle_seconds: idle.as_secs(),
            });
        }
        match (self.rules.max_other_load_percent, r.other_load_percent) {
            (Some(max), Some(load)) if load > f64::from(max) => {
                self.load_held = Some((load.round().min(100.0) as u8, None));
            }
            (Some(_), Some(_)) => {
                if let Some((_, calm)) = &mut self.load_held {
                    let since = *calm.get_or_insert(now);
                    if now.saturating_duration_since(since) >= LOAD_CALM {
                        self.load_held = None;
                    }
                }
            }
            _ => self.load_held = None,
        }
        if let Some((load, _)) = self.load_held {
            why.push(Reason::BusyMachine {
                other_load_percent: load,
            });
        }
        if let Some(power) = r.power {
            if power.on_battery && self.rules.suspend_on_battery {
                why.push(Reason::OnBattery);
            }
            if let (Some(min), Some(percent)) =
                (self.rules.min_battery_percent, power.battery_percent)
                && percent < min
            {
                why.push(Reason::BatteryLow { percent });
            }
        }
        if let (Some(schedule), Some(at)) = (&self.rules.schedule, r.local)
            && !schedule.allows(at)
        {
            why.push(Reason::OutsideHours);
        }
        why
    }
}

/// Linux: the owner's input from logind's idle hint and the access times of terminals, load
/// from `/proc/stat` less this process's own CPU time, power from `/sys/class/power_supply`.
pub struct LinuxSensors {
    last_cpu: Option<(u64, u64, u64)>,
    /// When logind was last asked, and its answer (asked at most once a second).
    logind: Option<(Instant, Option<Duration>)>,
    logind_seen: bool,
}

impl Default for LinuxSensors {
    fn default() -> Self {
        LinuxSensors::new()
    }
}

impl LinuxSensors {
    pub fn new() -> LinuxSensors {
        LinuxSensors {
            last_cpu: None,
            logind: None,
            logind_seen: false,
        }
    }

    /// (busy, total) ticks of the machine and this process's own.
    fn cpu() -> Option<(u64, u64, u64)> {
        let (busy, total) = machine_ticks()?;
        Some((busy, total, own_cpu_ticks()?))
    }

    fn logind_idle(&mut self) -> Option<Duration> {
        // Asked once a second; where it does not answer (no logind, no session), once a minute.
        if let Some((at, answer)) = self.logind
            && at.elapsed()
                < if answer.is_some() {
                    Duration::from_secs(1)
                } else {
                    Duration::from_secs(60)
                }
        {
            return answer;
        }
        let answer = logind_idle();
        self.logind_seen |= answer.is_some();
        self.logind = Some((Instant::now(), answer));
        answer
    }
}

/// The whole machine's busy and total CPU time so far, in clock ticks (`/proc/stat`; idle and
/// I/O wait are not busy).
pub fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// This process's user and system CPU time and its children's — the sandbox's worker processes,
/// which run its guests: the live ones' (`/proc/self/task/*/children`) and the ended ones'
/// (`cutime`, `cstime`) — in clock ticks (`/proc/self/stat`).
pub fn own_cpu_ticks() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    let (own, ended) = stat_ticks(&text)?;
    let live: u64 = child_pids("self")
        .into_iter()
        .filter_map(|pid| process_cpu_ticks(Path::new(&format!("/proc/{pid}/stat"))))
        .sum();
    Some(own + ended + live)
}

/// The live children of process `pid` (a number, or `self`): `/proc/PID/task/*/children`.
pub fn child_pids(pid: &str) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// A process's user and system CPU time in clock ticks, from its `/proc/PID/stat`.
pub fn process_cpu_ticks(stat: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(stat).ok()?;
    stat_ticks(&text).map(|(own, _)| own)
}

/// A `/proc/PID/stat` line's CPU time in clock ticks: the process's own (user and system),
/// and its ended children's.
fn stat_ticks(text: &str) -> Option<(u64, u64)> {
    // The command name may hold spaces and parentheses: fields count from the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime, stime, cutime and cstime are fields 14 to 17 of the whole line: 12 to 15 after
    // the name.
    let field = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some((field(11)? + field(12)?, field(13)? + field(14)?))
}

/// logind's idle hint for this user: `Some(0)` while the session is not idle, the time since
/// it went idle when it is; `None` where logind does not answer.
fn logind_idle() -> Option<Duration> {
    // The uid from /proc/self/status (no unsafe libc call).
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .to_string();
    let out = std::process::Command::new("loginctl")
        .args([
            "show-user",
            &uid,
            "--property=IdleHint",
            "--property=IdleSinceHint",
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut idle = None;
    let mut since = None;
    for line in text.lines() {
        match line.split_once('=') {
            Some(("IdleHint", v)) => idle = Some(v == "yes"),
            Some(("IdleSinceHint", v)) => since = v.parse::<u64>().ok(),
            _ => {}
        }
    }
    match (idle?, since) {
        (false, _) => Some(Duration::ZERO),
        (true, Some(micros)) if micros > 0 => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?;
            Some(now.saturating_sub(Duration::from_micros(micros)))
        }
        (true, _) => Some(Duration::MAX),
    }
}

/// The time since the last input on a terminal of this machine (the kernel sets a terminal's
/// access time when it is read — to within 8 seconds, so as not to tell keystroke timings), if
/// any can be looked at.
fn terminal_idle() -> Option<Duration> {
    let mut latest: Option<std::time::SystemTime> = None;
    let mut look = |dir: &str, prefix: &str| {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if !name.starts_with(prefix) || name == "ptmx" {
                    continue;
                }
                if let Ok(accessed) = entry.metadata().and_then(|m| m.accessed()) {
                    latest = Some(latest.map_or(accessed, |l| l.max(accessed)));
                }
            }
        }
    };
    look("/dev/pts", "");
    look("/dev", "tty");
    latest.map(|t| t.elapsed().unwrap_or(Duration::ZERO))
}

fn power() -> Option<Power> {
    let dir = std::fs::read_dir("/sys/class/power_supply").ok()?;
    let read = |p: &PathBuf, f: &str| {
        std::fs::read_to_string(p.join(f))
            .map(|s| s.trim().to_string())
            .ok()
    };
    let mut batteries = Vec::new();
    let mut mains_online = None;
    for entry in dir.flatten() {
        let path = entry.path();
        match read(&path, "type").as_deref() {
            Some("Battery") => {
                let percent = read(&path, "capacity").and_then(|c| c.parse::<u8>().ok());
                let discharging = read(&path, "status").as_deref() == Some("Discharging");
                batteries.push((percent, discharging));
            }
            Some("Mains" | "USB") => {
                let online = read(&path, "online").as_deref() == Some("1");
                mains_online = Some(mains_online.unwrap_or(false) || online);
            }
            _ => {}
        }
    }
    if batteries.is_empty() {
        return None;
    }
    Some(Power {
        on_battery: batteries.iter().any(|b| b.1) || mains_online == Some(false),
        battery_percent: batteries.iter().filter_map(|b| b.0).min(),
    })
}

impl Sensors for LinuxSensors {
    fn read(&mut self) -> Readings {
        let other_load_percent = Self::cpu().and_then(|now| {
            let last = self.last_cpu.replace(now)?;
            let total = now.1.saturating_sub(last.1);
            if total == 0 {
                return None;
            }
            let others = now
                .0
                .saturating_sub(last.0)
                .saturating_sub(now.2.saturating_sub(last.2));
            Some((others as f64 * 100.0 / total as f64).min(100.0))
        });
        let idle_for = match (self.logind_idle(), terminal_idle()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Readings {
            idle_for,
            other_load_percent,
            power: power(),
            local: Some(WeekTime::now_local()),
        }
    }

    fn describe(&self) -> String {
        format!(
            "owner input from {}terminal access times; load from /proc/stat; power from /sys/class/power_supply",
            if self.logind_seen {
                "logind's idle hint and "
            } else {
                ""
            }
        )
    }
}

/// macOS: the owner's input from the HID system's idle time (`ioreg`), power from `pmset`,
/// other programs' load from `ps` (each process's recent share of a core, less this one's).
/// Each tool runs at most once every two seconds; a tool that is missing or says something
/// else gives no reading.
pub struct MacSensors {
    last: Option<(Instant, Readings)>,
    cores: f64,
}

impl Default for MacSensors {
    fn default() -> Self {
        MacSensors::new()
    }
}

impl MacSensors {
    pub fn new() -> MacSensors {
        MacSensors {
            last: None,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
        }
    }
}

fn run(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The time since the last keyboard or mouse input, from `ioreg -c IOHIDSystem -d 4 -r -k
/// HIDIdleTime`: a line `"HIDIdleTime" = NANOSECONDS`.
pub fn parse_hid_idle(ioreg: &str) -> Option<Duration> {
    ioreg.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim()
            .trim_matches(|c| c == '|' || c == ' ' || c == '"')
            == "HIDIdleTime")
            .then(|| value.trim().parse::<u64>().ok().map(Duration::from_nanos))?
    })
}

/// Power from `pmset -g batt`: "Now drawing from 'Battery Power'" (or 'AC Power') and a
/// battery line with its charge ("\t85%;"); `None` without a battery.
pub fn parse_pmset(pmset: &str) -> Option<Power> {
    let percent = pmset.lines().find_map(|line| {
        let (before, _) = line.split_once("%;")?;
        before
            .rsplit(|c: char| !c.is_ascii_digit())
            .next()?
            .parse::<u8>()
            .ok()
    });
    let source = pmset.lines().next()?;
    let on_battery = source.contains("'Battery Power'");
    if percent.is_none() && !on_battery {
        return None;
    }
    Some(Power {
        on_battery,
        battery_percent: percent,
    })
}

/// Other programs' share of the machine from `ps -A -o %cpu=,pid=,ppid=` (each process's
/// recent share of one core, in percent), less process `own` and its children (the sandbox's
/// worker processes), over `cores` cores.
pub fn parse_ps_load(ps: &str, own: u32, cores: f64) -> Option<f64> {
    let mut total = 0.0;
    let mut seen = false;
    for line in ps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(cpu), Some(pid)) = (fields.next(), fields.next()) else {
            continue;
        };
        let (Ok(cpu), Ok(pid)) = (cpu.replace(',', ".").parse::<f64>(), pid.parse::<u32>()) else {
            continue;
        };
        let parent = fields.next().and_then(|p| p.parse::<u32>().ok());
        seen = true;
        if pid != own && parent != Some(own) {
            total += cpu;
        }
    }
    seen.then(|| (total / cores.max(1.0)).clamp(0.0, 100.0))
}

impl Sensors for MacSensors {
    fn read(&mut self) -> Readings {
        if let Some((at, readings)) = &self.last
            && at.elapsed() < Duration::from_secs(2)
        {
            return readings.clone();
        }
        let readings = Readings {
            idle_for: run(
                "ioreg",
                &["-c", "IOHIDSystem", "-d", "4", "-r", "-k", "HIDIdleTime"],
            )
            .as_deref()
            .and_then(parse_hid_idle),
            other_load_percent: run("ps", &["-A", "-o", "%cpu=,pid="])
                .as_deref()
                .and_then(|ps| parse_ps_load(ps, std::process::id(), self.cores)),
            power: run("pmset", &["-g", "batt"])
                .as_deref()
                .and_then(parse_pmset),
            local: Some(WeekTime::now_local()),
        };
        self.last = Some((Instant::now(), readings.clone()));
        readings
    }

    fn describe(&self) -> String {
        "owner input from the HID idle time (ioreg); load from ps; power from pmset".into()
    }
}

/// This platform's sensors: macOS's there, Linux's elsewhere (which read nothing on another
/// system: every rule that needs a reading then never suspends; the schedule, the CPU share
/// and pause still hold).
pub fn platform_sensors() -> Box<dyn Sensors> {
    if cfg!(target_os = "macos") {
        Box::new(MacSensors::new())
    } else {
        Box::new(LinuxSensors::new())
    }
}

/// Readings written in a JSON file by a test (or a script), read again at every look: keys
/// `idle_seconds`, `other_load_percent`, `on_battery`, `battery_percent`, `weekday` (0 =
/// Monday) and `minute`; a missing key is a reading the machine cannot make (the local time:
/// the real one). A missing or unreadable file reads as nothing known.
pub struct ScriptedSensors {
    pub path: PathBuf,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Script {
    idle_seconds: Option<f64>,
    other_load_percent: Option<f64>,
    on_battery: Option<bool>,
    battery_percent: Option<u8>,
    weekday: Option<u32>,
    minute: Option<u32>,
}

impl Sensors for ScriptedSensors {
    fn read(&mut self) -> Readings {
        let script: Script = std::fs::read(&self.path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let power = match (script.on_battery, script.battery_percent) {
            (None, None) => None,
            (on, percent) => Some(Power {
                on_battery: on.unwrap_or(false),
                battery_percent: percent,
            }),
        };
        Readings {
            idle_for: script
                .idle_seconds
                .and_then(|s| Duration::try_from_secs_f64(s).ok()),
            other_load_percent: script.other_load_percent,
            power,
            local: Some(match (script.weekday, script.minute) {
                (Some(weekday), Some(minute)) => WeekTime { weekday, minute },
                _ => WeekTime::now_local(),
            }),
        }
    }

    fn describe(&self) -> String {
        format!("scripted, from {}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// macOS's tools as they answer (samples from macOS 14): the parsers read them, and
    /// anything else reads as nothing known.
    #[test]
    fn macos_tools_answers_are_read() {
        let ioreg = "+-o IOHIDSystem  <class IOHIDSystem, id 0x100000465, registered, matched, active, busy 0 (0 ms), retain 26>\n    {\n      \"HIDIdleTime\" = 2135741291\n    }\n";
        assert_eq!(
            parse_hid_idle(ioreg),
            Some(Duration::from_nanos(2_135_741_291))
        );
        assert_eq!(
            parse_hid_idle("  | |   \"HIDIdleTime\" = 0"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_hid_idle("no such key"), None);

        let battery = "Now drawing from 'Battery Power'\n -InternalBattery-0 (id=4653155)\t85%; discharging; 4:12 remaining present: true\n";
        assert_eq!(
            parse_pmset(battery),
            Some(Power {
                on_battery: true,
                battery_percent: Some(85),
            })
        );
        let mains = "Now drawing from 'AC Power'\n -InternalBattery-0 (id=4653155)\t100%; charged; 0:00 remaining present: true\n";
        assert_eq!(
            parse_pmset(mains),
            Some(Power {
                on_battery: false,
                battery_percent: Some(100),
            })
        );
        // A desktop: no battery.
        assert_eq!(parse_pmset("Now drawing from 'AC Power'\n"), None);
        assert_eq!(parse_pmset(""), None);

        let ps = "  0.0     1\n 12.5   345\n 50,0   999\n 80.0  4242\n";
        // 62.5% of one core by the others, on 4 cores; process 4242 is the provider.
        assert_eq!(parse_ps_load(ps, 4242, 4.0), Some(62.5 / 4.0));
        assert_eq!(parse_ps_load("", 1, 4.0), None);
        assert_eq!(parse_ps_load("900.0 7\n", 1, 4.0), Some(100.0));
    }

    fn at(weekday: u32, hh: u32, mm: u32) -> WeekTime {
        WeekTime {
            weekday,
            minute: hh * 60 + mm,
        }
    }

    #[test]
    fn schedules_cover_the_hours_they_name_and_no_other() {
        let s = |e: &[&str]| Schedule::parse(&e.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let evenings = s(&["mon-fri 18:00-08:00", "sat,sun"]).unwrap();
        for (when, allowed) in [
            (at(0, 17, 59), false),
            (at(0, 18, 0), true),
            (at(1, 7, 59), true), // Monday night into Tuesday
            (at(1, 8, 0), false),
            (at(4, 23, 0), true),
            (at(5, 12, 0), true),
            (at(6, 23, 59), true),
            (at(0, 3, 0), false), // Sunday's whole day ends at midnight
        ] {
            assert_eq!(evenings.allows(when), allowed, "{when:?}");
        }
        let wraps = s(&["sun 22:00-02:00"]).unwrap();
        assert!(wraps.allows(at(6, 23, 0)));
        assert!(wraps.allows(at(0, 1, 59)));
        assert!(!wraps.allows(at(0, 2, 0)));
        let daily = s(&["09:30-12:00"]).unwrap();
        assert!(daily.allows(at(3, 9, 30)) && !daily.allows(at(3, 12, 0)));
        for bad in [
            &[][..],
            &["mon-fri 25:00-08:00"],
            &["someday"],
            &["mon 10:00"],
            &["mon 10:00-10:00"],
            &["mon tue"],
            &["10:00-11:00 12:00-13:00"],
            &["mon 10:61-11:00"],
        ] {
            assert!(s(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn each_rule_suspends_for_its_reason_and_load_needs_a_calm_spell_to_let_go() {
        let now = Instant::now();
        let mut policy = Policy::new(IdleRules {
            schedule: Some(Schedule::parse(&["mon-fri 18:00-08:00".into()]).unwrap()),
            ..IdleRules::default()
        });
        let calm = Readings {
            idle_for: Some(Duration::from_secs(600)),
            other_load_percent: Some(5.0),
            power: Some(Power {
                on_battery: false,
                battery_percent: Some(90),
            }),
            local: Some(at(0, 20, 0)),
        };
        assert_eq!(policy.reasons(&calm, false, now), vec![]);
        assert_eq!(
            policy.reasons(&calm, true, now),
            vec![Reason::PausedByOwner]
        );
        let table: Vec<(Readings, Reason)> = vec![
            (
                Readings {
                    idle_for: Some(Duration::from_secs(2)),
                    ..calm.clone()
                },
                Reason::OwnerActive { idle_seconds: 2 },
            ),
            (
                Readings {
                    power: Some(Power {
                        on_battery: true,
                        battery_percent: Some(90),
                    }),
                    ..calm.clone()
                },
                Reason::OnBattery,
            ),
            (
                Readings {
                    power: Some(Power {
                        on_battery: false,
                        battery_percent: Some(10),
                    }),
                    ..calm.clone()
                },
                Reason::BatteryLow { percent: 10 },
            ),
            (
                Readings {
                    local: Some(at(2, 12, 0)),
                    ..calm.clone()
                },
                Reason::OutsideHours,
            ),
        ];
        for (readings, reason) in table {
            assert_eq!(policy.reasons(&readings, false, now), vec![reason]);
        }
        // Unknown readings suspend for nothing.
        assert_eq!(policy.reasons(&Readings::default(), false, now), vec![]);

        let busy = Readings {
            other_load_percent: Some(80.0),
            ..calm.clone()
        };
        let held = vec![Reason::BusyMachine {
            other_load_percent: 80,
        }];
        assert_eq!(policy.reasons(&busy, false, now), held);
        assert_eq!(
            policy.reasons(&calm, false, now),
            held,
            "calm for a moment only"
        );
        assert_eq!(policy.reasons(&calm, false, now + LOAD_CALM / 2), held);
        assert_eq!(policy.reasons(&calm, false, now + LOAD_CALM), vec![]);

        // A dedicated machine ignores all of it.
        let mut dedicated = Policy::new(IdleRules::dedicated());
        for r in [
            &busy,
            &Readings {
                idle_for: Some(Duration::ZERO),
                ..busy.clone()
            },
        ] {
            assert_eq!(dedicated.reasons(r, false, now), vec![]);
        }
    }

    #[test]
    fn this_process_cpu_time_is_read_from_proc() {
        let before = own_cpu_ticks().expect("/proc/self/stat");
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(200) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        assert!(own_cpu_ticks().unwrap() > before);
    }
}
